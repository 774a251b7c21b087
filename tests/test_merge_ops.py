"""The merge ops (merge, concatenate, dot) against hls4ml's nnet_merge.h, and their RTL against them.

(a) Every case is compiled with g++ into one harness (tests/conformance/nnet_merge_harness.cpp.j2)
calling nnet_merge.h's own functions with the ap_types hls4ml ships, over format families that
cover signed and unsigned inputs of different formats, outputs narrower than exact in every
rounding mode (TRN, RND, RND_CONV, ...) and overflow mode (WRAP, SAT, SAT_SYM, SAT_ZERO),
broadcasting merges, every concatenation axis hls4ml supports and dot1d with wrapping,
saturating and rounding accumulators; the raw integers must equal the ops' emulate().
(b) The RTL of every op, for several format families (one graph model: per family, two input ports
feed every op), simulated under Verilator, equals the emulator.
(c) A QKeras functional model with every Keras merge layer goes through build_bundle +
verify_bundle: emulator == HLS C simulation == RTL == the source model, 0 mismatches.
"""

from __future__ import annotations

import itertools
import math
import subprocess

import jinja2
import numpy as np
import pytest

from tests.helpers import CONFORMANCE, SEED
from trigger.errors import FirmwareModelError
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType, emulate
from trigger.ir.model import join
from trigger.ir.ops.concatenate import Concatenate, concatenate_function, concatenate_index
from trigger.ir.ops.dot import Dot
from trigger.ir.ops.merge import OPERATIONS, Merge, aligned_format
from trigger.toolchain import ap_types_include, find_tool

F = FixedFormat.parse
T = TensorType.uniform
NNET_UTILS = ap_types_include().parent / "nnet_utils"
RANDOM_VECTORS = 2500  # random raw vectors per case (plus edge, tie and pairing rows)
RTL_VECTORS = 3000

# (name, input1, input2, output or None for hls4ml's inferred type, dot accumulator)
FAMILIES = [
    ("s_same_trn_wrap", "fixed<10,4>", "fixed<10,4>", "fixed<7,3,TRN,WRAP>", "fixed<12,5,TRN,WRAP>"),
    ("s_u_rnd_sat", "fixed<9,3>", "ufixed<7,2>", "fixed<6,2,RND,SAT>", "fixed<13,5,RND,SAT>"),
    ("s_mixed_rndconv_satsym", "fixed<12,6>", "fixed<8,1>", "fixed<8,4,RND_CONV,SAT_SYM>",
     "fixed<16,7,RND_CONV,SAT_SYM>"),
    ("u_u_rndconv_wrap", "ufixed<8,3>", "ufixed<6,4>", "ufixed<5,3,RND_CONV,WRAP>", "ufixed<12,8,RND_CONV,WRAP>"),
    ("int_fixed_rnd_sat", "ap_int<6>", "fixed<7,2>", "fixed<6,4,RND,SAT>", "fixed<12,8,TRN,WRAP>"),
    ("s_u_rndinf_satzero", "fixed<11,5>", "ufixed<9,5>", "fixed<7,3,RND_INF,SAT_ZERO>",
     "fixed<14,9,RND_ZERO,SAT_ZERO>"),
    ("neg_frac_rndmininf_sat", "fixed<6,8>", "fixed<6,-1>", "fixed<10,4,RND_MIN_INF,SAT>",
     "fixed<14,10,RND_MIN_INF,SAT>"),
    ("signed_to_unsigned_trnzero_sat", "fixed<8,2>", "fixed<9,4>", "ufixed<6,3,TRN_ZERO,SAT>",
     "fixed<10,6,TRN,SAT>"),
    ("ints_to_int_wrap", "ap_int<6>", "ap_uint<5>", "ap_int<5>", "ap_int<9>"),
    ("fixed_to_int_trnzero", "fixed<9,4>", "ufixed<7,2>", "ap_int<4>", "fixed<12,7,RND,SAT>"),
    ("hls4ml_inferred", "fixed<10,4>", "ufixed<7,3>", None, "fixed<24,10>"),
    ("hls4ml_inferred_signed", "fixed<8,1>", "fixed<12,6>", None, "fixed<24,10>"),
]
MERGE_N = 8
DOT_N = 5
CONCAT_SHAPES = [  # (shape1, shape2, keras axis)
    ((5,), (3,), -1),
    ((3, 4), (3, 2), -1), ((3, 4), (3, 2), 2), ((2, 3), (4, 3), 1), ((2, 3), (1, 3), -2),
    ((2, 3, 2), (2, 3, 3), -1), ((2, 3, 2), (2, 3, 1), 3), ((2, 1, 3), (2, 2, 3), 2), ((2, 2, 3), (2, 1, 3), -2),
    ((1, 2, 3), (2, 2, 3), 1), ((2, 2, 2), (1, 2, 2), -3),
]


