"""Issue 28's probes of the verifier, each reproduced: a verdict rests only on what the manifest hashes.

- tampered RTL (manifest re-hashed) next to the good design's compiled simulator, planted where the old
  verifier looked (``<bundle>/.sim_build/compiled``) and under the tampered key in a shared cache: exit 1;
- a truncated cache entry is replaced, with one line saying so, and the good bundle passes;
- a forged or foreign ``reports/verify.json`` is refused by ``trigger report`` (exit 1);
- a file the manifest does not hash among the RTL is refused (exit 1);
- three concurrent verifies of one bundle each pass, each in its own work folder.

Every verification here runs Icarus: where compiled simulators are looked for and how cache entries are checked
is the same for every simulator (trigger.rtlsim, trigger.toolchain), and a Verilator build of a table compiles
its run-time library as well, a minute of CPU, in a cache of its own or none. They leave out the emulator library
(TRIGGER_MAX_LIBRARY_WEIGHTS=-1, and verify.json says so): its g++ builds were two thirds of this file's CPU, its
cache entries are checked by the same trigger.toolchain.usable_entry, and test_emulator_library and test_lut_flow
check a table's library.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trigger.cli import main

pytestmark = pytest.mark.slow  # builds a table, compiles and runs its C simulation and Icarus

SIM = "icarus"

TABLE = {
    "kind": "lut", "name": "trust_lut", "seed": 5,
    "data": {"source": "muon", "n_train": 4000, "n_test": 2000},
    "features": [{"name": "dphi12", "bits": 4, "binning": "quantile"},
                 {"name": "dphi23", "bits": 2, "binning": "quantile"},
                 {"name": "eta", "bits": 2, "binning": "linear"}],
    "model": {"type": "mlp", "hidden": [8], "epochs": 1},
    "output": {"format": "ufixed<9,8,RND_CONV,SAT>"},
}
OUTPUT_LINE = "assign out_data[8:0] = rom[8:0];"


@pytest.fixture(scope="module", autouse=True)
def _no_library():
    """Every verification of this file (in process and the CLI subprocesses) without the emulator library."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRIGGER_MAX_LIBRARY_WEIGHTS", "-1")
        yield


@pytest.fixture(scope="module")
def built(_no_library, tmp_path_factory) -> tuple[Path, Path]:
    """The good bundle, verified once with a cache of its own (then copied by each test that needs one)."""
    root = tmp_path_factory.mktemp("trust")
    (root / "cfg").mkdir()
    (root / "cfg" / "trigger.yml").write_text(yaml.safe_dump(TABLE, sort_keys=False))
    assert main(["build", str(root / "cfg"), "-o", str(root / "good"), "--vectors", "300"]) == 0
    old = os.environ.get("TRIGGER_CACHE")
    os.environ["TRIGGER_CACHE"] = str(root / "cache")
    try:
        assert main(["verify", str(root / "good"), "--sim", SIM]) == 0
    finally:
        os.environ.pop("TRIGGER_CACHE") if old is None else os.environ.update(TRIGGER_CACHE=old)
    return root / "good", root / "cache"


@pytest.fixture
def good(built) -> Path:
    return built[0]


@pytest.fixture
def cache(built, tmp_path, monkeypatch) -> Path:
    """A copy of the cache that holds the good bundle's compiled simulator, as $TRIGGER_CACHE."""
    copy_of = shutil.copytree(built[1], tmp_path / "cache")
    monkeypatch.setenv("TRIGGER_CACHE", str(copy_of))
    return copy_of


def good_entry(cache: Path, simulator: str = SIM) -> Path:
    (entry,) = [d for d in (cache / "sim").iterdir() if d.name.startswith(f"{simulator}-") and "runtime" not in d.name]
    return entry


def copy(bundle: Path, dest: Path) -> Path:
    shutil.copytree(bundle, dest)
    return dest


