"""Network bundles end to end through the CLI: build, then verify.

Emulator, hls4ml C simulation and RTL under cocotb + Verilator must agree on every vector
(integer equality), with latency and II measured from the simulation. The reference bundle is
built and verified once per session (conftest.py: ``reference_bundle``).
"""

import hashlib
import json
import re
import shutil

import numpy as np
import pytest

from helpers import BUNDLE_VECTORS, assert_certified, build_and_verify
from trigger.cli import main
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel



def rehash(bundle, *rels):
    """Record edited files in the manifest, as if the build had written them (to test the verifier)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    for rel in rels:
        manifest["files"][rel] = hashlib.sha256((bundle / rel).read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))


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
    bundle = build_and_verify(reference_models / "KERAS_3layer.json", tmp_path / "keras_3layer",
                              "--precision", "fixed<12,4>", "--vectors", str(BUNDLE_VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, BUNDLE_VECTORS)
    manifest = bundle.manifest
    assert "ap_fixed<12,4" in " ".join(manifest["formats"])
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
def test_flipped_rtl_bit_fails_verification(constructed_bundles, tmp_path, capsys):
    """A verifier that cannot fail proves nothing: one flipped bit in a generated adder must show.
    (A small network, simulated with Icarus on a few hundred vectors: no simulator to compile.)"""
    bundle = constructed_bundles["four_bit"]
    broken = tmp_path / "broken"
    shutil.copytree(bundle.path, broken, ignore=shutil.ignore_patterns(".sim_build"))
    rel = f"rtl/{bundle.manifest['top']}_d1.v"  # the first layer: its inputs are the test vectors themselves
    layer = broken / rel
    text = layer.read_text()
    # invert a middle bit of the last adder of the first layer (constant products are shift-and-add)
    adders = list(re.finditer(r"^    wire signed \[(\d+):0\] (\w+) = (.* [+-] .*);$", text, flags=re.M))
    assert adders, "no adder found in the first layer"
    m = adders[-1]
    width = int(m.group(1)) + 1
    flipped = f"    wire signed [{width - 1}:0] {m.group(2)} = ({m.group(3)}) ^ {width}'sd{1 << (width // 2)};"
    layer.write_text(text[:m.start()] + flipped + text[m.end():])
    # the verifier refuses a bundle whose files changed since the build...
    capsys.readouterr()
    assert main(["verify", str(broken), "--vectors", "300", "--sim", "icarus"]) == 2
    assert f"files changed since the build: {rel}" in capsys.readouterr().err
    # ...and, told the file is what the build wrote, finds the mismatches
    rehash(broken, rel)
    assert main(["verify", str(broken), "--vectors", "300", "--sim", "icarus"]) == 1
    result = json.loads((broken / "reports" / "verify.json").read_text())
    assert result["mismatches"]["emulator_vs_rtl"] > 0 and result["mismatches"]["csim_vs_rtl"] > 0
    assert result["mismatches"]["emulator_vs_csim"] == 0 and not result["pass"]
    first = result["first_mismatch"]
    assert first["comparison"] == "emulator_vs_rtl" and set(first["emulator_trace"]) == {"d1", "r1", "d2", "r2", "out"}
    assert first["emulator"] != first["rtl"] and first["emulator"] == first["csim"]
    err = capsys.readouterr().err
    assert "first mismatch (emulator_vs_rtl)" in err and "after d1:" in err


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
