"""Benchmark of the network verification loop on the reference QKeras jet tagger.

Measures, each from an empty compiled-simulator cache (a fresh $TRIGGER_CACHE):
`trigger build` + `trigger verify` with 100,000 vectors (the issue's goal: <= 45 s in all),
then the same `trigger verify` again with the cache warm; the RTL simulation's bulk
throughput (vectors streamed by the Verilog harness) with Verilator on more vectors; and
Icarus on a few thousand. Wall and CPU seconds (this process and its children) are both
reported: the machine is shared, so wall times are upper bounds.
Writes benchmarks/network.json (machine) and benchmarks/network.md (people).

    .venv/bin/python scripts/bench_network.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT.parent / "shared" / "reference_models" / "qkeras_3layer.json"


def cpu_seconds() -> float:
    """CPU time of this process and every child it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_cli(args: list[str], env: dict) -> dict:
    """One `trigger` command in its own process: exit code, wall and CPU seconds."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    run = subprocess.run([sys.executable, "-m", "trigger.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    result = {"exit": run.returncode, "wall_s": round(time.perf_counter() - wall, 1),
              "cpu_s": round(cpu_seconds() - cpu, 1)}
    if run.returncode != 0:
        print(run.stdout[-2000:], run.stderr[-2000:], file=sys.stderr)
    return result


def verify_entry(bundle: Path, step: dict) -> dict:
    report = json.loads((bundle / "reports" / "verify.json").read_text())
    return {**step, "vectors": report["vectors"], "mismatches": report["mismatches"], "pass": report["pass"],
            "latency_cycles": report["latency_cycles"], "ii": report["ii"], "timings": report["timings"]}


def throughput(bundle: Path, simulator: str, n: int, work: Path, cache: Path) -> dict:
    """RTL only, through trigger.rtlsim: n seeded test vectors compared with the emulator."""
    import numpy as np

    from trigger.ir.model import FirmwareModel, emulate
    from trigger.rtlsim import simulate
    from trigger.verify import mismatching_rows
    from trigger.vectors import test_vectors

    manifest = json.loads((bundle / "manifest.json").read_text())
    model = FirmwareModel.load(bundle)
    inputs = test_vectors(model, n, 1)[:n]
    expected = emulate(model, inputs).outputs
    rtl = manifest["rtl"]
    wall, cpu = time.perf_counter(), cpu_seconds()
    sim = simulate([bundle / s for s in rtl["sources"]], rtl["top"], model.input.to_bits(inputs),
                   model.input.widths, model.output.widths, simulator=simulator, build_dir=work / simulator,
                   max_latency=int(manifest["latency_cycles"]) + 8, cache_dir=cache)
    mismatches = int(mismatching_rows(expected, model.output.from_bits(sim.outputs)).size)
    return {"simulator": simulator, "vectors": n, "mismatches": mismatches, "latency_cycles": sim.latency_cycles,
            "ii": sim.ii, "wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(cpu_seconds() - cpu, 2),
            **sim.summary(), "rtl_build_s": round(sim.build_seconds, 2), "rtl_sim_s": round(sim.seconds, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer vectors (for a smoke run)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks"), help="where to write network.json/.md")
    args = parser.parse_args()
    if not REFERENCE.exists():
        print(f"reference model missing: {REFERENCE}", file=sys.stderr)
        return 2
    vectors = 10_000 if args.quick else 100_000
    bulk_vectors = 100_000 if args.quick else 1_000_000
    icarus_vectors = 10 if args.quick else 30  # Icarus evaluates the flat network slowly (minutes of CPU for 300)

    work = Path(tempfile.mkdtemp(prefix="bench-network-"))
    cache = work / "cache"  # cold: nothing compiled yet, not even Verilator's run-time library
    env = {**os.environ, "TRIGGER_CACHE": str(cache)}
    bundle = work / "qkeras_3layer"
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
               "model": "reference QKeras jet tagger (qkeras_3layer.json, 16-64-32-32-5)", "vectors": vectors}
    try:
        build = timed_cli(["build", str(REFERENCE), "-o", str(bundle), "--vectors", str(vectors)], env)
        cold = verify_entry(bundle, timed_cli(["verify", str(bundle)], env))
        warm = verify_entry(bundle, timed_cli(["verify", str(bundle)], env))
        results["build"] = build
        results["verify_cold_cache"] = cold
        results["verify_warm_cache"] = warm
        results["build_plus_verify_cold"] = {"wall_s": round(build["wall_s"] + cold["wall_s"], 1),
                                             "cpu_s": round(build["cpu_s"] + cold["cpu_s"], 1)}
        print(json.dumps(results, indent=1), flush=True)
        results["throughput"] = [throughput(bundle, "verilator", bulk_vectors, work, cache),
                                 throughput(bundle, "icarus", icarus_vectors, work, cache)]
        print(json.dumps(results["throughput"], indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["note"] = ("2-core machine shared with other jobs (see the load averages): wall times are upper "
                       "bounds, CPU seconds are this benchmark's own. Cold = empty $TRIGGER_CACHE.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "network.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (out / "network.md").write_text(markdown(results))
    return 0 if cold["pass"] and warm["pass"] and all(t["mismatches"] == 0 for t in results["throughput"]) else 1


def markdown(r: dict) -> str:
    cold, warm, both = r["verify_cold_cache"], r["verify_warm_cache"], r["build_plus_verify_cold"]
    lines = ["# Network verification benchmark (reference QKeras jet tagger 16-64-32-32-5)", "",
             f"{r['machine']['cpus']} CPUs, shared (load average {r['machine']['load_average_at_start']} at start, "
             f"{r['machine']['load_average_at_end']} at end): wall times are upper bounds; CPU seconds count this "
             "benchmark's processes only.", "",
             f"`trigger build` + `trigger verify`, {r['vectors']:,} vectors, empty simulator cache: "
             f"**{both['wall_s']} s wall, {both['cpu_s']} s CPU** (goal: 45 s).", "",
             "| step | wall s | CPU s | C sim build s | C sim s | RTL build s (CPU) | RTL run s (CPU) | "
             "bulk vectors/s (wall) | mismatches |", "|---|---|---|---|---|---|---|---|---|",
             f"| build | {r['build']['wall_s']} | {r['build']['cpu_s']} | | | | | | |"]
    for name, v in (("verify, cold cache", cold), ("verify, warm cache", warm)):
        t = v["timings"]
        lines.append(f"| {name} | {v['wall_s']} | {v['cpu_s']} | {t['csim_build_s']} | {t['csim_s']} | "
                     f"{t['rtl_build_s']} ({t.get('rtl_build_cpu_s')}) | {t['rtl_sim_s']} ({t.get('rtl_sim_cpu_s')}) | "
                     f"{t.get('rtl_bulk_vectors_per_s')} | {sum(v['mismatches'].values())} |")
    lines += ["", "RTL simulation alone (first 1,000 vectors through cocotb cycle by cycle, the rest streamed by "
              "the Verilog harness; every vector compared with the emulator):", "",
              "| simulator | vectors | build s (CPU) | run s (CPU) | bulk vectors | bulk s (CPU) | "
              "bulk vectors/s wall | bulk vectors/s CPU | mismatches |", "|---|---|---|---|---|---|---|---|---|"]
    for t in r["throughput"]:
        per_cpu = round(t["rtl_bulk_vectors"] / t["rtl_bulk_cpu_s"]) if t["rtl_bulk_cpu_s"] else None
        lines.append(f"| {t['simulator']} | {t['vectors']:,} | {t['rtl_build_s']} ({t['rtl_build_cpu_s']}) | "
                     f"{t['rtl_sim_s']} ({t['rtl_sim_cpu_s']}) | {t['rtl_bulk_vectors']:,} | {t['rtl_bulk_s']} "
                     f"({t['rtl_bulk_cpu_s']}) | {t['rtl_bulk_vectors_per_s']} | {per_cpu} | {t['mismatches']} |")
    lines += ["", "Verilator: harness signals public only (not --public-flat-rw), -O3, --output-split-cfuncs 500; "
              "its C++ as two units compiled in parallel (evaluation at -O1, construction/settle code at -O0, no "
              "precompiled header); run-time library compiled once per cache (at -O1, but its DPI and thread parts, "
              "which nothing runs, at -O0); during the bulk phase cocotb waits on one timer, not on a signal. "
              "The C simulation is hls4ml's "
              "project compiled with a small driver that calls the bridge's top function on every row of a file "
              "(one process per core), run concurrently with the emulator and the RTL simulation, so the step "
              "CPU columns of a verify overlap (the RTL build's CPU seconds include C simulation compiles that "
              "ended during it); the verify row's CPU seconds are exact. Compiled simulators and C simulations "
              "are cached by a hash of their sources, options and tool versions.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
