"""Benchmark: calibrate trigger's timing estimate on published post-route timing (issue 24).

For each design whose RTL trigger can regenerate or closely reproduce and for which a paper or repository
might publish post-route timing (Fmax, WNS, or an achieved clock with a latency), the table holds: the source
looked at (paper/repository and table), the published figure when one could be read (None otherwise, with why),
and trigger's two estimates of the same or closest design: the RTL builder's worst stage (what pipeline auto
places registers by) and Yosys ``sta`` over the ``synth_xilinx`` netlist with trigger's cell delays
(``trigger.synth.TIMING_MODEL``). The error per design is (estimate - published) / published, only where a
published figure exists: no figure is invented or read off a plot.

A second table is not a calibration: how far the builder's estimate is from Yosys sta on the designs of
``benchmarks/timing.json`` (the two estimators of one cell-delay model against each other).

Usage: .venv/bin/python scripts/bench_timing_calibration.py [--measure] [--out benchmarks/timing_calibration]
``--measure`` regenerates the reference networks (hls4ml conversion, pipeline auto at their 200 MHz clock) and
runs Yosys on them; without it the figures are taken from benchmarks/timing.json where it has them.
Writes benchmarks/timing_calibration.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
REFERENCE = REPO.parent / "shared" / "reference_models"
PART = "xcvu13p-flga2577-2-e"
CLOCK_NS = 5.0  # the reference networks' target clock (200 MHz), as `trigger build` uses it

# What was looked for and where (searched in December 2026 with the project's search tools: the stored text of the
# papers' web pages, the repositories' files). ``published_ns`` stays None unless the figure was read in the source.
PUBLISHED = [
    {"design": "KERAS_3layer.json", "what": "hls4ml jet tagger 16-64-32-32-5 (the network of the hls4ml paper)",
     "source": "Duarte et al., 'Fast inference of deep neural networks in FPGAs for particle physics', "
               "JINST 13 (2018) P07027, arXiv:1804.06913 (results at a 200 MHz target, Vivado HLS)",
     "published_ns": None,
     "why_none": "the stored page text (deepai.org copy) gives the introduction only; no post-route timing figure "
                 "for this network could be read",
     "differs": "hls4ml's HLS C++ through Vivado HLS (not trigger's RTL), Kintex UltraScale part"},
    {"design": "qkeras_3layer.json", "what": "QKeras jet tagger 16-64-32-32-5 (6-bit weights, quantized_relu(6))",
     "source": "Coelho et al., 'Automatic heterogeneous quantization of deep neural networks for low-latency "
               "inference on the edge for particle detectors', Nat. Mach. Intell. 3 (2021) 675, arXiv:2006.10159",
     "published_ns": None,
     "why_none": "no stored text of the paper's result tables was found",
     "differs": "hls4ml HLS (Vivado HLS + logic synthesis), a VU9P part"},
    {"design": "da4ml RTL, HGQ jet taggers (OpenML data), 5 ns and 1 ns targets",
     "what": "16-64-32-32-5 HGQ networks, da4ml's own Verilog (trigger regenerates da4ml's RTL for a network it "
             "is given: scripts/bench_da4ml.py)",
     "source": "Sun et al., 'da4ml: Distributed Arithmetic for Real-time Neural Networks on FPGAs', ACM TRETS, "
               "doi:10.1145/3777387, arXiv:2507.04535, Tables 10 and 11 (Fmax(MHz) from Vivado 2023.2 out-of-context "
               "place and route on xcvu13p-flga2577-2-e, per calad0i/da4ml-ae readme.md)",
     "published_ns": None,
     "why_none": "the stored text of arXiv:2507.04535v1 gives the opening sections only; the table values could not "
                 "be read. The models (calad0i/da4ml-ae jsc/openml/*.h5) are HGQ 1 files, which trigger does not read",
     "differs": "HGQ per-weight bit widths (not reproducible from a QKeras or HGQ2 file here); Vivado place and route"},
    {"design": "da4ml RTL, CERNBox high-level-feature jet tagger, 1 ns target",
     "what": "HGQ jet tagger on the CERNBox data set, da4ml's Verilog",
     "source": "Sun et al., da4ml (as above), Table 13 (calad0i/da4ml-ae readme.md: `da4ml report ... 'Fmax(MHz)'`)",
     "published_ns": None,
     "why_none": "table values not readable in the stored text (see above); the models are binary .keras files in "
                 "calad0i/da4ml-ae, not fetched",
     "differs": "as above"},
    {"design": "HGQ jet taggers", "what": "16-64-32-32-5 with HGQ bit widths, hls4ml HLS",
     "source": "Sun et al., 'Gradient-based Automatic Mixed Precision Quantization for Neural Networks On-Chip', "
               "arXiv:2405.00645",
     "published_ns": None,
     "why_none": "no stored text of the paper's result tables was found",
     "differs": "hls4ml HLS, Vivado"},
]


def measure(name: str, work: Path) -> dict:
    """trigger's estimates of a reference network: builder worst stage and Yosys sta at pipeline auto, 200 MHz."""
    from trigger.backends.rtl import write_rtl
    from trigger.frontends.keras import load_model
    from trigger.frontends.network import convert
    from trigger.synth import synthesize

    loaded = load_model(REFERENCE / name)
    _, model = convert(loaded, {"hls": {"backend": "Vitis"}}, output_dir=work / f"{name}_hls")
    design = write_rtl(model, work / f"{name}_rtl", top="trigger_top", pipeline="auto", clock_period_ns=CLOCK_NS)
    t0 = time.perf_counter()
    res = synthesize(design.sources, design.top, PART, work_dir=work / f"{name}_yosys")
    return {"builder_worst_stage_ns": max(design.stage_delay_ns), "yosys_path_ns": res["critical_path_ns"],
            "latency_cycles": design.latency_cycles, "LUT": res["LUT"], "clock_ns": CLOCK_NS,
            "measured_here": True, "yosys_s": round(time.perf_counter() - t0, 1)}


