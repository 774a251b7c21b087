"""A seeded toy generator of Level-1 trigger events: zero-bias background and toy new-physics signals.

What a global-trigger anomaly-detection algorithm sees (as the CMS L1 AD triggers do, with 19 objects
x (pT, eta, phi) = 57 inputs; here 13 x 3 = 39): a fixed list of physics objects, each type in its own
slots, pT-ordered (hardest first), empty slots zero:

- 4 jets (|eta| < 4.7, delivered from 20 GeV), 4 e/gamma (|eta| < 2.5, from 5 GeV), 4 muons (|eta| < 2.4,
  from 3 GeV), and the missing transverse energy (its eta is always 0).

Every quantity is an integer as a trigger board delivers it (``events``): pT in 0.5 GeV steps, 11 bits
unsigned, saturating at 1023.5 GeV; eta in units of 0.0435 (= 0.087 / 2, the calorimeter tower half-width),
signed; phi in units of 2 pi / 144, signed in [-72, 71]. The network's input (``features``) is the same
integers with the binary point placed ``SCALE_BITS`` up (x 2^-6): exactly the fixed<12,6> input format,
so the firmware consumes the delivered words as they are.

Zero bias (``zero_bias``; what a random trigger at 40 MHz records) is mostly soft: pile-up jets with a
steep spectrum, one QCD hard scatter per event whose scale falls as pT_hat^-4 (two jets, back to back in
phi, smeared by the L1 jet resolution), fake e/gamma candidates, rare soft muons from heavy flavour, a
W -> l nu in 1 event of 10^4, and a missing ET made of the jets' mismeasurement, soft unclustered noise and
any neutrino. Each signal is one such zero-bias event with a new-physics process on top:

- ``dijet_resonance``: a 400 GeV resonance decaying to two jets (pT ~ M/2 / cosh(eta*));
- ``leptoquark``: a single 300 GeV leptoquark, a lepton (e or mu) and a jet;
- ``soft_multijet``: a 250 GeV scalar showering into 6-10 soft jets (displaced-like: low L1 response);
- ``high_met``: invisible particles recoiling against a jet (monojet-like).

numpy only, vectorised (10^6 events in a few seconds); the same (n, seed, process) gives the same bytes.
"""

from __future__ import annotations

import numpy as np

from trigger.errors import ConfigError

OBJECTS = (("jet", 4), ("egamma", 4), ("muon", 4), ("met", 1))  # object type, slots
N_OBJECTS = sum(k for _, k in OBJECTS)  # 13
QUANTITIES = ("pt", "eta", "phi")
N_FEATURES = 3 * N_OBJECTS  # 39
FEATURES = tuple(f"{name}{i}_{q}" if k > 1 else f"{name}_{q}"
                 for name, k in OBJECTS for i in range(k) for q in QUANTITIES)

PT_LSB = 0.5  # GeV per pT unit
PT_BITS = 11  # unsigned: 0 .. 2047 (1023.5 GeV), saturating
ETA_LSB = 0.0435  # per eta unit (0.087 / 2)
ETA_MAX_RAW = 127  # 8 bits signed
PHI_UNITS = 144  # per 2 pi; signed, -72 .. 71
SCALE_BITS = 6  # features = raw integers x 2^-6: the input format fixed<12,6> holds every delivered word
INPUT_FORMAT = "fixed<12,6>"

THRESHOLD_GEV = {"jet": 20.0, "egamma": 5.0, "muon": 3.0}  # the lowest pT delivered
ETA_ACCEPTANCE = {"jet": 4.7, "egamma": 2.5, "muon": 2.4}
PROCESSES = ("zero_bias", "dijet_resonance", "leptoquark", "soft_multijet", "high_met")
SIGNALS = PROCESSES[1:]
W_FRACTION = 1e-4  # zero-bias events with a W -> e nu or mu nu


def _pareto(rng, size, pt_min, index):
    """A falling spectrum: P(pT > x) = (x / pt_min)^-index."""
    return pt_min * (1.0 - rng.random(size)) ** (-1.0 / index)


