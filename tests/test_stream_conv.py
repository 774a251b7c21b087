"""Streamed convolutions (issue 23, part 2): hls4ml's io_stream line buffers for layers too large to unroll.

A small image (10 x 10) of the acceptance network's shape (scripts/bench_stream_conv.py builds the 28 x 28 one) is
built forced to io_stream and verified 3-way: emulator == hls4ml's C simulation (io_stream project) == the
line-buffer RTL under cocotb, frames sent one pixel per clock with in_first, too-early frames refused, latency and
II per frame measured; so is a model with two input channels, a non-square kernel and stride, a batch norm and
average pooling. Hand-built streamed models (1D and 2D, strides, non-square kernels, average pooling, a
per-channel scale) are simulated against the emulator without hls4ml, also with idle clocks inside frames. The mode choice and the unrolled refusal of
the 28 x 28 network are checked before hls4ml runs.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tests.helpers import REPO, checked_counts
from trigger.errors import ModelError
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType, emulate
from trigger.ir.ops.activation import Relu
from trigger.ir.ops.average_pool import AveragePool
from trigger.ir.ops.conv1d import Conv1D
from trigger.ir.ops.conv2d import Conv2D
from trigger.ir.ops.dense import Dense
from trigger.ir.ops.max_pool import MaxPool
from trigger.ir.ops.scale import Scale

sys.path.insert(0, str(REPO / "scripts"))
import bench_stream_conv as bench  # noqa: E402

F = FixedFormat.parse
VECTORS = 32  # frames: Icarus runs each pixel under cocotb, about 15 CPU s per 200 frames of 10 x 10
STREAM_CLEAN = {"emulator_vs_csim": 0, "emulator_vs_rtl": 0, "csim_vs_rtl": 0, "emulator_vs_stored": 0,
                "latency_vs_manifest": 0, "too_early_input_not_refused": 0, "inputs_refused_at_ii_spacing": 0,
                "source_vs_firmware": 0, "library_vs_emulator": 0}


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    from trigger.bundle import build_bundle
    from trigger.verify import verify_bundle

    work = tmp_path_factory.mktemp("stream10")
    folder = bench.write_model(work / "model", "io_stream", VECTORS, height=10, width=10)
    bundle = build_bundle(folder, work / "bundle", progress=False)
    return bundle, verify_bundle(bundle, simulator="icarus", progress=False)


@pytest.mark.slow
def test_streamed_cnn_is_bit_exact_three_ways(streamed):
    bundle, result = streamed
    assert result["vectors"] == VECTORS
    assert {k: checked_counts(result).get(k) for k in STREAM_CLEAN} == STREAM_CLEAN, result["first_mismatch"]
    assert result["spurious_outputs"] == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["conv_mode"]["mode"] == "stream" and manifest["hls"]["io_type"] == "io_stream"
    stream = manifest["rtl"]["stream"]
    assert stream["pixels_per_frame"] == 100 and stream["pixel_bits"] == 8 and stream["protocol"] == "frame"
    assert [s["ops"] for s in stream["stages"]] == [["conv1", "relu1"], ["pool1"], ["conv2", "relu2"], ["pool2"]]
    assert stream["tail_ops"] == ["logits"]
    # II and latency per frame measured by the testbench equal the manifest's
    assert result["ii"] == manifest["ii"] == 100
    assert result["latency_cycles"] == manifest["latency_cycles"] == 99 + stream["latency_after_last_pixel"]
    top = (bundle / "rtl" / f"{manifest['top']}.v").read_text()
    assert "input  wire in_first" in top and "frame protocol" in top


CHANNELS_VECTORS = 20  # frames, each driven pixel by pixel (the padded 9 x 8 image) under cocotb


def _channels_model(folder):
    """Two input channels, 'same' padding (hls4ml's io_stream pads in a layer of its own: streamed in front, with
    valid/ready), a 3x2 kernel at stride (2, 1), a float batch norm and a quantized relu in the convolution's
    stage, average pooling, then a dense tail."""
    import tensorflow as tf
    import yaml
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(2)
    L = tf.keras.layers
    q = lambda: quantized_bits(4, 0, alpha=1)  # noqa: E731
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(9, 8, 2), name="img"),
        QConv2D(6, (3, 2), strides=(2, 1), padding="same", kernel_quantizer=q(), bias_quantizer=q(), name="conv1"),
        L.BatchNormalization(name="bn"),
        QActivation(quantized_relu(5, 2), name="relu1"),
        L.AveragePooling2D(2, name="avg"),
        L.Flatten(name="flat"),
        QDense(4, kernel_quantizer=q(), bias_quantizer=q(), name="out"),
    ], name="channels")
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.5, 2, w.shape) if "variance" in w.name else rng.normal(0, 0.5, w.shape)
                               for w in layer.weights])
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(model.to_json())
    model.save_weights(folder / "model_weights.h5")
    config = {"kind": "network", "name": "channels", "model": {"file": "model.json", "weights": "model_weights.h5"},
              "hls": {"io_type": "io_stream", "input_precision": "fixed<8,3>"}, "verify": {"vectors": CHANNELS_VECTORS}}
    (folder / "trigger.yml").write_text(yaml.safe_dump(config))
    return folder


@pytest.mark.slow
def test_streamed_same_padding_channels_stride_batchnorm_average_pool(tmp_path):
    from trigger.bundle import build_bundle
    from trigger.verify import verify_bundle

    bundle = build_bundle(_channels_model(tmp_path / "model"), tmp_path / "bundle", progress=False)
    result = verify_bundle(bundle, simulator="icarus", progress=False)
    assert result["vectors"] == CHANNELS_VECTORS
    clean = {k: v for k, v in STREAM_CLEAN.items() if k != "source_vs_firmware"}  # a float batch norm: not exact
    assert {k: checked_counts(result).get(k) for k in clean} == clean, result["first_mismatch"]
    stream = json.loads((bundle / "manifest.json").read_text())["rtl"]["stream"]
    assert [s["ops"] for s in stream["stages"]] == [["conv1", "bn", "relu1"], ["avg"]]
    assert stream["ready"] and stream["padding"]["padded_pixels"] > 72
    assert stream["pixel_bits"] == 16 and result["ii"] == stream["padding"]["padded_pixels"] + 2
    assert result["stream"]["latency_after_last_pixel"] == stream["latency_after_last_pixel"]


def test_mode_is_chosen_from_the_size_and_unrolled_is_refused():
    from trigger.frontends import network
    from trigger.frontends.keras import LoadedModel

    def loaded(h):
        model = bench.make_model(height=h, width=h)
        return LoadedModel(bench.NAME, model, True, 1, 1, False)

    big, small = loaded(28), loaded(10)
    assert network.conv_mode(big, "auto")[0] == "io_stream"
    assert "conv1 (97344 products)" in network.conv_mode(big, "auto")[1]
    assert network.conv_mode(small, "auto")[0] == "io_parallel"
    assert network.conv_mode(small, "io_stream")[0] == "io_stream"
    with pytest.raises(ModelError) as err:
        network.convert(big, {"hls": {"io_type": "io_parallel"}})
    text = str(err.value)
    assert "\n" not in text and "layer conv1" in text and "97344 constant multiplications" in text
    assert "io_stream" in text


def _conv(name, cls, fi, fo, in_shape, kernel, stride, filters, rng, wf="fixed<4,1>", acc="fixed<20,8>"):
    wf, bf, af = F(wf), F("fixed<6,2>"), F(acc)
    n_win = int(np.prod(kernel)) * in_shape[-1]
    w = rng.integers(wf.min_raw, wf.max_raw + 1, (n_win, filters))
    b = rng.integers(bf.min_raw, bf.max_raw + 1, filters)
    n_in = int(np.prod(in_shape))
    probe = cls(name, TensorType.uniform(fi, n_in), TensorType.uniform(fo, filters), list(in_shape), list(kernel),
                list(stride), [0] * (2 * len(kernel)), w, b, wf, bf, af, stream=True)
    out = TensorType.uniform(fo, probe.geometry.n_positions * filters)
    return cls(name, probe.input, out, list(in_shape), list(kernel), list(stride), [0] * (2 * len(kernel)), w, b, wf,
               bf, af, stream=True)


def _hand_models():
    rng = np.random.default_rng(5)
    fi = F("fixed<6,2>")
    # 2D: 7x6x2, a 3x2 kernel at stride (2, 1) (the last row is dropped), a per-channel scale, relu, average pool
    c = _conv("c", Conv2D, fi, F("fixed<10,4,RND,SAT>"), [7, 6, 2], [3, 2], [2, 1], 3, rng)
    n = c.output.n
    sc = Scale("bn", c.output, TensorType.uniform(F("fixed<9,3,RND_CONV,SAT>"), n),
               np.tile(rng.integers(-8, 8, 3), n // 3), np.tile(rng.integers(-8, 8, 3), n // 3), F("fixed<5,2>"),
               F("fixed<5,2>"))
    r = Relu("r", sc.output, TensorType.uniform(F("ufixed<6,2,RND,SAT>"), n))
    oh, ow = c.geometry.out_spatial
    ap = AveragePool("avg", r.output, TensorType.uniform(F("ufixed<7,2,TRN,SAT>"), (oh // 2) * (ow // 2) * 3),
                     [oh, ow, 3], [2, 2], [2, 2], [0, 0, 0, 0], F("ufixed<10,4>"))
    d = Dense("d", ap.output, TensorType.uniform(F("fixed<16,8>"), 2), rng.integers(-4, 4, (ap.output.n, 2)),
              rng.integers(-4, 4, 2), F("fixed<4,1>"), F("fixed<4,1>"), F("fixed<16,8>"))
    two_d = FirmwareModel("hand2d", c.input, [c, sc, r, ap, d])
    # 1D: 11 x 2, kernel 3 at stride 2, then max pooling 2 (stride 1), no tail: the collected tensor is the output
    c1 = _conv("c1", Conv1D, fi, F("fixed<9,3,RND,WRAP>"), [11, 2], [3], [2], 2, rng, acc="fixed<9,3,TRN,WRAP>")
    m1 = MaxPool("m1", c1.output, TensorType.uniform(F("fixed<9,3,RND,WRAP>"), 4 * 2), [5, 2], [2], [1], [0, 0],
                 F("fixed<9,3,RND,WRAP>"))
    one_d = FirmwareModel("hand1d", c1.input, [c1, m1])
    return {"hand2d": two_d, "hand1d": one_d}


@pytest.mark.parametrize("name, tail_ii", [("hand2d", 1), ("hand1d", 1), ("hand2d", 3)])
@pytest.mark.slow
def test_stream_rtl_equals_emulator(tmp_path, name, tail_ii):
    """tail_ii > 1: the dense after the streamed layers shares its arithmetic over 3 clocks (it runs once a frame)."""
    from trigger.backends.rtl import write_rtl
    from trigger.ir.ii import resolve_ii
    from trigger.rtlsim import simulate
    from trigger.vectors import test_vectors

    model = _hand_models()[name]
    model.validate()
    ii, op_ii = resolve_ii(model, tail_ii)
    rtl = write_rtl(model, tmp_path / "rtl", top=f"{name}_top", ii=ii, op_ii=op_ii)
    assert rtl.stream is not None and rtl.ii == rtl.stream["pixels_per_frame"]
    assert rtl.op_ii["d" if name == "hand2d" else "m1"] == tail_ii and rtl.stream["tail_ii"] == tail_ii
    x = test_vectors(model, 60, 3)
    expected = emulate(model, x).outputs
    sim = simulate(rtl.sources, rtl.top, model.input.to_bits(x), model.input.widths, model.output.widths,
                   simulator="icarus", build_dir=tmp_path / "sim", max_latency=rtl.latency_cycles + 8, ii=rtl.ii,
                   stream=rtl.stream, protocol_vectors=8, cache_dir=None)
    got = model.output.from_bits(sim.outputs)
    bad = np.flatnonzero(np.any(got != expected, axis=1))
    assert bad.size == 0, f"{bad.size} mismatches, first {bad[:1]}: rtl {got[bad[0]]} emulator {expected[bad[0]]}"
    assert sim.latency_cycles == rtl.latency_cycles and sim.ii == rtl.ii
    assert sim.timing["spurious"] == 0 and sim.timing["too_early"]["refused_flags"] == 1


@pytest.mark.slow
def test_stream_rtl_takes_pixels_with_gaps(tmp_path):
    """in_valid low inside a frame (an idle clock after every 4 pixels): the counters wait, outputs are unchanged,
    and the result still comes a fixed number of clocks after the frame's last pixel."""
    from trigger.backends.rtl import write_rtl
    from trigger.rtlsim import simulate
    from trigger.vectors import test_vectors

    model = _hand_models()["hand2d"]
    model.validate()
    rtl = write_rtl(model, tmp_path / "rtl", top="gaps_top")
    pixels, gap = rtl.stream["pixels_per_frame"], 4
    clocks = pixels + (pixels - 1) // gap  # per frame, with the idle clocks
    x = test_vectors(model, 40, 4)
    sim = simulate(rtl.sources, rtl.top, model.input.to_bits(x), model.input.widths, model.output.widths,
                   simulator="icarus", build_dir=tmp_path / "sim", max_latency=clocks + 40, ii=clocks,
                   stream={**rtl.stream, "pixel_gap_every": gap}, protocol_vectors=6, cache_dir=None)
    got = model.output.from_bits(sim.outputs)
    assert np.array_equal(got, emulate(model, x).outputs)
    assert sim.latency_cycles == clocks - 1 + rtl.stream["latency_after_last_pixel"] and sim.ii == clocks