def hls4ml_result(operation: str, f1: FixedFormat, f2: FixedFormat, n: int = 1) -> FixedFormat:
    """The result_t hls4ml's precision inference (infer_precision.py) gives a merge of f1 and f2."""
    signed = f1.signed or f2.signed
    if operation in ("add", "subtract", "average"):
        integer = max(f1.integer + (f2.signed and not f1.signed), f2.integer + (f1.signed and not f2.signed)) + 1
        return FixedFormat(integer + max(f1.fractional, f2.fractional), integer, signed or operation == "subtract")
    if operation == "multiply":
        return FixedFormat(f1.width + f2.width, f1.integer + f2.integer, signed)
    if operation == "dot":
        extra = math.ceil(np.log2(n))
        return FixedFormat(f1.width + f2.width + extra, f1.integer + f2.integer + extra, signed)
    return f1 if f1 == f2 else aligned_format(f1, f2)  # maximum, minimum, concatenate


def two_input_model(op, n1: int, n2: int) -> FirmwareModel:
    """A graph model whose two input ports a and b feed ``op``."""
    a, b = TensorType(op.input.formats[:n1]), TensorType(op.input.formats[n1:])
    model = FirmwareModel(op.name, join([a, b], ["a", "b"]), [op], ports=[("a", n1), ("b", n2)],
                          reads={op.name: ["a", "b"]})
    model.validate()
    return model


def merge_op(name, operation, f1, f2, out, n1=MERGE_N, n2=MERGE_N) -> Merge:
    out = out or hls4ml_result(operation, f1, f2)
    return Merge(name, join([T(f1, n1), T(f2, n2)]), T(out, max(n1, n2)), operation, [n1, n2])


def dot_op(name, f1, f2, out, accum, n=DOT_N, product="mult") -> Dot:
    out = out or hls4ml_result("dot", f1, f2, n)
    return Dot(name, join([T(f1, n), T(f2, n)]), T(out, 1), [n, n], accum, product)


def concatenate_op(name, f1, f2, out, shape1, shape2, axis) -> Concatenate:
    out = out or hls4ml_result("concatenate", f1, f2)
    n1, n2 = int(np.prod(shape1)), int(np.prod(shape2))
    return Concatenate(name, join([T(f1, n1), T(f2, n2)]), T(out, n1 + n2), [n1, n2],
                       concatenate_index(shape1, shape2, axis))


