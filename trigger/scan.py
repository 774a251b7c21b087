"""`trigger scan`: a grid of build settings; every point built, scored and synthesised as Dask tasks.

A point is one choice of settings (bit widths, post-training precision, pipeline depth, ...). Points that
differ only in RTL settings (``pipeline``, ``rtl.multiplier``) share one design: one training and one hls4ml
conversion, done by one build task that writes a bundle per point. Each bundle is then synthesised by its own
task (Yosys dominates), so the cluster stays busy even when every point shares a design. A point that fails
records why; the others go on.

Results are sorted by point and hold no times or paths outside the scan folder, so scan.json, scan.md,
scan.html and pareto.png are the same bytes whatever the number of workers; times go to timing.json. On a
real cluster the output folder must be on a filesystem every worker sees (the bundles are written there).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import itertools
import json
import re
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from trigger.errors import ConfigError
from trigger.yaml_data import read_yaml

# Settings a grid may set besides the keys of the model's trigger.yml.
# RTL-only settings: the design is the same, only the Verilog differs (Design attribute they set).
RTL_SETTINGS = {"pipeline": "pipeline", "rtl.pipeline": "pipeline", "rtl.multiplier": "rtl_multiplier"}
# Build options every frontend honours (BuildOptions field they set); ii: a new event every N clocks
# (trigger.ir.ii; for a network it also sets hls4ml's reuse factors, so it is a design setting).
OPTION_SETTINGS = {"precision": "precision", "clock_ns": "clock_period_ns", "part": "part", "ii": "ii"}
SCAN_FILES = ("scan.json", "scan.md", "scan.html", "pareto.png", "timing.json")
DEFAULT_VECTORS = 2000  # stored per point: the source-model agreement is measured on them
DEFAULT_KEEP = 0.01  # recommended point: physics within 1 % (relative) of the best point in budget
# what a point keeps of trigger.report.synthesis_figures (scan.json stays small: no per-module figures)
SCAN_FIGURES = ("LUT", "FF", "CARRY", "DSP", "LUTRAM", "BRAM", "percent", "logic_levels", "critical_path_ns",
                "fits_clock_estimate")
PCT_ALIASES = {"lut_pct": "LUT", "ff_pct": "FF", "dsp_pct": "DSP", "bram_pct": "BRAM"}


@dataclass
class Point:
    id: str
    settings: dict  # grid key -> value, in grid order

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.settings.items())


@dataclass
class Grid:
    source: Path
    keys: dict  # key -> list of values, in the order given
    config: dict | None = None  # the trigger.yml mapping (None for a model file)
    config_path: Path | None = None
    points: list = field(default_factory=list)


# ------------------------------------------------------------------ the grid
def split_values(text: str) -> list[str]:
    """``v1,v2,...``; commas inside <> belong to a value (``fixed<8,3>,fixed<16,6>`` is two values)."""
    values, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += ch
    values.append(current)
    return [v.strip() for v in values]


def scalar(text: str):
    """A grid value as YAML reads it (6 -> int, layer -> str), so values match what trigger.yml would hold."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, (dict, list)) or value is None else value


def parse_set(items) -> dict:
    """``--set key=v1,v2`` options -> {key: [values]}."""
    grid = {}
    for item in items or []:
        key, eq, values = item.partition("=")
        key = key.strip()
        if not eq or not key or not values.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=V1,V2,... (e.g. --set rtl.pipeline=1,2,3)")
        parts = split_values(values)
        if any(not p for p in parts):
            raise ConfigError(f"--set {item!r}: an empty value in the list")
        grid[key] = [scalar(p) for p in parts]
    return grid


def load_grid_file(path) -> dict:
    """A grid YAML: a mapping of setting -> list of values (a single value is a list of one)."""
    path = Path(path)
    data = read_yaml(path, missing=f"grid file {path} not found")
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: a grid is a mapping of setting -> list of values")
    grid = {}
    for key, values in data.items():
        values = values if isinstance(values, list) else [values]
        if not values or any(isinstance(v, (dict, list)) or v is None for v in values):
            raise ConfigError(f"{path}: {key}: expected a list of plain values, got {values!r}")
        grid[str(key)] = values
    return grid


