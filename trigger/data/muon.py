"""Toy endcap muon simulation: the inputs a Level-1 endcap muon trigger sees.

Muons of either charge with a falling pT spectrum (flat in 1/pT between 2 and
1000 GeV, so most are soft) cross four stations in the endcap (1.2 < |eta| <
2.4). The azimuthal bending between stations scales with charge/pT and falls
with eta (less field integral in the forward region); multiple scattering
(proportional to 1/p, with a few per cent of hard scatters in the tails) and
detector resolution (worse for low-quality segments) smear it, so inferring pT
from the bends is a realistic, noisy inverse problem.

The raw features are integers as a detector gives them: bends in phi units of
1/60 degree, saturating at their bit width; eta in 5 bits across the endcap;
a 2-bit track quality. Everything is vectorised numpy and seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from trigger.errors import ConfigError

PT_MIN, PT_MAX = 2.0, 1000.0
ETA_MIN, ETA_MAX = 1.2, 2.4
PHI_UNIT = np.deg2rad(1.0 / 60.0)  # radians per raw phi count

# Bending between station pairs: dphi = charge * BEND / pT * exp(-ETA_SLOPE * (eta - 1.2)) [rad]
BEND = {"dphi12": 0.35, "dphi23": 0.08, "dphi34": 0.04}
# Multiple scattering width per station pair [rad GeV]; divided by p = pT cosh(eta).
SCATTER = {"dphi12": 0.10, "dphi23": 0.05, "dphi34": 0.03}
ETA_SLOPE = 1.2
HARD_SCATTER_FRACTION = 0.03  # these get 4x the scattering width (non-Gaussian tails)
PHI_RESOLUTION = 0.0006  # [rad] per station measurement, for the best quality
QUALITY_SMEAR = (3.0, 2.0, 1.4, 1.0)  # resolution factor for quality 0 (worst) .. 3 (best)


@dataclass(frozen=True)
class RawFeature:
    """An integer feature as the detector delivers it."""

    name: str
    bits: int
    signed: bool

    @property
    def min_raw(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_raw(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


FEATURES = (
    RawFeature("dphi12", 13, True),
    RawFeature("dphi23", 11, True),
    RawFeature("dphi34", 10, True),
    RawFeature("eta", 5, False),
    RawFeature("quality", 2, False),
)
FEATURE_BY_NAME = {f.name: f for f in FEATURES}


def simulate_muons(n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` muons: raw integer features (int64) plus truth ``pt``, ``eta_true``, ``charge``."""
    if n <= 0:
        raise ConfigError(f"number of muons must be positive, got {n}")
    rng = np.random.default_rng(seed)
    charge = rng.integers(0, 2, n) * 2 - 1
    inv_pt = rng.uniform(1.0 / PT_MAX, 1.0 / PT_MIN, n)
    pt = 1.0 / inv_pt
    eta = rng.uniform(ETA_MIN, ETA_MAX, n)
    quality = rng.integers(0, 4, n)

    inv_p = inv_pt / np.cosh(eta)
    field = np.exp(-ETA_SLOPE * (eta - ETA_MIN))
    hard = rng.random(n) < HARD_SCATTER_FRACTION
    scatter_scale = np.where(hard, 4.0, 1.0) * inv_p
    resolution = PHI_RESOLUTION * np.sqrt(2.0) * np.asarray(QUALITY_SMEAR)[quality]

    out = {}
    for name, bend in BEND.items():
        dphi = charge * bend * inv_pt * field
        dphi = dphi + rng.standard_normal(n) * SCATTER[name] * scatter_scale
        dphi = dphi + rng.standard_normal(n) * resolution
        spec = FEATURE_BY_NAME[name]
        out[name] = np.clip(np.rint(dphi / PHI_UNIT), spec.min_raw, spec.max_raw).astype(np.int64)
    eta_bits = FEATURE_BY_NAME["eta"].bits
    eta_raw = np.floor((eta - ETA_MIN) / (ETA_MAX - ETA_MIN) * (1 << eta_bits))
    out["eta"] = np.clip(eta_raw, 0, (1 << eta_bits) - 1).astype(np.int64)
    out["quality"] = quality.astype(np.int64)
    out["pt"] = pt
    out["eta_true"] = eta
    out["charge"] = charge.astype(np.int64)
    return out
