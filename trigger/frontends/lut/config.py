"""The LUT regressor's ``trigger.yml``: read with ``yaml.safe_load`` and validated.

Every problem is one line naming the file and the field, raised as ConfigError
before anything is written or trained. Unknown keys are errors too (a typo must
not be silently ignored).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path


from trigger.budget import BudgetError, load_budget
from trigger.data.muon import FEATURE_BY_NAME
from trigger.errors import ConfigError, read_yaml
from trigger.fixed import FixedFormat

MAX_ADDRESS_BITS = 30
BINNINGS = ("linear", "log", "quantile")
MODELS = ("mlp", "gbt")
TARGETS = ("log_pt", "inv_pt", "pt")
SOURCES = ("muon", "file")
MEMORIES = ("auto", "bram", "external")
# Above this many address bits a table goes to the board's external memory (memory: auto): 2^24
# words of 9-16 bits (151-268 Mbit) already need most of a large UltraScale+ part's BRAM and URAM.
MAX_ON_CHIP_BITS = 24
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def raw_format(raw_bits: int, signed: bool) -> FixedFormat:
    """The ap_int/ap_uint a detector feature arrives in."""
    return FixedFormat.parse(f"{'int' if signed else 'uint'}<{raw_bits}>")


@dataclass
class FeatureSpec:
    name: str
    bits: int  # bits of the compressed field in the address
    binning: str
    range: tuple[float, float] | None  # raw units, for linear/log
    raw_bits: int  # width of the raw integer the detector delivers
    signed: bool

    @property
    def min_raw(self) -> int:
        return raw_format(self.raw_bits, self.signed).min_raw

    @property
    def max_raw(self) -> int:
        return raw_format(self.raw_bits, self.signed).max_raw


@dataclass
class LutConfig:
    path: Path
    name: str
    seed: int
    source: str
    data_path: Path | None
    n_train: int
    n_test: int
    features: list[FeatureSpec]
    address_bits: int
    order: list[str]  # fields from the least significant address bits upward
    model: dict
    target: str
    output: FixedFormat
    thresholds: list[float]
    low_pt_max: float
    part: str
    clock_mhz: float
    budget: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    memory: str = "bram"  # where the words live: bram (a ROM in the FPGA) or external (the board's memory)
    read_latency: int = 2  # external memory: clocks from address to word
    part_bits: int = 22  # a table made on Dask workers: 2**part_bits addresses per task and per part file
    scale: dict = field(default_factory=dict)  # the scale: mapping (trigger.scale.scale_settings checks it)


class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, msg: str):
        raise ConfigError(f"{self.path}: {where}: {msg}")

    def mapping(self, value, where: str, required: tuple, optional: tuple = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, got {type(value).__name__}")
        for key in value:
            if key not in required and key not in optional:
                self.fail(f"{where}.{key}" if where else str(key),
                          f"unknown key; expected one of {', '.join(required + optional)}")
        for key in required:
            if key not in value:
                self.fail(f"{where}.{key}" if where else str(key), "missing required field")
        return value

    def integer(self, value, where: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and math.isnan(value):
                self.fail(where, "is NaN")
            self.fail(where, f"must be an integer, got {value!r}")
        if lo is not None and value < lo:
            self.fail(where, f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            self.fail(where, f"must be <= {hi}, got {value}")
        return value

    def number(self, value, where: str, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            self.fail(where, f"must be finite, got {value!r}")
        if positive and value <= 0:
            self.fail(where, f"must be positive, got {value!r}")
        return float(value)

    def choice(self, value, where: str, choices: tuple) -> str:
        if value not in choices:
            self.fail(where, f"must be one of {', '.join(choices)}, got {value!r}")
        return value


MLP_KEYS = ("type", "target", "hidden", "epochs", "batch_size", "learning_rate")
GBT_KEYS = ("type", "target", "max_iter", "max_leaf_nodes", "learning_rate", "min_samples_leaf")
MODEL_DEFAULTS = {
    "mlp": {"target": "log_pt", "hidden": [32, 32], "epochs": 8, "batch_size": 1024, "learning_rate": 0.003},
    "gbt": {"target": "log_pt", "max_iter": 200, "max_leaf_nodes": 31, "learning_rate": 0.1, "min_samples_leaf": 20},
}


def load_config(config_dir: Path) -> LutConfig:
    """Read and validate ``config_dir/trigger.yml`` (or a path to the .yml itself)."""
    path = Path(config_dir)
    if path.is_dir():
        path = path / "trigger.yml"
    return check_config(read_yaml(path, missing=f"{path}: configuration file not found"), path)


def check_config(raw, path: Path) -> LutConfig:
    """Validate a trigger.yml mapping already read (as data) from ``path``."""
    path = Path(path)
    c = _Checker(path)
    top = c.mapping(raw, "", ("kind", "name", "data", "features", "model", "output"),
                    ("seed", "address", "target", "report", "budget", "scale"))
    if top["kind"] != "lut":
        c.fail("kind", f"must be 'lut' for a look-up-table regressor, got {top['kind']!r}")
    name = top["name"]
    if not isinstance(name, str) or not _IDENT.match(name):
        c.fail("name", f"must be a Verilog/C identifier (letters, digits, _), got {name!r}")
    seed = c.integer(top.get("seed", 1), "seed", 0, 2**31 - 1)

    data = c.mapping(top["data"], "data", ("source",), ("n_train", "n_test", "path"))
    source = c.choice(data["source"], "data.source", SOURCES)
    n_train = c.integer(data.get("n_train", 200000), "data.n_train", 1000, 100_000_000)
    n_test = c.integer(data.get("n_test", 200000), "data.n_test", 1000, 100_000_000)
    data_path = None
    if source == "file":
        if "path" not in data:
            c.fail("data.path", "missing required field (source: file)")
        data_path = (path.parent / str(data["path"])).resolve()
    elif "path" in data:
        c.fail("data.path", "only allowed with source: file")

    features = _features(c, top["features"], source)
    names = [f.name for f in features]
    total = sum(f.bits for f in features)
    address = c.mapping(top.get("address", {}), "address", (), ("bits", "order", "memory", "read_latency", "part_bits"))
    part_bits = c.integer(address.get("part_bits", 22), "address.part_bits", 10, MAX_ADDRESS_BITS)
    memory = c.choice(address.get("memory", "auto"), "address.memory", MEMORIES)
    if memory == "auto":
        memory = "external" if total > MAX_ON_CHIP_BITS else "bram"
    read_latency = c.integer(address.get("read_latency", 2), "address.read_latency", 1, 64)
    address_bits = c.integer(address.get("bits", total), "address.bits", 1)
    if address_bits > MAX_ADDRESS_BITS:
        c.fail("address.bits", f"{address_bits} bits is wider than the {MAX_ADDRESS_BITS}-bit maximum")
    if total > MAX_ADDRESS_BITS:
        c.fail("features", f"the feature bits add up to {total}, wider than the {MAX_ADDRESS_BITS}-bit address maximum")
    if address_bits != total:
        c.fail("address.bits", f"is {address_bits} but the feature bits add up to {total}")
    order = address.get("order", names)
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(names):
        c.fail("address.order", f"must list every feature exactly once ({', '.join(names)}), got {order!r}")

    model = _model(c, top["model"])
    target = model["target"]

    out = c.mapping(top["output"], "output", ("format",))
    try:
        fmt = FixedFormat.parse(str(out["format"]))
    except ValueError as err:
        c.fail("output.format", str(err))
    if fmt.signed or fmt.width > 32:
        c.fail("output.format", f"must be unsigned and at most 32 bits wide, got {out['format']!r}")

    rep = c.mapping(top.get("report", {}), "report", (), ("thresholds", "low_pt_max"))
    thresholds = rep.get("thresholds", [10.0, 20.0, 30.0])
    if not isinstance(thresholds, list) or not thresholds:
        c.fail("report.thresholds", f"must be a non-empty list of pT values, got {thresholds!r}")
    thresholds = [c.number(t, f"report.thresholds[{i}]", positive=True) for i, t in enumerate(thresholds)]
    low_pt_max = c.number(rep.get("low_pt_max", 5.0), "report.low_pt_max", positive=True)

    hw = c.mapping(top.get("target", {}), "target", (), ("part", "clock_mhz"))
    part = hw.get("part", "xcvu13p-flga2577-2-e")
    if not isinstance(part, str) or not part:
        c.fail("target.part", f"must be an FPGA part name, got {part!r}")
    clock_mhz = c.number(hw.get("clock_mhz", 240.0), "target.clock_mhz", positive=True)
    budget = top.get("budget", {}) or {}
    try:
        budget = load_budget({"budget": budget}, where=str(path))  # fail now, not after the long work
    except BudgetError as err:
        raise ConfigError(str(err)) from None

    from trigger.cluster import scale_settings

    scale = top.get("scale", {})
    scale_settings(scale, path)  # a bad scale: section fails now, not after training
    return LutConfig(path=path, name=name, seed=seed, source=source, data_path=data_path,
                     n_train=n_train, n_test=n_test, features=features, address_bits=address_bits,
                     order=[str(o) for o in order], model=model, target=target, output=fmt,
                     thresholds=thresholds, low_pt_max=low_pt_max, part=part, clock_mhz=clock_mhz,
                     budget=budget, raw=raw, memory=memory, read_latency=read_latency, scale=scale or {},
                     part_bits=part_bits)


def _features(c: _Checker, value, source: str) -> list[FeatureSpec]:
    if not isinstance(value, list) or not value:
        c.fail("features", "must be a non-empty list of features")
    out, seen = [], set()
    for i, item in enumerate(value):
        where = f"features[{i}]"
        item = c.mapping(item, where, ("name", "bits"), ("binning", "range", "raw_bits", "signed"))
        name = item["name"]
        if not isinstance(name, str) or not _IDENT.match(name):
            c.fail(f"{where}.name", f"must be an identifier, got {name!r}")
        where = f"features[{i}] ({name})"
        if name in seen:
            c.fail(where, "appears twice")
        seen.add(name)
        bits = c.integer(item["bits"], f"{where}.bits")
        if bits < 1:
            c.fail(f"{where}.bits", f"a feature needs at least 1 bit, got {bits}")
        binning = c.choice(item.get("binning", "quantile"), f"{where}.binning", BINNINGS)
        rng = item.get("range")
        if rng is not None:
            if binning == "quantile":
                c.fail(f"{where}.range", "quantile binning learns its edges from data; drop range")
            if not isinstance(rng, list) or len(rng) != 2:
                c.fail(f"{where}.range", f"must be [low, high], got {rng!r}")
            rng = (c.number(rng[0], f"{where}.range[0]"), c.number(rng[1], f"{where}.range[1]"))
            if rng[1] <= rng[0]:
                c.fail(f"{where}.range", f"high must exceed low, got {list(rng)}")
        if source == "muon":
            if name not in FEATURE_BY_NAME:
                c.fail(f"{where}.name", f"the muon simulation has no feature {name!r}; it has {', '.join(FEATURE_BY_NAME)}")
            spec = FEATURE_BY_NAME[name]
            raw_bits, signed = spec.bits, spec.signed
            for key, want in (("raw_bits", raw_bits), ("signed", signed)):
                if key in item and item[key] != want:
                    c.fail(f"{where}.{key}", f"the muon simulation delivers {key}={want}, got {item[key]!r}")
        else:
            for key in ("raw_bits", "signed"):
                if key not in item:
                    c.fail(f"{where}.{key}", "missing required field (source: file)")
            raw_bits = c.integer(item["raw_bits"], f"{where}.raw_bits", 1, 31)
            signed = item["signed"]
            if not isinstance(signed, bool):
                c.fail(f"{where}.signed", f"must be true or false, got {signed!r}")
        spec = FeatureSpec(name, bits, binning, rng, raw_bits, signed)
        values = spec.max_raw - spec.min_raw + 1
        if (1 << min(bits, 40)) > values:
            c.fail(f"{where}.bits", f"{bits} bits make {1 << bits} bins but the {raw_bits}-bit raw feature has only {values} values")
        out.append(spec)
    return out


def _model(c: _Checker, value) -> dict:
    if not isinstance(value, dict) or "type" not in value:
        c.fail("model.type", "missing required field (mlp or gbt)")
    kind = c.choice(value["type"], "model.type", MODELS)
    keys = MLP_KEYS if kind == "mlp" else GBT_KEYS
    c.mapping(value, "model", ("type",), keys[1:])
    model = {"type": kind, **MODEL_DEFAULTS[kind]}
    model.update({k: v for k, v in value.items() if k != "type"})
    if kind == "mlp":
        hidden = model["hidden"]
        if not isinstance(hidden, list) or not hidden:
            c.fail("model.hidden", f"must be a non-empty list of layer widths, got {hidden!r}")
        model["hidden"] = [c.integer(h, f"model.hidden[{i}]", 1, 1024) for i, h in enumerate(hidden)]
        model["epochs"] = c.integer(model["epochs"], "model.epochs", 1, 1000)
        model["batch_size"] = c.integer(model["batch_size"], "model.batch_size", 1, 1 << 20)
    else:
        model["max_iter"] = c.integer(model["max_iter"], "model.max_iter", 1, 100000)
        model["max_leaf_nodes"] = c.integer(model["max_leaf_nodes"], "model.max_leaf_nodes", 2, 65536)
        model["min_samples_leaf"] = c.integer(model["min_samples_leaf"], "model.min_samples_leaf", 1, 1 << 30)
    c.choice(model["target"], "model.target", TARGETS)
    model["learning_rate"] = c.number(model["learning_rate"], "model.learning_rate", positive=True)
    return model
