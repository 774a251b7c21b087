"""Bit-exact numpy emulator of a FirmwareModel on raw integers.

It follows hls4ml's C++ (nnet_dense_latency.h, nnet_activation.h,
nnet_batchnorm.h) with every cast done by ``trigger.fixed``, so it is the
reference the HLS C simulation and the RTL are compared against. Arrays are
(n_vectors, n_features) int64 raw values; a Dense layer loops over its inputs
in hls4ml's order only when its accumulator could overflow or round (where order
matters), and is one integer matrix product when a range analysis proves it
cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trigger.firmware.model import Activation, Dense, FirmwareModel, Scale
from trigger.fixed import MAX_WIDTH, FixedFormat, OverflowCount

ACTIVATIONS = ("relu", "linear")


@dataclass
class EmulatorResult:
    outputs: np.ndarray  # (n_vectors, n_out) raw int64 in model.output_fmt
    trace: list[np.ndarray] | None  # per-layer raw outputs (trace=True), in layer order
    layer_names: list[str]
    overflows: dict[str, dict[str, OverflowCount]] = field(default_factory=dict)

    def overflow_summary(self) -> dict[str, dict[str, dict[str, int]]]:
        """Plain-dict overflow counts (for JSON reports), sorted by layer order then tensor."""
        return {layer: {t: {"values": c.values, "overflows": c.overflows} for t, c in sorted(tensors.items())}
                for layer, tensors in self.overflows.items()}


def same_bits(a: FixedFormat, b: FixedFormat) -> bool:
    """Whether two formats read the same raw integers as the same values (modes aside)."""
    return (a.width, a.integer, a.signed) == (b.width, b.integer, b.signed)


def validate(model: FirmwareModel) -> None:
    """Checks the model is consistent (shapes, chained formats); raises a one-line ValueError."""
    if not model.layers:
        raise ValueError(f"model {model.name!r} has no layers")
    n, fmt = model.n_inputs, model.input_fmt
    for layer in model.layers:
        where = f"model {model.name!r} layer {layer.name!r}"
        if layer.n_in != n:
            raise ValueError(f"{where}: expects {layer.n_in} inputs but the previous layer gives {n}")
        if not same_bits(layer.input_fmt, fmt):
            raise ValueError(f"{where}: input_fmt {layer.input_fmt} differs from the previous output {fmt}")
        if isinstance(layer, Dense):
            if layer.weight.ndim != 2 or layer.bias.shape != (layer.n_out,):
                raise ValueError(f"{where}: weight must be (n_in, n_out) and bias (n_out,), got "
                                 f"{layer.weight.shape} and {layer.bias.shape}")
            _check_raw(where, "weight", layer.weight, layer.weight_fmt)
            _check_raw(where, "bias", layer.bias, layer.bias_fmt)
            prod = layer.input_fmt.product_format(layer.weight_fmt)
            if prod.width > MAX_WIDTH:
                raise ValueError(f"{where}: product width {prod.width} exceeds {MAX_WIDTH} bits")
        elif isinstance(layer, Scale):
            if layer.scale.shape != layer.bias.shape or layer.scale.ndim != 1:
                raise ValueError(f"{where}: scale and bias must both be (n,), got {layer.scale.shape} and {layer.bias.shape}")
            _check_raw(where, "scale", layer.scale, layer.scale_fmt)
            _check_raw(where, "bias", layer.bias, layer.bias_fmt)
            if _scale_sum_format(layer).width > MAX_WIDTH:
                raise ValueError(f"{where}: x*scale+bias needs more than {MAX_WIDTH} bits")
        elif isinstance(layer, Activation):
            if layer.function not in ACTIVATIONS:
                raise ValueError(f"{where}: activation {layer.function!r} is not supported "
                                 f"(expected one of {', '.join(ACTIVATIONS)})")
        else:
            raise ValueError(f"{where}: unknown layer type {type(layer).__name__}")
        n, fmt = layer.n_out, layer.output_fmt


def _check_raw(where: str, what: str, raw: np.ndarray, fmt: FixedFormat) -> None:
    raw = np.asarray(raw)
    if raw.dtype.kind not in "iu":
        raise ValueError(f"{where}: {what} must hold raw integers, got dtype {raw.dtype}")
    if raw.size and not np.all(fmt.contains(raw)):
        bad = raw.ravel()[~fmt.contains(raw).ravel()][0]
        raise ValueError(f"{where}: {what} raw value {bad} is outside {fmt}")


def _scale_sum_format(layer: Scale) -> FixedFormat:
    return layer.input_fmt.product_format(layer.scale_fmt).sum_format(layer.bias_fmt)


CHUNK = 4096  # vectors per pass: keeps the int64 temporaries in cache (2-3x faster than whole arrays)


def emulate(model: FirmwareModel, raw_inputs, trace: bool = False) -> EmulatorResult:
    """Runs raw inputs (n_vectors, n_inputs) in model.input_fmt through the model, bit-exactly."""
    validate(model)
    x = np.asarray(raw_inputs)
    if x.ndim != 2 or x.shape[1] != model.n_inputs:
        raise ValueError(f"model {model.name!r}: inputs must have shape (n_vectors, {model.n_inputs}), got {x.shape}")
    if x.dtype.kind not in "iu":
        raise ValueError(f"model {model.name!r}: inputs must be raw integers, got dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.size and not np.all(model.input_fmt.contains(x)):
        raise ValueError(f"model {model.name!r}: raw inputs outside {model.input_fmt} "
                         f"(range {model.input_fmt.min_raw}..{model.input_fmt.max_raw})")
    plans = {layer.name: dense_plan(layer) for layer in model.layers if isinstance(layer, Dense)}
    overflows: dict[str, dict[str, OverflowCount]] = {layer.name: {} for layer in model.layers}
    outputs, traces = [], [[] for _ in model.layers]
    for start in range(0, max(x.shape[0], 1), CHUNK):
        y = x[start:start + CHUNK]
        for k, layer in enumerate(model.layers):
            counts = overflows[layer.name]
            if isinstance(layer, Dense):
                y = _dense(layer, plans[layer.name], y, counts)
            elif isinstance(layer, Scale):
                y = _scale(layer, y, counts)
            else:
                y = _activation(layer, y, counts)
            if trace:
                traces[k].append(y)
        outputs.append(y)
    return EmulatorResult(np.concatenate(outputs), [np.concatenate(t) for t in traces] if trace else None,
                          [layer.name for layer in model.layers], overflows)


def _counter(counts: dict, tensor: str) -> OverflowCount:
    return counts.setdefault(tensor, OverflowCount())


def dense_plan(layer: Dense) -> dict:
    """Range analysis of a Dense layer over every input its input_fmt can hold.

    Returns the bias cast to accum (raw), the product-to-accum shift, whether any
    product cast rounds, and whether a product cast or a partial sum can leave the
    accumulator's range. Every product's range contains 0, so a bound on the full
    sum bounds every partial sum in every order.
    """
    acc, prod_fmt = layer.accum_fmt, layer.input_fmt.product_format(layer.weight_fmt)
    bias_count = OverflowCount()
    bias_acc = acc.cast(np.asarray(layer.bias, dtype=np.int64), layer.bias_fmt, bias_count)
    w = np.asarray(layer.weight, dtype=np.int64)
    ends = np.stack([w * layer.input_fmt.min_raw, w * layer.input_fmt.max_raw])  # (2, n_in, n_out)
    end_count = OverflowCount()
    cast_ends = acc.cast(ends, prod_fmt, end_count)  # the cast is monotonic: its range is between these
    lo = cast_ends.min(axis=0)
    hi = cast_ends.max(axis=0)
    sum_lo = [int(b) + sum(int(v) for v in lo[:, j]) for j, b in enumerate(bias_acc)]
    sum_hi = [int(b) + sum(int(v) for v in hi[:, j]) for j, b in enumerate(bias_acc)]
    shift = acc.fractional - prod_fmt.fractional
    return {
        "bias_acc": bias_acc,
        "bias_overflow": bias_count.overflows,
        "product_format": prod_fmt,
        "shift": shift,  # product raw -> accum raw: multiply by 2**shift (rounding when negative)
        "product_lo": lo, "product_hi": hi,
        "product_can_overflow": end_count.overflows > 0,
        "sum_lo": sum_lo, "sum_hi": sum_hi,
        "sum_can_overflow": min(sum_lo) < acc.min_raw or max(sum_hi) > acc.max_raw,
    }


def _dense(layer: Dense, plan: dict, x: np.ndarray, counts: dict) -> np.ndarray:
    acc_fmt, prod_fmt, shift = layer.accum_fmt, plan["product_format"], plan["shift"]
    w = np.asarray(layer.weight, dtype=np.int64)
    n, n_in, n_out = x.shape[0], layer.n_in, layer.n_out
    if "bias" not in counts:
        counts["bias"] = OverflowCount(n_out, plan["bias_overflow"])
    product, accum = _counter(counts, "product"), _counter(counts, "accum")
    if shift >= 0 and not plan["product_can_overflow"] and not plan["sum_can_overflow"]:
        # No product cast rounds or overflows and no partial sum leaves the accumulator:
        # the sequential sum equals the exact sum, in any order.
        acc = x @ (w << shift) + plan["bias_acc"]
        product.add(n * n_in * n_out, 0)
        accum.add(n * n_in * n_out, 0)
    else:
        # hls4ml's order: acc = (accum_t)bias; for ii: acc[jj] += (accum_t)(x[ii] * w[ii][jj]).
        sum_fmt = acc_fmt.sum_format(acc_fmt)
        exact_products = shift >= 0 and prod_fmt.width + shift <= MAX_WIDTH
        acc = np.broadcast_to(plan["bias_acc"], (n, n_out)).copy()
        for i in range(n_in):
            p = x[:, i:i + 1] * w[i]
            if exact_products:
                p = _cast_no_rounding(acc_fmt, p << shift, p, prod_fmt, product)
            else:
                p = acc_fmt.cast(p, prod_fmt, product)
            s = acc + p
            acc = _cast_no_rounding(acc_fmt, s, s, sum_fmt, accum)
    return layer.output_fmt.cast(acc, acc_fmt, _counter(counts, "output"))


def _cast_no_rounding(fmt: FixedFormat, shifted: np.ndarray, raw: np.ndarray, source: FixedFormat,
                      counter: OverflowCount) -> np.ndarray:
    """fmt.cast(raw, source) where no rounding happens (``shifted`` is raw in fmt's LSBs).

    Values strictly inside fmt's range are kept as they are; only the others (and
    the most negative value, which SAT_SYM treats as an overflow) go through
    ``fmt.cast``, so the overflow semantics and counts stay those of trigger.fixed.
    """
    edge = (shifted <= fmt.min_raw) | (shifted > fmt.max_raw)
    n_edge = int(np.count_nonzero(edge))
    counter.add(shifted.size - n_edge, 0)
    if n_edge == 0:
        return shifted
    out = shifted.copy()
    out[edge] = fmt.cast(raw[edge], source, counter)
    return out


def _scale(layer: Scale, x: np.ndarray, counts: dict) -> np.ndarray:
    # res = product(x, scale) + bias, both exact in ap_fixed, then cast to res_T.
    prod_fmt = layer.input_fmt.product_format(layer.scale_fmt)
    sum_fmt = _scale_sum_format(layer)
    y = (x * np.asarray(layer.scale, dtype=np.int64)) << (sum_fmt.fractional - prod_fmt.fractional)
    y = y + (np.asarray(layer.bias, dtype=np.int64) << (sum_fmt.fractional - layer.bias_fmt.fractional))
    return layer.output_fmt.cast(y, sum_fmt, _counter(counts, "output"))


def _activation(layer: Activation, x: np.ndarray, counts: dict) -> np.ndarray:
    if layer.function == "relu":
        x = np.where(x > 0, x, np.int64(0))  # if (datareg > 0) res = datareg; else res = 0;
    return layer.output_fmt.cast(x, layer.input_fmt, _counter(counts, "output"))


def first_mismatch(expected: np.ndarray, got: np.ndarray) -> int | None:
    """Index of the first vector whose integers differ, or None when all are equal."""
    bad = np.flatnonzero(np.any(np.asarray(expected) != np.asarray(got), axis=1))
    return int(bad[0]) if bad.size else None
