"""Firmware for a table: HLS C++ project and Verilog, from firmware_templates/lut/.

The templates get the same integer edges and table words the emulator uses.
The ROM contents go to data files (``.mem`` for ``$readmemh``, ``.inc`` for
the C++ initialiser) written straight from numpy, not through Jinja2.
Also here: compiling and running the HLS C simulation with g++.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import jinja2
import numpy as np

from trigger.fixed import FixedFormat
from trigger.lut.binning import AddressLayout
from trigger.toolchain import ap_types_include, find_tool

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "firmware_templates" / "lut"
LATENCY_CYCLES = 2  # address register + registered ROM read (see top.v.j2)


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=False, lstrip_blocks=False)


def input_width(layout: AddressLayout) -> int:
    """W_IN of the standard top: every raw feature travels in an element this wide."""
    return max(f.raw_bits for f in layout.fields)


def context(layout: AddressLayout, top: str, fmt: FixedFormat, part: str, clock_mhz: float) -> dict:
    fields = []
    for i, f in enumerate(layout.fields):
        sign_bit = 1 << (f.raw_bits - 1) if f.signed else 0
        fields.append({
            "name": f.name, "index": i, "raw_bits": f.raw_bits, "signed": f.signed, "bits": f.bits,
            "lsb": f.lsb, "n_bins": f.n_bins, "binning": f.binning, "sign_bit": sign_bit,
            "edges": [int(e) for e in f.edges], "edge_keys": [int(e) + sign_bit for e in f.edges]})
    msb_first = [f"{f.name}_bin" for f in sorted(layout.fields, key=lambda f: -f.lsb)]
    return {
        "top": top, "fields": fields, "msb_first": msb_first, "n_in": len(fields), "w_in": input_width(layout),
        "address_bits": layout.bits, "depth": 1 << layout.bits, "word_bits": fmt.width,
        "output_format": fmt.cpp, "ctype": "unsigned short" if fmt.width <= 16 else "unsigned int",
        "latency": LATENCY_CYCLES, "mem_file": f"{top}_rom.mem", "inc_file": f"{top}_rom.inc",
        "part": part, "clock_period_ns": round(1000.0 / clock_mhz, 4)}


def hex_format(width: int) -> str:
    return "{:0%dx}" % ((width + 3) // 4)


def hex_lines(values: np.ndarray, width: int) -> bytes:
    """One zero-padded hex number per line, as $readmemh reads."""
    return b"".join(_line_chunks(values, hex_format(width), "\n"))


def write_lines(path: Path, values: np.ndarray, fmt: str, end: str) -> None:
    """Like hex_lines but streamed to a file chunk by chunk (tables of 2**26 words)."""
    with open(path, "wb") as fh:
        for block in _line_chunks(values, fmt, end):
            fh.write(block)


def _line_chunks(values: np.ndarray, fmt: str, end: str, chunk: int = 1 << 20):
    values = np.asarray(values)
    uniq = np.unique(values)
    text = np.array([(fmt.format(int(u)) + end).encode() for u in uniq], dtype=object)
    for start in range(0, len(values), chunk):
        part = values[start:start + chunk]
        yield b"".join(text[np.searchsorted(uniq, part)].tolist())


def write_firmware(bundle: Path, layout: AddressLayout, words: np.ndarray, top: str, fmt: FixedFormat,
                   part: str, clock_mhz: float) -> dict:
    """Render hls/ and rtl/; returns what the manifest needs to know about them."""
    env = _env()
    ctx = context(layout, top, fmt, part, clock_mhz)
    hls, rtl = Path(bundle) / "hls", Path(bundle) / "rtl"
    hls.mkdir(parents=True, exist_ok=True)
    rtl.mkdir(parents=True, exist_ok=True)
    outputs = {
        hls / f"{top}.h": "lut.h.j2", hls / f"{top}.cpp": "lut.cpp.j2", hls / f"{top}_rom.h": "lut_rom.h.j2",
        hls / f"{top}_test.cpp": "lut_test.cpp.j2", hls / "build_prj.tcl": "build_prj.tcl.j2",
        rtl / f"{top}_compress.v": "compress.v.j2", rtl / f"{top}_rom.v": "rom.v.j2", rtl / f"{top}.v": "top.v.j2",
    }
    for path, template in outputs.items():
        path.write_text(env.get_template(template).render(**ctx))
    write_lines(rtl / ctx["mem_file"], words, hex_format(fmt.width), "\n")
    write_lines(hls / ctx["inc_file"], words, "{:d}", ",\n")
    sources = [f"rtl/{top}_compress.v", f"rtl/{top}_rom.v", f"rtl/{top}.v"]
    return {"top": top, "sources": sources, "data_files": [f"rtl/{ctx['mem_file']}"],
            "latency_cycles": LATENCY_CYCLES, "ii": 1, "w_in": ctx["w_in"], "n_in": ctx["n_in"],
            "n_out": 1, "w_out": fmt.width,
            "hls": {"top": top, "sources": [f"hls/{top}.cpp"], "testbench": f"hls/{top}_test.cpp",
                    "tcl": "hls/build_prj.tcl"}}


def compile_csim(hls_dir: Path, top: str, build_dir: Path) -> tuple[Path, float]:
    """g++ the HLS sources with hls4ml's ap_types headers; returns (executable, seconds)."""
    gxx = find_tool("g++")
    if gxx is None:
        raise FileNotFoundError("g++ not found: needed for the HLS C simulation (run `trigger doctor`)")
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / f"{top}_csim"
    cmd = [gxx, "-std=c++14", "-O1", "-w", f"-I{ap_types_include()}", f"-I{hls_dir}",
           str(hls_dir / f"{top}.cpp"), str(hls_dir / f"{top}_test.cpp"), "-o", str(exe)]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        first = (run.stderr.strip().splitlines() or ["(no output)"])[0]
        raise RuntimeError(f"g++ failed to compile the C simulation of {top}: {first}")
    return exe, time.perf_counter() - t0


def run_csim(exe: Path, raw: np.ndarray, work: Path) -> tuple[np.ndarray, float]:
    """Raw feature vectors through the compiled C simulation; returns (words, seconds)."""
    inputs, outputs = work / "csim_inputs.i32", work / "csim_outputs.u32"
    inputs.write_bytes(np.ascontiguousarray(raw, dtype="<i4").tobytes())
    t0 = time.perf_counter()
    run = subprocess.run([str(exe), str(inputs), str(outputs)], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"C simulation failed (exit {run.returncode}): {run.stderr.strip()[:200]}")
    words = np.fromfile(outputs, dtype="<u4").astype(np.int64)
    return words, time.perf_counter() - t0
