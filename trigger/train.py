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

DATASETS = ("jets", "calo", "constituents")  # generators in trigger.data: generate(n, seed) -> (x, labels)


@dataclass
class TrainResult:
    json_path: Path
    weights_path: Path
    float_accuracy: float
    quantized_accuracy: float
    n_test: int
    x_test: np.ndarray | None = None  # the test sample (float inputs, labels): the firmware is scored on it too
    y_test: np.ndarray | None = None


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
    import importlib

    generator = importlib.import_module(f"trigger.data.{name}")
    seed = int(dataset.get("seed", 1))
    x, y = generator.generate(int(dataset.get("n_train", 200000)), seed=seed)
    xt, yt = generator.generate(int(dataset.get("n_test", 50000)), seed=seed + 1000)
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


def build_conv2d(input_shape, filters, kernel: int, pool: int, hidden, n_outputs: int, quant: dict | None = None,
                 softmax=True, name="model"):
    """A small image classifier: (Q)Conv2D + ReLU blocks (valid padding), max pooling after the last, then
    (Q)Dense + ReLU layers and (Q)Dense logits (+ softmax). ``quant`` (weight_bits, weight_integer,
    activation_bits, activation_integer) makes it QKeras with quantized_bits / quantized_relu."""
    import tensorflow as tf

    layers = [tf.keras.Input(shape=tuple(int(d) for d in input_shape), name="inputs")]
    if quant is not None:
        from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

        def q():
            return quantized_bits(int(quant.get("weight_bits", 6)), int(quant.get("weight_integer", 0)), alpha=1)

        def relu(label):
            return QActivation(quantized_relu(int(quant.get("activation_bits", 6)),
                                              int(quant.get("activation_integer", 0))), name=label)

        def conv(n, label):
            return QConv2D(n, kernel, kernel_quantizer=q(), bias_quantizer=q(), name=label)

        def dense(n, label):
            return QDense(n, kernel_quantizer=q(), bias_quantizer=q(), name=label)
    else:
        def relu(label):
            return tf.keras.layers.Activation("relu", name=label)

        def conv(n, label):
            return tf.keras.layers.Conv2D(n, kernel, name=label)

        def dense(n, label):
            return tf.keras.layers.Dense(n, name=label)
    for i, n in enumerate(filters, 1):
        layers += [conv(int(n), f"conv{i}"), relu(f"conv_relu{i}")]
    if pool > 1:
        layers.append(tf.keras.layers.MaxPooling2D(pool, name="pool"))
    layers.append(tf.keras.layers.Flatten(name="flatten"))
    for i, width in enumerate(hidden, 1):
        layers += [dense(int(width), f"fc{i}"), relu(f"relu{i}")]
    layers.append(dense(n_outputs, "output"))
    if softmax:
        layers.append(tf.keras.layers.Activation("softmax", name="softmax"))
    return tf.keras.Sequential(layers, name=name)


