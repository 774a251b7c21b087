"""HGQ2 models: Keras 3 ``.keras`` archives of HGQ2 layers, read as data (no Keras 3, no HGQ2, no code run).

HGQ2 gives every weight and every activation element its own fixed-point format, learned in training.
The archive holds each quantizer's parameters as variables (``k`` keep-negative, ``b`` or ``f`` bits,
``i`` integer bits, one per element or broadcast along the homogeneous axes); HGQ2 rounds ``b``, ``i``
and ``f`` to integers (``round_conv``) at every call. Here they are read with ``json`` and ``h5py`` and

- the quantizers are applied to the stored weights exactly as HGQ2's inference computes them (float32,
  the same operations in the same order), giving the quantized kernels and biases the model uses;
- the model is rebuilt as a Keras 2 *proxy* architecture for hls4ml's Keras 2 parser, HGQ2's own
  conversion shape: each quantizer a ``FixedPointQuantizer`` layer holding per element
  ``(keep_negative, bits, integers)``, each layer a plain ``Dense``/``Conv2D``/merge with the quantized
  constants. hls4ml's bit-exact flow types every tensor from those formats and writes the HLS (one
  ``ap_fixed<W_e, I_e, RND, SAT>`` cast per element); ``network.extract`` reads the converted graph
  into ops (``element_quantize`` for the per-element casts). hls4ml 1.3's own HGQ2 converter needs
  Keras 3 and the live model; this path needs neither, so it runs beside TensorFlow 2.14.
- the model's own arithmetic is replayed in numpy float32 (``Hgq2Model.predict``) as the source
  witness: HGQ2's inference on representable values, compared with the firmware on every vector.

Anything not understood (a layer class, a quantizer option that changes the arithmetic, a variable
layout other than HGQ2 0.2's) is a one-line ``ModelError`` naming the layer and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from trigger.errors import ConfigError, ModelError
from trigger.fixed import FixedFormat
from trigger.frontends.keras_archive import CONFIG, WEIGHTS, open_weights, read_members, snake_case
from trigger.frontends.layers import Context, fixed_format, maps
from trigger.ir.ops.element_quantize import ElementQuantize
from trigger.ir.tensor import TensorType

F32 = np.float32
ROUND_MODES = ("TRN", "RND", "RND_CONV", "TRN_ZERO", "RND_ZERO", "RND_MIN_INF", "RND_INF")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_SYM")
# QuantizerConfig keys that only steer training (initial values, constraints, regularisers, the decay of
# traced integer bits, quantization noise) or name the defaults: inference reads the stored variables.
TRAINING_ONLY = ("place", "k0", "b0", "i0", "f0", "bc", "ic", "fc", "br", "ir", "fr", "i_decay_speed",
                 "qnoise_factor", "homogeneous_axis", "heterogeneous_axis", "trainable", "is_weight")
NEUTRAL_WHEN_NULL = ("scaler", "affine", "bw_mapper")  # change the arithmetic unless null
# Layer config keys that steer training or EBOPs only.
LAYER_TRAINING_ONLY = ("trainable", "dtype", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                       "bias_regularizer", "kernel_constraint", "bias_constraint", "activity_regularizer",
                       "enable_ebops", "ebops_factor", "beta0", "parallelization_factor",
                       "momentum", "bn_gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                       "bn_gamma_regularizer", "bn_gamma_constraint", "synchronized", "name", "lora_alpha", "seed")
# Layer config keys that change the arithmetic unless null: Keras' own int8/float8 quantization, LoRA.
LAYER_NULL_ONLY = ("quantization_config", "lora_rank")
# Layer config keys naming its quantizers (read by read_quantizer) and whether they are on.
QUANTIZER_CONFIGS = ("enable_iq", "enable_oq", "iq_conf", "iq_confs", "oq_conf", "kq_conf", "bq_conf")


def is_hgq2_config(config: dict) -> bool:
    """Whether a Keras 3 architecture holds HGQ2 layers (its module or registered name says so)."""
    layers = (config.get("config") or {}).get("layers") if isinstance(config, dict) else None
    for layer in layers or []:
        if isinstance(layer, dict) and (str(layer.get("module", "")).startswith("hgq")
                                        or str(layer.get("registered_name") or "").startswith("hgq>")):
            return True
    return False


# ------------------------------------------------------------------ quantizers
@dataclass
class Quantizer:
    """One HGQ2 fixed-point quantizer at inference: k, i, f per element (broadcast shape), modes."""

    where: str
    k: np.ndarray
    i: np.ndarray
    f: np.ndarray
    round_mode: str
    overflow_mode: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """HGQ2's inference (``FixedPointQuantizerBase.call`` with ``training=False``) in float32."""
        x = np.asarray(x, dtype=F32)
        k, i, f = self.k, self.i, self.f
        i_eff = np.maximum(i, -f)  # the stateless quantizer's floor on integer bits
        if self.overflow_mode != "WRAP":
            hi = F32(2.0) ** i_eff - F32(2.0) ** (-f)
            lo = -hi * k if self.overflow_mode == "SAT_SYM" else -(F32(2.0) ** i_eff) * k
            x = np.where(x > hi, hi, np.where(x < lo, lo, x)).astype(F32)
        x = self.round(x)
        if self.overflow_mode == "WRAP":
            bk = i_eff + k
            bias = k * F32(2.0) ** (bk - F32(1))
            x = (np.mod(x + bias, F32(2.0) ** bk) - bias).astype(F32)
        return np.where(k + i + f > 0, x, F32(0)).astype(F32)

    def round(self, x: np.ndarray) -> np.ndarray:
        """``x * 2**f`` rounded by the mode, ``/ 2**f``, in float32 as HGQ2 computes it."""
        scale = F32(2.0) ** self.f
        y = (np.asarray(x, dtype=F32) * scale).astype(F32)
        mode = self.round_mode
        if mode == "TRN":
            q = np.floor(y)
        elif mode == "RND":
            q = np.floor(y + F32(0.5))
        elif mode == "RND_CONV":
            q = np.round(y)
        elif mode == "TRN_ZERO":
            q = np.floor(np.abs(y)) * np.sign(y)
        elif mode == "RND_ZERO":
            q = -np.floor(-np.abs(y) + F32(0.5)) * np.sign(y)
        elif mode == "RND_MIN_INF":
            q = -np.floor(-y + F32(0.5))
        else:  # RND_INF
            q = np.floor(np.abs(y) + F32(0.5)) * np.sign(y)
        return (q.astype(F32) / scale).astype(F32)

    def element_kbi(self, shape: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per element of a tensor of ``shape`` (no batch axis): keep_negative, total bits, integer bits
        (sign included), as ap_fixed<bits, integers> holds the quantizer's values (bits 0: always 0)."""
        full = (1, *shape)
        k, i, f = (np.broadcast_to(a, full).astype(np.int64) for a in (self.k, self.i, self.f))
        bits = np.maximum(k + i + f, 0)
        return k, bits, np.where(bits > 0, k + i, 0)

    def formats(self, shape: tuple) -> list[FixedFormat | None]:
        k, bits, integers = (a.ravel() for a in self.element_kbi(shape))
        return [None if b == 0 else FixedFormat(int(b), int(n), bool(s), self.round_mode, self.overflow_mode)
                for s, b, n in zip(k, bits, integers)]


def _layer_where(model: str, lname: str, cls: str) -> str:
    return f"{model}: layer {lname!r} ({cls})"


def read_quantizer(conf, vars_group, where: str) -> Quantizer:
    """A quantizer from its serialised QuantizerConfig and its stored variables (HGQ2 0.2's layout)."""
    if not isinstance(conf, dict) or conf.get("class_name") != "QuantizerConfig" or not isinstance(
            conf.get("config"), dict):
        raise ModelError(f"{where}: not an HGQ2 QuantizerConfig ({str(conf)[:60]})")
    cfg = conf["config"]
    q_type = cfg.get("q_type")
    if q_type not in ("kif", "kbi"):
        raise ModelError(f"{where}: q_type {q_type!r} is not supported (fixed-point 'kif' or 'kbi'; a float "
                         "quantizer has no fixed-point firmware)")
    for key, value in cfg.items():
        if key in ("q_type", "round_mode", "overflow_mode") or key in TRAINING_ONLY:
            continue
        if key in NEUTRAL_WHEN_NULL:
            if value is not None:
                raise ModelError(f"{where}: {key}={_short(value)} changes the arithmetic (a scaled or affine "
                                 "quantizer, or a custom bit-width mapper) and is not supported")
            continue
        raise ModelError(f"{where}: quantizer option {key}={_short(value)} is unknown to trigger")
    rnd = str(cfg.get("round_mode", "RND")).upper()
    rnd = rnd[2:] if rnd.startswith("S_") else rnd  # stochastic rounding is training only
    ovf = str(cfg.get("overflow_mode", "WRAP")).upper()
    if rnd not in ROUND_MODES:
        raise ModelError(f"{where}: round_mode {cfg.get('round_mode')!r} is not supported ({', '.join(ROUND_MODES)})")
    if ovf not in OVERFLOW_MODES:
        raise ModelError(f"{where}: overflow_mode {cfg.get('overflow_mode')!r} is not supported "
                         f"({', '.join(OVERFLOW_MODES)})")
    values = _vars(vars_group, where)
    wrap = ovf == "WRAP"
    # Keras saves a layer's trainable variables, then the others, each in creation order:
    # kif creates k, i (trainable unless WRAP), f; kbi k, b, i (trainable unless WRAP); WRAP adds i_decay_speed.
    if q_type == "kif":
        names = ["f", "k", "i", "decay"] if wrap else ["i", "f", "k"]
    else:
        names = ["b", "k", "i", "decay"] if wrap else ["b", "i", "k"]
    if len(values) != len(names):
        raise ModelError(f"{where}: {len(values)} stored variables, HGQ2 0.2's {q_type} {ovf} quantizer has "
                         f"{len(names)} ({', '.join(names)})")
    got = dict(zip(names, values))
    if got["k"].dtype != np.uint8 or any(got[n].dtype.kind != "f" for n in names if n != "k"):
        raise ModelError(f"{where}: stored variables of dtypes {[str(v.dtype) for v in values]} are not HGQ2 0.2's "
                         f"layout ({', '.join(names)})")
    k = got["k"].astype(F32)
    i = np.round(got["i"].astype(F32))  # round_conv: ties to even, as HGQ2
    if q_type == "kif":
        f = np.round(got["f"].astype(F32))
    else:
        f = (np.round(got["b"].astype(F32)) - i).astype(F32)
    if not (k.shape == i.shape == f.shape):
        raise ModelError(f"{where}: k, i and f have shapes {k.shape}, {i.shape}, {f.shape}")
    if np.any((k != 0) & (k != 1)) or not np.all(np.isfinite(i)) or not np.all(np.isfinite(f)):
        raise ModelError(f"{where}: keep_negative must be 0 or 1 and the bit counts finite")
    q = Quantizer(where, k, i, f, rnd, ovf)
    if np.any(np.broadcast_to(k + i + f, k.shape) > 48):
        raise ModelError(f"{where}: an element has {int(np.max(k + i + f))} bits (at most 48 supported)")
    return q


def _vars(group, where: str) -> list[np.ndarray]:
    if group is None or "vars" not in group:
        raise ModelError(f"{where}: the archive has no stored variables for it")
    vars_group = group["vars"]
    order = sorted(vars_group, key=lambda n: int(n) if n.isdigit() else 1 << 30)
    try:
        return [np.asarray(vars_group[n]) for n in order]
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        raise ModelError(f"{where}: the stored variables are unreadable ({str(err).splitlines()[0][:120]})") from None


def quantize_weight(q: Quantizer, w: np.ndarray, cfg: dict) -> np.ndarray:
    """A kernel or bias quantized as HGQ2 does at inference. A WRAP weight quantizer marked ``is_weight``
    only rounds while its layer is trainable (and wraps otherwise): refused where the two differ."""
    full = q(w)
    if q.overflow_mode == "WRAP" and cfg.get("is_weight"):
        rounded = q.round(w)
        if not np.array_equal(rounded, full):
            raise ModelError(f"{q.where}: a WRAP weight quantizer whose stored weights overflow: HGQ2 rounds them "
                             "without wrapping while the layer is trainable and wraps them otherwise")
    return full


# ------------------------------------------------------------------ layers
@dataclass
class Hgq2Layer:
    name: str
    cls: str
    sources: list  # layer names it reads
    shape: tuple = ()  # output shape without the batch axis
    iq: list = field(default_factory=list)  # one Quantizer per input (empty: no input quantizer)
    oq: Quantizer | None = None
    kernel: np.ndarray | None = None  # quantized, float32
    bias: np.ndarray | None = None
    activation: str = "linear"
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LayerKind:
    """How one HGQ2 (or plain Keras) layer class is read, run (float32, as HGQ2) and proxied for hls4ml."""

    read: Callable  # (layer, cfg, group, in_shapes, where) -> None: fills kernel/bias/shape/config
    run: Callable  # (layer, xs: list[np.ndarray]) -> np.ndarray
    proxy: Callable  # (layer) -> (keras 2 class name, config, weights dict)
    quantized: bool = True  # has iq/oq configs


LAYER_KINDS: dict[str, LayerKind] = {}


def layer_kind(*classes: str, quantized: bool = True):
    def wrap(cls_):
        kind = LayerKind(cls_.read, cls_.run, cls_.proxy, quantized)
        for c in classes:
            LAYER_KINDS[c] = kind
        return cls_
    return wrap


ACTIVATIONS = {"linear": lambda x: x, "relu": lambda x: np.maximum(x, F32(0)).astype(F32)}


def _activation(cfg: dict, where: str) -> str:
    act = cfg.get("activation", "linear")
    act = "linear" if act is None else act
    if act not in ACTIVATIONS:
        raise ModelError(f"{where}: activation {_short(act)} is not supported (linear or relu)")
    return act


def _check_keys(cfg: dict, allowed: tuple, where: str) -> None:
    dtype = cfg.get("dtype", "float32")
    dtype = (dtype.get("config") or {}).get("name") if isinstance(dtype, dict) else dtype
    if dtype not in ("float32", None):
        raise ModelError(f"{where}: dtype policy {_short(dtype)} is not supported (float32: HGQ2's arithmetic)")
    for key in LAYER_NULL_ONLY:
        if cfg.get(key) is not None:
            raise ModelError(f"{where}: {key}={_short(cfg[key])} changes the arithmetic and is not supported")
    for key, value in cfg.items():
        if key in allowed or key in LAYER_TRAINING_ONLY or key in LAYER_NULL_ONLY or key in QUANTIZER_CONFIGS:
            continue
        raise ModelError(f"{where}: option {key}={_short(value)} is unknown to trigger")


def _weights(layer, group, where: str, count: int) -> list[np.ndarray]:
    if "kq" not in layer.config:
        raise ModelError(f"{where}: kq_conf is missing: an unquantized kernel has no fixed-point firmware")
    if count > 1 and "bq" not in layer.config:
        raise ModelError(f"{where}: bq_conf is missing: an unquantized bias has no fixed-point firmware")
    values = _vars(group, where)
    if len(values) < count:
        raise ModelError(f"{where}: {len(values)} stored variables, expected at least {count}")
    return [v.astype(F32) for v in values]


@layer_kind("QDense", "QBatchNormDense")
class _Dense:
    @staticmethod
    def read(layer, cfg, group, in_shapes, where):
        _check_keys(cfg, ("units", "activation", "use_bias", "scale", "epsilon"), where)
        if len(in_shapes[0]) not in (1, 2):
            raise ModelError(f"{where}: a dense layer on a {in_shapes[0]} input is not supported (a vector, or a "
                             "set of items: the firmware's dense and item_dense)")
        layer.activation = _activation(cfg, where)
        use_bias = cfg.get("use_bias", True)
        values = _weights(layer, group, where, 1 + bool(use_bias))
        kernel = values[0]
        n_in, units = in_shapes[0][-1], int(cfg.get("units", -1))
        if kernel.shape != (n_in, units):
            raise ModelError(f"{where}: kernel shape {kernel.shape} is not ({n_in}, {units})")
        bias = values[1] if use_bias else None
        if layer.cls == "QBatchNormDense" and len(in_shapes[0]) != 1:
            raise ModelError(f"{where}: QBatchNormDense on a {in_shapes[0]} input is not supported (a vector only)")
        if layer.cls == "QBatchNormDense":
            kernel, bias = _fused_batch_norm(cfg, values, kernel, bias, where)
        layer.kernel = quantize_weight(layer.config["kq"], kernel, layer.config["kq_cfg"])
        if bias is not None:
            layer.bias = quantize_weight(layer.config["bq"], bias, layer.config["bq_cfg"])
        layer.shape = (*in_shapes[0][:-1], units)

    @staticmethod
    def run(layer, xs):
        y = np.matmul(xs[0], layer.kernel).astype(F32)
        if layer.bias is not None:
            y = (y + layer.bias).astype(F32)
        return ACTIVATIONS[layer.activation](y)

    @staticmethod
    def proxy(layer):
        bias = layer.bias if layer.bias is not None else np.zeros(layer.shape[-1], F32)
        return "Dense", {"units": int(layer.shape[-1]), "activation": layer.activation, "use_bias": True}, \
            {"kernel": layer.kernel, "bias": bias}


def _fused_batch_norm(cfg, values, kernel, bias, where):
    """QBatchNormDense at inference: the moving statistics folded into kernel and bias before their
    quantizers (HGQ2's ``get_fused_qkernel_and_qbias``), in float32."""
    if bias is None:
        raise ModelError(f"{where}: use_bias=False is not what QBatchNormDense allows")
    rest = values[2:]
    scale = bool(cfg.get("scale", True))
    gamma = rest.pop(0) if scale else None
    stats = [v for v in rest if v.shape == (kernel.shape[0],)]  # beta/ebops are scalars
    if len(stats) != 2:
        raise ModelError(f"{where}: the moving mean and variance are not among the stored variables")
    mean, var = stats
    eps = F32(cfg.get("epsilon", 1e-3))
    scaler = ((gamma if scale else F32(1)) / np.sqrt((var + eps).astype(F32))).astype(F32)
    fused_kernel = (scaler[:, None] * kernel).astype(F32)
    offset = (-np.dot(mean, kernel)).astype(F32)
    return fused_kernel, (bias + offset).astype(F32)


@layer_kind("QConv2D")
class _Conv2D:
    @staticmethod
    def read(layer, cfg, group, in_shapes, where):
        _check_keys(cfg, ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                          "activation", "use_bias"), where)
        if cfg.get("data_format", "channels_last") not in ("channels_last", None):
            raise ModelError(f"{where}: data_format {cfg.get('data_format')!r} is not supported (channels_last)")
        if tuple(np.atleast_1d(cfg.get("dilation_rate", 1))) not in ((1,), (1, 1)) or cfg.get("groups", 1) != 1:
            raise ModelError(f"{where}: dilation_rate/groups other than 1 are not supported")
        padding = cfg.get("padding", "valid")
        if padding not in ("valid", "same"):
            raise ModelError(f"{where}: padding {padding!r} is not supported (valid or same)")
        if len(in_shapes[0]) != 3:
            raise ModelError(f"{where}: input shape {in_shapes[0]} is not (height, width, channels)")
        layer.activation = _activation(cfg, where)
        use_bias = cfg.get("use_bias", True)
        values = _weights(layer, group, where, 1 + bool(use_bias))
        kh, kw = (int(v) for v in np.broadcast_to(cfg.get("kernel_size"), 2))
        sh, sw = (int(v) for v in np.broadcast_to(cfg.get("strides", 1), 2))
        h, w, c = in_shapes[0]
        filters = int(cfg.get("filters", -1))
        if values[0].shape != (kh, kw, c, filters):
            raise ModelError(f"{where}: kernel shape {values[0].shape} is not ({kh}, {kw}, {c}, {filters})")
        layer.kernel = quantize_weight(layer.config["kq"], values[0], layer.config["kq_cfg"])
        if use_bias:
            layer.bias = quantize_weight(layer.config["bq"], values[1], layer.config["bq_cfg"])
        if padding == "valid":
            oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
            pads = (0, 0)
        else:
            oh, ow = math.ceil(h / sh), math.ceil(w / sw)
            pads = (max((oh - 1) * sh + kh - h, 0) // 2, max((ow - 1) * sw + kw - w, 0) // 2)
        if oh < 1 or ow < 1:
            raise ModelError(f"{where}: the kernel is larger than the input")
        layer.shape = (oh, ow, filters)
        layer.config.update(kernel_size=(kh, kw), strides=(sh, sw), padding=padding, pads=pads)

    @staticmethod
    def run(layer, xs):
        x = xs[0]
        (kh, kw), (sh, sw), (pt, pl) = layer.config["kernel_size"], layer.config["strides"], layer.config["pads"]
        oh, ow, filters = layer.shape
        h, w = x.shape[1:3]
        padded = np.zeros((len(x), max(h + 2 * pt + kh, (oh - 1) * sh + kh), max(w + 2 * pl + kw, (ow - 1) * sw + kw),
                           x.shape[3]), F32)
        padded[:, pt:pt + h, pl:pl + w] = x
        y = np.zeros((len(x), oh, ow, filters), F32)
        for r in range(oh):
            for c in range(ow):
                window = padded[:, r * sh:r * sh + kh, c * sw:c * sw + kw, :].reshape(len(x), -1)
                y[:, r, c] = np.matmul(window, layer.kernel.reshape(-1, filters)).astype(F32)
        if layer.bias is not None:
            y = (y + layer.bias).astype(F32)
        return ACTIVATIONS[layer.activation](y)

    @staticmethod
    def proxy(layer):
        bias = layer.bias if layer.bias is not None else np.zeros(layer.shape[-1], F32)
        cfg = {"filters": int(layer.shape[-1]), "kernel_size": list(layer.config["kernel_size"]),
               "strides": list(layer.config["strides"]), "padding": layer.config["padding"],
               "data_format": "channels_last", "dilation_rate": [1, 1], "activation": layer.activation,
               "use_bias": True}
        return "Conv2D", cfg, {"kernel": layer.kernel, "bias": bias}


def dense_equation(equation, in_shape: tuple, where: str) -> None:
    """An EinsumDense equation that is a dense layer on the last axis (``...c,cd->...d``, ``abc,cd->abd``):
    the firmware's dense (a vector) or item_dense (a set of items) op. Anything else is refused."""
    text = str(equation).replace(" ", "")
    try:
        lhs, rest = text.split(",")
        kernel, out = rest.split("->")
    except ValueError:
        raise ModelError(f"{where}: equation {equation!r} is not an einsum of an input and a kernel") from None
    ellipsis = lhs.startswith("...")
    letters = lhs[3:] if ellipsis else lhs
    ok = len(kernel) == 2 and letters and letters[-1] == kernel[0] and kernel[1] not in lhs \
        and out == lhs[:-1] + kernel[1] and len(set(letters)) == len(letters) and letters.isalpha()
    rank = len(in_shape) + (0 if ellipsis else 1)
    if not ok or (not ellipsis and len(letters) != rank):
        raise ModelError(f"{where}: equation {equation!r} is not a dense layer on the last axis (such as "
                         "'abc,cd->abd'): not supported")


@layer_kind("QEinsumDense")
class _EinsumDense:
    @staticmethod
    def read(layer, cfg, group, in_shapes, where):
        _check_keys(cfg, ("equation", "output_shape", "activation", "bias_axes"), where)
        if len(in_shapes[0]) not in (1, 2):
            raise ModelError(f"{where}: input shape {in_shapes[0]} is not a vector or a set of items")
        dense_equation(cfg.get("equation"), in_shapes[0], where)
        layer.activation = _activation(cfg, where)
        kernel_letters = str(cfg["equation"]).replace(" ", "").split(",")[1].split("->")[0]
        bias_axes = cfg.get("bias_axes")
        if bias_axes not in (None, kernel_letters[1]):
            raise ModelError(f"{where}: bias_axes {bias_axes!r} is not the output axis {kernel_letters[1]!r}")
        values = _weights(layer, group, where, 1 + (bias_axes is not None))
        kernel = values[0]
        units = kernel.shape[-1] if kernel.ndim == 2 else -1
        out_shape = tuple(np.atleast_1d(cfg.get("output_shape", units)))
        if kernel.shape != (in_shapes[0][-1], units) or out_shape[-1] != units:
            raise ModelError(f"{where}: kernel shape {kernel.shape} / output_shape {out_shape} do not make a dense "
                             f"layer on {in_shapes[0]}")
        layer.kernel = quantize_weight(layer.config["kq"], kernel, layer.config["kq_cfg"])
        if bias_axes is not None:
            if values[1].shape != (units,):
                raise ModelError(f"{where}: bias shape {values[1].shape} is not ({units},)")
            layer.bias = quantize_weight(layer.config["bq"], values[1], layer.config["bq_cfg"])
        layer.shape = (*in_shapes[0][:-1], units)

    run = _Dense.run
    proxy = _Dense.proxy


MERGES = {"QAdd": ("Add", np.add), "QSubtract": ("Subtract", np.subtract), "QMultiply": ("Multiply", np.multiply),
          "QMaximum": ("Maximum", np.maximum), "QMinimum": ("Minimum", np.minimum)}


@layer_kind(*MERGES)
class _Merge:
    @staticmethod
    def read(layer, cfg, group, in_shapes, where):
        _check_keys(cfg, (), where)
        if len(in_shapes) != 2 or in_shapes[0] != in_shapes[1]:
            raise ModelError(f"{where}: merges {len(in_shapes)} tensors of shapes {in_shapes} (two of one shape "
                             "supported)")
        layer.shape = tuple(in_shapes[0])

    @staticmethod
    def run(layer, xs):
        return MERGES[layer.cls][1](xs[0], xs[1]).astype(F32)

    @staticmethod
    def proxy(layer):
        return MERGES[layer.cls][0], {}, {}


@layer_kind("QMaxPooling2D")
class _MaxPool2D:
    @staticmethod
    def read(layer, cfg, group, in_shapes, where):
        _check_keys(cfg, ("pool_size", "strides", "padding", "data_format"), where)
        if cfg.get("data_format", "channels_last") not in ("channels_last", None):
            raise ModelError(f"{where}: data_format {cfg.get('data_format')!r} is not supported (channels_last)")
        if cfg.get("padding", "valid") != "valid":
            raise ModelError(f"{where}: padding {cfg.get('padding')!r} is not supported (valid: hls4ml pads a max "
                             "pooling with a value Keras does not use)")
        if len(in_shapes[0]) != 3:
            raise ModelError(f"{where}: input shape {in_shapes[0]} is not (height, width, channels)")
        ph, pw = (int(v) for v in np.broadcast_to(cfg.get("pool_size", 2), 2))
        sh, sw = (int(v) for v in np.broadcast_to(cfg.get("strides") or (ph, pw), 2))
        h, w, c = in_shapes[0]
        oh, ow = (h - ph) // sh + 1, (w - pw) // sw + 1
        if oh < 1 or ow < 1:
            raise ModelError(f"{where}: the pool is larger than the input")
        layer.shape = (oh, ow, c)
        layer.config.update(pool_size=(ph, pw), strides=(sh, sw))

    @staticmethod
    def run(layer, xs):
        (ph, pw), (sh, sw) = layer.config["pool_size"], layer.config["strides"]
        oh, ow, c = layer.shape
        x = xs[0]
        y = np.empty((len(x), oh, ow, c), F32)
        for r in range(oh):
            for q in range(ow):
                y[:, r, q] = x[:, r * sh:r * sh + ph, q * sw:q * sw + pw, :].max(axis=(1, 2))
        return y

    @staticmethod
    def proxy(layer):
        return "MaxPooling2D", {"pool_size": list(layer.config["pool_size"]), "strides": list(layer.config["strides"]),
                                "padding": "valid", "data_format": "channels_last"}, {}


@layer_kind("Flatten", quantized=False)
class _Flatten:
    @staticmethod
    def read(layer, cfg, group, in_shapes, where):
        _check_keys(cfg, ("data_format",), where)
        layer.shape = (int(np.prod(in_shapes[0])),)

    @staticmethod
    def run(layer, xs):
        return xs[0].reshape(len(xs[0]), -1)

    @staticmethod
    def proxy(layer):
        return "Flatten", {"data_format": "channels_last"}, {}


@layer_kind("Activation", "ReLU", quantized=False)
class _Activation:
    @staticmethod
    def read(layer, cfg, group, in_shapes, where):
        if layer.cls == "ReLU":
            _check_keys(cfg, ("max_value", "negative_slope", "threshold"), where)
            if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                raise ModelError(f"{where}: ReLU options max_value/negative_slope/threshold are not supported")
            layer.activation = "relu"
        else:
            _check_keys(cfg, ("activation",), where)
            layer.activation = _activation(cfg, where)
        layer.shape = tuple(in_shapes[0])

    @staticmethod
    def run(layer, xs):
        return ACTIVATIONS[layer.activation](xs[0])

    @staticmethod
    def proxy(layer):
        return "Activation", {"activation": layer.activation}, {}


# ------------------------------------------------------------------ the model
@dataclass
class Hgq2Model:
    """An HGQ2 model read from its archive: layers in order, wiring, ports, and HGQ2's arithmetic."""

    name: str
    path: Path
    sha256: str
    inputs: list  # [(name, shape)]
    outputs: list  # [layer name]
    layers: list  # [Hgq2Layer] (input layers excluded)

    def predict(self, xs, trace: dict | None = None) -> list[np.ndarray]:
        """HGQ2's inference in float32 (one array per model input, batch first): one array per output.
        ``trace`` gets every quantizer's output by the name of its firmware op."""
        values = {name: np.asarray(x, dtype=F32).reshape(len(x), *shape)
                  for (name, shape), x in zip(self.inputs, xs)}
        for layer in self.layers:
            xs_ = [values[s] for s in layer.sources]
            if layer.iq:
                xs_ = [q(x) for q, x in zip(layer.iq, xs_)]
                if trace is not None:
                    trace.update({iq_name(layer, j): x for j, x in enumerate(xs_)})
            y = LAYER_KINDS[layer.cls].run(layer, xs_)
            if layer.oq is not None:
                y = layer.oq(y)
                if trace is not None:
                    trace[f"{layer.name}_oq"] = y
            values[layer.name] = y
        return [values[n] for n in self.outputs]

    def layer_source(self, exact: bool):
        """Every quantizer's output and every model output, for the layer-by-layer comparison
        (trigger.frontends.layer_compare): the tensors HGQ2 and the firmware hold alike (between quantizers hls4ml keeps
        only the bits the next quantizer can tell apart)."""
        from trigger.frontends.layer_compare import LayerSource

        rows = []
        for layer in self.layers:
            rows += [(iq_name(layer, j), "Quantizer") for j in range(len(layer.iq))]
            if layer.oq is not None:
                rows.append((f"{layer.name}_oq", "Quantizer"))
        by_name = {layer.name: layer for layer in self.layers}
        rows += [(n, by_name[n].cls) for n in self.outputs if n in by_name and by_name[n].oq is None]

        def predict(x: np.ndarray) -> dict:
            trace: dict = {}
            parts, at = [], 0
            for _, shape in self.inputs:
                n = int(np.prod(shape))
                parts.append(x[:, at:at + n])
                at += n
            outs = self.predict(parts, trace)
            trace.update({n: o for n, o in zip(self.outputs, outs)})
            return {name: np.asarray(trace[name], dtype=np.float64).reshape(len(x), -1) for name, _ in rows}

        return LayerSource("hgq2", exact, rows, predict)

    def predict_flat(self, x: np.ndarray) -> np.ndarray:
        """Rows of the input bus in (the ports one after another), the output bus out (float64)."""
        parts, at = [], 0
        for _, shape in self.inputs:
            n = int(np.prod(shape))
            parts.append(x[:, at:at + n])
            at += n
        outs = self.predict(parts)
        return np.concatenate([np.asarray(o, dtype=np.float64).reshape(len(x), -1) for o in outs], axis=1)


def iq_name(layer: Hgq2Layer, j: int) -> str:
    """The name of a layer's j-th input quantizer in the proxy model (and so of its firmware op)."""
    return f"{layer.name}_iq" if len(layer.iq) == 1 else f"{layer.name}_iq{j}"


def read_model(path) -> Hgq2Model:
    """An HGQ2 ``.keras`` archive, read as data."""
    path = Path(path)
    config, weights_bytes = read_members(path)
    with open_weights(weights_bytes, path) as h5:
        model = _read(config, h5, path)
    model.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return model


def _read(config: dict, h5, path: Path) -> Hgq2Model:
    from trigger.frontends.keras import _ports

    body = config.get("config") if isinstance(config, dict) else None
    if not isinstance(body, dict) or config.get("class_name") not in ("Functional", "Sequential", "Model"):
        raise ModelError(f"{path}: {CONFIG} is not a Keras functional or sequential model")
    name = _safe_name(str(body.get("name") or path.stem))
    raw_layers = body.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise ModelError(f"{path}: the model has no layers")
    root = h5["layers"] if "layers" in h5 else None
    if root is None:
        raise ModelError(f"{path}: {WEIGHTS} has no 'layers' group: not Keras 3 weights")
    sequential = config.get("class_name") == "Sequential"
    counts: dict[str, int] = {}
    shapes: dict[str, tuple] = {}
    inputs, layers, prev = [], [], None
    for k, raw in enumerate(raw_layers):
        if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
            raise ModelError(f"{path}: malformed layer entry #{k}")
        cls, cfg = str(raw.get("class_name")), raw["config"]
        lname = str(cfg.get("name", raw.get("name", f"#{k}")))
        where = _layer_where(str(path), lname, cls)
        snake = snake_case(cls)
        counts[snake] = counts.get(snake, -1) + 1
        key = snake if counts[snake] == 0 else f"{snake}_{counts[snake]}"
        if cls == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if not shape or len(shape) < 2 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
                raise ModelError(f"{where}: input shape {shape} must be fixed and positive (batch excepted)")
            inputs.append((lname, tuple(shape[1:])))
            shapes[lname] = tuple(shape[1:])
            prev = lname
            continue
        if cls not in LAYER_KINDS:
            raise ModelError(f"{where}: layer class {cls} is not supported (supported: "
                             f"{', '.join(sorted(LAYER_KINDS))})")
        sources = [prev] if sequential else _inbound_names(raw.get("inbound_nodes") or [])
        if len(raw.get("inbound_nodes") or []) > 1:
            raise ModelError(f"{where}: called {len(raw['inbound_nodes'])} times (shared layers are not supported)")
        missing = [s for s in sources if s not in shapes]
        if not sources or missing:
            raise ModelError(f"{where}: reads {missing or 'nothing'}, which no layer before it writes")
        layer = Hgq2Layer(lname, cls, sources)
        group = root.get(key) or root.get(lname)
        kind = LAYER_KINDS[cls]
        if kind.quantized:
            _read_quantizers(layer, cfg, group, [shapes[s] for s in sources], where)
        kind.read(layer, cfg, group, [shapes[s] for s in sources], where)
        if kind.quantized and cfg.get("enable_oq"):
            layer.oq = read_quantizer(cfg.get("oq_conf"), _sub(group, "oq"), f"{where}: oq_conf")
        shapes[lname] = layer.shape
        layers.append(layer)
        prev = lname
    if sequential:
        if not inputs:
            raise ModelError(f"{path}: the sequential model has no InputLayer")
        outputs = [prev]
    else:
        try:
            in_names, outputs = _ports(body.get("input_layers")), _ports(body.get("output_layers"))
        except ModelError as err:
            raise ModelError(f"{path}: {err}") from None
        by_name = dict(inputs)
        if any(n not in by_name for n in in_names) or any(n not in shapes for n in outputs):
            raise ModelError(f"{path}: the model's inputs/outputs {in_names}/{outputs} are not its layers")
        inputs = [(n, by_name[n]) for n in in_names]
    return Hgq2Model(name, path, "", inputs, outputs, layers)


def _inbound_names(nodes) -> list[str]:
    """The layers a Keras 3 node reads: every ``keras_history`` in its args (a merge's come as one list)."""
    names = []

    def visit(value):
        if isinstance(value, dict):
            history = (value.get("config") or {}).get("keras_history") if value.get("class_name") == \
                "__keras_tensor__" else None
            if history:
                names.append(str(history[0]))
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)

    for node in nodes:
        visit(node.get("args", []) if isinstance(node, dict) else node)
    return names


