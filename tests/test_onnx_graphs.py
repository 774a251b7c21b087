"""ONNX graphs with several inputs and outputs and hls4ml's merges (Add, Sub, Mul, Max, Min, Concat).

The graph of onnx_graph_cases.py goes through the ONNX frontend like any file: built and verified through
the CLI, emulator == hls4ml C simulation == RTL (Verilator), in two format families (hls4ml's rounding and
saturating results, and truncating/wrapping ones) and with a format per input; the bus carries the inputs
in the file's order under the file's names, and the outputs in the order hls4ml lists them.
"""

from __future__ import annotations


import numpy as np
import pytest

from tests.helpers import OnFirstUse, assert_certified, build_and_verify
from tests.onnx_graph_cases import two_input_merges

VECTORS = 2000
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    return two_input_merges(tmp_path_factory.mktemp("onnx_graph") / "two_input_merges.onnx")


# The graph built with each precision once; the fixed<12,5> build also gives each input its own format
# (hls.input_precision keyed by the file's input names: x2 as unsigned integers, like detector energies).
INPUT_FORMATS = {"fixed<12,5>": {"x1": "fixed<10,3,RND,SAT>", "x2": "uint<6>"}}


@pytest.fixture(scope="module")
def bundles(graph_file, tmp_path_factory):
    """The graph built and verified once per precision, when a test first asks for it."""
    import yaml

    def build(precision):
        tmp = tmp_path_factory.mktemp("onnx_graph_bundle")
        source = graph_file
        if precision in INPUT_FORMATS:
            source = tmp / "model"
            source.mkdir()
            (source / "trigger.yml").write_text(yaml.safe_dump({
                "kind": "network", "name": "two_inputs", "model": {"file": str(graph_file)},
                "hls": {"input_precision": INPUT_FORMATS[precision]}}))
        return build_and_verify(source, tmp / "bundle", "--vectors", str(VECTORS), "--precision", precision)
    return OnFirstUse(build)


@pytest.mark.parametrize("precision", ["fixed<16,6,RND_CONV,SAT>", "fixed<12,5>"])
def test_merges_in_an_onnx_graph_are_verified_three_ways(bundles, precision):
    bundle = bundles[precision]
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    manifest = bundle.manifest
    kinds = {f.split(":")[1].split()[0] + " " + f.split(":")[1].split()[1] for f in manifest["formats"][1:]}
    for merge in ("merge add", "merge subtract", "merge multiply", "merge maximum", "merge minimum"):
        assert merge in kinds, kinds
    assert any(f.split(": ")[1].startswith("concatenate") for f in manifest["formats"][1:])
    ports = manifest["ports"]
    assert [(p["name"], p["count"]) for p in ports["in_data"]] == [("x1", 4), ("x2", 3)]
    assert [p["count"] for p in ports["out_data"]] == [2, 3, 1]  # hls4ml's order: the nodes writing them
    source = bundle.verify["source_model"]
    assert source["framework"] == "onnxruntime" and source["exact"] is False and source["vectors"] == VECTORS


def test_the_source_graph_gets_the_bus_in_the_file_layout(graph_file):
    """The source witness splits the input bus into x1 and x2 and lays the outputs side by side as the
    firmware does: on inputs no format rounds or saturates, onnxruntime and the emulator agree closely."""
    import onnxruntime as ort

    from trigger.frontends import BuildOptions
    from trigger.frontends.onnx import design_from_file
    from trigger.ir import emulate

    design = design_from_file(graph_file, BuildOptions(precision="fixed<24,8,RND_CONV,SAT>"))
    fw = design.model
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (200, 7))
    raw = fw.input.quantize(x)
    firmware = fw.output.to_float(emulate(fw, raw).outputs)
    session = ort.InferenceSession(str(graph_file), providers=["CPUExecutionProvider"])
    xq = fw.input.to_float(raw).astype(np.float32)
    outs = session.run(["out_cat", "out_sum", "out_min"], {"x1": xq[:, :4], "x2": xq[:, 4:]})
    expected = np.concatenate(outs, axis=1)
    assert np.abs(firmware - expected).max() < 1e-3


def test_each_onnx_input_gets_its_own_format(bundles):
    """hls.input_precision keyed by the file's input names (INPUT_FORMATS; 3-way exact:
    test_merges_in_an_onnx_graph_are_verified_three_ways[fixed<12,5>])."""
    bundle = bundles["fixed<12,5>"]
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    inputs = bundle.manifest["inputs"]
    assert {e["format"] for e in inputs[:4]} == {"ap_fixed<10,3,AP_RND,AP_SAT>"}
    assert {e["format"] for e in inputs[4:]} == {"ap_uint<6>"}
    assert bundle.manifest["ports"]["in_data"][1] == {**bundle.manifest["ports"]["in_data"][1], "lsb": 40, "msb": 57}
