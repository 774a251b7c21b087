"""Benchmark: the resource-versus-II curve of the reference QKeras jet tagger (resource sharing, rtl.ii).

For II = 1, 2, 3, 6, 9 the tagger (../shared/reference_models/qkeras_3layer.*) is built with
``--ii N``, ``--pipeline auto`` (registers where a stage would miss the 5 ns clock) and 10,000
stored vectors, verified 3-way (emulator == hls4ml C simulation with the matching ReuseFactor ==
RTL under cocotb/Verilator, driven exactly N clocks apart, plus the too-early input that must be
refused), and synthesised with Yosys (resources, and the longest path against the clock).
Writes benchmarks/ii_curve.json, .md and .png (trigger.ii_curve), with wall and CPU seconds.

Then the Conv2D jet-image tagger (jetTagger_Conv2D_Small_NoBatchNorm, float Keras, post-training
quantized) at 240 MHz with ``rtl.ii: auto`` (floor(240 / 40) = 6) and a budget of 10 % of the
xcvu13p's LUTs: built, verified 3-way on 2,000 vectors, reported (Yosys) against the budget.
Writes benchmarks/ii_conv2d.json and .md.

Usage: .venv/bin/python scripts/bench_ii.py [--vectors N] [--ii 1,2,3,6,9] [--work DIR] [--skip-curve]
       [--skip-conv2d] [--pipeline auto|layer|N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trigger.ii_curve import ii_curve, markdown, parse_iis  # noqa: E402

MODELS = REPO.parent / "shared" / "reference_models"
MODEL = MODELS / "qkeras_3layer.json"
CONV2D = "jetTagger_Conv2D_Small_NoBatchNorm"
CONV2D_VECTORS = 2000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=10_000)
    parser.add_argument("--ii", default="1,2,3,6,9")
    parser.add_argument("--work", default=str(REPO / "build" / "bench_ii"))
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--skip-conv2d", action="store_true")
    parser.add_argument("--pipeline", default="auto", help="rtl pipeline of the curve's points (default auto: every "
                                                           "stage fits the clock, so the latencies in ns are real)")
    args = parser.parse_args()
    if not MODEL.exists():
        print(f"reference model not found: {MODEL}", file=sys.stderr)
        return 2
    work = Path(args.work)
    ok = True
    if not args.skip_conv2d:
        ok = conv2d(work / "conv2d") and ok
    if not args.skip_curve:
        ok = curve(args, work / "curve") and ok
    return 0 if ok else 1


def conv2d(work: Path) -> bool:
    """The Conv2D tagger at 240 MHz, ii auto, LUT budget 10 %: build, verify, report. Registers placed by
    `pipeline: auto` so that each stage's estimated path fits the 4.17 ns clock (Yosys sta's path recorded)."""
    import yaml

    from trigger.bundle import build_bundle
    from trigger.report import build_report
    from trigger.verify import verify_bundle

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = {"kind": "network", "name": CONV2D,
              "model": {"file": str(MODELS / f"{CONV2D}.json"), "weights": str(MODELS / f"{CONV2D}_weights.h5")},
              "target": {"clock_mhz": 240}, "rtl": {"ii": "auto", "pipeline": "auto"}, "verify": {"vectors": CONV2D_VECTORS},
              "budget": {"LUT": "10%"}}
    (work / "trigger.yml").write_text(yaml.safe_dump(config))
    t0, cpu0 = time.perf_counter(), _cpu()
    bundle = build_bundle(work, work / "bundle")
    verified = verify_bundle(bundle)
    report = build_report(bundle)
    res = report["resources"]
    rtl = json.loads((bundle / "manifest.json").read_text())["rtl"]
    estimated = rtl.get("delay_ns_per_stage") or []
    allowed = rtl.get("max_delay_ns_per_stage")
    result = {"model": CONV2D, "clock_mhz": 240, "ii": verified["ii"], "vectors": verified["vectors"],
              "mismatches": verified["mismatches"], "bit_exact": verified["pass"],
              "latency_cycles": report["latency"]["cycles"], "latency_ns": report["latency"]["ns"],
              "LUT": res.get("LUT"), "FF": res.get("FF"), "DSP": res.get("DSP"), "BRAM": res.get("BRAM"),
              "LUT_percent_of_part": res.get("percent", {}).get("LUT"), "logic_levels": res.get("logic_levels"),
              "critical_path_ns": res.get("critical_path_ns"), "timing_model": res.get("timing_model"),
              "fits_clock_estimate": res.get("fits_clock_estimate"), "budget": report["budget"],
              # the builder's estimate per stage against the budget pipeline auto places registers by
              "estimated_ns_max": max(estimated, default=None), "ns_allowed": allowed,
              "stages_over_budget_estimated": sum(1 for v in estimated if allowed is not None and v > allowed),
              "stages": len(estimated),
              "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_cpu() - cpu0, 1)}
    out = REPO / "benchmarks"
    out.mkdir(exist_ok=True)
    (out / "ii_conv2d.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (out / "ii_conv2d.md").write_text(
        f"# {CONV2D} at 240 MHz, ii auto, pipeline auto\n\n| II | vectors | bit exact | latency | LUT (% of xcvu13p) | "
        f"FF | DSP | BRAM | longest path, Yosys sta (fits 4.17 ns) | logic levels, Yosys ltp | "
        f"path per stage, builder's estimate max / allowed | LUT budget 10 % |\n"
        f"|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {result['ii']} | {result['vectors']} | "
        f"{'yes' if result['bit_exact'] else 'NO'} | {result['latency_cycles']} cycles = {result['latency_ns']} ns | "
        f"{result['LUT']} ({result['LUT_percent_of_part']} %) | {result['FF']} | {result['DSP']} | {result['BRAM']} | "
        f"{result['critical_path_ns']} ns ({'yes' if result['fits_clock_estimate'] else 'no'}) | "
        f"{result['logic_levels']} | {result['estimated_ns_max']} / {round(allowed or 0, 3)} ns "
        f"({result['stages_over_budget_estimated']} of {result['stages']} stages over) | "
        f"{'pass' if report['budget']['pass'] else 'FAIL'} |\n")
    print(f"conv2d: II {result['ii']}, {result['vectors']} vectors bit exact {result['bit_exact']}, latency "
          f"{result['latency_ns']} ns, LUT {result['LUT']} ({result['LUT_percent_of_part']} % of the part); "
          f"wrote benchmarks/ii_conv2d.json, .md", flush=True)
    return result["bit_exact"] and report["budget"]["pass"] and result["ii"] == 6 and bool(result["fits_clock_estimate"])


def curve(args, work: Path) -> bool:
    shutil.rmtree(work, ignore_errors=True)
    t0, cpu0 = time.perf_counter(), _cpu()
    result = ii_curve(MODEL, work, parse_iis(args.ii), vectors=args.vectors, pipeline=args.pipeline)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["cpu_s"] = round(_cpu() - cpu0, 1)
    out = REPO / "benchmarks"
    out.mkdir(exist_ok=True)
    result["source"] = "../shared/reference_models/qkeras_3layer.json"
    (out / "ii_curve.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (out / "ii_curve.md").write_text(markdown(result))  # the source named relative to the repository
    if (work / "ii_curve.png").exists():
        shutil.copy(work / "ii_curve.png", out / "ii_curve.png")
    print(f"wrote benchmarks/ii_curve.json, .md, .png ({result['wall_s']} s wall, {result['cpu_s']} s CPU)")
    return all(p["bit_exact"] and p["ii_measured"] == p["ii"] and p["fits_clock"] for p in result["points"])


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


if __name__ == "__main__":
    sys.exit(main())
