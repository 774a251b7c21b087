"""The LUT frontend: trigger.yml -> data -> compression -> regressor -> table -> firmware model.

The table becomes three ops, ``bucketize`` (raw features -> bins), ``concat``
(bins -> address) and ``lookup`` (address -> word), so the shared bundle
writer, test vectors, verifier and report treat it like any other design.
The config is checked completely before the long work (data, training, the
table); training and data are seeded, so the same config gives the same bundle.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from trigger.errors import ConfigError
from trigger.fixed import FixedFormat
from trigger.frontends import DEFAULT_PIPELINE, BuildOptions, Design, clock_period
from trigger.ir.model import FirmwareModel, emulate
from trigger.ir.ops.bucketize import Bucketize
from trigger.ir.ops.concat import Concat
from trigger.ir.ops.lookup import Lookup
from trigger.ir.tensor import TensorType
from trigger.frontends.lut.binning import AddressLayout, build_layout
from trigger.frontends.lut.config import LutConfig, check_config
from trigger.frontends.lut.dataset import load_samples
from trigger.frontends.lut.physics import dumps, physics_numbers, physics_plots
from trigger.frontends.lut.regressor import from_target, make_regressor, to_target
from trigger.frontends.lut.table import Table
from trigger.templates import render

PHYSICS_VECTORS = 2048  # test muons stored among the bundle's vectors: realistic raw inputs
DEFAULT_VECTORS = 8192  # stored vectors in all (the exhaustive address cover comes on top at verify time)


def design_from_config(config: dict, path: Path, options: BuildOptions) -> Design:
    """The design of a ``kind: lut`` trigger.yml (already read as data from ``path``)."""
    path = Path(path)
    cfg = check_config(config, path)  # every config error before the long work
    part, clock_ns, pipeline = _target(cfg, options)
    if _distributed(cfg, options):
        from trigger.cluster import scale_settings

        scale_settings(cfg.scale, cfg.path, options.scheduler, options.workers)  # a bad --scheduler fails now
    progress = sys.stderr.isatty()

    t0 = time.perf_counter()
    train, test = load_samples(cfg)
    layout = build_layout(cfg, train.raw)
    target = cfg.model["target"]
    regressor = make_regressor(cfg.model, cfg.seed)
    regressor.fit(layout.regressor_inputs(layout.bins_of(layout.compress(train.raw))), to_target(train.pt, target))
    train_s = time.perf_counter() - t0
    bundle_dirs, parts_manifest = {}, None
    table, parted, bundle_dirs = _table_in_parts(cfg, options, layout, regressor, target, progress)
    if cfg.memory == "external":
        table_sha256 = parted.table_sha256  # sha256 of the per-part sha256s (parts.PartedTable)
        parts_manifest = {"files": [p["file"] for p in parted.parts], "part_words": parted.part_words,
                          "dtype": parted.dtype, "sha256": [p["sha256"] for p in parted.parts],
                          "table_sha256_is": parted.digest_text(), "read_latency": cfg.read_latency}
    else:
        table_sha256 = hashlib.sha256(np.ascontiguousarray(table.words, dtype="<u4").tobytes()).hexdigest()
    meta = {"address": layout.describe(), "regressor": regressor.describe(), "target": target,
            "model_sha256": table.model_sha256, "table_sha256": table_sha256,
            "saturated_addresses": table.saturated}
    if cfg.memory == "external":
        model = memory_model(cfg, layout, parted, meta)
        model.ops[-1].attach(bundle_dirs["memory"].parent)
    else:
        model = firmware_model(cfg.name, layout, cfg.output, table.words, meta)
    model.validate()

    # Physics: the float regressor on the compressed inputs vs the firmware model's words.
    pt_float = from_target(regressor.predict(layout.regressor_inputs(layout.bins_of(layout.compress(test.raw)))),
                           target)
    pt_firmware = cfg.output.to_float(emulate(model, test.raw).outputs[:, 0])
    numbers = physics_numbers(test.pt, pt_float, pt_firmware, cfg.thresholds, cfg.low_pt_max)
    reports = {f"plots/{name}": data for name, data in physics_plots(numbers).items()}
    reports["physics.json"] = dumps(numbers).encode()
    reports["lut.md"] = report_md(cfg, layout, table, numbers).encode()

    rng = np.random.default_rng(cfg.seed)
    pick = np.sort(rng.choice(len(test.raw), size=min(PHYSICS_VECTORS, len(test.raw)), replace=False))
    fmt, depth = cfg.output, 1 << layout.bits
    notes = [f"{table.saturated} of {depth} table words saturate {fmt.cpp}"] if table.saturated else []
    return Design(
        model=model,
        hls_backend="table_cpp",
        source_sha256=source_sha256(cfg, table),
        part=part, clock_period_ns=clock_ns, pipeline=pipeline,
        vectors=options.vectors if options.vectors is not None else DEFAULT_VECTORS,
        extra_vectors=test.raw[pick],
        reports=reports, notes=notes, budget=cfg.budget, bundle_dirs=bundle_dirs,
        manifest={
            "table": {"address_bits": layout.bits, "depth": depth, "word_bits": fmt.width, "word_format": fmt.cpp,
                      "saturated_addresses": table.saturated, "table_sha256": table_sha256,
                      "memory": cfg.memory, **({"parts": parts_manifest} if parts_manifest else {}),
                      "output": {"name": "pt", "unit": "GeV", "lsb": float(fmt.lsb), "max_value": float(fmt.max_value),
                                 "saturating": fmt.overflow != "WRAP", "target": target}},
            "model": {"regressor": regressor.describe(), "settings": cfg.model, "model_sha256": table.model_sha256,
                      "seed": cfg.seed, "data": {"source": cfg.source, "path": (cfg.raw.get("data") or {}).get("path"),
                                                 "n_train": cfg.n_train, "n_test": cfg.n_test}},
        },
        summary=f"table {depth} x {fmt.width} bits ({table.saturated} saturated), training {train_s:.1f} s, "
                f"table {table.seconds:.1f} s",
    )


def _distributed(cfg: LutConfig, options: BuildOptions) -> bool:
    """A scheduler or a worker count, on the command line or under scale: in trigger.yml."""
    return any(v is not None for v in (options.scheduler, options.workers, cfg.scale.get("scheduler"),
                                       cfg.scale.get("workers")))


def _table_in_parts(cfg: LutConfig, options: BuildOptions, layout: AddressLayout, regressor, target: str,
                    progress: bool):
    """The table evaluated part by part (parts.table_in_parts): on Dask workers when a scheduler or workers
    are set, else in this process, with the same bytes; external memory gets its parts as files."""
    import contextlib
    import shutil
    import tempfile

    from trigger.cluster import cluster, scale_settings
    from trigger.frontends.lut.parts import table_in_parts

    settings = scale_settings(cfg.scale, cfg.path, options.scheduler, options.workers)
    folder = None
    if cfg.memory == "external":  # beside the bundle (options.work_dir): the workers write the parts there
        base = Path(options.work_dir) if options.work_dir and Path(options.work_dir).is_dir() else None
        folder = Path(tempfile.mkdtemp(prefix=".trigger-table-", suffix=".partial", dir=base)) / "memory"
    try:
        executor = cluster(settings.scheduler, settings.workers) if _distributed(cfg, options) \
            else contextlib.nullcontext(None)
        with executor as client:
            parted = table_in_parts(client, layout, regressor, target, cfg.output, part_words=1 << cfg.part_bits,
                                    folder=folder, progress=progress)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder.parent, ignore_errors=True)
        raise
    table = Table(parted.words, parted.model_sha256, parted.saturated, parted.seconds)
    return table, parted, ({"memory": folder} if folder is not None else {})


def memory_model(cfg: LutConfig, layout: AddressLayout, parted, meta: dict) -> FirmwareModel:
    """bucketize -> concat -> memory_lookup: the words stay in the part files (external memory)."""
    from trigger.ir.ops.memory_lookup import MemoryLookup

    model = firmware_model(cfg.name, layout, cfg.output, np.zeros(0, dtype=np.int64), meta)
    lookup = model.ops[-1]
    parts = [{**p, "file": f"memory/{p['file']}"} for p in parted.parts]
    model.ops[-1] = MemoryLookup(lookup.name, lookup.input, lookup.output, parts=parts, part_words=parted.part_words,
                                 part_dtype=parted.dtype, read_latency=cfg.read_latency)
    return model


def _target(cfg: LutConfig, options: BuildOptions) -> tuple[str, float, object]:
    """Part, clock period and pipeline: the command line over trigger.yml; options a table has no use for are errors."""
    for name, value in (("weights", options.weights), ("precision", options.precision),
                        ("backend", options.backend), ("keep_softmax", options.keep_softmax or None)):
        if value is not None:
            raise ConfigError(f"{cfg.path}: option {name} does not apply to a look-up table (kind: lut)")
    if options.part is not None and (not isinstance(options.part, str) or not options.part):
        raise ConfigError(f"part must be an FPGA part name, got {options.part!r}")
    part = options.part or cfg.part
    if options.clock_period_ns is not None:
        clock_ns = clock_period(options.clock_period_ns, "clock period")
    else:
        clock_ns = 1000.0 / cfg.clock_mhz
    return part, clock_ns, options.pipeline if options.pipeline is not None else DEFAULT_PIPELINE


def firmware_model(name: str, layout: AddressLayout, word_fmt: FixedFormat, words: np.ndarray,
                   meta: dict) -> FirmwareModel:
    """bucketize (raw -> bins) -> concat (bins -> address) -> lookup (address -> word)."""
    names = tuple(f.name for f in layout.fields)
    raw = TensorType(tuple(f.raw_format for f in layout.fields), names)
    bins = TensorType(tuple(FixedFormat.parse(f"uint<{f.bits}>") for f in layout.fields), names)
    address = TensorType((FixedFormat.parse(f"uint<{layout.bits}>"),), ("address",))
    word = TensorType((word_fmt,), ("pt",))
    ops = [Bucketize("compress", raw, bins, np.concatenate([f.edges for f in layout.fields]).astype(np.int64),
                     [f.binning for f in layout.fields]),
           Concat("address", bins, address, [f.lsb for f in layout.fields]),
           Lookup("table", address, word, np.asarray(words, dtype=np.int64))]
    return FirmwareModel(name, raw, ops, kind="table", meta=meta)


def source_sha256(cfg: LutConfig, table: Table) -> str:
    """What the design was made from: the config, the data file (if any) and the regressor's table values."""
    digest = hashlib.sha256(cfg.path.read_bytes())
    if cfg.data_path is not None:
        digest.update(hashlib.sha256(cfg.data_path.read_bytes()).hexdigest().encode())
    digest.update(table.model_sha256.encode())
    return digest.hexdigest()


def report_md(cfg: LutConfig, layout: AddressLayout, table: Table, numbers: dict) -> str:
    """The address layout and the physics numbers, for people (reports/lut.md)."""
    fields = []
    for i, f in enumerate(layout.fields):
        edges = [int(e) for e in f.edges]
        text = ", ".join(map(str, edges)) if len(edges) <= 16 else \
            ", ".join(map(str, edges[:8])) + f", ... ({len(edges)} edges) ..., " + ", ".join(map(str, edges[-4:]))
        fields.append({"name": f.name, "bits": f.bits, "lsb": f.lsb, "binning": f.binning, "raw_bits": f.raw_bits,
                       "signed": f.signed, "element": i, "edges_text": text})
    fmt = cfg.output
    return render("lut/lut_report.md.j2",
                  name=cfg.name, address_bits=layout.bits, depth=1 << layout.bits, word_bits=fmt.width,
                  fields_msb_first=sorted(fields, key=lambda f: -f["lsb"]), output_format=fmt.cpp,
                  output_lsb=float(fmt.lsb), output_max=float(fmt.max_value), saturating=fmt.overflow != "WRAP",
                  target=cfg.model["target"], saturated=table.saturated, physics=numbers,
                  thresholds=list(numbers["turn_on"]["float"]))
