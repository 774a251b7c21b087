"""``leaky_relu``: ``x > 0 ? x : alpha * x`` per element, as nnet_activation.h's leaky_relu.

hls4ml passes alpha as a double literal converted to ``param_t`` (``alpha_fmt``);
``alpha * x`` is exact in ap_fixed, and each branch is cast to the output format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


def slope_range(iv: Interval, alpha: int, src: FixedFormat, dst: FixedFormat, prod: FixedFormat) -> Interval:
    """The range of ``x > 0 ? x : alpha * x`` cast to ``dst`` for x in ``iv`` (x in ``src``, alpha * x in ``prod``):
    leaky_relu's, and prelu's per element."""
    parts = []
    if iv.hi > 0:
        lo, hi, _ = dst.cast_interval(max(iv.lo, 1), iv.hi, src)
        parts.append(Interval(lo, hi))
    if iv.lo <= 0:
        neg = Interval(iv.lo, min(iv.hi, 0)).scale(alpha)
        lo, hi, _ = dst.cast_interval(neg.lo, neg.hi, prod)
        parts.append(Interval(lo, hi))
    return parts[0] if len(parts) == 1 else parts[0].hull(parts[1])


@register
@dataclass
class LeakyRelu(Op):
    alpha: int = 0  # raw, in alpha_fmt
    alpha_fmt: FixedFormat = None

    kind = "leaky_relu"
    absorbs_previous = True  # a comparison, a constant product and a cast per element

    def validate(self) -> None:
        if self.output.n != self.input.n:
            self.fail(f"{self.input.n} inputs but {self.output.n} outputs")
        self.check_raw("alpha", np.array([self.alpha]), self.alpha_fmt)

    def _product_fmt(self) -> FixedFormat:
        return self.input.format.product_format(self.alpha_fmt)

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        src, dst, prod = self.input.format, self.output.format, self._product_fmt()
        return [slope_range(iv, self.alpha, src, dst, prod) for iv in x]

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        count = counter(counts, "output")
        positive = x > 0
        y = np.empty_like(x)
        y[positive] = self.output.format.cast(x[positive], self.input.format, count)
        y[~positive] = self.output.format.cast(x[~positive] * self.alpha, self._product_fmt(), count)
        return y

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        src, dst, prod = self.input.format, self.output.format, self._product_fmt()
        out = []
        for i, x in enumerate(xs):
            kept = m.requant(f"k{i}", x, src, dst)
            scaled = m.requant(f"n{i}", m.mul(f"p{i}", x, self.alpha), prod, dst)
            out.append(m.select_positive(f"y{i}", x, kept, scaled))
        return out

    def describe(self) -> str:
        return (f"leaky_relu {self.input.n}, alpha {self.alpha_fmt.to_float([self.alpha])[0]:g} "
                f"({self.alpha_fmt.cpp}), output {self.output.format.cpp}")
