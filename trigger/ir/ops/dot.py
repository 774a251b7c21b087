"""``dot``: the dot product of two vectors, as nnet_merge.h's ``dot1d`` computes it.

``mult[i] = product(data1[i], data2[i])`` is exact (nnet_mult.h's ``mult``: ``a * w``) and
assigned to ``accum_t`` (its rounding and overflow); ``acc = 0; acc += mult[i]`` in input
order, each sum assigned to ``accum_t`` again; ``res[0] = (res_T) acc``.

``product`` is the nnet_mult.h product class hls4ml's backend picks for the two types
(``product_type``): ``mult``, or ``ternary`` (``weight_ternary``, when data2 is an
``ap_int<2>``: ``w == 0 ? 0 : w == -1 ? -a : a``, so ``w == -2`` gives ``a``, in the type of
``-a``). Binary (XNOR) and power-of-two products are not supported.

The RTL sums the (cast) products in a balanced adder tree. That equals the sequential
sum when the range analysis proves no partial sum, in any order, leaves the accumulator,
or when the accumulator wraps (arithmetic modulo 2**W does not depend on order). A
saturating accumulator that can overflow is refused, as for ``dense``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trigger.errors import ConfigError
from trigger.fixed import MAX_WIDTH, FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval

PRODUCTS = ("mult", "ternary")


@register
@dataclass
class Dot(Op):
    input_sizes: list = field(default_factory=list)  # [n, n]: the two vectors, in order
    accum_fmt: FixedFormat = None
    product: str = "mult"  # nnet_mult.h's product class: mult, or ternary (weight_ternary)

    kind = "dot"

    @property
    def n(self) -> int:
        return int(self.input_sizes[0])

    # ------------------------------------------------------------ checks
    def validate(self) -> None:
        self.input_sizes = [int(v) for v in self.input_sizes]
        if len(self.input_sizes) != 2 or self.input_sizes[0] != self.input_sizes[1] or self.input_sizes[0] < 1:
            self.fail(f"needs two vectors of the same length, got input_sizes {self.input_sizes}")
        if sum(self.input_sizes) != self.input.n:
            self.fail(f"input_sizes {self.input_sizes} do not add up to its {self.input.n} input elements")
        if self.output.n != 1:
            self.fail(f"has one output, got {self.output.n}")
        if self.product not in PRODUCTS:
            self.fail(f"product {self.product!r} is not one of {', '.join(PRODUCTS)}")
        if not isinstance(self.accum_fmt, FixedFormat):
            self.fail("accum_fmt is missing")
        for i in range(self.n):
            fb = self.input.formats[self.n + i]
            if self.product == "ternary" and not (fb.is_int and fb.signed and fb.width == 2):
                self.fail(f"a ternary product needs ap_int<2> weights, element {self.n + i} is {fb.cpp}")
            try:
                self.product_format(i)
            except ConfigError:
                self.fail(f"product {i} needs more than {MAX_WIDTH} bits")

    def product_format(self, i: int) -> FixedFormat:
        """The exact type of product i (before the cast to accum_t)."""
        fa, fb = self.input.formats[i], self.input.formats[self.n + i]
        if self.product == "ternary":  # decltype(-a): one more integer bit, signed
            return FixedFormat(fa.width + 1, fa.integer + 1, True)
        return fa.product_format(fb)

    # ------------------------------------------------------------ range analysis
    def _product_interval(self, a: Interval, b: Interval) -> Interval:
        if self.product == "ternary":  # 0, a or -a
            return Interval(min(0, a.lo, -a.hi), max(0, a.hi, -a.lo))
        corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        return Interval(min(corners), max(corners))

    def _cast_products(self, x: list[Interval]) -> list[Interval]:
        """Each product's interval after its cast to accum_t (accumulator LSBs)."""
        out = []
        for i in range(self.n):
            p = self._product_interval(x[i], x[self.n + i])
            lo, hi, _ = self.accum_fmt.cast_interval(p.lo, p.hi, self.product_format(i))
            out.append(Interval(lo, hi))
        return out

    def _sum_bounds(self, products: list[Interval]) -> tuple[int, int, bool]:
        """Bounds of every partial sum in any order (0 included), and whether one can leave accum_t."""
        lo = sum(min(p.lo, 0) for p in products)
        hi = sum(max(p.hi, 0) for p in products)
        return lo, hi, lo < self.accum_fmt.min_raw or hi > self.accum_fmt.max_raw

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        products = self._cast_products(x)
        _, _, overflow = self._sum_bounds(products)
        total = Interval.of(self.accum_fmt) if overflow else \
            Interval(sum(p.lo for p in products), sum(p.hi for p in products))
        lo, hi, _ = self.output.formats[0].cast_interval(total.lo, total.hi, self.accum_fmt)
        return [Interval(lo, hi)]

    # ------------------------------------------------------------ emulation
    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        acc_fmt = self.accum_fmt
        product, accum = counter(counts, "product"), counter(counts, "accum")
        acc = np.zeros(x.shape[0], dtype=np.int64)
        for i in range(self.n):
            a, b = x[:, i], x[:, self.n + i]
            if self.product == "ternary":
                p = np.where(b == 0, np.int64(0), np.where(b == -1, -a, a))
            else:
                p = a * b
            p = acc_fmt.cast(p, self.product_format(i), product)
            acc = acc_fmt.cast(acc + p, acc_fmt, accum)  # acc += mult[i]: the exact sum assigned to accum_t
        return self.output.formats[0].cast(acc, acc_fmt, counter(counts, "output"))[:, None]

    # ------------------------------------------------------------ RTL
    def emit_rtl(self, m, xs: list, options: dict) -> list:
        acc = self.accum_fmt
        leaves = []
        for i in range(self.n):
            a, b = xs[i], xs[self.n + i]
            if self.product == "ternary":
                nonzero = m.select_equal(f"z{i}", b, 0, 0, 1)
                sign = m.select_equal(f"g{i}", b, -1, -1, 1)
                p = m.mul_signals(f"p{i}", a, m.mul_signals(f"c{i}", nonzero, sign))
            else:
                p = m.mul_signals(f"p{i}", a, b)
            leaves.append(m.requant(f"q{i}", p, self.product_format(i), acc))
        lo, hi, overflow = self._sum_bounds([Interval(p.lo, p.hi) for p in leaves])
        if overflow and acc.overflow != "WRAP":
            self.fail(f"accumulator {acc} can overflow (partial sums {lo}..{hi} raw) and saturates, which the "
                      f"parallel adder tree cannot reproduce; widen accum_t or make it WRAP")
        root = m.sum_tree("s", leaves, acc.width if overflow else None, options.get("pipeline_every"))
        if overflow:
            root = m.wrap("a", root, acc)
        return [m.requant("y0", root, acc, self.output.formats[0])]

    def describe(self) -> str:
        fa, fb = self.input.formats[0], self.input.formats[self.n]
        return (f"dot {self.n} x {fa.cpp} . {fb.cpp} ({self.product}), product {self.product_format(0).cpp}, "
                f"accum {self.accum_fmt.cpp}, output {self.output.formats[0].cpp}")
