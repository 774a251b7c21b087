"""Networks: a Keras 2 / QKeras model (given, or trained from a model-zoo config) -> firmware model.

hls4ml converts the model and infers every type; the layer mappings
(``trigger.frontends.layers``) read the converted graph into ops, so the
emulator and the RTL use exactly what the HLS C++ computes. hls4ml's ``auto``
accumulators are exact; any accumulator whose range cannot hold the worst-case
sum over the input format's range is widened and the model converted again.
"""

from __future__ import annotations

import copy
import json
import hashlib
import math
import tempfile
import uuid
from pathlib import Path

import numpy as np

from trigger.budget import load_budget
from trigger.errors import ConfigError, ModelError
from trigger.fixed import MAX_WIDTH, FixedFormat
from trigger.frontends import BuildOptions, Design, clock_period
from trigger.frontends.layers import Context, fixed_format, mapping_for
from trigger.ir.ii import check_ii_settings, resolve_ii
from trigger.ir.model import FirmwareModel
from trigger.ir.ops.conv1d import MAX_MULTIPLIERS, Conv1D, size_error
from trigger.ir.ops.dense import Dense
from trigger.ir.ops.max_pool import MaxPool
from trigger.ir.tensor import TensorType
from trigger.frontends.keras import LoadedModel, load_model
from trigger.quiet import quiet_stdout

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
    # A kept final softmax (model.keep_softmax): hls4ml settings of the layer (see softmax_settings).
    "softmax": {},
}
BACKENDS = ("Vitis", "Vivado")
CONFIG_SECTIONS = {"kind", "name", "dataset", "model", "quantization", "train", "target", "hls", "rtl", "verify",
                   "budget"}
DEFAULT_VECTORS = 10_000


def settings(config: dict | None) -> dict:
    """The HLS settings from a ``trigger.yml`` mapping (sections ``target`` and ``hls``) or a flat mapping."""
    config = dict(config or {})
    flat = {} if any(k in config for k in CONFIG_SECTIONS) else dict(config)
    flat.update(config.get("target") or {})
    flat.update(config.get("hls") or {})
    out = copy.deepcopy(DEFAULTS)
    if "clock_mhz" in flat:
        mhz = flat.pop("clock_mhz")
        if isinstance(mhz, bool) or not isinstance(mhz, (int, float)) or not math.isfinite(mhz) or mhz <= 0:
            raise ConfigError(f"target.clock_mhz must be a positive number, got {mhz!r}")
        flat.setdefault("clock_period_ns", 1000.0 / float(mhz))
    for key, value in flat.items():
        if key == "ptq":
            if not isinstance(value, dict):
                raise ConfigError(f"hls.ptq must be a mapping of weight/bias/result precisions, got {value!r}")
            unknown = set(value) - set(DEFAULTS["ptq"])
            if unknown:
                raise ConfigError(f"hls.ptq: unknown key(s) {sorted(unknown)} (expected weight, bias, result)")
            out["ptq"].update(value)
        elif key in DEFAULTS or key == "output_dir":
            out[key] = value
        else:
            raise ConfigError(f"hls config: unknown key {key!r} (known: {', '.join(sorted([*DEFAULTS, 'output_dir']))})")
    backend = str(out["backend"]).capitalize()
    if backend not in BACKENDS:
        raise ConfigError(f"hls.backend {out['backend']!r} is not one of {', '.join(BACKENDS)}")
    out["backend"] = backend
    if out["io_type"] != "io_parallel" or str(out["strategy"]).lower() != "latency":
        raise ConfigError("only io_type io_parallel with the Latency strategy is supported")
    out["clock_period_ns"] = clock_period(out["clock_period_ns"], "target.clock_period_ns")
    for text in [out["input_precision"], *out["ptq"].values()]:
        try:
            FixedFormat.parse(text)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    softmax_settings(2, out["softmax"])  # a bad hls.softmax fails before training
    return out


