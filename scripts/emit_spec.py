"""What scripts/da4ml_emit.py and scripts/alkaid_emit.py share: the network spec traced, and the command line.

da4ml and alkaid (its successor) need numpy>=2 and the project's stack needs numpy<2, so each emitter
runs in its own venv and talks to the project only through files: it reads the network spec
scripts/bench_da4ml.py writes (integer weights, every tensor's format as explicit fields) and writes
its tool's Verilog projects plus emit.json. This module imports neither tool: each emitter passes its
tool's tracer in a ``Tracer``, so it runs in either venv.

The arithmetic is the firmware model's (hls4ml's ap_fixed semantics):
- Dense: the exact sum of exact products plus the bias already cast to the
  accumulator (the spec only allows accumulators where that is exact, or wrap);
- casts: ap_fixed rounding then overflow. The tools' quantize offers TRN and RND
  (round half up, as AP_RND) with WRAP/SAT/SAT_SYM; AP_RND_CONV (round half to
  even) is built from traced operations: add half-LSB minus one source LSB,
  plus the target LSB bit scaled to one source LSB, then truncate.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class Tracer:
    """One tool's side of the emitter: the few places where da4ml's and alkaid's APIs differ."""
    name: str  # "da4ml" or "alkaid": in messages and in emit.json's "<name>_version"
    version: str
    array: type  # the tool's fixed-variable array
    hwconf: Any  # the tool's HWConfig for the inputs
    elements: Callable  # array -> numpy array of its fixed variables
    comb_trace: Callable  # the tool's trace: (inputs, outputs) -> the combinational graph
    element_kif: Callable  # one of the graph's inp_qint/out_qint -> (keep_negative, integers, fractional)
    seed_ids: Callable  # seeds the random ids the tool names variables with, for repeatable output
    emit_design: Callable  # (comb, design, spec, out_dir) -> the design's emit.json entry; SpecError if impossible


def kif(fmt: dict) -> tuple[int, int, int]:
    """The tools' (keep_negative, integer bits without sign, fractional bits) of an ap_fixed format."""
    signed = int(bool(fmt["signed"]))
    return signed, int(fmt["integer"]) - signed, int(fmt["width"]) - int(fmt["integer"])


def _round_conv_offset(x, f: int):
    """x plus the offset that makes truncation to f fractional bits round half to even."""
    _, _, fx = x.kif
    if fx <= f:
        return x  # no bits are dropped: nothing to round
    lsb_bit = x.quantize(0, 1 - f, f, "WRAP", "TRN")  # 0 or 2**-f: the bit that becomes the new LSB
    return x + (2.0 ** (-f - 1) - 2.0 ** -fx) + lsb_bit * 2.0 ** (f - fx)


def cast(tracer: Tracer, arr, fmt: dict, where: str):
    """ap_fixed assignment to ``fmt``: rounding first, then the overflow mode."""
    k, i, f = kif(fmt)
    rounding, overflow = fmt["rounding"], fmt["overflow"]
    if overflow not in ("WRAP", "SAT", "SAT_SYM"):
        raise SpecError(f"{where}: overflow mode {overflow} has no {tracer.name} equivalent (WRAP, SAT, SAT_SYM)")
    if rounding not in ("TRN", "RND", "RND_CONV"):
        raise SpecError(f"{where}: rounding mode {rounding} is not mapped to {tracer.name} (TRN, RND, RND_CONV)")
    out = []
    for v in tracer.elements(arr).ravel():
        if rounding == "RND_CONV":
            v, mode = _round_conv_offset(v, f), "TRN"
        else:
            mode = rounding
        # Rounding then clamping equals clamping then rounding here: the bounds are on the grid.
        out.append(v.quantize(k, i, f, overflow, mode))
    return tracer.array(np.array(out, dtype=object).reshape(arr.shape), arr.solver_options, hwconf=arr.hwconf)


