"""``gather``: each output element is one input element, or zero: zero padding, cropping and
nearest-neighbour up-sampling, which move data without arithmetic.

Output element ``i`` is ``(res_T) x[index[i]]``, or ``0`` where ``index[i]`` is -1, as
nnet_padding.h's ``zeropad1d_cl``/``zeropad2d_cl`` (``*(res++) = 0`` or ``(res_T) *(data++)``),
nnet_cropping.h's ``cropping1d_cl``/``cropping2d_cl`` and nnet_image.h's ``resize_nearest`` (whose
source pixel is ``(j * x_ratio) >> 16`` with ``x_ratio = (width << 16) / new_width + 1``) write it;
the frontend computes ``index`` by replaying those loops. In hardware it is wiring (and a cast when
the formats differ), so it needs no register in front (``absorbs_previous``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class Gather(Op):
    index: np.ndarray = None  # (output.n,) input element of each output element, -1 for a zero
    what: str = ""  # what the layer does (zero_padding, cropping, upsampling), for descriptions

    kind = "gather"
    arrays = ("index",)
    absorbs_previous = True

    def validate(self) -> None:
        self.index = np.asarray(self.index, dtype=np.int64).reshape(-1)
        if self.index.shape != (self.output.n,):
            self.fail(f"index has {self.index.size} entries for {self.output.n} outputs")
        if self.index.size and (self.index.min() < -1 or self.index.max() >= self.input.n):
            self.fail(f"index entries must be -1 (zero) or an input element below {self.input.n}")

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        out = []
        for i, k in enumerate(self.index):
            if k < 0:
                out.append(Interval(0, 0))
                continue
            lo, hi, _ = self.output.formats[i].cast_interval(x[k].lo, x[k].hi, self.input.formats[k])
            out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        count = counter(counts, "output")
        out = np.zeros((x.shape[0], self.output.n), dtype=np.int64)
        groups: dict = {}
        for i, k in enumerate(self.index):
            if k >= 0:
                groups.setdefault((self.input.formats[k], self.output.formats[i]), []).append((i, k))
        for (src, dst), pairs in groups.items():
            cols, rows = np.array([i for i, _ in pairs]), np.array([k for _, k in pairs])
            out[:, cols] = dst.cast(x[:, rows], src, count) if src != dst else x[:, rows]
        return out

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        out = []
        for i, k in enumerate(self.index):
            if k < 0:
                out.append(m.const(f"z{i}", 0))
            elif self.input.formats[k] == self.output.formats[i]:
                out.append(xs[k])
            else:
                out.append(m.requant(f"y{i}", xs[k], self.input.formats[k], self.output.formats[i]))
        return out

    def describe(self) -> str:
        zeros = int(np.count_nonzero(self.index < 0))
        return (f"gather ({self.what or 'move'}) {self.input.n} -> {self.output.n}"
                + (f", {zeros} zeros" if zeros else "") + f", output {self.output.describe()}")


def padding_index(in_shape: tuple, pads: tuple) -> np.ndarray:
    """Channels-last zero padding of an (h, w, c) or (w, c) tensor: ``pads`` (top, bottom, left, right)
    or (left, right); the loops of zeropad1d_cl / zeropad2d_cl."""
    if len(in_shape) == 2:
        in_shape, pads = (1, *in_shape), (0, 0, *pads)
    h, w, c = in_shape
    top, bottom, left, right = pads
    grid = -np.ones((h + top + bottom, w + left + right, c), dtype=np.int64)
    grid[top:top + h, left:left + w, :] = np.arange(h * w * c).reshape(h, w, c)
    return grid.reshape(-1)


def cropping_index(in_shape: tuple, crops: tuple) -> np.ndarray:
    """Channels-last cropping: ``crops`` (top, bottom, left, right) or (left, right) (cropping*_cl)."""
    if len(in_shape) == 2:
        in_shape, crops = (1, *in_shape), (0, 0, *crops)
    h, w, c = in_shape
    top, bottom, left, right = crops
    return np.arange(h * w * c).reshape(h, w, c)[top:h - bottom, left:w - right, :].reshape(-1)


def resize_nearest_index(in_shape: tuple, out_hw: tuple) -> np.ndarray:
    """nnet_image.h's resize_nearest: output pixel (i, j) reads ((i * y_ratio) >> 16, (j * x_ratio) >> 16)."""
    h, w, c = in_shape
    new_h, new_w = out_hw
    y_ratio = ((h << 16) // new_h) + 1
    x_ratio = ((w << 16) // new_w) + 1
    index = []
    for i in range(new_h):
        for j in range(new_w):
            y2, x2 = (i * y_ratio) >> 16, (j * x_ratio) >> 16
            index += [(y2 * w + x2) * c + k for k in range(c)]
    return np.array(index, dtype=np.int64)