# ------------------------------------------------------------------ conversion
def convert(model_source, config: dict | None = None, *, output_dir=None):
    """Convert a model with hls4ml and read its firmware model: ``(hls_model, FirmwareModel)``.

    ``model_source`` is a ``LoadedModel`` or anything ``load_model`` accepts; ``config`` a
    ``trigger.yml`` mapping or a flat mapping of ``DEFAULTS`` keys. The hls4ml project is
    not written (``hls_model.write()`` does that, into ``output_dir``).
    """
    import hls4ml

    loaded = model_source if isinstance(model_source, LoadedModel) else load_model(model_source)
    opts = settings(config)
    refuse_oversized(loaded)
    out_dir = Path(output_dir or opts.get("output_dir") or unwritten_project_dir(loaded.name))
    _prequantize_set_dense(loaded.keras)
    hcfg = _hls_config(loaded, opts)
    widened: dict[str, str] = {}
    for _attempt in range(3):
        with quiet_stdout():
            hls_model = hls4ml.converters.convert_from_keras_model(
                loaded.keras, hls_config=hcfg, output_dir=str(out_dir), project_name=opts["project_name"],
                backend=opts["backend"], io_type=opts["io_type"], part=opts["part"],
                clock_period=float(opts["clock_period_ns"]))
        fw = extract(hls_model, loaded.name)
        wider = accumulators_to_widen(fw)
        if not wider:
            break
        for lname, fmt in wider.items():
            hcfg["LayerName"][lname]["Precision"]["accum"] = fmt.hls4ml
            widened[lname] = fmt.hls4ml
    else:
        raise ModelError(f"{loaded.name}: accumulators still overflow after widening {sorted(widened)}")
    fw.meta["widened_accumulators"] = widened
    return hls_model, fw


def unwritten_project_dir(name: str) -> Path:
    """A fresh folder name for an hls4ml project nobody asked to keep. Not created: hls4ml only
    needs a name to convert, and most conversions are never written (no empty folders left behind)."""
    return Path(tempfile.gettempdir()) / f"hls_{name}_{uuid.uuid4().hex[:8]}"


def refuse_oversized(loaded: LoadedModel) -> None:
    """Refuse a convolution too large to unroll before hls4ml spends minutes (or fails) on it."""
    for layer in loaded.keras.layers:
        if type(layer).__name__ not in ("Conv1D", "Conv2D", "QConv1D", "QConv2D"):
            continue
        positions = int(np.prod(layer.output_shape[1:-1]))
        nonzero = int(np.count_nonzero(layer.get_weights()[0]))
        if positions * nonzero > MAX_MULTIPLIERS:
            raise ModelError(f"{loaded.name}: layer {layer.name} ({type(layer).__name__} {layer.input_shape[1:]} -> "
                             f"{layer.output_shape[1:]}): {size_error(positions, nonzero)}")


def _hls_config(loaded: LoadedModel, opts: dict) -> dict:
    import hls4ml

    model = loaded.keras
    with quiet_stdout():
        hcfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=opts["backend"],
                                                    default_precision=opts["ptq"]["result"])
    hcfg["Model"]["Strategy"] = "Latency"
    hcfg["Model"]["ReuseFactor"] = int(opts["reuse_factor"])
    first = model.get_config()["layers"][0]
    if first["class_name"] != "InputLayer":
        raise ModelError(f"{model.name}: the rebuilt model has no InputLayer")
    names = hcfg["LayerName"]
    input_name = first["config"]["name"]
    names.setdefault(input_name, {}).setdefault("Precision", {})
    names[input_name]["Precision"]["result"] = FixedFormat.parse(opts["input_precision"]).hls4ml
    ptq = {k: FixedFormat.parse(v).hls4ml for k, v in opts["ptq"].items()}
    for layer in model.layers:
        prec = names.setdefault(layer.name, {}).setdefault("Precision", {})
        if not isinstance(prec, dict):
            prec = names[layer.name]["Precision"] = {"result": prec}
        cls = type(layer).__name__
        if cls in ("Dense", "Conv1D", "Conv2D"):
            prec.update(weight=ptq["weight"], bias=ptq["bias"], result=ptq["result"], accum="auto")
            for suffix in ("_relu", "_linear"):  # hls4ml splits the activation into <layer>_<activation>
                if layer.name + suffix in names:
                    names[layer.name + suffix]["Precision"]["result"] = ptq["result"]
        elif cls in ("QDense", "QConv1D", "QConv2D"):
            prec["accum"] = "auto"
        elif cls == "BatchNormalization":
            prec.update(scale=ptq["weight"], bias=ptq["bias"])
            if not loaded.quantized:
                prec["result"] = ptq["result"]
        elif not loaded.quantized and cls != "InputLayer":
            prec["result"] = ptq["result"]  # float activations get the post-training result format
    _pin_quantized_bits_activations(model, names)
    _configure_softmax(model, names, opts.get("softmax") or {})
    return hcfg


