"""Convolutions, pooling, flatten/reshape/dropout and batch norm after a convolution (issue 10, part A).

Two small Keras branches, one per op family (1D and 2D), each with per-layer formats chosen so that
outputs round (RND, RND_CONV, TRN) and overflow (SAT, WRAP), 'same' padding at the edges (odd and
even windows), strides, pointwise (1-wide) kernels, max pooling over a signed and over an unsigned
tensor (hls4ml pads the unsigned one with 2**(W-1) raw, which can win) and average pooling whose
divisor shrinks at the edges. Both branches sit in one two-input model, converted by hls4ml once,
built into a bundle and verified three ways on 200 vectors: emulator == hls4ml's C simulation == RTL
(Icarus).
The emulator is also compared with exact arithmetic where no rounding happens, and the size limit
of a fully unrolled convolution is checked before hls4ml runs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import CLEAN, SEED, checked_counts
from trigger.errors import FirmwareModelError, ModelError
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType, emulate
from trigger.ir.ops.average_pool import AveragePool
from trigger.ir.ops.conv1d import MAX_MULTIPLIERS
from trigger.ir.ops.conv2d import Conv2D
from trigger.ir.ops.max_pool import MaxPool

VECTORS = 200  # Icarus runs the 2D model at ~16 vectors/s; these still saturate and wrap thousands of times
F = FixedFormat.parse


def _branch_1d(tf):
    L = tf.keras.layers
    x = tf.keras.Input(shape=(9, 3), name="x1")
    y = x
    for layer in (L.Conv1D(4, 3, strides=2, padding="same", name="c_same_s2"),  # 9 -> 5, pad 1/1
                  L.Activation("relu", name="r1_1d"),
                  L.Conv1D(3, 1, name="c_point_1d"),  # hls4ml's PointwiseConv1D
                  L.MaxPooling1D(2, padding="same", name="max_same_1d"),  # 5 -> 3, pad 0/1, signed input
                  L.Conv1D(2, 2, padding="valid", name="c_valid_1d"),  # 3 -> 2
                  L.Dropout(0.3, name="drop"),
                  L.AveragePooling1D(2, strides=1, padding="same", name="avg_same_1d"),  # 2 -> 2, last window 1 cell
                  L.Flatten(name="flat"),
                  L.Dense(3, name="out_1d")):
        y = layer(y)
    precisions = {"x1": "fixed<8,3,RND,SAT>", "c_same_s2": "fixed<9,3,RND,SAT>", "r1_1d": "ufixed<8,3,RND_CONV,SAT>",
                  "c_point_1d": "fixed<8,2,TRN,WRAP>", "max_same_1d": "fixed<7,2,RND_CONV,SAT>",
                  "c_valid_1d": "fixed<12,4,RND_CONV,SAT>", "avg_same_1d": "fixed<8,2,RND,WRAP>",
                  "flat": "fixed<8,2,RND,WRAP>", "out_1d": "fixed<14,6,RND_CONV,SAT>"}
    return x, y, precisions


def _branch_2d(tf):
    L = tf.keras.layers
    x = tf.keras.Input(shape=(6, 5, 2), name="x2")
    y = x
    for layer in (L.Conv2D(3, (3, 2), strides=(2, 1), padding="same", name="c_same"),  # 6x5 -> 3x5, pad 0/1 x 0/1
                  L.BatchNormalization(name="bn"),  # one scale per channel (not folded: the conv's type is set)
                  L.Activation("relu", name="r1_2d"),
                  L.MaxPooling2D((2, 2), padding="same", name="max_same_2d"),  # 3x5 -> 2x3, unsigned input
                  L.AveragePooling2D((2, 2), strides=1, padding="same", name="avg_same_2d"),  # 2x3 -> 2x3
                  L.Conv2D(2, (1, 1), name="c_point_2d"),  # hls4ml's PointwiseConv2D
                  L.Conv2D(2, (2, 2), strides=(1, 2), name="c_valid_2d"),  # 2x3 -> 1x1
                  L.Reshape((2,), name="reshape"),
                  L.Dense(3, name="out_2d")):
        y = layer(y)
    precisions = {"x2": "fixed<8,3,TRN,SAT>", "c_same": "fixed<10,4,RND,SAT>", "bn": "fixed<9,2,RND_CONV,SAT>",
                  "r1_2d": "ufixed<6,2,RND,SAT>", "max_same_2d": "ufixed<6,2,RND,SAT>",
                  "avg_same_2d": "fixed<7,2,TRN,SAT>", "c_point_2d": "fixed<10,4,RND_CONV,WRAP>",
                  "c_valid_2d": "fixed<12,5,RND,SAT>", "reshape": "fixed<12,5,RND,SAT>",
                  "out_2d": "fixed<14,6,RND_CONV,SAT>"}
    return x, y, precisions


# Each family's ops in order (hls4ml adds a linear activation after each float layer; a 1-wide Conv1D may map to
# item_dense, the same sums), by the names of its layers
KINDS = {"1d": ["conv1d", "relu", "conv1d", "max_pool", "conv1d", "average_pool", "dense"],
         "2d": ["conv2d", "scale", "relu", "max_pool", "average_pool", "conv2d", "conv2d", "dense"]}


@pytest.fixture(scope="module")
def spatial_bundle(tmp_path_factory):
    """Both family branches in one two-input model (x1: the 1D family, x2: the 2D family), saved, built (hls4ml
    project, RTL, VECTORS vectors) and verified with Icarus once."""
    import tensorflow as tf

    from trigger.bundle import build_bundle
    from trigger.frontends import BuildOptions
    from trigger.frontends import network
    from trigger.verify import verify_bundle

    tf.keras.utils.set_random_seed(SEED)
    (x1, y1, p1), (x2, y2, p2) = _branch_1d(tf), _branch_2d(tf)
    model = tf.keras.Model([x1, x2], [y1, y2], name="spatial")
    precisions = {**p1, **p2}
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.3, 2.0, w.shape) if "variance" in w.name else rng.normal(0, 0.7, w.shape)
                               for w in layer.weights])
    folder = tmp_path_factory.mktemp("spatial")
    (folder / "spatial.json").write_text(model.to_json())
    model.save_weights(folder / "spatial_weights.h5")
    original = network._hls_config

    def per_layer(loaded, opts):  # every layer's output type as the test says
        cfg = original(loaded, opts)
        for lname, text in precisions.items():
            for target in (lname, f"{lname}_linear"):  # the activation hls4ml splits off keeps the type
                if target == lname or target in cfg["LayerName"]:
                    cfg["LayerName"].setdefault(target, {}).setdefault("Precision", {})["result"] = text
        return cfg

    network._hls_config = per_layer
    try:
        bundle = build_bundle(folder / "spatial.json", folder / "bundle", BuildOptions(vectors=VECTORS),
                              progress=False)
    finally:
        network._hls_config = original
    return bundle, verify_bundle(bundle, simulator="icarus", progress=False), (set(p1), set(p2))


@pytest.mark.slow
def test_spatial_family_is_bit_exact_three_ways(spatial_bundle):
    bundle, result, (names_1d, names_2d) = spatial_bundle
    stored = json.loads((bundle / "firmware_model.json").read_text())
    for family, names in (("1d", names_1d), ("2d", names_2d)):
        kinds = [op["op"] for op in stored["ops"] if op["op"] != "linear" and op["name"] in names]
        assert [k if k != "item_dense" else "conv1d" for k in kinds] == KINDS[family], family
    assert result["vectors"] == VECTORS and result["simulator"] == "icarus"
    assert {k: checked_counts(result)[k] for k in CLEAN} == CLEAN, result["first_mismatch"]
    assert result["pass"] is True
    model = FirmwareModel.load(bundle)
    trace = emulate(model, np.load(bundle / "vectors" / "inputs.npy"), trace=True)
    over = trace.overflows
    # the formats make outputs overflow (saturate and wrap) on the stored vectors: those paths are verified too
    assert over["c_same_s2"]["output"].overflows > 0  # SAT
    assert over["c_point_1d"]["output"].overflows > 0  # WRAP
    assert over["c_same"]["output"].overflows > 0  # SAT
    assert over["bn"]["output"].overflows > 0  # SAT after the per-channel scale
    pool = next(op for op in model.ops if isinstance(op, MaxPool) and op.name == "max_same_2d")
    assert pool.pad_raw == 1 << (pool.input.format.width - 1)  # an unsigned type pads with its top bit
    k = [op.name for op in model.ops].index(pool.name)
    assert (trace.trace[k] == pool.pad_raw).any()  # ... and the pad value wins somewhere: verified as hls4ml
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert any(note.startswith("max_same_2d: hls4ml pads this max pooling with 2 ") for note in manifest["notes"])


@pytest.mark.slow
def test_batchnorm_after_conv_scales_per_channel(spatial_bundle):
    bundle, _, _ = spatial_bundle
    model = FirmwareModel.load(bundle)
    bn = next(op for op in model.ops if op.kind == "scale")
    assert bn.input.n == 3 * 5 * 3 and np.array_equal(bn.scale, np.tile(bn.scale[:3], 15))
    assert np.array_equal(bn.bias, np.tile(bn.bias[:3], 15))


def _exact_conv(x, w, b, geo):
    """Plain float convolution on the padded image (the textbook definition)."""
    n = x.shape[0]
    img = x.reshape(n, *geo.spatial, geo.channels)
    (pt, pl), (pb, pr) = geo.pad_before, geo.pad_after
    img = np.pad(img, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    kh, kw = geo.kernel
    sh, sw = geo.stride
    oh, ow = geo.out_spatial
    kernel = w.reshape(kh, kw, geo.channels, -1)
    out = np.zeros((n, oh, ow, kernel.shape[-1]))
    for i in range(oh):
        for j in range(ow):
            patch = img[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwcf->nf", patch, kernel) + b
    return out.reshape(n, -1)


@pytest.mark.parametrize("pad, stride", [([0, 0, 0, 0], [1, 1]), ([1, 0, 2, 1], [2, 1]), ([1, 1, 1, 1], [2, 3])])
def test_conv2d_emulator_equals_exact_sum(pad, stride):
    """Formats wide enough that nothing rounds or overflows: the emulator is the exact convolution."""
    rng = np.random.default_rng(3)
    fi, wf, bf = F("fixed<8,3>"), F("fixed<6,1>"), F("fixed<7,2>")
    in_shape, kernel = [6, 7, 2], [3, 2]
    w = rng.integers(wf.min_raw, wf.max_raw + 1, (3 * 2 * 2, 3))
    b = rng.integers(bf.min_raw, bf.max_raw + 1, 3)
    probe = Conv2D("c", TensorType.uniform(fi, 84), TensorType.uniform(F("fixed<30,12>"), 3), in_shape, kernel, stride,
                   pad, w, b, wf, bf, F("fixed<30,12>"))
    geo = probe.geometry
    out = TensorType.uniform(F("fixed<30,12>"), geo.n_positions * 3)
    op = Conv2D("c", probe.input, out, in_shape, kernel, stride, pad, w, b, wf, bf, F("fixed<30,12>"))
    model = FirmwareModel("conv", op.input, [op])
    x = rng.integers(fi.min_raw, fi.max_raw + 1, (300, 84))
    got = out.format.to_float(emulate(model, x).outputs)
    expected = _exact_conv(fi.to_float(x), wf.to_float(w), bf.to_float(b), geo)
    assert np.array_equal(got, expected)
    assert op.output_ranges([])[0].lo <= emulate(model, x).outputs.min()


def test_average_pool_divides_toward_zero():
    """ap_fixed's y /= length on a negative sum truncates toward zero (C integer division on the raw value)."""
    fmt = F("fixed<8,4>")
    acc = F("fixed<10,6>")  # the input's LSB: the quotient is in the input's units
    op = AveragePool("a", TensorType.uniform(fmt, 3), TensorType.uniform(acc, 2), [3, 1], [2], [2], [0, 1], acc)
    model = FirmwareModel("avg", op.input, [op])
    x = np.array([[-3, -2, -7], [3, 2, 7], [-1, 0, 5]])
    # windows: (x0, x1) / 2 and (x2, pad) / 1
    assert emulate(model, x).outputs.tolist() == [[-2, -7], [2, 7], [0, 5]]


