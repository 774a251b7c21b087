"""The firmware emulator (trigger.ir.emulate) against hls4ml's own C++ kernels, compiled with g++.

nnet_dense_latency.h, nnet_activation.h (relu, linear, leaky_relu) and nnet_batchnorm.h
(normalize) with hls4ml's ap_types are the specification; a harness rendered from
tests/conformance/nnet_model_harness.cpp.j2 runs hand-built models through them (all models
in one program, compiled once) and the emulator must give equal integers on every vector.
"""

import subprocess
import time

import jinja2
import numpy as np
import pytest

from tests.firmware_cases import case_inputs, mlp, requant_chain, small_models
from tests.helpers import CONFORMANCE, CPP_VECTORS, assert_same
from trigger.errors import FirmwareModelError
from trigger.ir import FirmwareModel, TensorType, emulate
from trigger.ir.ops.activation import Relu
from trigger.ir.ops.dense import Dense
from trigger.ir.ops.leaky_relu import LeakyRelu
from trigger.ir.ops.scale import Scale
from trigger.fixed import FixedFormat
from trigger.toolchain import ap_types_include, find_tool

NNET_UTILS = ap_types_include().parent / "nnet_utils"
CASES = {**small_models(), "mlp_16_64_32_32_5": mlp(), "chain_sat": requant_chain("SAT"),
         "chain_wrap": requant_chain("WRAP"), "chain_sat_sym": requant_chain("SAT_SYM"),
         "chain_sat_zero": requant_chain("SAT_ZERO")}
NAMES = sorted(CASES)


