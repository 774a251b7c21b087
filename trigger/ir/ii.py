"""The ``ii`` setting: a new event every II clocks (resource sharing; trigger/backends/rtl/serial.py).

Read by the frontends (hls4ml's ReuseFactor per layer) and by the bundle writer (the RTL), so it
lives before both. Each op says how many cycles its RTL can share its arithmetic over
(``Op.max_ii``); the settings are checked against that here, with one-line ConfigErrors.
"""

from __future__ import annotations

from trigger.errors import ConfigError

AUTO_EVENT_MHZ = 40  # LHC bunch crossings: II = floor(clock / 40 MHz) when ii is 'auto'


def parse_ii(value, where: str = "rtl.ii", allow_auto: bool = True):
    """An ii setting: a positive whole number, or 'auto' (None -> 1). One-line ConfigError otherwise."""
    if value is None:
        return 1
    if allow_auto and isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, bool):
        raise ConfigError(f"{where}: ii must be a positive whole number{' or auto' if allow_auto else ''}, "
                          f"got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: ii must be a positive whole number{' or auto' if allow_auto else ''}, "
                          f"got {value!r}")
    return value


def auto_ii(clock_period_ns: float, budget: dict | None = None) -> int:
    """floor(clock / 40 MHz), at least 1, and no more than the budget's ``ii`` when it has one."""
    mhz = 1000.0 / clock_period_ns  # 240 MHz is a period of 4.1666... ns, often written 4.1667
    ii = max(1, int(mhz / AUTO_EVENT_MHZ + 1e-3))
    limit = (budget or {}).get("ii")
    if isinstance(limit, (int, float)) and not isinstance(limit, bool):
        ii = max(1, min(ii, int(limit)))
    return ii


def check_ii_settings(rtl: dict | None, where: str = "rtl") -> None:
    """The ``rtl.ii`` / ``rtl.layer_ii`` values of a trigger.yml, checked before any long work (the model's
    own limits are checked by ``resolve_ii`` once it exists)."""
    rtl = rtl or {}
    parse_ii(rtl.get("ii"), f"{where}.ii")
    layers = rtl.get("layer_ii") or {}
    if not isinstance(layers, dict):
        raise ConfigError(f"{where}.layer_ii must be a mapping of layer name to ii, got {layers!r}")
    for name, value in layers.items():
        parse_ii(value, f"{where}.layer_ii.{name}", allow_auto=False)


def resolve_ii(model, setting=None, layer_settings=None, clock_period_ns: float = 5.0, budget=None,
               where: str = "rtl") -> tuple[int, dict[str, int]]:
    """(the model's II, each op's own II) from the settings.

    The model's II is the event spacing; an op shares its arithmetic over min(II, what it can use)
    cycles unless ``layer_settings`` (op name -> N) sets a smaller N for it. 'auto' is
    ``auto_ii`` limited to what the model can use; a number larger than any op can use, or a
    layer's N larger than the model's II or than that op can use, is a ConfigError."""
    setting = parse_ii(setting, f"{where}.ii")
    usable = {op.name: op.max_ii() for op in model.ops}
    most = max(usable.values(), default=1)
    if setting == "auto":
        ii = min(auto_ii(clock_period_ns, budget), most)
    else:
        ii = setting
        if ii > most:
            shared = [f"{n} up to {k}" for n, k in usable.items() if k > 1]
            raise ConfigError(f"{where}.ii: {ii} is larger than {model.name!r} can use (at most {most}: "
                              + (", ".join(shared) if shared else "no op shares its arithmetic") + ")")
    layer_settings = layer_settings or {}
    if not isinstance(layer_settings, dict):
        raise ConfigError(f"{where}.layer_ii must be a mapping of layer name to ii, got {layer_settings!r}")
    unknown = sorted(set(layer_settings) - set(usable))
    if unknown:
        raise ConfigError(f"{where}.layer_ii: no layer {unknown[0]!r} (layers: {', '.join(usable)})")
    per_op = {}
    for name, can in usable.items():
        if name in layer_settings:
            own = parse_ii(layer_settings[name], f"{where}.layer_ii.{name}", allow_auto=False)
            if own > ii:
                raise ConfigError(f"{where}.layer_ii.{name}: {own} is larger than the model's ii {ii} "
                                  "(a layer cannot take longer than the event spacing)")
            if own > can:
                raise ConfigError(f"{where}.layer_ii.{name}: {own} is larger than this layer can use (at most {can})")
            per_op[name] = own
        else:
            per_op[name] = min(ii, can)
    return ii, per_op