def test_streamed_op_is_not_unrolled():
    model = _hand_models()["hand1d"]
    conv = model.ops[0]
    assert conv.max_ii() == 1
    conv.stream = False
    conv.validate()  # small: unrolls too
    big = _conv("big", Conv2D, F("fixed<6,2>"), F("fixed<12,4>"), [40, 40, 1], [3, 3], [1, 1], 16,
                np.random.default_rng(1), wf="fixed<4,3>")
    big.weight[big.weight == 0] = 1
    big.validate()  # streamed: no size limit
    big.stream = False
    with pytest.raises(Exception, match="constant multiplications"):
        big.validate()


def test_a_streamed_convolution_behind_an_unstreamable_op_is_refused(tmp_path):
    from trigger.backends.rtl import write_rtl
    from trigger.errors import ConfigError

    rng = np.random.default_rng(7)
    fi = F("fixed<6,2>")
    conv = _conv("c", Conv2D, fi, F("fixed<10,4>"), [4, 4, 1], [3, 3], [1, 1], 2, rng)
    d0 = Dense("d0", TensorType.uniform(fi, 16), TensorType.uniform(fi, 16), rng.integers(-2, 2, (16, 16)),
               np.zeros(16, np.int64), F("fixed<4,1>"), F("fixed<4,1>"), F("fixed<6,2,RND,SAT>"))
    model = FirmwareModel("behind", d0.input, [d0, conv])
    model.validate()
    with pytest.raises(ConfigError, match=r"op 'd0' \(dense\) stands between the input and the streamed convolution "
                                          r"'c'") as err:
        write_rtl(model, tmp_path, top="behind_top")
    assert "\n" not in str(err.value)


