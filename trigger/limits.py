"""Size limits, checked before a build starts: the work a job asks for, estimated from its files in a
second or two, and refused over a limit with one line naming the setting and the limit.

Without them a float Dense 4096x4096 (16.8 M constant products), a 30-bit table in block RAM or
``--vectors 99999999999999`` run for many minutes, printing nothing, before failing or filling the
disk. Each limit is an environment variable, so a user who means it can raise it. The estimates read
only shapes: the datasets of an HDF5 file, the initialisers of an ONNX graph, a trigger.yml; nothing
is loaded or executed. A file they cannot read is left to the frontend, which names the problem.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from trigger.errors import ConfigError
from trigger.yaml_data import read_yaml


@dataclass(frozen=True)
class Limit:
    variable: str  # the environment variable that sets it
    default: int
    what: str

    @property
    def value(self) -> int:
        text = os.environ.get(self.variable)
        if text is None:
            return self.default
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{self.variable}={text!r}: expected a whole number") from None
        if value <= 0:
            raise ConfigError(f"{self.variable}={text!r}: expected a positive whole number")
        return value


# 2^20 weights: a 1024x1024 Dense; 2^28 bits: a 2^24-word table of 16-bit words, about 60 % of the
# block and ultra RAM of the largest UltraScale+ parts; 2^27 values: 1 GiB of int64 test vectors.
PRODUCTS = Limit("TRIGGER_MAX_PRODUCTS", 1 << 20, "constant products (weights of dense and convolution kernels)")
TABLE_BITS = Limit("TRIGGER_MAX_TABLE_BITS", 1 << 28, "bits of a table in the FPGA (words x word width)")
VECTOR_VALUES = Limit("TRIGGER_MAX_VECTOR_VALUES", 1 << 27, "test-vector values (vectors x input width)")
LIMITS = (PRODUCTS, TABLE_BITS, VECTOR_VALUES)


def describe() -> str:
    """The limits as --help and the README state them."""
    return "; ".join(f"{limit.what} at most {limit.default:,} ({limit.variable})" for limit in LIMITS)


@dataclass
class Estimate:
    products: int | None = None  # constant products (kernel weights) of a network
    table_bits: int | None = None  # words x width of a table kept in the FPGA
    table_words: int | None = None
    input_width: int | None = None  # input elements per vector
    vectors: int | None = None
    where: str = ""


def check(estimate: Estimate) -> None:
    """Refuses (ConfigError: one line, exit 2) a job over a limit."""
    where = f"{estimate.where}: " if estimate.where else ""
    if estimate.products is not None and estimate.products > PRODUCTS.value:
        raise ConfigError(f"{where}{estimate.products:,} constant products exceed the limit of {PRODUCTS.value:,} "
                          f"({PRODUCTS.variable}; raise it to build anyway)")
    if estimate.table_bits is not None and estimate.table_bits > TABLE_BITS.value:
        raise ConfigError(f"{where}a table of {estimate.table_words:,} words in the FPGA holds {estimate.table_bits:,} "
                          f"bits, over the limit of {TABLE_BITS.value:,} ({TABLE_BITS.variable}; or set "
                          "address.memory: external)")
    if estimate.vectors is not None:
        values = estimate.vectors * (estimate.input_width or 1)
        if values > VECTOR_VALUES.value:
            raise ConfigError(f"{where}{estimate.vectors:,} test vectors x {estimate.input_width or 1} inputs = "
                              f"{values:,} values, over the limit of {VECTOR_VALUES.value:,} "
                              f"({VECTOR_VALUES.variable}; --vectors / verify.vectors)")


def check_build(source, options) -> Estimate:
    """The estimate of ``trigger build SOURCE`` with these BuildOptions, checked against the limits."""
    estimate = estimate_build(Path(source), options)
    check(estimate)
    return estimate


def estimate_build(source: Path, options) -> Estimate:
    estimate = Estimate(where=str(source), vectors=getattr(options, "vectors", None))
    if source.is_dir() or source.suffix in (".yml", ".yaml"):
        path = source / "trigger.yml" if source.is_dir() else source
        if not path.is_file():
            return estimate
        try:
            config = read_yaml(path)
        except ConfigError:
            return estimate  # the frontend says what is wrong with it
        if isinstance(config, dict):
            _from_config(config, path, options, estimate)
        return estimate
    weights = getattr(options, "weights", None)
    if source.suffix.lower() == ".json":
        weights = Path(weights) if weights else source.with_name(f"{source.stem}_weights.h5")
    _from_model_file(source, Path(weights) if weights else None, estimate)
    return estimate


def _from_config(config: dict, path: Path, options, estimate: Estimate) -> None:
    verify = config.get("verify")
    if estimate.vectors is None and isinstance(verify, dict) and isinstance(verify.get("vectors"), int):
        estimate.vectors = verify["vectors"]
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    kind = config.get("kind")
    if kind == "network" and isinstance(model.get("file"), str):
        weights = model.get("weights")
        _from_model_file(path.parent / model["file"], path.parent / weights if isinstance(weights, str) else None,
                         estimate)
    elif kind == "network" and isinstance(model.get("hidden"), list) and \
            all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in model["hidden"]):
        hidden = model["hidden"]  # a lower bound: the products between hidden layers (inputs and outputs >= 1)
        estimate.products = sum(a * b for a, b in zip(hidden, hidden[1:])) + sum(hidden[:1]) + sum(hidden[-1:])
    elif kind == "lut":
        _from_table(config, estimate)


def _from_table(config: dict, estimate: Estimate) -> None:
    from trigger.fixed import FixedFormat
    from trigger.frontends.lut.config import MAX_ON_CHIP_BITS

    features = config.get("features")
    if not isinstance(features, list):
        return
    bits = [f.get("bits") for f in features if isinstance(f, dict)]
    if not bits or not all(isinstance(b, int) and not isinstance(b, bool) and 0 < b <= 64 for b in bits):
        return
    estimate.input_width = len(bits)
    address = config.get("address") if isinstance(config.get("address"), dict) else {}
    address_bits = sum(bits)
    memory = address.get("memory", "auto")
    if memory == "external" or (memory == "auto" and address_bits > MAX_ON_CHIP_BITS):
        return  # the board's memory: words made in parts on Dask workers, with progress
    output = config.get("output") if isinstance(config.get("output"), dict) else {}
    try:
        width = FixedFormat.parse(output["format"]).width if isinstance(output.get("format"), str) else 1
    except (ValueError, ConfigError, KeyError):
        width = 1
    estimate.table_words = 1 << address_bits
    estimate.table_bits = estimate.table_words * width


def _from_model_file(model: Path, weights: Path | None, estimate: Estimate) -> None:
    suffix = model.suffix.lower()
    try:
        if suffix == ".onnx":
            _from_onnx(model, estimate)
        elif suffix in (".h5", ".hdf5"):
            _from_hdf5(model, estimate)
            estimate.input_width = _input_width_of_keras_config(_hdf5_model_config(model))
        elif suffix == ".json":
            if weights is not None and weights.is_file():
                _from_hdf5(weights, estimate)
            estimate.input_width = _input_width_of_keras_config(json.loads(model.read_text()))
        elif suffix == ".keras":
            with zipfile.ZipFile(model) as archive:
                names = set(archive.namelist())
                if "model.weights.h5" in names:
                    _from_hdf5(io.BytesIO(archive.read("model.weights.h5")), estimate)
                if "config.json" in names:
                    estimate.input_width = _input_width_of_keras_config(json.loads(archive.read("config.json")))
    except Exception:  # noqa: BLE001 - any file not readable here (truncated, not HDF5/ONNX): the frontend says why
        pass


def _from_hdf5(file, estimate: Estimate) -> None:
    """Kernels are the datasets of two or more dimensions (biases and batch-norm parameters have one)."""
    import h5py

    sizes = []
    with h5py.File(file, "r") as h5:
        h5.visititems(lambda name, item: sizes.append(item.size) if isinstance(item, h5py.Dataset)
                      and len(item.shape) >= 2 else None)
    estimate.products = int(sum(sizes))


def _hdf5_model_config(path: Path):
    import h5py

    with h5py.File(path, "r") as h5:
        config = h5.attrs.get("model_config")
    if config is None:
        return None
    return json.loads(config.decode() if isinstance(config, bytes) else config)


def _input_width_of_keras_config(config) -> int | None:
    """Elements of the first input, from a Keras model config (InputLayer batch shape)."""
    def shapes(node):
        if isinstance(node, dict):
            for key in ("batch_input_shape", "batch_shape"):
                if isinstance(node.get(key), list):
                    yield node[key]
            for value in node.values():
                yield from shapes(value)
        elif isinstance(node, list):
            for value in node:
                yield from shapes(value)

    for shape in shapes(config):
        dims = [d for d in shape[1:] if d is not None]
        if dims and all(isinstance(d, int) and d > 0 for d in dims):
            return math.prod(dims)
    return None


def _from_onnx(path: Path, estimate: Estimate) -> None:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    estimate.products = sum(math.prod(t.dims) for t in graph.initializer if len(t.dims) >= 2)
    initialisers = {t.name for t in graph.initializer}
    widths = []
    for tensor in graph.input:
        if tensor.name in initialisers:
            continue
        dims = [d.dim_value for d in tensor.type.tensor_type.shape.dim[1:]]
        if dims and all(d > 0 for d in dims):
            widths.append(math.prod(dims))
    if widths:
        estimate.input_width = sum(widths)
