"""``conv1d``: a 1D convolution, as nnet_conv1d_latency.h computes it (io_parallel, latency).

hls4ml fills an im2col buffer for each output position (zeros in the padding; its
generated ``fill_buffer``) and runs the dense kernel on it: each product
``x * w`` cast to ``accum_t``, the accumulator starting from the bias cast to
``accum_t``, the products added in buffer order (kernel cell, then channel), the
sum cast to the output type. A kernel of 1 (hls4ml's PointwiseConv1D,
``pointwise_conv_1d_latency_cl``) computes the same. So one output position is
exactly a ``dense`` op on its window: the emulator runs the dense semantics on the
gathered windows (a padded cell is a zero product, which changes no sum), and the
RTL builds every position's products through ``m.constant_matvec`` (the padded
rows dropped).

A fully unrolled convolution needs (output positions x non-zero weights) constant
multiplications; above ``MAX_MULTIPLIERS`` per layer the op refuses itself, unless it is
streamed (``stream``: hls4ml's io_stream line buffer, nnet_conv2d_stream.h, built by
trigger/backends/rtl/stream.py: one window per clock through one kernel datapath, the
same dense arithmetic per output position, so the emulator is unchanged).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, register
from trigger.ir.ops.dense import Dense
from trigger.ir.ranges import Interval
from trigger.ir.tensor import TensorType
from trigger.ir.windows import Geometry, gather

# Constant multiplications one fully parallel (io_parallel, reuse factor 1) convolution layer may need.
MAX_MULTIPLIERS = 16_384


def size_error(positions: int, nonzero_weights: int) -> str:
    """The one-line refusal of a convolution too large to unroll (the op and the frontend say the same)."""
    return (f"fully unrolled it needs {positions * nonzero_weights} constant multiplications ({positions} output "
            f"positions x {nonzero_weights} non-zero weights), over the limit of {MAX_MULTIPLIERS} per layer; "
            "stream it instead (hls.io_type io_stream, or auto: a line buffer and one shared kernel datapath), "
            "or use a smaller input, fewer filters or channels, a stride, or pooling before this layer")


@register
@dataclass
class Conv1D(Op):
    in_shape: list = None  # spatial sizes, then channels (channels last)
    kernel: list = None  # window size per spatial axis
    stride: list = None
    pad: list = None  # padding before each spatial axis, then after each
    weight: np.ndarray = None  # raw int64 (kernel cells x channels, filters) in weight_fmt
    bias: np.ndarray = None  # raw int64 (filters,) in bias_fmt
    weight_fmt: FixedFormat = None
    bias_fmt: FixedFormat = None
    accum_fmt: FixedFormat = None
    stream: bool = False  # io_stream: a line buffer feeds one shared kernel datapath (rtl/stream.py)

    kind = "conv1d"
    arrays = ("weight", "bias")
    rank = 1

    @property
    def geometry(self) -> Geometry:
        return Geometry.of(f"op {self.name!r} ({self.kind})", self.in_shape, self.kernel, self.stride, self.pad)

    @property
    def n_filters(self) -> int:
        return int(np.asarray(self.weight).shape[1])

    def multipliers(self) -> int:
        """Constant multiplications of the fully unrolled layer (an upper bound: padded cells cost less)."""
        return self.geometry.n_positions * int(np.count_nonzero(self.weight))

    def kernel_op(self) -> Dense:
        """The dense op one output position computes (hls4ml's mult_config is a dense_config)."""
        cached = self.__dict__.get("_kernel")
        if cached is None:
            n_win = int(np.asarray(self.weight).shape[0])
            cached = Dense(self.name, TensorType.uniform(self.input.format, n_win),
                           TensorType.uniform(self.output.format, self.n_filters),
                           self.weight, self.bias, self.weight_fmt, self.bias_fmt, self.accum_fmt)
            cached.validate()
            self.__dict__["_kernel"] = cached
        return cached

    def validate(self) -> None:
        self.__dict__.pop("_kernel", None)
        geo = self.geometry
        if len(geo.spatial) != self.rank:
            self.fail(f"in_shape {self.in_shape} is not {self.rank}D plus channels")
        self.weight = np.asarray(self.weight, dtype=np.int64)
        self.bias = np.asarray(self.bias, dtype=np.int64).reshape(-1)
        n_win = int(np.prod(geo.kernel)) * geo.channels
        if self.weight.ndim != 2 or self.weight.shape[0] != n_win:
            self.fail(f"weight must be ({n_win} kernel cells x channels, filters), got {self.weight.shape}")
        if self.input.n != geo.n_in:
            self.fail(f"{self.input.n} inputs, but in_shape {self.in_shape} holds {geo.n_in}")
        if self.output.n != geo.n_positions * self.n_filters:
            self.fail(f"{self.output.n} outputs, expected {geo.n_positions} positions x {self.n_filters} filters")
        self.input.format, self.output.format  # noqa: B018 - one format per tensor (raises otherwise)
        if self.multipliers() > MAX_MULTIPLIERS and not self.stream:
            self.fail(size_error(geo.n_positions, int(np.count_nonzero(self.weight))))
        self.kernel_op()  # checks the weights, biases and formats

    # ------------------------------------------------------------ semantics
    def plan(self) -> dict:
        """The accumulator's range analysis (``Dense.plan`` of one full window; padded cells only shrink it)."""
        return self.kernel_op().plan()

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        per_position = self.kernel_op().output_ranges([])
        return per_position * self.geometry.n_positions

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        geo = self.geometry
        windows = gather(x, geo.im2col(), 0)  # (n, positions, window): a padded cell holds data_T(0)
        y = self.kernel_op().emulate(windows.reshape(-1, windows.shape[2]), counts)
        return y.reshape(x.shape[0], geo.n_positions * self.n_filters)

    # ------------------------------------------------------------ RTL
    def window_op(self) -> "Conv1D":
        """The same convolution on one window (one output position): the kernel datapath a line buffer
        feeds (nnet_conv_stream.h's compute_output_buffer_2d calls the dense kernel on ``kernel_data``,
        whose order, kernel row, kernel column, channel, is the im2col order here)."""
        geo = self.geometry
        n_win = int(np.prod(geo.kernel)) * geo.channels
        op = dataclasses.replace(self, input=TensorType.uniform(self.input.format, n_win),
                                 output=TensorType.uniform(self.output.format, self.n_filters),
                                 in_shape=[*geo.kernel, geo.channels], stride=[1] * self.rank,
                                 pad=[0] * (2 * self.rank), stream=False)
        op.validate()
        return op

    def max_ii(self) -> int:
        """One output position per cycle per kernel network (trigger/backends/rtl/serial.py), when the
        products are exact (one linear map)."""
        if self.stream:  # the stream's kernel datapath already serves every position (rtl/stream.py)
            return 1
        return self.geometry.n_positions if self.plan()["shift"] >= 0 else 1

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        if self.stream and self.geometry.n_positions > 1:
            self.fail("a streamed convolution is built by trigger/backends/rtl/stream.py, not unrolled")
        kernel = self.kernel_op()
        plan = kernel.plan()
        acc = self.accum_fmt
        can_overflow = plan["product_can_overflow"] or plan["sum_can_overflow"]
        if can_overflow and acc.overflow != "WRAP":
            self.fail(f"accumulator {acc} can overflow and saturates, which the parallel adder tree cannot "
                      "reproduce; widen accum_t or make it WRAP")
        cap = acc.width if can_overflow else None
        prod_fmt, shift = plan["product_format"], plan["shift"]
        every = options.get("pipeline_every")
        bias = [int(b) for b in plan["bias_acc"]]
        ii = options.get("ii", 1)
        if shift >= 0 and ii > 1:  # one kernel network per ceil(positions / ii), a position per cycle each
            def finish(roots, prefix):
                return [m.requant(f"{prefix}y{j}", m.wrap(f"{prefix}a{j}", root, acc) if can_overflow else root, acc,
                                  self.output.formats[j]) for j, root in enumerate(roots)]

            windows = [[xs[int(i)] if i >= 0 else None for i in index] for index in self.geometry.im2col()]
            shared = m.shared_windows("", windows, self.weight.astype(object) << shift, bias, cap, ii, finish, every,
                                      options.get("hold", True))
            return [y for ys in shared for y in ys]
        outputs = []
        for p, index in enumerate(self.geometry.im2col()):
            rows = np.flatnonzero(index >= 0)  # padded cells hold zero: their products vanish
            window = [xs[int(index[r])] for r in rows]
            if shift >= 0:  # exact products: one constant-matrix product per output position
                roots = m.constant_matvec(f"o{p}_", window, self.weight[rows].astype(object) << shift, bias, cap,
                                          every)
            else:  # each product rounded to the accumulator on its own: sum the casts
                trees = []
                for j in range(self.n_filters):
                    leaves = [m.requant(f"o{p}_p{r}_{j}", m.mul(f"o{p}_m{r}_{j}", x, int(self.weight[r, j])),
                                        prod_fmt, acc)
                              for r, x in zip(rows, window) if self.weight[r, j] != 0]
                    if bias[j] != 0 or not leaves:
                        leaves.append(m.const(f"o{p}_b{j}", bias[j]))
                    trees.append(leaves)
                roots = m.sum_trees(f"o{p}_s", trees, cap, every)
            for j, root in enumerate(roots):
                if can_overflow:
                    root = m.wrap(f"o{p}_a{j}", root, acc)
                outputs.append(m.requant(f"o{p}_y{j}", root, acc, self.output.formats[p * self.n_filters + j]))
        return outputs

    def describe(self) -> str:
        prod = self.input.format.product_format(self.weight_fmt)
        return (f"{self.kind} {self.geometry.describe()}, {self.n_filters} filters, weight {self.weight_fmt.cpp}, "
                f"bias {self.bias_fmt.cpp}, product {prod.cpp}, accum {self.accum_fmt.cpp}, "
                f"output {self.output.format.cpp}")
