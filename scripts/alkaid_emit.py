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
outputs on the spec's vectors as raw integers of the network's output format).

The arithmetic is the firmware model's (hls4ml's ap_fixed semantics):
- Dense: the exact sum of exact products plus the bias already cast to the
  accumulator (the spec only allows accumulators where that is exact, or wrap);
- casts: ap_fixed rounding then overflow. alkaid's quantize offers TRN and RND
  (round half up, as AP_RND) with WRAP/SAT/SAT_SYM; AP_RND_CONV (round half to
  even) is built from traced operations: add half-LSB minus one source LSB,
  plus the target LSB bit scaled to one source LSB, then truncate.

Usage: .venv-alkaid/bin/python scripts/alkaid_emit.py SPEC.json OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import importlib.metadata

from alkaid.codegen import RTLModel
from alkaid.trace import FVArray as FixedVariableArray
from alkaid.trace import HWConfig
from alkaid.trace import fixed_variable as _fv
from alkaid.trace import trace as comb_trace


class SpecError(ValueError):
    pass


def kif(fmt: dict) -> tuple[int, int, int]:
    """alkaid's (keep_negative, integer bits without sign, fractional bits) of an ap_fixed format."""
    signed = int(bool(fmt["signed"]))
    return signed, int(fmt["integer"]) - signed, int(fmt["width"]) - int(fmt["integer"])


def _round_conv_offset(x, f: int):
    """x plus the offset that makes truncation to f fractional bits round half to even."""
    _, _, fx = x.kif
    if fx <= f:
        return x  # no bits are dropped: nothing to round
    lsb_bit = x.quantize(0, 1 - f, f, "WRAP", "TRN")  # 0 or 2**-f: the bit that becomes the new LSB
    return x + (2.0 ** (-f - 1) - 2.0 ** -fx) + lsb_bit * 2.0 ** (f - fx)


def cast(arr: FixedVariableArray, fmt: dict, where: str) -> FixedVariableArray:
    """ap_fixed assignment to ``fmt``: rounding first, then the overflow mode."""
    k, i, f = kif(fmt)
    rounding, overflow = fmt["rounding"], fmt["overflow"]
    if overflow not in ("WRAP", "SAT", "SAT_SYM"):
        raise SpecError(f"{where}: overflow mode {overflow} has no alkaid equivalent (WRAP, SAT, SAT_SYM)")
    if rounding not in ("TRN", "RND", "RND_CONV"):
        raise SpecError(f"{where}: rounding mode {rounding} is not mapped to alkaid (TRN, RND, RND_CONV)")
    out = []
    for v in arr.view(np.ndarray).ravel():
        if rounding == "RND_CONV":
            v, mode = _round_conv_offset(v, f), "TRN"
        else:
            mode = rounding
        # Rounding then clamping equals clamping then rounding here: the bounds are on the grid.
        out.append(v.quantize(k, i, f, overflow, mode))
    return FixedVariableArray(np.array(out, dtype=object).reshape(arr.shape), arr.solver_options, hwconf=arr.hwconf)


def trace(spec: dict, hard_dc: int):
    """(inputs, outputs) traced through the spec's steps."""
    k, i, f = kif(spec["input"])
    n_in = int(spec["n_inputs"])
    inp = FixedVariableArray.from_kif(np.full(n_in, k), np.full(n_in, i), np.full(n_in, f),
                                      hwconf=HWConfig(1, -1, -1), solver_options={"hard_dc": hard_dc})
    x = inp
    for step in spec["steps"]:
        where = f"layer {step['layer']!r} ({step['op']})"
        if step["op"] == "dense":
            w = np.asarray(step["weight"], dtype=np.int64)
            if w.shape != (x.shape[0], len(step["bias"])):
                raise SpecError(f"{where}: weight shape {w.shape} does not fit {x.shape[0]} inputs")
            if np.abs(w).max(initial=0) >= 1 << 24:
                raise SpecError(f"{where}: weights wider than 24 bits are not exact in alkaid's float32 solver")
            x = x @ (w.astype(np.float64) * 2.0 ** -int(step["weight_frac"]))
            x = x + np.asarray(step["bias"], dtype=np.float64) * 2.0 ** -int(step["bias_frac"])
            if step.get("wrap_to"):
                x = cast(x, step["wrap_to"], where)
        elif step["op"] == "scale":
            s = np.asarray(step["scale"], dtype=np.float64) * 2.0 ** -int(step["scale_frac"])
            b = np.asarray(step["bias"], dtype=np.float64) * 2.0 ** -int(step["bias_frac"])
            x = x * s + b
        elif step["op"] == "relu":
            x = np.maximum(x, 0.0)
        elif step["op"] == "cast":
            x = cast(x, step["to"], where)
        else:
            raise SpecError(f"{where}: unknown step")
    return inp, x


