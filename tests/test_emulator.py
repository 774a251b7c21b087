"""The firmware emulator against hls4ml's own C++ kernels, compiled with g++.

nnet_dense_latency.h, nnet_activation.h (relu, linear) and nnet_batchnorm.h
(normalize) with hls4ml's ap_types are the specification; a harness rendered
from tests/conformance/nnet_model_harness.cpp.j2 runs hand-built models through
them and the emulator must give equal integers on every vector.
"""

import subprocess
import time
from pathlib import Path

import jinja2
import numpy as np
import pytest

from firmware_cases import case_inputs, mlp, requant_chain, small_models
from trigger.firmware.emulator import dense_plan, emulate, first_mismatch
from trigger.firmware.model import Activation, Dense, FirmwareModel, Scale
from trigger.fixed import FixedFormat
from trigger.toolchain import ap_types_include, find_tool

HERE = Path(__file__).parent
NNET_UTILS = ap_types_include().parent / "nnet_utils"
N_RANDOM = 3000


def cpp_reference(model: FirmwareModel, raw: np.ndarray, work: Path) -> np.ndarray:
    """Output patterns of hls4ml's C++ kernels for ``model`` on raw inputs."""
    gxx = find_tool("g++")
    if gxx is None:
        pytest.fail("g++ not found: run `make setup`")
    layers = []
    for layer in model.layers:
        entry = dict(out_cpp=layer.output_fmt.cpp, n_in=layer.n_in, n_out=layer.n_out)
        if isinstance(layer, Dense):
            # hls4ml stores weights[ii * n_out + jj]: row-major (n_in, n_out).
            entry.update(kind="dense", weight_cpp=layer.weight_fmt.cpp, bias_cpp=layer.bias_fmt.cpp,
                         accum_cpp=layer.accum_fmt.cpp, weight=[int(v) for v in layer.weight.ravel()],
                         bias=[int(v) for v in layer.bias], weight_width=layer.weight_fmt.width,
                         bias_width=layer.bias_fmt.width)
        elif isinstance(layer, Scale):
            entry.update(kind="scale", scale_cpp=layer.scale_fmt.cpp, bias_cpp=layer.bias_fmt.cpp,
                         weight=[int(v) for v in layer.scale], bias=[int(v) for v in layer.bias],
                         weight_width=layer.scale_fmt.width, bias_width=layer.bias_fmt.width)
        else:
            entry.update(kind=layer.function)
        layers.append(entry)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "conformance"), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    text = env.get_template("nnet_model_harness.cpp.j2").render(
        layers=layers, input_cpp=model.input_fmt.cpp, input_width=model.input_fmt.width, n_in=model.n_inputs,
        n_out=model.n_outputs, output_width=model.output_fmt.width)
    work.mkdir(parents=True, exist_ok=True)
    (work / "harness.cpp").write_text(text)
    subprocess.run([gxx, "-O1", "-std=c++14", "-w", "-I", str(ap_types_include()), "-I", str(NNET_UTILS),
                    "harness.cpp", "-o", "harness"], cwd=work, check=True, capture_output=True)
    (work / "in.bin").write_bytes(np.ascontiguousarray(raw, dtype=np.int64).tobytes())
    subprocess.run([str(work / "harness"), "in.bin", "out.bin"], cwd=work, check=True, capture_output=True)
    bits = np.frombuffer((work / "out.bin").read_bytes(), dtype=np.uint64).astype(np.int64)
    return model.output_fmt.from_bits(bits.reshape(raw.shape[0], model.n_outputs))


def assert_equal_integers(model, raw, expected, got):
    bad = first_mismatch(expected, got)
    n_bad = int(np.count_nonzero(np.any(expected != got, axis=1)))
    if bad is not None:
        trace = emulate(model, raw[bad:bad + 1], trace=True)
        layers = "; ".join(f"{n}={t[0].tolist()}" for n, t in zip(trace.layer_names, trace.trace))
        pytest.fail(f"{model.name}: {n_bad}/{len(raw)} vectors differ; first #{bad} input {raw[bad].tolist()}: "
                    f"C++ {expected[bad].tolist()} emulator {got[bad].tolist()}; emulator trace {layers}")