def _config_slot(config: dict, key: str):
    """(container, index) of a dotted trigger.yml key; list items are named by their ``name`` field
    (``features.dphi12.bits``). None when the key is not in the config."""
    node, parts = config, key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict) and part in node:
            slot = (node, part)
        elif isinstance(node, list):
            named = [j for j, item in enumerate(node) if isinstance(item, dict) and str(item.get("name")) == part]
            if not named:
                return None
            slot = (node, named[0])
        else:
            return None
        if last:
            return None if isinstance(slot[0][slot[1]], (dict, list)) else slot
        node = slot[0][slot[1]]
    return None


def plan(source, keys: dict, point_id=None) -> Grid:
    """The points of a grid over ``source``; an unknown setting is a one-line ConfigError naming it.
    ``point_id``: settings -> the point's id (default p00, p01, ... in grid order)."""
    from trigger.frontends import read_config

    source = Path(source)
    if not source.exists():
        raise ConfigError(f"{source} not found")
    if not keys:
        raise ConfigError("an empty grid: give --grid grid.yml or --set KEY=V1,V2 (see `trigger scan --help`)")
    grid = Grid(source.resolve(), dict(keys))
    if source.is_dir() or source.suffix in (".yml", ".yaml"):
        grid.config, grid.config_path = read_config(grid.source)
    for key, values in keys.items():
        if key in RTL_SETTINGS or key in OPTION_SETTINGS:
            continue
        where = grid.config_path or source
        if grid.config is None:
            raise ConfigError(f"grid key {key!r}: a model file has no trigger.yml settings; it can scan "
                              f"{', '.join(sorted({*RTL_SETTINGS, *OPTION_SETTINGS}))}")
        if _config_slot(grid.config, key) is None:
            raise ConfigError(f"grid key {key!r} is not a setting of {where} (give a dotted key that the file "
                              f"sets, e.g. quantization.weight_bits, or one of "
                              f"{', '.join(sorted({*RTL_SETTINGS, *OPTION_SETTINGS}))})")
    if "pipeline" in keys and "rtl.pipeline" in keys:
        raise ConfigError("grid keys 'pipeline' and 'rtl.pipeline' are the same setting: give one")
    names = list(keys)
    combos = list(itertools.product(*(keys[k] for k in names)))
    width = max(2, len(str(len(combos) - 1)))
    settings = [dict(zip(names, combo)) for combo in combos]
    ids = [point_id(s) if point_id else f"p{i:0{width}d}" for i, s in enumerate(settings)]
    grid.points = [Point(pid, s) for pid, s in zip(ids, settings)]
    return grid


def design_groups(grid: Grid) -> list[tuple[dict, list[Point]]]:
    """Points grouped by their design settings (everything but RTL-only settings), in point order."""
    groups: dict[str, tuple[dict, list]] = {}
    for point in grid.points:
        design = {k: v for k, v in point.settings.items() if k not in RTL_SETTINGS}
        tag = json.dumps(design, sort_keys=True, default=str)
        groups.setdefault(tag, (design, []))[1].append(point)
    return list(groups.values())


# ------------------------------------------------------------------ work done on the workers
def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {'; '.join(lines) or 'no message'}"


def _lut_address_bits(config: dict, changed: set) -> None:
    """A table's address is its features' bits: keep ``address.bits`` their sum when a grid changes them."""
    address = config.get("address")
    if isinstance(address, dict) and "address.bits" not in changed and any(k.startswith("features.") for k in changed):
        address["bits"] = sum(int(f.get("bits", 0)) for f in config.get("features") or [] if isinstance(f, dict))


DERIVED = {"lut": _lut_address_bits}  # kind -> settings that follow from the scanned ones


def load_point_design(source: Path, config: dict | None, config_path: Path | None, settings: dict,
                      vectors: int):
    """The Design of ``source`` with the design settings of a point applied."""
    from trigger.frontends import FRONTENDS, BuildOptions, load_design

    options = BuildOptions(vectors=vectors, **{OPTION_SETTINGS[k]: v for k, v in settings.items()
                                               if k in OPTION_SETTINGS})
    if config is None:
        return load_design(source, options)
    config = copy.deepcopy(config)
    changed = {k for k in settings if k not in OPTION_SETTINGS}
    for key in changed:
        holder, index = _config_slot(config, key)
        holder[index] = settings[key]
    if config.get("kind") in DERIVED:
        DERIVED[config["kind"]](config, changed)
    kind = config.get("kind")
    if kind not in FRONTENDS:
        raise ConfigError(f"{config_path}: field 'kind' must be one of {', '.join(sorted(FRONTENDS))}, got {kind!r}")
    module, _, func = FRONTENDS[kind].partition(":")
    return getattr(importlib.import_module(module), func)(config, config_path, options)