def _jet_response(rng, pt):
    """L1 jet energy measurement: stochastic 100 %/sqrt(pT) and 8 % constant terms."""
    sigma = 1.0 / np.sqrt(np.maximum(pt, 1.0)) + 0.08
    return pt * np.clip(1.0 + sigma * rng.standard_normal(pt.shape), 0.2, None)


class _Event:
    """Candidate objects of n events per type: true and measured pT (GeV), eta, phi; pT 0 = none."""

    def __init__(self, n: int):
        self.n = n
        self.cands = {t: [] for t, _ in OBJECTS if t != "met"}
        self.invisible = np.zeros((n, 2))  # neutrinos and other invisible particles: (px, py) in GeV

    def add(self, kind, true_pt, measured_pt, eta, phi):
        shape = (self.n, -1)
        self.cands[kind].append(tuple(np.asarray(a, dtype=np.float64).reshape(shape)
                                      for a in (true_pt, measured_pt, eta, phi)))

    def merged(self, kind):
        parts = self.cands[kind]
        if not parts:
            z = np.zeros((self.n, 1))
            return z, z, z, z
        return tuple(np.concatenate([p[i] for p in parts], axis=1) for i in range(4))


def _phi(rng, size):
    return rng.uniform(-np.pi, np.pi, size)


def _wrap(phi):
    return (phi + np.pi) % (2 * np.pi) - np.pi


def _zero_bias(ev: _Event, rng: np.random.Generator) -> None:
    n = ev.n
    # pile-up jets: Poisson(1.5) per event, steep spectrum from 12 GeV, flat in eta
    k = 6
    count = rng.poisson(1.5, n)
    present = np.arange(k)[None, :] < count[:, None]
    pt = np.where(present, _pareto(rng, (n, k), 12.0, 4.5), 0.0)
    ev.add("jet", pt, _jet_response(rng, pt) * present, rng.uniform(-4.7, 4.7, (n, k)), _phi(rng, (n, k)))
    # the hard scatter: two jets balanced in pT, back to back in phi, pT_hat^-4
    pt_hat = _pareto(rng, n, 8.0, 4.0)
    phi1 = _phi(rng, n)
    pts = np.stack([pt_hat * (1 + 0.05 * np.abs(rng.standard_normal(n))),
                    pt_hat * np.clip(1 - 0.1 * np.abs(rng.standard_normal(n)), 0.3, 1)], axis=1)
    phis = np.stack([phi1, _wrap(phi1 + np.pi + 0.15 * rng.standard_normal(n))], axis=1)
    etas = rng.normal(0.0, 1.8, (n, 2))
    ev.add("jet", pts, _jet_response(rng, pts), etas, phis)
    # fake e/gamma (pi0s in jets, pile-up): Poisson(0.4) from 3 GeV, steep
    k = 4
    present = np.arange(k)[None, :] < rng.poisson(0.4, n)[:, None]
    pt = np.where(present, _pareto(rng, (n, k), 3.0, 4.0), 0.0)
    ev.add("egamma", pt, pt * np.clip(1 + 0.06 * rng.standard_normal((n, k)), 0.5, None),
           rng.uniform(-2.5, 2.5, (n, k)), _phi(rng, (n, k)))
    # soft muons from heavy-flavour decays: 2 % of events, from 2 GeV
    present = rng.random(n) < 0.02
    pt = np.where(present, _pareto(rng, n, 2.0, 3.0), 0.0)
    ev.add("muon", pt, pt * np.clip(1 + 0.1 * rng.standard_normal(n), 0.3, None), rng.uniform(-2.4, 2.4, n),
           _phi(rng, n))
    # W -> l nu in W_FRACTION of the events: Jacobian-peaked lepton and neutrino, back to back
    w = rng.random(n) < W_FRACTION
    lep_pt = np.where(w, 40.0 * np.sqrt(1 - rng.uniform(0, 0.9, n) ** 2) * (1 + 0.05 * rng.standard_normal(n)), 0.0)
    lep_phi = _phi(rng, n)
    electron = rng.random(n) < 0.5
    for kind, sel in (("egamma", electron), ("muon", ~electron)):
        pt = np.where(sel, lep_pt, 0.0)
        ev.add(kind, pt, pt, rng.normal(0, 1.2, n), lep_phi)
    nu_pt = lep_pt * (1 + 0.1 * rng.standard_normal(n))
    nu_phi = _wrap(lep_phi + np.pi + 0.3 * rng.standard_normal(n))
    ev.invisible += np.stack([nu_pt * np.cos(nu_phi), nu_pt * np.sin(nu_phi)], axis=1)


