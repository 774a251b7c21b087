"""Interval analysis: the range of raw integers every tensor (and every RTL signal) can hold.

The project's one range analysis. Ops propagate per-element ``Interval``s with
the helpers here; the emulator uses them to prove when a fast path is exact,
the RTL builder to size every signal, the hls4ml bridge to widen accumulators.
Bounds are Python integers, so no sum of products can overflow while bounding.
"""

from __future__ import annotations

from dataclasses import dataclass


from trigger.fixed import FixedFormat


@dataclass(frozen=True)
class Interval:
    lo: int
    hi: int

    def __post_init__(self):
        if self.lo > self.hi:
            raise ValueError(f"empty interval [{self.lo}, {self.hi}]")

    @classmethod
    def of(cls, fmt: FixedFormat) -> "Interval":
        return cls(fmt.min_raw, fmt.max_raw)

    @classmethod
    def point(cls, value: int) -> "Interval":
        return cls(int(value), int(value))

    def __add__(self, other: "Interval") -> "Interval":
        return Interval(self.lo + other.lo, self.hi + other.hi)

    def scale(self, k: int) -> "Interval":
        """Every value times the integer constant k."""
        a, b = self.lo * int(k), self.hi * int(k)
        return Interval(min(a, b), max(a, b))

    def relu(self) -> "Interval":
        return Interval(max(self.lo, 0), max(self.hi, 0))

    def hull(self, other: "Interval") -> "Interval":
        return Interval(min(self.lo, other.lo), max(self.hi, other.hi))

    @property
    def width(self) -> int:
        """Two's-complement bits that hold every value in the interval."""
        return signed_width(self.lo, self.hi)


def signed_width(lo: int, hi: int) -> int:
    """Fewest two's-complement bits holding every integer in [lo, hi]."""
    return max(int(lo).bit_length() if lo >= 0 else int(-lo - 1).bit_length(),
               int(hi).bit_length() if hi >= 0 else int(-hi - 1).bit_length()) + 1


def cast(dst: FixedFormat, src: FixedFormat, iv: Interval) -> tuple[Interval, bool]:
    """The interval of ``dst.cast`` over ``iv`` (raw in ``src``) and whether it can overflow."""
    lo, hi, overflow = dst.cast_interval(iv.lo, iv.hi, src)
    return Interval(lo, hi), overflow


def of_tensor(formats) -> list[Interval]:
    return [Interval.of(f) for f in formats]