def _cpu_seconds() -> float:
    """CPU seconds of this worker process and the tools it ran (Yosys)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_mb(step: str) -> dict:
    """Peak resident memory so far of this worker process and of its largest tool run (Yosys), in MB."""
    return {f"{step}_worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            f"{step}_tool_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def build_group(source: str, config, config_path, design_settings: dict, members: list, out_root: str,
                vectors: int, bundles: str = "points") -> list[dict]:
    """Load one design and write one bundle per member point ``(id, settings)`` into ``out_root/bundles/id``;
    never raises: a failure becomes the ``error`` of the points it concerns."""
    from trigger.bundle import build_bundle

    t0, c0 = time.perf_counter(), _cpu_seconds()
    records = [{"id": pid, "settings": settings, "status": "failed", "error": None, "timing": {},
                "bundle": _bundle_path(bundles, pid)} for pid, settings in members]
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # training progress bars: the scan shows its own
            design = load_point_design(Path(source), config, Path(config_path) if config_path else None,
                                       design_settings, vectors)
    except Exception as err:  # noqa: BLE001  (any failure of this point is its result)
        for rec in records:
            rec["error"] = f"design: {_one_line(err)}"
        return records
    design_s, design_cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    for n, rec in enumerate(records):
        t1, c1 = time.perf_counter(), _cpu_seconds()
        rtl = {RTL_SETTINGS[k]: v for k, v in rec["settings"].items() if k in RTL_SETTINGS}
        bundle = Path(out_root) / rec["bundle"]
        try:
            if n and getattr(design, "bundle_dirs", None):  # the first bundle took the design's folders
                design = load_point_design(Path(source), config, Path(config_path) if config_path else None,
                                           design_settings, vectors)
            shutil.rmtree(bundle, ignore_errors=True)
            build_bundle(source, bundle, progress=False, design=replace(design, **rtl))
            rec.update(point_figures(bundle))
            rec["status"] = "built"
        except Exception as err:  # noqa: BLE001
            rec["error"] = f"build: {_one_line(err)}"
        rec["timing"] = {"design_s": round(design_s, 2), "design_cpu_s": round(design_cpu, 2),
                         "design_shared_by": len(records), "bundle_s": round(time.perf_counter() - t1, 2),
                         "bundle_cpu_s": round(_cpu_seconds() - c1, 2), **_peak_rss_mb("build")}
    return records


def _bundle_path(bundles: str, pid: str) -> str:
    """Where a point's bundle goes, relative to the scan folder."""
    return f"{bundles}/{pid}" if bundles else pid


def verify_point(record: dict, out_root: str, simulator: str) -> dict:
    """A built point verified three ways (emulator, HLS C simulation, RTL with ``simulator``); never raises."""
    from trigger.verify import verify_bundle

    record = dict(record)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            verified = verify_bundle(Path(out_root) / record["bundle"], simulator=simulator, progress=False)
        record["verification"] = {"simulator": simulator, "vectors": verified["vectors"],
                                  "mismatches": verified["mismatches"], "bit_exact": bool(verified["pass"]),
                                  "latency_cycles": verified["latency_cycles"], "ii_measured": verified["ii"]}
        record["status"] = "verified"
    except Exception as err:  # noqa: BLE001
        record["status"], record["error"] = "failed", f"verify: {_one_line(err)}"
    record["timing"] = {**record.get("timing", {}), "verify_s": round(time.perf_counter() - t0, 2),
                        "verify_cpu_s": round(_cpu_seconds() - c0, 2)}
    return record


def synth_point(record: dict, out_root: str) -> dict:
    """Yosys resources and logic depth of a built point (never raises)."""
    from trigger.bundle import load_manifest
    from trigger.report import synthesis_figures

    record = dict(record)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    bundle = Path(out_root) / record["bundle"]
    try:
        # one Yosys at a time per task: the scan's parallelism is across points
        figures = synthesis_figures(bundle, load_manifest(bundle), jobs=1)
        resources = {k: figures[k] for k in SCAN_FIGURES if k in figures}
        record["resources"] = resources
        record["status"] = "ok"
    except Exception as err:  # noqa: BLE001
        record["status"], record["error"] = "failed", f"synthesis: {_one_line(err)}"
    record["timing"] = {**record.get("timing", {}), "synth_s": round(time.perf_counter() - t0, 2),
                        "synth_cpu_s": round(_cpu_seconds() - c0, 2), **_peak_rss_mb("synth")}
    return record


