"""``conv2d``: a 2D convolution, as nnet_conv2d_latency.h computes it (io_parallel, latency).

The same computation as ``conv1d`` (hls4ml's im2col buffer of kernel rows, kernel
columns, channels per output position, then its dense kernel; PointwiseConv2D for
1x1 kernels computes the same) on an (H, W, C) image: only the window geometry
differs, so the op is ``Conv1D`` with two spatial axes.
"""

from __future__ import annotations

from dataclasses import dataclass

from trigger.ir.op import register
from trigger.ir.ops.conv1d import Conv1D


@register
@dataclass
class Conv2D(Conv1D):
    kind = "conv2d"
    rank = 2