def io_layout(qints) -> dict:
    """Bit layout of alkaid's *_wrapper ports: every element padded to one width, element 0 lowest."""
    kifs = [q.kif for q in qints]
    k = max(int(p[0]) for p in kifs)
    big_i = max(int(p[0]) + int(p[1]) for p in kifs)
    f = max(int(p[2]) for p in kifs)
    return {"signed": bool(k), "width": big_i + f, "frac": f}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("out_dir", type=Path)
    args = ap.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    _fv.rd.seed(0)  # alkaid names variables with random ids: seed them for repeatable output
    hard_dc = int(spec.get("hard_dc", 2))
    try:
        inp, out = trace(spec, hard_dc)
    except SpecError as err:
        print(f"alkaid_emit: {args.spec}: {err}", file=sys.stderr)
        return 2
    comb = comb_trace(inp, out, keep_dead_inputs=True)
    in_layout, out_layout = io_layout(comb.inp_qint), io_layout(comb.out_qint)
    out_fmt = spec["output"]
    out_frac = kif(out_fmt)[2]

    result = {"alkaid_version": importlib.metadata.version("alkaid"), "hard_dc": hard_dc, "input_layout": in_layout,
              "output_layout": out_layout, "comb_cost_estimate": float(comb.cost),
              "comb_latency_estimate": float(max(comb.latency)), "designs": []}
    vectors = spec.get("vectors")
    if vectors:
        in_frac = kif(spec["input"])[2]
        data = np.asarray(vectors, dtype=np.float64) * 2.0 ** -in_frac
        pred = comb.predict(data, n_threads=1)
        raw = np.round(pred * 2.0 ** out_frac)
        if not np.array_equal(raw, pred * 2.0 ** out_frac):
            raise SystemExit("alkaid_emit: interpreter outputs are not on the output format's grid")
        result["interpreter_outputs"] = raw.astype(np.int64).tolist()

    for design in spec["designs"]:
        label = design["label"]
        # alkaid's wrapper registers its input and the output of every stage: n_stages + 1 clocks
        n_stages = int(design["target_latency"]) - 1
        if n_stages < 1:
            print(f"alkaid_emit: design {label!r}: a latency of {design['target_latency']} leaves no stage", file=sys.stderr)
            return 2
        path = args.out_dir / label
        core = design.get("core", "alkaid_core")
        model = RTLModel(comb, path, prj_name=core, flavor="verilog", n_stages=n_stages, print_latency=False,
                         part_name=spec.get("part", "xcvu13p-flga2577-2-e"),
                         clock_period=float(spec.get("clock_period_ns", 5.0)))
        model.write()
        meta = json.loads((path / "metadata.json").read_text())
        sources = sorted(str(p.relative_to(args.out_dir)) for p in (path / "src").rglob("*.v"))
        mems = sorted(str(p.relative_to(args.out_dir)) for p in (path / "src").rglob("*.mem"))
        result["designs"].append({
            "label": label, "n_stages": n_stages, "stages": n_stages, "latency_cycles": n_stages + 1,
            "wrapper": f"{core}_wrapper", "sources": sources, "data_files": mems,
            "cost_estimate": float(meta.get("cost", 0.0)), "reg_bits": int(model.reg_bits),
            "max_comb_delay_estimate": meta.get("max_comb_delay")})
    (args.out_dir / "emit.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
