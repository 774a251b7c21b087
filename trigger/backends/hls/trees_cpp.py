"""The HLS C++ project of a tree ensemble (one ``tree_ensemble`` op) and its g++ C simulation.

Each tree is a function of nested ``if (x <= threshold)`` on the inputs' own
ap_fixed/ap_int types (thresholds are values of those types, written as exact
decimal literals), setting ``leaf_t`` values; the top adds them to ``accum_t``
sums and assigns the sums to the output types. For trees, this C++ is the
specification of the HLS side; the emulator and the RTL must match it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trigger.errors import FirmwareModelError
from trigger.fixed import FixedFormat
from trigger.ir.model import FirmwareModel
from trigger.ir.ops.tree_ensemble import TreeEnsemble
from trigger.backends.hls.gxx_csim import run_testbench
from trigger.templates import write

BACKEND = "trees_cpp"
TEMPLATES = {
    "{top}.h": "hls_trees/trees.h.j2",
    "{top}.cpp": "hls_trees/trees.cpp.j2",
    "{top}_test.cpp": "hls_trees/trees_test.cpp.j2",
    "build_prj.tcl": "hls_trees/build_prj.tcl.j2",
}
MAX_INPUT_BITS = 32  # inputs travel as int32 through the C simulation
MAX_OUTPUT_BITS = 64


def tree_op(model: FirmwareModel) -> TreeEnsemble:
    if [op.kind for op in model.ops] != ["tree_ensemble"]:
        raise FirmwareModelError(f"model {model.name!r}: the trees C++ backend needs one tree_ensemble op, got "
                                 f"{' -> '.join(op.kind for op in model.ops) or 'none'}")
    return model.ops[0]


def literal(raw: int, fmt: FixedFormat) -> str:
    """The exact decimal value of a raw integer of ``fmt`` (a double that converts without rounding)."""
    value = float(np.ldexp(float(raw), -fmt.fractional))
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def context(model: FirmwareModel, top: str, part: str, clock_period_ns: float) -> dict:
    op = tree_op(model)
    for i, f in enumerate(op.input.formats):
        if f.width > MAX_INPUT_BITS - (0 if f.signed else 1):
            raise FirmwareModelError(f"model {model.name!r}: input element {i} ({f.cpp}) does not fit int32")
    inputs = [{"name": f"x{i}", "cpp": f.cpp, "width": f.width,
               "label": op.input.names[i] if op.input.names else ""} for i, f in enumerate(op.input.formats)]
    k = op.n_classes
    outputs = [{"name": f"score{c}", "cpp": f.cpp, "width": f.width} for c, f in enumerate(op.output.formats[:k])]
    scores = list(outputs)
    class_name, decision_test = "", ""
    if op.decision != "none":
        f = op.output.formats[-1]
        class_name = "cls"
        outputs.append({"name": class_name, "cpp": f.cpp, "width": f.width})
        if op.decision == "threshold":
            t, acc = op.decision_threshold, op.accum_fmt
            decision_test = "0" if t >= acc.max_raw else "1" if t < acc.min_raw else \
                f"sum[0] > accum_t({literal(t, acc)})"
    if any(o["width"] > MAX_OUTPUT_BITS for o in outputs):
        raise FirmwareModelError(f"model {model.name!r}: an output is wider than {MAX_OUTPUT_BITS} bits")

    def node(n: int) -> dict:
        if op.feature[n] < 0:
            return {"leaf": True, "values": [literal(int(v), op.leaf_fmt) for v in op.value[n]]}
        f = int(op.feature[n])
        fmt, t = op.input.formats[f], int(op.threshold[n])
        test = "true" if t >= fmt.max_raw else "false" if t < fmt.min_raw else f"x{f} <= x{f}_t({literal(t, fmt)})"
        return {"leaf": False, "test": test, "left": node(int(op.left[n])), "right": node(int(op.right[n]))}

    trees = []
    for root, depth, leaves in zip(op.roots, op.tree_depths(), op.tree_leaves()):
        classes = [c for c in range(k) if np.any(op.value[leaves, c] != 0)]
        trees.append({"root": node(int(root)), "depth": depth, "classes": classes})
    return {"top": top, "inputs": inputs, "outputs": outputs, "scores": scores, "class_name": class_name,
            "decision": op.decision, "decision_test": decision_test, "n_trees": op.n_trees, "n_classes": k,
            "trees": trees, "bias": [literal(int(b), op.accum_fmt) for b in op.bias], "leaf_cpp": op.leaf_fmt.cpp,
            "accum_cpp": op.accum_fmt.cpp, "part": part, "clock_period_ns": round(float(clock_period_ns), 4)}


def write_project(model: FirmwareModel, folder: Path, *, top: str, part: str, clock_period_ns: float) -> dict:
    """Writes the HLS project into ``folder``; returns the manifest's "hls" section."""
    ctx = context(model, top, part, clock_period_ns)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for pattern, template in TEMPLATES.items():
        write(folder / pattern.format(top=top), template, **ctx)
    rel = folder.name
    return {"backend": BACKEND, "top": top, "sources": [f"{rel}/{top}.cpp"], "headers": [f"{rel}/{top}.h"],
            "testbench": f"{rel}/{top}_test.cpp", "tcl": f"{rel}/build_prj.tcl"}


def csim(bundle: Path, manifest: dict, model: FirmwareModel, raw: np.ndarray, work: Path) -> tuple[np.ndarray, dict]:
    """The bundle's HLS C++ compiled with g++ (hls4ml's ap_types headers) and run on raw inputs."""
    # -O0: thousands of nested ifs compile fast, and 10^4 vectors run fast anyway
    bits, timings = run_testbench(bundle, manifest, raw, work, optimisation="-O0", word_dtype="<u8",
                                  words_per_vector=model.output.n)
    return model.output.from_bits(bits), timings