# The softmax trigger configures unless trigger.yml says otherwise (hls.softmax). hls4ml's own defaults
# (1024-entry tables addressed by the top 10 bits of x_max - x in ap_ufixed<W-1,I-1>: 1/16 steps for 18-bit
# logits with 7 integer bits) flip the reference QKeras jet tagger's decision against its own logits on 1.5 %
# of inputs. Saturating x_max - x at 8 (exp(-8) = 3e-4) and addressing 2048-entry tables with all its
# 11 bits (steps of 1/256) agree on 99.947 % of 100,000 vectors (the rest are exact ties; 1024 entries:
# 99.896 %), for a 2048-word ROM per class plus one for 1/sum (5 classes: 6 BRAM36, 10 DSP, ~600 LUT
# in Yosys's mapping): scripts/bench_softmax.py measures it (benchmarks/softmax.md).
SOFTMAX_DEFAULTS = {"implementation": "stable", "table_size": 2048, "inp_norm_t": "ufixed<11,3,RND,SAT>",
                    "exp_table_t": "ufixed<18,1,RND,SAT>", "inv_table_t": "ufixed<18,1,RND,SAT>",
                    "result": "ufixed<16,0,RND,SAT>"}


def softmax_settings(n_classes: int, overrides: dict) -> dict:
    """hls4ml layer settings of a kept softmax over ``n_classes``: SOFTMAX_DEFAULTS, sums sized for the classes
    (accum_t, inv_inp_t: exp(0) = 1 plus n - 1 terms below 1), then ``overrides`` (trigger.yml hls.softmax)."""
    known = {*SOFTMAX_DEFAULTS, "accum_t", "inv_inp_t"}
    if not isinstance(overrides, dict) or set(overrides) - known:
        bad = sorted(set(overrides) - known) if isinstance(overrides, dict) else overrides
        raise ConfigError(f"hls.softmax: unknown setting(s) {bad} (known: {', '.join(sorted(known))})")
    if overrides.get("implementation", "stable") not in ("stable", "latency", "argmax", None):
        raise ConfigError(f"hls.softmax.implementation {overrides['implementation']!r} is not one of stable, latency, "
                          "argmax")
    size = overrides.get("table_size", SOFTMAX_DEFAULTS["table_size"])
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 2 or size & (size - 1)):
        raise ConfigError(f"hls.softmax.table_size must be a power of two >= 2, got {size!r}")
    integer = max(1, int(n_classes).bit_length())
    out = dict(SOFTMAX_DEFAULTS, accum_t=f"ufixed<{17 + integer},{integer},RND,SAT>",
               inv_inp_t=f"ufixed<18,{integer},RND,SAT>")
    out.update(overrides)  # a setting given as null keeps hls4ml's own default
    for key, value in out.items():
        if value is not None and (key.endswith("_t") or key == "result"):
            try:
                FixedFormat.parse(value)
            except (ValueError, ConfigError) as err:
                raise ConfigError(f"hls.softmax.{key}: {err}") from None
    return out


