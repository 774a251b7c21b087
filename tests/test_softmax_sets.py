"""sigmoid, tanh, softmax (stable, latency, argmax), global pooling and per-item dense against hls4ml.

Three small networks, the branches of one three-input Keras model converted once by hls4ml
with chosen per-layer types (tables of different sizes and types, saturating and wrapping,
rounding and truncating results), are run three ways on the same raw vectors: our emulator,
hls4ml's C simulation of the written project and our RTL under Icarus; every
output integer must agree. The first layer of two branches is the table activation
itself and the vectors enumerate every raw value of its input, so every entry of
the sigmoid and tanh tables (which hls4ml's C++ fills with float math, and which
trigger takes from that same C++) reaches the C simulation output unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from trigger.fixed import FixedFormat
from trigger.ir import emulate
from trigger.vectors import test_vectors

RANDOM_VECTORS = 300


def _every_value(fmt: FixedFormat, n_elements: int, rows: int, seed: int) -> np.ndarray:
    """``rows`` vectors in which every raw value of ``fmt`` (2**W <= rows of them) appears in every element position
    at least once."""
    values = np.resize(np.arange(fmt.min_raw, fmt.max_raw + 1, dtype=np.int64), rows)
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(values) for _ in range(n_elements)], axis=1)


def three_way(model, name: str, overrides: dict, input_precisions: dict, tmp, every_value=()) -> dict:
    """hls4ml conversion with per-layer settings, then emulator vs C simulation vs RTL (Icarus) on the same vectors.
    ``input_precisions``: each input's format; ``every_value``: the inputs whose every raw value appears in every
    element position (in vectors added to the random ones)."""
    import hls4ml

    from trigger.backends.hls.hls4ml_project import csim_project
    from trigger.backends.rtl import write_rtl
    from trigger.frontends.network import extract
    from trigger.quiet import quiet_stdout
    from trigger.rtlsim import simulate

    cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis",
                                               default_precision="fixed<16,6>")
    for input_name, precision in input_precisions.items():
        cfg["LayerName"][input_name] = {"Precision": {"result": precision}}
    for lname, settings in overrides.items():
        entry = cfg["LayerName"].setdefault(lname, {})
        for key, value in settings.items():
            if key == "Precision":
                prec = entry.setdefault("Precision", {})
                if not isinstance(prec, dict):
                    prec = entry["Precision"] = {"result": prec}
                prec.update(value)
            else:
                entry[key] = value
    with quiet_stdout():
        hls_model = hls4ml.converters.convert_from_keras_model(model, hls_config=cfg, output_dir=str(tmp / "hls"),
                                                               backend="Vitis", io_type="io_parallel")
        hls_model.write()
    fw = extract(hls_model, name)
    ports = _port_slices(fw)
    raw = test_vectors(fw, RANDOM_VECTORS, seed=7)
    if every_value:
        types = fw.input_types()
        rows = max(1 << types[port].formats[0].width for port in every_value)
        extra = test_vectors(fw, rows, seed=8)
        for k, port in enumerate(every_value):
            extra[:, ports[port]] = _every_value(types[port].formats[0], types[port].n, rows, 7 + k)
        raw = np.vstack([raw, extra])
    emu = emulate(fw, raw).outputs
    csim, _ = csim_project(tmp / "hls", fw, raw)
    rtl = write_rtl(fw, tmp / "rtl")
    sim = simulate(rtl.sources, rtl.top, fw.input.to_bits(raw), fw.input.widths, fw.output.widths,
                   simulator="icarus", build_dir=tmp / "sim", data_files=rtl.data_files,
                   max_latency=rtl.latency_cycles + 8, cache_dir=None)
    rtl_out = fw.output.from_bits(sim.outputs)

    def mismatches(a, b):
        return int(np.count_nonzero(np.any(a != b, axis=1))) if a.shape == b.shape else len(raw)

    return {"fw": fw, "raw": raw, "emu": emu, "vectors": len(raw), "latency": (sim.latency_cycles, rtl.latency_cycles),
            "ports": ports, "mismatches": {"emulator_vs_csim": mismatches(emu, csim),
                                           "emulator_vs_rtl": mismatches(emu, rtl_out),
                                           "csim_vs_rtl": mismatches(csim, rtl_out)}}


def _port_slices(fw) -> dict:
    """Each input port's columns of the input bus."""
    out, at = {}, 0
    for port, n in fw.input_ports:
        out[port] = slice(at, at + n)
        at += n
    return out


