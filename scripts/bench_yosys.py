"""Yosys time on the benchmark network (issue goal: <= 90 s on 2 cores), with the figures it gives.

The seeded 16-64-32-32-5 network of scripts/bench_da4ml.py, written with pipeline auto at 5 ns (the
chain cut into modules at stage boundaries), synthesised as bench_da4ml does (synth_xilinx with
`abc -fast`, one Yosys run per module in parallel, logic depth on the joined, flattened netlists),
with the cache off. Writes benchmarks/yosys.json and .md.

usage: .venv/bin/python scripts/bench_yosys.py [--out benchmarks/yosys]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PART = "xcvu13p-flga2577-2-e"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "yosys"), help="output path without suffix")
    args = parser.parse_args(argv)
    spec = importlib.util.spec_from_file_location("bench_da4ml", REPO / "scripts" / "bench_da4ml.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from trigger.backends.rtl import write_rtl
    from trigger.synth import synthesize

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="trigger-bench-yosys-") as work:
        t0 = time.perf_counter()
        design = write_rtl(bench.jet_tagger(), Path(work) / "rtl", top="trigger_top", pipeline="auto",
                           clock_period_ns=5.0)
        rtl_s = time.perf_counter() - t0
        print(f"RTL written in {rtl_s:.1f} s ({len(design.sources)} files); running Yosys ...", flush=True)
        t0 = time.perf_counter()
        r = synthesize(design.sources, "trigger_top", PART, work_dir=Path(work) / "synth", flat_depth=True,
                       cache=False)
        wall = time.perf_counter() - t0
    result = {"network": "random6 16-64-32-32-5 (scripts/bench_da4ml.py jet_tagger(), seed 5)", "part": PART,
              "pipeline": "auto", "clock_ns": 5.0, "rtl_seconds": round(rtl_s, 1),
              "yosys_wall_seconds": round(wall, 1), "yosys_cpu_seconds": r["yosys_cpu_seconds"],
              "yosys_runs": r["settings"]["runs"], "settings": r["settings"]["summary"], "goal_seconds": 90,
              "LUT": r["LUT"], "FF": r["FF"], "CARRY": r.get("CARRY"), "DSP": r["DSP"],
              "logic_levels": r["logic_levels"], "critical_path_ns": r["critical_path_ns"],
              "latency_cycles": design.latency_cycles, "estimated_ns_per_stage": design.stage_delay_ns,
              "load_average": {"start": [round(x, 2) for x in load_start],
                               "end": [round(x, 2) for x in os.getloadavg()]}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    met = "met" if wall <= 90 else "missed"
    out.with_suffix(".md").write_text(
        "# Yosys on the benchmark network\n\n"
        f"{result['network']}, pipeline auto at 5 ns, {PART}: **{result['yosys_wall_seconds']} s wall** "
        f"({result['yosys_cpu_seconds']} CPU s in {result['yosys_runs']} Yosys runs; goal 90 s: {met}). "
        f"Settings: {result['settings']}.\n\n"
        "| LUT | FF | CARRY | DSP | longest path (ns, Yosys sta) | logic levels | latency (cycles) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {r['LUT']} | {r['FF']} | {r.get('CARRY')} | {r['DSP']} | {r['critical_path_ns']} | {r['logic_levels']} | "
        f"{design.latency_cycles} |\n\n"
        f"Load average {result['load_average']['start']} at the start, {result['load_average']['end']} at the end "
        "(2 CPUs). Regenerate: `.venv/bin/python scripts/bench_yosys.py`.\n")
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
