"""Layers hls4ml converts that trigger models use, each built and verified 3-way (emulator == hls4ml C
simulation == RTL) and, for quantized models, equal to QKeras on every vector."""

from __future__ import annotations

import json

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


def _relu_inside(kind: str, weight_bits: int, prefix: str = ""):
    """x -> QDense (or QConv2D + Flatten) with a float relu inside, then QDense out (``prefix`` on every name)."""
    import tensorflow as tf
    from qkeras import QConv2D, QDense, quantized_bits

    q = dict(kernel_quantizer=quantized_bits(weight_bits, 0, alpha=1),
             bias_quantizer=quantized_bits(weight_bits, 0, alpha=1))
    if kind == "QDense":
        x = tf.keras.Input((10,), name=f"{prefix}x")
        h = QDense(12, activation="relu", name=f"{prefix}fc1", **q)(x)
    else:
        x = tf.keras.Input((6, 6, 1), name=f"{prefix}x")
        h = tf.keras.layers.Flatten(name=f"{prefix}flat")(QConv2D(3, (3, 3), activation="relu", name=f"{prefix}conv1",
                                                                   **q)(x))
    return x, QDense(3, name=f"{prefix}out", **q)(h)


def _conv_autoencoder():
    """A convolutional autoencoder's shapes: padding, a convolution, up-sampling, cropping (QKeras)."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, quantized_bits, quantized_relu

    q = dict(kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1))
    x = tf.keras.Input((5, 4, 1), name="image")
    y = QActivation(quantized_bits(6, 2, alpha=1), name="image_q")(x)
    y = tf.keras.layers.ZeroPadding2D(((1, 0), (1, 1)), name="pad")(y)
    y = QConv2D(2, (2, 2), strides=(2, 2), name="conv", **q)(y)
    y = QActivation(quantized_relu(5, 2), name="conv_act")(y)
    y = tf.keras.layers.UpSampling2D((2, 2), name="up")(y)
    y = tf.keras.layers.Cropping2D(((0, 1), (1, 0)), name="crop")(y)
    return x, tf.keras.layers.Flatten(name="flat")(y)


def _sequence_moves():
    import tensorflow as tf
    from qkeras import QActivation, quantized_bits

    x = tf.keras.Input((6, 2), name="seq")
    y = QActivation(quantized_bits(6, 2, alpha=1), name="seq_q")(x)
    y = tf.keras.layers.ZeroPadding1D((2, 1), name="pad1")(y)
    y = tf.keras.layers.UpSampling1D(2, name="up1")(y)
    return x, tf.keras.layers.Cropping1D((3, 2), name="crop1")(y)


def _mean_over(kind: str):
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits

    q = dict(kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1))
    if kind == "set10":  # a set of 10 constituents, 3 features each
        x = tf.keras.Input((10, 3), name="constituents")
        y = QActivation(quantized_bits(7, 2, alpha=1), name="cq")(x)
        y = tf.keras.layers.GlobalAveragePooling1D(name="mean_set10")(y)
    else:  # a 3 x 3 map of 2 channels
        x = tf.keras.Input((3, 3, 2), name="map")
        y = QActivation(quantized_bits(7, 2, alpha=1), name="mq")(x)
        y = tf.keras.layers.GlobalAveragePooling2D(name="mean_map3x3")(y)
    return x, QDense(2, name=f"out_{kind}", **q)(y)


def _branches_model(branches, name):
    """One model of these (input, output) branches. The inputs must be listed in the order Keras writes their
    InputLayers in the JSON (the deepest branch first): with another order the bus's ports follow the JSON while
    hls4ml's C simulation and QKeras take the model's order (seen here: emulator == RTL, C simulation and QKeras
    differ)."""
    import tensorflow as tf

    model = tf.keras.Model([x for x, _ in branches], [y for _, y in branches], name=name)
    written = [layer["name"] for layer in json.loads(model.to_json())["config"]["layers"]
               if layer["class_name"] == "InputLayer"]
    assert model.input_names == written, (model.input_names, written)
    return model


@pytest.fixture(scope="module")
def layers_bundle(tmp_path_factory):
    """One QKeras model, one branch per input, built and verified once (one hls4ml project, one C simulation and
    one RTL compile instead of one per layer kind): a float relu inside a QDense and inside a QConv2D (inputs
    fixed<6,3>); padding, cropping and up-sampling in 2d and 1d (inputs fixed<8,3>)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(21)
    model = _branches_model([_conv_autoencoder(), _sequence_moves(), _relu_inside("QConv2D", 4, "conv_"),
                             _relu_inside("QDense", 4, "dense_")], "layer_kinds")
    inputs = {"image": "fixed<8,3>", "seq": "fixed<8,3>", "conv_x": "fixed<6,3>", "dense_x": "fixed<6,3>"}
    tmp = tmp_path_factory.mktemp("layer_kinds")
    return build_and_verify(_folder(model, tmp / "m", f"{{input_precision: {json.dumps(inputs)}}}"), tmp / "b",
                            "--vectors", str(VECTORS))


@pytest.mark.slow
def test_layer_kinds_are_bit_exact_three_ways_and_equal_qkeras(layers_bundle):
    bundle = layers_bundle
    assert bundle.build_status == 0 and bundle.verify_status == 0, bundle.verify.get("first_mismatch")
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]
    assert source["exact"] is True and source["mismatches"] == 0 and source["equal"] == VECTORS, source


