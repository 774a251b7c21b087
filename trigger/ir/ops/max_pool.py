"""``max_pool``: max pooling 1D/2D, as nnet_pooling.h's ``pooling1d_cl`` / ``pooling2d_cl`` compute it.

Per channel and output position, the window's cells (``pad_val<data_T, Max>()``
in the padding: ``data_T`` with only its top bit set, i.e. the most negative
value of a signed type but 2**(W-1) raw of an unsigned one, which can win), the
largest kept in ``data_T``, returned as ``accum_t`` and assigned to ``res_t``.
The ``_Pool`` base holds the window fields that ``average_pool`` shares.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval
from trigger.ir.tensor import TensorType
from trigger.ir.windows import Geometry, gather


@dataclass
class _Pool(Op):
    in_shape: list = None  # spatial sizes, then channels (channels last)
    kernel: list = None  # pool size per spatial axis
    stride: list = None
    pad: list = None  # padding before each spatial axis, then after each
    accum_fmt: FixedFormat = None

    @property
    def geometry(self) -> Geometry:
        return Geometry.of(f"op {self.name!r} ({self.kind})", self.in_shape, self.kernel, self.stride, self.pad)

    def validate(self) -> None:
        geo = self.geometry
        if self.input.n != geo.n_in:
            self.fail(f"{self.input.n} inputs, but in_shape {self.in_shape} holds {geo.n_in}")
        if self.output.n != geo.n_positions * geo.channels:
            self.fail(f"{self.output.n} outputs, expected {geo.n_positions} positions x {geo.channels} channels")
        self.input.format, self.output.format  # noqa: B018 - one format per tensor (raises otherwise)

    def windows(self) -> np.ndarray:
        """(output positions x channels, pool cells): flat input index of each cell, -1 in the padding,
        rows in the output's channels-last order."""
        geo = self.geometry
        pos = geo.positions()[:, None, :]  # (P, 1, K)
        c = np.arange(geo.channels)[None, :, None]
        return np.where(pos >= 0, pos * geo.channels + c, -1).reshape(geo.n_positions * geo.channels, -1)

    def window_op(self) -> "_Pool":
        """The same pooling on one window (one output position, every channel): what a line buffer feeds
        once per output pixel in hls4ml's io_stream (nnet_pooling_stream.h, compute_pool_buffer_2d)."""
        geo = self.geometry
        rank = len(geo.kernel)
        op = dataclasses.replace(self, input=TensorType.uniform(self.input.format, int(np.prod(geo.kernel)) * geo.channels),
                                 output=TensorType.uniform(self.output.format, geo.channels),
                                 in_shape=[*geo.kernel, geo.channels], stride=[1] * rank, pad=[0] * (2 * rank))
        op.validate()
        return op

    def describe(self) -> str:
        return (f"{self.kind} {self.geometry.describe()}, accum {self.accum_fmt.cpp}, "
                f"output {self.output.format.cpp}")


@register
@dataclass
class MaxPool(_Pool):
    kind = "max_pool"

    @property
    def pad_raw(self) -> int:
        """nnet_pooling.h's pad_val for Max: data_T(0) with its most significant bit set."""
        fmt = self.input.format
        return int(fmt.from_bits(np.array([1 << (fmt.width - 1)]))[0])

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        src, acc = self.input.format, self.accum_fmt
        out = []
        for k, cells in enumerate(self.windows()):
            ivs = [x[int(i)] for i in cells if i >= 0] + ([Interval.point(self.pad_raw)] if (cells < 0).any() else [])
            lo, hi, _ = acc.cast_interval(max(iv.lo for iv in ivs), max(iv.hi for iv in ivs), src)
            lo, hi, _ = self.output.formats[k].cast_interval(lo, hi, acc)
            out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        best = gather(x, self.windows(), self.pad_raw).max(axis=2)  # in data_T
        y = self.accum_fmt.cast(best, self.input.format, counter(counts, "accum"))
        return self.output.format.cast(y, self.accum_fmt, counter(counts, "output"))

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        src, acc = self.input.format, self.accum_fmt
        pad = self.pad_raw
        outputs = []
        for k, cells in enumerate(self.windows()):
            nodes = [xs[int(i)] for i in cells if i >= 0]
            if (cells < 0).any() and pad > src.min_raw:  # an unsigned pad value can win
                nodes.append(m.const(f"pad{k}", pad))
            level = 0
            while len(nodes) > 1:  # a balanced tree of two-input maxima
                nodes = [max2(m, f"m{k}_{level}_{j}", nodes[j], nodes[j + 1]) if j + 1 < len(nodes) else nodes[j]
                         for j in range(0, len(nodes), 2)]
                level += 1
            y = m.requant(f"a{k}", nodes[0], src, acc)
            outputs.append(m.requant(f"y{k}", y, acc, self.output.formats[k]))
        return outputs


def max2(m, name: str, a, b):
    """``a > b ? a : b`` from builder primitives: the sign of a - b selects."""
    diff = m.add(f"{name}_d", a, m.mul(f"{name}_n", b, -1))
    return m.select_positive(name, diff, a, b)
