"""PyTorch and Brevitas models as their exporters write them (tests/data/onnx, made by
scripts/export_onnx_test_models.py): constant shape subgraphs and batch-norm wrappers are folded before
the nodes are checked, the bundles verify 3-way bit exact, and the source model is the fourth witness
(equal to qonnx's execution for the Brevitas networks)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from tests.helpers import TESTS, assert_certified, build_and_verify

DATA = TESTS / "data" / "onnx"
VECTORS = 2000
TORCH = ("torch_mlp_bn", "torch_mlp_bn_dynamo", "torch_cnn_bn", "torch_bn1d_seq")
BREVITAS = ("brevitas_mlp", "brevitas_mlp_dynamo")
# what each exporter writes around the network, and what trigger converts once that is folded
FOLDED = {"torch_mlp_bn": {"Shape", "Gather", "Unsqueeze", "Concat", "Constant"},
          "torch_mlp_bn_dynamo": {"Shape", "Concat"},
          "brevitas_mlp": {"Shape", "Gather", "Unsqueeze", "Concat"},
          "torch_cnn_bn": {"Shape", "Gather", "Unsqueeze", "Concat", "Constant"},
          "torch_bn1d_seq": set(),
          "brevitas_mlp_dynamo": set()}
FOR_HLS4ML = {"torch_mlp_bn": ["MatMul", "Add", "BatchNormalization", "Relu", "MatMul", "Add"],
              "torch_mlp_bn_dynamo": ["MatMul", "Add", "Relu", "MatMul", "Add"],
              "torch_cnn_bn": ["Conv", "Relu", "Flatten", "MatMul", "Add"],  # channels last
              "torch_bn1d_seq": ["BatchNormalization", "Relu", "Flatten", "MatMul", "Add"],
              "brevitas_mlp": ["Quant", "Quant", "Quant", "MatMul", "Add", "Relu", "Quant", "MatMul", "Add", "Quant"],
              "brevitas_mlp_dynamo": ["Quant", "Quant", "Quant", "MatMul", "Add", "Relu", "Quant", "MatMul", "Add",
                                      "Quant"]}
# (source input shape, firmware input shape, firmware ops) of each network
SHAPES = {"torch_mlp_bn": ([1, 4, 4], [1, 16], ["dense", "relu", "dense"]),  # hls4ml fuses the batch norm
          "torch_mlp_bn_dynamo": ([1, 4, 4], [1, 16], ["dense", "relu", "dense"]),
          "torch_cnn_bn": ([1, 2, 2, 4], [1, 2, 4, 2], ["conv2d", "relu", "dense"]),
          "torch_bn1d_seq": ([1, 2, 8], [1, 8, 2], ["scale", "relu", "dense"]),
          "brevitas_mlp": ([1, 4, 4], [1, 16], None), "brevitas_mlp_dynamo": ([1, 4, 4], [1, 16], None)}
REFERENCE = {"torch_mlp_bn": "torch_mlp_bn", "torch_mlp_bn_dynamo": "torch_mlp_bn", "torch_cnn_bn": "torch_cnn_bn",
             "torch_bn1d_seq": "torch_bn1d_seq"}
FLOAT_PRECISION = "fixed<16,6,RND_CONV,SAT>"
# Two exporters' files of one network (TorchScript and dynamo) give the same firmware model (ops and constants), named
# after the file: the dynamo file is built under the other's name, so that its RTL is the same bytes and its
# verification uses the Verilator model compiled for the other (cached by the RTL's content); its C simulation is that
# of its own hls4ml project.
BUILT_AS = {"torch_mlp_bn_dynamo": "torch_mlp_bn", "brevitas_mlp_dynamo": "brevitas_mlp"}


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def _reference():
    ref = np.load(DATA / "reference_outputs.npz")
    return ref["x"].reshape(len(ref["x"]), -1).astype(np.float64), ref


# ------------------------------------------------------------------ loading (no hls4ml)
@pytest.mark.parametrize("name", [*TORCH, *BREVITAS])
def test_exported_graph_is_folded_before_the_check(name):
    import onnx

    from trigger.frontends.onnx import SUPPORTED_NODES, load_onnx

    raw = {n.op_type for n in onnx.load(str(DATA / f"{name}.onnx"), load_external_data=False).graph.node}
    assert FOLDED[name] <= raw  # the file is as exported: these would be refused if checked before folding
    # these would be refused if checked before folding (a Concat is supported, as a merge of two tensors)
    assert FOLDED[name] - set(SUPPORTED_NODES) == FOLDED[name] - {"Concat"}
    loaded = load_onnx(DATA / f"{name}.onnx")
    assert [n.op_type for n in loaded.wrapper.graph.node] == FOR_HLS4ML[name]
    assert not {n.op_type for n in loaded.source.graph.node} & FOLDED[name]
    assert (loaded.n_inputs, loaded.n_outputs, loaded.quantized) == (16, 5, name in BREVITAS)
    # the symbolic batch is fixed at one sample; the firmware takes a flattened MLP input, images channels last
    source_shape, firmware_shape, _ = SHAPES[name]
    assert loaded.source.get_tensor_shape(loaded.source.graph.input[0].name) == source_shape
    assert loaded.wrapper.get_tensor_shape(loaded.wrapper.graph.input[0].name) == firmware_shape
    assert bool(loaded.channels_last) == (len(firmware_shape) > 2)


def test_external_data_is_read_and_hashed():
    from trigger.frontends.onnx import load_onnx

    loaded = load_onnx(DATA / "torch_mlp_bn_dynamo.onnx")
    assert [p.name for p in loaded.files] == ["torch_mlp_bn_dynamo.onnx", "torch_mlp_bn_dynamo.onnx.data"]
    shapes = [tuple(i.dims) for i in loaded.source.graph.initializer]
    assert (32, 16) in shapes and (5, 32) in shapes
    assert len(loaded.sha256) == 64


@pytest.mark.parametrize("name", TORCH)
def test_torch_source_graph_computes_as_torch(name):
    """onnxruntime on the folded graph (firmware input layout -> (N, 4, 4)) gives PyTorch's own outputs."""
    from trigger.frontends.onnx import load_onnx

    x, ref = _reference()
    loaded = load_onnx(DATA / f"{name}.onnx")
    out = loaded.source_model().predict(_firmware_order(loaded, x))
    np.testing.assert_allclose(out, ref[REFERENCE[name]], rtol=1e-5, atol=1e-5)


