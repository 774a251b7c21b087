"""The resource-versus-II curve: a preset of `trigger scan` (trigger.scan) over the ``ii`` setting.

An engineer picks the II that fits the budget: for every II (default 1, 2, 3, 6, 9; those larger
than the model can use are skipped) the scan builds the bundle (``--ii N``), verifies it three ways
(emulator, HLS C simulation, RTL) and synthesises it with Yosys (``trigger.report.synthesis_figures``,
as for any scan point); the LUT, FF, DSP and BRAM counts, the longest path against the clock (a latency
in ns is only real when the path fits), the measured latency and II and the mismatch counts go into
``ii_curve.json``, a Markdown table ``ii_curve.md`` and a plot ``ii_curve.png``. The bundles are
``DIR/ii<N>``; the folder also holds what every scan writes (scan.json, scan.md, scan.html,
pareto.png, timing.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from trigger.errors import ConfigError, ToolError
from trigger.report import CURVE_FILE, find_curve  # noqa: F401  (a report finds and shows the curve)
from trigger.report import CURVE_TABLE_HEADER as TABLE_HEADER
from trigger.report import curve_table_rows as table_rows

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
             progress: bool = True, pipeline=None, scheduler: str | None = None, workers: int | None = None) -> dict:
    """Build, verify and synthesise ``source`` at every II of ``iis`` under ``out_dir`` (`trigger scan` with the
    grid ``ii``, every point verified); returns the curve. ``pipeline``: the rtl pipeline setting of every point
    (default: the model's); ``vectors``: stored per point (default: the model's); ``scheduler``/``workers``: the
    Dask cluster, as for `trigger scan`."""
    from trigger.scan import run_scan

    out_dir = Path(out_dir)
    keys = {"ii": list(iis), **({"pipeline": [pipeline]} if pipeline is not None else {})}
    scan = run_scan(source, keys, out_dir, scheduler=scheduler, workers=workers, vectors=vectors, progress=progress,
                    simulator=simulator, point_id=lambda settings: f"ii{settings['ii']}", bundles="")
    seconds = json.loads((out_dir / "timing.json").read_text())["per_point"]
    points, skipped = [], []
    for rec in scan["points"]:
        ii = rec["settings"]["ii"]
        if rec["status"] != "ok":
            step, _, error = rec["error"].partition(": ")
            kind, _, reason = error.partition(": ")
            if kind == "ConfigError" and "larger than" in reason:
                skipped.append({"ii": ii, "reason": reason})
                continue
            raise (ConfigError if kind == "ConfigError" else ToolError)(f"ii-curve: II {ii} ({step}): {reason}")
        points.append(_point(out_dir, rec, seconds.get(rec["id"], {})))
    return _write(out_dir, source, iis, points, skipped)


def _point(out_dir: Path, rec: dict, timing: dict) -> dict:
    """A verified, synthesised scan point as a point of the curve."""
    rtl = json.loads((out_dir / rec["bundle"] / "manifest.json").read_text())["rtl"]
    verified, resources, clock = rec["verification"], rec["resources"], rec["clock_period_ns"]
    cycles = verified["latency_cycles"]
    return {"ii": rec["settings"]["ii"], "bundle": rec["bundle"], "op_ii": rtl["op_ii"], "latency_cycles": cycles,
            "latency_ns": None if cycles is None or cycles < 0 else round(cycles * clock, 3),
            "ii_measured": verified["ii_measured"], "vectors": verified["vectors"],
            "mismatches": verified["mismatches"], "bit_exact": verified["bit_exact"],
            **{k: resources.get(k) for k in FIGURES}, "percent": resources.get("percent"),
            "pipeline": rtl["pipeline"], "clock_period_ns": clock,
            "critical_path_ns": resources.get("critical_path_ns"), "fits_clock": resources.get("fits_clock_estimate"),
            "seconds": round(sum(v for k, v in timing.items() if k.endswith("_s") and not k.endswith("cpu_s")), 1)}


def _write(out_dir: Path, source, iis, points: list, skipped: list) -> dict:
    from trigger.bundle import write_json

    first = points[0] if points else None
    for point in points:
        point["LUT_vs_first"] = round(point["LUT"] / first["LUT"], 4) if first and first.get("LUT") else None
    curve = {"source": str(source), "iis": list(iis), "points": points, "skipped": skipped}
    write_json(out_dir / "ii_curve.json", curve)
    (out_dir / "ii_curve.md").write_text(markdown(curve))
    if points:
        (out_dir / "ii_curve.png").write_bytes(plot_png(curve))
    return curve


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
