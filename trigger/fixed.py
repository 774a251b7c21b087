"""Bit-exact ap_fixed / ap_int arithmetic on numpy int64 arrays.

This module is the single place where fixed-point semantics live. A value of a
format is held as its raw integer: ``value = raw * 2**-fractional``. Every
operation works on exact integers (no float round trip), so widths up to
``MAX_WIDTH`` bits are exact. The semantics follow the ``ap_types`` headers
that hls4ml ships, which a conformance test compiles and compares against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from trigger.errors import ConfigError

MAX_WIDTH = 62  # int64 holds a raw value plus the carry of a rounding step

ROUNDING_MODES = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")

_FIXED_RE = re.compile(
    r"^(?:ap_)?(?P<kind>u?fixed)<(?P<args>[^<>]*)>$"
)
_INT_RE = re.compile(r"^(?:ap_)?(?P<kind>u?int)<(?P<width>[^<>,]*)>$")


@dataclass
class OverflowCount:
    """Accumulates how many values a tensor saw and how many overflowed.

    Pass one to ``quantize`` or ``cast``; the overflowed values are those that
    saturated (SAT, SAT_SYM), were zeroed (SAT_ZERO) or wrapped (WRAP).
    """

    values: int = 0
    overflows: int = 0

    def add(self, values: int, overflows: int) -> None:
        self.values += int(values)
        self.overflows += int(overflows)


@dataclass(frozen=True)
class FixedFormat:
    """An ap_fixed<width, integer, rounding, overflow> (or ap_ufixed) type."""

    width: int
    integer: int
    signed: bool = True
    rounding: str = "TRN"
    overflow: str = "WRAP"
    is_int: bool = False
    _lo: int = field(init=False, repr=False, compare=False)
    _hi: int = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.width, (int, np.integer)) or not 1 <= self.width <= MAX_WIDTH:
            raise ConfigError(f"fixed-point width must be 1..{MAX_WIDTH}, got {self.width!r}")
        if self.is_int and (self.integer != self.width or self.rounding != "TRN_ZERO" or self.overflow != "WRAP"):
            raise ConfigError("an ap_int format has integer == width, TRN_ZERO rounding and WRAP overflow")
        if not isinstance(self.integer, (int, np.integer)):
            raise ConfigError(f"fixed-point integer bits must be an int, got {self.integer!r}")
        if self.rounding not in ROUNDING_MODES:
            raise ConfigError(f"unknown rounding mode {self.rounding!r}, expected one of {', '.join(ROUNDING_MODES)}")
        if self.overflow not in OVERFLOW_MODES:
            raise ConfigError(f"unknown overflow mode {self.overflow!r}, expected one of {', '.join(OVERFLOW_MODES)}")
        if self.signed:
            lo, hi = -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        else:
            lo, hi = 0, (1 << self.width) - 1
        object.__setattr__(self, "_lo", lo)
        object.__setattr__(self, "_hi", hi)

    # ---------------------------------------------------------------- parsing
    @classmethod
    def parse(cls, text: str) -> "FixedFormat":
        """Parse an hls4ml or Vivado precision string, e.g. ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``."""
        if not isinstance(text, str):
            raise ConfigError(f"precision must be a string, got {text!r}")
        compact = re.sub(r"\s+", "", text)
        try:
            m = _INT_RE.match(compact)
            if m:
                width = int(m["width"])
                return cls(width, width, signed=m["kind"] == "int", rounding="TRN_ZERO", is_int=True)
            m = _FIXED_RE.match(compact)
            if not m:
                raise ConfigError("not a fixed/ufixed/int/uint type")
            args = m["args"].split(",")
            if not 2 <= len(args) <= 5:
                raise ConfigError("expected 2 to 5 template arguments")
            width, integer = int(args[0]), int(args[1])
            rounding = _strip_ap(args[2]) if len(args) > 2 else "TRN"
            overflow = _strip_ap(args[3]) if len(args) > 3 else "WRAP"
            if len(args) > 4 and int(args[4]) != 0:
                raise ConfigError("saturation bits other than 0 are not supported")
            return cls(width, integer, signed=m["kind"] == "fixed", rounding=rounding, overflow=overflow)
        except ValueError as err:
            raise ConfigError(f"bad precision {text!r}: {err}") from None

    # ------------------------------------------------------------ properties
    @property
    def fractional(self) -> int:
        return self.width - self.integer

    @property
    def min_raw(self) -> int:
        return self._lo

    @property
    def max_raw(self) -> int:
        return self._hi

    @property
    def lsb(self) -> float:
        return float(np.ldexp(1.0, -self.fractional))

    @property
    def min_value(self) -> float:
        return float(np.ldexp(float(self._lo), -self.fractional))

    @property
    def max_value(self) -> float:
        return float(np.ldexp(float(self._hi), -self.fractional))

    def __str__(self) -> str:
        return self.hls4ml

    @property
    def hls4ml(self) -> str:
        """The string hls4ml's config accepts, e.g. ``fixed<16,6,RND_CONV,SAT>``."""
        if self.is_int:
            return f"{'int' if self.signed else 'uint'}<{self.width}>"
        kind = "fixed" if self.signed else "ufixed"
        extra = ""
        if (self.rounding, self.overflow) != ("TRN", "WRAP"):
            extra = f",{self.rounding},{self.overflow}"
        return f"{kind}<{self.width},{self.integer}{extra}>"

    @property
    def cpp(self) -> str:
        """The C++ type, e.g. ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``."""
        if self.is_int:
            return f"{'ap_int' if self.signed else 'ap_uint'}<{self.width}>"
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{kind}<{self.width},{self.integer},AP_{self.rounding},AP_{self.overflow}>"

    def with_modes(self, rounding: str | None = None, overflow: str | None = None) -> "FixedFormat":
        return FixedFormat(self.width, self.integer, self.signed,
                           rounding or self.rounding, overflow or self.overflow)

    def as_fixed(self) -> "FixedFormat":
        """The ap_fixed type with the same bits (an ap_int is ap_fixed<W,W> in arithmetic)."""
        return FixedFormat(self.width, self.integer, self.signed, self.rounding, self.overflow)

    # ------------------------------------------------------ exact formats
    def product_format(self, other: "FixedFormat") -> "FixedFormat":
        """The exact format of ``self * other`` (ap_fixed's multiplication result type)."""
        return FixedFormat(self.width + other.width, self.integer + other.integer,
                           self.signed or other.signed)

    def sum_format(self, other: "FixedFormat") -> "FixedFormat":
        """The exact format of ``self + other`` (ap_fixed's addition result type)."""
        integer = max(self.integer + (other.signed and not self.signed),
                      other.integer + (self.signed and not other.signed)) + 1
        fractional = max(self.fractional, other.fractional)
        return FixedFormat(integer + fractional, integer, self.signed or other.signed)

    # ------------------------------------------------------------ conversion
    def quantize(self, x, overflow: OverflowCount | None = None) -> np.ndarray:
        """Raw integers that ``ap_fixed`` holds after assigning the doubles ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            bad = np.flatnonzero(~np.isfinite(x.ravel()))[0]
            raise ConfigError(f"cannot quantize non-finite value {x.ravel()[bad]!r} (flat index {bad}) to {self}")
        mantissa, exponent = np.frexp(x)
        # x == m * 2**(exponent - 53) exactly, with |m| < 2**53.
        m = np.ldexp(mantissa, 53).astype(np.int64)
        shift = exponent.astype(np.int64) - 53 + self.fractional
        raw = self._requantize(m, shift, overflow)
        if self.is_int:
            # ap_int_base(double) truncates the magnitude, except that a negative value
            # above -0.5 becomes -1 before the final negation, and so ends as +1.
            raw = np.where((x < 0) & (x > -0.5), self.from_bits(1), raw)
        return raw

    def cast(self, raw, source: "FixedFormat", overflow: OverflowCount | None = None) -> np.ndarray:
        """Raw integers of this format after assigning raw values of ``source`` (ap_fixed ``=``)."""
        raw = np.asarray(raw, dtype=np.int64)
        shift = np.full(raw.shape, self.fractional - source.fractional, dtype=np.int64)
        return self._requantize(raw, shift, overflow)

    def to_float(self, raw) -> np.ndarray:
        """The real values of raw integers (exact while |raw| < 2**53)."""
        return np.ldexp(np.asarray(raw, dtype=np.int64).astype(np.float64), -self.fractional)

    def contains(self, raw) -> np.ndarray:
        """Which raw integers lie inside this format's range."""
        raw = np.asarray(raw, dtype=np.int64)
        return (raw >= self._lo) & (raw <= self._hi)

    def to_bits(self, raw) -> np.ndarray:
        """Raw integers as unsigned two's-complement bit patterns (what a Verilog bus holds)."""
        raw = np.asarray(raw, dtype=np.int64)
        return raw & np.int64((1 << self.width) - 1)

    def from_bits(self, bits) -> np.ndarray:
        """Unsigned bit patterns back to raw integers (sign-extended when signed)."""
        bits = np.asarray(bits, dtype=np.int64) & np.int64((1 << self.width) - 1)
        if self.signed:
            bits = np.where(bits > self._hi, bits - np.int64(1 << self.width), bits)
        return bits

    # ------------------------------------------------------- range analysis
    @property
    def sat_min_raw(self) -> int:
        """The most negative raw value a saturation produces (SAT_SYM stops at -max)."""
        return -self._hi if (self.overflow == "SAT_SYM" and self.signed) else self._lo

    def rounded(self, raw, source: "FixedFormat") -> np.ndarray:
        """Raw integers in this format's LSBs after the quantization step of ``cast`` only.

        This is the value ap_fixed compares against the range before handling an
        overflow; hardware that rounds first and checks overflow second needs it.
        """
        raw = np.asarray(raw, dtype=np.int64)
        shift = self.fractional - source.fractional
        if shift >= 0:
            return raw << shift
        return _round_shift(raw, np.full(raw.shape, -shift, dtype=np.int64), self.rounding)

    def cast_interval(self, lo: int, hi: int, source: "FixedFormat") -> tuple[int, int, bool]:
        """The range of ``cast`` over every raw value of ``source`` in [lo, hi], and whether one overflows.

        Rounding and saturation are monotonic, so the ends bound the result; a
        wrap that can happen may land anywhere, and SAT_ZERO adds zero.
        """
        count = OverflowCount()
        ends = self.cast(np.array([lo, hi], dtype=np.int64), source, count)
        if count.overflows == 0:
            return int(ends[0]), int(ends[1]), False
        if self.overflow == "WRAP":
            return self._lo, self._hi, True
        if self.overflow == "SAT_ZERO":
            # The values that do not overflow lie between the ends saturated; the others become 0.
            ends = self.with_modes(overflow="SAT").cast(np.array([lo, hi], dtype=np.int64), source)
            return min(int(ends[0]), 0), max(int(ends[1]), 0), True
        return int(ends[0]), int(ends[1]), True

    # ------------------------------------------------------------- the core
    def _requantize(self, a: np.ndarray, shift: np.ndarray, counter: OverflowCount | None) -> np.ndarray:
        """Raw value of ``a * 2**shift`` in this format: rounding, then overflow handling."""
        a = np.asarray(a, dtype=np.int64)
        shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), a.shape)
        right = np.maximum(-shift, 0)
        left = np.minimum(np.maximum(shift, 0), 63)
        r = _round_shift(a, right, self.rounding)

        # value is now r * 2**left; check it against the range before shifting.
        lo = -self._hi if (self.overflow == "SAT_SYM" and self.signed) else self._lo
        hi = self._hi
        hi_s = np.int64(hi) >> left
        lo_s = -(np.int64(-lo) >> left)
        over = (r > hi_s) | (r < lo_s)

        width = self.width
        keep = np.maximum(width - left, 0)
        mask = (np.int64(1) << keep) - 1
        wrapped = (r & mask) << np.minimum(left, width)
        if self.signed:
            wrapped = np.where(wrapped > self._hi, wrapped - np.int64(1 << width), wrapped)

        if self.overflow == "WRAP":
            out = wrapped
        elif self.overflow == "SAT_ZERO":
            out = np.where(over, np.int64(0), wrapped)
        else:  # SAT, SAT_SYM
            out = np.where(over, np.where(r > 0, np.int64(hi), np.int64(lo)), wrapped)
        if counter is not None:
            counter.add(a.size, int(np.count_nonzero(over)))
        return out


