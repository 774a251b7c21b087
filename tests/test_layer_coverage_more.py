"""The less common layers hls4ml converts (issue 23): ELU, PReLU, ThresholdedReLU, softsign, selu, Embedding,
LayerNormalization, LSTM and GRU (and QKeras QLSTM / QGRU), and the refusals (SimpleRNN, options hls4ml does not convert).

Every layer kind sits in one multi-input model (one branch per kind and set of formats: rounding and overflow
modes, signed and unsigned outputs, wrapping and saturating accumulators; a stacked LSTM -> GRU -> Dense typed by
trigger's defaults), built and verified 3-way once (emulator == hls4ml C simulation == RTL, integer for integer):
one hls4ml conversion, one C simulation build and one RTL build for the Keras layers of the file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import assert_certified, build_and_verify

VECTORS = 2000

# ------------------------------------------------------------------ the branches of the model
ACTIVATION_KINDS = {"elu_layer": "elu", "elu_act": "elu", "prelu": "prelu", "thr": "thresholded_relu",
                    "softsign": "softsign", "selu": "selu"}
# Per input, the formats of its branch: "a" hls4ml's inferred parameters and tables, "b" other rounding and overflow
# modes, an unsigned output, narrow parameters and tables.
ACTIVATION_FORMATS = {
    "a": {"input": "fixed<10,4>", **{name: {"result": "fixed<12,4>"} for name in ACTIVATION_KINDS}},
    "b": {"input": "fixed<9,5,RND,SAT>",
          "elu_layer": {"result": "fixed<8,2,RND_CONV,SAT>", "param": "ufixed<5,0>", "table": "fixed<10,1,RND>"},
          "elu_act": {"result": "fixed<7,3,TRN,WRAP>"},
          "prelu": {"result": "fixed<9,4,RND,SAT>", "param": "fixed<6,1,RND>"},
          "thr": {"result": "ufixed<6,3,RND,SAT>", "param": "fixed<8,3,RND>"},
          "softsign": {"result": "fixed<6,1,RND_CONV,SAT>", "table": "fixed<8,1,RND>"},
          "selu": {"result": "fixed<8,3,RND,WRAP>", "table": "fixed<12,3,RND_CONV>"}}}


def _activations(tf, rng, inputs, outputs, hls):
    """Every activation on each of two inputs (one per set of formats)."""
    layers = tf.keras.layers
    for tag, formats in ACTIVATION_FORMATS.items():
        x = tf.keras.Input((5,), name=f"x_{tag}")
        prelu = layers.PReLU(name=f"prelu_{tag}")
        inputs.append(x)
        outputs += [layers.ELU(alpha=0.7, name=f"elu_layer_{tag}")(x), layers.Activation("elu", name=f"elu_act_{tag}")(x),
                    prelu(x), layers.ThresholdedReLU(theta=0.4, name=f"thr_{tag}")(x),
                    layers.Activation("softsign", name=f"softsign_{tag}")(x),
                    layers.Activation("selu", name=f"selu_{tag}")(x)]
        prelu.set_weights([np.array([0.25, -0.5, 1.375, 0.1, 0.03], dtype=np.float32)])
        hls["input_precision"][f"x_{tag}"] = formats["input"]
        hls["precision"].update({f"{name}_{tag}": formats[name] for name in ACTIVATION_KINDS})


def _embedding(tf, rng, inputs, outputs, hls):
    """Four ids of a vocabulary of 8 (every id an address: uint<3>), three features each."""
    x = tf.keras.Input((4,), name="ids")
    layer = tf.keras.layers.Embedding(8, 3, input_length=4, name="embed")
    inputs.append(x)
    outputs.append(layer(x))
    layer.set_weights([rng.normal(0, 2, (8, 3))])
    hls["input_precision"]["ids"] = "uint<3>"
    hls["precision"]["embed"] = {"result": "fixed<7,3,RND,SAT>", "embeddings": "fixed<10,4,RND_CONV>"}


def _layer_norms(tf, rng, inputs, outputs, hls):
    """A LayerNormalization on each of two inputs: a wrapping truncating accumulator, and hls4ml's own."""
    for tag, shape in (("a", (2, 5)), ("b", (3, 4))):
        x = tf.keras.Input(shape, name=f"rows_{tag}")
        layer = tf.keras.layers.LayerNormalization(axis=-1, name=f"ln_{tag}")
        inputs.append(x)
        outputs.append(layer(x))
        layer.set_weights([rng.uniform(0.5, 1.5, shape[1]), rng.normal(0, 0.3, shape[1])])
    hls["input_precision"].update(rows_a="fixed<10,4>", rows_b="fixed<8,3,RND,SAT>")
    hls["precision"]["ln_a"] = {"result": "fixed<12,4>", "accum": "fixed<12,3,TRN,WRAP>", "scale": "fixed<10,2>",
                                "bias": "fixed<10,2>"}
    hls["precision"]["ln_b"] = {"result": "fixed<10,3,RND,SAT>", "scale": "fixed<8,2,RND>",
                                "bias": "fixed<8,1,RND_CONV>"}


