"""QKeras layers and quantizers hls4ml 1.3 converts, each built and verified 3-way (emulator == hls4ml C
simulation == RTL) and compared with the QKeras model, which must be equal wherever its arithmetic is exact
(and the witness must say so where it is not): folded and quantized batch norms, depthwise and separable
convolutions, causal padding, nested models, binary/ternary/po2/tanh quantizers (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import assert_certified, build_and_verify

VECTORS = 2000


def _folder(model, folder, hls: str = ""):
    """The model saved (architecture JSON + weights) with a trigger.yml (``hls``: a YAML flow mapping)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{model.name}.json").write_text(model.to_json())
    model.save_weights(folder / f"{model.name}_weights.h5")
    (folder / "trigger.yml").write_text(f"kind: network\nname: {model.name}\n"
                                        f"model: {{file: {model.name}.json, weights: {model.name}_weights.h5}}\n"
                                        + (f"hls: {hls}\n" if hls else ""))
    return folder


def _randomize(model, seed):
    """Random weights (variances positive) so that no kernel is the initializer's."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        names = [w.name for w in layer.weights]
        layer.set_weights([w if "iteration" in n else rng.uniform(0.3, 2.0, w.shape) if "variance" in n
                           else rng.normal(0, 0.5, w.shape) for n, w in zip(names, weights)])


def _q(bits=4, integer=0):
    from qkeras import quantized_bits

    return quantized_bits(bits, integer, alpha=1)


def _conv2d_model():
    """QConv2DBatchnorm -> QDepthwiseConv2D (same padding) -> QSeparableConv2D, then the quantizer chain."""
    import tensorflow as tf
    from qkeras import (QActivation, QConv2DBatchnorm, QDepthwiseConv2D, QSeparableConv2D,
                        quantized_relu)

    tf.keras.utils.set_random_seed(23)
    x = tf.keras.Input((6, 6, 2), name="image")
    y = QActivation(_q(6, 2), name="image_q")(x)
    y = QConv2DBatchnorm(3, (2, 2), kernel_quantizer=_q(), bias_quantizer=_q(6, 2), name="conv_bn")(y)
    y = QActivation(quantized_relu(5, 2), name="relu1")(y)
    y = QDepthwiseConv2D((2, 2), padding="same", depthwise_quantizer=_q(), bias_quantizer=_q(), name="dw")(y)
    y = QActivation(_q(6, 2), name="dw_q")(y)
    y = QSeparableConv2D(2, (2, 2), depthwise_quantizer=_q(), pointwise_quantizer=_q(), bias_quantizer=_q(),
                         name="sep")(y)
    y = tf.keras.layers.Flatten(name="flat")(y)
    model = tf.keras.Model(x, _quantizer_chain(y), name="qconv2d_quantizers")
    _randomize(model, 1)
    return model


def _conv1d_model():
    """Causal QConv1D (binary kernel) -> QSeparableConv1D (ternary depthwise, po2 pointwise kernels) -> a nested
    Sequential block (flattened on load) -> QDense."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense, QSeparableConv1D, binary, quantized_po2, quantized_relu, ternary

    tf.keras.utils.set_random_seed(24)
    block = tf.keras.Sequential([tf.keras.Input((6,)), QDense(5, kernel_quantizer=_q(), bias_quantizer=_q(),
                                                               name="block_dense"),
                                 QActivation(quantized_relu(4, 1), name="block_relu")], name="block")
    x = tf.keras.Input((6, 2), name="sequence")
    y = QActivation(_q(6, 2), name="sequence_q")(x)
    y = QConv1D(3, 3, padding="causal", kernel_quantizer=binary(alpha=1), bias_quantizer=_q(), name="causal")(y)
    y = QActivation(quantized_relu(5, 2), name="causal_relu")(y)
    y = QSeparableConv1D(2, 2, strides=2, depthwise_quantizer=ternary(alpha=1), pointwise_quantizer=quantized_po2(4),
                         bias_quantizer=_q(), name="sep1")(y)
    y = QActivation(_q(6, 2), name="sep1_q")(y)
    y = tf.keras.layers.Flatten(name="flat")(y)
    y = block(y)
    y = QDense(2, kernel_quantizer=_q(), bias_quantizer=_q(), name="out")(y)
    model = tf.keras.Model(x, y, name="qconv1d_family")
    _randomize(model, 2)
    return model


