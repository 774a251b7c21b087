#!/usr/bin/env python
"""Benchmark of `trigger scan`: a 12-point scan of the jet tagger on a local Dask cluster.

Grid: QKeras weight bits 3, 4, 6 (each a training of the example network: quantization-aware) x clock
period 5 and 7.5 ns x RTL pipeline 1 (a register after every adder level) and 3 (the example's setting);
each point built, scored on the example's test sample (firmware accuracy), synthesised with Yosys; the
point picked for a 100 ns, 5 %-LUT budget on the xcvu13p is stated with its figures. At 200 MHz (5 ns) the
previous grid found no point both within 100 ns and with a logic depth that fits the clock; the 7.5 ns
column shows the trade. Optionally the same scan with another number of workers, to show the outputs are
the same bytes (tests/test_scan.py checks that on every run). Writes benchmarks/scan_jet_tagger.json, .md
and .png (the Pareto plot). Wall and CPU seconds are both reported: the machine is shared.

usage: scripts/bench_scan.py [--workers N] [--repeat-workers 0] [--work build/bench_scan] [--reuse]
  --workers         LocalCluster workers of the main scan (default: one per core)
  --repeat-workers  workers of the repeat scan compared byte for byte (0: skip the repeat)
  --reuse           take the main scan already in WORK/main (its timing.json) instead of running it
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trigger.scan import Point, run_scan  # noqa: E402
from trigger.cluster import default_workers  # noqa: E402

MODEL = ROOT / "models" / "jet_tagger"
GRID = {"quantization.weight_bits": [3, 4, 6], "clock_ns": [5, 7.5], "rtl.pipeline": [1, 3]}
BUDGET = "latency_ns=100,lut_pct=5"
COMPARED = ("scan.json", "scan.md", "scan.html", "pareto.png")


def cpu_seconds() -> float:
    """CPU time of this process and every child it waited for (the cluster's workers and their Yosys runs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_scan(out: Path, workers: int) -> tuple[dict, dict]:
    shutil.rmtree(out, ignore_errors=True)
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = run_scan(MODEL, GRID, out, workers=workers, budget=BUDGET)
    run = {"workers": workers, "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu_seconds() - c0, 1),
           "timing": json.loads((out / "timing.json").read_text())}
    return result, run


def reused_scan(out: Path) -> tuple[dict, dict]:
    """A finished main scan: its result and times (CPU: the sum of its tasks; a design counted once)."""
    timing = json.loads((out / "timing.json").read_text())
    designs, cpu = set(), 0.0
    for t in timing["per_point"].values():
        if not t:
            continue
        key = (t["design_cpu_s"], t["design_s"])
        if key not in designs:
            designs.add(key)
            cpu += t["design_cpu_s"]
        cpu += t.get("bundle_cpu_s", 0) + t.get("synth_cpu_s", 0)
    run = {"workers": timing["workers"], "wall_s": timing["wall_s"], "cpu_s": round(cpu, 1),
           "cpu_note": "sum of the tasks' own CPU seconds (run reused with --reuse)", "timing": timing}
    return json.loads((out / "scan.json").read_text()), run


def per_point_summary(timing: dict) -> dict:
    """Mean and max of each step over the points that got that far."""
    rows = [t for t in timing["per_point"].values() if t]
    out = {}
    for key in ("design_s", "design_cpu_s", "bundle_s", "bundle_cpu_s", "synth_s", "synth_cpu_s",
                "build_worker_peak_rss_mb", "synth_worker_peak_rss_mb", "synth_tool_peak_rss_mb"):
        values = [t[key] for t in rows if key in t]
        if values:
            out[key] = {"mean": round(sum(values) / len(values), 2), "max": max(values), "n": len(values)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat-workers", type=int, default=0)
    parser.add_argument("--work", default=str(ROOT / "build" / "bench_scan"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "scan_jet_tagger"))
    parser.add_argument("--reuse", action="store_true", help="use the finished main scan in WORK/main")
    args = parser.parse_args()
    work, out = Path(args.work), Path(args.out)
    load_start = os.getloadavg()
    points = math.prod(len(v) for v in GRID.values())
    print(f"bench_scan: {points} points of {MODEL.name} on {args.workers} worker(s) -> {work / 'main'}", file=sys.stderr)
    result, main_run = reused_scan(work / "main") if args.reuse else timed_scan(work / "main", args.workers)
    repeat = None
    if args.repeat_workers:
        print(f"bench_scan: the same scan on {args.repeat_workers} worker(s) -> {work / 'repeat'}", file=sys.stderr)
        _, repeat_run = timed_scan(work / "repeat", args.repeat_workers)
        same = {name: (work / "main" / name).read_bytes() == (work / "repeat" / name).read_bytes() for name in COMPARED}
        repeat = {**repeat_run, "identical": same, "all_identical": all(same.values())}
        print(f"bench_scan: outputs identical with {args.workers} and {args.repeat_workers} worker(s): {same}",
              file=sys.stderr)
    load_end = os.getloadavg()
    bench = {
        "model": MODEL.name, "grid": GRID, "budget": BUDGET,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_start": [round(x, 2) for x in load_start],
                    "load_average_end": [round(x, 2) for x in load_end]},
        "main": {**main_run, "per_point": per_point_summary(main_run["timing"])},
        "repeat": repeat and {**repeat, "per_point": per_point_summary(repeat["timing"])},
        "scan": result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(bench, indent=2, sort_keys=True) + "\n")
    shutil.copy(work / "main" / "pareto.png", out.with_suffix(".png"))
    out.with_suffix(".md").write_text(markdown(bench, (work / "main" / "scan.md").read_text(), out.with_suffix(".png").name))
    print(f"bench_scan: {pick_statement(result)}", file=sys.stderr)
    print(f"bench_scan: wrote {out.with_suffix('.json')}, .md, .png", file=sys.stderr)
    return 0 if not result["failed"] else 1


def markdown(bench: dict, scan_md: str, png: str) -> str:
    m, pp = bench["main"], bench["main"]["per_point"]
    lines = [
        "# Scan benchmark: the jet tagger (models/jet_tagger), 12 points on a local Dask cluster", "",
        f"{bench['machine']['cpus']} CPUs, shared (load average {bench['machine']['load_average_start']} at start, "
        f"{bench['machine']['load_average_end']} at end): wall times are upper bounds; CPU seconds count this "
        "benchmark's processes (the cluster's workers and their Yosys runs).", "",
        f"Main scan on {m['workers']} worker(s): **{m['wall_s']} s wall, {m['cpu_s']} s CPU** for "
        f"{m['timing']['points']} points ({m['timing']['designs']} designs: one training + hls4ml conversion each, "
        "shared by the points that differ only in pipeline).", "",
        "| step (per task) | mean wall s | mean CPU s | max CPU s | tasks |", "|---|---|---|---|---|",
    ]
    for step, label in (("design", "design: train + convert (once per design)"), ("bundle", "bundle: write one point"),
                        ("synth", "synthesis (Yosys)")):
        if f"{step}_s" in pp:
            lines.append(f"| {label} | {pp[f'{step}_s']['mean']} | {pp[f'{step}_cpu_s']['mean']} | "
                         f"{pp[f'{step}_cpu_s']['max']} | {pp[f'{step}_s']['n']} |")
    lines.append("")
    mem = [f"{label} {pp[key]['max']} MB" for key, label in (
        ("build_worker_peak_rss_mb", "worker building (TensorFlow, hls4ml)"),
        ("synth_worker_peak_rss_mb", "worker synthesising"), ("synth_tool_peak_rss_mb", "largest Yosys run"))
        if key in pp]
    lines += [f"Peak memory: {', '.join(mem)}.", ""]
    r = bench["repeat"]
    if r:
        lines += [f"Repeat on {r['workers']} worker(s): {r['wall_s']} s wall, {r['cpu_s']} s CPU; scan.json, scan.md, scan.html and pareto.png identical: "
                  f"**{'yes' if r['all_identical'] else 'NO'}** {r['identical']}.", ""]
    body = scan_md.replace("![Pareto plot](pareto.png)", f"![Pareto plot]({png})")
    body = body.replace("# Scan of", "## Scan of", 1)
    lines += [pick_statement(bench["scan"]), "", body,
              "Reproduce: `scripts/bench_scan.py` (or `trigger scan models/jet_tagger " + " ".join(
                  f"--set {k}={','.join(str(v) for v in vs)}" for k, vs in GRID.items())
              + f" --budget {BUDGET} -o build/scan`)."]
    return "\n".join(lines) + "\n"


def pick_statement(scan: dict) -> str:
    """The point picked for the budget, with the figures it was picked on (or why there is none)."""
    rec = scan["recommended"]
    points = {r["id"]: r for r in scan["points"]}
    head = "**Pick for latency <= 100 ns and LUT <= 5 % of the " + str(scan["part"]) + ":** "
    if not rec["id"]:
        ok = [r for r in scan["points"] if r["status"] == "ok" and r["budget"]["pass"]]
        near = min(ok, key=lambda r: (r["resources"]["logic_levels"], r["resources"]["LUT"]), default=None)
        tail = "" if near is None else (f" The budget-passing point with the shallowest logic is {near['id']} "
                                        f"({Point(near['id'], near['settings']).label}): "
                                        f"{near['resources']['logic_levels']} levels at {near['clock_period_ns']} ns.")
        return head + f"none ({rec['why']}).{tail}"
    r = points[rec["id"]]
    res, phys = r["resources"], r.get("physics") or {}
    from trigger.synth import NS_PER_LUT_LEVEL

    return (head + f"**{r['id']}** ({Point(r['id'], r['settings']).label}): {phys.get('metric', 'physics')} "
            f"{phys.get('value', float('nan')):.5f}, {res['LUT']:,} LUTs ({res['percent']['LUT']:.3g} %), "
            f"{res['FF']:,} FFs, {res.get('DSP', 0)} DSPs, latency {r['latency']['cycles']} cycles = "
            f"{r['latency']['ns']:g} ns at {r['clock_period_ns']:g} ns, {res['logic_levels']} logic levels "
            f"(~{res['logic_levels'] * NS_PER_LUT_LEVEL:g} ns, within the clock). Why: {rec['why']}.")


if __name__ == "__main__":
    sys.exit(main())
