"""The firmware model (trigger.ir): storage, validation, range analysis; test vectors and bus packing;
and the range-analysis helpers of trigger.fixed against brute force."""

from __future__ import annotations

import json
from fractions import Fraction
from math import ceil, floor

import numpy as np
import pytest

from tests.firmware_cases import F, T, case_inputs, mlp, random_dense, relu, requant_chain, small_models
from tests.helpers import SEED
from trigger.errors import FirmwareModelError
from trigger.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat
from trigger.ir import FORMAT_VERSION, OPS, FirmwareModel, Interval, TensorType, emulate
from trigger.ir.model import CHAIN_FORMAT_VERSION
from trigger.ir.op import op_from_dict
from trigger.ir.ops.activation import Relu
from trigger.ir.ops.dense import Dense
from trigger.ir.ops.lookup import Lookup
from trigger.vectors import (cover, enumerate_values, pack_bytes, random_vectors, read_mem, test_vectors,
                             unpack_bytes, write_mem)

CASES = {**small_models(), "mlp": mlp(), "chain_sat_zero": requant_chain("SAT_ZERO"),
         "chain_wrap": requant_chain("WRAP")}


# ------------------------------------------------------------------ storage
@pytest.mark.parametrize("name", sorted(CASES))
def test_to_dict_from_dict_round_trip(name):
    model = CASES[name]
    data = json.loads(json.dumps(model.to_dict()))  # through JSON text, as firmware_model.json holds it
    assert data["format_version"] == CHAIN_FORMAT_VERSION  # a chain is stored as chains always were
    assert [op["op"] for op in data["ops"]] == [op.kind for op in model.ops]
    again = FirmwareModel.from_dict(data)
    assert again.to_dict() == model.to_dict()
    assert again.digest() == model.digest()
    assert [type(a) for a in again.ops] == [type(b) for b in model.ops]
    raw = case_inputs(model, 200)
    assert np.array_equal(emulate(again, raw).outputs, emulate(model, raw).outputs)


def test_save_load_round_trip_inline(tmp_path):
    model = small_models()["s6_scale"]
    written = model.save(tmp_path)
    assert written == [tmp_path / "firmware_model.json"]  # small arrays stay in the JSON
    stored = json.loads((tmp_path / "firmware_model.json").read_text())
    assert stored["format_version"] == CHAIN_FORMAT_VERSION and stored["name"] == "s6_scale"
    assert stored["input"] == {"n": 7, "format": "ap_fixed<6,2,AP_TRN,AP_WRAP>"}
    loaded = FirmwareModel.load(tmp_path)
    assert loaded.to_dict() == model.to_dict() and loaded.digest() == model.digest()


def _rom_model(address_bits=17, seed=0) -> FirmwareModel:
    """A ROM of 2**address_bits words: more elements than fit inline in the JSON."""
    word = F("ufixed<9,8,RND_CONV,SAT>")
    words = np.random.default_rng(seed).integers(0, word.max_raw + 1, 1 << address_bits, dtype=np.int64)
    address = T(FixedFormat.parse(f"uint<{address_bits}>"), 1)
    return FirmwareModel("rom", address, [Lookup("table", address, T(word, 1), words)], kind="table",
                         meta={"note": "large"})


def test_save_load_round_trip_with_npy(tmp_path):
    model = _rom_model()
    written = model.save(tmp_path)
    npy = tmp_path / "firmware_model.table.words.npy"
    assert written == [tmp_path / "firmware_model.json", npy]
    stored = json.loads((tmp_path / "firmware_model.json").read_text())
    ref = stored["ops"][0]["words"]
    assert ref == {"npy": npy.name, "shape": [1 << 17], "dtype": np.dtype(np.uint16).str}  # 9-bit words
    assert np.load(npy).dtype == np.uint16
    loaded = FirmwareModel.load(tmp_path)
    assert loaded.kind == "table" and loaded.meta == {"note": "large"}
    assert np.array_equal(loaded.ops[0].words, model.ops[0].words) and loaded.ops[0].words.dtype == np.int64
    assert loaded.digest() == model.digest()
    x = np.arange(0, 1 << 17, 37, dtype=np.int64).reshape(-1, 1)
    assert np.array_equal(emulate(loaded, x).outputs, model.ops[0].words[x])