def trace(tracer: Tracer, spec: dict, hard_dc: int):
    """(inputs, outputs) traced through the spec's steps."""
    k, i, f = kif(spec["input"])
    n_in = int(spec["n_inputs"])
    inp = tracer.array.from_kif(np.full(n_in, k), np.full(n_in, i), np.full(n_in, f),
                                hwconf=tracer.hwconf, solver_options={"hard_dc": hard_dc})
    x = inp
    for step in spec["steps"]:
        where = f"layer {step['layer']!r} ({step['op']})"
        if step["op"] == "dense":
            w = np.asarray(step["weight"], dtype=np.int64)
            if w.shape != (x.shape[0], len(step["bias"])):
                raise SpecError(f"{where}: weight shape {w.shape} does not fit {x.shape[0]} inputs")
            if np.abs(w).max(initial=0) >= 1 << 24:
                raise SpecError(f"{where}: weights wider than 24 bits are not exact in {tracer.name}'s float32 solver")
            x = x @ (w.astype(np.float64) * 2.0 ** -int(step["weight_frac"]))
            x = x + np.asarray(step["bias"], dtype=np.float64) * 2.0 ** -int(step["bias_frac"])
            if step.get("wrap_to"):
                x = cast(tracer, x, step["wrap_to"], where)
        elif step["op"] == "scale":
            s = np.asarray(step["scale"], dtype=np.float64) * 2.0 ** -int(step["scale_frac"])
            b = np.asarray(step["bias"], dtype=np.float64) * 2.0 ** -int(step["bias_frac"])
            x = x * s + b
        elif step["op"] == "relu":
            x = np.maximum(x, 0.0)
        elif step["op"] == "cast":
            x = cast(tracer, x, step["to"], where)
        else:
            raise SpecError(f"{where}: unknown step")
    return inp, x


def io_layout(tracer: Tracer, qints) -> dict:
    """Bit layout of the tool's *_wrapper ports: every element padded to one width, element 0 lowest."""
    kifs = [tracer.element_kif(q) for q in qints]
    k = max(int(p[0]) for p in kifs)
    big_i = max(int(p[0]) + int(p[1]) for p in kifs)
    f = max(int(p[2]) for p in kifs)
    return {"signed": bool(k), "width": big_i + f, "frac": f}


def main(tracer: Tracer, description: str, argv=None) -> int:
    """SPEC.json OUT_DIR: every design of the spec written by ``tracer``'s tool, and OUT_DIR/emit.json."""
    prog = f"{tracer.name}_emit"
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("spec", type=Path)
    ap.add_argument("out_dir", type=Path)
    args = ap.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    tracer.seed_ids()
    hard_dc = int(spec.get("hard_dc", 2))
    try:
        inp, out = trace(tracer, spec, hard_dc)
    except SpecError as err:
        print(f"{prog}: {args.spec}: {err}", file=sys.stderr)
        return 2
    comb = tracer.comb_trace(inp, out, keep_dead_inputs=True)
    in_layout, out_layout = io_layout(tracer, comb.inp_qint), io_layout(tracer, comb.out_qint)
    out_fmt = spec["output"]
    out_frac = kif(out_fmt)[2]

    result = {f"{tracer.name}_version": tracer.version, "hard_dc": hard_dc, "input_layout": in_layout,
              "output_layout": out_layout, "comb_cost_estimate": float(comb.cost),
              "comb_latency_estimate": float(max(comb.latency)), "designs": []}
    vectors = spec.get("vectors")
    if vectors:
        in_frac = kif(spec["input"])[2]
        data = np.asarray(vectors, dtype=np.float64) * 2.0 ** -in_frac
        pred = comb.predict(data, n_threads=1)
        raw = np.round(pred * 2.0 ** out_frac)
        if not np.array_equal(raw, pred * 2.0 ** out_frac):
            raise SystemExit(f"{prog}: interpreter outputs are not on the output format's grid")
        result["interpreter_outputs"] = raw.astype(np.int64).tolist()

    for design in spec["designs"]:
        try:
            result["designs"].append(tracer.emit_design(comb, design, spec, args.out_dir))
        except SpecError as err:
            print(f"{prog}: design {design['label']!r}: {err}", file=sys.stderr)
            return 2
    (args.out_dir / "emit.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0
