"""Model input: load a Keras 2 / QKeras dense network without executing code from the file.

The architecture JSON (or the ``model_config`` attribute of a full-model ``.h5``)
is inspected as plain data first: only single-input sequential dense networks
with the supported layer classes and quantizers get as far as Keras'
``model_from_json``, so a Lambda layer or an unknown class never reaches a
deserialiser. The weights are checked against the architecture (layer by layer,
shape by shape) before they are loaded.

Supported: the Keras classes of the layer mappings (``trigger.frontends.layers``, whose
registered checks refuse what hls4ml cannot compute), e.g. ``Dense``/``QDense`` (activation
``linear`` or ``relu``), ``Activation('relu'|'linear')``, ``QActivation`` with
``quantized_relu`` (a negative slope: hls4ml's leaky relu), ``quantized_bits``, ``binary``,
``ternary`` or ``quantized_tanh``, ``BatchNormalization``/``QBatchNormalization`` right
after a dense or convolution layer, ``Conv1D``/``Conv2D``/``QConv1D``/``QConv2D`` (Conv1D
also with causal padding), ``QConv2DBatchnorm``, depthwise and separable convolutions,
``MaxPooling``/``AveragePooling`` 1D/2D, ``Flatten``, ``Reshape`` and ``Dropout`` (channels
last, no dilation), weight quantizers ``quantized_bits``, ``binary``, ``ternary``, their
stochastic forms and ``quantized_po2``, models used as layers (flattened on load), and a
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
from trigger.frontends.layers import check_keras_layer, keras_check

QUANTIZERS = ("quantized_bits", "quantized_relu")
PLAIN_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh",  # sigmoid/tanh: hls4ml's tables (trigger.ir.ops.sigmoid)
                     "elu", "selu", "softsign")  # trigger.ir.ops.elu, softsign
DENSE = ("Dense", "QDense")
CONV = ("Conv1D", "Conv2D", "QConv1D", "QConv2D")  # convolutions (trigger.ir.ops.conv1d / conv2d)
SPATIAL = ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D")
MOVES = ("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D")  # ops/gather.py
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
    input_shapes: list = field(default_factory=list)  # per model input, its shape without the batch axis

    def source_model(self):
        """The model evaluated by Keras itself (QKeras: exact; float: post-training quantized), for verify."""
        from trigger.source_model import SourceModel

        shapes = self.input_shapes or [tuple(int(d) for d in self.keras.input_shape[1:])]

        def predict(x: np.ndarray) -> np.ndarray:
            return keras_predict(self.keras, shapes, x)

        framework = "qkeras" if self.quantized else "keras"
        inexact = _inexact_layer(self.keras) if self.quantized else "float model"
        text = f"{framework} predict of {self.name}" + (f" (not bit-exact: {inexact})" if self.quantized and inexact
                                                         else "")
        return SourceModel(framework, inexact is None, predict, text)


def keras_predict(keras_model, shapes: list[tuple], x: np.ndarray) -> np.ndarray:
    """A Keras model on rows of real values: the input bus split into the model's inputs (one after
    another, each reshaped), the outputs flattened and put side by side (the output bus)."""
    parts, at = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        parts.append(x[:, at:at + n].reshape((len(x), *shape)).astype(np.float32))
        at += n
    # Called eagerly, in batches of PREDICT_BATCH rows: ``predict`` would trace a graph for every model and
    # convert every layer's Python with autograph first, seconds per model for the same kernels.
    rows = []
    for start in range(0, len(x), PREDICT_BATCH):
        batch = [p[start:start + PREDICT_BATCH] for p in parts]
        out = keras_model(batch[0] if len(batch) == 1 else batch, training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        rows.append(np.concatenate([np.asarray(o, dtype=np.float64).reshape(len(batch[0]), -1) for o in outs], axis=1))
    if not rows:
        return keras_predict_empty(keras_model, len(x))
    return np.concatenate(rows, axis=0)


PREDICT_BATCH = 4096


def keras_predict_empty(keras_model, rows: int) -> np.ndarray:
    """No rows: an empty output bus as wide as the model's outputs."""
    shapes = keras_model.output_shape if isinstance(keras_model.output_shape, list) else [keras_model.output_shape]
    return np.zeros((rows, sum(int(np.prod(s[1:])) for s in shapes)))


# Layers whose Keras arithmetic the firmware can only approximate: float constants that hls4ml rounds
# (batch norm, unquantized weights), divisions (averages), float functions the firmware tabulates.
INEXACT_LAYER_CLASSES = ("BatchNormalization", "QBatchNormalization", "Dense", "Conv1D", "Conv2D", "Softmax",
                         "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
                         "ELU", "PReLU", "ThresholdedReLU", "Embedding", "LayerNormalization", "LSTM", "GRU",
                         "QLSTM")  # float constants or tables in firmware
TABLE_ACTIVATIONS = ("sigmoid", "tanh", "softmax", "elu", "selu", "softsign")


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
        for key in ("depthwise_quantizer", "pointwise_quantizer"):  # QDepthwiseConv2D, QSeparableConv1D/2D
            if cls.startswith("Q") and hasattr(layer, key) and getattr(layer, key) is None:
                return f"layer {layer.name} ({cls} without {key})"
        if not cls.startswith("Q") and layer.weights:  # float constants hls4ml rounds to its weight types
            return f"layer {layer.name} ({cls} with float weights)"
        reason = _quantizer_inexact(layer)
        if reason:
            return f"layer {layer.name} ({cls}: {reason})"
        if cls == "QConv2DBatchnorm":
            reason = _folding_differs(layer)
            if reason:
                return f"layer {layer.name} ({cls}: {reason})"
    return None


