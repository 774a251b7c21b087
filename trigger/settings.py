"""A ``trigger.yml``: read as data and checked field by field before any work starts.

Every design kind reads its file here (``read_yaml``: no code, no duplicate keys, no aliases that expand
beyond ``MAX_YAML_VALUES`` values) and its common sections here (``common_settings``: target, rtl, verify,
budget, scale), with one default part and one default clock. A frontend checks its own sections with the same
``Checker``, so every bad value is one line naming the file and the field (a ConfigError: exit 2).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from trigger.cluster import SCALE_KEYS, check_address
from trigger.errors import ConfigError
from trigger.parts import DEFAULT_PART
from trigger.yaml_data import MAX_YAML_VALUES, _short, load_yaml, read_yaml  # noqa: F401  (read here by every kind)

DEFAULT_CLOCK_NS = 5.0  # 200 MHz for every design kind (the examples set their clock in trigger.yml)
DEFAULT_PIPELINE = "auto"  # registers wherever a stage's estimated delay would exceed the clock period
DEFAULT_VECTORS = 10_000  # stored test vectors (a kind may store another number by default)
MAX_VECTORS = 10_000_000
TARGET_KEYS = ("part", "clock_mhz", "clock_period_ns")
RTL_KEYS = ("pipeline", "multiplier", "ii", "layer_ii")
VERIFY_KEYS = ("vectors",)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ------------------------------------------------------------------ checking values
class Checker:
    """Typed, range-checked fields of one file; every failure is a ConfigError ``<file>: <field>: <what>``."""

    def __init__(self, path):
        self.path = path

    def fail(self, where: str, msg: str):
        raise ConfigError(f"{self.path}: {where}: {msg}")

    def mapping(self, value, where: str, required: tuple = (), optional: tuple = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, got {_short(value)}")
        for key in value:
            if key not in required and key not in optional:
                self.fail(f"{where}.{key}" if where else str(key),
                          f"unknown key; expected one of {', '.join(required + optional)}")
        for key in required:
            if key not in value:
                self.fail(f"{where}.{key}" if where else str(key), "missing required field")
        return value

    def section(self, config: dict, key: str, allowed: tuple) -> dict:
        """An optional section of the top level (absent or empty: {})."""
        value = config.get(key)
        return {} if value is None else self.mapping(value, key, (), allowed)

    def integer(self, value, where: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and math.isnan(value):
                self.fail(where, "is NaN")
            self.fail(where, f"must be an integer, got {_short(value)}")
        if lo is not None and value < lo:
            self.fail(where, f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            self.fail(where, f"must be <= {hi}, got {value}")
        return value

    def number(self, value, where: str, positive: bool = False, hi: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"must be a number, got {_short(value)}")
        if not math.isfinite(value):
            self.fail(where, f"must be finite, got {value!r}")
        if positive and value <= 0:
            self.fail(where, f"must be positive, got {value!r}")
        if hi is not None and value > hi:
            self.fail(where, f"must be <= {hi:g}, got {value!r}")
        return float(value)

    def choice(self, value, where: str, choices: tuple):
        if isinstance(value, bool) or value not in choices:
            self.fail(where, f"must be one of {', '.join(map(str, choices))}, got {_short(value)}")
        return value

    def boolean(self, value, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"must be true or false, got {_short(value)}")
        return value

    def text(self, value, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"must be a non-empty string, got {_short(value)}")
        return value

    def identifier(self, value, where: str) -> str:
        if not isinstance(value, str) or not IDENTIFIER.match(value):
            self.fail(where, f"must be a Verilog/C identifier (letters, digits, _), got {_short(value)}")
        return value

    def integers(self, value, where: str, lo: int, hi: int, length: int | None = None) -> list[int]:
        """A non-empty list of integers in [lo, hi] (of ``length`` items when given)."""
        if not isinstance(value, list) or not value or (length is not None and len(value) != length):
            self.fail(where, f"must be a list of {length or 'one or more'} integers, got {_short(value)}")
        return [self.integer(v, f"{where}[{i}]", lo, hi) for i, v in enumerate(value)]


# ------------------------------------------------------------------ the common sections
@dataclass(frozen=True)
class CommonSettings:
    """target, rtl, verify, budget and scale of a trigger.yml, with the command line's values over them."""

    part: str = DEFAULT_PART
    clock_period_ns: float = DEFAULT_CLOCK_NS
    pipeline: object = DEFAULT_PIPELINE  # 'auto', 'layer' or N adder levels
    multiplier: object = "shift_add"  # 'shift_add', 'dsp' or N (bits above which `*` is used)
    ii: object = None  # N or 'auto' (None: 1); trigger.ir.ii.resolve_ii checks it against the model
    layer_ii: dict = field(default_factory=dict)
    vectors: int = DEFAULT_VECTORS
    budget: dict = field(default_factory=dict)  # as written in trigger.yml (checked by trigger.budget)
    scale: dict = field(default_factory=dict)  # scheduler / workers (checked: scale_section)


