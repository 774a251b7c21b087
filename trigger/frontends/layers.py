"""Layer mappings: which Keras layers the network frontend accepts and how each converted
hls4ml layer becomes ops of the firmware model.

One entry per layer kind, registered with ``@maps``: the hls4ml layer classes it
handles, the Keras classes the model loader lets through for it, and a function
turning the hls4ml layer (after precision inference) into ops. hls4ml's types
are the specification: every format is read from the converted layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from trigger.errors import ModelError
from trigger.fixed import FixedFormat
from trigger.ir.op import Op
from trigger.ir.ops.activation import Linear, Relu
from trigger.ir.ops.average_pool import AveragePool
from trigger.ir.ops.conv1d import Conv1D
from trigger.ir.ops.conv2d import Conv2D
from trigger.ir.ops.dense import Dense
from trigger.ir.ops.global_pool import GlobalPool
from trigger.ir.ops.item_dense import ItemDense
from trigger.ir.ops.leaky_relu import LeakyRelu
from trigger.ir.ops.max_pool import MaxPool
from trigger.ir.ops.scale import Scale
from trigger.ir.ops.sigmoid import Sigmoid
from trigger.ir.ops.softmax import Softmax
from trigger.ir.ops.tanh import Tanh
from trigger.ir.tensor import TensorType


@dataclass
class Mapping:
    hls4ml_classes: tuple[str, ...]
    keras_classes: tuple[str, ...]
    to_ops: Callable  # (layer, ctx) -> list[Op]


@dataclass
class Context:
    """What a mapping needs besides the layer: the model name and the types of the layer's inputs.

    ``previous`` is the one input of a single-input layer, or every input of a merge one after
    another (the op's input: the firmware model feeds a multi-input op the concatenation of its
    source tensors, in order); ``inputs`` lists them one by one (hls4ml's order)."""

    model_name: str
    previous: TensorType
    notes: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)  # list[TensorType]; [previous] for a single-input layer

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
    if n_filt not in (-1, out.n) and (n_filt < 1 or out.n % n_filt):
        ctx.fail(layer, f"normalises {n_filt} filters of {out.n} values: not supported")
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    if layer.get_weights("scale").weight_class == "ExponentWeightVariable":
        s, sf = _power_of_two_scale(layer, ctx)
    else:
        sf = fixed_format(layer.get_weights("scale").type.precision, ctx, layer)
        s = weight_raw(layer.get_weights("scale"), sf).reshape(-1)
    b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
    if n_filt not in (-1, out.n) and s.size == b.size == n_filt:  # after a convolution: one scale per channel,
        s, b = np.tile(s, out.n // n_filt), np.tile(b, out.n // n_filt)  # nnet_batchnorm.h's ires % n_filt
    if s.size != out.n or b.size != out.n:
        ctx.fail(layer, f"has {s.size} scales for {out.n} values")
    return [Scale(layer.name, ctx.previous, out, s, b, sf, bf)]


@maps(("Activation",), ("Activation", "QActivation", "ReLU"))
def activation(layer, ctx: Context) -> list[Op]:
    act = str(layer.get_attr("activation")).lower()  # hls4ml's ONNX parser writes "ReLU"
    kinds = {"relu": Relu, "linear": Linear}
    tables = {"sigmoid": Sigmoid, "tanh": Tanh}
    if act in tables:
        return [_table_activation(tables[act], layer, ctx)]
    if act not in kinds:
        ctx.fail(layer, f"activation {act!r} is not supported (supported: {', '.join([*kinds, *tables])})")
    return [kinds[act](layer.name, ctx.previous, output_type(layer, ctx))]


def _table_activation(cls, layer, ctx: Context) -> Op:
    """sigmoid/tanh: hls4ml's table (table_size entries of table_t), filled by its own C++."""
    from trigger.frontends.hls4ml_tables import activation_table

    size = int(layer.get_attr("table_size"))
    table_fmt = fixed_format(layer.get_attr("table_t").precision, ctx, layer)
    if size < 2 or size & (size - 1):
        ctx.fail(layer, f"table_size {size} is not a power of two")
    table = activation_table(cls.kind, size, table_fmt)
    return cls(layer.name, ctx.previous, output_type(layer, ctx), table, table_fmt)


@maps(("ParametrizedActivation",), ("LeakyReLU",))
def parametrized_activation(layer, ctx: Context) -> list[Op]:
    """Keras LeakyReLU: hls4ml passes alpha as a double literal converted to param_t."""
    act = str(layer.get_attr("activation")).lower()
    if act != "leakyrelu":
        ctx.fail(layer, f"activation {act!r} is not supported (supported: LeakyReLU)")
    alpha_fmt = fixed_format(layer.get_attr("param_t").precision, ctx, layer)
    alpha = int(alpha_fmt.quantize([float(layer.get_attr("activ_param"))])[0])
    return [LeakyRelu(layer.name, ctx.previous, output_type(layer, ctx), alpha, alpha_fmt)]


def _window(layer, ctx: Context, rank: int, size: str) -> dict:
    """The window fields of a convolution or pooling op from hls4ml's attributes (channels last)."""
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        ctx.fail(layer, "channels_first data is not supported")
    if any(int(layer.get_attr(a, 1)) != 1 for a in ("dilation", "dilation_width", "dilation_height")):
        ctx.fail(layer, "dilated windows are not supported")
    axes = ("width",) if rank == 1 else ("height", "width")
    before, after = (("left",), ("right",)) if rank == 1 else (("top", "left"), ("bottom", "right"))
    channels = layer.get_attr("n_chan") if layer.get_attr("n_chan") is not None else layer.get_attr("n_filt")
    spatial = ([int(layer.get_attr("n_in"))] if rank == 1 and layer.get_attr("in_width") is None
               else [int(layer.get_attr(f"in_{a}")) for a in axes])
    return {"in_shape": spatial + [int(channels)],
            "kernel": [int(layer.get_attr(f"{size}_{a}")) for a in axes],
            "stride": [int(layer.get_attr(f"stride_{a}")) for a in axes],
            "pad": [int(layer.get_attr(f"pad_{a}", 0)) for a in before + after]}


@maps(("Conv1D", "Conv2D"), ("Conv1D", "Conv2D", "QConv1D", "QConv2D"))
def convolution(layer, ctx: Context) -> list[Op]:
    """Conv1D/Conv2D (and hls4ml's PointwiseConv1D/2D for 1-wide kernels, its subclasses)."""
    rank = 2 if any(c.__name__ == "Conv2D" for c in type(layer).__mro__) else 1
    out = output_type(layer, ctx)
    wf = fixed_format(layer.get_weights("weight").type.precision, ctx, layer)
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    n_filt = int(layer.get_attr("n_filt"))
    w = weight_raw(layer.get_weights("weight"), wf).reshape(-1, n_filt)  # (kernel cells x channels, filters)
    b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
    op = (Conv2D if rank == 2 else Conv1D)(layer.name, ctx.previous, out, weight=w, bias=b, weight_fmt=wf,
                                           bias_fmt=bf, accum_fmt=af, **_window(layer, ctx, rank, "filt"))
    if op.geometry.out_spatial != tuple(int(layer.get_attr(f"out_{a}")) for a in
                                        (("width",) if rank == 1 else ("height", "width"))):
        ctx.fail(layer, f"output size {op.geometry.out_spatial} differs from hls4ml's")
    return [op]


@maps(("Pooling1D", "Pooling2D"), ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"))
def pooling(layer, ctx: Context) -> list[Op]:
    rank = 2 if any(c.__name__ == "Pooling2D" for c in type(layer).__mro__) else 1
    out = output_type(layer, ctx)
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    window = _window(layer, ctx, rank, "pool")
    kind = layer.get_attr("pool_op")
    if kind == "Max":
        return [MaxPool(layer.name, ctx.previous, out, accum_fmt=af, **window)]
    if kind == "Average":
        return [AveragePool(layer.name, ctx.previous, out, accum_fmt=af, count_pad=bool(layer.get_attr("count_pad")),
                            **window)]
    ctx.fail(layer, f"pooling operation {kind!r} is not supported")


@maps(("Reshape",), ("Flatten", "Reshape", "Dropout"))
def reshape(layer, ctx: Context) -> list[Op]:
    """Flatten/Reshape: channels-last tensors are flat arrays already (io_parallel passes the array on).

    Dropout is an inference no-op that hls4ml's parser drops before this point."""
    out = output_type(layer, ctx)
    if out.n != ctx.previous.n or out.format != ctx.previous.format:
        ctx.fail(layer, f"reshapes {ctx.previous.describe()} into {out.describe()}: a reshape must keep the values")
    return []


@maps(("Softmax",), ("Softmax",))
def softmax(layer, ctx: Context) -> list[Op]:
    """hls4ml's softmax (its implementation, table sizes and types as the generated config holds them).

    The table sizes are read from the layer's generated C++ config: hls4ml adjusts them
    there (the stable implementation caps the exp table at 2**(W-1) of a signed input)."""
    from trigger.frontends.hls4ml_tables import activation_table

    impl = str(layer.get_attr("implementation", "stable")).lower()
    out = output_type(layer, ctx)
    if layer.get_attr("skip", False):
        ctx.fail(layer, "a skipped softmax (hls4ml's 'skip') is not supported: drop the softmax instead")
    if int(layer.get_attr("n_inner", 1)) != 1 or int(layer.get_attr("n_outer", 1)) != 1:
        ctx.fail(layer, "a softmax over an axis other than the last of a flat tensor is not supported")
    if impl == "argmax":
        return [Softmax(layer.name, ctx.previous, out, "argmax", np.zeros(1, np.int64), np.zeros(1, np.int64))]
    if impl not in ("stable", "latency"):
        ctx.fail(layer, f"softmax implementation {impl!r} is not supported (stable, latency or argmax)")
    config = str(layer.get_attr("config_cpp") or "")
    sizes = {k: re.search(rf"\b{k}\s*=\s*(\d+)", config) for k in ("exp_table_size", "inv_table_size")}
    if not all(sizes.values()):
        ctx.fail(layer, "hls4ml's generated config has no table sizes")
    exp_size, inv_size = (int(sizes[k].group(1)) for k in ("exp_table_size", "inv_table_size"))
    exp_fmt = fixed_format(layer.get_attr("exp_table_t").precision, ctx, layer)
    inv_fmt = fixed_format(layer.get_attr("inv_table_t").precision, ctx, layer)
    accum = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    inv_inp_t = layer.get_attr("inv_inp_t")
    inv_inp = exp_fmt if inv_inp_t.name == "model_default_t" else fixed_format(inv_inp_t.precision, ctx, layer)
    norm = None
    if impl == "stable":
        m = re.search(r"typedef\s+(.+?)\s+inp_norm_t;", config)
        if not m:
            ctx.fail(layer, "hls4ml's generated config has no inp_norm_t")
        named = layer.get_attr("inp_norm_t")  # set in the config: the typedef names it
        norm = fixed_format(named.precision if named is not None else m.group(1), ctx, layer)
    for what, size in (("exp", exp_size), ("inverse", inv_size)):
        if size < 2 or size & (size - 1):
            ctx.fail(layer, f"{what} table size {size} is not a power of two")
    exp_table = activation_table("exp", exp_size, exp_fmt, data=norm if impl == "stable" else ctx.previous.format,
                                 negative=impl == "stable", exp_scale=float(layer.get_attr("exp_scale", 1.0)))
    inv_table = activation_table("invert", inv_size, inv_fmt, data=inv_inp)
    return [Softmax(layer.name, ctx.previous, out, impl, exp_table, inv_table, exp_fmt, inv_fmt, accum, inv_inp, norm)]


@maps(("GlobalPooling1D", "GlobalPooling2D"), ("GlobalAveragePooling1D", "GlobalMaxPooling1D",
                                               "GlobalAveragePooling2D", "GlobalMaxPooling2D"))
def global_pooling(layer, ctx: Context) -> list[Op]:
    """Global max/average pooling (nnet_pooling.h): the max or mean of every channel over all positions."""
    out = output_type(layer, ctx)
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        ctx.fail(layer, "channels_first data is not supported")
    n_features = int(layer.get_attr("n_filt"))
    if ctx.previous.n % n_features:
        ctx.fail(layer, f"{ctx.previous.n} inputs are not a whole number of {n_features}-channel items")
    mode = {"Max": "max", "Average": "mean"}.get(str(layer.get_attr("pool_op")))
    if mode is None:
        ctx.fail(layer, f"pooling operation {layer.get_attr('pool_op')!r} is not supported")
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    return [GlobalPool(layer.name, ctx.previous, out, mode, ctx.previous.n // n_features, n_features, af)]


@maps(("PointwiseConv1D",))
def item_dense(layer, ctx: Context) -> list[Op]:
    """A Dense layer on (n_items, n_features) inputs (hls4ml makes it a PointwiseConv1D): dense per item.

    A kernel-1 Conv1D with strides or padding is a convolution proper (the Conv1D mapping)."""
    if int(layer.get_attr("stride_width", 1)) != 1 or int(layer.get_attr("pad_left", 0)) or \
            int(layer.get_attr("pad_right", 0)) or layer.get_attr("data_format", "channels_last") != "channels_last":
        return next(m for m in MAPPINGS if "Conv1D" in m.hls4ml_classes).to_ops(layer, ctx)
    out = output_type(layer, ctx)
    wf = fixed_format(layer.get_weights("weight").type.precision, ctx, layer)
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    n_chan, n_filt, n_items = (int(layer.get_attr(a)) for a in ("n_chan", "n_filt", "in_width"))
    w = weight_raw(layer.get_weights("weight"), wf).reshape(n_chan, n_filt)  # weights[channel * n_filt + filter]
    b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
    if ctx.previous.n != n_items * n_chan or out.n != n_items * n_filt:
        ctx.fail(layer, f"{ctx.previous.n} inputs / {out.n} outputs are not {n_items} items of {n_chan} -> {n_filt}")
    return [ItemDense(layer.name, ctx.previous, out, w, b, wf, bf, af, n_items)]


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


@maps(("BatchNormalizationQuantizedTanh",))
def binary_threshold(layer, ctx: Context) -> list[Op]:
    """hls4ml's batch norm + binary quantizer merge (QONNX BipolarQuant): ``x >= threshold`` in the input type."""
    from trigger.ir.ops.binary_threshold import BinaryThreshold

    if int(layer.get_attr("quantize", 0)) != 2:
        ctx.fail(layer, "only the binary form is supported (a ternary threshold is not)")
    threshold = weight_raw(layer.get_weights("threshold"), ctx.previous.format).reshape(-1)
    if layer.get_attr("n_filt", -1) not in (-1, 0, ctx.previous.n) or threshold.size != ctx.previous.n:
        ctx.fail(layer, f"has {threshold.size} thresholds for {ctx.previous.n} values")
    return [BinaryThreshold(layer.name, ctx.previous, output_type(layer, ctx), threshold)]


# ------------------------------------------------------------------ merges: two input tensors (nnet_merge.h)
def _merge_inputs(layer, ctx: Context) -> list:
    """The two input variables of a merge layer (hls4ml's order), checked against the tensors the
    firmware model feeds it (``ctx.inputs``, whose concatenation ``ctx.previous`` is the op's input)."""
    if len(layer.inputs) != 2:
        ctx.fail(layer, f"merges {len(layer.inputs)} tensors; hls4ml's nnet_merge.h merges exactly two")
    if len(ctx.inputs) != 2:
        ctx.fail(layer, f"the frontend gave {len(ctx.inputs)} input tensors for a two-input merge")
    variables = [layer.get_input_variable(name) for name in layer.inputs]
    for k, (var, given) in enumerate(zip(variables, ctx.inputs)):
        fmt = fixed_format(var.type.precision, ctx, layer)
        n = int(np.prod(var.shape))
        if n != given.n or any((f.width, f.integer, f.signed) != (fmt.width, fmt.integer, fmt.signed)
                               for f in given.formats):
            ctx.fail(layer, f"input {layer.inputs[k]} is {n} x {fmt.cpp} in hls4ml but the model feeds "
                            f"{given.describe()}")
    return variables


def _generated_config(layer, pattern: str):
    """A value from the layer's generated C++ config (hls4ml's template output), or None."""
    match = re.search(pattern, str(layer.get_attr("config_cpp") or ""))
    return match.group(1) if match else None


@maps(("Merge",), ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"))
def merge(layer, ctx: Context) -> list[Op]:
    """hls4ml's Merge (Keras Add/Subtract/Multiply/Average/Maximum/Minimum, ONNX Add/Sub/Mul/Max/Min/Sum):
    nnet_merge.h's function of the same name, ``res[i] = f(data1[i % n1], data2[i % n2])``."""
    from trigger.ir.ops.merge import OPERATIONS, Merge

    operation = str(layer.get_attr("op", "")).lower()
    if operation not in OPERATIONS:
        ctx.fail(layer, f"merge operation {operation!r} is not supported (supported: {', '.join(OPERATIONS)})")
    v1, v2 = _merge_inputs(layer, ctx)
    n1, n2 = ctx.inputs[0].n, ctx.inputs[1].n
    if n1 != n2:  # hls4ml broadcasts by index modulo size: only where that is the broadcast Keras means
        big, small = (v1, v2) if n1 >= n2 else (v2, v1)
        try:
            spread = np.broadcast_to(np.arange(min(n1, n2)).reshape(small.shape), big.shape).ravel()
        except ValueError:
            spread = None
        if spread is None or not np.array_equal(spread, np.arange(spread.size) % min(n1, n2)):
            ctx.fail(layer, f"broadcasting shape {list(small.shape)} over {list(big.shape)}: nnet_merge.h reads "
                            "element i % n, which is not this broadcast")
    out = output_type(layer, ctx)
    return [Merge(layer.name, ctx.previous, out, operation, [n1, n2])]


@maps(("Concatenate",), ("Concatenate",))
def concatenate(layer, ctx: Context) -> list[Op]:
    """hls4ml's Concatenate: nnet_merge.h's concatenate1d/2d/3d for the input shapes (channels last) and
    the axis its generated config holds, as one gather (``index``) with a cast to res_T."""
    from trigger.errors import FirmwareModelError
    from trigger.ir.ops.concatenate import Concatenate, concatenate_index

    v1, v2 = _merge_inputs(layer, ctx)
    axis = _generated_config(layer, r"static\s+const\s+int\s+axis\s*=\s*(-?\d+)\s*;")
    axis = int(axis if axis is not None else layer.get_attr("axis", -1))
    try:
        index = concatenate_index(v1.shape, v2.shape, axis)
    except FirmwareModelError as err:
        ctx.fail(layer, str(err))
    out = output_type(layer, ctx)
    return [Concatenate(layer.name, ctx.previous, out, [ctx.inputs[0].n, ctx.inputs[1].n], index)]


@maps(("Dot",), ("Dot",))
def dot(layer, ctx: Context) -> list[Op]:
    """hls4ml's Dot: nnet_merge.h's dot1d (products in nnet_mult.h's product class, summed in accum_t).

    hls4ml reads neither Keras' ``normalize`` nor ``axes`` (1-D inputs only)."""
    from trigger.ir.ops.dot import Dot

    v1, v2 = _merge_inputs(layer, ctx)
    if len(v1.shape) != 1 or list(v1.shape) != list(v2.shape):
        ctx.fail(layer, f"dot of shapes {list(v1.shape)} and {list(v2.shape)}: only two vectors of one length "
                        "(hls4ml's dot1d)")
    product = _generated_config(layer, r"nnet::product::(\w+)\s*<")
    if product is None:
        from hls4ml.backends import get_backend

        try:
            product = get_backend("vivado").product_type(v1.type.precision, v2.type.precision)
        except AssertionError:
            product = "power-of-two data"
    kinds = {"mult": "mult", "weight_ternary": "ternary"}
    if ctx.inputs[0].formats[0].is_int and ctx.inputs[0].formats[0].width == 1 and not ctx.inputs[0].formats[0].signed:
        ctx.fail(layer, "an ap_uint<1> first input takes nnet_mult.h's binary cast, which dot1d cannot use")
    if product not in kinds:
        ctx.fail(layer, f"hls4ml's {product} product is not supported (supported: {', '.join(kinds)})")
    accum = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    n = ctx.inputs[0].n
    return [Dot(layer.name, ctx.previous, output_type(layer, ctx), [n, n], accum, kinds[product])]


# ------------------------------------------------------------------ data movement: padding, cropping, up-sampling
def _channels_last(layer, ctx: Context) -> None:
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        ctx.fail(layer, "channels_first data is not supported (channels_last only)")


def _in_shape(layer) -> tuple:
    return tuple(int(d) for d in layer.get_input_variable().shape)


@maps(("ZeroPadding1D", "ZeroPadding2D"), ("ZeroPadding1D", "ZeroPadding2D"))
def zero_padding(layer, ctx: Context) -> list[Op]:
    """nnet_padding.h's zeropad1d_cl / zeropad2d_cl (hls4ml's attributes, whatever Keras wrote)."""
    from trigger.ir.ops.gather import Gather, padding_index

    _channels_last(layer, ctx)
    keys = ("pad_left", "pad_right") if layer.class_name == "ZeroPadding1D" else \
        ("pad_top", "pad_bottom", "pad_left", "pad_right")
    pads = tuple(int(layer.get_attr(k, 0) or 0) for k in keys)
    index = padding_index(_in_shape(layer), pads)
    out = output_type(layer, ctx)
    if index.size != out.n:
        ctx.fail(layer, f"padding gives {index.size} values, hls4ml's output has {out.n}")
    return [Gather(layer.name, ctx.previous, out, index, "zero padding")]


@maps(("Cropping1D", "Cropping2D"), ("Cropping1D", "Cropping2D"))
def cropping(layer, ctx: Context) -> list[Op]:
    """nnet_cropping.h's cropping1d_cl / cropping2d_cl."""
    from trigger.ir.ops.gather import Gather, cropping_index

    keys = ("crop_left", "crop_right") if layer.class_name == "Cropping1D" else \
        ("crop_top", "crop_bottom", "crop_left", "crop_right")
    crops = tuple(int(layer.get_attr(k, 0) or 0) for k in keys)
    index = cropping_index(_in_shape(layer), crops)
    out = output_type(layer, ctx)
    if index.size != out.n:
        ctx.fail(layer, f"cropping gives {index.size} values, hls4ml's output has {out.n}")
    return [Gather(layer.name, ctx.previous, out, index, "cropping")]


@maps(("Resize",), ("UpSampling1D", "UpSampling2D"))
def upsampling(layer, ctx: Context) -> list[Op]:
    """nnet_image.h's resize_nearest (UpSampling1D/2D; hls4ml's bilinear resize is refused)."""
    from trigger.ir.ops.gather import Gather, resize_nearest_index

    _channels_last(layer, ctx)
    if layer.get_attr("algorithm", "nearest") != "nearest":
        ctx.fail(layer, f"interpolation {layer.get_attr('algorithm')!r} is not supported (nearest only)")
    h, w, c = (int(layer.get_attr(k)) for k in ("in_height", "in_width", "n_chan"))
    index = resize_nearest_index((h, w, c), (int(layer.get_attr("out_height")), int(layer.get_attr("out_width"))))
    out = output_type(layer, ctx)
    if index.size != out.n:
        ctx.fail(layer, f"up-sampling gives {index.size} values, hls4ml's output has {out.n}")
    return [Gather(layer.name, ctx.previous, out, index, "nearest up-sampling")]
