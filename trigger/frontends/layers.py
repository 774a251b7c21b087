"""Layer mappings: which Keras layers the network frontend accepts and how each converted
hls4ml layer becomes ops of the firmware model.

One entry per layer kind, registered with ``@maps``: the hls4ml layer classes it
handles, the Keras classes the model loader lets through for it, and a function
turning the hls4ml layer (after precision inference) into ops. hls4ml's types
are the specification: every format is read from the converted layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from trigger.errors import ModelError
from trigger.fixed import FixedFormat
from trigger.ir.op import Op
from trigger.ir.ops.activation import Linear, Relu
from trigger.ir.ops.dense import Dense
from trigger.ir.ops.leaky_relu import LeakyRelu
from trigger.ir.ops.scale import Scale
from trigger.ir.tensor import TensorType


@dataclass
class Mapping:
    hls4ml_classes: tuple[str, ...]
    keras_classes: tuple[str, ...]
    to_ops: Callable  # (layer, ctx) -> list[Op]


@dataclass
class Context:
    """What a mapping needs besides the layer: the model name and the previous tensor's type."""

    model_name: str
    previous: TensorType
    notes: dict = field(default_factory=dict)

    def fail(self, layer, message: str):
        raise ModelError(f"{self.model_name}: layer {layer.name} ({layer.class_name}): {message}")


MAPPINGS: list[Mapping] = []


def maps(hls4ml_classes: tuple[str, ...], keras_classes: tuple[str, ...] = ()):
    """Decorator registering a mapping function for these hls4ml classes (and Keras classes)."""
    def wrap(fn):
        MAPPINGS.append(Mapping(tuple(hls4ml_classes), tuple(keras_classes), fn))
        return fn
    return wrap


def keras_classes() -> tuple[str, ...]:
    """Every Keras layer class some mapping accepts (the model loader's allow list)."""
    return tuple(sorted({c for m in MAPPINGS for c in m.keras_classes}))


def mapping_for(layer) -> Mapping | None:
    """The mapping of an hls4ml layer, by its class or the nearest base class that has one."""
    for cls in type(layer).__mro__:
        for m in MAPPINGS:
            if cls.__name__ in m.hls4ml_classes:
                return m
    return None


# ------------------------------------------------------------------ reading hls4ml
def fixed_format(precision, ctx: Context | None = None, layer=None) -> FixedFormat:
    """The FixedFormat of an hls4ml precision type (fixed/ufixed/int/uint only)."""
    text = str(precision)
    try:
        return FixedFormat.parse(text)
    except ValueError:
        where = f"layer {layer.name}: " if layer is not None else ""
        raise ModelError(f"{ctx.model_name if ctx else 'model'}: {where}hls4ml type {text} is not a fixed-point "
                         "or integer type") from None


def weight_raw(weight_var, fmt: FixedFormat) -> np.ndarray:
    """Raw integers of a weight tensor exactly as the generated C++ holds them.

    hls4ml prints each value with as many decimals as the type has fractional bits
    and ``ap_fixed(double)`` quantizes that literal; quantizing the same double here
    gives the same raw integer."""
    literals = [float(s) for s in iter(weight_var)]
    return fmt.quantize(np.asarray(literals, dtype=np.float64)).reshape(weight_var.data.shape)


def output_type(layer, ctx: Context) -> TensorType:
    var = layer.get_output_variable()
    return TensorType.uniform(fixed_format(var.type.precision, ctx, layer), int(np.prod(var.shape)))


# ------------------------------------------------------------------ the mappings
@maps(("Dense",), ("Dense", "QDense"))
def dense(layer, ctx: Context) -> list[Op]:
    out = output_type(layer, ctx)
    wf = fixed_format(layer.get_weights("weight").type.precision, ctx, layer)
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    w = weight_raw(layer.get_weights("weight"), wf)
    b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
    if w.shape != (int(layer.get_attr("n_in")), int(layer.get_attr("n_out"))):
        ctx.fail(layer, f"weight shape {w.shape} is not (n_in, n_out)")
    return [Dense(layer.name, ctx.previous, out, w, b, wf, bf, af)]


