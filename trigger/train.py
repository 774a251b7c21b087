"""QKeras builders and seeded training for the model zoo.

A zoo config (``models/<name>/trigger.yml``) names a built-in dataset, the dense
layer widths and the quantizers; ``train`` fits the QKeras network and a float
twin with the same seed (to report what quantization costs) and saves the QKeras
one as Keras 2 architecture JSON + weights HDF5, the same form a user brings.
An ``autoencoder`` (anomaly detection, ``models/anomaly_detector``) is trained on
background only, to reconstruct its input; the saved model is the functional one
whose output is the anomaly score (``build_autoencoder``), and ``trigger.anomaly``
computes its physics.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from trigger.errors import ConfigError

DATASETS = ("jets", "calo", "constituents", "l1_events")  # generators in trigger.data: generate(n, seed) -> (x, labels)


@dataclass
class TrainResult:
    json_path: Path
    weights_path: Path
    float_accuracy: float
    quantized_accuracy: float
    n_test: int
    x_test: np.ndarray | None = None  # the test sample (float inputs, labels): the firmware is scored on it too
    y_test: np.ndarray | None = None
    # an autoencoder (model.architecture autoencoder): no accuracies (None); the reconstruction losses, the float
    # twin (its score is the float reference of trigger.anomaly) and the config the physics is computed from
    kind: str = "classifier"
    float_loss: float | None = None
    quantized_loss: float | None = None
    float_model: object = None
    quantized_model: object = None  # the deployed QKeras model (the same as the saved files)
    config: dict = field(default_factory=dict)


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


def _quantized_bits_of(text: str) -> tuple[int, int]:
    """(bits, integer) of the QKeras quantized_bits that holds exactly the values of a signed fixed<W,I>."""
    from trigger.fixed import FixedFormat

    fmt = FixedFormat.parse(text)
    if not fmt.signed:
        raise ConfigError(f"hls.input_precision {text!r}: the autoencoder's input must be signed (eta, phi)")
    return fmt.width, fmt.integer - 1


def _bits_setting(quant: dict, key: str, default: tuple[int, int], where: str) -> tuple[int, int]:
    value = quant.get(key, list(default))
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, int) for v in value)
            or value[0] < 2 or not 0 <= value[1] < value[0]):
        raise ConfigError(f"{where}: quantization.{key} must be [bits, integer] of a quantized_bits, got {value!r}")
    return int(value[0]), int(value[1])


def build_autoencoder(n_inputs: int, hidden, latent: int, quant: dict | None = None, name="model",
                      input_bits: tuple[int, int] = (12, 5), where: str = "config"):
    """An autoencoder whose deployed output is its anomaly score; returns (training model, deployed model).

    Encoder (Q)Dense + ReLU layers ``hidden``, a linear ``latent`` layer, the mirrored decoder and a linear
    reconstruction of the ``n_inputs`` features. The training model outputs the reconstruction; the deployed
    model shares its layers and outputs ``Dot(axes=1)([d, d])`` with ``d = Subtract([input, reconstruction])``:
    the squared reconstruction error summed over the features. With ``quant`` (QKeras) every tensor that feeds
    the Subtract or the Dot is a QActivation(quantized_bits): the input (``input_bits``, the firmware's input
    format), the reconstruction (``quant['reconstruction']``, default the input's) and the difference
    (``quant['difference']``, default [9, 3]: products of 17 bits, summed over 39 features (6 more bits), stay
    within float32's 24-bit significand, so Keras' Dot is exact and the firmware equals it, as
    ``trigger.frontends.network.float32_inexact`` checks). The latent code is quantized too (``quant['latent']``)."""
    import tensorflow as tf

    L = tf.keras.layers
    inp = tf.keras.Input(shape=(n_inputs,), name="inputs")
    if quant is not None:
        from qkeras import QActivation, QDense, quantized_bits, quantized_relu

        wb, wi = int(quant.get("weight_bits", 8)), int(quant.get("weight_integer", 1))
        ab, ai = int(quant.get("activation_bits", 10)), int(quant.get("activation_integer", 5))

        def dense(n, label):
            return QDense(n, kernel_quantizer=quantized_bits(wb, wi, alpha=1),
                          bias_quantizer=quantized_bits(wb, wi, alpha=1), name=label)

        def relu(label):
            return QActivation(quantized_relu(ab, ai), name=label)

        def bits(key, default, label):
            b, i = _bits_setting(quant, key, default, where)
            return QActivation(quantized_bits(b, i, alpha=1), name=label)

        db, _ = _bits_setting(quant, "difference", (9, 3), where)
        # products of 2 db - 1 magnitude bits, summed over n_inputs: within float32's significand (24 bits)
        if 2 * db - 1 + (n_inputs - 1).bit_length() > 24:
            raise ConfigError(f"{where}: quantization.difference of {db} bits: the sum of {n_inputs} squares needs "
                              f"{2 * db - 1 + (n_inputs - 1).bit_length()} bits, more than float32's 24, so Keras' "
                              "Dot can round where the firmware is exact; use fewer bits")
        x = bits("input", input_bits, "input_q")(inp)
    else:
        def dense(n, label):
            return L.Dense(n, name=label)

        def relu(label):
            return L.Activation("relu", name=label)

        def bits(key, default, label):
            return L.Activation("linear", name=label)

        x = inp
    h = x
    for i, width in enumerate(hidden, 1):
        h = relu(f"encoder_relu{i}")(dense(int(width), f"encoder{i}")(h))
    h = bits("latent", (10, 5), "latent_q")(dense(int(latent), "latent")(h))
    for i, width in enumerate(reversed(hidden), 1):
        h = relu(f"decoder_relu{i}")(dense(int(width), f"decoder{i}")(h))
    reco = bits("reconstruction", input_bits, "reconstruction_q")(dense(n_inputs, "reconstruction")(h))
    training = tf.keras.Model(inp, reco, name=f"{name}_training")
    diff = bits("difference", (9, 3), "difference_q")(L.Subtract(name="difference")([x, reco]))
    score = L.Dot(axes=1, name="score")([diff, diff])
    return training, tf.keras.Model(inp, score, name=name)


def anomaly_score(model, x, batch_size: int = 65536) -> np.ndarray:
    """The squared reconstruction error of a training (reconstruction) model, float64, per event."""
    reco = model.predict(x, batch_size=batch_size, verbose=0)
    return np.sum((np.asarray(x, dtype=np.float64) - reco.astype(np.float64)) ** 2, axis=1)


def _fit_autoencoder(model, x, train: dict, seed: int, label: str):
    import tensorflow as tf
    from tqdm.keras import TqdmCallback

    tf.keras.utils.set_random_seed(seed)
    model.compile(optimizer=tf.keras.optimizers.Adam(float(train.get("learning_rate", 0.003))), loss="mse")
    model.fit(x, x, epochs=int(train.get("epochs", 12)), batch_size=int(train.get("batch_size", 1024)),
              shuffle=True, verbose=0, callbacks=[TqdmCallback(verbose=0, desc=label)])
    return model


def _train_autoencoder(config: dict, model_cfg: dict, hidden, quant: dict, train_cfg: dict, x, xt, seed: int,
                       out: Path, where: str) -> TrainResult:
    """An anomaly-detection autoencoder trained on background only (the zero-bias sample of the dataset)."""
    import tensorflow as tf

    latent = model_cfg.get("latent", 4)
    if isinstance(latent, bool) or not isinstance(latent, int) or latent < 1:
        raise ConfigError(f"{where}: model.latent must be a positive integer, got {latent!r}")
    if x.ndim != 2:
        raise ConfigError(f"{where}: an autoencoder needs a dataset of flat feature vectors (n, features)")
    input_bits = _quantized_bits_of((config.get("hls") or {}).get("input_precision", "fixed<12,6>"))
    name = str(config.get("name", "model"))
    tf.keras.utils.set_random_seed(seed)
    ftrain, _ = build_autoencoder(x.shape[1], hidden, latent, None, name=f"{name}_float")
    ftrain = _fit_autoencoder(ftrain, x, train_cfg, seed, "float")
    qtrain, deployed = build_autoencoder(x.shape[1], hidden, latent, quant, name=name, input_bits=input_bits,
                                         where=where)
    qtrain = _fit_autoencoder(qtrain, x, train_cfg, seed, "qkeras")
    n_features = x.shape[1]
    float_loss = float(np.mean(anomaly_score(ftrain, xt)) / n_features)
    quant_loss = float(np.mean(anomaly_score(qtrain, xt)) / n_features)
    out.mkdir(parents=True, exist_ok=True)
    json_path, weights_path = out / f"{name}.json", out / f"{name}_weights.h5"
    json_path.write_text(json.dumps(json.loads(deployed.to_json()), indent=1, sort_keys=True) + "\n")
    deployed.save_weights(weights_path)
    return TrainResult(json_path, weights_path, None, None, int(len(xt)), xt, None, kind="autoencoder",
                       float_loss=float_loss, quantized_loss=quant_loss, float_model=ftrain, quantized_model=deployed,
                       config=config)


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
    if architecture == "autoencoder":  # anomaly detection: trained on background only, deployed with its score
        return _train_autoencoder(config, model_cfg, hidden, quant, train_cfg, x, xt, seed, Path(out_dir), where)
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
        raise ConfigError(f"{where}: model.architecture {architecture!r} is not one of dense, conv2d, deepsets, "
                          "autoencoder")
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