def _sub(group, *names):
    for n in names:
        group = group.get(n) if group is not None else None
    return group


def _read_quantizers(layer: Hgq2Layer, cfg: dict, group, in_shapes, where: str) -> None:
    """The layer's input quantizers (one per input) and its kernel/bias quantizers (as configs + variables)."""
    if cfg.get("enable_iq", True):
        if len(in_shapes) == 1:
            layer.iq = [read_quantizer(cfg.get("iq_conf"), _sub(group, "iq", "quantizer"), f"{where}: iq_conf")]
        else:
            confs = cfg.get("iq_confs")
            confs = confs if isinstance(confs, list) else [confs] * len(in_shapes)
            layer.iq = [read_quantizer(c, _sub(group, "iq", "quantizers", "quantizer" if j == 0 else f"quantizer_{j}",
                                               "quantizer"), f"{where}: iq_confs[{j}]")
                        for j, c in enumerate(confs)]
        for q, shape in zip(layer.iq, in_shapes):
            _check_broadcast(q, shape, where)
    for key, attr in (("kq_conf", "kq"), ("bq_conf", "bq")):
        conf = cfg.get(key)
        if conf is not None:
            layer.config[attr] = read_quantizer(conf, _sub(group, attr, "quantizer"), f"{where}: {key}")
            layer.config[f"{attr}_cfg"] = conf.get("config") or {}