def test_a_reshape_between_streamed_layers_is_refused(tmp_path):
    from trigger.backends.rtl import write_rtl
    from trigger.errors import FirmwareModelError

    rng = np.random.default_rng(8)
    fi = F("fixed<6,2>")
    c = _conv("c", Conv2D, fi, fi, [5, 5, 1], [2, 2], [1, 1], 2, rng)  # 4x4x2: 16 pixels of 2 channels
    c2 = _conv("c2", Conv1D, fi, F("fixed<10,4>"), [8, 4], [3], [1], 1, rng)  # read as 8 pixels of 4 channels
    model = FirmwareModel("regroup", c.input, [c, c2])
    model.validate()
    with pytest.raises(FirmwareModelError, match=r"op 'c2' \(conv1d\): its input 8x4 regroups the pixels streamed by "
                                                 r"'c' \(4x4x2\)"):
        write_rtl(model, tmp_path, top="regroup_top")


def _padded_model(top=1, bottom=2, left=0, right=1):
    """A zero padding of a 5x6x2 image (as hls4ml's io_stream puts in front of a 'same' convolution), a 3x3
    convolution at stride (1, 2), a relu and a dense tail."""
    from trigger.ir.ops.gather import Gather

    rng = np.random.default_rng(9)
    fi = F("fixed<6,2>")
    h, w, c = 5, 6, 2
    hp, wp = h + top + bottom, w + left + right
    index = np.full((hp, wp, c), -1, dtype=np.int64)
    index[top:top + h, left:left + w, :] = np.arange(h * w * c).reshape(h, w, c)
    g = Gather("zp", TensorType.uniform(fi, h * w * c), TensorType.uniform(fi, hp * wp * c), index.reshape(-1),
               "zero padding")
    conv = _conv("c", Conv2D, fi, F("fixed<10,4,RND,SAT>"), [hp, wp, c], [3, 3], [1, 2], 3, rng)
    r = Relu("r", conv.output, TensorType.uniform(F("ufixed<6,2,RND,SAT>"), conv.output.n))
    d = Dense("d", r.output, TensorType.uniform(F("fixed<16,8>"), 2), rng.integers(-4, 4, (r.output.n, 2)),
              rng.integers(-4, 4, 2), F("fixed<4,1>"), F("fixed<4,1>"), F("fixed<16,8>"))
    return FirmwareModel("padded", g.input, [g, conv, r, d])


