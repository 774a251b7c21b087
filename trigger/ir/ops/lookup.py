"""``lookup``: a ROM read, one word of the output format per address.

The input is one ``ap_uint<A>`` address, ``words`` holds ``2**A`` raw integers
of the output format (a table computed offline: the whole regressor). In the
RTL it is a synchronous-read ROM, which maps onto block RAM: the read is the
register (``ends_in_register``), and the address logic in front of it needs none
of its own (``absorbs_previous``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class Lookup(Op):
    words: np.ndarray = None  # int64 (2**address_bits,) raw values of the output format

    kind = "lookup"
    arrays = ("words",)
    absorbs_previous = True
    ends_in_register = True

    @property
    def address_bits(self) -> int:
        return self.input.formats[0].width

    def validate(self) -> None:
        self.words = np.asarray(self.words, dtype=np.int64).reshape(-1)
        if self.input.n != 1 or self.output.n != 1:
            self.fail(f"reads one word at one address, got {self.input.n} inputs and {self.output.n} outputs")
        address = self.input.formats[0]
        if address.signed or address.fractional != 0:
            self.fail(f"address is {address.cpp}, expected ap_uint")
        if self.words.size != 1 << address.width:
            self.fail(f"{self.words.size} words for a {address.width}-bit address (expected {1 << address.width})")
        self.check_raw("words", self.words, self.output.formats[0])

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        reachable = self.words[x[0].lo:x[0].hi + 1]
        return [Interval(int(reachable.min()), int(reachable.max()))]

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        counter(counts, "output").add(len(x), 0)  # the words were quantized when the table was made
        return self.words[x[:, 0]].reshape(-1, 1)

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        return [m.rom("rom", xs[0], self.address_bits, self.words, self.output.formats[0])]

    def describe(self) -> str:
        return f"lookup {1 << self.address_bits} words of {self.output.formats[0].cpp}"
