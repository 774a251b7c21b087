"""A seeded toy generator of calorimeter images: electromagnetic against hadronic showers.

An 8 x 8 grid of trigger towers around a seed, energies in units of 8 GeV (one
channel, channels last: (n, 8, 8, 1)). Electrons and photons (class 0) deposit
almost all their energy in a compact core: a Molière radius below one cell,
so about 90 % lands in the 3 x 3 towers around the impact point. Hadrons
(class 1) shower wider and lumpier: an electromagnetic fraction (pi0s) that
varies from shower to shower gives a narrow core, the rest spreads with a
width of 1.2-2.2 cells and sub-clusters from secondary hadrons. A hadron with a
large electromagnetic fraction looks like an electron, so the classes overlap as
they do in a real L1 e/gamma identification. Every tower has electronic noise
and pile-up (a small positive offset with fluctuations). Energies follow a
falling spectrum from 10 GeV. The same seed gives the same bytes.
"""

from __future__ import annotations

import numpy as np

from trigger.errors import ConfigError

CLASSES = ("em", "hadronic")
GRID = 8
UNIT_GEV = 8.0  # one unit of the image is 8 GeV


def _profile(centre: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Fraction of a Gaussian shower (centre (n, 2) in cells, width (n,)) in each tower (n, GRID, GRID)."""
    edges = np.arange(GRID + 1, dtype=np.float64)
    from math import erf

    verf = np.vectorize(erf)

    def axis(c):
        z = (edges[None, :] - c[:, None]) / (np.sqrt(2.0) * width[:, None])
        cdf = 0.5 * (1 + verf(z))
        return np.diff(cdf, axis=1)  # (n, GRID)

    return axis(centre[:, 0])[:, :, None] * axis(centre[:, 1])[:, None, :]


def generate(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 8, 8, 1) float32 in units of 8 GeV, labels (n,) int: 0 e/gamma, 1 hadronic), balanced."""
    if n < 1:
        raise ConfigError(f"calo: n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    energy = 10.0 + rng.exponential(25.0, n)  # GeV, falling spectrum
    centre = 3.5 + rng.uniform(-1.0, 1.0, (n, 2))  # impact point near the seed tower
    hadron = labels == 1

    core_width = np.where(hadron, rng.uniform(0.35, 0.6, n), rng.uniform(0.25, 0.45, n))
    image = _profile(centre, core_width)
    em_fraction = np.where(hadron, rng.beta(2.0, 2.5, n), 1.0)  # pi0 share of a hadronic shower
    wide = _profile(centre + rng.normal(0, 0.4, (n, 2)), rng.uniform(1.2, 2.2, n))
    image = em_fraction[:, None, None] * image + (1 - em_fraction)[:, None, None] * wide
    # secondary hadrons: up to three sub-clusters a few cells away
    for _ in range(3):
        present = hadron & (rng.random(n) < 0.5)
        offset = rng.normal(0, 2.0, (n, 2))
        share = np.where(present, rng.uniform(0.05, 0.25, n), 0.0)
        image = (1 - share)[:, None, None] * image + share[:, None, None] * _profile(centre + offset,
                                                                                     rng.uniform(0.4, 0.8, n))
    # energy resolution: stochastic term, worse for hadrons
    resolution = np.where(hadron, 0.5, 0.1) / np.sqrt(energy)
    measured = energy * np.clip(1 + resolution * rng.normal(size=n), 0.2, None)
    image = image * measured[:, None, None]
    image += rng.normal(0.25, 0.35, image.shape)  # pile-up offset and electronic noise, GeV per tower
    return (image / UNIT_GEV).astype(np.float32)[..., None], labels.astype(np.int64)
