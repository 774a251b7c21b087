"""Vendor-free resource and logic-depth estimates with Yosys.

``synth_xilinx`` maps the bundle's RTL to Xilinx primitives (LUT, FF, CARRY,
DSP, BRAM, LUTRAM). Cutting that netlist at its registers gives the logic depth
of each module (a layer or a stage): the number of cells (LUT, CARRY4, MUXF, DSP)
on its longest register-to-register path, which is what limits the clock. Paths
that cross a module boundary without a register are counted per module. These are estimates: Vivado's figures,
when available, are the truth.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from trigger.errors import ToolError
from trigger.templates import render
from trigger.toolchain import find_tool

# Capacity of parts users target most (LUT, FF, DSP, BRAM36); BRAM18 = 2 * BRAM36.
PARTS = {
    "xcvu13p": {"family": "xcup", "LUT": 1728000, "FF": 3456000, "DSP": 12288, "BRAM36": 2688},
    "xcvu9p": {"family": "xcup", "LUT": 1182240, "FF": 2364480, "DSP": 6840, "BRAM36": 2160},
    "xcu250": {"family": "xcup", "LUT": 1728000, "FF": 3456000, "DSP": 12288, "BRAM36": 2688},
    "xcvu7p": {"family": "xcup", "LUT": 788160, "FF": 1576320, "DSP": 4560, "BRAM36": 1440},
    "xcku115": {"family": "xcu", "LUT": 663360, "FF": 1326720, "DSP": 5520, "BRAM36": 2160},
    "xc7vx690t": {"family": "xc7", "LUT": 433200, "FF": 866400, "DSP": 3600, "BRAM36": 1470},
    "xc7z020": {"family": "xc7", "LUT": 53200, "FF": 106400, "DSP": 220, "BRAM36": 140},
}

# Nanoseconds per cell level (LUT, CARRY4 slice or MUXF) with routing: a rough figure for UltraScale+ -2.
NS_PER_LUT_LEVEL = 0.5


class SynthesisError(ToolError):
    pass


def part_info(part: str) -> dict | None:
    """Capacity and Yosys family of a part name such as ``xcvu13p-flga2577-2-e``."""
    base = part.lower().split("-")[0]
    for name in sorted(PARTS, key=len, reverse=True):  # xc7z020clg400 -> xc7z020
        if base.startswith(name):
            return PARTS[name]
    return None


def family_of(part: str) -> str:
    info = part_info(part)
    if info:
        return info["family"]
    base = part.lower()
    if base.startswith("xc7"):
        return "xc7"
    if re.match(r"xc(vu|ku|zu|au)\d+p|xcu\d", base):
        return "xcup"
    return "xcu"


def synthesize(sources, top: str, part: str, work_dir: Path | None = None, parameters=None,
               dsp: bool = True, data_files=(), flat_depth: bool = False) -> dict:
    """Run Yosys on ``sources`` and return counts and depth as a plain dict.

    ``flat_depth``: measure logic depth on the flattened netlist (paths through submodules and across
    module boundaries in full; ``logic_levels`` is then the design's deepest register-to-register path).

    ``data_files`` (ROM images read with $readmemh by bare name) are copied where Yosys runs.
    """
    yosys = find_tool("yosys")
    if yosys is None:
        raise SynthesisError("yosys not found: run `make setup` (scripts/install_system_tools.sh installs it)")
    work = Path(work_dir or tempfile.mkdtemp(prefix="trigger-synth-"))
    work.mkdir(parents=True, exist_ok=True)
    for data in data_files:
        shutil.copy(data, work / Path(data).name)
    family = family_of(part)
    script = render("yosys/synth.ys.j2",
        sources=[str(Path(s).resolve()) for s in sources], top=top, family=family,
        parameters=parameters or {}, dsp=dsp, stat_json="stat.json", ltp_txt="ltp.txt", flat_depth=flat_depth)
    digest = hashlib.sha256(script.encode())
    for path in [*sources, *data_files]:
        digest.update(Path(path).read_bytes())
    cached = work / "result.json"
    if cached.exists():  # the same script on the same files: Yosys would give the same answer
        previous = json.loads(cached.read_text())
        if previous.get("inputs_sha256") == digest.hexdigest():
            return previous
    (work / "synth.ys").write_text(script)
    t0 = time.perf_counter()
    proc = subprocess.run([yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=work,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise SynthesisError(f"yosys failed on {top}: {last[0]} (log: {work / 'yosys.log'})")
    stat = _stat_json((work / "stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    depths = _ltp_lengths((work / "ltp.txt").read_text())
    modules = {}
    for name, data in sorted(stat["modules"].items()):
        name = name.lstrip("\\")
        modules[name] = summarize_cells(data.get("num_cells_by_type", {}))
        modules[name]["logic_levels"] = depths.get(name, 0)
    result = summarize_cells(cells)
    result.update({"logic_levels": max(depths.values(), default=0), "family": family, "part": part,
                   "yosys_seconds": round(seconds, 2), "cells": dict(sorted(cells.items())), "source": "yosys",
                   "modules": modules, "inputs_sha256": digest.hexdigest()})
    cached.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def _stat_json(text: str) -> dict:
    """Yosys's ``stat -json`` output. Yosys 0.23 also prints the module hierarchy of designs more than
    one level deep (a core inside a wrapper inside the top) as plain text inside it; every JSON line
    starts with a quote or a brace, so the others are dropped."""
    kept = [line for line in text.splitlines() if line.lstrip()[:1] in ("", '"', "{", "}", "[", "]")]
    try:
        return json.loads("\n".join(kept))
    except json.JSONDecodeError as err:
        raise SynthesisError(f"yosys wrote an unreadable stat.json ({err})") from None


def summarize_cells(cells: dict) -> dict:
    """Group Xilinx primitives into the usual resource classes."""
    def total(pattern):
        return sum(n for name, n in cells.items() if re.fullmatch(pattern, name))

    lutram = total(r"RAM\d+[MSX].*|RAM\d+X\d+[SD].*|SRL\w*")
    return {
        "LUT": total(r"LUT[1-6]"),
        "FF": total(r"FD[CPRS]E?"),
        "CARRY": total(r"CARRY[48]"),
        "DSP": total(r"DSP48\w*"),
        "BRAM18": total(r"RAMB18\w*"),
        "BRAM36": total(r"RAMB36\w*"),
        "LUTRAM": lutram,
        "MUXF": total(r"MUXF[789]"),
    }


def _ltp_lengths(text: str) -> dict:
    """Module name -> cells on its longest path, from Yosys' ltp output."""
    return {m.group(1).lstrip("\\"): int(m.group(2))
            for m in re.finditer(r"Longest topological path in (\S+) \(length=(\d+)\)", text)}


def bram_for_table(depth: int, width: int) -> dict:
    """Block RAMs a depth x width ROM needs: 36 Kb blocks (512x72 .. 32Kx1), with a final 18 Kb half."""
    shapes36 = [(32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72)]
    best36 = min(_blocks(depth, width, d, w) for d, w in shapes36)
    shapes18 = [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)]
    best18 = min(_blocks(depth, width, d, w) for d, w in shapes18)
    return {"BRAM36": best36, "BRAM18": best18, "BRAM36_equivalent": min(best36, (best18 + 1) // 2)}


def _blocks(depth, width, block_depth, block_width):
    return -(-depth // block_depth) * -(-width // block_width)


def utilization(resources: dict, part: str) -> dict:
    """Percent of the part used, for the resources whose capacity is known."""
    info = part_info(part)
    if not info:
        return {}
    bram36 = resources.get("BRAM36", 0) + resources.get("BRAM18", 0) / 2
    used = {"LUT": resources.get("LUT", 0) + resources.get("LUTRAM", 0), "FF": resources.get("FF", 0),
            "DSP": resources.get("DSP", 0), "BRAM": bram36}
    cap = {"LUT": info["LUT"], "FF": info["FF"], "DSP": info["DSP"], "BRAM": info["BRAM36"]}
    return {k: round(100.0 * used[k] / cap[k], 4) for k in used}
