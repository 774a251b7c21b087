"""The hls4ml bridge: real conversion and g++ C simulation, compared integer for integer.

Every network is converted once per session (hls4ml's compile takes tens of
seconds); the C simulation must equal the numpy emulator of the extracted
firmware model on every vector, including the corners of the input range.
"""

from pathlib import Path

import numpy as np
import pytest

from trigger.firmware.emulator import emulate, first_mismatch
from trigger.firmware.model import Activation, Dense, Scale
from trigger.fixed import FixedFormat
from trigger.hls import convert, csim, describe_formats, settings
from trigger.models import load_model

from keras_cases import build_networks, random_weights, save_model as _save

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference_models"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(),
                                     reason=f"reference models not found at {REFERENCE} (clone ../shared beside the project)")
N_VECTORS = 20000


def stimulus(fmt: FixedFormat, n_inputs: int, n: int = N_VECTORS, seed: int = 0) -> np.ndarray:
    """Standard-normal features (the models' inputs are standardised), wide tails, uniform raw codes, corners."""
    rng = np.random.default_rng(seed)
    parts = [fmt.quantize(np.clip(rng.normal(size=(n // 4, n_inputs)) * s, fmt.min_value, fmt.max_value))
             for s in (1.0, 3.0, 20.0)]
    parts.append(rng.integers(fmt.min_raw, fmt.max_raw + 1, size=(n - 3 * (n // 4) - 3, n_inputs)))
    parts += [np.full((1, n_inputs), v) for v in (fmt.min_raw, fmt.max_raw, 0)]
    return np.concatenate(parts).astype(np.int64)


def assert_bit_exact(hls_model, fw, seed=0):
    x = stimulus(fw.input_fmt, fw.n_inputs, seed=seed)
    c = csim(hls_model, x)
    e = emulate(fw, x).outputs
    bad = first_mismatch(e, c)
    n_bad = int(np.count_nonzero(np.any(e != c, axis=1)))
    assert bad is None, f"{n_bad} of {len(x)} vectors differ; first #{bad}: emulator {e[bad]} C-sim {c[bad]}"
    return x, c


@pytest.fixture(scope="session")
def constructed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nets")
    out = {}
    for name, (model, cfg) in build_networks().items():
        loaded = load_model(_save(model, tmp, name))
        out[name] = (loaded,) + convert(loaded, {"hls": cfg}, output_dir=tmp / f"hls_{name}")
    return out


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    if not REFERENCE.is_dir():
        pytest.skip(f"reference models not found at {REFERENCE}")
    tmp = tmp_path_factory.mktemp("ref")
    out = {}
    for stem, backend in (("qkeras_3layer", "Vitis"), ("KERAS_3layer", "Vivado")):
        loaded = load_model(REFERENCE / f"{stem}.json")
        out[stem] = (loaded,) + convert(loaded, {"hls": {"backend": backend}}, output_dir=tmp / stem)
    return out


def test_qkeras_reference_csim_equals_qkeras_and_emulator(reference):
    loaded, hls_model, fw = reference["qkeras_3layer"]
    assert [type(l).__name__ for l in fw.layers] == ["Dense", "Activation"] * 3 + ["Dense"]
    assert fw.input_fmt == FixedFormat.parse("fixed<16,6>")
    assert all(l.weight_fmt == FixedFormat.parse("fixed<6,1>") for l in fw.layers if isinstance(l, Dense))
    assert all(l.output_fmt == FixedFormat.parse("ufixed<6,0,RND_CONV,SAT>") for l in fw.layers if isinstance(l, Activation))
    x, c = assert_bit_exact(hls_model, fw)
    # QKeras itself, on inputs representable in the input type, gives the same logits
    ref = loaded.keras.predict(fw.input_fmt.to_float(x), verbose=0, batch_size=4096).astype(np.float64)
    q = fw.output_fmt.quantize(ref)
    assert np.array_equal(fw.output_fmt.to_float(q), ref)
    assert int(np.count_nonzero(np.any(q != c, axis=1))) == 0


def test_float_reference_post_training_quantization(reference):
    loaded, hls_model, fw = reference["KERAS_3layer"]
    assert not loaded.quantized and (fw.n_inputs, fw.n_outputs) == (16, 5)
    ptq = settings({})["ptq"]
    dense = [l for l in fw.layers if isinstance(l, Dense)]
    assert all(l.weight_fmt == FixedFormat.parse(ptq["weight"]) for l in dense)
    assert all(l.output_fmt == FixedFormat.parse(ptq["result"]) for l in dense)
    x, c = assert_bit_exact(hls_model, fw, seed=1)
    # the quantized network still classifies like the float one on ordinary inputs
    xs = x[: N_VECTORS // 4]
    agree = np.mean(np.argmax(c[: len(xs)], axis=1)
                    == np.argmax(loaded.keras.predict(fw.input_fmt.to_float(xs), verbose=0), axis=1))
    assert agree > 0.95, agree
    assert (Path(hls_model.config.get_output_dir()) / "build_prj.tcl").exists()
    assert hls_model.config.backend.name == "Vivado"


@pytest.mark.parametrize("name", ["four_bit", "integer_bits", "batchnorm"])
def test_constructed_networks_bit_exact(constructed, name):
    loaded, hls_model, fw = constructed[name]
    assert loaded.quantized
    assert_bit_exact(hls_model, fw, seed=2)
    lines = describe_formats(fw)
    assert lines[0].startswith(f"input: {fw.n_inputs} x ap_fixed")


@pytest.mark.parametrize("name", ["four_bit", "integer_bits"])
def test_constructed_networks_equal_qkeras(constructed, name):
    """Without batch norm, hls4ml computes what QKeras computes: same logits on representable inputs."""
    loaded, hls_model, fw = constructed[name]
    x = stimulus(fw.input_fmt, fw.n_inputs, n=4000, seed=3)
    ref = loaded.keras.predict(fw.input_fmt.to_float(x), verbose=0, batch_size=4096).astype(np.float64)
    q = fw.output_fmt.quantize(ref)
    assert np.array_equal(fw.output_fmt.to_float(q), ref)
    n_bad = int(np.count_nonzero(np.any(q != csim(hls_model, x), axis=1)))
    assert n_bad == 0, f"{n_bad} of {len(x)} vectors differ from QKeras"


def test_constructed_network_shapes(constructed):
    _, _, four = constructed["four_bit"]
    assert [l.n_out for l in four.layers if isinstance(l, Dense)] == [20, 7, 3]
    assert four.layers[0].weight_fmt == FixedFormat.parse("fixed<4,1>")
    _, _, ints = constructed["integer_bits"]
    assert ints.layers[0].weight_fmt == FixedFormat.parse("fixed<8,4>")
    # the quantized_bits(8,2) activation is kept: the first dense layer's output is cast to its type
    assert ints.layers[0].output_fmt == FixedFormat.parse("fixed<8,3,RND_CONV,SAT>")
    _, _, bn = constructed["batchnorm"]
    assert any(isinstance(l, Scale) for l in bn.layers), [type(l).__name__ for l in bn.layers]


def test_accumulators_never_overflow(constructed, reference):
    from trigger.hls import accumulator_bound

    for _, _, fw in list(constructed.values()) + list(reference.values()):
        for layer in fw.layers:
            if isinstance(layer, Dense):
                prod = layer.input_fmt.product_format(layer.weight_fmt)
                bound = int(accumulator_bound(layer).max()) * 2.0 ** -prod.fractional
                assert bound <= layer.accum_fmt.max_value, (fw.name, layer.name, layer.accum_fmt)


def test_user_accumulator_too_narrow_is_widened(tmp_path, monkeypatch):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(5)
    model = tf.keras.Sequential([tf.keras.Input(shape=(8,)), tf.keras.layers.Dense(6, name="d1")])
    random_weights(model, 9)
    loaded = load_model(_save(model, tmp_path, "narrow"))
    # hls4ml would use this accumulator as given; the bridge must widen it
    from trigger import hls as bridge

    original = bridge._hls_config

    def narrow(loaded_, opts):
        cfg = original(loaded_, opts)
        cfg["LayerName"]["d1"]["Precision"]["accum"] = "fixed<12,3>"
        return cfg

    monkeypatch.setattr(bridge, "_hls_config", narrow)
    hls_model, fw = convert(loaded, {}, output_dir=tmp_path / "hls")
    assert fw.widened_accumulators and "d1" in fw.widened_accumulators
    assert fw.layers[0].accum_fmt.integer > 3
    assert_bit_exact(hls_model, fw)


def test_settings_errors():
    with pytest.raises(ValueError, match="hls.backend 'Quartus'"):
        settings({"hls": {"backend": "Quartus"}})
    with pytest.raises(ValueError, match="unknown key 'clock'"):
        settings({"target": {"clock": 3}})
    with pytest.raises(ValueError, match="bad precision 'fixed<4>'"):
        settings({"hls": {"input_precision": "fixed<4>"}})
    assert settings({"target": {"clock_mhz": 250}})["clock_period_ns"] == 4.0


def test_csim_rejects_out_of_range_inputs(reference):
    _, hls_model, fw = reference["qkeras_3layer"]
    x = np.zeros((2, 16), dtype=np.int64)
    x[1, 3] = fw.input_fmt.max_raw + 1
    with pytest.raises(ValueError, match="outside"):
        csim(hls_model, x)
