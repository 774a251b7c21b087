"""Layers hls4ml converts that trigger models use, each built and verified 3-way (emulator == hls4ml C
simulation == RTL) and, for quantized models, equal to QKeras on every vector."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import assert_certified, build_and_verify

VECTORS = 2000


def _save(model, folder):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model.name}.json"
    path.write_text(model.to_json())
    model.save_weights(folder / f"{model.name}_weights.h5")
    return path


@pytest.mark.slow
def test_relu_layer_class_and_a_model_without_dense(tmp_path):
    """The ReLU layer class is Activation('relu'); a model need not have a Dense or convolution layer."""
    import tensorflow as tf
    from qkeras import QActivation, quantized_bits

    x = tf.keras.Input((6,), name="x")
    y = QActivation(quantized_bits(8, 3, alpha=1), name="xq")(x)
    y = tf.keras.layers.ReLU(name="relu_layer")(y)
    model = tf.keras.Model(x, y, name="relu_only")
    bundle = build_and_verify(_save(model, tmp_path / "m"), tmp_path / "b", "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    assert bundle.verify["source_model"]["exact"] and bundle.verify["source_model"]["mismatches"] == 0
    assert "relu" in {op["kind"] for op in bundle.manifest["ops"]}


def test_relu_options_hls4ml_would_drop_are_refused():
    from trigger.errors import ModelError
    from trigger.frontends.keras import validate_config

    config = {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "in"}},
        {"class_name": "ReLU", "config": {"name": "r", "max_value": 6.0}}]}}
    with pytest.raises(ModelError, match="layer 'r' of type ReLU: max_value=6.0 is not supported"):
        validate_config(config, "m.json")
    config["config"]["layers"][1]["config"] = {"name": "r", "max_value": None, "negative_slope": 0.0,
                                               "threshold": 0.0}
    assert [l["class_name"] for l in validate_config(config, "m.json").layers] == ["ReLU"]


def _folder(model, folder, hls: str = ""):
    """The model saved with a trigger.yml (``hls`` a YAML flow mapping of hls settings)."""
    source = _save(model, folder)
    (folder / "trigger.yml").write_text(f"kind: network\nname: {model.name}\n"
                                        f"model: {{file: {source.name}, weights: {source.stem}_weights.h5}}\n"
                                        + (f"hls: {hls}\n" if hls else ""))
    return folder


def _relu_inside(kind: str, weight_bits: int):
    import tensorflow as tf
    from qkeras import QConv2D, QDense, quantized_bits

    tf.keras.utils.set_random_seed(21)
    q = dict(kernel_quantizer=quantized_bits(weight_bits, 0, alpha=1),
             bias_quantizer=quantized_bits(weight_bits, 0, alpha=1))
    if kind == "QDense":
        x = tf.keras.Input((10,), name="x")
        h = QDense(12, activation="relu", name="fc1", **q)(x)
    else:
        x = tf.keras.Input((6, 6, 1), name="x")
        h = tf.keras.layers.Flatten(name="flat")(QConv2D(3, (3, 3), activation="relu", name="conv1", **q)(x))
    y = QDense(3, name="out", **q)(h)
    return tf.keras.Model(x, y, name=f"{kind.lower()}_relu")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["QDense", "QConv2D"])
def test_a_float_relu_inside_a_quantized_layer_rounds_once(kind, tmp_path):
    """QKeras applies a layer's float relu to its exact result; hls4ml splits it into <layer>_relu typed
    fixed<16,6,RND_CONV,SAT>, which rounds again. trigger types the split relu exactly: firmware == QKeras
    on every vector (inputs and weights narrow enough that QKeras' float32 sums are exact too)."""
    folder = _folder(_relu_inside(kind, 4), tmp_path / "m", "{input_precision: 'fixed<6,3>'}")
    bundle = build_and_verify(folder, tmp_path / "b", "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]
    assert source["exact"] is True and source["mismatches"] == 0 and source["equal"] == VECTORS, source
    relu = next(op for op in bundle.manifest["ops"] if op["name"].endswith("_relu"))
    assert "16,6" not in relu["description"]


@pytest.mark.slow
def test_the_witness_does_not_claim_exactness_float32_lacks(tmp_path):
    """16-bit inputs times 8-bit weights summed over 10 reach past float32's 24-bit significand: QKeras
    may round where the firmware does not, so the comparison is reported, not required."""
    bundle = build_and_verify(_save(_relu_inside("QDense", 8), tmp_path / "m"), tmp_path / "b",
                              "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    source = bundle.verify["source_model"]
    assert source["exact"] is False and "float32" in source["description"], source
    assert "source_vs_firmware" not in bundle.verify["mismatches"]


def _conv_autoencoder():
    """A convolutional autoencoder's shapes: padding, a convolution, up-sampling, cropping (QKeras)."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(31)
    q = dict(kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1))
    x = tf.keras.Input((5, 4, 1), name="image")
    y = QActivation(quantized_bits(6, 2, alpha=1), name="image_q")(x)
    y = tf.keras.layers.ZeroPadding2D(((1, 0), (1, 1)), name="pad")(y)
    y = QConv2D(2, (2, 2), strides=(2, 2), name="conv", **q)(y)
    y = QActivation(quantized_relu(5, 2), name="conv_relu")(y)
    y = tf.keras.layers.UpSampling2D((2, 2), name="up")(y)
    y = tf.keras.layers.Cropping2D(((0, 1), (1, 0)), name="crop")(y)
    y = tf.keras.layers.Flatten(name="flat")(y)
    return tf.keras.Model(x, y, name="conv_autoencoder_shapes")


def _sequence_moves():
    import tensorflow as tf
    from qkeras import QActivation, quantized_bits

    x = tf.keras.Input((6, 2), name="seq")
    y = QActivation(quantized_bits(6, 2, alpha=1), name="seq_q")(x)
    y = tf.keras.layers.ZeroPadding1D((2, 1), name="pad1")(y)
    y = tf.keras.layers.UpSampling1D(2, name="up1")(y)
    y = tf.keras.layers.Cropping1D((3, 2), name="crop1")(y)
    return tf.keras.Model(x, y, name="sequence_moves")


@pytest.mark.slow
@pytest.mark.parametrize("make", [_conv_autoencoder, _sequence_moves], ids=["2d", "1d"])
def test_padding_cropping_and_upsampling(make, tmp_path):
    """ZeroPadding, Cropping and UpSampling (nearest) as gather ops: 3-way exact and equal to QKeras."""
    model = make()
    bundle = build_and_verify(_folder(model, tmp_path / "m", "{input_precision: 'fixed<8,3>'}"), tmp_path / "b",
                              "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]
    assert source["exact"] is True and source["mismatches"] == 0 and source["equal"] == VECTORS, source
    gathers = [op for op in bundle.manifest["ops"] if op["kind"] == "gather"]
    assert len(gathers) == 3


def test_gather_index_replays_the_hls4ml_loops():
    from trigger.ir.ops.gather import cropping_index, padding_index, resize_nearest_index

    assert padding_index((2, 1), (1, 2)).tolist() == [-1, 0, 1, -1, -1]
    assert padding_index((1, 2, 1), (1, 0, 0, 1)).tolist() == [-1, -1, -1, 0, 1, -1]
    assert cropping_index((4, 1), (1, 2)).tolist() == [1]
    assert resize_nearest_index((1, 2, 1), (1, 4)).tolist() == [0, 0, 1, 1]
    assert resize_nearest_index((2, 1, 2), (4, 2)).tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3]


def _mean_over(kind: str):
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits

    tf.keras.utils.set_random_seed(41)
    q = dict(kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1))
    if kind == "set10":  # a set of 10 constituents, 3 features each
        x = tf.keras.Input((10, 3), name="constituents")
        y = QActivation(quantized_bits(7, 2, alpha=1), name="cq")(x)
        y = tf.keras.layers.GlobalAveragePooling1D(name="mean")(y)
    else:  # a 3 x 3 map of 2 channels
        x = tf.keras.Input((3, 3, 2), name="map")
        y = QActivation(quantized_bits(7, 2, alpha=1), name="mq")(x)
        y = tf.keras.layers.GlobalAveragePooling2D(name="mean")(y)
    y = QDense(2, name="out", **q)(y)
    return tf.keras.Model(x, y, name=f"mean_{kind}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["set10", "map3x3"])
def test_global_average_over_a_count_that_is_not_a_power_of_two(kind, tmp_path):
    """hls4ml's y /= N truncates toward zero; the RTL multiplies by a rounded-up reciprocal, exactly."""
    bundle = build_and_verify(_folder(_mean_over(kind), tmp_path / "m", "{input_precision: 'fixed<8,3>'}"),
                              tmp_path / "b", "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    pool = next(op for op in bundle.manifest["ops"] if op["kind"] == "global_pool")
    assert ("10 items" if kind == "set10" else "9 items") in pool["description"]


@pytest.mark.parametrize("n", [3, 5, 7, 9, 10, 18 * 18])
@pytest.mark.slow
def test_reciprocal_division_is_exact_over_the_whole_range(n, tmp_path):
    """The mean's RTL division, simulated on every sum the accumulator can hold (Icarus)."""
    from tests.firmware_cases import F, T
    from trigger.backends.rtl import write_rtl
    from trigger.ir import FirmwareModel, emulate
    from trigger.ir.ops.global_pool import GlobalPool
    from trigger.rtlsim import simulate

    src = F("fixed<6,3>")
    op = GlobalPool("mean", T(src, n), T(F("fixed<12,3>"), 1), "mean", n, 1, F(f"fixed<{6 + n.bit_length() + 1},"
                                                                            f"{3 + n.bit_length() + 1}>"))
    model = FirmwareModel("mean", T(src, n), [op])
    rng = np.random.default_rng(n)
    raw = rng.integers(src.min_raw, src.max_raw + 1, (3000, n), dtype=np.int64)
    raw[:64] = src.min_raw  # the ends of the range: every element at its minimum, at its maximum
    raw[64:128] = src.max_raw
    expected = emulate(model, raw).outputs
    design = write_rtl(model, tmp_path / "rtl", top="mean_top")
    got = simulate(design.sources, design.top, model.input.to_bits(raw), model.input.widths, model.output.widths,
                   simulator="icarus", build_dir=tmp_path / "sim", max_latency=design.latency_cycles + 4)
    assert np.array_equal(model.output.from_bits(got.outputs), expected)
