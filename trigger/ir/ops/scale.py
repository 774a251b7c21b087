"""``scale``: a per-element affine map (batch normalisation hls4ml did not fold), as nnet_batchnorm.h.

``res_i = x_i * scale_i + bias_i``: the product and the sum are exact in ap_fixed,
then cast to the output format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import MAX_WIDTH, FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class Scale(Op):
    scale: np.ndarray = None  # raw int64 (n,) in scale_fmt
    bias: np.ndarray = None  # raw int64 (n,) in bias_fmt
    scale_fmt: FixedFormat = None
    bias_fmt: FixedFormat = None

    kind = "scale"
    arrays = ("scale", "bias")

    def _formats(self) -> tuple[FixedFormat, FixedFormat]:
        prod = self.input.format.product_format(self.scale_fmt)
        return prod, prod.sum_format(self.bias_fmt)

    def validate(self) -> None:
        self.scale = np.asarray(self.scale, dtype=np.int64).reshape(-1)
        self.bias = np.asarray(self.bias, dtype=np.int64).reshape(-1)
        if self.scale.shape != (self.input.n,) or self.bias.shape != (self.input.n,) or self.output.n != self.input.n:
            self.fail(f"scale and bias must both have {self.input.n} elements, got {self.scale.shape} and "
                      f"{self.bias.shape}")
        self.check_raw("scale", self.scale, self.scale_fmt)
        self.check_raw("bias", self.bias, self.bias_fmt)
        if self._formats()[1].width > MAX_WIDTH:
            self.fail(f"x*scale+bias needs more than {MAX_WIDTH} bits")

    def _sum_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """Scale and bias as raw multipliers/addends in the exact sum format."""
        prod, total = self._formats()
        return self.scale << (total.fractional - prod.fractional), self.bias << (total.fractional - self.bias_fmt.fractional)

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        _, total = self._formats()
        k, b = self._sum_terms()
        out = []
        for i, iv in enumerate(x):
            s = iv.scale(int(k[i])) + Interval.point(int(b[i]))
            lo, hi, _ = self.output.formats[i].cast_interval(s.lo, s.hi, total)
            out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        _, total = self._formats()
        k, b = self._sum_terms()
        return self.output.format.cast(x * k + b, total, counter(counts, "output"))

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        _, total = self._formats()
        k, b = self._sum_terms()
        out = []
        for i, x in enumerate(xs):
            leaves = [m.mul(f"p{i}", x, int(k[i]))] if k[i] != 0 else []
            if b[i] != 0 or not leaves:
                leaves.append(m.const(f"b{i}", int(b[i])))
            v = leaves[0] if len(leaves) == 1 else m.add(f"s{i}", leaves[0], leaves[1])
            out.append(m.requant(f"y{i}", v, total, self.output.formats[i]))
        return out

    def describe(self) -> str:
        return (f"scale {self.input.n}, scale {self.scale_fmt.cpp}, bias {self.bias_fmt.cpp}, "
                f"output {self.output.format.cpp}")
