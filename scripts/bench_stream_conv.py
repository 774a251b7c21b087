"""Benchmark: a convolution too large to unroll, streamed the way hls4ml's io_stream builds it.

hls4ml's MNIST CNN shape, QKeras-quantized with small widths: a 28 x 28 x 1 image (ufixed<8,0>), QConv2D 16 3x3
(26 x 26 x 16, 97,344 constant products if unrolled) + quantized relu, MaxPooling 2, QConv2D 8 3x3 (11 x 11 x 8,
139,392 products) + quantized relu, MaxPooling 2, Flatten, QDense 10. Weights are seeded random draws of the
quantizers (the arithmetic, not the accuracy, is what is measured).

1. unrolled (``hls.io_type: io_parallel``): refused before hls4ml runs, with the one-line error recorded;
2. auto: streamed (``conv_mode`` in the manifest says why), built with hls4ml io_stream + trigger's line-buffer RTL,
   verified 3-way (emulator == hls4ml C simulation (io_stream) == RTL under cocotb/Verilator, frames of 784
   pixels one per clock) on the stored random images, plus QKeras predict as the source witness;
3. Yosys synthesis of the streamed RTL (trigger.report, as the project synthesises every design): LUT, FF, DSP;
4. the same with ``rtl.ii: 4`` (``--tail-ii``): the unrolled dense after the streamed layers runs once a frame, so it
   shares its arithmetic over 4 clocks (digit-serial); verified and synthesised likewise.

Latency per frame and II come from the RTL simulation (measured by the testbench, equal to the manifest's).
Writes benchmarks/stream_conv.json and .md.

Usage: .venv/bin/python scripts/bench_stream_conv.py [--vectors N] [--work DIR] [--pipeline layer|auto|N]
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

NAME = "mnist_cnn_stream"
SEED = 20261207


def make_model(height: int = 28, width: int = 28, filters=(16, 8), seed: int = SEED):
    """hls4ml's MNIST CNN shape with QKeras quantizers of small widths, seeded weights."""
    import numpy as np
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    q = lambda: quantized_bits(4, 0, alpha=1)  # noqa: E731
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(height, width, 1), name="image"),
        QConv2D(filters[0], (3, 3), kernel_quantizer=q(), bias_quantizer=q(), name="conv1"),
        QActivation(quantized_relu(4, 2), name="relu1"),
        L.MaxPooling2D(2, name="pool1"),
        QConv2D(filters[1], (3, 3), kernel_quantizer=q(), bias_quantizer=q(), name="conv2"),
        QActivation(quantized_relu(4, 2), name="relu2"),
        L.MaxPooling2D(2, name="pool2"),
        L.Flatten(name="flatten"),
        QDense(10, kernel_quantizer=q(), bias_quantizer=q(), name="logits"),
    ], name=NAME)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.weights])
    return model


