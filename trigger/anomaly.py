"""Physics of an anomaly-detection trigger: the threshold for a target rate and what it keeps.

A Level-1 anomaly-detection algorithm (an autoencoder whose output is its anomaly score,
``models/anomaly_detector``) fires when the score exceeds a threshold; the threshold is set on a
zero-bias sample so that the trigger rate is the one allotted (default 1 kHz of the 40 MHz bunch
crossings: an accepted fraction of 2.5e-5, so a sample of 10^6 events has 25 events above it). At that
rate each toy new-physics signal (``trigger.data.l1_events``) has an efficiency: for the float twin
trained alongside (what quantization costs) and for the firmware (the emulator, bit-exact to the RTL),
each with its own threshold. The firmware's scores are also compared with the QKeras model's own
(``predict`` on the firmware's input values): they must be equal, event for event.

``anomaly_numbers`` and ``anomaly_plots`` work on scores alone; ``design_reports`` draws the samples,
scores them with the three models and returns the files a bundle keeps under ``reports/``.
Numbers are rounded to 6 significant digits so the JSON is stable; plots carry no date stamp.
"""

from __future__ import annotations

import io
import json

import numpy as np

from trigger.errors import ConfigError

DEFAULT_RATE_HZ = 1000.0
COLLISION_RATE_HZ = 40e6  # LHC bunch crossings
DEFAULT_ZERO_BIAS_EVENTS = 1_000_000
DEFAULT_SIGNAL_EVENTS = 20_000
MODELS = ("float", "firmware")  # the scores whose thresholds and efficiencies are compared
RATE_GRID_HZ = np.geomspace(100.0, 1e6, 41)  # efficiency versus rate, for the plot
CHUNK = 200_000  # events scored at once (memory)


def _r(x):
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_r(v) for v in x]
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else float(f"{x:.6g}")


