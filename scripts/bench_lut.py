#!/usr/bin/env python
"""Benchmark of the LUT flow; writes benchmarks/lut.json.

Measures: toy muon simulation rate (one core), table generation throughput for
2^16, 2^20 and 2^24 addresses (the example's trained network on address
layouts of those widths), the example's full build, and exhaustive
verification (every address through Verilator and the g++ C simulation).

usage: scripts/bench_lut.py [--quick] [--out benchmarks/lut.json]
  --quick  verify a 16-bit build instead of the 20-bit example
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
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
    parser.add_argument("--quick", action="store_true", help="verify a 16-bit build instead of the 20-bit example")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "lut.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_lut_"))
    try:
        result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}}
        result["muon_simulation"] = muon_rate()
        print(f"muon simulation: {result['muon_simulation']['muons_per_minute']:,} muons/minute", flush=True)
        result["table_generation"] = table_throughput(work)

        source = config_with_bits(WIDTHS[16], work / "verify16") if args.quick else EXAMPLE
        t0 = time.perf_counter()
        bundle = build_bundle(source, work / "bundle")
        build_seconds = time.perf_counter() - t0
        manifest = json.loads((bundle / "manifest.json").read_text())
        t0 = time.perf_counter()
        report = verify_bundle(bundle)
        verify_seconds = time.perf_counter() - t0
        t = report["timings"]
        bits = manifest["table"]["address_bits"]
        result["example" if not args.quick else "verify_16bit"] = {
            "address_bits": bits, "addresses": 1 << bits,
            "word_bits": manifest["table"]["word_bits"], "build_seconds": round(build_seconds, 1),
            "verify_seconds": round(verify_seconds, 1), "vectors": report["vectors"],
            "exhaustive": report["exhaustive"], "mismatches": report["mismatches"],
            "latency_cycles": report["latency_cycles"], "ii": report["ii"], "verify_timings": t,
            "rtl_vectors_per_second": report["rtl_vectors_per_s"],
            "csim_vectors_per_second": round(report["vectors"] / max(t["csim_s"], 1e-3)),
            "verify_vectors_per_second_end_to_end": round(report["vectors"] / verify_seconds),
            "bundle_bytes": sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()),
        }
        result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result["note"] = ("2-core machine shared with other jobs: the load averages show how busy it was; "
                          "RTL simulation is cocotb + Verilator streaming one vector per clock (II=1).")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
