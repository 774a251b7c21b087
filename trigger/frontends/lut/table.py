"""Table generation: the regressor evaluated on every address, quantized to the table word.

Addresses are enumerated in fixed-size chunks, so memory stays bounded by the
table itself (2 bytes per address for words up to 16 bits) plus one chunk.
The output word is the regressor's pT quantized by ``trigger.fixed`` (the only
place fixed-point semantics live): rounding and saturation exactly as the
configured ap_ufixed format says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from trigger.fixed import FixedFormat, OverflowCount
from trigger.frontends.lut.binning import AddressLayout
from trigger.frontends.lut.regressor import from_target

CHUNK = 1 << 16
PART_WORDS = 1 << 22  # addresses per part when the config does not say (address.part_bits)


def word_dtype(fmt: FixedFormat):
    return np.uint16 if fmt.width <= 16 else np.uint32


@dataclass
class Table:
    words: np.ndarray  # (2**address_bits,) unsigned word per address
    model_sha256: str  # of the regressor's float64 output on every address
    saturated: int  # addresses whose pT saturated the output format
    seconds: float


def float_pt(layout: AddressLayout, regressor, target: str, address: np.ndarray) -> np.ndarray:
    """The float regressor's pT at the given addresses."""
    x = layout.regressor_inputs(layout.bins_of(address))
    return from_target(regressor.predict(x), target)


def generate_table(layout: AddressLayout, regressor, target: str, fmt: FixedFormat,
                   chunk: int = CHUNK, progress: bool = True, part_words: int = PART_WORDS) -> Table:
    """The whole table in this process, part by part as ``parts.table_in_parts`` makes it anywhere: the
    same words and the same float hash (sha256 of the parts' float hashes) for the same ``part_words``."""
    import time

    t0 = time.perf_counter()
    n = 1 << layout.bits
    part_words = min(int(part_words), n)
    words = np.empty(n, dtype=word_dtype(fmt))
    hashes, saturated = [], 0
    with tqdm(total=n, desc="table", unit="addr", unit_scale=True, disable=not progress, leave=False) as bar:
        for index, start in enumerate(range(0, n, part_words)):
            part = evaluate_part(layout, regressor, target, fmt, index, start, part_words, chunk)
            words[start:start + part_words] = part.words
            hashes.append(part.float_sha256)
            saturated += part.saturated
            bar.update(part_words)
    return Table(words, hashlib.sha256("".join(hashes).encode()).hexdigest(), saturated, time.perf_counter() - t0)


@dataclass
class TablePart:
    """One address range of a table evaluated on its own (a task of ``parts.table_in_parts``)."""

    index: int
    start: int
    words: np.ndarray  # little-endian unsigned words of the range, ready to write as a binary part
    float_sha256: str  # of the regressor's float64 output on the range, chunk by chunk
    saturated: int
    lo: int  # smallest and largest raw word of the range
    hi: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.words.tobytes()).hexdigest()


def part_dtype(fmt: FixedFormat) -> str:
    """How a part file stores words: little-endian uint16 up to 16 bits, else uint32 (hex text is 4x larger)."""
    return "<u2" if fmt.width <= 16 else "<u4"


def evaluate_part(layout: AddressLayout, regressor, target: str, fmt: FixedFormat, index: int, start: int,
                  count: int, chunk: int = CHUNK) -> TablePart:
    """Words of addresses [start, start + count), evaluated in pieces of ``chunk`` addresses.

    The parts (``parts.table_in_parts``, a size fixed by the config) and the pieces are fixed, never
    derived from the number of workers, and the regressor's floats use neither BLAS nor vectorised
    libm (``regressor``), so every float is computed by the same operations whoever evaluates it: the
    words, and the float hash, depend neither on how many workers shared the table nor on their
    threads, BLAS kernel or CPU features."""
    words = np.empty(count, dtype=part_dtype(fmt))
    digest = hashlib.sha256()
    overflow = OverflowCount()
    for at in range(start, start + count, chunk):
        address = np.arange(at, min(start + count, at + chunk), dtype=np.int64)
        y = regressor.predict(layout.regressor_inputs(layout.bins_of(address)))
        digest.update(np.ascontiguousarray(y, dtype="<f8").tobytes())
        words[at - start:at - start + len(address)] = fmt.to_bits(fmt.quantize(from_target(y, target), overflow))
    # table words are unsigned (trigger.frontends.lut.config): bit patterns and raw values agree
    return TablePart(index, start, words, digest.hexdigest(), overflow.overflows, int(words.min()), int(words.max()))
