"""Hand-built firmware models (trigger.ir ops) with seeded random integer weights, shared by the
emulator, IR and RTL tests."""

from __future__ import annotations

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType
from trigger.ir.ops.activation import Linear, Relu
from trigger.ir.ops.dense import Dense
from trigger.ir.ops.leaky_relu import LeakyRelu
from trigger.ir.ops.scale import Scale

F = FixedFormat.parse
T = TensorType.uniform
ROUNDING_CHAIN = ("TRN", "RND", "RND_CONV", "TRN_ZERO", "RND_ZERO", "RND_MIN_INF", "RND_INF")


def exact_accum(input_fmt: FixedFormat, weight_fmt: FixedFormat, n_in: int, extra: int = 1) -> FixedFormat:
    """An accumulator wide enough for any sum (as hls4ml's precision inference picks)."""
    prod = input_fmt.product_format(weight_fmt)
    integer = prod.integer + int(np.ceil(np.log2(n_in + 1))) + extra
    return FixedFormat(prod.fractional + integer, integer, True)


def random_dense(rng, name, n_in, n_out, input_fmt, weight_fmt, bias_fmt, output_fmt, accum_fmt=None,
                 zero_fraction=0.25) -> Dense:
    w = rng.integers(weight_fmt.min_raw, weight_fmt.max_raw + 1, (n_in, n_out), dtype=np.int64)
    w[rng.random((n_in, n_out)) < zero_fraction] = 0  # pruned weights, as QKeras models have
    b = rng.integers(bias_fmt.min_raw, bias_fmt.max_raw + 1, n_out, dtype=np.int64)
    accum_fmt = accum_fmt or exact_accum(input_fmt, weight_fmt, n_in)
    return Dense(name, T(input_fmt, n_in), T(output_fmt, n_out), w, b, weight_fmt, bias_fmt, accum_fmt)


def relu(name: str, previous, out_fmt: FixedFormat) -> Relu:
    """A ReLU after ``previous`` (an op), into ``out_fmt``."""
    return Relu(name, previous.output, T(out_fmt, previous.output.n))


def linear(name: str, previous, out_fmt: FixedFormat) -> Linear:
    return Linear(name, previous.output, T(out_fmt, previous.output.n))


def mlp(sizes=(16, 64, 32, 32, 5), seed=0, weight_bits=6) -> FirmwareModel:
    """A jet-tagger-shaped MLP: fixed<16,6> inputs, weight_bits-bit weights, ReLU between layers."""
    rng = np.random.default_rng(seed)
    fmt = F("fixed<16,6>")
    weight_fmt, bias_fmt = FixedFormat(weight_bits, 1), FixedFormat(weight_bits, 2)
    ops = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        out = F("fixed<16,6>") if k + 2 < len(sizes) else F("fixed<16,6,RND_CONV,SAT>")
        ops.append(random_dense(rng, f"dense{k}", a, b, fmt, weight_fmt, bias_fmt, out))
        if k + 2 < len(sizes):
            fmt = F("ufixed<9,4,RND_CONV,SAT>")
            ops.append(relu(f"relu{k}", ops[-1], fmt))
    return FirmwareModel("mlp", T(F("fixed<16,6>"), sizes[0]), ops)


