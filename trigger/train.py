"""QKeras builders and seeded training for the model zoo.

A zoo config (``models/<name>/trigger.yml``) names a built-in dataset, the dense
layer widths and the quantizers; ``train`` fits the QKeras network and a float
twin with the same seed (to report what quantization costs) and saves the QKeras
one as Keras 2 architecture JSON + weights HDF5, the same form a user brings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from trigger.errors import ConfigError

DATASETS = ("jets",)


@dataclass
class TrainResult:
    json_path: Path
    weights_path: Path
    float_accuracy: float
    quantized_accuracy: float
    n_test: int


def _section(config: dict, key: str, where: str) -> dict:
    value = config.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: missing or malformed section '{key}'")
    return value


def load_dataset(dataset: dict, where: str = "config"):
    """(x_train, y_train, x_test, y_test) of a built-in dataset."""
    name = dataset.get("generator")
    if name not in DATASETS:
        raise ConfigError(f"{where}: dataset.generator {name!r} is not one of {', '.join(DATASETS)}")
    from trigger.data import jets

    seed = int(dataset.get("seed", 1))
    x, y = jets.generate(int(dataset.get("n_train", 200000)), seed=seed)
    xt, yt = jets.generate(int(dataset.get("n_test", 50000)), seed=seed + 1000)
    return x, y, xt, yt


def build_qkeras(n_inputs: int, hidden, n_outputs: int, weight_bits=6, weight_integer=0,
                 activation_bits=6, activation_integer=0, softmax=True, name="qmodel"):
    """Dense QKeras network: QDense + quantized_relu per hidden layer, QDense logits (+ softmax)."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    def q():
        return quantized_bits(weight_bits, weight_integer, alpha=1)

    layers = [tf.keras.Input(shape=(n_inputs,), name="inputs")]
    for i, width in enumerate(hidden, 1):
        layers.append(QDense(int(width), kernel_quantizer=q(), bias_quantizer=q(), name=f"fc{i}"))
        layers.append(QActivation(quantized_relu(activation_bits, activation_integer), name=f"relu{i}"))
    layers.append(QDense(n_outputs, kernel_quantizer=q(), bias_quantizer=q(), name="output"))
    if softmax:
        layers.append(tf.keras.layers.Activation("softmax", name="softmax"))
    return tf.keras.Sequential(layers, name=name)


def build_float(n_inputs: int, hidden, n_outputs: int, softmax=True, name="model"):
    import tensorflow as tf

    layers = [tf.keras.Input(shape=(n_inputs,), name="inputs")]
    for i, width in enumerate(hidden, 1):
        layers.append(tf.keras.layers.Dense(int(width), activation="relu", name=f"fc{i}"))
    layers.append(tf.keras.layers.Dense(n_outputs, name="output"))
    if softmax:
        layers.append(tf.keras.layers.Activation("softmax", name="softmax"))
    return tf.keras.Sequential(layers, name=name)


def _fit(model, x, y, train: dict, seed: int, label: str):
    import tensorflow as tf
    from tqdm.keras import TqdmCallback

    tf.keras.utils.set_random_seed(seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(float(train.get("learning_rate", 0.003))),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=int(train.get("epochs", 12)), batch_size=int(train.get("batch_size", 1024)),
              shuffle=True, verbose=0, callbacks=[TqdmCallback(verbose=0, desc=label)])
    return model


def train(config: dict, out_dir, where: str = "config") -> TrainResult:
    """Train the zoo model of ``config`` (a parsed trigger.yml); save JSON + weights into ``out_dir``."""
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    dataset = _section(config, "dataset", where)
    model_cfg = _section(config, "model", where)
    quant = config.get("quantization") or {}
    train_cfg = config.get("train") or {}
    hidden = model_cfg.get("hidden")
    if not isinstance(hidden, list) or not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise ConfigError(f"{where}: model.hidden must be a list of positive layer widths, got {hidden!r}")
    x, y, xt, yt = load_dataset(dataset, where)
    n_in, n_out = x.shape[1], int(y.max()) + 1
    seed = int(train_cfg.get("seed", 7))

    fmodel = _fit(build_float(n_in, hidden, n_out), x, y, train_cfg, seed, "float")
    qmodel = build_qkeras(n_in, hidden, n_out, int(quant.get("weight_bits", 6)), int(quant.get("weight_integer", 0)),
                          int(quant.get("activation_bits", 6)), int(quant.get("activation_integer", 0)),
                          name=str(config.get("name", "qmodel")))
    qmodel = _fit(qmodel, x, y, train_cfg, seed, "qkeras")
    float_acc = float(np.mean(np.argmax(fmodel.predict(xt, verbose=0, batch_size=8192), axis=1) == yt))
    quant_acc = float(np.mean(np.argmax(qmodel.predict(xt, verbose=0, batch_size=8192), axis=1) == yt))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = str(config.get("name", "model"))
    json_path, weights_path = out / f"{name}.json", out / f"{name}_weights.h5"
    json_path.write_text(json.dumps(json.loads(qmodel.to_json()), indent=1, sort_keys=True) + "\n")
    qmodel.save_weights(weights_path)
    return TrainResult(json_path, weights_path, float_acc, quant_acc, int(yt.size))
