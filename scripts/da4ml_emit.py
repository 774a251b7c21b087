"""Emit Verilog for a fixed-point network with da4ml (runs in .venv-da4ml, not in .venv).

da4ml 0.6 needs numpy>=2 and the project's stack needs numpy<2, so this script
lives in its own venv (scripts/setup_da4ml.sh) and talks to the project only
through files: it reads a network spec written by scripts/bench_da4ml.py
(integer weights, every tensor's format as explicit fields), traces it with
da4ml's numpy-like tracer (each Dense becomes one constant-matrix-vector
multiplication solved by da4ml's CMVM solver), pipelines it at the requested
latency cutoffs and writes da4ml's Verilog project per cutoff, plus emit.json
(sources, module names, stage counts, I/O bit layout, da4ml's own cost
estimate, and da4ml's interpreter outputs on the spec's vectors as raw
integers of the network's output format). The tracing and the arithmetic
are shared with scripts/alkaid_emit.py (scripts/emit_spec.py).

Usage: .venv-da4ml/bin/python scripts/da4ml_emit.py SPEC.json OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import da4ml
from da4ml.codegen import RTLModel
from da4ml.trace import FixedVariableArray, HWConfig, comb_trace, to_pipeline
from da4ml.trace import fixed_variable as _fv
from da4ml.types import minimal_kif

from emit_spec import SpecError, Tracer, main


def pick_cutoff(comb, target_latency: int) -> float:
    """Smallest latency cutoff whose pipeline has at most target_latency - 1 stages."""
    def stages(c):
        return len(to_pipeline(comb, c, retiming=False, verbose=False).solutions)

    lo, hi = 0.5, max(comb.latency) + 1.0
    if stages(hi) + 1 > target_latency:
        raise SpecError(f"no pipelining reaches {target_latency} cycles")
    while hi - lo > 0.5:
        mid = (lo + hi) / 2
        if stages(mid) + 1 <= target_latency:
            hi = mid
        else:
            lo = mid
    return hi


def emit_design(comb, design: dict, spec: dict, out_dir: Path) -> dict:
    """One design pipelined at its latency cutoff (given, or the smallest that meets its target latency)."""
    label = design["label"]
    if "latency_cutoff" in design:
        cutoff = float(design["latency_cutoff"])
    else:
        cutoff = pick_cutoff(comb, int(design["target_latency"]))
    pipe = to_pipeline(comb, cutoff, retiming=True, verbose=False)
    path = out_dir / label
    core = design.get("core", "da4ml_core")
    model = RTLModel(pipe, core, path, flavor="verilog", latency_cutoff=cutoff, print_latency=False,
                     part_name=spec.get("part", "xcvu13p-flga2577-2-e"),
                     clock_period=float(spec.get("clock_period_ns", 5.0)))
    model.write()
    sources = sorted(str(p.relative_to(out_dir)) for p in (path / "src").rglob("*.v"))
    mems = sorted(str(p.relative_to(out_dir)) for p in (path / "src" / "memfiles").glob("*.mem"))
    n_stages = len(pipe.solutions)
    return {
        "label": label, "latency_cutoff": cutoff, "stages": n_stages,
        # da4ml's pipeline module registers its input and every stage output: stages + 1 clocks.
        "latency_cycles": n_stages + 1, "wrapper": f"{core}_wrapper", "sources": sources,
        "data_files": mems, "cost_estimate": float(pipe.cost), "reg_bits": int(pipe.reg_bits)}


DA4ML = Tracer(name="da4ml", version=da4ml.__version__, array=FixedVariableArray, hwconf=HWConfig(1, -1, -1),
               elements=lambda arr: arr._vars, comb_trace=comb_trace, element_kif=minimal_kif,
               seed_ids=lambda: _fv.rd.seed(0), emit_design=emit_design)

if __name__ == "__main__":
    sys.exit(main(DA4ML, __doc__.splitlines()[0]))