def rehash(bundle: Path) -> None:
    """Record every file in the manifest again, as an adversary who edits a bundle would."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {rel: hashlib.sha256((bundle / rel).read_bytes()).hexdigest() for rel in manifest["files"]}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def tamper_rtl(bundle: Path) -> None:
    """Every output's least significant bit flipped in the RTL; the manifest re-hashed."""
    ops = bundle / "rtl" / "trust_lut_ops.v"
    text = ops.read_text()
    assert OUTPUT_LINE in text
    ops.write_text(text.replace(OUTPUT_LINE, "assign out_data[8:0] = rom[8:0] ^ 9'd1;"))
    rehash(bundle)


def harness_key(bundle: Path, simulator: str = SIM) -> str:
    """The cache key the verifier computes for a bundle's RTL as it is now (trigger.rtlsim.build_key)."""
    from trigger.ir.model import FirmwareModel
    from trigger.rtlsim import HARNESS, HARNESS_TEMPLATE, SIMULATORS, build_key
    from trigger.templates import render

    manifest = json.loads((bundle / "manifest.json").read_text())
    model = FirmwareModel.load(bundle)
    harness = render(HARNESS_TEMPLATE, harness=HARNESS, top=manifest["rtl"]["top"], in_bits=sum(model.input.widths),
                     out_bits=sum(model.output.widths), ii=1, stream=None)
    return build_key(simulator, harness, [(bundle / s).resolve() for s in manifest["rtl"]["sources"]],
                     SIMULATORS[simulator].build_args)


def test_tampered_rtl_with_the_good_simulator_inside_the_bundle_fails_without_a_cache(built, tmp_path, monkeypatch,
                                                                                      capsys):
    good, cache = built
    bad = copy(good, tmp_path / "bad")
    entry = good_entry(cache)
    assert entry.name == f"{SIM}-{harness_key(good)[:24]}"
    compiled = bad / ".sim_build" / "compiled"  # where the old verifier looked for (and trusted) a simulator
    shutil.copytree(entry, compiled / entry.name)
    tamper_rtl(bad)
    shutil.copytree(entry, compiled / f"{SIM}-{harness_key(bad)[:24]}")  # and under the tampered key
    monkeypatch.setenv("TRIGGER_CACHE", "off")
    assert main(["verify", str(bad), "--sim", SIM]) == 1
    out = capsys.readouterr().out
    assert "bit exact: NO" in out and "emulator_vs_rtl: 2316 mismatches" in out
    result = json.loads((bad / "reports" / "verify.json").read_text())
    assert result["mismatches"]["emulator_vs_rtl"] == result["vectors"] and result["pass"] is False
    assert "TRIGGER_MAX_LIBRARY_WEIGHTS=-1" in result["library"]["skipped"]  # left out, as the file says
    assert result["first_mismatch"]["comparison"] == "emulator_vs_rtl"
    assert result["first_mismatch"]["rtl"][0] == result["first_mismatch"]["emulator"][0] ^ 1


def test_tampered_rtl_with_a_good_harness_under_its_key_in_a_shared_cache_fails(good, cache, tmp_path, capsys):
    bad = copy(good, tmp_path / "bad")
    entry = good_entry(cache)
    tamper_rtl(bad)
    forged = cache / "sim" / f"{SIM}-{harness_key(bad)[:24]}"
    shutil.copytree(entry, forged)  # a good harness stored under the tampered RTL's key
    assert main(["verify", str(bad), "--sim", SIM]) == 1
    captured = capsys.readouterr()
    assert f"cache entry {forged} was built from other sources than its name says: replacing it" in captured.err
    assert "bit exact: NO" in captured.out
    assert json.loads((bad / "reports" / "verify.json").read_text())["mismatches"]["emulator_vs_rtl"] > 0
    # the replaced entry is the tampered design's own build now, and it checks out
    from trigger.toolchain import entry_problem

    assert entry_problem(forged, harness_key(bad)) is None