@pytest.mark.slow
def test_a_float_relu_inside_a_quantized_layer_rounds_once(layers_bundle):
    """QKeras applies a layer's float relu to its exact result; hls4ml splits it into <layer>_relu typed
    fixed<16,6,RND_CONV,SAT>, which rounds again. trigger types the split relu exactly: firmware == QKeras
    on every vector (inputs and weights narrow enough that QKeras' float32 sums are exact too: the bundle's
    source witness above)."""
    relus = {op["name"]: op for op in layers_bundle.manifest["ops"] if op["name"].endswith("_relu")}
    assert sorted(relus) == ["conv_conv1_relu", "dense_fc1_relu"]
    assert all("16,6" not in op["description"] for op in relus.values()), relus


@pytest.mark.slow  # TensorFlow and hls4ml's conversion: seconds of work, though no tool
def test_the_witness_does_not_claim_exactness_float32_lacks(tmp_path):
    """16-bit inputs times 8-bit weights summed over 10 reach past float32's 24-bit significand: QKeras
    may round where the firmware does not, so the design's source witness (made when the design is loaded,
    before any tool) says the comparison is not exact. Verify then reports it without counting it as a mismatch
    (asserted on built bundles in test_model_formats, test_onnx_exports, test_quantizer_coverage)."""
    import tensorflow as tf

    from trigger.frontends import BuildOptions, load_design

    tf.keras.utils.set_random_seed(21)
    model = tf.keras.Model(*_relu_inside("QDense", 8), name="qdense_relu")
    design = load_design(_save(model, tmp_path / "m"), BuildOptions(vectors=VECTORS))
    source = design.manifest["source_model"]
    assert source["exact"] is False and "float32" in source["description"], source


@pytest.mark.slow
def test_padding_cropping_and_upsampling(layers_bundle):
    """ZeroPadding, Cropping and UpSampling (nearest) as gather ops, 2d and 1d (3-way exact and equal to QKeras:
    the bundle's verification above)."""
    gathers = sorted(op["name"] for op in layers_bundle.manifest["ops"] if op["kind"] == "gather")
    assert gathers == ["crop", "crop1", "pad", "pad1", "up", "up1"]


def test_gather_index_replays_the_hls4ml_loops():
    from trigger.ir.ops.gather import cropping_index, padding_index, resize_nearest_index

    assert padding_index((2, 1), (1, 2)).tolist() == [-1, 0, 1, -1, -1]
    assert padding_index((1, 2, 1), (1, 0, 0, 1)).tolist() == [-1, -1, -1, 0, 1, -1]
    assert cropping_index((4, 1), (1, 2)).tolist() == [1]
    assert resize_nearest_index((1, 2, 1), (1, 4)).tolist() == [0, 0, 1, 1]
    assert resize_nearest_index((2, 1, 2), (4, 2)).tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3]


@pytest.mark.slow
def test_global_average_over_a_count_that_is_not_a_power_of_two(tmp_path):
    """hls4ml's y /= N truncates toward zero; the RTL multiplies by a rounded-up reciprocal, exactly: a mean over 10
    items and one over 3 x 3, one branch each of one model (QKeras's float mean is not the firmware's: its witness
    is not required here)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(41)
    model = _branches_model([_mean_over("set10"), _mean_over("map3x3")], "means")
    bundle = build_and_verify(_folder(model, tmp_path / "m", "{input_precision: 'fixed<8,3>'}"), tmp_path / "b",
                              "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    pools = {op["name"]: op for op in bundle.manifest["ops"] if op["kind"] == "global_pool"}
    assert sorted(pools) == ["mean_map3x3", "mean_set10"]
    assert "10 items" in pools["mean_set10"]["description"] and "9 items" in pools["mean_map3x3"]["description"]


@pytest.mark.parametrize("n", [3, 5, 7, 9, 10, 18 * 18])
@pytest.mark.slow
def test_reciprocal_division_is_exact_over_the_whole_range(n, tmp_path):
    """The mean's RTL division, simulated (Icarus) on sums over the accumulator's whole range: half the vectors
    uniform elements (sums near the middle), half elements near a level drawn per vector (sums spread from end to
    end), and every element at its minimum, at its maximum. Icarus takes ~2 ms a vector on the 324-input mean:
    1,000 vectors there, 3,000 on the others."""
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
    vectors = 3000 if n < 100 else 1000
    raw = rng.integers(src.min_raw, src.max_raw + 1, (vectors, n), dtype=np.int64)
    level = rng.integers(src.min_raw, src.max_raw + 1, (vectors // 2, 1))
    raw[vectors // 2:] = np.clip(level + rng.integers(-3, 4, (vectors // 2, n)), src.min_raw, src.max_raw)
    raw[:64] = src.min_raw  # the ends of the range: every element at its minimum, at its maximum
    raw[64:128] = src.max_raw
    expected = emulate(model, raw).outputs
    design = write_rtl(model, tmp_path / "rtl", top="mean_top")
    got = simulate(design.sources, design.top, model.input.to_bits(raw), model.input.widths, model.output.widths,
                   simulator="icarus", build_dir=tmp_path / "sim", max_latency=design.latency_cycles + 4)
    assert np.array_equal(model.output.from_bits(got.outputs), expected)
