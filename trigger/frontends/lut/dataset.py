"""Training and test samples for a LUT regressor: the toy muon simulation or an .npz file.

Raw features must be integers inside their raw width (what a detector
delivers); NaN, infinities, fractions or out-of-range values are one-line
errors (ConfigError) naming the file and the feature.
"""

from __future__ import annotations

import numpy as np

from trigger.data.muon import simulate_muons
from trigger.errors import ConfigError
from trigger.frontends.lut.config import LutConfig


class Sample:
    def __init__(self, raw: np.ndarray, pt: np.ndarray):
        self.raw = raw  # (n, n_features) int64, in config feature order
        self.pt = pt  # (n,) true pT [GeV]


def load_samples(config: LutConfig) -> tuple[Sample, Sample]:
    names = [f.name for f in config.features]
    if config.source == "muon":
        train = simulate_muons(config.n_train, config.seed * 2 + 1)
        test = simulate_muons(config.n_test, config.seed * 2 + 2)
        where = "muon simulation"
    else:
        path = config.data_path
        if not path.exists():
            raise ConfigError(f"{config.path}: data.path: file {path} not found")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as err:
            raise ConfigError(f"{path}: not a readable .npz file ({err})") from None
        for key in names + ["pt"]:
            if key not in arrays:
                raise ConfigError(f"{path}: array {key!r} missing (needs one per feature plus 'pt')")
        n = len(arrays["pt"])
        if n < config.n_train + config.n_test:
            raise ConfigError(f"{path}: {n} rows, fewer than data.n_train + data.n_test = "
                             f"{config.n_train + config.n_test}")
        train = {k: arrays[k][: config.n_train] for k in names + ["pt"]}
        test = {k: arrays[k][config.n_train: config.n_train + config.n_test] for k in names + ["pt"]}
        where = str(path)
    return _sample(config, train, where), _sample(config, test, where)


def _sample(config: LutConfig, data: dict, where: str) -> Sample:
    cols = []
    for spec in config.features:
        col = np.asarray(data[spec.name])
        if col.dtype.kind == "f":
            bad = ~np.isfinite(col)
            if bad.any():
                kind = "NaN" if np.isnan(col).any() else "infinite"
                raise ConfigError(f"{where}: feature {spec.name!r} has {int(bad.sum())} {kind} value(s)")
            if np.any(col != np.round(col)):
                raise ConfigError(f"{where}: feature {spec.name!r} has non-integer values; raw features are detector integers")
        elif col.dtype.kind not in "iub":
            raise ConfigError(f"{where}: feature {spec.name!r} has dtype {col.dtype}, expected integers")
        col = col.astype(np.int64)
        if col.size and (col.min() < spec.min_raw or col.max() > spec.max_raw):
            raise ConfigError(f"{where}: feature {spec.name!r} has values in [{col.min()}, {col.max()}], outside its "
                             f"{spec.raw_bits}-bit {'signed' if spec.signed else 'unsigned'} range")
        cols.append(col)
    pt = np.asarray(data["pt"], dtype=np.float64)
    if not np.all(np.isfinite(pt)) or np.any(pt <= 0):
        raise ConfigError(f"{where}: 'pt' must be positive and finite everywhere")
    return Sample(np.stack(cols, axis=1), pt)
