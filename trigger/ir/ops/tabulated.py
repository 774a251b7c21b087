"""What every table activation shares (``sigmoid``, ``tanh``, ``softsign``; ``elu``, ``selu``): hls4ml's table.

nnet_activation.h reads these functions from a table of T entries (T a power of two), filled by
hls4ml's own C++ at conversion time (``trigger.frontends.hls4ml_tables``) and addressed by
``x * T / range`` computed in a C++ int. The ops differ in how they offset and clamp that index
and in what they do beside the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op


@dataclass
class Tabulated(Op):
    table: np.ndarray = None  # raw int64 (table_size,) in table_fmt, as hls4ml's C++ fills it
    table_fmt: FixedFormat = None

    arrays = ("table",)
    absorbs_previous = True  # the index logic is a shift and a clamp in front of the ROM
    input_range: ClassVar[int] = 16  # the span of x the table covers

    @property
    def table_size(self) -> int:
        return int(np.asarray(self.table).size)

    def validate(self) -> None:
        self.table = np.asarray(self.table, dtype=np.int64).reshape(-1)
        if self.output.n != self.input.n:
            self.fail(f"{self.input.n} inputs but {self.output.n} outputs")
        size = self.table_size
        if size < 2 or size & (size - 1):
            self.fail(f"table size {size} is not a power of two (>= 2): set the layer's table_size to one")
        self.check_raw("table", self.table, self.table_fmt)
        src = self.input.format
        if src.integer + size.bit_length() > 31:  # nnet_activation.h computes the index in a 32-bit int
            self.fail(f"input {src.cpp} times the table size {size} overflows the C++ int index")

    def scaled(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """x * T / range of raw x as an exact fraction: (integer numerators, integer denominator)."""
        src = self.input.format
        num = np.asarray(x, dtype=np.int64) * self.table_size
        den = self.input_range
        if src.fractional >= 0:
            den = den << src.fractional
        else:
            num = num << -src.fractional
        return num, den

    def index_step(self) -> int:
        """Raw input steps between one table index and the next (at least one)."""
        return max(1, (self.input_range << max(self.input.format.fractional, 0)) // self.table_size)
