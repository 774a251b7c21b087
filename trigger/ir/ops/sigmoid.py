"""``sigmoid`` (and the base of ``tanh``): a table look-up, as nnet_activation.h computes it.

nnet_activation.h's ``sigmoid``::

    data_round = data[ii] * CONFIG_T::table_size / 16;   // ap_fixed * int / int, then to int
    index = data_round + 8 * CONFIG_T::table_size / 16;
    clamp index to [0, table_size - 1];
    res[ii] = (res_T)sigmoid_table[index];

The ap_fixed division truncates toward zero and so does the conversion to int,
so ``index = trunc(x * T / 16) + T / 2`` clamped (``tanh``: ``/ 8`` and ``+ T / 2``).
The table itself (``table``, raw in ``table_fmt``; ``trigger.ir.ops.tabulated``) is
filled by hls4ml's own C++ at conversion time (``trigger.frontends.hls4ml_tables``),
so it is the table of the C simulation by construction. For a power-of-two table
the index is an ap_fixed cast: ``ap_fixed<t,t,TRN_ZERO,SAT>`` of ``x * 2**t / range`` (the
saturation is the clamp), plus ``T / 2``: one shift, one clamp and one ROM per
element in the RTL (the ROM holds the table already cast to the output format).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import counter, register
from trigger.ir.ops.tabulated import Tabulated
from trigger.ir.ranges import Interval


@dataclass
class TableActivation(Tabulated):
    ends_in_register = True  # the ROM read is the register
    input_range: ClassVar[int] = 16  # the table spans [-range/2, range/2): 16 for sigmoid, 8 for tanh

    # ------------------------------------------------------------ the index
    def index(self, x: np.ndarray) -> np.ndarray:
        """trunc(x * T / range) + T / 2, clamped to the table: exact integer arithmetic on raw x."""
        size = self.table_size
        num, den = self.scaled(x)
        q = np.abs(num) // den * np.sign(num)  # toward zero, as the ap_fixed division and int conversion
        return np.clip(q + size // 2, 0, size - 1)  # 8 * T / 16 (tanh: 4 * T / 8)

    def _index_formats(self) -> tuple[FixedFormat, FixedFormat]:
        """The input read as x * T / range (same raw bits) and the saturating index format."""
        t = self.table_size.bit_length() - 1
        shift = t - (self.input_range.bit_length() - 1)
        src = self.input.format
        scaled = FixedFormat(src.width, src.integer + shift, src.signed)
        return scaled, FixedFormat(t, t, True, "TRN_ZERO", "SAT")

    # ------------------------------------------------------------ semantics
    def words(self) -> np.ndarray:
        """The table cast to the output format (what each element's ROM holds)."""
        return self.output.format.cast(self.table, self.table_fmt)

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        words = self.words()
        out = []
        for iv in x:
            lo, hi = (int(v) for v in self.index(np.array([iv.lo, iv.hi])))
            reachable = words[lo:hi + 1]  # the index is monotonic in x
            out.append(Interval(int(reachable.min()), int(reachable.max())))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        return self.output.format.cast(self.table[self.index(x)], self.table_fmt, counter(counts, "output"))

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        scaled, index_fmt = self._index_formats()
        words, size = self.words(), self.table_size
        out = []
        for i, x in enumerate(xs):
            q = m.requant(f"q{i}", x, scaled, index_fmt)  # trunc toward zero, clamped to [-T/2, T/2)
            address = m.add(f"a{i}", q, m.const(f"h{i}", size // 2))
            out.append(m.rom(f"t{i}", address, size.bit_length() - 1, words, self.output.format))
        return out

    def boundary_values(self) -> list[np.ndarray]:
        """Where the index changes near zero and where the clamp starts, per element."""
        src, step = self.input.format, self.index_step()
        edge = (self.input_range // 2) << max(src.fractional, 0)
        values = np.array([0, 1, -1, step, -step, step - 1, 1 - step, edge, -edge, edge - 1, 1 - edge,
                           src.min_raw, src.max_raw], dtype=np.int64)
        values = np.unique(np.clip(values, src.min_raw, src.max_raw))
        return [values] * self.input.n

    def describe(self) -> str:
        return (f"{self.kind} {self.input.n}, table {self.table_size} x {self.table_fmt.cpp} "
                f"(input range +-{self.input_range // 2}), output {self.output.format.cpp}")


@register
@dataclass
class Sigmoid(TableActivation):
    kind = "sigmoid"
    input_range = 16
