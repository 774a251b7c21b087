"""A tree ensemble as the libraries give it (float thresholds and leaves), and its firmware model.

``FloatEnsemble`` is what every reader (scikit-learn objects, xgboost JSON, ...)
produces: trees of float thresholds and per-class float leaves, the library's
comparison (``<=`` or ``<``), a bias per class and a decision rule. It is stored
as plain JSON (``save`` / ``load``), never pickled, so an ensemble trained in a
notebook becomes a file a model folder can point at.

``firmware_model`` quantizes it exactly where that is possible and by rounding
where it is not: thresholds become raw integers of each input's format such
that ``raw <= threshold`` decides as the library does for every value the input
format holds; leaves and bias are rounded to the leaf LSB; the accumulator is
the narrowest one the op's range analysis proves cannot overflow.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trigger.errors import ModelError
from trigger.fixed import FixedFormat
from trigger.ir.model import FirmwareModel
from trigger.ir.ops.tree_ensemble import TreeEnsemble
from trigger.ir.ranges import signed_width
from trigger.ir.tensor import TensorType

FORMAT = "trigger-tree-ensemble"
FORMAT_VERSION = 1
COMPARISONS = ("<=", "<")
DEFAULT_LEAF_FRACTIONAL = 8


@dataclass
class FloatTree:
    feature: np.ndarray  # (n,) int, -1 at leaves
    threshold: np.ndarray  # (n,) float (unused at leaves)
    left: np.ndarray  # (n,) int, -1 at leaves (node indices within this tree)
    right: np.ndarray
    value: np.ndarray  # (n, n_classes) float (used at leaves)


@dataclass
class FloatEnsemble:
    trees: list[FloatTree]
    bias: np.ndarray  # (n_classes,)
    n_features: int
    comparison: str = "<="  # the library's: go left when x <= t (scikit-learn) or x < t (xgboost)
    decision: str = "none"  # none | threshold | argmax
    decision_threshold: float = 0.0  # on the raw score (e.g. 0 for a logit, 0.5 for a mean probability)
    decision_inclusive: bool = False  # class 1 also when the score equals the threshold (GradientBoosting)
    source: str = ""  # what it was read from, for reports
    meta: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return int(np.asarray(self.bias).size)

    def check(self, where: str) -> None:
        """One-line ModelError for what no firmware can implement: NaN, bad indices, bad shapes."""
        if self.comparison not in COMPARISONS:
            raise ModelError(f"{where}: comparison must be one of {', '.join(COMPARISONS)}, got {self.comparison!r}")
        if not self.trees:
            raise ModelError(f"{where}: the ensemble has no trees")
        if not np.all(np.isfinite(self.bias)):
            raise ModelError(f"{where}: the initial prediction (bias) is not finite: {list(self.bias)}")
        k = self.n_classes
        for t, tree in enumerate(self.trees):
            n = len(tree.feature)
            if n == 0 or any(len(a) != n for a in (tree.threshold, tree.left, tree.right)) or \
                    np.shape(tree.value) != (n, k):
                raise ModelError(f"{where}: tree {t}: arrays of different lengths or leaves without {k} value(s)")
            internal = np.asarray(tree.feature) >= 0
            bad = np.flatnonzero(internal & (np.asarray(tree.feature) >= self.n_features))
            if bad.size:
                raise ModelError(f"{where}: tree {t} node {int(bad[0])}: feature index {int(tree.feature[bad[0]])} "
                                 f"out of range (the model has {self.n_features} features)")
            bad = np.flatnonzero(internal & ~np.isfinite(np.asarray(tree.threshold, dtype=np.float64)))
            if bad.size:
                raise ModelError(f"{where}: tree {t} node {int(bad[0])}: threshold is "
                                 f"{tree.threshold[bad[0]]!r}; a comparator needs a finite number")
            leaves = np.asarray(tree.value, dtype=np.float64)[~internal]
            if not np.all(np.isfinite(leaves)):
                raise ModelError(f"{where}: tree {t}: a leaf value is not finite")
            for name in ("left", "right"):
                child = np.asarray(getattr(tree, name))[internal]
                if child.size and (child.min() < 0 or child.max() >= n):
                    raise ModelError(f"{where}: tree {t}: a {name} child index is outside the tree")

    # ------------------------------------------------------------ float evaluation
    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """(n, n_classes) float scores of float inputs, as the library computes them (inputs as float32:
        scikit-learn and xgboost both compare float32 inputs)."""
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        out = np.broadcast_to(np.asarray(self.bias, dtype=np.float64), (len(x), self.n_classes)).copy()
        rows = np.arange(len(x))
        for tree in self.trees:
            feature, threshold = np.asarray(tree.feature), np.asarray(tree.threshold, dtype=np.float64)
            node = np.zeros(len(x), dtype=np.int64)
            while True:
                f = feature[node]
                inner = f >= 0
                if not inner.any():
                    break
                xv = x[rows, np.maximum(f, 0)]
                go_left = xv <= threshold[node] if self.comparison == "<=" else xv < threshold[node]
                node = np.where(inner, np.where(go_left, np.asarray(tree.left)[node], np.asarray(tree.right)[node]),
                                node)
            out += np.asarray(tree.value, dtype=np.float64)[node]
        return out

    # ------------------------------------------------------------ storage (data, never code)
    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "n_features": int(self.n_features),
                "comparison": self.comparison, "bias": [float(b) for b in self.bias], "decision": self.decision,
                "decision_threshold": float(self.decision_threshold),
                "decision_inclusive": bool(self.decision_inclusive), "source": self.source, "meta": self.meta,
                "trees": [{"feature": [int(v) for v in t.feature], "threshold": [float(v) for v in t.threshold],
                           "left": [int(v) for v in t.left], "right": [int(v) for v in t.right],
                           "value": np.asarray(t.value, dtype=np.float64).tolist()} for t in self.trees]}

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=None, sort_keys=True) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict, where: str) -> "FloatEnsemble":
        if data.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{where}: format_version {data.get('format_version')!r} is not {FORMAT_VERSION}")
        try:
            trees = [FloatTree(np.asarray(t["feature"], dtype=np.int64),
                               np.asarray([math.nan if v is None else v for v in t["threshold"]], dtype=np.float64),
                               np.asarray(t["left"], dtype=np.int64), np.asarray(t["right"], dtype=np.int64),
                               np.asarray(t["value"], dtype=np.float64).reshape(len(t["feature"]), -1))
                     for t in data["trees"]]
            ens = cls(trees, np.asarray(data["bias"], dtype=np.float64).reshape(-1), int(data["n_features"]),
                      data.get("comparison", "<="), data.get("decision", "none"),
                      float(data.get("decision_threshold", 0.0)), bool(data.get("decision_inclusive", False)),
                      data.get("source", ""), data.get("meta") or {})
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{where}: not a valid tree ensemble ({type(err).__name__}: {err})") from None
        ens.check(where)
        return ens


def threshold_raw(t: float, fmt: FixedFormat, comparison: str) -> int:
    """The raw integer r with ``raw <= r`` <=> ``raw * 2**-F (comparison) t`` for every raw of ``fmt``,
    clamped to [min_raw - 1 (never left), max_raw (always left)]."""
    scaled = t * 2.0 ** fmt.fractional  # exact: a power-of-two scaling of a double
    r = math.floor(scaled) if comparison == "<=" else math.ceil(scaled) - 1
    return int(min(max(r, fmt.min_raw - 1), fmt.max_raw))


def leaf_format(values: np.ndarray, fractional: int) -> FixedFormat:
    """The narrowest signed format with ``fractional`` bits holding every (rounded) value."""
    raw = np.rint(np.ldexp(np.asarray(values, dtype=np.float64), fractional)).astype(np.int64)
    width = max(signed_width(int(raw.min()), int(raw.max())) if raw.size else 2, 2)
    return FixedFormat(width, width - fractional, True, "RND_CONV", "SAT")


def firmware_model(ens: FloatEnsemble, name: str, inputs: TensorType, leaf_fractional: int = DEFAULT_LEAF_FRACTIONAL,
                   leaf_fmt: FixedFormat | None = None, output: list[FixedFormat] | None = None,
                   meta: dict | None = None) -> FirmwareModel:
    """One ``tree_ensemble`` op computing ``ens`` on raw inputs of the given formats."""
    where = f"ensemble {name!r}"
    ens.check(where)
    if inputs.n != ens.n_features:
        raise ModelError(f"{where}: {inputs.n} input formats for {ens.n_features} features")
    k = ens.n_classes
    offsets = np.cumsum([0] + [len(t.feature) for t in ens.trees])
    feature, threshold, left, right, value = [], [], [], [], []
    for tree, off in zip(ens.trees, offsets):
        f = np.asarray(tree.feature, dtype=np.int64)
        internal = f >= 0
        feature.append(np.where(internal, f, -1))
        threshold.append(np.array([threshold_raw(float(t), inputs.formats[fi], ens.comparison) if fi >= 0 else 0
                                   for fi, t in zip(f, tree.threshold)], dtype=np.int64))
        left.append(np.where(internal, np.asarray(tree.left) + off, -1))
        right.append(np.where(internal, np.asarray(tree.right) + off, -1))
        value.append(np.where(internal[:, None], 0.0, np.asarray(tree.value, dtype=np.float64)))
    value_f = np.concatenate(value)
    leaves = np.concatenate([np.asarray(t.feature) < 0 for t in ens.trees])
    if leaf_fmt is None:
        leaf_fmt = leaf_format(value_f[leaves], leaf_fractional)
    value_raw = np.where(leaves[:, None], leaf_fmt.quantize(value_f), 0)
    bias_fmt = FixedFormat(62, 62 - leaf_fmt.fractional, True, "RND_CONV", "SAT")
    bias_raw = bias_fmt.quantize(np.asarray(ens.bias, dtype=np.float64))
    scaled = ens.decision_threshold * 2.0 ** leaf_fmt.fractional  # class 1 when sum > decision_raw
    decision_raw = math.ceil(scaled) - 1 if ens.decision_inclusive else math.floor(scaled)
    op = TreeEnsemble("trees", inputs, inputs, np.concatenate(feature), np.concatenate(threshold),
                      np.concatenate(left), np.concatenate(right), value_raw, offsets[:-1].astype(np.int64),
                      bias_raw, leaf_fmt, bias_fmt, ens.decision, int(decision_raw))
    op.__dict__["_depths"] = op._structure()
    lo, hi = op.sum_bounds()
    width = signed_width(min(lo + [0]), max(hi + [0]))
    accum = FixedFormat(width, width - leaf_fmt.fractional, True)
    op.accum_fmt = accum
    scores = list(output) if output else [accum] * k
    if len(scores) == 1 and k > 1:
        scores = scores * k
    if len(scores) != k:
        raise ModelError(f"{where}: {len(scores)} output formats for {k} class scores")
    if ens.decision != "none":
        bits = max(1, (max(k - 1, 1)).bit_length())
        scores.append(FixedFormat.parse(f"uint<{bits}>"))
    op.output = TensorType(tuple(scores))
    model = FirmwareModel(name, inputs, [op], kind="trees", meta=meta or {})
    model.validate()
    return model