def pipeline_setting(value, where: str):
    """rtl.pipeline / --pipeline: 'layer', 'auto' or a positive number of adder levels."""
    if value in ("layer", "auto"):
        return value
    if not isinstance(value, bool) and str(value).isdigit() and int(str(value)) >= 1:
        return int(str(value))
    raise ConfigError(f"{where}: must be 'layer', 'auto' or a positive number of adder levels, got {_short(value)}")


def multiplier_setting(value, where: str):
    """rtl.multiplier: 'shift_add', 'dsp' or N (constants of more than N bits use `*`)."""
    if value in ("shift_add", "dsp"):
        return value
    if not isinstance(value, bool) and str(value).isdigit() and int(str(value)) >= 1:
        return int(str(value))
    raise ConfigError(f"{where}: must be 'shift_add', 'dsp' or a number of bits, got {_short(value)}")


def clock_setting(target: dict, c: Checker) -> float | None:
    """The clock period (ns) of a target section: clock_mhz or clock_period_ns (not both); None when unset."""
    if "clock_mhz" in target and "clock_period_ns" in target:
        c.fail("target", "give clock_mhz or clock_period_ns, not both")
    if "clock_mhz" in target:
        return 1000.0 / c.number(target["clock_mhz"], "target.clock_mhz", positive=True, hi=5000)
    if "clock_period_ns" in target:
        return c.number(target["clock_period_ns"], "target.clock_period_ns", positive=True, hi=1e6)
    return None


def scale_section(value, where) -> dict:
    """The ``scale:`` mapping (a Dask cluster for a table's long work): scheduler tcp://host:port, workers N."""
    c = Checker(where)
    section = {} if value is None else c.mapping(value, "scale", (), SCALE_KEYS)
    if section.get("scheduler") is not None:
        check_address(section["scheduler"], f"{where}: scale.scheduler")
    if section.get("workers") is not None:
        c.integer(section["workers"], "scale.workers", 1, 4096)
    return dict(section)


def common_settings(config: dict, path, options=None, default_vectors: int = DEFAULT_VECTORS,
                    sections: tuple = ("target", "rtl", "verify", "budget")) -> CommonSettings:
    """The common sections of ``config`` (a trigger.yml read from ``path``; ``{}`` for a model file) checked, with
    ``options`` (trigger.frontends.BuildOptions: the command line) over them. ``sections``: those this kind has."""
    from trigger.budget import BudgetError, load_budget
    from trigger.ir.ii import check_ii_settings, parse_ii

    c = Checker(path)
    for name in ("target", "rtl", "verify", "budget", "scale"):
        if name in config and name not in sections:
            c.fail(name, "this kind of design has no such section")
    target = c.section(config, "target", TARGET_KEYS)
    rtl = c.section(config, "rtl", RTL_KEYS)
    verify = c.section(config, "verify", VERIFY_KEYS)
    part = c.text(target["part"], "target.part") if "part" in target else DEFAULT_PART
    clock_ns = clock_setting(target, c) or DEFAULT_CLOCK_NS
    pipeline = pipeline_setting(rtl.get("pipeline", DEFAULT_PIPELINE), f"{path}: rtl.pipeline")
    multiplier = multiplier_setting(rtl.get("multiplier", "shift_add"), f"{path}: rtl.multiplier")
    check_ii_settings(rtl, f"{path}: rtl")
    ii, layer_ii = rtl.get("ii"), dict(rtl.get("layer_ii") or {})
    vectors = c.integer(verify.get("vectors", default_vectors), "verify.vectors", 1, MAX_VECTORS)
    budget = dict(config.get("budget") or {})  # as written: the manifest keeps it, `trigger report` reads it again
    try:
        load_budget({"budget": budget}, where=str(path))
    except BudgetError as err:
        raise ConfigError(str(err)) from None
    scale = scale_section(config.get("scale"), path) if "scale" in sections else {}
    if options is not None:  # the command line (or the Python API's keywords) over the file
        if options.part is not None:
            part = Checker("--part").text(options.part, "part")
        if options.clock_period_ns is not None:
            clock_ns = Checker("--clock").number(options.clock_period_ns, "clock period (ns)", positive=True, hi=1e6)
        if options.pipeline is not None:
            pipeline = pipeline_setting(options.pipeline, "--pipeline")
        if options.ii is not None:
            ii = parse_ii(options.ii, "--ii")
        if options.vectors is not None:
            vectors = Checker("--vectors").integer(options.vectors, "vectors", 1, MAX_VECTORS)
    return CommonSettings(part=part, clock_period_ns=clock_ns, pipeline=pipeline, multiplier=multiplier, ii=ii,
                          layer_ii=layer_ii, vectors=vectors, budget=budget, scale=scale)


# ------------------------------------------------------------------ the output folder
def check_output_folder(out) -> Path:
    """The resolved output folder of a build, refused before any work when it cannot be written: a file in its
    path, or a folder this user may not write into."""
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"-o {out}: {existing} is a file, not a folder")
    probe = existing if existing != out else out.parent  # the bundle is staged beside the output, then renamed
    try:  # a real write (root passes every permission check, yet not on a read-only filesystem)
        os.rmdir(tempfile.mkdtemp(prefix=".trigger-write-check-", dir=probe))
    except OSError as err:
        raise ConfigError(f"-o {out}: cannot write in {probe} ({err.strerror or err.__class__.__name__})") from None
    return out