def from_timing(rows: list[dict], name: str) -> dict | None:
    row = next((r for r in rows if r["design"] == name and r.get("yosys_path_ns") is not None), None)
    if row is None:
        return None
    return {"builder_worst_stage_ns": row["builder_worst_stage_ns"], "yosys_path_ns": row["yosys_path_ns"],
            "latency_cycles": row["latency_cycles"], "LUT": row["LUT"], "clock_ns": row["clock_ns"],
            "measured_here": False}


def consistency(rows: list[dict]) -> list[dict]:
    """Builder worst stage against Yosys sta per design of benchmarks/timing.json (not a calibration)."""
    out = []
    for r in rows:
        if r.get("yosys_path_ns") and r.get("builder_worst_stage_ns"):
            b, y = r["builder_worst_stage_ns"], r["yosys_path_ns"]
            out.append({"design": r["design"], "builder_ns": b, "yosys_ns": y, "difference": round((b - y) / y, 4)})
    return out


def write_outputs(result: dict, out: Path) -> None:
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# Timing estimate against published post-route timing", "",
             "trigger's timing figures are estimates: the RTL builder's per-stage estimate and Yosys `sta` with "
             f"trigger's cell delays ({result['timing_model']}). This table was meant to calibrate them on published "
             "post-route timing (Fmax, WNS, or an achieved clock) of designs trigger can regenerate. "
             "**No published figure could be read for any of them** with the sources available here (the stored web "
             "text of the papers gives their opening sections only; the repositories hold scripts and models, not "
             "reports), so the estimate's error against real place-and-route timing is **unknown**; nothing below "
             "is read off a plot or recalled.", "",
             "| design | source looked at | published | trigger builder worst stage (ns) | trigger Yosys sta (ns) "
             "| error | why no figure / what differs |",
             "|---|---|---|---:|---:|---|---|"]
    for r in result["designs"]:
        ours = r.get("trigger") or {}
        pub = "not found" if r["published_ns"] is None else f"{r['published_ns']} ns"
        err = "n/a" if r.get("error") is None else f"{r['error']:+.1%}"
        lines.append(f"| {r['design']} | {r['source']} | {pub} | {ours.get('builder_worst_stage_ns', '')} | "
                     f"{ours.get('yosys_path_ns', '')} | {err} | {r['why_none']}; differs: {r['differs']} |")
    cons = result["consistency"]
    worst = max(cons, key=lambda c: abs(c["difference"])) if cons else None
    lines += ["", "## The two estimators against each other (not a calibration)", "",
              "Builder worst stage vs Yosys sta path on the designs of `benchmarks/timing.json` (the builder counts the "
              "clock-to-output of the stage's register, 0.15 ns, which a module's sta does not).", "",
              "| design | builder (ns) | Yosys sta (ns) | difference |", "|---|---:|---:|---:|"]
    lines += [f"| {c['design']} | {c['builder_ns']} | {c['yosys_ns']} | {c['difference']:+.1%} |" for c in cons]
    if worst:
        lines += ["", f"Largest difference: {worst['design']} ({worst['difference']:+.1%})."]
    lines += ["", f"Conditions: load average {result['load']} ({result['cpus']} CPUs); "
                  f"{'reference networks measured in this run' if result['measured'] else 'trigger figures from benchmarks/timing.json'}.",
              "", "Regenerate: `.venv/bin/python scripts/bench_timing_calibration.py [--measure]`."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Timing estimate against published post-route timing "
                                             "(benchmarks/timing_calibration.*).")
    ap.add_argument("--measure", action="store_true", help="regenerate and synthesise the reference networks here")
    ap.add_argument("--timing", type=Path, default=REPO / "benchmarks" / "timing.json")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "timing_calibration")
    args = ap.parse_args(argv)
    from trigger.synth import TIMING_MODEL

    rows = json.loads(args.timing.read_text())["designs"] if args.timing.exists() else []
    work = Path(tempfile.mkdtemp(prefix="bench-calibration-"))
    designs = []
    for entry in PUBLISHED:
        row = dict(entry)
        if entry["design"].endswith(".json") and (REFERENCE / entry["design"]).exists():
            row["trigger"] = (measure(entry["design"], work) if args.measure
                              else from_timing(rows, entry["design"]))
        published, ours = row["published_ns"], (row.get("trigger") or {}).get("yosys_path_ns")
        row["error"] = None if published is None or ours is None else round((ours - published) / published, 4)
        designs.append(row)
    result = {"designs": designs, "consistency": consistency(rows), "timing_model": TIMING_MODEL,
              "measured": args.measure, "cpus": os.cpu_count(), "load": [round(v, 2) for v in os.getloadavg()]}
    write_outputs(result, args.out)
    print(f"bench_timing_calibration: wrote {args.out.with_suffix('.md')} and .json "
          f"({sum(r['published_ns'] is not None for r in designs)} published figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
