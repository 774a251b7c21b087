"""Physics performance of a pT table: resolution, turn-on curves and a rate proxy.

Compares the float regressor (on the compressed inputs) with the firmware
table (its word decoded to GeV), on the held-out test sample. Numbers are
rounded to 6 significant digits so that the JSON is stable; plots are PNG
without a software/date stamp.
"""

from __future__ import annotations

import io
import json

import numpy as np

PT_EDGES = np.geomspace(2.0, 1000.0, 16)
TURN_ON_EDGES = np.geomspace(2.0, 200.0, 31)


def _r(x):
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_r(v) for v in x]
    x = float(x)
    return None if not np.isfinite(x) else float(f"{x:.6g}")


def _resolution(pt_true, pt_l1):
    rel = (pt_l1 - pt_true) / pt_true
    idx = np.digitize(pt_true, PT_EDGES) - 1
    bias, sigma, count = [], [], []
    for b in range(len(PT_EDGES) - 1):
        sel = rel[idx == b]
        count.append(int(sel.size))
        if sel.size < 10:
            bias.append(np.nan)
            sigma.append(np.nan)
            continue
        q16, q50, q84 = np.percentile(sel, [16, 50, 84])
        bias.append(q50)
        sigma.append((q84 - q16) / 2)
    q16, q84 = np.percentile(rel, [16, 84])
    return {"bias_median": _r(bias), "sigma_68": _r(sigma), "muons": count, "overall_sigma_68": _r((q84 - q16) / 2)}


def _crossing(x, eff, level):
    """First true pT where the efficiency reaches ``level`` (linear interpolation in log pT)."""
    above = np.flatnonzero(np.nan_to_num(eff) >= level)
    if above.size == 0:
        return None
    i = above[0]
    if i == 0:
        return _r(x[0])
    x0, x1, e0, e1 = np.log(x[i - 1]), np.log(x[i]), eff[i - 1], eff[i]
    t = (level - e0) / (e1 - e0) if e1 != e0 else 0.0
    return _r(np.exp(x0 + t * (x1 - x0)))


def _turn_on(pt_true, pt_l1, threshold, low_pt_max):
    idx = np.digitize(pt_true, TURN_ON_EDGES) - 1
    passed = pt_l1 >= threshold
    valid = (idx >= 0) & (idx < len(TURN_ON_EDGES) - 1)
    total = np.bincount(idx[valid], minlength=len(TURN_ON_EDGES) - 1)
    hits = np.bincount(idx[valid], weights=passed[valid], minlength=len(TURN_ON_EDGES) - 1)
    eff = np.where(total > 0, hits / np.maximum(total, 1), np.nan)
    centres = np.sqrt(TURN_ON_EDGES[:-1] * TURN_ON_EDGES[1:])
    low = pt_true < low_pt_max
    plateau = pt_true > 2 * threshold
    return {"efficiency": _r(eff), "pt_at_50": _crossing(centres, eff, 0.5), "pt_at_90": _crossing(centres, eff, 0.9),
            "plateau_efficiency": _r(passed[plateau].mean()) if plateau.any() else None,
            "low_pt_pass_fraction": _r(passed[low].mean()) if low.any() else None,
            "all_pass_fraction": _r(passed.mean())}


def physics_numbers(pt_true, pt_float, pt_firmware, thresholds, low_pt_max) -> dict:
    out = {"pt_bin_edges": _r(PT_EDGES), "turn_on_bin_edges": _r(TURN_ON_EDGES), "muons": int(len(pt_true)),
           "low_pt_max": _r(low_pt_max), "resolution": {}, "turn_on": {}}
    for name, pt in (("float", pt_float), ("firmware", pt_firmware)):
        out["resolution"][name] = _resolution(pt_true, pt)
        out["turn_on"][name] = {f"{t:g}": _turn_on(pt_true, pt, t, low_pt_max) for t in thresholds}
    return out


def physics_plots(numbers: dict) -> dict[str, bytes]:
    """PNG bytes by file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
        plt.close(fig)
        return buf.getvalue()

    styles = {"float": dict(ls="--", marker="o", ms=3), "firmware": dict(ls="-", marker="s", ms=3)}
    plots = {}
    edges = np.asarray(numbers["pt_bin_edges"])
    centres = np.sqrt(edges[:-1] * edges[1:])
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, res in numbers["resolution"].items():
        sig = np.array([np.nan if v is None else v for v in res["sigma_68"]])
        bias = np.array([np.nan if v is None else v for v in res["bias_median"]])
        ax[0].plot(centres, sig, label=f"{name} (overall {res['overall_sigma_68']:.3f})", **styles[name])
        ax[1].plot(centres, bias, label=name, **styles[name])
    for a, title in zip(ax, ("resolution: half 16-84% width of (pT_L1-pT)/pT", "bias: median (pT_L1-pT)/pT")):
        a.set_xscale("log")
        a.set_xlabel("true pT [GeV]")
        a.set_title(title, fontsize=9)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    plots["pt_resolution.png"] = png(fig)

    edges = np.asarray(numbers["turn_on_bin_edges"])
    centres = np.sqrt(edges[:-1] * edges[1:])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, thr in enumerate(numbers["turn_on"]["float"]):
        for name in ("float", "firmware"):
            eff = np.array([np.nan if v is None else v for v in numbers["turn_on"][name][thr]["efficiency"]])
            ax.plot(centres, eff, color=colours[i % len(colours)], label=f"pT_L1 >= {thr} GeV ({name})", **styles[name])
    ax.set_xscale("log")
    ax.set_xlabel("true pT [GeV]")
    ax.set_ylabel("efficiency")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("trigger efficiency turn-on", fontsize=9)
    plots["pt_turn_on.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(5, 3.4))
    thr = list(numbers["turn_on"]["float"])
    x = np.arange(len(thr))
    for j, name in enumerate(("float", "firmware")):
        vals = [numbers["turn_on"][name][t]["low_pt_pass_fraction"] or 0.0 for t in thr]
        ax.bar(x + (j - 0.5) * 0.38, vals, width=0.38, label=name)
    ax.set_xticks(x, [f"{t} GeV" for t in thr])
    ax.set_yscale("log")
    ax.set_ylabel(f"fraction of muons with pT < {numbers['low_pt_max']} GeV passing")
    ax.set_title("rate proxy", fontsize=9)
    ax.legend(fontsize=8)
    plots["pt_rate_proxy.png"] = png(fig)
    return plots


def dumps(numbers: dict) -> str:
    return json.dumps(numbers, indent=2, sort_keys=True) + "\n"