def _inexact_model():
    """QBatchNormalization (po2 parameter quantizers), quantized_relu with a negative slope (hls4ml's leaky_relu),
    float DepthwiseConv1D and SeparableConv1D in a nested block of a Sequential, then a binary network (batch norm
    + binary activation merged by hls4ml into a threshold, dense layers on binary data): firmware == hls4ml, and
    the QKeras witness must not claim exactness (float constants, QKeras's own clip of the negative part)."""
    import tensorflow as tf
    from qkeras import QActivation, QBatchNormalization, QConv1D, QDense, binary, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(25)
    block = tf.keras.Sequential([tf.keras.Input((5, 3)),
                                 tf.keras.layers.DepthwiseConv1D(2, padding="same", name="dw_float"),
                                 tf.keras.layers.SeparableConv1D(2, 2, name="sep_float")], name="float_block")
    bnn = [QDense(6, kernel_quantizer=_q(), bias_quantizer=_q(), name="bnn_in"), QBatchNormalization(name="bn1"),
           QActivation(binary(alpha=1), name="sign1"),  # hls4ml merges the norm and the sign: ap_uint<1> out
           QDense(5, kernel_quantizer=binary(alpha=1), bias_quantizer=quantized_bits(4, 3, alpha=1),
                  name="both_binary"),  # binary data, binary weights: nnet_mult.h's both_binary and its cast
           QBatchNormalization(name="bn2"), QActivation(binary(alpha=1), name="sign2"),
           QDense(3, kernel_quantizer=_q(), bias_quantizer=_q(), name="data_binary")]  # binary data only
    model = tf.keras.Sequential([tf.keras.Input((5, 2)), QActivation(_q(6, 2), name="in_q"),
                                 QConv1D(3, 1, kernel_quantizer=_q(), bias_quantizer=_q(), name="mix"),
                                 QBatchNormalization(name="qbn"),
                                 QActivation(quantized_relu(6, 2, negative_slope=0.25), name="leaky"), block,
                                 tf.keras.layers.Flatten(name="flat"), *bnn], name="inexact_family")
    _randomize(model, 3)
    return model


def _quantizer_chain(y):
    """binary / ternary / stochastic_binary / stochastic_ternary / quantized_po2 kernels and binary / ternary /
    quantized_tanh / quantized_sigmoid activations (hls4ml: XnorPrecisionType, int<2> and exponent weights;
    binary_tanh, the ternary threshold, hard_tanh, hard_sigmoid)."""
    from qkeras import (QActivation, QDense, binary, quantized_po2, quantized_relu, quantized_sigmoid,
                        quantized_tanh, stochastic_binary, stochastic_ternary, ternary)

    y = QActivation(_q(6, 2), name="features_q")(y)
    y = QDense(6, kernel_quantizer=binary(alpha=1), bias_quantizer=_q(), name="d_binary")(y)
    y = QActivation(binary(alpha=1), name="a_binary")(y)
    y = QDense(6, kernel_quantizer=ternary(alpha=1), bias_quantizer=_q(), name="d_ternary")(y)
    y = QActivation(ternary(alpha=1), name="a_ternary")(y)
    y = QDense(5, kernel_quantizer=quantized_po2(4), bias_quantizer=_q(), name="d_po2")(y)
    y = QActivation(quantized_relu(5, 2), name="a_relu")(y)
    y = QDense(4, kernel_quantizer=stochastic_ternary(alpha=1), bias_quantizer=binary(alpha=1), name="d_sternary")(y)
    y = QActivation(quantized_tanh(5), name="a_tanh")(y)
    y = QDense(4, kernel_quantizer=_q(), bias_quantizer=_q(), name="d_bits")(y)
    y = QActivation(quantized_sigmoid(4), name="a_sigmoid")(y)
    return QDense(3, kernel_quantizer=stochastic_binary(alpha=1), bias_quantizer=_q(), name="d_sbinary")(y)


