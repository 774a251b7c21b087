"""The da4ml comparison benchmark: its network, da4ml's arithmetic and RTL against the emulator.

Tests that need da4ml skip when .venv-da4ml is absent (scripts/setup_da4ml.sh makes it).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from firmware_cases import mlp
from trigger.firmware.emulator import dense_plan, emulate
from trigger.firmware.model import Activation, Dense
from trigger.network import input_vectors
from trigger.rtlsim import simulate

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_da4ml", REPO / "scripts" / "bench_da4ml.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

needs_da4ml = pytest.mark.skipif(not bench.DA4ML_PYTHON.exists(),
                                 reason="da4ml venv absent: run scripts/setup_da4ml.sh")


def test_jet_tagger_has_hls4ml_formats_and_exact_accumulators():
    model = bench.jet_tagger()
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert [(d.n_in, d.n_out) for d in dense] == [(16, 64), (64, 32), (32, 32), (32, 5)]
    assert [str(d.accum_fmt) for d in dense] == ["fixed<27,12>", "fixed<19,8>", "fixed<18,7>", "fixed<18,7>"]
    for d in dense:
        plan = dense_plan(d)
        assert plan["shift"] >= 0 and not plan["sum_can_overflow"] and not plan["product_can_overflow"]
        assert d.weight.min() >= -32 and d.weight.max() <= 31 and len(np.unique(d.weight)) > 40
    relus = [layer for layer in model.layers if isinstance(layer, Activation)]
    assert {str(r.output_fmt) for r in relus} == {"ufixed<6,0,RND_CONV,SAT>"}
    assert np.array_equal(bench.jet_tagger().layers[0].weight, dense[0].weight)  # seeded


def _rounding_matters(model, inputs) -> int:
    """Vectors whose outputs change when RND_CONV becomes RND: ties the check must get right."""
    import copy

    other = copy.deepcopy(model)
    for layer in other.layers:
        if layer.output_fmt.rounding == "RND_CONV":
            layer.output_fmt = layer.output_fmt.with_modes(rounding="RND")
    for prev, layer in zip(other.layers, other.layers[1:]):
        layer.input_fmt = prev.output_fmt
    return int(np.sum(np.any(emulate(model, inputs).outputs != emulate(other, inputs).outputs, axis=1)))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small MLP with wrapping, truncating and RND_CONV/SAT casts, emitted by da4ml."""
    model = mlp(sizes=(6, 12, 4), seed=3)
    inputs = input_vectors(model.input_fmt, model.n_inputs, 3000)
    work = tmp_path_factory.mktemp("da4ml")
    spec = bench.da4ml_spec(model, [{"label": "cutoff_3", "latency_cutoff": 3.0}], inputs, "xcvu13p")
    emitted, _ = bench.run_da4ml(spec, work)
    return model, inputs, emitted, work


@needs_da4ml
def test_da4ml_interpreter_equals_emulator_including_round_half_even(small):
    model, inputs, emitted, _ = small
    assert _rounding_matters(model, inputs) > 0  # the vectors do contain RND_CONV ties
    expected = emulate(model, inputs).outputs
    got = np.asarray(emitted["interpreter_outputs"], dtype=np.int64)
    result = bench.compare(expected, got, inputs)
    assert result["mismatching_vectors"] == 0, result.get("first_mismatch")


@needs_da4ml
def test_da4ml_rtl_behind_standard_top_is_bit_exact(small):
    model, inputs, emitted, work = small
    design = emitted["designs"][0]
    assert design["stages"] >= 2
    sources = bench.da4ml_top(model, emitted, design, work)
    n = 400
    sim = simulate(sources, bench.TOP, model.input_fmt.to_bits(inputs[:n]), model.input_fmt.width,
                   model.n_outputs, model.output_fmt.width, simulator="icarus", build_dir=work / "sim")
    expected = emulate(model, inputs[:n]).outputs
    result = bench.compare(expected, model.output_fmt.from_bits(sim.outputs), inputs[:n])
    assert result["mismatching_vectors"] == 0, result.get("first_mismatch")
    assert sim.latency_cycles == design["latency_cycles"] and sim.ii == 1
