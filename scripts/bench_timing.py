"""Benchmark: does every default build meet its clock? (issue 24)

Runs `trigger ci` (build, verify, report) with default settings on every built-in example (models/) and
every shared reference model (../shared/reference_models), each in a process of its own, and the Conv2D
jet-image tagger at 240 MHz with II 6 (``--conv2d``, on by default; ``--no-conv2d`` skips it). Per design:
the target clock, the RTL builder's worst estimated stage delay (what the default pipelining places
registers by), the critical path Yosys `sta` finds in the synthesised netlist with trigger's cell delays
(``trigger.synth.TIMING_MODEL``) and its slack, the latency in cycles and ns, the verification mismatches
and the exit code of `trigger ci` (1 when a check or the budget, clock included, fails). Every timing
figure is an estimate from trigger's cell-delay model, not a vendor timing report.

Usage: .venv/bin/python scripts/bench_timing.py [--only NAME ...] [--jobs N] [--vectors N] [--keep DIR]
Writes benchmarks/timing.json and benchmarks/timing.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference_models"
REFERENCE_MODELS = ["qkeras_3layer.json", "KERAS_3layer.json", "KERAS_conv1d_small.json", "two_layer_keras.onnx",
                    "three_layer_pytorch.onnx", "conv2d_small_keras.onnx", "unsw_nb15-mlp-w2a2.onnx"]
CONV2D = "jetTagger_Conv2D_Small_NoBatchNorm.json"
CONV2D_ARGS = ["--clock", f"{1000.0 / 240:.6f}", "--ii", "6"]  # 240 MHz, a new event every 6 clocks


def designs(conv2d: bool) -> list[dict]:
    out = [{"name": p.name, "source": p, "args": [], "what": "built-in example"}
           for p in sorted((REPO / "models").iterdir()) if (p / "trigger.yml").exists()]
    out += [{"name": name, "source": REFERENCE / name, "args": [], "what": "shared reference model"}
            for name in REFERENCE_MODELS if (REFERENCE / name).exists()]
    if conv2d and (REFERENCE / CONV2D).exists():
        out.append({"name": f"{CONV2D} (240 MHz, II 6)", "source": REFERENCE / CONV2D, "args": CONV2D_ARGS,
                    "what": "shared reference model, 240 MHz, II 6"})
    return out


def run_one(design: dict, work: Path, vectors: int, timeout: int, collect: bool = False) -> dict:
    """`trigger ci` on one design in a process of its own; the figures from its bundle. ``collect``: only read
    the bundle and log an earlier run left in ``work`` (the exit code from the log's last line)."""
    folder = work / design["name"].split(" ")[0].replace(".", "_")
    log = folder.with_suffix(".log")
    command = [sys.executable, "-m", "trigger.cli", "ci", str(design["source"]), "-o", str(folder),
               "--vectors", str(vectors), *design["args"]]
    row = {"design": design["name"], "what": design["what"], "command": " ".join(["trigger", *command[3:]])}
    if collect:
        text = log.read_text(errors="replace") if log.exists() else ""
        row["exit"] = 0 if "trigger ci: passed" in text else 1 if "trigger ci: FAILED" in text else None
        row["wall_s"] = None
        if row["exit"] is None:
            row["error"] = "not finished when the results were collected" if text else "not run"
            return row
        return _figures(row, folder, log)
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        try:
            proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)  # a timeout is not needed for wait4; checked below
            row["exit"] = os.waitstatus_to_exitcode(status)
            row["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
        except OSError as err:
            row["exit"], row["error"] = None, str(err)
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    if row["wall_s"] > timeout:
        row["note"] = f"took {row['wall_s']} s (over the {timeout} s asked for)"
    return _figures(row, folder, log)


def _figures(row: dict, folder: Path, log: Path) -> dict:
    """The row's figures from the bundle `trigger ci` wrote (manifest, verify.json, report.json)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        verify = json.loads((folder / "reports" / "verify.json").read_text())
        report = json.loads((folder / "reports" / "report.json").read_text())
    except (OSError, ValueError) as err:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        row["error"] = f"no complete bundle ({err.__class__.__name__}): " + " | ".join(tail)
        return row
    timing, rtl = report.get("timing") or {}, manifest["rtl"]
    stages = rtl.get("delay_ns_per_stage") or []
    clock = manifest["target"]["clock_period_ns"]
    row.update({
        "clock_ns": clock, "clock_mhz": manifest["target"]["clock_mhz"], "pipeline": rtl["pipeline"],
        "ii": manifest.get("ii", 1),
        "builder_worst_stage_ns": max(stages) if stages else None,
        "builder_stages_over_clock": sum(1 for s in stages if s > clock),
        "yosys_path_ns": timing.get("critical_path_ns"), "slack_ns": timing.get("slack_ns"),
        "critical_module": timing.get("module"), "fits": timing.get("fits"),
        "latency_cycles": report["latency"]["cycles"], "latency_ns": report["latency"]["ns"],
        "mismatches": sum(v for v in verify.get("mismatches", {}).values()),
        "vectors": verify.get("vectors"), "LUT": report["resources"].get("LUT"), "FF": report["resources"].get("FF"),
        "DSP": report["resources"].get("DSP"),
        "budget": "pass" if report["budget"]["pass"] else "FAIL: " + "; ".join(
            v.get("message") or f"{v['metric']} {v['value']} > {v['limit']}" for v in report["budget"]["violations"]),
    })
    return row


def write_outputs(result: dict, out: Path) -> None:
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# Timing at default settings: every stage within its clock?", "",
             "`trigger ci` with default settings (`pipeline: auto`: registers wherever a stage's estimated delay "
             "would exceed the clock period) on every built-in example and shared reference model. "
             "**Builder worst stage**: the RTL builder's estimate of the longest stage (what it places registers by). "
             "**Yosys path**: the latest register-to-register arrival Yosys `sta` finds in the `synth_xilinx` "
             "netlist with trigger's cell delays (" + result["timing_model"] + "). Both are estimates from "
             "trigger's cell-delay model, not vendor timing. Mismatches: emulator vs C simulation vs RTL "
             "simulation (and the stored vectors, the emulator library), summed.", "",
             "| design | clock (MHz) | II | builder worst stage (ns) | Yosys path (ns) | slack (ns) | latency (cycles / ns) "
             "| LUT | mismatches | budget (clock included) | ci exit | wall (s) |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|"]
    for r in result["designs"]:
        if "clock_ns" not in r:
            lines.append(f"| {r['design']} | | | | | | | | | {r.get('error', '')} | {r.get('exit')} | {r['wall_s']} |")
            continue
        lines.append(f"| {r['design']} | {r['clock_mhz']:g} | {r['ii']} | {r['builder_worst_stage_ns']} | "
                     f"{r['yosys_path_ns']} | {r['slack_ns']:+.3f} | {r['latency_cycles']} / {r['latency_ns']} | "
                     f"{r['LUT']} | {r['mismatches']} | {r['budget']} | {r['exit']} | {r['wall_s']} |")
    over = [r["design"] for r in result["designs"] if r.get("builder_stages_over_clock")]
    late = [r["design"] for r in result["designs"] if r.get("fits") is False]
    lines += ["", f"Designs with a builder stage over the clock: {', '.join(over) or 'none'}. "
                  f"Designs whose Yosys path misses the clock: {', '.join(late) or 'none'}.", "",
              (f"Collected from an earlier run's bundles and logs (`--collect`): designs it had not finished are "
               f"marked so; load average {result['load_start']} when collected." if result["collected"] else
               f"Conditions: {result['cpus']} CPUs shared with other work; load average {result['load_start']} at the "
               f"start and {result['load_end']} at the end; {result['wall_s']} s in all. "
               f"Wall-clock times are under that load."), "",
              *([f"Re-measured later with `--only {' '.join(result['rerun']['designs'])}` (load average "
                 f"{result['rerun']['load_start']} at its start): {result['rerun']['why']}.", ""]
                if result.get("rerun") else []),
              "Regenerate: `.venv/bin/python scripts/bench_timing.py`."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Default builds against their clocks (benchmarks/timing.*).")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only designs whose name starts with one of these")
    ap.add_argument("--jobs", type=int, default=2, help="designs at once (default 2)")
    ap.add_argument("--vectors", type=int, default=1000, help="random test vectors per design (default 1000)")
    ap.add_argument("--no-conv2d", action="store_true", help="skip the Conv2D tagger at 240 MHz, II 6")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds after which a design is noted as slow")
    ap.add_argument("--keep", type=Path, help="keep the bundles in this folder")
    ap.add_argument("--collect", type=Path, metavar="DIR",
                    help="run nothing: read the bundles and logs an earlier run left in DIR (its --keep folder)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "timing")
    args = ap.parse_args(argv)
    todo = designs(not args.no_conv2d)
    if args.only:
        todo = [d for d in todo if any(d["name"].startswith(n) for n in args.only)]
    if not todo:
        print("bench_timing: no design selected", file=sys.stderr)
        return 2
    work = Path(args.collect or args.keep or tempfile.mkdtemp(prefix="bench-timing-"))
    work.mkdir(parents=True, exist_ok=True)
    from trigger.synth import TIMING_MODEL

    load_start = [round(v, 2) for v in os.getloadavg()]
    t0 = time.perf_counter()
    # the largest (the Conv2D tagger) first, so that it overlaps the others
    todo.sort(key=lambda d: 0 if d["args"] else 1)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda d: run_one(d, work, args.vectors, args.timeout, bool(args.collect)), todo))
    for row in rows:
        print(f"bench_timing: {row['design']}: exit {row.get('exit')}, path {row.get('yosys_path_ns')} ns, "
              f"slack {row.get('slack_ns')}, latency {row.get('latency_cycles')}, mismatches {row.get('mismatches')}",
              flush=True)
    result = {"designs": rows, "timing_model": TIMING_MODEL, "cpus": os.cpu_count(), "load_start": load_start,
              "load_end": [round(v, 2) for v in os.getloadavg()], "wall_s": round(time.perf_counter() - t0, 1),
              "vectors": args.vectors, "work": str(work), "collected": bool(args.collect)}
    write_outputs(result, args.out)
    print(f"bench_timing: wrote {args.out.with_suffix('.md')} and .json")
    return 0 if all(r.get("exit") == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
