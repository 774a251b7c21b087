"""Look-up-table regressors: raw detector features -> compressed address -> table word.

Stages, each importing only the ones before it: ``config`` (trigger.yml),
``dataset`` (samples), ``binning`` (compression and address packing),
``regressor`` (Keras MLP or scikit-learn boosted trees), ``table`` (every
address evaluated; the numpy emulator), ``firmware`` (HLS C++ and Verilog from
templates; the g++ C simulation), ``physics`` (resolution, turn-on, rate
proxy), ``build`` (the bundle) and ``verify`` (emulator == C sim == RTL).
"""

from __future__ import annotations

from pathlib import Path


def build_bundle(config_dir: Path, out_dir: Path, progress: bool = True) -> Path:
    """Build the firmware bundle for ``config_dir/trigger.yml`` into ``out_dir`` (atomically)."""
    from trigger.lut.build import build_bundle as _build

    return _build(Path(config_dir), Path(out_dir), progress=progress)


def verify_bundle(bundle_dir: Path, simulator: str = "verilator", vectors: int | None = None,
                  progress: bool = True) -> dict:
    """Every table address (or ``vectors`` random ones) through RTL and C simulation vs the emulator."""
    from trigger.lut.verify import verify_bundle as _verify

    return _verify(Path(bundle_dir), simulator=simulator, vectors=vectors, progress=progress)


__all__ = ["build_bundle", "verify_bundle"]
