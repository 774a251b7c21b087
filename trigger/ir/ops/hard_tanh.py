"""``hard_tanh`` / ``hard_sigmoid``: nnet_activation.h's hard activations with hls4ml's slope and shift of 1/2
(QKeras ``quantized_tanh`` / ``quantized_sigmoid``).

The C++ computes ``s = slope * x + shift`` in the exact ap_fixed type of that expression and clips
it to [0, 1]; hard_sigmoid casts s to res_T, hard_tanh casts ``2 * s - 1``. With slope = shift = 1/2
(``ap_ufixed<2,0>``, exact) every step is exact, so the results are ``clip(x / 2 + 1 / 2, 0, 1)`` and
``clip(x, -1, 1)``, cast to the output format: that is what this op computes (the cast with the
output's rounding and overflow modes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval

FUNCTIONS = ("tanh", "sigmoid")


@register
@dataclass
class HardTanh(Op):
    function: str = "tanh"  # or "sigmoid"

    kind = "hard_tanh"
    absorbs_previous = True  # an addition, two comparisons and a cast per element

    def validate(self) -> None:
        if self.output.n != self.input.n:
            self.fail(f"{self.input.n} inputs but {self.output.n} outputs")
        if self.function not in FUNCTIONS:
            self.fail(f"function {self.function!r} is not one of {', '.join(FUNCTIONS)}")

    def _mid_fmt(self) -> FixedFormat:
        """A format holding the clipped value exactly: the input's fractional bits (one more for x / 2), and the
        integer bits of the input and of +-1."""
        src = self.input.format
        frac = max(src.fractional, 0) + (self.function == "sigmoid")
        integer = max(src.integer + (not src.signed), 2)
        return FixedFormat(integer + frac, integer, True)

    def _bounds(self) -> tuple[int, int]:
        one = 1 << self._mid_fmt().fractional
        return (-one, one) if self.function == "tanh" else (0, one)

    def _clip(self, x: np.ndarray) -> np.ndarray:
        """Raw inputs mapped (x, or x / 2 + 1 / 2) and clipped, in the mid format's LSBs."""
        mid = self._mid_fmt()
        shift = mid.fractional - self.input.format.fractional - (self.function == "sigmoid")
        y = np.asarray(x, dtype=np.int64) << shift
        if self.function == "sigmoid":
            y = y + (1 << (mid.fractional - 1))
        lo, hi = self._bounds()
        return np.clip(y, lo, hi)

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        mid, dst = self._mid_fmt(), self.output.format
        out = []
        for iv in x:
            lo, hi = (int(v) for v in self._clip(np.array([iv.lo, iv.hi])))
            lo, hi, _ = dst.cast_interval(lo, hi, mid)
            out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        return self.output.format.cast(self._clip(x), self._mid_fmt(), counter(counts, "output"))

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        src, mid, dst = self.input.format, self._mid_fmt(), self.output.format
        shift = mid.fractional - src.fractional - (self.function == "sigmoid")
        lo, hi = self._bounds()
        out = []
        for i, x in enumerate(xs):
            if shift:
                x = m.shift(f"s{i}", x, shift)
            if self.function == "sigmoid":
                x = m.add(f"h{i}", x, m.const(f"half{i}", 1 << (mid.fractional - 1)))
            top, bottom = m.const(f"top{i}", hi), m.const(f"bottom{i}", lo)
            above = m.select_ge(f"lo{i}", x, bottom, x, bottom)
            clipped = m.select_ge(f"c{i}", above, top, top, above)
            out.append(m.requant(f"y{i}", clipped, mid, dst))
        return out

    def boundary_values(self) -> list[np.ndarray] | None:
        """Both sides of -1 and +1 (clipped to the input format): the clip points of both functions."""
        f = self.input.format
        one = 1 << f.fractional if f.fractional >= 0 else 0
        return [np.clip(np.array([-one - 1, -one, -one + 1, one - 1, one, one + 1], dtype=np.int64),
                        f.min_raw, f.max_raw)] * self.input.n

    def describe(self) -> str:
        what = "clip(x, -1, 1)" if self.function == "tanh" else "clip(x / 2 + 1 / 2, 0, 1)"
        return f"hard_{self.function} {self.input.n}: {what}, output {self.output.describe()}"
