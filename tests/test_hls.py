"""The network frontend (hls4ml conversion -> firmware model) and the hls4ml project's C simulation.

Every network is converted once per session. The firmware model must hold hls4ml's types, its
emulator must give QKeras' own logits on inputs the input type represents, no accumulator may
overflow, and hls4ml's C simulation (g++, ``backends.hls.hls4ml_project.csim_project``) must equal
the emulator integer for integer. The bundles of the constructed networks certify emulator ==
C simulation == RTL on their vectors (test_constructed_flow.py); the reference bundle likewise
(test_network_flow.py).
"""

import numpy as np
import pytest

from tests.firmware_cases import F
from tests.helpers import SEED, assert_same
from tests.keras_cases import random_weights, save_model
from trigger.backends.hls.hls4ml_project import csim_project
from trigger.errors import ConfigError, FirmwareModelError
from trigger.frontends import network as frontend
from trigger.frontends.network import accumulators_to_widen, convert, settings
from trigger.ir import emulate
from trigger.ir.ops.dense import Dense
from trigger.ir.ops.scale import Scale
from trigger.frontends.keras import load_model
from trigger.quiet import quiet_stdout
from trigger.vectors import test_vectors

N_VECTORS = 20_000
FORMAT = F("fixed<16,6>")


@pytest.fixture(scope="module")
def keras_reference(reference_models, tmp_path_factory):
    """The float reference network, post-training quantized with the defaults, Vivado backend."""
    loaded = load_model(reference_models / "KERAS_3layer.json")
    hls_model, fw = convert(loaded, {"hls": {"backend": "Vivado"}}, output_dir=tmp_path_factory.mktemp("keras_hls"))
    return loaded, hls_model, fw


@pytest.fixture(scope="module")
def constructed(constructed_networks, tmp_path_factory):
    """The constructed QKeras networks converted with their trigger.yml hls settings."""
    out = {}
    for name, net in constructed_networks.items():
        loaded = load_model(net.json_path)
        out[name] = (loaded,) + convert(loaded, {"hls": net.hls}, output_dir=tmp_path_factory.mktemp(f"hls_{name}"))
    return out


def assert_keras_equals_emulator(loaded, fw, x):
    """QKeras itself, on inputs representable in the input type, gives the emulator's logits."""
    ref = loaded.keras.predict(fw.input.to_float(x), verbose=0, batch_size=4096).astype(np.float64)
    q = fw.output.format.quantize(ref)
    assert np.array_equal(fw.output.format.to_float(q), ref)  # every logit is a value of the output type
    assert_same(fw, x, q, emulate(fw, x).outputs, ("keras", "emulator"))


def write(hls_model, folder):
    hls_model.config.config["OutputDir"] = str(folder)
    with quiet_stdout():
        hls_model.write()
    return folder


def csim(hls_model, fw, folder, raw):
    """hls4ml's project written into ``folder`` and C-simulated on raw inputs."""
    out, timings = csim_project(write(hls_model, folder), fw, raw)
    assert timings["csim_build_s"] > 0
    return out


def test_qkeras_reference_types_and_qkeras_equal_emulator(qkeras_reference):
    loaded, fw = qkeras_reference.loaded, qkeras_reference.fw
    assert [op.kind for op in fw.ops] == ["dense", "relu"] * 3 + ["dense"]
    assert fw.input.format == FORMAT and (fw.input.n, fw.output.n) == (16, 5)
    assert all(op.weight_fmt == F("fixed<6,1>") for op in fw.ops if isinstance(op, Dense))
    assert all(op.output.format == F("ufixed<6,0,RND_CONV,SAT>") for op in fw.ops if op.kind == "relu")
    assert fw.meta["widened_accumulators"] == {}  # hls4ml's 'auto' accumulators are exact
    assert_keras_equals_emulator(loaded, fw, test_vectors(fw, N_VECTORS, SEED))


def test_float_reference_post_training_quantization(keras_reference):
    loaded, hls_model, fw = keras_reference
    assert not loaded.quantized and (fw.input.n, fw.output.n) == (16, 5)
    ptq = settings({})["ptq"]
    dense = [op for op in fw.ops if isinstance(op, Dense)]
    assert len(dense) == 4
    assert all(op.weight_fmt == F(ptq["weight"]) and op.bias_fmt == F(ptq["bias"]) for op in dense)
    assert all(op.output.format == F(ptq["result"]) for op in dense)
    assert hls_model.config.backend.name == "Vivado"
    # the quantized network still classifies like the float one on ordinary inputs
    x = FORMAT.quantize(np.random.default_rng(1).normal(size=(5000, 16)))
    agree = np.mean(np.argmax(emulate(fw, x).outputs, axis=1)
                    == np.argmax(loaded.keras.predict(fw.input.to_float(x), verbose=0), axis=1))
    assert agree > 0.95, agree


@pytest.mark.slow
@pytest.mark.parametrize("which", ["qkeras_3layer", "KERAS_3layer"])
def test_reference_csim_equals_emulator(which, qkeras_reference, keras_reference, tmp_path):
    hls_model, fw = ((qkeras_reference.hls_model, qkeras_reference.fw) if which == "qkeras_3layer"
                     else keras_reference[1:])
    x = test_vectors(fw, N_VECTORS, SEED)
    c = csim(hls_model, fw, tmp_path / "hls", x)
    assert_same(fw, x, c, emulate(fw, x).outputs, ("csim", "emulator"))
    assert (tmp_path / "hls" / "build_prj.tcl").exists()
    if which == "qkeras_3layer":  # and QKeras itself, on the same vectors
        assert_keras_equals_emulator(qkeras_reference.loaded, fw, x)


