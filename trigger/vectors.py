"""Test vectors, bus packing and ``.mem`` files: the one place that lays raw integers on a bus.

Bus layout (DESIGN.md): element 0 in the least significant bits, each element at
its own format's width, two's complement for signed elements.

Vectors for a model: the inputs' limits and zero, values where an op's behaviour
changes (a table's bin edges), and seeded random draws; plus, when some tensor
of the model is small enough to enumerate and every op before it can map its
outputs back to inputs, one input vector for every value of that tensor (every
address of a table): exhaustive coverage without enumerating the raw inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trigger.ir.model import FirmwareModel
from trigger.ir.tensor import TensorType

BLOCK = 4096  # random vectors are drawn in seeded blocks: the first k of n are the same for every n
DEFAULT_SEED = 20261123
COVER_LIMIT_BITS = 24  # enumerate a tensor with at most 2**24 values


# ------------------------------------------------------------------ packing
def _bit_matrix(bits: np.ndarray, widths: list[int]) -> np.ndarray:
    """(n, k) unsigned element patterns -> (n, sum(widths)) bits, bus bit 0 first."""
    bits = np.asarray(bits, dtype=np.int64)
    cols = [((bits[:, i:i + 1] >> np.arange(w, dtype=np.int64)) & 1).astype(np.uint8)
            for i, w in enumerate(widths)]
    return np.concatenate(cols, axis=1) if cols else np.zeros((len(bits), 0), np.uint8)


def pack_bytes(bits: np.ndarray, widths: list[int]) -> tuple[bytes, int]:
    """Element patterns -> little-endian bus words of ceil(bus/8) bytes each, concatenated."""
    matrix = _bit_matrix(bits, widths)
    total = matrix.shape[1]
    n_bytes = (total + 7) // 8
    matrix = np.pad(matrix, ((0, 0), (0, n_bytes * 8 - total)))
    return np.packbits(matrix, axis=1, bitorder="little").tobytes(), n_bytes


def unpack_bytes(data: bytes, n: int, widths: list[int]) -> np.ndarray:
    """Inverse of ``pack_bytes``: (n, k) unsigned element patterns."""
    total = sum(widths)
    n_bytes = (total + 7) // 8
    raw = np.frombuffer(data, dtype=np.uint8).reshape(n, n_bytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :total].astype(np.int64)
    out, at = [], 0
    for w in widths:
        out.append((bits[:, at:at + w] << np.arange(w, dtype=np.int64)).sum(axis=1))
        at += w
    return np.stack(out, axis=1)


def bus_words_hex(bits: np.ndarray, widths: list[int]) -> list[str]:
    """One zero-padded hex bus word per vector ($readmemh format)."""
    total = sum(widths)
    digits = (total + 3) // 4
    bits = np.asarray(bits, dtype=np.int64)
    if total <= 62:  # fits an int64: vectorised
        word = np.zeros(len(bits), dtype=np.int64)
        for i, off in enumerate(np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(int)):
            word |= bits[:, i] << off
        uniq, inverse = np.unique(word, return_inverse=True)
        text = np.array([format(int(u), f"0{digits}x") for u in uniq], dtype=object)
        return text[inverse].tolist()
    packed, n_bytes = pack_bytes(bits, widths)
    rows = np.frombuffer(packed, dtype=np.uint8).reshape(len(bits), n_bytes)[:, ::-1]
    return [row.tobytes().hex()[-digits:] for row in rows]


def write_mem(path: Path, bits: np.ndarray, widths: list[int], chunk: int = 1 << 20) -> Path:
    """A $readmemh file: one bus word per line, written chunk by chunk (tables of 2**26 words)."""
    bits = np.asarray(bits, dtype=np.int64)
    with open(path, "w") as fh:
        for start in range(0, len(bits), chunk):
            fh.write("".join(w + "\n" for w in bus_words_hex(bits[start:start + chunk], widths)))
    return Path(path)


def read_mem(path: Path, widths: list[int]) -> np.ndarray:
    """Inverse of ``write_mem`` (element patterns)."""
    words = Path(path).read_text().split()
    out = np.zeros((len(words), len(widths)), dtype=np.int64)
    values = [int(w, 16) for w in words]
    at = 0
    for i, w in enumerate(widths):
        out[:, i] = [(v >> at) & ((1 << w) - 1) for v in values]
        at += w
    return out


def save_vectors(folder: Path, tensor_in: TensorType, inputs: np.ndarray, tensor_out: TensorType,
                 outputs: np.ndarray) -> list[Path]:
    """vectors/inputs|outputs .npy (raw integers) and .mem (hex bus words)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "inputs.npy", np.asarray(inputs, dtype=np.int64), allow_pickle=False)
    np.save(folder / "outputs.npy", np.asarray(outputs, dtype=np.int64), allow_pickle=False)
    write_mem(folder / "inputs.mem", tensor_in.to_bits(inputs), tensor_in.widths)
    write_mem(folder / "outputs.mem", tensor_out.to_bits(outputs), tensor_out.widths)
    return [folder / n for n in ("inputs.npy", "outputs.npy", "inputs.mem", "outputs.mem")]


# ------------------------------------------------------------------ choosing vectors
def edge_vectors(t: TensorType) -> np.ndarray:
    """Zeros, every element at its maximum, at its minimum, alternating, and +-1 LSB."""
    lo, hi = t.min_raw, t.max_raw
    alt = np.where(np.arange(t.n) % 2, hi, lo)
    rows = [np.zeros(t.n), hi, lo, alt, np.minimum(hi, 1), np.maximum(lo, -1)]
    return np.array(rows, dtype=np.int64)


