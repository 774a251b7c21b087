"""The HLS C++ project of a table (bucketize -> concat -> lookup) and its g++ C simulation.

hls4ml would write a table's 2**20 words into source code as ap_fixed
constructors; this project keeps them in a plain integer array included from
a ``.inc`` file written straight from numpy, and the compression as integer
comparisons against the same edges the emulator and the RTL use. For tables,
this C++ is the specification of the HLS side.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from trigger.errors import FirmwareModelError
from trigger.ir.model import FirmwareModel
from trigger.ir.ops.bucketize import Bucketize
from trigger.ir.ops.concat import Concat
from trigger.ir.ops.lookup import Lookup
from trigger.backends.hls.gxx_csim import run_testbench
from trigger.templates import write

BACKEND = "table_cpp"
TEMPLATES = {  # file name pattern -> template under firmware_templates/
    "{top}.h": "hls_table/lut.h.j2",
    "{top}.cpp": "hls_table/lut.cpp.j2",
    "{top}_rom.h": "hls_table/lut_rom.h.j2",
    "{top}_test.cpp": "hls_table/lut_test.cpp.j2",
    "build_prj.tcl": "hls_table/build_prj.tcl.j2",
}
# From this many words, the C simulation reads the ROM from its .inc file at run time instead of compiling it
# in (g++ took 218 s on the initialiser of 2**24 words; 2**16 take about a second).
ROM_FROM_FILE_DEPTH = 1 << 17
MAX_BITS = 32  # inputs travel as int32 and words as uint32 through the C simulation
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Names a feature may not take in the generated C++: keywords, and the project's own identifiers.
_RESERVED = set("""
    alignas alignof and asm auto bool break case catch char class const constexpr continue default delete do double
    else enum explicit export extern false float for friend goto if inline int long mutable namespace new noexcept
    not nullptr operator or private protected public register return short signed sizeof static struct switch
    template this throw true try typedef typeid typename union unsigned using virtual void volatile while xor
    address word bin main argc argv in out expected mem_in mem_out vectors mismatches bus text digit v w e x i f
    std ap_int ap_uint uint32_t int32_t
""".split())


def table_ops(model: FirmwareModel) -> tuple[Bucketize, Concat, Lookup]:
    """The model's bucketize, concat and lookup ops; a one-line error if it is not that chain."""
    kinds = [op.kind for op in model.ops]
    if kinds not in (["bucketize", "concat", "lookup"], ["bucketize", "concat", "memory_lookup"]):
        raise FirmwareModelError(f"model {model.name!r}: the table C++ backend needs ops bucketize -> concat -> "
                                 f"lookup, got {' -> '.join(kinds) or 'none'} (memory_lookup may stand for lookup)")
    return tuple(model.ops)


def _c_names(labels: list[str]) -> list[str]:
    """C identifiers for the inputs: the element names where safe, else x0, x1, ..."""
    names = []
    for i, label in enumerate(labels):
        ok = _IDENT.match(label) and label.lower() not in _RESERVED and not re.fullmatch(r"x\d+", label.lower())
        names.append(label if ok else f"x{i}")
    lowered = [n.lower() for n in names]
    return [n if lowered.count(n.lower()) == 1 else f"x{i}" for i, n in enumerate(names)]


def context(model: FirmwareModel, top: str, part: str, clock_period_ns: float) -> dict:
    bucketize, concat, lookup = table_ops(model)
    t = model.input
    for i, f in enumerate(t.formats):
        if f.fractional != 0 or f.width > MAX_BITS - (0 if f.signed else 1):
            raise FirmwareModelError(f"model {model.name!r}: input element {i} is {f.cpp}; the table C++ backend "
                                     f"takes ap_int/ap_uint inputs that fit int32")
    word = lookup.output.formats[0]
    if word.width > MAX_BITS:
        raise FirmwareModelError(f"model {model.name!r}: table word {word.cpp} is wider than {MAX_BITS} bits")
    labels = list(t.names) if t.names else [f"x{i}" for i in range(t.n)]
    binning = bucketize.binning or [""] * t.n
    fields = []
    for i, (name, label, src, dst, edges, lsb, bus_lsb) in enumerate(zip(
            _c_names(labels), labels, t.formats, bucketize.output.formats, bucketize.element_edges(), concat.lsb,
            t.offsets)):
        fields.append({"name": name, "label": label, "index": i, "cpp": src.cpp, "raw_bits": src.width,
                       "signed": src.signed, "bits": dst.width, "n_bins": 1 << dst.width, "lsb": lsb,
                       "bus_lsb": bus_lsb, "binning": binning[i], "edges": [int(e) for e in edges]})
    return {"top": top, "fields": fields, "bus_bits": t.bus_width, "address_bits": lookup.address_bits,
            "depth": 1 << lookup.address_bits, "word_bits": word.width, "word_format": word.cpp,
            "ctype": "unsigned short" if word.width <= 16 else "unsigned int", "inc_file": f"{top}_rom.inc",
            "part": part, "clock_period_ns": round(float(clock_period_ns), 4),
            "external": lookup.kind == "memory_lookup", "read_latency": getattr(lookup, "read_latency", 0)}


