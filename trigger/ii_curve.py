"""The resource-versus-II curve: one design built at several II, each verified and synthesised.

An engineer picks the II that fits the budget: for every II (default 1, 2, 3, 6, 9; those larger
than the model can use are skipped) the bundle is built (``--ii N``), verified three ways
(emulator, HLS C simulation, RTL) and synthesised with Yosys (``trigger.report``); the LUT, FF,
DSP and BRAM counts, the longest path against the clock (a latency in ns is only real when the
path fits), the measured latency and II and the mismatch counts go into
``ii_curve.json``, a Markdown table ``ii_curve.md`` and a plot ``ii_curve.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from trigger.errors import ConfigError

DEFAULT_IIS = (1, 2, 3, 6, 9)
FIGURES = ("LUT", "FF", "DSP", "BRAM", "CARRY")


def parse_iis(text: str) -> tuple[int, ...]:
    """'1,2,3,6,9' -> (1, 2, 3, 6, 9); each a positive whole number."""
    from trigger.ir.ii import parse_ii

    values = tuple(parse_ii(v, "--ii-values", allow_auto=False) for v in str(text).split(",") if v.strip())
    if not values:
        raise ConfigError(f"--ii-values: expected a comma-separated list of whole numbers, got {text!r}")
    return tuple(sorted(set(values)))


def ii_curve(source, out_dir, iis=DEFAULT_IIS, vectors: int | None = None, simulator: str = "verilator",
             synth: bool = True, progress: bool = True, pipeline=None) -> dict:
    """Build, verify and synthesise ``source`` at every II of ``iis`` under ``out_dir``; returns the curve.
    ``pipeline``: the rtl pipeline setting of every point (default: the model's)."""
    from trigger.bundle import build_bundle
    from trigger.frontends import BuildOptions
    from trigger.report import build_report
    from trigger.verify import verify_bundle

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    points, skipped = [], []
    for ii in iis:
        t0 = time.perf_counter()
        bundle = out_dir / f"ii{ii}"
        try:
            build_bundle(source, bundle, BuildOptions(ii=ii, vectors=vectors, pipeline=pipeline), progress=progress)
        except ConfigError as err:
            if "larger than" not in str(err):
                raise
            skipped.append({"ii": ii, "reason": str(err)})
            if progress:
                print(f"ii-curve: II {ii} skipped: {err}", flush=True)
            continue
        verified = verify_bundle(bundle, simulator=simulator, progress=progress)
        report = build_report(bundle, synth=synth, ii_curve=False)  # the curve is not complete yet
        manifest = json.loads((bundle / "manifest.json").read_text())
        resources = report["resources"]
        point = {"ii": ii, "bundle": bundle.name, "op_ii": manifest["rtl"]["op_ii"],
                 "latency_cycles": verified["latency_cycles"], "latency_ns": report["latency"]["ns"],
                 "ii_measured": verified["ii"], "vectors": verified["vectors"],
                 "mismatches": verified["mismatches"], "bit_exact": verified["pass"],
                 **{k: resources.get(k) for k in FIGURES}, "percent": resources.get("percent"),
                 "pipeline": manifest["rtl"]["pipeline"], "clock_period_ns": report["latency"]["clock_period_ns"],
                 "critical_path_ns": resources.get("critical_path_ns"),
                 "fits_clock": resources.get("fits_clock_estimate"),
                 "seconds": round(time.perf_counter() - t0, 1)}
        points.append(point)
        if progress:
            print(f"ii-curve: II {ii}: LUT {point['LUT']}, FF {point['FF']}, latency {point['latency_cycles']} "
                  f"cycles, measured II {point['ii_measured']}, bit exact {point['bit_exact']}", flush=True)
        _write(out_dir, source, iis, points, skipped, synth)  # after every point: a long run shows its progress
    return _write(out_dir, source, iis, points, skipped, synth)


def _write(out_dir: Path, source, iis, points: list, skipped: list, synth: bool) -> dict:
    from trigger.bundle import write_json

    first = points[0] if points else None
    for point in points:
        point["LUT_vs_first"] = round(point["LUT"] / first["LUT"], 4) if first and first.get("LUT") else None
    curve = {"source": str(source), "iis": list(iis), "points": points, "skipped": skipped}
    write_json(out_dir / "ii_curve.json", curve)
    (out_dir / "ii_curve.md").write_text(markdown(curve))
    if points and synth:
        (out_dir / "ii_curve.png").write_bytes(plot_png(curve))
    return curve


CURVE_FILE = "ii_curve.json"
TABLE_HEADER = ("II", "LUT", "LUT vs first", "FF", "DSP", "BRAM", "latency (cycles)", "latency (ns)",
                "longest path (ns)", "measured II", "vectors", "bit exact")


def find_curve(bundle, curve_dir=None) -> dict | None:
    """The resource-versus-II curve that goes with a bundle, for its report: ``curve_dir``'s
    ii_curve.json when given (a one-line error when it has none), else the bundle folder's own, else
    that of the folder holding the bundle when the curve lists it (``trigger ii-curve`` writes
    DIR/iiN bundles beside DIR/ii_curve.json); None when there is none. Adds ``json`` (its path) and
    ``png`` (the plot's path, when present)."""
    bundle = Path(bundle)
    if curve_dir is not None:
        candidates = [(Path(curve_dir) / CURVE_FILE, True)]
        if not candidates[0][0].is_file():
            raise ConfigError(f"--ii-curve: {candidates[0][0]} not found (write it with `trigger ii-curve`)")
    else:
        candidates = [(bundle / CURVE_FILE, True), (bundle.parent / CURVE_FILE, False)]
    for path, own in candidates:
        if not path.is_file():
            continue
        try:
            curve = json.loads(path.read_text())
            points = curve["points"]
            listed = any(p.get("bundle") == bundle.name for p in points)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"{path}: not a resource-versus-II curve (expected 'points', as `trigger ii-curve` "
                              "writes)") from None
        if own or listed:
            png = path.with_suffix(".png")
            return {**curve, "json": str(path), "png": str(png) if png.is_file() else None}
    return None


