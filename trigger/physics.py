"""Physics on the user's own data: the firmware (bit-exact emulator) and the source model side by side.

``trigger build|report|ci ... --data FILE`` (or ``trigger.report(bundle, data=...)``) takes events
the user brings: an ``.npz`` or ``.h5`` with ``x`` (events x features, or the model's input shape)
and optionally ``y``, or a CSV with named columns (``y``/``label``/``target`` is the truth, the
other columns the features, in the firmware input's element order where its elements have names).

The firmware sees the events as its inputs would: each feature quantized to its input format
(``model.input.quantize``); values outside a format's range are counted per feature (saturated or
wrapped inputs are physics, not a detail). The source model (the user's model, run by its own
framework on the unquantized events) is evaluated at build time, when it is loaded, and stored as
``reports/data_source_outputs.npy`` with the sha256 of the events it saw; ``trigger report --data``
shows it beside the firmware when the events are the same.

What is shown depends on the design (``task``, overridable): a classifier (several outputs, or an
argmax output) gets ROC curves per class, efficiency at fixed background acceptance and rate
versus efficiency; a regressor (one output, real-valued y) bias, resolution and a turn-on at
``threshold``; an anomaly score (one output, no y or integer y) score distributions and rate versus
threshold. Rates are background acceptance x ``rate_mhz`` (default 40 MHz, the LHC bunch-crossing
rate); the background is y == 0 when y is given (anomaly: every event when there is no y).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from trigger.errors import ConfigError

TASKS = ("classifier", "regressor", "anomaly")
SOURCE_OUTPUTS = "data_source_outputs.npy"  # under reports/
ACCEPTANCES = (0.001, 0.01, 0.1)  # background acceptances at which efficiencies are quoted
DEFAULT_RATE_MHZ = 40.0
TRUTH_COLUMNS = ("y", "label", "labels", "target", "truth")


# ------------------------------------------------------------------ reading the events
def load_data(data, y=None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(x float64 (n, ...), y or None, a label for reports) from a file path or arrays."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise ConfigError(f"--data {path}: file not found")
        suffix = path.suffix.lower()
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                if "x" not in npz:
                    raise ConfigError(f"--data {path}: no array 'x' (found {', '.join(npz.files) or 'none'})")
                x, y = npz["x"], npz["y"] if "y" in npz else None
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as h5:
                if "x" not in h5:
                    raise ConfigError(f"--data {path}: no dataset 'x' (found {', '.join(h5.keys()) or 'none'})")
                x, y = h5["x"][()], h5["y"][()] if "y" in h5 else None
        elif suffix == ".csv":
            x, y = _read_csv(path)
            return x, y, path.name
        else:
            raise ConfigError(f"--data {path}: expected an .npz, .h5 or .csv file")
        label = path.name
    else:
        x, label = data, "array"
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"--data {label}: x is not numeric") from None
    if x.ndim < 2 or len(x) == 0:
        raise ConfigError(f"--data {label}: x must be events x features, got shape {x.shape}")
    if y is not None:
        y = np.asarray(y)
        if y.ndim > 1 and y.shape[1:] != (1,):
            if y.ndim == 2 and set(np.unique(y)) <= {0, 1} and np.all(y.sum(axis=1) == 1):
                y = np.argmax(y, axis=1)  # one-hot labels
            else:
                raise ConfigError(f"--data {label}: y must be one value per event, got shape {y.shape}")
        y = y.reshape(-1)
        if len(y) != len(x):
            raise ConfigError(f"--data {label}: {len(x)} events in x but {len(y)} in y")
    return x, y, label


def _read_csv(path: Path):
    import csv

    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise ConfigError(f"--data {path}: a header line and at least one event expected")
    header = [h.strip() for h in rows[0]]
    try:
        table = np.array([[float(v) for v in r] for r in rows[1:] if r], dtype=np.float64)
    except ValueError as err:
        raise ConfigError(f"--data {path}: not numeric ({err})") from None
    truth = [i for i, h in enumerate(header) if h.lower() in TRUTH_COLUMNS][:1]
    features = [i for i in range(len(header)) if i not in truth]
    y = table[:, truth[0]] if truth else None
    if y is not None and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return table[:, features], y


def digest(x: np.ndarray) -> str:
    """sha256 of the events (float64, C order): ties stored source outputs to the events they came from."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float64).tobytes()).hexdigest()


