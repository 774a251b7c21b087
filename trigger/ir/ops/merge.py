"""``merge``: an element-wise operation on two tensors, as nnet_merge.h's ``add``, ``subtract``,
``multiply``, ``average``, ``maximum`` and ``minimum`` compute it (field ``operation``).

The op reads the two source tensors side by side (``input_sizes`` = [n1, n2]) and writes
``n = max(n1, n2)`` elements; element ``i`` reads ``data1[i % n1]`` and ``data2[i % n2]``
(hls4ml's broadcast of a smaller tensor, io_parallel). Per ``operation``, in ap_fixed:

- ``add``: ``res = data1 + data2``: the exact sum (ap_fixed's ``+`` type), cast to res_T.
- ``subtract``: ``res = data1 - data2``: the exact difference (ap_fixed's ``-`` type, always
  signed), cast to res_T.
- ``multiply``: ``res = data1 * data2``: the exact product, cast to res_T.
- ``average``: ``res = (data1 + data2) * ap_ufixed<1,0>(0.5)``: the exact sum times 0.5, which
  is exact too (the same raw integer with one more fractional bit, no shift and no division);
  the only rounding is the cast to res_T, in res_T's rounding mode. hls4ml's precision
  inference gives average the sum's type (no extra fractional bit), so with the default
  TRN the halving floors (-1.5 LSB -> -2 LSB); with RND it rounds half up, and so on.
- ``maximum``: ``res = data1 > data2 ? (res_T)data1 : (res_T)data2``; ``minimum`` with ``<``.
  ap_fixed compares the exact values whatever the two formats; on a tie either cast gives the
  same value, so the op takes the larger (smaller) exact value and casts it once.

Each input element may have its own format (the two sources usually differ); the
output is counted as tensor ``output`` (overflows of the cast to res_T).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trigger.errors import ConfigError
from trigger.fixed import MAX_WIDTH, FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval

OPERATIONS = ("add", "subtract", "multiply", "average", "maximum", "minimum")


def aligned_format(a: FixedFormat, b: FixedFormat) -> FixedFormat:
    """A signed-or-not format holding every value of a and of b exactly (ap_fixed's common type
    of a comparison), at the finer of their LSBs."""
    signed = a.signed or b.signed
    integer = max(a.integer + (signed and not a.signed), b.integer + (signed and not b.signed))
    fractional = max(a.fractional, b.fractional)
    return FixedFormat(integer + fractional, integer, signed)


def exact_format(operation: str, a: FixedFormat, b: FixedFormat) -> FixedFormat:
    """The exact ap_fixed type of ``operation`` on a and b, before the cast to res_T."""
    if operation == "multiply":
        return a.product_format(b)
    if operation in ("maximum", "minimum"):
        return aligned_format(a, b)
    s = a.sum_format(b)
    if operation == "subtract":  # ap_fixed's minus type: the plus width, always signed
        return FixedFormat(s.width, s.integer, True)
    if operation == "average":  # times ap_ufixed<1,0>: one more fractional bit, the same raw value
        return FixedFormat(s.width + 1, s.integer, s.signed)
    return s


def _widths(a: FixedFormat, b: FixedFormat) -> tuple[int, int]:
    """Left shifts that bring raw values of a and b to their common (finer) LSB."""
    f = max(a.fractional, b.fractional)
    return f - a.fractional, f - b.fractional


@register
@dataclass
class Merge(Op):
    operation: str = "add"  # one of OPERATIONS
    input_sizes: list = field(default_factory=list)  # [n1, n2]: elements of each source, in order

    kind = "merge"

    # ------------------------------------------------------------ checks
    def validate(self) -> None:
        self.input_sizes = [int(v) for v in self.input_sizes]
        if self.operation not in OPERATIONS:
            self.fail(f"operation {self.operation!r} is not one of {', '.join(OPERATIONS)}")
        if len(self.input_sizes) != 2 or min(self.input_sizes) < 1:
            self.fail(f"merges two tensors, got input_sizes {self.input_sizes}")
        if sum(self.input_sizes) != self.input.n:
            self.fail(f"input_sizes {self.input_sizes} do not add up to its {self.input.n} input elements")
        if self.output.n != max(self.input_sizes):
            self.fail(f"{self.output.n} outputs, expected max{tuple(self.input_sizes)} = {max(self.input_sizes)}")
        for i in range(self.output.n):
            fa, fb = self.operands(i)
            try:
                exact_format(self.operation, fa, fb), aligned_format(fa, fb)
            except ConfigError:
                self.fail(f"element {i}: {self.operation} of {fa.cpp} and {fb.cpp} needs more than {MAX_WIDTH} bits")

    def sources(self, i: int) -> tuple[int, int]:
        """Input element indices (in the concatenated input) that output element i reads."""
        n1, n2 = self.input_sizes
        return i % n1, n1 + i % n2

    def operands(self, i: int) -> tuple[FixedFormat, FixedFormat]:
        a, b = self.sources(i)
        return self.input.formats[a], self.input.formats[b]

    def _groups(self) -> dict:
        """Output elements grouped by (format a, format b, output format): each group is one numpy pass."""
        groups: dict = {}
        for i in range(self.output.n):
            groups.setdefault((*self.operands(i), self.output.formats[i]), []).append(i)
        return groups

    # ------------------------------------------------------------ semantics
    def _exact(self, a: np.ndarray, b: np.ndarray, fa: FixedFormat, fb: FixedFormat) -> np.ndarray:
        """Raw result in exact_format(operation, fa, fb) of raw a (fa) and raw b (fb)."""
        op = self.operation
        if op == "multiply":
            return a * b
        sa, sb = _widths(fa, fb)
        a, b = a << sa, b << sb
        if op in ("add", "average"):
            return a + b
        if op == "subtract":
            return a - b
        return np.maximum(a, b) if op == "maximum" else np.minimum(a, b)

    def _exact_interval(self, a: Interval, b: Interval, fa: FixedFormat, fb: FixedFormat) -> Interval:
        op = self.operation
        if op == "multiply":
            corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
            return Interval(min(corners), max(corners))
        sa, sb = _widths(fa, fb)
        a, b = a.scale(1 << sa), b.scale(1 << sb)
        if op in ("add", "average"):
            return a + b
        if op == "subtract":
            return a + b.scale(-1)
        if op == "maximum":
            return Interval(max(a.lo, b.lo), max(a.hi, b.hi))
        return Interval(min(a.lo, b.lo), min(a.hi, b.hi))

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        out = []
        for i in range(self.output.n):
            ia, ib = self.sources(i)
            fa, fb = self.operands(i)
            iv = self._exact_interval(x[ia], x[ib], fa, fb)
            lo, hi, _ = self.output.formats[i].cast_interval(iv.lo, iv.hi, exact_format(self.operation, fa, fb))
            out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        out = np.empty((x.shape[0], self.output.n), dtype=np.int64)
        count = counter(counts, "output")
        for (fa, fb, fo), elements in self._groups().items():
            cols = np.array([self.sources(i) for i in elements], dtype=np.int64)
            exact = self._exact(x[:, cols[:, 0]], x[:, cols[:, 1]], fa, fb)
            out[:, elements] = fo.cast(exact, exact_format(self.operation, fa, fb), count)
        return out

    # ------------------------------------------------------------ RTL
    def emit_rtl(self, m, xs: list, options: dict) -> list:
        op = self.operation
        out = []
        for i in range(self.output.n):
            ia, ib = self.sources(i)
            a, b = xs[ia], xs[ib]
            fa, fb = self.operands(i)
            sa, sb = _widths(fa, fb)
            if op == "multiply":
                r = m.mul_signals(f"p{i}", a, b)
            elif op in ("add", "average", "subtract"):
                r = m.shift_add(f"s{i}", a, sa, b, sb, op == "subtract")
            else:
                a, b = m.shift(f"a{i}", a, sa), m.shift(f"b{i}", b, sb)
                # maximum: a >= b ? a : b; minimum: b >= a ? a : b (a tie is the same value either way)
                r = m.select_ge(f"m{i}", a, b, a, b) if op == "maximum" else m.select_ge(f"m{i}", b, a, a, b)
            out.append(m.requant(f"y{i}", r, exact_format(op, fa, fb), self.output.formats[i]))
        return out

    def describe(self) -> str:
        n1, n2 = self.input_sizes
        fa, fb = self.operands(0)
        return (f"merge {self.operation} {n1} x {fa.cpp} and {n2} x {fb.cpp} -> {self.output.n}, "
                f"exact {exact_format(self.operation, fa, fb).cpp}, output {self.output.describe()}")
