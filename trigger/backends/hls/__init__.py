"""HLS backends: the HLS project of a design and its C simulation, registered by name.

A bundle's manifest names its backend under ``hls.backend``; verification runs
that backend's C simulation on the bundle's own project. Networks use hls4ml's
project (hls4ml is the specification of the HLS side); tables use the
project's own C++ (hls4ml would put 2**20 words into source code).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from trigger.errors import BundleError

# backend name -> module. Each module has
#   write_project(model: FirmwareModel, folder: Path, *, top, part, clock_period_ns, **options) -> dict
#     (the project; returns the manifest's "hls" section, which names the backend)
#   csim(bundle: Path, manifest: dict, model: FirmwareModel, raw: (n, input.n) int64, work: Path)
#     -> (raw outputs (n, output.n) int64, {"csim_build_s": float, "csim_s": float})
BACKENDS: dict[str, str] = {
    "hls4ml": "trigger.backends.hls.hls4ml_project",
    "table_cpp": "trigger.backends.hls.table_cpp",
    "trees_cpp": "trigger.backends.hls.trees_cpp",
}


def backend(name: str, where: str = "design"):
    if name not in BACKENDS:
        raise BundleError(f"{where}: unknown HLS backend {name!r} (known: {', '.join(sorted(BACKENDS))})")
    return importlib.import_module(BACKENDS[name])


def write_project(name: str, model, folder: Path, **options) -> dict:
    """Writes the HLS project of ``model`` with the backend ``name`` into ``folder``."""
    return backend(name).write_project(model, Path(folder), **options)


def run_csim(bundle: Path, manifest: dict, model, raw: np.ndarray, work: Path) -> tuple[np.ndarray, dict]:
    """The C simulation of the bundle's own HLS project on raw inputs."""
    name = (manifest.get("hls") or {}).get("backend")
    return backend(name, f"{bundle}/manifest.json").csim(Path(bundle), manifest, model, raw, Path(work))
