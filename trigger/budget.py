"""Budgets: the limits a firmware design must meet, read from YAML and validated.

Kept apart from the report so that configs can be checked at build time, before
any long work, with the same rules the report applies.
"""

from __future__ import annotations

import math
from pathlib import Path

from trigger.errors import ConfigError
from trigger.yaml_data import read_yaml

BUDGET_KEYS = {
    "latency_ns": "maximum latency in ns at the target clock",
    "latency_cycles": "maximum latency in clock cycles",
    "ii": "maximum initiation interval in cycles",
    "LUT": "maximum LUTs, a count or a percent of the part such as '5%'",
    "FF": "maximum flip-flops, a count or a percent",
    "DSP": "maximum DSP slices, a count or a percent",
    "BRAM": "maximum 36 Kb block RAMs, a count or a percent",
    "bit_exact": "true to require every verification mismatch count to be 0",
    "clock": "true (the default) to fail when the estimated critical path exceeds the target clock period",
    "proved": "true to require every op proved equal to its integer semantics for all inputs (trigger prove)",
}


class BudgetError(ConfigError):
    pass


def load_budget(source, where: str = "budget") -> dict:
    """A budget from a YAML file (top-level or under ``budget:``) or a dict, validated."""
    if isinstance(source, (str, Path)):
        where = str(source)
        data = read_yaml(source, BudgetError, missing=f"budget file {source} not found")
    else:
        data = source
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BudgetError(f"{where}: a budget is a mapping of limits, got {type(data).__name__}")
    if "budget" in data:
        data = data["budget"] or {}
        if not isinstance(data, dict):
            raise BudgetError(f"{where}: 'budget' must be a mapping of limits")
    budget = {}
    for key, value in data.items():
        if key not in BUDGET_KEYS:
            raise BudgetError(f"{where}: unknown budget key {key!r}; known keys: {', '.join(BUDGET_KEYS)}")
        budget[key] = _check_limit(where, key, value)
    return budget


def _check_limit(where, key, value):
    if key in ("bit_exact", "clock", "proved"):
        if not isinstance(value, bool):
            raise BudgetError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if isinstance(value, str) and key in ("LUT", "FF", "DSP", "BRAM"):
        text = value.strip()
        if not text.endswith("%"):
            raise BudgetError(f"{where}: {key} must be a count or a percent like '5%', got {value!r}")
        try:
            pct = float(text[:-1])
        except ValueError:
            raise BudgetError(f"{where}: {key} percent {value!r} is not a number") from None
        if not 0 < pct <= 100:
            raise BudgetError(f"{where}: {key} percent must be in (0, 100], got {value!r}")
        return {"percent": pct}
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BudgetError(f"{where}: {key} must be a number, got {value!r}")
    if value < 0 or (key == "ii" and value < 1) or (key in ("latency_cycles", "ii") and value != int(value)):
        raise BudgetError(f"{where}: impossible {key} limit {value!r}")
    return value