def _recurrent(tf, rng, inputs, outputs, hls):
    """An LSTM (last state) on one input and a GRU (every state) on another. hls4ml 1.3 compiles them only with
    input, accum and result of one format; the LSTM's weights keep its saturating products inside it, the GRU's
    wrap."""
    a, b = tf.keras.Input((3, 2), name="seq_a"), tf.keras.Input((3, 2), name="seq_b")
    lstm = tf.keras.layers.LSTM(3, name="lstm")
    gru = tf.keras.layers.GRU(2, return_sequences=True, name="gru")
    inputs += [a, b]
    outputs += [lstm(a), gru(b)]
    lstm.set_weights([rng.uniform(-0.45, 0.45, (2, 12)), rng.uniform(-0.3, 0.3, (3, 12)), rng.uniform(-0.3, 0.3, 12)])
    gru.set_weights([rng.normal(0, 0.8, w.shape) for w in gru.get_weights()])
    hls["input_precision"].update(seq_a="fixed<12,4,RND,SAT>", seq_b="fixed<10,3,RND_CONV,WRAP>")
    hls["precision"]["lstm"] = {"result": "fixed<12,4,RND,SAT>", "accum": "fixed<12,4,RND,SAT>",
                                "weight": "fixed<8,2,RND>", "recurrent_weight": "fixed<8,1,RND>",
                                "bias": "fixed<8,2,RND>", "table": "fixed<10,2,RND>"}
    hls["precision"]["gru"] = {"result": "fixed<10,3,RND_CONV,WRAP>", "accum": "fixed<10,3,RND_CONV,WRAP>",
                               "weight": "fixed<7,2,RND>", "recurrent_weight": "fixed<7,2,RND>", "bias": "fixed<7,2,RND>"}


def _qrecurrent(tf, rng, inputs, outputs, hls):
    """QKeras QLSTM: quantized_bits weights (their formats from the quantizers), sigmoid/tanh tables. (QKeras 0.9's
    QGRU cannot be built with TensorFlow 2.14: refused.)"""
    from qkeras import QLSTM, quantized_bits

    q = dict(kernel_quantizer=quantized_bits(6, 1, alpha=1), recurrent_quantizer=quantized_bits(5, 0, alpha=1),
             bias_quantizer=quantized_bits(6, 1, alpha=1), activation="tanh", recurrent_activation="sigmoid")
    x = tf.keras.Input((4, 3), name="seq_q")
    qlstm = QLSTM(2, name="qlstm", **q)
    inputs.append(x)
    outputs.append(qlstm(x))
    qlstm.set_weights([rng.uniform(-0.4, 0.4, (3, 8)), rng.uniform(-0.25, 0.25, (2, 8)), rng.uniform(-0.3, 0.3, 8)])
    hls["input_precision"]["seq_q"] = "fixed<10,3,RND,SAT>"
    hls["precision"]["qlstm"] = {"result": "fixed<10,3,RND,SAT>", "accum": "fixed<10,3,RND,SAT>"}


def _stacked_recurrent(tf, rng, inputs, outputs, hls):
    """An LSTM (every state) -> GRU -> Dense with no precisions given: trigger types each recurrent layer's accum
    and result as its input (the port's fixed<12,4>, wrapping), so hls4ml's C++ compiles it."""
    x = tf.keras.Input((4, 3), name="seq_s")
    layers = [tf.keras.layers.LSTM(3, return_sequences=True, name="l1"), tf.keras.layers.GRU(2, name="g2"),
              tf.keras.layers.Dense(2, name="out")]
    y = x
    for layer in layers:
        y = layer(y)
    inputs.append(x)
    outputs.append(y)
    for layer in layers:
        layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
    hls["input_precision"]["seq_s"] = "fixed<12,4>"


