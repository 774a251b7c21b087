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

from trigger.errors import ConfigError, ModelError
from trigger.fixed import MAX_WIDTH, FixedFormat
from trigger.frontends import BuildOptions, Design, clock_period
from trigger.frontends.layers import HLS_CONFIG, Context, fixed_format, mapping_for
from trigger.ir.ii import resolve_ii
from trigger.ir.model import FirmwareModel, join
from trigger.ir.ops.conv1d import MAX_MULTIPLIERS, Conv1D, size_error
from trigger.ir.ops.dense import Dense
from trigger.ir.ops.max_pool import MaxPool
from trigger.ir.tensor import TensorType
from trigger.frontends.keras import LoadedModel, load_model
from trigger.quiet import quiet_stdout
from trigger.settings import DEFAULT_CLOCK_NS, DEFAULT_PART, DEFAULT_VECTORS, Checker, common_settings

DEFAULTS = {
    "backend": "Vitis",  # or "Vivado"
    # io_parallel (every layer unrolled), io_stream (convolutions streamed through a line buffer: hls4ml's io_stream,
    # trigger/backends/rtl/stream.py) or auto: io_stream when a convolution is too large to unroll (conv_mode)
    "io_type": "auto",
    "strategy": "Latency",
    "reuse_factor": 1,
    "part": DEFAULT_PART,
    "clock_period_ns": DEFAULT_CLOCK_NS,
    "project_name": "myproject",
    "input_precision": "fixed<16,6>",
    # Post-training quantization of float models: the formats weights, biases and layer outputs get.
    "ptq": {"weight": "fixed<16,6>", "bias": "fixed<16,6>", "result": "fixed<16,6,RND_CONV,SAT>"},
    # A kept final softmax (model.keep_softmax): hls4ml settings of the layer (see softmax_settings).
    "softmax": {},
    # Per-layer precision (hls.precision): {hls4ml layer name: {result|accum|weight|bias|...: format or 'auto'}},
    # hls4ml's LayerName -> Precision; 'default' (a format, or weight/bias/result) is another spelling of ptq.
    "precision": {},
}
BACKENDS = ("Vitis", "Vivado")
IO_TYPES = ("auto", "io_parallel", "io_stream")
CONFIG_SECTIONS = {"kind", "name", "dataset", "model", "quantization", "train", "target", "hls", "rtl", "verify",
                   "budget"}
# The sections a network trained from its trigger.yml has (trigger.train reads them; checked here before training)
DATASET_KEYS = ("generator", "n_train", "n_test", "seed", "zero_bias_events", "signal_events")
MODEL_FILE_KEYS = ("file", "weights", "keep_softmax", "output")
MODEL_KEYS = MODEL_FILE_KEYS + ("architecture", "hidden", "filters", "kernel", "pool", "phi", "latent", "rate_hz",
                                "collision_rate_hz")
ARCHITECTURES = ("dense", "conv2d", "deepsets", "autoencoder")
QUANTIZATION_KEYS = ("weight_bits", "weight_integer", "activation_bits", "activation_integer", "latent",
                     "reconstruction", "difference")
TRAIN_KEYS = ("epochs", "batch_size", "learning_rate", "seed")
MAX_QUANTIZER_BITS = 32
MAX_EVENTS = 100_000_000


def check_config(config: dict, path: Path, options: BuildOptions | None = None):
    """Every field of a network's trigger.yml typed and range-checked, before any training or conversion: a
    one-line ConfigError naming the file and the field. Returns the common sections (trigger.settings), with
    ``options`` (the command line) over them."""
    c = Checker(path)
    c.mapping(config, "", ("kind",), tuple(sorted(CONFIG_SECTIONS)))
    common = common_settings(config, path, options, DEFAULT_VECTORS)  # target, rtl, verify, budget
    if "name" in config:  # the Keras model's name; the HLS and RTL names are made identifiers from it
        c.text(config["name"], "name")
    model = c.section(config, "model", MODEL_KEYS)
    if "file" in model:
        c.mapping(model, "model", ("file",), MODEL_FILE_KEYS)
        c.text(model["file"], "model.file")
        if "weights" in model:
            c.text(model["weights"], "model.weights")
        for section in ("dataset", "quantization", "train"):
            if section in config:
                c.fail(section, "applies to a network trained from this file, not to model.file")
    else:
        _check_training(c, config, model)
    if "keep_softmax" in model:
        c.boolean(model["keep_softmax"], "model.keep_softmax")
    if "output" in model:
        c.choice(model["output"], "model.output", ("outputs", "argmax"))
    try:
        settings(config)  # hls (and target) as hls4ml gets them
    except ConfigError as err:
        raise ConfigError(str(err) if str(err).startswith(str(path)) else f"{path}: {err}") from None
    return common


def _check_training(c: Checker, config: dict, model: dict) -> None:
    """dataset, model, quantization and train of a network trained here (trigger.train)."""
    from trigger.train import DATASETS

    dataset = c.mapping(config.get("dataset"), "dataset", ("generator",), DATASET_KEYS)
    c.choice(dataset["generator"], "dataset.generator", DATASETS)
    for key in ("n_train", "n_test", "zero_bias_events", "signal_events"):
        if key in dataset:
            c.integer(dataset[key], f"dataset.{key}", 10, MAX_EVENTS)
    if "seed" in dataset:
        c.integer(dataset["seed"], "dataset.seed", 0, 2**31 - 1)
    c.mapping(model, "model", ("hidden",), MODEL_KEYS)
    architecture = c.choice(model.get("architecture", "dense"), "model.architecture", ARCHITECTURES)
    c.integers(model["hidden"], "model.hidden", 1, 4096)
    if architecture == "conv2d":
        c.integers(model.get("filters"), "model.filters", 1, 1024)
        c.integer(model.get("kernel", 3), "model.kernel", 1, 64)
        c.integer(model.get("pool", 2), "model.pool", 1, 64)
    if architecture == "deepsets":
        c.integers(model.get("phi"), "model.phi", 1, 4096)
    if architecture == "autoencoder":
        c.integer(model.get("latent", 4), "model.latent", 1, 4096)
        for key in ("rate_hz", "collision_rate_hz"):
            if key in model:
                c.number(model[key], f"model.{key}", positive=True)
    quant = c.section(config, "quantization", QUANTIZATION_KEYS)
    for kind in ("weight", "activation"):
        bits = c.integer(quant.get(f"{kind}_bits", 6), f"quantization.{kind}_bits", 1, MAX_QUANTIZER_BITS)
        if f"{kind}_integer" in quant:
            c.integer(quant[f"{kind}_integer"], f"quantization.{kind}_integer", 0, bits)
    for key in ("latent", "reconstruction", "difference"):  # [bits, integer] of a quantized_bits
        if key in quant:
            bits, integer = c.integers(quant[key], f"quantization.{key}", 0, MAX_QUANTIZER_BITS, length=2)
            c.integer(bits, f"quantization.{key}[0]", 2, MAX_QUANTIZER_BITS)
            c.integer(integer, f"quantization.{key}[1]", 0, bits - 1)
    train = c.section(config, "train", TRAIN_KEYS)
    c.integer(train.get("epochs", 12), "train.epochs", 1, 10_000)
    c.integer(train.get("batch_size", 1024), "train.batch_size", 1, 1 << 20)
    c.number(train.get("learning_rate", 0.003), "train.learning_rate", positive=True, hi=10.0)
    c.integer(train.get("seed", 7), "train.seed", 0, 2**31 - 1)


