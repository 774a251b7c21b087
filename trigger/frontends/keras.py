"""Model input: load a Keras 2 / QKeras dense network without executing code from the file.

The architecture JSON (or the ``model_config`` attribute of a full-model ``.h5``)
is inspected as plain data first: only single-input sequential dense networks
with the supported layer classes and quantizers get as far as Keras'
``model_from_json``, so a Lambda layer or an unknown class never reaches a
deserialiser. The weights are checked against the architecture (layer by layer,
shape by shape) before they are loaded.

Supported: ``Dense``/``QDense`` (activation ``linear`` or ``relu``),
``Activation('relu'|'linear')``, ``QActivation`` with ``quantized_relu`` or
``quantized_bits``, ``BatchNormalization`` right after a dense or convolution layer,
``Conv1D``/``Conv2D``/``QConv1D``/``QConv2D``, ``MaxPooling``/``AveragePooling`` 1D/2D,
``Flatten``, ``Reshape`` and ``Dropout`` (channels last, no dilation), and a
final softmax (``Activation('softmax')`` or a last dense layer with
``activation='softmax'``), which is dropped by default: the network then
outputs logits, which is what a trigger thresholds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trigger.errors import ModelError

QUANTIZERS = ("quantized_bits", "quantized_relu")
PLAIN_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")  # sigmoid/tanh: hls4ml's tables (trigger.ir.ops.sigmoid)
DENSE = ("Dense", "QDense")
CONV = ("Conv1D", "Conv2D", "QConv1D", "QConv2D")  # convolutions (trigger.ir.ops.conv1d / conv2d)
SPATIAL = ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D")
def supported_classes() -> tuple[str, ...]:
    """The Keras layer classes some layer mapping accepts (trigger.frontends.layers), plus the input."""
    from trigger.frontends.layers import keras_classes

    return ("InputLayer", *keras_classes())
# A quantizer given as a string, e.g. "quantized_relu(6, 0)": literal arguments only.
_QUANT_STR = re.compile(r"^\s*(quantized_bits|quantized_relu)\s*\(\s*[\w.=+\-\s,]*\)\s*$")
_LITERAL = re.compile(r"^\s*(\w+\s*=\s*)?([+\-]?[\d.]+(e[+\-]?\d+)?|True|False|None|'\w+'|\"\w+\")\s*$")


@dataclass
class LoadedModel:
    """A validated network, ready for hls4ml."""

    name: str
    keras: object  # tf.keras.Model, softmax dropped unless keep_softmax
    quantized: bool  # QKeras layers present (else: float, needs post-training quantization)
    n_inputs: int
    n_outputs: int
    softmax_dropped: bool
    layers: list[tuple[str, str]] = field(default_factory=list)  # (name, class) after the drop
    sha256: str = ""  # of the model file(s), for the bundle manifest
    files: list[Path] = field(default_factory=list)

    def source_model(self):
        """The model evaluated by Keras itself (QKeras: exact; float: post-training quantized), for verify."""
        from trigger.source_model import SourceModel

        shape = tuple(int(d) for d in self.keras.input_shape[1:])

        def predict(x: np.ndarray) -> np.ndarray:
            out = self.keras.predict(x.reshape((len(x), *shape)).astype(np.float32), batch_size=4096, verbose=0)
            return np.asarray(out, dtype=np.float64).reshape(len(x), -1)

        framework = "qkeras" if self.quantized else "keras"
        inexact = _inexact_layer(self.keras) if self.quantized else "float model"
        text = f"{framework} predict of {self.name}" + (f" (not bit-exact: {inexact})" if self.quantized and inexact
                                                         else "")
        return SourceModel(framework, inexact is None, predict, text)


# Layers whose Keras arithmetic the firmware can only approximate: float constants that hls4ml rounds
# (batch norm, unquantized weights), divisions (averages), float functions the firmware tabulates.
INEXACT_LAYER_CLASSES = ("BatchNormalization", "QBatchNormalization", "Dense", "Conv1D", "Conv2D", "Softmax",
                         "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D")
TABLE_ACTIVATIONS = ("sigmoid", "tanh", "softmax")


def _inexact_layer(keras_model) -> str | None:
    """Why QKeras ``predict`` cannot equal the firmware bit for bit (the first such layer), or None.

    The fourth witness counts mismatches only when the source's arithmetic is
    representable: every constant quantized by QKeras itself and every operation exact.
    """
    for layer in keras_model.layers:
        cls = type(layer).__name__
        activation = getattr(getattr(layer, "activation", None), "__name__", "")
        if cls in INEXACT_LAYER_CLASSES:
            return f"layer {layer.name} ({cls})"
        if activation in TABLE_ACTIVATIONS:
            return f"layer {layer.name} ({activation} is a table in firmware)"
        if cls.startswith("Q") and hasattr(layer, "kernel_quantizer") and layer.kernel_quantizer is None:
            return f"layer {layer.name} ({cls} without kernel_quantizer)"
        if getattr(layer, "use_bias", False) and hasattr(layer, "bias_quantizer") and layer.bias_quantizer is None:
            return f"layer {layer.name} ({cls} without bias_quantizer)"
    return None


# ----------------------------------------------------------------- entry point
def load_model(source, *, keep_softmax: bool = False, name: str | None = None) -> LoadedModel:
    """Load a model from a path or a config mapping.

    ``source`` is one of: a ``.json`` architecture (weights from ``weights`` or the
    sibling ``<stem>_weights.h5`` / ``<stem>.h5``), a full-model ``.h5``, or a mapping
    ``{"json": ..., "weights": ...}`` / ``{"h5": ...}`` (keys ``keep_softmax`` and
    ``name`` are honoured too). Raises ``ModelError`` (a ``ValueError``) with a one-line message.
    """
    if isinstance(source, dict):
        cfg = dict(source)
        keep_softmax = bool(cfg.pop("keep_softmax", keep_softmax))
        name = cfg.pop("name", name)
        if "onnx" in cfg:
            raise ModelError("an ONNX model: trigger.frontends.onnx.load_onnx reads it (this loader reads Keras files)")
        if "json" in cfg:
            json_path = Path(cfg["json"])
            weights = Path(cfg["weights"]) if cfg.get("weights") else _sibling_weights(json_path)
            return _load_json_h5(json_path, weights, keep_softmax, name)
        if "h5" in cfg:
            return _load_full_h5(Path(cfg["h5"]), keep_softmax, name)
        raise ModelError(f"model config needs 'json' (+ 'weights') or 'h5', got keys {sorted(source)}")
    path = Path(source)
    if path.suffix == ".json":
        if not path.exists():
            raise ModelError(f"{path}: model architecture file not found")
        return _load_json_h5(path, _sibling_weights(path), keep_softmax, name)
    if path.suffix in (".h5", ".hdf5", ".keras"):
        if path.suffix == ".keras" and path.is_file() and zipfile.is_zipfile(path):
            return _load_keras_archive(path, keep_softmax, name)
        return _load_full_h5(path, keep_softmax, name)
    if path.suffix == ".onnx":
        raise ModelError(f"{path}: an ONNX model: trigger.frontends.onnx.load_onnx reads it (this loader reads Keras files)")
    raise ModelError(f"{path}: unknown model file type (expected .json + weights .h5, or a full-model .h5)")


def _sibling_weights(json_path: Path) -> Path:
    for cand in (json_path.with_name(json_path.stem + "_weights.h5"), json_path.with_suffix(".h5")):
        if cand.exists():
            return cand
    raise ModelError(f"{json_path}: no weights file given and neither {json_path.stem}_weights.h5 nor {json_path.stem}.h5 next to it")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: model architecture file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: not a valid JSON architecture ({err})") from None


def _open_h5(path: Path):
    import h5py

    if not path.exists():
        raise ModelError(f"{path}: weights file not found")
    _refuse_zip(path)
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ModelError(f"{path}: not a readable HDF5 file, truncated or corrupt ({str(err).splitlines()[0]})") from None


def _refuse_zip(path: Path) -> None:
    """A zip is never an HDF5 file: say what it is instead of "not a readable HDF5 file"."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        names = set()
    if "config.json" in names:
        raise ModelError(f"{path}: a Keras .keras archive (zip of config.json + model.weights.h5) named like an HDF5 "
                         "file: rename it to .keras")
    raise ModelError(f"{path}: a zip archive, not an HDF5 model file (expected a Keras 2 .h5, or .json + _weights.h5)")


