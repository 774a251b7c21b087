"""``relu`` and ``linear``: element-wise activations, as nnet_activation.h.

relu: ``if (x > 0) res = x; else res = 0;`` then the cast to the output format;
linear: the cast alone (a requantization between formats).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@dataclass
class _ElementWise(Op):
    absorbs_previous = True  # a comparison and a cast: no register needed in front

    def _pre(self, x: np.ndarray) -> np.ndarray:
        return x

    def _pre_interval(self, iv: Interval) -> Interval:
        return iv

    def validate(self) -> None:
        if self.output.n != self.input.n:
            self.fail(f"{self.input.n} inputs but {self.output.n} outputs")

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        out = []
        for iv, src, dst in zip(x, self.input.formats, self.output.formats):
            iv = self._pre_interval(iv)
            lo, hi, _ = dst.cast_interval(iv.lo, iv.hi, src)
            out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        return self.output.format.cast(self._pre(x), self.input.format, counter(counts, "output"))


@register
@dataclass
class Relu(_ElementWise):
    kind = "relu"

    def _pre(self, x):
        return np.where(x > 0, x, np.int64(0))

    def _pre_interval(self, iv):
        return iv.relu()

    def emit_rtl(self, m, xs, options):
        return [m.requant(f"y{i}", m.relu(f"r{i}", x), src, dst)
                for i, (x, src, dst) in enumerate(zip(xs, self.input.formats, self.output.formats))]


@register
@dataclass
class Linear(_ElementWise):
    kind = "linear"

    def emit_rtl(self, m, xs, options):
        return [m.requant(f"y{i}", x, src, dst)
                for i, (x, src, dst) in enumerate(zip(xs, self.input.formats, self.output.formats))]
