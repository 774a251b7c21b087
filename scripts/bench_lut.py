#!/usr/bin/env python
"""Benchmark of the LUT flow; writes benchmarks/lut.json.

Measures: toy muon simulation rate (one core), table generation throughput for
2^16, 2^20 and 2^24 addresses (the example's trained network on address
layouts of those widths), the full build of the example at a table width, and
its exhaustive 3-way verification (every address through the emulator, the g++
C simulation and Verilator; the issue's goal: 2^24 addresses in <= 5 minutes).
Wall and CPU seconds are both reported: the machine is shared.

usage: scripts/bench_lut.py [--bits 24] [--quick] [--out benchmarks/lut.json]
  --bits   table width to build and verify (16, 20 = the example as shipped, 24)
  --quick  the same as --bits 16
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trigger.data.muon import simulate_muons  # noqa: E402
from trigger.bundle import build_bundle  # noqa: E402
from trigger.frontends.lut.binning import build_layout  # noqa: E402
from trigger.frontends.lut.config import load_config  # noqa: E402
from trigger.frontends.lut.dataset import load_samples  # noqa: E402
from trigger.frontends.lut.regressor import make_regressor, to_target  # noqa: E402
from trigger.frontends.lut.table import generate_table  # noqa: E402
from trigger.verify import verify_bundle  # noqa: E402

EXAMPLE = ROOT / "models" / "muon_pt_lut"
# feature bits for each table width, in the example's feature order (dphi12, dphi23, dphi34, eta, quality)
WIDTHS = {16: [6, 4, 2, 2, 2], 20: [7, 5, 3, 3, 2], 24: [8, 6, 4, 4, 2]}


def cpu_seconds() -> float:
    """CPU time of this process and every child it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def muon_rate() -> dict:
    simulate_muons(10000, seed=0)
    t0 = time.perf_counter()
    simulate_muons(2_000_000, seed=1)
    seconds = time.perf_counter() - t0
    return {"muons": 2_000_000, "seconds": round(seconds, 3), "muons_per_minute": round(2_000_000 / seconds * 60)}


