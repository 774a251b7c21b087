"""Benchmark: `trigger demo` (what `make demo` runs) as on a new machine, with empty caches.

Runs `trigger demo` in a child process with ``TRIGGER_CACHE`` pointing at a fresh folder (no
compiled simulator, C simulation or Yosys result from earlier runs) and the bundles in a
temporary folder, and records its wall-clock and CPU seconds (the demo and every tool it ran),
each example's (from the demo's demo.json), the machine's CPUs and load. The goal
(issue 11) is at most 5 minutes after set-up.

Usage: .venv/bin/python scripts/bench_demo.py [--jobs N] [--only NAME ...] [--keep DIR] [--warm]
Writes benchmarks/demo.json and benchmarks/demo.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_S = 300


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Time `trigger demo` from empty caches.")
    ap.add_argument("--jobs", type=int, help="examples at once (the demo's default: 2, or 1 on one CPU)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these examples")
    ap.add_argument("--warm", action="store_true", help="keep the user's caches (default: a fresh, empty one)")
    ap.add_argument("--keep", type=Path, help="keep the bundles (and the fresh cache) in this folder")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "demo",
                    help="output path without suffix (default benchmarks/demo)")
    args = ap.parse_args(argv)

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if not args.warm:
        shutil.rmtree(work / "cache", ignore_errors=True)
        env["TRIGGER_CACHE"] = str(work / "cache")
    command = [sys.executable, "-m", "trigger.cli", "demo", "-o", str(work / "demo")]
    if args.jobs:
        command += ["--jobs", str(args.jobs)]
    if args.only:
        command += ["--only", *args.only]
    load = [round(v, 2) for v in os.getloadavg()]
    print(f"bench_demo: {' '.join(command[2:])} (caches: {'warm' if args.warm else 'empty'}; load {load})",
          flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(command, cwd=REPO, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        summary_path = work / "demo" / "demo.json"
        demo = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "command": "trigger demo" + (f" --jobs {args.jobs}" if args.jobs else "")
                   + (f" --only {' '.join(args.only)}" if args.only else ""),
        "caches": "warm" if args.warm else "empty", "exit_code": code, "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "goal_s": GOAL_S,
        "jobs": demo.get("jobs"), "examples": demo.get("examples", []),
        "conditions": {"cpus": os.cpu_count(), "load_average_at_start": load,
                       "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(args.out.with_suffix(".md").read_text())
    return code


def markdown(r: dict) -> str:
    lines = ["# `make demo` from empty caches", "",
             f"`{r['command']}` with {r['caches']} caches (`TRIGGER_CACHE` a fresh folder: no compiled simulator, "
             f"C simulation or Yosys result from earlier runs), after set-up: **{r['wall_s']:.0f} s** wall-clock, "
             f"{r['cpu_s']:.0f} CPU s (the demo and every tool it ran); goal {r['goal_s']} s. "
             f"Exit code {r['exit_code']}. {r['jobs']} example(s) at a time, each `trigger ci` "
             "(build, verify, report) in a process of its own.", "",
             "| example | status | wall (s) | CPU (s) |", "|---|---|---:|---:|"]
    for e in r["examples"]:
        lines.append(f"| {e['name']} | {e['status']} | {e['wall_s']:.0f} | {e['cpu_s']:.0f} |")
    c = r["conditions"]
    lines += ["", f"Conditions: {c['cpus']} CPUs, load average {', '.join(map(str, c['load_average_at_start']))} "
                  f"at the start and {', '.join(map(str, c['load_average_at_end']))} at the end (other work shares "
                  "the machine: wall-clock times are upper bounds; CPU seconds do not depend on the load).", "",
              "Regenerate: `.venv/bin/python scripts/bench_demo.py`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
