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

# backend name -> "module:function" with signature
#   csim(bundle: Path, manifest: dict, model: FirmwareModel, raw: (n, input.n) int64, work: Path)
#     -> (raw outputs (n, output.n) int64, {"csim_build_s": float, "csim_s": float})
CSIMS: dict[str, str] = {
    "hls4ml": "trigger.backends.hls.hls4ml_project:csim",
    "table_cpp": "trigger.backends.hls.table_cpp:csim",
}


def run_csim(bundle: Path, manifest: dict, model, raw: np.ndarray, work: Path) -> tuple[np.ndarray, dict]:
    """The C simulation of the bundle's own HLS project on raw inputs."""
    backend = (manifest.get("hls") or {}).get("backend")
    if backend not in CSIMS:
        raise BundleError(f"{bundle}: unknown HLS backend {backend!r} in manifest.json "
                          f"(known: {', '.join(sorted(CSIMS))})")
    module, _, func = CSIMS[backend].partition(":")
    return getattr(importlib.import_module(module), func)(Path(bundle), manifest, model, raw, Path(work))