def settings(config: dict | None) -> dict:
    """The HLS settings from a ``trigger.yml`` mapping (sections ``target`` and ``hls``) or a flat mapping."""
    config = dict(config or {})
    flat = {} if any(k in config for k in CONFIG_SECTIONS) else dict(config)
    flat.pop("hls4ml_config", None)  # --hls-config, threaded through by _design
    flat.update(config.get("target") or {})
    flat.update(config.get("hls") or {})
    out = copy.deepcopy(DEFAULTS)
    if "clock_mhz" in flat:
        mhz = flat.pop("clock_mhz")
        if isinstance(mhz, bool) or not isinstance(mhz, (int, float)) or not math.isfinite(mhz) or mhz <= 0:
            raise ConfigError(f"target.clock_mhz must be a positive number, got {mhz!r}")
        flat.setdefault("clock_period_ns", 1000.0 / float(mhz))
    for key, value in flat.items():
        if key == "precision":
            layers, default = layer_precisions(value, "hls.precision")
            if default and "ptq" in flat:
                raise ConfigError("hls.precision.default and hls.ptq set the same formats: give one of them")
            out["ptq"].update(default)
            out["precision"] = layers
        elif key == "ptq":
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
    if out["io_type"] not in IO_TYPES:
        raise ConfigError(f"hls.io_type must be one of {', '.join(IO_TYPES)}, got {out['io_type']!r}")
    if str(out["strategy"]).lower() != "latency":
        raise ConfigError(f"hls.strategy {out['strategy']!r}: only io_stream or io_parallel with the Latency strategy "
                          "is supported")
    out["clock_period_ns"] = clock_period(out["clock_period_ns"], "target.clock_period_ns")
    given = out["input_precision"]
    for text in [*(given.values() if isinstance(given, dict) else [given]), *out["ptq"].values()]:
        try:
            FixedFormat.parse(text)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    softmax_settings(2, out["softmax"])  # a bad hls.softmax fails before training
    if config.get("hls4ml_config") is not None:  # --hls-config (read_hls4ml_config), checked against the model later
        out["hls4ml_config"] = config["hls4ml_config"]
    return out


# ------------------------------------------------------------------ per-layer precision
def precision_value(value, where: str) -> str:
    """A precision as hls4ml's config takes it (``fixed<16,6,RND,SAT>``) or 'auto'; else a one-line error naming
    ``where``."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return FixedFormat.parse(value).hls4ml
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def layer_precisions(spec, where: str) -> tuple[dict, dict]:
    """``hls.precision`` of a trigger.yml: ({layer: {key: format or 'auto'}}, the ptq formats its 'default' sets).

    A layer's value is a mapping of hls4ml precision keys (result, accum, weight, bias, scale, ...) or one format,
    which (as in hls4ml) sets every precision of the layer. 'default' is a format (weight, bias and result) or a
    mapping of some of them, like hls.ptq. Layer names and keys are checked against the model in _hls_config."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping of layer name to precisions, got {spec!r}")
    layers, default = {}, {}
    for name, value in spec.items():
        if name == "default":
            if isinstance(value, dict):
                unknown = sorted(set(value) - set(DEFAULTS["ptq"]))
                if unknown:
                    raise ConfigError(f"{where}.default: unknown key {unknown[0]!r} (expected weight, bias, result)")
                default = {k: precision_value(v, f"{where}.default.{k}") for k, v in value.items()}
            else:
                fmt = precision_value(value, f"{where}.default")
                default = {k: fmt for k in DEFAULTS["ptq"]}
            if "auto" in default.values():
                raise ConfigError(f"{where}.default: 'auto' is not a post-training format")
        elif isinstance(value, dict):
            layers[str(name)] = {str(k): precision_value(v, f"{where}.{name}.{k}") for k, v in value.items()}
        else:
            layers[str(name)] = {"*": precision_value(value, f"{where}.{name}")}  # every precision of the layer
    return layers, default


# --hls-config: the keys of hls4ml's config_from_keras_model(granularity='name') that trigger takes. Model keys: the
# default precision (the post-training formats), ReuseFactor (trigger's II), Strategy Latency; BramFactor only at
# hls4ml's default, TraceOutput and a layer's Trace change nothing in the firmware. Any other key is refused, except
# a layer key whose value is the one config_from_keras_model writes for the model (TableSize of a relu, ...).
DEFAULT_BRAM_FACTOR = 1_000_000_000


def read_hls4ml_config(path) -> dict:
    """An hls4ml config file (YAML or JSON, read as data) as config_from_keras_model(granularity='name') writes it,
    checked as far as possible without the model: {'path', 'default' (ptq formats), 'ii', 'layers', 'layer_ii'}.
    Layer names and per-layer keys are checked against the model in _hls_config (``file_precisions``)."""
    from trigger.yaml_data import read_yaml

    where = str(path)
    data = read_yaml(path, missing=f"--hls-config {where} not found")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected hls4ml's config mapping (Model, LayerName), got {type(data).__name__}")
    for key in data:
        if key not in ("Model", "LayerName"):
            raise ConfigError(f"{where}: {key}: not supported (trigger takes Model and LayerName, as hls4ml's "
                              "config_from_keras_model(granularity='name') writes them)")
    model = data.get("Model") or {}
    layers = data.get("LayerName") or {}
    for key, value in (("Model", model), ("LayerName", layers)):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
    default, ii = {}, None
    for key, value in model.items():
        path_ = f"{where}: Model.{key}"
        if key == "Precision":
            if isinstance(value, dict):
                for k in value:
                    if k != "default":
                        raise ConfigError(f"{where}: Model.Precision.{k}: not supported (only default)")
                value = value.get("default")
            if value is not None:
                fmt = precision_value(value, f"{where}: Model.Precision")
                if fmt == "auto":
                    raise ConfigError(f"{path_}: 'auto' is not a default precision")
                default = {k: fmt for k in DEFAULTS["ptq"]}
        elif key == "ReuseFactor":
            ii = _reuse_factor(value, path_)
        elif key == "Strategy":
            _latency_strategy(value, path_)
        elif key == "BramFactor":
            if value != DEFAULT_BRAM_FACTOR:
                raise ConfigError(f"{path_}: {value!r} is not supported (io_parallel keeps weights in logic; "
                                  f"only hls4ml's default {DEFAULT_BRAM_FACTOR})")
        elif key != "TraceOutput":
            raise ConfigError(f"{path_}: not supported (trigger takes Model.Precision, ReuseFactor, Strategy)")
    layer_ii = {}
    for name, entry in layers.items():
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: LayerName.{name} must be a mapping, got {entry!r}")
        if "ReuseFactor" in entry:
            layer_ii[str(name)] = _reuse_factor(entry["ReuseFactor"], f"{where}: LayerName.{name}.ReuseFactor")
        if "Strategy" in entry:
            _latency_strategy(entry["Strategy"], f"{where}: LayerName.{name}.Strategy")
    return {"path": where, "default": default, "ii": ii, "layers": {str(k): v or {} for k, v in layers.items()},
            "layer_ii": layer_ii}