# (model, trigger.yml hls settings: input format / rounding / overflow, post-training formats of float layers,
#  whether QKeras's arithmetic is exact, the op kinds the firmware must have)
CASES = {
    "conv2d_quantizers": (_conv2d_model, "{input_precision: 'fixed<8,3,RND,SAT>'}", True,
                          {"conv2d", "sign_threshold", "hard_tanh", "dense"}),
    "conv1d_nested": (_conv1d_model, "{input_precision: 'fixed<10,4,RND_CONV,SAT>'}", True,
                      {"conv1d", "item_dense", "dense"}),
    "inexact": (_inexact_model, "{input_precision: 'fixed<8,3>', ptq: {weight: 'fixed<10,3,RND,SAT>', "
                                "bias: 'fixed<10,3>', result: 'fixed<14,6,RND,SAT>'}}", False,
                {"scale", "leaky_relu", "conv1d", "binary_threshold"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_qkeras_layers_and_quantizers_verify_three_way(case, tmp_path):
    """Each model: emulator == hls4ml C simulation == RTL on every vector, and QKeras equal on every vector where
    its arithmetic is exact; where it is not, the witness says so and is not counted."""
    make, hls, exact, kinds = CASES[case]
    bundle = build_and_verify(_folder(make(), tmp_path / "m", hls), tmp_path / "b", "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]
    assert source["exact"] is exact, source
    if exact:
        assert source["mismatches"] == 0 and source["equal"] == VECTORS, source
    else:
        assert "not bit-exact" in source["description"] and "source_vs_firmware" not in bundle.verify["mismatches"]
    assert kinds <= {op["kind"] for op in bundle.manifest["ops"]}


def _reference_sign(x_real: np.ndarray, upper: float | None, hi: float, lo: float) -> np.ndarray:
    """nnet_activation.h's binary_tanh (``upper`` given: x >= 0) or nnet_batchnorm.h's normalize_ternary_tanh."""
    if upper is not None:
        return np.where(x_real >= upper, 1, -1)
    return np.where(x_real > hi, 1, np.where(x_real <= lo, -1, 0))


THRESHOLD_FORMATS = [("fixed<6,2>", "fixed<5,1,RND_CONV,SAT>"), ("ufixed<5,3>", "fixed<4,2>"),
                     ("fixed<7,4,RND,SAT>", "fixed<3,1,RND,WRAP>")]


@pytest.mark.slow
def test_hard_tanh_and_sign_thresholds_on_every_input(tmp_path):
    """The new ops against the C++ formulas on every input of small formats, and their RTL (Icarus) against the
    emulator on the same inputs: hard_tanh is clip(x, -1, 1), hard_sigmoid clip(x / 2 + 1 / 2, 0, 1), cast to res_T
    (slope = shift = 1/2 exact); the thresholds compare raw integers. Every (input, output) format pair is a port of
    one graph model whose four ops each read it, so one RTL simulation covers them all."""
    from tests.firmware_cases import F, T
    from trigger.backends.rtl import write_rtl
    from trigger.ir import FirmwareModel, emulate
    from trigger.ir.model import join
    from trigger.ir.ops.hard_tanh import HardTanh
    from trigger.ir.ops.sign_threshold import SignThreshold
    from trigger.rtlsim import simulate

    two = F("int<2>")
    rows = max(1 << F(src).width for src, _ in THRESHOLD_FORMATS)
    ports, columns, ops, expected = [], [], [], {}
    for p, (src, dst) in enumerate(THRESHOLD_FORMATS):
        fmt, out = F(src), F(dst)
        every = np.arange(fmt.min_raw, fmt.max_raw + 1, dtype=np.int64)
        raw = np.resize(every, rows).reshape(-1, 1).repeat(3, axis=1)  # every raw value, repeated up to `rows`
        real = fmt.to_float(raw)
        hi = int(fmt.quantize([0.33])[0])
        lo = -hi if fmt.signed else fmt.min_raw - 1  # thresholds in the input type, as hls4ml holds them
        port_ops = {"hard_tanh": HardTanh(f"t{p}", T(fmt, 3), T(out, 3)),
                    "hard_sigmoid": HardTanh(f"g{p}", T(fmt, 3), T(out, 3), "sigmoid"),
                    "binary": SignThreshold(f"b{p}", T(fmt, 3), T(two, 3), np.zeros(3, np.int64),
                                            np.zeros(3, np.int64)),
                    "ternary": SignThreshold(f"s{p}", T(fmt, 3), T(two, 3), np.full(3, hi + 1), np.full(3, lo + 1))}
        port_expected = {"hard_tanh": out.quantize(np.clip(real, -1, 1)),
                         "hard_sigmoid": out.quantize(np.clip(real / 2 + 0.5, 0, 1)),
                         "binary": _reference_sign(real, 0.0, 0, 0),
                         "ternary": _reference_sign(raw, None, hi, lo)}
        ports.append((f"x{p}", 3))
        columns.append(raw)
        for kind, op in port_ops.items():
            ops.append(op)
            expected[op.name] = (f"{kind} {src} -> {dst}", port_expected[kind])
    model = FirmwareModel("thresholds", join([T(F(src), 3) for src, _ in THRESHOLD_FORMATS], [n for n, _ in ports]),
                          ops, ports=ports, reads={op.name: [f"x{int(op.name[1:])}"] for op in ops},
                          outputs=[op.name for op in ops])
    model.validate()
    raw = np.hstack(columns)
    got = emulate(model, raw).outputs
    assert got.shape == (rows, 3 * len(ops))
    for k, op in enumerate(ops):
        what, want = expected[op.name]
        assert np.array_equal(got[:, 3 * k:3 * k + 3], want), what
    design = write_rtl(model, tmp_path / "rtl", top="thresholds_top")
    sim = simulate(design.sources, design.top, model.input.to_bits(raw), model.input.widths,
                   model.output.widths, simulator="icarus", build_dir=tmp_path / "sim",
                   max_latency=design.latency_cycles + 4)
    rtl = model.output.from_bits(sim.outputs)
    bad = np.flatnonzero(np.any(rtl != got, axis=1))
    assert bad.size == 0, f"RTL != emulator on {bad.size}/{rows} vectors, first #{bad[0]}: {rtl[bad[0]]} vs {got[bad[0]]}"


def _layer_json(layer: dict, shape=(4,)) -> dict:
    return {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, *shape], "name": "in"}}, layer]}}


