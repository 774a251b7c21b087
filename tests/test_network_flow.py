"""Network bundles end to end through the CLI: build, then verify on 100,000 vectors.

Emulator, hls4ml C simulation and RTL under cocotb + Verilator must agree on every
vector (integer equality), with latency and II measured from the simulation.
"""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from trigger.cli import main

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference_models"
VECTORS = 100_000


def _reference(name):
    path = REFERENCE / f"{name}.json"
    if not path.exists():
        pytest.skip(f"reference models not found at {REFERENCE} (clone the project beside ../shared)")
    return path


def build_and_verify(source, out, *extra):
    assert main(["build", str(source), "-o", str(out), "--vectors", str(VECTORS), *extra]) == 0
    status = main(["verify", str(out)])
    return status, json.loads((out / "reports" / "verify.json").read_text())


def assert_certified(result, vectors=VECTORS):
    assert result["vectors"] == vectors
    assert result["mismatches"] == {"emulator_vs_csim": 0, "emulator_vs_rtl": 0, "csim_vs_rtl": 0,
                                    "emulator_vs_stored": 0}, result["first_mismatch"]
    assert result["latency_cycles"] == result["latency_cycles_expected"] > 0
    assert result["ii"] == 1
    assert result["spurious_outputs"] == 0


@pytest.fixture(scope="session")
def qkeras_reference_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "qkeras_3layer"
    status, result = build_and_verify(_reference("qkeras_3layer"), out)
    return out, status, result


def test_qkeras_reference_is_bit_exact(qkeras_reference_bundle):
    out, status, result = qkeras_reference_bundle
    assert status == 0
    assert_certified(result)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["meaning"] == "logits (final softmax dropped)"
    assert manifest["latency_cycles"] == result["latency_cycles"]


def test_float_keras_reference_with_post_training_quantization(tmp_path):
    out = tmp_path / "keras_3layer"
    status, result = build_and_verify(_reference("KERAS_3layer"), out, "--precision", "fixed<12,4>")
    assert status == 0
    assert_certified(result)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "ap_fixed<12,4" in " ".join(manifest["formats"])
    assert any("post-training quantization" in note for note in manifest["notes"])


def test_bundle_is_byte_identical_when_rebuilt(qkeras_reference_bundle, tmp_path):
    out, _, _ = qkeras_reference_bundle
    again = tmp_path / "again"
    assert main(["build", str(_reference("qkeras_3layer")), "-o", str(again), "--vectors", str(VECTORS)]) == 0
    first = json.loads((out / "manifest.json").read_text())["files"]
    second = json.loads((again / "manifest.json").read_text())["files"]
    assert first == second
    assert (out / "manifest.json").read_bytes() == (again / "manifest.json").read_bytes()


def test_flipped_rtl_bit_fails_verification(qkeras_reference_bundle, tmp_path):
    out, _, _ = qkeras_reference_bundle
    broken = tmp_path / "broken"
    shutil.copytree(out, broken, ignore=shutil.ignore_patterns(".sim_build"))
    layer = broken / "rtl" / "trigger_top_output.v"
    text = layer.read_text()
    # flip the lowest bit of the first constant weight (a signed hex literal)
    m = re.search(r"(\d+)'sh([0-9a-f]+)", text)
    assert m, "no signed hex constant found in the output layer"
    flipped = f"{m.group(1)}'sh{int(m.group(2), 16) ^ 1:x}"
    layer.write_text(text[:m.start()] + flipped + text[m.end():])
    assert main(["verify", str(broken), "--vectors", "2000"]) == 1
    result = json.loads((broken / "reports" / "verify.json").read_text())
    assert result["mismatches"]["emulator_vs_rtl"] > 0
    assert result["mismatches"]["emulator_vs_csim"] == 0
    first = result["first_mismatch"]
    assert first["comparison"] == "emulator_vs_rtl" and "output" in first["emulator_trace"]


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


def test_truncated_weights_fail_cleanly(tmp_path, capsys):
    src = _reference("qkeras_3layer")
    shutil.copy(src, tmp_path / "m.json")
    data = (REFERENCE / "qkeras_3layer_weights.h5").read_bytes()
    (tmp_path / "m_weights.h5").write_bytes(data[: len(data) // 2])
    out = tmp_path / "bundle"
    assert main(["build", str(tmp_path / "m.json"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "m_weights.h5" in err[0], err
    assert not out.exists()


def test_verify_rejects_a_folder_that_is_not_a_bundle(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "not a trigger bundle" in capsys.readouterr().err


def test_vectors_cover_edges_and_beyond_range_inputs(qkeras_reference_bundle):
    out, _, _ = qkeras_reference_bundle
    manifest = json.loads((out / "manifest.json").read_text())
    from trigger.fixed import FixedFormat

    fmt = FixedFormat.parse(manifest["inputs"]["format"])
    x = np.load(out / "vectors" / "inputs.npy")
    assert x.shape == (VECTORS, 16)
    assert (x[0] == 0).all() and (x[1] == fmt.max_raw).all() and (x[2] == fmt.min_raw).all()
    assert fmt.contains(x).all()