def _firmware_order(loaded, x: np.ndarray) -> np.ndarray:
    """Inputs in the source's layout (flattened C order) -> the firmware's (channels last for images)."""
    x = x.reshape([len(x), *loaded.source.get_tensor_shape(loaded.source.graph.input[0].name)[1:]])
    return (np.moveaxis(x, 1, -1) if loaded.channels_last else x).reshape(len(x), -1)


@pytest.mark.parametrize("name", BREVITAS)
def test_brevitas_source_graph_computes_as_brevitas(name):
    """qonnx's executor on the folded graph, on a whole batch (the folded Reshape made batch-free), gives
    Brevitas' own quantized outputs: the same output levels."""
    from trigger.frontends.onnx import execute_qonnx, load_onnx

    x, ref = _reference()
    loaded = load_onnx(DATA / f"{name}.onnx")
    batched = execute_qonnx(loaded.source, loaded._layout(x))
    one_by_one = np.vstack([execute_qonnx(loaded.source, loaded._layout(row[None])) for row in x[:8]])
    assert np.array_equal(batched[:8], one_by_one)
    scale = _output_scale(loaded)
    assert np.array_equal(np.round(batched / scale), np.round(ref["brevitas_mlp"] / scale))


def _output_scale(loaded) -> float:
    last = loaded.source.find_producer(loaded.source.graph.output[0].name)
    assert last.op_type == "Quant"
    return float(loaded.source.get_initializer(last.input[1]))


def _input_scale(loaded) -> float:
    first = loaded.source.find_consumers(loaded.source.graph.input[0].name)[0]
    while first.op_type != "Quant":
        first = loaded.source.find_consumers(first.output[0])[0]
    return float(loaded.source.get_initializer(first.input[1]))