def test_load_refuses_bad_files(tmp_path):
    with pytest.raises(FirmwareModelError, match="firmware_model.json not found"):
        FirmwareModel.load(tmp_path)
    (tmp_path / "firmware_model.json").write_text("{broken")
    with pytest.raises(FirmwareModelError, match="not valid JSON"):
        FirmwareModel.load(tmp_path)
    _rom_model(address_bits=17).save(tmp_path)
    path = tmp_path / "firmware_model.json"
    good = json.loads(path.read_text())
    for ref, message in [({"npy": "../elsewhere.npy", "shape": [1 << 17]}, "bad array reference"),
                         ("not a reference", "bad array reference"),
                         ({"npy": "firmware_model.table.words.npy", "shape": [7]}, r"shape \(131072,\), expected \[7\]")]:
        bad = json.loads(json.dumps(good))
        bad["ops"][0]["words"] = ref
        path.write_text(json.dumps(bad))
        with pytest.raises(FirmwareModelError, match=message) as err:
            FirmwareModel.load(tmp_path)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("version", [None, 0, FORMAT_VERSION + 1, "1"])
def test_format_version_is_checked(version):
    data = small_models()["u4_linear"].to_dict()
    if version is None:
        del data["format_version"]
    else:
        data["format_version"] = version
    with pytest.raises(FirmwareModelError, match=f"format_version {version!r} is not {CHAIN_FORMAT_VERSION} or "
                                                 f"{FORMAT_VERSION}"):
        FirmwareModel.from_dict(data)


# ------------------------------------------------------------------ validation
def _one_line_error(fn, *names: str) -> str:
    with pytest.raises(FirmwareModelError) as err:
        fn()
    text = str(err.value)
    assert "\n" not in text, text
    for name in names:
        assert name in text, text
    return text


def test_shape_mismatch_names_the_op():
    d = small_models()["u4_linear"].ops[0]  # 6 -> 5
    act = Relu("act", T(d.output.format, 4), T(F("fixed<4,1>"), 4))
    text = _one_line_error(lambda: FirmwareModel("m", d.input, [d, act]).validate(), "'act'", "relu")
    assert "expects 4 inputs but the previous op gives 5" in text
    bad = Dense("dense_x", T(F("fixed<6,2>"), 3), T(F("fixed<8,3>"), 2), np.zeros((3, 4), np.int64),
                np.zeros(4, np.int64), F("fixed<4,1>"), F("fixed<4,1>"), F("fixed<12,5>"))
    text = _one_line_error(lambda: FirmwareModel("m", bad.input, [bad]).validate(), "'dense_x'", "dense")
    assert "weight shape (3, 4) does not match 3 inputs and 2 outputs" in text
    with pytest.raises(FirmwareModelError, match="inputs must have shape"):
        emulate(FirmwareModel("m", d.input, [d]), np.zeros((2, 5), np.int64))


def test_format_mismatch_between_ops_names_the_op():
    d = small_models()["u4_linear"].ops[0]  # outputs ap_fixed<5,1,RND_CONV,SAT>
    act = Relu("act", T(F("fixed<9,3>"), 5), T(F("fixed<4,1>"), 5))
    text = _one_line_error(lambda: FirmwareModel("m", d.input, [d, act]).validate(), "'act'")
    assert "input element 0 is ap_fixed<9,3,AP_TRN,AP_WRAP> but the previous op gives ap_fixed<5,1" in text
    # rounding/overflow modes of the previous output do not matter: only the bits do
    same_bits = Relu("act", T(F("fixed<5,1>"), 5), T(F("fixed<4,1>"), 5))
    FirmwareModel("m", d.input, [d, same_bits]).validate()


