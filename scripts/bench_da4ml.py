"""Benchmark: the project's generated RTL beside da4ml's, for the same fixed-point network.

Both generators get the same firmware model (integer weights, every tensor's
ap_fixed format). Ours goes through ``trigger.backends.rtl.write_rtl``; da4ml runs
in its own venv (.venv-da4ml, made by scripts/setup_da4ml.sh, because da4ml 0.6
needs numpy>=2) through scripts/da4ml_emit.py, and its pipelined Verilog is put
behind the project's one standard RTL top (``trigger.backends.rtl.standard_top``)
as a stage, followed by a generated alignment stage (each da4ml output element,
padded to da4ml's common width and fraction, requantized to the model's output
format by the RTL builder). Every design
is simulated under cocotb on the same seeded vectors and compared, as integers,
with the numpy emulator (so a wrong latency or a different rounding shows up
as mismatches), then synthesised with the same Yosys script.

The networks, in one run: the benchmark network, the jet tagger shape
16-64-32-32-5 with seeded random 6-bit weights in the formats hls4ml's precision
inference gives the reference QKeras jet tagger (see ``jet_tagger``; ``--shape``
makes it smaller for a quick run), and the reference QKeras jet tagger itself
(../shared/reference_models/qkeras_3layer.json, converted by hls4ml as ``trigger
build`` does; skipped with a note when absent). ``--bundle DIR`` compares the
firmware model of a ``trigger build`` bundle instead (dense, scale, relu and linear ops).

Ours is built with each ``--pipeline`` ('auto' at ``--clock`` ns by default); da4ml,
for each of our latencies, at the cutoff that gives the same latency, so that logic
depth can be compared at equal latency (and at any ``--cutoffs``). Yosys runs in the
background while the designs are simulated; ``--abc`` picks its LUT mapping
(``abc -fast`` by default, see trigger.synth; ``fast,full`` measures both). The
machine is recorded (CPUs, load average, CPU seconds): on a shared machine the
times are wall-clock times under that load.

Usage: scripts/setup_da4ml.sh && .venv/bin/python scripts/bench_da4ml.py [--networks random,reference]
       [--shape 16,64,32,32,5] [--pipeline layer,auto] [--cutoffs 5] [--abc fast,full] [--vectors N]
       [--jobs N] [--no-sim]
Writes benchmarks/da4ml_comparison.json and benchmarks/da4ml_comparison.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trigger.backends.rtl import ModuleBuilder, finish_module, stage_of, standard_top, write_module, write_rtl  # noqa: E402
from trigger.errors import TriggerError  # noqa: E402
from trigger.fixed import FixedFormat  # noqa: E402
from trigger.ir import FirmwareModel, TensorType, emulate  # noqa: E402
from trigger.ir.ops.activation import Linear, Relu  # noqa: E402
from trigger.ir.ops.dense import Dense  # noqa: E402
from trigger.ir.ops.scale import Scale  # noqa: E402
from trigger.rtlsim import simulate  # noqa: E402
from trigger.synth import SynthSettings, synthesize  # noqa: E402
from trigger.templates import render  # noqa: E402
from trigger.toolchain import find_tool  # noqa: E402
from trigger.vectors import test_vectors  # noqa: E402

DA4ML_PYTHON = REPO / ".venv-da4ml" / "bin" / "python"
EMIT = REPO / "scripts" / "da4ml_emit.py"
ALKAID_PYTHON = REPO / ".venv-alkaid" / "bin" / "python"  # scripts/setup_alkaid.sh; --alkaid
ALKAID_EMIT = REPO / "scripts" / "alkaid_emit.py"
TOP = "trigger_top"
WEIGHT_SEED = 5
SHAPE = (16, 64, 32, 32, 5)
REFERENCE_TAGGER = REPO.parent / "shared" / "reference_models" / "qkeras_3layer.json"


# ----------------------------------------------------------------- the network
def jet_tagger(seed: int = WEIGHT_SEED, shape: tuple[int, ...] = SHAPE) -> FirmwareModel:
    """16-64-32-32-5 (or ``shape``) with seeded random 6-bit weights, formats as hls4ml gives the QKeras jet tagger.

    quantized_bits(6,0,alpha=1) weights and biases are ap_fixed<6,1>; inputs
    ap_fixed<16,6>; accumulators hls4ml's exact 'auto' type (product width plus
    ceil(log2(n_in + 1)) bits); quantized_relu(6) outputs ap_ufixed<6,0,RND_CONV,SAT>;
    the last Dense is linear (the softmax is dropped), output = accumulator.
    """
    rng = np.random.default_rng(seed)
    wfmt = FixedFormat.parse("fixed<6,1>")
    relu_fmt = FixedFormat.parse("ufixed<6,0,RND_CONV,SAT>")
    in_fmt = FixedFormat.parse("fixed<16,6>")
    ops = []
    fmt = in_fmt
    for k, (n_in, n_out) in enumerate(zip(shape[:-1], shape[1:])):
        prod = fmt.product_format(wfmt)
        grow = math.ceil(math.log2(n_in + 1))
        acc = FixedFormat(prod.width + grow, prod.integer + grow, True)
        w = rng.integers(wfmt.min_raw, wfmt.max_raw + 1, (n_in, n_out), dtype=np.int64)
        b = rng.integers(wfmt.min_raw, wfmt.max_raw + 1, n_out, dtype=np.int64)
        last = k == len(shape) - 2
        name = "output" if last else f"fc{k + 1}"
        ops.append(Dense(name, TensorType.uniform(fmt, n_in), TensorType.uniform(acc, n_out), w, b, wfmt, wfmt, acc))
        fmt = acc
        if not last:
            ops.append(Relu(f"relu{k + 1}", TensorType.uniform(fmt, n_out), TensorType.uniform(relu_fmt, n_out)))
            fmt = relu_fmt
    name = "jet_tagger_random6" if tuple(shape) == SHAPE else "random6_" + "_".join(map(str, shape))
    model = FirmwareModel(name, TensorType.uniform(in_fmt, shape[0]), ops)
    model.validate()
    return model


def load_bundle(bundle: Path) -> FirmwareModel:
    if not (bundle / "firmware_model.json").is_file():
        raise SystemExit(f"bench_da4ml: {bundle / 'firmware_model.json'} not found (expected a trigger bundle folder)")
    try:
        return FirmwareModel.load(bundle)
    except (TriggerError, ValueError, KeyError, TypeError) as err:
        where = str(bundle / "firmware_model.json")
        raise SystemExit(f"bench_da4ml: {err}" if where in str(err) else f"bench_da4ml: {where}: {err}") from None


def uniform_format(t: TensorType, what: str) -> FixedFormat:
    """The one format of a tensor's elements (da4ml's tracer and this script need one per tensor)."""
    if not t.is_uniform:
        raise SystemExit(f"bench_da4ml: {what} has elements of different formats ({t.describe()}); "
                         "only networks with one format per tensor are compared")
    return t.formats[0]


# ------------------------------------------------------------- spec for da4ml
def fmt_fields(fmt: FixedFormat) -> dict:
    if fmt.is_int:
        fmt = fmt.as_fixed()
    return {"signed": fmt.signed, "width": fmt.width, "integer": fmt.integer,
            "rounding": fmt.rounding, "overflow": fmt.overflow}


def da4ml_spec(model: FirmwareModel, designs: list[dict], vectors: np.ndarray, part: str) -> dict:
    """The network as explicit integer steps for scripts/da4ml_emit.py (no format strings to re-parse)."""
    steps = []
    for layer in model.ops:
        out_fmt = uniform_format(layer.output, f"op {layer.name!r}")
        if isinstance(layer, Dense):
            plan = layer.plan()
            acc = layer.accum_fmt
            if plan["shift"] < 0:
                raise SystemExit(f"bench_da4ml: layer {layer.name}: the accumulator rounds products "
                                 f"({acc} has fewer fractional bits than {plan['product_format']}); "
                                 "da4ml's matrix solver needs exact products")
            overflow = plan["product_can_overflow"] or plan["sum_can_overflow"]
            if overflow and acc.overflow != "WRAP":
                raise SystemExit(f"bench_da4ml: layer {layer.name}: the saturating accumulator {acc} can "
                                 "overflow, so the sum order matters; widen it")
            steps.append({"op": "dense", "layer": layer.name, "weight": layer.weight.tolist(),
                          "weight_frac": layer.weight_fmt.fractional,
                          "bias": [int(v) for v in plan["bias_acc"]], "bias_frac": acc.fractional,
                          # a wrapping accumulator: the exact sum modulo 2**W equals hls4ml's in any order
                          "wrap_to": fmt_fields(acc) if overflow else None})
            steps.append({"op": "cast", "layer": layer.name, "to": fmt_fields(out_fmt)})
        elif isinstance(layer, Scale):
            steps.append({"op": "scale", "layer": layer.name, "scale": layer.scale.tolist(),
                          "scale_frac": layer.scale_fmt.fractional, "bias": layer.bias.tolist(),
                          "bias_frac": layer.bias_fmt.fractional})
            steps.append({"op": "cast", "layer": layer.name, "to": fmt_fields(out_fmt)})
        elif isinstance(layer, (Relu, Linear)):
            if isinstance(layer, Relu):
                steps.append({"op": "relu", "layer": layer.name})
            steps.append({"op": "cast", "layer": layer.name, "to": fmt_fields(out_fmt)})
        else:
            raise SystemExit(f"bench_da4ml: op {layer.name!r} ({layer.kind}) has no da4ml mapping "
                             "(dense, scale, relu and linear do)")
    return {"name": model.name, "n_inputs": model.input.n,
            "input": fmt_fields(uniform_format(model.input, "the model input")),
            "output": fmt_fields(uniform_format(model.output, "the model output")), "steps": steps,
            "designs": designs, "part": part, "hard_dc": 2, "vectors": vectors.tolist()}


def run_da4ml(spec: dict, work: Path, tool: str = "da4ml") -> tuple[dict, float]:
    """Runs ``tool``'s emitter (da4ml or alkaid, each in its own venv) on the spec; (emit.json, seconds)."""
    python, emit, setup = ((DA4ML_PYTHON, EMIT, "setup_da4ml.sh") if tool == "da4ml"
                           else (ALKAID_PYTHON, ALKAID_EMIT, "setup_alkaid.sh"))
    if not python.exists():
        raise SystemExit(f"bench_da4ml: {python.parent.parent.name} not found: run scripts/{setup} first")
    (work / f"spec_{tool}.json").write_text(json.dumps(spec, sort_keys=True))
    t0 = time.perf_counter()
    proc = subprocess.run([str(python), str(emit), str(work / f"spec_{tool}.json"), str(work / tool)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise DA4MLError(f"{tool}_emit failed: {tail[0]}")
    try:
        return json.loads((work / tool / "emit.json").read_text()), seconds
    except (OSError, ValueError) as err:
        raise DA4MLError(f"{tool}_emit wrote no readable {work / tool / 'emit.json'} ({err})") from None


class DA4MLError(RuntimeError):
    """da4ml (a tool run in its own venv) failed on a network: that network is skipped, with the reason."""


def layout_format(layout: dict) -> FixedFormat:
    """The format of one element of da4ml's wrapper bus (every element padded to the same width and fraction)."""
    return FixedFormat(int(layout["width"]), int(layout["width"]) - int(layout["frac"]), bool(layout["signed"]))


def align_module(model: FirmwareModel, emitted: dict, tool: str = "da4ml") -> ModuleBuilder:
    """The stage after da4ml's (or alkaid's) core: each output element, read in its padded format, cast to the
    model's output format (exact: the values already lie on that format's grid and in its range)."""
    da_fmt = layout_format(emitted["output_layout"])
    da_bus = TensorType.uniform(da_fmt, model.output.n)
    m = ModuleBuilder(f"{TOP}_{tool}_align")
    ys = []
    for i, (lsb, fmt) in enumerate(zip(da_bus.offsets, model.output.formats)):
        ys.append(m.requant(f"y{i}", m.unpack(f"x{i}", lsb, da_fmt), da_fmt, fmt))
    return finish_module(m, ys, da_bus, model.output, f"{tool} output alignment", "requant", 0)


def da4ml_top(model: FirmwareModel, emitted: dict, design: dict, work: Path, tool: str = "da4ml") -> list[Path]:
    """da4ml's (or alkaid's) design behind the standard top, then the alignment stage; all its Verilog sources."""
    in_fmt = uniform_format(model.input, "the model input")
    if layout_format(emitted["input_layout"]) != FixedFormat(in_fmt.width, in_fmt.integer, in_fmt.signed):
        raise SystemExit(f"bench_da4ml: {tool}'s input layout {emitted['input_layout']} differs from {in_fmt}")
    folder = work / tool / design["label"]
    align = align_module(model, emitted, tool)
    da_bits = model.output.n * int(emitted["output_layout"]["width"])
    core = {"module": design["wrapper"], "has_clock": True, "clock_port": "clk", "in_port": "model_inp",
            "out_port": "model_out", "w_out": da_bits}
    # da4ml registers its input (and every stage): no input register in front of it.
    knob = (f"latency cutoff {design['latency_cutoff']:g}" if "latency_cutoff" in design
            else f"{design['n_stages']} stages")
    text = standard_top(TOP, f"{tool}'s pipelined design '{design['wrapper']}' ({knob}) for network '{model.name}'",
                        model.input.elements(), model.output.elements(), [core, stage_of(align)],
                        design["latency_cycles"], input_register=False)
    top = folder / f"{TOP}.v"
    top.write_text(text)
    return [top, write_module(align, folder, TOP)] + [work / tool / s for s in design["sources"]]


# ------------------------------------------------------------------ measuring
def compare(expected: np.ndarray, got: np.ndarray, inputs: np.ndarray) -> dict:
    bad = np.flatnonzero(np.any(expected != got, axis=1))
    out = {"vectors": int(expected.shape[0]), "mismatching_vectors": int(bad.size),
           "mismatching_values": int(np.sum(expected != got))}
    if bad.size:
        i = int(bad[0])
        out["first_mismatch"] = {"vector": i, "input_raw": inputs[i].tolist(),
                                 "expected_raw": expected[i].tolist(), "got_raw": got[i].tolist()}
    return out


def measure(entry: dict, sources, data_files, model, inputs, expected, work: Path,
            simulator: str | None) -> dict:
    """Simulates the design on the vectors and compares it with the emulator."""
    if simulator is None:
        entry["rtl_vs_emulator"] = None
        entry["measured_latency_cycles"] = None
        return entry
    try:
        sim = simulate(sources, TOP, model.input.to_bits(inputs), model.input.widths, model.output.widths,
                       simulator=simulator, build_dir=work / "sim", data_files=data_files,
                       max_latency=entry["latency_cycles"] + 8)
    except TriggerError as err:  # keep the other designs' results; the table shows the error
        entry["rtl_vs_emulator"] = entry["measured_latency_cycles"] = None
        entry["simulation_error"] = " ".join(str(err).split())
        return entry
    got = model.output.from_bits(sim.outputs) if np.all(sim.outputs >= 0) else sim.outputs
    entry["rtl_vs_emulator"] = compare(expected, got, inputs)
    entry["measured_latency_cycles"] = sim.latency_cycles
    entry["measured_ii"] = sim.ii
    return entry


SIM_KEYS = ("rtl_vs_emulator", "measured_latency_cycles", "measured_ii", "simulation_error")


def _synth(entry: dict, sources, data_files, work: Path, part: str, settings: SynthSettings, reuse: bool) -> dict:
    entry = dict(entry)
    try:
        # flat_depth: the deepest register-to-register path of the whole design, through module boundaries
        # (da4ml's adders are submodules, which a per-module depth would count as one cell each)
        res = synthesize(sources, TOP, part, work_dir=work / "yosys", dsp=entry["dsp"], data_files=data_files,
                         flat_depth=True, settings=settings, cache=reuse)
    except (TriggerError, OSError) as err:  # keep the other designs' results; the table shows the error
        entry["synthesis_error"] = " ".join(str(err).split())
        return entry
    for key in ("LUT", "FF", "CARRY", "DSP", "BRAM36", "LUTRAM", "MUXF", "logic_levels", "critical_path_ns", "yosys_seconds",
                "yosys_cpu_seconds"):
        entry[key] = res[key]
    entry["yosys_settings"] = res["settings"]["summary"]
    entry["yosys_runs"] = res["settings"]["runs"]
    entry["yosys_result_reused"] = res["cached"]  # the same RTL and script ran before (trigger.synth cache)
    return entry


def synth_settings(text: str) -> list[tuple[str, SynthSettings]]:
    """--abc: 'fast', 'full' or both ('fast,full': every design synthesised both ways, for comparison)."""
    known = {"fast": SynthSettings(abc_fast=True), "full": SynthSettings(abc_fast=False)}
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or any(n not in known for n in names):
        raise SystemExit(f"bench_da4ml: --abc expects fast, full or fast,full, got {text!r}")
    return [(n, known[n]) for n in names]


def yosys_version() -> str:
    yosys = find_tool("yosys")
    if not yosys:
        return "not found"
    return subprocess.run([yosys, "-V"], capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------- main
def reference_tagger(path: Path, work: Path) -> FirmwareModel:
    """The reference QKeras jet tagger converted by hls4ml, as ``trigger build`` converts it."""
    from trigger.frontends.keras import load_model
    from trigger.frontends.network import convert

    loaded = load_model(path)
    _, model = convert(loaded, {"hls": {"backend": "Vitis"}}, output_dir=work / "reference_hls")
    model.validate()
    return model


def bench_network(model: FirmwareModel, source: dict, args, simulator: str | None, work: Path, pool) -> dict:
    """Our designs (one per --pipeline) and da4ml's (its cutoffs, plus one per our latency), simulated and
    synthesised; the network's part of the report. Yosys runs go to ``pool`` as soon as a design is written,
    so they overlap the simulations; the report's ``designs`` holds their futures until ``main`` collects them."""
    source["firmware_model_sha256"] = model.digest()
    inputs = test_vectors(model, args.vectors)[:args.vectors]
    expected = emulate(model, inputs).outputs
    pipelines = [int(p) if p.strip().isdigit() else p.strip() for p in args.pipeline.split(",")]
    ours = []
    for p in pipelines:
        t0 = time.perf_counter()
        design = write_rtl(model, work / f"ours_{p}", top=TOP, pipeline=p, clock_period_ns=args.clock,
                           multiplier=args.multiplier)
        ours.append((p, design, time.perf_counter() - t0))
    designs = [{"label": f"cutoff_{c}", "latency_cutoff": float(c)} for c in args.cutoffs.split(",") if c.strip()]
    for target in sorted({d.latency_cycles for _, d, _ in ours}):
        designs.append({"label": f"latency_{target}", "target_latency": target})
    jobs = [("trigger", f"pipeline={p}", d, gen_s) for p, d, gen_s in ours]
    emitted = alkaid = None
    if not args.ours_only:
        emitted, emit_seconds = run_da4ml(da4ml_spec(model, designs, inputs, args.part), work)
        jobs += [("da4ml", f"latency_cutoff={d['latency_cutoff']:g}", d, emit_seconds) for d in emitted["designs"]]
    if args.alkaid and not args.ours_only:  # alkaid at each of our latencies (its n_stages), from the same spec
        targets = [{"label": f"latency_{t}", "target_latency": t} for t in sorted({d.latency_cycles for _, d, _ in ours})]
        spec = {**da4ml_spec(model, targets, inputs, args.part), "clock_period_ns": args.clock}
        alkaid, alkaid_seconds = run_da4ml(spec, work, "alkaid")
        jobs += [("alkaid", f"n_stages={d['n_stages']}", d, alkaid_seconds) for d in alkaid["designs"]]
    tasks, seen = [], set()
    for generator, config, design, gen_s in jobs:
        if (generator, config) in seen:  # two latency targets can give the same da4ml cutoff
            continue
        seen.add((generator, config))
        sub = work / "measure" / f"{generator}_{config.replace('=', '_')}"
        entry = {"generator": generator, "config": config, "generate_seconds": round(gen_s, 2),
                 "dsp": not args.no_dsp}
        if generator == "trigger":
            entry.update(latency_cycles=design.latency_cycles, multiplier=design.multiplier,
                         estimated_ns_per_stage=design.stage_delay_ns, max_delay_ns_per_stage=design.max_delay_ns)
            sources, data = design.sources, []
        else:
            entry.update(latency_cycles=design["latency_cycles"],
                         da4ml_cost_estimate_lut=round(design["cost_estimate"]),
                         da4ml_reg_bits=design["reg_bits"])
            emitter = emitted if generator == "da4ml" else alkaid
            sources = da4ml_top(model, emitter, design, work, generator)
            data = [work / generator / f for f in design["data_files"]]
        tasks.append((entry, sources, data, sub))
    # Yosys in the background (independent processes), the simulations meanwhile.
    futures = []
    for entry, sources, data, sub in tasks:
        for label, settings in args.synth_settings:
            config = entry["config"] + ("" if len(args.synth_settings) == 1 else f", abc {label}")
            futures.append(pool.submit(_synth, {**entry, "config": config, "design": entry["config"]}, sources,
                                       data, sub / label, args.part, settings, args.reuse_yosys))
    sims = {}
    for entry, sources, data, sub in tqdm(tasks, desc=f"simulate {model.name}", unit="design",
                                          disable=simulator is None):
        sims[entry["config"]] = measure(dict(entry), sources, data, model, inputs, expected, sub, simulator)
    results = (futures, sims)
    return {
        "name": model.name, "source": source, "n_inputs": model.input.n, "n_outputs": model.output.n,
        "input_format": str(model.input.format), "output_format": str(model.output.format),
        "layers": [_describe(op) for op in model.ops], "vectors": int(inputs.shape[0]),
        **({"da4ml": {"version": emitted["da4ml_version"], "hard_dc": emitted["hard_dc"],
                      "interpreter_vs_emulator": compare(
                          expected, np.asarray(emitted["interpreter_outputs"], dtype=np.int64), inputs),
                      "output_layout": emitted["output_layout"]}} if emitted else {}),
        **({"alkaid": {"version": alkaid["alkaid_version"], "hard_dc": alkaid["hard_dc"],
                       "interpreter_vs_emulator": compare(
                           expected, np.asarray(alkaid["interpreter_outputs"], dtype=np.int64), inputs),
                       "output_layout": alkaid["output_layout"]}} if alkaid else {}),
        "designs": results,
    }


def conditions() -> dict:
    """The machine the numbers were measured on (shared: other work may be running)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "load_average_at_start": [round(v, 2) for v in load] if load else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Compare the project's RTL with da4ml's on the same networks "
                                             "(Yosys LUT/FF/DSP, logic levels, latency, bit-exactness).")
    ap.add_argument("--networks", default="random,reference",
                    help="which networks, comma separated: 'random' (the seeded 16-64-32-32-5 benchmark "
                         "network, see --shape) and 'reference' (the QKeras jet tagger, see --reference); "
                         "default both")
    ap.add_argument("--bundle", type=Path, help="compare BUNDLE/firmware_model.json instead of --networks")
    ap.add_argument("--shape", default=",".join(map(str, SHAPE)),
                    help="layer sizes of the random network, comma separated (default the jet tagger's "
                         "16,64,32,32,5; e.g. 8,8,4 for a quick run)")
    ap.add_argument("--reference", type=Path, default=REFERENCE_TAGGER,
                    help="the reference QKeras jet tagger's JSON (weights beside it; default "
                         "../shared/reference_models/qkeras_3layer.json)")
    ap.add_argument("--vectors", type=int, default=2000, help="simulated test vectors per design (default 2000)")
    ap.add_argument("--part", default="xcvu13p-flga2577-2-e", help="part for Yosys synth_xilinx")
    ap.add_argument("--pipeline", default="auto",
                    help="our write_rtl pipelines, comma separated ('layer', 'auto' or adder levels per stage; "
                         "default auto)")
    ap.add_argument("--clock", type=float, default=5.0,
                    help="target clock period in ns for pipeline auto (default 5.0)")
    ap.add_argument("--multiplier", default="shift_add", help="our constant products: shift_add (default), "
                                                              "dsp, or N (constants over N bits as '*')")
    ap.add_argument("--cutoffs", default="", help="da4ml latency cutoffs, comma separated (e.g. 5, the da4ml "
                                                  "CLI's default; default none); da4ml designs with each of our "
                                                  "latencies are always built")
    ap.add_argument("--alkaid", action="store_true",
                    help="also build alkaid (da4ml's successor, .venv-alkaid from scripts/setup_alkaid.sh) at each "
                         "of our latencies (its n_stages), with the same spec, top, simulation and Yosys script")
    ap.add_argument("--ours-only", action="store_true",
                    help="re-measure only our designs and put them in place of ours in the existing --out JSON "
                         "(da4ml's and alkaid's rows, which our changes do not touch, kept from the run that made it)")
    ap.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--no-sim", action="store_true", help="skip the RTL simulation (resources only)")
    ap.add_argument("--no-dsp", action="store_true", help="forbid DSP inference in Yosys (LUTs only)")
    ap.add_argument("--jobs", type=int, default=2, help="designs synthesised at once (default 2; each runs one "
                                                        "Yosys process per module on the free CPUs)")
    ap.add_argument("--reuse-yosys", action="store_true",
                    help="take Yosys results from the cache (trigger.synth) when the same RTL and script ran "
                         "before; by default Yosys runs, so that its times are measured")
    ap.add_argument("--abc", default="fast", help="Yosys LUT mapping: fast (abc -fast, default), full "
                                                  "(synth_xilinx's own abc) or fast,full (both, for comparison)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "da4ml_comparison",
                    help="output path without suffix (default benchmarks/da4ml_comparison)")
    ap.add_argument("--keep", type=Path, help="keep the generated designs in this folder")
    args = ap.parse_args(argv)
    simulator = None if args.no_sim else args.simulator
    args.synth_settings = synth_settings(args.abc)
    start = conditions()
    t_start, cpu_start = time.perf_counter(), _cpu_seconds()

    work = Path(tempfile.mkdtemp(prefix="bench-da4ml-")) if not args.keep else args.keep
    work.mkdir(parents=True, exist_ok=True)
    networks, skipped = [], []
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        if args.bundle:
            wanted = [("bundle", lambda: load_bundle(args.bundle), {"kind": "bundle", "path": str(args.bundle)})]
        else:
            try:
                shape = tuple(int(n) for n in args.shape.split(","))
            except ValueError:
                shape = ()
            if len(shape) < 2 or min(shape) < 1:
                ap.error(f"--shape must be at least two positive layer sizes, got {args.shape!r}")
            known = {
                "random": (lambda: jet_tagger(shape=shape), {"kind": "random", "seed": WEIGHT_SEED,
                                                             "shape": list(shape)}),
                "reference": (lambda: reference_tagger(args.reference, work),
                              {"kind": "reference", "path": args.reference.name}),
            }
            names = [n.strip() for n in args.networks.split(",") if n.strip()]
            unknown = [n for n in names if n not in known]
            if unknown or not names:
                ap.error(f"--networks: unknown {unknown or names}, expected random and/or reference")
            wanted = [(n, *known[n]) for n in names]
        for label, make, source in wanted:
            if label == "reference" and not args.reference.is_file():
                skipped.append(f"reference: {args.reference} not found")
                print(f"bench_da4ml: skipping the reference jet tagger: {args.reference} not found", file=sys.stderr)
                continue
            sub = work / label
            sub.mkdir(parents=True, exist_ok=True)
            print(f"bench_da4ml: {label}: generating, simulating (Yosys runs in the background)", file=sys.stderr)
            try:
                networks.append(bench_network(make(), source, args, simulator, sub, pool))
            except (TriggerError, DA4MLError, OSError, subprocess.SubprocessError) as err:  # the others still run
                skipped.append(f"{label}: {' '.join(str(err).split())}")
                print(f"bench_da4ml: {label} failed: {skipped[-1]}", file=sys.stderr)
        for network in networks:  # wait for Yosys
            futures, sims = network["designs"]
            done = []
            for future in tqdm(futures, desc=f"synthesise {network['name']}", unit="design"):
                done.append(future.result())
            for entry in done:  # the simulation's findings (one per design, whatever the Yosys settings)
                sim = sims[entry.pop("design")]
                entry.update({k: v for k, v in sim.items() if k in SIM_KEYS})
            network["designs"] = done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    report = {
        "part": args.part, "simulator": simulator, "clock_period_ns": args.clock,
        "tools": {"yosys": yosys_version()}, "conditions": {**start, "end_to_end_seconds":
                                                            round(time.perf_counter() - t_start, 1),
                                                            "cpu_seconds": round(_cpu_seconds() - cpu_start, 1)},
        "networks": networks, "skipped": skipped, "cutoffs": args.cutoffs, "jobs": args.jobs,
        "abc": args.abc,
        "yosys_results_reused": sum(bool(d.get("yosys_result_reused")) for n in networks for d in n["designs"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    if args.ours_only:
        report = with_ours_only(json.loads(json_path.read_text()), report)
    write_report(report, args.out)
    print(md_path.read_text())
    if skipped and not (args.networks == "random,reference" and skipped == [f"reference: {args.reference} not found"]):
        return 1  # a network that failed (a missing reference model alone is only noted)
    bad = [d for n in networks for d in n["designs"]
           if (d["rtl_vs_emulator"] and d["rtl_vs_emulator"]["mismatching_vectors"]) or "synthesis_error" in d
           or "simulation_error" in d]
    return 1 if bad else 0


def write_report(report: dict, out: Path) -> None:
    """``out``.json and ``out``.md (the template, then the note of an ``--ours-only`` re-run)."""
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    json_path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    text = render("report/da4ml_comparison.md.j2", r=report)
    if report.get("rerun"):
        r = report["rerun"]
        text += (f"\nOur rows re-measured later with `--ours-only` (load average "
                 f"{', '.join(map(str, r['conditions']['load_average_at_start']))} at its start, "
                 f"{r['conditions']['end_to_end_seconds']} s): {r['why']}; da4ml's and alkaid's rows and the "
                 "conditions above are from the full run.\n\nTried on the constant arithmetic (adder-bit count first, "
                 "then Yosys for what was kept):\n" + "".join(f"- {t}\n" for t in r.get("tried", [])))
    md_path.write_text(text)


RERUN_WHY = ("adder ranges from the exact range of each sum's linear form (trigger.backends.rtl.builder._Forms), "
             "a relu after a saturating cast without a LUT level of its own in the estimate")
# issue 24, measured by the adder-bit count (the builder's adder result bits above the higher operand LSB, about one
# LUT each) on the two networks, before Yosys; only the first was kept
TRIED = [
    "exact adder ranges: adder bits 52,812 -> 52,537 (-0.52%) on jet_tagger_random6, 29,375 -> 29,195 (-0.61%) on "
    "qkeras_3layer; kept",
    "a decomposition of the matrix before the subexpression search (a column as its difference to another column, "
    "shifted 0-2 bits, either sign, when that has fewer signed digits; parents unlinked; the plan kept only when its "
    "estimated bits are fewer): adder bits -0.43% and +0.04% (with exact ranges -0.24% and -0.14% more), register "
    "bits -21% and +4%, twice the solving time; chains of up to 8 links: -1.6% and -0.5% of the estimated bits "
    "but up to 8 adders more on a path; not kept",
]


def with_ours_only(previous: dict, rerun: dict) -> dict:
    """The full run's report with our rows (and their network's firmware model check) from ``rerun``."""
    fresh = {n["name"]: n for n in rerun["networks"]}
    for network in previous["networks"]:
        new = fresh.get(network["name"])
        if new is None:
            continue
        if new["source"].get("firmware_model_sha256") != network["source"].get("firmware_model_sha256"):
            raise SystemExit(f"bench_da4ml --ours-only: {network['name']}'s firmware model differs from the full run's")
        network["designs"] = ([d for d in new["designs"] if d["generator"] == "trigger"]
                              + [d for d in network["designs"] if d["generator"] != "trigger"])
    previous["rerun"] = {"conditions": rerun["conditions"], "why": RERUN_WHY, "networks": sorted(fresh),
                         "tried": TRIED}
    return previous


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (Yosys, Verilator, g++, da4ml)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _describe(op) -> dict:
    d = {"name": op.name, "type": op.kind, "n_in": op.input.n, "n_out": op.output.n,
         "output_format": str(op.output.format)}
    if isinstance(op, Dense):
        d.update(weight_format=str(op.weight_fmt), accum_format=str(op.accum_fmt))
    return d


if __name__ == "__main__":
    sys.exit(main())