def _load_json_h5(json_path: Path, weights_path: Path, keep_softmax: bool, name: str | None) -> LoadedModel:
    config = _read_json(json_path)
    plan = validate_config(config, str(json_path), keep_softmax)
    with _open_h5(weights_path) as h5:
        group = h5["model_weights"] if "layer_names" not in h5.attrs and "model_weights" in h5 else h5
        model = _build(plan, group, weights_path)
    digest = _sha256([json_path, weights_path])
    return _result(plan, model, name or json_path.stem, digest, [json_path, weights_path])


def _load_full_h5(path: Path, keep_softmax: bool, name: str | None) -> LoadedModel:
    with _open_h5(path) as h5:
        raw = h5.attrs.get("model_config")
        if raw is None:
            raise ModelError(f"{path}: no 'model_config' attribute: a weights-only file needs its architecture JSON too")
        try:
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        except json.JSONDecodeError as err:
            raise ModelError(f"{path}: model_config is not valid JSON ({err})") from None
        plan = validate_config(config, str(path), keep_softmax)
        if "model_weights" not in h5:
            raise ModelError(f"{path}: no 'model_weights' group: truncated or not a Keras full-model file")
        model = _build(plan, h5["model_weights"], path)
    return _result(plan, model, name or path.stem, _sha256([path]), [path])