def _two_body(rng, n, mass, boost_sigma=0.8, eta_star_max=1.5):
    """Two daughters of a resonance produced at rest in the transverse plane: pT, eta, phi (n, 2) each."""
    eta_star = rng.uniform(-eta_star_max, eta_star_max, n)
    y = rng.normal(0.0, boost_sigma, n)
    pt = mass / 2.0 / np.cosh(eta_star) * np.exp(0.05 * rng.standard_normal(n))  # width and recoil
    phi1 = _phi(rng, n)
    pts = np.stack([pt, pt], axis=1)
    etas = np.stack([y + eta_star, y - eta_star], axis=1)
    phis = np.stack([phi1, _wrap(phi1 + np.pi + 0.05 * rng.standard_normal(n))], axis=1)
    return pts, etas, phis


def _signal(ev: _Event, rng: np.random.Generator, process: str) -> None:
    n = ev.n
    if process == "dijet_resonance":
        pts, etas, phis = _two_body(rng, n, 400.0)
        ev.add("jet", pts, _jet_response(rng, pts), etas, phis)
    elif process == "leptoquark":
        pts, etas, phis = _two_body(rng, n, 300.0)
        ev.add("jet", pts[:, 0], _jet_response(rng, pts[:, 0]), etas[:, 0], phis[:, 0])
        electron = rng.random(n) < 0.5
        for kind, sel in (("egamma", electron), ("muon", ~electron)):
            pt = np.where(sel, pts[:, 1], 0.0)
            reso = 0.03 if kind == "egamma" else 0.02 + 0.0003 * pt  # muon resolution worsens with pT
            ev.add(kind, pt, pt * np.clip(1 + reso * rng.standard_normal(n), 0.3, None),
                   np.clip(etas[:, 1], -2.4, 2.4), phis[:, 1])
    elif process == "soft_multijet":
        k = 10
        present = np.arange(k)[None, :] < (6 + rng.integers(0, 5, n))[:, None]
        pt = np.where(present, 15.0 + rng.exponential(18.0, (n, k)), 0.0)
        # displaced decays: the L1 calorimeter sees part of each jet (a low, fluctuating response)
        measured = _jet_response(rng, pt) * rng.uniform(0.55, 0.95, (n, k)) * present
        ev.add("jet", pt, measured, rng.normal(0.0, 1.3, (n, k)), _phi(rng, (n, k)))
    elif process == "high_met":
        inv = 60.0 + rng.exponential(50.0, n)
        phi = _phi(rng, n)
        jet = inv * np.exp(0.15 * rng.standard_normal(n))
        ev.add("jet", jet, _jet_response(rng, jet), rng.normal(0.0, 1.5, n), _wrap(phi + np.pi))
        ev.invisible += np.stack([inv * np.cos(phi), inv * np.sin(phi)], axis=1)
    else:
        raise ConfigError(f"l1_events: unknown process {process!r} (known: {', '.join(PROCESSES)})")