def flat(x: np.ndarray, model) -> np.ndarray:
    """Events as rows of the firmware's input bus (several ports: already side by side, or any input shape)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if x.shape[1] != model.input.n:
        raise ConfigError(f"the data has {x.shape[1]} values per event, the firmware {model.input.n} inputs")
    return x


# ------------------------------------------------------------------ the firmware on the events
def quantize_inputs(model, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Raw firmware inputs of real events, and per feature how many values fell outside the input format."""
    lo = np.array([f.min_value for f in model.input.formats])
    hi = np.array([f.max_value for f in model.input.formats])
    outside = (x < lo) | (x > hi)
    from trigger.source_model import quantize

    raw = quantize(model.input, x)
    names = list(model.input.names) if model.input.names else [f"input[{i}]" for i in range(model.input.n)]
    per_feature = {names[i]: int(c) for i, c in enumerate(outside.sum(axis=0)) if c}
    counts = {"events": int(len(x)), "values_outside": int(outside.sum()),
              "events_with_input_outside": int(outside.any(axis=1).sum()), "per_feature": per_feature,
              "formats": sorted({f.cpp for f in model.input.formats})}
    return raw, counts


def firmware_outputs(model, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """The firmware's (emulator's) real outputs on real events, and the input range counts."""
    from trigger.ir.model import emulate

    raw, counts = quantize_inputs(model, x)
    from trigger.source_model import to_float

    out = emulate(model, raw).outputs
    return to_float(model.output, out), counts


def store_source_outputs(design, data, y=None) -> None:
    """At build time (the source model loaded): its outputs on the user's events, into the bundle."""
    source = getattr(design, "source_model", None)
    if source is None:
        return
    x, _, label = load_data(data, y)
    x = flat(x, design.model)
    from trigger.source_model import CHUNK

    outs = [np.asarray(source.predict(x[i:i + CHUNK]), dtype=np.float64).reshape(len(x[i:i + CHUNK]), -1)
            for i in range(0, len(x), CHUNK)]
    buf = io.BytesIO()
    np.save(buf, np.vstack(outs), allow_pickle=False)
    design.reports[SOURCE_OUTPUTS] = buf.getvalue()
    design.manifest["data"] = {"file": label, "events": int(len(x)), "x_sha256": digest(x),
                               "source_outputs": f"reports/{SOURCE_OUTPUTS}", "framework": source.framework}


# ------------------------------------------------------------------ the figures
def choose_task(model, y, task: str | None = None) -> str:
    if task is not None:
        if task not in TASKS:
            raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
        return task
    if model.ops and model.ops[-1].kind == "argmax" or model.output.n > 1:
        return "classifier"
    if y is not None and np.issubdtype(np.asarray(y).dtype, np.floating) and np.any(y != np.round(y)):
        return "regressor"
    return "anomaly"


def roc(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(background acceptance, signal efficiency) over every threshold (score > t accepted)."""
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order]
    tp, fp = np.cumsum(p), np.cumsum(~p)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # one point per distinct threshold
    npos, nneg = max(int(p.sum()), 1), max(int((~p).sum()), 1)
    return np.r_[0.0, fp[last] / nneg], np.r_[0.0, tp[last] / npos]


def auc(fpr, tpr) -> float:
    return float(np.trapz(tpr, fpr))


def efficiency_at(fpr, tpr, acceptance: float) -> float:
    """Signal efficiency at a background acceptance (the best threshold whose acceptance is within it)."""
    ok = fpr <= acceptance + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _softmax(v):
    e = np.exp(v - v.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _class_scores(outputs: np.ndarray, is_probability: bool) -> np.ndarray:
    return outputs if is_probability else _softmax(outputs)


def analyse(model, x: np.ndarray, y=None, source_out=None, task=None, threshold=None, rate_mhz=DEFAULT_RATE_MHZ,
            label: str = "data", class_names=None) -> dict:
    """The physics section: firmware (emulator) and source model on the events."""
    x = flat(x, model)
    firmware, counts = firmware_outputs(model, x)
    task = choose_task(model, y, task)
    section = {"task": task, "events": int(len(x)), "data": label, "inputs": counts, "rate_mhz": rate_mhz,
               "source_available": source_out is not None, "witnesses": {}}
    witnesses = {"firmware": firmware}
    if source_out is not None:
        witnesses["source"] = np.asarray(source_out, dtype=np.float64).reshape(len(x), -1)
    last = model.ops[-1].kind if model.ops else ""
    if task == "classifier":
        section.update(_classifier(witnesses, y, last, rate_mhz, class_names))
    elif task == "regressor":
        section.update(_regressor(witnesses, y, threshold))
    else:
        section.update(_anomaly(witnesses, y, threshold, rate_mhz))
    if source_out is not None and witnesses["source"].shape == firmware.shape:
        diff = np.abs(witnesses["source"] - firmware)
        section["agreement"] = {"max_abs_difference": float(diff.max()), "mean_abs_difference": float(diff.mean())}
    return section


def _classifier(w: dict, y, last_kind: str, rate_mhz: float, class_names) -> dict:
    out: dict = {"classes": None, "per_witness": {}}
    index_output = last_kind == "argmax"
    for name, values in w.items():
        if index_output or values.shape[1] == 1:
            predicted = values[:, 0].astype(np.int64)
            scores = None
        else:
            scores = _class_scores(values, last_kind == "softmax")
            predicted = np.argmax(values, axis=1)
        entry: dict = {"predicted": predicted}
        if y is not None:
            y_int = np.asarray(y).astype(np.int64)
            entry["accuracy"] = float(np.mean(predicted == y_int))
            if scores is not None:
                per_class = {}
                for c in range(scores.shape[1]):
                    positive = y_int == c
                    if not positive.any() or positive.all():
                        continue
                    fpr, tpr = roc(scores[:, c], positive)
                    per_class[str(c)] = {"auc": auc(fpr, tpr),
                                         "efficiency_at": {str(a): efficiency_at(fpr, tpr, a) for a in ACCEPTANCES},
                                         "curve": (fpr, tpr)}
                entry["classes"] = per_class
        out["per_witness"][name] = entry
    if "source" in w:
        out["class_agreement"] = float(np.mean(out["per_witness"]["firmware"]["predicted"]
                                               == out["per_witness"]["source"]["predicted"]))
    n_classes = w["firmware"].shape[1] if not index_output else int(max(np.max(v) for v in w.values())) + 1
    out["classes"] = list(class_names) if class_names else [str(c) for c in range(n_classes)]
    return out


def _regressor(w: dict, y, threshold) -> dict:
    if y is None:
        raise ConfigError("--task regressor needs the true values: y in the data")
    y = np.asarray(y, dtype=np.float64)
    threshold = float(np.median(y)) if threshold is None else float(threshold)
    out: dict = {"threshold": threshold, "per_witness": {}}
    edges = np.quantile(y, np.linspace(0, 1, 21))
    edges = np.unique(edges)
    for name, values in w.items():
        pred = values[:, 0]
        res = pred - y
        entry = {"bias": float(res.mean()), "resolution": float(res.std()),
                 "mean_abs_error": float(np.abs(res).mean()), "residuals": res}
        if np.all(y > 0):
            ratio = pred / y
            entry["relative_bias"] = float(ratio.mean() - 1)
            entry["relative_resolution"] = float(ratio.std())
        centers, eff = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (y >= lo) & (y < hi) if hi != edges[-1] else (y >= lo) & (y <= hi)
            if sel.any():
                centers.append(float((lo + hi) / 2))
                eff.append(float(np.mean(pred[sel] > threshold)))
        entry["turn_on"] = {"true_value": centers, "efficiency": eff}
        out["per_witness"][name] = entry
    return out


def _anomaly(w: dict, y, threshold, rate_mhz: float) -> dict:
    if y is not None and np.any(np.asarray(y, dtype=np.float64) != np.round(np.asarray(y, dtype=np.float64))):
        y = None  # real-valued y is not a label: every event is background
    background = np.ones(len(w["firmware"]), bool) if y is None else (np.asarray(y) == 0)
    out: dict = {"per_witness": {}, "background": "all events" if y is None else "y == 0"}
    for name, values in w.items():
        score = values[:, 0]
        bkg = np.sort(score[background])[::-1]
        entry: dict = {"score": score, "mean": float(score.mean()), "std": float(score.std())}
        # the threshold for each target rate: the score the (1 - acceptance) quantile of the background reaches
        entry["threshold_at_rate"] = {f"{a * rate_mhz * 1000:g} kHz": float(bkg[min(int(a * len(bkg)), len(bkg) - 1)])
                                      for a in ACCEPTANCES if len(bkg)}
        if threshold is not None:
            entry["rate_khz_at_threshold"] = float(np.mean(score[background] > threshold) * rate_mhz * 1000)
        if y is not None and (~background).any() and background.any():
            fpr, tpr = roc(score, ~background)
            entry["auc"] = auc(fpr, tpr)
            entry["efficiency_at"] = {str(a): efficiency_at(fpr, tpr, a) for a in ACCEPTANCES}
            entry["curve"] = (fpr, tpr)
        out["per_witness"][name] = entry
    if threshold is not None:
        out["threshold"] = float(threshold)
    return out


# ------------------------------------------------------------------ for the report
def plots(section: dict) -> dict[str, bytes]:
    """PNG plots of the physics section: name -> bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {"firmware": dict(color="#c62828", lw=1.6), "source": dict(color="#4477aa", lw=1.2, ls="--")}
    label = {"firmware": "firmware (emulator)", "source": "source model"}
    pngs = {}
    task, per = section["task"], section["per_witness"]
    rate = section["rate_mhz"] * 1000  # kHz

    def save(fig, name):
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        plt.close(fig)
        pngs[name] = buf.getvalue()

    if task == "classifier" and any(e.get("classes") for e in per.values()):
        classes = section["classes"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        colors = plt.cm.tab10.colors
        for name, entry in per.items():
            for c, data in (entry.get("classes") or {}).items():
                fpr, tpr = data["curve"]
                kw = dict(style[name], color=colors[int(c) % 10])
                tag = f"{classes[int(c)] if int(c) < len(classes) else c}"
                seen = fpr > 0  # a log axis: thresholds that accept no background at all are left out
                axes[0].plot(tpr[seen], fpr[seen], label=f"{tag} {label[name]} (AUC {data['auc']:.3f})", **kw)
                axes[1].plot(tpr[seen], fpr[seen] * rate, **kw)
        axes[0].set_yscale("log")
        axes[0].set_xlabel("signal efficiency")
        axes[0].set_ylabel("background acceptance")
        axes[0].set_title("ROC per class (solid: firmware, dashed: source model)")
        axes[0].legend(fontsize=6, ncol=2)
        axes[1].set_yscale("log")
        axes[1].set_xlabel("signal efficiency")
        axes[1].set_ylabel(f"rate (kHz at {section['rate_mhz']:g} MHz)")
        axes[1].set_title("Rate vs efficiency")
        save(fig, "physics_classifier")
    elif task == "regressor":
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for name, entry in per.items():
            res = entry["residuals"]
            axes[0].hist(res, bins=80, histtype="step", label=f"{label[name]}: bias {entry['bias']:.3g}, "
                                                              f"σ {entry['resolution']:.3g}", **style[name])
            axes[1].plot(entry["turn_on"]["true_value"], entry["turn_on"]["efficiency"], marker=".",
                         label=label[name], **style[name])
        axes[0].set_xlabel("predicted - true")
        axes[0].set_title("Resolution")
        axes[0].legend(fontsize=7)
        axes[1].axvline(section["threshold"], color="k", ls=":", lw=1)
        axes[1].set_xlabel("true value")
        axes[1].set_ylabel(f"efficiency (predicted > {section['threshold']:.4g})")
        axes[1].set_title("Turn-on")
        axes[1].legend(fontsize=7)
        save(fig, "physics_regressor")
    elif task == "anomaly":
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for name, entry in per.items():
            score = entry["score"]
            axes[0].hist(score, bins=80, histtype="step", label=label[name], **style[name])
            s = np.sort(score)[::-1]
            axes[1].plot(s, np.arange(1, len(s) + 1) / len(s) * rate, label=label[name], **style[name])
        axes[0].set_yscale("log")
        axes[0].set_xlabel("anomaly score")
        axes[0].set_title("Score distribution")
        axes[0].legend(fontsize=7)
        axes[1].set_yscale("log")
        axes[1].set_xlabel("threshold")
        axes[1].set_ylabel("rate (kHz), all events")
        axes[1].set_title("Rate vs threshold")
        if section.get("threshold") is not None:
            axes[1].axvline(section["threshold"], color="k", ls=":", lw=1)
        axes[1].legend(fontsize=7)
        save(fig, "physics_anomaly")
    inputs = section["inputs"]["per_feature"]
    if inputs:
        fig, ax = plt.subplots(figsize=(8, 2.6))
        names = list(inputs)
        ax.bar(range(len(names)), [100.0 * inputs[n] / section["events"] for n in names], color="#ccbb44")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("% of events")
        ax.set_title("Inputs outside the input format's range (saturated or wrapped in firmware)")
        save(fig, "physics_inputs")
    return pngs


def rows(section: dict) -> list[list[str]]:
    """(metric, firmware, source model) rows for the report table."""
    per = section["per_witness"]
    have_source = "source" in per

    def row(metric, getter, fmt="{:.4f}"):
        vals = []
        for name in ("firmware", "source"):
            if name not in per:
                continue
            try:
                v = getter(per[name])
            except (KeyError, TypeError):
                v = None
            vals.append("-" if v is None else fmt.format(v))
        return [metric, *vals] + ([] if have_source else ["not available"])

    out = []
    task = section["task"]
    if task == "classifier":
        if "accuracy" in per["firmware"]:
            out.append(row("accuracy", lambda e: 100 * e["accuracy"], "{:.3f} %"))
        classes = section.get("classes") or []
        for c in (per["firmware"].get("classes") or {}):
            name = classes[int(c)] if int(c) < len(classes) else c
            out.append(row(f"class {name}: AUC", lambda e, c=c: e["classes"][c]["auc"]))
            for a in ACCEPTANCES:
                out.append(row(f"class {name}: efficiency at {100 * a:g} % background ({a * section['rate_mhz'] * 1000:g} kHz)",
                               lambda e, c=c, a=a: 100 * e["classes"][c]["efficiency_at"][str(a)], "{:.2f} %"))
        if "class_agreement" in section:
            out.append(["class agreement, firmware vs source", f"{100 * section['class_agreement']:.3f} %", ""])
    elif task == "regressor":
        out.append(row("bias (mean of predicted - true)", lambda e: e["bias"], "{:.4g}"))
        out.append(row("resolution (std of predicted - true)", lambda e: e["resolution"], "{:.4g}"))
        if "relative_resolution" in per["firmware"]:
            out.append(row("relative resolution (std of predicted / true)", lambda e: e["relative_resolution"], "{:.4g}"))
        te = per["firmware"]["turn_on"]
        half = next((t for t, e in zip(te["true_value"], te["efficiency"]) if e >= 0.5), None)
        out.append([f"turn-on at threshold {section['threshold']:.4g}: 50 % point (firmware)",
                    "-" if half is None else f"{half:.4g}", ""])
    else:
        out.append(row("score mean", lambda e: e["mean"], "{:.4g}"))
        out.append(row("score std", lambda e: e["std"], "{:.4g}"))
        for key in per["firmware"].get("threshold_at_rate", {}):
            out.append(row(f"threshold for {key} ({section['background']})",
                           lambda e, key=key: e["threshold_at_rate"][key], "{:.4g}"))
        if "rate_khz_at_threshold" in per["firmware"]:
            out.append(row(f"rate at threshold {section['threshold']:.4g}", lambda e: e["rate_khz_at_threshold"],
                           "{:.4g} kHz"))
        if "auc" in per["firmware"]:
            out.append(row("AUC (y != 0 vs y == 0)", lambda e: e["auc"]))
            for a in ACCEPTANCES:
                out.append(row(f"signal efficiency at {a * section['rate_mhz'] * 1000:g} kHz",
                               lambda e, a=a: 100 * e["efficiency_at"][str(a)], "{:.2f} %"))
    inputs = section["inputs"]
    out.append(["events with an input outside its format", f"{inputs['events_with_input_outside']} of "
                f"{inputs['events']} ({inputs['values_outside']} values)", ""])
    return out


def json_ready(section: dict) -> dict:
    """The section without per-event arrays and curves (report.json)."""
    def clean(obj):
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if k not in ("predicted", "residuals", "score", "curve")}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        if isinstance(obj, np.generic):
            return obj.item()
        return obj
    return json.loads(json.dumps(clean(section)))


def report_section(bundle, data, y=None, task=None, threshold=None, rate_mhz=DEFAULT_RATE_MHZ,
                   class_names=None) -> tuple[dict, dict]:
    """(physics section for report.json, its PNG plots) of a bundle on the user's events."""
    from trigger.bundle import load_manifest
    from trigger.ir.model import FirmwareModel

    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    model = FirmwareModel.load(bundle)
    x, y, label = load_data(data, y)
    x = flat(x, model)
    stored = manifest.get("data") or {}
    source_out, note = None, None
    if stored.get("x_sha256") == digest(x) and (bundle / stored.get("source_outputs", "")).is_file():
        source_out = np.load(bundle / stored["source_outputs"], allow_pickle=False)
    elif stored:
        note = f"the source model's outputs stored at build time are for other events ({stored.get('file')})"
    else:
        note = "the source model was not run on these events: build with --data FILE to show it beside the firmware"
    if isinstance(class_names, str):
        class_names = [c.strip() for c in class_names.split(",") if c.strip()]
    section = analyse(model, x, y, source_out, task, threshold, rate_mhz, label, class_names)
    if note:
        section["source_note"] = note
    pngs = plots(section)
    return json_ready(section), pngs