def random_vectors(t: TensorType, n: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Standard-normal features at several scales (what models are trained on), uniform raw draws,
    and real values beyond the range, which each element's own overflow mode maps into it."""
    blocks = []
    span = np.maximum(np.abs([f.min_value for f in t.formats]), np.abs([f.max_value for f in t.formats]))
    for b in range(-(-max(n, 0) // BLOCK)):
        rng = np.random.default_rng([seed, b])
        kinds = rng.integers(0, 4, BLOCK)
        normal = rng.standard_normal((BLOCK, t.n)) * rng.choice([0.5, 1.0, 2.0, 4.0], (BLOCK, 1))
        beyond = rng.uniform(-3, 3, (BLOCK, t.n)) * span
        uniform = rng.integers(t.min_raw, t.max_raw + 1, (BLOCK, t.n), dtype=np.int64)
        real = np.where((kinds == 2)[:, None], beyond, normal)
        blocks.append(np.where((kinds == 3)[:, None], uniform, t.quantize(real)))
    return np.vstack(blocks)[:n] if blocks else np.zeros((0, t.n), dtype=np.int64)


def boundary_vectors(model: FirmwareModel, seed: int = DEFAULT_SEED) -> np.ndarray:
    """For the first op's boundary values: each value in its element, the other elements random."""
    values = model.ops[0].boundary_values() if model.ops and model.sources(0) == [model.input_ports[0][0]] \
        and len(model.input_ports) == 1 else None  # the first op reads the whole input
    if not values:
        return np.zeros((0, model.input.n), dtype=np.int64)
    rng = np.random.default_rng([seed, 1 << 20])
    t = model.input
    blocks = []
    for i, vals in enumerate(values):
        vals = np.unique(np.asarray(vals, dtype=np.int64))
        vals = vals[(vals >= t.min_raw[i]) & (vals <= t.max_raw[i])]
        block = rng.integers(t.min_raw, t.max_raw + 1, (len(vals), t.n), dtype=np.int64)
        block[:, i] = vals
        blocks.append(block)
    return np.vstack(blocks)


@dataclass
class Cover:
    inputs: np.ndarray  # one input vector per value of the covered tensor
    tensor: str  # which tensor: "input" or "output of op 'x'"
    values: int

    @property
    def of_inputs(self) -> bool:
        return self.tensor == "input"


def enumerate_values(t: TensorType) -> np.ndarray:
    """Every raw vector a tensor can hold (element 0 varies fastest)."""
    sizes = [int(f.max_raw - f.min_raw + 1) for f in t.formats]
    total = int(np.prod(sizes, dtype=object))
    index = np.arange(total, dtype=np.int64)
    cols = []
    for f, size in zip(t.formats, sizes):
        cols.append(f.min_raw + index % size)
        index //= size
    return np.stack(cols, axis=1)


def cover(model: FirmwareModel, limit_bits: int = COVER_LIMIT_BITS) -> Cover | None:
    """Input vectors reaching every value of the first tensor that is small enough to enumerate,
    when every op before it can map values back to inputs (``Op.preimage``); None otherwise."""
    tensors = [("input", model.input)]
    if model.is_chain:  # walking back op by op needs each op to read the one before
        tensors += [(f"output of op {op.name!r}", op.output) for op in model.ops]
    for k, (label, t) in enumerate(tensors):
        if t.bus_width <= limit_bits:  # 2**bus_width raw vectors
            values = enumerate_values(t)
            x = values
            for op in reversed(model.ops[:k]):
                x = op.preimage(x)
                if x is None:
                    break
            else:
                return Cover(x.astype(np.int64), label, len(values))
        if k < len(tensors) - 1 and model.ops[k].preimage(np.zeros((0, model.ops[k].output.n), np.int64)) is None:
            return None  # no op past this one can be reached backwards
    return None


def test_vectors(model: FirmwareModel, n: int, seed: int = DEFAULT_SEED, extra: np.ndarray | None = None
                 ) -> np.ndarray:
    """The stored vectors of a bundle: edges, boundaries, ``extra`` (e.g. physics samples), random."""
    parts = [edge_vectors(model.input), boundary_vectors(model, seed)]
    if extra is not None and len(extra):
        parts.append(np.asarray(extra, dtype=np.int64))
    fixed = np.vstack(parts)
    rest = max(n - len(fixed), 0)
    return np.vstack([fixed, random_vectors(model.input, rest, seed)])[:max(n, len(fixed))]


test_vectors.__test__ = False  # not a pytest test


# ------------------------------------------------------------------ address ranges
def enumerated_tensor(model: FirmwareModel) -> tuple[int, str] | None:
    """(k, label) of the first one-element unsigned integer tensor (k = 0: the input, k: the output of op
    k-1) that every op before it can map back to raw inputs (``Op.preimage``): a table's address, whose
    values ``range_inputs`` enumerates in ranges (address spaces too large for ``cover`` at once)."""
    tensors = [("input", model.input)] + [(f"output of op {op.name!r}", op.output) for op in model.ops]
    for k, (label, t) in enumerate(tensors):
        if t.n == 1 and not t.formats[0].signed and t.formats[0].fractional == 0:
            return k, label
        if k < len(model.ops) and model.ops[k].preimage(np.zeros((0, model.ops[k].output.n), np.int64)) is None:
            return None
    return None


def range_inputs(model: FirmwareModel, k: int, start: int, stop: int) -> np.ndarray:
    """Raw input vectors reaching values start..stop-1 of tensor k (``enumerated_tensor``), one each, in order."""
    x = np.arange(start, stop, dtype=np.int64).reshape(-1, 1)
    for op in reversed(model.ops[:k]):
        x = op.preimage(x)
    return np.asarray(x, dtype=np.int64)