CLEAN = {"emulator_vs_csim": 0, "emulator_vs_rtl": 0, "csim_vs_rtl": 0}


def _seeded(model, seed: int):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.8, w.shape) for w in layer.weights])
    return model


# The three networks, one branch each of one three-input model: their layer names
SET_LAYERS = ("sig", "phi", "th", "mean", "rho", "sm")
IMAGE_LAYERS = ("th_img", "gmax", "out_img", "sm_img")
DECISION_LAYERS = ("gavg", "out_dec", "sm_dec")


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """Three branches, each its own input, converted by hls4ml once and run three ways on the same vectors:
    - set: sigmoid (every entry) -> per-item dense -> tanh (512 entries, rounding/saturating) -> mean -> dense ->
      softmax stable;
    - image: tanh (every entry) -> global max over a 4 x 4 image -> dense -> softmax latency;
    - decision: a saturating, rounding mean over a 4 x 4 image (hls4ml's order matters) -> dense -> softmax argmax
      (one-hot)."""
    import tensorflow as tf

    L = tf.keras.layers

    def chain(x, layers):
        for layer in layers:
            x = layer(x)
        return x

    x, img, img3 = (tf.keras.Input(shape=(4, 3), name="x"), tf.keras.Input(shape=(4, 4, 2), name="img"),
                    tf.keras.Input(shape=(4, 4, 3), name="img3"))
    model = _seeded(tf.keras.Model([x, img, img3], [
        chain(x, [L.Activation("sigmoid", name="sig"), L.Dense(4, name="phi"), L.Activation("tanh", name="th"),
                  L.GlobalAveragePooling1D(name="mean"), L.Dense(5, name="rho"), L.Activation("softmax", name="sm")]),
        chain(img, [L.Activation("tanh", name="th_img"), L.GlobalMaxPooling2D(name="gmax"), L.Dense(4, name="out_img"),
                    L.Activation("softmax", name="sm_img")]),
        chain(img3, [L.GlobalAveragePooling2D(name="gavg"), L.Dense(5, name="out_dec"),
                     L.Activation("softmax", name="sm_dec")])], name="softmax_sets"), 1)
    overrides = {"sig": {"table_t": "fixed<18,8>", "Precision": {"result": "fixed<18,8>"}},
                 "phi": {"Precision": {"weight": "fixed<8,2>", "bias": "fixed<8,2>", "result": "fixed<10,3,RND,SAT>"}},
                 "th": {"table_size": 512, "table_t": "fixed<12,2,RND,SAT>",
                        "Precision": {"result": "fixed<11,3,RND_CONV,SAT>"}},
                 "mean": {"Precision": {"accum": "fixed<16,6>", "result": "fixed<10,3,RND,SAT>"}},
                 "rho": {"Precision": {"weight": "fixed<8,3>", "bias": "fixed<8,3>", "result": "fixed<12,5>"}},
                 "sm": {"table_size": 256, "Precision": {"result": "ufixed<10,0,RND,SAT>"}},
                 "th_img": {"table_t": "fixed<18,8>", "Precision": {"result": "fixed<18,8>"}},
                 "gmax": {"Precision": {"result": "fixed<9,1,RND,SAT>"}},
                 "out_img": {"Precision": {"weight": "fixed<8,2>", "bias": "fixed<8,2>",
                                           "result": "fixed<9,3,RND,SAT>"}},
                 "sm_img": {"implementation": "latency", "table_size": 512, "exp_table_t": "ufixed<16,8,RND,SAT>",
                            "inv_table_t": "ufixed<12,2,RND,SAT>", "Precision": {"result": "fixed<12,2>"}},
                 "gavg": {"Precision": {"accum": "fixed<9,4,RND,SAT>", "result": "fixed<8,3,RND_CONV,SAT>"}},
                 "out_dec": {"Precision": {"weight": "fixed<6,2>", "bias": "fixed<6,2>", "result": "fixed<8,4>"}},
                 "sm_dec": {"implementation": "argmax", "Precision": {"result": "ufixed<4,2>"}}}
    return three_way(model, "softmax_sets", overrides, {"x": "fixed<11,4>", "img": "fixed<10,3>", "img3": "fixed<10,4>"},
                     tmp_path_factory.mktemp("softmax_sets"), every_value=("x", "img"))


