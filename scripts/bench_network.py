"""Benchmark of the network flow on the built-in jet tagger.

Measures the wall time of `build` (training included) and of `verify`, and the RTL
simulation throughput with Verilator and with Icarus as the vector count grows.
Writes benchmarks/network.json (machine) and benchmarks/network.md (people).

    .venv/bin/python scripts/bench_network.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer vectors (for a smoke run)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks"), help="where to write network.json/.md")
    args = parser.parse_args()

    from trigger.bundle import build_bundle
    from trigger.frontends import BuildOptions
    from trigger.verify import verify_bundle

    verilator_counts = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    icarus_counts = [10, 50] if args.quick else [20, 100, 300]
    work = Path(tempfile.mkdtemp(prefix="bench-network-"))
    bundle = work / "jet_tagger"
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "model": "jet_tagger"}

    t0 = time.perf_counter()
    build_bundle(ROOT / "models" / "jet_tagger", bundle, BuildOptions(vectors=max(verilator_counts)))
    results["build_s"] = round(time.perf_counter() - t0, 1)
    manifest = json.loads((bundle / "manifest.json").read_text())
    results["latency_cycles"] = manifest["latency_cycles"]

    runs = []
    for simulator, counts in (("verilator", verilator_counts), ("icarus", icarus_counts)):
        for n in counts:
            t0 = time.perf_counter()
            r = verify_bundle(bundle, simulator=simulator, vectors=n)
            wall = time.perf_counter() - t0
            runs.append({"simulator": simulator, "vectors": n, "verify_wall_s": round(wall, 1),
                         "rtl_build_s": r["timings"]["rtl_build_s"], "rtl_sim_s": r["timings"]["rtl_sim_s"],
                         "rtl_vectors_per_s": r["rtl_vectors_per_s"], "csim_build_s": r["timings"]["csim_build_s"],
                         "csim_s": r["timings"]["csim_s"],
                         "emulator_s": r["timings"]["emulator_s"], "mismatches": r["mismatches"],
                         "latency_cycles": r["latency_cycles"], "ii": r["ii"], "pass": r["pass"]})
            print(json.dumps(runs[-1]))
    results["verify"] = runs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "network.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    lines = ["# Network flow benchmark (jet tagger 16-64-32-32-5)", "",
             f"{results['machine']['cpus']} CPUs. Build (training, hls4ml conversion, RTL, "
             f"{max(verilator_counts)} vectors): {results['build_s']} s. RTL latency "
             f"{results['latency_cycles']} cycles.", "",
             "| simulator | vectors | verify wall s | RTL build s | RTL sim s | RTL vectors/s | C sim build s | "
             "C sim s | emulator s | mismatches |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['simulator']} | {r['vectors']} | {r['verify_wall_s']} | {r['rtl_build_s']} | "
                     f"{r['rtl_sim_s']} | {r['rtl_vectors_per_s']} | {r['csim_build_s']} | {r['csim_s']} | "
                     f"{r['emulator_s']} | {sum(r['mismatches'].values())} |")
    (out / "network.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