def test_raw_constant_out_of_range_names_the_op():
    rng = np.random.default_rng(0)
    d = random_dense(rng, "d_bad", 4, 3, F("fixed<8,3>"), F("fixed<4,1>"), F("fixed<4,1>"), F("fixed<8,3>"))
    d.weight[2, 1] = 8  # fixed<4,1> holds -8..7
    text = _one_line_error(lambda: FirmwareModel("m", d.input, [d]).validate(), "'d_bad'", "dense")
    assert "weight raw value 8 is outside" in text
    d.weight[2, 1] = 0
    d.bias[0] = -9
    assert "bias raw value -9 is outside" in _one_line_error(lambda: FirmwareModel("m", d.input, [d]).validate())
    leaky = small_models()["leaky"]
    leaky.ops[1].alpha = 0.3  # a real number where a raw integer belongs
    assert "alpha must hold raw integers" in _one_line_error(leaky.validate, "'leaky'", "leaky_relu")


def test_unknown_op_kind_and_missing_fields_name_the_op():
    data = small_models()["u4_linear"].to_dict()
    data["ops"][1]["op"] = "gelu"
    text = _one_line_error(lambda: FirmwareModel.from_dict(data), "'lin'", "'gelu'")
    assert f"known: {', '.join(sorted(OPS))}" in text
    for kind in ("dense", "relu", "linear", "scale", "leaky_relu", "bucketize", "concat", "lookup"):
        assert kind in OPS
    data = small_models()["u4_linear"].to_dict()
    del data["ops"][0]["weight"]
    assert "field 'weight' missing" in _one_line_error(lambda: FirmwareModel.from_dict(data), "'d0'")
    with pytest.raises(FirmwareModelError, match="unknown kind None"):
        op_from_dict({"name": "x"})


def test_model_level_errors():
    d = small_models()["u4_linear"].ops[0]
    _one_line_error(lambda: FirmwareModel("empty", d.input, []).validate(), "'empty'", "no ops")
    twin = Relu("d0", d.output, T(F("ufixed<4,1>"), 5))
    _one_line_error(lambda: FirmwareModel("twins", d.input, [d, twin]).validate(), "two ops are named 'd0'")
    with pytest.raises(FirmwareModelError, match="different formats"):
        TensorType((F("fixed<4,1>"), F("fixed<5,1>"))).format  # noqa: B018
    with pytest.raises(FirmwareModelError, match="2 element names for 1 elements"):
        TensorType((F("fixed<4,1>"),), ("a", "b"))


# ------------------------------------------------------------------ range analysis
@pytest.mark.parametrize("name", sorted(CASES))
def test_ranges_bound_the_emulated_outputs(name):
    model = CASES[name]
    bounds = model.ranges()
    assert len(bounds) == len(model.ops)
    raw = np.vstack([case_inputs(model, 4000, seed=3), random_vectors(model.input, 4000, SEED)])
    trace = emulate(model, raw, trace=True).trace
    for op, ivs, values in zip(model.ops, bounds, trace):
        assert len(ivs) == op.output.n
        lo, hi = np.array([iv.lo for iv in ivs]), np.array([iv.hi for iv in ivs])
        assert np.all(op.output.contains(lo)) and np.all(op.output.contains(hi)), (op.name, ivs)
        outside = (values < lo) | (values > hi)
        assert not outside.any(), f"{name}/{op.name}: {int(outside.sum())} values outside {ivs}"


def test_ranges_are_tight_where_nothing_overflows():
    """An exact accumulator and a ReLU: the bounds are those of the sums, not of the formats."""
    model = small_models()["s6_scale"]
    dense_ivs, relu_ivs = model.ranges()[:2]
    assert all(iv.lo >= 0 for iv in relu_ivs)
    out = model.ops[0].output.format
    assert any(iv.hi < out.max_raw or iv.lo > out.min_raw for iv in dense_ivs)
    assert Interval(-3, 5).scale(-2) == Interval(-10, 6) and Interval(-3, 5).relu() == Interval(0, 5)
    assert Interval(-128, 127).width == 8 and Interval(0, 128).width == 9
    with pytest.raises(ValueError, match="empty interval"):
        Interval(2, 1)


