"""Vendor-free resource and logic-depth estimates with Yosys.

``synth_xilinx`` maps the bundle's RTL to Xilinx primitives (LUT, FF, CARRY,
DSP, BRAM, LUTRAM). Cutting that netlist at its registers gives the logic depth
of each module (a layer or a stage): the number of cells (LUT, CARRY4, MUXF, DSP)
on its longest register-to-register path. Cells are not equally slow: a LUT with its
route costs about half a nanosecond, a CARRY4 in the middle of a chain a few hundredths,
so the clock is judged on a timing estimate instead: Yosys' ``sta`` over the same netlist
with the cell delays of ``firmware_templates/yosys/timing_xcup.v`` (``critical_path_ns``;
the RTL builder places pipeline registers with the same figures). Paths that cross a module
boundary without a register are counted per module (``flat_depth`` measures them in full).
These are estimates: Vivado's figures, when available, are the truth.

Speed: synthesis keeps the hierarchy, so a module's netlist does not depend on the
modules around it. When each module of the design is instantiated once, without
parameter overrides (the bundle's RTL: one module per op or per stage behind the
standard top) and the design is not small (``SynthSettings.split_min_bytes``), every module is
synthesised by its own Yosys process, the modules
it instantiates read as black boxes, in parallel on the machine's CPUs; the counts
are summed and the depth is the deepest module's. Other designs (parameterised or
repeated submodules, as in da4ml's RTL) run as one process. LUT mapping runs
``abc -fast`` by default (``SynthSettings``; measured in benchmarks/da4ml_comparison.md).
Each run's result is cached under ``$TRIGGER_CACHE/synth`` (``trigger.toolchain.cache_root``),
keyed by a hash of its script, the files it reads and the Yosys version.

Large ROMs: a table the RTL writer puts in a module of its own (``firmware_templates/rtl/rom.v.j2``,
marked ``// trigger ROM: D words x W bits``; ``trigger.backends.rtl.ROM_MODULE_BITS``) is never given to
Yosys (reading a 2^20-word image and mapping it took most of a run, and such a table belongs in block
RAM anyway): its block RAMs are counted from depth x width (``rom_blocks``) and every other module is
synthesised as usual, with the ROM a black box. The result lists such modules under ``computed``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from trigger.errors import ToolError
from trigger.parts import delay_ns, family_of, timing_model
from trigger.resources import templates_dir
from trigger.templates import render
from trigger.toolchain import cache_root, find_tool

# Nanoseconds per cell level (LUT, CARRY4 slice or MUXF) with routing (a LUT's delay in trigger.parts),
# used only when a result has no timing estimate (``critical_path_ns``).
NS_PER_LUT_LEVEL = delay_ns("lut")
TIMING_LIB = "yosys/timing_xcup.v"  # under firmware_templates: the cell delays Yosys' sta uses (trigger.parts writes it)
TIMING_MODEL = timing_model()

CACHE_FORMAT = 3  # bump when the scripts' meaning or a cached result's layout changes


def timing_lib() -> Path:
    return templates_dir() / TIMING_LIB


def fits_clock(figures: dict, clock_period_ns: float) -> bool:
    """Whether a synthesis result's longest path fits the clock: its timing estimate when it has one,
    else its logic levels at ``NS_PER_LUT_LEVEL``."""
    return path_ns(figures) <= clock_period_ns


def path_ns(figures: dict) -> float:
    """The estimated longest register-to-register path (ns) of a synthesis result."""
    if figures.get("critical_path_ns") is not None:
        return float(figures["critical_path_ns"])
    return round(figures.get("logic_levels", 0) * NS_PER_LUT_LEVEL, 3)


class SynthesisError(ToolError):
    pass


@dataclass(frozen=True)
class SynthSettings:
    """How Yosys is run; recorded with every result (``settings``) and printed by the reports.

    abc_fast: LUT mapping with ``abc -fast`` instead of synth_xilinx's full ``abc`` script.
    abc9: synth_xilinx's ABC9 flow (timing-driven; then ``abc_fast`` does not apply).
    flatten: synth_xilinx -flatten: optimise across module boundaries (one run, no per-module figures).
    split: one Yosys process per module where the hierarchy allows it (see the module docstring), for
    designs of at least ``split_min_bytes`` of Verilog: a Yosys process spends about 4 CPU seconds on
    synth_xilinx's libraries before it reads a design, more than a small module then takes, so a small
    design runs as one process (a 4-3-2 network: 5 per-module runs 17.5 CPU s, one run 6.9 s; the
    benchmark network, 0.7 MB: 77 s wall in 5 runs on 2 CPUs, 112 s in one).
    """

    abc_fast: bool = True
    abc9: bool = False
    flatten: bool = False
    split: bool = True
    split_min_bytes: int = 300_000

    def describe(self, dsp: bool = True) -> str:
        """The settings as synth_xilinx-like options, e.g. 'abc -fast, -nodsp, per module'."""
        parts = ["-abc9" if self.abc9 else ("abc -fast" if self.abc_fast else "abc (full)")]
        if not dsp:
            parts.append("-nodsp")
        if self.flatten:
            parts.append("-flatten")
        return ", ".join(parts)


DEFAULT_SETTINGS = SynthSettings()


@functools.lru_cache(maxsize=None)
def yosys_version(yosys: str) -> str:
    """``yosys -V`` (part of every cache key: another Yosys may map differently)."""
    try:
        run = subprocess.run([yosys, "-V"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SynthesisError(f"yosys: could not run {yosys} -V ({err})") from None
    return run.stdout.strip() or run.stderr.strip()


def synth_cache_dir() -> Path | None:
    root = cache_root()
    return None if root is None else root / "synth"


@dataclass
class _Run:
    """One Yosys process: synthesise ``top`` from ``sources`` (``libs`` read as black boxes)."""

    name: str
    script: str
    key: str
    result: dict | None = None  # {"modules": {name: {"cells", "logic_levels"}}, "cells", "seconds", "cpu_seconds"}
    cached: bool = False


def synthesize(sources, top: str, part: str, work_dir: Path | None = None, parameters=None,
               dsp: bool = True, data_files=(), flat_depth: bool = False,
               settings: SynthSettings | None = None, jobs: int | None = None, cache: bool = True) -> dict:
    """Run Yosys on ``sources`` and return counts and depth as a plain dict.

    ``flat_depth``: measure logic depth on the flattened netlist (paths through submodules and across
    module boundaries in full; ``logic_levels`` is then the design's deepest register-to-register path).
    ``data_files`` (ROM images read with $readmemh by bare name) are copied where Yosys runs.
    ``jobs``: Yosys processes at once (default: the CPUs this process may use). ``cache``: False runs
    Yosys even when the cache has the answer (benchmarks), and stores nothing.

    The result: LUT, FF, CARRY, DSP, BRAM18/36, LUTRAM, MUXF and logic_levels of the whole design,
    ``modules`` (the same per module), ``cells`` (every primitive), ``settings`` (how Yosys ran),
    ``yosys_seconds`` / ``yosys_cpu_seconds`` (wall and CPU time of the Yosys runs; ``cached``: the
    whole result was taken from the cache, with the times of the call that first computed it).
    """
    yosys = find_tool("yosys")
    if yosys is None:
        raise SynthesisError("yosys not found: run `make setup` (scripts/install_system_tools.sh installs it)")
    settings = settings or DEFAULT_SETTINGS
    sources = [Path(s).resolve() for s in sources]
    for path in [*sources, *map(Path, data_files)]:
        if not path.is_file():
            raise SynthesisError(f"yosys: input file {path} not found")
    own_work = work_dir is None
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="trigger-synth-"))
    work.mkdir(parents=True, exist_ok=True)
    for data in data_files:
        shutil.copy(data, work / Path(data).name)
    family = family_of(part)
    common = {"family": family, "dsp": dsp, "abc_fast": settings.abc_fast and not settings.abc9,
              "abc9": settings.abc9, "flatten": settings.flatten}
    version = yosys_version(yosys)
    data_digest = hashlib.sha256(b"".join(Path(d).read_bytes() for d in [timing_lib(), *data_files])).hexdigest()
    timing = {"timing_lib": str(timing_lib())}

    def key_of(script: str, files) -> str:
        # by content: the files' bytes, and the script with every path written as the file's name, so that
        # the same RTL synthesised from another folder (a copied bundle, a scan point) is found in the cache
        for path in sorted({*sources, *map(Path, data_files), timing_lib()}, key=lambda p: -len(str(p))):
            script = script.replace(str(path), path.name)
        digest = hashlib.sha256(f"{CACHE_FORMAT}\n{version}\n{data_digest}\n{script}".encode())
        for path in files:
            digest.update(path.read_bytes())
        return digest.hexdigest()

    names = _defined_modules(sources)
    roms = _rom_modules(sources)  # counted, not synthesised
    rom_files = sorted({path for path, _, _ in roms.values()})
    big = sum(path.stat().st_size for path in sources) >= settings.split_min_bytes
    plan = _plan_units(sources, top) if settings.split and big and not settings.flatten and not parameters else None
    runs = []
    if plan:
        for name, (files, libs) in plan.items():
            if name in roms:
                continue
            script = render("yosys/synth.ys.j2", sources=[str(f) for f in files], libs=[str(f) for f in libs],
                            blackboxes=sorted(_defined_modules(libs)), top=name, parameters={},
                            stat_json=f"{name}.stat.json", ltp_txt=f"{name}.ltp.txt", sta_txt=f"{name}.sta.txt",
                            flat_depth=True, netlist=f"{name}.il" if flat_depth else None, **common, **timing)
            runs.append(_Run(name, script, key_of(script, [*files, *libs])))
        # the largest first: the shortest total time
        runs.sort(key=lambda r: -sum(f.stat().st_size for f in plan[r.name][0]))
    else:
        read = [s for s in sources if s not in rom_files]
        script = render("yosys/synth.ys.j2", sources=[str(s) for s in read], libs=[str(f) for f in rom_files],
                        blackboxes=sorted(roms), top=top, parameters=parameters or {},
                        stat_json=f"{top}.stat.json", ltp_txt=f"{top}.ltp.txt", sta_txt=f"{top}.sta.txt",
                        flat_depth=flat_depth, netlist=None, **common, **timing)
        runs.append(_Run(top, script, key_of(script, sources)))
    depth_run = None
    if plan and flat_depth:
        script = render("yosys/depth.ys.j2", top=top, netlists=[f"{r.name}.il" for r in runs],
                        libs=[str(f) for f in rom_files], ltp_txt="flat.ltp.txt", sta_txt="flat.sta.txt", **timing)
        depth_run = _Run("flat_depth", script, key_of(script + "".join(r.key for r in runs), []))
    counted = {name: rom_blocks(depth, width, family) for name, (_, depth, width) in roms.items()}

    cache = synth_cache_dir() if cache else None
    design_key = hashlib.sha256(("".join(r.key for r in runs + ([depth_run] if depth_run else []))
                                 + json.dumps(counted, sort_keys=True)).encode()).hexdigest()
    previous = _cache_get(cache, design_key)
    if previous is not None:  # the same runs gave this before
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
        return {**previous, "cached": True}
    for run in runs + ([depth_run] if depth_run else []):
        run.result = _cache_get(cache, run.key)
        run.cached = run.result is not None
    if depth_run and not depth_run.cached:  # the join needs every module's netlist: run them all
        for run in runs:
            run.result, run.cached = None, False
    todo = [r for r in runs if r.result is None]
    t0 = time.perf_counter()
    if todo:
        jobs = max(1, min(jobs or _cpus(), len(todo)))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for run, result in zip(todo, pool.map(lambda r: _run_yosys(yosys, work, r, plan is not None, names), todo)):
                run.result = result
                _cache_put(cache, run.key, result)
    if depth_run and depth_run.result is None:
        depth_run.result = _run_depth(yosys, work, depth_run, top)
        _cache_put(cache, depth_run.key, depth_run.result)
        todo.append(depth_run)
    wall = time.perf_counter() - t0
    cpu = sum(r.result["cpu_seconds"] for r in todo)

    modules, cells = {}, {}
    for run in runs:
        for name, data in run.result["modules"].items():
            modules[name] = {**summarize_cells(data["cells"]), "logic_levels": data["logic_levels"],
                             "critical_path_ns": data["critical_path_ns"]}
        for cell, n in run.result["cells"].items():
            cells[cell] = cells.get(cell, 0) + n
    for name, blocks in counted.items():  # large ROMs: block RAMs counted from depth x width, no Yosys run
        modules[name] = {**summarize_cells(blocks["cells"]), "logic_levels": 0, "critical_path_ns": 0.0}
        for cell, n in blocks["cells"].items():
            cells[cell] = cells.get(cell, 0) + n
    if depth_run:
        levels, path = depth_run.result["logic_levels"], depth_run.result["critical_path_ns"]
    else:
        levels = max((m["logic_levels"] for m in modules.values()), default=0)
        path = max((m["critical_path_ns"] for m in modules.values()), default=0.0)
    result = summarize_cells(cells)
    result.update({
        "logic_levels": levels, "critical_path_ns": path, "timing_model": TIMING_MODEL,
        "family": family, "part": part, "source": "yosys",
        # modules whose figures are counted, not synthesised (large ROMs), and how
        "computed": {name: blocks["how"] for name, blocks in sorted(counted.items())},
        "cells": dict(sorted(cells.items())), "modules": dict(sorted(modules.items())),
        "settings": {**asdict(settings), "dsp": dsp, "flat_depth": flat_depth,
                     "runs": len(runs) + (1 if depth_run else 0), "per_module": plan is not None,
                     "jobs": max(1, min(jobs or _cpus(), len(runs))), "yosys": version,
                     "summary": settings.describe(dsp) + (", one run per module" if plan else ", one run")
                                + "".join(f"; {name}: {blocks['how']}" for name, blocks in sorted(counted.items()))},
        # Yosys's time in this call (runs found in the cache cost none); a cached result keeps its first run's.
        "yosys_seconds": round(wall, 2), "yosys_cpu_seconds": round(cpu, 2),
        "cached": False,
    })
    _cache_put(cache, design_key, result)
    if own_work:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _plan_units(sources: list[Path], top: str) -> dict[str, tuple[list[Path], list[Path]]] | None:
    """The design cut into units synthesised alone: unit -> (files read, files read as black boxes).

    A unit is the top or a module instantiated exactly once, by a unit, without parameter overrides
    (the bundle's ops or stages; da4ml's pipeline stages), in a file with no other unit. Other modules
    (parameterised or repeated, such as shift-and-add helpers or da4ml's adders) are synthesised inside
    each unit that uses them. None when there is no second unit: the design then runs as one process."""
    defined, bodies, per_file = {}, {}, {}
    for path in sources:
        text = _strip_comments(path.read_text(errors="replace"))
        parts = re.split(r"\bmodule\s+([A-Za-z_][A-Za-z0-9_$]*)", text)
        names = parts[1::2]
        per_file[path] = names
        for name, body in zip(names, parts[2::2]):
            if name in defined:
                return None
            defined[name], bodies[name] = path, body.split("endmodule", 1)[0]
    if top not in defined:
        return None
    known = "|".join(re.escape(n) for n in sorted(defined, key=len, reverse=True))
    instance = re.compile(rf"(?<![\w$.`])({known})\s*(#)?\s*(?:\(|[A-Za-z_][\w$]*\s*(?:\[[^\]]*\]\s*)?\()")
    children, count, overridden, order = {}, {}, set(), [top]
    for name in order:  # every module under the top, breadth first
        children[name] = []
        for match in instance.finditer(bodies[name]):
            child = match.group(1)
            if child == name:
                return None
            children[name].append(child)
            count[child] = count.get(child, 0) + 1
            if match.group(2):
                overridden.add(child)
            if child not in order:
                order.append(child)
    units = [top]
    for name in units:
        units += [c for c in children[name] if count[c] == 1 and c not in overridden and c not in units]
    if len(units) == 1 or len({defined[u] for u in units}) < len(units):
        return None  # one unit, or two in one file
    plan = {}
    for unit in units:
        inlined, stack = [], list(children[unit])
        while stack:
            name = stack.pop()
            if name in units or name in inlined:
                continue
            inlined.append(name)
            stack += children[name]
        if any(c in units for name in inlined for c in children[name]):
            return None  # a unit inside a repeated module: its counts would need multiplying
        files = [defined[unit]] + sorted({defined[n] for n in inlined} - {defined[unit]})
        libs = sorted({defined[c] for c in children[unit] if c in units})
        read = {m for f in files for m in per_file[f]}
        if any(m in read for f in libs for m in per_file[f]):
            return None  # a module both synthesised and a black box in one run
        plan[unit] = (files, libs)
    return plan


ROM_MARK = re.compile(r"^// trigger ROM: (\d+) words x (\d+) bits$", re.M)


def _rom_modules(sources: list[Path]) -> dict[str, tuple[Path, int, int]]:
    """The large ROMs of the design: module -> (its file, depth, width), from files of one module that
    ``rtl/rom.v.j2`` wrote (its ``// trigger ROM: D words x W bits`` line)."""
    roms = {}
    for path in sources:
        text = path.read_text(errors="replace")
        mark = ROM_MARK.search(text)
        names = re.findall(r"\bmodule\s+([A-Za-z_][A-Za-z0-9_$]*)", _strip_comments(text))
        if mark and len(names) == 1:
            roms[names[0]] = (path, int(mark.group(1)), int(mark.group(2)))
    return roms


def rom_blocks(depth: int, width: int, family: str) -> dict:
    """The block RAM primitives of a depth x width ROM, counted instead of synthesised: the fewest
    36 Kb blocks (``bram_for_table``: each block as 32Kx1 .. 512x72, the table tiled in depth and
    width), or 18 Kb halves where they need less (an odd one left as a RAMB18). The read
    multiplexer across depth-cascaded blocks (a few LUTs per output bit) is not counted."""
    need = bram_for_table(depth, width)
    suffix = "E1" if family == "xc7" else "E2"
    if need["BRAM18"] < 2 * need["BRAM36"]:
        n36, n18 = need["BRAM18"] // 2, need["BRAM18"] % 2
    else:
        n36, n18 = need["BRAM36"], 0
    cells = {name: n for name, n in ((f"RAMB36{suffix}", n36), (f"RAMB18{suffix}", n18)) if n}
    blocks = " + ".join(f"{n} {kind}" for kind, n in (("BRAM36", n36), ("BRAM18", n18)) if n)
    how = f"ROM of {depth} x {width} bits counted as {blocks} from depth x width (not synthesised)"
    return {"cells": cells, "how": how}


def _defined_modules(sources: list[Path]) -> set[str]:
    return {name for path in sources
            for name in re.findall(r"\bmodule\s+([A-Za-z_][A-Za-z0-9_$]*)", _strip_comments(path.read_text(errors="replace")))}


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def _run_yosys(yosys: str, work: Path, run: _Run, unit: bool, names: set[str]) -> dict:
    """Runs one synthesis script and reads its results (``_parse_run``)."""
    seconds, cpu = _yosys(yosys, work, run)
    return {**_parse_run(work, run.name, unit, names), "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2)}


def _parse_run(work: Path, name: str, unit: bool, names: set[str]) -> dict:
    """Counts and depths of the run ``name``. ``unit``: a unit of ``_plan_units``, reported as one module
    (the cells of the modules inside it included); otherwise every module of the design, as Yosys lists
    them. Cells that are instances of the design's own modules (black boxes, submodules) are dropped."""
    stat_path, ltp_path, sta_path = work / f"{name}.stat.json", work / f"{name}.ltp.txt", work / f"{name}.sta.txt"
    stat = _stat_json(_read(stat_path), stat_path)
    depths = _ltp_lengths(_read(ltp_path), ltp_path)
    paths = _sta_arrivals(_read(sta_path), sta_path)

    def primitives(cells) -> dict:
        if not isinstance(cells, dict) or not all(isinstance(n, int) for n in cells.values()):
            raise SynthesisError(f"yosys: {stat_path}: cell counts are not numbers")
        return {c: n for c, n in cells.items() if c.lstrip("\\") not in names and not c.startswith("$paramod")}

    try:
        design = primitives(stat["design"]["num_cells_by_type"])
        raw = {m.lstrip("\\"): data.get("num_cells_by_type", {}) for m, data in stat["modules"].items()}
        for cells in raw.values():
            primitives(cells)
    except (KeyError, TypeError, AttributeError) as err:
        raise SynthesisError(f"yosys: {stat_path} lacks {err} (not the stat -json layout expected)") from None
    if unit:
        if name not in depths:
            raise SynthesisError(f"yosys: {ltp_path} has no longest path for {name}")
        modules = {name: {"cells": design, "logic_levels": depths[name], "critical_path_ns": paths.get(name, 0.0)}}
    else:  # each module with the cells of the parameterised helpers it contains (not listed themselves)
        modules = {m: {"cells": _contained(m, raw, names), "logic_levels": depths.get(m, 0),
                       "critical_path_ns": paths.get(m, 0.0)}
                   for m in raw if not m.startswith("$paramod")}
    return {"modules": modules, "cells": design}


def _contained(module: str, raw: dict, names: set[str], seen=()) -> dict:
    """The primitives of ``module`` and, times their instances, of the parameterised submodules in it
    (helpers, listed by Yosys as ``$paramod...`` modules; stat -json gives each module's own cells, with
    submodule instances as cells of the submodule's type). Other submodules are listed on their own."""
    total = {}
    for cell, n in raw[module].items():
        child = cell.lstrip("\\")
        if child in raw and child.startswith("$paramod") and child not in seen:
            for c, k in _contained(child, raw, names, (*seen, module)).items():
                total[c] = total.get(c, 0) + n * k
        elif child not in names and not child.startswith("$paramod"):
            total[cell] = total.get(cell, 0) + n
    return total


def _run_depth(yosys: str, work: Path, run: _Run, top: str) -> dict:
    seconds, cpu = _yosys(yosys, work, run)
    ltp_path, sta_path = work / "flat.ltp.txt", work / "flat.sta.txt"
    depths = _ltp_lengths(_read(ltp_path), ltp_path)
    if top not in depths:
        raise SynthesisError(f"yosys: {ltp_path} has no longest path for {top}")
    path = _sta_arrivals(_read(sta_path), sta_path).get(top, 0.0)
    return {"logic_levels": depths[top], "critical_path_ns": path, "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2)}


def _yosys(yosys: str, work: Path, run: _Run) -> tuple[float, float]:
    """Runs ``run.script`` in ``work``; (wall seconds, CPU seconds)."""
    (work / f"{run.name}.ys").write_text(run.script)
    log, err = work / f"{run.name}.log", work / f"{run.name}.stderr"
    t0 = time.perf_counter()
    with open(err, "wb") as stderr:
        proc = subprocess.Popen([yosys, "-q", "-l", log.name, "-s", f"{run.name}.ys"], cwd=work,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds, cpu = time.perf_counter() - t0, usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        text = err.read_text(errors="replace").strip() or (_read(log) if log.exists() else "")
        last = [line for line in text.splitlines() if line.strip()][-1:] or [f"exit status {proc.returncode}"]
        raise SynthesisError(f"yosys failed on {run.name}: {last[0].strip()} (log: {log})")
    return seconds, cpu


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as err:
        raise SynthesisError(f"yosys: could not read {path} ({err.strerror})") from None


def _cache_get(cache: Path | None, key: str) -> dict | None:
    if cache is None:
        return None
    path = cache / f"{key[:40]}.json"
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, or damaged: run Yosys again
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    try:
        os.utime(path)
    except OSError:
        pass
    return entry.get("result")


def _cache_put(cache: Path | None, key: str, result: dict) -> None:
    """Written to a temporary file and renamed: concurrent runs never read half an entry."""
    if cache is None:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".entry-", dir=cache)
        with os.fdopen(fd, "w") as fh:
            json.dump({"key": key, "result": result}, fh)
        os.replace(tmp, cache / f"{key[:40]}.json")
    except OSError:
        pass  # a read-only or full cache only costs time


def _stat_json(text: str, path: Path | str = "stat.json") -> dict:
    """Yosys's ``stat -json`` output. Yosys 0.23 also prints the module hierarchy of designs more than
    one level deep (a core inside a wrapper inside the top) as plain text inside it; every JSON line
    starts with a quote or a brace, so the others are dropped."""
    kept = [line for line in text.splitlines() if line.lstrip()[:1] in ("", '"', "{", "}", "[", "]")]
    # ... and it writes the backslash of escaped identifiers (``$paramod$...\\adder``) unescaped.
    kept = [re.sub(r'\\(u[0-9a-fA-F]{4}|["\\/bfnrt])|\\', lambda m: m.group(0) if m.group(1) else r"\\", line)
            for line in kept]
    try:
        stat = json.loads("\n".join(kept))
    except json.JSONDecodeError as err:
        raise SynthesisError(f"yosys: unreadable stat -json output in {path} ({err})") from None
    if not isinstance(stat, dict):
        raise SynthesisError(f"yosys: unreadable stat -json output in {path} (not a JSON object)")
    return stat


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


def _ltp_lengths(text: str, path: Path | str = "ltp.txt") -> dict:
    """Module name -> cells on its longest path, from Yosys' ltp output."""
    found = {m.group(1).lstrip("\\"): int(m.group(2))
             for m in re.finditer(r"Longest topological path in (\S+) \(length=(\d+)\)", text)}
    if not found:
        raise SynthesisError(f"yosys: no 'Longest topological path' in the ltp output {path}")
    return found


def _sta_arrivals(text: str, path: Path | str = "sta.txt") -> dict:
    """Module name -> its latest arrival time in ns, from Yosys' sta output (a module with no timed path
    is absent; a run that printed neither is unreadable)."""
    found = {m.group(1).lstrip("\\"): int(m.group(2)) / 1000.0
             for m in re.finditer(r"Latest arrival time in '(\S+)' is (-?\d+)", text)}
    if not found and "No timing paths found" not in text:
        raise SynthesisError(f"yosys: no 'Latest arrival time' in the sta output {path}")
    return found


def bram_for_table(depth: int, width: int) -> dict:
    """Block RAMs a depth x width ROM needs: 36 Kb blocks (512x72 .. 32Kx1), with a final 18 Kb half."""
    shapes36 = [(32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72)]
    best36 = min(_blocks(depth, width, d, w) for d, w in shapes36)
    shapes18 = [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)]
    best18 = min(_blocks(depth, width, d, w) for d, w in shapes18)
    return {"BRAM36": best36, "BRAM18": best18, "BRAM36_equivalent": min(best36, (best18 + 1) // 2)}


def _blocks(depth, width, block_depth, block_width):
    return -(-depth // block_depth) * -(-width // block_width)
