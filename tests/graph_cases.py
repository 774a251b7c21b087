"""Keras functional (QKeras) models that are graphs, with seeded random weights, saved as JSON + H5.

What trigger teams run that a chain cannot hold: several object collections as separate inputs, each
with its own small network, concatenated, and two heads (a class and a regressed quantity); a
residual block (a layer's input added to its output); an autoencoder whose output is its anomaly
score (the squared distance between the encoder's input activation and the decoder's output).
Every tensor that a merge reads is quantized by QKeras, so the firmware can equal the model exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

Q6 = "quantized_bits(6,0,alpha=1)"


def _q(bits=6, integer=0):
    from qkeras import quantized_bits

    return quantized_bits(bits, integer, alpha=1)


def _dense(units, name, relu_bits=None):
    """A QDense (6-bit weights and biases), then a quantized relu when ``relu_bits`` is given."""
    from qkeras import QActivation, QDense, quantized_relu

    def apply(x):
        y = QDense(units, kernel_quantizer=_q(), bias_quantizer=_q(), name=name)(x)
        if relu_bits:
            y = QActivation(quantized_relu(relu_bits, 2), name=f"{name}_relu")(y)
        return y
    return apply


def _seed(seed: int) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)


def multi_collection_tagger():
    """Muons (4 x 3) and jets (3 x 3) as two inputs, a network each, concatenated, two outputs:
    three class scores and one regressed quantity (e.g. the event's energy scale). The jets' network is the
    deeper, so Keras lists the jets' input layer first in the file: the ports follow the model's inputs."""
    import tensorflow as tf
    from qkeras import QActivation

    _seed(11)
    muons = tf.keras.Input((4, 3), name="muons")
    jets = tf.keras.Input((3, 3), name="jets")
    m = _dense(8, "muon_fc", 6)(tf.keras.layers.Flatten(name="muon_flat")(muons))
    j = _dense(8, "jet_fc", 6)(tf.keras.layers.Flatten(name="jet_flat")(jets))
    j = _dense(8, "jet_fc2", 6)(j)
    both = tf.keras.layers.Concatenate(name="objects")([m, j])
    trunk = _dense(8, "trunk", 6)(both)
    cls = _dense(3, "class_out")(trunk)
    reg = _dense(1, "energy_out")(trunk)
    return tf.keras.Model([muons, jets], [cls, reg], name="multi_collection_tagger")


def residual_block():
    """x -> QDense -> relu, added to x (a skip connection), then a head."""
    import tensorflow as tf
    from qkeras import QActivation, quantized_bits

    _seed(12)
    x = tf.keras.Input((8,), name="features")
    xq = QActivation(quantized_bits(8, 3, alpha=1), name="features_q")(x)
    h = _dense(8, "block_fc", 6)(xq)
    s = tf.keras.layers.Add(name="skip_add")([xq, h])
    out = _dense(4, "head")(s)
    return tf.keras.Model(x, out, name="residual_block")


def autoencoder_score():
    """An autoencoder whose output is its anomaly score: sum((input_q - decoded)^2)."""
    import tensorflow as tf
    from qkeras import QActivation, quantized_bits

    _seed(13)
    x = tf.keras.Input((6,), name="objects")
    xq = QActivation(quantized_bits(8, 3, alpha=1), name="objects_q")(x)
    z = _dense(3, "encoder", 6)(xq)
    d = _dense(6, "decoder")(z)
    dq = QActivation(quantized_bits(8, 3, alpha=1), name="decoded_q")(d)
    diff = tf.keras.layers.Subtract(name="residual")([xq, dq])
    score = tf.keras.layers.Dot(axes=1, name="score")([diff, diff])
    return tf.keras.Model(x, score, name="autoencoder_score")


def branch_quantizers():
    """Two branches, each ending in its own quantized_bits activation, listed interleaved (da, db, qa, qb):
    each activation's type belongs to its own branch's layer, not to the layer listed before it."""
    import tensorflow as tf
    from qkeras import QActivation, quantized_bits

    _seed(14)
    x = tf.keras.Input((5,), name="x")
    da = _dense(4, "da")(x)
    db = _dense(4, "db")(x)
    qa = QActivation(quantized_bits(7, 2, alpha=1), name="qa")(da)
    qb = QActivation(quantized_bits(5, 1, alpha=1), name="qb")(db)
    out = tf.keras.layers.Add(name="sum")([qa, qb])
    return tf.keras.Model(x, out, name="branch_quantizers")


GRAPH_CASES = {"branch_quantizers": branch_quantizers, "multi_collection_tagger": multi_collection_tagger, "residual_block": residual_block,
               "autoencoder_score": autoencoder_score}


def save(model, folder: Path) -> Path:
    """The model as architecture JSON + weights H5 (what a user brings); returns the JSON path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model.name}.json"
    path.write_text(model.to_json())
    model.save_weights(folder / f"{model.name}_weights.h5")
    return path


if __name__ == "__main__":
    import sys

    for name, make in GRAPH_CASES.items():
        print(save(make(), Path(sys.argv[1]) / name))
