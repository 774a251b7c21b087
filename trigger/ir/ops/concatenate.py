"""``concatenate``: two tensors joined along an axis, as nnet_merge.h's ``concatenate1d``,
``concatenate2d`` and ``concatenate3d`` lay them out.

The op reads its source tensors side by side (``input_sizes``) and writes a
permutation of them: output element ``i`` is input element ``index[i]`` assigned to
the output format (``res[..] = data1[..]``: a cast to res_T, exact when res_T holds
both inputs, as hls4ml's precision inference makes it). Every axis hls4ml supports is
one such gather; ``concatenate_index`` computes ``index`` from the two shapes (channels
last, batch excluded) and the Keras axis exactly as those functions' loops do. In
hardware this is wiring and a cast: no register in front (``absorbs_previous``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trigger.errors import FirmwareModelError
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


def concatenate_function(rank: int, axis: int) -> str:
    """The nnet_merge.h function hls4ml calls for a tensor rank and (Keras, batch-inclusive) axis."""
    if rank == 1:
        return "concatenate1d"
    if rank == 2:
        return "concatenate2d_1" if axis in (2, -1) else "concatenate2d_0"
    if rank == 3:
        if axis in (3, -1):
            return "concatenate3d_2"
        return "concatenate3d_1" if axis in (2, -2) else "concatenate3d_0"
    raise FirmwareModelError(f"concatenation of rank-{rank} tensors is not supported (hls4ml: rank 1 to 3)")


def concatenate_index(shape1, shape2, axis: int) -> np.ndarray:
    """Per output element, the input element (data1's 0..n1-1, then data2's) that nnet_merge.h's
    concatenate function for these shapes and axis writes there; an error unless the loops write
    every output element exactly once (the shapes must agree off the axis)."""
    s1, s2 = [int(v) for v in shape1], [int(v) for v in shape2]
    if len(s1) != len(s2):
        raise FirmwareModelError(f"cannot concatenate tensors of shapes {s1} and {s2}: ranks differ")
    fn = concatenate_function(len(s1), int(axis))
    along = int(fn[-1]) if fn[-2] == "_" else 0  # the data axis the function joins along
    if any(a != b for d, (a, b) in enumerate(zip(s1, s2)) if d != along):
        raise FirmwareModelError(f"cannot concatenate shapes {s1} and {s2} along axis {axis}: they differ off the axis")
    n1, n2 = int(np.prod(s1)), int(np.prod(s2))
    index = np.full(n1 + n2, -1, dtype=np.int64)
    writes = []  # (res_idx, input element)
    if fn in ("concatenate1d", "concatenate2d_0", "concatenate3d_0"):
        writes = [(i, i) for i in range(n1)] + [(n1 + i, n1 + i) for i in range(n2)]
    elif fn == "concatenate2d_1":
        (a0, a1), (_, b1) = s1, s2
        for ii in range(a0):
            writes += [(ii * (a1 + b1) + jj, ii * a1 + jj) for jj in range(a1)]
            writes += [(ii * (a1 + b1) + a1 + jj, n1 + ii * b1 + jj) for jj in range(b1)]
    elif fn == "concatenate3d_1":
        (a0, a1, a2), (_, b1, b2) = s1, s2
        for ii in range(a0):
            writes += [(ii * (a1 + b1) * a2 + jj * a2 + kk, ii * a1 * a2 + jj * a2 + kk)
                       for jj in range(a1) for kk in range(a2)]
            writes += [(ii * (a1 + b1) * a2 + (jj + a1) * a2 + kk, n1 + ii * b1 * b2 + jj * b2 + kk)
                       for jj in range(b1) for kk in range(b2)]
    else:  # concatenate3d_2
        (a0, a1, a2), (_, b1, b2) = s1, s2
        for ii in range(a0):
            for jj in range(a1):
                base = ii * a1 * (a2 + b2) + jj * (a2 + b2)
                writes += [(base + kk, ii * a1 * a2 + jj * a2 + kk) for kk in range(a2)]
                writes += [(base + kk + a2, n1 + ii * b1 * b2 + jj * b2 + kk) for kk in range(b2)]
    for res_idx, src in writes:
        if not 0 <= res_idx < n1 + n2 or index[res_idx] != -1 or not 0 <= src < n1 + n2:
            raise FirmwareModelError(f"cannot concatenate shapes {s1} and {s2} along axis {axis} ({fn})")
        index[res_idx] = src
    if np.any(index < 0):
        raise FirmwareModelError(f"cannot concatenate shapes {s1} and {s2} along axis {axis} ({fn})")
    return index


@register
@dataclass
class Concatenate(Op):
    input_sizes: list = field(default_factory=list)  # elements of each source, in order
    index: np.ndarray = None  # int64 (output.n,): output element i = input element index[i]

    kind = "concatenate"
    arrays = ("index",)
    absorbs_previous = True  # wiring and a cast

    def validate(self) -> None:
        self.input_sizes = [int(v) for v in self.input_sizes]
        self.index = np.asarray(self.index, dtype=np.int64).reshape(-1)
        if not self.input_sizes or min(self.input_sizes) < 1 or sum(self.input_sizes) != self.input.n:
            self.fail(f"input_sizes {self.input_sizes} do not add up to its {self.input.n} input elements")
        if self.output.n != self.input.n:
            self.fail(f"{self.output.n} outputs for {self.input.n} inputs: a concatenation keeps every element")
        if self.index.shape != (self.output.n,) or not np.array_equal(np.sort(self.index), np.arange(self.input.n)):
            self.fail(f"index must be a permutation of the {self.input.n} input elements")

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        out = []
        for i, j in enumerate(self.index):
            lo, hi, _ = self.output.formats[i].cast_interval(x[j].lo, x[j].hi, self.input.formats[j])
            out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        out = np.empty((x.shape[0], self.output.n), dtype=np.int64)
        count = counter(counts, "output")
        groups: dict = {}
        for i, j in enumerate(self.index):
            groups.setdefault((self.input.formats[j], self.output.formats[i]), []).append(i)
        for (src, dst), elements in groups.items():
            out[:, elements] = dst.cast(x[:, self.index[elements]], src, count)
        return out

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        return [m.requant(f"y{i}", xs[j], self.input.formats[j], self.output.formats[i])
                for i, j in enumerate(self.index)]

    def describe(self) -> str:
        sizes = " + ".join(str(n) for n in self.input_sizes)
        return f"concatenate {sizes} -> {self.output.n}, output {self.output.describe()}"