def _reuse_factor(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a positive whole number, got {value!r}")
    return value


def _latency_strategy(value, where: str) -> None:
    if not isinstance(value, str) or value.strip().lower() != "latency":
        raise ConfigError(f"{where}: {value!r} is not supported (only Latency)")


def _looks_like_softmax(entry: dict) -> bool:
    prec = entry.get("Precision")
    return "Implementation" in entry or (isinstance(prec, dict) and "exp_table" in prec)


def _known_layer(name: str, reference: dict, where: str, model_name: str) -> dict:
    """The reference (config_from_keras_model) entry of a layer named in hls.precision / --hls-config."""
    if name not in reference:
        raise ConfigError(f"{where}: no layer {name!r} in {model_name} (hls4ml's layer names: "
                          f"{', '.join(reference)})")
    entry = reference[name]
    return entry if isinstance(entry, dict) else {}


def _original_layers(loaded: LoadedModel) -> list[tuple[str, str]]:
    """(name, class) of the layers of the model file as the user saved it (read as data; [] if unreadable).
    trigger rebuilds the model (a Sequential's input is renamed, a final softmax dropped); a user's config
    names the original layers."""
    for path in loaded.files:
        try:
            if path.suffix.lower() == ".json":
                arch = json.loads(path.read_text())
            elif path.suffix.lower() in (".h5", ".hdf5"):
                import h5py

                with h5py.File(path, "r") as h5:
                    text = h5.attrs.get("model_config")
                arch = json.loads(text.decode() if isinstance(text, bytes) else text) if text else {}
            else:
                continue
        except (OSError, ValueError):
            continue
        body = arch.get("config") if isinstance(arch, dict) else None
        layers = body.get("layers", []) if isinstance(body, dict) else body if isinstance(body, list) else []
        return [(l["config"].get("name"), l.get("class_name")) for l in layers
                if isinstance(l, dict) and isinstance(l.get("config"), dict)]
    return []


def _input_aliases(loaded: LoadedModel, reference: dict, names) -> dict:
    """{the user's name of the input layer: hls4ml's}. trigger rebuilds a Sequential model, which renames its input
    (``<first layer>_input``); the user's config names the original one, read from the model file (or, for an
    --hls-config entry, the one unknown name whose entry is an input's: a result precision only)."""
    ref_input = next(iter(reference), None)
    if ref_input is None:
        return {}
    original = _original_layers(loaded)
    aliases = {n: ref_input for n, cls in original if cls == "InputLayer" and n and n not in reference}
    unknown = [n for n in names if n not in reference and n not in aliases and not _dropped_softmax(loaded, n, names)]
    if not aliases and ref_input not in names and len(unknown) == 1:
        entry = names[unknown[0]] if isinstance(names, dict) else None
        prec = entry.get("Precision") if isinstance(entry, dict) else None
        if isinstance(entry, dict) and "ReuseFactor" not in entry and (not isinstance(prec, dict) or
                                                                         set(prec) <= {"result"}):
            aliases[unknown[0]] = ref_input
    return aliases


def _dropped_softmax(loaded: LoadedModel, name: str, names) -> bool:
    """Is ``name`` the final softmax trigger dropped (its own layer, or hls4ml's <dense>_softmax)?"""
    if not loaded.softmax_dropped:
        return False
    entry = names.get(name) if isinstance(names, dict) else None
    original = _original_layers(loaded)
    return (name.endswith("_softmax") or (isinstance(entry, dict) and _looks_like_softmax(entry))
            or bool(original) and original[-1][0] == name)


def _reference_precisions(entry: dict) -> dict:
    prec = entry.get("Precision")
    return prec if isinstance(prec, dict) else {"result": prec or "auto"}


def _expand(keys: dict, reference: dict, where: str) -> dict:
    """A layer's given precisions checked against its reference keys; '*' (one format) sets every one of them."""
    known = _reference_precisions(reference)
    if "*" in keys:
        return {k: keys["*"] for k in known}
    for key in keys:
        if key not in known:
            raise ConfigError(f"{where}.{key}: not a precision of this layer (its precisions: {', '.join(known)})")
    return dict(keys)


def file_precisions(file: dict, reference: dict, loaded: LoadedModel) -> dict:
    """The precisions an --hls-config file sets ({layer: {key: format}}), every key checked against the model.

    Values equal to what config_from_keras_model writes for this model, and 'auto', count as unset (trigger's
    defaults apply); any other non-precision key is refused unless it has config_from_keras_model's value."""
    where = file["path"]
    out = {}
    aliases = _input_aliases(loaded, reference, file["layers"])
    for name, entry in file["layers"].items():
        path_ = f"{where}: LayerName.{name}"
        if name not in reference and _dropped_softmax(loaded, name, file["layers"]):
            continue  # the final softmax trigger drops (the firmware outputs logits)
        name = aliases.get(name, name)
        ref = _known_layer(name, reference, f"{where}: LayerName", loaded.name)
        ref_prec = _reference_precisions(ref)
        keys = {}
        for key, value in entry.items():
            if key == "Precision":
                given = value if isinstance(value, dict) else {"*": value}
                for k, v in given.items():
                    if k != "*" and k not in ref_prec:
                        raise ConfigError(f"{path_}.Precision.{k}: not a precision of this layer (its precisions: "
                                          f"{', '.join(ref_prec)})")
                    fmt = precision_value(v, f"{path_}.Precision" + ("" if k == "*" else f".{k}"))
                    unchanged = k != "*" and fmt == precision_value(ref_prec[k], f"{path_}.Precision.{k}")
                    if fmt != "auto" and not unchanged:
                        keys[k] = fmt
            elif key in ("Trace", "ReuseFactor", "Strategy"):  # no effect / checked by read_hls4ml_config and _design
                continue
            elif key not in ref or value != ref[key]:
                raise ConfigError(f"{path_}.{key}: not supported by trigger (it takes Precision, ReuseFactor, "
                                  f"Strategy Latency and Trace; other keys only at config_from_keras_model's value"
                                  + (f" {ref[key]!r})" if key in ref else ")"))
        if keys:
            out[name] = _expand(keys, ref, f"{path_}.Precision")
    return out


def _apply_precisions(loaded: LoadedModel, hcfg: dict, reference: dict, opts: dict) -> dict:
    """Put the user's per-layer precisions (hls.precision, then --hls-config) into the hls4ml config; return them.

    A layer the user does not name keeps trigger's defaults; so does a key given as 'auto' (an accumulator: hls4ml's
    exact inference). The linear activation hls4ml splits off a Dense/convolution without one follows the layer's
    given result unless named itself (otherwise it would cast the output back to the default format)."""
    ref = reference["LayerName"]
    given: dict[str, dict] = {}
    aliases = _input_aliases(loaded, ref, {n: {"ReuseFactor": None} for n in opts.get("precision") or {}})
    for name, keys in (opts.get("precision") or {}).items():
        name = aliases.get(name, name)
        entry = _known_layer(name, ref, "hls.precision", loaded.name)
        given[name] = {k: v for k, v in _expand(keys, entry, f"hls.precision.{name}").items() if v != "auto"}
    if opts.get("hls4ml_config"):
        for name, keys in file_precisions(opts["hls4ml_config"], ref, loaded).items():
            given.setdefault(name, {}).update(keys)
    names = hcfg["LayerName"]
    for name, keys in given.items():
        entry = names.setdefault(name, {})
        prec = entry.setdefault("Precision", {})
        if not isinstance(prec, dict):
            prec = entry["Precision"] = {"result": prec}
        for key, value in keys.items():
            if f"{key}_t" in entry:  # a kept softmax's tables are set at the layer's level (_configure_softmax)
                entry[f"{key}_t"] = value
            else:
                prec[key] = value
                if key == "table":  # hls4ml 1.3 ignores Precision.table of activations and recurrent layers: it
                    entry["table_t"] = value  # reads their table type only as the layer's table_t
        linear = f"{name}_linear"
        if "result" in keys and linear in names and "result" not in given.get(linear, {}):
            names[linear].setdefault("Precision", {})["result"] = keys["result"]
    return {name: keys for name, keys in given.items() if keys}


def check_given_accumulators(widened: dict, opts: dict, model_name: str) -> None:
    """A user-given accumulator is never changed: one the range analysis widens (it can overflow) is refused."""
    given = opts.get("given_precisions") or {}
    for name, fmt in widened.items():
        acc = (given.get(name) or {}).get("accum")
        if acc is not None:
            raise ConfigError(f"{model_name}: layer {name}: the given accumulator {acc} can overflow "
                              f"(an exact one needs {fmt}); give accum: auto, or at least that range")


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
    io_type, io_reason = conv_mode(loaded, opts["io_type"])
    if io_type == "io_parallel":
        refuse_oversized(loaded)
    out_dir = Path(output_dir or opts.get("output_dir") or unwritten_project_dir(loaded.name))
    _prequantize_set_dense(loaded.keras)
    _prequantize_batchnorm(loaded.keras)
    hcfg = _hls_config(loaded, opts)
    widened: dict[str, str] = {}
    typed: dict[str, str] = {}
    for _attempt in range(4):
        with quiet_stdout():
            hls_model = hls4ml.converters.convert_from_keras_model(
                loaded.keras, hls_config=hcfg, output_dir=str(out_dir), project_name=opts["project_name"],
                backend=opts["backend"], io_type=io_type, part=opts["part"],
                clock_period=float(opts["clock_period_ns"]))
        fw = extract(hls_model, loaded.name)
        wider = accumulators_to_widen(fw)
        exact = merge_results_to_type_exactly(fw, opts.get("given_precisions") or {})
        exact.update(split_relus_to_type_exactly(fw, loaded.keras, opts.get("given_precisions") or {}))
        sums = special_weight_sums_to_type_exactly(fw, hls_model, hcfg, opts.get("given_precisions") or {})
        if not wider and not exact and not sums:
            break
        for lname, fmt in wider.items():
            _set_precision(hcfg, lname, "accum", fmt.hls4ml)
            widened[lname] = fmt.hls4ml
        for lname, fmt in exact.items():
            entry = hcfg["LayerName"].setdefault(lname, {})
            if not isinstance(entry.get("Precision"), dict):
                entry["Precision"] = {"result": entry.get("Precision", "auto")}
            entry["Precision"]["result"] = fmt.hls4ml
            typed[lname] = fmt.hls4ml
        for lname, (accum, result) in sums.items():
            _set_precision(hcfg, lname, "accum", accum.hls4ml)
            widened[lname] = accum.hls4ml
            if result is not None:
                _set_precision(hcfg, lname, "result", result.hls4ml)
                typed[lname] = result.hls4ml
                linear = hcfg["LayerName"].get(f"{lname}_linear")  # hls4ml splits it off a typed layer: same type
                if isinstance(linear, dict) and isinstance(linear.get("Precision"), dict):
                    linear["Precision"]["result"] = result.hls4ml
    else:
        raise ModelError(f"{loaded.name}: accumulators still overflow after widening {sorted(widened)}")
    fw.meta["widened_accumulators"] = widened
    fw.meta["conv_mode"] = {"io_type": io_type, "mode": "stream" if io_type == "io_stream" else "unrolled",
                            "setting": opts["io_type"], "reason": io_reason}
    if typed:
        fw.meta["exact_merge_results"] = typed
    check_given_accumulators(widened, opts, loaded.name)
    if opts.get("given_precisions"):
        fw.meta["given_precisions"] = opts["given_precisions"]
    return hls_model, fw


def unwritten_project_dir(name: str) -> Path:
    """A fresh folder name for an hls4ml project nobody asked to keep. Not created: hls4ml only
    needs a name to convert, and most conversions are never written (no empty folders left behind)."""
    return Path(tempfile.gettempdir()) / f"hls_{name}_{uuid.uuid4().hex[:8]}"


def _oversized(loaded: LoadedModel):
    """(layer, output positions, non-zero weights) of each convolution whose full unroll exceeds MAX_MULTIPLIERS."""
    for layer in loaded.keras.layers:
        if type(layer).__name__ not in ("Conv1D", "Conv2D", "QConv1D", "QConv2D"):
            continue
        positions = int(np.prod(layer.output_shape[1:-1]))
        nonzero = int(np.count_nonzero(layer.get_weights()[0]))
        if positions * nonzero > MAX_MULTIPLIERS:
            yield layer, positions, nonzero


def conv_mode(loaded: LoadedModel, setting: str) -> tuple[str, str]:
    """hls4ml's io_type for the model and why: the setting when forced; with ``auto``, io_stream (a line
    buffer and one kernel datapath per convolution, trigger/backends/rtl/stream.py) exactly when some
    convolution would need more than MAX_MULTIPLIERS constant products fully unrolled."""
    if setting != "auto":
        return setting, f"hls.io_type {setting} (forced)"
    big = [f"{layer.name} ({positions * nonzero} products)" for layer, positions, nonzero in _oversized(loaded)]
    if big:
        return "io_stream", (f"auto: unrolled, {', '.join(big)} would exceed {MAX_MULTIPLIERS} constant "
                             "products per layer")
    return "io_parallel", f"auto: every convolution unrolls within {MAX_MULTIPLIERS} constant products per layer"


def refuse_oversized(loaded: LoadedModel) -> None:
    """Refuse a convolution too large to unroll before hls4ml spends minutes (or fails) on it."""
    for layer, positions, nonzero in _oversized(loaded):
        raise ModelError(f"{loaded.name}: layer {layer.name} ({type(layer).__name__} {layer.input_shape[1:]} -> "
                         f"{layer.output_shape[1:]}): {size_error(positions, nonzero)}")


def _hls_config(loaded: LoadedModel, opts: dict) -> dict:
    import hls4ml

    model = loaded.keras
    with quiet_stdout():
        hcfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=opts["backend"],
                                                    default_precision=opts["ptq"]["result"])
    reference = copy.deepcopy(hcfg)  # what hls4ml writes for this model: the names and keys a user may set
    hcfg["Model"]["Strategy"] = "Latency"
    hcfg["Model"]["ReuseFactor"] = int(opts["reuse_factor"])
    first = model.get_config()["layers"][0]
    if first["class_name"] != "InputLayer":
        raise ModelError(f"{model.name}: the rebuilt model has no InputLayer")
    names = hcfg["LayerName"]
    inputs = [l["config"]["name"] for l in model.get_config()["layers"] if l["class_name"] == "InputLayer"]
    for input_name, fmt in input_formats(inputs, opts["input_precision"]).items():
        names.setdefault(input_name, {}).setdefault("Precision", {})
        names[input_name]["Precision"]["result"] = fmt.hls4ml
    ptq = {k: FixedFormat.parse(v).hls4ml for k, v in opts["ptq"].items()}
    for layer in model.layers:
        prec = names.setdefault(layer.name, {}).setdefault("Precision", {})
        if not isinstance(prec, dict):
            prec = names[layer.name]["Precision"] = {"result": prec}
        cls = type(layer).__name__
        if cls in ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D"):
            prec.update(weight=ptq["weight"], bias=ptq["bias"], result=ptq["result"], accum="auto")
            for suffix in ("_relu", "_linear"):  # hls4ml splits the activation into <layer>_<activation>
                if layer.name + suffix in names:
                    names[layer.name + suffix]["Precision"]["result"] = ptq["result"]
        elif cls in ("QDense", "QConv1D", "QConv2D", "QDepthwiseConv2D", "QConv2DBatchnorm"):
            prec["accum"] = "auto"
        elif cls in ("SeparableConv1D", "SeparableConv2D", "QSeparableConv1D", "QSeparableConv2D"):
            # hls4ml splits it into <name>_depthwise and <name>_pointwise with these types: exact sums, and an exact
            # intermediate (QKeras and Keras do not round between the two products)
            prec.update(depthwise_accum="auto", pointwise_accum="auto", depthwise_result="auto")
            if not cls.startswith("Q"):
                prec.update(depthwise=ptq["weight"], pointwise=ptq["weight"], bias=ptq["bias"], result=ptq["result"])
                for suffix in ("_relu", "_linear"):
                    if layer.name + suffix in names:
                        names[layer.name + suffix]["Precision"]["result"] = ptq["result"]
        elif cls == "Dot" and prec.get("accum", "auto") == "auto":
            # hls4ml 1.3 infers only a Dot's result type (its pass asserts on an 'auto' accumulator): a provisional
            # one here, made exact from the converted input types by accumulators_to_widen
            prec["accum"] = DOT_PROVISIONAL_ACCUM
        elif cls in ("BatchNormalization", "QBatchNormalization"):
            axes = [a % len(layer.input_shape) for a in np.atleast_1d(layer.axis)]
            if axes != [len(layer.input_shape) - 1]:
                raise ModelError(f"{loaded.name}: layer {layer.name} ({cls}) normalises axis "
                                 f"{layer.axis}, not the feature (last) axis")
            prec.update(scale=ptq["weight"], bias=ptq["bias"])
            if not loaded.quantized:
                prec["result"] = ptq["result"]
        elif not loaded.quantized and cls != "InputLayer":
            prec["result"] = ptq["result"]  # float activations get the post-training result format
        configure = HLS_CONFIG.get(cls)  # per-class settings registered beside the layer mappings (layers.py)
        if configure is not None:
            configure(layer, prec, names)
    _pin_quantized_bits_activations(model, names)
    _configure_softmax(model, names, opts.get("softmax") or {})
    opts["given_precisions"] = _apply_precisions(loaded, hcfg, reference, opts)  # the user's last: they win
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


