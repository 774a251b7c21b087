"""The leaky_relu op (the worked example of docs/adding_an_op.md), end to end and against brute force.

A float Keras model Dense -> LeakyReLU(alpha=0.3) -> Dense is built into a bundle with
post-training quantization and verified three ways (emulator == hls4ml C simulation == RTL under
Icarus, integer for integer); and the op's emulator is compared with exact rational arithmetic on
every input of small formats. Self-contained: adding an op is this file, the op file and the
frontend mapping.
"""

from __future__ import annotations

import json
from fractions import Fraction
from math import floor

import numpy as np
import pytest

from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType, emulate
from trigger.ir.ops.leaky_relu import LeakyRelu

from tests.helpers import checked_counts

ALPHA = 0.3


@pytest.fixture(scope="module")
def leaky_model(tmp_path_factory):
    """A float Dense(6->8) -> LeakyReLU(0.3) -> Dense(8->3) model saved as JSON + weights."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(21)
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(6,), name="x"),
        tf.keras.layers.Dense(8, name="d1"),
        tf.keras.layers.LeakyReLU(alpha=ALPHA, name="leaky"),
        tf.keras.layers.Dense(3, name="out"),
    ])
    rng = np.random.default_rng(21)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.6, w.shape) for w in layer.weights])
    folder = tmp_path_factory.mktemp("leaky_model")
    (folder / "leaky.json").write_text(model.to_json())
    model.save_weights(folder / "leaky_weights.h5")
    return folder / "leaky.json"


@pytest.mark.slow
def test_leaky_relu_bundle_is_bit_exact(leaky_model, tmp_path):
    from trigger.bundle import build_bundle
    from trigger.frontends import BuildOptions
    from trigger.verify import verify_bundle

    out = build_bundle(leaky_model, tmp_path / "bundle", BuildOptions(precision="fixed<12,4>", vectors=3000),
                       progress=False)
    stored = json.loads((out / "firmware_model.json").read_text())
    assert [op["op"] for op in stored["ops"]] == ["dense", "leaky_relu", "dense"]
    model = FirmwareModel.load(out)
    leaky = model.ops[1]
    assert isinstance(leaky, LeakyRelu) and leaky.name == "leaky"
    assert leaky.alpha == int(leaky.alpha_fmt.quantize([ALPHA])[0]) and leaky.alpha > 0
    assert leaky.output.format == FixedFormat.parse("fixed<12,4>")  # the post-training result type
    manifest = json.loads((out / "manifest.json").read_text())
    alpha = float(leaky.alpha_fmt.to_float([leaky.alpha])[0])  # alpha as hls4ml's param_t holds it
    assert abs(alpha - ALPHA) <= leaky.alpha_fmt.lsb
    assert any(op["kind"] == "leaky_relu" and f"alpha {alpha:g}" in op["description"] for op in manifest["ops"])

    result = verify_bundle(out, simulator="icarus", progress=False)
    assert checked_counts(result) == {"emulator_vs_csim": 0, "emulator_vs_rtl": 0, "csim_vs_rtl": 0,
                                    "emulator_vs_stored": 0, "latency_vs_manifest": 0, "library_vs_emulator": 0}, \
        result["first_mismatch"]
    assert result["pass"] and result["vectors"] == 3000 and result["simulator"] == "icarus"
    assert result["latency_cycles"] == manifest["latency_cycles"] and result["ii"] == 1
    # the vectors exercise both branches of the op
    inputs = np.load(out / "vectors" / "inputs.npy")
    before = emulate(model, inputs, trace=True).trace[0]
    assert (before > 0).mean() > 0.1 and (before < 0).mean() > 0.1


def _rounded(value: Fraction, fmt: FixedFormat) -> int:
    """An exact rational in fmt's LSBs, rounded as fmt says (RND, RND_CONV or TRN), before overflow handling."""
    scaled = value * 2 ** fmt.fractional
    low = floor(scaled)
    rest = scaled - low
    if fmt.rounding == "TRN":
        return low
    if fmt.rounding == "RND":
        return low + (rest >= Fraction(1, 2))
    if fmt.rounding == "RND_CONV":
        return low + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and low % 2 == 1))
    raise AssertionError(fmt.rounding)


def _exact_cast(value: Fraction, fmt: FixedFormat) -> int:
    """The raw integer ap_fixed holds after assigning an exact rational (SAT or WRAP overflow)."""
    raw = _rounded(value, fmt)
    if fmt.overflow == "SAT":
        return min(max(raw, fmt.min_raw), fmt.max_raw)
    assert fmt.overflow == "WRAP"
    raw %= 1 << fmt.width
    return raw - (1 << fmt.width) if fmt.signed and raw > fmt.max_raw else raw


@pytest.mark.parametrize("in_text, out_text, alpha_text", [
    ("fixed<8,3>", "fixed<6,2,RND,SAT>", "fixed<16,6>"),
    ("fixed<9,4>", "fixed<7,3,TRN,WRAP>", "fixed<8,2>"),
    ("fixed<7,2>", "ufixed<6,3,RND_CONV,SAT>", "fixed<10,1>"),
    ("fixed<10,6>", "fixed<12,4,RND_CONV,SAT>", "ufixed<6,0>"),
])
def test_leaky_relu_emulator_equals_brute_force(in_text, out_text, alpha_text):
    """Every raw input of the input format: x > 0 ? x : alpha * x, cast to the output format."""
    src, dst, alpha_fmt = (FixedFormat.parse(t) for t in (in_text, out_text, alpha_text))
    alpha = int(alpha_fmt.quantize([ALPHA])[0])
    op = LeakyRelu("leaky", TensorType.uniform(src, 1), TensorType.uniform(dst, 1), alpha, alpha_fmt)
    model = FirmwareModel("leaky_only", op.input, [op])
    raw = np.arange(src.min_raw, src.max_raw + 1, dtype=np.int64).reshape(-1, 1)
    result = emulate(model, raw)
    a = Fraction(alpha, 2 ** alpha_fmt.fractional)
    expected = []
    for r in raw[:, 0].tolist():
        x = Fraction(r, 2 ** src.fractional)
        expected.append(_exact_cast(x if x > 0 else a * x, dst))
    got = result.outputs[:, 0].tolist()
    bad = [i for i, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert not bad, f"{len(bad)}/{len(got)} inputs differ; first raw {raw[bad[0], 0]}: " \
                    f"brute force {expected[bad[0]]}, emulator {got[bad[0]]}"
    # the range analysis bounds every output, and the overflow count is exact
    (iv,), = model.ranges()
    assert iv.lo <= min(got) and max(got) <= iv.hi
    exact = [x if x > 0 else a * x for x in (Fraction(r, 2 ** src.fractional) for r in raw[:, 0].tolist())]
    n_over = sum(not dst.min_raw <= _rounded(v, dst) <= dst.max_raw for v in exact)
    assert result.overflows["leaky"]["output"].values == len(raw)
    assert result.overflows["leaky"]["output"].overflows == n_over
