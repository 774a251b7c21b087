"""``elu`` and ``selu``: a linear positive branch and a table for x < 0, as nnet_activation.h computes them.

nnet_activation.h's ``elu(data, alpha, res)`` and ``selu(data, res)``::

    if (x >= 0) res = x;                  // selu: res = lambda * x, lambda an ap_ufixed<16,1>
    else {
        index = x * table_size / -8;      // ap_fixed * int / int, then to int
        clamp index to table_size - 1;
        res = alpha * elu_table[index];   // selu: res = selu_table[index]
    }

For x < 0 the quotient is positive, so the truncations toward zero (the ap_fixed
division, then the conversion to int) are one floor: ``index = min(floor(-x * T / 8),
T - 1)``. The tables (``exp(x) - 1`` and ``lambda * 1.673 * (exp(x) - 1)`` on
``-8 * i / T``) are filled by hls4ml's own C++ (``trigger.frontends.hls4ml_tables``).
``alpha`` (elu) is the double literal hls4ml passes, held in ``param_t``; ``alpha *
table`` is exact in ap_fixed before the cast to the output. The RTL holds, per
element, a ROM of the negative branch already cast to the output format, addressed by
``-x`` read as ``x * T / 8`` and cast to ``ap_ufixed<t,t,TRN,SAT>`` (the floor and the
clamp), and a mux on the sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import counter, register
from trigger.ir.ops.tabulated import Tabulated
from trigger.ir.ranges import Interval

SELU_LAMBDA = 1.0507009873554805  # nnet_activation.h's selu: ``static const ap_ufixed<16, 1> lambda``
SELU_LAMBDA_FMT = FixedFormat(16, 1, False)


@dataclass
class NegativeTable(Tabulated):
    input_range: ClassVar[int] = 8  # the table spans [-8, 0)

    # ------------------------------------------------------------ the two branches
    def index(self, x: np.ndarray) -> np.ndarray:
        """min(floor(-x * T / 8), T - 1) for x < 0 (0 elsewhere): exact integer arithmetic on raw x."""
        num, den = self.scaled(-np.asarray(x, dtype=np.int64))
        return np.clip(num // den, 0, self.table_size - 1)

    def words(self) -> np.ndarray:
        """The negative branch per table entry, cast to the output format (what each element's ROM holds)."""
        raise NotImplementedError

    def positive_format(self) -> FixedFormat:
        """The format of the positive branch before its cast (``x``, or ``lambda * x``)."""
        return self.input.format

    def positive(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.int64)

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        words, dst = self.words(), self.output.format
        out = []
        for iv in x:
            parts = []
            if iv.hi >= 0:
                lo, hi = (int(v) for v in self.positive(np.array([max(iv.lo, 0), iv.hi])))
                lo, hi, _ = dst.cast_interval(lo, hi, self.positive_format())
                parts.append(Interval(lo, hi))
            if iv.lo < 0:
                first, last = (int(v) for v in self.index(np.array([min(iv.hi, -1), iv.lo])))
                reachable = words[first:last + 1]
                parts.append(Interval(int(reachable.min()), int(reachable.max())))
            out.append(parts[0] if len(parts) == 1 else parts[0].hull(parts[1]))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        count = counter(counts, "output")
        dst = self.output.format
        negative = x < 0
        y = np.empty_like(x)
        y[~negative] = dst.cast(self.positive(x[~negative]), self.positive_format(), count)
        y[negative] = self._negative(self.index(x[negative]), count)
        return y

    def _negative(self, index: np.ndarray, count) -> np.ndarray:
        raise NotImplementedError

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        src, dst, size = self.input.format, self.output.format, self.table_size
        t = size.bit_length() - 1
        scaled = FixedFormat(src.width + 1, src.integer + 1 + t - 3, True)  # -x read as -x * T / 8
        index_fmt = FixedFormat(t, t, False, "TRN", "SAT")  # the floor, and the clamp to [0, T - 1]
        words = self.words()
        out = []
        for i, x in enumerate(xs):
            kept = self._emit_positive(m, i, x)
            address = m.requant(f"a{i}", m.shift(f"n{i}", x, 0, negate=True), scaled, index_fmt)
            table = m.rom(f"t{i}", address, t, words, dst)
            out.append(m.select_ge(f"y{i}", x, m.const(f"z{i}", 0), kept, table))
        return out

    def _emit_positive(self, m, i: int, x):
        return m.requant(f"k{i}", x, self.input.format, self.output.format)

    def boundary_values(self) -> list[np.ndarray]:
        """Zero, where the index changes near zero and where the clamp starts, per element."""
        src, step = self.input.format, self.index_step()
        edge = self.input_range << max(src.fractional, 0)
        values = np.array([0, 1, -1, -step, 1 - step, -step - 1, -edge, 1 - edge, -edge - 1, src.min_raw,
                           src.max_raw], dtype=np.int64)
        return [np.unique(np.clip(values, src.min_raw, src.max_raw))] * self.input.n


@register
@dataclass
class Elu(NegativeTable):
    alpha: int = 0  # raw, in alpha_fmt (hls4ml's param_t)
    alpha_fmt: FixedFormat = None

    kind = "elu"

    def validate(self) -> None:
        super().validate()
        self.check_raw("alpha", np.array([self.alpha]), self.alpha_fmt)

    def _product_fmt(self) -> FixedFormat:
        return self.alpha_fmt.product_format(self.table_fmt)

    def _negative(self, index, count):
        return self.output.format.cast(self.table[index] * self.alpha, self._product_fmt(), count)

    def words(self) -> np.ndarray:
        return self.output.format.cast(self.table * self.alpha, self._product_fmt())

    def describe(self) -> str:
        return (f"elu {self.input.n}, alpha {self.alpha_fmt.to_float([self.alpha])[0]:g} ({self.alpha_fmt.cpp}), "
                f"table {self.table_size} x {self.table_fmt.cpp}, output {self.output.format.cpp}")


@register
@dataclass
class Selu(NegativeTable):
    kind = "selu"

    @property
    def scale(self) -> int:
        """lambda as nnet_activation.h holds it: the double literal in ap_ufixed<16,1> (truncated)."""
        return int(SELU_LAMBDA_FMT.quantize([SELU_LAMBDA])[0])

    def positive_format(self) -> FixedFormat:
        return self.input.format.product_format(SELU_LAMBDA_FMT)

    def positive(self, x):
        return np.asarray(x, dtype=np.int64) * self.scale

    def _negative(self, index, count):
        return self.output.format.cast(self.table[index], self.table_fmt, count)

    def words(self) -> np.ndarray:
        return self.output.format.cast(self.table, self.table_fmt)

    def _emit_positive(self, m, i: int, x):
        return m.requant(f"k{i}", m.mul(f"p{i}", x, self.scale), self.positive_format(), self.output.format)

    def describe(self) -> str:
        return (f"selu {self.input.n}, lambda {SELU_LAMBDA_FMT.to_float([self.scale])[0]:.6f} "
                f"({SELU_LAMBDA_FMT.cpp}), table {self.table_size} x {self.table_fmt.cpp}, "
                f"output {self.output.format.cpp}")