def write_model(folder: Path, io_type: str, vectors: int, pipeline="layer", ii: int = 1, **shape) -> Path:
    """The model's files and a trigger.yml (input ufixed<8,0>: a pixel / 256) in ``folder``."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    model = make_model(**shape)
    (folder / "model.json").write_text(model.to_json())
    model.save_weights(folder / "model_weights.h5")
    config = {"kind": "network", "name": NAME, "model": {"file": "model.json", "weights": "model_weights.h5"},
              "target": {"clock_mhz": 200}, "hls": {"io_type": io_type, "input_precision": "ufixed<8,0>"},
              "rtl": {"pipeline": pipeline, "ii": ii}, "verify": {"vectors": vectors}}
    (folder / "trigger.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=200)
    parser.add_argument("--work", default=str(REPO / "build" / "bench_stream_conv"))
    parser.add_argument("--pipeline", default="auto", help="rtl.pipeline (default auto: registers where a stage "
                        "would miss the 5 ns clock, so the latency in ns is real)")
    parser.add_argument("--no-synth", action="store_true")
    parser.add_argument("--tail-ii", type=int, default=4, help="also build with rtl.ii N: the dense tail shares its "
                                                               "arithmetic over N clocks (0: skip)")
    args = parser.parse_args()

    from trigger.bundle import build_bundle
    from trigger.errors import TriggerError

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    t0, cpu0 = time.perf_counter(), _cpu()

    # 1. unrolled: refused before hls4ml runs
    unrolled = write_model(work / "unrolled", "io_parallel", args.vectors, args.pipeline)
    t = time.perf_counter()
    try:
        build_bundle(unrolled, work / "unrolled_bundle", progress=False)
        refusal = None
    except TriggerError as err:
        refusal = str(err)
    refusal_s = round(time.perf_counter() - t, 2)
    print(f"unrolled: {'refused' if refusal else 'NOT refused'} in {refusal_s} s: {refusal}", flush=True)

    # 2. auto: streamed, built, verified 3-way, synthesised; then the same with the dense tail shared (rtl.ii)
    result = streamed(write_model(work / "auto", "auto", args.vectors, args.pipeline), work / "bundle", args)
    result.update({"model": NAME, "input": "28x28x1 ufixed<8,0>", "unrolled_refusal": refusal,
                   "unrolled_refusal_s": refusal_s})
    if args.tail_ii > 1:
        shared = streamed(write_model(work / "shared", "auto", args.vectors, args.pipeline, ii=args.tail_ii),
                          work / "bundle_shared", args)
        result["shared_tail"] = {k: shared[k] for k in (
            "tail_ii", "op_ii", "vectors", "mismatches", "bit_exact", "latency_cycles_per_frame_measured",
            "latency_cycles_per_frame_manifest", "latency_after_last_pixel_cycles", "ii_cycles_per_frame_measured",
            "latency_ns_per_frame", "LUT", "FF", "DSP", "LUTRAM", "critical_path_ns", "modules", "build_s", "verify_s",
            "report_s")}
    result.update(wall_s=round(time.perf_counter() - t0, 1), cpu_s=round(_cpu() - cpu0, 1))
    out = REPO / "benchmarks"
    out.mkdir(exist_ok=True)
    (out / "stream_conv.json").write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    (out / "stream_conv.md").write_text(markdown(result))
    print(f"stream: {result['vectors']} images, mismatches {result['mismatches']}, latency "
          f"{result['latency_cycles_per_frame_measured']} cycles per frame (II {result['ii_cycles_per_frame_measured']}), "
          f"LUT {result['LUT']}; wrote benchmarks/stream_conv.json, .md", flush=True)
    ok = bool(refusal) and result["bit_exact"] and result["conv_mode"]["mode"] == "stream"
    ok = ok and (result.get("shared_tail") or {"bit_exact": True})["bit_exact"]
    return 0 if ok else 1


def streamed(folder: Path, out: Path, args) -> dict:
    """Build, verify (3-way, Verilator) and report (Yosys) one streamed configuration; its figures."""
    from trigger.bundle import build_bundle
    from trigger.report import build_report
    from trigger.verify import verify_bundle

    t = time.perf_counter()
    bundle = build_bundle(folder, out)
    build_s = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    verified = verify_bundle(bundle)
    verify_s = round(time.perf_counter() - t, 1)
    manifest = json.loads((bundle / "manifest.json").read_text())
    stream = manifest["rtl"]["stream"]
    res, report_s, latency_ns = {}, None, None
    if not args.no_synth:
        t = time.perf_counter()
        report = build_report(bundle)
        report_s = round(time.perf_counter() - t, 1)
        res = report["resources"]
        latency_ns = report["latency"]["ns"]
    clock_ns = manifest["target"]["clock_period_ns"]
    return {
        "layers": [op["description"] for op in manifest["ops"]],
        "conv_mode": manifest["conv_mode"], "hls_io_type": manifest["hls"]["io_type"],
        "vectors": verified["vectors"], "images": verified["vectors"], "mismatches": verified["mismatches"],
        "first_mismatch": verified["first_mismatch"], "bit_exact": verified["pass"],
        "source_model": (verified.get("source_model") or {}).get("description"),
        "simulator": verified["simulator"],
        "latency_cycles_per_frame_measured": verified["latency_cycles"],
        "latency_cycles_per_frame_manifest": manifest["latency_cycles"],
        "latency_after_last_pixel_cycles": stream["latency_after_last_pixel"],
        "ii_cycles_per_frame_measured": verified["ii"], "ii_cycles_per_frame_manifest": manifest["ii"],
        "pixels_per_frame": stream["pixels_per_frame"], "clock_period_ns": clock_ns,
        "latency_ns_per_frame": round(verified["latency_cycles"] * clock_ns, 1),
        "latency_ns_after_last_pixel": round(stream["latency_after_last_pixel"] * clock_ns, 1),
        "frames_per_s": round(1e9 / (verified["ii"] * clock_ns), 1),
        "stages": stream["stages"], "tail_ops": stream["tail_ops"], "tail_ii": stream.get("tail_ii", 1),
        "op_ii": manifest["rtl"]["op_ii"], "pipeline": manifest["rtl"]["pipeline"],
        "LUT": res.get("LUT"), "FF": res.get("FF"), "DSP": res.get("DSP"), "BRAM": res.get("BRAM"),
        "LUT_percent_of_part": (res.get("percent") or {}).get("LUT"), "critical_path_ns": res.get("critical_path_ns"),
        "LUTRAM": res.get("LUTRAM"),  # the line buffers' shift registers (SRL16E / SRLC32E)
        # per module: _s<k> a stage's line buffer and counters, _k<k> its kernel datapath, _tail* the unrolled dense
        "modules": {name: {k: m.get(k) for k in ("LUT", "LUTRAM", "FF", "CARRY", "critical_path_ns")}
                    for name, m in sorted((res.get("modules") or {}).items())},
        "synthesis": " ".join(filter(None, [(res.get("settings") or {}).get("yosys"),
                                            (res.get("settings") or {}).get("summary")])) or None,
        "report_latency_ns": latency_ns,
        # Yosys' own time (recorded with the cached result when the synthesis cache answered)
        "synthesis_cached": res.get("cached"), "yosys_s": res.get("yosys_seconds"),
        "yosys_cpu_s": res.get("yosys_cpu_seconds"),
        "build_s": build_s, "verify_s": verify_s, "report_s": report_s, "timings": verified["timings"],
    }


def markdown(r: dict) -> str:
    mism = ", ".join(f"{k} {v}" for k, v in sorted(r["mismatches"].items()))
    stages = "\n".join(f"| {', '.join(s['ops'])} | {s['geometry']} | {s['line_buffer_pixels']} | {s['kernel_latency']} |"
                       for s in r["stages"])
    modules = "\n".join(f"| {name} | {m['LUT']} | {m['LUTRAM']} | {m['FF']} | {m['CARRY']} | {m['critical_path_ns']} |"
                        for name, m in sorted((r.get("modules") or {}).items()))
    t = r.get("shared_tail")
    shared = "" if not t else (
        f"**The same with the dense tail shared** (`rtl.ii: {t['tail_ii']}`: the tail runs once a frame, so it can take "
        f"{t['tail_ii']} clocks; hls4ml ReuseFactor {t['tail_ii']} on it): {t['vectors']} images, bit exact "
        f"{'yes' if t['bit_exact'] else 'NO'} ({', '.join(f'{k} {v}' for k, v in sorted(t['mismatches'].items()))}); "
        f"latency {t['latency_cycles_per_frame_measured']} cycles per frame ({t['latency_after_last_pixel_cycles']} "
        f"after the last pixel), II {t['ii_cycles_per_frame_measured']}; LUT {t['LUT']}, FF {t['FF']}, longest path "
        f"{t['critical_path_ns']} ns (tail: " + ", ".join(f"{n} {m['LUT']} LUT" for n, m in sorted(t['modules'].items())
                                                         if "_tail" in n) + ").")
    return f"""# Streamed convolutions (hls4ml io_stream line buffers): {r['model']}

