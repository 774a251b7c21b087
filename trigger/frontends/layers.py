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
from typing import Callable, ClassVar

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
    # A mapping that returns a graph of ops (a recurrent layer) says what each op reads: op name -> tensor
    # names, INPUT for the layer's input(s); an op it does not name reads the op before it (or the input).
    reads: dict = field(default_factory=dict)
    INPUT: ClassVar[str] = "@input"

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
    if _is_xnor(layer.get_input_variable().type.precision):  # binary (ap_uint<1>) data: its own block below
        return binary_input_dense(layer, ctx)
    out = output_type(layer, ctx)
    w, wf = layer_weights(layer, ctx)
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
    if w.shape != (int(layer.get_attr("n_in")), int(layer.get_attr("n_out"))):
        ctx.fail(layer, f"weight shape {w.shape} is not (n_in, n_out)")
    return [Dense(layer.name, ctx.previous, out, w, b, wf, bf, af)]


@maps(("BatchNormalization",), ("BatchNormalization", "QBatchNormalization"))
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
    if act in ACTIVATION_OPS:  # elu, selu, softsign, ...: registered in their own block below
        return ACTIVATION_OPS[act](layer, ctx)
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


@maps(("ParametrizedActivation",), ("LeakyReLU", "ELU", "ThresholdedReLU"))
def parametrized_activation(layer, ctx: Context) -> list[Op]:
    """Keras LeakyReLU: hls4ml passes alpha as a double literal converted to param_t."""
    act = str(layer.get_attr("activation")).lower()
    if act in ACTIVATION_OPS:  # ELU, ThresholdedReLU: registered in their own block below
        return ACTIVATION_OPS[act](layer, ctx)
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
    w, wf = layer_weights(layer, ctx)
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    n_filt = int(layer.get_attr("n_filt"))
    w = w.reshape(-1, n_filt)  # (kernel cells x channels, filters)
    b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
    op = (Conv2D if rank == 2 else Conv1D)(layer.name, ctx.previous, out, weight=w, bias=b, weight_fmt=wf,
                                           bias_fmt=bf, accum_fmt=af, **_window(layer, ctx, rank, "filt"),
                                           stream=layer.model.config.get_config_value("IOType") == "io_stream")
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
    w, wf = layer_weights(layer, ctx)
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    n_chan, n_filt, n_items = (int(layer.get_attr(a)) for a in ("n_chan", "n_filt", "in_width"))
    w = w.reshape(n_chan, n_filt)  # weights[channel * n_filt + filter]
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
    var = layer.get_weights("scale")
    data = np.asarray(var.data, dtype=np.float64).reshape(-1)
    if np.any(data == 0):
        ctx.fail(layer, "has a zero power-of-two scale")
    exps = np.round(np.log2(np.abs(data))).astype(np.int64)
    if not np.array_equal(np.ldexp(np.sign(data), exps), data):
        ctx.fail(layer, "has a scale that is not a power of two")
    return _signed_powers_of_two(data, exps, var, layer, ctx, "exponents")


def _signed_powers_of_two(data: np.ndarray, exps: np.ndarray, var, layer, ctx: Context, what: str
                          ) -> tuple[np.ndarray, FixedFormat]:
    """sign(data) * 2**exps as fixed-point (raw values, format), once hls4ml's exponent weights (int<We>, the
    width of ``var``'s type) are checked to hold ``exps`` (``what`` names them in the error) and
    weight_exponential's product type r_T to hold the previous layer's output shifted by each of them."""
    we = int(var.type.precision.width)
    if exps.min() < -(1 << (we - 1)) or exps.max() > (1 << (we - 1)) - 1:
        ctx.fail(layer, f"{what} {exps.min()}..{exps.max()} do not fit int<{we}>")
    in_fmt = ctx.previous.format
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

    if int(layer.get_attr("quantize", 0)) == 3:
        return _ternary_threshold(layer, ctx)
    if int(layer.get_attr("quantize", 0)) != 2:
        ctx.fail(layer, f"quantize={layer.get_attr('quantize')} is neither binary (2) nor ternary (3)")
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


# ------------------------------------------------------------------ less common activations (issue 23)
# hls4ml's activation name (lower case) -> mapping; the Activation and ParametrizedActivation mappings
# above hand these names over, so each lives here once.
ACTIVATION_OPS: dict[str, Callable] = {}
# Keras class -> check of its config (as data) before the model is built: the reason it is refused, or None.
KERAS_CHECKS: dict[str, list[tuple[Callable, bool]]] = {}
# Keras class -> (keras layer, its hls4ml Precision entry, every layer's hls4ml config): trigger's default types
# for it, set before the user's per-layer precisions (which win).
HLS_CONFIG: dict[str, Callable] = {}


def activation_op(*names: str):
    def wrap(fn):
        for name in names:
            ACTIVATION_OPS[name] = fn
        return fn
    return wrap


def keras_check(*classes: str, placed: bool = False):
    """Register a config check for these Keras classes; a class may have several. ``placed`` checks also get
    the layers before this one (a batch norm is converted only right after the input, a Dense or a conv)."""
    def wrap(fn):
        for cls in classes:
            KERAS_CHECKS.setdefault(cls, []).append((fn, placed))
        return fn
    return wrap


def check_keras_layer(cls: str, cfg: dict, previous: list[dict] = ()) -> str | None:
    """Why the loader refuses this Keras layer config (the first registered check that objects), or None."""
    for check, placed in KERAS_CHECKS.get(cls, ()):
        reason = check(cfg, previous) if placed else check(cfg)
        if reason:
            return reason
    return None


def _table(layer, ctx: Context, kind: str) -> tuple[np.ndarray, FixedFormat]:
    """hls4ml's table of ``kind`` (table_size entries of table_t), filled by its own C++."""
    from trigger.frontends.hls4ml_tables import activation_table

    size = int(layer.get_attr("table_size"))
    table_fmt = fixed_format(layer.get_attr("table_t").precision, ctx, layer)
    if size < 2 or size & (size - 1):
        ctx.fail(layer, f"table_size {size} is not a power of two")
    return activation_table(kind, size, table_fmt), table_fmt


