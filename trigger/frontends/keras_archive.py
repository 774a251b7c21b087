"""Keras ``.keras`` archives (Keras 3, and tf.keras 2.13+'s same format), read as data.

An archive is a zip of ``config.json`` (the architecture), ``model.weights.h5``
(the weights) and ``metadata.json``. Keras 3 is not installed (TensorFlow 2.14 /
QKeras need Keras 2), and loading through Keras would deserialise whatever the
config names, so the archive is read with ``json`` and ``h5py`` and rewritten
into the two things the Keras 2 loader (``trigger.frontends.keras``) already
checks and builds: a Keras 2 architecture and a Keras 2 weights group.

The differences handled: Keras 3 writes ``batch_shape`` and ``DTypePolicy``
dtype objects, a few Keras-3-only layer keys, and stores each layer's weights
under ``layers/<snake_case class name>[_<k>]/vars/<i>`` (tf.keras 2.14:
``_layer_checkpoint_dependencies/...``), counting layers of a class in order.

Quantizer configs written by a QKeras newer than 0.9 (google/qkeras master, qkeras-v3 for
Keras 3) carry arguments 0.9's constructors do not take (``post_training_scale`` in every
``quantized_bits``): ``resolve_quantizers`` reads them as data against the table in
``trigger.frontends.keras`` (``NEWER_ARGUMENTS``), checks the weight-dependent one on the
stored weights, and drops those that leave the arithmetic as QKeras 0.9 computes it.
"""

from __future__ import annotations

import copy
import io
import json
import re
import uuid
import zipfile
from pathlib import Path

import numpy as np

from trigger.errors import ModelError

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
WEIGHT_ROOTS = ("layers", "_layer_checkpoint_dependencies")  # Keras 3, tf.keras 2.13-2.15
KERAS3_ONLY_KEYS = ("quantization_config", "lora_rank", "lora_alpha", "synchronized", "optional")


def read_members(path: Path) -> tuple[dict, bytes]:
    """(the parsed config.json, the bytes of model.weights.h5) of a ``.keras`` archive (Keras 3's zip)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for needed in (CONFIG, WEIGHTS):
                if needed not in names:
                    raise ModelError(f"{path}: not a Keras .keras archive: the zip has no {needed}")
            config_text = archive.read(CONFIG)
            weights_bytes = archive.read(WEIGHTS)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as err:
        raise ModelError(f"{path}: not a readable .keras archive, truncated or corrupt ({_one_line(err)})") from None
    try:
        return json.loads(config_text), weights_bytes
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: {CONFIG} is not valid JSON ({err})") from None


def open_weights(weights_bytes: bytes, path: Path):
    """The archive's model.weights.h5 as an ``h5py.File`` in memory (the caller closes it)."""
    import h5py

    try:
        return h5py.File(io.BytesIO(weights_bytes), "r")
    except OSError as err:
        raise ModelError(f"{path}: {WEIGHTS} is not a readable HDF5 file ({_one_line(err)})") from None


def read_archive(path: Path) -> tuple[dict, "object"]:
    """(Keras 2 architecture config, in-memory Keras 2 weights file) of a ``.keras`` archive.

    The weights file is an ``h5py.File`` in memory with ``layer_names`` and one group per
    weighted layer, as ``Model.save_weights`` in Keras 2 writes it; the caller closes it.
    """
    path = Path(path)
    config, weights_bytes = read_members(path)
    config = to_keras2_config(config, str(path))
    with open_weights(weights_bytes, path) as source:
        weights = _keras2_weights(config, source, path)
    try:
        resolve_quantizers(config, weights, path)
    except BaseException:
        weights.close()
        raise
    return config, weights


# The weight each quantizer of a QKeras layer is applied to: the layer's vars in Keras' order.
QUANTIZED_WEIGHT = {"kernel_quantizer": 0, "bias_quantizer": 1}


def resolve_quantizers(config: dict, weights, path: Path) -> None:
    """Quantizer configs written by a newer QKeras, made ones QKeras 0.9 builds with the same arithmetic.

    Each quantizer dict (or string) of each layer goes through
    ``trigger.frontends.keras.qkeras09_quantizer`` with the weight it quantizes (kernel or bias,
    from the archive's weights), so an argument whose effect depends on the weights
    (``post_training_scale``) is judged on them: dropped when QKeras 0.9 quantizes the stored
    weights to the same numbers, refused in one line naming the layer, the quantizer and the
    argument otherwise. Changes ``config`` in place.
    """
    from trigger.frontends.keras import is_quantizer, qkeras09_quantizer

    for layer in config["config"]["layers"]:
        if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
            continue
        cls, cfg = str(layer.get("class_name")), layer["config"]
        lname = str(cfg.get("name", layer.get("name", "?")))
        inner = cfg.get("layer") if isinstance(cfg.get("layer"), dict) else None  # TimeDistributed(QDense)
        for owner in (cfg, (inner or {}).get("config")):
            if not isinstance(owner, dict):
                continue
            for key, value in list(owner.items()):
                if is_quantizer(value):
                    weight = _weight(weights, lname, QUANTIZED_WEIGHT.get(key), owner)
                    owner[key] = qkeras09_quantizer(value, f"{path}: layer {lname!r} of type {cls}: {key}", weight)


def _weight(weights, lname: str, index, cfg: dict):
    """The layer's ``index``-th weight from the Keras 2 layout (None for an activation or a missing weight)."""
    if index is None or (index == 1 and cfg.get("use_bias") is False) or lname not in weights:
        return None
    names = [n.decode() if isinstance(n, bytes) else n for n in weights[lname].attrs.get("weight_names", [])]
    return np.asarray(weights[lname][names[index]]) if index < len(names) else None


