"""A seeded toy generator of jet constituents: 16 particles x (pT fraction, Δη, Δφ) per jet, three classes.

The input of a set-based (DeepSets) jet tagger: each jet is an unordered set of
its 16 hardest constituents, each described relative to the jet axis. The classes
differ in their prong structure, as boosted jets do:

- ``qcd`` (light quark or gluon jet): one hard core, the rest soft radiation
  spread widely (a falling pT sharing, a broad angular spread);
- ``w`` (a boosted W -> qq'): two prongs separated by ΔR ~ 2 m_W / pT with a
  balanced energy sharing (z between 0.2 and 0.8);
- ``top`` (t -> bW -> bqq'): three prongs at a larger separation.

Prong axes, momentum sharing and constituent multiplicity fluctuate, and a
fraction of signal jets lose a prong (out of the jet cone or too soft), so the
classes overlap. Features are scaled to order one (pT fraction x 8, angles / 0.2)
and constituents are sorted by pT, hardest first (the network does not care).
The same seed gives the same bytes.
"""

from __future__ import annotations

import numpy as np

from trigger.errors import ConfigError

CLASSES = ("qcd", "w", "top")
N_CONSTITUENTS = 16
FEATURES = ("pt_fraction", "delta_eta", "delta_phi")
PT_SCALE = 8.0  # feature = pT fraction x 8
ANGLE_SCALE = 0.2  # feature = angle / 0.2 rad


def generate(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(constituents (n, 16, 3) float32, labels (n,) int: 0 qcd, 1 w, 2 top), balanced."""
    if n < 1:
        raise ConfigError(f"constituents: n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    prongs = np.array([1, 2, 3])[labels]
    lost = (labels > 0) & (rng.random(n) < 0.15)  # a signal prong out of the cone or too soft
    prongs = np.where(lost, prongs - 1, prongs)

    # prong axes: the hardest at the jet axis (up to recoil), the others at a separation set by mass / pT
    pt_jet = 500.0 * np.exp(rng.normal(0, 0.15, n))  # GeV
    mass = np.array([30.0, 80.4, 173.0])[labels] * (1 + 0.08 * rng.normal(size=n))
    separation = np.clip(2.0 * mass / pt_jet, 0.05, 0.8)
    angle = rng.uniform(0, 2 * np.pi, n)
    axes = np.zeros((n, 3, 2))
    for k in (1, 2):
        phi_k = angle + k * 2 * np.pi / 3 + 0.4 * rng.normal(size=n)
        r_k = separation * rng.uniform(0.6, 1.1, n)
        axes[:, k, 0], axes[:, k, 1] = r_k * np.cos(phi_k), r_k * np.sin(phi_k)
    axes -= axes.mean(axis=1, keepdims=True) * (prongs > 1)[:, None, None] * 0.5  # recoil of the jet axis

    # energy sharing between prongs: balanced for decays, one dominant core for QCD
    share = rng.dirichlet([3.0, 3.0, 3.0], n)
    share = np.where((prongs == 1)[:, None], np.array([1.0, 0.0, 0.0]), share)
    share = np.where((prongs == 2)[:, None], np.concatenate([share[:, :2] / share[:, :2].sum(1, keepdims=True),
                                                              np.zeros((n, 1))], axis=1), share)

    # constituents: each belongs to a prong (by its share), soft ones can be wide-angle radiation
    owner = np.array([rng.choice(3, N_CONSTITUENTS, p=p) for p in share])
    hardness = rng.exponential(1.0, (n, N_CONSTITUENTS)) ** np.where(labels == 0, 2.2, 1.4)[:, None]
    pt = hardness * np.take_along_axis(share, owner, axis=1)
    spread = np.where(labels == 0, 0.09, 0.035)[:, None] * (1 + 0.3 * rng.random((n, 1)))
    centre = np.take_along_axis(axes, owner[..., None].repeat(2, axis=2), axis=1)
    position = centre + rng.normal(0, 1, (n, N_CONSTITUENTS, 2)) * spread[..., None] / np.sqrt(pt[..., None] + 0.2)
    wide = rng.random((n, N_CONSTITUENTS)) < np.where(labels == 0, 0.25, 0.1)[:, None]
    position = np.where(wide[..., None], rng.normal(0, 0.25, (n, N_CONSTITUENTS, 2)), position)
    pt = np.where(wide, pt * 0.3, pt)
    pt = pt / pt.sum(axis=1, keepdims=True)  # fractions of the (16-constituent) jet pT

    order = np.argsort(-pt, axis=1)
    pt = np.take_along_axis(pt, order, axis=1)
    position = np.take_along_axis(position, order[..., None].repeat(2, axis=2), axis=1)
    x = np.concatenate([pt[..., None] * PT_SCALE, np.clip(position, -0.8, 0.8) / ANGLE_SCALE], axis=2)
    return x.astype(np.float32), labels.astype(np.int64)