CASES = {**small_models(), "mlp_16_64_32_32_5": mlp(), "chain_sat": requant_chain("SAT"),
         "chain_wrap": requant_chain("WRAP"), "chain_sat_sym": requant_chain("SAT_SYM"),
         "chain_sat_zero": requant_chain("SAT_ZERO")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_emulator_equals_hls4ml_cpp(name, tmp_path):
    model = CASES[name]
    raw = case_inputs(model.input_fmt, model.n_inputs, N_RANDOM)
    expected = cpp_reference(model, raw, tmp_path)
    result = emulate(model, raw)
    assert result.outputs.shape == (len(raw), model.n_outputs)
    assert_equal_integers(model, raw, expected, result.outputs)
    print(f"{name}: {len(raw)} vectors, 0 mismatches against hls4ml's nnet_utils C++")


def test_cases_exercise_overflow_and_rounding():
    """The cases above are only a strong check if the interesting paths are really taken."""
    models = small_models()
    wrap = emulate(models["wrapping_accum"], case_inputs(models["wrapping_accum"].input_fmt, 10, 500))
    assert wrap.overflows["d0"]["accum"].overflows > 0  # the sequential, wrapping path
    plan = dense_plan(models["s16_rounded_products"].layers[0])
    assert plan["shift"] < 0  # products are rounded into the accumulator
    sat = emulate(models["s6_scale"], case_inputs(models["s6_scale"].input_fmt, 7, 500))
    assert sat.overflows["d0"]["output"].overflows > 0
    for overflow in ("SAT", "WRAP", "SAT_SYM", "SAT_ZERO"):
        chain = requant_chain(overflow)
        res = emulate(chain, case_inputs(chain.input_fmt, 3, 2000))
        for layer in chain.layers:
            assert res.overflows[layer.name]["output"].overflows > 0, (overflow, layer.name)


def test_sequential_reference_agrees_with_fast_path():
    """The matrix-product path (proved overflow-free) equals hls4ml's loop written out literally."""
    model = small_models()["s6_scale"]
    layer = model.layers[0]
    raw = case_inputs(model.input_fmt, model.n_inputs, 200)
    assert not dense_plan(layer)["sum_can_overflow"]
    acc_fmt = layer.accum_fmt
    prod_fmt = layer.input_fmt.product_format(layer.weight_fmt)
    expected = np.zeros((len(raw), layer.n_out), dtype=np.int64)
    for v in range(len(raw)):
        for j in range(layer.n_out):
            acc = acc_fmt.cast(layer.bias[j], layer.bias_fmt)
            for i in range(layer.n_in):
                p = acc_fmt.cast(raw[v, i] * layer.weight[i, j], prod_fmt)
                acc = acc_fmt.cast(acc + p, acc_fmt.sum_format(acc_fmt))
            expected[v, j] = layer.output_fmt.cast(acc, acc_fmt)
    got = emulate(model, raw, trace=True).trace[0]
    assert np.array_equal(got, expected)


def test_trace_and_overflow_counts():
    model = small_models()["s6_scale"]
    raw = case_inputs(model.input_fmt, model.n_inputs, 300)
    res = emulate(model, raw, trace=True)
    assert [t.shape for t in res.trace] == [(len(raw), layer.n_out) for layer in model.layers]
    assert np.array_equal(res.trace[-1], res.outputs)
    for t, layer in zip(res.trace, model.layers):
        assert np.all(layer.output_fmt.contains(t))
    # The relu output count equals an independent count of saturations of max(x, 0).
    relu_in = res.trace[0]
    r = model.layers[1]
    values = r.input_fmt.to_float(np.maximum(relu_in, 0))
    assert res.overflows["r0"]["output"].overflows == int(np.count_nonzero(values > r.output_fmt.max_value))
    assert res.overflows["r0"]["output"].values == relu_in.size
    d0 = res.overflows["d0"]
    assert d0["product"].values == len(raw) * model.layers[0].n_in * model.layers[0].n_out
    assert res.overflow_summary()["d1"]["output"]["values"] == len(raw) * 3


def test_emulator_is_fast():
    """100,000 vectors through a 16-64-32-32-5 network in seconds, not minutes."""
    model = mlp()
    raw = np.random.default_rng(3).integers(model.input_fmt.min_raw, model.input_fmt.max_raw + 1, (100_000, 16))
    t0 = time.perf_counter()
    res = emulate(model, raw, trace=True)
    seconds = time.perf_counter() - t0
    print(f"emulate: 100000 vectors through 16-64-32-32-5 in {seconds:.2f} s")
    assert res.outputs.shape == (100_000, 5)
    assert seconds < 30


def test_bad_inputs_are_refused():
    model = small_models()["u4_linear"]
    with pytest.raises(ValueError, match="shape"):
        emulate(model, np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="outside"):
        emulate(model, np.full((2, 6), 16, dtype=np.int64))
    with pytest.raises(ValueError, match="raw integers"):
        emulate(model, np.zeros((2, 6)))
    bad = FirmwareModel("bad", model.input_fmt, 6, [model.layers[0], Activation(
        "act", "relu", 5, FixedFormat.parse("fixed<9,3>"), FixedFormat.parse("fixed<4,1>"))])
    with pytest.raises(ValueError, match="layer 'act': input_fmt"):
        emulate(bad, np.zeros((1, 6), dtype=np.int64))
    bad = FirmwareModel("bad", model.input_fmt, 6, [model.layers[0], Activation(
        "act", "tanh", 5, model.layers[0].output_fmt, model.layers[0].output_fmt)])
    with pytest.raises(ValueError, match="tanh"):
        emulate(bad, np.zeros((1, 6), dtype=np.int64))
