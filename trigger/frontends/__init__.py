"""Frontends: turn what a user brings into a ``Design`` (a firmware model plus what to ship with it).

A source is a model folder / ``trigger.yml`` (its ``kind`` names the frontend)
or a model file (its suffix does). Frontends register themselves here; the
bundle writer (``trigger.bundle``) turns any ``Design`` into the same bundle.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from trigger.errors import ConfigError
from trigger.yaml_data import read_yaml
from trigger.ir.model import FirmwareModel
# the defaults of every design kind: pipeline auto puts registers wherever a stage's estimated delay would exceed
# the clock period, so every default build meets its clock (by trigger's cell-delay estimate)
from trigger.settings import DEFAULT_CLOCK_NS, DEFAULT_PART, DEFAULT_PIPELINE, DEFAULT_VECTORS  # noqa: F401


@dataclass
class BuildOptions:
    """Command-line overrides of a build (None: take the trigger.yml value or the default)."""

    weights: str | None = None
    precision: str | None = None
    hls_config: str | None = None  # --hls-config FILE: hls4ml's config_from_keras_model(granularity='name') output
    backend: str | None = None
    pipeline: object = None
    keep_softmax: bool = False
    argmax: bool = False  # append an argmax op: the firmware outputs the class index
    part: str | None = None
    clock_period_ns: float | None = None
    vectors: int | None = None
    ii: object = None  # --ii N|auto (trigger.ir.ii): a new event every N clocks
    io_type: str | None = None  # --io-type auto|io_parallel|io_stream (networks: hls.io_type)
    scheduler: str | None = None  # --scheduler tcp://host:port: a Dask cluster for the long work (trigger.cluster)
    workers: int | None = None  # --workers N: a LocalCluster of N processes
    # a folder on the output's filesystem (build_bundle sets it beside the bundle): where a frontend's distributed
    # work writes the folders it hands the bundle (a table's parts: written by the Dask workers, trigger.cluster)
    work_dir: str | None = None


@dataclass
class Design:
    """What a frontend hands the bundle writer."""

    model: FirmwareModel
    hls_backend: str  # which HLS backend writes the project (trigger.backends.hls.BACKENDS)
    source_sha256: str  # of the user's model files or config
    part: str = DEFAULT_PART
    clock_period_ns: float = DEFAULT_CLOCK_NS
    pipeline: object = DEFAULT_PIPELINE
    rtl_multiplier: object = "shift_add"  # trigger.yml rtl.multiplier: shift_add, dsp or N (bits above which `*` is used)
    ii: object = None  # trigger.yml rtl.ii: N or 'auto' (None: 1); trigger.ir.ii.resolve_ii checks it against the model
    layer_ii: dict = field(default_factory=dict)  # trigger.yml rtl.layer_ii: {layer name: N}
    ii_resolved: bool = False  # ii / layer_ii already resolved by the frontend (resolve_ii runs once)
    vectors: int = DEFAULT_VECTORS  # stored test vectors (the cover of a small tensor comes on top, at verify time)
    extra_vectors: np.ndarray | None = None  # raw input vectors worth keeping (e.g. physics samples)
    reports: dict[str, bytes] = field(default_factory=dict)  # files written under reports/ at build time
    notes: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)  # kind-specific manifest sections (JSON-ready)
    budget: dict = field(default_factory=dict)  # the trigger.yml budget mapping as written (checked already)
    summary: str = ""  # one line printed after the build
    hls_options: dict = field(default_factory=dict)  # what that backend needs besides the model (not stored)
    # folders moved into the bundle (name in the bundle -> folder the frontend filled), before the model is saved:
    # a table in external memory brings its memory image (memory/part_*.bin) this way
    bundle_dirs: dict = field(default_factory=dict)
    # in process only, never stored: the user's model as loaded (keras.LoadedModel / onnx.LoadedOnnx) and as its
    # framework runs it (source_model.SourceModel), for the Python API (trigger.api) and the layer comparison
    loaded: object = field(default=None, repr=False)
    source_model: object = field(default=None, repr=False)


# kind of trigger.yml -> "module:function"; model-file suffix -> the same
FRONTENDS: dict[str, str] = {
    "network": "trigger.frontends.network:design_from_config",
    "lut": "trigger.frontends.lut.build:design_from_config",
    "bdt": "trigger.frontends.trees.build:design_from_config",
}
FILE_FRONTENDS: dict[str, str] = {
    ".json": "trigger.frontends.network:design_from_file",
    ".h5": "trigger.frontends.network:design_from_file",
    ".hdf5": "trigger.frontends.network:design_from_file",
    ".keras": "trigger.frontends.hgq2:design_from_keras_file",  # HGQ2 archives there, other Keras ones to network
    ".onnx": "trigger.frontends.onnx:design_from_file",
    # pickles (scikit-learn's usual way to save) are refused with a one-line error: loading runs code
    ".pkl": "trigger.frontends.trees.build:refuse_pickle",
    ".pickle": "trigger.frontends.trees.build:refuse_pickle",
    ".joblib": "trigger.frontends.trees.build:refuse_pickle",
}


def _resolve(target: str) -> Callable:
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def read_config(source: Path) -> tuple[dict, Path]:
    """(trigger.yml mapping, its path) for a model folder or a .yml path; read as data only."""
    path = source / "trigger.yml" if source.is_dir() else source
    config = read_yaml(path, missing=f"{path} not found: a model folder needs a trigger.yml") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return config, path


def load_design(source, options: BuildOptions | None = None) -> Design:
    """The design of a model folder, trigger.yml or model file."""
    source = Path(source)
    options = options or BuildOptions()
    if source.is_dir() or source.suffix in (".yml", ".yaml"):
        config, path = read_config(source)
        kind = config.get("kind")
        if kind not in FRONTENDS:
            raise ConfigError(f"{path}: field 'kind' must be one of {', '.join(sorted(FRONTENDS))}, got {kind!r}")
        if kind != "lut":
            _refuse_cluster(options, f"{path} (kind {kind})")
        if kind != "network":
            _refuse_hls_config(options, f"{path} (kind {kind})")
        return _resolve(FRONTENDS[kind])(config, path, options)
    _refuse_cluster(options, str(source))
    if source.suffix.lower() == ".onnx":
        _refuse_hls_config(options, str(source))
    if not source.exists():
        raise ConfigError(f"{source} not found")
    suffix = source.suffix.lower()
    if suffix not in FILE_FRONTENDS:
        raise ConfigError(f"{source}: unknown model format {source.suffix!r} (expected a model folder, trigger.yml, "
                          f"or one of {', '.join(sorted(FILE_FRONTENDS))})")
    return _resolve(FILE_FRONTENDS[suffix])(source, options)


def _refuse_cluster(options: BuildOptions, what: str) -> None:
    """--scheduler/--workers spread a table's words over Dask workers (trigger.cluster); a network or
    tree build is one process, so asking for a cluster there is an error rather than silently ignored."""
    if options.scheduler is not None or options.workers is not None:
        raise ConfigError(f"{what}: --scheduler/--workers apply to look-up tables (kind lut) only; "
                          "to spread network builds over a cluster use `trigger scan`")


def _refuse_hls_config(options: BuildOptions, what: str) -> None:
    """--hls-config is hls4ml's Keras config (config_from_keras_model): refused where it would be ignored."""
    if options.hls_config is not None:
        raise ConfigError(f"{what}: --hls-config applies to Keras networks only")


def clock_period(value, where: str) -> float:
    """A clock period in ns from a number (or None -> error), checked finite and positive."""
    try:
        ns = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: clock must be a number, got {value!r}") from None
    if not math.isfinite(ns) or ns <= 0:
        raise ConfigError(f"{where}: clock must be positive and finite, got {value!r}")
    return ns
