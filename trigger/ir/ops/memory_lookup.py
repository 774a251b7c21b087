"""``memory_lookup``: a table read from an external memory (the board's SRAM/DRAM), not block RAM.

EMTF's 2^30 x 9-bit pT table (1.2 GB) lives in the board's external memory; a table
that large cannot be a ROM inside the FPGA, nor one array in one process. Its words
are stored as binary part files (little-endian ``part_dtype`` words, ``part_words``
addresses each, in address order) beside ``firmware_model.json``, each with its
sha256 and word range; ``emulate`` reads only the parts its addresses fall in (through a
memory map it drops after each read: the pages stay in the page cache, not in the process),
so no process ever holds the whole table, nor keeps it mapped.

The hardware is the address compression in front of a memory interface with a fixed
read latency (``trigger.backends.rtl.memory_table``); this op itself never goes
through the ROM builder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval

_PART_FILE = re.compile(r"^memory/part_\d{5}\.bin$")
PART_DTYPES = ("<u2", "<u4")


@register
@dataclass
class MemoryLookup(Op):
    parts: list = field(default_factory=list)  # [{"file", "start", "words", "sha256", "min", "max", "saturated"}]
    part_words: int = 0
    part_dtype: str = "<u2"
    read_latency: int = 2  # clocks from mem_rd_en/mem_addr to mem_rd_data (a pipelined, fixed-latency read)

    kind = "memory_lookup"
    absorbs_previous = True
    ends_in_register = True
    external_memory = True  # the RTL writer emits the memory-interface top for it

    def __post_init__(self):
        self.root: Path | None = None  # the folder the part files are relative to (see attach)

    def attach(self, folder: Path) -> None:
        """Where the part files are: the folder holding firmware_model.json (a bundle)."""
        self.root = Path(folder)

    @property
    def address_bits(self) -> int:
        return self.input.formats[0].width

    def validate(self) -> None:
        self.part_words = int(self.part_words)
        self.read_latency = int(self.read_latency)
        if self.input.n != 1 or self.output.n != 1:
            self.fail(f"reads one word at one address, got {self.input.n} inputs and {self.output.n} outputs")
        address, word = self.input.formats[0], self.output.formats[0]
        if address.signed or address.fractional != 0:
            self.fail(f"address is {address.cpp}, expected ap_uint")
        if word.signed or word.width > (16 if self.part_dtype == "<u2" else 32):
            self.fail(f"word {word.cpp} does not fit the unsigned part words {self.part_dtype}")
        if self.part_dtype not in PART_DTYPES:
            self.fail(f"part_dtype must be one of {', '.join(PART_DTYPES)}, got {self.part_dtype!r}")
        if self.part_words < 1 or self.part_words & (self.part_words - 1):
            self.fail(f"part_words must be a power of two, got {self.part_words}")
        if not 1 <= self.read_latency <= 64:
            self.fail(f"read_latency must be 1..64 clocks, got {self.read_latency}")
        depth = 1 << address.width
        if len(self.parts) * self.part_words != depth and not (len(self.parts) == 1 and self.part_words == depth):
            self.fail(f"{len(self.parts)} parts of {self.part_words} words for a {address.width}-bit address")
        for i, p in enumerate(self.parts):
            if not isinstance(p, dict) or not _PART_FILE.match(str(p.get("file"))):
                self.fail(f"part {i}: file must be memory/part_NNNNN.bin, got {str(p)[:60]}")
            if p.get("start") != i * self.part_words or p.get("words") != self.part_words:
                self.fail(f"part {i}: expected start {i * self.part_words} and {self.part_words} words")
            if not (0 <= int(p["min"]) <= int(p["max"]) <= word.max_raw):
                self.fail(f"part {i}: word range [{p['min']}, {p['max']}] outside {word.cpp}")

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        first, last = x[0].lo // self.part_words, x[0].hi // self.part_words
        touched = self.parts[first:last + 1]
        return [Interval(min(int(p["min"]) for p in touched), max(int(p["max"]) for p in touched))]

    def words(self, index: int) -> np.ndarray:
        """The words of part ``index``: a new read-only memory map of its file (unmapped when dropped)."""
        if self.root is None:
            self.fail("its part files are not attached to a folder (load the model with FirmwareModel.load)")
        path = self.root / self.parts[index]["file"]
        if not path.exists():
            self.fail(f"part file {path} not found")
        return np.memmap(path, dtype=self.part_dtype, mode="r", shape=(self.part_words,))

    def read(self, address: np.ndarray) -> np.ndarray:
        """The words at ``address``; each part is mapped only while its words are copied out (a 2^30 table
        read at random addresses would otherwise stay mapped, and count, in this process)."""
        address = np.asarray(address, dtype=np.int64)
        out = np.empty(address.shape, dtype=np.int64)
        part = address // self.part_words
        for index in np.unique(part):
            sel = part == index
            words = self.words(int(index))
            out[sel] = words[address[sel] - int(index) * self.part_words]
            del words
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        counter(counts, "output").add(len(x), 0)  # the words were quantized when the table was made
        return self.read(x[:, 0]).reshape(-1, 1)

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        self.fail("an external-memory table is written by trigger.backends.rtl.memory_table, not as a ROM")

    def describe(self) -> str:
        return (f"memory_lookup {1 << self.address_bits} words of {self.output.formats[0].cpp} in external memory "
                f"({len(self.parts)} parts, read latency {self.read_latency})")
