"""Latency, resources and bit-exactness of a bundle, judged against a budget.

Reads what earlier stages left in the bundle (manifest.json, reports/verify.json,
physics plots), runs the Yosys estimate, and writes report.json for machines,
report.md and a single-file report.html (plots embedded) for people.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

from trigger.budget import BudgetError, load_budget
from trigger.bundle import changed_files, load_manifest, private_folder, write_json
from trigger.errors import BundleError, ConfigError, ToolError
from trigger.parts import DEFAULT_PART, capacity, utilization
from trigger.settings import DEFAULT_CLOCK_NS
from trigger.synth import bram_for_table, fits_clock, path_ns, synthesize
from trigger.templates import render
from trigger.timing import headline, timing_section, vivado_timing
from trigger.timing import violation as timing_violation

def judge(report: dict, budget: dict, part: str) -> dict:
    """Compare measured figures with each limit: pass and a list of violations."""
    violations = []
    lat, res = report["latency"], report["resources"]

    def check(metric, limit, value):
        if value is None:
            violations.append({"metric": metric, "limit": limit, "value": None})
        elif value > limit:
            violations.append({"metric": metric, "limit": limit, "value": value})

    for key, limit in budget.items():
        if key == "clock":  # the estimated (or vendor) critical path against the target clock period
            timing = report.get("timing") or {}
            if limit and timing.get("critical_path_ns") is not None and not timing["fits"]:
                violations.append(timing_violation(timing))
        elif key == "latency_ns":
            check(key, limit, lat.get("ns"))
        elif key == "latency_cycles":
            check(key, limit, lat.get("cycles"))
        elif key == "ii":
            check(key, limit, lat.get("ii"))
        elif key == "bit_exact":
            if limit and not report["bit_exact"]:
                violations.append({"metric": "bit_exact", "limit": True, "value": False})
        elif key == "proved":  # every op proved for all inputs by `trigger prove` (proof_section)
            proof = report.get("proof") or {}
            if limit and (proof.get("status") != "run" or proof.get("unproved")):
                violations.append({"metric": "proved", "limit": True, "value": False,
                                   "message": proof.get("budget_message", "proved: trigger prove not run")})
        else:
            if isinstance(limit, dict):
                pct = res.get("percent", {}).get(key)
                if pct is None:
                    raise BudgetError(f"budget: {key} is given in percent but the capacity of part {part!r} "
                                      "is unknown; give a count")
                if pct > limit["percent"]:
                    violations.append({"metric": key, "limit": f"{limit['percent']}%", "value": f"{pct}%"})
            else:
                check(key, limit, res.get(key))
    return {"pass": not violations, "violations": violations, "limits": budget}


def vendor_estimate(bundle: Path, manifest: dict) -> dict:
    """Run hls4ml's own build (C synthesis) with the vendor tool and read its report.

    Only for network bundles (an hls4ml project); needs vitis_hls or vivado_hls on PATH.
    """
    import shutil

    import hls4ml
    from hls4ml.report import parse_vivado_report

    if manifest.get("kind") != "network":
        raise ConfigError("--vendor runs hls4ml's build, which needs a network bundle")
    if not (shutil.which("vitis_hls") or shutil.which("vivado_hls")):
        raise ConfigError("--vendor needs vitis_hls or vivado_hls on PATH (source the Xilinx settings script)")
    work = bundle / "reports" / "vendor"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(bundle / "hls", work / "hls")
    config = work / "hls" / "hls4ml_config.yml"
    config.write_text(config.read_text().replace("OutputDir: .", f"OutputDir: {work / 'hls'}"))
    linked = hls4ml.converters.link_existing_project(str(work / "hls"))
    linked.build(csim=False, synth=True, vsynth=False)
    parsed = parse_vivado_report(str(work / "hls")).get("CSynthesisReport", {})
    if not parsed:
        raise ToolError(f"the vendor build wrote no C-synthesis report under {work / 'hls'}")
    tool = "vitis" if shutil.which("vitis_hls") else "vivado"
    return {"source": tool, "LUT": parsed.get("LUT"), "FF": parsed.get("FF"), "DSP": parsed.get("DSP"),
            "BRAM_18K": parsed.get("BRAM_18K"), "latency_cycles": parsed.get("WorstLatency"),
            "ii": parsed.get("IntervalMax"), "estimated_clock_ns": parsed.get("EstimatedClockPeriod")}


def bundle_target(manifest: dict) -> tuple[str, float]:
    """(part, clock period in ns) a bundle was built for (trigger.settings' defaults for an old manifest)."""
    target = manifest.get("target", {})
    return target.get("part", DEFAULT_PART), float(target.get("clock_period_ns", DEFAULT_CLOCK_NS))


def synthesis_figures(bundle: Path, manifest: dict, jobs: int | None = None) -> dict:
    """Yosys' figures of a bundle's RTL (trigger.synth), the BRAM in 36 Kb blocks, the percent of the part and the
    longest register-to-register path against the clock: what `trigger report` and every `trigger scan` point show.
    ``jobs``: Yosys processes at once (a scan runs one per point; its parallelism is across points)."""
    part, clock_ns = bundle_target(manifest)
    rtl = manifest.get("rtl", {})
    sources = [bundle / s for s in rtl.get("sources", [])] or sorted((bundle / "rtl").glob("*.v"))
    with private_folder(bundle / "reports" / "synth") as work:  # this run's own (trigger.bundle)
        figures = synthesize(sources, rtl.get("top", manifest.get("top", "trigger_top")), part, work_dir=work,
                             data_files=[bundle / f for f in rtl.get("data_files", [])], jobs=jobs)
    resources = dict(figures)
    bram = figures["BRAM36"] + figures["BRAM18"] / 2
    resources["BRAM"] = int(bram) if bram == int(bram) else bram
    resources["percent"] = utilization(figures, part)
    # the longest register-to-register path (Yosys sta, trigger.parts' cell delays) against the clock
    resources["critical_path_ns"] = path_ns(figures)
    resources["fits_clock_estimate"] = fits_clock(figures, clock_ns)
    return resources


def build_report(bundle: Path, budget_source=None, synth: bool = True, vendor: bool = False,
                 ii_curve=None, physics: dict | None = None) -> dict:
    """Gather the figures of a verified bundle into report.json/md/html; returns the report.

    ``ii_curve``: a folder with the resource-versus-II curve to show (``trigger ii-curve``); None looks
    beside the bundle (``trigger.ii_curve.find_curve``), False shows none. ``physics``: the user's events and
    how to read them (``trigger.physics.report_section``'s arguments: data, y, task, threshold, rate_mhz): the
    physics section, firmware and source model side by side."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    from trigger.verify import load_verdict

    verify = load_verdict(bundle)  # this bundle's verdict, unedited, or a failed check (trigger.verify)
    physics_pngs = {}
    if physics is not None:  # before the long synthesis: bad data fails at once (trigger.physics)
        from trigger.physics import report_section

        physics_section, physics_pngs = report_section(bundle, **physics)
    part, clock_ns = bundle_target(manifest)

    cycles = verify.get("latency_cycles")
    latency = {"cycles": cycles, "ns": None if cycles is None or cycles < 0 else round(cycles * clock_ns, 3),
               "ii": verify.get("ii"), "clock_period_ns": clock_ns, "source": "rtl simulation"}

    rtl = manifest.get("rtl", {})
    resources = {"source": "yosys"}
    if synth:
        resources.update(synthesis_figures(bundle, manifest))
    vendor_timing = None
    if synth:  # Vivado's post-synthesis timing when it is on PATH; else trigger's estimate above
        vendor_timing = vivado_timing(bundle, rtl.get("sources", []), rtl.get("top", manifest.get("top", "trigger_top")),
                                      part, clock_ns)
    timing = timing_section(clock_ns, resources if synth else {}, manifest, bundle, vendor_timing)
    table = manifest.get("table")
    if table:
        resources["table_bram"] = bram_for_table(1 << int(table["address_bits"]), int(table["word_bits"]))

    mismatches = verify.get("mismatches", {})
    bit_exact = bool(mismatches) and all(v == 0 for v in mismatches.values())
    tampered = changed_files(bundle, manifest)
    report = {
        "name": manifest.get("name"),
        "kind": manifest.get("kind"),
        "part": part,
        "latency": latency,
        "timing": timing,
        "resources": resources,
        "bit_exact": bit_exact and not tampered,
        "verification": {"vectors": verify.get("vectors"), "exhaustive": verify.get("exhaustive"),
                         "cover": verify.get("cover"), "simulator": verify.get("simulator"),
                         "mismatches": mismatches, "first_mismatch": verify.get("first_mismatch"),
                         # the emulator library (emulator/lib<name>.so through dlopen): library_vs_emulator above
                         "library": verify.get("library"),
                         "files_changed_since_build": tampered},
        "overflows": overflow_rows(verify.get("overflows", {})),
        "ops": manifest.get("ops", []),
        "vendor": _vendor_status(),
        "source_model": verify.get("source_model"),  # the user's model vs the firmware (trigger.source_model)
        "layers": verify.get("layers"),  # the same, layer by layer (trigger.frontends.layer_compare)
        "proof": proof_section(bundle, manifest, verify),  # per op: proved for all inputs or simulated only
    }
    if physics is not None:
        report["physics"] = physics_section
    if ii_curve is not False:  # resource sharing: the resource-versus-II curve this bundle is a point of
        curve = find_curve(bundle, ii_curve)
        if curve:
            report["ii_curve"] = curve
    training = bundle / "reports" / "training.json"  # a classifier trained in the flow: its test-sample scores
    if training.exists():
        report["classifier"] = json.loads(training.read_text())
    if vendor:
        report["vendor"]["hls_estimate"] = vendor_estimate(bundle, manifest)
    budget = {}
    if budget_source is not None:
        budget = load_budget(budget_source)
    elif manifest.get("budget"):
        budget = load_budget(manifest["budget"])
    budget.setdefault("clock", True)  # on whenever a target clock is set (every bundle has one); false turns it off
    report["budget"] = judge(report, budget, part)
    if synth:  # each budgeted figure as a share of its limit and of the part, per module (layer)
        report["resource_shares"] = resource_shares(report)
    _write_outputs(bundle, report, manifest, physics_pngs)
    return report


# ------------------------------------------------------------------ the resource-versus-II curve (trigger.ii_curve)
CURVE_FILE = "ii_curve.json"
CURVE_TABLE_HEADER = ("II", "LUT", "LUT vs first", "FF", "DSP", "BRAM", "latency (cycles)", "latency (ns)",
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


def curve_table_rows(curve: dict) -> list[list[str]]:
    """The curve's table (``CURVE_TABLE_HEADER`` columns) as text cells, one row per II."""
    return [[str(p["ii"]), str(p["LUT"]), str(p["LUT_vs_first"]), str(p["FF"]), str(p["DSP"]), str(p["BRAM"]),
             str(p["latency_cycles"]), str(p["latency_ns"]), _path_cell(p), str(p["ii_measured"]), str(p["vectors"]),
             "yes" if p["bit_exact"] else "NO"] for p in curve["points"]]


def _path_cell(point: dict) -> str:
    if point.get("critical_path_ns") is None:
        return "-"
    return f"{point['critical_path_ns']}{'' if point.get('fits_clock') else ' (> clock)'}"


def proof_section(bundle: Path, manifest: dict, verify: dict) -> dict:
    """Per op: "proved for all inputs" (reports/prove.json of this build, `trigger prove`) or "simulated on N
    vectors" (verify.json), so that a reader sees which parts rest on a proof and which on samples."""
    from trigger.bundle import MANIFEST, sha256

    path = bundle / "reports" / "prove.json"
    vectors = verify.get("vectors")
    simulated = f"simulated on {vectors} vectors" + (" (every input)" if verify.get("exhaustive") else "")
    status, proofs, edited = "not run", {}, []
    if path.exists():
        try:
            data = json.loads(path.read_text())
            valid = data.get("manifest_sha256") == sha256(bundle / MANIFEST)
        except (ValueError, AttributeError):
            data, valid = {}, False
        status = "run" if valid else "stale (another build's reports/prove.json)"
        if valid:
            proofs = {r["op"]: r for r in data.get("ops", [])}
            edited = data.get("edited_files", [])
    rows = []
    for op in manifest.get("ops", []):
        proof = proofs.get(op["name"])
        if proof is None:
            result, method, note = simulated, "-", "not run" if status == "run" else status
        elif proof["status"] == "proved":
            result, method, note = "proved for all inputs", proof.get("method", "-"), ""
        else:
            result, method = simulated, proof.get("method", "-")
            note = proof["status"] + (f": {proof['reason']}" if proof.get("reason") else "")
        if proof and proof.get("edited_after_build"):
            note = (note + "; " if note else "") + "its RTL was edited after the build"
        rows.append({"op": op["name"], "kind": op["kind"], "result": result, "method": method, "note": note,
                     "counterexample": bool(proof and proof["status"] == "counterexample")})
    unproved = [r["op"] for r in rows if r["result"] != "proved for all inputs"]
    message = ("proved: trigger prove not run for this build (trigger prove BUNDLE, or trigger ci --prove)"
               if status != "run" else f"proved: not proved for all inputs: {', '.join(unproved)}")
    return {"status": status, "vectors": vectors, "ops": rows, "unproved": unproved, "budget_message": message,
            "proved": len(rows) - len(unproved), "edited_files": edited}


def overflow_rows(overflows: dict) -> list[dict]:
    """Per op and tensor, how many values the emulator saw on the verified vectors and how many overflowed."""
    return [{"op": op, "tensor": tensor, "seen": c["values"], "overflows": c["overflows"],
             "percent": round(100.0 * c["overflows"] / c["values"], 4) if c["values"] else 0.0}
            for op, tensors in overflows.items() for tensor, c in tensors.items()]


def _vendor_status() -> dict:
    import shutil

    found = {tool: shutil.which(tool) for tool in ("vitis_hls", "vivado_hls", "vivado")}
    if not any(found.values()):
        return {"available": False, "note": "no Vitis/Vivado on PATH: resources are Yosys estimates, "
                                            "latency is from the RTL simulation"}
    return {"available": True, "tools": {k: v for k, v in found.items() if v}}


SHARE_FIGURES = ("LUT", "FF", "DSP", "BRAM")  # the figures a budget limits and a part has a capacity for


def resource_shares(report: dict) -> dict:
    """Each budgeted figure as a percent of its limit and of the part, in total and per module (layer):
    {figure: {"part": %, "limit": % or None, "modules": {module: {"part": %, "limit": %}}}}.

    The question an engineer asks is "how much of what I may use is this", not the raw count."""
    res = report["resources"]
    part_capacity = capacity(report.get("part"))
    limits = report.get("budget", {}).get("limits", {})
    shares = {}
    for key in SHARE_FIGURES:
        if key not in res:
            continue
        cap, limit = part_capacity.get(key), limits.get(key)
        if isinstance(limit, dict):  # a percent of the part: the same limit as a count
            limit = cap * limit["percent"] / 100.0 if cap else None

        def pct(value, of):
            return round(100.0 * value / of, 3) if of else None

        modules = {}
        for name, figures in (res.get("modules") or {}).items():
            value = figures.get(key, 0) if key != "BRAM" else figures.get("BRAM36", 0) + figures.get("BRAM18", 0) / 2
            modules[name] = {"part": pct(value, cap), "limit": pct(value, limit)}
        shares[key] = {"value": res[key], "part": pct(res[key], cap), "limit": pct(res[key], limit),
                       "limit_count": limit, "modules": modules}
    return shares


def _plot_png(report: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = report["resources"]
    shares = resource_shares(report) if any(k in res for k in SHARE_FIGURES) else {}
    modules = res.get("modules", {})
    fig, axes = plt.subplots(1, 3 if modules else 2, figsize=(14 if modules else 9, 3.4))
    names = list(shares)
    y = range(len(names))
    budgeted = [n for n in names if shares[n]["limit"] is not None]
    axes[0].barh([i + 0.2 for i in y], [shares[n]["part"] or 0 for n in names], 0.4, color="#4477aa",
                 label=f"% of {report.get('part', 'the part')}")
    if budgeted:
        axes[0].barh([i - 0.2 for i in y], [shares[n]["limit"] or 0 for n in names], 0.4, color="#ee6677",
                     label="% of the budget")
        axes[0].axvline(100, color="k", ls="--", lw=1)
    for i, n in enumerate(names):
        axes[0].annotate(f"{shares[n]['value']:g}", (max(shares[n]["part"] or 0, shares[n]["limit"] or 0), i),
                         xytext=(3, -3), textcoords="offset points", fontsize=7)
    axes[0].set_yticks(list(y), names)
    axes[0].set_xlabel("percent")
    axes[0].set_title(f"Resources ({res.get('source')}): share of budget and part")
    axes[0].legend(fontsize=7)
    lat = report["latency"]
    axes[1].barh(["latency"], [lat["ns"] or 0], color="#ee6677")
    limit = report["budget"]["limits"].get("latency_ns")
    if limit:
        axes[1].axvline(limit, color="k", ls="--", label=f"budget {limit} ns")
        axes[1].legend()
    axes[1].set_xlabel("ns")
    axes[1].set_title(f"Latency: {lat['cycles']} cycles, II {lat['ii']}")
    if modules:
        labels = list(modules)
        x = range(len(labels))
        for k, (key, color) in enumerate((("LUT", "#4477aa"), ("FF", "#228833"))):
            if key in shares:  # each as a share of its budget when it has one, else of the part
                over = "limit" if shares[key]["limit"] is not None else "part"
                axes[2].bar([i - 0.2 + 0.4 * k for i in x], [shares[key]["modules"][m][over] or 0 for m in labels],
                            0.4, label=f"{key}, % of {'its budget' if over == 'limit' else 'the part'}", color=color)
        prefix = os.path.commonprefix(labels) if len(labels) > 1 else ""
        prefix = prefix[:prefix.rfind("_") + 1]  # the top's name and "_": the layer names stay
        axes[2].set_xticks(list(x), [m[len(prefix):] or m for m in labels], rotation=45, ha="right")
        axes[2].set_ylabel("percent")
        axes[2].set_title("Per module (layer or stage)")
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _write_outputs(bundle: Path, report: dict, manifest: dict, physics_pngs: dict | None = None) -> None:
    reports = bundle / "reports"
    plots = reports / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    (plots / "summary.png").write_bytes(_plot_png(report))
    section_context = _section_plots(plots, report, physics_pngs or {})  # physics and layers: in their sections
    curve_png = (report.get("ii_curve") or {}).get("png")
    (plots / "ii_curve.png").unlink(missing_ok=True)  # none left from an earlier report when the curve is gone
    if curve_png:
        (plots / "ii_curve.png").write_bytes(Path(curve_png).read_bytes())
    write_json(reports / "report.json", report)
    images = []
    for png in sorted(plots.glob("*.png")):
        if png.stem.startswith(SECTION_PLOTS):
            continue
        images.append({"name": png.stem, "file": f"plots/{png.name}",
                       "data": base64.b64encode(png.read_bytes()).decode()})
    header, module_rows = module_table(report)
    context = {"r": report, "manifest": manifest, "images": images, "rows": summary_rows(report),
               "module_header": header, "module_rows": module_rows,
               "classifier_rows": classifier_rows(report), **_ii_curve_context(report), **section_context}
    (reports / "report.md").write_text(render("report/report.md.j2", **context))
    (reports / "report.html").write_text(render("report/report.html.j2", **context))


SECTION_PLOTS = ("physics_", "layers")  # plots shown in their own sections, not under Plots


def _section_plots(plots: Path, report: dict, physics_pngs: dict) -> dict:
    """Write the physics plots (the user's data) and the per-layer deviation plot; the templates' context of both."""
    from trigger.frontends.layer_compare import TABLE_HEADER, plot_png, table_rows

    for old in plots.glob("*.png"):
        if old.stem.startswith(SECTION_PLOTS):
            old.unlink()

    def image(name, data):
        (plots / f"{name}.png").write_bytes(data)
        return {"name": name, "file": f"plots/{name}.png", "data": base64.b64encode(data).decode()}

    context = {"physics_images": [image(n, d) for n, d in sorted(physics_pngs.items())], "physics_rows": [],
               "layers_header": TABLE_HEADER, "layers_rows": [], "layers_images": [], "layers_text": ""}
    if report.get("physics"):
        from trigger.physics import rows

        context["physics_rows"] = rows(report["physics"])
    layers = report.get("layers")
    if layers and not layers.get("error"):
        from trigger.frontends.layer_compare import describe

        context["layers_rows"] = table_rows(layers)
        context["layers_text"] = describe(layers)
        png = plot_png(layers)
        if png:
            context["layers_images"] = [image("layers", png)]
    elif layers:
        context["layers_text"] = f"layer comparison unavailable: {layers['error']}"
    return context


def _ii_curve_context(report: dict) -> dict:
    """The resource-versus-II table for the templates (empty when the report has no curve)."""
    curve = report.get("ii_curve")
    return {"ii_curve_header": CURVE_TABLE_HEADER, "ii_curve_rows": curve_table_rows(curve) if curve else []}


CLASSIFIER_ROWS = (  # reports/training.json key, label (trigger.frontends.network.classifier_scores)
    ("float_accuracy", "accuracy, float Keras twin (trained alongside)"),
    ("quantized_accuracy", "accuracy, QKeras model"),
    ("model_accuracy_on_firmware_inputs", "accuracy, QKeras model on the firmware's input values"),
    ("firmware_accuracy", "accuracy, firmware"),
    ("argmax_agreement_with_model", "firmware class == QKeras model class"),
    ("softmax_argmax_agreement_with_logits", "softmax argmax == argmax of the firmware's own logits"),
)


def classifier_rows(report: dict) -> list[tuple[str, str]]:
    """The classifier's scores on its test sample (a model trained in the flow), as (label, value) rows."""
    scores = report.get("classifier") or {}
    rows = []
    for key, label in CLASSIFIER_ROWS:
        if key in scores:
            value = f"{100 * scores[key]:.3f} %"
            misses = scores.get(key.replace("agreement", "disagreements"))
            if "agreement" in key and misses is not None:
                value += f" ({misses} of {scores.get('test_samples', '?')} differ)"
            rows.append((label, value))
    return rows


def _share_text(share: dict) -> str:
    """'24.5 % of the budget, 2.45 % of the part' (whichever of the two is known)."""
    parts = [f"{share[k]:.3g} % of the {label}" for k, label in (("limit", "budget"), ("part", "part"))
             if share.get(k) is not None]
    return ", ".join(parts)


MODULE_COLUMNS = (("LUT", "LUT"), ("FF", "FF"), ("CARRY", None), ("DSP", "DSP"), ("BRAM36", "BRAM"))


def module_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """The per-module (layer or stage) table: each budgeted figure with its share of the budget (or
    of the part, when the budget does not limit it), so the layer that eats the budget stands out."""
    res = report["resources"]
    modules = res.get("modules") or {}
    shares = resource_shares(report) if modules else {}
    header = ["module"] + [name for name, _ in MODULE_COLUMNS] + ["longest path (ns)", "logic depth"]
    rows = []
    for name, m in sorted(modules.items()):
        row = [name]
        for column, figure in MODULE_COLUMNS:
            cell = str(m.get(column, 0))
            share = (shares.get(figure) or {}).get("modules", {}).get(name) if figure else None
            over = share and ("limit" if share["limit"] is not None else "part")
            if share and share[over] is not None and (m.get(column) or 0) > 0:  # an unknown part has no share
                cell += f" ({share[over]:.3g} % of {'budget' if over == 'limit' else 'part'})"
            row.append(cell)
        row += [str(m.get("critical_path_ns", "-")), str(m.get("logic_levels", "-"))]
        rows.append(row)
    return header, rows


def summary_rows(report: dict) -> list[tuple[str, str]]:
    lat, res = report["latency"], report["resources"]
    shares = resource_shares(report) if any(k in res for k in SHARE_FIGURES) else {}

    def with_pct(key):
        value = res.get(key, "-")
        text = _share_text(shares[key]) if key in shares else ""
        return f"{value} ({text})" if text else str(value)

    timing = report.get("timing")
    mhz = (timing or {}).get("clock_mhz") or round(1000.0 / lat["clock_period_ns"], 3)
    rows = [
        ("latency", f"{lat['cycles']} cycles = {lat['ns']} ns at {mhz:g} MHz{headline(timing)}"),
        ("II", str(lat["ii"])),
        ("LUT", with_pct("LUT")), ("FF", with_pct("FF")), ("DSP", with_pct("DSP")), ("BRAM36", with_pct("BRAM")),
        *_timing_rows(timing, res, lat),
        ("logic depth", f"{res.get('logic_levels', '-')} cells (LUT/CARRY4/MUXF/DSP) on the deepest register-to-"
                        f"register path"),
        *_synthesis_rows(res),
        ("bit exact", "yes" if report["bit_exact"] else "NO"),
        ("budget", "pass" if report["budget"]["pass"] else "FAIL: " + "; ".join(
            v.get("message") or f"{v['metric']} {v['value']} > {v['limit']}" for v in report["budget"]["violations"])),
    ]
    rows += source_model_rows(report)
    return rows


def _timing_rows(timing: dict | None, res: dict, lat: dict) -> list[tuple[str, str]]:
    """The critical path against the clock, the stage that sets it, and where the figures come from."""
    if not timing or timing.get("critical_path_ns") is None:
        return [("longest path", "not measured (no synthesis)")]
    where = timing.get("module") or "-"
    if timing.get("stage"):
        where += f" ({timing['stage']})"
    verdict = "fits" if timing["fits"] else "DOES NOT FIT"
    rows = [("longest path", f"{timing['critical_path_ns']:.3f} ns against the {timing['clock_period_ns']:g} ns "
                             f"clock ({timing['clock_mhz']:g} MHz): {verdict}, slack {timing['slack_ns']:+.3f} ns, "
                             f"in {where}")]
    est = timing.get("builder_estimate")
    if est:
        rows.append(("stage estimate", f"RTL builder, pipeline {timing.get('pipeline')}: worst stage "
                                       f"{est['worst_stage']} of {len(est['delay_ns_per_stage'])} at "
                                       f"{est['worst_ns']:.3f} ns"))
    rows.append(("timing source", timing.get("note") or timing["source"]))
    return rows


def _synthesis_rows(res: dict) -> list[tuple[str, str]]:
    """Which Yosys settings gave the figures, and what the run cost (trigger.synth.SynthSettings)."""
    settings = res.get("settings")
    if not settings:
        return []
    took = "taken from the cache, first run" if res.get("cached") else "took"
    return [("synthesis", f"Yosys synth_xilinx, {settings['summary']} ({settings['runs']} run(s)); "
                          f"{took} {res.get('yosys_seconds')} s, {res.get('yosys_cpu_seconds')} CPU s")]


def source_model_rows(report: dict) -> list[tuple[str, str]]:
    """The fourth witness as a summary row: the model the user brought, run by its framework, vs the firmware."""
    from trigger.source_model import describe

    source = report.get("source_model")
    return [("source model", describe(source))] if source else []


def print_summary(report: dict) -> None:
    rows = summary_rows(report)
    width = max(len(k) for k, _ in rows)
    print(f"{report.get('name')} ({report.get('kind')}, {report['part']}, resources from {report['resources']['source']})")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")