@pytest.mark.parametrize("layer, shape, expect", [
    ({"class_name": "QActivation", "config": {"name": "a", "activation": "quantized_po2(4)"}}, (4,),
     "layer 'a' of type QActivation: activation 'quantized_po2\\(4\\)' is not supported"),
    ({"class_name": "QActivation", "config": {"name": "a", "activation": "quantized_relu_po2(4)"}}, (4,),
     "layer 'a' of type QActivation: activation 'quantized_relu_po2\\(4\\)' is not supported"),
    ({"class_name": "QActivation", "config": {"name": "a", "activation": {"class_name": "stochastic_binary",
                                                                          "config": {"alpha": 1}}}}, (4,),
     "layer 'a' of type QActivation: activation 'stochastic_binary' is not supported"),
    ({"class_name": "QActivation", "config": {"name": "a", "activation": "binary(use_01=True)"}}, (4,),
     "layer 'a' of type QActivation: binary option use_01=True"),
    ({"class_name": "QActivation", "config": {"name": "a", "activation": "ternary(alpha='auto')"}}, (4,),
     "layer 'a' of type QActivation: ternary option alpha='auto' is not supported"),
    ({"class_name": "QDense", "config": {"name": "d", "units": 2, "kernel_quantizer": "quantized_bits(4,0,alpha=1)",
                                         "bias_quantizer": "quantized_po2(4)"}}, (4,),
     "layer 'd' of type QDense: bias_quantizer quantized_po2 is not supported"),
    ({"class_name": "Conv1D", "config": {"name": "c", "filters": 2, "kernel_size": [3], "strides": [2],
                                         "padding": "causal"}}, (6, 2),
     "layer 'c' of type Conv1D: causal padding with strides \\[2\\] is not supported"),
    ({"class_name": "DepthwiseConv2D", "config": {"name": "w", "kernel_size": [2, 2], "depth_multiplier": 2}},
     (4, 4, 2), "layer 'w' of type DepthwiseConv2D: depth_multiplier=2 is not supported"),
    ({"class_name": "QBatchNormalization", "config": {"name": "n", "gamma_quantizer": {
        "class_name": "quantized_relu_po2", "config": {"bits": 4, "use_stochastic_rounding": True}}}}, (4,),
     "layer 'n' of type QBatchNormalization: gamma_quantizer with use_stochastic_rounding"),
    ({"class_name": "QDenseBatchnorm", "config": {"name": "f", "units": 2}}, (4,),
     "layer 'f' of type QDenseBatchnorm is not supported"),
])
def test_what_hls4ml_does_not_convert_is_refused_in_one_line(layer, shape, expect):
    from trigger.errors import ModelError
    from trigger.frontends.keras import validate_config

    with pytest.raises(ModelError, match=expect) as err:
        validate_config(_layer_json(layer, shape), "m.json")
    assert "\n" not in str(err.value)