def _configure_softmax(model, names: dict, overrides: dict) -> None:
    """hls4ml layer config of a kept final softmax (Activation/Softmax layer, or hls4ml's <dense>_softmax)."""
    for layer in model.layers:
        cls = type(layer).__name__
        act = getattr(getattr(layer, "activation", None), "__name__", "")
        if cls == "Softmax" or (cls == "Activation" and act == "softmax"):
            target = layer.name
        elif act == "softmax":
            target = f"{layer.name}_softmax"
        else:
            continue
        entry = names.setdefault(target, {})
        settings_ = softmax_settings(int(np.prod(layer.output_shape[1:])), overrides)
        prec = entry.setdefault("Precision", {})
        if not isinstance(prec, dict):
            prec = entry["Precision"] = {"result": prec}
        result = settings_.pop("result")
        if result is not None:
            prec["result"] = result
        entry.update({k: v for k, v in settings_.items() if v is not None})


def _prequantize_set_dense(model) -> None:
    """Store a QDense on a (n_items, n_features) input with its quantized weights.

    hls4ml 1.3 turns such a layer into a PointwiseConv1D (ReplaceMultidimensionalDenseWithConv)
    and drops its quantizers on the way: the latent float weights are then truncated to
    weight_t instead of rounded and clipped as QKeras does, and the firmware no longer
    computes the QKeras model (on the DeepSets example: 71 % instead of 89 % accuracy).
    quantized_bits is idempotent, so storing quantizer(w) leaves the QKeras model as it is
    and gives hls4ml weights that weight_t holds exactly.
    """
    for layer in model.layers:
        kq, bq = getattr(layer, "kernel_quantizer_internal", None), getattr(layer, "bias_quantizer_internal", None)
        if kq is None or len(layer.input_shape) <= 2 or not layer.weights:
            continue
        weights = layer.get_weights()
        weights[0] = np.asarray(kq(weights[0]))
        if bq is not None and len(weights) > 1:
            weights[1] = np.asarray(bq(weights[1]))
        layer.set_weights(weights)


def _pin_quantized_bits_activations(model, names: dict) -> None:
    """Give a quantized_bits activation's type to the layer before it.

    hls4ml 1.3 turns QActivation(quantized_bits) into a linear activation, and its
    MergeLinearActivation pass removes that layer when the previous layer's type is
    'auto', losing the quantization. The previous layer's output cast to the same
    type (the same rounding and saturation) computes the same thing.
    """
    layers = model.layers
    for i, layer in enumerate(layers):
        act = getattr(layer, "activation", None)
        if type(act).__name__ != "quantized_bits" or type(layer).__name__ != "QActivation" or i == 0:
            continue
        prec = names.get(layer.name, {}).get("Precision", {})
        result = prec.get("result") if isinstance(prec, dict) else prec
        if result and result != "auto":
            prev = layers[i - 1].name
            for target in (prev, prev + "_linear"):
                if target in names:
                    names[target].setdefault("Precision", {})["result"] = result


def extract(hls_model, name: str = "model") -> FirmwareModel:
    """The firmware model of a converted (precision-inferred) hls4ml model, through the layer mappings."""
    layers = list(hls_model.get_layers())
    if not layers or not is_input(layers[0]):
        raise ModelError(f"{name}: the converted model does not start with its input")
    var = layers[0].get_output_variable()
    model_input = TensorType.uniform(fixed_format(var.type.precision), int(np.prod(var.shape)))
    ctx = Context(name, model_input)
    ops = []
    for layer in layers[1:]:
        if is_input(layer):
            raise ModelError(f"{name}: more than one input layer")
        mapping = mapping_for(layer)
        if mapping is None:
            raise ModelError(f"{name}: hls4ml layer {layer.name} of type {layer.class_name} is not supported")
        for op in mapping.to_ops(layer, ctx):
            ops.append(op)
            ctx.previous = op.output
    if not ops:
        raise ModelError(f"{name}: the converted model has no layers")
    fw = FirmwareModel(name, model_input, ops, kind="network")
    out_var = hls_model.get_output_variables()
    if len(out_var) != 1 or fixed_format(out_var[0].type.precision) != fw.output.format:
        raise ModelError(f"{name}: the hls4ml output is not the last layer's output")
    fw.validate()
    return fw


