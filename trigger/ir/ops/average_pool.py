"""``average_pool``: average pooling 1D/2D, as nnet_pooling.h's ``avg`` computes it.

Per channel and output position: ``accum_t y = 0; y += x[i]`` over the window's
cells in order (each sum exact, then cast to ``accum_t``: rounding and overflow as
that type says; a padded cell holds 0 and changes nothing), then ``y /= length``,
where length is the number of cells inside the image (``count_pad`` false, as
Keras) or the whole window. ap_fixed divides by an unsigned int in C simulation
as integers (``sdiv``/``udiv``) on the raw value: the quotient truncated toward
zero, in ``accum_t``'s LSBs. Finally ``res_t`` = the accumulator.

The RTL divides by the constant length exactly with a multiply-and-shift
(``|y| * M >> s`` with ``M = ceil(2**s / length)`` and ``2**s > max|y| * length``,
which equals ``|y| // length`` on the whole range), then restores the sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import MAX_WIDTH, FixedFormat
from trigger.ir.op import counter, register
from trigger.ir.ops.max_pool import _Pool
from trigger.ir.ranges import Interval, signed_width
from trigger.ir.windows import gather


@register
@dataclass
class AveragePool(_Pool):
    count_pad: bool = False

    kind = "average_pool"

    def lengths(self) -> np.ndarray:
        """The divisor of every output (cells inside the image, or the whole window)."""
        cells = self.windows()
        return np.full(len(cells), cells.shape[1]) if self.count_pad else (cells >= 0).sum(axis=1)

    def _sum_format(self) -> FixedFormat:
        return self.accum_fmt.sum_format(self.input.format)

    def _sum_interval(self, cells, x: list[Interval]) -> Interval:
        """The accumulator's range after the window's sum (interval arithmetic through every cast)."""
        acc, src, total = self.accum_fmt, self.input.format, self._sum_format()
        y = Interval(0, 0)
        for i in cells:
            if i < 0:
                continue
            xi = x[int(i)]
            s = Interval(y.lo << (total.fractional - acc.fractional), y.hi << (total.fractional - acc.fractional)) \
                + Interval(xi.lo << (total.fractional - src.fractional), xi.hi << (total.fractional - src.fractional))
            lo, hi, _ = acc.cast_interval(s.lo, s.hi, total)
            y = Interval(lo, hi)
        return y

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        out = []
        for k, (cells, length) in enumerate(zip(self.windows(), self.lengths())):
            y = self._sum_interval(cells, x)
            q = Interval(_div_toward_zero(y.lo, int(length)), _div_toward_zero(y.hi, int(length)))
            lo, hi, _ = self.output.formats[k].cast_interval(q.lo, q.hi, self.accum_fmt)
            out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        acc, src, total = self.accum_fmt, self.input.format, self._sum_format()
        cells = gather(x, self.windows(), 0)  # (n, outputs, window)
        accum = counter(counts, "accum")
        y = np.zeros(cells.shape[:2], dtype=np.int64)
        for k in range(cells.shape[2]):  # y += x[k], in accum_t
            s = (y << (total.fractional - acc.fractional)) + (cells[:, :, k] << (total.fractional - src.fractional))
            y = acc.cast(s, total, accum)
        length = self.lengths()[None, :]
        q = np.sign(y) * (np.abs(y) // length)  # ap_fixed / unsigned: integer division, toward zero
        return self.output.format.cast(q, acc, counter(counts, "output"))

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        acc, src, total = self.accum_fmt, self.input.format, self._sum_format()
        up_acc, up_src = 1 << (total.fractional - acc.fractional), 1 << (total.fractional - src.fractional)
        x_iv = [x.interval for x in xs]
        outputs = []
        for k, (cells, length) in enumerate(zip(self.windows(), self.lengths())):
            inside = [xs[int(i)] for i in cells if i >= 0]
            exact = up_acc == 1 and not _can_overflow(acc, total, cells, x_iv, src)
            if exact:  # no cast in the chain changes a value: one adder tree
                y = m.sum_tree(f"s{k}", [m.mul(f"x{k}_{j}", x, up_src) for j, x in enumerate(inside)])
            else:  # hls4ml's order, each partial sum cast to accum_t
                y = m.const(f"z{k}", 0)
                for j, x in enumerate(inside):
                    s = m.add(f"s{k}_{j}", m.mul(f"y{k}_{j}", y, up_acc), m.mul(f"x{k}_{j}", x, up_src))
                    y = m.requant(f"a{k}_{j}", s, total, acc)
            q = self._divide(m, f"q{k}", y, int(length))
            outputs.append(m.requant(f"o{k}", q, acc, self.output.formats[k]))
        return outputs

    def _divide(self, m, name: str, y, length: int):
        """y // length toward zero, y a signal of raw integers (exact on y's whole range)."""
        if length == 1 or y.const is not None:
            return y if length == 1 else m.const(name, _div_toward_zero(y.const, length))
        magnitude = max(-y.lo, y.hi, 1)
        shift = magnitude.bit_length() + length.bit_length() + 1  # 2**shift > magnitude * length
        mult = -(-(1 << shift) // length)  # ceil(2**shift / length)
        width = signed_width(0, magnitude * mult)
        if width > MAX_WIDTH:
            self.fail(f"dividing by {length} needs a {width}-bit product (> {MAX_WIDTH}); use a narrower accum_t")
        absolute = y if y.lo >= 0 else m.select_positive(f"{name}_abs", y, y, m.mul(f"{name}_neg", y, -1))
        scaled = m.mul(f"{name}_mul", absolute, mult)
        floor = m.requant(f"{name}_shr", scaled, FixedFormat(width, width - shift, True),
                          FixedFormat(width - shift + 1, width - shift + 1, True))
        if y.lo >= 0:
            return floor
        return m.select_positive(name, y, floor, m.mul(f"{name}_n", floor, -1))

    def describe(self) -> str:
        return super().describe() + (", divisor: the whole window" if self.count_pad else "")


def _div_toward_zero(a: int, b: int) -> int:
    q = abs(int(a)) // b
    return q if a >= 0 else -q


def _can_overflow(acc: FixedFormat, total: FixedFormat, cells, x_iv: list[Interval], src: FixedFormat) -> bool:
    """Whether some partial sum of the window leaves accum_t (every cell's range holds 0, so the full sums bound them)."""
    shift = total.fractional - src.fractional
    lo = sum(min(x_iv[int(i)].lo, 0) << shift for i in cells if i >= 0)
    hi = sum(max(x_iv[int(i)].hi, 0) << shift for i in cells if i >= 0)
    return acc.cast_interval(lo, hi, total)[2]
