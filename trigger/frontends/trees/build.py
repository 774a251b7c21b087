"""The tree-ensemble frontend: a ``kind: bdt`` trigger.yml -> a firmware model of one ``tree_ensemble`` op.

The ensemble either comes from a model file (``model.file``: xgboost JSON, the
project's ensemble JSON, ONNX) or is trained here on a seeded toy dataset
(``train``: the endcap muon simulation, pT regression with scikit-learn). The
config is checked completely before the long work; training is seeded, so the
same config gives the same bundle. A trained example carries its physics report:
the float model against the firmware (resolution, turn-on curves, rate proxy).
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from trigger.errors import ConfigError
from trigger.fixed import FixedFormat
from trigger.frontends import BuildOptions, Design
from trigger.frontends.trees.ensemble import DEFAULT_LEAF_FRACTIONAL, FloatEnsemble, firmware_model
from trigger.frontends.trees.readers import from_sklearn, read_file
from trigger.ir.model import FirmwareModel, emulate
from trigger.ir.tensor import TensorType
from trigger.settings import DEFAULT_VECTORS, Checker, common_settings

TOP_KEYS = ("kind", "name", "seed", "inputs", "model", "train", "leaf", "output", "report", "target", "rtl",
            "budget", "verify")
TRAIN_KEYS = ("data", "n_train", "n_test", "algorithm", "target", "n_estimators", "max_depth", "learning_rate",
              "max_pt")
ALGORITHMS = {  # train.algorithm -> scikit-learn regressor class, how the settings map, fixed settings
    "hist_gradient_boosting": ("sklearn.ensemble", "HistGradientBoostingRegressor",
                               {"n_estimators": "max_iter", "max_depth": "max_depth", "learning_rate": "learning_rate"},
                               {"early_stopping": False}),  # exactly n_estimators trees
    "gradient_boosting": ("sklearn.ensemble", "GradientBoostingRegressor",
                          {"n_estimators": "n_estimators", "max_depth": "max_depth", "learning_rate": "learning_rate"},
                          {}),
    "random_forest": ("sklearn.ensemble", "RandomForestRegressor",
                      {"n_estimators": "n_estimators", "max_depth": "max_depth"}, {"n_jobs": 1}),
}
PHYSICS_VECTORS = 2048


def _format(path, value, where) -> FixedFormat:
    try:
        return FixedFormat.parse(str(value))
    except (ValueError, ConfigError) as err:
        Checker(path).fail(where, str(err))


def design_from_config(config: dict, path: Path, options: BuildOptions) -> Design:
    """The design of a ``kind: bdt`` trigger.yml (already read as data from ``path``)."""
    path = Path(path)
    c = Checker(path)
    top = c.mapping(config, "", (), TOP_KEYS)
    name = top.get("name")
    c.identifier(name, "name")
    seed = c.integer(top.get("seed", 1), "seed", 0, 2**31 - 1)
    if ("model" in top) == ("train" in top):
        c.fail("model", "give exactly one of model (a file) or train (a built-in dataset)")
    for opt, value in (("weights", options.weights), ("precision", options.precision), ("backend", options.backend),
                       ("keep_softmax", options.keep_softmax or None)):
        if value is not None:
            raise ConfigError(f"{path}: option {opt} does not apply to a tree ensemble (kind: bdt)")
    leaf = c.mapping(top.get("leaf", {}), "leaf", (), ("fractional_bits", "format"))
    leaf_fmt = _format(path, leaf["format"], "leaf.format") if "format" in leaf else None
    leaf_frac = c.integer(leaf.get("fractional_bits", DEFAULT_LEAF_FRACTIONAL), "leaf.fractional_bits", 0, 40)
    out = c.mapping(top.get("output", {}), "output", (), ("format",))
    output = [_format(path, out["format"], "output.format")] if "format" in out else None
    rep = c.mapping(top.get("report", {}), "report", (), ("thresholds", "low_pt_max"))
    common = common_settings(top, path, options, DEFAULT_VECTORS)  # target, rtl, verify, budget
    reports, extra, summary = {}, None, ""
    if "train" in top:
        ens, inputs, physics = _train(path, top["train"], seed, rep)
        model = firmware_model(ens, name, inputs, leaf_frac, leaf_fmt, output, meta=_meta(ens))
        reports, extra, summary = physics(model)
        digest = hashlib.sha256(path.read_bytes())
    else:
        model_cfg = c.mapping(top["model"], "model", (), ("file",))
        if "file" not in model_cfg:
            c.fail("model.file", "missing required field")
        file = (path.parent / str(model_cfg["file"])).resolve()
        ens = read_file(file)
        inputs = _inputs(path, top.get("inputs"), ens.n_features)
        model = firmware_model(ens, name, inputs, leaf_frac, leaf_fmt, output, meta=_meta(ens))
        digest = hashlib.sha256(path.read_bytes())
        digest.update(hashlib.sha256(file.read_bytes()).hexdigest().encode())
    op = model.ops[0]
    summary = (f"{op.n_trees} trees (depth <= {max(op.tree_depths())}), leaf {op.leaf_fmt.cpp}, "
               f"accum {op.accum_fmt.cpp}" + (f"; {summary}" if summary else ""))
    return Design(model=model, hls_backend="trees_cpp", source_sha256=digest.hexdigest(), part=common.part,
                  clock_period_ns=common.clock_period_ns, pipeline=common.pipeline, rtl_multiplier=common.multiplier,
                  ii=common.ii, layer_ii=common.layer_ii, vectors=common.vectors, extra_vectors=extra,
                  reports=reports, budget=common.budget,
                  manifest={"trees": {**_meta(ens), "n_trees": op.n_trees, "max_depth": max(op.tree_depths()),
                                      "n_nodes": op.n_nodes, "leaf_format": op.leaf_fmt.cpp,
                                      "accum_format": op.accum_fmt.cpp, "decision": op.decision}},
                  summary=summary)


def _meta(ens: FloatEnsemble) -> dict:
    return {"source": ens.source, "comparison": ens.comparison, "classes": ens.n_classes, "decision": ens.decision}


def _inputs(path: Path, value, n: int) -> TensorType:
    """``inputs``: one format for every feature, or a list of {name, format} (element 0 first)."""
    c = Checker(path)
    if value is None:
        c.fail("inputs", f"missing: the formats of the {n} input features (a format, or a list of {{name, format}})")
    if isinstance(value, str):
        return TensorType.uniform(_format(path, value, "inputs"), n)
    if not isinstance(value, list) or len(value) != n:
        c.fail("inputs", f"must list {n} features (the model has {n}), got {value!r:.80}")
    names, formats = [], []
    for i, item in enumerate(value):
        item = c.mapping(item, f"inputs[{i}]", (), ("name", "format"))
        c.identifier(item.get("name"), f"inputs[{i}].name")
        names.append(item["name"])
        formats.append(_format(path, item.get("format"), f"inputs[{i}].format"))
    return TensorType(tuple(formats), tuple(names))


# ------------------------------------------------------------------ training on a built-in dataset
def _train(path: Path, value, seed: int, rep: dict):
    """Train a pT regressor on the toy muon simulation; returns (ensemble, inputs, physics(model))."""
    import importlib

    from trigger.data.muon import FEATURES, simulate_muons

    c = Checker(path)
    train = c.mapping(value, "train", (), TRAIN_KEYS)
    if train.get("data", "muon") != "muon":
        c.fail("train.data", f"the built-in dataset is 'muon' (endcap muon pT), got {train.get('data')!r}")
    algorithm = train.get("algorithm", "hist_gradient_boosting")
    if algorithm not in ALGORITHMS:
        c.fail("train.algorithm", f"must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    n_train = c.integer(train.get("n_train", 100_000), "train.n_train", 1000, 10_000_000)
    n_test = c.integer(train.get("n_test", 100_000), "train.n_test", 1000, 10_000_000)
    n_estimators = c.integer(train.get("n_estimators", 100), "train.n_estimators", 1, 2000)
    max_depth = c.integer(train.get("max_depth", 5), "train.max_depth", 1, 20)
    lr = c.number(train.get("learning_rate", 0.1), "train.learning_rate", positive=True)
    max_pt = c.number(train.get("max_pt", 256.0), "train.max_pt", positive=True)
    thresholds = rep.get("thresholds", [10.0, 20.0, 30.0])
    if not isinstance(thresholds, list) or not thresholds or \
            not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in thresholds):
        c.fail("report.thresholds", f"must be a non-empty list of positive pT values, got {thresholds!r}")
    low_pt_max = c.number(rep.get("low_pt_max", 5.0), "report.low_pt_max", positive=True)

    module, cls, mapping, fixed = ALGORITHMS[algorithm]
    settings = {mapping[k]: v for k, v in (("n_estimators", n_estimators), ("max_depth", max_depth),
                                           ("learning_rate", float(lr))) if k in mapping}
    regressor = getattr(importlib.import_module(module), cls)(random_state=seed, **settings, **fixed)
    names = [f.name for f in FEATURES]
    t0 = time.perf_counter()
    sim_train, sim_test = simulate_muons(n_train, seed * 2 + 1), simulate_muons(n_test, seed * 2 + 2)
    x_train = np.stack([sim_train[n] for n in names], axis=1)
    x_test = np.stack([sim_test[n] for n in names], axis=1)
    if sys.stderr.isatty():
        print(f"training {cls} ({n_estimators} trees, depth {max_depth}) on {n_train} muons...", file=sys.stderr)
    regressor.fit(x_train.astype(np.float64), np.minimum(sim_train["pt"], float(max_pt)))
    train_s = time.perf_counter() - t0
    ens = from_sklearn(regressor)
    ens.source = f"{cls} trained on the toy muon simulation (seed {seed})"
    inputs = TensorType(tuple(FixedFormat.parse(f"{'int' if f.signed else 'uint'}<{f.bits}>") for f in FEATURES),
                        tuple(names))

    def physics(model: FirmwareModel):
        from trigger.frontends.lut.physics import dumps, physics_numbers, physics_plots  # the pT figures of merit

        pt_float = np.maximum(regressor.predict(x_test.astype(np.float64)), 0.0)
        raw = emulate(model, x_test).outputs[:, 0]
        pt_fw = model.output.formats[0].to_float(raw)
        numbers = physics_numbers(sim_test["pt"], pt_float, pt_fw, [float(t) for t in thresholds], float(low_pt_max))
        numbers["float_vs_firmware"] = {"max_abs_difference_gev": float(np.max(np.abs(pt_float - pt_fw))),
                                        "same_trigger_decision": {f"{t:g}": float(np.mean((pt_float >= t) == (pt_fw >= t)))
                                                                  for t in thresholds}}
        reports = {f"plots/{k}": v for k, v in physics_plots(numbers).items()}
        reports["physics.json"] = dumps(numbers).encode()
        reports["bdt.md"] = _report_md(model, ens, numbers, train_s).encode()
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(x_test), size=min(PHYSICS_VECTORS, len(x_test)), replace=False))
        res = numbers["resolution"]
        text = (f"training {train_s:.1f} s, resolution float {res['float']['overall_sigma_68']} "
                f"firmware {res['firmware']['overall_sigma_68']}")
        return reports, x_test[pick], text

    return ens, inputs, physics


def _report_md(model: FirmwareModel, ens: FloatEnsemble, numbers: dict, train_s: float) -> str:
    op = model.ops[0]
    lines = [f"# {model.name}: boosted decision trees for muon pT", "",
             f"- ensemble: {ens.source}; {op.n_trees} trees, depth <= {max(op.tree_depths())}, {op.n_nodes} nodes",
             f"- comparisons `raw <= threshold` on the raw detector integers (exact: the thresholds are the "
             f"library's, rounded down to integers)",
             f"- leaves {op.leaf_fmt.cpp}, accumulator {op.accum_fmt.cpp} (range analysis: cannot overflow), "
             f"output {model.output.formats[0].cpp}", f"- training {train_s:.1f} s", "",
             "| | float model | firmware |", "|---|---|---|"]
    res = numbers["resolution"]
    lines.append(f"| resolution (half 16-84% width of (pT_L1 - pT)/pT) | {res['float']['overall_sigma_68']} | "
                 f"{res['firmware']['overall_sigma_68']} |")
    for thr in numbers["turn_on"]["float"]:
        f, w = numbers["turn_on"]["float"][thr], numbers["turn_on"]["firmware"][thr]
        lines.append(f"| pT >= {thr} GeV: 50% / 90% point [GeV] | {f['pt_at_50']} / {f['pt_at_90']} | "
                     f"{w['pt_at_50']} / {w['pt_at_90']} |")
        lines.append(f"| pT >= {thr} GeV: pass fraction below {numbers['low_pt_max']} GeV | "
                     f"{f['low_pt_pass_fraction']} | {w['low_pt_pass_fraction']} |")
    same = numbers["float_vs_firmware"]["same_trigger_decision"]
    lines += ["", "Same trigger decision, float vs firmware: " +
              ", ".join(f"{t} GeV {100 * v:.3f}%" for t, v in same.items()), ""]
    return "\n".join(lines)


def refuse_pickle(source: Path, options: BuildOptions) -> Design:
    """A pickle given as a model: a one-line error, never ``pickle.load`` (it would run code from the file)."""
    read_file(Path(source))  # raises the ModelError that says what to do instead
    raise ConfigError(f"{source}: not a model file")  # unreachable: read_file refuses every pickle suffix