def _param(layer, ctx: Context) -> tuple[int, FixedFormat]:
    """The double literal hls4ml passes (activ_param), as the param_t argument holds it."""
    fmt = fixed_format(layer.get_attr("param_t").precision, ctx, layer)
    return int(fmt.quantize([float(layer.get_attr("activ_param"))])[0]), fmt


@activation_op("softsign")
def softsign(layer, ctx: Context) -> list[Op]:
    """nnet_activation.h's softsign: sigmoid's index over a softsign table."""
    from trigger.ir.ops.softsign import Softsign

    return [_table_activation(Softsign, layer, ctx)]


@activation_op("elu")
def elu(layer, ctx: Context) -> list[Op]:
    """nnet_activation.h's elu(data, alpha, res) (Keras ELU and Activation('elu'), alpha 1.0)."""
    from trigger.ir.ops.elu import Elu

    table, table_fmt = _table(layer, ctx, "elu")
    alpha, alpha_fmt = _param(layer, ctx)
    return [Elu(layer.name, ctx.previous, output_type(layer, ctx), table, table_fmt, alpha, alpha_fmt)]


@activation_op("selu")
def selu(layer, ctx: Context) -> list[Op]:
    """nnet_activation.h's selu: lambda * x (lambda in ap_ufixed<16,1>) or the selu table."""
    from trigger.ir.ops.elu import Selu

    table, table_fmt = _table(layer, ctx, "selu")
    return [Selu(layer.name, ctx.previous, output_type(layer, ctx), table, table_fmt)]


@activation_op("thresholdedrelu")
def thresholded_relu(layer, ctx: Context) -> list[Op]:
    """nnet_activation.h's thresholded_relu: theta is the double literal hls4ml passes, in param_t."""
    from trigger.ir.ops.thresholded_relu import ThresholdedRelu

    theta, theta_fmt = _param(layer, ctx)
    return [ThresholdedRelu(layer.name, ctx.previous, output_type(layer, ctx), theta, theta_fmt)]


@maps(("PReLU",), ("PReLU",))
def prelu(layer, ctx: Context) -> list[Op]:
    """nnet_activation.h's prelu: one alpha per element, hls4ml's weight array of param_t."""
    from trigger.ir.ops.prelu import PRelu

    var = layer.get_weights("param")
    alpha_fmt = fixed_format(var.type.precision, ctx, layer)
    alpha = weight_raw(var, alpha_fmt).reshape(-1)
    if alpha.size != ctx.previous.n:
        ctx.fail(layer, f"has {alpha.size} alphas for {ctx.previous.n} values")
    return [PRelu(layer.name, ctx.previous, output_type(layer, ctx), alpha, alpha_fmt)]


@keras_check("PReLU")
def _prelu_config(cfg: dict) -> str | None:
    if cfg.get("shared_axes") is not None:
        return f"shared_axes={cfg['shared_axes']} is not supported (hls4ml converts one alpha per element)"
    return None


# ------------------------------------------------------------------ depthwise, separable and folded convolutions (issue 23)
def _conv_config_problem(cfg: dict, quantizer_keys: tuple[str, ...]) -> str | None:
    """What hls4ml's io_parallel convolutions cannot compute in a Keras depthwise/separable/folded convolution
    config (read as data): channels-last, no dilation, depth multiplier 1, supported padding, activation and
    quantizers."""
    from trigger.frontends.keras import PLAIN_ACTIVATIONS, _quantizer_ok, weight_quantizer_problem

    if cfg.get("data_format", "channels_last") != "channels_last":
        return f"data_format {cfg.get('data_format')!r} is not supported (channels_last only)"
    if any(d != 1 for d in np.atleast_1d(cfg.get("dilation_rate", 1))):
        return f"dilation_rate {cfg.get('dilation_rate')} is not supported (1 only)"
    if int(cfg.get("depth_multiplier", 1)) != 1:  # nnet_sepconv*_latency.h asserts n_filt == n_chan
        return f"depth_multiplier={cfg.get('depth_multiplier')} is not supported (hls4ml's depthwise kernels take 1)"
    padding = cfg.get("padding", "valid")
    if padding not in ("valid", "same"):
        return f"padding {padding!r} is not supported (valid or same)"
    act = cfg.get("activation", "linear")
    if act not in PLAIN_ACTIVATIONS and not _quantizer_ok(act, ("quantized_relu", "quantized_bits")):
        return f"activation {act!r} is not supported (linear, relu, quantized_relu or quantized_bits)"
    for key in quantizer_keys:
        reason = weight_quantizer_problem(cfg.get(key), key)
        if reason:
            return reason
    return None


def _conv_check(*quantizer_keys: str):
    return lambda cfg: _conv_config_problem(cfg, quantizer_keys)


keras_check("DepthwiseConv1D", "SeparableConv1D", "DepthwiseConv2D", "SeparableConv2D")(_conv_check())
keras_check("QDepthwiseConv2D")(_conv_check("depthwise_quantizer", "bias_quantizer"))
keras_check("QSeparableConv1D", "QSeparableConv2D")(_conv_check("depthwise_quantizer", "pointwise_quantizer",
                                                                "bias_quantizer"))


@keras_check("QConv2DBatchnorm")
def _folded_conv_config(cfg: dict) -> str | None:
    """QKeras's QConv2DBatchnorm: a QConv2D with its batch norm folded into the weights (at inference both
    folding modes fold the moving statistics, as hls4ml's Conv2DBatchnorm does); the norm's axis must be the
    channels."""
    if cfg.get("axis", -1) not in (-1, 3, [-1], [3]):
        return f"batch norm axis {cfg.get('axis')} is not the channel axis"
    return _conv_config_problem(cfg, ("kernel_quantizer", "bias_quantizer"))


def _rank(layer) -> int:
    return 2 if any(c.__name__ == "Conv2D" for c in type(layer).__mro__) else 1


