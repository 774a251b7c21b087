"""``sign_threshold``: +1, 0 or -1 per element by two thresholds, as hls4ml's binary and ternary tanh.

``res = x >= upper ? 1 : (x >= lower ? 0 : -1)`` on raw integers of the input type, the
result cast to the output type (which must hold -1, 0 and 1 exactly). It is:
- nnet_activation.h's ``binary_tanh`` (QKeras ``binary`` activation): ``x >= 0 ? 1 : -1``
  (upper = lower = 0);
- nnet_batchnorm.h's ``normalize_ternary_tanh`` (QKeras ``ternary`` activation, which hls4ml merges
  with the scale its ExtractTernaryThreshold pass inserts): ``x > hi ? 1 : (x <= lo ? -1 : 0)``,
  hi and lo held in the input type, i.e. upper = hi + 1 and lower = lo + 1 in raw integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.ir.op import Op, register
from trigger.ir.ranges import Interval


@register
@dataclass
class SignThreshold(Op):
    upper: np.ndarray = None  # raw int64 (n,) in the input element's LSBs: x >= upper gives +1
    lower: np.ndarray = None  # raw int64 (n,), lower <= upper: x >= lower gives 0, below it -1

    kind = "sign_threshold"
    arrays = ("upper", "lower")
    absorbs_previous = True  # two comparisons per element

    def validate(self) -> None:
        self.upper = np.asarray(self.upper, dtype=np.int64).reshape(-1)
        self.lower = np.asarray(self.lower, dtype=np.int64).reshape(-1)
        n = self.input.n
        if self.upper.shape != (n,) or self.lower.shape != (n,) or self.output.n != n:
            self.fail(f"needs {n} thresholds of each kind and {n} outputs, got {self.upper.shape}, "
                      f"{self.lower.shape} and {self.output.n}")
        if np.any(self.lower > self.upper):
            self.fail("a lower threshold is above its upper one")
        for f in self.output.formats:
            if not f.signed or f.integer < 2:
                self.fail(f"output {f.cpp} cannot hold -1 and 1")

    def _values(self) -> list[tuple[int, int, int]]:
        """The raw outputs of -1, 0 and +1 per element."""
        return [(-(1 << f.fractional), 0, 1 << f.fractional) for f in self.output.formats]

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        out = []
        for iv, up, lo, (neg, zero, pos) in zip(x, self.upper, self.lower, self._values()):
            got = [v for v, hit in ((neg, iv.lo < lo), (zero, iv.hi >= lo and iv.lo < up), (pos, iv.hi >= up)) if hit]
            out.append(Interval(min(got), max(got)))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        values = np.array(self._values(), dtype=np.int64)  # (n, 3)
        pick = np.where(x >= self.upper[None, :], 2, np.where(x >= self.lower[None, :], 1, 0))
        return np.take_along_axis(values[None, :, :].repeat(len(x), 0), pick[:, :, None], axis=2)[:, :, 0]

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        out = []
        for i, (x, up, lo, (neg, zero, pos)) in enumerate(zip(xs, self.upper, self.lower, self._values())):
            below = m.const(f"neg{i}", neg)
            if lo < up:
                below = m.select_ge(f"mid{i}", x, m.const(f"lo{i}", int(lo)), m.const(f"zero{i}", zero), below)
            out.append(m.select_ge(f"y{i}", x, m.const(f"up{i}", int(up)), m.const(f"pos{i}", pos), below))
        return out

    def boundary_values(self) -> list[np.ndarray] | None:
        """Both sides of both thresholds (clipped to the input format)."""
        return [np.clip(np.array([lo - 1, lo, up - 1, up], dtype=np.int64), f.min_raw, f.max_raw)
                for up, lo, f in zip(self.upper, self.lower, self.input.formats)]

    def describe(self) -> str:
        kind = "binary" if np.array_equal(self.upper, self.lower) else "ternary"
        return f"sign_threshold {self.input.n} ({kind}): +1 / 0 / -1, output {self.output.describe()}"