def _check_broadcast(q: Quantizer, shape: tuple, where: str) -> None:
    try:
        np.broadcast_shapes(q.k.shape, (1, *shape))
    except ValueError:
        raise ModelError(f"{where}: the input quantizer's bit widths of shape {q.k.shape} do not broadcast to the "
                         f"input {shape}") from None


def _safe_name(name: str) -> str:
    import re

    name = re.sub(r"\W", "_", name)
    return name if name and not name[0].isdigit() else f"m_{name}"


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------ hls4ml: the Keras 2 proxy model
class _Weights:
    """hls4ml's Keras 2 weight reader over the proxy's constants (layer name -> {variable: array})."""

    def __init__(self, data: dict):
        self.data = data

    def get_weights_data(self, layer_name, var_name):
        return self.data.get(layer_name, {}).get(var_name)


def proxy_architecture(model: Hgq2Model) -> tuple[dict, dict]:
    """(Keras 2 functional architecture, weights) of the model with every quantizer a FixedPointQuantizer
    layer (per element keep_negative, bits, integers) and every layer its plain Keras 2 counterpart
    holding the quantized constants: what hls4ml's Keras 2 parser reads for an HGQ proxy model."""
    layers, weights, tensor = [], {}, {}
    for name, shape in model.inputs:
        layers.append({"class_name": "InputLayer", "config": {"name": name, "batch_input_shape": [None, *shape],
                                                              "dtype": "float32"}, "inbound_nodes": []})
        tensor[name] = (name, shape)

    def quantizer(qname, q, source):
        src, shape = tensor[source] if isinstance(source, str) else source
        k, bits, integers = q.element_kbi(tuple(shape))
        layers.append({"class_name": "FixedPointQuantizer",
                       "config": {"name": qname, "fusible": None, "RND": q.round_mode, "SAT": q.overflow_mode,
                                  "overrides": {}},
                       "inbound_nodes": [[[src, 0, 0, {}]]]})
        weights[qname] = {"keep_negative": k.astype(np.int16), "bits": bits.astype(np.int16),
                          "integers": integers.astype(np.int16)}
        return qname, shape

    for layer in model.layers:
        srcs = [tensor[s] for s in layer.sources]
        if layer.iq:
            srcs = [quantizer(iq_name(layer, j), q, src) for j, (q, src) in enumerate(zip(layer.iq, srcs))]
        cls, cfg, consts = LAYER_KINDS[layer.cls].proxy(layer)
        layers.append({"class_name": cls, "config": {"name": layer.name, **cfg},
                       "inbound_nodes": [[[s, 0, 0, {}] for s, _ in srcs]]})
        if consts:
            weights[layer.name] = consts
        tensor[layer.name] = (layer.name, layer.shape)
        if layer.oq is not None:
            tensor[layer.name] = quantizer(f"{layer.name}_oq", layer.oq, tensor[layer.name])
    arch = {"class_name": "Functional", "config": {
        "name": model.name, "layers": layers,
        "input_layers": [[n, 0, 0] for n, _ in model.inputs],
        "output_layers": [[tensor[n][0], 0, 0] for n in model.outputs]}}
    return arch, weights