def _strip_ap(mode: str) -> str:
    mode = mode.upper()
    return mode[3:] if mode.startswith("AP_") else mode


def _round_shift(a: np.ndarray, right: np.ndarray, rounding: str) -> np.ndarray:
    """``a * 2**-right`` rounded to an integer as ap_fixed's quantization mode says."""
    # Past 62 bits the quotient is -1 or 0 with a remainder above half for negatives
    # and below half for positives; sign(a) shifted by 62 keeps exactly that.
    far = right > 62
    a = np.where(far, np.sign(a), a)
    right = np.minimum(right, 62)
    floor = a >> right
    rem = a & ((np.int64(1) << right) - 1)
    half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), np.int64(1))
    inexact = rem != 0
    above, tie = rem > half, (rem == half) & (right > 0)
    negative = a < 0
    if rounding == "TRN":
        up = np.zeros(a.shape, dtype=bool)
    elif rounding == "TRN_ZERO":
        up = negative & inexact
    elif rounding == "RND":
        up = above | tie
    elif rounding == "RND_ZERO":
        up = above | (tie & negative)
    elif rounding == "RND_MIN_INF":
        up = above
    elif rounding == "RND_INF":
        up = above | (tie & ~negative)
    elif rounding == "RND_CONV":
        up = above | (tie & ((floor & 1) == 1))
    else:  # pragma: no cover - guarded by FixedFormat
        raise ValueError(rounding)
    return floor + up.astype(np.int64)