def build_deepsets(input_shape, phi, rho, n_outputs: int, quant: dict | None = None, softmax=True, name="model"):
    """A DeepSets classifier: the same (Q)Dense + ReLU layers ``phi`` applied to every item of the set
    (Keras Dense on a (n_items, n_features) input; hls4ml converts it per item), the mean over the items
    (GlobalAveragePooling1D), then (Q)Dense + ReLU layers ``rho`` and (Q)Dense logits (+ softmax)."""
    import tensorflow as tf

    layers = [tf.keras.Input(shape=tuple(int(d) for d in input_shape), name="inputs")]
    if quant is not None:
        from qkeras import QActivation, QDense, quantized_bits, quantized_relu

        def dense(n, label):
            q = quantized_bits(int(quant.get("weight_bits", 6)), int(quant.get("weight_integer", 0)), alpha=1)
            q2 = quantized_bits(int(quant.get("weight_bits", 6)), int(quant.get("weight_integer", 0)), alpha=1)
            return QDense(n, kernel_quantizer=q, bias_quantizer=q2, name=label)

        def relu(label):
            return QActivation(quantized_relu(int(quant.get("activation_bits", 6)),
                                              int(quant.get("activation_integer", 0))), name=label)
    else:
        def dense(n, label):
            return tf.keras.layers.Dense(n, name=label)

        def relu(label):
            return tf.keras.layers.Activation("relu", name=label)
    for i, width in enumerate(phi, 1):
        layers += [dense(int(width), f"phi{i}"), relu(f"phi_relu{i}")]
    layers.append(tf.keras.layers.GlobalAveragePooling1D(name="mean"))
    for i, width in enumerate(rho, 1):
        layers += [dense(int(width), f"rho{i}"), relu(f"rho_relu{i}")]
    layers.append(dense(n_outputs, "output"))
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
    tf.keras.utils.set_random_seed(seed)  # the float model's initial weights are drawn when it is built

    architecture = model_cfg.get("architecture", "dense")
    if architecture == "conv2d":  # an image classifier (trigger.data.calo)
        filters, kernel, pool = model_cfg.get("filters"), model_cfg.get("kernel", 3), model_cfg.get("pool", 2)
        if not isinstance(filters, list) or not filters or not all(isinstance(f, int) and f > 0 for f in filters):
            raise ConfigError(f"{where}: model.filters must be a list of positive filter counts, got {filters!r}")
        if not isinstance(kernel, int) or kernel < 1 or not isinstance(pool, int) or pool < 1:
            raise ConfigError(f"{where}: model.kernel and model.pool must be positive integers")
        fmodel = _fit(build_conv2d(x.shape[1:], filters, kernel, pool, hidden, n_out), x, y, train_cfg, seed, "float")
        qmodel = build_conv2d(x.shape[1:], filters, kernel, pool, hidden, n_out, quant,
                              name=str(config.get("name", "qmodel")))
    elif architecture == "deepsets":  # a set of items (trigger.data.constituents): per-item phi, mean, rho
        phi = model_cfg.get("phi")
        if not isinstance(phi, list) or not phi or not all(isinstance(w, int) and w > 0 for w in phi):
            raise ConfigError(f"{where}: model.phi must be a list of positive per-item layer widths, got {phi!r}")
        if x.ndim != 3:
            raise ConfigError(f"{where}: a deepsets model needs a dataset of sets (n, items, features)")
        fmodel = _fit(build_deepsets(x.shape[1:], phi, hidden, n_out), x, y, train_cfg, seed, "float")
        qmodel = build_deepsets(x.shape[1:], phi, hidden, n_out, quant, name=str(config.get("name", "qmodel")))
    elif architecture == "dense":
        fmodel = _fit(build_float(n_in, hidden, n_out), x, y, train_cfg, seed, "float")
        qmodel = build_qkeras(n_in, hidden, n_out, int(quant.get("weight_bits", 6)),
                              int(quant.get("weight_integer", 0)), int(quant.get("activation_bits", 6)),
                              int(quant.get("activation_integer", 0)), name=str(config.get("name", "qmodel")))
    else:
        raise ConfigError(f"{where}: model.architecture {architecture!r} is not one of dense, conv2d, deepsets")
    qmodel = _fit(qmodel, x, y, train_cfg, seed, "qkeras")
    float_acc = float(np.mean(np.argmax(fmodel.predict(xt, verbose=0, batch_size=8192), axis=1) == yt))
    quant_acc = float(np.mean(np.argmax(qmodel.predict(xt, verbose=0, batch_size=8192), axis=1) == yt))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = str(config.get("name", "model"))
    json_path, weights_path = out / f"{name}.json", out / f"{name}_weights.h5"
    json_path.write_text(json.dumps(json.loads(qmodel.to_json()), indent=1, sort_keys=True) + "\n")
    qmodel.save_weights(weights_path)
    return TrainResult(json_path, weights_path, float_acc, quant_acc, int(yt.size), xt, yt)
