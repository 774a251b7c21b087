"""The LUT flow end to end on a small (10-bit) table: build, determinism, exhaustive verification
through Verilator and the g++ C simulation, and detection of broken firmware (Icarus)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from trigger.lut import build_bundle, verify_bundle

CONFIG = {
    "kind": "lut", "name": "small_pt_lut", "seed": 4,
    "data": {"source": "muon", "n_train": 60000, "n_test": 60000},
    "features": [{"name": "dphi12", "bits": 5, "binning": "log"},
                 {"name": "dphi23", "bits": 2, "binning": "quantile"},
                 {"name": "eta", "bits": 2, "binning": "linear"},
                 {"name": "quality", "bits": 1, "binning": "linear"}],
    "address": {"bits": 10, "order": ["dphi12", "dphi23", "eta", "quality"]},
    "model": {"type": "mlp", "hidden": [16, 16], "epochs": 4, "batch_size": 256},
    "output": {"format": "ufixed<9,8,RND_CONV,SAT>"},
    "report": {"thresholds": [8, 16], "low_pt_max": 4},
}


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("lut")
    (root / "cfg").mkdir()
    (root / "cfg" / "trigger.yml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    first = build_bundle(root / "cfg", root / "a", progress=False)
    return root, first


def test_bundle_layout_and_manifest(built):
    root, bundle = built
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["kind"] == "lut" and manifest["top"] == "small_pt_lut"
    assert manifest["table"]["address_bits"] == 10 and manifest["table"]["word_bits"] == 9
    assert manifest["rtl"]["latency_cycles"] == 2 and manifest["rtl"]["w_in"] == 13
    fields = {f["name"]: f for f in manifest["address"]["fields"]}
    assert [fields[n]["lsb"] for n in ("dphi12", "dphi23", "eta", "quality")] == [0, 5, 7, 9]
    assert len(fields["dphi12"]["edges"]) == 31 and 0 in fields["dphi12"]["edges"]
    assert [i["raw_bits"] for i in manifest["inputs"]] == [13, 11, 5, 2]
    assert manifest["output"]["format"] == "ap_ufixed<9,8,AP_RND_CONV,AP_SAT>"
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["model_hash"])
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((bundle / rel).read_bytes()).hexdigest() == digest, rel
    for rel in ("hls/small_pt_lut.cpp", "hls/build_prj.tcl", "rtl/small_pt_lut.v", "rtl/small_pt_lut_rom.mem",
                "vectors/inputs.npy", "vectors/outputs.mem", "reports/physics.json",
                "reports/plots/pt_turn_on.png", "reports/plots/pt_resolution.png"):
        assert rel in manifest["files"], rel
    assert len((bundle / "rtl/small_pt_lut_rom.mem").read_text().split()) == 1024
    text = (bundle / "manifest.json").read_text()
    assert not re.search(r"20\d\d-\d\d-\d\d", text)  # no timestamps
    assert not list(root.glob(".a.*"))  # no staging folder left behind


def test_physics_report_numbers(built):
    _, bundle = built
    physics = json.loads((bundle / "reports" / "physics.json").read_text())
    for name in ("float", "firmware"):
        assert 0.05 < physics["resolution"][name]["overall_sigma_68"] < 0.6
        t16 = physics["turn_on"][name]["16"]
        assert 10 < t16["pt_at_50"] < 26, t16
        assert t16["plateau_efficiency"] > 0.9
        assert t16["low_pt_pass_fraction"] < 0.02
        assert physics["turn_on"][name]["8"]["low_pt_pass_fraction"] >= t16["low_pt_pass_fraction"]
    for png in (bundle / "reports" / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_inputs_give_identical_bundle(built):
    root, bundle = built
    again = build_bundle(root / "cfg", root / "b", progress=False)
    assert _tree(bundle) == _tree(again)


def test_exhaustive_verification_verilator(built):
    _, bundle = built
    report = verify_bundle(bundle, simulator="verilator", progress=False)
    stored = len(np.load(bundle / "vectors" / "inputs.npy"))
    assert report["exhaustive"] is True and report["address_bits"] == 10
    assert report["table_vectors"] == 1024 and report["vectors"] == 1024 + stored
    assert report["addresses_covered"] == 1024
    assert report["mismatches"] == {"emulator_vs_rtl": 0, "emulator_vs_csim": 0, "csim_vs_rtl": 0,
                                    "representative_address": 0, "stored_vectors_vs_emulator": 0}
    assert report["first_mismatch"] is None and report["pass"] is True
    assert report["latency_cycles"] == 2 and report["ii"] == 1
    assert json.loads((bundle / "reports" / "verify.json").read_text()) == report


def test_tampered_bundle_is_refused(built, tmp_path):
    _, bundle = built
    copy = tmp_path / "tampered"
    shutil.copytree(bundle, copy)
    mem = copy / "rtl" / "small_pt_lut_rom.mem"
    lines = mem.read_text().split("\n")
    lines[5] = f"{(int(lines[5], 16) + 1) % 512:03x}"
    mem.write_text("\n".join(lines))
    with pytest.raises(ValueError, match="files changed since the build: rtl/small_pt_lut_rom.mem"):
        verify_bundle(copy, progress=False)


def test_broken_firmware_is_caught_icarus(built, tmp_path):
    """A wrong ROM word in the C++ and a wrong edge in the Verilog compression are both reported."""
    _, bundle = built
    copy = tmp_path / "broken"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    address = 700
    inc = copy / "hls" / "small_pt_lut_rom.inc"
    words = inc.read_text().split(",\n")
    words[address] = str((int(words[address]) + 1) % 512)
    inc.write_text(",\n".join(words))
    edge = manifest["address"]["fields"][0]["edges"][10] + 4096  # dphi12 key, offset binary
    verilog = copy / "rtl" / "small_pt_lut_compress.v"
    text = verilog.read_text()
    assert f"(dphi12_key >= 13'd{edge})" in text
    verilog.write_text(text.replace(f"(dphi12_key >= 13'd{edge})", f"(dphi12_key >= 13'd{edge + 1})"))
    for rel in ("hls/small_pt_lut_rom.inc", "rtl/small_pt_lut_compress.v"):
        manifest["files"][rel] = hashlib.sha256((copy / rel).read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))

    report = verify_bundle(copy, simulator="icarus", progress=False)
    m = report["mismatches"]
    assert m["emulator_vs_csim"] >= 1 and m["emulator_vs_rtl"] >= 1 and m["csim_vs_rtl"] >= 2
    assert report["pass"] is False and report["first_mismatch"] is not None
    assert report["latency_cycles"] == 2
    # the only C-sim mismatches are the vectors that read the corrupted word
    raw = np.load(copy / "vectors" / "inputs.npy")
    from trigger.lut.verify import layout_from_manifest

    layout = layout_from_manifest(manifest)
    assert m["emulator_vs_csim"] == 1 + int(np.count_nonzero(layout.compress(raw) == address))
