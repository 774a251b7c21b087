"""Generated RTL against the bit-exact emulator, under real simulators.

Each design is written by trigger.backends.rtl.write_rtl, streamed one vector per clock
through trigger.rtlsim (cocotb + Icarus or Verilator) and compared with trigger.ir.emulate
on random and edge inputs: equal integers on every vector, the latency the generator reports
equal to the one measured, II = 1. Verilator lints every design with -Wall.
"""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.firmware_cases import F, case_inputs, mlp, random_dense, requant_chain, small_models
from tests.helpers import assert_same
from trigger.backends.rtl import write_rtl
from trigger.errors import ConfigError, FirmwareModelError
from trigger.ir import FirmwareModel, emulate
from trigger.rtlsim import simulate
from trigger.toolchain import find_tool, verilator_env


def check_rtl(model, pipeline, simulator, n_random, work: Path, seed=11):
    """Simulates the RTL of ``model`` and asserts equal integers, latency and II; returns the design."""
    design = write_rtl(model, work / "rtl", top=f"{model.name}_top", pipeline=pipeline)
    raw = case_inputs(model, n_random, seed=seed)
    expected = emulate(model, raw).outputs
    result = simulate(design.sources, design.top, model.input.to_bits(raw), model.input.widths,
                      model.output.widths, simulator=simulator, build_dir=work / "sim",
                      data_files=design.data_files, max_latency=design.latency_cycles + 8)
    got = model.output.from_bits(result.outputs)
    assert_same(model, raw, expected, got, ("emulator", "rtl"), f"{model.name} pipeline={pipeline} {simulator}")
    assert result.latency_cycles == design.latency_cycles
    assert result.ii == 1
    assert result.timing["spurious"] == 0
    print(f"{model.name} pipeline={pipeline} {simulator}: {len(raw)} vectors, 0 mismatches, "
          f"latency {result.latency_cycles} cycles (built {design.latency_cycles}), II {result.ii}")
    return design


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["layer", 1])
def test_mlp_rtl_equals_emulator_icarus(pipeline, tmp_path):
    # The 16-64-32-32-5 (4,000 multipliers) runs at about 10 vectors per second under Icarus, after seconds of
    # compiling: a network of the same shape, a sixth of its size, shows the same emitters.
    check_rtl(mlp((16, 24, 12, 5), seed=4), pipeline, "icarus", 200, tmp_path)


@pytest.mark.slow
def test_mlp_rtl_equals_emulator_verilator(tmp_path):
    # The full 16-64-32-32-5 builds in minutes under Verilator: a smaller network of the same shape here.
    check_rtl(mlp((16, 24, 12, 5), seed=4), 2, "verilator", 3000, tmp_path)


@pytest.mark.parametrize("name", sorted(small_models()))
@pytest.mark.slow
def test_small_model_rtl_equals_emulator(name, tmp_path):
    model = small_models()[name]
    pipeline = "layer" if len(name) % 2 else 1
    check_rtl(model, pipeline, "icarus", 600, tmp_path)


@pytest.mark.slow
def test_small_model_rtl_verilator(tmp_path):
    check_rtl(small_models()["s6_scale"], 1, "verilator", 2000, tmp_path)


@pytest.mark.parametrize("overflow", ["SAT", "WRAP", "SAT_SYM", "SAT_ZERO"])
@pytest.mark.slow
def test_requantization_chain(overflow, tmp_path):
    """Every rounding mode (ties included) with each overflow mode, overflowing at every step."""
    model = requant_chain(overflow)
    counts = emulate(model, case_inputs(model, 1500)).overflows
    assert all(counts[op.name]["output"].overflows > 0 for op in model.ops)
    check_rtl(model, "layer", "icarus", 1500, tmp_path)


def lint_models():
    # the MLP of the Verilator test above: the same emitters as the full 16-64-32-32-5, whose -Wall lint
    # takes about 20 CPU seconds at pipeline 1
    models = {f"mlp_{p}": (mlp((16, 24, 12, 5), seed=4), p) for p in ("layer", 1)}
    models.update({n: (m, "layer") for n, m in small_models().items()})
    models.update({f"chain_{o}": (requant_chain(o), 2) for o in ("SAT", "WRAP", "SAT_SYM", "SAT_ZERO")})
    return models


@pytest.mark.parametrize("name", sorted(lint_models()))
@pytest.mark.slow
def test_verilator_lint_clean(name, tmp_path):
    model, pipeline = lint_models()[name]
    design = write_rtl(model, tmp_path, top="lint_top", pipeline=pipeline)
    verilator = find_tool("verilator")
    assert verilator, "verilator not found: run `make setup`"
    run = subprocess.run([verilator, "--lint-only", "-Wall", "--top-module", design.top, *map(str, design.sources)],
                         env=verilator_env(), capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr[:4000]


@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_latency_follows_the_pipeline_setting(tmp_path):
    model = mlp((16, 24, 12, 5), seed=4)  # the tests' MLP above (its adder plans cached); the full size takes a minute
    n_dense = sum(op.kind == "dense" for op in model.ops)
    by_layer = write_rtl(model, tmp_path / "layer", pipeline="layer")
    assert by_layer.latency_cycles == 1 + n_dense  # input register + one per dense op (activations merged)
    latencies = {n: write_rtl(model, tmp_path / str(n), pipeline=n).latency_cycles for n in (1, 2, 3, 100)}
    print(f"16-24-12-5 latency: layer {by_layer.latency_cycles}, " +
          ", ".join(f"every {n} adder levels {lat}" for n, lat in latencies.items()))
    assert latencies[1] > latencies[2] > latencies[3] >= by_layer.latency_cycles
    assert latencies[100] == by_layer.latency_cycles
    # a dense op followed by an activation hands it its sums unregistered; the activation registers
    nxt = model.ops[1:] + [None]
    assert by_layer.op_latency == {op.name: int(after is None or not after.absorbs_previous)
                                   for op, after in zip(model.ops, nxt)}
    assert by_layer.pipeline == "layer" and write_rtl(model, tmp_path / "p2", pipeline=2).pipeline == 2


def test_output_is_deterministic(tmp_path):
    model = small_models()["s6_scale"]
    a = write_rtl(model, tmp_path / "a", pipeline=1)
    b = write_rtl(model, tmp_path / "b", pipeline=1)
    assert [p.name for p in a.sources] == [p.name for p in b.sources]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a.sources, b.sources))


def test_saturating_accumulator_that_can_overflow_is_refused(tmp_path):
    rng = np.random.default_rng(5)
    d = random_dense(rng, "dense_sat", 10, 4, F("fixed<8,3>"), F("fixed<6,2>"), F("fixed<6,2>"),
                     F("fixed<8,4>"), F("fixed<12,6,TRN,SAT>"), zero_fraction=0.0)
    model = FirmwareModel("sat", d.input, [d])
    with pytest.raises(FirmwareModelError, match=r"op 'dense_sat' \(dense\): accumulator .* widen accum_t") as err:
        write_rtl(model, tmp_path / "rtl")
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "rtl").rglob("*"))  # nothing half-written


def test_bad_arguments_are_refused(tmp_path):
    model = small_models()["u4_linear"]
    for pipeline in (0, -1, "every", 1.5, True):
        with pytest.raises(ConfigError, match="pipeline"):
            write_rtl(model, tmp_path, pipeline=pipeline)
    with pytest.raises(ConfigError, match="top module name"):
        write_rtl(model, tmp_path, top="1bad-name")