@maps(("BatchNormalization",), ("BatchNormalization",))
def batch_normalization(layer, ctx: Context) -> list[Op]:
    """hls4ml's BatchNormalization (also ApplyAlpha, QKeras' alpha scale) as a per-element scale."""
    out = output_type(layer, ctx)
    n_filt = layer.get_attr("n_filt", -1)
    if n_filt not in (-1, out.n):
        ctx.fail(layer, f"normalises {n_filt} filters of {out.n} values: not supported")
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    if layer.get_weights("scale").weight_class == "ExponentWeightVariable":
        s, sf = _power_of_two_scale(layer, ctx)
    else:
        sf = fixed_format(layer.get_weights("scale").type.precision, ctx, layer)
        s = weight_raw(layer.get_weights("scale"), sf).reshape(-1)
    b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
    if s.size != out.n or b.size != out.n:
        ctx.fail(layer, f"has {s.size} scales for {out.n} values")
    return [Scale(layer.name, ctx.previous, out, s, b, sf, bf)]


@maps(("Activation",), ("Activation", "QActivation"))
def activation(layer, ctx: Context) -> list[Op]:
    act = layer.get_attr("activation")
    kinds = {"relu": Relu, "linear": Linear}
    if act not in kinds:
        ctx.fail(layer, f"activation {act!r} is not supported (supported: {', '.join(kinds)})")
    return [kinds[act](layer.name, ctx.previous, output_type(layer, ctx))]


@maps(("ParametrizedActivation",), ("LeakyReLU",))
def parametrized_activation(layer, ctx: Context) -> list[Op]:
    """Keras LeakyReLU: hls4ml passes alpha as a double literal converted to param_t."""
    act = str(layer.get_attr("activation")).lower()
    if act != "leakyrelu":
        ctx.fail(layer, f"activation {act!r} is not supported (supported: LeakyReLU)")
    alpha_fmt = fixed_format(layer.get_attr("param_t").precision, ctx, layer)
    alpha = int(alpha_fmt.quantize([float(layer.get_attr("activ_param"))])[0])
    return [LeakyRelu(layer.name, ctx.previous, output_type(layer, ctx), alpha, alpha_fmt)]


@maps(("Softmax",))
def softmax(layer, ctx: Context) -> list[Op]:
    ctx.fail(layer, "a softmax is not supported yet: drop it (the default) to output logits")


def _power_of_two_scale(layer, ctx: Context):
    """A power-of-two scale (QKeras alpha='auto_po2': hls4ml's ApplyAlpha with exponent weights) as a fixed scale.

    nnet_mult.h's weight_exponential casts x to r_T = ap_fixed<2(We+Wx), We+Wx>, shifts it
    by the exponent and negates it for a negative sign. When x * 2**e fits r_T (checked
    here for every exponent) that is exactly x * (+-2**e): a scale holding +-2**e.
    """
    in_fmt = ctx.previous.format
    var = layer.get_weights("scale")
    data = np.asarray(var.data, dtype=np.float64).reshape(-1)
    if np.any(data == 0):
        ctx.fail(layer, "has a zero power-of-two scale")
    exps = np.round(np.log2(np.abs(data))).astype(np.int64)
    if not np.array_equal(np.ldexp(np.sign(data), exps), data):
        ctx.fail(layer, "has a scale that is not a power of two")
    we = int(var.type.precision.width)
    if exps.min() < -(1 << (we - 1)) or exps.max() > (1 << (we - 1)) - 1:
        ctx.fail(layer, f"exponents {exps.min()}..{exps.max()} do not fit int<{we}>")
    r_bits = we + in_fmt.width  # r_T = ap_fixed<2 r_bits, r_bits>
    if in_fmt.integer + int(exps.max()) >= r_bits or in_fmt.fractional - int(exps.min()) > r_bits:
        ctx.fail(layer, f"shifting {in_fmt} by 2**{exps.min()}..2**{exps.max()} loses bits in hls4ml's product type")
    frac = max(0, -int(exps.min()))
    integer = max(0, int(exps.max())) + 2
    raw = np.where(data < 0, -1, 1).astype(np.int64) << (exps + frac)
    return raw, FixedFormat(integer + frac, integer, True)
