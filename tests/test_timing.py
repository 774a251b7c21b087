"""Timing in the gate: the critical path against the target clock in judge(), `trigger ci` failing a design
that misses its clock (naming the stage) and passing the default build of the same model, and the parser of
Vivado's report_timing_summary on hand-written reports in its documented layout (tests/data/vivado)."""

from __future__ import annotations

import json

import pytest
from tests.helpers import REPO

from trigger.budget import BudgetError, load_budget
from trigger.errors import ToolError
from trigger.frontends import DEFAULT_PART
from trigger.report import judge, summary_rows
from trigger.timing import headline, parse_timing_summary, timing_section, vendor_critical_path

VIVADO = REPO / "tests" / "data" / "vivado"


def _report(path_ns: float, clock_ns: float = 4.0) -> dict:
    resources = {"critical_path_ns": path_ns, "LUT": 10, "FF": 5, "DSP": 0, "BRAM": 0,
                 "modules": {"top_fc1": {"critical_path_ns": path_ns}, "top_fc2": {"critical_path_ns": 1.0}}}
    manifest = {"rtl": {"pipeline": "layer", "delay_ns_per_stage": [0.15, path_ns + 0.1, 1.0]}}
    timing = timing_section(clock_ns, resources, manifest)
    return {"latency": {"cycles": 3, "ns": 3 * clock_ns, "ii": 1, "clock_period_ns": clock_ns}, "resources": resources,
            "timing": timing, "bit_exact": True}


def test_clock_is_checked_by_default_and_names_the_module():
    budget = load_budget({})
    budget.setdefault("clock", True)  # as build_report does
    late = judge(_report(4.6), budget, DEFAULT_PART)
    assert not late["pass"]
    [v] = late["violations"]
    assert v["metric"] == "clock" and v["module"] == "top_fc1" and v["value"] == 4.6 and v["slack_ns"] == -0.6
    assert "top_fc1" in v["message"] and "slack -0.600 ns" in v["message"] and "250 MHz" in v["message"]
    assert judge(_report(3.9), budget, DEFAULT_PART)["pass"]
    assert judge(_report(4.6), load_budget({"clock": False}), DEFAULT_PART)["pass"]  # switched off


def test_headline_says_clock_path_slack_and_source():
    report = _report(3.5)
    rows = dict(summary_rows({**report, "budget": {"pass": True, "violations": [], "limits": {}}}))
    assert rows["latency"] == "3 cycles = 12.0 ns at 250 MHz (estimated path 3.500 ns, slack +0.500 ns)"
    assert "estimate from trigger's cell-delay model" in rows["timing source"]
    assert "worst stage 2 of 3" in rows["stage estimate"]
    assert headline(None) == ""


def test_clock_budget_must_be_a_boolean():
    with pytest.raises(BudgetError, match="clock must be true or false"):
        load_budget({"clock": "yes"})


def test_vivado_timing_summary_violated():
    parsed = parse_timing_summary((VIVADO / "timing_summary_violated.rpt").read_text())
    assert parsed["wns_ns"] == -0.412 and parsed["tns_ns"] == -7.905 and parsed["failing_endpoints"] == 31
    assert parsed["whs_ns"] == 0.032 and not parsed["met"]
    assert parsed["clocks"] == {"clk": {"period_ns": 4.167, "mhz": 239.981}}
    worst = parsed["worst_path"]
    assert worst["slack_ns"] == -0.412 and worst["data_path_ns"] == 4.498 and worst["logic_levels"] == 11
    assert worst["source"] == "u_fc1/acc_3_reg[2]/C" and worst["destination"] == "u_fc1/q_7_reg[9]/D"
    vendor = vendor_critical_path(parsed, 4.167, "vivado")
    assert vendor["critical_path_ns"] == 4.579 and vendor["module"] == "u_fc1"
    timing = timing_section(4.167, {}, {"rtl": {}}, vendor=vendor)
    assert timing["source"] == "vivado" and not timing["fits"] and timing["slack_ns"] == -0.412
    assert headline(timing) == " (vivado path 4.579 ns, slack -0.412 ns)"


