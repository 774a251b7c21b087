"""``thresholded_relu``: ``x > theta ? x : 0`` per element, as nnet_activation.h's thresholded_relu.

hls4ml passes theta (Keras ThresholdedReLU's) as a double literal converted to ``param_t``
(``theta_fmt``); ``data > theta`` compares the two ap_fixed values exactly, which on the raw
input is ``x_raw > floor(theta * 2**F)`` (F the input's fractional bits). The kept value is cast
to the output format, the other branch is 0 in any format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class ThresholdedRelu(Op):
    theta: int = 0  # raw, in theta_fmt
    theta_fmt: FixedFormat = None

    kind = "thresholded_relu"
    absorbs_previous = True  # a comparison with a constant and a cast per element

    def validate(self) -> None:
        if self.output.n != self.input.n:
            self.fail(f"{self.input.n} inputs but {self.output.n} outputs")
        self.check_raw("theta", np.array([self.theta]), self.theta_fmt)

    @property
    def threshold(self) -> int:
        """floor(theta) in the input's LSBs: x > theta exactly when x_raw > threshold."""
        shift = self.input.format.fractional - self.theta_fmt.fractional
        return self.theta << shift if shift >= 0 else self.theta >> -shift  # >> floors

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        src, dst, t = self.input.format, self.output.format, self.threshold
        out = []
        for iv in x:
            parts = []
            if iv.hi > t:
                lo, hi, _ = dst.cast_interval(max(iv.lo, t + 1), iv.hi, src)
                parts.append(Interval(lo, hi))
            if iv.lo <= t:
                parts.append(Interval(0, 0))
            out.append(parts[0] if len(parts) == 1 else parts[0].hull(parts[1]))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        count = counter(counts, "output")
        above = x > self.threshold
        y = np.zeros_like(x)
        y[above] = self.output.format.cast(x[above], self.input.format, count)
        return y

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        src, dst = self.input.format, self.output.format
        out = []
        for i, x in enumerate(xs):
            kept = m.requant(f"k{i}", x, src, dst)
            out.append(m.select_ge(f"y{i}", x, m.const(f"t{i}", self.threshold + 1), kept, m.const(f"z{i}", 0)))
        return out

    def boundary_values(self) -> list[np.ndarray]:
        src, t = self.input.format, self.threshold
        values = np.array([t - 1, t, t + 1, 0, src.min_raw, src.max_raw], dtype=np.int64)
        return [np.unique(np.clip(values, src.min_raw, src.max_raw))] * self.input.n

    def describe(self) -> str:
        return (f"thresholded_relu {self.input.n}, theta {self.theta_fmt.to_float([self.theta])[0]:g} "
                f"({self.theta_fmt.cpp}), output {self.output.format.cpp}")
