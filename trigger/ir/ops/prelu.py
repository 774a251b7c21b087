"""``prelu``: ``x > 0 ? x : alpha[i] * x`` with one alpha per element, as nnet_activation.h's prelu.

hls4ml stores Keras PReLU's alphas as a weight array of ``param_t`` (``alpha_fmt``);
``alpha[i] * x`` is exact in ap_fixed, and each branch is cast to the output format
(``leaky_relu`` with a constant per element).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ops.leaky_relu import slope_range
from trigger.ir.ranges import Interval


@register
@dataclass
class PRelu(Op):
    alpha: np.ndarray = None  # raw int64 (n,), in alpha_fmt
    alpha_fmt: FixedFormat = None

    kind = "prelu"
    arrays = ("alpha",)
    absorbs_previous = True  # a comparison, a constant product and a cast per element

    def validate(self) -> None:
        self.alpha = np.asarray(self.alpha, dtype=np.int64).reshape(-1)
        if self.output.n != self.input.n or self.alpha.size != self.input.n:
            self.fail(f"{self.input.n} inputs, {self.alpha.size} alphas and {self.output.n} outputs")
        self.check_raw("alpha", self.alpha, self.alpha_fmt)

    def _product_fmt(self) -> FixedFormat:
        return self.input.format.product_format(self.alpha_fmt)

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        src, dst, prod = self.input.format, self.output.format, self._product_fmt()
        return [slope_range(iv, a, src, dst, prod) for iv, a in zip(x, self.alpha.tolist())]

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        count = counter(counts, "output")
        kept = self.output.format.cast(x, self.input.format)
        scaled = self.output.format.cast(x * self.alpha[None, :], self._product_fmt())
        positive = x > 0
        y = np.where(positive, kept, scaled)
        # count each element's overflows on the branch it takes
        self.output.format.cast(x[positive], self.input.format, count)
        self.output.format.cast((x * self.alpha[None, :])[~positive], self._product_fmt(), count)
        return y

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        src, dst, prod = self.input.format, self.output.format, self._product_fmt()
        out = []
        for i, (x, a) in enumerate(zip(xs, self.alpha.tolist())):
            kept = m.requant(f"k{i}", x, src, dst)
            scaled = m.requant(f"n{i}", m.mul(f"p{i}", x, a), prod, dst)
            out.append(m.select_positive(f"y{i}", x, kept, scaled))
        return out

    def describe(self) -> str:
        values = self.alpha_fmt.to_float(self.alpha)
        return (f"prelu {self.input.n}, alpha {values.min():g}..{values.max():g} ({self.alpha_fmt.cpp}), "
                f"output {self.output.format.cpp}")