def input_format(model: Hgq2Model, name: str, shape: tuple) -> FixedFormat:
    """The input port's format: every value each element's first quantizer can tell apart, so that the port
    and then the element's own cast give what the quantizer gives on the real input.

    TRN to one fractional bit more than any element keeps, then the element's RND, is one RND of the real
    value (floor(floor(y * 2^(F-f)) / 2^(F-f) + 1/2) == floor(y + 1/2) for F > f); TRN then TRN is one TRN;
    WRAP to more integer bits, then WRAP to fewer, is one WRAP. The port saturates where the quantizers do."""
    readers = [(layer, j) for layer in model.layers for j, s in enumerate(layer.sources) if s == name]
    qs = [layer.iq[j] for layer, j in readers if layer.iq]
    if len(qs) != len(readers) or not qs:
        raise ModelError(f"{model.path}: input {name!r} feeds a layer without an input quantizer: its format is "
                         "not the model's (enable_iq)")
    kbis = [tuple(a[b > 0] for a in (k, b, i)) for k, b, i in (q.element_kbi(shape) for q in qs)]
    for q in qs:
        if q.round_mode not in ("RND", "TRN"):
            raise ModelError(f"{model.path}: input {name!r}: its quantizer rounds {q.round_mode}; an input port "
                             "reproduces RND and TRN only")
    sats = {q.overflow_mode for q in qs}
    if len(sats) > 1:
        raise ModelError(f"{model.path}: input {name!r} is read by quantizers of overflow modes {sorted(sats)}")
    if not any(k.size for k, _, _ in kbis):
        raise ModelError(f"{model.path}: input {name!r}: every element is quantized to 0 bits")
    signed = any(bool(np.any(k)) for k, _, _ in kbis)
    frac = max(int(np.max(b - i)) for k, b, i in kbis if k.size) + 1
    # a signed port holds an unsigned element's range with one bit more
    integer = max(int(np.max(i + (signed & (k == 0)))) for k, b, i in kbis if k.size)
    width = integer + frac
    if width > 48:
        raise ModelError(f"{model.path}: input {name!r} would need {width} bits")
    overflow = "WRAP" if "WRAP" in sats else "SAT"
    return FixedFormat(width, integer, signed, "TRN", overflow)