BRANCHES = (_activations, _embedding, _layer_norms, _recurrent, _qrecurrent, _stacked_recurrent)


def _folder(model, folder, hls: dict):
    """The model saved as JSON + weights with a trigger.yml (``hls`` written as JSON, which YAML reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"{model.name}.json"
    source.write_text(model.to_json())
    model.save_weights(folder / f"{model.name}_weights.h5")
    (folder / "trigger.yml").write_text(f"kind: network\nname: {model.name}\n"
                                        f"model: {{file: {source.name}, weights: {source.stem}_weights.h5}}\n"
                                        f"hls: {json.dumps(hls)}\n")
    return folder


def _model(branches=BRANCHES, name="less_common_layers"):
    import tensorflow as tf

    rng = np.random.default_rng(23)
    inputs, outputs, hls = [], [], {"input_precision": {}, "precision": {}}
    for branch in branches:
        branch(tf, rng, inputs, outputs, hls)
    return tf.keras.Model(inputs, outputs, name=name), hls


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("less_common_layers")
    model, hls = _model()
    return build_and_verify(_folder(model, tmp / "m", hls), tmp / "b", "--vectors", str(VECTORS))


@pytest.fixture(scope="module")
def ops(bundle):
    return {op["name"]: op for op in bundle.manifest["ops"]}


@pytest.mark.slow
def test_every_layer_kind_is_bit_exact(bundle):
    """Emulator == hls4ml C simulation == RTL on every vector, for the whole model."""
    assert bundle.build_status == 0 and bundle.verify_status == 0, bundle.verify.get("first_mismatch")
    assert_certified(bundle.verify, VECTORS)


@pytest.mark.slow
def test_activations(ops):
    """ELU (layer and activation), PReLU, ThresholdedReLU, softsign and selu, in two sets of formats."""
    for tag in ACTIVATION_FORMATS:
        assert {name: ops[f"{name}_{tag}"]["kind"] for name in ACTIVATION_KINDS} == ACTIVATION_KINDS
    assert "ap_ufixed<6,3,AP_RND,AP_SAT>" in ops["thr_b"]["description"]
    assert "alpha 0.6875 (ap_ufixed<5,0" in ops["elu_layer_b"]["description"]
    assert "lambda 1.050690 (ap_ufixed<16,1" in ops["selu_a"]["description"]
    assert "table 1024 x ap_fixed<10,1,AP_RND," in ops["elu_layer_b"]["description"]  # trigger.yml's table formats
    assert "table 1024 x ap_fixed<8,1,AP_RND," in ops["softsign_b"]["description"]
    assert "table 1024 x ap_fixed<18,8," in ops["softsign_a"]["description"]  # hls4ml's default


@pytest.mark.slow
def test_embedding(ops):
    assert ops["embed"]["kind"] == "embedding"
    assert "table 8 x ap_fixed<10,4,AP_RND_CONV" in ops["embed"]["description"]


@pytest.mark.slow
def test_layer_normalization(ops):
    assert "layer_norm 2 x 5, accum ap_fixed<12,3,AP_TRN,AP_WRAP>" in ops["ln_a"]["description"]
    assert "layer_norm 3 x 4, accum ap_fixed<14,4,AP_RND_CONV,AP_SAT>" in ops["ln_b"]["description"]


@pytest.mark.slow
def test_lstm_and_gru_unrolled(ops):
    """hls4ml's static LSTM and GRU over 3 steps as dense, table and gate ops; the GRU outputs every state."""
    assert [ops[f"lstm_t{t}_h"]["kind"] for t in range(3)] == ["merge"] * 3
    assert ops["lstm_t1_wh"]["kind"] == "dense" and "lstm_t0_wh" not in ops  # the zero state's product is its bias
    assert "table 1024 x ap_fixed<10,2,AP_RND," in ops["lstm_t2_ifo"]["description"]
    assert ops["gru_t2_h"]["kind"] == "merge" and ops["gru_seq2"]["kind"] == "concatenate"