def test_vivado_timing_summary_met():
    parsed = parse_timing_summary((VIVADO / "timing_summary_met.rpt").read_text())
    assert parsed["met"] and parsed["wns_ns"] == 0.731 and parsed["failing_endpoints"] == 0
    assert parsed["clocks"]["clk"]["period_ns"] == 5.0 and parsed["worst_path"]["slack_ns"] == 0.731
    assert vendor_critical_path(parsed, 5.0, "vivado")["critical_path_ns"] == 4.269


def test_unreadable_timing_report_is_a_one_line_error():
    with pytest.raises(ToolError, match="no Design Timing Summary"):
        parse_timing_summary("Timing Report\nnothing here\n", "x.rpt")


@pytest.mark.slow
def test_ci_fails_a_design_that_misses_its_clock_and_passes_the_default(tmp_path, capsys):
    """A QKeras network with whole layers in one stage (`pipeline: layer`) at 3 ns misses the clock: `trigger ci`
    exits 1 and names the module; the default pipelining of the same model at the same clock passes. Three
    neurons of 4 inputs (8-bit weights) miss 3 ns as a large layer does, at a sixth of the Yosys time."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tests.keras_cases import random_weights, save_model

    from trigger.cli import main

    tf.keras.utils.set_random_seed(11)
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(4,)),
        QDense(3, kernel_quantizer=quantized_bits(8, 3, alpha=1), bias_quantizer=quantized_bits(8, 3, alpha=1), name="d1"),
        QActivation(quantized_bits(8, 2, alpha=1), name="q1")])
    random_weights(model, 1)
    source = save_model(model, tmp_path, "three_neurons")
    common = [str(source), "--clock", "3", "--vectors", "300", "--sim", "icarus"]  # the gate, not the simulator
    assert main(["ci", *common, "--pipeline", "layer", "-o", str(tmp_path / "layer")]) == 1
    err = capsys.readouterr().err
    assert "budget violation: clock: three_neurons_d1 (d1): estimated path" in err and "slack -" in err
    report = json.loads((tmp_path / "layer" / "reports" / "report.json").read_text())
    assert not report["timing"]["fits"] and report["timing"]["critical_path_ns"] > 3
    assert main(["ci", *common, "-o", str(tmp_path / "default")]) == 0
    report = json.loads((tmp_path / "default" / "reports" / "report.json").read_text())
    assert report["timing"]["fits"] and report["timing"]["pipeline"] == "auto" and report["budget"]["pass"]
    assert max(report["timing"]["builder_estimate"]["delay_ns_per_stage"]) <= 3


@pytest.mark.parametrize("case,clock_ns", [("chain_sat", 2.8), ("chain_sat_zero", 2.8), ("mlp", 2.0)])
@pytest.mark.slow
def test_a_cast_deeper_than_the_clock_is_split_and_stays_exact(case, clock_ns, tmp_path):
    """pipeline auto at a clock shorter than a whole rounding + saturating cast: the rounding bit comes first
    (``round_prep``), the increment and saturation after it, every stage within the clock by the builder's
    estimate, and the RTL equals the emulator (every rounding mode, ties and overflows included)."""
    import numpy as np
    from tests.firmware_cases import case_inputs, mlp, requant_chain

    from trigger.backends.rtl import write_rtl
    from trigger.ir import emulate
    from trigger.rtlsim import simulate

    model = {"chain_sat": lambda: requant_chain("SAT"), "chain_sat_zero": lambda: requant_chain("SAT_ZERO"),
             "mlp": lambda: mlp((6, 10, 4), seed=2)}[case]()
    design = write_rtl(model, tmp_path / "rtl", top="split_top", pipeline="auto", clock_period_ns=clock_ns)
    text = "".join(p.read_text() for p in design.sources)
    assert "rounding-up bit (floor * 2 + up)" in text
    assert max(design.stage_delay_ns) <= clock_ns, design.stage_delay_ns
    raw = case_inputs(model, 1500)
    sim = simulate(design.sources, design.top, model.input.to_bits(raw), model.input.widths, model.output.widths,
                   simulator="icarus", build_dir=tmp_path / "sim", max_latency=design.latency_cycles + 8)
    assert sim.latency_cycles == design.latency_cycles and sim.ii == 1
    got = model.output.from_bits(sim.outputs)
    assert int(np.count_nonzero(np.any(got != emulate(model, raw).outputs, axis=1))) == 0


COMPARATOR_BANKS = [(16, 63), (13, 127), (8, 63)]  # (input bits, comparators)


@pytest.mark.slow
def test_comparator_bank_estimate_follows_yosys(tmp_path):
    """A bucketize (n comparators of one signal and their encoder, one stage): ABC chains the comparators' carry
    inputs when an encoder follows (wide signals) or makes the whole bank a table (narrow ones). The builder's
    estimate (less the input register's clock-to-output, which the module's Yosys sta does not see) is not below
    Yosys sta by more than 10% (pipeline auto places registers by it) nor above it by more than one LUT level
    (how deep ABC makes the chains varies by a level with the thresholds: 3 or 4 at 127 comparators).
    The three banks are modules of one design: synthesis keeps the hierarchy, so each module's sta is its own,
    and one Yosys run (about 3 CPU-s of fixed start-up each) times all three."""
    import random

    from trigger.backends.rtl import finish_module, write_module
    from trigger.backends.rtl.builder import CLOCK_TO_Q_NS, LUT_NS, ModuleBuilder
    from trigger.fixed import FixedFormat
    from trigger.ir.tensor import TensorType
    from trigger.synth import synthesize

    banks, sources, ports, cells = {}, [], [], []
    for bits, n in COMPARATOR_BANKS:
        src = FixedFormat(bits, bits, True, "TRN", "WRAP")
        span = min(bits, 10)  # thresholds in a part of the range, as a quantile binning of a peaked feature has them
        thresholds = sorted(random.Random(1).sample(range(-(1 << (span - 1)), 1 << (span - 1)), n))
        width = n.bit_length()
        inputs, outputs = TensorType((src,)), TensorType((FixedFormat(width, width, False, "TRN", "WRAP"),))
        m = ModuleBuilder(f"bank{bits}_{n}", max_delay=1000 / 240)
        y = m.count_at_least("bin", m.unpack("x", 0, src), thresholds, width)
        finish_module(m, [y], inputs, outputs, "bucketize", "bucketize", 0)
        assert not m.has_clock and len(m.stage_delay) == 1
        banks[m.name] = max(m.stage_delay.values()) - CLOCK_TO_Q_NS
        sources.append(write_module(m, tmp_path, "banks_top"))
        # the top registers each bank's input and output, as the standard top does around a stage
        ports += [f"input wire [{bits - 1}:0] x_{m.name}", f"output reg [{width - 1}:0] y_{m.name}"]
        cells.append(f"  reg [{bits - 1}:0] r_{m.name};\n  wire [{width - 1}:0] w_{m.name};\n"
                     f"  {m.name} u_{m.name} (.in_data(r_{m.name}), .out_data(w_{m.name}));\n"
                     f"  always @(posedge clk) begin r_{m.name} <= x_{m.name}; y_{m.name} <= w_{m.name}; end\n")
    top = tmp_path / "banks_top.v"
    top.write_text(f"module banks_top (\n  input wire clk,\n  " + ",\n  ".join(ports) + "\n);\n"
                   + "".join(cells) + "endmodule\n")
    result = synthesize([top, *sources], "banks_top", DEFAULT_PART, cache=False)
    assert result["settings"]["runs"] == 1
    found = {name: (estimate, result["modules"][name]["critical_path_ns"]) for name, estimate in banks.items()}
    for name, (estimate, sta) in found.items():
        assert -0.1 * sta <= estimate - sta <= LUT_NS + 0.2, (name, found)