def input_formats(inputs: list[str], setting) -> dict[str, FixedFormat]:
    """Each input's format: ``hls.input_precision`` is one format for every input, or a mapping of input
    name to format (a multi-input model's collections each arrive in their own format)."""
    if isinstance(setting, dict):
        unknown = sorted(set(setting) - set(inputs) - {"default"})
        if unknown:
            raise ConfigError(f"hls.input_precision: {unknown[0]!r} is not an input of the model "
                              f"(inputs: {', '.join(inputs)})")
        missing = [n for n in inputs if n not in setting]
        if missing and "default" not in setting:
            raise ConfigError(f"hls.input_precision gives no format for input {missing[0]!r} (or a 'default')")
        return {n: FixedFormat.parse(setting.get(n, setting.get("default"))) for n in inputs}
    return {n: FixedFormat.parse(setting) for n in inputs}


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


def _prequantize_batchnorm(model) -> None:
    """Store a QBatchNormalization's parameters quantized by its own quantizers.

    QKeras normalises with quantizer(gamma), quantizer(beta), quantizer(moving mean) and
    quantizer(moving variance); hls4ml 1.3 ignores those quantizers and folds the stored floats
    (BatchNormalization.initialize), so its scale and bias would not be the model's. Where a
    quantizer is idempotent on the stored values (po2 and quantized_bits are), storing its output
    leaves the QKeras model as it is and gives hls4ml the parameters QKeras computes with.
    """
    import tensorflow as tf

    for layer in model.layers:
        if type(layer).__name__ != "QBatchNormalization":
            continue
        pairs = (("gamma", "gamma_quantizer_internal", layer.scale), ("beta", "beta_quantizer_internal", layer.center),
                 ("moving_mean", "mean_quantizer_internal", True),
                 ("moving_variance", "variance_quantizer_internal", True))
        for attr, qname, used in pairs:
            var, q = getattr(layer, attr, None), getattr(layer, qname, None)
            if var is None or q is None or not used:
                continue
            once = np.asarray(q(tf.constant(var.numpy())), dtype=np.float32)
            twice = np.asarray(q(tf.constant(once)), dtype=np.float32)
            if np.array_equal(once, twice):
                var.assign(once)


