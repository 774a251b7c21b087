"""Multiplier-free constant arithmetic: signed digits, shared subexpressions, pipeline auto.

The plan (trigger.backends.rtl.cmvm) is checked with integers against ``x @ M``; the RTL
built from it under Icarus against the emulator, as equal integers; and a design with one
generated adder changed by one bit must give mismatches, so the check can fail.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from tests.firmware_cases import F, ROUNDING_CHAIN, T, case_inputs, mlp, random_dense, relu
from trigger.backends.rtl import finish_module, stage_of, standard_top, write_module, write_rtl
from trigger.backends.rtl.builder import ModuleBuilder
from trigger.backends.rtl import builder, cmvm
from trigger.backends.rtl.cmvm import csd, evaluate, plan_cmvm
from trigger.errors import ConfigError
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType, emulate
from trigger.rtlsim import simulate


def test_csd_digits_are_canonical():
    for v in [0, 1, -1, 3, -3, 7, 11, 23, -31, 32, 255, -256, 2**40 + 5, -(2**33) + 7, 0b1011011101]:
        digits = csd(v)
        assert sum(d << k for k, d in enumerate(digits)) == v
        assert set(digits) <= {-1, 0, 1}
        assert all(not (a and b) for a, b in zip(digits, digits[1:]))  # no two adjacent non-zeros
    assert csd(7) == [-1, 0, 0, 1]  # 8 - 1: two digits where binary has three


@pytest.mark.parametrize("shape,bits,zeros", [((16, 64), 6, 0.0), ((32, 32), 6, 0.3), ((5, 3), 17, 0.0),
                                              ((1, 1), 9, 0.0), ((7, 1), 4, 0.5), ((1, 9), 8, 0.0), ((4, 4), 3, 1.0)])
@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_plan_equals_the_matrix_product_and_saves_adders(shape, bits, zeros):
    rng = np.random.default_rng(sum(shape) + bits)
    matrix = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), shape, dtype=np.int64)
    matrix[rng.random(shape) < zeros] = 0
    plan = plan_cmvm(matrix.astype(object))
    for _ in range(20):
        x = rng.integers(-(1 << 20), 1 << 20, shape[0])
        assert evaluate(plan, x) == [int(v) for v in x.astype(object) @ matrix.astype(object)]
    digits = sum(len([d for d in csd(v) if d]) for v in matrix.ravel())
    plain = sum(max(len([d for v in col for d in csd(v) if d]) - 1, 0) for col in matrix.T)
    assert plan.adders <= plain
    if digits > 200:  # a layer-sized random matrix: sharing removes many adders
        assert plan.adders < 0.7 * plain, (plan.adders, plain)
    assert plan == cmvm._plan(matrix.astype(object), None)  # deterministic (solved again, not cached)


def test_estimated_bits_counts_the_adders_as_the_builder_writes_them():
    one_sum = cmvm.CmvmPlan(2, [], [[cmvm.Term(0, 0, 1), cmvm.Term(1, 0, 1)]], [0, 0])
    assert cmvm.estimated_bits(one_sum, [(0, 63), (0, 63)]) == 7  # 0..126: 8 bits, the top one constant
    assert cmvm.estimated_bits(one_sum, [(-64, 63), (-64, 63)]) == 8
    shifted = cmvm.CmvmPlan(2, [cmvm.Node(0, 1, 3, -1)], [[cmvm.Term(2, 0, 1)]], [0, 0, 1])
    assert cmvm.estimated_bits(shifted, [(-64, 63), (-64, 63)]) == 8  # x0 - (x1 << 3): 11 bits, 3 pass through


@pytest.mark.parametrize("ranges", [(0, 63), (-(1 << 15), (1 << 15) - 1)])
def test_cost_aware_plan_is_exact_and_no_worse_than_any_one_score(ranges):
    """plan_cmvm solves with every score in cmvm.SCORES and keeps the plan of fewest estimated adder bits."""
    rng = np.random.default_rng(11)
    matrix = rng.integers(-32, 32, (24, 16)).astype(object)
    r = [ranges] * 24
    plan = plan_cmvm(matrix, ranges=r)
    for _ in range(20):
        x = rng.integers(ranges[0], ranges[1] + 1, 24)
        assert evaluate(plan, x) == [int(v) for v in x.astype(object) @ matrix]
    cost = cmvm.estimated_bits(plan, r)
    singles = {}
    for score in cmvm.SCORES:
        single = cmvm._plan(matrix, None, r, scores=(score,))
        x = rng.integers(ranges[0], ranges[1] + 1, 24)
        assert evaluate(single, x) == [int(v) for v in x.astype(object) @ matrix], score
        singles[score] = cmvm.estimated_bits(single, r)
    assert cost == min(singles.values()), (cost, singles)
    print(f"ranges {ranges}: estimated adder bits {cost}, per score {singles}")


def _dense_model(rng, name="exact", n_in=10, n_out=6, weight="fixed<7,2>"):
    """One dense op whose output is the exact accumulator: any changed adder bit reaches an output."""
    in_fmt, w_fmt = F("fixed<10,4>"), F(weight)
    d = random_dense(rng, name, n_in, n_out, in_fmt, w_fmt, w_fmt, F("fixed<24,12>"), F("fixed<24,12>"))
    return FirmwareModel(name, d.input, [d])


def _mismatches(design, model, raw, work: Path) -> int:
    result = simulate(design.sources, design.top, model.input.to_bits(raw), model.input.widths, model.output.widths,
                      simulator="icarus", build_dir=work, data_files=design.data_files,
                      max_latency=design.latency_cycles + 8)
    got = model.output.from_bits(result.outputs)
    assert result.latency_cycles == design.latency_cycles and result.ii == 1
    return int(np.count_nonzero(np.any(got != emulate(model, raw).outputs, axis=1)))


def test_shift_add_rtl_has_no_multiplier_and_dsp_option_keeps_them(tmp_path):
    model = mlp((6, 10, 4), seed=2)
    texts = {}
    for multiplier in ("shift_add", "dsp", 4):
        design = write_rtl(model, tmp_path / str(multiplier), top="mul_top", multiplier=multiplier)
        texts[multiplier] = "".join(p.read_text() for p in design.sources)
        assert design.multiplier == str(multiplier)
    products = {k: len(re.findall(r"\) \* \d+'sh", t)) for k, t in texts.items()}
    n_weights = sum(int(np.count_nonzero(np.abs(op.weight) > 1)) for op in model.ops if op.kind == "dense")
    assert products["shift_add"] == 0 and " - " in texts["shift_add"] and "'b0}" in texts["shift_add"]
    assert products["dsp"] == n_weights  # every weight but 0 and +-1 (printed without '*')
    wide = sum(int(np.count_nonzero(np.abs(op.weight) >= 8)) for op in model.ops if op.kind == "dense")
    assert 0 < products[4] <= wide  # weights of more than 4 bits (|w| >= 8) as '*'
    with pytest.raises(ConfigError, match="multiplier"):
        write_rtl(model, tmp_path / "bad", multiplier="booth")


# test_rtl.py simulates pipeline 'layer' and N with the default shift-and-add
@pytest.mark.parametrize("pipeline,multiplier", [("auto", "shift_add"), (1, 4)])
@pytest.mark.slow
def test_rtl_equals_emulator(pipeline, multiplier, tmp_path):
    rng = np.random.default_rng(3)
    model = mlp((8, 12, 4), seed=5)
    design = write_rtl(model, tmp_path / "rtl", top="cmvm_top", pipeline=pipeline, multiplier=multiplier,
                       clock_period_ns=2.5)
    raw = case_inputs(model, 200, seed=int(rng.integers(1000)))
    assert _mismatches(design, model, raw, tmp_path / "sim") == 0
    print(f"pipeline={pipeline} multiplier={multiplier}: latency {design.latency_cycles}, "
          f"ns per stage {design.stage_delay_ns}")


@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_pipeline_auto_meets_the_clock(tmp_path):
    """Every stage's estimated longest path within the clock period (a single statement slower than the
    clock, such as a rounding and saturating cast at 1.5 ns, would get a stage of its own), fewer stages at a
    slower clock."""
    model = mlp((16, 32, 12, 5), seed=1)
    layer = write_rtl(model, tmp_path / "layer", pipeline="layer")
    latency = {}
    for clock in (5.0, 3.0, 2.5):
        design = write_rtl(model, tmp_path / str(clock), pipeline="auto", clock_period_ns=clock)
        assert design.pipeline == "auto" and design.max_delay_ns == clock
        assert len(design.stage_delay_ns) == design.latency_cycles
        assert max(design.stage_delay_ns) <= clock, (clock, design.stage_delay_ns)
        latency[clock] = design.latency_cycles
    assert max(layer.stage_delay_ns) > 3.0  # a whole layer per stage misses a 3 ns clock
    assert latency[2.5] >= latency[3.0] > latency[5.0] and latency[2.5] > latency[5.0]
    print(f"latency: layer {layer.latency_cycles} ({max(layer.stage_delay_ns)} ns), auto {latency}")


@pytest.mark.slow
def test_a_flipped_bit_in_a_generated_adder_is_caught(tmp_path):
    rng = np.random.default_rng(8)
    model = _dense_model(rng)
    design = write_rtl(model, tmp_path / "rtl", top="flip_top")
    raw = case_inputs(model, 200, seed=4)
    assert _mismatches(design, model, raw, tmp_path / "sim_ok") == 0
    module = next(p for p in design.sources if p.name != "flip_top.v")
    text = module.read_text()
    adders = re.findall(r"^    wire signed \[(\d+):0\] (\w+) = (\$signed\(.*_y\}?\));$", text, flags=re.M)
    assert len(adders) > 10
    msb, name, expr = adders[len(adders) // 2]
    flipped = f"    wire signed [{msb}:0] {name} = ({expr}) ^ {int(msb) + 1}'sd4;"  # bit 2 of one adder inverted
    module.write_text(text.replace(f"    wire signed [{msb}:0] {name} = {expr};", flipped))
    assert module.read_text() != text
    bad = _mismatches(design, model, raw, tmp_path / "sim_flipped")
    assert bad > 0
    print(f"flipped bit 2 of {name}: {bad} of {len(raw)} vectors mismatch")


@pytest.mark.parametrize("kind", ["relu", "linear"])
@pytest.mark.slow
def test_every_cast_is_exact_on_every_input(kind, tmp_path):
    """builder.requant reads overflow from the floor beside a short incrementer and folds a preceding
    relu into its output bits: every rounding x overflow mode x signedness, shifted right (rounding
    and overflowing), not at all and left, against FixedFormat.cast on every input value."""
    src = F("fixed<9,4>")
    formats = [FixedFormat(width, integer, signed, rounding, overflow)
               for rounding in ROUNDING_CHAIN for overflow in ("WRAP", "SAT", "SAT_SYM", "SAT_ZERO")
               for signed in (True, False) for width, integer in ((4, 2), (6, 1), (5, 5), (3, -1), (12, 4))]
    inputs, outputs = T(src, len(formats)), TensorType(tuple(formats))
    m = ModuleBuilder("casts")
    ys = []
    for i, (lsb, dst) in enumerate(zip(inputs.offsets, formats)):
        x = m.unpack(f"x{i}", lsb, src)
        ys.append(m.requant(f"y{i}", m.relu(f"r{i}", x) if kind == "relu" else x, src, dst))
    assert sum(st["kind"] == "requant" and st["spec"]["relu"] for st in m.statements) == (
        len(formats) if kind == "relu" else 0)
    finish_module(m, ys, inputs, outputs, "casts", kind, 0)
    top = standard_top("casts_top", "every cast", inputs.elements(), outputs.elements(), [stage_of(m)], 1)
    (tmp_path / "casts_top.v").write_text(top)
    sources = [tmp_path / "casts_top.v", write_module(m, tmp_path, "casts_top")]
    raw = np.arange(src.min_raw, src.max_raw + 1, dtype=np.int64)
    result = simulate(sources, "casts_top", inputs.to_bits(np.repeat(raw[:, None], len(formats), axis=1)),
                      inputs.widths, outputs.widths, simulator="icarus", build_dir=tmp_path / "sim", max_latency=10)
    got = outputs.from_bits(result.outputs)
    before = np.maximum(raw, 0) if kind == "relu" else raw
    expected = np.stack([dst.cast(before, src) for dst in formats], axis=1)
    bad = np.argwhere(got != expected)
    assert bad.size == 0, (f"{len(bad)} mismatches; first: input {raw[bad[0][0]]} to {formats[bad[0][1]]}: "
                           f"got {got[tuple(bad[0])]}, expected {expected[tuple(bad[0])]}")
    assert result.latency_cycles == 1


def test_adder_ranges_are_exact_when_both_operands_hold_an_input():
    """(x0 + 4 x1) - x0: the range of its linear form, exactly 4 x1's, where adding the operands' ranges gives 4
    bits more; constant_matvec sizes its adders so (never wider than the operands' ranges give, narrower on a
    layer with shared subexpressions)."""
    m = ModuleBuilder("forms")
    x0, x1 = m.unpack("x0", 0, F("fixed<8,8>")), m.unpack("x1", 8, F("fixed<4,4>"))
    forms = builder._Forms([x0, x1])
    a = m.shift_add("a", x0, 0, x1, 2, False, None, forms.combine(x0, 0, x1, 2, 1))
    forms.name(a)
    exact = m.shift_add("d", a, 0, x0, 0, True, None, forms.combine(a, 0, x0, 0, -1))
    plain = m.shift_add("p", a, 0, x0, 0, True)
    assert (exact.lo, exact.hi, exact.width) == (-32, 28, 6) and (plain.lo, plain.hi, plain.width) == (-287, 283, 10)

    def adder_bits(with_forms: bool) -> int:
        rng = np.random.default_rng(4)
        matrix = rng.integers(-32, 32, (16, 24)).astype(object)
        mb = ModuleBuilder("layer")
        xs = [mb.unpack(f"x{i}", 6 * i, F("ufixed<6,0>")) for i in range(16)]
        if not with_forms:
            mb_forms = builder._Forms.combine
            builder._Forms.combine = lambda self, *args: None
        try:
            mb.constant_matvec("", xs, matrix, [0] * 24)
        finally:
            if not with_forms:
                builder._Forms.combine = mb_forms
        return sum(st["out"].width for st in mb.statements if st["kind"] == "shift_add")

    exact_bits, plain_bits = adder_bits(True), adder_bits(False)
    assert exact_bits < plain_bits, (exact_bits, plain_bits)
    print(f"adder result bits: {exact_bits} from exact ranges, {plain_bits} from operand ranges")


def _cast_then_relu(src: str, with_relu: bool, n: int = 8) -> FirmwareModel:
    from trigger.ir.ops.activation import Linear, Relu

    cast = F("fixed<16,6,RND_CONV,SAT>")
    ops = [Linear("cast", T(F(src), n), T(cast, n))]
    if with_relu:
        ops.append(Relu("relu", ops[0].output, T(cast, n)))
    return FirmwareModel("cast_relu", T(F(src), n), ops)


def test_a_relu_after_a_saturating_cast_shares_its_stage(tmp_path):
    """At 240 MHz a rounding, saturating cast fills most of a stage; the relu after it adds no LUT level (its LUT
    merges into the saturation multiplexer's), so both take one stage, not two."""
    clock = 1000 / 240
    alone = write_rtl(_cast_then_relu("fixed<32,16>", False), tmp_path / "alone", pipeline="auto",
                      clock_period_ns=clock)
    both = write_rtl(_cast_then_relu("fixed<32,16>", True), tmp_path / "both", pipeline="auto", clock_period_ns=clock)
    assert both.latency_cycles == alone.latency_cycles == 2  # the input register, the cast (+ relu), the output's
    assert both.stage_delay_ns == alone.stage_delay_ns and max(both.stage_delay_ns) <= clock


@pytest.mark.slow
@pytest.mark.parametrize("src", ["fixed<32,16>", "fixed<30,14>"])
def test_a_relu_merged_into_a_cast_stays_within_the_estimate_in_yosys(src, tmp_path):
    """Yosys sta of the cast + relu stage is within the builder's estimate of it (less the input register's clock-to-
    output, which the module's sta does not see): the estimate that gives the relu no level is not optimistic."""
    from trigger.backends.rtl.builder import CLOCK_TO_Q_NS
    from trigger.frontends import DEFAULT_PART
    from trigger.synth import synthesize

    clock = 1000 / 240
    # two elements: each is the same independent path, and Yosys's time grows with their number
    design = write_rtl(_cast_then_relu(src, True, n=2), tmp_path / "rtl", top="cast_relu", pipeline="auto",
                       clock_period_ns=clock)
    res = synthesize(design.sources, design.top, DEFAULT_PART, work_dir=tmp_path / "yosys")
    estimate = max(design.stage_delay_ns) - CLOCK_TO_Q_NS
    assert 0 < res["critical_path_ns"] <= estimate, (res["critical_path_ns"], estimate)
    print(f"{src}: Yosys sta {res['critical_path_ns']} ns, builder {estimate:.3f} ns")


def test_shared_outputs_in_hold_registers_get_no_output_register():
    """pipeline auto on a shared design (II 3): the last op ends in its hold registers, which are the module's
    outputs; another register after them would only add a cycle."""
    from trigger.backends.rtl import build_chain_module
    from trigger.ir.ii import resolve_ii

    model = mlp((6, 10, 4), seed=2)
    ii, op_ii = resolve_ii(model, 3, None, 5.0)
    m, latencies = build_chain_module(model, "shared", 5.0, None, op_ii)
    kinds = {st["out"].name: st["kind"] for st in m.statements}
    assert [kinds[o["sig"].name] for o in m.outputs] == ["hold"] * 4
    assert m.latency == sum(latencies.values()) == max(o["sig"].stage for o in m.outputs)