def _quantizer_inexact(layer) -> str | None:
    """Why a layer's QKeras quantizers compute what hls4ml's conversion of them does not, or None.

    A binary/ternary weight quantizer with an alpha other than 1 scales the weights by a float
    (hls4ml's ApplyAlpha rounds it); quantized_relu's negative part is clipped at
    -negative_slope * 2**integer in QKeras, where hls4ml's leaky_relu saturates at the type's minimum."""
    for key in ("kernel_quantizer_internal", "depthwise_quantizer_internal", "pointwise_quantizer_internal"):
        q = getattr(layer, key, None)
        if type(q).__name__ in ("binary", "ternary", "stochastic_binary", "stochastic_ternary") and \
                getattr(q, "alpha", None) not in (None, 1, 1.0):
            return f"{type(q).__name__} weights with alpha={q.alpha!r}"
    # a QActivation's quantizer, or the activation quantizer of a QDense/QConv (hls4ml splits it into a QActivation)
    q = getattr(layer, "quantizer", None) if type(layer).__name__ == "QActivation" else getattr(layer, "activation",
                                                                                                None)
    if type(q).__name__ == "quantized_relu" and float(getattr(q, "negative_slope", 0.0) or 0.0) != 0.0:
        return "quantized_relu with a negative slope"
    if type(q).__name__ == "quantized_tanh" and (q.symmetric or q.use_real_tanh):
        return "quantized_tanh with " + ("use_real_tanh (a table in firmware)" if q.use_real_tanh else
                                         "symmetric=True (QKeras clips at -1 + 1 LSB, hls4ml at -1)")
    if type(q).__name__ == "quantized_sigmoid" and (q.symmetric or q.use_real_sigmoid):
        return "quantized_sigmoid with " + ("use_real_sigmoid (a table in firmware)" if q.use_real_sigmoid else
                                            "symmetric=True (QKeras clips at 1 LSB, hls4ml at 0)")
    return None