def _pin_quantized_bits_activations(model, names: dict) -> None:
    """Give a quantized_bits activation's type to the layer before it.

    hls4ml 1.3 turns QActivation(quantized_bits) into a linear activation, and its
    MergeLinearActivation pass removes that layer when the previous layer's type is
    'auto', losing the quantization. The previous layer's output cast to the same
    type (the same rounding and saturation) computes the same thing.
    """
    for layer in model.layers:
        act = getattr(layer, "activation", None)
        if type(act).__name__ != "quantized_bits" or type(layer).__name__ != "QActivation":
            continue
        source = layer.input._keras_history[0]  # the layer feeding it (in a graph, not the one listed before)
        while type(source).__name__ == "Dropout":  # hls4ml's parser drops it: the layer before feeds the cast
            source = source.input._keras_history[0]
        if type(source).__name__ in ("InputLayer", "Flatten", "Reshape"):
            # the input's type is set, not 'auto': hls4ml keeps the cast. A reshape passes its input's type on
            # (a type pinned on it would make EliminateLinearActivation drop the cast, then be inferred away):
            # left 'auto', the cast after it is kept too
            continue
        prec = names.get(layer.name, {}).get("Precision", {})
        result = prec.get("result") if isinstance(prec, dict) else prec
        if result and result != "auto":
            prev = source.name
            for target in (prev, prev + "_linear"):
                if target in names:
                    names[target].setdefault("Precision", {})["result"] = result


def extract(hls_model, name: str = "model") -> FirmwareModel:
    """The firmware model of a converted (precision-inferred) hls4ml model, through the layer mappings.

    hls4ml's graph is followed by tensor name: each layer's ops read the tensors of the layers
    hls4ml feeds it (a mapping that returns no op, a flatten, passes its input on). A model whose
    graph is one input, a chain of layers and one output becomes a chain, as it always was."""
    layers = list(hls_model.get_layers())
    if not layers or not is_input(layers[0]):
        raise ModelError(f"{name}: the converted model does not start with its input")
    types: dict[str, TensorType] = {}  # firmware tensor name -> type
    tensor_of: dict[str, str] = {}  # hls4ml variable name -> firmware tensor name
    ports, ops, reads = [], [], {}
    for layer in layers:
        if is_input(layer):
            var = layer.get_output_variable()
            t = TensorType.uniform(fixed_format(var.type.precision), int(np.prod(var.shape)))
            ports.append((layer.name, t))
            types[layer.name] = t
            tensor_of[layer.outputs[0]] = layer.name
            continue
        mapping = mapping_for(layer)
        if mapping is None:
            raise ModelError(f"{name}: hls4ml layer {layer.name} of type {layer.class_name} is not supported")
        missing = [v for v in layer.inputs if v not in tensor_of]
        if missing:
            raise ModelError(f"{name}: hls4ml layer {layer.name} reads {missing[0]!r}, which no layer before it writes")
        sources = [tensor_of[v] for v in layer.inputs]
        given = [types[t] for t in sources]
        ctx = Context(name, join(given), inputs=given)
        produced = mapping.to_ops(layer, ctx)
        if not produced and len(sources) != 1:
            raise ModelError(f"{name}: hls4ml layer {layer.name} of type {layer.class_name} merges tensors "
                             "but gives no op")
        for k, op in enumerate(produced):
            wired = ctx.reads.get(op.name)  # a mapping that returns a graph (a recurrent layer) wires its ops
            reads[op.name] = ([t for n in wired for t in (sources if n == Context.INPUT else [n])] if wired
                              else sources if k == 0 else [produced[k - 1].name])
            ops.append(op)
            types[op.name] = op.output
        tensor_of[layer.outputs[0]] = produced[-1].name if produced else sources[0]
    if not ops:
        raise ModelError(f"{name}: the converted model has no layers")
    # the ports in the order of the model's inputs, which hls4ml's top function takes its arguments in (a Keras
    # file may list the input layers in another order: the deeper branch's first)
    order = {tensor_of.get(v, v): k for k, v in enumerate(hls_model.inputs)}
    ports.sort(key=lambda port: order.get(port[0], len(order)))
    out_vars = hls_model.get_output_variables()
    outputs = [tensor_of.get(v, v) for v in hls_model.outputs]
    for var, tensor in zip(out_vars, outputs):
        if tensor not in types or any(f != fixed_format(var.type.precision) for f in types[tensor].formats):
            raise ModelError(f"{name}: the hls4ml output {var.name} is not the output of op {tensor!r}")
    chain = len(ports) == 1 and outputs == [ops[-1].name] and all(
        reads[op.name] == [ops[k - 1].name if k else ports[0][0]] for k, op in enumerate(ops))
    if chain:
        fw = FirmwareModel(name, ports[0][1], ops, kind="network")
    else:
        labels = [n for n, _ in ports]
        fw = FirmwareModel(name, join([t for _, t in ports], labels if len(ports) > 1 else None), ops,
                           kind="network", ports=[(n, t.n) for n, t in ports], reads=reads, outputs=outputs)
    fw.validate()
    return fw


