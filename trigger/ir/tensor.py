"""The type of a tensor in the firmware model: one exact ``FixedFormat`` per element.

A network's tensors have one format for every element; a table's inputs do not
(each detector feature has its own width and sign), so the element is the unit.
On the RTL bus, element 0 sits in the least significant bits and each element
takes its own format's width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.errors import FirmwareModelError
from trigger.fixed import FixedFormat


@dataclass(frozen=True)
class TensorType:
    formats: tuple[FixedFormat, ...]
    names: tuple[str, ...] | None = None  # element names (a table's features), when they have any

    def __post_init__(self):
        if not self.formats:
            raise FirmwareModelError("a tensor needs at least one element")
        if self.names is not None and len(self.names) != len(self.formats):
            raise FirmwareModelError(f"{len(self.names)} element names for {len(self.formats)} elements")

    @classmethod
    def uniform(cls, fmt: FixedFormat, n: int, names=None) -> "TensorType":
        return cls((fmt,) * int(n), tuple(names) if names is not None else None)

    # ------------------------------------------------------------ shape
    @property
    def n(self) -> int:
        return len(self.formats)

    @property
    def format(self) -> FixedFormat:
        """The one format of every element; an error when the elements differ."""
        first = self.formats[0]
        if any(f != first for f in self.formats[1:]):
            raise FirmwareModelError(f"tensor elements have different formats ({self.describe()})")
        return first

    @property
    def is_uniform(self) -> bool:
        return all(f == self.formats[0] for f in self.formats[1:])

    @property
    def widths(self) -> list[int]:
        return [f.width for f in self.formats]

    @property
    def offsets(self) -> list[int]:
        """Bus bit of each element's least significant bit."""
        return [int(o) for o in np.concatenate([[0], np.cumsum(self.widths)[:-1]])]

    @property
    def bus_width(self) -> int:
        return int(sum(self.widths))

    @property
    def min_raw(self) -> np.ndarray:
        return np.array([f.min_raw for f in self.formats], dtype=np.int64)

    @property
    def max_raw(self) -> np.ndarray:
        return np.array([f.max_raw for f in self.formats], dtype=np.int64)

    # ------------------------------------------------------------ raw values
    def contains(self, raw) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.int64)
        return (raw >= self.min_raw) & (raw <= self.max_raw)

    def to_bits(self, raw) -> np.ndarray:
        """Raw integers (n, elements) as unsigned element bit patterns."""
        raw = np.asarray(raw, dtype=np.int64)
        masks = np.array([(1 << w) - 1 for w in self.widths], dtype=np.int64)
        return raw & masks

    def from_bits(self, bits) -> np.ndarray:
        bits = np.asarray(bits, dtype=np.int64)
        return np.stack([f.from_bits(bits[:, i]) for i, f in enumerate(self.formats)], axis=1) \
            if bits.size else bits.reshape(0, self.n)

    def to_float(self, raw) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.int64)
        return np.stack([f.to_float(raw[:, i]) for i, f in enumerate(self.formats)], axis=1)

    def quantize(self, x, counter=None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.stack([f.quantize(x[:, i], counter) for i, f in enumerate(self.formats)], axis=1)

    # ------------------------------------------------------------ storage
    def describe(self) -> str:
        if self.is_uniform:
            return f"{self.n} x {self.formats[0].cpp}"
        return ", ".join(f"{n}: {f.cpp}" if self.names else f.cpp
                         for n, f in zip(self.names or [""] * self.n, self.formats))

    def to_dict(self) -> dict:
        data: dict = {"n": self.n}
        if self.is_uniform:
            data["format"] = self.formats[0].cpp
        else:
            data["formats"] = [f.cpp for f in self.formats]
        if self.names is not None:
            data["names"] = list(self.names)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TensorType":
        names = tuple(data["names"]) if data.get("names") is not None else None
        if "formats" in data:
            return cls(tuple(FixedFormat.parse(f) for f in data["formats"]), names)
        return cls.uniform(FixedFormat.parse(data["format"]), int(data["n"]), names)

    def elements(self) -> list[dict]:
        """Per element: name, format, width, signedness and bus position (for manifests)."""
        return [{"element": i, "name": self.names[i] if self.names else None, "format": f.cpp, "width": f.width,
                 "signed": f.signed, "lsb": o}
                for i, (f, o) in enumerate(zip(self.formats, self.offsets))]