@maps(("DepthwiseConv1D", "DepthwiseConv2D"), ("DepthwiseConv1D", "DepthwiseConv2D", "QDepthwiseConv2D"))
def depthwise_convolution(layer, ctx: Context) -> list[Op]:
    """nnet_sepconv1d_latency.h / nnet_sepconv2d_latency.h's depthwise_conv_*_latency_cl: channel c of each window
    times its own kernel, summed in accum_t from the bias. That is a convolution whose (cells x channels, filters)
    weight matrix is zero off the channel diagonal: a zero product adds nothing, so every sum is the same (and
    the RTL's constant products skip zeros)."""
    rank = _rank(layer)
    n_chan, n_filt = int(layer.get_attr("n_chan")), int(layer.get_attr("n_filt"))
    if n_filt != n_chan:
        ctx.fail(layer, f"{n_filt} filters over {n_chan} channels: hls4ml's depthwise kernel takes a depth "
                        "multiplier of 1 only")
    out = output_type(layer, ctx)
    per_channel, wf = layer_weights(layer, ctx)
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    per_channel = per_channel.reshape(-1, n_chan)  # weights[cell * n_chan + c]
    w = np.zeros((per_channel.shape[0] * n_chan, n_chan), dtype=np.int64)
    for c in range(n_chan):
        w[c::n_chan, c] = per_channel[:, c]
    b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
    op = (Conv2D if rank == 2 else Conv1D)(layer.name, ctx.previous, out, weight=w, bias=b, weight_fmt=wf,
                                           bias_fmt=bf, accum_fmt=af, **_window(layer, ctx, rank, "filt"))
    axes = ("width",) if rank == 1 else ("height", "width")
    if op.geometry.out_spatial != tuple(int(layer.get_attr(f"out_{a}")) for a in axes):
        ctx.fail(layer, f"output size {op.geometry.out_spatial} differs from hls4ml's")
    return [op]


@maps(("SeparableConv1D", "SeparableConv2D"), ("SeparableConv1D", "SeparableConv2D", "QSeparableConv1D",
                                               "QSeparableConv2D"))
def separable_convolution(layer, ctx: Context) -> list[Op]:
    """hls4ml 1.3 splits a separable convolution into <name>_depthwise and <name>_pointwise layers
    (its SeparableToDepthwiseAndConv pass) before this point, each mapped above; an unsplit one is not expected."""
    ctx.fail(layer, "hls4ml did not split this separable convolution into depthwise and pointwise layers")


@maps(("Conv2DBatchnorm",), ("QConv2DBatchnorm",))
def folded_convolution(layer, ctx: Context) -> list[Op]:
    """hls4ml's Conv2DBatchnorm (QKeras QConv2DBatchnorm): a Conv2D whose weights and bias hls4ml folded with the
    batch norm's moving statistics and quantized with the layer's quantizers (Conv2DBatchnorm._get_folded_weights);
    the converted layer holds them, so it is the convolution mapping's."""
    return convolution(layer, ctx)


# QBatchNormalization's parameter quantizers (QKeras 0.9 defaults: po2 for beta and the mean, relu_po2 for gamma
# and the variance). hls4ml 1.3 ignores them (BatchNormalization.initialize folds the stored floats); the network
# frontend stores the quantized parameters first (network._prequantize_batchnorm), as QKeras computes with them.
BATCHNORM_QUANTIZERS = ("quantized_bits", "quantized_relu", "quantized_po2", "quantized_relu_po2")


@keras_check("QBatchNormalization")
def _qbatchnorm_config(cfg: dict) -> str | None:
    from trigger.frontends.keras import _describe, _quantizer_ok

    for key in ("gamma_quantizer", "beta_quantizer", "mean_quantizer", "variance_quantizer"):
        q = cfg.get(key)
        if q is None:
            continue
        if not _quantizer_ok(q, BATCHNORM_QUANTIZERS):
            return f"{key} {_describe(q)} is not supported ({', '.join(BATCHNORM_QUANTIZERS)})"
        if isinstance(q, dict) and (q.get("config") or {}).get("use_stochastic_rounding") or \
                isinstance(q, str) and "use_stochastic_rounding=True" in q.replace(" ", ""):
            return f"{key} with use_stochastic_rounding is not supported (random rounding)"
    if cfg.get("activation") not in (None, "linear"):  # QKeras 0.9 stores it but never applies it; hls4ml would
        return f"activation {cfg.get('activation')!r} is not supported (QKeras ignores it, hls4ml applies it)"
    return None


@maps(("Embedding",), ("Embedding",))
def embedding(layer, ctx: Context) -> list[Op]:
    """nnet_embed.h's embedding: the ids must be an unsigned integer format inside the vocabulary."""
    from trigger.ir.ops.embedding import Embedding

    vocab, n_out = int(layer.get_attr("vocab_size")), int(layer.get_attr("n_out"))
    fmt = ctx.previous.format
    if fmt.signed or fmt.fractional != 0 or fmt.max_raw >= vocab:
        ctx.fail(layer, f"ids in {fmt.cpp} can fall outside the vocabulary of {vocab}, where nnet_embed.h reads "
                        f"outside its table: give the input an unsigned integer format of at most "
                        f"{vocab.bit_length() - 1} bits (hls.input_precision 'uint<{max(vocab.bit_length() - 1, 1)}>')")
    var = layer.get_weights("embeddings")
    table_fmt = fixed_format(var.type.precision, ctx, layer)
    table = weight_raw(var, table_fmt).reshape(vocab, n_out)
    return [Embedding(layer.name, ctx.previous, output_type(layer, ctx), table, table_fmt)]


@keras_check("Embedding")
def _embedding_config(cfg: dict) -> str | None:
    if cfg.get("mask_zero"):
        return "mask_zero=True is not supported (hls4ml ignores masks: layers after it would compute something else)"
    return None


