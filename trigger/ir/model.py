"""The firmware model: typed inputs, a sequence of ops, typed outputs.

Every design (a network, a look-up table, a tree ensemble) is one of these.
The numpy emulator, the RTL and the test vectors are generated from it, so they
cannot drift apart silently. ``firmware_model.json`` is its stored form; arrays
too large for JSON (a table's words) go to ``.npy`` files beside it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trigger.errors import FirmwareModelError
from trigger.fixed import OverflowCount
from trigger.ir.op import Op, op_from_dict
from trigger.ir.ranges import Interval, of_tensor
from trigger.ir.tensor import TensorType

FORMAT_VERSION = 1
JSON_NAME = "firmware_model.json"
INLINE_LIMIT = 1 << 16  # arrays with more elements than this are stored as .npy beside the JSON
CHUNK = 4096  # vectors per emulator pass: keeps the int64 temporaries in cache


@dataclass
class FirmwareModel:
    name: str
    input: TensorType
    ops: list[Op] = field(default_factory=list)
    kind: str = "network"  # what the design is, for reports: network, table, trees
    meta: dict = field(default_factory=dict)  # facts the frontend wants recorded (JSON-ready)

    @property
    def output(self) -> TensorType:
        return self.ops[-1].output if self.ops else self.input

    # ------------------------------------------------------------ checks
    def validate(self) -> None:
        """Shapes and formats chain from op to op, and every op checks itself."""
        if not self.ops:
            raise FirmwareModelError(f"firmware model {self.name!r} has no ops")
        names = [op.name for op in self.ops]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise FirmwareModelError(f"firmware model {self.name!r}: two ops are named {dup!r}")
        prev = self.input
        for op in self.ops:
            if op.input.n != prev.n:
                op.fail(f"expects {op.input.n} inputs but the previous op gives {prev.n}")
            for i, (a, b) in enumerate(zip(op.input.formats, prev.formats)):
                if (a.width, a.integer, a.signed) != (b.width, b.integer, b.signed):
                    op.fail(f"input element {i} is {a.cpp} but the previous op gives {b.cpp}")
            op.validate()
            prev = op.output

    def ranges(self) -> list[list[Interval]]:
        """Bounds of every op's outputs, propagated from the input formats."""
        x = of_tensor(self.input.formats)
        out = []
        for op in self.ops:
            x = op.output_ranges(x)
            out.append(x)
        return out

    # ------------------------------------------------------------ storage
    def to_dict(self, store=None) -> dict:
        return {"format_version": FORMAT_VERSION, "name": self.name, "kind": self.kind,
                "input": self.input.to_dict(), "output": self.output.to_dict(),
                "ops": [op.to_dict(store) for op in self.ops], "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict, load=None) -> "FirmwareModel":
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise FirmwareModelError(f"firmware model format_version {version!r} is not {FORMAT_VERSION}: "
                                     "rebuild the bundle with this version of trigger")
        model = cls(data["name"], TensorType.from_dict(data["input"]),
                    [op_from_dict(op, load) for op in data["ops"]], data.get("kind", "network"),
                    data.get("meta") or {})
        model.validate()
        return model

    def digest(self) -> str:
        """sha256 of the stored form: what the design computes, nothing else."""
        def store(name, array):
            return {"sha256": hashlib.sha256(np.ascontiguousarray(array, dtype="<i8").tobytes()).hexdigest(),
                    "shape": list(array.shape)}
        text = json.dumps(self.to_dict(store), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def save(self, folder: Path) -> list[Path]:
        """Writes firmware_model.json (and .npy files for large arrays) into ``folder``."""
        folder = Path(folder)
        written = []

        def store(name, array):
            if array.size <= INLINE_LIMIT:
                return array.tolist()
            dtype = _narrowest(array)
            fname = f"firmware_model.{name}.npy"
            np.save(folder / fname, array.astype(dtype), allow_pickle=False)
            written.append(folder / fname)
            return {"npy": fname, "shape": list(array.shape), "dtype": np.dtype(dtype).str}

        text = json.dumps(self.to_dict(store), indent=1, sort_keys=True)
        (folder / JSON_NAME).write_text(text + "\n")
        return [folder / JSON_NAME, *written]

    @classmethod
    def load(cls, folder: Path) -> "FirmwareModel":
        folder = Path(folder)
        path = folder / JSON_NAME
        if not path.exists():
            raise FirmwareModelError(f"{path} not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise FirmwareModelError(f"{path}: not valid JSON ({err})") from None

        def load(ref):
            if not isinstance(ref, dict) or "npy" not in ref or "/" in ref["npy"]:
                raise FirmwareModelError(f"{path}: bad array reference {str(ref)[:60]}")
            array = np.load(folder / ref["npy"], allow_pickle=False)
            if list(array.shape) != ref["shape"]:
                raise FirmwareModelError(f"{folder / ref['npy']}: shape {array.shape}, expected {ref['shape']}")
            return array.astype(np.int64)

        model = cls.from_dict(data, load)
        for op in model.ops:  # ops whose constants live in files beside the JSON (memory_lookup's parts)
            if hasattr(op, "attach"):
                op.attach(folder)
        return model


def _narrowest(array: np.ndarray):
    lo, hi = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return dtype
    return np.int64


# ------------------------------------------------------------------ emulation
@dataclass
class EmulatorResult:
    outputs: np.ndarray  # (n_vectors, output.n) raw int64
    trace: list[np.ndarray] | None  # per-op raw outputs (trace=True), in op order
    op_names: list[str]
    overflows: dict[str, dict[str, OverflowCount]] = field(default_factory=dict)

    def overflow_summary(self) -> dict:
        """Plain-dict overflow counts per op and tensor (for JSON reports)."""
        return {op: {t: {"values": c.values, "overflows": c.overflows} for t, c in sorted(tensors.items())}
                for op, tensors in self.overflows.items()}


def check_inputs(model: FirmwareModel, raw) -> np.ndarray:
    x = np.asarray(raw)
    if x.ndim != 2 or x.shape[1] != model.input.n:
        raise FirmwareModelError(f"model {model.name!r}: inputs must have shape (n_vectors, {model.input.n}), "
                                 f"got {x.shape}")
    if x.dtype.kind not in "iu":
        raise FirmwareModelError(f"model {model.name!r}: inputs must be raw integers, got dtype {x.dtype}")
    x = x.astype(np.int64)
    inside = model.input.contains(x)
    if x.size and not np.all(inside):
        row, col = np.argwhere(~inside)[0]
        raise FirmwareModelError(f"model {model.name!r}: raw input {x[row, col]} (vector {row}, element {col}) "
                                 f"is outside {model.input.formats[col]}")
    return x


def emulate(model: FirmwareModel, raw_inputs, trace: bool = False) -> EmulatorResult:
    """Runs raw inputs (n_vectors, input.n) through every op, bit-exactly."""
    model.validate()
    x = check_inputs(model, raw_inputs)
    overflows: dict[str, dict[str, OverflowCount]] = {op.name: {} for op in model.ops}
    outputs, traces = [], [[] for _ in model.ops]
    for start in range(0, max(x.shape[0], 1), CHUNK):
        y = x[start:start + CHUNK]
        for k, op in enumerate(model.ops):
            y = op.emulate(y, overflows[op.name])
            if trace:
                traces[k].append(y)
        outputs.append(y)
    return EmulatorResult(np.concatenate(outputs), [np.concatenate(t) for t in traces] if trace else None,
                          [op.name for op in model.ops], overflows)
