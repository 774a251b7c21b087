"""Three further QKeras networks, and the CI gate, through the whole CLI flow.

Each network (4-bit, quantized_bits with integer bits, batch norm; non-power-of-two widths) is
built from a model folder with its own trigger.yml and verified through the emulator, hls4ml's
C simulation and the RTL under Verilator (conftest.py: ``constructed_bundles``, once per
session and worker, on first use). The 4-bit one must fail verification once a bit of its RTL is flipped, then goes through
`trigger ci` with a budget it meets and one it fails, and `trigger report` writes the machine- and
people-readable reports.
"""

import hashlib
import json
import re
import shutil

import pytest

from tests.helpers import CONSTRUCTED_VECTORS, assert_certified
from trigger.cli import main
from trigger.ir import FirmwareModel


@pytest.mark.slow  # three network bundles verified with Verilator
@pytest.mark.parametrize("name", ["four_bit", "integer_bits", "batchnorm"])
def test_constructed_network_is_bit_exact(constructed_bundles, name):
    bundle = constructed_bundles[name]
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, CONSTRUCTED_VECTORS)  # the trigger.yml's verify.vectors
    manifest = bundle.manifest
    model = FirmwareModel.load(bundle.path)
    assert manifest["formats"][0] == f"input: {model.input.describe()}"
    assert manifest["formats"][0].startswith(f"input: {model.input.n} x ap_fixed")
    assert manifest["formats"][1:] == [f"{op.name}: {op.describe()}" for op in model.ops]
    assert manifest["name"] == name and manifest["top"] == name
    assert manifest["vectors"]["count"] == CONSTRUCTED_VECTORS


def rehash(bundle, *rels):
    """Record edited files in the manifest, as if the build had written them (to test the verifier)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    for rel in rels:
        manifest["files"][rel] = hashlib.sha256((bundle / rel).read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.slow
def test_flipped_rtl_bit_fails_verification(constructed_bundles, tmp_path, capsys):
    """A verifier that cannot fail proves nothing: one flipped bit in a generated adder must show.
    (A small network, simulated with Icarus on a few hundred vectors: no simulator to compile.)"""
    bundle = constructed_bundles["four_bit"]
    broken = tmp_path / "broken"
    shutil.copytree(bundle.path, broken, ignore=shutil.ignore_patterns(".sim_build"))
    # the first layer (its inputs are the test vectors themselves): its own module with `pipeline: layer`, the
    # start of the op-chain module with the default `pipeline: auto`
    top = bundle.manifest["top"]
    rel = next(f"rtl/{top}_{n}.v" for n in ("d1", "ops") if (broken / f"rtl/{top}_{n}.v").exists())
    layer = broken / rel
    text = layer.read_text()
    # invert a middle bit of an adder of the first layer (constant products are shift-and-add)
    adders = list(re.finditer(r"^    wire signed \[(\d+):0\] (\w+) = (.* [+-] .*);$", text, flags=re.M))
    assert adders, "no adder found in the first layer"
    m = adders[-1] if rel.endswith("_d1.v") else adders[0]
    width = int(m.group(1)) + 1
    flipped = f"    wire signed [{width - 1}:0] {m.group(2)} = ({m.group(3)}) ^ {width}'sd{1 << (width // 2)};"
    layer.write_text(text[:m.start()] + flipped + text[m.end():])
    # the verifier refuses a bundle whose files changed since the build (a failed check: exit 1)...
    capsys.readouterr()
    assert main(["verify", str(broken), "--vectors", "300", "--sim", "icarus"]) == 1
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


@pytest.mark.slow  # a build, a verification and Yosys synthesis
def test_ci_gate_passes_and_fails_on_budget(constructed_networks, tmp_path, capsys):
    ok = tmp_path / "ok.yml"
    ok.write_text("budget:\n  latency_cycles: 10\n  ii: 1\n  LUT: 5%\n  DSP: 100\n  bit_exact: true\n")
    out = tmp_path / "bundle"
    assert main(["ci", str(constructed_networks["four_bit"].folder), "-o", str(out), "--budget", str(ok),
                 "--vectors", "2000"]) == 0
    report = json.loads((out / "reports" / "report.json").read_text())
    assert report["budget"] == {"pass": True, "violations": [], "limits": report["budget"]["limits"]}
    assert report["bit_exact"] is True
    assert report["resources"]["source"] == "yosys"
    assert report["resources"]["LUT"] > 0 and report["resources"]["FF"] > 0
    modules = report["resources"]["modules"]  # the top and the op chain (pipeline auto, the default: one module)
    assert "four_bit" in modules and "four_bit_ops" in modules
    assert report["timing"]["fits"] and report["timing"]["source"] == "estimate"
    assert sum(m["LUT"] for m in modules.values()) == report["resources"]["LUT"]
    assert max(m["logic_levels"] for m in modules.values()) == report["resources"]["logic_levels"] > 0
    assert report["latency"]["cycles"] > 0 and report["latency"]["ii"] == 1
    assert report["latency"]["ns"] == pytest.approx(report["latency"]["cycles"] * 5.0)
    html = (out / "reports" / "report.html").read_text()
    assert "data:image/png;base64," in html and "PASS" in html
    assert (out / "reports" / "report.md").exists()

    tight = tmp_path / "tight.yml"
    tight.write_text("budget:\n  latency_cycles: 1\n  LUT: 10\n")
    capsys.readouterr()
    assert main(["report", str(out), "--budget", str(tight)]) == 1
    err = capsys.readouterr().err
    assert "latency_cycles" in err and "LUT" in err
    report = json.loads((out / "reports" / "report.json").read_text())
    assert [v["metric"] for v in report["budget"]["violations"]] == ["latency_cycles", "LUT"]
    assert "no Vitis/Vivado on PATH" in report["vendor"]["note"] or report["vendor"]["available"]
    if not report["vendor"]["available"]:
        assert main(["report", str(out), "--vendor"]) == 2
        assert "needs vitis_hls or vivado_hls on PATH" in capsys.readouterr().err


def test_ci_refuses_a_bad_budget_before_building(constructed_networks, tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("budget:\n  latency_us: 1\n")
    out = tmp_path / "bundle"
    assert main(["ci", str(constructed_networks["four_bit"].folder), "-o", str(out), "--budget", str(bad)]) == 2
    assert "unknown budget key 'latency_us'" in capsys.readouterr().err
    assert not out.exists()