def small_models() -> dict[str, FirmwareModel]:
    """Small models covering the formats and op kinds the RTL and emulator must handle."""
    rng = np.random.default_rng(42)
    models = {}

    # 4-bit unsigned inputs, 4-bit weights, saturating RND_CONV output, linear activation.
    i4 = F("ufixed<4,0>")
    d = random_dense(rng, "d0", 6, 5, i4, F("fixed<4,1>"), F("fixed<4,0>"), F("fixed<5,1,RND_CONV,SAT>"))
    models["u4_linear"] = FirmwareModel("u4_linear", T(i4, 6), [d, linear("lin", d, F("fixed<4,1,RND,WRAP>"))])

    # 6-bit inputs, non-power-of-two widths, relu, and a Scale (unfolded batch norm).
    i6 = F("fixed<6,2>")
    d0 = random_dense(rng, "d0", 7, 11, i6, F("fixed<5,1>"), F("fixed<7,2>"), F("fixed<10,3,RND,SAT>"))
    r0 = relu("r0", d0, F("ufixed<7,3,RND_CONV,SAT>"))
    sc = Scale("bn", r0.output, T(F("fixed<13,5,RND_CONV,SAT>"), 11), rng.integers(-20, 21, 11),
               rng.integers(-60, 61, 11), F("fixed<6,2>"), F("fixed<7,3>"))
    d1 = random_dense(rng, "d1", 11, 3, sc.output.format, F("fixed<6,1>"), F("fixed<6,2>"), F("fixed<9,4,TRN,SAT>"))
    models["s6_scale"] = FirmwareModel("s6_scale", T(i6, 7), [d0, r0, sc, d1])

    # 16-bit inputs, an accumulator with fewer fractional bits than the products: each product is
    # rounded (RND) before the sum, as hls4ml does; a saturating unsigned output (ReLU-like range).
    i16 = F("fixed<16,4>")
    acc = F("fixed<20,10,RND,SAT>")
    d = random_dense(rng, "d0", 9, 4, i16, F("fixed<8,2>"), F("fixed<8,3>"), F("ufixed<10,6,RND_CONV,SAT>"), acc)
    models["s16_rounded_products"] = FirmwareModel("s16_rounded_products", T(i16, 9), [d])

    # A wrapping accumulator that does overflow: the RTL must reproduce the wrap, not the true sum.
    i8 = F("fixed<8,3>")
    d = random_dense(rng, "d0", 10, 4, i8, F("fixed<6,2>"), F("fixed<6,2>"), F("fixed<8,4,TRN,WRAP>"),
                     F("fixed<12,6,TRN,WRAP>"), zero_fraction=0.0)
    models["wrapping_accum"] = FirmwareModel("wrapping_accum", T(i8, 10), [d])

    # All-zero weight columns: output 1 has a zero bias too (a constant 0), output 2 the most
    # negative bias (a constant); the other outputs have random biases.
    d = random_dense(rng, "d0", 5, 4, F("fixed<7,3>"), F("fixed<4,1>"), F("fixed<5,2>"), F("fixed<8,4>"))
    d.weight[:, 1:3] = 0
    d.bias[1], d.bias[2] = 0, d.bias_fmt.min_raw
    models["zero_column"] = FirmwareModel("zero_column", d.input, [d])

    # A leaky ReLU (alpha 0.3 in hls4ml's default param_t) between two dense layers.
    d0 = random_dense(rng, "d0", 6, 8, F("fixed<8,3>"), F("fixed<6,1>"), F("fixed<6,2>"), F("fixed<12,4>"))
    alpha_fmt = F("fixed<16,6>")
    lk = LeakyRelu("leaky", d0.output, T(F("fixed<10,3,RND,SAT>"), 8), int(alpha_fmt.quantize([0.3])[0]), alpha_fmt)
    d1 = random_dense(rng, "d1", 8, 2, lk.output.format, F("fixed<6,1>"), F("fixed<6,2>"), F("fixed<12,5,RND_CONV,SAT>"))
    models["leaky"] = FirmwareModel("leaky", d0.input, [d0, lk, d1])

    # A leaky ReLU into a SAT_ZERO output that overflows at both ends: the RTL sizes the select
    # of the two branches from their cast ranges (a wrong SAT_ZERO range once truncated it).
    d0 = random_dense(rng, "d0", 4, 5, F("fixed<8,3>"), F("fixed<6,1>"), F("fixed<6,2>"), F("fixed<12,5>"))
    lk = LeakyRelu("leaky", d0.output, T(F("fixed<6,2,RND,SAT_ZERO>"), 5), int(alpha_fmt.quantize([0.3])[0]),
                   alpha_fmt)
    models["leaky_sat_zero"] = FirmwareModel("leaky_sat_zero", d0.input, [d0, lk])
    for model in models.values():
        model.validate()
    return models


def requant_chain(overflow: str) -> FirmwareModel:
    """Linear activations through every rounding mode with one overflow mode: each step drops
    fractional and integer bits, so every step rounds (ties included) and overflows."""
    fmt = F("fixed<24,8>")
    ops = []
    width, integer = 24, 8
    for k, rounding in enumerate(ROUNDING_CHAIN):
        width, integer = width - 2, integer - 1
        nxt = FixedFormat(width, integer, k < 6, rounding, overflow)  # the last one unsigned
        ops.append(Linear(f"q{k}_{rounding.lower()}", T(fmt, 3), T(nxt, 3)))
        fmt = nxt
    return FirmwareModel(f"chain_{overflow.lower()}", T(F("fixed<24,8>"), 3), ops)


def edge_inputs(fmt: FixedFormat, n_in: int) -> np.ndarray:
    """Zeros, all-min, all-max, alternating min/max, +-1 LSB."""
    lo, hi = fmt.min_raw, fmt.max_raw
    rows = [np.zeros(n_in), np.full(n_in, lo), np.full(n_in, hi), np.resize([lo, hi], n_in), np.resize([hi, lo], n_in),
            np.full(n_in, min(hi, 1)), np.full(n_in, max(lo, -1))]
    return np.array(rows, dtype=np.int64)


def case_inputs(model: FirmwareModel, n_random: int, seed: int = 7) -> np.ndarray:
    """Edge rows, then uniform raw draws over the model's input format."""
    t, n_in = model.input, model.input.n
    rng = np.random.default_rng(seed)
    rand = rng.integers(t.min_raw, t.max_raw + 1, (n_random, n_in), dtype=np.int64)
    if t.is_uniform:
        return np.vstack([edge_inputs(t.format, n_in), rand])
    lo, hi = t.min_raw, t.max_raw  # several input ports: each element's own range
    edges = [np.zeros(n_in), hi, lo, np.where(np.arange(n_in) % 2, hi, lo)]
    return np.vstack([np.array(edges, dtype=np.int64), rand])
