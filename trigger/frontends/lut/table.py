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
                   chunk: int = CHUNK, progress: bool = True) -> Table:
    import time

    t0 = time.perf_counter()
    n = 1 << layout.bits
    words = np.empty(n, dtype=word_dtype(fmt))
    digest = hashlib.sha256()
    count = OverflowCount()
    with tqdm(total=n, desc="table", unit="addr", unit_scale=True, disable=not progress, leave=False) as bar:
        for start in range(0, n, chunk):
            address = np.arange(start, min(n, start + chunk), dtype=np.int64)
            x = layout.regressor_inputs(layout.bins_of(address))
            y = regressor.predict(x)
            digest.update(np.ascontiguousarray(y, dtype="<f8").tobytes())
            words[address] = fmt.quantize(from_target(y, target), count)
            bar.update(len(address))
    return Table(words, digest.hexdigest(), count.overflows, time.perf_counter() - t0)