def _bn_in_unsqueeze(path, opset: int):
    """A float MLP as older torch exported ``BatchNorm1d`` of (N, C): Gemm -> Unsqueeze(axes [2]) ->
    BatchNormalization -> Squeeze(axes [2]) -> Relu -> Gemm, symbolic batch (axes as attribute before opset 13,
    as a constant input from 13)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(7)
    consts = {"w1": rng.normal(0, 0.5, (6, 8)), "b1": rng.normal(0, 0.1, 6), "gamma": rng.uniform(0.5, 1.5, 6),
              "beta": rng.normal(0, 0.2, 6), "mean": rng.normal(0, 0.3, 6), "var": rng.uniform(0.5, 2, 6),
              "w2": rng.normal(0, 0.5, (3, 6)), "b2": rng.normal(0, 0.1, 3)}
    inits = [helper.make_tensor(k, TensorProto.FLOAT, np.shape(v), np.ravel(v).tolist()) for k, v in consts.items()]
    if opset >= 13:
        inits.append(helper.make_tensor("axes", TensorProto.INT64, [1], [2]))
        unsq = helper.make_node("Unsqueeze", ["h", "axes"], ["u"], name="unsqueeze")
        sq = helper.make_node("Squeeze", ["n", "axes"], ["s"], name="squeeze")
    else:
        unsq = helper.make_node("Unsqueeze", ["h"], ["u"], name="unsqueeze", axes=[2])
        sq = helper.make_node("Squeeze", ["n"], ["s"], name="squeeze", axes=[2])
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1), unsq,
             helper.make_node("BatchNormalization", ["u", "gamma", "beta", "mean", "var"], ["n"], name="bn",
                              epsilon=1e-5),
             sq, helper.make_node("Relu", ["s"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "bn1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


@pytest.mark.parametrize("opset", [11, 13])
def test_batch_norm_wrapped_in_unsqueeze_squeeze_is_unwrapped(tmp_path, opset):
    import onnxruntime as ort

    from trigger.frontends.onnx import load_onnx

    path = _bn_in_unsqueeze(tmp_path / "bn1d.onnx", opset)
    loaded = load_onnx(path)
    assert [n.op_type for n in loaded.source.graph.node] == ["Gemm", "BatchNormalization", "Relu", "Gemm"]
    x = np.random.default_rng(1).normal(0, 2, (50, 8))
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.astype(np.float32)})[0]
    np.testing.assert_allclose(loaded.source_model().predict(x), expected, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ refused, in one line
def _shape_chain_then(node_type: str, path):
    """x (N, 2, 4) -> Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])) -> MatMul -> ``node_type``."""
    import onnx
    from onnx import TensorProto, helper

    inits = [helper.make_tensor("w", TensorProto.FLOAT, [8, 3], np.linspace(-1, 1, 24).tolist()),
             helper.make_tensor("zero", TensorProto.INT64, [], [0]),
             helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [0])]
    nodes = [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
             helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"], name="unsqueeze"),
             helper.make_node("Concat", ["batch1", "minus_one"], ["target"], name="concat", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"], name="flatten"),
             helper.make_node("MatMul", ["flat", "w"], ["h"], name="mm"),
             helper.make_node(node_type, ["h"], ["y"], name="odd")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_node_still_unsupported_after_folding_is_named(tmp_path, capsys):
    from trigger.cli import main
    from trigger.frontends.onnx import load_onnx

    assert [n.op_type for n in load_onnx(_shape_chain_then("Relu", tmp_path / "ok.onnx")).wrapper.graph.node] == \
        ["MatMul", "Relu"]  # the shape chain folds, the flatten of the input is absorbed
    path = _shape_chain_then("Exp", tmp_path / "exp.onnx")
    assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert f"{path}: node 'odd' of type Exp is not supported" in line, line
    assert not (tmp_path / "out").exists()


def test_custom_domain_is_refused_before_anything_runs(tmp_path, capsys):
    """qonnx imports the module a node's domain names; no such import happens for a model file."""
    import onnx

    from trigger.cli import main

    proto = onnx.load(str(DATA / "brevitas_mlp.onnx"))
    module = "trigger_test_domain_never_imported"
    next(n for n in proto.graph.node if n.op_type == "Relu").domain = module
    path = tmp_path / "domain.onnx"
    onnx.save(proto, str(path))
    assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert f"{path}: node " in line and f"is in domain {module!r}, which is not supported" in line, line
    assert module not in sys.modules