@pytest.mark.slow
def test_stacked_recurrent_layers_with_trigger_default_types(ops):
    """LSTM (every state) -> GRU -> Dense with no precisions given: each recurrent layer's accum and result are its
    input's format (the port's fixed<12,4>, wrapping); the branch is 3-way exact with the rest of the model."""
    assert {"l1_seq3", "g2_t3_h", "out"} <= set(ops)
    assert ops["l1_seq3"]["kind"] == "concatenate" and ops["g2_t3_h"]["kind"] == "merge"
    for dense in ("l1_t1_wh", "g2_t1_wh"):  # the recurrent products: accum and output as the port
        assert "accum ap_fixed<12,4,AP_TRN,AP_WRAP>, output ap_fixed<12,4,AP_TRN,AP_WRAP>" in \
            ops[dense]["description"], ops[dense]["description"]


@pytest.mark.slow
def test_qkeras_qlstm_unrolled(ops):
    """QLSTM: the weight formats are the quantizers' (quantized_bits(6, 1) -> ap_fixed<6,2>)."""
    assert ops["qlstm_t3_h"]["kind"] == "merge"
    assert "ap_fixed<6,2" in ops["qlstm_t0_wx"]["description"] and "ap_fixed<5,1" in ops["qlstm_t1_wh"]["description"]


# ------------------------------------------------------------------ refusals, each one line naming the layer
def _config(*layers, shape=(None, 3, 4)):
    return {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": list(shape), "name": "in"}},
        *({"class_name": cls, "config": {"name": name, **cfg}} for cls, name, cfg in layers)]}}


@pytest.mark.parametrize("layer, message", [
    (("PReLU", "p", {"shared_axes": [1]}), r"layer 'p' of type PReLU: shared_axes=\[1\] is not supported"),
    (("LayerNormalization", "ln", {"axis": [1]}), r"layer 'ln' of type LayerNormalization: axis \[1\] is not supported"),
    (("LayerNormalization", "ln", {"axis": [2], "center": False}), "layer 'ln' of type LayerNormalization: center="),
    (("Embedding", "e", {"input_dim": 8, "output_dim": 2, "mask_zero": True}),
     "layer 'e' of type Embedding: mask_zero=True is not supported"),
    (("SimpleRNN", "rnn", {"units": 2}), "layer 'rnn' of type SimpleRNN: not supported: hls4ml 1.3's Vivado/Vitis "
                                         "backends have no SimpleRNN implementation"),
    (("LSTM", "lstm", {"units": 2, "go_backwards": True}), "layer 'lstm' of type LSTM: go_backwards=True"),
    (("GRU", "gru", {"units": 2, "reset_after": False}), "layer 'gru' of type GRU: reset_after=False"),
    (("QGRU", "qgru", {"units": 2}), "layer 'qgru' of type QGRU: not supported: QKeras 0.9's QGRU cannot be built"),
    (("QLSTM", "qlstm", {"units": 2, "kernel_quantizer": "quantized_po2(4)"}),
     "layer 'qlstm' of type QLSTM: kernel_quantizer 'quantized_po2\\(4\\)' is not supported"),
    (("QLSTM", "qlstm", {"units": 2, "state_quantizer": "quantized_bits(8, 2)"}),
     "layer 'qlstm' of type QLSTM: state_quantizer is not supported"),
    (("LSTM", "lstm", {"units": 2, "recurrent_activation": "hard_sigmoid"}),
     "layer 'lstm' of type LSTM: recurrent_activation 'hard_sigmoid' is not supported"),
], ids=["prelu_shared_axes", "layer_norm_axis", "layer_norm_center", "embedding_mask", "simple_rnn", "lstm_backwards",
        "gru_reset_before", "qgru", "qlstm_po2", "qlstm_state_quantizer", "lstm_hard_sigmoid"])
def test_what_hls4ml_does_not_convert_is_refused(layer, message):
    from trigger.errors import ModelError
    from trigger.frontends.keras import validate_config

    with pytest.raises(ModelError, match=message):
        validate_config(_config(layer), "m.json")


def test_what_hls4ml_converts_passes_the_checks():
    from trigger.frontends.keras import validate_config

    plan = validate_config(_config(("LayerNormalization", "ln", {"axis": [2]}), ("LSTM", "lstm", {"units": 2}),
                                   shape=(None, 3, 4)), "m.json")
    assert [l["class_name"] for l in plan.layers] == ["LayerNormalization", "LSTM"]


