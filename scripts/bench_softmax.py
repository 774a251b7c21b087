"""Softmax tables against argmax agreement on the reference QKeras jet tagger (issue: hls4ml's softmax flips classes).

For each softmax setting (hls4ml 1.3's defaults, larger hls4ml tables, trigger's default), the tagger
(../shared/reference_models/qkeras_3layer, which ends in a softmax) is converted with its softmax kept and
its firmware emulator runs on 100,000 standard-normal input vectors (the model's inputs are standardised
features): how often the softmax's argmax equals the argmax of the firmware's own logits, how many outputs
tie, and the table ROMs it costs. With --verify the default setting is also built into a bundle, verified
three ways (emulator, hls4ml C simulation, RTL) and synthesised with Yosys.
Writes benchmarks/softmax.json and benchmarks/softmax.md.

    .venv/bin/python scripts/bench_softmax.py [--vectors N] [--verify]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT.parent / "shared" / "reference_models" / "qkeras_3layer.json"

SETTINGS = {
    "hls4ml 1.3 defaults": {"implementation": None, "table_size": None, "inp_norm_t": None, "exp_table_t": None,
                            "inv_table_t": None, "accum_t": None, "inv_inp_t": None, "result": None},
    "hls4ml defaults, 4096-entry tables": {"implementation": None, "table_size": 4096, "inp_norm_t": None,
                                           "exp_table_t": None, "inv_table_t": None, "accum_t": None,
                                           "inv_inp_t": None, "result": None},
    "trigger, 1024 entries, x_max - x in ufixed<10,3>": {"table_size": 1024, "inp_norm_t": "ufixed<10,3,RND,SAT>"},
    "trigger default (2048 entries, ufixed<11,3>)": {},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--verify", action="store_true", help="also build, verify and synthesise the default")
    parser.add_argument("--out", default=str(ROOT / "benchmarks"))
    args = parser.parse_args()
    if not REFERENCE.exists():
        print(f"bench_softmax: {REFERENCE} not found", file=sys.stderr)
        return 2

    from trigger.frontends.keras import load_model
    from trigger.frontends.network import convert
    from trigger.ir import emulate
    from trigger.synth import bram_for_table

    loaded = load_model({"json": str(REFERENCE), "weights": str(REFERENCE).replace(".json", "_weights.h5")},
                        keep_softmax=True)
    rows = []
    for label, overrides in SETTINGS.items():
        t0 = time.perf_counter()
        _, fw = convert(loaded, {"hls": {"softmax": overrides}})
        softmax = fw.ops[-1]
        raw = fw.input.quantize(np.random.default_rng(20261124).normal(size=(args.vectors, fw.input.n)))
        result = emulate(fw, raw, trace=True)
        out, logits = result.outputs, result.trace[-2]
        agree = np.argmax(out, axis=1) == np.argmax(logits, axis=1)
        ties = np.sum(out == out.max(axis=1, keepdims=True), axis=1) > 1
        roms = [(softmax.exp_table.size, softmax.accum_fmt.width)] * softmax.n + \
               [(softmax.inv_table.size, softmax.inv_table_fmt.width)]
        bram18 = sum(bram_for_table(d, w)["BRAM18"] for d, w in roms)  # one ROM per class plus 1/sum
        rows.append({"setting": label, "softmax": softmax.describe(),
                     "inp_norm_t": softmax.inp_norm_fmt.cpp if softmax.inp_norm_fmt else None,
                     "logits": fw.ops[-2].output.format.cpp, "vectors": int(len(raw)),
                     "argmax_agreement": float(agree.mean()), "disagreements": int((~agree).sum()),
                     "tied_outputs": int(ties.sum()), "table_rom_bits": int(sum(d * w for d, w in roms)),
                     "bram18": bram18, "seconds": round(time.perf_counter() - t0, 1)})
        print(f"{label}: agreement {100 * agree.mean():.3f} % ({int((~agree).sum())} differ), "
              f"{bram18} BRAM18", flush=True)
    report = {"model": "qkeras_3layer (reference QKeras jet tagger, softmax kept)", "rows": rows}

    if args.verify:
        from trigger.bundle import build_bundle
        from trigger.frontends import BuildOptions
        from trigger.report import build_report
        from trigger.verify import verify_bundle

        work = Path(tempfile.mkdtemp(prefix="bench-softmax-"))
        try:
            t0 = time.perf_counter()
            bundle = build_bundle(REFERENCE, work / "bundle",
                                  BuildOptions(keep_softmax=True, vectors=10_000), progress=False)
            verified = verify_bundle(bundle, progress=False)
            rep = build_report(bundle)
            softmax_module = {k: v for k, v in rep["resources"].get("modules", {}).items() if "softmax" in k}
            report["bundle"] = {"vectors": verified["vectors"], "mismatches": verified["mismatches"],
                                "latency_cycles": verified["latency_cycles"],
                                "resources": {k: rep["resources"].get(k) for k in ("LUT", "FF", "DSP", "BRAM")},
                                "softmax_module": softmax_module, "seconds": round(time.perf_counter() - t0, 1)}
            print(f"bundle: {report['bundle']}", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "softmax.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    lines = ["# Softmax tables vs argmax agreement (reference QKeras jet tagger)", "",
             f"{rows[0]['vectors']} standard-normal input vectors; logits {rows[0]['logits']}. Agreement: the "
             "softmax output's argmax equals the argmax of the firmware's own logits (the remaining "
             "disagreements are exact ties of the quantized outputs).", "",
             "| setting | x_max - x type | tables | agreement | differ | tied | table ROM bits | BRAM18 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tables = r["softmax"].split("(stable), ")[-1].split(", accum")[0] if "stable" in r["softmax"] else r["softmax"]
        lines.append(f"| {r['setting']} | {r['inp_norm_t']} | {tables} | {100 * r['argmax_agreement']:.3f} % | "
                     f"{r['disagreements']} | {r['tied_outputs']} | {r['table_rom_bits']} | {r['bram18']} |")
    if "bundle" in report:
        b = report["bundle"]
        lines += ["", f"Default bundle: {b['vectors']} vectors verified, mismatches {b['mismatches']}, latency "
                      f"{b['latency_cycles']} cycles, resources {b['resources']}, softmax module {b['softmax_module']}."]
    (out / "softmax.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'softmax.json'} and {out / 'softmax.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