def _digitise(ev: _Event, rng: np.random.Generator) -> np.ndarray:
    n = ev.n
    out = np.zeros((n, N_OBJECTS, 3), dtype=np.int16)
    pt_max = (1 << PT_BITS) - 1
    mismeasured = np.zeros((n, 2))
    slot = 0
    for kind, k in OBJECTS:
        if kind == "met":
            continue
        true_pt, pt, eta, phi = ev.merged(kind)
        accepted = np.abs(eta) < ETA_ACCEPTANCE[kind]
        if kind == "jet":  # the calorimeter's mismeasurement of every jet shows up as missing ET
            rows, cols = np.nonzero(accepted & (pt != true_pt))
            diff, angle = pt[rows, cols] - true_pt[rows, cols], phi[rows, cols]
            mismeasured[:, 0] += np.bincount(rows, weights=diff * np.cos(angle), minlength=n)
            mismeasured[:, 1] += np.bincount(rows, weights=diff * np.sin(angle), minlength=n)
        raw_pt = np.minimum(np.floor(pt / PT_LSB), pt_max)
        raw_pt = np.where(accepted & (pt >= THRESHOLD_GEV[kind]), raw_pt, 0)
        order = np.argsort(-raw_pt, axis=1, kind="stable")[:, :k]
        take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
        raw_pt = take(raw_pt)
        if raw_pt.shape[1] < k:  # fewer candidates than slots
            pad = k - raw_pt.shape[1]
            raw_pt, eta_, phi_ = (np.pad(a, ((0, 0), (0, pad))) for a in (raw_pt, take(eta), take(phi)))
        else:
            eta_, phi_ = take(eta), take(phi)
        filled = raw_pt > 0
        out[:, slot:slot + k, 0] = raw_pt
        out[:, slot:slot + k, 1] = np.where(filled, np.clip(np.rint(eta_ / ETA_LSB), -ETA_MAX_RAW, ETA_MAX_RAW), 0)
        out[:, slot:slot + k, 2] = np.where(filled, _phi_raw(phi_), 0)
        slot += k
    # missing ET: invisible particles, jet mismeasurement and soft unclustered noise (10 GeV per component)
    met = ev.invisible - mismeasured + rng.normal(0.0, 10.0, (n, 2))
    met_pt = np.hypot(met[:, 0], met[:, 1])
    out[:, slot, 0] = np.minimum(np.floor(met_pt / PT_LSB), pt_max)
    out[:, slot, 2] = np.where(out[:, slot, 0] > 0, _phi_raw(np.arctan2(met[:, 1], met[:, 0])), 0)
    return out


def _phi_raw(phi):
    return np.clip(np.floor(_wrap(phi) / (2 * np.pi / PHI_UNITS)), -PHI_UNITS // 2, PHI_UNITS // 2 - 1)


def events(n: int, seed: int = 1, process: str = "zero_bias") -> np.ndarray:
    """``n`` events of ``process`` as delivered words: int16 (n, 13, 3) of (pT, eta, phi) per object slot."""
    if n < 1:
        raise ConfigError(f"l1_events: n must be positive, got {n}")
    if process not in PROCESSES:
        raise ConfigError(f"l1_events: unknown process {process!r} (known: {', '.join(PROCESSES)})")
    rng = np.random.default_rng([seed, PROCESSES.index(process), 1717])
    ev = _Event(int(n))
    _zero_bias(ev, rng)
    if process != "zero_bias":
        _signal(ev, rng, process)
    return _digitise(ev, rng)


def features(raw: np.ndarray) -> np.ndarray:
    """The network's input: the delivered integers (n, 13, 3) flattened to (n, 39), x 2^-SCALE_BITS, float32."""
    raw = np.asarray(raw)
    return (raw.reshape(len(raw), -1).astype(np.float32) * np.float32(2.0 ** -SCALE_BITS))


def to_physical(raw: np.ndarray) -> dict[str, np.ndarray]:
    """pT (GeV), eta, phi (rad) of the delivered integers (n, 13, 3); empty slots have pT 0."""
    raw = np.asarray(raw, dtype=np.float64)
    return {"pt": raw[..., 0] * PT_LSB, "eta": raw[..., 1] * ETA_LSB,
            "phi": (raw[..., 2] + 0.5) * (2 * np.pi / PHI_UNITS) * (raw[..., 0] > 0)}


def ht(raw: np.ndarray) -> np.ndarray:
    """Scalar sum of the delivered jets' pT (GeV): the classic trigger quantity to compare with."""
    return np.asarray(raw[:, :4, 0], dtype=np.float64).sum(axis=1) * PT_LSB


def generate(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The dataset interface of ``trigger.train``: zero-bias features (n, 39) float32 and labels (n,) int64 (0)."""
    return features(events(n, seed, "zero_bias")), np.zeros(int(n), dtype=np.int64)