def harness_model(model: FirmwareModel) -> dict:
    """What the harness template needs to know about one model's ops."""
    layers = []
    for op in model.ops:
        entry = dict(out_cpp=op.output.format.cpp, n_in=op.input.n, n_out=op.output.n)
        if isinstance(op, Dense):
            # hls4ml stores weights[ii * n_out + jj]: row-major (n_in, n_out).
            entry.update(kind="dense", weight_cpp=op.weight_fmt.cpp, bias_cpp=op.bias_fmt.cpp,
                         accum_cpp=op.accum_fmt.cpp, weight=[int(v) for v in op.weight.ravel()],
                         bias=[int(v) for v in op.bias], weight_width=op.weight_fmt.width,
                         bias_width=op.bias_fmt.width)
        elif isinstance(op, Scale):
            entry.update(kind="scale", scale_cpp=op.scale_fmt.cpp, bias_cpp=op.bias_fmt.cpp,
                         weight=[int(v) for v in op.scale], bias=[int(v) for v in op.bias],
                         weight_width=op.scale_fmt.width, bias_width=op.bias_fmt.width)
        elif isinstance(op, LeakyRelu):
            entry.update(kind="leaky_relu", alpha_cpp=op.alpha_fmt.cpp, alpha=int(op.alpha),
                         alpha_width=op.alpha_fmt.width)
        else:
            assert op.kind in ("relu", "linear"), op.kind
            entry.update(kind=op.kind)
        layers.append(entry)
    return dict(name=model.name, layers=layers, input_cpp=model.input.format.cpp, input_width=model.input.format.width,
                n_in=model.input.n, n_out=model.output.n, output_width=model.output.format.width)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """Every case compiled into one program with hls4ml's kernels (one g++ run)."""
    gxx = find_tool("g++")
    if gxx is None:
        pytest.fail("g++ not found: run `make setup`")
    work = tmp_path_factory.mktemp("nnet_harness")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(CONFORMANCE), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    text = env.get_template("nnet_model_harness.cpp.j2").render(models=[harness_model(CASES[n]) for n in NAMES])
    (work / "harness.cpp").write_text(text)
    run = subprocess.run([gxx, "-O1", "-std=c++14", "-w", "-I", str(ap_types_include()), "-I", str(NNET_UTILS),
                          "harness.cpp", "-o", "harness"], cwd=work, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    return work


def cpp_reference(harness, name: str, raw: np.ndarray) -> np.ndarray:
    """Raw outputs of hls4ml's C++ kernels for CASES[name] on raw inputs."""
    model = CASES[name]
    (harness / f"{name}.in").write_bytes(np.ascontiguousarray(raw, dtype=np.int64).tobytes())
    subprocess.run([str(harness / "harness"), str(NAMES.index(name)), f"{name}.in", f"{name}.out"], cwd=harness,
                   check=True, capture_output=True)
    bits = np.frombuffer((harness / f"{name}.out").read_bytes(), dtype=np.uint64).astype(np.int64)
    return model.output.from_bits(bits.reshape(raw.shape[0], model.output.n))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_emulator_equals_hls4ml_cpp(name, harness):
    model = CASES[name]
    raw = case_inputs(model, CPP_VECTORS)
    expected = cpp_reference(harness, name, raw)
    result = emulate(model, raw)
    assert result.outputs.shape == (len(raw), model.output.n)
    assert_same(model, raw, expected, result.outputs, ("hls4ml_cpp", "emulator"))
    print(f"{name}: {len(raw)} vectors, 0 mismatches against hls4ml's nnet_utils C++")


def test_cases_exercise_overflow_and_rounding():
    """The cases above are only a strong check if the interesting paths are really taken."""
    models = small_models()
    wrap = emulate(models["wrapping_accum"], case_inputs(models["wrapping_accum"], 500))
    assert wrap.overflows["d0"]["accum"].overflows > 0  # the sequential, wrapping path
    assert models["wrapping_accum"].ops[0].plan()["sum_can_overflow"]
    plan = models["s16_rounded_products"].ops[0].plan()
    assert plan["shift"] < 0  # products are rounded into the accumulator
    sat = emulate(models["s6_scale"], case_inputs(models["s6_scale"], 500))
    assert sat.overflows["d0"]["output"].overflows > 0
    leaky = emulate(models["leaky"], case_inputs(models["leaky"], 500), trace=True)
    assert (leaky.trace[0] < 0).any() and (leaky.trace[0] > 0).any()  # both branches of the leaky ReLU
    assert leaky.overflows["leaky"]["output"].overflows > 0
    sz = models["leaky_sat_zero"]
    res = emulate(sz, case_inputs(sz, 500), trace=True)
    before = sz.ops[1].input.format.to_float(res.trace[0])  # both ends overflow (and become 0)
    out = sz.ops[1].output.format
    assert (before > out.max_value).any() and (0.3 * before < out.min_value).any()
    assert res.overflows["leaky"]["output"].overflows > 0
    for overflow in ("SAT", "WRAP", "SAT_SYM", "SAT_ZERO"):
        chain = requant_chain(overflow)
        res = emulate(chain, case_inputs(chain, 2000))
        for op in chain.ops:
            assert res.overflows[op.name]["output"].overflows > 0, (overflow, op.name)


@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_sequential_reference_agrees_with_fast_path():
    """The matrix-product path (proved overflow-free) equals hls4ml's loop written out literally."""
    model = small_models()["s6_scale"]
    op = model.ops[0]
    raw = case_inputs(model, 200)
    assert not op.plan()["sum_can_overflow"] and not op.plan()["product_can_overflow"]
    acc_fmt = op.accum_fmt
    prod_fmt = op.input.format.product_format(op.weight_fmt)
    expected = np.zeros((len(raw), op.n_out), dtype=np.int64)
    for j in range(op.n_out):  # the loop over vectors is numpy's: each column is one vector's accumulator
        acc = np.full(len(raw), acc_fmt.cast(op.bias[j], op.bias_fmt), dtype=np.int64)
        for i in range(op.n_in):
            p = acc_fmt.cast(raw[:, i] * op.weight[i, j], prod_fmt)
            acc = acc_fmt.cast(acc + p, acc_fmt.sum_format(acc_fmt))
        expected[:, j] = op.output.format.cast(acc, acc_fmt)
    got = emulate(model, raw, trace=True).trace[0]
    assert np.array_equal(got, expected)


def test_trace_and_overflow_counts():
    model = small_models()["s6_scale"]
    raw = case_inputs(model, 300)
    res = emulate(model, raw, trace=True)
    assert res.op_names == [op.name for op in model.ops]
    assert [t.shape for t in res.trace] == [(len(raw), op.output.n) for op in model.ops]
    assert np.array_equal(res.trace[-1], res.outputs)
    for t, op in zip(res.trace, model.ops):
        assert np.all(op.output.contains(t))
    # The relu output count equals an independent count of saturations of max(x, 0).
    relu_in = res.trace[0]
    r = model.ops[1]
    values = r.input.format.to_float(np.maximum(relu_in, 0))
    assert res.overflows["r0"]["output"].overflows == int(np.count_nonzero(values > r.output.format.max_value))
    assert res.overflows["r0"]["output"].values == relu_in.size
    d0 = res.overflows["d0"]
    assert d0["product"].values == len(raw) * model.ops[0].n_in * model.ops[0].n_out
    assert res.overflow_summary()["d1"]["output"]["values"] == len(raw) * 3
    assert emulate(model, raw[:0]).outputs.shape == (0, 3)


@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_emulator_is_fast():
    """100,000 vectors through a 16-64-32-32-5 network in seconds, not minutes."""
    model = mlp()
    fmt = model.input.format
    raw = np.random.default_rng(3).integers(fmt.min_raw, fmt.max_raw + 1, (100_000, 16))
    t0 = time.perf_counter()
    res = emulate(model, raw, trace=True)
    seconds = time.perf_counter() - t0
    print(f"emulate: 100000 vectors through 16-64-32-32-5 in {seconds:.2f} s")
    assert res.outputs.shape == (100_000, 5)
    assert seconds < 30


def test_bad_inputs_are_refused():
    model = small_models()["u4_linear"]
    with pytest.raises(FirmwareModelError, match=r"inputs must have shape \(n_vectors, 6\), got \(3, 5\)"):
        emulate(model, np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(FirmwareModelError, match=r"raw input 16 \(vector 0, element 0\) is outside"):
        emulate(model, np.full((2, 6), 16, dtype=np.int64))
    with pytest.raises(FirmwareModelError, match="raw integers"):
        emulate(model, np.zeros((2, 6)))
    d = model.ops[0]
    bad = FirmwareModel("bad", model.input, [d, Relu("act", TensorType.uniform(FixedFormat.parse("fixed<9,3>"), 5),
                                                     TensorType.uniform(FixedFormat.parse("fixed<4,1>"), 5))])
    with pytest.raises(FirmwareModelError, match="op 'act' \\(relu\\): input element 0 is ap_fixed<9,3"):
        emulate(bad, np.zeros((1, 6), dtype=np.int64))
    data = model.to_dict()
    data["ops"][1]["op"] = "tanh"  # an op kind that does not exist (test_ir checks the message in full)
    with pytest.raises(FirmwareModelError, match="tanh"):
        FirmwareModel.from_dict(data)
