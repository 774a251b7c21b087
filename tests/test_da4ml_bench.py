"""The da4ml comparison benchmark: its network, da4ml's arithmetic and RTL against the emulator.

Tests that need da4ml skip when .venv-da4ml is absent (scripts/setup_da4ml.sh makes it).
"""

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from trigger.backends.rtl import stage_of, standard_top, write_module
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType, emulate
from trigger.ir.ops.activation import Relu
from trigger.ir.ops.dense import Dense
from trigger.rtlsim import simulate
from trigger.vectors import test_vectors

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_da4ml", REPO / "scripts" / "bench_da4ml.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

F = FixedFormat.parse
needs_da4ml = pytest.mark.skipif(not bench.DA4ML_PYTHON.exists(),
                                 reason="da4ml venv absent: run scripts/setup_da4ml.sh")


def mlp(sizes=(6, 12, 4), seed=3, weight_bits=6) -> FirmwareModel:
    """fixed<16,6> inputs, exact accumulators, wrapping/truncating hidden outputs, RND_CONV/SAT ReLUs and output."""
    rng = np.random.default_rng(seed)
    fmt = F("fixed<16,6>")
    weight_fmt, bias_fmt = FixedFormat(weight_bits, 1), FixedFormat(weight_bits, 2)
    ops = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = k + 2 < len(sizes)
        out = F("fixed<16,6>") if hidden else F("fixed<16,6,RND_CONV,SAT>")
        w = rng.integers(weight_fmt.min_raw, weight_fmt.max_raw + 1, (n_in, n_out), dtype=np.int64)
        w[rng.random((n_in, n_out)) < 0.25] = 0
        b = rng.integers(bias_fmt.min_raw, bias_fmt.max_raw + 1, n_out, dtype=np.int64)
        prod = fmt.product_format(weight_fmt)
        integer = prod.integer + int(np.ceil(np.log2(n_in + 1))) + 1
        acc = FixedFormat(prod.fractional + integer, integer, True)
        ops.append(Dense(f"dense{k}", TensorType.uniform(fmt, n_in), TensorType.uniform(out, n_out), w, b,
                         weight_fmt, bias_fmt, acc))
        if hidden:
            fmt = F("ufixed<9,4,RND_CONV,SAT>")
            ops.append(Relu(f"relu{k}", TensorType.uniform(out, n_out), TensorType.uniform(fmt, n_out)))
    model = FirmwareModel("mlp", TensorType.uniform(F("fixed<16,6>"), sizes[0]), ops)
    model.validate()
    return model


def test_jet_tagger_has_hls4ml_formats_and_exact_accumulators():
    model = bench.jet_tagger()
    dense = [op for op in model.ops if isinstance(op, Dense)]
    assert [(d.n_in, d.n_out) for d in dense] == [(16, 64), (64, 32), (32, 32), (32, 5)]
    assert [str(d.accum_fmt) for d in dense] == ["fixed<27,12>", "fixed<19,8>", "fixed<18,7>", "fixed<18,7>"]
    for d in dense:
        plan = d.plan()
        assert plan["shift"] >= 0 and not plan["sum_can_overflow"] and not plan["product_can_overflow"]
        assert d.weight.min() >= -32 and d.weight.max() <= 31 and len(np.unique(d.weight)) > 40
    relus = [op for op in model.ops if isinstance(op, Relu)]
    assert {str(r.output.format) for r in relus} == {"ufixed<6,0,RND_CONV,SAT>"}
    assert np.array_equal(bench.jet_tagger().ops[0].weight, dense[0].weight)  # seeded


@pytest.mark.slow
def test_align_stage_behind_the_standard_top_puts_padded_elements_in_the_output_format(tmp_path):
    """The stage after da4ml's core: elements padded to a wider, finer format come out in the model's format."""
    model = mlp()
    out = model.output
    emitted = {"output_layout": {"signed": True, "width": 21, "frac": 12}}  # fixed<16,6> output has 10 fractional
    align = bench.align_module(model, emitted)
    da_fmt = bench.layout_format(emitted["output_layout"])
    da_bus = TensorType.uniform(da_fmt, out.n)
    text = standard_top("align_top", "the alignment stage alone", da_bus.elements(), out.elements(),
                        [stage_of(align)], 1)
    top = tmp_path / "align_top.v"
    top.write_text(text)
    sources = [top, write_module(align, tmp_path, "align_top")]
    assert "module.v.j2" in sources[1].read_text()  # printed by the normal module template
    rng = np.random.default_rng(0)
    raw = rng.integers(out.min_raw, out.max_raw + 1, (200, out.n), dtype=np.int64)
    raw[:2] = [out.min_raw, out.max_raw]
    padded = raw << (da_fmt.fractional - out.formats[0].fractional)
    sim = simulate(sources, "align_top", da_bus.to_bits(padded), da_bus.widths, out.widths,
                   simulator="icarus", build_dir=tmp_path / "sim")
    assert np.array_equal(out.from_bits(sim.outputs), raw)
    assert sim.latency_cycles == 1


