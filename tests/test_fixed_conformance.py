"""trigger.fixed against the ap_types headers that hls4ml ships, compiled with g++.

Random formats cover every rounding and overflow mode; the values include the
exact range limits, half-LSB ties, values far out of range, tiny values and
negative zero. Equality is on raw integers; the figures are written to
``conformance.json`` in the test's temporary folder and printed.
"""

import itertools
import json
import subprocess

import jinja2
import numpy as np
import pytest

from tests.helpers import CONFORMANCE, SEED
from trigger.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat
from trigger.toolchain import ap_types_include, find_tool

N_FORMATS = 60
N_CAST_PAIRS = 60
RANDOM_VALUES_PER_FORMAT = 1800
RANDOM_RAWS_PER_PAIR = 1200


def random_formats(rng, n):
    """n formats; the first 28 take each (rounding, overflow) pair once, the rest at random."""
    modes = list(itertools.product(ROUNDING_MODES, OVERFLOW_MODES))
    formats = []
    for i in range(n):
        rounding, overflow = modes[i] if i < len(modes) else modes[rng.integers(len(modes))]
        width = int(rng.choice([1, 2, 3, 4, 6, 8, 12, 16, 18, 24, 32, 40, 48]) if i % 3 else rng.integers(1, 49))
        signed = bool(rng.integers(2)) if width > 1 else False
        integer = int(rng.integers(-4, width + 7))
        formats.append(FixedFormat(width, integer, signed, rounding, overflow))
    return formats


def edge_values(fmt):
    """Real values at and around the places where ap_fixed behaves differently."""
    lsb = fmt.lsb
    raws = [fmt.min_raw, fmt.max_raw, 0, 1, -1]
    values = []
    for r in raws:
        for d in (-2, -1, 0, 1, 2):
            for frac in (0.0, 0.25, 0.5, 0.75, -0.5):
                values.append((r + d + frac) * lsb)
    big = [fmt.max_value * 2, fmt.min_value * 2 - lsb, 1e10, 1e300, 2.0 ** (fmt.integer + 10), 5e-324, 1e-300,
           lsb / 2, lsb / 4, 3 * lsb / 2, 1.0, 0.5]
    values += big + [-v for v in big] + [0.0, -0.0]
    return np.array(values, dtype=np.float64)


