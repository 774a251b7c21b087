"""``global_pool``: the max or the mean of every feature over a set of items, as nnet_pooling.h.

The input is ``n_items`` items of ``n_features`` values, item-major (channels last:
element ``item * n_features + f``), as hls4ml lays out GlobalMax/GlobalAveragePooling
1D (items = steps) and 2D (items = pixels), and the sum or mean over the
constituents of a DeepSets network. nnet_pooling.h's ``global_pooling1d_cl`` /
``global_pooling2d_cl`` compute per feature ``pool_op<data_T, N, op, accum_t>``:

- max: ``y = x[0]; y = x[i] > y ? x[i] : y`` in data_T, returned as accum_t, then res_T;
- mean: ``accum_t y = 0; y += x[i]`` (a cast to accum_t after every addition), then
  ``y /= N`` (the ap_fixed division truncates toward zero), then res_T.

The RTL sums in a balanced tree when no partial sum can overflow or round (then the
order does not matter), else in hls4ml's order, casting after every addition; the
division is a truncating shift for a power-of-two N, else a multiplication by a rounded-up
reciprocal and a shift, sized from the range so that it is exact (``_divide_rtl``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval

MODES = ("max", "mean")


@register
@dataclass
class GlobalPool(Op):
    mode: str = "mean"
    n_items: int = 1
    n_features: int = 1
    accum_fmt: FixedFormat = None

    kind = "global_pool"

    def validate(self) -> None:
        self.n_items, self.n_features = int(self.n_items), int(self.n_features)
        if self.mode not in MODES:
            self.fail(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.n_items < 1 or self.n_features < 1 or self.input.n != self.n_items * self.n_features:
            self.fail(f"{self.input.n} inputs are not {self.n_items} items x {self.n_features} features")
        if self.output.n != self.n_features:
            self.fail(f"{self.output.n} outputs for {self.n_features} features")
        self.input.format, self.output.format  # noqa: B018 - one format per tensor (raises otherwise)

    # ------------------------------------------------------------ helpers
    def _items(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), self.n_items, self.n_features)

    def _sum_is_exact(self) -> bool:
        """Every partial sum fits accum_t without rounding: the order of the additions does not matter."""
        src, acc = self.input.format, self.accum_fmt
        if acc.fractional < src.fractional:
            return False
        scale = 1 << (acc.fractional - src.fractional)
        lo = min(0, src.min_raw * self.n_items * scale)
        hi = max(0, src.max_raw * self.n_items * scale)
        return acc.min_raw <= lo and hi <= acc.max_raw

    def exact_accumulator(self) -> FixedFormat | None:
        """For a mean whose sum can overflow or round in accum_t, an accum_t that cannot (same modes); else None.

        hls4ml 1.3 infers no accumulator for global pooling (the model's default type): a mean of 16
        values up to 4 saturates a fixed<16,6> accumulator, and the firmware no longer computes the
        Keras mean. The network frontend widens it to this format."""
        if self.mode != "mean" or self._sum_is_exact():
            return None
        src, acc = self.input.format, self.accum_fmt
        frac = max(acc.fractional, src.fractional)
        lo = min(0, src.min_raw * self.n_items) << (frac - src.fractional)
        hi = max(0, src.max_raw * self.n_items) << (frac - src.fractional)
        width = max(-lo, hi + 1, 1).bit_length() + 1
        return FixedFormat(width, width - frac, True, acc.rounding, acc.overflow)

    def _mean_formats(self) -> tuple[FixedFormat, FixedFormat]:
        """The sum read with log2(N) more fractional bits (same raw bits), and accum_t truncating toward zero."""
        k = self.n_items.bit_length() - 1
        acc = self.accum_fmt
        return FixedFormat(acc.width, acc.integer - k, acc.signed), acc.with_modes("TRN_ZERO")

    # ------------------------------------------------------------ semantics
    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        src, acc, out = self.input.format, self.accum_fmt, self.output.format
        result = []
        for f in range(self.n_features):
            ivs = [x[i * self.n_features + f] for i in range(self.n_items)]
            lo, hi = min(iv.lo for iv in ivs), max(iv.hi for iv in ivs)
            if self.mode == "max":
                lo, hi, _ = acc.cast_interval(lo, hi, src)
            elif self._sum_is_exact():
                scale = 1 << (acc.fractional - src.fractional)
                lo, hi = (int(v) for v in self._divide(np.array([lo * self.n_items * scale,
                                                                  hi * self.n_items * scale])))
            else:
                lo, hi = acc.min_raw, acc.max_raw
            lo, hi, _ = out.cast_interval(lo, hi, acc)
            result.append(Interval(lo, hi))
        return result

    def _divide(self, total: np.ndarray) -> np.ndarray:
        q = np.abs(total) // self.n_items
        return np.where(total < 0, -q, q)

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        src, acc = self.input.format, self.accum_fmt
        items = self._items(x)
        if self.mode == "max":
            y = acc.cast(items.max(axis=1), src, counter(counts, "accum"))
        else:
            count = counter(counts, "accum")
            sum_fmt = acc.sum_format(src)
            y = np.zeros((len(x), self.n_features), dtype=np.int64)
            for i in range(self.n_items):  # y += x[i], cast to accum_t every time
                s = (y << (sum_fmt.fractional - acc.fractional)) + (items[:, i] << (sum_fmt.fractional - src.fractional))
                y = acc.cast(s, sum_fmt, count)
            y = self._divide(y)
        return self.output.format.cast(y, acc, counter(counts, "output"))

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        src, acc, out = self.input.format, self.accum_fmt, self.output.format
        every = options.get("pipeline_every")
        columns = [[xs[i * self.n_features + f] for i in range(self.n_items)] for f in range(self.n_features)]
        if self.mode == "max":
            tops = []
            for f, col in enumerate(columns):
                nodes = list(col)
                while len(nodes) > 1:
                    nodes = [m.select_ge(f"m{f}", nodes[k], nodes[k + 1], nodes[k], nodes[k + 1])
                             if k + 1 < len(nodes) else nodes[k] for k in range(0, len(nodes), 2)]
                tops.append(m.requant(f"a{f}", nodes[0], src, acc))
        elif self._sum_is_exact():
            scale = 1 << (acc.fractional - src.fractional)
            leaves = [[m.mul(f"l{f}_{i}", x, scale) for i, x in enumerate(col)] for f, col in enumerate(columns)]
            tops = m.sum_trees("s", leaves, None, every)
        else:  # hls4ml's order, one cast per addition
            sum_fmt = acc.sum_format(src)
            tops = []
            for f, col in enumerate(columns):
                y = m.const(f"z{f}", 0)
                for i, x in enumerate(col):
                    a = m.mul(f"u{f}_{i}", y, 1 << (sum_fmt.fractional - acc.fractional))
                    b = m.mul(f"v{f}_{i}", x, 1 << (sum_fmt.fractional - src.fractional))
                    y = m.requant(f"c{f}_{i}", m.add(f"w{f}_{i}", a, b), sum_fmt, acc)
                tops.append(y)
        if self.mode == "mean" and self.n_items & (self.n_items - 1):
            tops = [self._divide_rtl(m, f, t) for f, t in enumerate(tops)]
        elif self.mode == "mean":
            scaled, trunc = self._mean_formats()
            tops = [m.requant(f"q{f}", t, scaled, trunc) for f, t in enumerate(tops)]
        return [m.requant(f"y{f}", t, acc, out) for f, t in enumerate(tops)]

    def _divide_rtl(self, m, f: int, t):
        """``t / N`` truncated toward zero (``y /= length``) for N not a power of two: |t| times
        M = ceil(2**k / N), shifted down k bits, with k large enough that the product's error stays
        below one quotient step for every |t| the range allows (M * N - 2**k) * max|t| < 2**k), then
        the sign put back. Exact integers, no divider."""
        n = self.n_items
        top = max(-t.lo, t.hi, 1)
        k = top.bit_length()
        while True:
            mult = -(-(1 << k) // n)
            if top * (mult * n - (1 << k)) < (1 << k):
                break
            k += 1
        magnitude = m.select_positive(f"abs{f}", t, t, m.shift(f"neg{f}", t, 0, negate=True))
        product = m.mul(f"p{f}", magnitude, mult)
        width = product.width + 1
        quotient_bits = (top // n).bit_length() + 2
        q = m.requant(f"d{f}", product, FixedFormat(width, width - k, True), FixedFormat(quotient_bits, quotient_bits, True))
        return m.select_positive(f"q{f}", t, q, m.shift(f"qn{f}", q, 0, negate=True))

    def describe(self) -> str:
        return (f"global_pool {self.mode} over {self.n_items} items x {self.n_features} features, "
                f"accum {self.accum_fmt.cpp}, output {self.output.format.cpp}")
