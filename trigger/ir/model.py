"""The firmware model: a graph of ops over named tensors, with typed inputs and outputs.

Every design (a network, a look-up table, a tree ensemble) is one of these.
The numpy emulator, the RTL and the test vectors are generated from it, so they
cannot drift apart silently. ``firmware_model.json`` is its stored form; arrays
too large for JSON (a table's words) go to ``.npy`` files beside it.

Tensors are named: each model input port by its own name, each op's output by
the op's name. An op reads one or more tensors (``reads``) and writes one; an
op that reads several gets their elements one after another as its ``input``
(a merge op knows the split: its ``input_sizes``). The ops are stored in an
order where every tensor is written before it is read. On the standard RTL top
the inputs sit one after another on ``in_data`` and the outputs on ``out_data``,
so ``input`` and ``output`` are the two buses (every port, in order).

A chain (one input, each op reading the op before, the last op the output) is
the special case every model used to be; it is stored as before
(``format_version`` 1), a graph as ``format_version`` 2.
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

FORMAT_VERSION = 2  # graphs; chains are still written as version 1 (CHAIN_FORMAT_VERSION)
CHAIN_FORMAT_VERSION = 1
JSON_NAME = "firmware_model.json"
INLINE_LIMIT = 1 << 16  # arrays with more elements than this are stored as .npy beside the JSON
CHUNK = 4096  # vectors per emulator pass: keeps the int64 temporaries in cache
DEFAULT_INPUT = "input"  # the name of a chain's one input


def join(types: list[TensorType], labels: list[str] | None = None) -> TensorType:
    """Tensors side by side (a merge op's input, a bus of several ports); element names say where each
    element comes from when ``labels`` are given (``port[i]``, or the element's own name)."""
    if len(types) == 1 and labels is None:
        return types[0]
    formats = tuple(f for t in types for f in t.formats)
    if labels is None:
        names = None if all(t.names is None for t in types) else tuple(
            (t.names[i] if t.names else f"{k}[{i}]") for k, t in enumerate(types) for i in range(t.n))
    else:
        names = tuple((t.names[i] if t.names else f"{label}[{i}]") for label, t in zip(labels, types)
                      for i in range(t.n))
    return TensorType(formats, names)


@dataclass
class FirmwareModel:
    name: str
    input: TensorType  # the input bus: every input port, one after another
    ops: list[Op] = field(default_factory=list)
    kind: str = "network"  # what the design is, for reports: network, table, trees
    meta: dict = field(default_factory=dict)  # facts the frontend wants recorded (JSON-ready)
    # The graph. Left empty, the model is a chain: one port DEFAULT_INPUT, each op reads the op before, the
    # last op is the output (so ops appended to a chain stay a chain).
    ports: list = field(default_factory=list)  # [(name, element count)] of the input ports, in bus order
    reads: dict = field(default_factory=dict)  # op name -> [tensor names], for ops that do not read the op before
    outputs: list = field(default_factory=list)  # tensor names on the output bus, in order

    # ------------------------------------------------------------ the graph
    @property
    def input_ports(self) -> list[tuple[str, int]]:
        return [(str(n), int(k)) for n, k in self.ports] if self.ports else [(DEFAULT_INPUT, self.input.n)]

    def input_types(self) -> dict[str, TensorType]:
        """Each input port's type (its slice of the input bus)."""
        out, at = {}, 0
        for name, n in self.input_ports:
            fmts = self.input.formats[at:at + n]
            names = self.input.names[at:at + n] if self.input.names and len(self.input_ports) == 1 else None
            out[name] = TensorType(tuple(fmts), names)
            at += n
        return out

    def sources(self, k: int) -> list[str]:
        """The tensors op k reads."""
        op = self.ops[k]
        if op.name in self.reads:
            return list(self.reads[op.name])
        return [self.ops[k - 1].name] if k else [self.input_ports[0][0]]

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs) if self.outputs else ([self.ops[-1].name] if self.ops else [])

    @property
    def is_chain(self) -> bool:
        return (len(self.input_ports) == 1 and self.input_ports[0][0] == DEFAULT_INPUT and not self.reads
                and (not self.outputs or list(self.outputs) == [self.ops[-1].name]))

    def tensor_types(self) -> dict[str, TensorType]:
        types = dict(self.input_types())
        types.update((op.name, op.output) for op in self.ops)
        return types

    @property
    def output(self) -> TensorType:
        """The output bus: every output tensor, one after another."""
        if not self.ops:
            return self.input
        if self.is_chain:
            return self.ops[-1].output
        types = self.tensor_types()
        names = self.output_names
        return join([types[n] for n in names], names if len(names) > 1 else None)

    def output_slices(self) -> list[tuple[str, int, int]]:
        """(tensor, first element, element count) of each output on the output bus."""
        types, out, at = self.tensor_types(), [], 0
        for n in self.output_names:
            out.append((n, at, types[n].n))
            at += types[n].n
        return out

    def consumers(self) -> dict[str, list[str]]:
        """Tensor name -> the ops that read it."""
        users: dict[str, list[str]] = {}
        for k, op in enumerate(self.ops):
            for t in self.sources(k):
                users.setdefault(t, []).append(op.name)
        return users

    # ------------------------------------------------------------ checks
    def validate(self) -> None:
        """Every tensor is written before it is read, the formats an op reads are the ones it expects,
        every op's output is used, and every op checks itself."""
        if not self.ops:
            raise FirmwareModelError(f"firmware model {self.name!r} has no ops")
        names = [op.name for op in self.ops]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise FirmwareModelError(f"firmware model {self.name!r}: two ops are named {dup!r}")
        ports = self.input_ports
        if sum(n for _, n in ports) != self.input.n:
            raise FirmwareModelError(f"firmware model {self.name!r}: input ports of {sum(n for _, n in ports)} "
                                     f"elements for an input bus of {self.input.n}")
        types = self.input_types()
        if len(types) != len(ports):
            raise FirmwareModelError(f"firmware model {self.name!r}: two input ports have one name")
        unknown = set(self.reads) - {op.name for op in self.ops}
        if unknown:
            raise FirmwareModelError(f"firmware model {self.name!r}: wiring for unknown op(s) {sorted(unknown)}")
        for k, op in enumerate(self.ops):
            if op.name in types:
                raise FirmwareModelError(f"firmware model {self.name!r}: two tensors are named {op.name!r}")
            sources = self.sources(k)
            missing = [t for t in sources if t not in types]
            if missing:
                op.fail(f"reads tensor {missing[0]!r}, which no input or earlier op writes")
            sizes = getattr(op, "input_sizes", None)
            if len(sources) > 1 and not sizes:
                op.fail(f"reads {len(sources)} tensors but takes one")
            if sizes and [int(s) for s in sizes] != [types[t].n for t in sources]:
                op.fail(f"expects inputs of {list(sizes)} elements but reads {[types[t].n for t in sources]} "
                        f"({', '.join(sources)})")
            given = [f for t in sources for f in types[t].formats]
            what = f"{', '.join(sources)} give" if op.name in self.reads else "the previous op gives"
            if op.input.n != len(given):
                op.fail(f"expects {op.input.n} inputs but {what} {len(given)}")
            for i, (a, b) in enumerate(zip(op.input.formats, given)):
                if (a.width, a.integer, a.signed) != (b.width, b.integer, b.signed):
                    op.fail(f"input element {i} is {a.cpp} but {what} {b.cpp}")
            op.validate()
            types[op.name] = op.output
        outputs = self.output_names
        bad = [n for n in outputs if n not in types]
        if bad:
            raise FirmwareModelError(f"firmware model {self.name!r}: output {bad[0]!r} is not a tensor of the model")
        if len(set(outputs)) != len(outputs):
            raise FirmwareModelError(f"firmware model {self.name!r}: a tensor is output twice")
        used = set(self.consumers()) | set(outputs)
        unused = [op.name for op in self.ops if op.name not in used]
        if unused:
            raise FirmwareModelError(f"firmware model {self.name!r}: the output of op {unused[0]!r} is never used")

    def ranges(self) -> list[list[Interval]]:
        """Bounds of every op's outputs, propagated from the input formats (in op order)."""
        known = {name: of_tensor(t.formats) for name, t in self.input_types().items()}
        out = []
        for k, op in enumerate(self.ops):
            x = [iv for t in self.sources(k) for iv in known[t]]
            known[op.name] = op.output_ranges(x)
            out.append(known[op.name])
        return out

    # ------------------------------------------------------------ storage
    def to_dict(self, store=None) -> dict:
        ops = [op.to_dict(store) for op in self.ops]
        if self.is_chain:  # stored as every chain always was
            return {"format_version": CHAIN_FORMAT_VERSION, "name": self.name, "kind": self.kind,
                    "input": self.input.to_dict(), "output": self.output.to_dict(), "ops": ops, "meta": self.meta}
        types = self.input_types()
        for k, data in enumerate(ops):
            data["reads"] = self.sources(k)
        all_types = self.tensor_types()
        return {"format_version": FORMAT_VERSION, "name": self.name, "kind": self.kind,
                "inputs": [{"name": name, **types[name].to_dict()} for name, _ in self.input_ports],
                "outputs": [{"name": name, **all_types[name].to_dict()} for name in self.output_names],
                "ops": ops, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict, load=None) -> "FirmwareModel":
        version = data.get("format_version")
        if version not in (CHAIN_FORMAT_VERSION, FORMAT_VERSION):
            raise FirmwareModelError(f"firmware model format_version {version!r} is not {CHAIN_FORMAT_VERSION} or "
                                     f"{FORMAT_VERSION}: rebuild the bundle with this version of trigger")
        try:
            if version == CHAIN_FORMAT_VERSION:
                model = cls(data["name"], TensorType.from_dict(data["input"]),
                            [op_from_dict(op, load) for op in data["ops"]], data.get("kind", "network"),
                            data.get("meta") or {})
            else:
                ports = [TensorType.from_dict(p) for p in data["inputs"]]
                names = [str(p["name"]) for p in data["inputs"]]
                ops = [op_from_dict(op, load) for op in data["ops"]]
                reads = {d["name"]: [str(t) for t in d["reads"]] for d in data["ops"]}
                model = cls(data["name"], join(ports, names if len(ports) > 1 else None), ops,
                            data.get("kind", "network"), data.get("meta") or {},
                            ports=[(n, p.n) for n, p in zip(names, ports)], reads=reads,
                            outputs=[str(o["name"]) for o in data["outputs"]])
        except (KeyError, TypeError) as err:
            raise FirmwareModelError(f"firmware model: field {err} missing or malformed") from None
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
    chain = model.is_chain
    sources = [model.sources(k) for k in range(len(model.ops))]
    ports, at = [], 0
    for name, n in model.input_ports:
        ports.append((name, at, n))
        at += n
    for start in range(0, max(x.shape[0], 1), CHUNK):
        block = x[start:start + CHUNK]
        if chain:
            y = block
            for k, op in enumerate(model.ops):
                y = op.emulate(y, overflows[op.name])
                if trace:
                    traces[k].append(y)
            outputs.append(y)
            continue
        values = {name: block[:, a:a + n] for name, a, n in ports}
        for k, op in enumerate(model.ops):
            reads = sources[k]
            given = values[reads[0]] if len(reads) == 1 else np.concatenate([values[t] for t in reads], axis=1)
            values[op.name] = op.emulate(np.ascontiguousarray(given), overflows[op.name])
            if trace:
                traces[k].append(values[op.name])
        outs = [values[t] for t in model.output_names]
        outputs.append(outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1))
    return EmulatorResult(np.concatenate(outputs), [np.concatenate(t) for t in traces] if trace else None,
                          [op.name for op in model.ops], overflows)