@pytest.mark.parametrize("pads, gap", [((1, 2, 0, 1), 0), ((1, 1, 1, 1), 0), ((2, 0, 2, 1), 3)])
@pytest.mark.slow
def test_stream_rtl_pads_in_front_with_valid_ready(tmp_path, pads, gap):
    """The padding stage takes pixels with valid/ready (in_ready low while it emits the padding); the frame II is
    the padded frame plus 2 clocks; outputs equal the emulator's (gap: in_valid also drops inside frames)."""
    from trigger.backends.rtl import write_rtl
    from trigger.rtlsim import simulate
    from trigger.vectors import test_vectors

    model = _padded_model(*pads)
    model.validate()
    rtl = write_rtl(model, tmp_path / "rtl", top="padded_top")
    pad = rtl.stream["padding"]
    assert rtl.stream["ready"] and pad["top"] == pads[0] and pad["right"] == pads[3]
    assert rtl.ii == pad["padded_pixels"] + 2 and rtl.stream["pixels_per_frame"] == 30
    x = test_vectors(model, 40, 5)
    stream = {**rtl.stream, "pixel_gap_every": gap}
    ii = rtl.ii if not gap else rtl.ii + 30  # idle clocks inside a frame make it longer: frames further apart
    sim = simulate(rtl.sources, rtl.top, model.input.to_bits(x), model.input.widths, model.output.widths,
                   simulator="icarus", build_dir=tmp_path / "sim", max_latency=rtl.latency_cycles + 40, ii=ii,
                   stream=stream, protocol_vectors=6, cache_dir=None)
    got = model.output.from_bits(sim.outputs)
    expected = emulate(model, x).outputs
    bad = np.flatnonzero(np.any(got != expected, axis=1))
    assert bad.size == 0, f"{bad.size} mismatches, first {bad[:1]}: rtl {got[bad[0]]} emulator {expected[bad[0]]}"
    assert sim.timing["spurious"] == 0 and sim.timing["too_early"]["refused_flags"] == 1
    if not gap:  # every pixel offered as soon as in_ready allows: the latency is the manifest's
        assert sim.latency_cycles == rtl.latency_cycles and sim.ii == rtl.ii
