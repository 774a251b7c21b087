"""How long the test suite takes on a fresh clone, and where its CPU goes: benchmarks/suite.{json,md}.

CI runs `make test` on a fresh clone of main with an empty cache; this does the same after set-up: it clones
the committed HEAD beside ../shared, links this checkout's .venv, and runs the README's test command (and
`make test-fast`'s) with an empty $TRIGGER_CACHE, timing the wall clock, the CPU of every process and the load
average. Every compiler, simulator and synthesis run is timed on its own through a wrapper first on PATH (a
shell script that runs the real tool and reads its CPU with the shell's `times`), attributed to the test that
started it ($PYTEST_CURRENT_TEST): the table says which tests and which tools the minutes go to.

    .venv/bin/python scripts/bench_suite.py            # both runs (~20 min on 2 cores)
    .venv/bin/python scripts/bench_suite.py --fast     # make test-fast only
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks"
TOOLS = ("g++", "gcc", "c++", "cc", "make", "yosys", "iverilog", "vvp")
WRAPPER = r"""#!/usr/bin/env bash
# Runs the real tool and appends "tool<TAB>cpu seconds<TAB>test" to $BENCH_TOOL_LOG (scripts/bench_suite.py).
name=$(basename "$0")
PATH="${PATH#*:}" # the rest of PATH: the real tool
if [ -n "$BENCH_TOOL_INSIDE" ]; then exec "$name" "$@"; fi # a tool run by a timed tool is counted in it
export BENCH_TOOL_INSIDE=1
"$name" "$@"
rc=$?
t=$(mktemp)
times > "$t" # in this shell: its own times, then its children's (the tool's)
printf '%s\t%s\t%s\n' "$name" "$(tail -n 1 "$t")" "${PYTEST_CURRENT_TEST:-}" >> "$BENCH_TOOL_LOG"
rm -f "$t"
exit $rc
"""
TEST_COMMANDS = {
    "test": ["-m", "pytest", "-n", "auto", "--dist", "worksteal", "-m", "not bench"],
    "test-fast": ["-m", "pytest", "-n", "auto", "--dist", "worksteal", "-m", "not slow and not bench"],
}


def seconds_of(text: str) -> float:
    """bash `times` prints e.g. 1m2.345s."""
    m = re.fullmatch(r"(\d+)m([\d.]+)s", text.strip())
    return int(m.group(1)) * 60 + float(m.group(2)) if m else 0.0


def fresh_clone(work: Path) -> Path:
    """HEAD cloned as work/main with ../shared beside it and this checkout's set-up venv."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work / "main")], check=True)
    (work / "shared").symlink_to((ROOT.parent / "shared").resolve())
    (work / "main" / ".venv").symlink_to((ROOT / ".venv").resolve())
    return work / "main"