def _branch(fw, names) -> list:
    return [op for op in fw.ops if op.kind != "linear" and op.name in names]  # hls4ml's dense activation left out


@pytest.mark.slow
def test_three_networks_three_way(networks):
    """Emulator == C simulation == RTL on every vector, for the three branches at once."""
    assert networks["mismatches"] == CLEAN, networks["mismatches"]
    assert networks["vectors"] >= RANDOM_VECTORS + 2048
    sim_latency, expected = networks["latency"]
    assert sim_latency == expected


@pytest.mark.slow
def test_set_network(networks):
    ops = _branch(networks["fw"], SET_LAYERS)
    assert [op.kind for op in ops] == ["sigmoid", "item_dense", "tanh", "global_pool", "dense", "softmax"], ops
    sig, item, th, pool, _, sm = ops
    assert sig.table_size == 1024 and th.table_size == 512 and sm.exp_table.size == 256
    assert th.table_fmt == FixedFormat.parse("fixed<12,2,RND,SAT>") and sm.implementation == "stable"
    assert (item.n_items, item.n_in, item.n_out) == (4, 3, 4) and (pool.mode, pool.n_items) == ("mean", 4)


@pytest.mark.slow
def test_every_sigmoid_entry_reaches_the_c_simulation(networks):
    """The vectors address every sigmoid table entry, and the output (table_t itself) shows it unchanged."""
    fw, raw = networks["fw"], networks["raw"][:, networks["ports"]["x"]]
    names = [op.name for op in fw.ops]
    sig = fw.ops[names.index("sig")]
    hit = np.unique(sig.index(raw))
    assert hit.tolist() == list(range(sig.table_size))
    trace = emulate(fw, networks["raw"], trace=True).trace[names.index("sig")]
    assert np.array_equal(trace, sig.table[sig.index(raw)])  # output format == table format: no cast


@pytest.mark.slow
def test_image_network(networks):
    ops = _branch(networks["fw"], IMAGE_LAYERS)
    assert [op.kind for op in ops] == ["tanh", "global_pool", "dense", "softmax"], ops
    th, pool, _, sm = ops
    assert np.unique(th.index(networks["raw"][:, networks["ports"]["img"]])).size == th.table_size == 1024  # every
    assert (pool.mode, pool.n_items, pool.n_features) == ("max", 16, 2)
    assert sm.implementation == "latency" and sm.exp_table.size == 512


@pytest.mark.slow
def test_decision_network(networks):
    fw = networks["fw"]
    ops = _branch(fw, DECISION_LAYERS)
    assert [op.kind for op in ops] == ["global_pool", "dense", "softmax"], ops
    pool, _, sm = ops
    assert not pool._sum_is_exact()  # the sequential, saturating sum is what is being checked
    at = sum(next(op for op in fw.ops if op.name == name).output.n for name in fw.output_names[:2])
    assert fw.output_names[2] == "sm_dec"
    out = networks["emu"][:, at:at + sm.output.n]
    one = 1 << sm.output.format.fractional
    assert np.all(out.sum(axis=1) == one) and np.all((out == 0) | (out == one))
    # the mean saturated on some vectors
    overflows = emulate(fw, networks["raw"]).overflows["gavg"]["accum"].overflows
    assert overflows > 0


