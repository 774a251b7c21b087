"""Network bundles end to end through the CLI: build, then verify.

Emulator, hls4ml C simulation and RTL under cocotb + Verilator must agree on every vector
(integer equality), with latency and II measured from the simulation. The reference bundle is
built and verified once per session (conftest.py: ``reference_bundle``).
"""

import json
import shutil

import numpy as np
import pytest

from tests.helpers import BUNDLE_VECTORS, assert_certified, build_and_verify
from trigger.cli import main
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel


@pytest.mark.slow
def test_qkeras_reference_is_bit_exact(reference_bundle):
    assert reference_bundle.build_status == 0 and reference_bundle.verify_status == 0
    result = reference_bundle.verify
    assert_certified(result, BUNDLE_VECTORS)
    assert result["simulator"] == "verilator" and result["cover"] is None and not result["exhaustive"]
    manifest = reference_bundle.manifest
    assert manifest["output_meaning"] == "logits (final softmax dropped)"
    assert manifest["latency_cycles"] == result["latency_cycles"]
    assert manifest["kind"] == "network" and manifest["hls"]["backend"] == "hls4ml"
    assert [op["kind"] for op in manifest["ops"]] == ["dense", "relu"] * 3 + ["dense"]
    assert len(manifest["inputs"]) == 16 and len(manifest["outputs"]) == 5
    assert manifest["formats"][0] == "input: 16 x ap_fixed<16,6,AP_TRN,AP_WRAP>"
    assert manifest["widened_accumulators"] == {}
    model = FirmwareModel.load(reference_bundle.path)
    assert model.digest() == manifest["model_sha256"]
    stored = json.loads((reference_bundle.path / "firmware_model.json").read_text())
    assert stored["format_version"] == 1 and stored["kind"] == "network"
    for rel in manifest["rtl"]["sources"]:
        assert (reference_bundle.path / rel).exists() and rel in manifest["files"]
    assert (reference_bundle.path / "hls" / "build_prj.tcl").exists()


@pytest.mark.slow
def test_float_keras_reference_with_post_training_quantization(reference_models, tmp_path):
    # 8-bit constants: the CLI's --precision reaches every layer as with any width, and the shift-add
    # planning and the Verilator build are cheaper than at 10 or 12 bits (the C simulation of the default
    # 16-bit quantization is checked in test_hls.py)
    bundle = build_and_verify(reference_models / "KERAS_3layer.json", tmp_path / "keras_3layer",
                              "--precision", "fixed<8,3>", "--vectors", str(BUNDLE_VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, BUNDLE_VECTORS)
    manifest = bundle.manifest
    assert "ap_fixed<8,3" in " ".join(manifest["formats"])
    assert any("post-training quantization" in note for note in manifest["notes"])


@pytest.mark.slow
def test_bundle_is_byte_identical_when_rebuilt(reference_bundle, reference_models, tmp_path):
    again = tmp_path / "again"
    assert main(["build", str(reference_models / "qkeras_3layer.json"), "-o", str(again),
                 "--vectors", str(BUNDLE_VECTORS)]) == 0
    first = reference_bundle.manifest["files"]
    second = json.loads((again / "manifest.json").read_text())["files"]
    assert first == second
    assert (reference_bundle.path / "manifest.json").read_bytes() == (again / "manifest.json").read_bytes()


@pytest.mark.slow
def test_vectors_cover_edges_and_beyond_range_inputs(reference_bundle):
    manifest = reference_bundle.manifest
    fmt = FixedFormat.parse(manifest["inputs"][0]["format"])
    assert {i["format"] for i in manifest["inputs"]} == {fmt.cpp}
    x = np.load(reference_bundle.path / "vectors" / "inputs.npy")
    assert x.shape == (BUNDLE_VECTORS, 16) and manifest["vectors"]["count"] == BUNDLE_VECTORS
    assert (x[0] == 0).all() and (x[1] == fmt.max_raw).all() and (x[2] == fmt.min_raw).all()
    assert fmt.contains(x).all()
    # normal draws near zero and uniform or beyond-range draws out to the limits, of both signs
    assert (np.abs(x[6:]) < 1 << fmt.fractional).mean() > 0.2
    assert (x[6:] > fmt.max_raw // 2).any() and (x[6:] < fmt.min_raw // 2).any()
    y = np.load(reference_bundle.path / "vectors" / "outputs.npy")
    assert y.shape == (BUNDLE_VECTORS, 5)


@pytest.mark.parametrize("make_bad, message", [
    (lambda d: (d / "model.json").write_text('{"class_name": "Sequential", "config": {"layers": ['
                                             '{"class_name": "Lambda", "config": {"name": "evil"}}]}}'),
     "Lambda"),
    (lambda d: (d / "model.json").write_text("{not json"), "model.json"),
])
def test_bad_models_fail_with_one_line_and_leave_nothing(make_bad, message, tmp_path, capsys):
    make_bad(tmp_path)
    (tmp_path / "model_weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    out = tmp_path / "bundle"
    assert main(["build", str(tmp_path / "model.json"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]


def test_truncated_weights_fail_cleanly(reference_models, tmp_path, capsys):
    shutil.copy(reference_models / "qkeras_3layer.json", tmp_path / "m.json")
    data = (reference_models / "qkeras_3layer_weights.h5").read_bytes()
    (tmp_path / "m_weights.h5").write_bytes(data[: len(data) // 2])
    out = tmp_path / "bundle"
    assert main(["build", str(tmp_path / "m.json"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "m_weights.h5" in err[0], err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]


def test_verify_rejects_a_folder_that_is_not_a_bundle(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "not a trigger bundle" in capsys.readouterr().err