def test_geometry_matches_keras_shapes():
    """'same' padding and strides give Keras' output sizes (the frontend also checks hls4ml's)."""
    from trigger.ir.windows import Geometry

    for size, k, s in [(9, 3, 2), (10, 4, 1), (25, 3, 3), (9, 5, 2), (5, 2, 2), (7, 1, 3)]:
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        geo = Geometry.of("t", [size, 1], [k], [s], [total // 2, total - total // 2])
        assert geo.out_spatial == (out,)
        assert Geometry.of("t", [size, 1], [k], [s], [0, 0]).out_spatial == ((size - k) // s + 1,)


def test_oversized_convolution_is_refused_before_hls4ml(tmp_path):
    import tensorflow as tf

    from trigger.frontends.keras import load_model
    from trigger.frontends.network import refuse_oversized

    model = tf.keras.Sequential([tf.keras.Input(shape=(40, 40, 3)), tf.keras.layers.Conv2D(8, 3, name="big"),
                                 tf.keras.layers.Flatten(), tf.keras.layers.Dense(2)])
    (tmp_path / "big.json").write_text(model.to_json())
    model.save_weights(tmp_path / "big_weights.h5")
    loaded = load_model(tmp_path / "big.json")
    with pytest.raises(ModelError, match=rf"layer big \(Conv2D .*\): fully unrolled it needs \d+ constant "
                                         rf"multiplications \(1444 output positions x 216 non-zero weights\), over the "
                                         rf"limit of {MAX_MULTIPLIERS} per layer; stream it instead"):
        refuse_oversized(loaded)
    op = Conv2D("big", TensorType.uniform(F("fixed<8,3>"), 40 * 40 * 3), TensorType.uniform(F("fixed<8,3>"), 1444 * 8),
                [40, 40, 3], [3, 3], [1, 1], [0, 0, 0, 0], np.ones((27, 8), dtype=np.int64), np.zeros(8, np.int64),
                F("fixed<4,1>"), F("fixed<4,1>"), F("fixed<20,8>"))
    with pytest.raises(FirmwareModelError, match="over the limit"):
        op.validate()


CONV1D_VECTORS = 200  # Icarus runs this network at about 35 vectors per second (its largest cost: 600 vectors took
# 10 CPU-s of vvp); every vector covers every position of each convolution, as for the family models


@pytest.mark.slow  # an hls4ml C simulation and an Icarus run of a three-convolution network
def test_reference_conv1d_model_is_bit_exact(reference_models, tmp_path):
    """KERAS_conv1d_small (float Keras, post-training quantized): 'same' padding with an even kernel (pad 1/2)."""
    from tests.helpers import assert_certified, build_and_verify

    bundle = build_and_verify(reference_models / "KERAS_conv1d_small.json", tmp_path / "conv1d",
                              "--vectors", str(CONV1D_VECTORS), verify_args=("--sim", "icarus"))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, CONV1D_VECTORS)
    kinds = [op["op"] for op in json.loads((bundle.path / "firmware_model.json").read_text())["ops"]]
    assert kinds == ["conv1d", "relu"] * 3 + ["dense", "relu", "dense"]