# ------------------------------------------------------------------ physics figures of a bundle
def point_figures(bundle: Path) -> dict:
    """Part, latency and the physics figure that `trigger report` shows for this bundle."""
    from trigger.bundle import load_manifest

    from trigger.report import bundle_target

    manifest = load_manifest(bundle)
    part, clock = bundle_target(manifest)
    cycles = int(manifest["latency_cycles"])
    return {"part": part, "clock_period_ns": clock,
            "latency": {"cycles": cycles, "ns": round(cycles * clock, 3), "ii": manifest.get("ii", 1)},
            "physics": physics_figure(bundle, manifest)}


def _from_training(bundle: Path, manifest: dict):
    """A classifier trained in the flow: the firmware's accuracy on the test sample (reports/training.json)."""
    path = bundle / "reports" / "training.json"
    if not path.exists():
        return None
    scores = json.loads(path.read_text())
    if "firmware_accuracy" not in scores:
        return None
    return {"metric": "accuracy", "value": round(float(scores["firmware_accuracy"]), 6), "higher_is_better": True,
            "detail": f"firmware accuracy on the {scores.get('test_samples')} test events"}


def _from_physics(bundle: Path, manifest: dict):
    """A pT regressor (table, trees): the firmware's resolution on the test muons (reports/physics.json)."""
    path = bundle / "reports" / "physics.json"
    if not path.exists():
        return None
    firmware = (json.loads(path.read_text()).get("resolution") or {}).get("firmware") or {}
    if firmware.get("overall_sigma_68") is None:
        return None
    return {"metric": "resolution_sigma68", "value": round(float(firmware["overall_sigma_68"]), 6),
            "higher_is_better": False, "detail": "firmware pT resolution (68 % half-width) on the test muons"}


def _from_source_model(bundle: Path, manifest: dict):
    """Any other model: agreement with the user's own model on the stored vectors (the fourth witness)."""
    from trigger.ir.model import FirmwareModel
    from trigger.source_model import compare

    section = manifest.get("source_model")
    if not section:
        return None
    model = FirmwareModel.load(bundle)
    vectors = manifest["vectors"]
    result = compare(section, np.load(bundle / section["outputs"]), np.load(bundle / vectors["inputs"]),
                     np.load(bundle / vectors["outputs"]), model)
    if "argmax_agreement" in result:
        return {"metric": "argmax_agreement", "value": round(result["argmax_agreement"], 6), "higher_is_better": True,
                "detail": f"firmware class == {section['framework']} model class on {result['vectors']} vectors"}
    source = np.load(bundle / section["outputs"])
    firmware = model.output.to_float(np.load(bundle / vectors["outputs"]))
    rms = float(np.sqrt(np.mean((source - firmware) ** 2)))
    return {"metric": "rms_deviation", "value": round(rms, 9), "higher_is_better": False,
            "detail": f"RMS of firmware - {section['framework']} model on {result['vectors']} vectors"}


PHYSICS_FIGURES = (_from_training, _from_physics, _from_source_model)  # first that applies


def physics_figure(bundle: Path, manifest: dict) -> dict | None:
    for figure in PHYSICS_FIGURES:
        found = figure(bundle, manifest)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------ judging the points
def parse_budget(text, default: dict | None = None) -> dict:
    """``--budget``: a YAML file, or ``key=value,...`` (``latency_ns=100,lut_pct=5`` or ``LUT=5%``).
    Checked by trigger.budget; ``bit_exact`` is left out (a scan does not verify)."""
    from trigger.budget import load_budget

    if text is None:
        budget = load_budget(default or {})
    elif Path(text).suffix in (".yml", ".yaml") or Path(text).exists():
        budget = load_budget(text)
    else:
        raw = {}
        for item in split_values(text):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq:
                raise ConfigError(f"--budget {text!r}: expected KEY=VALUE,... (e.g. latency_ns=100,lut_pct=5)")
            if key.lower() in PCT_ALIASES:
                raw[PCT_ALIASES[key.lower()]] = f"{value.strip()}%"
            else:
                raw[key] = scalar(value.strip())
        budget = load_budget(raw, where="--budget")
    return {k: v for k, v in budget.items() if k != "bit_exact"}


