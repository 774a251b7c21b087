"""The op: one step of a firmware model, owning its semantics everywhere.

An op knows its exact input and output types, checks its own constants
(``validate``), bounds its outputs (``output_ranges``, via ``trigger.ir.ranges``),
computes its outputs on raw integers (``emulate``, via ``trigger.fixed`` only),
emits its logic through the RTL builder (``emit_rtl``) and stores itself
(``to_dict`` / ``from_dict``). Ops are registered by their ``kind``; adding a
layer kind is one op file under ``trigger/ir/ops/`` plus a frontend mapping.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from trigger.errors import FirmwareModelError
from trigger.fixed import FixedFormat, OverflowCount
from trigger.ir.ranges import Interval, of_tensor
from trigger.ir.tensor import TensorType

OPS: dict[str, type["Op"]] = {}


def register(cls: type["Op"]) -> type["Op"]:
    """Class decorator: make an op kind known to ``from_dict`` and the frontends."""
    if cls.kind in OPS and OPS[cls.kind] is not cls:
        raise RuntimeError(f"op kind {cls.kind!r} registered twice")
    OPS[cls.kind] = cls
    return cls


def counter(counts: dict, tensor: str) -> OverflowCount:
    """The overflow counter of one tensor of an op (created on first use)."""
    return counts.setdefault(tensor, OverflowCount())


@dataclass
class Op:
    name: str
    input: TensorType
    output: TensorType

    kind: ClassVar[str] = ""
    arrays: ClassVar[tuple[str, ...]] = ()  # fields that hold integer numpy arrays
    # RTL: whether this op is cheap enough to follow the previous one without a register between
    absorbs_previous: ClassVar[bool] = False
    # RTL: whether this op's logic already ends in a register (a ROM read), so needs no output register
    ends_in_register: ClassVar[bool] = False

    # ------------------------------------------------------------ checks
    def fail(self, message: str):
        raise FirmwareModelError(f"op {self.name!r} ({self.kind}): {message}")

    def validate(self) -> None:
        """Checks the op's own constants and types; one-line FirmwareModelError otherwise."""

    def check_raw(self, what: str, raw: np.ndarray, fmt: FixedFormat) -> None:
        raw = np.asarray(raw)
        if raw.dtype.kind not in "iu":
            self.fail(f"{what} must hold raw integers, got dtype {raw.dtype}")
        inside = fmt.contains(raw)
        if raw.size and not np.all(inside):
            self.fail(f"{what} raw value {raw.ravel()[~inside.ravel()][0]} is outside {fmt}")

    # ------------------------------------------------------------ semantics
    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        """Bounds of every output element given bounds of every input element."""
        return of_tensor(self.output.formats)

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        """Raw outputs (n, output.n) of raw inputs (n, input.n), bit-exactly; counts overflows."""
        raise NotImplementedError

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        """Builds this op's logic in the RTL module ``m`` from input signals ``xs``; returns outputs."""
        raise NotImplementedError

    def max_ii(self) -> int:
        """The most clock cycles this op's RTL can share its arithmetic over (1: it does not share;
        trigger/backends/rtl/serial.py). Its emit_rtl gets ``options["ii"]`` up to this."""
        return 1

    def preimage(self, y: np.ndarray) -> np.ndarray | None:
        """Raw inputs that produce the given raw outputs, when the op can invert itself (else None).

        Used to cover every value of a narrow tensor from the model's inputs (every
        address of a table)."""
        return None

    def boundary_values(self) -> list[np.ndarray] | None:
        """Per input element, raw values worth testing (where this op's behaviour changes)."""
        return None

    def describe(self) -> str:
        return f"{self.kind} {self.input.n} -> {self.output.n}, output {self.output.describe()}"

    # ------------------------------------------------------------ storage
    def to_dict(self, store: Callable[[str, np.ndarray], object] | None = None) -> dict:
        data: dict = {"op": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, TensorType):
                data[f.name] = value.to_dict()
            elif isinstance(value, FixedFormat):
                data[f.name] = value.cpp
            elif f.name in self.arrays:
                array = np.asarray(value, dtype=np.int64)
                data[f.name] = store(f"{self.name}.{f.name}", array) if store else array.tolist()
            else:
                data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict, load: Callable[[object], np.ndarray] | None = None) -> "Op":
        args = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                constant = f.name in cls.arrays or f.name.endswith("_fmt")  # no usable default
                if constant or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
                    raise FirmwareModelError(f"op {data.get('name')!r} ({cls.kind}): field {f.name!r} missing")
                continue
            value = data[f.name]
            if f.name in ("input", "output"):
                value = TensorType.from_dict(value)
            elif f.name.endswith("_fmt"):
                value = FixedFormat.parse(value)
            elif f.name in cls.arrays:
                value = load(value) if (load and not isinstance(value, list)) else np.array(value, dtype=np.int64)
            args[f.name] = value
        return cls(**args)


def op_from_dict(data: dict, load=None) -> Op:
    kind = data.get("op")
    if kind not in OPS:
        raise FirmwareModelError(f"firmware model op {data.get('name')!r}: unknown kind {kind!r} "
                                 f"(known: {', '.join(sorted(OPS))})")
    return OPS[kind].from_dict(data, load)