def is_input(layer) -> bool:
    """hls4ml's backends subclass its layer classes: look for Input among the bases."""
    return any(cls.__name__ == "Input" for cls in type(layer).__mro__)


def accumulators_to_widen(fw: FirmwareModel) -> dict[str, FixedFormat]:
    """Accumulators that some inputs can overflow (``Dense.plan``), with a format that cannot."""
    wider = {}
    for op in fw.ops:
        exact = getattr(op, "exact_accumulator", None)  # a mean over a set (global_pool): a sum, then a shift
        if exact is not None and exact() is not None:
            wider[op.name] = exact()
            continue
        if not isinstance(op, (Dense, Conv1D)):  # a convolution's accumulator is its dense kernel's
            continue
        plan = op.plan()
        if not (plan["product_can_overflow"] or plan["sum_can_overflow"]):
            continue
        acc = op.accum_fmt
        need = max(-min(plan["sum_lo"]), max(plan["sum_hi"]) + 1, 1)  # raw magnitude in accumulator LSBs
        width = need.bit_length() + 1
        if width > MAX_WIDTH:
            raise ModelError(f"layer {op.name}: an exact accumulator needs {width} bits (> {MAX_WIDTH}); "
                             "use narrower inputs or weights")
        wider[op.name] = FixedFormat(width, width - acc.fractional, True, acc.rounding, acc.overflow)
    return wider


# ------------------------------------------------------------------ designs
def design_from_file(path: Path, options: BuildOptions) -> Design:
    """A Keras 2 model file (.json + weights, or a full .h5) given on the command line."""
    spec = {"json": str(path), "weights": str(options.weights)} if options.weights else path
    loaded = load_model(spec, keep_softmax=options.keep_softmax)
    return _design(loaded, {}, options, None)


def design_from_config(config: dict, path: Path, options: BuildOptions) -> Design:
    """A model-zoo folder: a model file named in trigger.yml, or a network trained from it."""
    unknown = sorted(set(config) - CONFIG_SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r} (known: {', '.join(sorted(CONFIG_SECTIONS))})")
    budget = config.get("budget") or {}
    load_budget({"budget": budget}, where=str(path))  # a bad budget fails now, not after training
    settings(config)  # every setting is checked before training
    check_ii_settings(config.get("rtl"), f"{path}: rtl")
    model_cfg = config.get("model") or {}
    keep_softmax = options.keep_softmax or bool(model_cfg.get("keep_softmax", False))
    if "file" in model_cfg:  # a model shipped with the config
        file = (path.parent / model_cfg["file"]).resolve()
        if file.suffix.lower() == ".onnx":
            from trigger.frontends.onnx import onnx_design

            return onnx_design(file, config, options, keep_softmax, budget)
        spec = {"json": str(file), "weights": str((path.parent / model_cfg["weights"]).resolve())} \
            if "weights" in model_cfg else file
        return _design(load_model(spec, keep_softmax=keep_softmax, name=config.get("name")), config, options,
                       None, budget)
    from trigger.train import train

    with tempfile.TemporaryDirectory(prefix="trigger-train-") as work:
        trained = train(config, Path(work) / "model", where=str(path))
        spec = {"json": str(trained.json_path), "weights": str(trained.weights_path)}
        loaded = load_model(spec, keep_softmax=keep_softmax, name=config.get("name"))
        return _design(loaded, config, options, trained, budget)