# ------------------------------------------------------------------ test vectors
def test_cover_enumerates_every_input_of_a_small_model():
    rng = np.random.default_rng(1)
    i3 = F("ufixed<3,1>")
    d = random_dense(rng, "d0", 3, 2, i3, F("fixed<4,1>"), F("fixed<4,1>"), F("fixed<8,4,RND,SAT>"))
    model = FirmwareModel("tiny", T(i3, 3), [d, relu("r", d, F("ufixed<6,3,RND,SAT>"))])
    c = cover(model)
    assert c is not None and c.of_inputs and c.tensor == "input" and c.values == 8 ** 3
    assert c.inputs.shape == (512, 3)
    assert len({tuple(row) for row in c.inputs.tolist()}) == 512
    assert np.array_equal(c.inputs, enumerate_values(model.input))
    assert np.array_equal(c.inputs[:3], [[0, 0, 0], [1, 0, 0], [2, 0, 0]])  # element 0 varies fastest
    # a 16 x 16-bit input cannot be enumerated and a dense op cannot be inverted: no cover
    assert cover(mlp()) is None


def test_test_vectors_are_seeded_inside_and_start_with_edges():
    model = small_models()["s6_scale"]
    t, fmt = model.input, model.input.format
    a = test_vectors(model, 5000)
    assert a.shape == (5000, t.n) and a.dtype == np.int64
    assert np.array_equal(a, test_vectors(model, 5000)) and not np.array_equal(a, test_vectors(model, 5000, seed=1))
    assert np.all(t.contains(a))
    assert (a[0] == 0).all() and (a[1] == fmt.max_raw).all() and (a[2] == fmt.min_raw).all()
    assert np.array_equal(test_vectors(model, 3000), a[:3000])  # the first n of a longer list
    # uniform raw draws, normal draws and beyond-range values (saturated or wrapped into the format)
    assert len(np.unique(a)) == fmt.max_raw - fmt.min_raw + 1


# ------------------------------------------------------------------ bus packing
MIXED = [
    TensorType((F("fixed<13,5>"), F("ufixed<3,1>"), FixedFormat(1, 1, True), F("uint<7>"), F("ap_int<2>"),
                F("ufixed<1,0>"))),  # 27 bits: one int64 word per vector
    TensorType((F("fixed<33,2>"), F("ufixed<9,4>"), F("fixed<40,40>"), F("uint<1>"), F("ap_int<17>"))),  # 100 bits
]


@pytest.mark.parametrize("t", MIXED, ids=lambda t: f"{t.bus_width}bits")
def test_pack_unpack_and_mem_round_trips(t, tmp_path):
    rng = np.random.default_rng(4)
    raw = np.stack([rng.integers(f.min_raw, f.max_raw + 1, 301, dtype=np.int64) for f in t.formats], axis=1)
    raw[:2] = [t.min_raw, t.max_raw]
    bits = t.to_bits(raw)
    assert bits.min() >= 0
    packed, n_bytes = pack_bytes(bits, t.widths)
    assert n_bytes == ceil(t.bus_width / 8) and len(packed) == 301 * n_bytes
    unpacked = unpack_bytes(packed, 301, t.widths)
    assert np.array_equal(unpacked, bits)
    assert np.array_equal(t.from_bits(unpacked), raw)
    path = write_mem(tmp_path / "x.mem", bits, t.widths, chunk=100)  # several chunks
    lines = path.read_text().splitlines()
    assert len(lines) == 301 and {len(line) for line in lines} == {ceil(t.bus_width / 4)}
    assert np.array_equal(read_mem(path, t.widths), bits)
    # element 0 in the least significant bits, each element at its own width
    word = int(lines[5], 16)
    for f, lsb, value in zip(t.formats, t.offsets, raw[5]):
        assert f.from_bits((word >> lsb) & ((1 << f.width) - 1)) == value


def test_bus_word_layout_by_hand(tmp_path):
    t = TensorType((F("uint<4>"), F("ap_int<8>")))
    bits = t.to_bits(np.array([[0xA, -68]]))  # -68 = 0xbc in 8 bits
    assert pack_bytes(bits, t.widths) == (bytes([0xCA, 0x0B]), 2)
    assert write_mem(tmp_path / "w.mem", bits, t.widths).read_text() == "bca\n"


# ------------------------------------------------------------------ trigger.fixed range helpers
def _small_formats():
    """Signed and unsigned formats of 1-4 bits with the binary point inside, left and right of them."""
    out = []
    for width in (1, 2, 3, 4):
        for integer in (-1, 0, 2, width, width + 2):
            for signed in (True, False):
                out.append((width, integer, signed))
    return out