def conformance_cases() -> list[dict]:
    """Every (family, op) case: the op, and what the C++ harness needs to call nnet_merge.h."""
    cases = []
    for fam, s1, s2, so, sa in FAMILIES:
        f1, f2, out, acc = F(s1), F(s2), F(so) if so else None, F(sa)
        # hls4ml's broadcast (data[i % n]): a smaller second, a smaller first, a single element
        sizes = [(MERGE_N, MERGE_N)] + {"s_same_trn_wrap": [(MERGE_N, 3)], "s_u_rnd_sat": [(2, MERGE_N)],
                                        "hls4ml_inferred": [(MERGE_N, 1)]}.get(fam, [])
        for operation, (n1, n2) in itertools.product(OPERATIONS, sizes):
            op = merge_op(f"{operation}", operation, f1, f2, out, n1, n2)
            cases.append(dict(family=fam, op=op, kind="merge", function=operation, n1=n1, n2=n2,
                              label=f"{fam} {operation} {n1}x{n2}"))
        op = dot_op("dot", f1, f2, out, acc)
        cases.append(dict(family=fam, op=op, kind="dot", function="dot1d", n1=DOT_N, n2=DOT_N, product="mult",
                          label=f"{fam} dot1d"))
        for shape1, shape2, axis in CONCAT_SHAPES if fam == "s_u_rnd_sat" else CONCAT_SHAPES[:4]:
            op = concatenate_op("concatenate", f1, f2, out, shape1, shape2, axis)
            fn = f"concatenate{len(shape1)}d"
            cases.append(dict(family=fam, op=op, kind="concatenate", function=fn, n1=op.input_sizes[0],
                              n2=op.input_sizes[1], shape1=list(shape1) + [0] * (3 - len(shape1)),
                              shape2=list(shape2) + [0] * (3 - len(shape2)), axis=axis,
                              label=f"{fam} {concatenate_function(len(shape1), axis)} {shape1}+{shape2} axis {axis}"))
    # nnet_mult.h's weight_ternary product (data2 an ap_int<2>: -2 gives +a), and more accumulators
    for fam, s1, s2, so, sa, product in [
            ("dot_ternary", "fixed<8,3>", "ap_int<2>", "fixed<8,5,TRN,WRAP>", "fixed<11,6,RND_CONV,SAT>",
             "weight_ternary"),
            ("dot_ternary_wrap", "ufixed<7,2>", "ap_int<2>", "fixed<6,3,RND,SAT_SYM>", "fixed<8,4,TRN,WRAP>",
             "weight_ternary"),
            ("dot_rounded_products", "fixed<12,4>", "fixed<10,2>", "fixed<9,5,RND_CONV,SAT>", "fixed<13,7,RND,WRAP>",
             "mult"),
            ("dot_unsigned_sat", "ufixed<8,4>", "ufixed<8,2>", "ufixed<7,6,RND,SAT>", "ufixed<10,8,TRN,SAT>", "mult")]:
        op = dot_op("dot", F(s1), F(s2), F(so), F(sa), DOT_N, "ternary" if product == "weight_ternary" else "mult")
        cases.append(dict(family=fam, op=op, kind="dot", function="dot1d", n1=DOT_N, n2=DOT_N, product=product,
                          label=f"{fam} dot1d"))
    for c in cases:
        op = c["op"]
        c["model"] = two_input_model(op, c["n1"], c["n2"])
        f1, f2 = op.input.formats[0], op.input.formats[-1]
        c.update(in1_cpp=f1.cpp, in2_cpp=f2.cpp, out_cpp=op.output.formats[0].cpp, in1_width=f1.width,
                 in2_width=f2.width, out_width=op.output.formats[0].width, n_out=op.output.n,
                 accum_cpp=op.accum_fmt.cpp if c["kind"] == "dot" else "")
    return cases