def set_reuse_factors(hls_model, ii: int, op_ii: dict[str, int]) -> None:
    """hls4ml's ReuseFactor of every layer = the cycles its op shares its arithmetic over (``rtl.ii``).

    With the Latency strategy the reuse factor changes only pragmas (the pipeline's II, the
    multiplier limit: ``multiplier_limit`` in the layer config), not the C++ arithmetic, so the
    C simulation stays the specification. Set on the converted model, like its config would."""
    names = hls_model.config.config.setdefault("HLSConfig", {}).setdefault("LayerName", {})
    if ii > 1:
        hls_model.config.config["HLSConfig"].setdefault("Model", {})["ReuseFactor"] = int(ii)
    shared = False
    for layer in hls_model.get_layers():
        rf = int(op_ii.get(layer.name, 1))
        if rf > 1:
            layer.set_attr("reuse_factor", rf)
            hls_model.config.layer_name_rf[layer.name.lower()] = rf
            names.setdefault(layer.name, {})["ReuseFactor"] = rf
            shared = True
    if shared:  # the layers' C++ configs (reuse_factor, multiplier_limit) were printed at conversion: again
        hls_model.apply_flow(f"{hls_model.config.backend.name.lower()}:apply_templates")


def append_argmax(fw: FirmwareModel, config: dict, options: BuildOptions) -> str | None:
    """The ``argmax`` output option (trigger.yml ``model.output: argmax`` or ``--argmax``): append an op emitting
    the class index. Returns the name of the op whose outputs hls4ml's project computes (None: the last)."""
    from trigger.ir.ops.argmax import Argmax, index_format

    output = (config.get("model") or {}).get("output", "outputs")
    if output not in ("outputs", "argmax"):
        raise ConfigError(f"model.output must be 'outputs' or 'argmax', got {output!r}")
    if not (options.argmax or output == "argmax"):
        return None
    if fw.output.n < 2:
        raise ConfigError(f"{fw.name}: the argmax output needs a classifier with at least two outputs, "
                          f"the network has {fw.output.n}")
    last = fw.ops[-1].name
    fw.ops.append(Argmax(f"{last}_argmax", fw.output, TensorType((index_format(fw.output.n),))))
    fw.validate()
    return last


def classifier_scores(fw: FirmwareModel, keras_model, x_test, y_test) -> dict:
    """A classifier on its test sample: accuracy of the firmware (emulator) and of the Keras model on the same
    (input-quantized) values, how often their predicted classes agree, and for a softmax output how often its
    argmax equals the argmax of the firmware's own logits (the softmax's input)."""
    from trigger.ir.model import emulate

    fmt = fw.input.format  # inputs beyond the input type saturate upstream (the trigger's own links)
    x = np.clip(np.asarray(x_test, dtype=np.float64).reshape(len(y_test), -1), fmt.min_value, fmt.max_value)
    xq = fw.input.quantize(x)
    result = emulate(fw, xq, trace=True)
    ops = list(fw.ops)
    outputs, trace = result.outputs, result.trace
    if ops[-1].kind == "argmax":
        firmware_class = outputs[:, 0]
        ops, trace = ops[:-1], trace[:-1]
    else:
        firmware_class = np.argmax(outputs, axis=1)
    real = fw.input.to_float(xq).reshape((len(xq), *keras_model.input_shape[1:])).astype(np.float32)
    model_class = np.argmax(keras_model.predict(real, batch_size=8192, verbose=0).reshape(len(xq), -1), axis=1)
    y = np.asarray(y_test)
    scores = {"firmware_accuracy": float(np.mean(firmware_class == y)),
              "model_accuracy_on_firmware_inputs": float(np.mean(model_class == y)),
              "argmax_agreement_with_model": float(np.mean(firmware_class == model_class)),
              "argmax_disagreements_with_model": int(np.count_nonzero(firmware_class != model_class))}
    if ops[-1].kind == "softmax" and len(trace) >= 2:
        own = np.argmax(trace[-1], axis=1) == np.argmax(trace[-2], axis=1)
        scores["softmax_argmax_agreement_with_logits"] = float(np.mean(own))
        scores["softmax_argmax_disagreements_with_logits"] = int(np.count_nonzero(~own))
    return scores


