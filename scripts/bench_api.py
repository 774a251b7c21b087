"""How fast the Python API's emulator runs: design.predict / predict_raw / compare on 10^6 events.

The reference QKeras jet tagger (../shared/reference_models/qkeras_3layer.json) is converted with
trigger.convert; 10^6 standard-normal events (the model's inputs are standardised features) go through
design.predict (quantize to the input formats, bit-exact emulator, floats out), design.predict_raw (raw
integers in and out) and design.compare (QKeras with every layer exposed vs the firmware's tensors). Each is
timed as the best of --repeats runs (wall clock); the load average before and after is recorded, because the
machine is shared and the rate scales with the CPU the process gets. Writes benchmarks/api.json and api.md.

    .venv/bin/python scripts/bench_api.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT.parent / "shared" / "reference_models" / "qkeras_3layer.json"


def best_of(repeats: int, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--compare-events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import trigger

    load_before = os.getloadavg()
    start = time.perf_counter()
    design = trigger.convert(REFERENCE, vectors=100)
    convert_s = time.perf_counter() - start
    x = np.random.default_rng(20261207).normal(size=(args.events, design.model.input.n))
    raw = design.quantize(x[:1000])  # warm up
    predict_s, scores = best_of(args.repeats, lambda: design.predict(x))
    quantize_s, raw = best_of(args.repeats, lambda: design.quantize(x))
    raw_s, raw_out = best_of(args.repeats, lambda: design.predict_raw(raw))
    assert np.array_equal(design.model.output.to_float(raw_out), scores)
    xc = x[:args.compare_events]
    compare_s, comparison = best_of(1, lambda: design.compare(xc))
    load_after = os.getloadavg()
    result = {
        "model": REFERENCE.name, "events": args.events, "repeats": args.repeats,
        "convert_s": round(convert_s, 2),
        "predict_s": round(predict_s, 3), "predict_events_per_s": round(args.events / predict_s),
        "quantize_s": round(quantize_s, 3), "predict_raw_s": round(raw_s, 3),
        "predict_raw_events_per_s": round(args.events / raw_s),
        "compare_events": len(xc), "compare_s": round(compare_s, 2),
        "compare_events_per_s": round(len(xc) / compare_s),
        "compare_all_equal": comparison["all_equal"],
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
    }
    out = ROOT / "benchmarks"
    (out / "api.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    md = [
        "# Python API: emulator speed (reference QKeras jet tagger)",
        "",
        f"{args.events:,} standard-normal events, 16 features -> 5 logits (7 ops: 3 hidden QDense + quantized ReLU, "
        f"output QDense); best of {args.repeats} runs, wall clock, one process on a {result['cpus']}-CPU machine "
        f"shared with other work (load average {result['load_average_before'][0]} before, "
        f"{result['load_average_after'][0]} after: on an idle core the rates are higher).",
        "",
        "| step | time | events/s |",
        "|---|---|---|",
        f"| `trigger.convert` (hls4ml conversion, firmware model) | {convert_s:.1f} s | |",
        f"| `design.predict(x)` (quantize, emulate, floats) | {predict_s:.2f} s | {result['predict_events_per_s']:,} |",
        f"| `design.quantize(x)` alone | {quantize_s:.2f} s | |",
        f"| `design.predict_raw(raw)` (emulator alone) | {raw_s:.2f} s | {result['predict_raw_events_per_s']:,} |",
        f"| `design.compare(x)` on {len(xc):,} events (QKeras per layer + emulator trace) | {compare_s:.1f} s | "
        f"{result['compare_events_per_s']:,} |",
        "",
        f"predict equals predict_raw's integers read as floats on every event; compare: every layer equal: "
        f"{comparison['all_equal']}.",
        "",
        "`scripts/bench_api.py` writes this file and `api.json`.",
        "",
    ]
    (out / "api.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