def _nested_json(inner_kind: str, branch: bool = False) -> dict:
    """A functional model whose middle layer is a nested model (as Keras 2 writes it), read as data."""
    inner_layers = [{"class_name": "InputLayer", "name": "inner_in",
                     "config": {"batch_input_shape": [None, 3], "name": "inner_in"}, "inbound_nodes": []},
                    {"class_name": "Dense", "name": "inner_a", "config": {"name": "inner_a", "units": 3},
                     "inbound_nodes": [[["inner_in", 0, 0, {}]]]},
                    {"class_name": "Dense", "name": "inner_b", "config": {"name": "inner_b", "units": 2},
                     "inbound_nodes": [[["inner_a" if not branch else "inner_in", 0, 0, {}]]]}]
    if branch:
        inner_layers.append({"class_name": "Add", "name": "inner_add", "config": {"name": "inner_add"},
                             "inbound_nodes": [[["inner_a", 0, 0, {}], ["inner_b", 0, 0, {}]]]})
    inner = {"name": "block", "layers": inner_layers, "input_layers": [["inner_in", 0, 0]],
             "output_layers": [[inner_layers[-1]["name"], 0, 0]]}
    if inner_kind == "Sequential":
        inner = {"name": "block", "layers": [{k: v for k, v in l.items() if k not in ("inbound_nodes", "name")}
                                             for l in inner_layers]}
    return {"class_name": "Functional", "config": {"name": "outer", "layers": [
        {"class_name": "InputLayer", "name": "x", "config": {"batch_input_shape": [None, 4], "name": "x"},
         "inbound_nodes": []},
        {"class_name": "Dense", "name": "first", "config": {"name": "first", "units": 3},
         "inbound_nodes": [[["x", 0, 0, {}]]]},
        {"class_name": inner_kind, "name": "block", "config": inner, "inbound_nodes": [[["first", 0, 0, {}]]]},
        {"class_name": "Dense", "name": "last", "config": {"name": "last", "units": 1},
         "inbound_nodes": [[["block", 0, 0, {}]]]}],
        "input_layers": [["x", 0, 0]], "output_layers": [["last", 0, 0]]}}


@pytest.mark.parametrize("inner_kind", ["Sequential", "Functional"])
def test_a_nested_model_is_flattened_on_load(inner_kind):
    """Its layers take its place (read as data): the model becomes the chain first -> inner_a -> inner_b -> last."""
    from trigger.frontends.keras import validate_config

    plan = validate_config(_nested_json(inner_kind), "m.json")
    assert [l["config"]["name"] for l in plan.layers if l["class_name"] != "InputLayer"] == \
        ["first", "inner_a", "inner_b", "last"]
    assert plan.nested == {"block": ["inner_a", "inner_b"]}
    assert plan.graph is None  # a chain again


