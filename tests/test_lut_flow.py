"""The LUT flow end to end on a small (10-bit) table through the shared bundle writer and verifier:
build, determinism, exhaustive verification (every address through Verilator and the g++ C
simulation), and detection of broken firmware (Icarus)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from trigger.bundle import build_bundle
from trigger.errors import BundleError, ToolError
from trigger.ir import FirmwareModel, emulate

pytestmark = pytest.mark.slow

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
TOP = "small_pt_lut"


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


def _copy(bundle: Path, dest: Path) -> Path:
    """Verification writes into a bundle (reports/verify.json): work on a copy."""
    shutil.copytree(bundle, dest)
    return dest


def _rehash(bundle: Path, *rels: str) -> None:
    """Record edited files in the manifest, as if the build had written them (to test the verifier)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    for rel in rels:
        manifest["files"][rel] = hashlib.sha256((bundle / rel).read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_bundle_layout_and_manifest(built):
    root, bundle = built
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["kind"] == "table" and manifest["top"] == TOP and manifest["latency_cycles"] == 2
    assert manifest["table"]["address_bits"] == 10 and manifest["table"]["word_bits"] == 9
    assert manifest["table"]["depth"] == 1024 and manifest["table"]["output"]["unit"] == "GeV"
    assert manifest["hls"]["backend"] == "table_cpp" and manifest["hls"]["top"] == TOP
    # each input element at its own width, element 0 in the least significant bits
    assert [(i["name"], i["width"], i["lsb"], i["signed"]) for i in manifest["inputs"]] == \
        [("dphi12", 13, 0, True), ("dphi23", 11, 13, True), ("eta", 5, 24, False), ("quality", 2, 29, False)]
    assert manifest["outputs"][0]["format"] == "ap_ufixed<9,8,AP_RND_CONV,AP_SAT>"
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["source_sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["table"]["table_sha256"])

    stored = json.loads((bundle / "firmware_model.json").read_text())
    assert stored["format_version"] == 1 and stored["kind"] == "table"
    assert [op["op"] for op in stored["ops"]] == ["bucketize", "concat", "lookup"]
    model = FirmwareModel.load(bundle)
    assert model.digest() == manifest["model_sha256"]
    fields = {f["name"]: f for f in model.meta["address"]["fields"]}
    assert [fields[n]["lsb"] for n in ("dphi12", "dphi23", "eta", "quality")] == [0, 5, 7, 9]
    assert len(fields["dphi12"]["edges"]) == 31 and 0 in fields["dphi12"]["edges"]
    assert model.ops[1].lsb == [0, 5, 7, 9]
    assert list(model.ops[0].element_edges()[0]) == fields["dphi12"]["edges"]

    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((bundle / rel).read_bytes()).hexdigest() == digest, rel
    for rel in (f"hls/{TOP}.cpp", f"hls/{TOP}_rom.inc", "hls/build_prj.tcl", f"rtl/{TOP}.v",
                f"rtl/{TOP}_ops_rom.mem", "vectors/inputs.npy", "vectors/outputs.mem", "reports/physics.json",
                "reports/lut.md", "reports/plots/pt_turn_on.png", "reports/plots/pt_resolution.png"):
        assert rel in manifest["files"], rel
    words = (bundle / f"rtl/{TOP}_ops_rom.mem").read_text().split()
    assert [int(w, 16) for w in words] == model.ops[2].words.tolist()
    inputs = np.load(bundle / "vectors" / "inputs.npy")
    assert np.array_equal(np.load(bundle / "vectors" / "outputs.npy"), emulate(model, inputs).outputs)
    assert len(inputs) == manifest["vectors"]["count"] >= 2048 + 1000
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
    assert "| [4:0] | dphi12 | 32 | log |" in (bundle / "reports" / "lut.md").read_text()


def test_same_inputs_give_identical_bundle(built):
    root, bundle = built
    again = build_bundle(root / "cfg", root / "b", progress=False)
    first, second = _tree(bundle), _tree(again)
    assert sorted(first) == sorted(second)
    assert [rel for rel in first if first[rel] != second[rel]] == []


def test_exhaustive_verification_verilator(built, tmp_path):
    from trigger.verify import verify_bundle

    bundle = _copy(built[1], tmp_path / "bundle")
    report = verify_bundle(bundle, simulator="verilator", progress=False)
    stored = len(np.load(bundle / "vectors" / "inputs.npy"))
    assert report["exhaustive"] is True and report["cover"]["values"] == 1024
    assert report["vectors"] == stored + 1024
    assert report["mismatches"] == {"emulator_vs_csim": 0, "emulator_vs_rtl": 0, "csim_vs_rtl": 0,
                                    "emulator_vs_stored": 0, "latency_vs_manifest": 0, "library_vs_emulator": 0}
    assert report["first_mismatch"] is None and report["pass"] is True
    assert report["latency_cycles"] == 2 and report["ii"] == 1
    assert json.loads((bundle / "reports" / "verify.json").read_text()) == report


def test_tampered_bundle_is_refused(built, tmp_path):
    from trigger.verify import verify_bundle

    bundle = _copy(built[1], tmp_path / "tampered")
    mem = bundle / "rtl" / f"{TOP}_ops_rom.mem"
    lines = mem.read_text().split("\n")
    lines[5] = f"{(int(lines[5], 16) + 1) % 512:03x}"
    mem.write_text("\n".join(lines))
    with pytest.raises(BundleError, match=f"files changed since the build: rtl/{TOP}_ops_rom.mem"):
        verify_bundle(bundle, progress=False)


def test_broken_firmware_is_caught_icarus(built, tmp_path, monkeypatch):
    """A wrong ROM word in the RTL's .mem and another in the C++ initialiser are both reported,
    on exactly the vectors that read them. (The emulator library, compiled from the same initialiser, is left
    out: a second build of it; test_exhaustive_verification_verilator checks this table's.)"""
    from trigger.verify import verify_bundle
    from trigger.vectors import cover

    monkeypatch.setenv("TRIGGER_MAX_LIBRARY_WEIGHTS", "-1")

    bundle = _copy(built[1], tmp_path / "broken")
    rtl_address, csim_address = 700, 300
    mem = bundle / "rtl" / f"{TOP}_ops_rom.mem"
    words = mem.read_text().split("\n")
    words[rtl_address] = f"{(int(words[rtl_address], 16) + 1) % 512:03x}"
    mem.write_text("\n".join(words))
    inc = bundle / "hls" / f"{TOP}_rom.inc"
    values = inc.read_text().split(",\n")
    values[csim_address] = str((int(values[csim_address]) + 1) % 512)
    inc.write_text(",\n".join(values))
    _rehash(bundle, f"rtl/{TOP}_ops_rom.mem", f"hls/{TOP}_rom.inc")

    report = verify_bundle(bundle, simulator="icarus", progress=False)
    model = FirmwareModel.load(bundle)
    inputs = np.vstack([np.load(bundle / "vectors" / "inputs.npy"), cover(model).inputs])
    address = emulate(model, inputs, trace=True).trace[1][:, 0]
    reads_rtl, reads_csim = int(np.sum(address == rtl_address)), int(np.sum(address == csim_address))
    assert reads_rtl >= 1 and reads_csim >= 1
    m = report["mismatches"]
    assert m["emulator_vs_rtl"] == reads_rtl and m["emulator_vs_csim"] == reads_csim
    assert m["csim_vs_rtl"] == reads_rtl + reads_csim and m["emulator_vs_stored"] == 0
    assert report["pass"] is False and report["latency_cycles"] == 2 and report["library"]["skipped"]
    first = report["first_mismatch"]
    assert first["comparison"] == "emulator_vs_csim" and first["emulator_trace"]["address"] == [csim_address]


def test_csim_reads_a_large_rom_from_its_initialiser_at_run_time(built, tmp_path, monkeypatch):
    """Large tables' C simulation reads the ROM words from the bundle's .inc at run time instead of
    compiling them in (lut_rom.h.j2): both ways compute the same words (compiled in, as this 1024-word
    table's are by default: test_exhaustive_verification_verilator, emulator_vs_csim 0 on every address),
    a wrong word in the .inc is caught on exactly the vectors that read it, and a truncated .inc is refused, all by
    the one executable compiled first (without a cache it is kept in the work folder, keyed by the manifest's hashes,
    which these edits leave alone; the cache's key would hash the edited .inc and compile it again)."""
    from trigger.backends.hls import table_cpp
    from trigger.vectors import cover

    bundle = _copy(built[1], tmp_path / "rom")
    manifest = json.loads((bundle / "manifest.json").read_text())
    model = FirmwareModel.load(bundle)
    inputs = cover(model).inputs
    expected = emulate(model, inputs).outputs
    assert model.ops[2].words.size < table_cpp.ROM_FROM_FILE_DEPTH  # compiled in unless told otherwise
    monkeypatch.setenv("TRIGGER_CACHE", "off")  # the executable is compiled into the work folder
    monkeypatch.setattr(table_cpp, "ROM_FROM_FILE_DEPTH", 0)
    from_file, _ = table_cpp.csim(bundle, manifest, model, inputs, tmp_path / "from_file")
    assert np.array_equal(from_file, expected)
    reads_the_file = tmp_path / "from_file" / f"{TOP}_csim"
    built_at = reads_the_file.stat().st_mtime_ns
    assert reads_the_file.stat().st_size < 1 << 20  # the words are not in the executable
    inc = bundle / "hls" / f"{TOP}_rom.inc"
    assert str(inc.resolve()).encode() in reads_the_file.read_bytes()  # it names the .inc it reads

    values = inc.read_text().split(",\n")
    values[300] = str((int(values[300]) + 1) % 512)
    inc.write_text(",\n".join(values))
    broken, _ = table_cpp.csim(bundle, manifest, model, inputs, tmp_path / "from_file")
    address = emulate(model, inputs, trace=True).trace[1][:, 0]
    assert np.flatnonzero(broken[:, 0] != expected[:, 0]).tolist() == np.flatnonzero(address == 300).tolist()
    assert reads_the_file.stat().st_mtime_ns == built_at  # not compiled again: it read the new word at run time

    inc.write_text(",\n".join(values[:-10]))
    with pytest.raises(ToolError, match="cannot read 1024 words from"):
        table_cpp.csim(bundle, manifest, model, inputs, tmp_path / "from_file")