def judge_point(record: dict, budget: dict) -> dict:
    from trigger.report import judge

    report = {"latency": record["latency"], "resources": record["resources"], "bit_exact": True}
    return judge(report, budget, record["part"])


def pareto_front(records: list[dict]) -> list[str]:
    """Ids of the points no other point beats on LUTs, latency and the physics figure at once, among the
    points whose logic depth fits the clock (the latency of one that does not is not a real one)."""
    def key(rec):
        phys = rec.get("physics")
        value = 0.0 if phys is None else (-phys["value"] if phys["higher_is_better"] else phys["value"])
        return (rec["resources"]["LUT"], rec["latency"]["ns"], value)

    keys = {rec["id"]: key(rec) for rec in records if rec["resources"]["fits_clock_estimate"]}
    front = []
    for pid, k in keys.items():
        dominated = any(all(o <= s for o, s in zip(other, k)) and other != k for oid, other in keys.items() if oid != pid)
        if not dominated:
            front.append(pid)
    return sorted(front)


def recommend(records: list[dict], keep: float) -> tuple[str | None, str]:
    """Among points within budget whose logic depth fits the clock: the fewest LUTs (then lowest latency) whose physics figure is within
    ``keep`` (relative) of the best such point. Returns (id, why)."""
    fits = [r for r in records if r["budget"]["pass"] and r["resources"]["fits_clock_estimate"]]
    if not fits:
        return None, "no point meets the budget with a logic depth that fits the clock"
    with_phys = [r for r in fits if r.get("physics")]
    if with_phys:
        better = with_phys[0]["physics"]["higher_is_better"]
        values = [r["physics"]["value"] for r in with_phys]
        best = max(values) if better else min(values)
        limit = best - abs(best) * keep if better else best + abs(best) * keep
        keeps = [r for r in with_phys if (r["physics"]["value"] >= limit if better else r["physics"]["value"] <= limit)]
        pick = min(keeps, key=lambda r: (r["resources"]["LUT"], r["latency"]["ns"], r["id"]))
        metric = with_phys[0]["physics"]["metric"]
        return pick["id"], (f"the fewest LUTs among the {len(keeps)} point(s) within budget (and logic depth within the "
                            f"clock) whose {metric} is within {100 * keep:g} % of the best of those ({best:g})")
    pick = min(fits, key=lambda r: (r["resources"]["LUT"], r["latency"]["ns"], r["id"]))
    return pick["id"], "the fewest LUTs within budget (no physics figure for this model)"