def _design(loaded: LoadedModel, config: dict, options: BuildOptions, trained, budget=None, converter=None) -> Design:
    """The design of a loaded network; ``converter`` (default ``convert``) turns it into (hls_model, firmware model)."""
    hls_cfg = dict(config.get("hls") or {})
    target = dict(config.get("target") or {})
    if options.precision:
        hls_cfg["ptq"] = {"weight": options.precision, "bias": options.precision, "result": options.precision}
    if options.backend:
        hls_cfg["backend"] = options.backend
    if options.part:
        target["part"] = options.part
    if options.clock_period_ns:
        target.pop("clock_mhz", None)
        target["clock_period_ns"] = options.clock_period_ns
    full = {"hls": hls_cfg, "target": target}
    opts = settings(full)
    hls_model, fw = (converter or convert)(loaded, full)
    hls_output_op = append_argmax(fw, config, options)
    stamp = hashlib.sha256(json.dumps(fw.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    pipeline = options.pipeline or (config.get("rtl") or {}).get("pipeline", "layer")
    multiplier = (config.get("rtl") or {}).get("multiplier", "shift_add")
    rtl_cfg = config.get("rtl") or {}
    ii, op_ii = resolve_ii(fw, options.ii if options.ii is not None else rtl_cfg.get("ii"), rtl_cfg.get("layer_ii"),
                           opts["clock_period_ns"], budget or {}, where="rtl")
    set_reuse_factors(hls_model, ii, op_ii)
    vectors = int(options.vectors or (config.get("verify") or {}).get("vectors", DEFAULT_VECTORS))
    notes = []
    if loaded.softmax_dropped:
        notes.append("The final softmax is dropped: the firmware outputs logits (argmax and thresholds on "
                     "logits are what a trigger uses).")
    if not loaded.quantized:
        notes.append("Float model: converted with post-training quantization (formats listed under 'formats').")
    for op in fw.ops:
        if isinstance(op, MaxPool) and any(op.pad) and op.pad_raw > op.input.format.min_raw:
            pad = float(op.input.format.to_float([op.pad_raw])[0])
            notes.append(f"{op.name}: hls4ml pads this max pooling with {pad:g} (nnet_pooling.h's pad_val sets the top "
                         f"bit of the unsigned {op.input.format.cpp}), where Keras ignores the padding: the firmware "
                         "follows hls4ml, so outputs at the edges can differ from Keras.")
    reports = {}
    if trained is not None:
        scores = {"float_accuracy": trained.float_accuracy, "quantized_accuracy": trained.quantized_accuracy,
                  "test_samples": trained.n_test}
        if trained.x_test is not None and (fw.output.n > 1 or fw.ops[-1].kind == "argmax"):
            scores.update(classifier_scores(fw, loaded.keras, trained.x_test, trained.y_test))
        reports["training.json"] = (json.dumps(scores, indent=2, sort_keys=True) + "\n").encode()
    meaning = "logits (final softmax dropped)" if loaded.softmax_dropped else "network outputs"
    design = Design(
        model=fw, hls_backend="hls4ml", hls_options={"hls_model": hls_model, "stamp": stamp},
        source_sha256=loaded.sha256, part=opts["part"], clock_period_ns=opts["clock_period_ns"],
        pipeline=pipeline, rtl_multiplier=multiplier, ii=ii, layer_ii=op_ii, vectors=vectors, reports=reports,
        notes=notes, budget=budget or {}, manifest={"formats": [f"input: {fw.input.describe()}"] + [f"{op.name}: {op.describe()}" for op in fw.ops],
                  "widened_accumulators": fw.meta.get("widened_accumulators", {}),
                  "output_meaning": meaning})
    from trigger.source_model import attach

    source = loaded.source_model()
    if hls_output_op is not None:  # the argmax output: hls4ml computes the op before it; compare class indices
        from dataclasses import replace

        design.manifest["hls_output_op"] = hls_output_op
        design.manifest["output_meaning"] = f"class index (argmax of the {meaning})"
        scores_of = source.predict
        source = replace(source, predict=lambda x: np.argmax(scores_of(x), axis=1).reshape(-1, 1).astype(np.float64),
                         description=source.description + ", argmax")
    attach(design, source)  # the fourth witness: the user's model on the stored vectors
    return design
