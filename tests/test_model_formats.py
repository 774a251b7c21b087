"""ONNX / QONNX and Keras .keras archives in, and the source model as the fourth witness.

Bundles here are built and verified once per module (a few thousand vectors); the larger
counts of the acceptance (5,000 and 100,000 vectors) come from CLI runs.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import zipfile

import numpy as np
import pytest

from tests.helpers import BUNDLE_VECTORS, REPO, assert_certified, build_and_verify
from trigger.errors import BundleError

VECTORS = 2000


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


# ------------------------------------------------------------------ the pinned stack
def test_onnx_stack_imports_with_tensorflow_and_hls4ml():
    """onnx 1.19 needs a newer ml_dtypes than TensorFlow 2.14 allows; the pinned stack imports together."""
    import hls4ml  # noqa: F401
    import onnx
    import onnxruntime  # noqa: F401
    import qkeras  # noqa: F401
    import qonnx  # noqa: F401
    import tensorflow  # noqa: F401

    assert onnx.__version__ == "1.18.0"


def test_installed_versions_are_the_locked_ones():
    pins = dict(line.strip().split("==") for line in (REPO / "requirements.lock").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["onnx"] == "1.18.0" and pins["qonnx"] == "1.0.0"
    for name in ("onnx", "qonnx", "onnxruntime", "ml-dtypes", "numpy", "protobuf"):
        assert importlib.metadata.version(name) == pins[name], name
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"onnx==1.18.0"' in pyproject and '"qonnx==1.0.0"' in pyproject


# ------------------------------------------------------------------ float ONNX
@pytest.fixture(scope="module")
def two_layer_onnx(reference_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "two_layer_keras"
    return build_and_verify(reference_models / "two_layer_keras.onnx", out, "--vectors", str(VECTORS),
                            "--precision", "fixed<16,6,RND_CONV,SAT>")


@pytest.mark.slow
def test_float_onnx_is_verified_with_its_source(two_layer_onnx):
    assert two_layer_onnx.build_status == 0 and two_layer_onnx.verify_status == 0
    assert_certified(two_layer_onnx.verify, VECTORS)
    source = two_layer_onnx.verify["source_model"]
    assert source["framework"] == "onnxruntime" and source["exact"] is False
    assert source["vectors"] == VECTORS and "source_vs_firmware" not in two_layer_onnx.verify["mismatches"]
    assert np.isfinite(source["max_deviation_lsb"]) and source["max_deviation_lsb"] > 0  # post-training rounding
    manifest = two_layer_onnx.manifest
    assert manifest["output_meaning"] == "logits (final sigmoid dropped)"
    assert manifest["source_model"]["outputs"] == "reports/source_outputs.npy"
    assert any("post-training" in note for note in manifest["notes"])


@pytest.mark.slow
def test_report_shows_the_source_model(two_layer_onnx, tmp_path):
    import shutil

    from trigger.report import build_report

    bundle = tmp_path / "bundle"
    shutil.copytree(two_layer_onnx.path, bundle)
    report = build_report(bundle, synth=False)
    assert report["source_model"] == two_layer_onnx.verify["source_model"]
    assert "source model (onnxruntime) vs firmware on 2000 vectors" in (bundle / "reports" / "report.md").read_text()


@pytest.mark.slow
def test_source_outputs_are_the_file_logits(two_layer_onnx, reference_models):
    """The stored source outputs are the original file's pre-sigmoid values: sigmoid of them is its output."""
    import onnxruntime as ort

    from trigger.ir.model import FirmwareModel

    model = FirmwareModel.load(two_layer_onnx.path)
    raw = np.load(two_layer_onnx.path / "vectors" / "inputs.npy")[:50]
    logits = np.load(two_layer_onnx.path / "reports" / "source_outputs.npy")[:50]
    session = ort.InferenceSession(str(reference_models / "two_layer_keras.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = model.input.to_float(raw).astype(np.float32)
    probs = np.vstack([session.run(None, {name: row[None, :]})[0] for row in x])
    assert np.allclose(1 / (1 + np.exp(-logits)), probs, rtol=1e-5, atol=1e-6)


def test_onnx_named_by_a_model_folder(reference_models, tmp_path):
    """``model.file: x.onnx`` in a trigger.yml goes through the ONNX frontend with the folder's settings."""
    import yaml

    from trigger.frontends import load_design

    (tmp_path / "trigger.yml").write_text(yaml.safe_dump({
        "kind": "network", "name": "from_folder", "model": {"file": str(reference_models / "two_layer_keras.onnx")},
        "hls": {"ptq": {"weight": "fixed<12,4>", "bias": "fixed<12,4>", "result": "fixed<12,4,RND_CONV,SAT>"}},
        "verify": {"vectors": 300}}))
    design = load_design(tmp_path)
    assert design.model.name == "from_folder" and design.vectors == 300
    assert design.model.ops[0].weight_fmt.width == 12
    assert design.manifest["source_model"]["vectors"] == 300


# ------------------------------------------------------------------ malformed and unsupported ONNX
def test_truncated_onnx_is_one_line(reference_models, tmp_path, capsys):
    from trigger.cli import main

    path = tmp_path / "cut.onnx"
    path.write_bytes((reference_models / "three_layer_pytorch.onnx").read_bytes()[:700])
    assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert f"{path}: not a valid ONNX model, truncated or corrupt" in line, line
    assert not (tmp_path / "out").exists()


def _onnx_with(node_type: str, path):
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.linspace(-1, 1, 12).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
         helper.make_node(node_type, ["h"], ["y"], name="odd")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_unsupported_node_is_named(tmp_path, capsys):
    from trigger.cli import main

    path = _onnx_with("Exp", tmp_path / "exp.onnx")
    assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert f"{path}: node 'odd' of type Exp is not supported" in line, line


@pytest.mark.slow  # hls4ml's sigmoid table is computed by its own C++ (g++)
def test_final_sigmoid_is_dropped_unless_kept(tmp_path):
    from trigger.frontends.onnx import convert, load_onnx

    path = _onnx_with("Sigmoid", tmp_path / "sig.onnx")
    dropped = load_onnx(path)
    assert dropped.dropped == "Sigmoid" and dropped.softmax_dropped
    _, fw = convert(dropped, {})
    assert [op.kind for op in fw.ops] == ["dense"]
    kept = load_onnx(path, keep_softmax=True)
    assert kept.dropped == "" and not kept.softmax_dropped
    _, fw = convert(kept, {})
    assert [op.kind for op in fw.ops] == ["dense", "sigmoid"]


# ------------------------------------------------------------------ Keras .keras archives
@pytest.fixture(scope="module")
def qkeras_archive(reference_models, tmp_path_factory):
    """The QKeras jet tagger saved as a .keras archive by tf.keras 2.14's own saving library, under the JSON's name
    (the model's name is the file's): its bundle's RTL is the reference bundle's, byte for byte, and its verification
    runs on the simulators compiled for that (cached by content)."""
    from trigger.frontends.keras import load_model

    import tensorflow as tf

    loaded = load_model(reference_models / "qkeras_3layer.json")  # QDense/QActivation layers, softmax dropped
    with_softmax = tf.keras.Sequential([tf.keras.Input(shape=(16,), name="features"), *loaded.keras.layers,
                                        tf.keras.layers.Activation("softmax", name="softmax")])
    path = tmp_path_factory.mktemp("keras_archive") / "qkeras_3layer.keras"
    with_softmax.save(path)
    assert zipfile.is_zipfile(path)
    return loaded, path


def _keras3_spelling(source, target):
    """The same archive as Keras 3 writes it: DTypePolicy objects, batch_shape, weights under layers/."""
    import h5py

    with zipfile.ZipFile(source) as archive:
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    for layer in config["config"]["layers"]:
        cfg = layer["config"]
        cfg["dtype"] = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": cfg.get("dtype", "float32")},
                        "registered_name": None}
        if "batch_input_shape" in cfg:
            cfg["batch_shape"] = cfg.pop("batch_input_shape")
        if layer["class_name"] == "QDense":
            cfg["quantization_config"] = None
    buf = io.BytesIO()
    with h5py.File(io.BytesIO(weights), "r") as old, h5py.File(buf, "w") as new:
        old.copy(old["_layer_checkpoint_dependencies"], new, name="layers")
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", buf.getvalue())
    return target


def test_keras_archives_load_as_the_same_network(qkeras_archive, tmp_path):
    from trigger.frontends.keras import load_model

    original, path = qkeras_archive
    for archive in (path, _keras3_spelling(path, tmp_path / "keras3.keras")):
        loaded = load_model(archive)
        assert loaded.quantized and loaded.softmax_dropped and (loaded.n_inputs, loaded.n_outputs) == (16, 5)
        assert [type(l).__name__ for l in loaded.keras.layers] == [type(l).__name__ for l in original.keras.layers]
        for mine, theirs in zip(loaded.keras.weights, original.keras.weights):
            assert np.array_equal(mine.numpy(), theirs.numpy()), mine.name


@pytest.mark.slow
def test_keras_archive_is_verified_with_qkeras(qkeras_archive, tmp_path_factory, reference_bundle):
    _, path = qkeras_archive
    bundle = build_and_verify(path, tmp_path_factory.mktemp("archive_bundle") / "jet", "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]
    assert source["framework"] == "qkeras" and source["exact"] is True
    assert source["equal"] == VECTORS and source["mismatches"] == 0 and source["max_deviation_lsb"] == 0
    assert bundle.verify["mismatches"]["source_vs_firmware"] == 0
    # the archive and the JSON + H5 files give the same firmware model, RTL and HLS firmware
    same = json.loads((reference_bundle.path / "firmware_model.json").read_text())
    mine = json.loads((bundle.path / "firmware_model.json").read_text())
    assert mine["ops"] == same["ops"]
    generated = [{rel: digest for rel, digest in b.manifest["files"].items()
                  if rel.startswith(("rtl/", "hls/firmware/"))} for b in (bundle, reference_bundle)]
    assert generated[0] == generated[1] and any(rel.startswith("rtl/") for rel in generated[0])


@pytest.mark.slow
def test_reference_qkeras_bundle_agrees_with_qkeras(reference_bundle):
    source = reference_bundle.verify["source_model"]
    assert source["framework"] == "qkeras" and source["exact"] is True
    assert source["vectors"] == BUNDLE_VECTORS and source["equal"] == BUNDLE_VECTORS and source["mismatches"] == 0


def test_zip_without_config_is_one_line(tmp_path, capsys):
    from trigger.cli import main

    path = tmp_path / "net.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.weights.h5", b"")
    assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert f"{path}: not a Keras .keras archive: the zip has no config.json" in line, line


def test_truncated_keras_archive_is_one_line(qkeras_archive, tmp_path, capsys):
    from trigger.cli import main

    _, path = qkeras_archive
    cut = tmp_path / "cut.keras"
    cut.write_bytes(path.read_bytes()[:-200])
    assert main(["build", str(cut), "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"trigger build: error: {cut}: "), line


# ------------------------------------------------------------------ the comparison itself
def test_source_comparison_counts_and_refuses_other_vectors():
    from trigger.fixed import FixedFormat
    from trigger.ir.model import FirmwareModel
    from trigger.ir.ops.activation import Relu
    from trigger.ir.tensor import TensorType
    from trigger.source_model import compare, inputs_digest

    t = TensorType.uniform(FixedFormat.parse("fixed<8,4>"), 3)
    model = FirmwareModel("m", t, [Relu("r", t, t)], kind="network")
    raw = np.array([[16, -16, 3], [1, 2, 3], [0, 0, 0]])
    firmware = np.maximum(raw, 0)
    source = model.output.to_float(firmware)
    source[1, 2] += 2 * 2.0 ** -4  # two LSBs off in one element
    section = {"framework": "test", "exact": True, "inputs_sha256": inputs_digest(raw)}
    result = compare(section, source, raw, firmware, model)
    assert (result["equal"], result["mismatches"], result["max_deviation_lsb"]) == (2, 1, 2.0)
    assert result["first_mismatch"]["vector"] == 1 and result["argmax_disagreements"] == 0
    with pytest.raises(BundleError, match="other vectors"):
        compare(section, source, raw + 1, firmware, model)


# ------------------------------------------------------------------ QONNX
def _tiny_qonnx(path):
    """A QONNX MLP with power-of-two scales (every constant representable): 8 x INT4 input -> Quant(3-bit)
    weights -> Relu -> Quant(4-bit unsigned) activation -> Quant(3-bit) weights -> 3 outputs."""
    import onnx
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    rng = np.random.default_rng(7)
    consts = {"w1": rng.normal(0, 1.5, (8, 8)), "w2": rng.normal(0, 1.5, (8, 3)), "one": 1.0, "half": 0.5,
              "zero": 0.0, "b3": 3.0, "b4": 4.0}
    inits = [helper.make_tensor(k, TensorProto.FLOAT, np.shape(v), np.ravel(v).tolist()) for k, v in consts.items()]
    q = dict(domain="qonnx.custom_op.general", rounding_mode="ROUND", narrow=0)
    nodes = [helper.make_node("Quant", ["w1", "half", "zero", "b3"], ["qw1"], name="qw1", signed=1, **q),
             helper.make_node("MatMul", ["x", "qw1"], ["h"], name="mm1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Quant", ["r", "one", "zero", "b4"], ["a"], name="act", signed=0, **q),
             helper.make_node("Quant", ["w2", "half", "zero", "b3"], ["qw2"], name="qw2", signed=1, **q),
             helper.make_node("MatMul", ["a", "qw2"], ["y"], name="mm2")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.set_tensor_datatype("x", DataType["INT4"])
    onnx.save(model.model, path)
    return path


@pytest.mark.slow
def test_qonnx_is_verified_and_equals_qonnx_execution(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qonnx")
    bundle = build_and_verify(_tiny_qonnx(folder / "tiny.onnx"), folder / "bundle", "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0, bundle.verify.get("first_mismatch")
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]
    assert source["framework"] == "qonnx" and source["exact"] is True
    assert source["equal"] == VECTORS and bundle.verify["mismatches"]["source_vs_firmware"] == 0
    assert bundle.manifest["inputs"][0]["format"] == "ap_fixed<4,4,AP_TRN,AP_WRAP>"  # the INT4 annotation


@pytest.mark.slow
def test_brevitas_qonnx_equals_qonnx_execution(unsw_bundle):
    """FINN's UNSW-NB15 MLP (Brevitas): bipolar input and output, float batch norms, non-power-of-two
    scales. Every layer is requantized to qonnx's float32 decisions: 3-way bit exact, and every output
    equals qonnx's own execution."""
    from tests.conftest import UNSW_VECTORS

    bundle = unsw_bundle
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, UNSW_VECTORS)
    assert [op["kind"] for op in bundle.manifest["ops"]][-1] == "binary_threshold"
    source = bundle.verify["source_model"]
    assert source["framework"] == "qonnx" and source["exact"] is True, source["description"]
    assert source["vectors"] == UNSW_VECTORS and source["equal"] == UNSW_VECTORS and source["mismatches"] == 0
    layers = bundle.manifest["exact_requantization"]
    assert [layer["layer"] for layer in layers] == ["MatMul_0", "MatMul_1", "MatMul_2", "MatMul_3"]
    for layer in layers:  # checked on every reachable accumulator value of every channel
        assert layer["exact"] and layer["mismatches"] == 0 and layer["reachable_values"] > 0, layer
        assert not layer["channels_not_representable"], layer


def test_requantization_reproduces_a_float_batch_norm(tmp_path):
    """A Brevitas-style layer with a float batch norm and a non-power-of-two activation scale: the fitted
    constants reproduce qonnx's decision on every reachable accumulator value (checked by emulating the
    converted firmware model), and the firmware then equals qonnx's execution of the file."""
    from trigger.frontends.onnx import convert, load_onnx
    from trigger.ir.model import emulate

    loaded = load_onnx(_brevitas_like(tmp_path / "bn.onnx"))
    _, fw = convert(loaded, {}, output_dir=tmp_path / "hls")
    first, last = loaded.requantized
    names = (first["layer"], first["quantizer"], last["layer"], last["quantizer"])
    assert names == ("MatMul_0", "Quant_2", "MatMul_1", "BipolarQuant_0")  # qonnx's clean-up names the nodes
    w_int = np.clip(np.round(_W1 / 0.75), -3, 3)
    k_lo, k_hi = np.minimum(-8 * w_int, 7 * w_int).sum(axis=0), np.maximum(-8 * w_int, 7 * w_int).sum(axis=0)
    assert first["reachable_values"] == int((k_hi - k_lo + 1).sum())  # interval analysis of INT4 inputs
    for layer in (first, last):
        assert layer["exact"] and layer["mismatches"] == 0 and not layer["channels_not_representable"], layer
    assert first["fractional_bits"] > 0 and first["scale_format"].startswith("ap_fixed<")
    assert [op.kind for op in fw.ops] == ["dense", "scale", "relu", "dense", "binary_threshold"]
    source = loaded.source_model()
    assert source.exact and "requantized" in source.description
    raw = np.random.default_rng(5).integers(-8, 8, size=(20000, 8))  # hls4ml alone: 8 differ
    firmware = emulate(fw, raw).outputs
    assert np.array_equal(source.predict(fw.input.to_float(raw)), fw.output.to_float(firmware))


_W1 = np.clip(np.round(np.random.default_rng(11).normal(0, 1.5, (8, 6))), -3, 3) * 0.75
_BN = (np.array([0.1371, 0.0913, 0.2297, 0.0613, 0.171, 0.0333]), np.array([0.4, -0.11, 0.77, 0.29, -0.25, 0.05]))


def _brevitas_like(path):
    """8 x INT4 -> Quant(3-bit, scale 0.75) weights -> BatchNormalization -> Relu -> Quant(6-bit unsigned,
    scale 0.0371) -> Quant(2-bit) weights -> Add -> BipolarQuant."""
    import onnx
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    consts = {"w1": _W1, "s1": 0.75, "zero": 0.0, "b3": 3.0, "gamma": _BN[0], "beta": _BN[1], "mean": np.zeros(6),
              "var": np.ones(6), "sa": 0.0371, "b6": 6.0,
              "w2": np.array([[1.0], [-1.0], [1.0], [0.0], [1.0], [-1.0]]) * 0.5,
              "s2": 0.5, "b2": 2.0, "bias": np.array([-0.4]), "one": 1.0}
    inits = [helper.make_tensor(k, TensorProto.FLOAT, np.shape(v), np.ravel(v).tolist()) for k, v in consts.items()]
    q = dict(domain="qonnx.custom_op.general", rounding_mode="ROUND")
    nodes = [helper.make_node("Quant", ["w1", "s1", "zero", "b3"], ["qw1"], name="qw1", signed=1, narrow=1, **q),
             helper.make_node("MatMul", ["x", "qw1"], ["h"], name="mm1"),
             helper.make_node("BatchNormalization", ["h", "gamma", "beta", "mean", "var"], ["n"], name="bn",
                              epsilon=0.0),
             helper.make_node("Relu", ["n"], ["r"], name="relu"),
             helper.make_node("Quant", ["r", "sa", "zero", "b6"], ["a"], name="act", signed=0, narrow=0, **q),
             helper.make_node("Quant", ["w2", "s2", "zero", "b2"], ["qw2"], name="qw2", signed=1, narrow=1, **q),
             helper.make_node("MatMul", ["a", "qw2"], ["m"], name="mm2"),
             helper.make_node("Add", ["m", "bias"], ["o"], name="add"),
             helper.make_node("BipolarQuant", ["o", "one"], ["y"], name="out", domain="qonnx.custom_op.general")]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.set_tensor_datatype("x", DataType["INT4"])
    onnx.save(model.model, path)
    return path


def test_requantization_fit_is_exact_or_refused():
    """The fitted constants meet every decision exactly; a monotone decision no affine map gives is refused."""
    from trigger.frontends.onnx_requant import _constraints, _fit

    ks = np.arange(-20, 21)
    levels = np.clip(np.round(np.maximum(ks * 0.3127 + 1.71, 0)), 0, 7).astype(int)
    s, b, f = _fit(*_constraints(ks, levels, False, True, 0, 7))
    y2 = 2 * (s * ks + b)  # twice the fitted value, in units of 2^-f: compare with the rounding boundaries
    got = np.clip(np.floor((y2 + 2 ** f) / 2 ** (f + 1)), 0, 7)
    assert np.array_equal(got, levels) and not np.any(y2 % 2 ** (f + 1) == 2 ** f)  # no ties either
    assert _fit(*_constraints(np.arange(4), np.array([0, 1, 1, 3]), False, True, 0, 3)) is None
    assert _constraints(np.arange(3), np.array([0, 2, 1]), False, True, 0, 3) is None


def test_requantization_falls_back_when_hls4ml_refuses(tmp_path, monkeypatch):
    """If hls4ml cannot convert the rewritten graph, the file's own graph is converted and every layer says why
    it was not rewritten; the source comparison is then no longer claimed exact."""
    import trigger.frontends.onnx as onnx_frontend
    from trigger.errors import ModelError

    real = onnx_frontend._convert_graph

    def refuse_rewritten(loaded, opts, out_dir, precisions):
        if precisions:
            raise ModelError("bn: hls4ml cannot convert the ONNX graph (refused for the test)")
        return real(loaded, opts, out_dir, precisions)

    monkeypatch.setattr(onnx_frontend, "_convert_graph", refuse_rewritten)
    loaded = onnx_frontend.load_onnx(_brevitas_like(tmp_path / "bn.onnx"))
    _, fw = onnx_frontend.convert(loaded, {}, output_dir=tmp_path / "hls")
    assert loaded.hls_wrapper is None and len(loaded.requantized) == 2
    for layer in loaded.requantized:
        assert "refused for the test" in layer["not_rewritten"] and layer["exact"] is False
    assert not loaded.representable and not loaded.source_model().exact  # hls4ml's rounded batch norm
    assert fw.ops[0].kind == "dense"
