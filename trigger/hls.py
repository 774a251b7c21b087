"""The hls4ml bridge: convert a validated network, extract the firmware model, run the C simulation.

hls4ml's precision inference decides every tensor's type; this module reads the
types back (``layer.types`` and the output variables) into the firmware IR so the
emulator and the RTL use exactly what the HLS C++ computes. Weights are read the
way the generated C++ reads them: hls4ml prints each value with as many decimals
as the weight type has fractional bits, and ``ap_fixed(double)`` quantizes that
literal; ``FixedFormat.quantize`` of the same double is the same raw integer.

Accumulators: hls4ml's ``auto`` accumulators are exact. Any accumulator (auto or
user-given) whose range cannot hold the worst-case sum over the input format's
range is widened and the model converted again, so no accumulator can overflow.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path

import numpy as np

from trigger.firmware.model import Activation, Dense, FirmwareModel, Scale
from trigger.fixed import MAX_WIDTH, FixedFormat
from trigger.models import LoadedModel, load_model

DEFAULTS = {
    "backend": "Vitis",  # or "Vivado"
    "io_type": "io_parallel",
    "strategy": "Latency",
    "reuse_factor": 1,
    "part": "xcvu13p-flga2577-2-e",
    "clock_period_ns": 5.0,
    "project_name": "myproject",
    "input_precision": "fixed<16,6>",
    # Post-training quantization of float models: the formats weights, biases and layer outputs get.
    "ptq": {"weight": "fixed<16,6>", "bias": "fixed<16,6>", "result": "fixed<16,6,RND_CONV,SAT>"},
}
BACKENDS = ("Vitis", "Vivado")


def settings(config: dict | None) -> dict:
    """The HLS settings from a ``trigger.yml`` mapping (sections ``target`` and ``hls``) or a flat mapping."""
    config = dict(config or {})
    sections = ("target", "hls", "model", "dataset", "quantization", "budgets", "train", "name")
    # a whole trigger.yml: only its target and hls sections matter here; else a flat mapping
    flat = {} if any(k in config for k in sections) else dict(config)
    flat.update(config.get("target") or {})
    flat.update(config.get("hls") or {})
    out = copy.deepcopy(DEFAULTS)
    if "clock_mhz" in flat:
        flat.setdefault("clock_period_ns", 1000.0 / float(flat.pop("clock_mhz")))
    for key, value in flat.items():
        if key == "ptq":
            if not isinstance(value, dict):
                raise ValueError(f"hls.ptq must be a mapping of weight/bias/result precisions, got {value!r}")
            unknown = set(value) - set(DEFAULTS["ptq"])
            if unknown:
                raise ValueError(f"hls.ptq: unknown key(s) {sorted(unknown)} (expected weight, bias, result)")
            out["ptq"].update(value)
        elif key in DEFAULTS or key in ("output_dir",):
            out[key] = value
        else:
            raise ValueError(f"hls config: unknown key {key!r} (known: {', '.join(sorted(list(DEFAULTS) + ['output_dir']))})")
    backend = str(out["backend"]).capitalize()
    if backend not in BACKENDS:
        raise ValueError(f"hls.backend {out['backend']!r} is not one of {', '.join(BACKENDS)}")
    out["backend"] = backend
    if out["io_type"] != "io_parallel" or out["strategy"].lower() != "latency":
        raise ValueError("only io_type io_parallel with the Latency strategy is supported")
    for key in ("input_precision",):
        FixedFormat.parse(out[key])  # one-line error naming the string when bad
    for key, text in out["ptq"].items():
        FixedFormat.parse(text)
    return out


# ------------------------------------------------------------- conversion
def convert(model_source, config: dict | None = None, *, output_dir=None, compile: bool = True):
    """Convert a model to an hls4ml project and its firmware model.

    ``model_source`` is a ``LoadedModel`` or anything ``load_model`` accepts.
    ``config`` is the ``trigger.yml`` mapping (or a flat mapping of ``DEFAULTS`` keys).
    Returns ``(hls_model, FirmwareModel)``; the project is written to ``output_dir``
    (a fresh temporary folder when not given) and, with ``compile``, built for C simulation.
    """
    import hls4ml

    loaded = model_source if isinstance(model_source, LoadedModel) else load_model(model_source)
    opts = settings(config)
    out_dir = Path(output_dir or opts.get("output_dir") or tempfile.mkdtemp(prefix=f"hls_{loaded.name}_"))
    hcfg = _hls_config(loaded, opts)
    widened: dict[str, str] = {}
    for _attempt in range(3):
        hls_model = hls4ml.converters.convert_from_keras_model(
            loaded.keras, hls_config=hcfg, output_dir=str(out_dir), project_name=opts["project_name"],
            backend=opts["backend"], io_type=opts["io_type"], part=opts["part"],
            clock_period=float(opts["clock_period_ns"]))
        fw = extract(hls_model, loaded.name)
        wider = _accumulators_to_widen(fw)
        if not wider:
            break
        for lname, fmt in wider.items():
            hcfg["LayerName"][lname]["Precision"]["accum"] = fmt.hls4ml
            widened[lname] = fmt.hls4ml
    else:
        raise ValueError(f"{loaded.name}: accumulators still overflow after widening {sorted(widened)}")
    fw.widened_accumulators = widened
    if compile:
        hls_model.compile()
    return hls_model, fw


def _hls_config(loaded: LoadedModel, opts: dict) -> dict:
    import hls4ml

    model = loaded.keras
    hcfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=opts["backend"],
                                                default_precision=opts["ptq"]["result"])
    hcfg["Model"]["Strategy"] = "Latency"
    hcfg["Model"]["ReuseFactor"] = int(opts["reuse_factor"])
    input_name = _input_layer_name(model)
    names = hcfg["LayerName"]
    names.setdefault(input_name, {}).setdefault("Precision", {})
    names[input_name]["Precision"]["result"] = FixedFormat.parse(opts["input_precision"]).hls4ml
    ptq = {k: FixedFormat.parse(v).hls4ml for k, v in opts["ptq"].items()}
    for layer in model.layers:
        prec = names.setdefault(layer.name, {}).setdefault("Precision", {})
        if not isinstance(prec, dict):
            prec = names[layer.name]["Precision"] = {"result": prec}
        cls = type(layer).__name__
        if cls == "Dense":
            prec.update(weight=ptq["weight"], bias=ptq["bias"], result=ptq["result"], accum="auto")
            # hls4ml splits the activation into its own layer, named <layer>_<activation>
            for suffix in ("_relu", "_linear"):
                if layer.name + suffix in names:
                    names[layer.name + suffix]["Precision"]["result"] = ptq["result"]
        elif cls == "QDense":
            prec["accum"] = "auto"
        elif cls == "BatchNormalization":
            prec.update(scale=ptq["weight"], bias=ptq["bias"])
            if not loaded.quantized:
                prec["result"] = ptq["result"]
        elif cls == "Activation" and not loaded.quantized:
            prec["result"] = ptq["result"]
    _pin_quantized_bits_activations(model, names)
    return hcfg


def _pin_quantized_bits_activations(model, names: dict) -> None:
    """Give a quantized_bits activation's type to the layer before it.

    hls4ml 1.3 turns QActivation(quantized_bits) into a linear activation, and its
    MergeLinearActivation pass removes that layer when the previous layer's type is
    'auto', losing the quantization. The previous layer's output cast to the same
    type (the same rounding and saturation) computes the same thing, so the type is
    set there and the linear layer disappears harmlessly.
    """
    layers = model.layers
    for i, layer in enumerate(layers):
        cls = type(layer).__name__
        act = getattr(layer, "activation", None)
        qname = type(act).__name__ if act is not None else ""
        if qname != "quantized_bits":
            continue
        if cls == "QActivation" and i > 0:
            prec = names.get(layer.name, {}).get("Precision", {})
            result = prec.get("result") if isinstance(prec, dict) else prec
            if result and result != "auto":
                prev = layers[i - 1].name
                for target in (prev, prev + "_linear"):  # hls4ml splits a dense layer's linear activation off
                    if target in names:
                        names[target].setdefault("Precision", {})["result"] = result


def _input_layer_name(model) -> str:
    first = model.get_config()["layers"][0]
    if first["class_name"] != "InputLayer":
        raise ValueError(f"{model.name}: the rebuilt model has no InputLayer")
    return first["config"]["name"]


# ------------------------------------------------------------- extraction
def fixed_format(precision) -> FixedFormat:
    """The FixedFormat of an hls4ml precision type (fixed/ufixed/int/uint only)."""
    text = str(precision)
    try:
        fmt = FixedFormat.parse(text)
    except ValueError:
        raise ValueError(f"hls4ml type {text} is not a fixed-point or integer type") from None
    return fmt


def weight_raw(weight_var, fmt: FixedFormat) -> np.ndarray:
    """Raw integers of a weight tensor exactly as the generated C++ holds them."""
    literals = [float(s) for s in iter(weight_var)]
    return fmt.quantize(np.asarray(literals, dtype=np.float64)).reshape(weight_var.data.shape)


def extract(hls_model, name: str = "model") -> FirmwareModel:
    """The firmware IR of a converted (precision-inferred) hls4ml model."""
    from hls4ml.model import layers as hl

    fw = None
    prev_fmt = None
    for layer in hls_model.get_layers():
        out_fmt = _checked(fixed_format(layer.get_output_variable().type.precision), layer)
        n_out = int(np.prod(layer.get_output_variable().shape))
        if isinstance(layer, hl.Input):
            if fw is not None:
                raise ValueError(f"{name}: more than one input layer")
            fw = FirmwareModel(name=name, input_fmt=out_fmt, n_inputs=n_out)
        elif fw is None:
            raise ValueError(f"{name}: layer {layer.name} comes before the input")
        elif isinstance(layer, hl.Dense):
            wf = _checked(fixed_format(layer.get_weights("weight").type.precision), layer)
            bf = _checked(fixed_format(layer.get_weights("bias").type.precision), layer)
            af = _checked(fixed_format(layer.get_attr("accum_t").precision), layer)
            w = weight_raw(layer.get_weights("weight"), wf)
            b = weight_raw(layer.get_weights("bias"), bf)
            if w.shape != (int(layer.get_attr("n_in")), int(layer.get_attr("n_out"))):
                raise ValueError(f"{name}: layer {layer.name} weight shape {w.shape} is not (n_in, n_out)")
            fw.layers.append(Dense(layer.name, w, b.reshape(-1), prev_fmt, wf, bf, af, out_fmt))
        elif isinstance(layer, hl.Softmax):
            raise ValueError(f"{name}: layer {layer.name} is a softmax: drop it (the default) to output logits")
        elif isinstance(layer, hl.BatchNormalization):  # also ApplyAlpha
            n_filt = layer.get_attr("n_filt", -1)
            if n_filt not in (-1, n_out):
                raise ValueError(f"{name}: layer {layer.name} normalises {n_filt} filters of {n_out} values: not supported")
            bf = _checked(fixed_format(layer.get_weights("bias").type.precision), layer)
            if layer.get_weights("scale").weight_class == "ExponentWeightVariable":
                s, sf = _power_of_two_scale(layer, prev_fmt, name)
            else:
                sf = _checked(fixed_format(layer.get_weights("scale").type.precision), layer)
                s = weight_raw(layer.get_weights("scale"), sf).reshape(-1)
            b = weight_raw(layer.get_weights("bias"), bf).reshape(-1)
            if s.size != n_out or b.size != n_out:
                raise ValueError(f"{name}: layer {layer.name} has {s.size} scales for {n_out} values")
            fw.layers.append(Scale(layer.name, s, b, prev_fmt, sf, bf, out_fmt))
        elif isinstance(layer, hl.Activation):
            act = layer.get_attr("activation")
            if act not in ("relu", "linear"):
                raise ValueError(f"{name}: layer {layer.name} has activation {act!r}: only relu and linear are supported")
            fw.layers.append(Activation(layer.name, act, n_out, prev_fmt, out_fmt))
        else:
            raise ValueError(f"{name}: hls4ml layer {layer.name} of type {layer.class_name} is not supported")
        prev_fmt = out_fmt
    if fw is None or not fw.layers:
        raise ValueError(f"{name}: the converted model has no layers")
    out_var = hls_model.get_output_variables()
    if len(out_var) != 1 or fixed_format(out_var[0].type.precision) != fw.output_fmt:
        raise ValueError(f"{name}: the hls4ml output is not the last layer's output")
    return fw


def _power_of_two_scale(layer, in_fmt: FixedFormat, name: str):
    """A power-of-two scale (QKeras alpha='auto_po2', hls4ml's ApplyAlpha with exponent weights) as a fixed scale.

    nnet_mult.h's weight_exponential casts x to r_T = ap_fixed<2(We+Wx), We+Wx>, shifts it
    by the exponent and negates it for a negative sign. When x * 2**e fits r_T (checked
    here for every exponent) that is exactly x * (+-2**e), the Scale semantics with a
    fixed-point scale holding +-2**e.
    """
    var = layer.get_weights("scale")
    data = np.asarray(var.data, dtype=np.float64).reshape(-1)
    if np.any(data == 0):
        raise ValueError(f"{name}: layer {layer.name} has a zero power-of-two scale")
    exps = np.round(np.log2(np.abs(data))).astype(np.int64)
    if not np.array_equal(np.ldexp(np.sign(data), exps), data):
        raise ValueError(f"{name}: layer {layer.name} has a scale that is not a power of two")
    we = int(var.type.precision.width)
    if exps.min() < -(1 << (we - 1)) or exps.max() > (1 << (we - 1)) - 1:
        raise ValueError(f"{name}: layer {layer.name} exponents {exps.min()}..{exps.max()} do not fit int<{we}>")
    r_bits = we + in_fmt.width  # r_T = ap_fixed<2 r_bits, r_bits>: r_bits integer and r_bits fractional bits
    if in_fmt.integer + int(exps.max()) >= r_bits or in_fmt.fractional - int(exps.min()) > r_bits:
        raise ValueError(f"{name}: layer {layer.name}: shifting {in_fmt} by 2**{exps.min()}..2**{exps.max()} "
                         f"loses bits in hls4ml's product type")
    frac = max(0, -int(exps.min()))
    integer = max(0, int(exps.max())) + 2
    fmt = FixedFormat(integer + frac, integer, True)
    raw = np.where(data < 0, -1, 1).astype(np.int64) << (exps + frac)
    return raw, fmt


def _checked(fmt: FixedFormat, layer) -> FixedFormat:
    if fmt.width > MAX_WIDTH:  # pragma: no cover - FixedFormat refuses these already
        raise ValueError(f"layer {layer.name}: type {fmt} is wider than {MAX_WIDTH} bits")
    return fmt


def accumulator_bound(layer: Dense) -> np.ndarray:
    """Per output, the largest |value| any partial sum can reach, in units of the product LSB."""
    in_fmt, w_fmt = layer.input_fmt, layer.weight_fmt
    prod = in_fmt.product_format(w_fmt)
    w = np.abs(layer.weight.astype(object))
    x_max = max(abs(in_fmt.min_raw), abs(in_fmt.max_raw))
    bias_shift = prod.fractional - layer.bias_fmt.fractional
    b = np.abs(layer.bias.astype(object))
    b = b * (1 << bias_shift) if bias_shift >= 0 else -((-b) // (1 << -bias_shift))
    return (w * x_max).sum(axis=0) + b  # object ints: no int64 overflow


def _accumulators_to_widen(fw: FirmwareModel) -> dict[str, FixedFormat]:
    """Accumulators whose range cannot hold the worst case, with a format that can."""
    wider = {}
    for layer in fw.layers:
        if not isinstance(layer, Dense):
            continue
        prod = layer.input_fmt.product_format(layer.weight_fmt)
        bound = int(max(accumulator_bound(layer).max(), 1))
        acc = layer.accum_fmt
        # the bound in accumulator units, rounded up (values below the accumulator LSB still round)
        shift = prod.fractional - acc.fractional
        # (+ n_in + 1: each product cast to the accumulator may round down by one LSB)
        need = (-((-bound) >> shift) if shift >= 0 else (bound << -shift)) + layer.n_in + 1
        if need <= acc.max_raw and -need >= acc.min_raw:
            continue
        integer_bits = math.ceil(math.log2(need + 1)) + 1 - acc.fractional
        width = integer_bits + acc.fractional
        if width > MAX_WIDTH:
            raise ValueError(f"layer {layer.name}: an exact accumulator needs {width} bits (> {MAX_WIDTH}); "
                             f"use narrower inputs or weights")
        wider[layer.name] = FixedFormat(width, integer_bits, True, acc.rounding, acc.overflow)
    return wider


def describe_formats(fw: FirmwareModel) -> list[str]:
    """One line per tensor: the formats chosen (for the build report)."""
    lines = [f"input: {fw.n_inputs} x {fw.input_fmt.cpp}"]
    widened = getattr(fw, "widened_accumulators", {}) or {}
    for layer in fw.layers:
        if isinstance(layer, Dense):
            prod = layer.input_fmt.product_format(layer.weight_fmt)
            note = " (widened)" if layer.name in widened else ""
            lines.append(f"{layer.name}: Dense {layer.n_in}->{layer.n_out} weight {layer.weight_fmt.cpp}, "
                         f"bias {layer.bias_fmt.cpp}, product {prod.cpp}, accum {layer.accum_fmt.cpp}{note}, "
                         f"output {layer.output_fmt.cpp}")
        elif isinstance(layer, Scale):
            lines.append(f"{layer.name}: Scale {layer.n_in} scale {layer.scale_fmt.cpp}, bias {layer.bias_fmt.cpp}, "
                         f"output {layer.output_fmt.cpp}")
        else:
            lines.append(f"{layer.name}: {layer.function} {layer.n} output {layer.output_fmt.cpp}")
    return lines


# ----------------------------------------------------------- C simulation
def csim(hls_model, raw_inputs) -> np.ndarray:
    """Run hls4ml's compiled C simulation on raw integer inputs; raw integer outputs.

    Inputs go in as doubles exactly representable in the input type (so the
    conversion to the input type is exact) and the outputs come back as doubles of
    values of the output type; both round trips are checked.
    """
    in_fmt = fixed_format(hls_model.get_input_variables()[0].type.precision)
    out_fmt = fixed_format(hls_model.get_output_variables()[0].type.precision)
    raw = np.asarray(raw_inputs, dtype=np.int64)
    if raw.ndim != 2:
        raise ValueError(f"raw inputs must be (n_vectors, n_inputs), got shape {raw.shape}")
    if not np.all(in_fmt.contains(raw)):
        bad = np.argwhere(~in_fmt.contains(raw))[0]
        raise ValueError(f"raw input {raw[tuple(bad)]} at {tuple(bad)} is outside {in_fmt}")
    if getattr(hls_model, "_top_function_lib", None) is None:
        hls_model.compile()
    x = np.ascontiguousarray(in_fmt.to_float(raw), dtype=np.float64)
    y = np.asarray(hls_model.predict(x), dtype=np.float64).reshape(raw.shape[0], -1)
    out = out_fmt.quantize(y)
    back = out_fmt.to_float(out)
    if not np.array_equal(back, y):
        bad = np.argwhere(back != y)[0]
        raise ValueError(f"C simulation output {y[tuple(bad)]!r} at {tuple(bad)} is not a value of {out_fmt}")
    return out