@pytest.mark.parametrize("location, says", [("../outside.data", "outside the model's folder"),
                                            ("/etc/hostname", "outside the model's folder"),
                                            ("absent.data", "which is missing")])
def test_external_data_only_from_the_model_folder(tmp_path, capsys, location, says):
    import onnx

    from trigger.cli import main

    folder = tmp_path / "m"
    folder.mkdir()
    proto = onnx.load(str(DATA / "torch_mlp_bn_dynamo.onnx"), load_external_data=False)
    (tmp_path / "outside.data").write_bytes((DATA / "torch_mlp_bn_dynamo.onnx.data").read_bytes())
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path = folder / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert f"{path}: tensor " in line and says in line, line


# ------------------------------------------------------------------ built and verified
@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Each exported model built and verified once (``trigger build`` / ``trigger verify``), on first use."""
    built = {}

    def get(name, source=None, *args):
        if name not in built:
            out = tmp_path_factory.mktemp("onnx_exports") / name
            extra = ("--precision", FLOAT_PRECISION) if name in TORCH or name.startswith("float_") else ()
            if name in BUILT_AS:  # the file under the other's name, beside its external data
                folder = tmp_path_factory.mktemp(name)
                source = shutil.copy(DATA / f"{name}.onnx", folder / f"{BUILT_AS[name]}.onnx")
                for data in DATA.glob(f"{name}.onnx.data"):
                    shutil.copy(data, folder / data.name)
            built[name] = build_and_verify(source or DATA / f"{name}.onnx", out, "--vectors", str(VECTORS),
                                           *extra, *args)
        return built[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCH)
def test_torch_export_is_verified(bundles, name):
    bundle = bundles(name)
    assert bundle.build_status == 0 and bundle.verify_status == 0, bundle.verify.get("first_mismatch")
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]  # a float model quantized after training: reported, not required
    assert source["framework"] == "onnxruntime" and source["exact"] is False and source["vectors"] == VECTORS
    assert "source_vs_firmware" not in bundle.verify["mismatches"]
    assert 0 <= source["argmax_agreement"] <= 1
    assert [op["kind"] for op in bundle.manifest["ops"]] == SHAPES[name][2]


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCH)
def test_torch_firmware_is_close_to_torch(bundles, name):
    """On PyTorch's own reference inputs (standardised features, inside the input format), the firmware model
    of the export is within a few hundredths of PyTorch's logits and picks the same class: the layout
    (flattening, channels last) and the folded constants are PyTorch's."""
    from trigger.frontends.onnx import load_onnx
    from trigger.ir.model import FirmwareModel, emulate

    bundle = bundles(name)
    assert bundle.build_status == 0
    fw = FirmwareModel.load(bundle.path)
    x, ref = _reference()
    raw = np.round(_firmware_order(load_onnx(DATA / f"{name}.onnx"), x) / fw.input.formats[0].lsb).astype(np.int64)
    logits = fw.output.to_float(emulate(fw, raw).outputs)
    expected = ref[REFERENCE[name]]
    assert np.abs(logits - expected).max() < 0.05
    assert np.array_equal(logits.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("name", BREVITAS)
def test_brevitas_export_equals_qonnx_execution(bundles, name):
    bundle = bundles(name)
    assert bundle.build_status == 0 and bundle.verify_status == 0, bundle.verify.get("first_mismatch")
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]
    assert source["framework"] == "qonnx" and source["exact"] is True, source["description"]
    assert source["equal"] == VECTORS and source["mismatches"] == 0 and source["max_deviation_lsb"] == 0
    assert bundle.verify["mismatches"]["source_vs_firmware"] == 0
    layers = bundle.manifest["exact_requantization"]
    assert [layer["layer"] for layer in layers] == ["MatMul_0", "MatMul_1"]
    for layer in layers:
        assert layer["exact"] and layer["mismatches"] == 0 and layer["reachable_values"] > 0, layer
    assert bundle.manifest["output_meaning"].startswith("integer levels of the output quantizer")