def edges(fmt: FixedFormat) -> list[int]:
    values = [fmt.min_raw, fmt.min_raw + 1, fmt.max_raw, fmt.max_raw - 1, 0, 1, -1, fmt.max_raw // 2 + 1]
    return sorted({v for v in values if fmt.min_raw <= v <= fmt.max_raw})


def vectors(rng, f1: FixedFormat, f2: FixedFormat, n1: int, n2: int, n_random: int) -> np.ndarray:
    """Raw rows (data1 then data2): every pairing of the two inputs' edge values, exact ties (b = a
    cast into b's format, so maximum/minimum compare equal values of different formats, subtract
    gives 0), then uniform draws."""
    pairs = list(itertools.product(edges(f1), edges(f2)))
    n = max(n1, n2)
    rows = []
    for start in range(0, len(pairs), n):
        chunk = pairs[start:start + n] + pairs[:max(0, start + n - len(pairs))]
        a, b = np.zeros(n1, np.int64), np.zeros(n2, np.int64)
        for i, (p, q) in enumerate(chunk):
            a[i % n1], b[i % n2] = p, q
        rows.append(np.concatenate([a, b]))
    low = np.array([f1.min_raw] * n1 + [f2.min_raw] * n2, dtype=np.int64)
    high = np.array([f1.max_raw] * n1 + [f2.max_raw] * n2, dtype=np.int64) + 1
    rand = rng.integers(low, high, (n_random, n1 + n2), dtype=np.int64)
    ties = rng.integers(low, high, (max(n_random // 5, 50), n1 + n2), dtype=np.int64)
    for i in range(n):
        ties[:, n1 + i % n2] = f2.with_modes("TRN", "SAT").cast(ties[:, i % n1], f1)
    return np.vstack([np.array(rows, dtype=np.int64), ties, rand])


@pytest.fixture(scope="module")
def conformance(tmp_path_factory):
    """Every case through nnet_merge.h (one g++ compilation) and through the ops' emulators."""
    gxx = find_tool("g++")
    if gxx is None:
        pytest.fail("g++ not found: run `make setup`")
    cases = conformance_cases()
    work = tmp_path_factory.mktemp("nnet_merge")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(CONFORMANCE), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    text = env.get_template("nnet_merge_harness.cpp.j2").render(
        cases=[{k: v for k, v in c.items() if k not in ("op", "model")} for c in cases])
    (work / "harness.cpp").write_text(text)
    # -O0: the 180 template instantiations compile in half the time of -O1 and run in a few seconds
    run = subprocess.run([gxx, "-O0", "-std=c++14", "-w", "-I", str(ap_types_include()), "-I", str(NNET_UTILS),
                          "harness.cpp", "-o", "harness"], cwd=work, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    rng = np.random.default_rng(SEED)
    inputs = [vectors(rng, c["op"].input.formats[0], c["op"].input.formats[-1], c["n1"], c["n2"], RANDOM_VECTORS)
              for c in cases]
    with open(work / "in.bin", "wb") as fh:
        for k, (c, raw) in enumerate(zip(cases, inputs)):
            fh.write(np.array([k, 0], np.int32).tobytes() + np.array([len(raw)], np.int64).tobytes())
            fh.write(np.ascontiguousarray(c["model"].input.to_bits(raw), dtype=np.int64).tobytes())
    subprocess.run([str(work / "harness"), "in.bin", "out.bin"], cwd=work, check=True, capture_output=True)
    out = np.fromfile(work / "out.bin", dtype=np.uint64).astype(np.int64)
    results, pos = [], 0
    for c, raw in zip(cases, inputs):
        model = c["model"]
        size = len(raw) * model.output.n
        expected = model.output.from_bits(out[pos:pos + size].reshape(len(raw), model.output.n))
        pos += size
        got = emulate(model, raw)
        results.append((c, raw, expected, got))
    assert pos == out.size
    return results


@pytest.mark.slow
def test_emulators_equal_nnet_merge(conformance):
    """Equal raw integers on every vector of every case; the counts per family and op are printed."""
    lines, bad, total = [], [], 0
    for c, raw, expected, got in conformance:
        mism = int(np.count_nonzero(np.any(expected != got.outputs, axis=1)))
        overflows = sum(v.overflows for v in got.overflows[c["op"].name].values())
        total += len(raw)
        lines.append(f"{c['label']}: {len(raw)} vectors, {mism} mismatches, {overflows} overflows")
        if mism:
            row = int(np.flatnonzero(np.any(expected != got.outputs, axis=1))[0])
            bad.append(f"{c['label']}: {mism}/{len(raw)} differ; first input {raw[row].tolist()}: "
                       f"nnet_merge.h {expected[row].tolist()} emulator {got.outputs[row].tolist()}")
    print("\n".join(lines))
    print(f"{len(conformance)} cases, {total} vectors, {len(bad)} cases with mismatches")
    assert not bad, "\n".join(bad[:10])


@pytest.mark.slow
def test_conformance_cases_exercise_rounding_and_overflow(conformance):
    """The comparison is only strong if the narrow outputs really round, saturate and wrap."""
    seen = set()
    for c, raw, expected, got in conformance:
        op = c["op"]
        fmt = op.output.formats[0]
        counts = got.overflows[op.name]
        if counts["output"].overflows:
            seen.add(("overflow", fmt.overflow, c["kind"]))
        if c["kind"] == "dot" and counts["accum"].overflows:
            seen.add(("accum", op.accum_fmt.overflow))
    for kind in ("merge", "dot", "concatenate"):
        for mode in ("WRAP", "SAT", "SAT_SYM", "SAT_ZERO"):
            assert ("overflow", mode, kind) in seen or kind != "merge", (mode, kind)
    assert ("accum", "WRAP") in seen and ("accum", "SAT") in seen
    rounding = {c["op"].output.formats[0].rounding for c, *_ in conformance}
    assert {"TRN", "RND", "RND_CONV", "RND_INF", "RND_MIN_INF", "TRN_ZERO"} <= rounding


@pytest.mark.slow
def test_output_ranges_hold_every_output(conformance):
    """output_ranges (the interval analysis the RTL and the accumulator widening rely on) bounds every output."""
    for c, raw, expected, got in conformance:
        bounds = c["model"].ranges()[-1]
        lo = np.array([iv.lo for iv in bounds])
        hi = np.array([iv.hi for iv in bounds])
        outside = (got.outputs < lo) | (got.outputs > hi)
        assert not outside.any(), f"{c['label']}: {int(outside.sum())} outputs outside {bounds}"


def test_average_halves_without_a_shift():
    """average = (a + b) * ap_ufixed<1,0>(0.5): the exact half; the output type's rounding decides."""
    f = F("fixed<6,3>")
    raw = np.array([[3, 0], [-3, 0], [5, 0], [-5, 0]], dtype=np.int64)  # halves 1.5, -1.5, 2.5, -2.5 LSB
    expect = {"TRN": [1, -2, 2, -3], "RND": [2, -1, 3, -2], "RND_CONV": [2, -2, 2, -2], "RND_ZERO": [1, -1, 2, -2]}
    for rounding, want in expect.items():
        model = two_input_model(merge_op("avg", "average", f, f, f.with_modes(rounding), 1, 1), 1, 1)
        assert emulate(model, raw).outputs[:, 0].tolist() == want, rounding


def test_ops_store_and_refuse_bad_fields():
    op = concatenate_op("c", F("fixed<8,3>"), F("ufixed<4,2>"), None, (2, 3), (2, 1), -1)
    model = two_input_model(op, 6, 2)
    again = FirmwareModel.from_dict(model.to_dict())
    assert again.ops[0].index.tolist() == op.index.tolist() == [0, 1, 2, 6, 3, 4, 5, 7]
    for op in (merge_op("m", "average", F("fixed<8,3>"), F("ufixed<4,2>"), F("fixed<6,2,RND,SAT>"), 4, 2),
               dot_op("d", F("fixed<8,3>"), F("ap_int<2>"), None, F("fixed<12,6,RND,SAT>"), 4, "ternary")):
        model = two_input_model(op, *op.input_sizes)
        again = FirmwareModel.from_dict(model.to_dict()).ops[0]
        assert again.to_dict() == op.to_dict() and again.describe() == op.describe()
    for bad in (Merge("m", T(F("fixed<8,3>"), 6), T(F("fixed<8,3>"), 3), "divide", [3, 3]),
                Merge("m", T(F("fixed<8,3>"), 6), T(F("fixed<8,3>"), 4), "add", [3, 3]),
                Dot("d", T(F("fixed<8,3>"), 6), T(F("fixed<8,3>"), 1), [4, 2], F("fixed<12,5>")),
                Concatenate("c", T(F("fixed<8,3>"), 4), T(F("fixed<8,3>"), 4), [2, 2], np.array([0, 1, 1, 3]))):
        with pytest.raises(FirmwareModelError):
            bad.validate()
    with pytest.raises(FirmwareModelError):
        concatenate_index((2, 3), (3, 2), -1)  # differ off the axis


# ------------------------------------------------------------------ RTL
def test_rtl_refuses_a_saturating_accumulator_that_can_overflow(tmp_path):
    """dot1d's sequential saturating sum is not an adder tree's: refused with a one-line error, as for dense."""
    from trigger.backends.rtl import write_rtl

    op = dot_op("dot", F("fixed<8,3>"), F("fixed<8,3>"), F("fixed<8,4>"), F("fixed<10,5,TRN,SAT>"), 6)
    with pytest.raises(FirmwareModelError, match="can overflow .* and saturates"):
        write_rtl(two_input_model(op, 6, 6), tmp_path / "rtl")


RTL_FAMILIES = [
    ("s_u_rnd_sat", "fixed<9,3>", "ufixed<7,2>", "fixed<6,2,RND,SAT>", "fixed<12,6,TRN,WRAP>", "mult"),
    ("mixed_rndconv_satsym", "fixed<12,6>", "fixed<8,1>", "fixed<8,4,RND_CONV,SAT_SYM>", "fixed<16,7,RND_CONV,WRAP>",
     "mult"),
    ("unsigned_trn_wrap", "ufixed<8,3>", "ufixed<6,4>", "ufixed<5,3,TRN,WRAP>", "ufixed<20,10,RND,SAT>", "mult"),
    ("int_ternary_satzero", "fixed<8,3>", "ap_int<2>", "fixed<7,3,RND_INF,SAT_ZERO>", "fixed<11,6,RND,SAT>",
     "ternary"),
]


def rtl_parts(family, prefix: str = ""):
    """Every merge op on the same two input ports (a: 6 elements, b: 6; b2: 2 for the broadcast add), each op an
    output: (ops, reads, ports, port types), names prefixed with ``prefix``."""
    name, s1, s2, so, sa, product = family
    f1, f2, out, acc = F(s1), F(s2), F(so), F(sa)
    n = 6
    ops = [merge_op(prefix + op, op, f1, f2, out, n, n) for op in OPERATIONS]
    ops.append(merge_op(prefix + "add_broadcast", "add", f1, f2, out, n, 2))
    ops.append(dot_op(prefix + "dot", f1, f2, out, acc, n, product))
    ops.append(concatenate_op(prefix + "concatenate", f1, f2, out, (2, 3), (2, 3), -1))
    a, b, b2 = prefix + "a", prefix + "b", prefix + "b2"
    reads = {op.name: [a, b] for op in ops}
    reads[prefix + "add_broadcast"] = [a, b2]
    return ops, reads, [(a, n), (b, n), (b2, 2)], [T(f1, n), T(f2, n), T(f2, 2)]


def _graph(name: str, parts: list) -> FirmwareModel:
    ops = [op for p in parts for op in p[0]]
    ports = [port for p in parts for port in p[2]]
    model = FirmwareModel(name, join([t for p in parts for t in p[3]], [port for port, _ in ports]), ops,
                          ports=ports, reads={k: v for p in parts for k, v in p[1].items()},
                          outputs=[op.name for op in ops])
    model.validate()
    return model


def rtl_model(family) -> FirmwareModel:
    """Every merge op of one format family on the same input ports, each op an output."""
    return _graph(f"merge_{family[0]}", [rtl_parts(family)])


def rtl_model_all_families() -> FirmwareModel:
    """The ops of every family of RTL_FAMILIES side by side in one design (ports and ops named <family>_...):
    one Verilator compile for all of them."""
    return _graph("merge_families", [rtl_parts(family, f"{family[0]}_") for family in RTL_FAMILIES])


def rtl_inputs() -> np.ndarray:
    """Per family of RTL_FAMILIES, the rows of ``vectors`` (every pairing of the edge values, ties, RTL_VECTORS
    random) on its ports a and b, and b's first two on b2; the families' blocks side by side (the ports' order
    in rtl_model_all_families), the shorter ones repeated."""
    blocks = []
    for family in RTL_FAMILIES:
        rows = vectors(np.random.default_rng(SEED), F(family[1]), F(family[2]), 6, 6, RTL_VECTORS)
        blocks.append(np.hstack([rows, rows[:, 6:8]]))
    n = max(len(b) for b in blocks)
    return np.hstack([np.resize(b, (n, b.shape[1])) for b in blocks])


@pytest.mark.slow
def test_rtl_equals_emulator(tmp_path):
    """The RTL of every op of every RTL family, one design simulated with Verilator, equals the emulator."""
    from tests.helpers import assert_same
    from trigger.backends.rtl import write_rtl
    from trigger.rtlsim import simulate

    model = rtl_model_all_families()
    raw = rtl_inputs()
    expected = emulate(model, raw)
    design = write_rtl(model, tmp_path / "rtl", top=f"{model.name}_top", pipeline="layer")
    result = simulate(design.sources, design.top, model.input.to_bits(raw), model.input.widths,
                      model.output.widths, simulator="verilator", build_dir=tmp_path / "sim",
                      data_files=design.data_files, max_latency=design.latency_cycles + 8)
    got = model.output.from_bits(result.outputs)
    assert_same(model, raw, expected.outputs, got, ("emulator", "rtl"), model.name)
    assert result.latency_cycles == design.latency_cycles
    counts = {op.name: expected.overflows[op.name]["output"].overflows for op in model.ops}
    assert all(counts[f"{family[0]}_{op}"] for family in RTL_FAMILIES for op in ("add", "multiply"))
    print(f"{model.name}: {len(raw)} vectors, 0 mismatches over {len(model.ops)} ops "
          f"(output overflows {counts}), latency {design.latency_cycles}")


# ------------------------------------------------------------------ end to end (a Keras functional model)
MERGE_LAYERS = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot")


def _randomize(layers, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.weights])


def merge_branch():
    """QKeras: x -> two QDense branches (a signed one with hls4ml's exact result type, an unsigned quantized_relu
    one) -> every Keras merge layer of the two, each an output of the model. Narrow enough that Keras' float32
    computes every merge exactly (so the source model equals the firmware)."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    x = tf.keras.Input(shape=(6,), name="x")
    a = QDense(4, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1),
               name="da")
    b = QDense(4, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1),
               name="db")
    ya, yb = a(x), QActivation(quantized_relu(7, 2), name="qb")(b(x))
    outs = [getattr(tf.keras.layers, cls)(name=cls.lower(), **({"axes": 1} if cls == "Dot" else {}))([ya, yb])
            for cls in MERGE_LAYERS]
    _randomize([a, b], 5)
    return x, outs


def concatenate_branch():
    """QKeras: two QDense branches reshaped to (2, 3) and (2, 2), concatenated along the last axis and
    (with the first branch again, as (3, 2) and (1, 2) pieces) along the first axis: nnet_merge.h's
    concatenate2d_1 and concatenate2d_0."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    x = tf.keras.Input(shape=(5,), name="xc")
    a = QDense(6, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1),
               name="dca")
    b = QDense(4, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1),
               name="dcb")
    ya, yb = a(x), QActivation(quantized_relu(6, 2), name="qcb")(b(x))
    last = tf.keras.layers.Concatenate(axis=-1, name="cat_last")(
        [tf.keras.layers.Reshape((2, 3), name="ra")(ya), tf.keras.layers.Reshape((2, 2), name="rb")(yb)])
    first = tf.keras.layers.Concatenate(axis=1, name="cat_first")(
        [tf.keras.layers.Reshape((3, 2), name="ra2")(ya), tf.keras.layers.Reshape((2, 2), name="rb2")(yb)])
    _randomize([a, b], 6)
    return x, [last, first]


def merges_and_concats():
    """Both branches in one model (one input each): one build and one 3-way verification for every merge layer
    and both concatenation axes. The inputs are listed in the order Keras writes their InputLayers in the JSON,
    the order the bus's ports take (test_layer_coverage.py says why)."""
    import json

    import tensorflow as tf

    tf.keras.utils.set_random_seed(5)
    (x, merges), (xc, concats) = merge_branch(), concatenate_branch()
    model = tf.keras.Model([xc, x], [*merges, *concats], name="merges")
    written = [layer["name"] for layer in json.loads(model.to_json())["config"]["layers"]
               if layer["class_name"] == "InputLayer"]
    assert model.input_names == written, (model.input_names, written)
    return model


def build_verify(tmp_path, model, name: str, hls: dict, vectors: int = 3000) -> dict:
    """A model folder (JSON, weights, trigger.yml), built with build_bundle and verified with Verilator."""
    import yaml

    from tests.keras_cases import save_model
    from trigger.bundle import build_bundle
    from trigger.frontends import BuildOptions
    from trigger.verify import verify_bundle

    folder = tmp_path / "model"
    folder.mkdir()
    path = save_model(model, folder, name)
    (folder / "trigger.yml").write_text(yaml.safe_dump({
        "kind": "network", "name": name, "model": {"file": path.name, "weights": f"{name}_weights.h5"},
        "hls": hls, "verify": {"vectors": vectors}}))
    out = build_bundle(folder, tmp_path / "bundle", BuildOptions(), progress=False)
    result = verify_bundle(out, simulator="verilator", progress=False)
    result["bundle"] = out
    print(f"{name} bundle: {result['vectors']} vectors, mismatches {result['mismatches']}, "
          f"source model: {result.get('source_model', {}).get('mismatches')} mismatches")
    return result


@pytest.mark.slow
def test_keras_merges_and_concatenate_axes_build_and_verify(tmp_path):
    """Every merge layer and both concatenation axes through build_bundle + verify_bundle: emulator == HLS C
    simulation == RTL, and == the source model."""
    import json

    from tests.helpers import assert_certified

    # hls4ml types an average like a sum (no extra fractional bit: the half is floored, unlike Keras' exact
    # mean): trigger types it exactly (network.merge_results_to_type_exactly), so the firmware equals the
    # source model, which the witness then requires. The Dot's accumulator is trigger's too (hls4ml infers
    # only a Dot's result type).
    result = build_verify(tmp_path, merges_and_concats(), "merges", {"input_precision": "fixed<6,2>"})
    stored = json.loads((result["bundle"] / "firmware_model.json").read_text())
    kinds = {op["name"]: op["op"] for op in stored["ops"]}
    assert [kinds[c.lower()] for c in MERGE_LAYERS] == ["merge"] * 6 + ["concatenate", "dot"]
    average = next(op for op in stored["ops"] if op["name"] == "average")
    assert stored["meta"]["exact_merge_results"] == {"average": average["output"]["format"].replace("ap_", "")
                                                     .replace(",AP_TRN,AP_WRAP", "")}
    index = {op["name"]: op["index"] for op in stored["ops"] if op["op"] == "concatenate"}
    assert index["cat_last"] == concatenate_index((2, 3), (2, 2), -1).tolist() != list(range(10))
    assert index["cat_first"] == list(range(10))
    assert_certified(result, 3000)
    assert result["source_model"]["exact"] is True
    assert result["source_model"]["mismatches"] == 0 and result["source_model"]["equal"] == 3000


@pytest.mark.parametrize("family", RTL_FAMILIES, ids=[f[0] for f in RTL_FAMILIES])
@pytest.mark.slow
def test_rtl_is_lint_clean(family, tmp_path):
    """Verilator -Wall finds nothing in the merge ops' Verilog (every width exact)."""
    from trigger.backends.rtl import write_rtl
    from trigger.toolchain import verilator_env

    design = write_rtl(rtl_model(family), tmp_path, top="lint_top", pipeline=1)
    verilator = find_tool("verilator")
    assert verilator, "verilator not found: run `make setup`"
    run = subprocess.run([verilator, "--lint-only", "-Wall", "--top-module", design.top, *map(str, design.sources)],
                         env=verilator_env(), capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr[:4000]


@pytest.mark.slow
def test_a_broadcast_nnet_merge_gets_wrong_is_refused(tmp_path):
    """Keras broadcasts a (2, 1) tensor over (2, 3) by rows; nnet_merge.h reads data2[i % 2]: a one-line error."""
    import tensorflow as tf
    from qkeras import QDense, quantized_bits

    from tests.keras_cases import save_model
    from trigger.errors import ModelError
    from trigger.frontends.network import convert

    x = tf.keras.Input(shape=(4,), name="x")
    a = tf.keras.layers.Reshape((2, 3), name="ra")(QDense(6, kernel_quantizer=quantized_bits(4, 0, alpha=1),
                                                          bias_quantizer=quantized_bits(4, 0, alpha=1), name="da")(x))
    b = tf.keras.layers.Reshape((2, 1), name="rb")(QDense(2, kernel_quantizer=quantized_bits(4, 0, alpha=1),
                                                          bias_quantizer=quantized_bits(4, 0, alpha=1), name="db")(x))
    path = save_model(tf.keras.Model(x, tf.keras.layers.Add(name="add")([a, b]), name="rows"), tmp_path, "rows")
    with pytest.raises(ModelError, match=r"layer add \(Merge\): broadcasting shape \[2, 1\] over \[2, 3\]"):
        convert({"json": str(path), "weights": str(tmp_path / "rows_weights.h5")},
                {"hls": {"input_precision": "fixed<8,3>"}})
