"""``argmax``: the class index of the largest input (the decision a trigger keeps), as an ap_uint.

Ties go to the first largest element, as numpy's argmax and hls4ml's
``softmax_argmax`` (``if (data[i] > maximum)``) choose. The RTL is a tournament
of comparators in which ties go left (``ModuleBuilder.argmax``). This op is
appended by the ``argmax`` output option; hls4ml's project computes the tensor
in front of it, which the verifier compares with the C simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


def index_format(n: int) -> FixedFormat:
    """ap_uint wide enough for the indices 0..n-1."""
    return FixedFormat.parse(f"uint<{max(1, (n - 1).bit_length())}>")


@register
@dataclass
class Argmax(Op):
    kind = "argmax"

    def validate(self) -> None:
        if self.output.n != 1:
            self.fail(f"outputs one class index, got {self.output.n} outputs")
        out = self.output.formats[0]
        if out.signed or out.fractional != 0 or out.max_raw < self.input.n - 1:
            self.fail(f"output {out.cpp} cannot hold the class indices 0..{self.input.n - 1}")
        self.input.format  # noqa: B018 - one format for every input (raises otherwise)

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        return [Interval(0, self.input.n - 1)]

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        counter(counts, "output").add(len(x), 0)
        return np.argmax(x, axis=1).astype(np.int64).reshape(-1, 1)

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        return [m.argmax("arg", xs)]

    def describe(self) -> str:
        return f"argmax of {self.input.n} -> class index {self.output.formats[0].cpp}"