@pytest.mark.parametrize("name", ["four_bit", "integer_bits", "batchnorm"])
def test_constructed_networks_types(constructed, name):
    loaded, _, fw = constructed[name]
    assert loaded.quantized
    fw.validate()
    assert fw.input.describe().startswith(f"{fw.input.n} x ap_fixed")
    for op in fw.ops:  # every op names its exact formats
        assert op.output.format.cpp in op.describe() or op.kind == "dense" and op.accum_fmt.cpp in op.describe()
    assert fw.meta["widened_accumulators"] == {}


@pytest.mark.parametrize("name", ["four_bit", "integer_bits"])
def test_constructed_networks_equal_qkeras(constructed, name):
    """Without batch norm, hls4ml computes what QKeras computes: same logits on representable inputs
    (the emulator here; the bundles prove emulator == C simulation == RTL)."""
    loaded, _, fw = constructed[name]
    assert_keras_equals_emulator(loaded, fw, test_vectors(fw, 4000, SEED + 3))


def test_constructed_network_shapes(constructed):
    _, _, four = constructed["four_bit"]
    assert [op.n_out for op in four.ops if isinstance(op, Dense)] == [20, 7, 3]
    assert four.ops[0].weight_fmt == F("fixed<4,1>")
    assert four.input.format == F("fixed<10,4>")
    _, _, ints = constructed["integer_bits"]
    assert ints.ops[0].weight_fmt == F("fixed<8,4>")
    # the quantized_bits(8,2) activation is kept: the first dense layer's output is cast to its type
    assert ints.ops[0].output.format == F("fixed<8,3,RND_CONV,SAT>")
    assert ints.output.n == 4  # the final softmax dropped
    _, _, bn = constructed["batchnorm"]
    assert any(isinstance(op, Scale) for op in bn.ops), [op.kind for op in bn.ops]
    assert bn.input.format == F("fixed<12,4,RND_CONV,SAT>")


def test_accumulators_never_overflow(constructed, qkeras_reference, keras_reference):
    models = [fw for _, _, fw in constructed.values()] + [qkeras_reference.fw, keras_reference[2]]
    for fw in models:
        assert accumulators_to_widen(fw) == {}, fw.name
        for op in fw.ops:
            if isinstance(op, Dense):
                plan = op.plan()
                assert not plan["sum_can_overflow"] and not plan["product_can_overflow"], (fw.name, op.name)
                bound = int(op.worst_case_sum().max())  # in accumulator LSBs
                assert bound <= op.accum_fmt.max_raw + 1, (fw.name, op.name, op.accum_fmt)
                assert bound * op.accum_fmt.lsb <= op.accum_fmt.max_value + op.accum_fmt.lsb


@pytest.mark.slow
def test_user_accumulator_too_narrow_is_widened(tmp_path, monkeypatch):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(5)
    model = tf.keras.Sequential([tf.keras.Input(shape=(8,)), tf.keras.layers.Dense(6, name="d1")])
    random_weights(model, 9)
    loaded = load_model(save_model(model, tmp_path, "narrow"))
    # hls4ml would use this accumulator as given; the frontend must widen it
    original = frontend._hls_config

    def narrow(loaded_, opts):
        cfg = original(loaded_, opts)
        cfg["LayerName"]["d1"]["Precision"]["accum"] = "fixed<12,3>"
        return cfg

    monkeypatch.setattr(frontend, "_hls_config", narrow)
    hls_model, fw = convert(loaded, {}, output_dir=tmp_path / "hls_convert")
    assert "d1" in fw.meta["widened_accumulators"]
    assert F(fw.meta["widened_accumulators"]["d1"]) == fw.ops[0].accum_fmt
    assert fw.ops[0].accum_fmt.integer > 3 and accumulators_to_widen(fw) == {}
    x = test_vectors(fw, N_VECTORS, SEED)
    assert_same(fw, x, csim(hls_model, fw, tmp_path / "hls", x), emulate(fw, x).outputs, ("csim", "emulator"))


def test_settings_errors():
    with pytest.raises(ConfigError, match="hls.backend 'Quartus'"):
        settings({"hls": {"backend": "Quartus"}})
    with pytest.raises(ConfigError, match="unknown key 'clock'"):
        settings({"target": {"clock": 3}})
    with pytest.raises(ConfigError, match="bad precision 'fixed<4>'"):
        settings({"hls": {"input_precision": "fixed<4>"}})
    with pytest.raises(ConfigError, match="target.clock_mhz must be a positive number"):
        settings({"target": {"clock_mhz": 0}})
    with pytest.raises(ConfigError, match="io_parallel with the Latency strategy"):
        settings({"hls": {"strategy": "Resource"}})
    assert settings({"target": {"clock_mhz": 250}})["clock_period_ns"] == 4.0
    assert settings({"hls": {"backend": "vivado"}})["backend"] == "Vivado"


def test_csim_rejects_out_of_range_inputs(qkeras_reference, tmp_path):
    fw = qkeras_reference.fw
    write(qkeras_reference.hls_model, tmp_path / "hls")
    x = np.zeros((2, 16), dtype=np.int64)
    x[1, 3] = fw.input.format.max_raw + 1
    with pytest.raises(FirmwareModelError, match=r"raw input 32768 \(vector 1, element 3\) is outside"):
        csim_project(tmp_path / "hls", fw, x)  # refused before anything is compiled

