"""``binary_threshold``: a sign decision per element, as nnet_batchnorm.h's ``normalize_binary_tanh``.

``res = (data >= threshold) ? 1 : 0`` with the threshold held in the input's own
type and the result an ``ap_uint<1>``: hls4ml's merge of a batch normalisation
(or bias) with a binary quantizer (QONNX ``BipolarQuant``, QKeras ``binary``).
Output 1 stands for +1 and 0 for -1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.ir.op import Op, register
from trigger.ir.ranges import Interval


@register
@dataclass
class BinaryThreshold(Op):
    threshold: np.ndarray = None  # raw int64 (n,) in the input element's format

    kind = "binary_threshold"
    arrays = ("threshold",)
    absorbs_previous = True  # one comparison per element

    def validate(self) -> None:
        self.threshold = np.asarray(self.threshold, dtype=np.int64).reshape(-1)
        if self.threshold.shape != (self.input.n,) or self.output.n != self.input.n:
            self.fail(f"needs {self.input.n} thresholds and outputs, got {self.threshold.shape} and {self.output.n}")
        for i, fmt in enumerate(self.input.formats):
            self.check_raw(f"threshold {i}", self.threshold[i:i + 1], fmt)
        if any(f.width != 1 or f.signed or f.fractional != 0 for f in self.output.formats):
            self.fail(f"output must be ap_uint<1>, got {self.output.describe()}")

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        return [Interval(int(iv.lo >= t), int(iv.hi >= t)) for iv, t in zip(x, self.threshold)]

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        return (x >= self.threshold[None, :]).astype(np.int64)

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        return [m.select_ge(f"y{i}", x, m.const(f"t{i}", int(t)), m.const(f"one{i}", 1), m.const(f"zero{i}", 0))
                for i, (x, t) in enumerate(zip(xs, self.threshold))]

    def boundary_values(self) -> list[np.ndarray] | None:
        """Both sides of every threshold (clipped to the input format)."""
        return [np.clip(np.array([t - 1, t], dtype=np.int64), f.min_raw, f.max_raw)
                for t, f in zip(self.threshold, self.input.formats)]

    def describe(self) -> str:
        return f"binary_threshold {self.input.n}: x >= t -> 1 else 0, output {self.output.describe()}"