def table_rows(curve: dict) -> list[list[str]]:
    """The curve's table (``TABLE_HEADER`` columns) as text cells, one row per II."""
    return [[str(p["ii"]), str(p["LUT"]), str(p["LUT_vs_first"]), str(p["FF"]), str(p["DSP"]), str(p["BRAM"]),
             str(p["latency_cycles"]), str(p["latency_ns"]), _path_cell(p), str(p["ii_measured"]), str(p["vectors"]),
             "yes" if p["bit_exact"] else "NO"] for p in curve["points"]]


def _path_cell(point: dict) -> str:
    if point.get("critical_path_ns") is None:
        return "-"
    return f"{point['critical_path_ns']}{'' if point.get('fits_clock') else ' (> clock)'}"


def markdown(curve: dict) -> str:
    lines = [f"# Resources versus II: {curve['source']}", "", "| " + " | ".join(TABLE_HEADER) + " |",
             "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(curve)]
    for s in curve["skipped"]:
        lines.append(f"\nII {s['ii']} skipped: {s['reason']}")
    return "\n".join(lines) + "\n"


def plot_png(curve: dict) -> bytes:
    """LUT and FF (left axis) and latency in ns (right axis) against II."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = curve["points"]
    iis = [p["ii"] for p in points]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(iis, [p["LUT"] for p in points], "o-", label="LUT")
    ax.plot(iis, [p["FF"] for p in points], "s-", label="FF")
    if any(p["DSP"] for p in points):
        ax.plot(iis, [p["DSP"] for p in points], "^-", label="DSP")
    ax.set_xlabel("II (clocks between events)")
    ax.set_ylabel("count (Yosys)")
    ax.set_xticks(iis)
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot(iis, [p["latency_ns"] for p in points], "k--", marker="x", label="latency (ns)")
    right.set_ylabel("latency (ns)")
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="upper center", fontsize=8)
    ax.set_title(f"Resources versus II: {Path(curve['source']).stem}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
