"""Benchmark: the emulator library (emulator/lib<name>.so, hls4mlEmulator::Model) of four designs.

For the QKeras reference tagger (qkeras_3layer.json), the muon table (models/muon_pt_lut), the BDT
(models/muon_pt_bdt) and a convolutional network (KERAS_conv1d_small.json), each bundle is built, its
library compiled with the bundle's Makefile (trigger.backends.emulator_lib, cached), and:

- checked: every stored vector through all four libraries loaded in ONE process (dlopen, the
  framework's loader shape), compared with the emulator;
- timed: the model created once, then prepare_input / predict / read_result per event
  (std::vector<std::int64_t> in through a pointer, std::vector<std::int64_t> out), EVENTS events
  cycling over the stored vectors; events per second of wall time inside the loop, and the
  harness's CPU seconds (the machine is shared: the load average is recorded before and after);
- leak-checked: the same loop under valgrind (--leak-check=full) over LEAK_EVENTS events (10^5 by
  default): clean means no definitely/indirectly/possibly lost bytes and no memory errors. Without
  valgrind, the library and harness are rebuilt with -fsanitize=address,leak instead.

Usage: .venv/bin/python scripts/bench_emulator_library.py [--events N] [--leak-events N] [--keep DIR]
Writes benchmarks/emulator_library.json and benchmarks/emulator_library.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
REFERENCE = REPO.parent / "shared" / "reference_models"
DESIGNS = {  # name -> (source, build arguments)
    "qkeras_3layer": (REFERENCE / "qkeras_3layer.json", []),
    "muon_pt_lut": (REPO / "models" / "muon_pt_lut", []),
    "muon_pt_bdt": (REPO / "models" / "muon_pt_bdt", []),
    "KERAS_conv1d_small": (REFERENCE / "KERAS_conv1d_small.json", []),
}
VECTORS = 1000


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def valgrind_check(lib: Path, raw: np.ndarray, n_out: int, events: int, work: Path) -> dict:
    from trigger.backends.emulator_lib import harness

    rows = work / "leak_in.bin"
    np.ascontiguousarray(raw, dtype="<i8").tofile(rows)
    cmd = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
           "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
           str(harness(work)), "bench", str(lib), str(rows), str(raw.shape[1]), str(n_out), str(events)]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0

    def figure(label: str) -> int:
        m = re.search(rf"{label}: ([\d,]+) bytes", run.stderr)
        return int(m.group(1).replace(",", "")) if m else 0

    errors = re.search(r"ERROR SUMMARY: (\d+) errors", run.stderr)
    result = {"tool": "valgrind " + subprocess.run(["valgrind", "--version"], capture_output=True,
                                                   text=True).stdout.strip(),
              "events": events, "exit": run.returncode, "seconds": round(seconds, 1),
              "definitely_lost_bytes": figure("definitely lost"), "indirectly_lost_bytes": figure("indirectly lost"),
              "possibly_lost_bytes": figure("possibly lost"), "still_reachable_bytes": figure("still reachable"),
              "errors": int(errors.group(1)) if errors else None}
    result["clean"] = (run.returncode == 0 and result["errors"] == 0 and not result["definitely_lost_bytes"]
                       and not result["indirectly_lost_bytes"] and not result["possibly_lost_bytes"])
    return result


def asan_check(bundle: Path, manifest: dict, raw: np.ndarray, n_out: int, events: int, work: Path) -> dict:
    """Library and harness rebuilt with -fsanitize=address,leak; LeakSanitizer reports at exit."""
    from trigger.templates import render
    from trigger.toolchain import ap_types_include

    flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,leak"]
    em = manifest["emulator"]
    hls = bundle / "hls"
    ap_types = hls / "firmware" / "ap_types"
    lib = work / em["library"]
    subprocess.run(["make", "-s", "-C", str(bundle / "emulator"), f"OUT={lib}", f"HLS={hls}",
                    f"AP_TYPES={ap_types if ap_types.is_dir() else ap_types_include()}", f"CXXFLAGS={' '.join(flags)}"],
                   check=True, capture_output=True)
    (work / "harness.cpp").write_text(render("emulator/harness.cpp.j2"))
    (work / "emulator.h").write_text(render("emulator/emulator.h.j2"))
    subprocess.run(["g++", "-std=c++17", *flags, f"-I{work}", str(work / "harness.cpp"), "-o", str(work / "harness_asan"),
                    "-ldl"], check=True, capture_output=True)
    rows = work / "leak_in.bin"
    np.ascontiguousarray(raw, dtype="<i8").tofile(rows)
    run = subprocess.run([str(work / "harness_asan"), "bench", str(lib), str(rows), str(raw.shape[1]), str(n_out),
                          str(events)], capture_output=True, text=True, env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"})
    return {"tool": "g++ -fsanitize=address,leak", "events": events, "exit": run.returncode,
            "clean": run.returncode == 0 and "ERROR" not in run.stderr, "report": run.stderr[-2000:]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Events per second and a leak check of the emulator libraries.")
    ap.add_argument("--events", type=int, default=200_000, help="events timed per design (default 200000)")
    ap.add_argument("--leak-events", type=int, default=100_000, help="events under the leak checker (default 10^5)")
    ap.add_argument("--keep", type=Path, help="build the bundles in (and keep) this folder")
    ap.add_argument("--only", nargs="+", choices=sorted(DESIGNS), help="only these designs")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "emulator_library",
                    help="output path without suffix (default benchmarks/emulator_library)")
    args = ap.parse_args(argv)

    from trigger.backends.emulator_lib import bench, build_library, run_libraries
    from trigger.bundle import load_manifest
    from trigger.cli import main as trigger
    from trigger.ir.model import FirmwareModel, emulate

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-emulator-library-"))
    work.mkdir(parents=True, exist_ok=True)
    names = args.only or list(DESIGNS)
    load_before = [round(v, 2) for v in os.getloadavg()]
    print(f"bench_emulator_library: {', '.join(names)}; load {load_before}", flush=True)
    designs, jobs = {}, []
    for name in names:
        source, extra = DESIGNS[name]
        bundle = work / name
        if not (bundle / "manifest.json").exists() or "emulator" not in load_manifest(bundle):
            if trigger(["build", str(source), "-o", str(bundle), "--vectors", str(VECTORS), *extra]) != 0:
                raise SystemExit(f"build of {name} failed")
        manifest = load_manifest(bundle)
        lib, timings = build_library(bundle, manifest)
        model = FirmwareModel.load(bundle)
        raw = np.load(bundle / "vectors" / "inputs.npy")
        designs[name] = {"bundle": bundle, "manifest": manifest, "lib": lib, "model": model, "raw": raw,
                         "row": {"design": name, "kind": manifest["kind"], "inputs": model.input.n,
                                 "outputs": model.output.n, "ops": len(model.ops), "library": manifest["emulator"]["library"],
                                 "library_build_s": timings["library_build_s"], "library_cached": timings["library_cached"],
                                 "library_bytes": lib.stat().st_size}}
        jobs.append((lib, raw, model.output.n))
        state = "cached" if timings["library_cached"] else f"built in {timings['library_build_s']} s"
        print(f"  {name}: {lib.name} ({state})", flush=True)

    # every stored vector, all libraries in one process
    outputs = run_libraries(jobs, work / "run")
    for name, got in zip(names, outputs):
        d = designs[name]
        expected = emulate(d["model"], d["raw"]).outputs
        d["row"]["vectors"] = int(len(d["raw"]))
        d["row"]["mismatches"] = int(np.any(expected != got, axis=1).sum())
        print(f"  {name}: {len(d['raw'])} vectors, {d['row']['mismatches']} mismatches", flush=True)

    for name in names:
        d = designs[name]
        cpu0 = child_cpu()
        result = bench(d["lib"], d["raw"], d["model"].output.n, args.events, work / "bench")
        cpu = child_cpu() - cpu0
        d["row"].update({"events": result["events"], "seconds": round(result["seconds"], 4),
                         "events_per_s": round(result["events"] / result["seconds"], 1),
                         "us_per_event": round(1e6 * result["seconds"] / result["events"], 3),
                         "harness_cpu_s": round(cpu, 3),
                         # the machine is shared: per CPU second of the harness (start-up and input reading included)
                         "events_per_cpu_s": round(result["events"] / max(cpu, 1e-9), 1)})
        print(f"  {name}: {d['row']['events_per_s']:.0f} events/s ({d['row']['us_per_event']} us/event)", flush=True)

    use_valgrind = shutil.which("valgrind") is not None
    for name in names:
        d = designs[name]
        leak_work = work / "leak" / name
        leak_work.mkdir(parents=True, exist_ok=True)
        if use_valgrind:
            leak = valgrind_check(d["lib"], d["raw"], d["model"].output.n, args.leak_events, leak_work)
        else:
            leak = asan_check(d["bundle"], d["manifest"], d["raw"], d["model"].output.n, args.leak_events, leak_work)
        d["row"]["leak_check"] = leak
        print(f"  {name}: leak check over {args.leak_events} events: {'clean' if leak['clean'] else 'NOT CLEAN'} "
              f"({leak['tool']})", flush=True)

    load_after = [round(v, 2) for v in os.getloadavg()]
    result = {"designs": [designs[n]["row"] for n in names], "events": args.events, "leak_events": args.leak_events,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "compiler": subprocess.run(["g++", "--version"], capture_output=True,
                                                     text=True).stdout.splitlines()[0],
                          "load_average_before": load_before, "load_average_after": load_after},
              "all_exact": all(designs[n]["row"]["mismatches"] == 0 for n in names),
              "all_clean": all(designs[n]["row"]["leak_check"]["clean"] for n in names)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(f"written {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    return 0 if result["all_exact"] and result["all_clean"] else 1


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# Emulator library: throughput and leak check", "",
             "`scripts/bench_emulator_library.py`: each design's `emulator/lib<name>.so` (hls4mlEmulator::Model), built "
             "with the bundle's Makefile (g++ -O2), loaded with dlopen by trigger's loader-shaped harness. The model is "
             f"created once; each event is prepare_input / predict / read_result (raw `std::vector<std::int64_t>` in "
             f"through a pointer and out). {r['events']} events per design, cycling over the stored vectors.", "",
             f"Machine: {m['cpus']} CPUs, {m['platform']}, {m['compiler']}. Load average (1, 5, 15 min) "
             f"{m['load_average_before']} before, {m['load_average_after']} after: the machine is shared, so the "
             "wall-clock rates are lower bounds; events per CPU second (the harness process's user + system time, "
             "start-up included) is the steadier figure.", "",
             "| design | kind | inputs | outputs | vectors | mismatches vs emulator | events/s (wall) | us/event (wall) "
             "| events per CPU s | leak check |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for d in r["designs"]:
        leak = d["leak_check"]
        state = "clean" if leak["clean"] else "NOT CLEAN"
        if "definitely_lost_bytes" in leak:
            state += (f" ({leak['definitely_lost_bytes']}/{leak['indirectly_lost_bytes']}/{leak['possibly_lost_bytes']} B "
                      f"lost, {leak['errors']} errors)")
        lines.append(f"| {d['design']} | {d['kind']} | {d['inputs']} | {d['outputs']} | {d['vectors']} | "
                     f"{d['mismatches']} | {d['events_per_s']:,.0f} | {d['us_per_event']} | {d['events_per_cpu_s']:,.0f} "
                     f"| {state} |")
    tool = r["designs"][0]["leak_check"]["tool"] if r["designs"] else ""
    lines += ["", f"Leak check: {tool}, `--leak-check=full`, over {r['leak_events']} events per design (the same loop); "
              "clean = no definitely, indirectly or possibly lost bytes and no memory errors (what remains reachable "
              "at exit is the C++ runtime's and dlopen's own).", "",
              "The vectors column: the bundle's stored vectors, run through all four libraries loaded into one process "
              "(each model in its own C++ namespace), compared integer for integer with the emulator.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
