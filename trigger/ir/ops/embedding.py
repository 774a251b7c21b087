"""``embedding``: a row of a constant table per input id, as nnet_embed.h's ``embedding``.

nnet_embed.h: ``res[j * n_out + i] = embeddings[data[j] * n_out + i]``, the table held in
``embeddings_t`` and each value cast to ``res_T``. The ids must be whole numbers inside the
vocabulary for that to read the table at all (C++ reads outside the array otherwise), so the
input format is an unsigned integer whose every value is an id (checked here). In the RTL each
output element is a ROM of its column (the cast words), addressed by its id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class Embedding(Op):
    table: np.ndarray = None  # raw int64 (vocab_size, n_out) in table_fmt
    table_fmt: FixedFormat = None

    kind = "embedding"
    arrays = ("table",)
    absorbs_previous = True
    ends_in_register = True  # the ROM read is the register

    @property
    def n_out(self) -> int:
        return int(np.asarray(self.table).shape[1])

    def validate(self) -> None:
        self.table = np.asarray(self.table, dtype=np.int64)
        if self.table.ndim != 2 or self.table.size == 0:
            self.fail(f"table of shape {self.table.shape} is not (vocabulary, features)")
        if self.output.n != self.input.n * self.n_out:
            self.fail(f"{self.input.n} ids of {self.n_out} features are not {self.output.n} outputs")
        for f in self.input.formats:
            if f.signed or f.fractional != 0 or f.max_raw >= self.table.shape[0]:
                self.fail(f"ids in {f.cpp} are not all inside the vocabulary of {self.table.shape[0]} "
                          f"(an unsigned integer of at most {max(self.table.shape[0].bit_length() - 1, 0)} bits)")
        self.check_raw("table", self.table, self.table_fmt)

    def words(self) -> np.ndarray:
        """The table cast to the output format (vocab_size, n_out)."""
        return self.output.format.cast(self.table, self.table_fmt)

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        words = self.words()
        return [Interval(int(words[iv.lo:iv.hi + 1, i].min()), int(words[iv.lo:iv.hi + 1, i].max()))
                for iv in x for i in range(self.n_out)]

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        rows = self.table[np.asarray(x, dtype=np.int64)]  # (vectors, n_in, n_out)
        return self.output.format.cast(rows.reshape(len(x), -1), self.table_fmt, counter(counts, "output"))

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        words, out = self.words(), []
        for j, (x, f) in enumerate(zip(xs, self.input.formats)):
            depth = 1 << f.width
            for i in range(self.n_out):
                out.append(m.rom(f"e{j}_{i}", x, f.width, words[:depth, i], self.output.format))
        return out

    def describe(self) -> str:
        return (f"embedding {self.input.n} ids -> {self.n_out} features, table {self.table.shape[0]} x "
                f"{self.table_fmt.cpp}, output {self.output.format.cpp}")