def is_input(layer) -> bool:
    """hls4ml's backends subclass its layer classes: look for Input among the bases."""
    return any(cls.__name__ == "Input" for cls in type(layer).__mro__)


def merge_results_to_type_exactly(fw: FirmwareModel, given: dict) -> dict[str, FixedFormat]:
    """Merge layers whose result type cannot hold the exact result, with one that can.

    hls4ml types an ``average`` like the sum (no bit for the halving), so its cast floors
    (-1.5 LSB -> -2) where Keras computes the exact mean; trigger owns the configuration and types
    the result exactly instead, unless the user gave the layer's result (``given``)."""
    from trigger.ir.ops.merge import exact_format

    out = {}
    for op in fw.ops:
        if op.kind != "merge" or "result" in (given.get(op.name) or {}) or getattr(op, "hls4ml_layer", None):
            continue  # (a merge inside a recurrent layer has the types hls4ml's C++ gives it)
        exact = [exact_format(op.operation, *op.operands(i)) for i in range(op.output.n)]
        res = op.output.formats
        if all(_holds(r, e) for r, e in zip(res, exact)):
            continue
        signed = any(e.signed for e in exact)
        integer = max(e.integer + (signed and not e.signed) for e in exact)
        fractional = max(e.fractional for e in exact)
        out[op.name] = FixedFormat(integer + fractional, integer, signed, res[0].rounding, res[0].overflow)
    return out


def split_relus_to_type_exactly(fw: FirmwareModel, keras_model, given: dict) -> dict[str, FixedFormat]:
    """The relu hls4ml splits off a quantized layer with a float activation (``QConv2D(...,
    activation='relu')``), typed to hold relu of the layer's exact output.

    QKeras applies the float relu to the layer's exact result: one rounding, the quantizers'. hls4ml
    gives the split ``<layer>_relu`` the model's default type (``fixed<16,6,RND_CONV,SAT>``), which
    rounds a second time; the relu of a W-bit signed value is exact in W-1 unsigned bits."""
    quantized_relu_of = {l.name for l in keras_model.layers if type(l).__name__.startswith("Q")
                         and getattr(getattr(l, "activation", None), "__name__", "") == "relu"}
    out = {}
    for k, op in enumerate(fw.ops):
        if op.kind != "relu" or not op.name.endswith("_relu") or op.name[:-5] not in quantized_relu_of:
            continue
        if "result" in (given.get(op.name) or {}) or "result" in (given.get(op.name[:-5]) or {}):
            continue
        src = op.input.formats[0]
        exact = FixedFormat(src.width - src.signed, src.integer - src.signed, False, src.rounding, src.overflow)
        if not all(_holds(r, exact) for r in op.output.formats):
            out[op.name] = FixedFormat(exact.width, exact.integer, False)
    return out


def _set_precision(hcfg: dict, lname: str, key: str, value: str) -> None:
    """Set a precision of an hls4ml layer in the configuration.

    hls4ml 1.3 splits a separable convolution into <name>_depthwise and <name>_pointwise and gives each a
    copy of <name>'s configuration (SeparableToDepthwiseAndConv: depthwise_accum / depthwise_result become
    the depthwise layer's accum / result, pointwise_accum its pointwise layer's accum), overwriting any entry
    of their own: their precisions are set through the separable layer's keys."""
    names = hcfg["LayerName"]
    for part in ("depthwise", "pointwise"):
        base = (names.get(lname[:-len(part) - 1]) or {}).get("Precision") if lname.endswith(f"_{part}") else None
        if isinstance(base, dict) and f"{part}_accum" in base:  # hls4ml writes the copies into this mapping too
            base[f"{part}_{key}" if key == "accum" or part == "depthwise" else key] = value
            return
    entry = names.setdefault(lname, {})
    if not isinstance(entry.get("Precision"), dict):
        entry["Precision"] = {"result": entry.get("Precision", "auto")}
    entry["Precision"][key] = value


def special_weight_sums_to_type_exactly(fw: FirmwareModel, hls_model, hcfg: dict, given: dict) -> dict:
    """{layer: (exact accumulator, exact result or None)} for dense/convolution layers with binary (Xnor) or
    power-of-two (exponent) weights whose types do not hold their sums exactly.

    hls4ml 1.3 infers no type for them (infer_precision's _infer_common_precision falls back to the default
    precision, ``fixed<16,6,RND_CONV,SAT>`` here), so the products would be rounded into the accumulator
    and the result saturated where QKeras computes the exact sum. trigger owns the configuration: both
    get a type that holds every sum (products' fractional bits, the bias's, integer bits from the
    largest sum over the input range); a result set in the configuration (a user's, or a quantized_bits
    activation's pinned onto it) is kept."""
    layers = {l.name: l for l in hls_model.get_layers()}
    out = {}
    for op in fw.ops:
        layer = layers.get(op.name)
        if layer is None or op.kind not in ("dense", "item_dense", "conv1d", "conv2d") or "weight" not in layer.weights:
            continue
        var = layer.weights["weight"]
        special = var.weight_class == "ExponentWeightVariable" or any(
            c.__name__ == "XnorPrecisionType" for c in type(var.type.precision).__mro__)
        if not special or "accum" in (given.get(op.name) or {}):
            continue
        xf = op.input.formats
        frac = max(max(f.fractional for f in xf) + op.weight_fmt.fractional, op.bias_fmt.fractional)
        x_max = max(max(-f.min_raw, f.max_raw) << (frac - op.weight_fmt.fractional - f.fractional) for f in xf)
        w = np.abs(np.asarray(op.weight, dtype=object)).reshape(-1, np.shape(op.bias)[0])
        b = np.abs(np.asarray(op.bias, dtype=object)).reshape(-1)
        worst = max(int(w[:, j].sum()) * x_max + (int(b[j]) << (frac - op.bias_fmt.fractional))
                    for j in range(w.shape[1]))
        width = worst.bit_length() + 1
        exact = FixedFormat(width, width - frac, True)
        prec = (hcfg["LayerName"].get(op.name) or {}).get("Precision") or {}
        parent = (hcfg["LayerName"].get(op.name[:-len("_pointwise")]) or {}).get("Precision") \
            if op.name.endswith("_pointwise") else None
        if isinstance(parent, dict) and "pointwise_accum" in parent:  # a separable's pointwise part: its config's
            prec = parent
        set_result = (prec.get("result") in (None, "auto") if isinstance(prec, dict) else False) \
            and "result" not in (given.get(op.name) or {})
        accum_ok = _holds(op.accum_fmt, exact)
        result_ok = not set_result or all(_holds(f, exact) for f in op.output.formats)
        if not (accum_ok and result_ok):
            out[op.name] = (exact, exact if set_result else None)
    return out


FLOAT32_SIGNIFICAND = 24  # bits: float32 holds every integer below 2**24 exactly