def _rounding_matters(model, inputs) -> int:
    """Vectors whose outputs change when RND_CONV becomes RND: ties the check must get right."""
    ops, prev = [], model.input
    for op in model.ops:
        op = copy.deepcopy(op)
        op.input = prev
        fmt = op.output.format
        if fmt.rounding == "RND_CONV":
            op.output = TensorType.uniform(fmt.with_modes(rounding="RND"), op.output.n)
        ops.append(op)
        prev = op.output
    other = FirmwareModel(model.name, model.input, ops)
    return int(np.sum(np.any(emulate(model, inputs).outputs != emulate(other, inputs).outputs, axis=1)))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small MLP with wrapping, truncating and RND_CONV/SAT casts, emitted by da4ml."""
    model = mlp()
    inputs = test_vectors(model, 3000)
    work = tmp_path_factory.mktemp("da4ml")
    spec = bench.da4ml_spec(model, [{"label": "cutoff_3", "latency_cutoff": 3.0}], inputs, "xcvu13p")
    emitted, _ = bench.run_da4ml(spec, work)
    return model, inputs, emitted, work


@pytest.mark.bench
@needs_da4ml
def test_da4ml_interpreter_equals_emulator_including_round_half_even(small):
    model, inputs, emitted, _ = small
    assert _rounding_matters(model, inputs) > 0  # the vectors do contain RND_CONV ties
    expected = emulate(model, inputs).outputs
    got = np.asarray(emitted["interpreter_outputs"], dtype=np.int64)
    result = bench.compare(expected, got, inputs)
    assert result["mismatching_vectors"] == 0, result.get("first_mismatch")


@pytest.mark.bench
@needs_da4ml
def test_da4ml_rtl_behind_standard_top_is_bit_exact(small):
    model, inputs, emitted, work = small
    design = emitted["designs"][0]
    assert design["stages"] >= 2
    sources = bench.da4ml_top(model, emitted, design, work)
    top_text = sources[0].read_text()
    assert "firmware_templates/rtl/top.v.j2" in top_text and design["wrapper"] in top_text
    n = 400
    sim = simulate(sources, bench.TOP, model.input.to_bits(inputs[:n]), model.input.widths,
                   model.output.widths, simulator="icarus", build_dir=work / "sim")
    expected = emulate(model, inputs[:n]).outputs
    result = bench.compare(expected, model.output.from_bits(sim.outputs), inputs[:n])
    assert result["mismatching_vectors"] == 0, result.get("first_mismatch")
    assert sim.latency_cycles == design["latency_cycles"] and sim.ii == 1


def test_yosys_stat_json_with_hierarchy_text_is_read():
    """Yosys 0.23 prints the hierarchy of a deep design (da4ml's core in its wrapper) as text in stat -json."""
    from trigger.synth import _stat_json

    text = ('{\n   "modules": {\n      "\\\\top": {\n         "num_cells": 1\n      }\n   },\n'
            '       da4ml_core                    1\n'
            '         $paramod$0123\\shift_adder      2\n'
            '   "design": {\n      "num_cells_by_type": {\n         "LUT2": 3\n      }\n   }\n}\n')
    assert _stat_json(text)["design"]["num_cells_by_type"] == {"LUT2": 3}


@pytest.mark.bench
@needs_da4ml
@pytest.mark.slow
def test_benchmark_runs_to_the_end_and_writes_the_table(tmp_path):
    """The script end to end on a small random network (resources and depth only): both generators,
    DSP-free shift-and-add on our side, a table in json and md."""
    import json

    out = tmp_path / "cmp"
    code = bench.main(["--networks", "random", "--shape", "5,4,3", "--no-sim", "--pipeline", "auto",
                       "--cutoffs", "", "--jobs", "2", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert code == 0 and [n["name"] for n in report["networks"]] == ["random6_5_4_3"]
    designs = {d["generator"]: d for d in report["networks"][0]["designs"]}
    assert set(designs) == {"trigger", "da4ml"}
    ours, theirs = designs["trigger"], designs["da4ml"]
    assert ours["DSP"] == 0 and ours["LUT"] > 0 and theirs["LUT"] > 0
    assert ours["yosys_settings"].startswith("abc -fast") and ours["yosys_cpu_seconds"] > 0
    assert ours["yosys_runs"] >= 1 and not ours["yosys_result_reused"]  # measured (not cached)
    assert ours["latency_cycles"] == theirs["latency_cycles"]  # da4ml built at our latency
    assert len(ours["estimated_ns_per_stage"]) == ours["latency_cycles"]
    assert 0 < ours["critical_path_ns"] and 0 < theirs["critical_path_ns"]  # Yosys sta on both
    table = out.with_suffix(".md").read_text()
    assert "| random6_5_4_3 | trigger | pipeline=auto |" in table and "load average" in table
    assert "abc -fast, one run" in table