@maps(("LayerNormalization",), ("LayerNormalization",))
def layer_normalization(layer, ctx: Context) -> list[Op]:
    """nnet_layernorm.h's layernormalize over the last axis of a (seq_len, dim) input."""
    from trigger.frontends.hls4ml_tables import activation_table
    from trigger.ir.ops.layer_norm import LayerNorm

    seq_len = int(layer.get_attr("seq_len"))
    if ctx.previous.n % seq_len:
        ctx.fail(layer, f"{ctx.previous.n} inputs are not {seq_len} rows")
    dim = ctx.previous.n // seq_len
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    tf_ = fixed_format(layer.get_attr("table_t").precision, ctx, layer)
    sf = fixed_format(layer.get_weights("scale").type.precision, ctx, layer)
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    size, power2 = int(layer.get_attr("table_size")), int(layer.get_attr("table_range_power2", 0))
    eps = int(layer.get_attr("epsilon_power_of_10"))
    if size < 2 or size & (size - 1):
        ctx.fail(layer, f"table_size {size} is not a power of two")
    table = activation_table("invert_sqr", size, tf_, layernorm=(eps, power2))
    k_inv = int(af.quantize([1.0 / dim])[0])  # const accum_t k_inv = 1.0 / dim
    return [LayerNorm(layer.name, ctx.previous, output_type(layer, ctx), seq_len,
                      weight_raw(layer.get_weights("scale"), sf).reshape(-1),
                      weight_raw(layer.get_weights("bias"), bf).reshape(-1), table, sf, bf, af, tf_, k_inv, power2)]


@keras_check("LayerNormalization")
def _layer_norm_config(cfg: dict) -> str | None:
    """What hls4ml's parser converts: the last axis of a (sequence, features) input, centred and scaled."""
    axis = cfg.get("axis", -1)
    if list(np.atleast_1d(axis)) not in ([2], [-1]):
        return f"axis {axis} is not supported (hls4ml normalises the last axis of a (sequence, features) input)"
    if not cfg.get("center", True) or not cfg.get("scale", True):
        return "center=False or scale=False is not supported (hls4ml reads both beta and gamma)"
    epsilon = cfg.get("epsilon", 1e-3)
    if not isinstance(epsilon, (int, float)) or not 0 < epsilon < 0.3:
        return f"epsilon {epsilon} is not supported (hls4ml takes 0 < epsilon < 0.3, as a power of ten)"
    return None


# ------------------------------------------------------------------ QKeras weight quantizers hls4ml types specially (issue 23)
def _is_xnor(precision) -> bool:
    """hls4ml's XnorPrecisionType (binary data or weights, printed ap_uint<1>); the backend's type classes
    subclass hls4ml's, so by name along the MRO."""
    return any(c.__name__ == "XnorPrecisionType" for c in type(precision).__mro__)


def layer_weights(layer, ctx: Context, name: str = "weight",
                  binary_input: bool = False) -> tuple[np.ndarray, FixedFormat]:
    """A layer's weights as the values nnet_mult.h's product multiplies by: (raw integers, their format).

    hls4ml picks the product from the weight type (FPGABackend.product_type): ``weight_binary`` for
    QKeras ``binary`` kernels (XnorPrecisionType: 0 stands for -1, ``w == 0 ? -a : a``),
    ``weight_exponential`` for ``quantized_po2`` ones (``x << exponent``, negated for sign 0),
    ``weight_ternary`` / ``mult`` otherwise (exact products either way). Each is a product by a
    constant, exact before the cast to accum_t, so the ops hold the constant: +-1 in ``int<2>``,
    +-2**e in a fixed format that holds it. An ``ap_uint<1>`` input (a binary activation hls4ml
    merged with a batch norm) takes the ``data_binary`` product instead, which is not supported.
    """
    var = layer.get_weights(name)
    kind = "ExponentPrecisionType" if var.weight_class == "ExponentWeightVariable" else \
        type(var.type.precision).__name__
    if _is_xnor(var.type.precision):
        kind = "XnorPrecisionType"
    if _is_xnor(layer.get_input_variable().type.precision) and not binary_input:
        ctx.fail(layer, "its ap_uint<1> (binary) input takes nnet_mult.h's data_binary product, which is supported "
                        "for Dense layers only")
    one_bit = all(f.width == 1 and not f.signed and f.fractional == 0 for f in ctx.previous.formats)
    if kind == "XnorPrecisionType" and one_bit and not binary_input:
        ctx.fail(layer, "binary weights on an ap_uint<1> input take nnet_mult.h's both-binary cast, which is not "
                        "supported")
    if kind == "XnorPrecisionType":
        bits = weight_raw(var, FixedFormat(1, 1, False))
        return 2 * bits - 1, FixedFormat(2, 2, True)
    if kind == "ExponentPrecisionType":
        return _power_of_two_weights(var, layer, ctx)
    fmt = fixed_format(var.type.precision, ctx, layer)
    return weight_raw(var, fmt), fmt


def _power_of_two_weights(var, layer, ctx: Context) -> tuple[np.ndarray, FixedFormat]:
    """``quantized_po2`` weights (ExponentWeightVariable: sign and exponent) as fixed-point +-2**e.

    nnet_mult.h's weight_exponential casts x to r_T = ap_fixed<2(We+Wx), We+Wx>, shifts it by the
    exponent and negates it for sign 0: exactly x * (+-2**e) wherever x * 2**e fits r_T, which is
    checked here for every exponent (as for a power-of-two scale)."""
    data = np.asarray(var.data, dtype=np.float64)
    flat = data.reshape(-1)
    if np.any(flat == 0):
        ctx.fail(layer, "has a zero power-of-two weight (hls4ml writes log2(0) as its exponent)")
    exps = np.round(np.log2(np.abs(flat))).astype(np.int64)
    if not np.array_equal(np.ldexp(np.sign(flat), exps), flat):
        ctx.fail(layer, "has a quantized_po2 weight that is not a power of two")
    raw, fmt = _signed_powers_of_two(flat, exps, var, layer, ctx, "weight exponents")
    return raw.reshape(data.shape), fmt


# ------------------------------------------------------------------ QKeras binary / ternary / leaky activations (issue 23)
@activation_op("binary_tanh")
def binary_tanh(layer, ctx: Context) -> list[Op]:
    """nnet_activation.h's binary_tanh (QKeras ``binary`` activation): ``x >= 0 ? 1 : -1`` cast to res_T."""
    from trigger.ir.ops.sign_threshold import SignThreshold

    out = output_type(layer, ctx)
    if any(not f.signed or f.integer < 2 for f in out.formats):
        ctx.fail(layer, f"binary_tanh into {out.format.cpp}: only a result type that holds -1 and +1 is supported")
    zero = np.zeros(ctx.previous.n, dtype=np.int64)
    return [SignThreshold(layer.name, ctx.previous, out, zero, zero)]


