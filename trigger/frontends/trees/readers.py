"""Readers: library ensembles -> ``FloatEnsemble``, all read as data.

- scikit-learn objects through the Python API (``from_sklearn``): GradientBoosting*,
  HistGradientBoosting*, RandomForest*; a registry keyed by the class name.
- model files (``read_file``): xgboost JSON (``save_model("x.json")``), the project's
  own ensemble JSON (``FloatEnsemble.save``), ONNX ``TreeEnsemble*`` graphs. Pickle
  files (``.pkl``, ``.joblib``) are refused: loading one executes code from it.

Each reader records what the library computes: scikit-learn goes left when
``x <= t`` and xgboost when ``x < t``; gradient boosting multiplies leaves by
the learning rate (scikit-learn's ``GradientBoosting*`` at predict time: here
folded into the leaves); a random forest averages (leaves divided by the
number of trees); the initial prediction is the bias.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from trigger.errors import ModelError
from trigger.frontends.trees.ensemble import FORMAT, FloatEnsemble, FloatTree

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav")


# ------------------------------------------------------------------ scikit-learn
def _sk_tree(tree, scale: float, columns) -> FloatTree:
    """A fitted ``sklearn.tree._tree.Tree`` (leaf values times ``scale``; ``columns`` picks outputs)."""
    feature = np.asarray(tree.feature, dtype=np.int64)
    internal = np.asarray(tree.children_left) >= 0
    value = np.asarray(tree.value, dtype=np.float64)  # (n, n_outputs, n_values)
    return FloatTree(np.where(internal, feature, -1), np.where(internal, tree.threshold, 0.0),
                     np.where(internal, tree.children_left, -1), np.where(internal, tree.children_right, -1),
                     columns(value[:, 0, :]) * scale)


def _gradient_boosting(model, classifier: bool) -> FloatEnsemble:
    stages = model.estimators_  # (n_stages, K) DecisionTreeRegressor
    k = stages.shape[1]
    bias = np.asarray(model._raw_predict_init(np.zeros((1, model.n_features_in_))), dtype=np.float64).reshape(-1)
    trees = []
    for stage in stages:
        for c, est in enumerate(stage):
            def column(v, c=c):  # this tree adds to class c only
                out = np.zeros((v.shape[0], k))
                out[:, c] = v[:, 0]
                return out
            trees.append(_sk_tree(est.tree_, model.learning_rate, column))
    return FloatEnsemble(trees, bias, int(model.n_features_in_), "<=", *_decision(classifier, k, 0.0, True),
                         source=type(model).__name__)


def _decision(classifier: bool, k: int, threshold: float, inclusive: bool = False) -> tuple:
    if not classifier:
        return "none", 0.0, False
    return ("threshold", threshold, inclusive) if k == 1 else ("argmax", 0.0, False)


def _hist_gradient_boosting(model, classifier: bool) -> FloatEnsemble:
    if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
        raise ModelError(f"{type(model).__name__}: categorical features are not supported (comparators only)")
    k = len(model._predictors[0])
    bias = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    trees = []
    for stage in model._predictors:
        for c, predictor in enumerate(stage):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            value = np.zeros((len(nodes), k))
            value[:, c] = nodes["value"]
            trees.append(FloatTree(np.where(leaf, -1, nodes["feature_idx"]).astype(np.int64),
                                   np.where(leaf, 0.0, nodes["num_threshold"]),
                                   np.where(leaf, -1, nodes["left"]).astype(np.int64),
                                   np.where(leaf, -1, nodes["right"]).astype(np.int64), value))
    return FloatEnsemble(trees, bias, int(model.n_features_in_), "<=", *_decision(classifier, k, 0.0),
                         source=type(model).__name__)


def _random_forest(model, classifier: bool) -> FloatEnsemble:
    n = len(model.estimators_)
    if classifier:
        n_classes = len(model.classes_)

        def columns(v):  # class fractions of each leaf (normalised, whatever the sklearn version stores)
            p = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300)
            return p[:, 1:2] if n_classes == 2 else p  # binary: the probability of class 1 only
        k = 1 if n_classes == 2 else n_classes
    else:
        def columns(v):
            return v[:, :1]
        k = 1
    trees = [_sk_tree(est.tree_, 1.0 / n, columns) for est in model.estimators_]
    return FloatEnsemble(trees, np.zeros(k), int(model.n_features_in_), "<=", *_decision(classifier, k, 0.5),
                         source=type(model).__name__)


SKLEARN_READERS: dict[str, Callable] = {
    "GradientBoostingRegressor": lambda m: _gradient_boosting(m, False),
    "GradientBoostingClassifier": lambda m: _gradient_boosting(m, True),
    "HistGradientBoostingRegressor": lambda m: _hist_gradient_boosting(m, False),
    "HistGradientBoostingClassifier": lambda m: _hist_gradient_boosting(m, True),
    "RandomForestRegressor": lambda m: _random_forest(m, False),
    "RandomForestClassifier": lambda m: _random_forest(m, True),
}


def from_sklearn(model) -> FloatEnsemble:
    """The ensemble of a fitted scikit-learn estimator (read through its attributes, no pickling)."""
    name = type(model).__name__
    if not type(model).__module__.startswith("sklearn.") or name not in SKLEARN_READERS:
        raise ModelError(f"{name}: not a supported scikit-learn ensemble (supported: {', '.join(SKLEARN_READERS)})")
    if getattr(model, "n_outputs_", 1) != 1:
        raise ModelError(f"{name}: multi-output regression is not supported")
    if not hasattr(model, "n_features_in_"):
        raise ModelError(f"{name}: the estimator is not fitted")
    ens = SKLEARN_READERS[name](model)
    ens.check(name)
    return ens


# ------------------------------------------------------------------ xgboost JSON
_PROBABILITY_OBJECTIVES = ("binary:logistic", "reg:logistic", "binary:logitraw")


def _xgb_base_score(learner: dict, k: int, where: str) -> np.ndarray:
    text = str(learner["learner_model_param"].get("base_score", "0"))
    try:
        values = [float(v) for v in text.strip("[]").split(",") if v.strip()]
    except ValueError:
        raise ModelError(f"{where}: base_score {text!r} is not a number") from None
    objective = learner.get("objective", {}).get("name", "")
    if objective in ("binary:logistic", "reg:logistic"):  # stored as a probability; the margin is its logit
        values = [math.log(v / (1.0 - v)) if 0.0 < v < 1.0 else math.nan for v in values]
    if len(values) == 1:
        values = values * k
    if len(values) != k:
        raise ModelError(f"{where}: {len(values)} base scores for {k} classes")
    return np.asarray(values, dtype=np.float64)


def from_xgboost_json(data: dict, where: str) -> FloatEnsemble:
    """An xgboost model saved as JSON (``Booster.save_model("x.json")``), read as data."""
    try:
        learner = data["learner"]
        booster = learner["gradient_booster"]
        if booster.get("name") != "gbtree":
            raise ModelError(f"{where}: booster {booster.get('name')!r} is not supported (gbtree only)")
        model = booster["model"]
        params = learner["learner_model_param"]
        n_features = int(params["num_feature"])
        n_class = int(params.get("num_class", "0"))
        if int(params.get("num_target", "1")) != 1:
            raise ModelError(f"{where}: multi-target models are not supported")
        k = max(n_class, 1)
        tree_info = [int(c) for c in model["tree_info"]]
        trees = []
        for t, tree in enumerate(model["trees"]):
            left = np.asarray(tree["left_children"], dtype=np.int64)
            right = np.asarray(tree["right_children"], dtype=np.int64)
            feature = np.asarray(tree["split_indices"], dtype=np.int64)
            cond = np.asarray([math.nan if v is None else v for v in tree["split_conditions"]], dtype=np.float64)
            if any(int(s) != 0 for s in tree.get("split_type", [])):
                raise ModelError(f"{where}: tree {t} has categorical splits (comparators only)")
            leaf = left < 0
            value = np.zeros((len(left), k))
            value[leaf, tree_info[t]] = cond[leaf]  # a leaf keeps its value in split_conditions
            # xgboost compares float32 inputs with float32 split values: x < t
            thresh = np.where(leaf, 0.0, cond.astype(np.float32).astype(np.float64))
            trees.append(FloatTree(np.where(leaf, -1, feature), thresh, np.where(leaf, -1, left),
                                   np.where(leaf, -1, right), value))
        bias = _xgb_base_score(learner, k, where)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise ModelError(f"{where}: not a valid xgboost JSON model ({type(err).__name__}: {err})") from None
    objective = learner.get("objective", {}).get("name", "")
    classifier = objective.startswith("binary:") or objective.startswith("multi:")
    ens = FloatEnsemble(trees, bias, n_features, "<", *_decision(classifier, k, 0.0),
                        source=f"xgboost {'.'.join(map(str, data.get('version', [])))} {objective}".strip())
    ens.check(where)
    return ens


# ------------------------------------------------------------------ ONNX TreeEnsemble*
_ONNX_MODES = {"BRANCH_LEQ": "<=", "BRANCH_LT": "<"}


def from_onnx(path: Path) -> FloatEnsemble:
    """The one ``TreeEnsembleRegressor`` / ``TreeEnsembleClassifier`` (ai.onnx.ml) node of an ONNX file."""
    try:
        import onnx
        from onnx import helper
    except ImportError as err:
        raise ModelError(f"{path}: reading ONNX needs the onnx package ({err})") from None
    try:
        model = onnx.load(str(path))
    except Exception as err:  # noqa: BLE001 - onnx raises many kinds for a bad file
        raise ModelError(f"{path}: not a readable ONNX file ({type(err).__name__})") from None
    nodes = [n for n in model.graph.node if n.op_type in ("TreeEnsembleRegressor", "TreeEnsembleClassifier")]
    if len(nodes) != 1:
        raise ModelError(f"{path}: expected one TreeEnsembleRegressor/Classifier node, found {len(nodes)}")
    node = nodes[0]
    a = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
    where = f"{path} node {node.name or node.op_type}"
    classifier = node.op_type == "TreeEnsembleClassifier"
    pre = "class" if classifier else "target"
    tree_ids, node_ids = list(a.get("nodes_treeids", [])), list(a.get("nodes_nodeids", []))
    modes = [m.decode() if isinstance(m, bytes) else m for m in a.get("nodes_modes", [])]
    transform = a.get("post_transform", b"NONE")
    transform = transform.decode() if isinstance(transform, bytes) else str(transform)
    if not classifier and transform != "NONE":
        raise ModelError(f"{where}: post_transform {transform} on a regressor is not supported (the firmware "
                         f"outputs the sum of the trees)")
    n_features = 0
    try:
        index = {(t, n): i for i, (t, n) in enumerate(zip(tree_ids, node_ids))}
        if classifier:
            labels = list(a.get("classlabels_int64s", [])) or list(a.get("classlabels_strings", []))
            if len(labels) < 3:
                raise ModelError(f"{where}: binary TreeEnsembleClassifier graphs are not supported (their score "
                                 f"conventions vary by exporter); save the ensemble as trigger JSON or xgboost JSON")
            k = len(labels)
        else:
            k = int(a.get("n_targets", 1))
            if k != 1:
                raise ModelError(f"{where}: {k} regression targets; one is supported")
        values: dict = {}
        for t, n, c, w in zip(a[f"{pre}_treeids"], a[f"{pre}_nodeids"], a[f"{pre}_ids"], a[f"{pre}_weights"]):
            values.setdefault((t, n), np.zeros(k))[c] += w
        trees = []
        comparison = None
        for t in sorted(set(tree_ids)):
            ids = sorted(n for (tt, n) in index if tt == t)
            local = {n: j for j, n in enumerate(ids)}
            feature, thresh, left, right, value = [], [], [], [], []
            for n in ids:
                i = index[(t, n)]
                mode = modes[i]
                if mode == "LEAF":
                    feature.append(-1)
                    thresh.append(0.0)
                    left.append(-1)
                    right.append(-1)
                else:
                    if mode not in _ONNX_MODES:
                        raise ModelError(f"{where}: tree {t} node {n}: mode {mode} is not supported "
                                         f"(BRANCH_LEQ, BRANCH_LT)")
                    if comparison not in (None, _ONNX_MODES[mode]):
                        raise ModelError(f"{where}: mixes BRANCH_LEQ and BRANCH_LT")
                    comparison = _ONNX_MODES[mode]
                    feature.append(int(a["nodes_featureids"][i]))
                    thresh.append(float(a["nodes_values"][i]))
                    left.append(local[a["nodes_truenodeids"][i]])
                    right.append(local[a["nodes_falsenodeids"][i]])
                    n_features = max(n_features, feature[-1] + 1)
                value.append(values.get((t, n), np.zeros(k)))
            trees.append(FloatTree(np.array(feature), np.array(thresh), np.array(left), np.array(right),
                                   np.array(value).reshape(len(ids), k)))
        bias = np.asarray(list(a.get("base_values", [])) or [0.0] * k, dtype=np.float64)
    except (KeyError, IndexError, TypeError) as err:
        raise ModelError(f"{where}: incomplete tree ensemble attributes ({type(err).__name__}: {err})") from None
    dims = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    if len(dims) == 2 and dims[1].dim_value:
        n_features = int(dims[1].dim_value)  # the graph's declared width: a node testing beyond it is an error
    ens = FloatEnsemble(trees, bias, n_features, comparison or "<=", *_decision(classifier, k, 0.0),
                        source=f"onnx {node.op_type}")
    ens.check(where)
    return ens


# ------------------------------------------------------------------ files
def read_file(path: Path) -> FloatEnsemble:
    """The ensemble in a model file, chosen by suffix and content; never unpickles."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ModelError(f"{path}: pickle files are never loaded (unpickling runs code from the file); save the "
                         f"ensemble as data: xgboost save_model('model.json'), or for scikit-learn "
                         f"trigger.frontends.trees.save_ensemble(model, 'ensemble.json')")
    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    if suffix == ".onnx":
        return from_onnx(path)
    if suffix != ".json":
        raise ModelError(f"{path}: unknown tree model format {path.suffix!r} (expected .json: xgboost or trigger "
                         f"ensemble, or .onnx)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return FloatEnsemble.from_dict(data, str(path))
    if isinstance(data, dict) and "learner" in data:
        return from_xgboost_json(data, str(path))
    raise ModelError(f"{path}: neither an xgboost JSON model (no 'learner') nor a {FORMAT} file")