def float32_inexact(fw: FirmwareModel) -> str | None:
    """Why a framework computing in float32 (Keras, QKeras) may round where the firmware is exact, or None.

    Its products and sums are exact while each value is a multiple of the layer's product LSB below
    2**24 of them. The range analysis bounds every partial sum over the whole input format (Dense.plan);
    a layer whose bound reaches 2**24 LSBs can round in float32 (a 16-bit input times an 8-bit weight,
    summed over 12 inputs, can), so exactness is not claimed for the source model."""
    from trigger.ir.ops.merge import exact_format

    limit = 1 << FLOAT32_SIGNIFICAND
    for op in fw.ops:
        if hasattr(op, "plan") and op.kind in ("dense", "item_dense", "conv1d", "conv2d"):
            plan = op.plan()
            shift = max(plan["shift"], 0)
            worst = max(max(-lo, hi) for lo, hi in zip(plan["sum_lo"], plan["sum_hi"])) >> shift
            if worst >= limit:
                return (f"layer {op.name}: sums reach {worst.bit_length()} bits of its product LSB, beyond float32's "
                        f"{FLOAT32_SIGNIFICAND}-bit significand")
        elif op.kind == "merge":
            widths = [exact_format(op.operation, *op.operands(i)).width - 1 for i in range(op.output.n)]
            if max(widths) > FLOAT32_SIGNIFICAND:
                return f"layer {op.name}: {op.operation} results of {max(widths) + 1} bits exceed float32's significand"
        elif op.kind == "dot":
            n = op.input.n // 2
            bits = op.input.formats[0].product_format(op.input.formats[n]).width - 1 + max(n - 1, 0).bit_length()
            if bits > FLOAT32_SIGNIFICAND:
                return f"layer {op.name}: dot sums of {bits + 1} bits exceed float32's significand"
    return None


def _holds(r: FixedFormat, e: FixedFormat) -> bool:
    """Whether format r holds every value of format e exactly."""
    if r.fractional < e.fractional or (e.signed and not r.signed):
        return False
    return r.integer >= e.integer + (r.signed and not e.signed)


DOT_PROVISIONAL_ACCUM = "fixed<16,6>"


def exact_dot_accumulator(op) -> FixedFormat | None:
    """The accumulator that holds every sum of a ``dot`` op's products exactly, when the op's is
    narrower (None when it already does): product bits plus ceil(log2 n) integer bits."""
    n = op.input.n // 2
    a, b = op.input.formats[0], op.input.formats[n]
    prod = a.product_format(b)
    grow = max(1, math.ceil(math.log2(max(n, 1))) + 1)
    acc = op.accum_fmt
    exact = FixedFormat(prod.width + grow, prod.integer + grow, True, acc.rounding, acc.overflow)
    if acc.fractional >= exact.fractional and acc.integer >= exact.integer:
        return None
    return exact


def accumulators_to_widen(fw: FirmwareModel) -> dict[str, FixedFormat]:
    """Accumulators that some inputs can overflow (``Dense.plan``), with a format that cannot."""
    wider = {}
    for op in fw.ops:
        if op.kind == "dot":
            exact = exact_dot_accumulator(op)
            if exact is not None:
                wider[op.name] = exact
            continue
        exact = getattr(op, "exact_accumulator", None)  # a mean over a set (global_pool): a sum, then a shift
        if exact is not None and exact() is not None:
            wider[op.name] = exact()
            continue
        if not isinstance(op, (Dense, Conv1D)):  # a convolution's accumulator is its dense kernel's
            continue
        if getattr(op, "hls4ml_layer", None):  # inside a recurrent layer, accum_t is its result_t (checked there)
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
    common = check_config(config, path, options)  # every field, before training
    budget = common.budget
    if getattr(options, "hls_config", None):
        read_hls4ml_config(options.hls_config)  # and the --hls-config file, as far as it can be without the model
    model_cfg = config.get("model") or {}
    keep_softmax = options.keep_softmax or bool(model_cfg.get("keep_softmax", False))
    if "file" in model_cfg:  # a model shipped with the config
        file = (path.parent / model_cfg["file"]).resolve()
        if file.suffix.lower() == ".onnx":
            from trigger.frontends.onnx import onnx_design

            if (config.get("hls") or {}).get("precision") or getattr(options, "hls_config", None):
                raise ConfigError(f"{path}: per-layer precision (hls.precision, --hls-config) applies to Keras "
                                  "models only, not to ONNX")
            return onnx_design(file, config, options, keep_softmax, budget)
        from trigger.frontends.hgq2 import hgq2_design, is_hgq2_archive

        if file.suffix.lower() == ".keras" and is_hgq2_archive(file):
            return hgq2_design(file, config, options, budget)
        spec = {"json": str(file), "weights": str((path.parent / model_cfg["weights"]).resolve())} \
            if "weights" in model_cfg else file
        return _design(load_model(spec, keep_softmax=keep_softmax, name=config.get("name")), config, options,
                       None, budget, common=common)
    from trigger.train import train

    with tempfile.TemporaryDirectory(prefix="trigger-train-") as work:
        trained = train(config, Path(work) / "model", where=str(path))
        spec = {"json": str(trained.json_path), "weights": str(trained.weights_path)}
        loaded = load_model(spec, keep_softmax=keep_softmax, name=config.get("name"))
        return _design(loaded, config, options, trained, budget, common=common)


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


def _file_reuse_factors(file: dict, fw: FirmwareModel, ii_setting, layer_ii):
    """The II settings with an --hls-config file's ReuseFactors: Model.ReuseFactor is the II (unless --ii / rtl.ii
    says otherwise: then they must agree), a layer's ReuseFactor its op's own II (layers that cannot share their
    arithmetic, e.g. activations, ignore it, as in hls4ml)."""
    where = file["path"]
    if file["ii"] is not None:
        if ii_setting is None:
            ii_setting = file["ii"]
        elif ii_setting != file["ii"]:
            raise ConfigError(f"{where}: Model.ReuseFactor {file['ii']} differs from the II {ii_setting!r} "
                              "(--ii / rtl.ii); trigger's ReuseFactor is the II")
    layer_ii = dict(layer_ii or {})
    usable = {op.name: op.max_ii() for op in fw.ops}
    for name, rf in file["layer_ii"].items():
        if usable.get(name, 1) <= 1:
            continue
        if isinstance(ii_setting, int) and rf > max(ii_setting, 1) or rf > usable[name]:
            raise ConfigError(f"{where}: LayerName.{name}.ReuseFactor {rf} is not consistent with trigger's II model "
                              f"(the model's II is {ii_setting or 1}; this layer can share its arithmetic over at most "
                              f"{usable[name]} cycles)")
        if name in layer_ii and layer_ii[name] != rf:
            raise ConfigError(f"{where}: LayerName.{name}.ReuseFactor {rf} differs from rtl.layer_ii.{name} "
                              f"{layer_ii[name]!r}")
        layer_ii[name] = rf
    return ii_setting, layer_ii


def _check_reuse_factors(file: dict, fw: FirmwareModel, ii: int, op_ii: dict) -> None:
    """Every ReuseFactor of the file equals what trigger's II model gives its layer (else the file is refused)."""
    usable = {op.name: op.max_ii() for op in fw.ops}
    if file["ii"] is not None and file["ii"] != ii:
        raise ConfigError(f"{file['path']}: Model.ReuseFactor {file['ii']} is not trigger's II {ii}")
    for name, rf in file["layer_ii"].items():
        if usable.get(name, 1) > 1 and op_ii.get(name) != rf:
            raise ConfigError(f"{file['path']}: LayerName.{name}.ReuseFactor {rf} is not consistent with trigger's "
                              f"II model (layer II {op_ii.get(name)})")


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
    if len(fw.output_names) != 1:
        raise ConfigError(f"{fw.name}: the argmax output needs a model with one output, it has "
                          f"{len(fw.output_names)} ({', '.join(fw.output_names)})")
    last = fw.output_names[0]
    op = Argmax(f"{last}_argmax", fw.output, TensorType((index_format(fw.output.n),)))
    if not fw.is_chain:
        fw.reads[op.name] = [last]
        fw.outputs = [op.name]
    fw.ops.append(op)
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
    from trigger.frontends.keras import keras_predict

    real = fw.input.to_float(xq).reshape(len(xq), -1)
    model_class = np.argmax(keras_predict(keras_model, [tuple(keras_model.input_shape[1:])], real), axis=1)
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