def run_suite(kind: str, clone: Path, work: Path) -> dict:
    wrappers = work / f"wrappers-{kind}"
    wrappers.mkdir()
    for tool in TOOLS:
        path = wrappers / tool
        path.write_text(WRAPPER)
        path.chmod(0o755)
    log = work / f"tools-{kind}.log"
    env = dict(os.environ, PATH=f"{wrappers}:{os.environ['PATH']}", BENCH_TOOL_LOG=str(log),
               TRIGGER_CACHE=str(work / f"cache-{kind}"), PYTHONPATH=str(clone))
    env.pop("TRIGGER_MAX_LIBRARY_WEIGHTS", None)
    loads, done = [], threading.Event()

    def sample() -> None:
        while not done.wait(10):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    before = os.times()
    start = time.perf_counter()
    run = subprocess.run([str(clone / ".venv" / "bin" / "python"), *TEST_COMMANDS[kind], "-q", "-p", "no:cacheprovider",
                          "--durations=0"], cwd=clone, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = os.times()
    done.set()
    (work / f"pytest-{kind}.log").write_text(run.stdout + run.stderr)
    summary = next((line for line in reversed(run.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "")
    per_test = collections.Counter()
    for line in run.stdout.splitlines():
        m = re.match(r"([\d.]+)s (call|setup|teardown)\s+(\S.*)$", line.strip())
        if m:
            per_test[m.group(3)] += float(m.group(1))
    tool_cpu, tool_runs, tool_by_test = collections.Counter(), collections.Counter(), collections.Counter()
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        user, system = parts[1].split()
        cpu = seconds_of(user) + seconds_of(system)
        tool_cpu[parts[0]] += cpu
        tool_runs[parts[0]] += 1
        tool_by_test[re.sub(r" \((call|setup|teardown)\)$", "", parts[2])] += cpu
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"command": " ".join(["python", *TEST_COMMANDS[kind]]), "exit_code": run.returncode, "summary": summary,
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cores_busy": round(cpu / wall, 2) if wall else None,
            "load_average_mean": round(sum(loads) / len(loads), 2) if loads else None,
            "load_average_max": round(max(loads), 2) if loads else None,
            "tools": {t: {"runs": tool_runs[t], "cpu_s": round(tool_cpu[t], 1)} for t in sorted(tool_cpu)},
            "tools_cpu_s": round(sum(tool_cpu.values()), 1),
            "slowest": [{"test": t, "wall_s": round(s, 2), "tool_cpu_s": round(tool_by_test[t], 2)}
                        for t, s in per_test.most_common(40)]}


def markdown(result: dict) -> str:
    lines = ["# Test suite time on a fresh clone (scripts/bench_suite.py)", "",
             f"Commit {result['commit']}, {result['cores']} cores, empty cache, after set-up; "
             f"started {result['started']}. CPU: every process of the run (user + system).", ""]
    for kind, run in result["runs"].items():
        lines += [f"## make {kind}", "", f"`{run['command']}`: {run['summary'] or 'no summary'} "
                  f"(exit {run['exit_code']})", "",
                  f"- wall {run['wall_s'] / 60:.1f} min ({run['wall_s']} s), CPU {run['cpu_s'] / 60:.1f} min "
                  f"({run['cores_busy']} cores busy on average)",
                  f"- load average while it ran: mean {run['load_average_mean']}, max {run['load_average_max']}",
                  f"- external tools: {run['tools_cpu_s']} CPU-s of it: " +
                  ", ".join(f"{t} {v['cpu_s']} s in {v['runs']} runs" for t, v in run["tools"].items()), "",
                  "| test (setup + call + teardown) | wall s | tools' CPU s |", "|---|---:|---:|"]
        lines += [f"| `{row['test']}` | {row['wall_s']} | {row['tool_cpu_s']} |" for row in run["slowest"][:25]]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="only make test-fast's selection")
    parser.add_argument("--keep", action="store_true", help="keep the clone, caches and logs (printed)")
    args = parser.parse_args(argv)
    if not (ROOT / ".venv" / "bin" / "python").exists():
        print("bench_suite: no .venv: run `make setup` first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    try:
        clone = fresh_clone(work)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                                text=True).stdout.strip()
        result = {"commit": commit, "cores": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "runs": {}}
        for kind in (["test-fast"] if args.fast else ["test", "test-fast"]):
            print(f"bench_suite: make {kind} on a fresh clone of {commit}...", file=sys.stderr, flush=True)
            result["runs"][kind] = run_suite(kind, clone, work)
            run = result["runs"][kind]
            print(f"bench_suite: {kind}: {run['summary']} in {run['wall_s']} s, {run['cpu_s']} CPU-s, "
                  f"load {run['load_average_mean']}", file=sys.stderr, flush=True)
        name = "suite_fast" if args.fast else "suite"
        OUT.mkdir(exist_ok=True)
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        (OUT / f"{name}.md").write_text(markdown(result))
        print(f"bench_suite: wrote benchmarks/{name}.json and .md", file=sys.stderr)
        return 0 if all(r["exit_code"] == 0 for r in result["runs"].values()) else 1
    finally:
        if args.keep:
            print(f"bench_suite: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
