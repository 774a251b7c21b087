"""``element_quantize``: each element cast to its own format, as hls4ml's FixedPointQuantizer computes it.

A high-granularity quantizer (HGQ2) gives every element of a tensor its own fixed-point format.
hls4ml's C++ assigns element ``e`` through that format into the tensor's one type:
``out[e] = ap_fixed<W_e, I_e, RND, SAT>(in[e])`` (``out[e] = 0`` for an element of no bits), so the
op is two casts per element: to the element's format (rounding, overflow), then into the output
format, which holds every element's values. The RTL pays only for each element's own bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class ElementQuantize(Op):
    kind = "element_quantize"
    element_formats: list = field(default_factory=list)  # per element its format (cpp text), or None: always 0

    absorbs_previous = True  # casts only: no register needed in front

    def formats(self) -> list[FixedFormat | None]:
        return [None if f is None else FixedFormat.parse(f) for f in self.element_formats]

    def validate(self) -> None:
        if not (self.input.n == self.output.n == len(self.element_formats)):
            self.fail(f"{self.input.n} inputs, {self.output.n} outputs and {len(self.element_formats)} element "
                      "formats must agree")
        for e, (fmt, out) in enumerate(zip(self.formats(), self.output.formats)):
            if fmt is not None and (fmt.min_value < out.min_value or fmt.max_value > out.max_value
                                    or fmt.lsb < out.lsb):
                self.fail(f"element {e}: the output format {out.cpp} does not hold {fmt.cpp}")

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        out = []
        for iv, src, fmt, dst in zip(x, self.input.formats, self.formats(), self.output.formats):
            if fmt is None:
                out.append(Interval(0, 0))
                continue
            lo, hi, _ = fmt.cast_interval(iv.lo, iv.hi, src)
            lo, hi, _ = dst.cast_interval(lo, hi, fmt)
            out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        out = np.zeros((len(x), self.output.n), dtype=np.int64)
        count = counter(counts, "output")
        for e, (src, fmt, dst) in enumerate(zip(self.input.formats, self.formats(), self.output.formats)):
            if fmt is not None:
                out[:, e] = dst.cast(fmt.cast(x[:, e], src, count), fmt)
        return out

    def emit_rtl(self, m, xs, options):
        ys = []
        for e, (x, src, fmt, dst) in enumerate(zip(xs, self.input.formats, self.formats(), self.output.formats)):
            if fmt is None:
                ys.append(m.const(f"y{e}", 0))
            else:
                ys.append(m.requant(f"y{e}", m.requant(f"q{e}", x, src, fmt), fmt, dst))
        return ys

    def describe(self) -> str:
        widths = [0 if f is None else f.width for f in self.formats()]
        return (f"{self.kind} {self.input.n} -> {self.output.n}, element widths {min(widths)}..{max(widths)} "
                f"(total {sum(widths)} bits), output {self.output.describe()}")