def write_project(model: FirmwareModel, folder: Path, *, top: str, part: str, clock_period_ns: float) -> dict:
    """Writes the HLS project into ``folder``; returns the manifest's "hls" section."""
    ctx = context(model, top, part, clock_period_ns)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rel = folder.name
    if ctx["external"]:  # the words are the bundle's memory image, not source code
        for pattern, template in TEMPLATES.items():
            if "_rom" not in pattern:
                write(folder / pattern.format(top=top), template, **ctx)
        return {"backend": BACKEND, "top": top, "sources": [f"{rel}/{top}.cpp"], "headers": [f"{rel}/{top}.h"],
                "testbench": f"{rel}/{top}_test.cpp", "tcl": f"{rel}/build_prj.tcl", "external_memory": True}
    for pattern, template in TEMPLATES.items():
        write(folder / pattern.format(top=top), template, **ctx)
    lookup = model.ops[-1]
    write_inc(folder / ctx["inc_file"], lookup.output.formats[0].to_bits(lookup.words))
    return {"backend": BACKEND, "top": top, "sources": [f"{rel}/{top}.cpp"],
            "headers": [f"{rel}/{top}.h", f"{rel}/{top}_rom.h", f"{rel}/{ctx['inc_file']}"],
            "testbench": f"{rel}/{top}_test.cpp", "tcl": f"{rel}/build_prj.tcl"}


def write_inc(path: Path, values: np.ndarray, chunk: int = 1 << 20) -> Path:
    """The ROM initialiser: one decimal word and a comma per line, written chunk by chunk."""
    values = np.asarray(values, dtype=np.int64)
    uniq, inverse = np.unique(values, return_inverse=True)
    text = np.array([f"{int(u)},\n" for u in uniq], dtype=object)
    with open(path, "w") as fh:
        for start in range(0, len(values), chunk):
            fh.write("".join(text[inverse[start:start + chunk]].tolist()))
    return Path(path)


def csim(bundle: Path, manifest: dict, model: FirmwareModel, raw: np.ndarray, work: Path
         ) -> tuple[np.ndarray, dict]:
    """The bundle's HLS C++ compiled with g++ (hls4ml's ap_types headers) and run on raw inputs.

    A table in external memory gets the window of words its inputs address, as a file."""
    extra = ()
    lookup = model.ops[-1]
    if lookup.kind == "memory_lookup" and len(raw):
        from trigger.ir.model import FirmwareModel, emulate

        compress = FirmwareModel(model.name, model.input, list(model.ops[:-1]), kind=model.kind)
        address = emulate(compress, raw).outputs[:, 0]
        lo, hi = int(address.min()), int(address.max())
        image = Path(work) / "csim_memory.bin"
        Path(work).mkdir(parents=True, exist_ok=True)
        image.write_bytes(lookup.read(np.arange(lo, hi + 1)).astype(lookup.part_dtype).tobytes())
        extra = (str(image), str(lo))
    defines = ()
    inc = [h for h in (manifest.get("hls") or {}).get("headers", []) if h.endswith(".inc")]
    if lookup.kind == "lookup" and inc and lookup.words.size >= ROM_FROM_FILE_DEPTH:
        # the testbench reads the ROM's words from the bundle's own initialiser at run time (lut_rom.h.j2)
        rom = (Path(bundle) / inc[0]).resolve()
        defines = (f'{manifest["hls"]["top"].upper()}_ROM_FROM_FILE="{rom}"',)
    bits, timings = run_testbench(bundle, manifest, raw, work, optimisation="-O1", word_dtype="<u4",
                                  words_per_vector=1, extra_args=extra, defines=defines)
    return model.output.formats[0].from_bits(bits.reshape(-1)).reshape(-1, 1), timings

