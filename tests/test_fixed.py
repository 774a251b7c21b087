"""trigger.fixed: parsing, exact formats, overflow accounting, wide values."""

import numpy as np
import pytest

from trigger.errors import ConfigError
from trigger.fixed import FixedFormat, OverflowCount


@pytest.mark.parametrize("text, expected", [
    ("fixed<16,6>", FixedFormat(16, 6, True, "TRN", "WRAP")),
    ("ap_fixed<16,6,AP_RND_CONV,AP_SAT>", FixedFormat(16, 6, True, "RND_CONV", "SAT")),
    ("ufixed<8,0,RND,SAT>", FixedFormat(8, 0, False, "RND", "SAT")),
    ("ap_ufixed<10, -2, AP_TRN_ZERO, AP_SAT_SYM>", FixedFormat(10, -2, False, "TRN_ZERO", "SAT_SYM")),
    ("ap_fixed<18,8,AP_RND_MIN_INF,AP_SAT_ZERO,0>", FixedFormat(18, 8, True, "RND_MIN_INF", "SAT_ZERO")),
    ("fixed<4,9,RND_INF>", FixedFormat(4, 9, True, "RND_INF", "WRAP")),
    ("fixed<4,1,RND_ZERO,WRAP>", FixedFormat(4, 1, True, "RND_ZERO", "WRAP")),
    ("ap_int<8>", FixedFormat(8, 8, True, "TRN_ZERO", "WRAP", is_int=True)),
    ("uint<3>", FixedFormat(3, 3, False, "TRN_ZERO", "WRAP", is_int=True)),
])
def test_parse(text, expected):
    fmt = FixedFormat.parse(text)
    assert fmt == expected
    assert FixedFormat.parse(fmt.hls4ml) == fmt
    assert FixedFormat.parse(fmt.cpp) == fmt


@pytest.mark.parametrize("text", [
    "fixed<16>", "fixed<0,0>", "fixed<16,6,RND_SOMETIMES>", "fixed<16,6,RND,CLAMP>", "float",
    "fixed<16,6,RND,SAT,2>", "ap_fixed<70,6>", "int<x>", "",
])
def test_parse_rejects_bad_text_naming_it(text):
    with pytest.raises(ConfigError) as err:
        FixedFormat.parse(text)
    assert repr(text) in str(err.value)


def test_range_and_lsb():
    fmt = FixedFormat.parse("fixed<8,3>")
    assert (fmt.min_raw, fmt.max_raw, fmt.fractional) == (-128, 127, 5)
    assert fmt.min_value == -4.0 and fmt.max_value == 4.0 - 1 / 32 and fmt.lsb == 1 / 32
    assert FixedFormat.parse("ufixed<6,0>").max_value == 63 / 64


def test_quantize_rounding_modes_on_ties():
    x = [2.5, -2.5, 3.5, -3.5, 2.25, -2.75]
    expected = {
        "TRN": [2, -3, 3, -4, 2, -3],
        "TRN_ZERO": [2, -2, 3, -3, 2, -2],
        "RND": [3, -2, 4, -3, 2, -3],
        "RND_ZERO": [2, -2, 3, -3, 2, -3],
        "RND_MIN_INF": [2, -3, 3, -4, 2, -3],
        "RND_INF": [3, -3, 4, -4, 2, -3],
        "RND_CONV": [2, -2, 4, -4, 2, -3],
    }
    for mode, want in expected.items():
        assert FixedFormat(8, 8, True, mode, "WRAP").quantize(x).tolist() == want, mode


def test_overflow_modes_and_counts():
    x = [200.0, -200.0, 127.0, -128.0, 0.0]
    results = {
        "WRAP": [-56, 56, 127, -128, 0],
        "SAT": [127, -128, 127, -128, 0],
        "SAT_ZERO": [0, 0, 127, -128, 0],
        "SAT_SYM": [127, -127, 127, -127, 0],
    }
    for mode, want in results.items():
        count = OverflowCount()
        fmt = FixedFormat(8, 8, True, "TRN", mode)
        assert fmt.quantize(x, count).tolist() == want, mode
        assert count.values == 5
        assert count.overflows == (3 if mode == "SAT_SYM" else 2), mode


def test_cast_is_exact_for_wide_formats():
    wide = FixedFormat.parse("fixed<48,20>")
    narrow = FixedFormat.parse("fixed<47,20,RND_CONV,SAT>")
    raw = np.array([wide.max_raw, wide.min_raw, 3, -3, 1, -1, (1 << 40) + 1], dtype=np.int64)
    # dropping one fractional bit: ties to even, then saturation at the top
    assert narrow.cast(raw, wide).tolist() == [
        narrow.max_raw, narrow.min_raw, 2, -2, 0, 0, (1 << 39)]
    back = wide.cast(narrow.cast(raw[2:], wide), narrow)
    assert back.tolist() == [4, -4, 0, 0, 1 << 40]


def test_product_and_sum_formats_hold_exact_results():
    a, b = FixedFormat.parse("fixed<6,1>"), FixedFormat.parse("ufixed<5,2>")
    prod, total = a.product_format(b), a.sum_format(b)
    assert (prod.width, prod.integer, prod.signed) == (11, 3, True)
    assert (total.width, total.integer, total.signed) == (9, 4, True)
    ra = np.arange(a.min_raw, a.max_raw + 1)
    rb = np.arange(b.min_raw, b.max_raw + 1)
    products = np.multiply.outer(ra, rb).ravel()  # raw of the product format
    assert prod.contains(products).all()
    sums = np.add.outer(total.cast(ra, a), total.cast(rb, b)).ravel()
    assert total.contains(sums).all()
    assert np.array_equal(total.to_float(sums), np.add.outer(a.to_float(ra), b.to_float(rb)).ravel())


def test_bits_round_trip():
    fmt = FixedFormat.parse("fixed<5,2>")
    raw = np.arange(fmt.min_raw, fmt.max_raw + 1)
    bits = fmt.to_bits(raw)
    assert bits.min() == 0 and bits.max() == 31
    assert np.array_equal(fmt.from_bits(bits), raw)


def test_quantize_rejects_nan_naming_it():
    with pytest.raises(ConfigError, match="nan"):
        FixedFormat.parse("fixed<8,3>").quantize([1.0, float("nan")])
