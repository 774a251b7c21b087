"""HGQ2 jet taggers beside the QKeras jet tagger: accuracy, LUT, FF, latency at the target clock, EBOPs vs LUT.

models/jet_tagger_hgq2/ holds the jet tagger of models/jet_tagger (16 -> 64 -> 32 -> 32 -> 5, the same toy
jets) trained with HGQ2 at three EBOPs penalties (scripts/make_hgq2_models.py --example, in .venv-hgq2); its
example.json has HGQ2's EBOPs, HGQ2's test accuracy and the float network's. Each HGQ2 archive and the
QKeras tagger at its default settings go through `trigger build`, `trigger verify` and `trigger report`
(Yosys) with the example's settings (xcvu13p, 200 MHz, pipeline auto as the QKeras tagger); the firmware's
accuracy is the emulator's on the same 50,000 test jets, and HGQ2's own arithmetic (replayed from the
archive) is compared with the firmware on all of them. Writes benchmarks/hgq2.json and benchmarks/hgq2.md.

    .venv/bin/python scripts/bench_hgq2.py [--vectors N] [--out DIR] [--reuse]
    .venv/bin/python scripts/bench_hgq2.py --markdown-only     # hgq2.md again from hgq2.json

The committed figures: 10,000 vectors per design, the QKeras bundle reused (--reuse) from the run just before,
which had built the HGQ2 taggers with `pipeline: 3` (then the example's setting; now `auto`, as the QKeras one).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLE = ROOT / "models" / "jet_tagger_hgq2"
QKERAS = ROOT / "models" / "jet_tagger"


def cli(*args: str, ok: tuple = (0,)) -> float:
    """One `trigger` command in its own process; its wall seconds (fails loudly on another exit code)."""
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "trigger.cli", *args], cwd=ROOT, capture_output=True, text=True)
    if run.returncode not in ok:
        raise SystemExit(f"trigger {' '.join(args)} failed ({run.returncode}):\n{run.stdout[-3000:]}\n"
                         f"{run.stderr[-3000:]}")
    return round(time.perf_counter() - start, 1)


def flow(source: Path, bundle: Path, vectors: int, pipeline, reuse: bool) -> dict:
    """build, verify, report: the figures of one design (``reuse``: a complete bundle of the same pipeline
    setting and vector count from an earlier run is read instead of rebuilt)."""
    done = bundle / "reports" / "report.json"
    if reuse and done.exists() and json.loads((bundle / "manifest.json").read_text())["rtl"].get("pipeline") \
            == pipeline and json.loads((bundle / "reports" / "verify.json").read_text())["vectors"] == vectors:
        seconds = json.loads((bundle / "bench_seconds.json").read_text()) \
            if (bundle / "bench_seconds.json").exists() else {}
    else:
        seconds = {"build": cli("build", str(source), "-o", str(bundle), "--vectors", str(vectors)),
                   "verify": cli("verify", str(bundle)),
                   "report": cli("report", str(bundle), ok=(0, 1))}  # 1: a budget verdict, recorded below
        (bundle / "bench_seconds.json").write_text(json.dumps(seconds) + "\n")
    verify = json.loads((bundle / "reports" / "verify.json").read_text())
    report = json.loads((bundle / "reports" / "report.json").read_text())
    res, lat = report["resources"], report["latency"]
    return {"vectors": verify["vectors"], "mismatches": verify["mismatches"], "pass": verify["pass"],
            "source_model": {k: verify.get("source_model", {}).get(k) for k in ("framework", "exact", "equal",
                                                                                 "mismatches")},
            "LUT": res.get("LUT"), "FF": res.get("FF"), "DSP": res.get("DSP"), "BRAM": res.get("BRAM"),
            "critical_path_ns": res.get("critical_path_ns"), "fits_clock": report["timing"].get("fits"),
            "latency_cycles": lat["cycles"], "latency_ns": lat["ns"], "clock_period_ns": lat["clock_period_ns"],
            "budget": report.get("budget"), "pipeline": pipeline, "seconds": seconds}


def firmware_accuracy(bundle: Path, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The emulator's accuracy on real events (quantized to the input port as the firmware holds them)."""
    from trigger.ir.model import FirmwareModel, emulate

    fw = FirmwareModel.load(bundle)
    outputs = fw.output.to_float(emulate(fw, fw.input.quantize(x)).outputs)
    return float(np.mean(np.argmax(outputs, axis=1) == y)), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=10_000, help="stored test vectors per design (default 10,000)")
    parser.add_argument("--out", default=str(ROOT / "build" / "bench_hgq2"), help="bundles go here")
    parser.add_argument("--reuse", action="store_true",
                        help="read complete bundles of an earlier run (same pipeline and vectors), not rebuild")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from trigger.data import jets
    from trigger.frontends.hgq2 import read_model

    example = json.loads((EXAMPLE / "example.json").read_text())
    data = example["data"]
    x_test, y_test = jets.generate(data["n_test"], seed=data["test_seed"])
    x_test = np.asarray(x_test, dtype=np.float64)
    settings = yaml.safe_load((EXAMPLE / "trigger.yml").read_text())
    rows = []
    for target, info in example["targets"].items():
        folder = out / f"config_{target}"
        folder.mkdir(exist_ok=True)
        config = {**settings, "name": f"jet_tagger_hgq2_{target}",
                  "model": {"file": str((EXAMPLE / info["file"]).resolve())}}
        (folder / "trigger.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        bundle = out / f"hgq2_{target}"
        print(f"hgq2 {target} (beta {info['beta']}): build, verify, report ...", flush=True)
        figures = flow(folder, bundle, args.vectors, settings["rtl"]["pipeline"], args.reuse)
        accuracy, fw_out = firmware_accuracy(bundle, x_test, y_test)
        hgq2 = read_model(EXAMPLE / info["file"]).predict_flat(x_test)
        rows.append({"design": f"HGQ2 {target}", "beta": info["beta"], "ebops": info["ebops"],
                     "float_accuracy": example["float_accuracy"], "model_accuracy": info["hgq2_accuracy"],
                     "firmware_accuracy": accuracy,
                     "hgq2_vs_firmware_on_test_events": {"events": len(x_test),
                                                         "equal": int(np.sum(np.all(hgq2 == fw_out, axis=1)))},
                     **figures})
        print(f"  LUT {figures['LUT']}, FF {figures['FF']}, {figures['latency_cycles']} cycles, "
              f"accuracy {accuracy:.4f}")
    print("QKeras jet tagger (models/jet_tagger, default settings): train, build, verify, report ...", flush=True)
    bundle = out / "qkeras"
    qkeras_settings = yaml.safe_load((QKERAS / "trigger.yml").read_text())
    figures = flow(QKERAS, bundle, args.vectors, qkeras_settings["rtl"]["pipeline"], args.reuse)
    training = json.loads((bundle / "reports" / "training.json").read_text())
    quant = qkeras_settings["quantization"]
    weights = 16 * 64 + 64 * 32 + 32 * 32 + 32 * 5
    rows.append({"design": "QKeras (models/jet_tagger)", "beta": None,
                 "ebops": weights * quant["weight_bits"] * quant["activation_bits"], "ebops_note": "uniform: "
                 "multiplications x weight bits x activation bits (inputs counted at the activation width)",
                 "float_accuracy": training.get("float_accuracy"), "model_accuracy": training.get("quantized_accuracy"),
                 "firmware_accuracy": training.get("firmware_accuracy"), **figures})
    result = {"part": settings["target"]["part"], "clock_mhz": settings["target"]["clock_mhz"],
              "pipeline": settings["rtl"]["pipeline"], "test_events": len(x_test), "writer": example["writer"],
              "rows": rows}
    (ROOT / "benchmarks" / "hgq2.json").write_text(json.dumps(result, indent=2) + "\n")
    (ROOT / "benchmarks" / "hgq2.md").write_text(markdown(result))
    print((ROOT / "benchmarks" / "hgq2.md").read_text())


def markdown(result: dict) -> str:
    lines = [
        "# HGQ2 jet taggers vs the QKeras jet tagger",
        "",
        f"The same network (16 -> 64 -> 32 -> 32 -> 5) and toy jets; {result['part']} at {result['clock_mhz']} MHz, "
        f"pipeline {result['pipeline']!r} (registers wherever a stage would miss the clock); resources from Yosys "
        "(trigger report), latency from "
        f"the RTL simulation; accuracy on {result['test_events']:,} test jets (float: the network trained without "
        "quantizers; model: HGQ2's / QKeras' own; firmware: trigger's emulator, equal to the RTL on every verified "
        "vector). EBOPs: as HGQ2 reports them after trace_minmax; for QKeras the uniform count (weights x 6 bits x "
        "6 bits).",
        "",
        "| design | beta | EBOPs | float acc. | model acc. | firmware acc. | LUT | FF | DSP | pipeline | latency | "
        "longest path | verified (mismatches) | model == firmware |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        eq = r.get("hgq2_vs_firmware_on_test_events")
        src = r["source_model"]
        equal = (f"{eq['equal']:,} / {eq['events']:,} test events; " if eq else "") + \
            f"{src.get('equal')} / {r['vectors']:,} vectors"
        lines.append(
            f"| {r['design']} | {r['beta'] if r['beta'] is not None else '-'} | {r['ebops']:,} | "
            f"{r['float_accuracy']:.4f} | {r['model_accuracy']:.4f} | {r['firmware_accuracy']:.4f} | {r['LUT']:,} | "
            f"{r['FF']:,} | {r['DSP']} | {r['pipeline']} | {r['latency_cycles']} cycles = {r['latency_ns']} ns | "
            f"{r['critical_path_ns']} ns ({'fits' if r['fits_clock'] else 'does not fit'}) | "
            f"{r['vectors']:,} ({sum(r['mismatches'].values())}) | {equal} |")
    hgq = [r for r in result["rows"] if r["beta"] is not None]
    if len(hgq) > 1:
        lines += ["", "EBOPs vs LUT (HGQ2): " + ", ".join(f"{r['ebops']:,} EBOPs -> {r['LUT']:,} LUT "
                                                           f"({r['LUT'] / max(r['ebops'], 1):.3f} LUT per EBOP)"
                                                           for r in hgq) + "."]
    qk = [r for r in result["rows"] if r["beta"] is None]
    if hgq and qk:
        q = qk[0]
        lines += ["", "Against the QKeras tagger: " + "; ".join(
            f"HGQ2 {r['design'].split()[-1]} {q['LUT'] / r['LUT']:.1f}x fewer LUTs, {q['FF'] / r['FF']:.1f}x fewer "
            f"FFs, {r['latency_cycles'] - q['latency_cycles']:+d} cycles, accuracy "
            f"{r['firmware_accuracy'] - q['firmware_accuracy']:+.4f}" for r in hgq)
            + ". The HGQ2 taggers were trained as long as the QKeras one (12 epochs) with a constant beta from the "
            "first step (no beta schedule, no fine-tuning: not tried here, and the accuracy gap may narrow with "
            "them); every HGQ2 firmware output equals HGQ2's own on all test jets."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown-only"]:  # rewrite benchmarks/hgq2.md from benchmarks/hgq2.json
        bench = json.loads((ROOT / "benchmarks" / "hgq2.json").read_text())
        (ROOT / "benchmarks" / "hgq2.md").write_text(markdown(bench))
    else:
        main()
