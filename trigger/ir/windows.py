"""Sliding-window geometry of convolutions and pooling on channels-last flat tensors.

hls4ml (io_parallel) stores an image of spatial shape ``(W,)`` or ``(H, W)`` with
``C`` channels as one flat array, channel fastest. A convolution gathers, for each
output position, the window ``kernel`` at ``stride`` over the input padded by
``pad_before``/``pad_after`` zeros (the im2col buffer hls4ml generates for the
latency kernels: kernel rows, then kernel columns, then channels); pooling does the
same per channel (nnet_pooling.h). Positions in the padding are -1 here: each op
decides what a padded cell holds (a zero product, a pad value, nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.errors import FirmwareModelError


@dataclass(frozen=True)
class Geometry:
    spatial: tuple[int, ...]  # (W,) or (H, W)
    channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad_before: tuple[int, ...]
    pad_after: tuple[int, ...]

    @classmethod
    def of(cls, where: str, in_shape, kernel, stride, pad) -> "Geometry":
        """From an op's fields: in_shape = spatial + [channels], pad = pad_before + pad_after."""
        in_shape, kernel, stride, pad = (tuple(int(v) for v in (a or ())) for a in (in_shape, kernel, stride, pad))
        d = len(in_shape) - 1
        if d not in (1, 2) or len(kernel) != d or len(stride) != d or len(pad) != 2 * d:
            raise FirmwareModelError(f"{where}: in_shape {list(in_shape)}, kernel {list(kernel)}, stride "
                                     f"{list(stride)} and pad {list(pad)} do not describe a 1D or 2D window")
        if min(in_shape + kernel + stride) < 1 or min(pad) < 0:
            raise FirmwareModelError(f"{where}: sizes must be positive and padding non-negative")
        geo = cls(in_shape[:-1], in_shape[-1], kernel, stride, pad[:d], pad[d:])
        if min(geo.out_spatial) < 1:
            raise FirmwareModelError(f"{where}: a {list(kernel)} window does not fit the padded input "
                                     f"{[s + a + b for s, a, b in zip(geo.spatial, geo.pad_before, geo.pad_after)]}")
        return geo

    @property
    def out_spatial(self) -> tuple[int, ...]:
        return tuple((s + a + b - k) // st + 1 for s, a, b, k, st
                     in zip(self.spatial, self.pad_before, self.pad_after, self.kernel, self.stride))

    @property
    def n_in(self) -> int:
        return int(np.prod(self.spatial)) * self.channels

    @property
    def n_positions(self) -> int:
        return int(np.prod(self.out_spatial))

    def positions(self) -> np.ndarray:
        """(output positions, kernel cells): the flat spatial index each window cell reads, -1 in the padding.

        Output positions and kernel cells are both in row-major order."""
        axes = []
        for s, a, k, st, o in zip(self.spatial, self.pad_before, self.kernel, self.stride, self.out_spatial):
            coord = np.arange(o)[:, None] * st + np.arange(k)[None, :] - a  # (out, kernel) input coordinate
            axes.append(np.where((coord >= 0) & (coord < s), coord, -1))
        if len(axes) == 1:
            return axes[0]
        (rows, cols), (h, w) = axes, self.spatial
        idx = rows[:, None, :, None] * w + cols[None, :, None, :]  # (oh, ow, kh, kw)
        valid = (rows[:, None, :, None] >= 0) & (cols[None, :, None, :] >= 0)
        idx = np.where(valid, idx, -1)
        return idx.reshape(self.n_positions, int(np.prod(self.kernel)))

    def im2col(self) -> np.ndarray:
        """(output positions, kernel cells x channels): flat input index of every window element, -1 in the padding."""
        pos = self.positions()
        c = np.arange(self.channels)
        idx = pos[:, :, None] * self.channels + c[None, None, :]
        return np.where(pos[:, :, None] >= 0, idx, -1).reshape(self.n_positions, -1)

    def describe(self) -> str:
        x = "x".join
        pad = "" if not any(self.pad_before + self.pad_after) else \
            f", pad {x(map(str, self.pad_before))}/{x(map(str, self.pad_after))}"
        stride = "" if all(s == 1 for s in self.stride) else f", stride {x(map(str, self.stride))}"
        return (f"{x(map(str, self.spatial))}x{self.channels} -> {x(map(str, self.out_spatial))}, "
                f"window {x(map(str, self.kernel))}{stride}{pad}")


def gather(x: np.ndarray, index: np.ndarray, pad_value: int) -> np.ndarray:
    """x[:, index] with ``pad_value`` where the index is -1: (n, *index.shape)."""
    padded = np.concatenate([x, np.full((x.shape[0], 1), pad_value, dtype=np.int64)], axis=1)
    return padded[:, np.where(index >= 0, index, x.shape[1])]