@pytest.mark.slow
def test_brevitas_firmware_equals_brevitas(bundles):
    """The firmware model of the Brevitas export, on Brevitas' own reference inputs (rounded by its input
    quantizer, which they pass unchanged), outputs the levels of Brevitas' own quantized outputs."""
    from trigger.frontends.onnx import load_onnx
    from trigger.ir.model import FirmwareModel, emulate

    bundle = bundles("brevitas_mlp")
    assert bundle.build_status == 0
    fw = FirmwareModel.load(bundle.path)
    x, ref = _reference()
    loaded = load_onnx(DATA / "brevitas_mlp.onnx")
    step = _input_scale(loaded)
    on_grid = np.clip(np.round(x / step), -128, 127) * step  # the 8-bit input quantizer (ties to even)
    raw = np.round(on_grid / fw.input.formats[0].lsb).astype(np.int64)
    assert np.array_equal(fw.input.to_float(raw), on_grid)
    levels = fw.output.to_float(emulate(fw, raw).outputs)
    scale = _output_scale(loaded)
    assert np.array_equal(levels, np.round(ref["brevitas_mlp"] / scale))


@pytest.mark.slow
@pytest.mark.parametrize("opset", [11])
def test_batch_norm_wrapped_export_is_verified(bundles, tmp_path_factory, opset):
    path = _bn_in_unsqueeze(tmp_path_factory.mktemp("bn1d") / "float_bn1d.onnx", opset)
    bundle = bundles("float_bn1d", path)
    assert bundle.build_status == 0 and bundle.verify_status == 0, bundle.verify.get("first_mismatch")
    assert_certified(bundle.verify, VECTORS)
    assert bundle.verify["source_model"]["framework"] == "onnxruntime"


# ------------------------------------------------------------------ the shared reference ONNX models
# 10-bit constants: what is checked (the graph as exported, folded, 3-way bit exact) is the same at any width, and
# the shift-add planning of the 16-64-32-32-5 MLP and the 128-10 dense takes a quarter of 16 bits' (~14 of ~19 CPU-s)
REFERENCE_PRECISION = "fixed<10,4,RND_CONV,SAT>"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["three_layer_pytorch", "conv2d_small_keras"])
def test_reference_onnx_models_still_build(reference_models, tmp_path_factory, name):
    """The reference exports no other test builds (two_layer_keras and the UNSW-NB15 MLP are built in
    test_model_formats.py): unchanged by folding before the check, 3-way bit exact."""
    vectors = 500
    out = tmp_path_factory.mktemp("onnx_reference") / name
    bundle = build_and_verify(reference_models / f"{name}.onnx", out, "--vectors", str(vectors),
                              "--precision", REFERENCE_PRECISION)
    assert bundle.build_status == 0 and bundle.verify_status == 0, bundle.verify.get("first_mismatch")
    assert_certified(bundle.verify, vectors)
    source = bundle.verify["source_model"]
    assert source["framework"] == "onnxruntime" and source["vectors"] == vectors
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert manifest["inputs"] and manifest["ops"]
    assert "ap_fixed<10,4" in " ".join(manifest["formats"])


def test_export_script_and_data_are_documented():
    readme = (DATA / "README.md").read_text()
    versions = json.loads((DATA / "versions.json").read_text())
    assert versions["torch"].startswith("2.13.0") and versions["brevitas"] == "0.13.4"
    for name in (*TORCH, *BREVITAS):
        assert f"`{name}.onnx`" in readme
    setup = (TESTS.parent / "scripts" / "setup_torch.sh").read_text()
    assert 'TORCH_VERSION=2.13.0' in setup and f'BREVITAS_VERSION={versions["brevitas"]}' in setup