def _design(loaded: LoadedModel, config: dict, options: BuildOptions, trained, budget=None, converter=None,
            common=None) -> Design:
    """The design of a loaded network; ``converter`` (default ``convert``) turns it into (hls_model, firmware model).
    ``common``: the trigger.yml's common sections with the options over them (trigger.settings; read here when None)."""
    common = common or common_settings(config, "trigger.yml" if config else "settings", options, DEFAULT_VECTORS)
    hls_cfg = dict(config.get("hls") or {})
    target = {"part": common.part, "clock_period_ns": common.clock_period_ns}
    file = read_hls4ml_config(options.hls_config) if getattr(options, "hls_config", None) else None
    ptq = {k: options.precision for k in DEFAULTS["ptq"]} if options.precision else (file or {}).get("default")
    if ptq:  # --precision, else the --hls-config file's Model.Precision: over hls.ptq / hls.precision.default
        hls_cfg["ptq"] = ptq
        if isinstance(hls_cfg.get("precision"), dict):
            hls_cfg["precision"] = {k: v for k, v in hls_cfg["precision"].items() if k != "default"}
    if options.backend:
        hls_cfg["backend"] = options.backend
    if getattr(options, "io_type", None):
        hls_cfg["io_type"] = options.io_type
    full = {"hls": hls_cfg, "target": target}
    if file is not None:
        full["hls4ml_config"] = file
    opts = settings(full)
    hls_model, fw = (converter or convert)(loaded, full)
    hls_output_op = append_argmax(fw, config, options)
    stamp = hashlib.sha256(json.dumps(fw.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    pipeline, multiplier, ii_setting, layer_ii = common.pipeline, common.multiplier, common.ii, common.layer_ii
    if file is not None:
        ii_setting, layer_ii = _file_reuse_factors(file, fw, ii_setting, layer_ii)
    ii, op_ii = resolve_ii(fw, ii_setting, layer_ii, opts["clock_period_ns"], budget or {}, where="rtl")
    if file is not None:
        _check_reuse_factors(file, fw, ii, op_ii)
    set_reuse_factors(hls_model, ii, op_ii)
    vectors = common.vectors
    notes = []
    if loaded.softmax_dropped:
        notes.append("The final softmax is dropped: the firmware outputs logits (argmax and thresholds on "
                     "logits are what a trigger uses).")
    if not loaded.quantized:
        notes.append("Float model: converted with post-training quantization (formats listed under 'formats').")
    for lname, fmt in sorted((fw.meta.get("exact_merge_results") or {}).items()):
        notes.append(f"{lname}: result typed {fmt}, which holds the exact result (hls4ml's type would round it: an "
                     "average's halving, or a float relu split off a quantized layer), so the firmware computes "
                     "what the model computes.")
    if fw.meta.get("given_precisions"):
        notes.append("Per-layer precision as given (hls.precision" + (", --hls-config" if file else "") + ") for "
                     + ", ".join(sorted(fw.meta["given_precisions"])) + "; the other formats are trigger's.")
    for op in fw.ops:
        if isinstance(op, MaxPool) and any(op.pad) and op.pad_raw > op.input.format.min_raw:
            pad = float(op.input.format.to_float([op.pad_raw])[0])
            notes.append(f"{op.name}: hls4ml pads this max pooling with {pad:g} (nnet_pooling.h's pad_val sets the top "
                         f"bit of the unsigned {op.input.format.cpp}), where Keras ignores the padding: the firmware "
                         "follows hls4ml, so outputs at the edges can differ from Keras.")
    reports, extra_vectors = {}, None
    if trained is not None and getattr(trained, "kind", None) == "autoencoder":  # an anomaly score (trigger.anomaly)
        from trigger.anomaly import design_reports, physics_vectors

        reports.update(design_reports(fw, loaded.keras, trained))  # anomaly.json, anomaly.md, plots/anomaly_*.png
        extra_vectors = physics_vectors(fw, trained.config)  # realistic events among the stored vectors
    elif trained is not None:
        scores = {"float_accuracy": trained.float_accuracy, "quantized_accuracy": trained.quantized_accuracy,
                  "test_samples": trained.n_test}
        if trained.x_test is not None and fw.is_chain and (fw.output.n > 1 or fw.ops[-1].kind == "argmax"):
            scores.update(classifier_scores(fw, loaded.keras, trained.x_test, trained.y_test))
        reports["training.json"] = (json.dumps(scores, indent=2, sort_keys=True) + "\n").encode()
    meaning = "logits (final softmax dropped)" if loaded.softmax_dropped else "network outputs"
    if trained is not None and getattr(trained, "kind", None) == "autoencoder":
        meaning = "anomaly score (squared reconstruction error)"
    design = Design(
        model=fw, hls_backend="hls4ml", hls_options={"hls_model": hls_model, "stamp": stamp},
        source_sha256=loaded.sha256, part=opts["part"], clock_period_ns=opts["clock_period_ns"],
        pipeline=pipeline, rtl_multiplier=multiplier, ii=ii, layer_ii=op_ii, ii_resolved=True,
        vectors=vectors, reports=reports,
        extra_vectors=extra_vectors, notes=notes, budget=budget or {}, manifest={"formats": [f"input: {fw.input.describe()}"] + [f"{op.name}: {op.describe()}" for op in fw.ops],
                  "widened_accumulators": fw.meta.get("widened_accumulators", {}),
                  "conv_mode": fw.meta.get("conv_mode"),
                  "output_meaning": meaning})
    if fw.meta.get("given_precisions") or file is not None:  # what the user set, layer by layer
        design.manifest["layer_precision"] = {"given": fw.meta.get("given_precisions") or {},
                                              "hls_config_file": Path(file["path"]).name if file else None}
        if file is not None:
            design.manifest["layer_precision"]["hls_config_sha256"] = hashlib.sha256(
                Path(file["path"]).read_bytes()).hexdigest()
    from trigger.source_model import attach

    source = loaded.source_model()
    inexact = float32_inexact(fw) if source.exact else None
    if inexact:  # the framework computes in float32: exact only while every sum fits its significand
        from dataclasses import replace as _replace

        source = _replace(source, exact=False, description=source.description + f" (not bit-exact: {inexact})")
    if source.exact and fw.meta.get("given_precisions"):  # the user's formats replace the quantizers' own
        from dataclasses import replace as _replace

        source = _replace(source, exact=False, description=source.description + " (not bit-exact: per-layer "
                                                                                "precision given)")
    if hls_output_op is not None:  # the argmax output: hls4ml computes the op before it; compare class indices
        from dataclasses import replace

        design.manifest["hls_output_op"] = hls_output_op
        design.manifest["output_meaning"] = f"class index (argmax of the {meaning})"
        scores_of = source.predict
        source = replace(source, predict=lambda x: np.argmax(scores_of(x), axis=1).reshape(-1, 1).astype(np.float64),
                         description=source.description + ", argmax")
    attach(design, source)  # the fourth witness: the user's model on the stored vectors
    design.loaded, design.source_model = loaded, source
    from trigger.frontends.layer_compare import attach_layers

    attach_layers(design, loaded, source.exact)  # the same, layer by layer: reports/layers.json
    return design