def test_a_nested_model_that_is_not_a_chain_is_refused():
    from trigger.errors import ModelError
    from trigger.frontends.keras import validate_config

    with pytest.raises(ModelError, match="nested model 'block' is not a chain of layers"):
        validate_config(_nested_json("Functional", branch=True), "m.json")


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_nested_sequential_loads_from_a_full_model_file(suffix, tmp_path):
    """A Sequential block inside a functional QKeras model, saved as a full-model .h5 and as a .keras archive:
    flattened on load, its weights found in the nested model's group, and Keras computes the same outputs."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_relu
    from trigger.frontends.keras import load_model

    tf.keras.utils.set_random_seed(27)
    block = tf.keras.Sequential([tf.keras.Input((4,)), QDense(3, kernel_quantizer=_q(), bias_quantizer=_q(),
                                                               name="inner_dense"),
                                 QActivation(quantized_relu(4, 2), name="inner_relu")], name="block")
    x = tf.keras.Input((5,), name="x")
    y = QDense(2, kernel_quantizer=_q(), bias_quantizer=_q(), name="last")(
        block(QDense(4, kernel_quantizer=_q(), bias_quantizer=_q(), name="first")(x)))
    model = tf.keras.Model(x, y, name="outer")
    _randomize(model, 5)
    _randomize(block, 6)
    model.save(tmp_path / f"outer{suffix}")
    loaded = load_model(tmp_path / f"outer{suffix}")
    assert [name for name, _ in loaded.layers] == ["first", "inner_dense", "inner_relu", "last"]
    events = np.random.default_rng(7).normal(size=(64, 5)).astype(np.float32)
    assert np.array_equal(loaded.keras.predict(events, verbose=0), model.predict(events, verbose=0))


def test_a_nested_sequential_in_a_second_branch_gets_its_own_weights(tmp_path):
    """A two-input model whose nested Sequential sits in the branch built second, saved as JSON + weights: the
    weights file lists the nested block after the other branch's layers, the rebuilt (flattened) model lists them
    in place, and Keras orders layers by their distance from the outputs, which the flattened block lengthens in
    its branch. Each layer gets its own weights (paired by name) and Keras computes the same outputs. This model
    used to be refused ("layer 'first' expects weight shapes ..., the file's layer 'wide1' has ...")."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_relu
    from trigger.frontends.keras import keras_predict, load_model

    tf.keras.utils.set_random_seed(29)
    block = tf.keras.Sequential([tf.keras.Input((6,)), QDense(5, kernel_quantizer=_q(), bias_quantizer=_q(),
                                                               name="inner_dense"),
                                 QActivation(quantized_relu(4, 1), name="inner_relu")], name="block")
    a = tf.keras.Input((3,), name="a")
    wide = a
    for name, units in (("wide1", 7), ("wide2", 5), ("wide3", 2)):  # as deep as the other branch before flattening
        wide = QDense(units, kernel_quantizer=_q(), bias_quantizer=_q(), name=name)(wide)
    b = tf.keras.Input((4,), name="b")
    deep = QDense(2, kernel_quantizer=_q(), bias_quantizer=_q(), name="deep")(
        block(QDense(6, kernel_quantizer=_q(), bias_quantizer=_q(), name="first")(b)))
    model = tf.keras.Model([a, b], [wide, deep], name="two")
    _randomize(model, 8)
    _randomize(block, 9)
    _folder(model, tmp_path)
    loaded = load_model(tmp_path / "two.json")
    for layer in loaded.keras.layers:
        source = model.get_layer(layer.name) if layer.name not in ("inner_dense", "inner_relu") else \
            block.get_layer(layer.name)
        assert all(np.array_equal(w, v) for w, v in zip(layer.get_weights(), source.get_weights())), layer.name
    events = np.random.default_rng(3).normal(size=(64, 7))
    expected = np.concatenate([np.asarray(o, dtype=np.float64) for o in model([events[:, :3], events[:, 3:]])], axis=1)
    assert np.array_equal(keras_predict(loaded.keras, [(3,), (4,)], events), expected)


