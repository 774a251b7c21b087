"""Acceptance run of the built-in anomaly detector (models/anomaly_detector): build with 100,000 stored
vectors, verify 3-way (+ the QKeras model, + the C++ library), report (Yosys), and collect the numbers:
mismatch counts, latency in cycles and ns at the example's clock, resources, the rate threshold and
the signal efficiencies float vs firmware (trigger.anomaly's section), firmware == QKeras counts.
Writes benchmarks/anomaly_detector.json and .md. Physics and counts do not depend on the machine;
wall times do (the load average is recorded).

    .venv/bin/python scripts/bench_anomaly.py [--vectors N] [--bundle DIR]   # --bundle: reuse a built bundle
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIGGER = [sys.executable, "-m", "trigger.cli"]


def run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([*TRIGGER, *args], check=True, cwd=ROOT)
    return round(time.perf_counter() - t0, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--bundle", type=Path, help="a bundle of models/anomaly_detector already built and verified")
    args = parser.parse_args()
    load = os.getloadavg()
    timings = {}
    with tempfile.TemporaryDirectory(prefix="bench-anomaly-") as work:
        bundle = args.bundle or Path(work) / "anomaly_detector"
        if args.bundle is None:
            timings["build_s"] = run(["build", "models/anomaly_detector", "-o", str(bundle), "--vectors",
                                      str(args.vectors)])
            timings["verify_s"] = run(["verify", str(bundle)])
        if not (bundle / "reports" / "report.json").exists():
            timings["report_s"] = run(["report", str(bundle)])
        verify = json.loads((bundle / "reports" / "verify.json").read_text())
        report = json.loads((bundle / "reports" / "report.json").read_text())
        anomaly = json.loads((bundle / "reports" / "anomaly.json").read_text())
        anomaly_md = (bundle / "reports" / "anomaly.md").read_text()
        manifest = json.loads((bundle / "manifest.json").read_text())
    result = {"vectors": verify["vectors"], "mismatches": verify["mismatches"], "bit_exact": verify["pass"],
              "source_model": {k: verify["source_model"][k] for k in ("framework", "exact", "equal", "mismatches")},
              "latency_cycles": manifest["latency_cycles"], "clock_mhz": manifest["target"]["clock_mhz"],
              "latency_ns": round(manifest["latency_cycles"] * manifest["target"]["clock_period_ns"], 3),
              "resources": {k: v for k, v in (report.get("resources") or {}).items() if k not in ("modules", "cells", "settings")},
              "ops": [op["kind"] for op in manifest["ops"]], "physics": anomaly, "seconds": timings,
              "load_average": [round(v, 2) for v in load]}
    (ROOT / "benchmarks" / "anomaly_detector.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    counts = ", ".join(f"{k} {v}" for k, v in verify["mismatches"].items())
    res = report.get("resources") or {}
    lines = ["# Built-in anomaly detector (models/anomaly_detector)", "",
             f"Written by `scripts/bench_anomaly.py`; load average at start {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}.",
             "", f"- Verified on {verify['vectors']} vectors: {counts}.",
             f"- QKeras model vs firmware: {verify['source_model']['equal']} equal, "
             f"{verify['source_model']['mismatches']} mismatches (exact: {verify['source_model']['exact']}).",
             f"- Latency {result['latency_cycles']} cycles = {result['latency_ns']} ns at {result['clock_mhz']} MHz "
             f"(Yosys sta estimate of the longest path: {(report.get('resources') or {}).get('critical_path_ns')} ns).",
             f"- Resources (Yosys): LUT {res.get('LUT')}, FF {res.get('FF')}, DSP {res.get('DSP')}, "
             f"BRAM36 {res.get('BRAM36', res.get('BRAM'))}.",
             f"- Ops: {', '.join(result['ops'])}.", f"- Seconds: {timings or 'bundle reused'}.", "",
             anomaly_md.replace("# Anomaly detection", "## Physics: anomaly detection", 1)]
    (ROOT / "benchmarks" / "anomaly_detector.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:9]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