def test_embedding_ids_outside_the_vocabulary_are_refused(tmp_path):
    from trigger.errors import ModelError
    from trigger.frontends.network import convert

    model, hls = _model([_embedding], "embedding")
    with pytest.raises(ModelError, match=r"layer embed \(Embedding\): ids in ap_uint<4> can fall outside the "
                                         r"vocabulary of 8"):
        convert(_folder(model, tmp_path, hls) / "embedding.json", {"input_precision": "uint<4>"})


@pytest.mark.slow  # hls4ml's activation tables are computed by its own C++ (g++)
def test_a_recurrent_layer_hls4ml_cannot_compile_is_refused(tmp_path):
    """hls4ml 1.3's lstm() needs input, accum and result of one C++ type: a given result that differs is refused."""
    from trigger.errors import ModelError
    from trigger.frontends.network import convert

    model, hls = _model([_recurrent], "recurrent")
    hls["precision"]["lstm"] = {"result": "fixed<12,4,RND,SAT>"}
    with pytest.raises(ModelError, match=r"layer lstm \(LSTM\): input ap_fixed<8,3,AP_TRN,AP_WRAP>, accum "
                                         r"ap_fixed<8,3,AP_TRN,AP_WRAP> and result ap_fixed<12,4,AP_RND,AP_SAT> differ"):
        convert(_folder(model, tmp_path, hls) / "recurrent.json", {"hls": {**hls, "input_precision": "fixed<8,3>"}})


@pytest.mark.slow  # hls4ml's activation tables are computed by its own C++ (g++)
def test_a_float_lstm_gets_one_format_by_default(tmp_path):
    """Without given precisions, trigger types a recurrent layer's accum and result as its input (an input port
    here: fixed<16,6>, which wraps), so hls4ml's C++ compiles it."""
    import tensorflow as tf

    from trigger.frontends.network import convert

    x = tf.keras.Input((3, 2), name="seq")
    model = tf.keras.Model(x, tf.keras.layers.LSTM(2, name="lstm")(x), name="float_lstm")
    _, fw = convert(_folder(model, tmp_path, {}) / "float_lstm.json", {})
    dense = next(op for op in fw.ops if op.name == "lstm_t1_wh")
    assert dense.accum_fmt == dense.input.format == fw.ops[-1].output.format == fw.input.format


# ------------------------------------------------------------------ every input against hls4ml's own C++
# (kind, input, output, table size, table_t or param_t, parameter): the element-wise ops on every raw value of the
# input format, against nnet_activation.h's functions compiled with g++ (table sizes and types hls4ml's flow
# does not set too). The emulator's ops take the tables the same program filled (init_*_table with the case's
# config: one g++ compile for every case); hls4ml's default tables (1024 x fixed<18,8>, which the bundle's flow
# computes with trigger's activation_table) are checked equal to activation_table's.
CPP_CASES = [
    ("elu", "fixed<10,4>", "fixed<8,2,RND_CONV,SAT>", 1024, "fixed<18,8>", ("ufixed<5,0>", 0.7)),
    ("elu", "fixed<8,3,RND,SAT>", "fixed<7,3,TRN,WRAP>", 256, "fixed<10,2,RND>", ("fixed<8,3>", 1.3)),
    ("selu", "fixed<10,4>", "fixed<9,3,RND,SAT>", 1024, "fixed<18,8>", None),
    ("selu", "fixed<7,4>", "fixed<8,3,RND,WRAP>", 512, "fixed<12,3>", None),
    ("softsign", "fixed<10,5>", "fixed<6,1,RND_CONV,SAT>", 1024, "fixed<18,8>", None),
    ("softsign", "fixed<9,3,TRN,WRAP>", "ufixed<7,1,RND,SAT>", 128, "fixed<9,1,RND>", None),
    ("thresholded_relu", "fixed<9,5,RND,SAT>", "ufixed<6,3,RND,SAT>", 0, None, ("fixed<8,3,RND>", 0.4)),
    ("thresholded_relu", "fixed<10,2>", "fixed<6,2>", 0, None, ("ufixed<4,0>", 0.33)),
    ("prelu", "fixed<8,3>", "fixed<9,4,RND,SAT>", 0, None, ("fixed<6,1,RND>", None)),
]


