"""Emit Verilog for a fixed-point network with alkaid (runs in .venv-alkaid, not in .venv).

alkaid (da4ml's successor) needs numpy>=2 and the project's stack needs numpy<2, so this
script lives in its own venv (scripts/setup_alkaid.sh) and talks to the project only
through files: it reads the same network spec scripts/bench_da4ml.py writes for
scripts/da4ml_emit.py (integer weights, every tensor's format as explicit fields), traces
it with alkaid's numpy-like tracer (each Dense one constant-matrix-vector multiplication
for alkaid's CMVM solver), pipelines it into the requested number of stages (alkaid's
``n_stages``: its delay-constrained pipelining, ternary adders fused as RTLModel does by
default) and writes alkaid's Verilog project per design, plus emit.json (sources, module
names, stage counts, I/O bit layout, alkaid's own cost estimate, and its interpreter's
outputs on the spec's vectors as raw integers of the network's output format). The
tracing and the arithmetic are shared with scripts/da4ml_emit.py (scripts/emit_spec.py).

Usage: .venv-alkaid/bin/python scripts/alkaid_emit.py SPEC.json OUT_DIR
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
from alkaid.codegen import RTLModel
from alkaid.trace import FVArray, HWConfig
from alkaid.trace import fixed_variable as _fv
from alkaid.trace import trace as comb_trace

from emit_spec import SpecError, Tracer, main


def emit_design(comb, design: dict, spec: dict, out_dir: Path) -> dict:
    """One design pipelined into its target latency's stages."""
    label = design["label"]
    # alkaid's wrapper registers its input and the output of every stage: n_stages + 1 clocks
    n_stages = int(design["target_latency"]) - 1
    if n_stages < 1:
        raise SpecError(f"a latency of {design['target_latency']} leaves no stage")
    path = out_dir / label
    core = design.get("core", "alkaid_core")
    model = RTLModel(comb, path, prj_name=core, flavor="verilog", n_stages=n_stages, print_latency=False,
                     part_name=spec.get("part", "xcvu13p-flga2577-2-e"),
                     clock_period=float(spec.get("clock_period_ns", 5.0)))
    model.write()
    meta = json.loads((path / "metadata.json").read_text())
    sources = sorted(str(p.relative_to(out_dir)) for p in (path / "src").rglob("*.v"))
    mems = sorted(str(p.relative_to(out_dir)) for p in (path / "src").rglob("*.mem"))
    return {
        "label": label, "n_stages": n_stages, "stages": n_stages, "latency_cycles": n_stages + 1,
        "wrapper": f"{core}_wrapper", "sources": sources, "data_files": mems,
        "cost_estimate": float(meta.get("cost", 0.0)), "reg_bits": int(model.reg_bits),
        "max_comb_delay_estimate": meta.get("max_comb_delay")}


ALKAID = Tracer(name="alkaid", version=importlib.metadata.version("alkaid"), array=FVArray,
                hwconf=HWConfig(1, -1, -1), elements=lambda arr: arr.view(np.ndarray), comb_trace=comb_trace,
                element_kif=lambda qint: qint.kif, seed_ids=lambda: _fv.rd.seed(0), emit_design=emit_design)

if __name__ == "__main__":
    sys.exit(main(ALKAID, __doc__.splitlines()[0]))