@pytest.mark.slow
def test_argmax_output_option_is_verified_three_ways(tmp_path):
    """--argmax appends an op emitting the class index; the C simulation's logits get the same argmax."""
    import json

    import tensorflow as tf

    from trigger.bundle import build_bundle
    from trigger.frontends import BuildOptions
    from trigger.ir import FirmwareModel
    from trigger.verify import verify_bundle

    model = _seeded(tf.keras.Sequential([tf.keras.Input(shape=(6,), name="x"), tf.keras.layers.Dense(8, name="d1"),
                                         tf.keras.layers.Activation("relu", name="r1"),
                                         tf.keras.layers.Dense(4, name="out")]), 4)
    (tmp_path / "m.json").write_text(model.to_json())
    model.save_weights(tmp_path / "m_weights.h5")
    out = build_bundle(tmp_path / "m.json", tmp_path / "bundle",
                       BuildOptions(precision="fixed<10,4>", vectors=400, argmax=True), progress=False)
    fw = FirmwareModel.load(out)
    assert [op.kind for op in fw.ops][-2:] == ["dense", "argmax"] and fw.output.n == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hls_output_op"] == "out" and manifest["output_meaning"].startswith("class index")
    result = verify_bundle(out, simulator="icarus", progress=False)
    assert {k: result["mismatches"][k] for k in CLEAN} == CLEAN, result["first_mismatch"]
    assert result["vectors"] >= 400
    raw = np.load(out / "vectors" / "inputs.npy")
    run = emulate(fw, raw, trace=True)
    assert np.array_equal(run.outputs[:, 0], np.argmax(run.trace[-2], axis=1))
    assert set(np.unique(run.outputs)) <= {0, 1, 2, 3} and len(np.unique(run.outputs)) > 1


def test_softmax_settings_are_checked():
    from trigger.errors import ConfigError
    from trigger.frontends.network import SOFTMAX_DEFAULTS, settings, softmax_settings

    five = softmax_settings(5, {})
    assert five["table_size"] == SOFTMAX_DEFAULTS["table_size"] == 2048
    assert five["accum_t"] == "ufixed<20,3,RND,SAT>" and five["inv_inp_t"] == "ufixed<18,3,RND,SAT>"
    assert softmax_settings(5, {"table_size": None})["table_size"] is None  # hls4ml's own default
    for bad, match in (({"table_size": 1000}, "power of two"), ({"implementation": "legacy"}, "implementation"),
                       ({"exp_table": "x"}, "unknown setting"), ({"inp_norm_t": "float"}, "inp_norm_t")):
        with pytest.raises(ConfigError, match=match):
            settings({"hls": {"softmax": bad}})


def test_time_distributed_dense_is_the_dense_it_wraps(tmp_path):
    """TimeDistributed(QDense) (the usual DeepSets spelling) gives the same firmware model as QDense on the set."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    from trigger.frontends import BuildOptions, load_design

    def net(wrap):
        def per_item(units, name):
            layer = QDense(units, kernel_quantizer=quantized_bits(6, 0, alpha=1),
                           bias_quantizer=quantized_bits(6, 0, alpha=1), name=name)
            return tf.keras.layers.TimeDistributed(layer, name=name) if wrap else layer
        return tf.keras.Sequential([
            tf.keras.Input(shape=(8, 3)), per_item(6, "phi1"), QActivation(quantized_relu(6, 2), name="relu1"),
            tf.keras.layers.GlobalAveragePooling1D(name="mean"),
            QDense(3, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
                   name="out")])

    plain, wrapped = net(False), net(True)
    plain.set_weights([np.round(w * 16) / 64 for w in plain.get_weights()])
    wrapped.set_weights(plain.get_weights())
    models = {}
    for label, model in (("plain", plain), ("wrapped", wrapped)):
        (tmp_path / f"{label}.json").write_text(model.to_json())
        model.save_weights(tmp_path / f"{label}_weights.h5")
        design = load_design(tmp_path / f"{label}.json",
                             BuildOptions(precision="fixed<10,4>", vectors=10, backend="Vitis"))
        models[label] = design.model
    assert '"TimeDistributed"' in (tmp_path / "wrapped.json").read_text()
    assert [op.kind for op in models["wrapped"].ops] == [op.kind for op in models["plain"].ops]
    assert "item_dense" in [op.kind for op in models["wrapped"].ops]
    for a, b in zip(models["wrapped"].ops, models["plain"].ops):
        da, db = a.to_dict(), b.to_dict()
        da.pop("name"), db.pop("name")
        assert da == db