def _cpp_case(k: int, case) -> tuple[str, str]:
    """The config struct and the block computing case k on every input (printed as raw bits)."""
    from trigger.fixed import FixedFormat

    kind, src_text, dst_text, size, table_text, param = case
    src, dst = FixedFormat.parse(src_text), FixedFormat.parse(dst_text)
    n = 1 << src.width
    table = f"typedef {FixedFormat.parse(table_text).cpp} table_t;" if table_text else ""
    config = (f"struct cfg{k} : nnet::activ_config {{ static const unsigned n_in = {n}; "
              f"static const unsigned table_size = {size or 1024}; {table} }};")
    call = f"nnet::{kind}<{src.cpp}, {dst.cpp}, cfg{k}>(x, y);"
    if kind == "prelu":
        pf = FixedFormat.parse(param[0])
        call = (f"static {pf.cpp} a[{n}]; for (int i = 0; i < {n}; i++) a[i].range({pf.width - 1}, 0) = "
                f"(unsigned long long)(i * 7 + 3); nnet::prelu<{src.cpp}, {pf.cpp}, {dst.cpp}, cfg{k}>(x, a, y);")
    elif param is not None:
        pf = FixedFormat.parse(param[0])
        call = f"nnet::{kind}<{src.cpp}, {pf.cpp}, {dst.cpp}, cfg{k}>(x, {param[1]!r}, y);"
    if table_text:  # the table the call fills, printed too: the emulator's op is given it (see _emulated)
        tw = FixedFormat.parse(table_text).width
        call += (f" static cfg{k}::table_t t[{size}]; nnet::init_{kind}_table<cfg{k}, {size}>(t);"
                 f" for (int i = 0; i < {size}; i++) std::printf(\"t{k} %llu\\n\", "
                 f"(unsigned long long)t[i].range({tw - 1}, 0).to_uint64());")
    block = (f"{{ static {src.cpp} x[{n}]; static {dst.cpp} y[{n}];\n"
             f"  for (int i = 0; i < {n}; i++) x[i].range({src.width - 1}, 0) = (unsigned long long)i;\n"
             f"  {call}\n"
             f"  for (int i = 0; i < {n}; i++) std::printf(\"{k} %llu\\n\", "
             f"(unsigned long long)y[i].range({dst.width - 1}, 0).to_uint64()); }}")
    return config, block


def _emulated(case, table: np.ndarray | None = None) -> np.ndarray:
    """The op's emulator on every raw input (in bit order 0 .. 2**W - 1); ``table``: the raw entries of its table
    as the harness printed them."""
    from trigger.fixed import FixedFormat
    from trigger.ir import FirmwareModel, TensorType, emulate
    from trigger.ir.ops.elu import Elu, Selu
    from trigger.ir.ops.prelu import PRelu
    from trigger.ir.ops.softsign import Softsign
    from trigger.ir.ops.thresholded_relu import ThresholdedRelu

    kind, src_text, dst_text, size, table_text, param = case
    src, dst = FixedFormat.parse(src_text), FixedFormat.parse(dst_text)
    n = 1 << src.width
    raw = src.from_bits(np.arange(n, dtype=np.int64))
    if kind == "prelu":  # one alpha per element: the bits i * 7 + 3, as the harness sets them
        pf = FixedFormat.parse(param[0])
        op = PRelu("p", TensorType.uniform(src, n), TensorType.uniform(dst, n),
                   pf.from_bits((np.arange(n) * 7 + 3) % (1 << pf.width)), pf)
        return emulate(FirmwareModel("m", op.input, [op]), raw.reshape(1, -1)).outputs[0]
    one = (TensorType.uniform(src, 1), TensorType.uniform(dst, 1))
    if kind == "thresholded_relu":
        pf = FixedFormat.parse(param[0])
        op = ThresholdedRelu("t", *one, int(pf.quantize([param[1]])[0]), pf)
    else:
        tf_ = FixedFormat.parse(table_text)
        if kind == "elu":
            pf = FixedFormat.parse(param[0])
            op = Elu("e", *one, table, tf_, int(pf.quantize([param[1]])[0]), pf)
        else:
            op = {"selu": Selu, "softsign": Softsign}[kind]("s", *one, table, tf_)
    return emulate(FirmwareModel("m", op.input, [op]), raw.reshape(-1, 1)).outputs[:, 0]


