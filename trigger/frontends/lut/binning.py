"""Input compression and address packing: raw integer features -> table address.

Every binning (linear, logarithmic, quantile) ends up as the same thing: a
strictly increasing list of integer edges inside the raw range, and
``bin = number of edges <= raw``. Values below the first edge land in bin 0 and
values above the last in the top bin (saturation). Because the edges are
integers in the raw domain, the numpy emulator, the C++ and the Verilog all
compute the bin with plain integer comparisons: nothing to round differently.
Every bin holds at least one raw value, so every table address is reachable
from the raw inputs (which is what makes exhaustive verification possible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.frontends.lut.config import FeatureSpec, LutConfig, raw_format


@dataclass
class Field:
    """One feature's compression and its place in the address."""

    name: str
    bits: int
    lsb: int
    binning: str
    edges: np.ndarray  # int64, strictly increasing, len = 2**bits - 1
    raw_bits: int
    signed: bool
    centres: np.ndarray  # float64 per bin: the value the regressor sees for this bin (raw units)

    @property
    def n_bins(self) -> int:
        return 1 << self.bits

    @property
    def raw_format(self) -> FixedFormat:
        return raw_format(self.raw_bits, self.signed)

    @property
    def min_raw(self) -> int:
        return self.raw_format.min_raw

    @property
    def max_raw(self) -> int:
        return self.raw_format.max_raw

    def bin(self, raw: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, np.asarray(raw, dtype=np.int64), side="right").astype(np.int64)

    def lower(self) -> np.ndarray:
        """Smallest raw value of every bin."""
        return np.concatenate([[self.min_raw], self.edges]).astype(np.int64)

    def upper(self) -> np.ndarray:
        """Largest raw value of every bin."""
        return np.concatenate([self.edges - 1, [self.max_raw]]).astype(np.int64)

    def describe(self) -> dict:
        return {"name": self.name, "bits": self.bits, "lsb": self.lsb, "binning": self.binning,
                "edges": [int(e) for e in self.edges], "raw_bits": self.raw_bits, "signed": self.signed,
                "centres": [round(float(c), 6) for c in self.centres]}


@dataclass
class AddressLayout:
    """The packed address: ``fields`` in input order, each at its ``lsb``."""

    fields: list[Field]
    bits: int

    def compress(self, raw: np.ndarray) -> np.ndarray:
        """(n, n_features) raw integers in input order -> (n,) addresses."""
        raw = np.asarray(raw, dtype=np.int64)
        address = np.zeros(raw.shape[0], dtype=np.int64)
        for i, f in enumerate(self.fields):
            address |= f.bin(raw[:, i]) << f.lsb
        return address

    def bins_of(self, address: np.ndarray) -> list[np.ndarray]:
        address = np.asarray(address, dtype=np.int64)
        return [(address >> f.lsb) & (f.n_bins - 1) for f in self.fields]

    def representatives(self, address: np.ndarray) -> np.ndarray:
        """A raw input vector (the lowest raw value of each bin) that compresses to each address."""
        lows = [f.lower() for f in self.fields]
        return np.stack([lo[b] for lo, b in zip(lows, self.bins_of(address))], axis=1)

    def regressor_inputs(self, bins: list[np.ndarray]) -> np.ndarray:
        """What the regressor sees: each bin's centre, scaled to [-1, 1]. Signed features (bends,
        roughly charge/pT) go through a signed log first, which makes log pT nearly linear in them."""
        cols = []
        for f, b in zip(self.fields, bins):
            c = f.centres
            if f.signed:  # the C library's log1p: numpy's SIMD one gives other bits on other CPUs (regressor.py)
                c = np.sign(c) * np.asarray([math.log1p(v) for v in np.abs(c).tolist()], dtype=np.float64)
            scale = float(np.max(np.abs(c))) or 1.0
            cols.append(c[b] / scale)
        return np.stack(cols, axis=1)

    def describe(self) -> dict:
        order = sorted(self.fields, key=lambda f: f.lsb)
        return {"bits": self.bits, "order_lsb_first": [f.name for f in order],
                "fields": [f.describe() for f in self.fields]}


def make_edges(spec: FeatureSpec, values: np.ndarray) -> np.ndarray:
    """Integer edges for ``spec`` (quantile edges learned from ``values``)."""
    n = 1 << spec.bits
    lo, hi = spec.min_raw, spec.max_raw
    if spec.binning == "linear":
        a, b = spec.range if spec.range else (lo, hi + 1)
        edges = a + (b - a) * np.arange(1, n) / n
    elif spec.binning == "quantile":
        edges = np.quantile(np.asarray(values, dtype=np.float64), np.arange(1, n) / n, method="linear")
        edges = np.floor(edges) + 1  # the quantile value itself goes to the lower bin
    else:  # log: geometric in magnitude; signed features mirror it around zero
        a, b = spec.range if spec.range else (1.0, float(max(abs(lo), hi)))
        a = max(a, 1.0)
        b = max(b, a * (1 + 1e-9))
        # edges spaced geometrically strictly inside [a, b]: the end bins reach a and b
        if spec.signed:
            m = n // 2
            mags = np.geomspace(a, b, m + 1)[1:-1]
            edges = np.concatenate([-np.ceil(mags[::-1]) + 1, [0.0], np.ceil(mags)])
        else:
            edges = np.geomspace(a, b, n + 1)[1:-1]
    return _legalise(np.ceil(edges), lo, hi)


def _legalise(edges: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Strictly increasing integers in (lo, hi], so that every bin holds at least one raw value."""
    e = np.asarray(edges, dtype=np.float64).copy()
    n = len(e)
    prev = lo
    for i in range(n):
        e[i] = max(e[i], prev + 1)
        prev = e[i]
    nxt = hi + 1
    for i in range(n - 1, -1, -1):
        e[i] = min(e[i], nxt - 1)
        nxt = e[i]
    return e.astype(np.int64)


def build_layout(config: LutConfig, train_raw: np.ndarray) -> AddressLayout:
    """Edges from the config (and training data for quantiles), bin centres from the training data."""
    lsb, at = {}, 0
    by_name = {f.name: f for f in config.features}
    for name in config.order:
        lsb[name] = at
        at += by_name[name].bits
    fields = []
    for i, spec in enumerate(config.features):
        col = train_raw[:, i]
        edges = make_edges(spec, col)
        f = Field(spec.name, spec.bits, lsb[spec.name], spec.binning, edges, spec.raw_bits, spec.signed,
                  np.zeros(1 << spec.bits))
        bins = f.bin(col)
        counts = np.bincount(bins, minlength=f.n_bins)
        sums = np.bincount(bins, weights=col.astype(np.float64), minlength=f.n_bins)
        midpoint = (f.lower() + f.upper()) / 2.0
        f.centres = np.where(counts > 0, sums / np.maximum(counts, 1), midpoint)
        fields.append(f)
    return AddressLayout(fields, at)
