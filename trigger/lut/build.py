"""``build_bundle``: trigger.yml -> data -> compression -> regressor -> table -> firmware bundle.

Everything is written into a temporary folder beside the destination and
renamed into place at the end (trigger.bundle.staging), so a failure leaves
nothing behind. Same inputs give a byte-identical bundle: seeded data and
training, sorted JSON keys, no timestamps.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from trigger.bundle import MANIFEST, file_hashes, staging
from trigger.lut.binning import AddressLayout, build_layout
from trigger.lut.config import LutConfig, load_config
from trigger.lut.dataset import load_samples
from trigger.lut.firmware import hex_lines, input_width, write_firmware
from trigger.lut.physics import dumps, physics_numbers, physics_plots
from trigger.toolchain import package_versions
from trigger.lut.regressor import from_target, make_regressor, to_target
from trigger.lut.table import emulate, generate_table

N_RANDOM_VECTORS = 2048  # uniform over the raw ranges, plus as many physics muons


def edge_and_random_vectors(layout: AddressLayout, test_raw: np.ndarray, seed: int) -> np.ndarray:
    """Raw vectors for the compression checks: every bin edge and its neighbour below, the raw
    extremes and zero per feature (other features random), uniform random raw values, and
    physics muons."""
    rng = np.random.default_rng(seed)
    n_f = len(layout.fields)

    def uniform(n):
        return np.stack([rng.integers(f.min_raw, f.max_raw + 1, n) for f in layout.fields], axis=1)

    blocks = []
    for i, f in enumerate(layout.fields):
        values = np.unique(np.concatenate([f.edges, f.edges - 1, [f.min_raw, f.max_raw, 0, 1, -1]]))
        values = values[(values >= f.min_raw) & (values <= f.max_raw)]
        block = uniform(len(values))
        block[:, i] = values
        blocks.append(block)
    blocks.append(uniform(N_RANDOM_VECTORS))
    pick = rng.choice(len(test_raw), size=min(N_RANDOM_VECTORS, len(test_raw)), replace=False)
    blocks.append(test_raw[np.sort(pick)])
    out = np.concatenate(blocks).astype(np.int64)
    assert out.shape[1] == n_f
    return out


def bus_patterns(layout: AddressLayout, raw: np.ndarray) -> np.ndarray:
    """Raw features -> unsigned W_IN-bit element patterns (two's complement for signed features)."""
    w_in = input_width(layout)
    return np.asarray(raw, dtype=np.int64) & ((1 << w_in) - 1)


def _write_vectors(bundle: Path, layout: AddressLayout, raw: np.ndarray, words: np.ndarray, word_bits: int):
    vec = bundle / "vectors"
    vec.mkdir(parents=True, exist_ok=True)
    np.save(vec / "inputs.npy", raw.astype(np.int64))
    np.save(vec / "outputs.npy", words.astype(np.int64).reshape(-1, 1))
    w_in = input_width(layout)
    bus = np.zeros(len(raw), dtype=object)
    for i, col in enumerate(bus_patterns(layout, raw).T):
        bus = bus + (col.astype(object) << (i * w_in))
    digits = (w_in * raw.shape[1] + 3) // 4
    (vec / "inputs.mem").write_text("".join(f"{int(v):0{digits}x}\n" for v in bus))
    (vec / "outputs.mem").write_bytes(hex_lines(words, word_bits))
    (vec / "inputs.i32").write_bytes(np.ascontiguousarray(raw, dtype="<i4").tobytes())
    (vec / "outputs.u32").write_bytes(np.ascontiguousarray(words, dtype="<u4").tobytes())


def build_bundle(config_dir: Path, out_dir: Path, progress: bool = True) -> Path:
    """Build the LUT bundle for ``config_dir/trigger.yml`` into ``out_dir``; returns ``out_dir``."""
    config = load_config(Path(config_dir))  # every config error is raised before anything is written
    timings = {}
    t0 = time.perf_counter()
    train, test = load_samples(config)
    timings["data_seconds"] = time.perf_counter() - t0

    layout = build_layout(config, train.raw)
    target = config.model["target"]
    t0 = time.perf_counter()
    regressor = make_regressor(config.model, config.seed)
    x_train = layout.regressor_inputs(layout.bins_of(layout.compress(train.raw)))
    regressor.fit(x_train, to_target(train.pt, target))
    timings["train_seconds"] = time.perf_counter() - t0

    table = generate_table(layout, regressor, target, config.output, progress=progress)
    timings["table_seconds"] = table.seconds

    test_address = layout.compress(test.raw)
    pt_float = from_target(regressor.predict(layout.regressor_inputs(layout.bins_of(test_address))), target)
    pt_firmware = config.output.to_float(table.words[test_address].astype(np.int64))
    numbers = physics_numbers(test.pt, pt_float, pt_firmware, config.thresholds, config.low_pt_max)
    plots = physics_plots(numbers)

    raw_vectors = edge_and_random_vectors(layout, test.raw, config.seed)
    out_words = emulate(layout, table.words, raw_vectors)

    out_dir = Path(out_dir)
    with staging(out_dir) as tmp:
        fw = write_firmware(tmp, layout, table.words, config.name, config.output, config.part, config.clock_mhz)
        _write_vectors(tmp, layout, raw_vectors, out_words, config.output.width)
        (tmp / "reports" / "plots").mkdir(parents=True, exist_ok=True)
        for name, data in plots.items():
            (tmp / "reports" / "plots" / name).write_bytes(data)
        (tmp / "reports" / "physics.json").write_text(dumps(numbers))
        (tmp / "reports" / "lut.md").write_text(_report_md(config, layout, table, numbers))
        manifest = _manifest(config, layout, table, fw, regressor, len(raw_vectors))
        manifest["files"] = file_hashes(tmp, skip_dirs=())
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if progress:
        print(f"{config.name}: {1 << layout.bits} addresses x {config.output.width} bits, table in "
              f"{timings['table_seconds']:.1f} s, training {timings['train_seconds']:.1f} s -> {out_dir}")
    return out_dir


def _report_md(config: LutConfig, layout: AddressLayout, table, numbers: dict) -> str:
    """The address layout and the physics numbers, for people (reports/lut.md)."""
    from trigger.lut.firmware import LATENCY_CYCLES, _env

    fields = []
    for i, f in enumerate(layout.fields):
        edges = [int(e) for e in f.edges]
        text = ", ".join(map(str, edges)) if len(edges) <= 16 else \
            ", ".join(map(str, edges[:8])) + f", ... ({len(edges)} edges) ..., " + ", ".join(map(str, edges[-4:]))
        fields.append({"name": f.name, "bits": f.bits, "lsb": f.lsb, "binning": f.binning, "raw_bits": f.raw_bits,
                       "signed": f.signed, "element": i, "edges_text": text})
    fmt = config.output
    return _env().get_template("lut_report.md.j2").render(
        name=config.name, address_bits=layout.bits, depth=1 << layout.bits, word_bits=fmt.width,
        fields_msb_first=sorted(fields, key=lambda f: -f["lsb"]), output_format=fmt.cpp, output_lsb=float(fmt.lsb),
        output_max=float(fmt.max_value), saturating=fmt.overflow != "WRAP", target=config.model["target"],
        saturated=table.saturated, latency=LATENCY_CYCLES, physics=numbers,
        thresholds=list(numbers["turn_on"]["float"]))


def _manifest(config: LutConfig, layout: AddressLayout, table, fw: dict, regressor, n_vectors: int) -> dict:
    fmt = config.output
    clock_ns = round(1000.0 / config.clock_mhz, 4)
    config_text = config.path.read_bytes()
    return {
        "kind": "lut",
        "name": config.name,
        "top": config.name,
        "format_version": 1,
        "config_sha256": hashlib.sha256(config_text).hexdigest(),
        "model": {"regressor": regressor.describe(), "settings": config.model,
                  "model_sha256": table.model_sha256, "seed": config.seed,
                  "data": {"source": config.source, "n_train": config.n_train, "n_test": config.n_test}},
        "model_hash": table.model_sha256,
        "address": layout.describe(),
        "inputs": [{"name": f.name, "element": i, "raw_bits": f.raw_bits, "signed": f.signed,
                    "encoding": "twos_complement" if f.signed else "unsigned"}
                   for i, f in enumerate(layout.fields)],
        "output": {"name": "pt", "word_bits": fmt.width, "format": fmt.cpp, "lsb": float(fmt.lsb),
                   "max_value": float(fmt.max_value), "unit": "GeV", "encoding": "unsigned",
                   "saturating": fmt.overflow != "WRAP", "target": config.model["target"]},
        "table": {"address_bits": layout.bits, "depth": 1 << layout.bits, "word_bits": fmt.width,
                  "saturated_addresses": table.saturated,
                  "table_sha256": hashlib.sha256(np.ascontiguousarray(table.words, dtype="<u4").tobytes()).hexdigest()},
        "rtl": {"top": fw["top"], "sources": fw["sources"], "data_files": fw["data_files"],
                "latency_cycles": fw["latency_cycles"], "ii": fw["ii"], "n_in": fw["n_in"], "w_in": fw["w_in"],
                "n_out": fw["n_out"], "w_out": fw["w_out"]},
        "hls": fw["hls"],
        "latency_cycles": fw["latency_cycles"],
        "target": {"part": config.part, "clock_mhz": config.clock_mhz, "clock_period_ns": clock_ns},
        "budget": config.budget,
        "vectors": {"count": n_vectors, "inputs": "vectors/inputs.npy", "outputs": "vectors/outputs.npy",
                    "kind": "bin edges, raw extremes, uniform random raw values, physics muons"},
        "tools": package_versions("trigger", "numpy", "scikit-learn", "tensorflow", "jinja2", "matplotlib"),
    }