@pytest.mark.slow
def test_elementwise_ops_equal_hls4ml_cpp_on_every_input(tmp_path):
    import shutil
    import subprocess

    from trigger.fixed import FixedFormat
    from trigger.frontends.hls4ml_tables import _hls4ml_templates, activation_table

    if shutil.which("g++") is None:
        pytest.skip("g++ not found")
    parts = [_cpp_case(k, case) for k, case in enumerate(CPP_CASES)]
    source = tmp_path / "cases.cpp"
    source.write_text("#include <cstdio>\n#include \"ap_fixed.h\"\n#include \"nnet_utils/nnet_activation.h\"\n"
                      + "\n".join(c for c, _ in parts) + "\nint main() {\n" + "\n".join(b for _, b in parts)
                      + "\nreturn 0; }\n")
    root = _hls4ml_templates()
    subprocess.run(["g++", "-O1", "-std=c++11", f"-I{root / 'ap_types'}", f"-I{root}", str(source), "-o",
                    str(tmp_path / "cases")], check=True, capture_output=True)
    printed = subprocess.run([str(tmp_path / "cases")], check=True, capture_output=True, text=True).stdout.split("\n")
    for k, case in enumerate(CPP_CASES):
        dst = FixedFormat.parse(case[2])
        cpp = dst.from_bits(np.array([int(line.split()[1]) for line in printed if line.startswith(f"{k} ")]))
        table = None
        if case[4]:
            kind, size, table_fmt = case[0], case[3], FixedFormat.parse(case[4])
            table = table_fmt.from_bits(np.array([int(line.split()[1]) for line in printed
                                                  if line.startswith(f"t{k} ")]))
            assert table.size == size
            if (size, case[4]) == (1024, "fixed<18,8>"):  # hls4ml's default table, which the bundle's flow computes
                assert np.array_equal(table, activation_table(kind, size, table_fmt)), case
        ours = _emulated(case, table)
        assert cpp.size == ours.size == 1 << FixedFormat.parse(case[1]).width
        bad = np.flatnonzero(cpp != ours)
        assert bad.size == 0, f"{case}: {bad.size} inputs differ, first input bits {bad[0]}: C++ {cpp[bad[0]]}, " \
                              f"emulator {ours[bad[0]]}"


# ------------------------------------------------------------------ the same activations from ONNX nodes
def _onnx_activations(path, elu_alpha: float | None = 0.7):
    """x (5 values) -> Elu, Selu, Softsign, ThresholdedRelu, each an output (written with onnx.helper)."""
    import onnx
    from onnx import TensorProto, helper

    nodes, outs = [], []
    for out, op, attrs in (("y_elu", "Elu", {} if elu_alpha is None else {"alpha": elu_alpha}),
                           ("y_selu", "Selu", {}), ("y_softsign", "Softsign", {}),
                           ("y_thr", "ThresholdedRelu", {"alpha": 0.4})):
        nodes.append(helper.make_node(op, ["x"], [out], name=f"{op.lower()}_node", **attrs))
        outs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 5]))
    graph = helper.make_graph(nodes, "activations", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
                              outs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_an_onnx_elu_without_alpha_is_refused(tmp_path):
    from trigger.errors import ModelError
    from trigger.frontends.onnx import load_onnx

    with pytest.raises(ModelError, match="node 'elu_node' of type Elu: no alpha attribute: ONNX's default is 1.0, "
                                         "hls4ml 1.3 reads 0.01"):
        load_onnx(_onnx_activations(tmp_path / "acts.onnx", elu_alpha=None))


@pytest.mark.slow
def test_onnx_activation_nodes_are_bit_exact(tmp_path):
    """The ONNX nodes map to the same ops as the Keras layers, and the design is 3-way exact (the RTL under Icarus:
    four table lookups on five elements, no Verilator model to compile for them)."""
    path = _onnx_activations(tmp_path / "acts.onnx")
    bundle = build_and_verify(path, tmp_path / "b", "--vectors", str(VECTORS), "--precision", "fixed<10,3,RND,SAT>",
                              verify_args=("--sim", "icarus"))
    assert bundle.build_status == 0 and bundle.verify_status == 0, bundle.verify.get("first_mismatch")
    assert_certified(bundle.verify, VECTORS)
    assert bundle.verify["simulator"] == "icarus"
    ops = bundle.manifest["ops"]
    assert [op["kind"] for op in ops] == ["elu", "selu", "softsign", "thresholded_relu"]
    assert "alpha 0.699219" in ops[0]["description"]