def _ternary_threshold(layer, ctx: Context) -> list[Op]:
    """hls4ml's BatchNormalizationQuantizedTanh with quantize=3 (a QKeras ``ternary`` activation after the scale
    hls4ml's ExtractTernaryThreshold inserts, merged): nnet_batchnorm.h's normalize_ternary_tanh,
    ``x > hi ? 1 : (x <= lo ? -1 : 0)`` with hi and lo held in the input type (per filter: ``ii % n_filt``)."""
    from trigger.ir.ops.sign_threshold import SignThreshold

    hi = weight_raw(layer.get_weights("threshold_hi"), ctx.previous.format).reshape(-1)
    lo = weight_raw(layer.get_weights("threshold_lo"), ctx.previous.format).reshape(-1)
    n, n_filt = ctx.previous.n, int(layer.get_attr("n_filt", -1) or -1)
    if n_filt not in (-1, n) and hi.size == lo.size == n_filt and n % n_filt == 0:
        hi, lo = np.tile(hi, n // n_filt), np.tile(lo, n // n_filt)
    if hi.size != n or lo.size != n:
        ctx.fail(layer, f"has {hi.size} thresholds for {n} values")
    if np.any(lo > hi):
        ctx.fail(layer, "has a lower ternary threshold above its upper one")
    # hls4ml names the merged layer bnbt_<activation>_scale; without the prefix the op carries the QKeras
    # activation's name, so the layer-by-layer comparison finds it
    name = layer.name[len("bnbt_"):] if layer.name.startswith("bnbt_") else layer.name
    return [SignThreshold(name, ctx.previous, output_type(layer, ctx), hi + 1, lo + 1)]


@activation_op("leaky_relu")
def quantized_leaky_relu(layer, ctx: Context) -> list[Op]:
    """QKeras ``quantized_relu(..., negative_slope=s)``: hls4ml converts it to a LeakyReLU with alpha = s
    (nnet_activation.h's leaky_relu, alpha the double literal converted to param_t)."""
    alpha_fmt = fixed_format(layer.get_attr("param_t").precision, ctx, layer)
    alpha = int(alpha_fmt.quantize([float(layer.get_attr("activ_param"))])[0])
    return [LeakyRelu(layer.name, ctx.previous, output_type(layer, ctx), alpha, alpha_fmt)]


@maps(("HardActivation",))
def hard_activation(layer, ctx: Context) -> list[Op]:
    """hls4ml's HardActivation (QKeras ``quantized_tanh`` / ``quantized_sigmoid``): nnet_activation.h's hard_tanh /
    hard_sigmoid with slope = shift = 1/2, i.e. clip(x, -1, 1) / clip(x / 2 + 1 / 2, 0, 1) cast to res_T
    (trigger.ir.ops.hard_tanh)."""
    from trigger.ir.ops.hard_tanh import HardTanh

    act = str(layer.get_attr("activation")).lower()
    if act not in ("hard_tanh", "hard_sigmoid"):
        ctx.fail(layer, f"hard activation {act!r} is not supported (hard_tanh, hard_sigmoid)")
    for what in ("slope", "shift"):
        value = float(layer.get_attr(what))
        prec = layer.get_attr(f"{what}_t") or layer.get_attr(f"{what}_prec")
        fmt = fixed_format(getattr(prec, "precision", prec), ctx, layer)
        if value != 0.5 or float(fmt.to_float(fmt.quantize([value]))[0]) != 0.5:
            ctx.fail(layer, f"{what} {value:g} in {fmt.cpp}: only hls4ml's 1/2 (held exactly) is supported")
    return [HardTanh(layer.name, ctx.previous, output_type(layer, ctx), act[len("hard_"):])]


# ------------------------------------------------------------------ recurrent layers (nnet_recurrent.h)
# hls4ml's io_parallel LSTM and GRU (lstm_stack / gru_stack with lstm_static / gru_static) unrolled over the
# sequence into ops the firmware model already has: per time step, the input slice (gather), the two dense
# products (nnet_dense_latency, result accum_t), their sum (assigned to accum_t), the sigmoid / tanh tables, and
# the gate products and state updates with the casts the C++ makes. The state starts at 0 (reset_state), so the
# recurrent products of the first step are their biases, cast to accum_t.
RECURRENT_ACTIVATIONS = ("sigmoid", "tanh")


class _Unrolled:
    """Ops of one recurrent layer and what each reads (``ctx.reads``), named ``<layer>_t<step>_<part>``."""

    def __init__(self, layer, ctx: Context):
        self.layer, self.ctx, self.ops = layer, ctx, []

    def add(self, op: Op, *reads) -> Op:
        op.hls4ml_layer = self.layer.name  # the hls4ml layer whose types these are (network.accumulators_to_widen)
        self.ctx.reads[op.name] = [r if isinstance(r, str) else r.name for r in reads]
        self.ops.append(op)
        return op

    def gather(self, name: str, source, index) -> Op:
        from trigger.ir.ops.gather import Gather

        src = source if isinstance(source, TensorType) else source.output
        index = np.asarray(index, dtype=np.int64)
        return self.add(Gather(name, src, TensorType.uniform(src.format, index.size), index, "slice"),
                        Context.INPUT if isinstance(source, TensorType) else source)

    def merge(self, name: str, operation: str, a: Op, b: Op, fmt: FixedFormat) -> Op:
        from trigger.ir.model import join
        from trigger.ir.ops.merge import Merge

        return self.add(Merge(name, join([a.output, b.output]), TensorType.uniform(fmt, a.output.n), operation,
                              [a.output.n, b.output.n]), a, b)

    def scale(self, name: str, source: Op, scale, bias, scale_fmt: FixedFormat, bias_fmt: FixedFormat,
              fmt: FixedFormat) -> Op:
        """``fmt(x * scale + bias)`` per element (nnet_batchnorm's arithmetic: exact, then one cast)."""
        n = source.output.n
        return self.add(Scale(name, source.output, TensorType.uniform(fmt, n),
                              np.broadcast_to(np.asarray(scale, dtype=np.int64), (n,)).copy(),
                              np.broadcast_to(np.asarray(bias, dtype=np.int64), (n,)).copy(), scale_fmt, bias_fmt),
                        source)


def _recurrent_parts(layer, ctx: Context, gates: int) -> dict:
    """What every recurrent mapping reads from the converted layer: sizes, formats, weights, tables."""
    from trigger.frontends.hls4ml_tables import activation_table

    if layer.get_attr("return_state", False) or layer.get_attr("pass_initial_states", False):
        ctx.fail(layer, "return_state / initial states are not supported")
    if layer.get_attr("direction", "forward") != "forward" or layer.get_attr("time_major", False):
        ctx.fail(layer, "only a forward, batch-major recurrent layer is supported")
    if "pytorch" in layer.attributes.keys():
        ctx.fail(layer, "the PyTorch gate order is not supported")
    acts = {k: str(layer.get_attr(k)).lower() for k in ("activation", "recurrent_activation")}
    for key, act in acts.items():
        if act not in RECURRENT_ACTIVATIONS:
            ctx.fail(layer, f"{key} {act!r} is not supported (sigmoid or tanh: hls4ml's tables)")
    n_seq, n_in, n = (int(layer.get_attr(k)) for k in ("n_timesteps", "n_in", "n_out"))
    if ctx.previous.n != n_seq * n_in:
        ctx.fail(layer, f"{ctx.previous.n} inputs are not {n_seq} steps of {n_in}")
    fmt = {k: fixed_format(layer.get_weights(k).type.precision, ctx, layer)
           for k in ("weight", "recurrent_weight", "bias", "recurrent_bias")}
    w = weight_raw(layer.get_weights("weight"), fmt["weight"]).reshape(n_in, gates * n)
    wr = weight_raw(layer.get_weights("recurrent_weight"), fmt["recurrent_weight"]).reshape(n, gates * n)
    b = weight_raw(layer.get_weights("bias"), fmt["bias"]).reshape(gates * n)
    br = weight_raw(layer.get_weights("recurrent_bias"), fmt["recurrent_bias"]).reshape(gates * n)
    size = int(layer.get_attr("table_size"))
    table_fmt = fixed_format(layer.get_attr("table_t").precision, ctx, layer)
    if size < 2 or size & (size - 1):
        ctx.fail(layer, f"table_size {size} is not a power of two")
    tables = {k: (Sigmoid if act == "sigmoid" else Tanh, activation_table(act, size, table_fmt))
              for k, act in acts.items()}
    out = output_type(layer, ctx)
    sequences = bool(layer.get_attr("return_sequences", False))
    if out.n != (n_seq if sequences else 1) * n:
        ctx.fail(layer, f"output of {out.n} values is not {'every step' if sequences else 'the last step'} of {n}")
    accum = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    if not accum == out.format == ctx.previous.format:
        ctx.fail(layer, f"input {ctx.previous.format.cpp}, accum {accum.cpp} and result {out.format.cpp} differ: "
                        "nnet_recurrent.h's lstm/gru (compiled by every lstm_stack/gru_stack) pass accum_t and res_T "
                        "arrays where they declare res_T and data_T, so hls4ml's C++ compiles only when the three are "
                        "one format")
    return dict(n_seq=n_seq, n_in=n_in, n=n, fmt=fmt, w=w, wr=wr, b=b, br=br, tables=tables, table_fmt=table_fmt,
                accum=accum, res=out.format, sequences=sequences)


def _no_saturating_overflow(layer, ctx: Context, dense: Dense) -> Dense:
    """A dense part of a recurrent layer whose accumulator can overflow must wrap (exact in the RTL); it cannot be
    widened, because it is the layer's result type, the state the recurrent product reads."""
    plan = dense.plan()
    if (plan["product_can_overflow"] or plan["sum_can_overflow"]) and dense.accum_fmt.overflow != "WRAP":
        ctx.fail(layer, f"accum {dense.accum_fmt.cpp} (its result type too) can overflow in {dense.name} and "
                        "saturates: give a WRAP accum/result, or weights whose sum of magnitudes per unit keeps the "
                        "state's products inside it")
    return dense


def _activate(g: _Unrolled, name: str, which: str, source: Op, p: dict, fmt: FixedFormat) -> Op:
    cls, table = p["tables"][which]
    return g.add(cls(name, source.output, TensorType.uniform(fmt, source.output.n), table, p["table_fmt"]), source)


def _step_inputs(g: _Unrolled, t: int, h, p: dict, gates: int) -> tuple[Op, Op | None]:
    """x_t's dense product and h_{t-1}'s (None at t = 0: h is 0, the product is the recurrent bias)."""
    name, n, n_in, a = g.layer.name, p["n"], p["n_in"], p["accum"]
    x = g.gather(f"{name}_t{t}_x", g.ctx.previous, np.arange(t * n_in, (t + 1) * n_in))
    dx = g.add(_no_saturating_overflow(g.layer, g.ctx, Dense(
        f"{name}_t{t}_wx", x.output, TensorType.uniform(a, gates * n), p["w"], p["b"], p["fmt"]["weight"],
        p["fmt"]["bias"], a)), x)
    if h is None:
        return dx, None
    dh = g.add(_no_saturating_overflow(g.layer, g.ctx, Dense(
        f"{name}_t{t}_wh", h.output, TensorType.uniform(a, gates * n), p["wr"], p["br"],
        p["fmt"]["recurrent_weight"], p["fmt"]["recurrent_bias"], a)), h)
    return dx, dh


def _plus_recurrent_bias(g: _Unrolled, name: str, source: Op, bias: np.ndarray, p: dict) -> Op:
    """accum_t(source + accum_t(bias)): the sum with the recurrent product of a zero state."""
    a = p["accum"]
    return g.scale(name, source, 1, a.cast(bias, p["fmt"]["recurrent_bias"]), FixedFormat(2, 2, True), a, a)


def _sequence_output(g: _Unrolled, states: list, p: dict) -> None:
    """return_sequences: every step's state, one after another (nnet_recurrent.h's res), as the last op."""
    from trigger.ir.model import join
    from trigger.ir.ops.concatenate import Concatenate

    if not p["sequences"]:
        return
    out = states[0]
    for t, h in enumerate(states[1:], 1):
        n1, n2 = out.output.n, h.output.n
        out = g.add(Concatenate(f"{g.layer.name}_seq{t}", join([out.output, h.output]),
                                TensorType.uniform(p["res"], n1 + n2), [n1, n2], np.arange(n1 + n2)), out, h)
    if len(states) == 1:
        g.gather(f"{g.layer.name}_seq", states[0], np.arange(p["n"]))


@maps(("LSTM",), ("LSTM", "QLSTM"))
def lstm(layer, ctx: Context) -> list[Op]:
    """nnet_recurrent.h's lstm_stack / lstm_static, step by step (Keras gate order i, f, c, o)::

        acc = accum(Wx x + b) + accum(Wh h + br)         (each dense: nnet_dense_latency into accum_t)
        i, f, o = sigmoid(acc[i, f, o]); c~ = tanh(acc[c])  (tables; accum_t results)
        s = res_T(c~ * i + s * f);  h = res_T(o * tanh(s))  (tanh of res_T into accum_t)
    """
    p = _recurrent_parts(layer, ctx, 4)
    g, n, a, r = _Unrolled(layer, ctx), p["n"], p["accum"], p["res"]
    h = s = None
    states = []
    for t in range(p["n_seq"]):
        tag = f"{layer.name}_t{t}_"
        dx, dh = _step_inputs(g, t, h, p, 4)
        acc = (_plus_recurrent_bias(g, tag + "acc", dx, p["br"], p) if dh is None
               else g.merge(tag + "acc", "add", dx, dh, a))
        ifo = _activate(g, tag + "ifo", "recurrent_activation",
                        g.gather(tag + "ifo_in", acc, np.r_[0:2 * n, 3 * n:4 * n]), p, a)
        c = _activate(g, tag + "c", "activation", g.gather(tag + "c_in", acc, np.arange(2 * n, 3 * n)), p, a)
        i, o = (g.gather(tag + k, ifo, np.arange(j * n, (j + 1) * n)) for j, k in ((0, "i"), (2, "o")))
        ci = g.merge(tag + "ci", "multiply", c, i, a.product_format(a))
        if s is None:  # s * f of the zero state
            s = g.add(Linear(tag + "s", ci.output, TensorType.uniform(r, n)), ci)
        else:
            f = g.gather(tag + "f", ifo, np.arange(n, 2 * n))
            sf = g.merge(tag + "sf", "multiply", s, f, r.product_format(a))
            s = g.merge(tag + "s", "add", ci, sf, r)
        sa = _activate(g, tag + "sa", "activation", s, p, a)
        h = g.merge(tag + "h", "multiply", o, sa, r)
        states.append(h)
    _sequence_output(g, states, p)
    return g.ops


@maps(("GRU",), ("GRU", "QGRU"))
def gru(layer, ctx: Context) -> list[Op]:
    """nnet_recurrent.h's gru_stack / gru_static, step by step (Keras gate order z, r, h; reset after)::

        zr = sigmoid(accum(accum(Wx x + b)[z, r] + accum(Wh h + br)[z, r]))
        hh = tanh(accum(accum(Wx x + b)[h] + accum(r * accum(Wh h + br)[h])))
        h  = res_T(hh * (1 - z) + h * z)
    """
    p = _recurrent_parts(layer, ctx, 3)
    if str(layer.get_attr("apply_reset_gate", "after")) != "after":
        ctx.fail(layer, "reset_after=False is not supported (nnet_recurrent.h's gru applies the reset gate after the "
                        "recurrent product, as reset_after=True)")
    g, n, a, r = _Unrolled(layer, ctx), p["n"], p["accum"], p["res"]
    one = FixedFormat(2, 2, True)  # the literals 1 and -1
    h = None
    states = []
    for t in range(p["n_seq"]):
        tag = f"{layer.name}_t{t}_"
        dx, dh = _step_inputs(g, t, h, p, 3)
        x_zr = g.gather(tag + "x_zr", dx, np.arange(2 * n))
        x_h = g.gather(tag + "x_h", dx, np.arange(2 * n, 3 * n))
        if dh is None:
            acc_zr = _plus_recurrent_bias(g, tag + "acc_zr", x_zr, p["br"][:2 * n], p)
        else:
            acc_zr = g.merge(tag + "acc_zr", "add", x_zr, g.gather(tag + "h_zr", dh, np.arange(2 * n)), a)
        zr = _activate(g, tag + "zr", "recurrent_activation", acc_zr, p, a)
        z, rg = (g.gather(tag + k, zr, np.arange(j * n, (j + 1) * n)) for j, k in enumerate("zr"))
        if dh is None:  # r * accum(br_h)
            rh = g.scale(tag + "rh", rg, a.cast(p["br"][2 * n:], p["fmt"]["recurrent_bias"]), 0, a, one, a)
        else:
            rh = g.merge(tag + "rh", "multiply", rg, g.gather(tag + "h_h", dh, np.arange(2 * n, 3 * n)), a)
        hh = _activate(g, tag + "hh", "activation", g.merge(tag + "acc_h", "add", x_h, rh, a), p, a)
        minus = FixedFormat(a.width + 2, a.integer + 2, True)  # 1 - z, exact
        one_minus_z = g.scale(tag + "1mz", z, -1, 1, one, one, minus)
        if h is None:
            h = g.merge(tag + "h", "multiply", hh, one_minus_z, r)
        else:
            keep = g.merge(tag + "hz", "multiply", h, z, r.product_format(a))
            new = g.merge(tag + "hn", "multiply", hh, one_minus_z, a.product_format(minus))
            h = g.merge(tag + "h", "add", new, keep, r)
        states.append(h)
    _sequence_output(g, states, p)
    return g.ops


@maps(("SimpleRNN",), ("SimpleRNN", "QSimpleRNN"))
def simple_rnn(layer, ctx: Context) -> list[Op]:
    ctx.fail(layer, SIMPLE_RNN_MISSING)


SIMPLE_RNN_MISSING = ("not supported: hls4ml 1.3's Vivado/Vitis backends have no SimpleRNN implementation "
                      "(nnet_recurrent.h has LSTM and GRU only; the project hls4ml writes leaves the layer out)")


@keras_check("SimpleRNN", "QSimpleRNN")
def _simple_rnn_config(cfg: dict) -> str | None:
    return SIMPLE_RNN_MISSING


def _recurrent_types(layer, prec: dict, names: dict) -> None:
    """hls4ml 1.3 compiles an LSTM/GRU only with its input, accum and result of one format: give accum and result
    the format of the layer's input (an input port's, or the layer before it's result) when that one is known."""
    source = layer.input._keras_history[0]
    entry = (names.get(source.name) or {}).get("Precision")
    fmt = entry.get("result") if isinstance(entry, dict) else entry
    if fmt and fmt != "auto":
        prec["result"] = prec["accum"] = fmt


for _cls in ("LSTM", "GRU", "QLSTM"):
    HLS_CONFIG[_cls] = _recurrent_types


@keras_check("QGRU")
def _qgru_config(cfg: dict) -> str | None:
    """QKeras 0.9's QGRUCell calls tf.nest.is_sequence, which TensorFlow 2.14 no longer has: Keras cannot build it."""
    return ("not supported: QKeras 0.9's QGRU cannot be built with TensorFlow 2.14 (its cell calls "
            "nest.is_sequence, removed from TensorFlow); a GRU with quantized weights can be given as a Keras GRU "
            "whose weights hold the quantized values")


@keras_check("LSTM", "GRU", "QLSTM")
def _recurrent_config(cfg: dict) -> str | None:
    """What hls4ml's recurrent parser converts as the layer computes it (QKeras: quantized_bits weights, no state
    quantizer, plain sigmoid / tanh activations, which hls4ml tabulates like the float layer's)."""
    from trigger.frontends.keras import _describe, _quantizer_ok

    for key in ("kernel_quantizer", "recurrent_quantizer", "bias_quantizer"):
        q = cfg.get(key)
        if q is not None and not _quantizer_ok(q, ("quantized_bits",)):
            return f"{key} {_describe(q)} is not supported (quantized_bits only)"
    if cfg.get("state_quantizer") is not None:
        return "state_quantizer is not supported (hls4ml's LSTM/GRU state has the layer's result type)"
    for key in ("return_state", "go_backwards", "stateful", "time_major"):
        if cfg.get(key):
            return f"{key}=True is not supported (hls4ml converts a forward, stateless layer returning its output)"
    if not cfg.get("use_bias", True):
        return "use_bias=False is not supported (hls4ml reads the bias)"
    for key, default in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        act = cfg.get(key, default)
        if act not in RECURRENT_ACTIVATIONS:
            return f"{key} {_describe(act)} is not supported (sigmoid or tanh: hls4ml's tables)"
    if "reset_after" in cfg and not cfg["reset_after"]:
        return "reset_after=False is not supported (hls4ml's gru applies the reset gate after the recurrent product)"
    return None


def _ceillog2(x: int) -> int:
    """nnet_helpers.h's ceillog2 (1 for x <= 2)."""
    return 1 if x <= 2 else 1 + _ceillog2((x + 1) // 2)


def binary_input_dense(layer, ctx: Context) -> list[Op]:
    """A Dense layer on binary data (XnorPrecisionType ap_uint<1>, 1 for +1 and 0 for -1: a binary activation hls4ml
    merged with a batch norm), as nnet_dense_latency.h with nnet_mult.h's products and cast:
    - ``data_binary`` (other weights): each product is ``a == 0 ? -w : w`` and the sum is cast to res_T;
    - ``both_binary`` (binary weights): each product is ``a == w`` (a match counts 1), the accumulator starts
      from the bias, and nnet_mult.h's cast returns ``ap_int<ceillog2(n_in) + 2>(acc * 2 - n_in)``, which res_T
      then holds: 2 * bias + the sum of the +-1 products, wrapped to that integer width.
    Ops: ``<name>_sign`` (0/1 to -1/+1), the dense sum ``<name>`` (over +-1 data; bias doubled for both_binary,
    in an accumulator that holds it, which network.special_weight_sums_to_type_exactly ensures), then for
    both_binary the ``ap_int`` cast ``<name>_int`` and ``<name>_res`` to res_T."""
    from trigger.ir.ops.activation import Linear

    n = ctx.previous.n
    pm1 = FixedFormat(2, 2, True)
    sign = Scale(f"{layer.name}_sign", ctx.previous, TensorType.uniform(pm1, n), np.full(n, 2), np.full(n, -1),
                 FixedFormat(3, 3, True), pm1)
    out = output_type(layer, ctx)
    w, wf = layer_weights(layer, ctx, binary_input=True)
    bf = fixed_format(layer.get_weights("bias").type.precision, ctx, layer)
    af = fixed_format(layer.get_attr("accum_t").precision, ctx, layer)
    b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
    if w.shape != (int(layer.get_attr("n_in")), int(layer.get_attr("n_out"))) or w.shape[0] != n:
        ctx.fail(layer, f"weight shape {w.shape} is not (n_in, n_out)")
    if not _is_xnor(layer.get_weights("weight").type.precision):  # data_binary
        return [sign, Dense(layer.name, sign.output, out, w, b, wf, bf, af)]
    if bf.fractional > 0 and np.any(b % (1 << bf.fractional)):
        ctx.fail(layer, "binary weights on binary data with a fractional bias: nnet_mult.h's integer cast of "
                        "2 * (bias + matches) - n_in is not supported")
    width = _ceillog2(n) + 2
    int_fmt = FixedFormat(width, width, True, "TRN", "WRAP")
    bf2 = FixedFormat(bf.width + 1, bf.integer + 1, bf.signed, bf.rounding, bf.overflow)
    total = Dense(layer.name, sign.output, TensorType.uniform(af, out.n), w, 2 * b, wf, bf2, af)
    as_int = Linear(f"{layer.name}_int", total.output, TensorType.uniform(int_fmt, out.n))
    return [sign, total, as_int, Linear(f"{layer.name}_res", as_int.output, out)]
