"""`trigger demo`: the whole flow (build, verify, report) on every built-in example.

Each example runs ``trigger ci`` in a process of its own, up to ``jobs`` at a time: much of
each flow is single-threaded (data generation, hls4ml's conversion, the compiles of the C and
RTL simulations, plotting), so on a 2-CPU machine two examples at once finish sooner than one
after the other. An example's output goes to ``<output>/<name>.log`` and is printed in one
block when it finishes, so concurrent examples never interleave; ``<output>/demo.json``
records each one's status, wall-clock and CPU seconds (scripts/bench_demo.py reads it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

# Started first, the examples that take longest (measured in benchmarks/demo.md): with two at a
# time, a long one started last would run alone at the end.
LONGEST_FIRST = ("anomaly_detector", "jet_tagger", "muon_pt_lut", "calo_conv2d", "deepsets_jet_tagger", "muon_pt_bdt")


def default_jobs() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def run_demo(examples: list[Path], output: Path, jobs: int | None = None) -> int:
    """Runs ``trigger ci`` on each example folder into ``output/<name>``; 0 when every one passed."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    examples = sorted(examples, key=lambda p: (rank.get(p.name, len(rank)), p.name))
    jobs = max(1, min(jobs or default_jobs(), len(examples) or 1))
    print(f"\n== {len(examples)} examples, {jobs} at a time: {', '.join(p.name for p in examples)} "
          f"(each one's output in {output}/<name>.log, printed when it finishes)", flush=True)
    t0 = time.perf_counter()
    results = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_example, example, output) for example in examples]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            _print_block(result)
    wall = time.perf_counter() - t0
    results.sort(key=lambda r: r["name"])
    failed = [r["name"] for r in results if r["status"] != "passed"]
    summary = {"examples": results, "jobs": jobs, "wall_s": round(wall, 1),
               "cpu_s": round(sum(r["cpu_s"] for r in results), 1), "cpus": os.cpu_count(),
               "passed": len(results) - len(failed)}
    (output / "demo.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\n== demo: {len(results) - len(failed)} of {len(results)} examples built, verified bit exact "
          f"and within budget in {wall:.0f} s ({summary['cpu_s']:.0f} CPU s); bundles and reports under {output}/")
    for name in failed:
        print(f"   FAILED: {name} (see {output / name}.log)", file=sys.stderr)
    return 1 if failed else 0


def _run_example(example: Path, output: Path) -> dict:
    """``trigger ci`` on one example in a child process; its status and times."""
    log = output / f"{example.name}.log"
    command = [sys.executable, "-m", "trigger.cli", "ci", str(example), "-o", str(output / example.name),
               "--sim", "verilator"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    print(f"== {example.name}: started", flush=True)
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    return {"name": example.name, "status": "passed" if code == 0 else "failed", "exit_code": code,
            "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "log": str(log)}


def _print_block(result: dict) -> None:
    """The example's log without progress-bar redraws (each line's last state), under one heading."""
    text = Path(result["log"]).read_text(errors="replace")
    lines = [line.split("\r")[-1].rstrip() for line in text.split("\n")]
    print(f"\n== {result['name']}: {result['status']} in {result['wall_s']:.0f} s ({result['cpu_s']:.0f} CPU s)")
    for line in lines:
        if line:
            print(f"   {line}")
    sys.stdout.flush()
