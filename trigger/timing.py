"""Timing sign-off for the report and the gate: does the synthesised netlist meet the target clock?

The figures are an estimate unless a vendor tool gave them: Yosys ``sta`` over the ``synth_xilinx`` netlist
with trigger's cell delays (``trigger.synth.TIMING_MODEL``), module by module (each an op or a pipeline stage
of the bundle's RTL), so the worst module names the stage that misses the clock. When ``vivado`` is on PATH,
``trigger report`` runs Vivado synthesis with the clock constraint and reads its ``report_timing_summary``
(``parse_timing_summary``) instead: post-synthesis timing of the real tool, still before place and route.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from trigger.errors import ToolError
from trigger.synth import TIMING_MODEL

# The estimate's known error, as benchmarks/timing_calibration.md measured it (scripts/bench_timing_calibration.py)
ESTIMATE_NOTE = ("an estimate from trigger's cell-delay model (" + TIMING_MODEL + "), not a vendor timing "
                 "report: routing is a fixed figure per LUT. Its error against place-and-route timing is not known: "
                 "no published post-route figure of a design trigger regenerates could be read "
                 "(benchmarks/timing_calibration.md); the RTL builder's stage estimate is within +0.4% to +8.5% of "
                 "this Yosys figure on the benchmark designs. Treat a slack of a few tenths of a ns as a margin, "
                 "not a guarantee")


def module_descriptions(bundle: Path, sources) -> dict[str, str]:
    """Module name -> what it computes, from the header line the RTL templates write
    (``// <module>: op '<what>' (<kind>) of <top>, latency N cycles.``)."""
    found = {}
    for rel in sources:
        path = Path(bundle) / rel
        try:
            head = path.read_text(errors="replace").splitlines()[:1]
        except OSError:
            continue
        match = re.match(r"// (\S+): op '(.*)' \((.*)\) of ", head[0]) if head else None
        if match:
            found[match.group(1)] = match.group(2)
    return found


def timing_section(clock_ns: float, resources: dict, manifest: dict, bundle: Path | None = None,
                   vendor: dict | None = None) -> dict | None:
    """The report's ``timing``: clock, critical path, slack, the module (stage) that sets it, where the
    figures come from. None without a synthesis result (``--no-synth``)."""
    rtl = manifest.get("rtl", {})
    per_stage = [float(v) for v in rtl.get("delay_ns_per_stage") or []]
    section = {"clock_period_ns": round(clock_ns, 6), "clock_mhz": round(1000.0 / clock_ns, 3),
               "pipeline": rtl.get("pipeline")}
    if per_stage:  # the RTL builder's own estimate per register stage (the one pipeline auto places by)
        worst = max(range(len(per_stage)), key=per_stage.__getitem__)
        section["builder_estimate"] = {"delay_ns_per_stage": per_stage, "worst_stage": worst + 1,
                                       "worst_ns": per_stage[worst]}
    if vendor:
        path = vendor["critical_path_ns"]
        section.update(source=vendor["source"], critical_path_ns=path, slack_ns=round(clock_ns - path, 3),
                       fits=path <= clock_ns, module=vendor.get("module"), stage=vendor.get("path"),
                       note=vendor.get("note", ""), vendor=vendor)
        return section
    if "critical_path_ns" not in resources:
        return section if per_stage else None
    modules = {name: float(m.get("critical_path_ns") or 0.0) for name, m in (resources.get("modules") or {}).items()}
    path = float(resources["critical_path_ns"])
    worst_module = max(modules, key=modules.get) if modules else None
    described = module_descriptions(bundle, rtl.get("sources", [])) if bundle is not None else {}
    section.update(source="estimate", critical_path_ns=round(path, 3), slack_ns=round(clock_ns - path, 3),
                   fits=path <= clock_ns, module=worst_module, stage=described.get(worst_module), note=ESTIMATE_NOTE,
                   modules_over=sorted((n for n, v in modules.items() if v > clock_ns), key=lambda n: -modules[n]))
    return section


def headline(timing: dict | None) -> str:
    """' (estimated path X ns, slack Y ns)' for the latency line, or '' without a timing figure."""
    if not timing or timing.get("critical_path_ns") is None:
        return ""
    what = "estimated path" if timing["source"] == "estimate" else f"{timing['source']} path"
    return f" ({what} {timing['critical_path_ns']:.3f} ns, slack {timing['slack_ns']:+.3f} ns)"


def violation(timing: dict) -> dict:
    """The budget violation of a design that misses its clock, naming the module (stage), delay and slack."""
    where = timing.get("module") or "the design"
    if timing.get("stage"):
        where += f" ({timing['stage']})"
    return {"metric": "clock", "limit": timing["clock_period_ns"], "value": timing["critical_path_ns"],
            "module": timing.get("module"), "stage": timing.get("stage"), "slack_ns": timing["slack_ns"],
            "source": timing["source"],
            "message": (f"clock: {where}: {'estimated ' if timing['source'] == 'estimate' else ''}path "
                        f"{timing['critical_path_ns']:.3f} ns > {timing['clock_period_ns']:.3f} ns period "
                        f"({timing['clock_mhz']:g} MHz), slack {timing['slack_ns']:+.3f} ns")}


# ------------------------------------------------------------------ Vivado
_NUMBER = r"(-?\d+(?:\.\d+)?|inf)"


def parse_timing_summary(text: str, where: str = "timing summary") -> dict:
    """The figures of a Vivado ``report_timing_summary`` report: WNS/TNS/WHS/THS (ns) and failing endpoints from
    its Design Timing Summary, each clock's period from the Clock Summary, and the worst setup path (slack,
    source, destination, requirement, data path delay, logic levels) from the first Max Delay Paths entry.
    A report without a Design Timing Summary is a ToolError naming ``where``."""
    header = re.search(r"WNS\(ns\)\s+TNS\(ns\)\s+TNS Failing Endpoints\s+TNS Total Endpoints\s+WHS\(ns\)\s+THS\(ns\)"
                       r"\s+THS Failing Endpoints\s+THS Total Endpoints[^\n]*\n\s*-[-\s]*\n\s*([^\n]+)", text)
    if not header:
        raise ToolError(f"{where}: no Design Timing Summary table (not a Vivado report_timing_summary report)")
    values = header.group(1).split()
    if len(values) < 8:
        raise ToolError(f"{where}: the Design Timing Summary row has {len(values)} values, expected at least 8")
    try:
        wns, tns, tns_fail, tns_total, whs, ths, ths_fail, ths_total = values[:8]
        out = {"wns_ns": float(wns), "tns_ns": float(tns), "failing_endpoints": int(tns_fail),
               "total_endpoints": int(tns_total), "whs_ns": float(whs), "ths_ns": float(ths),
               "hold_failing_endpoints": int(ths_fail)}
    except ValueError:
        raise ToolError(f"{where}: unreadable Design Timing Summary row {header.group(1).strip()!r}") from None
    clocks = {}
    summary = re.search(r"Clock\s+Waveform\(ns\)\s+Period\(ns\)\s+Frequency\(MHz\)\s*\n\s*-[-\s]*\n(.*?)(?:\n\s*\n)",
                        text, re.S)
    if summary:
        for line in summary.group(1).splitlines():
            match = re.match(r"\s*(\S+)\s+\{[^}]*\}\s+" + _NUMBER + r"\s+" + _NUMBER, line)
            if match:
                clocks[match.group(1)] = {"period_ns": float(match.group(2)), "mhz": float(match.group(3))}
    out["clocks"] = clocks
    path = re.search(r"Max Delay Paths\s*\n-+\s*\nSlack(?: \((?:MET|VIOLATED)\))?\s*:\s*" + _NUMBER + r"ns(.*?)(?:\n\s*\n\s*\n|$)",
                     text, re.S)
    if path:
        body = path.group(2)

        def field(name, pattern=r"(\S+)"):
            match = re.search(rf"^\s*{name}:\s+{pattern}", body, re.M)
            return match.group(1) if match else None

        worst = {"slack_ns": float(path.group(1)), "source": field("Source"), "destination": field("Destination"),
                 "requirement_ns": _ns(field("Requirement")), "data_path_ns": _ns(field("Data Path Delay")),
                 "logic_levels": field("Logic Levels", r"(\d+)")}
        if worst["logic_levels"] is not None:
            worst["logic_levels"] = int(worst["logic_levels"])
        out["worst_path"] = worst
    out["met"] = out["wns_ns"] >= 0 and "Timing constraints are not met" not in text
    return out


def _ns(text: str | None) -> float | None:
    if text is None:
        return None
    match = re.match(_NUMBER + "ns", text)
    return float(match.group(1)) if match else None


def vendor_critical_path(parsed: dict, clock_ns: float, tool: str) -> dict:
    """The report's vendor timing from a parsed timing summary: critical path = period - WNS."""
    worst = parsed.get("worst_path") or {}
    period = next(iter(parsed["clocks"].values()))["period_ns"] if parsed.get("clocks") else clock_ns
    path = round(period - parsed["wns_ns"], 3)
    module = None
    if worst.get("destination"):
        module = worst["destination"].split("/")[0]
    where = f"{worst.get('source')} -> {worst.get('destination')}" if worst.get("source") else None
    return {"source": tool, "critical_path_ns": path, "wns_ns": parsed["wns_ns"], "tns_ns": parsed["tns_ns"],
            "failing_endpoints": parsed["failing_endpoints"], "module": module, "path": where,
            "logic_levels": worst.get("logic_levels"),
            "note": f"{tool} post-synthesis timing (report_timing_summary; placement and routing not run)"}


VIVADO_TCL = """# trigger: post-synthesis timing of the bundle's RTL (Vivado batch mode)
{reads}
synth_design -top {top} -part {part} -mode out_of_context
create_clock -name clk -period {period} [get_ports clk]
report_timing_summary -max_paths 1 -file {report}
"""


def vivado_timing(bundle: Path, sources, top: str, part: str, clock_ns: float) -> dict | None:
    """Vivado's post-synthesis timing of the bundle's RTL when ``vivado`` is on PATH (else None), parsed
    from its ``report_timing_summary``; files under ``reports/vivado``. A failed run is a ToolError."""
    vivado = shutil.which("vivado")
    if vivado is None:
        return None
    work = Path(bundle) / "reports" / "vivado"
    work.mkdir(parents=True, exist_ok=True)
    reads = "\n".join(f"read_verilog {{{Path(bundle) / s}}}" for s in sources)
    report = work / "timing_summary.rpt"
    (work / "timing.tcl").write_text(VIVADO_TCL.format(reads=reads, top=top, part=part, period=clock_ns,
                                                       report=report))
    run = subprocess.run([vivado, "-mode", "batch", "-nojournal", "-source", "timing.tcl"], cwd=work,
                         capture_output=True, text=True)
    if run.returncode != 0 or not report.exists():
        last = (run.stdout + run.stderr).strip().splitlines()[-1:] or ["no output"]
        raise ToolError(f"vivado timing run failed in {work}: {last[0]}")
    return vendor_critical_path(parse_timing_summary(report.read_text(), str(report)), clock_ns, "vivado")
