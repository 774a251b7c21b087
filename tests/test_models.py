"""Model input: supported networks load, everything else fails at once with a one-line error."""

import json

import numpy as np
import pytest

from trigger.errors import ModelError
from trigger.frontends.keras import load_model, validate_config


def _small_qkeras(tmp_path, name="small"):
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(6,), name="x"),
        QDense(5, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1), name="d1"),
        QActivation(quantized_relu(4), name="a1"),
        QDense(3, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1), name="d2"),
        tf.keras.layers.Activation("softmax", name="sm"),
    ])
    json_path = tmp_path / f"{name}.json"
    json_path.write_text(model.to_json())
    model.save_weights(tmp_path / f"{name}_weights.h5")
    return model, json_path


def _dense_json(layers, functional=False, inputs=1):
    """A hand-written Keras 2 architecture (plain data, as a user's file could hold)."""
    cfg_layers = [{"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "in"}}]
    cfg_layers += layers
    if not functional:
        return {"class_name": "Sequential", "config": {"name": "m", "layers": cfg_layers}}
    prev = "in"
    for layer in cfg_layers[1:]:
        layer["name"] = layer["config"]["name"]
        layer["inbound_nodes"] = [[[prev, 0, 0, {}]]]
        prev = layer["name"]
    cfg_layers[0]["name"] = "in"
    cfg_layers[0]["inbound_nodes"] = []
    ins = [["in", 0, 0]]
    if inputs == 2:
        cfg_layers.insert(1, {"class_name": "InputLayer", "name": "in2", "inbound_nodes": [],
                              "config": {"batch_input_shape": [None, 4], "name": "in2"}})
        ins.append(["in2", 0, 0])
    return {"class_name": "Functional", "config": {"name": "m", "layers": cfg_layers, "input_layers": ins,
                                                    "output_layers": [[prev, 0, 0]]}}


DENSE = {"class_name": "Dense", "config": {"name": "d", "units": 3, "activation": "relu"}}


def test_softmax_is_dropped_and_predictions_match(tmp_path):
    model, json_path = _small_qkeras(tmp_path)
    loaded = load_model(json_path)
    assert loaded.softmax_dropped and loaded.quantized
    assert [c for _, c in loaded.layers] == ["QDense", "QActivation", "QDense"]
    assert (loaded.n_inputs, loaded.n_outputs) == (6, 3)
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    logits = loaded.keras.predict(x, verbose=0)
    import tensorflow as tf

    assert np.array_equal(tf.nn.softmax(logits).numpy(), model.predict(x, verbose=0))


def test_full_model_h5_loads(tmp_path):
    model, _ = _small_qkeras(tmp_path)
    path = tmp_path / "full.h5"
    model.save(path, save_format="h5")
    loaded = load_model(path)
    x = np.random.default_rng(1).normal(size=(20, 6)).astype(np.float32)
    assert loaded.softmax_dropped
    ref = load_model(tmp_path / "small.json").keras.predict(x, verbose=0)
    assert np.array_equal(loaded.keras.predict(x, verbose=0), ref)


def test_config_mapping_and_explicit_weights(tmp_path):
    _, json_path = _small_qkeras(tmp_path)
    loaded = load_model({"json": str(json_path), "weights": str(tmp_path / "small_weights.h5"), "name": "my-net"})
    assert loaded.name == "my_net" and len(loaded.sha256) == 64


@pytest.mark.parametrize("layer,expect", [
    ({"class_name": "Lambda", "config": {"name": "evil", "function": ["4wEAAAAAAAAA", None, None]}},
     "layer 'evil' of type Lambda is not supported"),
    ({"class_name": "Conv1D", "config": {"name": "c", "filters": 2, "dilation_rate": [2]}},
     "layer 'c' of type Conv1D: dilation_rate"),
    ({"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "data_format": "channels_first"}},
     "layer 'c' of type Conv2D: data_format 'channels_first'"),
    ({"class_name": "MyCustomLayer", "config": {"name": "x"}}, "layer 'x' of type MyCustomLayer"),
    ({"class_name": "Activation", "config": {"name": "t", "activation": "gelu"}}, "layer 't' of type Activation: activation 'gelu' is not supported \\(linear, relu"),
    ({"class_name": "QActivation", "config": {"name": "q", "activation": "quantized_relu(4, __import__('os'))"}},
     "layer 'q' of type QActivation: activation"),
    ({"class_name": "QActivation", "config": {"name": "q", "activation": {"class_name": "quantized_relu_po2", "config": {}}}},
     "'quantized_relu_po2' is not supported"),
    ({"class_name": "QDense", "config": {"name": "qd", "units": 2, "kernel_quantizer": {"class_name": "quantized_relu_po2", "config": {}}}},
     "kernel_quantizer 'quantized_relu_po2'"),
])
def test_unsupported_layers_are_rejected_before_keras(layer, expect, monkeypatch):
    import tensorflow as tf

    def forbidden(*args, **kwargs):
        raise AssertionError("model_from_json must not be reached")

    monkeypatch.setattr(tf.keras.models, "model_from_json", forbidden)
    with pytest.raises(ModelError, match=expect) as err:
        validate_config(_dense_json([DENSE, layer]), "net.json")
    assert "\n" not in str(err.value)


def test_batchnorm_must_follow_dense():
    bn = {"class_name": "BatchNormalization", "config": {"name": "bn", "axis": -1}}
    validate_config(_dense_json([DENSE, bn]))  # fine after a dense layer
    act = {"class_name": "Activation", "config": {"name": "r", "activation": "relu"}}
    with pytest.raises(ModelError, match="layer 'bn' of type BatchNormalization: it follows Activation 'r'"):
        validate_config(_dense_json([DENSE, act, bn]))


def test_softmax_only_at_the_end():
    soft = {"class_name": "Activation", "config": {"name": "s", "activation": "softmax"}}
    with pytest.raises(ModelError, match="layer 's' applies a softmax before the last layer"):
        validate_config(_dense_json([soft, DENSE]))
    plan = validate_config(_dense_json([DENSE, soft]))
    assert plan.softmax_dropped and [l["config"]["name"] for l in plan.layers] == ["d"]
    kept = validate_config(_dense_json([DENSE, soft]), keep_softmax=True)  # hls4ml's softmax (trigger.ir.ops.softmax)
    assert not kept.softmax_dropped and [l["config"]["name"] for l in kept.layers] == ["d", "s"]


def test_two_inputs_make_a_graph_plan():
    """A second input is a graph (the unused one is an input port like any other)."""
    plan = validate_config(_dense_json([DENSE], functional=True, inputs=2))
    assert plan.graph is not None
    assert [n for n, _ in plan.graph["inputs"]] == ["in", "in2"] and plan.graph["outputs"] == ["d"]
    assert plan.n_inputs == 8


def test_a_layer_reading_a_later_layer_is_refused():
    config = _dense_json([DENSE, {"class_name": "Dense", "config": {"name": "e", "units": 2}}], functional=True)
    config["config"]["layers"][1]["inbound_nodes"] = [[["e", 0, 0, {}]]]  # d reads e, which comes after it
    with pytest.raises(ModelError, match="layer 'd' reads 'e', which is not a layer before it"):
        validate_config(config, "loop.json")


def test_a_shared_layer_is_refused():
    config = _dense_json([DENSE], functional=True)
    config["config"]["layers"][1]["inbound_nodes"] *= 2
    with pytest.raises(ModelError, match="layer 'd' is called 2 times"):
        validate_config(config, "shared.json")


def test_functional_chain_accepted():
    plan = validate_config(_dense_json([DENSE], functional=True))
    assert [l["config"]["name"] for l in plan.layers] == ["d"]


def test_truncated_weights_file(tmp_path):
    _, json_path = _small_qkeras(tmp_path)
    weights = tmp_path / "small_weights.h5"
    data = weights.read_bytes()
    for cut in (len(data) // 2, 1000):
        bad = tmp_path / f"cut{cut}.h5"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=f"cut{cut}.h5.*(truncated|corrupt)") as err:
            load_model({"json": str(json_path), "weights": str(bad)})
        assert "\n" not in str(err.value)


def test_mismatched_json_and_weights(tmp_path):
    import tensorflow as tf
    from qkeras import QDense, quantized_bits

    _, json_path = _small_qkeras(tmp_path)
    other = tf.keras.Sequential([tf.keras.Input(shape=(6,)),
                                 QDense(7, kernel_quantizer=quantized_bits(4, 0, alpha=1), name="d1"),
                                 QDense(3, kernel_quantizer=quantized_bits(4, 0, alpha=1), name="d2")])
    other.save_weights(tmp_path / "other.h5")
    with pytest.raises(ModelError, match=r"other.h5 does not match .*small.json: layer 'd1' expects weight shapes"):
        load_model({"json": str(json_path), "weights": str(tmp_path / "other.h5")})
    fewer = tf.keras.Sequential([tf.keras.Input(shape=(6,)), tf.keras.layers.Dense(3, name="d1")])
    fewer.save_weights(tmp_path / "fewer.h5")
    with pytest.raises(ModelError, match="the file has weights for 1 layers"):
        load_model({"json": str(json_path), "weights": str(tmp_path / "fewer.h5")})


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nothing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    (tmp_path / "bad_weights.h5").write_bytes(b"\x89HDF\r\n")
    with pytest.raises(ModelError, match="bad.json: not a valid JSON architecture"):
        load_model(bad)
    with pytest.raises(ModelError, match="an ONNX model: trigger.frontends.onnx.load_onnx reads it"):
        load_model(tmp_path / "m.onnx")


@pytest.mark.parametrize("stem,quantized", [("qkeras_3layer", True), ("KERAS_3layer", False)])
def test_reference_models_load(stem, quantized, reference_models):
    loaded = load_model(reference_models / f"{stem}.json")
    assert loaded.quantized is quantized and loaded.softmax_dropped
    assert (loaded.n_inputs, loaded.n_outputs) == (16, 5)
    assert [int(l.units) for l in loaded.keras.layers if hasattr(l, "units")] == [64, 32, 32, 5]
