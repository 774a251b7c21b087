"""``concat``: unsigned input elements packed into one unsigned word (a table address).

Element i occupies bits ``[lsb[i] + width_i - 1 : lsb[i]]`` of the output; the
fields tile the word exactly. In hardware this is wiring only, so it needs no
register in front (``absorbs_previous``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class Concat(Op):
    lsb: list = field(default_factory=list)  # per input element, its lowest bit in the output word

    kind = "concat"
    absorbs_previous = True

    def validate(self) -> None:
        self.lsb = [int(v) for v in self.lsb]
        if self.output.n != 1:
            self.fail(f"packs into one output element, got {self.output.n}")
        out = self.output.formats[0]
        if out.signed or out.fractional != 0:
            self.fail(f"output is {out.cpp}, expected an ap_uint word")
        if len(self.lsb) != self.input.n:
            self.fail(f"{len(self.lsb)} field positions for {self.input.n} input elements")
        owner = [None] * out.width
        for i, (f, lsb) in enumerate(zip(self.input.formats, self.lsb)):
            if f.signed or f.fractional != 0:
                self.fail(f"input element {i} is {f.cpp}, expected ap_uint")
            if lsb < 0 or lsb + f.width > out.width:
                self.fail(f"field {i} at bits [{lsb + f.width - 1}:{lsb}] does not fit the {out.width}-bit output")
            for b in range(lsb, lsb + f.width):
                if owner[b] is not None:
                    self.fail(f"fields {owner[b]} and {i} overlap at bit {b}")
                owner[b] = i
        if None in owner:
            self.fail(f"no field covers output bit {owner.index(None)}")

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        # Each field enters the word monotonically and the fields do not overlap.
        return [Interval(sum(iv.lo << s for iv, s in zip(x, self.lsb)), sum(iv.hi << s for iv, s in zip(x, self.lsb)))]

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        word = np.zeros((x.shape[0], 1), dtype=np.int64)
        for i, s in enumerate(self.lsb):
            word[:, 0] |= x[:, i] << s
        counter(counts, "output").add(len(word), 0)
        return word

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        fields = [(x, s, f.width) for x, s, f in zip(xs, self.lsb, self.input.formats)]
        return [m.concat("word", fields, self.output.formats[0].width)]

    def preimage(self, y: np.ndarray) -> np.ndarray:
        """The fields of each word."""
        y = np.asarray(y, dtype=np.int64).reshape(-1, 1)
        return np.stack([(y[:, 0] >> s) & ((1 << f.width) - 1) for s, f in zip(self.lsb, self.input.formats)],
                        axis=1) if len(y) else np.zeros((0, self.input.n), dtype=np.int64)

    def describe(self) -> str:
        names = self.input.names or [f"x{i}" for i in range(self.input.n)]
        order = sorted(zip(self.lsb, names, self.input.formats), reverse=True)
        return (f"concat into {self.output.formats[0].cpp}: "
                + ", ".join(f"{n}[{s + f.width - 1}:{s}]" for s, n, f in order))