def convert(model: Hgq2Model, opts: dict, output_dir: Path):
    """hls4ml's conversion of the proxy model (bit-exact flow), and its firmware model: (hls_model, fw)."""
    from hls4ml.converters import create_config
    from hls4ml.converters.keras_v2_to_hls import parse_keras_model
    from hls4ml.model import ModelGraph

    from trigger.frontends.network import extract
    from trigger.quiet import quiet_stdout

    arch, weights = proxy_architecture(model)
    layer_name = {}
    for name, shape in model.inputs:
        layer_name[name] = {"Precision": {"result": input_format(model, name, shape).hls4ml}}
    with quiet_stdout():
        config = create_config(output_dir=str(output_dir), project_name=opts["project_name"],
                               backend=opts["backend"], part=opts["part"], clock_period=float(opts["clock_period_ns"]),
                               io_type="io_parallel")
        config["HLSConfig"] = {"Model": {"Precision": "fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency",
                                         "BitExact": True}, "LayerName": layer_name}
        try:
            layer_list, in_layers, out_layers, _ = parse_keras_model(arch, _Weights(weights))
            hls_model = ModelGraph.from_layer_list(config, layer_list, in_layers, out_layers)
        except ModelError:
            raise
        except Exception as err:  # noqa: BLE001 - hls4ml raises many types
            raise ModelError(f"{model.path}: hls4ml cannot convert the HGQ2 proxy model: "
                             f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__}") \
                from None
    fw = extract(hls_model, model.name)
    return hls_model, fw