`scripts/bench_stream_conv.py`. hls4ml's MNIST CNN shape, QKeras with 4-bit weights and activations, input
{r['input']}: QConv2D 16 3x3 + relu, MaxPool 2, QConv2D 8 3x3 + relu, MaxPool 2, Flatten, QDense 10 (seeded random
weights).

**Unrolled (hls.io_type io_parallel): refused** in {r['unrolled_refusal_s']} s, before hls4ml runs:

    {r['unrolled_refusal']}

**Auto: streamed.** `conv_mode` in the manifest: {r['conv_mode']['mode']} ({r['conv_mode']['reason']}); hls4ml
project io_type `{r['hls_io_type']}`.

| | |
|---|---|
| images verified (emulator == hls4ml C sim io_stream == RTL, {r['simulator']}) | {r['vectors']} |
| mismatches | {mism} |
| bit exact | {'yes' if r['bit_exact'] else 'NO'} |
| source model | {r['source_model']} |
| latency per frame, first pixel to out_valid (measured = manifest) | {r['latency_cycles_per_frame_measured']} = {r['latency_cycles_per_frame_manifest']} cycles = {r['latency_ns_per_frame']} ns at {r['clock_period_ns']} ns |
| latency after the frame's last pixel | {r['latency_after_last_pixel_cycles']} cycles = {r['latency_ns_after_last_pixel']} ns |
| II per frame (measured = manifest) | {r['ii_cycles_per_frame_measured']} = {r['ii_cycles_per_frame_manifest']} cycles ({r['pixels_per_frame']} pixels, one per clock): {r['frames_per_s']} frames/s |
| LUT (Yosys synth_xilinx, % of the part) | {r['LUT']} ({r['LUT_percent_of_part']} %) |
| LUTRAM (line buffers as shift registers) / FF / DSP / BRAM | {r['LUTRAM']} / {r['FF']} / {r['DSP']} / {r['BRAM']} |
| synthesis | {r['synthesis']}; Yosys {r['yosys_s']} s wall, {r['yosys_cpu_s']} s CPU{' (cached result)' if r['synthesis_cached'] else ''} |
| longest path (Yosys sta) | {r['critical_path_ns']} ns |
| pipeline | {r['pipeline']} |
| build / verify / report (s) | {r['build_s']} / {r['verify_s']} / {r['report_s']} |
| wall / CPU (s) | {r['wall_s']} / {r['cpu_s']} |

Stream stages (line buffer in pixels, kernel datapath latency in cycles), then the unrolled tail
{', '.join(r['tail_ops'])}:

| ops | geometry | line buffer | kernel latency |
|---|---|---|---|
{stages}

{shared}

Per module (Yosys): `_s<k>` a stage's line buffer and counters, `_k<k>` its kernel datapath (one window),
`_tail*` the unrolled layers after the last stage, the top the input register, collector and frame hold:

| module | LUT | LUTRAM | FF | CARRY | longest path (ns) |
|---|---|---|---|---|---|
{modules}
"""


if __name__ == "__main__":
    sys.exit(main())
