"""QKeras networks the tests construct: different shapes, bits, integer bits and a batch norm."""

import numpy as np


def save_model(model, tmp, name):
    path = tmp / f"{name}.json"
    path.write_text(model.to_json())
    model.save_weights(tmp / f"{name}_weights.h5")
    return path


def random_weights(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape) if "variance" not in w.name else rng.uniform(0.2, 3, w.shape)
                               for w in layer.weights])


def build_networks():
    """Three further QKeras dense networks: different widths, bits, integer bits and a batch norm."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(11)
    nets = {}
    # 4-bit weights and activations, non-power-of-two widths
    nets["four_bit"] = (tf.keras.Sequential([
        tf.keras.Input(shape=(10,)),
        QDense(20, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1), name="d1"),
        QActivation(quantized_relu(4), name="r1"),
        QDense(7, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1), name="d2"),
        QActivation(quantized_relu(4, 2), name="r2"),
        QDense(3, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1), name="out"),
    ]), {"input_precision": "fixed<10,4>"})
    # quantized_bits with integer bits, a signed quantized_bits activation, a string quantizer, Dense(relu) inside
    nets["integer_bits"] = (tf.keras.Sequential([
        tf.keras.Input(shape=(12,)),
        QDense(24, kernel_quantizer=quantized_bits(8, 3, alpha=1), bias_quantizer=quantized_bits(8, 3, alpha=1), name="d1"),
        QActivation(quantized_bits(8, 2, alpha=1), name="q1"),
        QDense(13, kernel_quantizer="quantized_bits(6,2,alpha=1)", bias_quantizer="quantized_bits(6,2,alpha=1)",
               activation="quantized_relu(7,3)", name="d2"),
        QDense(4, kernel_quantizer=quantized_bits(6, 1, alpha=1), bias_quantizer=quantized_bits(6, 1, alpha=1), name="out"),
        tf.keras.layers.Activation("softmax"),
    ]), {"input_precision": "fixed<14,5>"})
    # batch normalisation after a dense layer (kept by hls4ml as a scale layer), quantized_bits without alpha=1
    nets["batchnorm"] = (tf.keras.Sequential([
        tf.keras.Input(shape=(9,)),
        QDense(15, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1), name="d1"),
        tf.keras.layers.BatchNormalization(name="bn1"),
        QActivation(quantized_relu(8, 3), name="r1"),
        QDense(6, kernel_quantizer=quantized_bits(6, 0), bias_quantizer=quantized_bits(6, 0), name="d2"),
        tf.keras.layers.Activation("relu", name="r2"),
        QDense(2, kernel_quantizer=quantized_bits(5, 1, alpha=1), bias_quantizer=quantized_bits(5, 1, alpha=1), name="out"),
    ]), {"input_precision": "fixed<12,4,RND_CONV,SAT>"})
    for k, (model, _) in enumerate(nets.values()):
        random_weights(model, k)
    return nets