@maps(("FixedPointQuantizer",))
def fixed_point_quantizer(layer, ctx: Context) -> list:
    """hls4ml's FixedPointQuantizer (an HGQ quantizer): each element cast through its own format."""
    var = layer.get_output_variable()
    n = int(np.prod(var.shape))
    out = TensorType.uniform(fixed_format(var.type.precision, ctx, layer), n)
    k, bits, integers = (np.broadcast_to(np.asarray(a), (1, *var.shape)).ravel() for a in layer.mask_kbi)
    rnd, sat = str(layer.RND).upper(), str(layer.SAT).upper()
    formats = [None if int(b) <= 0 else FixedFormat(int(b), int(i), bool(s), rnd, sat).cpp
               for s, b, i in zip(k, bits, integers)]
    if len(formats) != ctx.previous.n:
        ctx.fail(layer, f"{len(formats)} element formats for {ctx.previous.n} inputs")
    return [ElementQuantize(layer.name, ctx.previous, out, formats)]


# ------------------------------------------------------------------ the design
def design_from_keras_file(path: Path, options):
    """A ``.keras`` archive: HGQ2 layers come here, any other to the Keras network frontend."""
    from trigger.frontends import network

    if not is_hgq2_archive(path):
        return network.design_from_file(path, options)
    return hgq2_design(Path(path), {}, options)


