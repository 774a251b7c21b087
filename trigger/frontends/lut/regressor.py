"""The regressors a table is made from: a small Keras network or scikit-learn boosted trees.

Both learn a transform of pT (``log_pt`` by default) from the compressed
inputs. After training, the network is evaluated by a numpy float64 forward
pass of its weights: that one function feeds the table, the physics plots and
the model hash, independent of TensorFlow's threading.

Why no BLAS and no numpy exp: a table part is evaluated on whichever Dask worker takes it, and
OpenBLAS picks its kernel by CPU (or OPENBLAS_CORETYPE) and numpy its exp by CPU features (or
NPY_DISABLE_CPU_FEATURES): both changed the last bits of floats between workers (measured: a
different model hash, and words that could differ at a rounding boundary). Elementwise IEEE
products and sums, and the C library's exp, give the same bits on every worker.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

PT_CLIP = (1e-3, 1e6)  # GeV; keeps the inverse transforms finite before output saturation


def to_target(pt: np.ndarray, target: str) -> np.ndarray:
    if target == "log_pt":
        return np.log(pt)
    if target == "inv_pt":
        return 10.0 / pt
    return pt / 100.0


_EXP = np.frompyfunc(math.exp, 1, 1)  # the C library's exp, element by element (see the module's docstring)


def from_target(y: np.ndarray, target: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if target == "log_pt":
        pt = _EXP(np.clip(y, math.log(PT_CLIP[0]), math.log(PT_CLIP[1]))).astype(np.float64)
    elif target == "inv_pt":
        pt = 10.0 / np.maximum(y, 10.0 / PT_CLIP[1])
    else:
        pt = y * 100.0
    return np.clip(pt, *PT_CLIP)


class MlpRegressor:
    """Dense ReLU network; ``predict`` is a numpy forward pass of the trained weights."""

    kind = "mlp"

    def __init__(self, hidden, epochs, batch_size, learning_rate, seed):
        self.hidden, self.epochs, self.batch_size = list(hidden), epochs, batch_size
        self.learning_rate, self.seed = learning_rate, seed
        self.weights: list[tuple[np.ndarray, np.ndarray]] = []

    def fit(self, x: np.ndarray, y: np.ndarray, verbose: int = 0) -> "MlpRegressor":
        import tensorflow as tf

        tf.keras.utils.set_random_seed(self.seed)
        tf.config.experimental.enable_op_determinism()
        layers = [tf.keras.layers.InputLayer(input_shape=(x.shape[1],))]
        layers += [tf.keras.layers.Dense(h, activation="relu") for h in self.hidden]
        layers.append(tf.keras.layers.Dense(1))
        model = tf.keras.Sequential(layers)
        model.compile(optimizer=tf.keras.optimizers.Adam(self.learning_rate), loss="mse")
        model.fit(x.astype(np.float32), y.astype(np.float32), epochs=self.epochs, batch_size=self.batch_size,
                  shuffle=True, verbose=verbose)
        dense = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
        self.weights = [(w.astype(np.float64), b.astype(np.float64)) for w, b in (d.get_weights() for d in dense)]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float64)
        for i, (w, b) in enumerate(self.weights):
            h = _affine(h, w, b)
            if i < len(self.weights) - 1:
                np.maximum(h, 0.0, out=h)
        return h[:, 0]

    def describe(self) -> dict:
        return {"type": "mlp", "layers": [list(w.shape) for w, _ in self.weights],
                "weights_sha256": _digest(a for pair in self.weights for a in pair)}


def _affine(h: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``h @ w + b`` as elementwise products and sums in a fixed order (no BLAS: see the module's docstring)."""
    out = np.broadcast_to(b, (len(h), len(b))).copy()
    for k in range(w.shape[0]):
        out += h[:, k:k + 1] * w[k]
    return out


class GbtRegressor:
    """scikit-learn histogram gradient-boosted trees (deterministic for a fixed random_state)."""

    kind = "gbt"

    def __init__(self, max_iter, max_leaf_nodes, learning_rate, min_samples_leaf, seed):
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.model = HistGradientBoostingRegressor(
            max_iter=max_iter, max_leaf_nodes=max_leaf_nodes, learning_rate=learning_rate,
            min_samples_leaf=min_samples_leaf, early_stopping=False, random_state=seed)

    # One OpenMP thread: on a busy 2-core machine more threads spin-wait in barriers
    # (measured 4-15x slower under load), and a single thread gives the same trees.
    def fit(self, x: np.ndarray, y: np.ndarray, verbose: int = 0) -> "GbtRegressor":
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            self.model.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return self.model.predict(np.asarray(x, dtype=np.float64)).astype(np.float64)

    def describe(self) -> dict:
        nodes = [p.nodes for it in self.model._predictors for p in it]
        return {"type": "gbt", "trees": len(nodes),
                "trees_sha256": _digest(np.ascontiguousarray(n) for n in nodes)}


def make_regressor(model_cfg: dict, seed: int):
    cfg = {k: v for k, v in model_cfg.items() if k not in ("type", "target")}
    if model_cfg["type"] == "mlp":
        return MlpRegressor(seed=seed, **cfg)
    return GbtRegressor(seed=seed, **cfg)


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