def test_a_truncated_cache_entry_is_replaced_with_one_line(good, cache, tmp_path, capsys):
    bundle = copy(good, tmp_path / "b")
    entry = good_entry(cache)
    binary = entry / "sim.vvp"  # Icarus's compiled design
    size = binary.stat().st_size
    binary.write_bytes(binary.read_bytes()[:size // 2])  # truncated
    assert main(["verify", str(bundle), "--sim", SIM]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "cache entry" in line]
    assert err == [f"trigger: cache entry {entry} has sim.vvp changed since it was built: replacing it"]
    from trigger.toolchain import entry_problem

    assert binary.stat().st_size > size // 2 and entry_problem(entry, harness_key(bundle)) is None  # rebuilt whole


def test_a_forged_or_foreign_verdict_is_refused_by_report(good, cache, tmp_path, capsys):
    from trigger.verify import _digest

    ok = copy(good, tmp_path / "ok")
    assert main(["verify", str(ok), "--sim", SIM]) == 0
    verdict = ok / "reports" / "verify.json"
    passing = verdict.read_text()
    assert main(["report", str(ok), "--no-synth"]) == 0  # its own verdict is accepted
    capsys.readouterr()

    def refused(why: str) -> None:
        assert main(["report", str(ok), "--no-synth"]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (f"trigger report: check failed: {verdict} does not match the bundle ({why}): "
                       f"run `trigger verify {ok}` again")

    forged = json.loads(passing)
    forged["vectors"] += 1000  # edited by hand
    verdict.write_text(json.dumps(forged))
    refused("its content was changed after the verification")
    forged = json.loads(passing)
    forged["mismatches"]["emulator_vs_rtl"] = 7  # a failing verdict marked as passing, its own hash redone
    forged["binding"]["verdict_sha256"] = _digest(forged)
    verdict.write_text(json.dumps(forged))
    refused("its verdict does not follow from its counts")
    # the passing verdict of the good bundle, kept while the RTL is edited (and the manifest re-hashed)
    verdict.write_text(passing)
    tamper_rtl(ok)
    refused("it verified another manifest.json")
    forged = json.loads(passing)
    forged["binding"]["tools"]["verilator"] = "0.0"
    forged["binding"]["manifest_sha256"] = hashlib.sha256((ok / "manifest.json").read_bytes()).hexdigest()
    forged["binding"]["verdict_sha256"] = _digest(forged)
    verdict.write_text(json.dumps(forged))
    refused("it was computed with other tool versions")
    verdict.unlink()
    assert main(["report", str(ok), "--no-synth"]) == 2  # no verdict at all: run verify first (bad input)


def test_a_file_the_manifest_does_not_hash_among_the_sources_is_refused(good, tmp_path, capsys):
    bundle = copy(good, tmp_path / "b")
    (bundle / "hls" / "ap_int.h").write_text("// shadows the real header\n")
    assert main(["verify", str(bundle), "--sim", SIM]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("trigger verify: check failed:") and "hls/ap_int.h" in err and "\n" not in err
    changed = copy(good, tmp_path / "c")
    tamper_rtl(changed)
    (changed / "rtl" / "trust_lut_ops.v").write_text("module x; endmodule\n")  # after the re-hash: changed
    assert main(["verify", str(changed), "--sim", SIM]) == 1
    assert "files changed since the build: rtl/trust_lut_ops.v" in capsys.readouterr().err


def test_three_concurrent_verifies_of_one_bundle_each_pass(good, cache, tmp_path):
    from trigger.verify import load_verdict

    bundle = copy(good, tmp_path / "b")
    env = {**os.environ, "TRIGGER_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "trigger.cli", "verify", str(bundle), "--sim", SIM]
    runs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for c in (cmd, [*cmd, "--vectors", "50"], cmd)]
    outputs = [(run.communicate(timeout=600)[0], run.returncode) for run in runs]
    for out, code in outputs:
        assert code == 0 and "bit exact: yes" in out, out
    assert "50 vectors;" in outputs[1][0] and "2316 vectors" in outputs[0][0]
    result = load_verdict(bundle)  # the last writer's whole verdict, bound to this bundle
    assert result["pass"] and result["vectors"] in (50, 2316)
    assert not (bundle / ".sim_build").exists()
    assert not [p.name for p in (bundle / "reports").iterdir() if p.name.endswith(".partial")]