def _folding_differs(layer) -> str | None:
    """Why hls4ml's folded weights of a QConv2DBatchnorm are not QKeras's, or None.

    Both fold the moving statistics into the kernel and bias and quantize the result with the layer's
    quantizers, in float32: QKeras with TensorFlow's rsqrt (``get_folded_weights``), hls4ml with numpy's
    1/sqrt (``Conv2DBatchnorm._get_folded_weights``). A folded bias without a bias quantizer is a float
    constant that hls4ml rounds to its bias type."""
    import tensorflow as tf

    if layer.bias_quantizer_internal is None:
        return "the folded bias has no bias_quantizer"
    bn = layer.batchnorm
    f32 = np.float32
    inv = np.reciprocal(np.sqrt(np.asarray(bn.moving_variance.numpy(), f32) + f32(bn.epsilon)))
    if bn.gamma is not None:
        inv = inv * bn.gamma.numpy()
    bias = layer.bias.numpy() if layer.use_bias else f32(0)
    theirs = [inv * layer.kernel.numpy(), inv * (bias - bn.moving_mean.numpy())
              + (bn.beta.numpy() if bn.beta is not None else f32(0))]
    mine = [t.numpy() for t in layer.get_folded_weights()]
    quantizers = (layer.kernel_quantizer_internal, layer.bias_quantizer_internal)
    for what, q, a, b in zip(("kernel", "bias"), quantizers, mine, theirs):
        if q is not None:
            a, b = (np.asarray(q(tf.constant(np.asarray(v, f32)))) for v in (a, b))
        differ = int(np.count_nonzero(np.asarray(a, f32) != np.asarray(b, f32)))
        if differ:
            return f"{differ} of {np.size(a)} folded {what} values differ between QKeras's and hls4ml's folding"
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
    shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]
    out_shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.outputs]
    return LoadedModel(name=_safe_name(name), keras=model, quantized=plan.quantized,
                       n_inputs=sum(int(np.prod(s)) for s in shapes),
                       n_outputs=sum(int(np.prod(s)) for s in out_shapes),
                       input_shapes=shapes,
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
    # A functional model that is not a chain (several inputs or outputs, merges, skips): built as a graph.
    graph: dict | None = None  # {"inputs": [(name, shape)], "outputs": [name], "sources": {layer: [names]}}
    # Models used as layers, flattened into their layers: {model name: [its layers' names]} (their weights are
    # stored in one group under the model's name, a sub-group per layer).
    nested: dict = field(default_factory=dict)


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
    body, layers, nested = _flatten_nested(kind, body, layers, where)
    graph = _graph_of(body, layers, where) if kind != "Sequential" else None

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
            if graph is not None:
                out.append(layer)
            continue
        previous = out
        if cls in MERGES:
            _check_merge(cls, cfg, lname, where, (graph or {}).get("sources", {}).get(lname, []))
        if graph is not None:  # the layer's own inputs (a graph's previous layer may be on another branch)
            by_name = {l["config"]["name"]: l for l in out}
            previous = [by_name[n] for n in graph["sources"].get(lname, []) if n in by_name]
            previous = [l for l in previous if l["class_name"] != "InputLayer"]
        _check_layer(cls, cfg, lname, where, previous)
        out.append(layer)
    if graph is not None:
        plan = _graph_plan(out, graph, where, keep_softmax)
        plan.nested = nested
        return plan
    if input_shape is None:
        raise ModelError(f"{where}: the input shape is not given (no InputLayer or batch_input_shape)")

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
    quantized = any(l["class_name"].startswith("Q") for l in out)  # QKeras layers (QDense, QConv2DBatchnorm, ...)
    return _Plan(out, quantized, softmax_dropped, int(np.prod(input_shape[1:])), "input", where,
                 tuple(int(d) for d in input_shape[1:]), nested=nested)


MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot")
MODELS = ("Sequential", "Functional", "Model")  # a model used as a layer: flattened on load


def _flatten_nested(kind: str, body, layers: list[dict], where: str):
    """A model used as a layer (a Sequential block, or a functional chain) replaced by its own layers, read as
    data: (body, layers, {model name: [its layers' names]}).

    In a Sequential the inner layers take the nested model's place; in a functional model the first inner
    layer reads what the nested model read, each next one the layer before it, and every reader of the
    nested model (and the model's outputs) reads its last layer. Nested models inside it are flattened first.
    Keras computes the same function either way; the weights stay in the file where Keras 2 saved them
    (``_weight_shapes`` reads them per inner layer)."""
    if not any(l["class_name"] in MODELS for l in layers):
        return body, layers, {}
    nested, out = {}, []
    body = copy.deepcopy(body) if isinstance(body, dict) else body
    for layer in layers:
        if layer["class_name"] not in MODELS:
            out.append(layer)
            continue
        lname = layer["config"].get("name", "?")
        inner_body = layer["config"]
        inner = inner_body.get("layers")
        if not isinstance(inner, list) or not inner:
            raise ModelError(f"{where}: nested model {lname!r} has no layers")
        for entry in inner:
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                raise ModelError(f"{where}: nested model {lname!r} has a malformed layer entry {str(entry)[:60]!r}")
            entry["config"].setdefault("name", entry.get("name", "?"))
        inner_body, inner, deeper = _flatten_nested(layer["class_name"], inner_body, inner, f"{where}: {lname}")
        nested.update(deeper)
        if layer["class_name"] != "Sequential" and _graph_of(inner_body, inner, f"{where}: {lname}") is not None:
            raise ModelError(f"{where}: nested model {lname!r} is not a chain of layers (one input, one output, "
                             "each layer reading the one before): only such nested models are flattened")
        if len(layer.get("inbound_nodes") or []) > 1:
            raise ModelError(f"{where}: nested model {lname!r} is called {len(layer['inbound_nodes'])} times "
                             "(shared layers are not supported)")
        shape = None
        body_layers = []
        for entry in inner:
            if entry["class_name"] == "InputLayer":
                shape = entry["config"].get("batch_input_shape") or entry["config"].get("batch_shape")
                continue
            body_layers.append(copy.deepcopy(entry))
        if not body_layers:
            raise ModelError(f"{where}: nested model {lname!r} has no layers besides its input")
        if kind == "Sequential":
            if not out and shape is not None:  # the nested model comes first: its input shape is the model's
                body_layers[0]["config"].setdefault("batch_input_shape", shape)
        else:
            previous = layer.get("inbound_nodes") or []
            for k, entry in enumerate(body_layers):
                entry["name"] = entry["config"]["name"]
                entry["inbound_nodes"] = previous if k == 0 else [[[body_layers[k - 1]["config"]["name"], 0, 0, {}]]]
        names = [e["config"]["name"] for e in body_layers]
        nested[lname] = names
        out.extend(body_layers)
        if kind != "Sequential":
            for later in layers:  # readers of the nested model read its last layer
                if later is not layer:
                    later["inbound_nodes"] = _renamed(later.get("inbound_nodes"), lname, names[-1])
            for key in ("output_layers", "input_layers"):
                body[key] = _renamed(body.get(key), lname, names[-1])
    seen = set()
    for layer in out:
        name = layer["config"]["name"]
        if name in seen:
            raise ModelError(f"{where}: two layers are named {name!r} once nested models are flattened")
        seen.add(name)
    if isinstance(body, dict):
        body["layers"] = out
    return body, out, nested


def _renamed(nodes, old: str, new: str):
    """Inbound nodes / port entries with every reference to layer ``old`` made to ``new`` (Keras 2 and 3 spellings)."""
    if isinstance(nodes, list):
        if len(nodes) >= 3 and nodes[0] == old and all(isinstance(v, int) for v in nodes[1:3]):
            return [new, *nodes[1:]]
        return [_renamed(n, old, new) for n in nodes]
    if isinstance(nodes, dict):
        out = {k: _renamed(v, old, new) for k, v in nodes.items()}
        history = (out.get("config") or {}).get("keras_history") if isinstance(out.get("config"), dict) else None
        if isinstance(history, list) and history and history[0] == old:
            out["config"] = {**out["config"], "keras_history": [new, *history[1:]]}
        return out
    return nodes


def _check_merge(cls: str, cfg: dict, lname: str, where: str, sources: list[str]) -> None:
    """What hls4ml's merge layers (nnet_merge.h) compute: two inputs; Dot of two 1-D tensors, not normalised."""
    bad = f"{where}: layer {lname!r} of type {cls}"
    if len(sources) != 2:
        raise ModelError(f"{bad} merges {len(sources)} tensors: hls4ml merges exactly two (chain two-input "
                         "merges instead)")
    if cls == "Dot":
        if cfg.get("normalize"):
            raise ModelError(f"{bad}: normalize=True (a cosine similarity) is not supported")
        axes = cfg.get("axes", -1)
        if np.atleast_1d(axes).tolist() not in ([1], [-1], [1, 1], [-1, -1]):
            raise ModelError(f"{bad}: axes {axes} is not supported (the dot of two vectors: axes=1)")


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


def _ports(entries) -> list[str]:
    """Layer names of a functional model's input_layers / output_layers ([name, 0, 0] triples)."""
    entries = entries or []
    if entries and isinstance(entries[0], str):  # a single [name, 0, 0] triple
        entries = [entries]
    if isinstance(entries, dict):  # Keras 3 single-port spelling
        entries = [entries]
    names = []
    for e in entries:
        if isinstance(e, (list, tuple)) and e and isinstance(e[0], str):
            names.append(e[0])
        elif isinstance(e, dict) and isinstance((e.get("config") or {}).get("keras_history"), list):
            names.append(e["config"]["keras_history"][0])
        else:
            raise ModelError(f"malformed input/output entry {str(e)[:60]!r}")
    return names


def _graph_of(body: dict, layers: list[dict], where: str) -> dict | None:
    """A functional model's wiring as data: its inputs, outputs and each layer's input layers, checked
    (every layer fed only by layers before it, each used once per call). None when it is a chain
    (one input, each layer fed by the one before, the last layer the output): built as before."""
    try:
        inputs, outputs = _ports(body.get("input_layers")), _ports(body.get("output_layers"))
    except ModelError as err:
        raise ModelError(f"{where}: {err}") from None
    if not inputs or not outputs:
        raise ModelError(f"{where}: the functional model names no input or no output layers")
    sources, seen, chain, prev = {}, set(), True, None
    for layer in layers:
        lname = layer["config"]["name"]
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ModelError(f"{where}: layer {lname!r} is called {len(nodes)} times (shared layers are not supported)")
        names = _inbound_names(nodes)
        if layer["class_name"] == "InputLayer":
            if lname not in inputs:
                raise ModelError(f"{where}: input layer {lname!r} is not one of the model's inputs")
        elif not names:
            raise ModelError(f"{where}: layer {lname!r} of type {layer['class_name']} has no inputs")
        for n in names:
            if n not in seen:
                raise ModelError(f"{where}: layer {lname!r} reads {n!r}, which is not a layer before it")
        sources[lname] = names
        chain = chain and (prev is None and layer["class_name"] == "InputLayer" or names == [prev])
        seen.add(lname)
        prev = lname
    for n in inputs + outputs:
        if n not in seen:
            raise ModelError(f"{where}: the model's input/output {n!r} is not one of its layers")
    if chain and len(inputs) == 1 and outputs == [prev]:
        return None
    return {"inputs": inputs, "outputs": outputs, "sources": sources}


def _graph_plan(layers: list[dict], graph: dict, where: str, keep_softmax: bool) -> "_Plan":
    """The plan of a graph model: every layer (input layers included) with its wiring; a final softmax
    on an output is dropped as on a chain (the output becomes the softmax's input, or the dense layer's
    activation becomes linear)."""
    shapes = {}
    for layer in layers:
        if layer["class_name"] == "InputLayer":
            shape = layer["config"].get("batch_input_shape") or layer["config"].get("batch_shape")
            if shape is None:
                raise ModelError(f"{where}: input layer {layer['config']['name']!r} has no shape")
            shapes[layer["config"]["name"]] = tuple(int(d) for d in shape[1:])
    sources = graph["sources"]
    readers = {}
    for lname, names in sources.items():
        for n in names:
            readers.setdefault(n, []).append(lname)
    by_name = {l["config"]["name"]: l for l in layers}
    outputs, dropped = list(graph["outputs"]), False
    for k, lname in enumerate(outputs):
        layer = by_name[lname]
        if not _is_softmax(layer) or keep_softmax:
            continue
        if layer["class_name"] in DENSE + CONV:
            layer = copy.deepcopy(layer)
            layer["config"]["activation"] = "linear"
            layers[layers.index(by_name[lname])] = by_name[lname] = layer
        else:
            if readers.get(lname) or len(sources[lname]) != 1:
                raise ModelError(f"{where}: softmax layer {lname!r} is read by other layers: not supported")
            layers.remove(layer)
            outputs[k] = sources[lname][0]
        dropped = True
    for layer in layers:
        if _is_softmax(layer) and not (keep_softmax and layer["config"]["name"] in outputs):
            raise ModelError(f"{where}: layer {layer['config']['name']!r} applies a softmax before an output: "
                             "not supported")
    quantized = any(l["class_name"].startswith("Q") for l in layers)  # QKeras layers (QDense, QConv2DBatchnorm, ...)
    inputs = [(n, shapes[n]) for n in graph["inputs"]]
    n_inputs = sum(int(np.prod(s)) for _, s in inputs)
    return _Plan(layers, quantized, dropped, n_inputs, inputs[0][0], where, inputs[0][1],
                 graph={"inputs": inputs, "outputs": outputs, "sources": sources})


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
    """Refuse, in one line naming the layer, a config the registered checks object to (``layers.keras_check``)."""
    reason = check_keras_layer(cls, cfg, previous)
    if reason:
        raise ModelError(f"{where}: layer {lname!r} of type {cls}: {reason}")


for _cls in (*CONV, *SPATIAL, "Flatten", "Reshape", *MOVES):
    keras_check(_cls)(lambda cfg, cls=_cls: _spatial_problem(cls, cfg))


@keras_check("UpSampling2D")
def _upsampling_config(cfg: dict) -> str | None:
    if cfg.get("interpolation", "nearest") != "nearest":
        return f"interpolation {cfg.get('interpolation')!r} is not supported (nearest only)"
    return None


@keras_check(*DENSE, *CONV)
def _weighted_layer_config(cfg: dict) -> str | None:
    """The activation inside a Dense/conv layer (training-only settings such as constraints and regularisers
    are harmless for inference)."""
    act = cfg.get("activation", "linear")
    if act not in PLAIN_ACTIVATIONS + ("softmax",) and not _quantizer_ok(act, ("quantized_relu", "quantized_bits")):
        return (f"activation {_describe(act)} is not supported "
                f"({', '.join(PLAIN_ACTIVATIONS)}, a QKeras quantizer or a final softmax)")
    return None


@keras_check("QDense", "QConv1D", "QConv2D")
def _weight_quantizers_config(cfg: dict) -> str | None:
    for key in ("kernel_quantizer", "bias_quantizer"):
        reason = weight_quantizer_problem(cfg.get(key), key)
        if reason:
            return reason
    return None


@keras_check("ReLU")
def _relu_class_config(cfg: dict) -> str | None:
    """hls4ml converts the ReLU class as a plain relu: its options would be dropped."""
    for key, neutral in (("max_value", None), ("negative_slope", 0.0), ("threshold", 0.0)):
        if cfg.get(key, neutral) not in (neutral, 0) or (neutral is None and cfg.get(key) is not None):
            return f"{key}={cfg.get(key)} is not supported (hls4ml converts ReLU as a plain relu)"
    return None


@keras_check("Activation")
def _activation_config(cfg: dict) -> str | None:
    act = cfg.get("activation")
    if act not in PLAIN_ACTIVATIONS + ("softmax",):
        return f"activation {_describe(act)} is not supported ({', '.join(PLAIN_ACTIVATIONS)} or a final softmax)"
    return None


@keras_check("QActivation")
def _qactivation_config(cfg: dict) -> str | None:
    act = cfg.get("activation")
    return None if act in PLAIN_ACTIVATIONS else activation_quantizer_problem(act)


@keras_check("BatchNormalization", "QBatchNormalization", placed=True)
def _batchnorm_placement(cfg: dict, previous: list[dict]) -> str | None:
    """Right after the input a batch norm is a per-feature scale (hls4ml's BatchNormalization, a scale op);
    elsewhere only after a Dense or a convolution (folded into it), over the channel axis."""
    axis = cfg.get("axis", -1)
    if not previous:
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        last = len(shape) - 1 if shape else None  # else the network frontend checks the axis on the built model
        if not (axis in (-1, [-1]) or last is None and isinstance(axis, (int, list)) and np.size(axis) == 1
                or axis in (last, [last])):
            return f"axis {axis} is not the feature axis"
        return None
    if previous[-1]["class_name"] not in DENSE + CONV:
        prev = f"{previous[-1]['class_name']} {previous[-1]['config']['name']!r}"
        return (f"it follows {prev}, but batch normalisation is supported only right after the input, "
                "a Dense/QDense or a convolution layer")
    last = {"1D": 2, "2D": 3}.get(previous[-1]["class_name"][-2:], 1)  # channels: the last axis of the input
    if axis not in (-1, last, [-1], [last]):
        return f"axis {axis} is not the feature axis"
    return None


def _spatial_problem(cls: str, cfg: dict) -> str | None:
    """Convolutions, pooling and reshapes: channels-last data, no dilation or groups (what the ops compute)."""
    if cfg.get("data_format", "channels_last") != "channels_last":
        return f"data_format {cfg.get('data_format')!r} is not supported (channels_last only)"
    if any(d != 1 for d in np.atleast_1d(cfg.get("dilation_rate", 1))):
        return f"dilation_rate {cfg.get('dilation_rate')} is not supported (1 only)"
    if cfg.get("groups", 1) != 1:
        return f"groups={cfg.get('groups')} is not supported (1 only)"
    if cls in ("Conv1D", "QConv1D") and cfg.get("padding") == "causal":
        # hls4ml pads kernel - stride zeros on the left (converters/utils.py compute_padding_1d), Keras
        # kernel - 1: the same windows only with stride 1
        if any(s != 1 for s in np.atleast_1d(cfg.get("strides", 1))):
            return (f"causal padding with strides {cfg.get('strides')} is not supported (hls4ml pads "
                    "kernel - stride zeros on the left where Keras pads kernel - 1: stride 1 only)")
        return None
    if cls not in MOVES and cfg.get("padding", "valid") not in ("valid", "same"):
        return f"padding {cfg.get('padding')!r} is not supported (valid, same, or causal for Conv1D)"
    return None


def _quantizer_ok(q, allowed: tuple[str, ...]) -> bool:
    """A quantizer given as a serialised dict, a literal-only string call or a bare name (``"binary"``)."""
    if isinstance(q, dict):
        return q.get("class_name") in allowed and isinstance(q.get("config", {}), dict)
    if isinstance(q, str):
        m = _QUANT_CALL.match(q)
        if not m or m.group(1) not in allowed:
            return False
        if "(" not in q:
            return True
        inner = q[q.index("(") + 1:q.rindex(")")]
        return all(_LITERAL.match(a) for a in inner.split(",")) if inner.strip() else True
    return False


_QUANT_CALL = re.compile(r"^\s*(\w+)\s*(\(\s*[\w.=+\-\s,'\"]*\))?\s*$")  # name(literal, key=literal, ...)
# Weight quantizers (kernel, bias, depthwise, pointwise) hls4ml 1.3 converts (hls4ml.model.quantizers):
# quantized_bits as fixed point, binary as XnorPrecisionType (kernels) or int<2>, ternary as int<2>,
# quantized_po2 as ExponentPrecisionType; the stochastic ones as their deterministic inference form.
WEIGHT_QUANTIZERS = ("quantized_bits", "binary", "ternary", "stochastic_binary", "stochastic_ternary",
                     "quantized_po2")
# Activation quantizers hls4ml 1.3 converts (converters/keras/qkeras.py get_activation_quantizer): quantized_bits
# (a cast), quantized_relu (relu, or leaky relu with a negative slope), binary / ternary (binary_tanh /
# ternary_tanh), quantized_tanh / quantized_sigmoid (hard_tanh / hard_sigmoid, or a table with use_real_tanh /
# use_real_sigmoid). hls4ml 1.3 refuses the po2 and stochastic quantizers as activations.
ACTIVATION_QUANTIZERS = ("quantized_bits", "quantized_relu", "binary", "ternary", "quantized_tanh",
                         "quantized_sigmoid")


def _quantizer_config(q) -> dict:
    """A quantizer's arguments as data: a serialised dict's config, or a string call's literal arguments."""
    import ast

    if isinstance(q, dict):
        return dict(q.get("config") or {})
    if not isinstance(q, str) or "(" not in q:
        return {}
    out = {}
    for i, arg in enumerate(a.strip() for a in q[q.index("(") + 1:q.rindex(")")].split(",") if a.strip()):
        key, eq, text = arg.partition("=")
        try:
            out[key.strip() if eq else f"#{i}"] = ast.literal_eval((text if eq else key).strip())
        except (ValueError, SyntaxError):
            out[key.strip() if eq else f"#{i}"] = text.strip()
    return out


def _quantizer_name(q) -> str | None:
    if isinstance(q, dict):
        return q.get("class_name")
    m = _QUANT_CALL.match(q) if isinstance(q, str) else None
    return m.group(1) if m else None


def weight_quantizer_problem(q, key: str) -> str | None:
    """Why a weight quantizer (a layer's ``key``) is refused, or None (also when there is none)."""
    if q is None:
        return None
    if not _quantizer_ok(q, WEIGHT_QUANTIZERS):
        return f"{key} {_describe(q)} is not supported ({', '.join(WEIGHT_QUANTIZERS)})"
    name, cfg = _quantizer_name(q), _quantizer_config(q)
    if name == "quantized_po2" and key == "bias_quantizer":
        return "bias_quantizer quantized_po2 is not supported (hls4ml 1.3 cannot add exponent-typed biases)"
    if name == "binary" and cfg.get("use_01"):
        return f"{key} binary(use_01=True) is not supported (hls4ml's binary weights are -1 and +1)"
    return None


def activation_quantizer_problem(act) -> str | None:
    """Why a QActivation's quantizer is refused (the option that changes the arithmetic), or None."""
    if not _quantizer_ok(act, ACTIVATION_QUANTIZERS):
        return f"activation {_describe(act)} is not supported (supported: {', '.join(ACTIVATION_QUANTIZERS)})"
    name, cfg = _quantizer_name(act), _quantizer_config(act)
    if cfg.get("use_stochastic_rounding"):
        return f"{name} option use_stochastic_rounding is not supported (random rounding)"
    if name == "quantized_relu" and (cfg.get("use_sigmoid", 0) or cfg.get("relu_upper_bound") is not None):
        return "quantized_relu options use_sigmoid and relu_upper_bound are not supported (hls4ml drops them)"
    if name in ("binary", "ternary") and cfg.get("alpha") not in (None, 1, 1.0):
        return (f"{name} option alpha={cfg.get('alpha')!r} is not supported (it scales QKeras' output; hls4ml's "
                f"{name}_tanh gives -1/0/+1)")
    if name == "binary" and cfg.get("use_01"):
        return "binary option use_01=True is not supported (hls4ml's binary_tanh gives -1 and +1)"
    return None


def _describe(q) -> str:
    if isinstance(q, dict):
        return repr(q.get("class_name"))
    return repr(q)[:60]


# ---------------------------------------------------------------- building
def _weight_shapes(h5group, where: Path, nested: dict | None = None) -> list[tuple[str, list[tuple[str, tuple]]]]:
    """(layer name, [(weight path in the group, shape)]) for every layer in the file that has weights.

    A nested model (``nested``: its name and its layers' names) keeps all its weights in one group, each
    named ``<inner layer>/<weight>``: they are listed per inner layer, in order."""
    nested = nested or {}
    try:
        names = [n.decode() if isinstance(n, bytes) else n for n in h5group.attrs["layer_names"]]
        result = []
        for lname in names:
            g = h5group[lname]
            wnames = [n.decode() if isinstance(n, bytes) else n for n in g.attrs.get("weight_names", [])]
            if not wnames:
                continue
            if lname not in nested:
                result.append((lname, [(f"{lname}/{w}", tuple(g[w].shape)) for w in wnames]))
                continue
            for inner in nested[lname]:
                mine = [w for w in wnames if w.split("/")[0] == inner]
                if mine:
                    result.append((inner, [(f"{lname}/{w}", tuple(g[w].shape)) for w in mine]))
            stray = [w for w in wnames if w.split("/")[0] not in nested[lname]]
            if stray:
                raise ModelError(f"{where}: nested model {lname!r} has weights {stray[0]!r} of no layer it has")
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
    if plan.graph is not None:
        model = _build_graph(plan, custom, tf)
        return _load_weights(plan, model, h5group, weights_path)
    layers = [_inference_only(layer) for layer in plan.layers]
    for layer in layers[1:]:  # Keras ignores an input shape after the first layer, hls4ml's parser does not
        layer["config"].pop("batch_input_shape", None)
        layer["config"].pop("batch_shape", None)
    first = layers[0]["config"]
    first["batch_input_shape"] = [None, *(plan.input_shape or (plan.n_inputs,))]
    first.pop("batch_shape", None)
    seq = {"class_name": "Sequential", "config": {"name": "model", "layers": layers}}
    try:
        model = _from_json(tf, json.dumps(seq), custom)
    except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad config
        raise ModelError(f"{plan.where}: Keras cannot build the architecture: {_one_line(err)}") from None
    return _load_weights(plan, model, h5group, weights_path)


def _from_json(tf, text: str, custom: dict):
    """``model_from_json`` with autograph off: building a model calls every layer once on symbolic inputs,
    and Keras first converts each layer's Python with autograph (a second or more per model, for control
    flow our layers do not have; we call models eagerly, ``keras_predict``). A layer that needs it (Python
    control flow on a tensor) fails that way, and is built again with autograph."""
    try:
        from tensorflow.python.autograph.core import ag_ctx
    except ImportError:  # another TensorFlow: build as Keras does
        return tf.keras.models.model_from_json(text, custom_objects=custom)
    try:
        with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):
            return tf.keras.models.model_from_json(text, custom_objects=custom)
    except Exception:  # noqa: BLE001 - built again with autograph; a real error is raised there
        return tf.keras.models.model_from_json(text, custom_objects=custom)