def threshold_for_rate(scores, rate_hz: float = DEFAULT_RATE_HZ,
                       collision_rate_hz: float = COLLISION_RATE_HZ) -> tuple[float, int, float]:
    """(threshold, events above it, rate in Hz) of a trigger ``score > threshold`` on a zero-bias sample.

    The threshold is the lowest value of the sample whose strict excess keeps at most ``rate_hz /
    collision_rate_hz`` of it: the (k+1)-th largest score, k = floor(fraction x events). Without ties
    exactly k events pass; ties at the threshold only lower the rate (a hardware comparator cannot
    split them)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ConfigError("anomaly: the zero-bias sample is empty")
    if not (0 < rate_hz <= collision_rate_hz):
        raise ConfigError(f"anomaly: the rate {rate_hz!r} Hz must be positive and at most the collision rate "
                          f"{collision_rate_hz!r} Hz")
    allowed = int(np.floor(rate_hz / collision_rate_hz * s.size + 1e-9))
    if allowed >= s.size:
        threshold = -np.inf
    else:
        threshold = float(np.partition(s, s.size - 1 - allowed)[s.size - 1 - allowed])
    passed = int(np.count_nonzero(s > threshold))
    return threshold, passed, passed / s.size * collision_rate_hz


def _efficiency(scores, threshold: float) -> dict:
    s = np.asarray(scores, dtype=np.float64).ravel()
    k = int(np.count_nonzero(s > threshold))
    eff = k / s.size
    return {"efficiency": _r(eff), "error": _r(np.sqrt(max(eff * (1 - eff), 1.0 / s.size) / s.size)),
            "passed": k, "events": int(s.size)}


def _efficiency_curve(background, signal, collision_rate_hz: float = COLLISION_RATE_HZ) -> list:
    """The signal's efficiency at each rate of RATE_GRID_HZ (threshold set on the background each time, as
    ``threshold_for_rate`` sets it)."""
    b = np.sort(np.asarray(background, dtype=np.float64))[::-1]
    s = np.sort(np.asarray(signal, dtype=np.float64))
    out = []
    for rate in RATE_GRID_HZ:
        allowed = int(np.floor(rate / collision_rate_hz * b.size + 1e-9))
        if allowed >= b.size:
            out.append(1.0)
            continue
        threshold = b[allowed]
        out.append(1.0 - np.searchsorted(s, threshold, side="right") / s.size)
    return _r(out)


def anomaly_numbers(background: dict, signals: dict, rate_hz: float = DEFAULT_RATE_HZ,
                    collision_rate_hz: float = COLLISION_RATE_HZ, firmware_lsb: float | None = None,
                    baseline: dict | None = None) -> dict:
    """The figures of merit of an anomaly score.

    ``background``: {"float": scores, "firmware": scores, "qkeras": scores (optional)} on one zero-bias
    sample; ``signals``: {name: the same keys on that signal's sample}. Each of MODELS present gets its own
    threshold for ``rate_hz`` and each signal's efficiency above it. With "qkeras" given, the events whose
    firmware score equals the QKeras model's score exactly are counted per sample (they must be all).
    ``firmware_lsb``: the firmware score's LSB, to state the threshold as the integer a comparator holds.
    ``baseline``: {"name": ..., "background": values, "signals": {name: values}}, another trigger quantity
    (e.g. HT) with its threshold at the same rate, for comparison."""
    n_zb = len(next(iter(background.values())))
    out = {"rate_hz": _r(rate_hz), "collision_rate_hz": _r(collision_rate_hz), "zero_bias_events": int(n_zb),
           "accepted_fraction_target": _r(rate_hz / collision_rate_hz),
           "expected_zero_bias_events_above": _r(rate_hz / collision_rate_hz * n_zb),
           "signals": sorted(signals), "thresholds": {}, "efficiency": {}, "efficiency_vs_rate": {},
           "rate_grid_hz": _r(RATE_GRID_HZ)}
    for model in MODELS:
        if model not in background:
            continue
        threshold, passed, rate = threshold_for_rate(background[model], rate_hz, collision_rate_hz)
        entry = {"threshold": _r(threshold), "zero_bias_passed": passed, "rate_hz": _r(rate),
                 "rate_error_hz": _r(np.sqrt(passed) / n_zb * collision_rate_hz)}
        if model == "firmware" and firmware_lsb:
            entry["threshold_raw"] = int(round(threshold / firmware_lsb)) if np.isfinite(threshold) else None
        out["thresholds"][model] = entry
        out["efficiency"][model] = {name: _efficiency(s[model], threshold) for name, s in sorted(signals.items())}
        out["efficiency_vs_rate"][model] = {name: _efficiency_curve(background[model], s[model], collision_rate_hz)
                                            for name, s in sorted(signals.items())}
    if "qkeras" in background and "firmware" in background:
        samples = {"zero_bias": background, **signals}
        out["firmware_vs_qkeras"] = {}
        for name, s in samples.items():
            fw, qk = np.asarray(s["firmware"], np.float64).ravel(), np.asarray(s["qkeras"], np.float64).ravel()
            diff = np.abs(fw - qk)
            out["firmware_vs_qkeras"][name] = {"events": int(fw.size), "equal": int(np.count_nonzero(diff == 0)),
                                               "max_abs_difference": _r(diff.max() if diff.size else 0.0)}
        out["firmware_equals_qkeras"] = all(v["equal"] == v["events"] for v in out["firmware_vs_qkeras"].values())
    if baseline is not None:
        threshold, passed, rate = threshold_for_rate(baseline["background"], rate_hz, collision_rate_hz)
        out["baseline"] = {"name": baseline["name"], "threshold": _r(threshold), "zero_bias_passed": passed,
                           "rate_hz": _r(rate),
                           "efficiency": {name: _efficiency(v, threshold)
                                          for name, v in sorted(baseline["signals"].items())}}
    return out


def anomaly_plots(background: dict, signals: dict, numbers: dict) -> dict[str, bytes]:
    """PNGs: the score distributions (float vs firmware, zero bias and each signal, thresholds marked) and
    each signal's efficiency versus the trigger rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        plt.close(fig)
        return buf.getvalue()

    samples = {"zero bias": background, **{k: signals[k] for k in sorted(signals)}}
    colours = dict(zip(samples, ("k", "#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377")))
    models = [m for m in MODELS if m in background]
    fig, axes = plt.subplots(1, len(models), figsize=(6.2 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        values = np.concatenate([np.asarray(s[model], np.float64).ravel() for s in samples.values()])
        positive = values[values > 0]
        low = max(positive.min() if positive.size else 1e-3, 1e-4)
        edges = np.geomspace(low, max(values.max(), low * 10) * 1.01, 81)
        for name, s in samples.items():
            v = np.clip(np.asarray(s[model], np.float64), edges[0], edges[-1])
            weights = np.full(v.size, 1.0 / v.size)
            ax.hist(v, bins=edges, weights=weights, histtype="step", color=colours[name], lw=1.4 if name == "zero bias"
                    else 1.0, label=f"{name} ({v.size:,} events)")
        t = (numbers["thresholds"].get(model) or {}).get("threshold")
        if t is not None:
            ax.axvline(t, color="grey", ls="--", lw=1, label=f"threshold at {numbers['rate_hz'] / 1e3:g} kHz: {t:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"anomaly score ({model})")
        ax.set_ylabel("fraction of events")
        ax.set_title("float twin" if model == "float" else "firmware (emulator = RTL)")
        ax.legend(fontsize=7)
    plots = {"anomaly_scores.png": png(fig)}

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    grid = np.asarray(numbers["rate_grid_hz"]) / 1e3
    for name in sorted(signals):
        for model, style in (("float", ":"), ("firmware", "-")):
            curve = numbers["efficiency_vs_rate"].get(model, {}).get(name)
            if curve is not None:
                ax.plot(grid, np.asarray(curve, dtype=float), style, color=colours[name],
                        label=f"{name}, {model}")
    ax.axvline(numbers["rate_hz"] / 1e3, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"zero-bias rate (kHz of {numbers['collision_rate_hz'] / 1e6:g} MHz)")
    ax.set_ylabel("signal efficiency")
    ax.set_title("Efficiency versus rate: float twin (dotted) and firmware (solid)")
    ax.legend(fontsize=6, ncol=2)
    plots["anomaly_efficiency.png"] = png(fig)
    return plots


def report_md(numbers: dict, training: dict | None = None) -> str:
    """A short Markdown summary of ``anomaly_numbers`` (reports/anomaly.md)."""
    rate = numbers["rate_hz"]
    lines = [f"# Anomaly detection at {rate / 1e3:g} kHz of {numbers['collision_rate_hz'] / 1e6:g} MHz", "",
             f"Threshold set on {numbers['zero_bias_events']:,} zero-bias events (accepted fraction "
             f"{numbers['accepted_fraction_target']:.3g}: {numbers['expected_zero_bias_events_above']:g} events "
             "expected above it); each model has its own threshold.", ""]
    if training:
        lines += [f"Reconstruction error per input on the zero-bias test sample: float twin "
                  f"{training.get('float_reconstruction_mse')}, QKeras {training.get('quantized_reconstruction_mse')}.",
                  ""]
    models = [m for m in MODELS if m in numbers["thresholds"]]
    lines += ["| | " + " | ".join(models) + (" | " + numbers["baseline"]["name"] if "baseline" in numbers else "")
              + " |", "|---|" + "---|" * (len(models) + ("baseline" in numbers))]

    def cell(entry):
        return f"{100 * entry['efficiency']:.2f} ± {100 * entry['error']:.2f} %"

    def number(value):
        return "-" if value is None else f"{value:g}"

    base = numbers.get("baseline")
    row = ["threshold"] + [number(numbers["thresholds"][m]["threshold"]) for m in models]
    if base:
        row.append(number(base["threshold"]))
    lines.append("| " + " | ".join(row) + " |")
    row = ["zero-bias events above (rate)"] + [
        f"{numbers['thresholds'][m]['zero_bias_passed']} ({numbers['thresholds'][m]['rate_hz']:g} Hz)" for m in models]
    if base:
        row.append(f"{base['zero_bias_passed']} ({base['rate_hz']:g} Hz)")
    lines.append("| " + " | ".join(row) + " |")
    for name in numbers["signals"]:
        row = [f"efficiency, {name}"] + [cell(numbers["efficiency"][m][name]) for m in models]
        if base:
            row.append(cell(base["efficiency"][name]))
        lines.append("| " + " | ".join(row) + " |")
    if "firmware_vs_qkeras" in numbers:
        lines += ["", "Firmware score == QKeras model score (on the firmware's input values):", "",
                  "| sample | equal | events | largest difference |", "|---|---|---|---|"]
        for name, v in numbers["firmware_vs_qkeras"].items():
            lines.append(f"| {name} | {v['equal']} | {v['events']} | {number(v['max_abs_difference'])} |")
    return "\n".join(lines) + "\n"


def dumps(numbers: dict) -> str:
    return json.dumps(numbers, indent=1, sort_keys=True) + "\n"


# ------------------------------------------------------------------ the built-in example's samples
def physics_settings(config: dict) -> dict:
    """Samples and rate of the physics from a trigger.yml: ``dataset`` (generator l1_events, seed,
    zero_bias_events, signal_events) and ``model`` (rate_hz, collision_rate_hz)."""
    dataset, model = config.get("dataset") or {}, config.get("model") or {}
    if dataset.get("generator") != "l1_events":
        raise ConfigError(f"anomaly: the physics needs dataset.generator l1_events, got {dataset.get('generator')!r}")
    out = {"seed": int(dataset.get("seed", 1)),
           "zero_bias_events": dataset.get("zero_bias_events", DEFAULT_ZERO_BIAS_EVENTS),
           "signal_events": dataset.get("signal_events", DEFAULT_SIGNAL_EVENTS),
           "rate_hz": model.get("rate_hz", DEFAULT_RATE_HZ),
           "collision_rate_hz": model.get("collision_rate_hz", COLLISION_RATE_HZ)}
    for key in ("zero_bias_events", "signal_events"):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 1:
            raise ConfigError(f"dataset.{key} must be a positive integer, got {out[key]!r}")
    for key in ("rate_hz", "collision_rate_hz"):
        if isinstance(out[key], bool) or not isinstance(out[key], (int, float)) or not out[key] > 0:
            raise ConfigError(f"model.{key} must be a positive number, got {out[key]!r}")
    if out["rate_hz"] > out["collision_rate_hz"]:
        raise ConfigError("model.rate_hz must not exceed model.collision_rate_hz")
    return out


def firmware_scores(fw, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(firmware scores as floats, the firmware's input values as floats) of feature rows ``x``: the inputs
    quantized to the firmware's input type (saturating, as the links would), run through the emulator."""
    from trigger.ir.model import emulate

    fmt = fw.input.format
    xq = fw.input.quantize(np.clip(np.asarray(x, dtype=np.float64), fmt.min_value, fmt.max_value))
    raw = emulate(fw, xq).outputs
    out_type = fw.output
    return out_type.to_float(raw)[:, 0], fw.input.to_float(xq)


def score_sample(fw, keras_model, float_model, x: np.ndarray, progress=None) -> dict[str, np.ndarray]:
    """{"firmware", "qkeras", "float"} scores of feature rows ``x`` (in chunks; ``progress(n)`` after each)."""
    from trigger.frontends.keras import keras_predict
    from trigger.train import anomaly_score

    parts = {"firmware": [], "qkeras": [], "float": []}
    for start in range(0, len(x), CHUNK):
        block = x[start:start + CHUNK]
        score, real = firmware_scores(fw, block)
        parts["firmware"].append(score)
        predicted = keras_predict(keras_model, [tuple(keras_model.input_shape[1:])], real.reshape(len(block), -1))
        parts["qkeras"].append(predicted[:, 0])
        parts["float"].append(anomaly_score(float_model, block))
        if progress is not None:
            progress(len(block))
    return {k: np.concatenate(v) for k, v in parts.items()}


def design_reports(fw, keras_model, trained) -> dict[str, bytes]:
    """The files of an autoencoder built in the flow (``trained``: ``trigger.train.TrainResult`` of kind
    autoencoder): reports/anomaly.json, anomaly.md and plots/anomaly_scores.png, anomaly_efficiency.png."""
    from trigger.data import l1_events

    from tqdm import tqdm

    cfg = physics_settings(trained.config)
    seed = cfg["seed"]
    signals, ht = {}, {}
    # the samples, scored by the firmware (emulator), the QKeras model and the float twin
    with tqdm(total=cfg["zero_bias_events"] + len(l1_events.SIGNALS) * cfg["signal_events"], unit=" events",
              desc="anomaly physics", leave=False) as bar:
        zb_raw = l1_events.events(cfg["zero_bias_events"], seed + 2000, "zero_bias")
        background = score_sample(fw, keras_model, trained.float_model, l1_events.features(zb_raw), bar.update)
        for k, name in enumerate(l1_events.SIGNALS):
            raw = l1_events.events(cfg["signal_events"], seed + 3000 + k, name)
            signals[name] = score_sample(fw, keras_model, trained.float_model, l1_events.features(raw), bar.update)
            ht[name] = l1_events.ht(raw)
    lsb = 2.0 ** -fw.output.format.fractional
    numbers = anomaly_numbers(background, signals, cfg["rate_hz"], cfg["collision_rate_hz"], firmware_lsb=lsb,
                              baseline={"name": "HT (scalar sum of jet pT, GeV)",
                                        "background": l1_events.ht(zb_raw), "signals": ht})
    training = {"float_reconstruction_mse": _r(trained.float_loss),
                "quantized_reconstruction_mse": _r(trained.quantized_loss), "test_samples": trained.n_test}
    numbers["training"] = training
    reports = {f"plots/{k}": v for k, v in anomaly_plots(background, signals, numbers).items()}
    reports["anomaly.json"] = dumps(numbers).encode()
    reports["anomaly.md"] = report_md(numbers, training).encode()
    return reports


def physics_vectors(fw, config: dict, n: int = 1000) -> np.ndarray:
    """``n`` raw input vectors of the example's physics (half zero bias, the rest shared by the signals), for
    the bundle's test vectors beside the random ones: realistic events, quantized to the firmware's input type."""
    from trigger.data import l1_events

    seed = physics_settings(config)["seed"]
    counts = [n - n // 2] + [len(v) for v in np.array_split(np.arange(n // 2), len(l1_events.SIGNALS))]
    raw = [l1_events.events(max(c, 1), seed + 4000 + k, p)[:c] for k, (p, c) in
           enumerate(zip(l1_events.PROCESSES, counts))]
    x = l1_events.features(np.concatenate(raw))
    fmt = fw.input.format
    return fw.input.quantize(np.clip(x.astype(np.float64), fmt.min_value, fmt.max_value))
