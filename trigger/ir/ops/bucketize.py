"""``bucketize``: each input element compressed into a bin, as a table's address fields.

``bin = number of edges <= raw``: below the first edge is bin 0, at or above the
last edge the top bin (saturating at both ends). The edges are integers in the
raw domain, so the emulator, the C++ and the Verilog all reduce to integer
comparisons: nothing to round differently. Each element has ``2**bits - 1``
strictly increasing edges inside its raw range (``bits`` = its output width), so
every bin holds at least one raw value and every address is reachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class Bucketize(Op):
    edges: np.ndarray = None  # int64, every element's edges one after another (split by output widths)
    binning: list = field(default_factory=list)  # per element, how the edges were chosen (linear, log, quantile)

    kind = "bucketize"
    arrays = ("edges",)

    # ------------------------------------------------------------ edges per element
    @property
    def counts(self) -> list[int]:
        """Edges of each element: 2**bits - 1."""
        return [(1 << f.width) - 1 for f in self.output.formats]

    def element_edges(self) -> list[np.ndarray]:
        edges = np.asarray(self.edges, dtype=np.int64).reshape(-1)
        return np.split(edges, np.cumsum(self.counts)[:-1])

    def lowest(self, i: int) -> np.ndarray:
        """The smallest raw value of every bin of element i."""
        return np.concatenate([[self.input.formats[i].min_raw], self.element_edges()[i]]).astype(np.int64)

    # ------------------------------------------------------------ checks
    def validate(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(-1)
        if self.output.n != self.input.n:
            self.fail(f"{self.input.n} inputs but {self.output.n} outputs")
        if self.binning and len(self.binning) != self.input.n:
            self.fail(f"{len(self.binning)} binning kinds for {self.input.n} elements")
        for i, f in enumerate(self.output.formats):
            if f.signed or f.fractional != 0:
                self.fail(f"output element {i} is {f.cpp}, expected an ap_uint bin")
        if self.edges.size != sum(self.counts):
            self.fail(f"{self.edges.size} edges, expected {sum(self.counts)} (2**bits - 1 per element)")
        for i, (e, src) in enumerate(zip(self.element_edges(), self.input.formats)):
            label = self._label(i)
            if src.fractional != 0:
                self.fail(f"input {label} is {src.cpp}, expected an ap_int/ap_uint raw value")
            if e.size and (e[0] <= src.min_raw or e[-1] > src.max_raw):
                self.fail(f"edges of {label} must lie in ({src.min_raw}, {src.max_raw}], "
                          f"got {int(e[0])}..{int(e[-1])}")
            if np.any(np.diff(e) <= 0):
                k = int(np.flatnonzero(np.diff(e) <= 0)[0])
                self.fail(f"edges of {label} must increase strictly, got {int(e[k])} then {int(e[k + 1])}")

    def _label(self, i: int) -> str:
        return f"element {i} ({self.input.names[i]})" if self.input.names else f"element {i}"

    # ------------------------------------------------------------ semantics
    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        out = []
        for iv, e in zip(x, self.element_edges()):
            lo, hi = np.searchsorted(e, [iv.lo, iv.hi], side="right")
            out.append(Interval(int(lo), int(hi)))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        out = np.empty(x.shape, dtype=np.int64)
        for i, e in enumerate(self.element_edges()):
            out[:, i] = np.searchsorted(e, x[:, i], side="right")
        counter(counts, "output").add(out.size, 0)  # a bin cannot overflow: saturation at the ends is the design
        return out

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        return [m.count_at_least(f"bin{i}", x, e, f.width)
                for i, (x, e, f) in enumerate(zip(xs, self.element_edges(), self.output.formats))]

    def preimage(self, y: np.ndarray) -> np.ndarray:
        """The lowest raw value of each bin: it compresses back to the same bins."""
        y = np.asarray(y, dtype=np.int64)
        if y.size == 0:
            return np.zeros((y.shape[0], self.input.n), dtype=np.int64)
        return np.stack([self.lowest(i)[y[:, i]] for i in range(self.input.n)], axis=1)

    def boundary_values(self) -> list[np.ndarray]:
        """Per element: every edge and the value below it, the raw limits, 0 and +-1."""
        out = []
        for e, f in zip(self.element_edges(), self.input.formats):
            out.append(np.unique(np.concatenate([e, e - 1, [f.min_raw, f.max_raw, 0, 1, -1]])).astype(np.int64))
        return out

    def describe(self) -> str:
        names = self.input.names or [f"x{i}" for i in range(self.input.n)]
        parts = [f"{n} {src.cpp} -> {1 << dst.width} bins" + (f" ({b})" if b else "")
                 for n, src, dst, b in zip(names, self.input.formats, self.output.formats,
                                           self.binning or [""] * self.input.n)]
        return "bucketize " + ", ".join(parts)