def config_with_bits(bits: list[int], folder: Path) -> Path:
    cfg = yaml.safe_load((EXAMPLE / "trigger.yml").read_text())
    cfg = copy.deepcopy(cfg)
    for f, b in zip(cfg["features"], bits):
        f["bits"] = b
    cfg["address"]["bits"] = sum(bits)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trigger.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def table_throughput(work: Path) -> dict:
    config = load_config(EXAMPLE)
    train, _ = load_samples(config)
    layout = build_layout(config, train.raw)
    model = make_regressor(config.model, config.seed)
    model.fit(layout.regressor_inputs(layout.bins_of(layout.compress(train.raw))), to_target(train.pt, "log_pt"))
    out = {}
    for width, bits in WIDTHS.items():
        cfg = load_config(config_with_bits(bits, work / f"w{width}"))
        lay = build_layout(cfg, train.raw)
        table = generate_table(lay, model, cfg.model["target"], cfg.output, progress=True)
        out[str(width)] = {"addresses": 1 << width, "seconds": round(table.seconds, 3),
                           "addresses_per_second": round((1 << width) / table.seconds),
                           "table_bytes_in_memory": int(table.words.nbytes)}
        print(f"2^{width}: {table.seconds:.2f} s, {(1 << width) / table.seconds:,.0f} addresses/s", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, choices=sorted(WIDTHS), default=24, help="table width to verify")
    parser.add_argument("--quick", action="store_true", help="the same as --bits 16")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "lut.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_lut_"))
    try:
        result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}}
        result["muon_simulation"] = muon_rate()
        print(f"muon simulation: {result['muon_simulation']['muons_per_minute']:,} muons/minute", flush=True)
        result["table_generation"] = table_throughput(work)

        bits = 16 if args.quick else args.bits
        source = config_with_bits(WIDTHS[bits], work / f"verify{bits}") if bits != 20 else EXAMPLE
        os.environ["TRIGGER_CACHE"] = str(work / "cache")  # an empty simulator cache: cold numbers
        t0, c0 = time.perf_counter(), cpu_seconds()
        bundle = build_bundle(source, work / "bundle")
        build_seconds, build_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        manifest = json.loads((bundle / "manifest.json").read_text())
        t0, c0 = time.perf_counter(), cpu_seconds()
        report = verify_bundle(bundle)
        verify_seconds, verify_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        t = report["timings"]
        bits = manifest["table"]["address_bits"]
        result[f"verify_{bits}bit"] = {
            "address_bits": bits, "addresses": 1 << bits,
            "build_cpu_seconds": round(build_cpu, 1), "verify_cpu_seconds": round(verify_cpu, 1),
            "word_bits": manifest["table"]["word_bits"], "build_seconds": round(build_seconds, 1),
            "verify_seconds": round(verify_seconds, 1), "vectors": report["vectors"],
            "exhaustive": report["exhaustive"], "mismatches": report["mismatches"],
            "latency_cycles": report["latency_cycles"], "ii": report["ii"], "verify_timings": t,
            "rtl_vectors_per_second": report["timings"].get("rtl_vectors_per_s"),
            "csim_vectors_per_second": round(report["vectors"] / max(t["csim_s"], 1e-3)),
            "verify_vectors_per_second_end_to_end": round(report["vectors"] / verify_seconds),
            "bundle_bytes": sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()),
        }
        result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result["note"] = ("2-core machine shared with other jobs: the load averages show how busy it was, wall "
                          "times are upper bounds, CPU seconds are this benchmark's own. RTL simulation: cocotb "
                          "checks the protocol on the first 1,000 vectors, the Verilog harness streams the rest "
                          "one per clock (II=1); every address is compared. Cold simulator cache.")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def markdown(r: dict) -> str:
    lines = ["# LUT flow benchmark", "",
             f"{r['machine']['cpus']} CPUs, shared (load average {r['machine']['load_average_at_start']} at start, "
             f"{r['machine']['load_average_at_end']} at end): wall times are upper bounds.", "",
             f"Toy muon simulation: {r['muon_simulation']['muons_per_minute']:,} muons/minute.", "",
             "| table | addresses/s generated | seconds |", "|---|---|---|"]
    for width, g in sorted(r["table_generation"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| 2^{width} | {g['addresses_per_second']:,} | {g['seconds']} |")
    for key, v in sorted(r.items()):
        if not key.startswith("verify_"):
            continue
        t = v["verify_timings"]
        lines += ["", f"## Exhaustive 3-way verification, 2^{v['address_bits']} addresses ({v['vectors']:,} vectors)",
                  "", f"Build {v['build_seconds']} s wall ({v['build_cpu_seconds']} s CPU); verify "
                  f"**{v['verify_seconds']} s wall ({v['verify_cpu_seconds']} s CPU)**, cold simulator cache; "
                  f"mismatches {v['mismatches']}; latency {v['latency_cycles']} cycles, II {v['ii']}.", "",
                  "| emulator s | C sim build s | C sim s | RTL build s (CPU) | RTL run s (CPU) | bulk vectors/s |",
                  "|---|---|---|---|---|---|",
                  f"| {t['emulator_s']} | {t['csim_build_s']} | {t['csim_s']} | {t['rtl_build_s']} "
                  f"({t.get('rtl_build_cpu_s')}) | {t['rtl_sim_s']} ({t.get('rtl_sim_cpu_s')}) | "
                  f"{t.get('rtl_bulk_vectors_per_s')} |", "",
                  "The C simulation (g++, its ROM read at run time from the bundle's .inc initialiser for tables "
                  "of 2^17 words and more, one process per core) runs concurrently with the emulator and the RTL "
                  "simulation; the step columns are wall seconds of overlapping steps, the verify CPU seconds "
                  "above are exact."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