def random_values(rng, fmt, n):
    """Values in and beyond the range, a third of them exact half-LSB ties."""
    span = max(abs(fmt.min_value), abs(fmt.max_value), fmt.lsb)
    uniform = rng.uniform(-1.5 * span, 1.5 * span, n // 3)
    ties = (rng.integers(fmt.min_raw - 4, fmt.max_raw + 5, n // 3, dtype=np.int64) + 0.5) * fmt.lsb
    logs = np.exp2(rng.uniform(-fmt.fractional - 4, fmt.integer + 4, n - 2 * (n // 3))) * rng.choice([-1, 1], n - 2 * (n // 3))
    return np.concatenate([uniform, ties, logs])


def source_raws(rng, fmt, n):
    edges = np.array([fmt.min_raw, fmt.min_raw + 1, fmt.max_raw, fmt.max_raw - 1, 0, 1, -1], dtype=np.int64)
    edges = edges[fmt.contains(edges)]
    return np.concatenate([edges, rng.integers(fmt.min_raw, fmt.max_raw + 1, n, dtype=np.int64)])


@pytest.fixture(scope="module")
def conformance(tmp_path_factory):
    gxx = find_tool("g++")
    if gxx is None:
        pytest.fail("g++ not found: run `make setup` (scripts/install_system_tools.sh installs it)")
    rng = np.random.default_rng(SEED)
    quantize_formats = random_formats(rng, N_FORMATS)
    quantize_formats += [FixedFormat.parse(t) for t in ("ap_int<8>", "ap_uint<8>", "int<33>", "uint<1>")]
    cast_pairs = list(zip(random_formats(rng, N_CAST_PAIRS), random_formats(rng, N_CAST_PAIRS)))
    cast_pairs += [(FixedFormat.parse(a), FixedFormat.parse(b)) for a, b in (
        ("fixed<16,6,RND,SAT>", "ap_int<8>"), ("ap_int<8>", "fixed<6,2,RND_CONV,SAT>"),
        ("ufixed<10,4>", "ap_uint<3>"), ("fixed<12,14>", "ap_int<5>"), ("ap_uint<9>", "ap_int<4>"))]

    quantize_inputs = [np.concatenate([edge_values(f), random_values(rng, f, RANDOM_VALUES_PER_FORMAT)])
                       for f in quantize_formats]
    cast_inputs = [source_raws(rng, src, RANDOM_RAWS_PER_PAIR) for src, _ in cast_pairs]

    work = tmp_path_factory.mktemp("conformance")
    template = jinja2.Environment(loader=jinja2.FileSystemLoader(CONFORMANCE),
                                  undefined=jinja2.StrictUndefined).get_template("ap_fixed_harness.cpp.j2")
    cases = [{"cpp": f.cpp, "width": f.width} for f in quantize_formats]
    pairs = [({"cpp": s.cpp, "width": s.width}, {"cpp": d.cpp, "width": d.width}) for s, d in cast_pairs]
    (work / "harness.cpp").write_text(template.render(quantize_cases=cases, cast_cases=pairs))
    subprocess.run([gxx, "-O1", "-std=c++14", "-DNDEBUG", "-I", str(ap_types_include()), "harness.cpp", "-o", "harness"],
                   cwd=work, check=True)

    with open(work / "in.bin", "wb") as fh:
        for i, values in enumerate(quantize_inputs):
            fh.write(np.array([0, i], np.int32).tobytes() + np.array([values.size], np.int64).tobytes())
            fh.write(values.tobytes())
        for i, raws in enumerate(cast_inputs):
            fh.write(np.array([1, i], np.int32).tobytes() + np.array([raws.size], np.int64).tobytes())
            fh.write((raws & np.int64((1 << cast_pairs[i][0].width) - 1)).tobytes())
    subprocess.run([str(work / "harness"), "in.bin", "out.bin"], cwd=work, check=True, capture_output=True)
    out = np.fromfile(work / "out.bin", dtype=np.uint64).astype(np.int64)

    results = {"quantize": [], "cast": []}
    pos = 0
    for fmt, values in zip(quantize_formats, quantize_inputs):
        expected = fmt.from_bits(out[pos:pos + values.size])
        pos += values.size
        results["quantize"].append((fmt, values, expected, fmt.quantize(values)))
    for (src, dst), raws in zip(cast_pairs, cast_inputs):
        expected = dst.from_bits(out[pos:pos + raws.size])
        pos += raws.size
        results["cast"].append(((src, dst), raws, expected, dst.cast(raws, src)))
    assert pos == out.size
    return work, results


def _mismatch_report(rows):
    total = sum(r[1].size for r in rows)
    bad = [(key, inputs[expected != got][0], expected[expected != got][0], got[expected != got][0],
            int(np.count_nonzero(expected != got))) for key, inputs, expected, got in rows if np.any(expected != got)]
    return total, bad


@pytest.mark.slow
def test_quantize_matches_ap_fixed(conformance):
    work, results = conformance
    total, bad = _mismatch_report(results["quantize"])
    formats = {str(r[0]) for r in results["quantize"]}
    summary = {"values": total, "formats": len(formats), "mismatches": sum(b[-1] for b in bad)}
    (work / "quantize.json").write_text(json.dumps(summary))
    print(f"quantize conformance: {summary}")
    assert total >= 100_000 and len(formats) >= 50
    assert not bad, "first mismatches (format, input, ap_fixed, trigger, count): " + repr(bad[:5])


@pytest.mark.slow
def test_cast_matches_ap_fixed(conformance):
    work, results = conformance
    total, bad = _mismatch_report(results["cast"])
    summary = {"values": total, "pairs": len(results["cast"]), "mismatches": sum(b[-1] for b in bad)}
    (work / "cast.json").write_text(json.dumps(summary))
    print(f"cast conformance: {summary}")
    assert total >= 50_000
    assert not bad, "first mismatches ((from, to), raw, ap_fixed, trigger, count): " + repr(bad[:5])


@pytest.mark.slow
def test_every_mode_is_covered(conformance):
    _, results = conformance
    seen = {(f.rounding, f.overflow) for f, *_ in results["quantize"]}
    seen |= {(d.rounding, d.overflow) for (s, d), *_ in results["cast"]}
    assert seen >= set(itertools.product(ROUNDING_MODES, OVERFLOW_MODES))