# ------------------------------------------------------------------ outputs
def _plot(result: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in result["points"] if r["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(8, 5))
    if ok:
        phys = [r.get("physics") for r in ok]
        has_phys = all(p is not None for p in phys)
        x = [r["resources"]["LUT"] for r in ok]
        y = [p["value"] for p in phys] if has_phys else [r["latency"]["ns"] for r in ok]
        lat = [r["latency"]["ns"] for r in ok]
        points = ax.scatter(x, y, c=lat, cmap="viridis", s=45, zorder=3, edgecolors="k", linewidths=0.4)
        fig.colorbar(points, ax=ax, label="latency (ns)")
        front = set(result["pareto"])
        fx = sorted((xi, yi) for xi, yi, r in zip(x, y, ok) if r["id"] in front)
        if fx:  # circled: no other point has fewer LUTs, lower latency and a better figure at once
            ax.scatter([p[0] for p in fx], [p[1] for p in fx], s=170, facecolors="none", edgecolors="#cc3311",
                       linewidths=1.5, zorder=4, label="Pareto front (LUT, latency, physics)")
        for xi, yi, r in zip(x, y, ok):
            ax.annotate(r["id"], (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=7)
        rec = result["recommended"]["id"]
        if rec:
            r = next(r for r in ok if r["id"] == rec)
            ax.scatter([r["resources"]["LUT"]], [r["physics"]["value"] if has_phys else r["latency"]["ns"]],
                       marker="*", s=380, color="#ee7733", edgecolors="k", zorder=5, label=f"recommended: {rec}")
        slow = [(xi, yi) for xi, yi, r in zip(x, y, ok) if not r["resources"]["fits_clock_estimate"]]
        if slow:
            ax.scatter([p[0] for p in slow], [p[1] for p in slow], marker="x", s=90, color="#bb0000", zorder=4,
                       label="logic depth over the clock")
        lut_limit = result["budget"].get("LUT")
        if isinstance(lut_limit, dict) and result.get("part_LUT"):
            limit, text = result["part_LUT"] * lut_limit["percent"] / 100, f"LUT budget {lut_limit['percent']:g} %"
        else:
            limit, text = (lut_limit, f"LUT budget {lut_limit}") if isinstance(lut_limit, (int, float)) else (None, "")
        if limit is not None and limit <= 1.5 * max(x):
            ax.axvline(limit, color="grey", ls=":", label=text)
        elif limit is not None:
            ax.text(0.99, 0.01, f"{text} = {limit:,.0f} LUTs (beyond the axis)", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8, color="grey")
        ax.set_ylabel(phys[0]["metric"] if has_phys else "latency (ns)")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("LUTs (Yosys)")
    ax.set_title(f"{result['name']}: {len(ok)} of {len(result['points'])} points")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def table_rows(result: dict) -> list[dict]:
    """One row per point for scan.md / scan.html."""
    rows = []
    for r in result["points"]:
        row = {"id": r["id"], "settings": Point(r["id"], r["settings"]).label, "status": r["status"],
               "error": r.get("error") or "", "mark": ""}
        if r["status"] == "ok":
            res, pct = r["resources"], r["resources"].get("percent", {})
            phys = r.get("physics")
            row.update({"physics": "-" if phys is None else f"{phys['value']:.6g}",
                        "LUT": f"{res['LUT']} ({pct.get('LUT', 0):.3g} %)" if "LUT" in pct else str(res["LUT"]),
                        "FF": str(res["FF"]), "DSP": str(res.get("DSP", 0)),
                        "latency": f"{r['latency']['cycles']} cyc = {r['latency']['ns']:g} ns",
                        "levels": f"{res.get('critical_path_ns', '-')} ns / {res['logic_levels']}"
                                  f"{'' if res['fits_clock_estimate'] else ' (> clock)'}",
                        "budget": "pass" if r["budget"]["pass"] else "fail"})
            row["mark"] = ("★ " if r["id"] == result["recommended"]["id"] else "") + \
                          ("pareto" if r["id"] in result["pareto"] else "")
        rows.append(row)
    return rows


def write_outputs(out: Path, result: dict, timing: dict) -> None:
    import base64

    from trigger.bundle import write_json
    from trigger.templates import render

    png = _plot(result)
    (out / "pareto.png").write_bytes(png)
    write_json(out / "scan.json", result)
    write_json(out / "timing.json", timing)
    context = {"r": result, "rows": table_rows(result), "png": base64.b64encode(png).decode()}
    (out / "scan.md").write_text(render("report/scan.md.j2", **context))
    (out / "scan.html").write_text(render("report/scan.html.j2", **context))


SCAN_MARKERS = ("scan.json", "ii_curve.json")  # a folder holding one of these was written by a scan (or its presets)


def check_scan_output(out: Path) -> Path:
    from trigger.settings import check_output_folder

    out = check_output_folder(out)
    if out.exists() and any(out.iterdir()) and not any((out / m).exists() for m in SCAN_MARKERS):
        raise ConfigError(f"{out} exists and is not a scan folder; choose another output folder")
    return out


# ------------------------------------------------------------------ the scan
def run_scan(source, keys: dict, out, scheduler: str | None = None, workers: int | None = None,
             budget=None, vectors: int | None = DEFAULT_VECTORS, keep: float = DEFAULT_KEEP, progress: bool = True,
             simulator: str | None = None, point_id=None, bundles: str = "points") -> dict:
    """Build, score and synthesise every point of the grid on a Dask cluster; write the scan folder.

    ``simulator``: verify every built point three ways with this RTL simulator before synthesis (its
    ``verification``: vectors, mismatches, bit_exact, measured latency and II). ``point_id`` names the points
    (settings -> id), ``bundles`` the folder under ``out`` holding their bundles ("": ``out`` itself).
    ``vectors``: stored per point (None: the model's own number). Presets: trigger.ii_curve."""
    from distributed import as_completed
    from tqdm import tqdm

    from trigger.cluster import cluster
    from trigger.parts import part_info

    grid = plan(source, keys, point_id)
    default_budget = (grid.config or {}).get("budget") if grid.config else None
    limits = parse_budget(budget, default_budget)  # a bad budget fails before the long work
    out = check_scan_output(out)
    out.mkdir(parents=True, exist_ok=True)
    stale = [*SCAN_FILES, bundles] if bundles else [*SCAN_FILES, *(p.id for p in grid.points)]
    for name in stale:
        target = out / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    groups = design_groups(grid)
    t0 = time.perf_counter()
    records: dict[str, dict] = {}
    with cluster(scheduler=scheduler, workers=workers) as client:
        n_workers = len(client.scheduler_info().get("workers", {}))
        if progress:
            print(f"scan: {len(grid.points)} points ({len(groups)} designs) of {grid.source} on {n_workers} "
                  f"worker(s)", file=sys.stderr)
        config_path = str(grid.config_path) if grid.config_path else None
        futures = as_completed()
        for design_settings, members in groups:
            futures.add(client.submit(build_group, str(grid.source), grid.config, config_path, design_settings,
                                      [(p.id, p.settings) for p in members], str(out), vectors, bundles, pure=False))
        bar = tqdm(total=len(grid.points), desc="scan", unit="point", disable=not progress, file=sys.stderr)
        for future in futures:
            try:
                result = future.result()
            except Exception as err:  # noqa: BLE001  (a lost worker: its points fail, the scan goes on)
                result = None
                bar.write(f"scan: a task failed: {_one_line(err)}")
            if result is None:
                continue
            if isinstance(result, dict) and result["status"] == "verified":  # a verified point: now synthesised
                futures.add(client.submit(synth_point, result, str(out), pure=False))
                continue
            if isinstance(result, dict):  # a synthesised point (or one that failed on the way)
                records[result["id"]] = result
                bar.update(1)
                bar.set_postfix_str(f"{result['id']} {result['status']}")
                continue
            for rec in result:  # the points of one design
                if rec["status"] == "built" and simulator:
                    futures.add(client.submit(verify_point, rec, str(out), simulator, pure=False))
                elif rec["status"] == "built":
                    futures.add(client.submit(synth_point, rec, str(out), pure=False))
                else:
                    records[rec["id"]] = rec
                    bar.update(1)
                    bar.set_postfix_str(f"{rec['id']} failed")
        bar.close()
    wall = time.perf_counter() - t0
    for point in grid.points:  # a point whose task was lost
        records.setdefault(point.id, {"id": point.id, "settings": point.settings, "status": "failed",
                                      "error": "its task was lost (worker died?)", "timing": {},
                                      "bundle": _bundle_path(bundles, point.id)})
    points = []
    for point in grid.points:
        rec = records[point.id]
        rec["settings"] = point.settings
        if rec["status"] == "ok":
            rec["budget"] = judge_point(rec, limits)
        points.append(rec)
    ok = [r for r in points if r["status"] == "ok"]
    front = pareto_front(ok)
    pick, why = recommend(ok, keep)
    part = next((r["part"] for r in ok), None)
    result = {
        "format_version": 1,
        "name": (grid.config or {}).get("name") or grid.source.stem,
        "source": grid.source.name,
        "grid": {k: list(v) for k, v in grid.keys.items()},
        "budget": limits,
        "keep": keep,
        "vectors": vectors,
        "part": part,
        "part_LUT": (part_info(part) or {}).get("LUT") if part else None,
        "physics": next((r["physics"] for r in ok if r.get("physics")), None),
        "pareto": front,
        "recommended": {"id": pick, "why": why, "settings": records[pick]["settings"] if pick else None},
        "points": [{k: v for k, v in r.items() if k != "timing"} for r in points],
        "failed": sum(r["status"] != "ok" for r in points),
        **({"simulator": simulator, "not_bit_exact": sorted(r["id"] for r in ok if not r["verification"]["bit_exact"])}
           if simulator else {}),
    }
    timing = {"wall_s": round(wall, 2), "workers": n_workers, "points": len(points), "designs": len(groups),
              "per_point": {r["id"]: r.get("timing", {}) for r in points}}
    write_outputs(out, result, timing)
    if progress:
        print(f"scan: {len(ok)} of {len(points)} points ok in {wall:.1f} s; "
              f"recommended {pick or 'none'} ({why}); results in {out}", file=sys.stderr)
    return result