def _round(x: Fraction, mode: str) -> int:
    """A rational rounded to an integer as each ap_fixed quantization mode says."""
    fl = floor(x)
    frac = x - fl
    if frac == 0:
        return fl
    tie, above = frac == Fraction(1, 2), frac > Fraction(1, 2)
    if mode == "TRN":
        return fl
    if mode == "TRN_ZERO":
        return fl + (x < 0)
    if mode == "RND":
        return fl + (above or tie)
    if mode == "RND_ZERO":
        return fl + (above or (tie and x < 0))
    if mode == "RND_MIN_INF":
        return fl + above
    if mode == "RND_INF":
        return fl + (above or (tie and x > 0))
    if mode == "RND_CONV":
        return fl + (above or (tie and fl % 2 == 1))
    raise AssertionError(mode)


PAIRS = [(s, d) for s in _small_formats() for d in _small_formats() if abs((s[0] - s[1]) - (d[0] - d[1])) <= 3]


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_rounded_matches_brute_force(rounding):
    checked = 0
    for (sw, si, ss), (dw, di, ds) in PAIRS:
        src, dst = FixedFormat(sw, si, ss), FixedFormat(dw, di, ds, rounding, "SAT")
        raws = np.arange(src.min_raw, src.max_raw + 1, dtype=np.int64)
        shift = dst.fractional - src.fractional
        expected = [_round(Fraction(int(r)) * Fraction(2) ** shift, rounding) for r in raws]
        got = dst.rounded(raws, src)
        assert got.tolist() == expected, (src, dst)
        checked += len(raws)
    assert checked > 1000


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_cast_interval_matches_brute_force(overflow):
    """Every sub-interval of every small source format (the rounding mode cycling through all of
    them): the bounds hold every cast value, are exact when nothing overflows (and under SAT and
    SAT_SYM), and the overflow flag is exactly 'some value in the interval overflows'."""
    for k, ((sw, si, ss), (dw, di, ds)) in enumerate(PAIRS[::2]):
        rounding = ROUNDING_MODES[k % len(ROUNDING_MODES)]
        src, dst = FixedFormat(sw, si, ss), FixedFormat(dw, di, ds, rounding, overflow)
        raws = np.arange(src.min_raw, src.max_raw + 1, dtype=np.int64)
        values = dst.cast(raws, src)  # cast itself is checked against ap_fixed (test_fixed_conformance)
        low = -dst.max_raw if (overflow == "SAT_SYM" and ds) else dst.min_raw
        exact = [_round(Fraction(int(r)) * Fraction(2) ** (dst.fractional - src.fractional), rounding) for r in raws]
        overflows = np.array([not low <= e <= dst.max_raw for e in exact])
        for i, lo in enumerate(raws.tolist()):
            v_min, v_max = np.minimum.accumulate(values[i:]), np.maximum.accumulate(values[i:])
            any_over = np.logical_or.accumulate(overflows[i:])
            for j, hi in enumerate(raws[i:].tolist()):
                out_lo, out_hi, can_overflow = dst.cast_interval(lo, hi, src)
                tight = not can_overflow or overflow in ("SAT", "SAT_SYM")
                ok = (can_overflow == any_over[j] and out_lo <= v_min[j] and v_max[j] <= out_hi
                      and dst.min_raw <= out_lo and out_hi <= dst.max_raw
                      and (not tight or (out_lo, out_hi) == (v_min[j], v_max[j])))
                assert ok, (f"{dst} of {src} over [{lo}, {hi}]: got [{out_lo}, {out_hi}, overflow {can_overflow}], "
                            f"values {values[i:i + j + 1].tolist()}")


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
def test_sat_min_raw_is_the_lowest_value_a_cast_produces(overflow):
    for width, integer, signed in _small_formats():
        dst = FixedFormat(width, integer, signed, "TRN", overflow)
        wide = FixedFormat(width + 6, integer + 3, True)  # reaches beyond dst's range at both ends
        values = dst.cast(np.arange(wide.min_raw, wide.max_raw + 1, dtype=np.int64), wide)
        assert int(values.min()) == dst.sat_min_raw, dst
        expected = -dst.max_raw if (overflow == "SAT_SYM" and signed) else dst.min_raw
        assert dst.sat_min_raw == expected