def is_hgq2_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return is_hgq2_config(json.loads(archive.read(CONFIG)))
    except (zipfile.BadZipFile, OSError, KeyError, json.JSONDecodeError, UnicodeDecodeError):
        return False  # the Keras frontend says what is wrong with it


def hgq2_design(path: Path, config: dict, options, budget=None):
    """The design of an HGQ2 archive: hls4ml's bit-exact conversion, trigger's ops, HGQ2's float32
    arithmetic as the exact source witness."""
    from dataclasses import replace

    from trigger.frontends import Design
    from trigger.frontends.network import DEFAULT_VECTORS, set_reuse_factors, settings, unwritten_project_dir
    from trigger.ir.ii import resolve_ii
    from trigger.settings import common_settings
    from trigger.source_model import SourceModel, attach

    for given, flag in ((options.precision, "--precision"), (options.hls_config, "--hls-config")):
        if given:
            raise ConfigError(f"{path}: {flag} does not apply to an HGQ2 model (its quantizers give every format)")
    if options.keep_softmax or options.argmax:
        raise ConfigError(f"{path}: --softmax/--argmax do not apply to an HGQ2 model (it outputs what it computes)")
    model = read_model(path)
    if config.get("name"):
        model.name = _safe_name(str(config["name"]))
    common = common_settings(config, path, options, DEFAULT_VECTORS)  # target, rtl, verify, budget (trigger.settings)
    hls_cfg, target = dict(config.get("hls") or {}), {"part": common.part, "clock_period_ns": common.clock_period_ns}
    for key in ("input_precision", "precision", "ptq"):
        if key in hls_cfg:
            raise ConfigError(f"{path}: hls.{key} does not apply to an HGQ2 model (its quantizers give every format)")
    if options.backend:
        hls_cfg["backend"] = options.backend
    opts = settings({"hls": hls_cfg, "target": target})
    if opts.get("io_type", "io_parallel") not in ("auto", "io_parallel") or getattr(options, "io_type", None) \
            not in (None, "auto", "io_parallel"):
        raise ConfigError(f"{path}: an HGQ2 model is built io_parallel (hls4ml's per-element quantizers need it)")
    hls_model, fw = convert(model, opts, unwritten_project_dir(model.name))
    stamp = hashlib.sha256(json.dumps(fw.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    budget = common.budget if budget is None else budget
    ii, op_ii = resolve_ii(fw, common.ii, common.layer_ii, opts["clock_period_ns"], budget, where="rtl")
    set_reuse_factors(hls_model, ii, op_ii)
    quantizers = [op for op in fw.ops if op.kind == "element_quantize"]
    notes = [f"HGQ2 model read as data: {len(quantizers)} per-element quantizers "
             f"({sum(op.output.n for op in quantizers)} elements) and quantized weights as HGQ2 computes them; "
             "converted by hls4ml's bit-exact flow from a Keras 2 proxy of the model."]
    design = Design(
        model=fw, hls_backend="hls4ml", hls_options={"hls_model": hls_model, "stamp": stamp},
        source_sha256=model.sha256, part=opts["part"], clock_period_ns=opts["clock_period_ns"],
        pipeline=common.pipeline, rtl_multiplier=common.multiplier, ii=ii, layer_ii=op_ii, ii_resolved=True,
        vectors=common.vectors,
        notes=notes, budget=budget,
        manifest={"formats": [f"input: {fw.input.describe()}"] + [f"{op.name}: {op.describe()}" for op in fw.ops],
                  "output_meaning": "network outputs", "hgq2": {"layers": [l.name for l in model.layers]}})
    from trigger.frontends.network import float32_inexact

    inexact = float32_inexact(fw)  # HGQ2 sums in float32: exact while no partial sum outgrows its significand
    source = SourceModel("hgq2", inexact is None, model.predict_flat,
                         f"HGQ2's inference of {model.name} (float32, replayed from the archive's quantizers)"
                         + (f" (not bit-exact: {inexact})" if inexact else ""))
    attach(design, source)
    design.loaded, design.source_model = model, replace(source)
    from trigger.frontends.layer_compare import attach_layers

    attach_layers(design, model, source.exact)  # reports/layers.json: every quantizer's output compared
    return design