def test_the_witness_says_where_qkeras_arithmetic_is_not_the_firmware():
    """The exactness claim follows the conversion: a folded bias without its quantizer, binary weights scaled by a
    float alpha, quantized_tanh's symmetric clip, float depthwise weights, a leaky quantized_relu are inexact; the
    same layers with exact quantizers are not."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2DBatchnorm, QDense, binary, quantized_relu, quantized_sigmoid, quantized_tanh
    from trigger.frontends.keras import _inexact_layer

    def one(layer, shape):
        x = tf.keras.Input(shape)
        model = tf.keras.Model(x, layer(x))
        _randomize(model, 8)
        return _inexact_layer(model)

    assert one(QConv2DBatchnorm(2, (2, 2), kernel_quantizer=_q(), bias_quantizer=_q(), name="f"), (3, 3, 1)) is None
    assert "without bias_quantizer" in one(QConv2DBatchnorm(2, (2, 2), kernel_quantizer=_q(), name="f"), (3, 3, 1))
    assert "folded bias has no bias_quantizer" in one(QConv2DBatchnorm(2, (2, 2), kernel_quantizer=_q(),
                                                                        use_bias=False, name="f"), (3, 3, 1))
    assert one(QDense(2, kernel_quantizer=binary(alpha=1), bias_quantizer=_q()), (3,)) is None
    assert "binary weights with alpha='auto'" in one(QDense(2, kernel_quantizer=binary(alpha="auto"),
                                                            bias_quantizer=_q()), (3,))
    assert one(QActivation(quantized_tanh(4)), (3,)) is None
    assert "symmetric" in one(QActivation(quantized_tanh(4, symmetric=True)), (3,))
    assert "use_real_sigmoid" in one(QActivation(quantized_sigmoid(4, use_real_sigmoid=True)), (3,))
    assert "negative slope" in one(QActivation(quantized_relu(4, 1, negative_slope=0.5)), (3,))
    assert "float weights" in one(tf.keras.layers.DepthwiseConv2D((2, 2)), (3, 3, 1))


def test_a_nested_model_inside_a_graph_is_rewired_to_its_layers():
    """A skip connection around a nested block: the merge reads the block's last layer once it is flattened."""
    from trigger.frontends.keras import validate_config

    config = _nested_json("Sequential")
    block = config["config"]["layers"][2]
    block["config"]["layers"][2]["config"]["units"] = 3  # the block keeps the width: first + block
    config["config"]["layers"][3] = {"class_name": "Add", "name": "skip", "config": {"name": "skip"},
                                     "inbound_nodes": [[["first", 0, 0, {}], ["block", 0, 0, {}]]]}
    config["config"]["output_layers"] = [["skip", 0, 0]]
    plan = validate_config(config, "m.json")
    assert plan.graph is not None and plan.graph["sources"]["skip"] == ["first", "inner_b"]
    assert plan.graph["sources"]["inner_a"] == ["first"] and plan.graph["outputs"] == ["skip"]


@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_folded_and_separable_layers_load_from_a_keras_archive(tmp_path):
    """QConv2DBatchnorm (its batch norm's variables in a group of their own in a .keras archive), depthwise and
    separable layers: loaded as data, the weights in Keras 2's order, the same outputs as the saved model (the
    .json + .h5 form is what the three-way test builds)."""
    from trigger.frontends.keras import load_model

    model = _conv2d_model()
    model.save(tmp_path / "m.keras")
    events = np.random.default_rng(9).normal(size=(64, 6, 6, 2)).astype(np.float32)
    loaded = load_model(tmp_path / "m.keras")
    assert np.array_equal(loaded.keras.predict(events, verbose=0), model.predict(events, verbose=0))