def to_keras2_config(config: dict, where: str) -> dict:
    """The architecture with Keras 3 spellings replaced by Keras 2 ones (nothing else changes)."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ModelError(f"{where}: {CONFIG} is not a Keras model architecture (no top-level 'config')")
    config = copy.deepcopy(config)
    layers = config["config"].get("layers")
    if not isinstance(layers, list):
        raise ModelError(f"{where}: {CONFIG} has no layer list")
    _keras2_layers(layers)
    return config


def _keras2_layers(layers: list) -> None:
    """Keras 3 spellings of each layer config replaced in place (in nested models' layers too)."""
    for layer in layers:
        cfg = layer.get("config") if isinstance(layer, dict) else None
        if not isinstance(cfg, dict):
            continue  # validate_config names the malformed entry
        if layer.get("class_name") in ("Sequential", "Functional", "Model") and isinstance(cfg.get("layers"), list):
            _keras2_layers(cfg["layers"])
        dtype = cfg.get("dtype")
        if isinstance(dtype, dict):  # Keras 3 DTypePolicy {"class_name": "DTypePolicy", "config": {"name": ...}}
            cfg["dtype"] = (dtype.get("config") or {}).get("name", "float32")
        if "batch_shape" in cfg and "batch_input_shape" not in cfg:
            cfg["batch_input_shape"] = cfg.pop("batch_shape")
        for key in KERAS3_ONLY_KEYS:
            cfg.pop(key, None)


def _keras2_weights(config: dict, source, path: Path):
    """A Keras 2 weights layout (``layer_names``, ``<layer>/<weight>``) in memory, from the archive's ``vars``."""
    import h5py

    root = next((source[r] for r in WEIGHT_ROOTS if r in source), None)
    if root is None:
        raise ModelError(f"{path}: {WEIGHTS} has none of the groups {', '.join(WEIGHT_ROOTS)}: not Keras weights")
    target = h5py.File(f"keras-archive-{uuid.uuid4().hex}.h5", "w", driver="core", backing_store=False)
    names = []
    for lname, values in _layer_vars(config["config"]["layers"], root, path):
        out = target.create_group(lname)
        wnames = []
        for inner, value in values:  # a nested model's weights: <inner layer>/var_i in the model's group
            i = sum(1 for w in wnames if w.startswith(f"{inner}/"))
            out.create_dataset(f"{inner}/var_{i}", data=value)
            wnames.append(f"{inner}/var_{i}")
        out.attrs["weight_names"] = np.array([w.encode() for w in wnames])
        names.append(lname)
    target.attrs["layer_names"] = np.array([n.encode() for n in names])
    return target


def _layer_vars(layers: list, root, path: Path) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """(layer name, [(owning layer name, value)]) per layer with weights, in order. A model used as a layer
    (Sequential / Functional) owns its layers' weights, found under its own group the same way."""
    counts: dict[str, int] = {}
    out = []
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
            continue
        snake = snake_case(str(layer.get("class_name", "")))
        k = counts.get(snake, -1) + 1
        counts[snake] = k
        key = snake if k == 0 else f"{snake}_{k}"
        lname = str(layer["config"].get("name", key))
        group = root.get(key) or root.get(lname)
        if layer.get("class_name") in ("Sequential", "Functional", "Model") and group is not None:
            sub = next((group[r] for r in WEIGHT_ROOTS if r in group), None)
            inner = layer["config"].get("layers") if isinstance(layer["config"].get("layers"), list) else []
            values = [v for _, pairs in _layer_vars(inner, sub, path) for v in pairs] if sub is not None else []
        elif layer.get("class_name") == "QConv2DBatchnorm":
            values = [(lname, v) for v in _folded_vars(layer["config"], group, path, key)]
        else:
            values = [(lname, v) for v in _vars(group, path, key)]
        if values:
            out.append((lname, values))
    return out


def _folded_vars(cfg: dict, group, path: Path, key: str) -> list[np.ndarray]:
    """A QConv2DBatchnorm's variables in Keras 2's weight order. The archive keeps the layer's own (kernel, bias,
    iteration) and its batch norm's (gamma, beta, moving mean, moving variance) in a ``batchnorm`` group; Keras 2
    lists the trainable ones first: kernel, bias, gamma, beta, then iteration, moving mean, moving variance."""
    own = _vars(group, path, key)
    norm = _vars(group.get("batchnorm") if group is not None else None, path, f"{key}/batchnorm")
    trainable = int(cfg.get("scale", True) is not False) + int(cfg.get("center", True) is not False)
    if not own or len(norm) != trainable + 2 or np.shape(own[-1]) != ():
        return own + norm  # not the layout described: the loader's shape check names the mismatch
    return own[:-1] + norm[:trainable] + own[-1:] + norm[trainable:]


def _vars(group, path: Path, key: str) -> list[np.ndarray]:
    if group is None or "vars" not in group:
        return []
    try:
        vars_group = group["vars"]
        order = sorted(vars_group, key=lambda n: int(n) if n.isdigit() else 1 << 30)
        return [np.asarray(vars_group[n]) for n in order]
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        raise ModelError(f"{path}: {WEIGHTS}: the weights of {key} are unreadable ({_one_line(err)})") from None


def snake_case(name: str) -> str:
    """Keras' object-path name of a class: ``QDense`` -> ``q_dense``, ``Conv2D`` -> ``conv2d``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