def _build_graph(plan: _Plan, custom: dict, tf):
    """A functional model from the validated layers and wiring (Keras 2 ``inbound_nodes`` as data)."""
    names = {l["config"]["name"] for l in plan.layers}
    layers = []
    for layer in plan.layers:
        entry = _inference_only(layer)
        lname = layer["config"]["name"]
        entry["name"] = lname
        entry["inbound_nodes"] = [[[n, 0, 0, {}] for n in plan.graph["sources"].get(lname, []) if n in names]] \
            if layer["class_name"] != "InputLayer" else []
        if layer["class_name"] == "InputLayer":
            entry["config"].pop("batch_shape", None)
            entry["config"]["batch_input_shape"] = [None, *dict(plan.graph["inputs"])[lname]]
        layers.append(entry)
    config = {"class_name": "Functional", "config": {
        "name": "model", "layers": layers,
        "input_layers": [[n, 0, 0] for n, _ in plan.graph["inputs"]],
        "output_layers": [[n, 0, 0] for n in plan.graph["outputs"]]}}
    try:
        return _from_json(tf, json.dumps(config), custom)
    except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad config
        raise ModelError(f"{plan.where}: Keras cannot build the architecture: {_one_line(err)}") from None


def _load_weights(plan: _Plan, model, h5group, weights_path: Path):
    """Checks the file's weights against the built model, layer by layer and shape by shape, and loads them."""
    in_file = _weight_shapes(h5group, weights_path, plan.nested)
    in_model = [(l.name, [tuple(w.shape) for w in l.weights]) for l in model.layers if l.weights]
    by_name = dict(in_file)
    if len(by_name) == len(in_file) and set(by_name) == {name for name, _ in in_model}:
        # The same layer names: paired by name. A nested model's layers are built in place, so the rebuilt
        # model can list them in another order than the file (which lists them inside the nested layer).
        in_file = [(name, by_name[name]) for name, _ in in_model]
    if len(in_file) != len(in_model):  # otherwise by position, as Keras' load_weights pairs them
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
            layer.set_weights([np.asarray(h5group[w]) for w, _ in fweights])
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
    Quantizer arguments of newer QKeras releases are dropped where they do not change
    the arithmetic and refused where they do (``qkeras09_quantizer``); a ``.keras``
    archive's quantizers were already resolved against the weights by its reader.
    """
    cfg = {k: copy.deepcopy(v) for k, v in layer["config"].items() if not _TRAINING_ONLY.match(k)}
    for key, value in list(cfg.items()):
        if is_quantizer(value):  # newer QKeras' arguments: dropped where neutral, else refused (NEWER_ARGUMENTS)
            value = cfg[key] = qkeras09_quantizer(value, f"layer {cfg.get('name', '?')!r} of type "
                                                         f"{layer['class_name']}: {key}")
        if isinstance(value, dict) and "class_name" in value:
            cfg[key] = _strip_meta(value)
    return {"class_name": layer["class_name"], "config": cfg}


def _strip_meta(obj):
    if isinstance(obj, dict):
        out = {k: _strip_meta(v) for k, v in obj.items() if k not in ("module", "registered_name", "build_config")}
        if out.get("class_name") in QUANTIZERS + WEIGHT_QUANTIZERS + ACTIVATION_QUANTIZERS + ("quantized_relu_po2",):
            out["__passive_serialization__"] = True  # Keras' marker: rebuild this nested quantizer object
        return out
    return obj


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


# ------------------------------------------- quantizer arguments of newer QKeras releases, read as data
# The arguments QKeras 0.9 (the release trigger builds with) understands, per quantizer class the loader
# accepts. A quantizer config is handed to these constructors, so any other key fails there.
QKERAS09_ARGUMENTS = {
    "quantized_bits": ("bits", "integer", "symmetric", "keep_negative", "alpha", "use_stochastic_rounding",
                       "scale_axis", "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "quantized_relu": ("bits", "integer", "use_sigmoid", "negative_slope", "use_stochastic_rounding",
                       "relu_upper_bound", "is_quantized_clip", "qnoise_factor", "var_name", "use_ste",
                       "use_variables"),
}


@dataclass(frozen=True)
class NewerArgument:
    """A quantizer argument added after QKeras 0.9, and whether it changes the inference arithmetic.

    ``neutral``: the values at which it changes nothing (its default); ``changes``: given the
    quantizer's config, the argument's value and the tensor the quantizer is applied to (a layer's
    kernel or bias; None for an activation), why the arithmetic differs from QKeras 0.9's, or None
    when it does not. An argument that changes nothing is dropped before QKeras 0.9 sees the config.
    """

    neutral: tuple
    changes: object  # Callable[[dict, object, np.ndarray | None], str | None]
    where: str  # the releases that have it


def _post_training_scale(cfg: dict, value, weight) -> str | None:
    """``quantized_bits(post_training_scale=S)`` (google/qkeras master since Feb 2025, qkeras-v3 1.2.1).

    Both releases' ``get_config`` write it, ``null`` when unset, so every quantized_bits they
    serialise has it; None is neutral (dropped).

    The newer ``quantized_bits.__init__`` refuses it unless ``alpha`` is a string ("auto" or
    "auto_po2"); with one, it stores ``scale = np.array(S)`` and sets ``freeze_scale``, and
    ``__call__`` then quantizes with that fixed scale instead of computing it from its input:
    ``x' = x / 2**integer``, ``z = sign(x') * min(floor(|x'| / (S / m) + 0.5), 2**(bits-1) - 1)``,
    output ``S * 2**integer * z / m`` (``m = 2**(bits - keep_negative)``), returned as
    ``x + qnoise_factor * (xq - x)`` like every QKeras quantizer. ``qkeras.utils`` writes S as the
    ``scale`` an ``auto_po2`` quantizer computed from the layer's weights (to export fixed-scale
    models), so on a kernel or bias it normally gives what QKeras 0.9's ``auto_po2`` computes from
    the same weights -- normally, not always: 0.9 multiplies the integers of its fifth least-squares
    iteration by the sixth iteration's scale, so the two agree only where that search has settled.
    Hence the check here, on the stored weights: the same quantized weights, bit for bit (newer
    QKeras' frozen-scale formula in float32 against QKeras 0.9 itself), and the argument is dropped;
    otherwise, or on an activation (QKeras 0.9 computes the scale of each batch), it changes the
    arithmetic.
    """
    alpha = cfg.get("alpha")
    if alpha not in ("auto", "auto_po2"):
        return f"newer QKeras accepts it only with alpha 'auto' or 'auto_po2', this quantizer has alpha={alpha!r}"
    if weight is None:
        return "it fixes the scale of a quantizer applied to a layer's input, which QKeras 0.9 computes per batch"
    mine, theirs = _fixed_scale_quantize(cfg, value, weight), _qkeras09_quantize(cfg, weight)
    if mine is None:
        return f"the scale does not broadcast to the weights' shape {tuple(np.shape(weight))}"
    if mine.shape != theirs.shape or not np.array_equal(mine, theirs):
        differ = int(np.sum(mine != theirs)) if mine.shape == theirs.shape else mine.size
        return (f"it fixes a scale other than the one QKeras 0.9's alpha={alpha!r} computes from the stored weights: "
                f"{differ} of {theirs.size} quantized weights differ")
    return None


def _fixed_scale_quantize(cfg: dict, scale, weight: np.ndarray) -> np.ndarray | None:
    """Newer QKeras' ``quantized_bits.__call__`` with a frozen scale, in float32 as it computes it."""
    f32 = np.float32
    x = np.asarray(weight, dtype=f32)
    bits, integer = int(cfg.get("bits", 8)), cfg.get("integer", 0)
    keep_negative = bool(cfg.get("keep_negative", True))
    m = f32(2.0 ** (bits - int(keep_negative)))
    m_i = f32(2.0 ** float(integer))
    levels = (2 ** (bits - 1) - 1) * 2  # a string alpha makes the quantizer symmetric
    try:
        s = np.asarray(scale, dtype=f32) / m
        np.broadcast_shapes(s.shape, x.shape)
    except (TypeError, ValueError):
        return None
    xs = x / m_i
    v = np.floor(np.abs(xs) / s + f32(0.5))
    z = np.sign(xs) * np.where(v < levels / 2, v, np.ones_like(v) * f32(levels / 2))
    s = s * m
    xs = m_i * xs
    xq = s * (m_i * z / m)
    qnoise = f32(cfg.get("qnoise_factor", 1.0))
    if cfg.get("use_ste", True):
        return (xs + qnoise * (-xs + xq)).astype(f32)
    return ((f32(1) - qnoise) * xs + qnoise * xq).astype(f32)


def _qkeras09_quantize(cfg: dict, weight: np.ndarray) -> np.ndarray:
    """QKeras 0.9's quantized_bits (the config without newer arguments) applied to a weight tensor."""
    import tensorflow as tf
    from qkeras.quantizers import quantized_bits

    known = {k: v for k, v in cfg.items() if k in QKERAS09_ARGUMENTS["quantized_bits"]}
    return np.asarray(quantized_bits(**known)(tf.constant(np.asarray(weight, dtype=np.float32))), dtype=np.float32)


def _po2_option(cfg: dict, value, weight) -> str | None:
    """``elements_per_scale`` / ``min_po2_exponent`` / ``max_po2_exponent`` (google/qkeras master since
    Aug 2023, qkeras-v3 1.2.1): with ``alpha="auto_po2"`` they give several scales per channel or bound the
    scale's exponent in the least-squares search, so any value but None changes the scale QKeras 0.9
    computes (with another alpha newer QKeras rejects them: an assertion in ``__call__``). Neither
    release writes them in ``get_config``; a config has them only if written by hand."""
    return "it changes how alpha='auto_po2' computes the scale; QKeras 0.9 has one unbounded power of two per channel"


def _fast_inference(cfg: dict, value, weight) -> str | None:
    """``quantized_relu(enable_fast_inference=True)`` (google/qkeras master, June 2025; not in qkeras-v3, and
    not written by ``get_config``): ``__call__`` returns ``2**integer * clip(round(x * 2**(bits -
    integer)) * 2**-bits, 0, 1 - 2**-bits)`` instead of the general path. With ``use_sigmoid=0``,
    ``negative_slope=0`` and ``is_quantized_clip`` (the only quantized_relu the loader accepts) the
    general path computes the same numbers: round(x * m / m_i), clipped to [0, 1 - 1/m], times m_i.
    It skips the sigmoid, the negative slope and the upper bound, so with any of those it differs."""
    if cfg.get("use_sigmoid", 0) or cfg.get("negative_slope", 0.0) not in (0, 0.0, None) \
            or not cfg.get("is_quantized_clip", True) or cfg.get("relu_upper_bound") is not None:
        return "it skips use_sigmoid / negative_slope / relu_upper_bound, which this quantizer sets"
    integer = cfg.get("integer", 0)
    if not isinstance(integer, int) or isinstance(integer, bool) or integer < 0:
        return f"it needs a whole non-negative integer (1 << integer), this quantizer has integer={integer!r}"
    return None


NEWER_ARGUMENTS = {
    "quantized_bits": {
        "post_training_scale": NewerArgument((None,), _post_training_scale, "google/qkeras master, qkeras-v3 1.2.1"),
        "elements_per_scale": NewerArgument((None,), _po2_option, "google/qkeras master, qkeras-v3 1.2.1"),
        "min_po2_exponent": NewerArgument((None,), _po2_option, "google/qkeras master, qkeras-v3 1.2.1"),
        "max_po2_exponent": NewerArgument((None,), _po2_option, "google/qkeras master, qkeras-v3 1.2.1"),
    },
    "quantized_relu": {
        "enable_fast_inference": NewerArgument((False,), _fast_inference, "google/qkeras master"),
    },
}


def is_quantizer(value) -> bool:
    """A quantizer config the argument table knows: a serialised dict or a string call."""
    if isinstance(value, dict):
        return value.get("class_name") in QKERAS09_ARGUMENTS and isinstance(value.get("config", {}), dict)
    return isinstance(value, str) and bool(_QUANT_STR.match(value))


def qkeras09_quantizer(q, context: str, weight=None):
    """The quantizer config QKeras 0.9 can build, with the same inference arithmetic, or a ModelError.

    Newer arguments at a neutral value, or whose value does not change the arithmetic (checked on
    ``weight``, the tensor the quantizer is applied to, where that matters), are dropped; an argument
    that changes it, or that neither QKeras 0.9 nor the table knows, is refused in one line naming
    ``context`` (the file and layer), the quantizer and the argument.
    """
    if isinstance(q, str):
        return _qkeras09_quantizer_string(q, context)
    if not is_quantizer(q):
        return q
    cls = q["class_name"]
    cfg = dict(q.get("config") or {})
    for arg in list(cfg):
        if arg in QKERAS09_ARGUMENTS[cls] or arg == "__passive_serialization__":
            continue
        newer = NEWER_ARGUMENTS[cls].get(arg)
        value = cfg[arg]
        if newer is None:
            raise ModelError(f"{context}: {cls} argument {arg}={_short(value)} is unknown: not a QKeras 0.9 argument "
                             f"nor a newer one trigger knows ({', '.join(NEWER_ARGUMENTS[cls])}), so its effect on "
                             "the arithmetic is unknown")
        if not any(value is n or (value == n and type(value) is type(n)) for n in newer.neutral):
            reason = newer.changes(cfg, value, weight)
            if reason is not None:
                raise ModelError(f"{context}: {cls} argument {arg}={_short(value)} changes the arithmetic: {reason} "
                                 "(QKeras 0.9, which trigger builds with, has no such argument)")
        del cfg[arg]
    return {**q, "config": cfg}


def _qkeras09_quantizer_string(q: str, context: str) -> str:
    """``quantized_bits(6, 0, post_training_scale=None)``: the same call without neutral newer arguments."""
    import ast

    m = _QUANT_STR.match(q)
    if not m:
        return q
    cls = m.group(1)
    inner = q[q.index("(") + 1:q.rindex(")")]
    args = [a.strip() for a in inner.split(",")] if inner.strip() else []
    cfg = {}
    for i, arg in enumerate(args):
        name, eq, text = arg.partition("=")
        key = name.strip() if eq else (QKERAS09_ARGUMENTS[cls][i] if i < len(QKERAS09_ARGUMENTS[cls]) else f"#{i}")
        try:
            cfg[key] = ast.literal_eval((text if eq else name).strip())
        except (ValueError, SyntaxError):
            cfg[key] = (text if eq else name).strip()  # _quantizer_ok refuses it
    kept = [a for a, key in zip(args, cfg) if key in QKERAS09_ARGUMENTS[cls]]
    qkeras09_quantizer({"class_name": cls, "config": cfg}, context)  # raises on a changing or unknown argument
    return q if len(kept) == len(args) else f"{cls}({', '.join(kept)})"


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, np.ndarray) else json.dumps(value.tolist())
    return text if len(text) <= 40 else text[:37] + "..."
