"""Layers hls4ml converts that trigger models use, each built and verified 3-way (emulator == hls4ml C
simulation == RTL) and, for quantized models, equal to QKeras on every vector."""

from __future__ import annotations

import pytest

from helpers import assert_certified, build_and_verify

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