def _load_keras_archive(path: Path, keep_softmax: bool, name: str | None) -> LoadedModel:
    """A Keras 3 / tf.keras ``.keras`` zip, read as data (trigger.frontends.keras_archive), then as above."""
    from trigger.frontends.keras_archive import read_archive

    config, weights = read_archive(path)
    with weights:
        plan = validate_config(config, str(path), keep_softmax)
        model = _build(plan, weights, path)
    return _result(plan, model, name or path.stem, _sha256([path]), [path])


def _result(plan: "_Plan", model, name: str, digest: str, files) -> LoadedModel:
    return LoadedModel(name=_safe_name(name), keras=model, quantized=plan.quantized,
                       n_inputs=int(np.prod(model.input_shape[1:])), n_outputs=int(np.prod(model.output_shape[1:])),
                       softmax_dropped=plan.softmax_dropped,
                       layers=[(l["config"]["name"], l["class_name"]) for l in plan.layers],
                       sha256=digest, files=[Path(f) for f in files])


def _safe_name(name: str) -> str:
    name = re.sub(r"\W", "_", name)
    return name if name and not name[0].isdigit() else f"m_{name}"


def _sha256(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------- validation
@dataclass
class _Plan:
    layers: list[dict]  # layer configs to build (softmax removed unless kept)
    quantized: bool
    softmax_dropped: bool
    n_inputs: int
    input_name: str
    where: str
    input_shape: tuple = ()  # the input's shape without the batch axis (channels last)


def validate_config(config: dict, where: str = "model", keep_softmax: bool = False) -> _Plan:
    """Check a Keras architecture config (plain JSON data) against the supported set.

    Returns the layer list to build; raises ``ModelError`` naming the first bad layer.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelError(f"{where}: not a Keras model architecture (no top-level 'class_name')")
    kind = config["class_name"]
    body = config.get("config")
    if kind not in ("Sequential", "Functional", "Model"):
        raise ModelError(f"{where}: top-level class {kind!r} is not a Sequential or functional Model")
    layers = body if isinstance(body, list) else (body or {}).get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelError(f"{where}: architecture has no layers")
    for layer in layers:
        if not isinstance(layer, dict) or "class_name" not in layer or not isinstance(layer.get("config"), dict):
            raise ModelError(f"{where}: malformed layer entry {str(layer)[:60]!r}")
        layer["config"].setdefault("name", layer.get("name", "?"))
    if kind != "Sequential":
        _check_chain(body, layers, where)

    input_shape = None
    out = []
    for i, layer in enumerate(layers):
        if layer["class_name"] == "TimeDistributed":
            layer = layers[i] = _unwrap_time_distributed(layer, where)
        cls, cfg = layer["class_name"], layer["config"]
        lname = cfg.get("name", f"#{i}")
        if cls not in supported_classes():
            raise ModelError(f"{where}: layer {lname!r} of type {cls} is not supported "
                             f"(supported: {', '.join(supported_classes())})")
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        if shape is not None:
            if len(shape) < 2 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
                raise ModelError(f"{where}: layer {lname!r} has input shape {shape}: every dimension but the batch "
                                 "must be a fixed positive size")
            input_shape = shape
        if cls == "InputLayer":
            continue
        _check_layer(cls, cfg, lname, where, out)
        out.append(layer)
    if input_shape is None:
        raise ModelError(f"{where}: the input shape is not given (no InputLayer or batch_input_shape)")
    if not any(l["class_name"] in DENSE + CONV for l in out):
        raise ModelError(f"{where}: the network has no Dense/QDense or convolution layer")

    softmax_dropped = False
    last = out[-1]
    if _is_softmax(last):
        if keep_softmax:  # hls4ml's softmax (trigger.ir.ops.softmax)
            pass
        elif last["class_name"] in DENSE:
            last = copy.deepcopy(last)
            last["config"]["activation"] = "linear"
            out[-1] = last
        else:
            out.pop()
        softmax_dropped = not keep_softmax
    for layer in out[:-1] if keep_softmax else out:  # a kept softmax is the last layer
        if _is_softmax(layer):
            raise ModelError(f"{where}: layer {layer['config']['name']!r} applies a softmax before the last layer: not supported")
    quantized = any(l["class_name"] in ("QDense", "QActivation", "QConv1D", "QConv2D") for l in out)
    return _Plan(out, quantized, softmax_dropped, int(np.prod(input_shape[1:])), "input", where,
                 tuple(int(d) for d in input_shape[1:]))


def _unwrap_time_distributed(layer: dict, where: str) -> dict:
    """``TimeDistributed(Dense)`` as the Dense it wraps, under the wrapper's name.

    Keras applies a Dense layer to the last axis of its input, so on a (items, features)
    input the bare Dense computes exactly what the wrapper computes (DeepSets'
    per-constituent network); hls4ml converts that form as one parallel layer
    (``item_dense``), while its own TimeDistributed is a loop made for recurrent networks.
    The weights are the inner layer's, in the same order, so they load unchanged.
    """
    cfg = layer["config"]
    inner = cfg.get("layer")
    lname = cfg.get("name", "?")
    if not isinstance(inner, dict) or inner.get("class_name") not in DENSE:
        kind = inner.get("class_name") if isinstance(inner, dict) else inner
        raise ModelError(f"{where}: layer {lname!r} is TimeDistributed({kind}); only TimeDistributed(Dense/QDense) "
                         "is supported")
    unwrapped = {"class_name": inner["class_name"], "config": {**copy.deepcopy(inner.get("config") or {}),
                                                               "name": lname}}
    for key in ("batch_input_shape", "batch_shape"):
        if key in cfg:
            unwrapped["config"][key] = cfg[key]
    return unwrapped


def _check_chain(body: dict, layers: list[dict], where: str) -> None:
    """A functional model must be one input, one output, each layer fed by the one before."""
    inputs = body.get("input_layers") or []
    outputs = body.get("output_layers") or []
    if inputs and isinstance(inputs[0], str):  # a single [name, 0, 0] triple
        inputs = [inputs]
    if outputs and isinstance(outputs[0], str):
        outputs = [outputs]
    if len(inputs) != 1:
        names = ", ".join(str(i[0]) for i in inputs)
        raise ModelError(f"{where}: the model has {len(inputs)} inputs ({names}); only single-input networks are supported")
    if len(outputs) != 1:
        names = ", ".join(str(o[0]) for o in outputs)
        raise ModelError(f"{where}: the model has {len(outputs)} outputs ({names}); only single-output networks are supported")
    prev = None
    for layer in layers:
        lname = layer["config"]["name"]
        nodes = layer.get("inbound_nodes") or []
        sources = _inbound_names(nodes)
        if prev is None:
            if layer["class_name"] != "InputLayer":
                raise ModelError(f"{where}: layer {lname!r} of type {layer['class_name']} comes before the InputLayer")
        elif sources != [prev]:
            raise ModelError(f"{where}: layer {lname!r} of type {layer['class_name']} takes inputs {sources}, "
                             f"not just the previous layer {prev!r}: only sequential networks are supported")
        prev = lname
    if outputs[0][0] != prev:
        raise ModelError(f"{where}: the model output {outputs[0][0]!r} is not the last layer {prev!r}")


def _inbound_names(nodes) -> list[str]:
    names = []
    for node in nodes:
        if isinstance(node, dict):  # Keras 3 style
            for arg in node.get("args", []):
                hist = arg.get("config", {}).get("keras_history") if isinstance(arg, dict) else None
                if hist:
                    names.append(hist[0])
            continue
        for entry in node:
            names.append(entry[0])
    return names


def _is_softmax(layer: dict) -> bool:
    act = layer["config"].get("activation")
    return act == "softmax" or layer["class_name"] == "Softmax"


def _check_layer(cls: str, cfg: dict, lname: str, where: str, previous: list[dict]) -> None:
    bad = f"{where}: layer {lname!r} of type {cls}"
    if cls in CONV + SPATIAL + ("Flatten", "Reshape"):
        _check_spatial(cls, cfg, bad)
    if cls in DENSE or cls in CONV:
        act = cfg.get("activation", "linear")
        if act not in PLAIN_ACTIVATIONS + ("softmax",) and not _quantizer_ok(act, ("quantized_relu", "quantized_bits")):
            raise ModelError(f"{bad}: activation {_describe(act)} is not supported (linear, relu or a final softmax)")
        if cls in ("QDense", "QConv1D", "QConv2D"):
            for key in ("kernel_quantizer", "bias_quantizer"):
                q = cfg.get(key)
                if q is not None and not _quantizer_ok(q, ("quantized_bits",)):
                    raise ModelError(f"{bad}: {key} {_describe(q)} is not supported (quantized_bits only)")
        for key in ("kernel_constraint", "bias_constraint", "activity_regularizer"):
            pass  # training-only settings: harmless for inference
    elif cls == "Activation":
        act = cfg.get("activation")
        if act not in PLAIN_ACTIVATIONS + ("softmax",):
            raise ModelError(f"{bad}: activation {_describe(act)} is not supported (relu, linear or a final softmax)")
    elif cls == "QActivation":
        act = cfg.get("activation")
        if act in PLAIN_ACTIVATIONS:
            return
        if not _quantizer_ok(act, QUANTIZERS):
            raise ModelError(f"{bad}: activation {_describe(act)} is not supported (quantized_relu or quantized_bits)")
        qcfg = act.get("config", {}) if isinstance(act, dict) else {}
        if qcfg.get("use_stochastic_rounding") or qcfg.get("negative_slope", 0.0) not in (0, 0.0, None) \
                or qcfg.get("use_sigmoid", 0) or qcfg.get("relu_upper_bound") is not None:
            raise ModelError(f"{bad}: quantized_relu options (stochastic rounding, negative slope, sigmoid, upper bound) are not supported")
    elif cls == "BatchNormalization":
        if not previous or previous[-1]["class_name"] not in DENSE + CONV:
            prev = f"{previous[-1]['class_name']} {previous[-1]['config']['name']!r}" if previous else "the input"
            raise ModelError(f"{bad} follows {prev}: batch normalisation is supported only right after a Dense/QDense "
                             "or convolution layer")
        axis = cfg.get("axis", -1)
        last = {"1D": 2, "2D": 3}.get(previous[-1]["class_name"][-2:], 1)  # channels: the last axis of the input
        if axis not in (-1, last, [-1], [last]):
            raise ModelError(f"{bad}: axis {axis} is not the feature axis")


def _check_spatial(cls: str, cfg: dict, bad: str) -> None:
    """Convolutions, pooling and reshapes: channels-last data, no dilation or groups (what the ops compute)."""
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ModelError(f"{bad}: data_format {cfg.get('data_format')!r} is not supported (channels_last only)")
    if any(d != 1 for d in np.atleast_1d(cfg.get("dilation_rate", 1))):
        raise ModelError(f"{bad}: dilation_rate {cfg.get('dilation_rate')} is not supported (1 only)")
    if cfg.get("groups", 1) != 1:
        raise ModelError(f"{bad}: groups={cfg.get('groups')} is not supported (1 only)")
    if cfg.get("padding", "valid") not in ("valid", "same"):
        raise ModelError(f"{bad}: padding {cfg.get('padding')!r} is not supported (valid or same)")


def _quantizer_ok(q, allowed: tuple[str, ...]) -> bool:
    """A quantizer given as a serialised dict or a literal-only string call."""
    if isinstance(q, dict):
        return q.get("class_name") in allowed and isinstance(q.get("config", {}), dict)
    if isinstance(q, str):
        m = _QUANT_STR.match(q)
        if not m or m.group(1) not in allowed:
            return False
        inner = q[q.index("(") + 1:q.rindex(")")]
        return all(_LITERAL.match(a) for a in inner.split(",")) if inner.strip() else True
    return False


def _describe(q) -> str:
    if isinstance(q, dict):
        return repr(q.get("class_name"))
    return repr(q)[:60]


# ---------------------------------------------------------------- building
def _weight_shapes(h5group, where: Path) -> list[tuple[str, list[tuple[str, tuple]]]]:
    """(layer name, [(weight name, shape)]) for every layer in the file that has weights."""
    try:
        names = [n.decode() if isinstance(n, bytes) else n for n in h5group.attrs["layer_names"]]
        result = []
        for lname in names:
            g = h5group[lname]
            wnames = [n.decode() if isinstance(n, bytes) else n for n in g.attrs.get("weight_names", [])]
            if wnames:
                result.append((lname, [(w, tuple(g[w].shape)) for w in wnames]))
        return result
    except KeyError as err:
        raise ModelError(f"{where}: not a Keras weights file or truncated (missing {err})") from None
    except (OSError, RuntimeError) as err:
        raise ModelError(f"{where}: weights file is truncated or corrupt ({str(err).splitlines()[0]})") from None


def _build(plan: _Plan, h5group, weights_path: Path):
    """Build the validated architecture and load the checked weights."""
    import tensorflow as tf
    from qkeras.utils import _add_supported_quantized_objects

    custom = {}
    _add_supported_quantized_objects(custom)
    layers = [_inference_only(layer) for layer in plan.layers]
    for layer in layers[1:]:  # Keras ignores an input shape after the first layer, hls4ml's parser does not
        layer["config"].pop("batch_input_shape", None)
        layer["config"].pop("batch_shape", None)
    first = layers[0]["config"]
    first["batch_input_shape"] = [None, *(plan.input_shape or (plan.n_inputs,))]
    first.pop("batch_shape", None)
    seq = {"class_name": "Sequential", "config": {"name": "model", "layers": layers}}
    try:
        model = tf.keras.models.model_from_json(json.dumps(seq), custom_objects=custom)
    except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad config
        raise ModelError(f"{plan.where}: Keras cannot build the architecture: {_one_line(err)}") from None

    in_file = _weight_shapes(h5group, weights_path)
    in_model = [(l.name, [tuple(w.shape) for w in l.weights]) for l in model.layers if l.weights]
    if len(in_file) != len(in_model):
        raise ModelError(f"{weights_path} does not match {plan.where}: the file has weights for {len(in_file)} layers "
                         f"({', '.join(n for n, _ in in_file)}), the architecture has {len(in_model)} "
                         f"({', '.join(n for n, _ in in_model)})")
    for (fname, fweights), (mname, mshapes) in zip(in_file, in_model):
        fshapes = [s for _, s in fweights]
        if fshapes != mshapes:
            raise ModelError(f"{weights_path} does not match {plan.where}: layer {mname!r} expects weight shapes "
                             f"{mshapes}, the file's layer {fname!r} has {fshapes}")
    try:
        for (fname, fweights), layer in zip(in_file, [l for l in model.layers if l.weights]):
            g = h5group[fname]
            layer.set_weights([np.asarray(g[w]) for w, _ in fweights])
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        raise ModelError(f"{weights_path}: cannot read the weights, truncated or corrupt ({_one_line(err)})") from None
    for layer in model.layers:
        for w in layer.weights:
            if not np.all(np.isfinite(w.numpy())):
                raise ModelError(f"{weights_path}: layer {layer.name!r} has non-finite weights ({w.name})")
    return model


_TRAINING_ONLY = re.compile(r".*_(initializer|regularizer|constraint)$")


def _inference_only(layer: dict) -> dict:
    """The layer config without training-only settings and serialisation metadata.

    Initializers, regularizers and constraints do not change inference; dropping
    them (and Keras 2.13+'s ``module``/``registered_name`` keys, so nothing is
    imported by module name) leaves Keras only the validated classes to build.
    """
    cfg = {k: copy.deepcopy(v) for k, v in layer["config"].items() if not _TRAINING_ONLY.match(k)}
    for key, value in list(cfg.items()):
        if isinstance(value, dict) and "class_name" in value:
            cfg[key] = _strip_meta(value)
    return {"class_name": layer["class_name"], "config": cfg}


def _strip_meta(obj):
    if isinstance(obj, dict):
        out = {k: _strip_meta(v) for k, v in obj.items() if k not in ("module", "registered_name", "build_config")}
        if out.get("class_name") in QUANTIZERS:
            out["__passive_serialization__"] = True  # Keras' marker: rebuild this nested quantizer object
        return out
    return obj


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
