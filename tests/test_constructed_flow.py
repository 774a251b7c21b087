"""Three further QKeras networks, and the CI gate, through the whole CLI flow.

Each network (4-bit, quantized_bits with integer bits, batch norm; non-power-of-two widths) is
built from a model folder with its own trigger.yml and verified through the emulator, hls4ml's
C simulation and the RTL under Verilator (conftest.py: ``constructed_bundles``, once per
session). The 4-bit one then goes through `trigger ci` with a budget it meets and one it fails,
and `trigger report` writes the machine- and people-readable reports.
"""

import json

import pytest

from helpers import CONSTRUCTED_VECTORS, assert_certified
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


@pytest.mark.slow  # a build, a verification and Yosys synthesis
def test_ci_gate_passes_and_fails_on_budget(constructed_networks, tmp_path, capsys):
    ok = tmp_path / "ok.yml"
    ok.write_text("budget:\n  latency_cycles: 10\n  ii: 1\n  LUT: 5%\n  DSP: 100\n  bit_exact: true\n")
    out = tmp_path / "bundle"
    assert main(["ci", str(constructed_networks["four_bit"].folder), "-o", str(out), "--budget", str(ok),
                 "--vectors", "5000"]) == 0
    report = json.loads((out / "reports" / "report.json").read_text())
    assert report["budget"] == {"pass": True, "violations": [], "limits": report["budget"]["limits"]}
    assert report["bit_exact"] is True
    assert report["resources"]["source"] == "yosys"
    assert report["resources"]["LUT"] > 0 and report["resources"]["FF"] > 0
    modules = report["resources"]["modules"]  # one per op module, plus the top
    assert "four_bit" in modules and len(modules) >= 4
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
