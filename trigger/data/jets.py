"""A seeded toy generator of 16 jet-substructure features for 5 jet classes.

It imitates the hls4ml LHC jet dataset (OpenML 42468), which cannot be downloaded
here: gluon, light-quark, W, Z and top jets described by groomed mass, energy
correlation ratios (C, D, M, N families), a grooming observable and the
constituent multiplicity. The physics is schematic but the structure is the one
a tagger learns from: mass peaks (W 80, Z 91, top 173 GeV over a falling QCD
continuum), prong counts (1 for g/q, 2 for W/Z, 3 for t: N2, D2 and C2 are small
for the matching prong count), multiplicities (gluons and tops busier than
quarks), a shared jet-pT nuisance and mis-groomed signal jets that fall back
into the QCD region, so the classes overlap realistically (W against Z is hard).
Features are standardised with fixed statistics of a large reference sample,
so the same seed gives the same bytes.
"""

from __future__ import annotations

import numpy as np
from trigger.errors import ConfigError

CLASSES = ("g", "q", "W", "Z", "t")
FEATURES = (
    "zlogz", "c1_b0_mmdt", "c1_b1_mmdt", "c1_b2_mmdt", "c2_b1_mmdt", "c2_b2_mmdt",
    "d2_b1_mmdt", "d2_b2_mmdt", "d2_a1_b1_mmdt", "d2_a1_b2_mmdt", "m2_b1_mmdt",
    "m2_b2_mmdt", "n2_b1_mmdt", "n2_b2_mmdt", "mass_mmdt", "multiplicity",
)
N_FEATURES = len(FEATURES)
N_CLASSES = len(CLASSES)

# per class: mass peak and width (GeV; 0 = QCD continuum), prongs, mean multiplicity,
# fraction whose grooming fails (mass falls into the continuum)
_CLASS = {
    "g": dict(peak=0.0, width=0.0, prongs=1, mult=52.0, fail=1.0),
    "q": dict(peak=0.0, width=0.0, prongs=1, mult=34.0, fail=1.0),
    "W": dict(peak=80.4, width=9.0, prongs=2, mult=40.0, fail=0.18),
    "Z": dict(peak=91.2, width=9.5, prongs=2, mult=42.0, fail=0.18),
    "t": dict(peak=173.0, width=17.0, prongs=3, mult=60.0, fail=0.22),
}


def _raw(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = labels.size
    pt = 1000.0 * np.exp(rng.normal(0.0, 0.08, n))  # shared nuisance, ~1 TeV jets
    peak = np.array([_CLASS[c]["peak"] for c in CLASSES])[labels]
    width = np.array([_CLASS[c]["width"] for c in CLASSES])[labels]
    fail = np.array([_CLASS[c]["fail"] for c in CLASSES])[labels] > rng.random(n)
    prongs = np.array([_CLASS[c]["prongs"] for c in CLASSES])[labels].astype(float)
    mult_mean = np.array([_CLASS[c]["mult"] for c in CLASSES])[labels]

    # QCD continuum: falling spectrum, gluons a little heavier than quarks
    qcd_scale = np.where(labels == 0, 38.0, 28.0)
    continuum = rng.gamma(2.0, qcd_scale / 2.0, n) * (pt / 1000.0)
    resonant = rng.normal(peak, width) * (1.0 + 0.03 * rng.normal(size=n))
    mass = np.clip(np.where(fail, continuum, resonant), 1.0, None)
    # mis-groomed signal keeps only part of its prong structure
    eff_prongs = np.where(fail, 1.0 + 0.5 * (prongs - 1.0) * rng.random(n), prongs)
    eff_prongs = eff_prongs + 0.35 * rng.normal(size=n)

    mult = rng.poisson(mult_mean * (pt / 1000.0) ** 0.3) + rng.poisson(3.0, n)
    rho = np.log((mass / pt) ** 2)  # dimensionless jet mass
    busy = (mult - 40.0) / 15.0

    def corr(base, prong_power, noise):
        # energy-correlation style ratio: smaller when the jet has as many prongs as the observable probes
        return np.exp(base - prong_power * (eff_prongs - 1.0) + 0.25 * busy + noise * rng.normal(size=n))

    feats = np.empty((n, N_FEATURES))
    feats[:, 0] = -(0.7 + 0.08 * busy + 0.06 * eff_prongs) * (1 + 0.1 * rng.normal(size=n))  # zlogz
    feats[:, 1] = np.exp(0.5 * rho + 0.05 * rng.normal(size=n))  # c1_b0 ~ m/pt
    feats[:, 2] = feats[:, 1] ** 1.5 * np.exp(0.1 * rng.normal(size=n))
    feats[:, 3] = feats[:, 1] ** 2.0 * np.exp(0.15 * rng.normal(size=n))
    feats[:, 4] = corr(-1.3, 0.55, 0.30)  # c2_b1
    feats[:, 5] = corr(-1.8, 0.60, 0.35)  # c2_b2
    feats[:, 6] = corr(0.9, 0.70, 0.30)  # d2_b1
    feats[:, 7] = corr(0.6, 0.75, 0.35)  # d2_b2
    feats[:, 8] = corr(0.4, 0.65, 0.30) * (mass / 100.0) ** 0.3  # d2_a1_b1
    feats[:, 9] = corr(0.2, 0.70, 0.35) * (mass / 100.0) ** 0.3  # d2_a1_b2
    feats[:, 10] = corr(-2.5, 0.40, 0.40)  # m2_b1
    feats[:, 11] = corr(-3.0, 0.45, 0.45)  # m2_b2
    feats[:, 12] = np.clip(0.32 - 0.07 * (eff_prongs - 1.0) + 0.05 * rng.normal(size=n), 0.01, None)  # n2_b1
    feats[:, 13] = np.clip(0.25 - 0.06 * (eff_prongs - 1.0) + 0.05 * rng.normal(size=n), 0.01, None)  # n2_b2
    feats[:, 14] = mass
    feats[:, 15] = mult
    # heavy-tailed ratios are standardised in log space, as analyses usually do
    for k in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11):
        feats[:, k] = np.log(feats[:, k])
    return feats


# standardisation statistics, fixed from a 10^6-jet sample of seed 0 so every draw is standardised the same way
_REFERENCE_SEED, _REFERENCE_N = 0, 1_000_000
_stats_cache: dict = {}


def _stats() -> tuple[np.ndarray, np.ndarray]:
    if "mu" not in _stats_cache:
        rng = np.random.default_rng(_REFERENCE_SEED)
        labels = rng.integers(0, N_CLASSES, _REFERENCE_N)
        x = _raw(labels, rng)
        _stats_cache["mu"], _stats_cache["sd"] = x.mean(axis=0), x.std(axis=0)
    return _stats_cache["mu"], _stats_cache["sd"]


def generate(n: int, seed: int = 1, standardise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``n`` jets with balanced random classes: features (n, 16) float32 and labels (n,) int64 in CLASSES order."""
    if n < 1:
        raise ConfigError(f"number of jets must be positive, got {n}")
    rng = np.random.default_rng([seed, 4242])
    labels = rng.integers(0, N_CLASSES, n).astype(np.int64)
    x = _raw(labels, rng)
    if standardise:
        mu, sd = _stats()
        x = (x - mu) / sd
    return x.astype(np.float32), labels
