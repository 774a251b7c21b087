"""Benchmark: trigger's tree-ensemble firmware beside conifer's VHDL, on the same ensembles and vectors.

For each ensemble (the built-in example and four more of different shapes, from scikit-learn and
xgboost, regressors and classifiers, up to 100 trees of depth 5, plus a small one on 12 input bits
checked on every input):
1. trigger builds the bundle and verifies it 3-way (emulator == HLS C simulation == RTL under
   cocotb/Verilator) on its stored vectors (10,000 by default; every input for the small one),
   then synthesises the RTL with Yosys (LUT, FF, logic levels);
2. the same ensemble (our firmware model's thresholds and quantized leaves, converted into
   conifer's dictionary IR with one ap_fixed precision that holds every input, threshold, leaf and
   sum exactly) goes through conifer's VHDL backend and is simulated under GHDL on the same vectors;
   its per-class sums are compared, integer for integer, with ours (the emulator's accumulator,
   which equals our RTL's outputs wherever the design outputs the sums; for the example, whose
   firmware casts the sum to a pT word, conifer's sums are also cast the same way and compared
   with our verified outputs); the latencies, input to output in clock cycles, side by side.

Needs scripts/setup_conifer.sh (GHDL, nlohmann-json3-dev, conifer, xgboost-cpu).
Usage: .venv/bin/python scripts/bench_conifer.py [--vectors N] [--only NAME ...]
Writes benchmarks/conifer_comparison.json and benchmarks/conifer_comparison.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trigger.bundle import build_bundle  # noqa: E402
from trigger.fixed import FixedFormat  # noqa: E402
from trigger.frontends import BuildOptions  # noqa: E402
from trigger.frontends.trees import save_ensemble  # noqa: E402
from trigger.ir.model import FirmwareModel, emulate  # noqa: E402
from trigger.ir.ops.tree_ensemble import TreeEnsemble  # noqa: E402
from trigger.ir.ranges import signed_width  # noqa: E402
from trigger.report import build_report  # noqa: E402
from trigger.templates import render  # noqa: E402
from trigger.toolchain import find_tool  # noqa: E402
from trigger.vectors import cover  # noqa: E402
from trigger.verify import verify_bundle  # noqa: E402

OUT = REPO / "build" / "bench_conifer"
BENCH = REPO / "benchmarks"
SEED = 11


# ------------------------------------------------------------------ the ensembles
def _jets(n: int, fmt: FixedFormat, seed: int):
    from trigger.data.jets import generate

    x, y = generate(n, seed=seed)
    raw = np.stack([fmt.quantize(x[:, i]) for i in range(x.shape[1])], axis=1)
    return fmt.to_float(raw), y  # on the input grid


def _muon(n: int, seed: int):
    from trigger.data.muon import FEATURES, simulate_muons

    sim = simulate_muons(n, seed)
    return np.stack([sim[f.name] for f in FEATURES], axis=1).astype(np.float64), np.minimum(sim["pt"], 256.0)


def _muon_inputs():
    from trigger.data.muon import FEATURES

    return [{"name": f.name, "format": f"{'int' if f.signed else 'uint'}<{f.bits}>"} for f in FEATURES]


def _folder(name: str, model_file: str, inputs, leaf_bits: int, vectors: int) -> dict:
    return {"kind": "bdt", "name": name, "model": {"file": model_file}, "inputs": inputs,
            "leaf": {"fractional_bits": leaf_bits}, "target": {"clock_mhz": 240}, "verify": {"vectors": vectors}}


def case_jets_w_vs_qcd_gbc(folder: Path, vectors: int) -> dict:
    """scikit-learn GradientBoostingClassifier, binary (W against quark/gluon jets): 60 trees, depth 4."""
    from sklearn.ensemble import GradientBoostingClassifier

    fmt = FixedFormat.parse("fixed<10,4>")
    x, y = _jets(30000, fmt, SEED)
    keep = np.isin(y, (0, 1, 2))
    model = GradientBoostingClassifier(n_estimators=60, max_depth=4, learning_rate=0.2, random_state=SEED)
    model.fit(x[keep], (y[keep] == 2).astype(int))
    save_ensemble(model, folder / "ensemble.json")
    return _folder(folder.name, "ensemble.json", fmt.hls4ml, 8, vectors)


def case_jets_5class_xgb(folder: Path, vectors: int) -> dict:
    """xgboost multi-class (5 jet classes), 20 rounds x 5 classes = 100 trees of depth 4, from its JSON file."""
    import xgboost as xgb

    fmt = FixedFormat.parse("fixed<10,4>")
    x, y = _jets(30000, fmt, SEED + 1)
    model = xgb.XGBClassifier(n_estimators=20, max_depth=4, learning_rate=0.3, random_state=SEED, n_jobs=1)
    model.fit(x, y)
    model.get_booster().save_model(str(folder / "model.json"))
    return _folder(folder.name, "model.json", fmt.hls4ml, 10, vectors)


def case_muon_pt_rf(folder: Path, vectors: int) -> dict:
    """scikit-learn RandomForestRegressor on the raw muon features: 40 trees of depth 5."""
    from sklearn.ensemble import RandomForestRegressor

    x, pt = _muon(40000, SEED)
    model = RandomForestRegressor(n_estimators=40, max_depth=5, random_state=SEED, n_jobs=1).fit(x, pt)
    save_ensemble(model, folder / "ensemble.json")
    return _folder(folder.name, "ensemble.json", _muon_inputs(), 6, vectors)


def case_small_exhaustive_gbr(folder: Path, vectors: int) -> dict:
    """scikit-learn GradientBoostingRegressor on 3 x 4-bit inputs (12 bits): 10 trees of depth 3, every input."""
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(SEED)
    x = rng.integers(-8, 8, (4000, 3)).astype(np.float64)
    y = 0.5 * x[:, 0] - np.abs(x[:, 1]) + 0.1 * x[:, 2] ** 2 + rng.normal(0, 0.5, len(x))
    model = GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=SEED).fit(x, y)
    save_ensemble(model, folder / "ensemble.json")
    return _folder(folder.name, "ensemble.json", "int<4>", 6, min(vectors, 1000))


CASES = {  # name -> (maker of a model folder's trigger.yml, or None for the built-in example)
    "muon_pt_bdt": None,
    "jets_w_vs_qcd_gbc": case_jets_w_vs_qcd_gbc,
    "jets_5class_xgb": case_jets_5class_xgb,
    "muon_pt_rf": case_muon_pt_rf,
    "small_exhaustive_gbr": case_small_exhaustive_gbr,
}


# ------------------------------------------------------------------ conifer
def conifer_environment() -> None:
    """conifer compiles a fixed-point converter with ``python3 -m pybind11`` and the ap_types headers,
    which its wheel lacks: point it at this venv's python and at hls4ml's ap_types."""
    from trigger.toolchain import ap_types_include

    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ.setdefault("XILINX_AP_INCLUDE", str(ap_types_include()))


def conifer_dict(op: TreeEnsemble) -> tuple[dict, str, dict]:
    """Our op's ensemble in conifer's dictionary IR, with one precision holding everything exactly.

    conifer's VHDL uses one ap_fixed for inputs, thresholds and scores; we pick F = the most
    fractional bits of any input or the leaves, and enough integer bits for every (shifted) input,
    threshold and sum. Returns (dict, precision, scaling facts)."""
    frac = max([f.fractional for f in op.input.formats] + [op.leaf_fmt.fractional])
    widths = [f.width + (0 if f.signed else 1) + frac - f.fractional + 1 for f in op.input.formats]  # +1: t = min-1
    lo, hi = op.sum_bounds()
    widths.append(signed_width(min(lo + [0]), max(hi + [0])) + frac - op.leaf_fmt.fractional)
    width = max(widths) + 1
    precision = f"ap_fixed<{width},{width - frac}>"
    k = op.n_classes
    per_class: list[list[dict]] = [[] for _ in range(k)]
    depth = max(op.tree_depths())
    for root, leaves in zip(op.roots, op.tree_leaves()):
        order, index, stack = [], {}, [int(root)]
        while stack:  # breadth-first renumbering from 0 (conifer's trees are local arrays)
            node = stack.pop(0)
            index[node] = len(order)
            order.append(node)
            if op.feature[node] >= 0:
                stack += [int(op.left[node]), int(op.right[node])]
        for c in range(k):
            if not np.any(op.value[leaves, c] != 0):
                continue
            tree = {"feature": [], "threshold": [], "value": [], "children_left": [], "children_right": [],
                    "weight": []}
            for node in order:
                f = int(op.feature[node])
                if f >= 0:
                    fmt = op.input.formats[f]
                    tree["feature"].append(f)
                    tree["threshold"].append(float(np.ldexp(float(op.threshold[node]), -fmt.fractional)))
                    tree["children_left"].append(index[int(op.left[node])])
                    tree["children_right"].append(index[int(op.right[node])])
                else:
                    tree["feature"].append(-2)
                    tree["threshold"].append(-2.0)
                    tree["children_left"].append(-1)
                    tree["children_right"].append(-1)
                tree["value"].append(float(np.ldexp(float(op.value[node, c]), -op.leaf_fmt.fractional)))
                tree["weight"].append([1 if i == f else 0 for i in range(op.input.n)])
            per_class[c].append(tree)
    n_trees = max(len(t) for t in per_class)
    empty = {"feature": [-2], "threshold": [-2.0], "value": [0.0], "children_left": [-1], "children_right": [-1],
             "weight": [[0] * op.input.n]}
    for trees in per_class:  # conifer wants the same number of trees in every class
        trees += [json.loads(json.dumps(empty)) for _ in range(n_trees - len(trees))]
    ensemble = {"max_depth": depth, "n_trees": n_trees, "n_features": op.input.n, "n_classes": k,
                "trees": [[per_class[c][i] for c in range(k)] for i in range(n_trees)],
                "init_predict": [float(np.ldexp(float(b), -op.accum_fmt.fractional)) for b in op.bias],
                "norm": 1, "library": "sklearn", "splitting_convention": "<="}
    return ensemble, precision, {"fractional": frac, "width": width, "trees_per_class": n_trees}


def run_conifer(op: TreeEnsemble, raw: np.ndarray, work: Path) -> dict:
    """conifer's VHDL of ``op``, compiled and simulated with GHDL on raw inputs: per-class sums (raw, ours' LSB)."""
    import conifer
    from conifer.backends.vhdl import simulators

    simulators.set_simulator("ghdl")
    conifer_environment()
    ensemble, precision, facts = conifer_dict(op)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = {"Backend": "vhdl", "ProjectName": "bdt", "OutputDir": str(work / "prj"), "Precision": precision,
           "XilinxPart": "xcvu13p-flga2577-2-e"}
    cwd = os.getcwd()
    os.chdir(work)  # conifer compiles its fixed-point converter in the current folder
    try:
        t0 = time.perf_counter()
        model = conifer.model.make_model(ensemble, cfg)
        model.write()
        prj = Path(cfg["OutputDir"])
        (prj / "firmware" / "BDTTestbench.vhd").write_text(render("trees/conifer_testbench.vhd.j2"))
        if subprocess.run(["sh", "ghdl_compile.sh"], cwd=prj, capture_output=True, text=True).returncode != 0:
            raise RuntimeError(f"GHDL failed to compile conifer's VHDL; see {prj}")
        t1 = time.perf_counter()
        frac = facts["fractional"]
        shifted = np.stack([raw[:, i] << (frac - f.fractional) for i, f in enumerate(op.input.formats)], axis=1)
        np.savetxt(prj / "SimulationInput.txt", shifted, fmt="%d", delimiter=" ")
        run = subprocess.run(["ghdl", "-r", "--std=08", "--work=xil_defaultlib", "testbench"], cwd=prj,
                             capture_output=True, text=True)
        t2 = time.perf_counter()
        if run.returncode != 0:
            raise RuntimeError(f"GHDL simulation failed: {(run.stderr or run.stdout).strip()[:200]}")
        y = np.loadtxt(prj / "SimulationOutput.txt", dtype=np.int64, ndmin=2)
        latency = int((prj / "latency.txt").read_text().split()[0])
    finally:
        os.chdir(cwd)
    shift = frac - op.accum_fmt.fractional
    exact = np.all(y % (1 << shift) == 0) if shift else True
    return {"sums": y >> shift, "exact_shift": bool(exact), "latency_cycles": latency, "precision": precision,
            "trees_per_class": facts["trees_per_class"], "compile_s": round(t1 - t0, 1), "sim_s": round(t2 - t1, 1),
            "formula_latency": 1 + ensemble["max_depth"] + int(np.ceil(np.log2(ensemble["n_trees"]))),
            "version": str(conifer.__version__)}


# ------------------------------------------------------------------ one ensemble
def bench_case(name: str, vectors: int, reuse: bool = False) -> dict:
    folder = OUT / "models" / name
    bundle = OUT / "bundles" / name
    if reuse:  # the bundle built, verified and reported by an earlier run: rerun conifer only
        verify = json.loads((bundle / "reports" / "verify.json").read_text())
        report = json.loads((bundle / "reports" / "report.json").read_text())
        t0 = t1 = t2 = t3 = time.perf_counter()
    elif CASES[name] is None:
        source, options = REPO / "models" / name, BuildOptions(vectors=vectors)
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        config = CASES[name](folder, vectors)
        (folder / "trigger.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        source, options = folder, BuildOptions()
    if not reuse:
        t0 = time.perf_counter()
        build_bundle(source, bundle, options)
        t1 = time.perf_counter()
        verify = verify_bundle(bundle, progress=True)
        t2 = time.perf_counter()
        report = build_report(bundle, synth=True)
        t3 = time.perf_counter()
    model = FirmwareModel.load(bundle)
    op = model.ops[0]
    stored = np.load(bundle / "vectors" / "inputs.npy", allow_pickle=False)
    covered = cover(model)
    raw = stored if covered is None else np.vstack([stored, covered.inputs])
    ours = emulate(model, raw).outputs
    sums = op.sums(raw)
    con = run_conifer(op, raw, OUT / "conifer" / name)
    k = op.n_classes
    n = len(raw)
    got = con["sums"][:n]
    equal_sums = int(np.sum(np.all(got == sums, axis=1))) if got.shape == sums.shape else 0
    cast = np.stack([op.output.formats[c].cast(got[:, c], op.accum_fmt) for c in range(k)], axis=1) \
        if got.shape == sums.shape else np.zeros_like(ours[:, :k])
    equal_outputs = int(np.sum(np.all(cast == ours[:, :k], axis=1)))
    first = None
    bad = np.flatnonzero(np.any(got != sums, axis=1)) if got.shape == sums.shape else np.arange(1)
    if bad.size:
        i = int(bad[0])
        first = {"vector": i, "input": raw[i].tolist(), "ours": sums[i].tolist(),
                 "conifer": got[i].tolist() if i < len(got) else None}
    res = report["resources"]
    return {
        "name": name, "source": (json.loads((bundle / "manifest.json").read_text())["trees"]["source"]),
        "trees": op.n_trees, "max_depth": max(op.tree_depths()), "nodes": op.n_nodes, "inputs": op.input.n,
        "classes": k, "decision": op.decision, "input_formats": op.input.describe(), "leaf": op.leaf_fmt.cpp,
        "accum": op.accum_fmt.cpp, "output": model.output.describe(),
        "verify": {"vectors": verify["vectors"], "exhaustive": verify["exhaustive"], "mismatches": verify["mismatches"],
                   "pass": verify["pass"], "simulator": verify["simulator"]},
        "ours": {"latency_cycles": verify["latency_cycles"], "latency_ns": report["latency"]["ns"],
                 "clock_mhz": round(1000.0 / report["latency"]["clock_period_ns"], 1),
                 "LUT": res.get("LUT"), "FF": res.get("FF"), "logic_levels": res.get("logic_levels")},
        "conifer": {"latency_cycles": con["latency_cycles"], "latency_formula": con["formula_latency"],
                    "precision": con["precision"], "trees_per_class": con["trees_per_class"],
                    "vectors": int(len(got)), "equal_sums": equal_sums, "equal_outputs_after_our_cast": equal_outputs,
                    "first_difference": first, "ghdl_compile_s": con["compile_s"], "ghdl_sim_s": con["sim_s"],
                    "version": con["version"]},
        "seconds": None if reuse else {"build": round(t1 - t0, 1), "verify": round(t2 - t1, 1),
                                       "synth_report": round(t3 - t2, 1)},
    }


def write_markdown(results: dict) -> str:
    lines = ["# trigger vs conifer: tree ensembles", "",
             f"Generated by `scripts/bench_conifer.py` (conifer {results['conifer_version']}, GHDL "
             f"{results['ghdl']}, Yosys synthesis of our RTL for {results['part']}). Ours: verified 3-way "
             "(emulator == HLS C simulation == RTL under cocotb/Verilator). conifer: its VHDL backend fed our "
             "quantized ensemble (conifer's dictionary IR), simulated with GHDL on the same vectors; its "
             "per-class sums compared integer for integer with ours. Latency: clock cycles from a valid input "
             "to its valid output (ours includes the standard top's input register).", "",
             "| ensemble | trees x depth | inputs -> classes | vectors | ours: mismatches (3-way) | ours: latency "
             "cycles (ns @240 MHz) | ours: LUT / FF | conifer: equal sums | conifer: latency cycles |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results["ensembles"]:
        mm = sum(r["verify"]["mismatches"].values())
        vec = f"{r['verify']['vectors']}" + (" (all inputs)" if r["verify"]["exhaustive"] else "")
        lines.append(f"| {r['name']} ({r['source']}) | {r['trees']} x {r['max_depth']} | {r['inputs']} -> "
                     f"{r['classes']}{' + ' + r['decision'] if r['decision'] != 'none' else ''} | {vec} | {mm} | "
                     f"{r['ours']['latency_cycles']} ({r['ours']['latency_ns']}) | {r['ours']['LUT']} / "
                     f"{r['ours']['FF']} | {r['conifer']['equal_sums']} / {r['conifer']['vectors']} | "
                     f"{r['conifer']['latency_cycles']} |")
    lines += ["", "Formats: " + "; ".join(f"{r['name']}: inputs {r['input_formats']}, leaf {r['leaf']}, "
                                          f"accumulator {r['accum']}, conifer {r['conifer']['precision']}"
                                          for r in results["ensembles"]), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=10_000)
    parser.add_argument("--only", nargs="*", choices=list(CASES))
    parser.add_argument("--conifer-only", action="store_true",
                        help="reuse the bundles (and their verify/report) of an earlier run; rerun conifer only")
    args = parser.parse_args(argv)
    if find_tool("ghdl") is None:
        print("bench_conifer: GHDL not found: run scripts/setup_conifer.sh", file=sys.stderr)
        return 2
    conifer_environment()
    names = args.only or list(CASES)
    results_dir = OUT / "results"  # one file per ensemble: runs of --only (even side by side) add up
    results_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"== {name}", flush=True)
        if len(names) > 1:
            # one process per ensemble: conifer loads its fixed-point converter as a Python module named
            # 'fixed_point', so a second precision in the same process silently reuses the first one's
            cmd = [sys.executable, __file__, "--vectors", str(args.vectors), "--only", name] + \
                (["--conifer-only"] if args.conifer_only else [])
            subprocess.run(cmd, check=False)
            continue
        result = bench_case(name, args.vectors, reuse=args.conifer_only)
        if args.conifer_only:
            old = json.loads((results_dir / f"{name}.json").read_text())
            result["seconds"] = old.get("seconds")
        (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
        print(json.dumps({k: result[k] for k in ("verify", "ours", "conifer")}, default=str)[:600], flush=True)
    out = {n: json.loads((results_dir / f"{n}.json").read_text()) for n in CASES if (results_dir / f"{n}.json").exists()}
    results_path = BENCH / "conifer_comparison.json"
    ghdl = subprocess.run(["ghdl", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    import conifer

    results = {"conifer_version": str(conifer.__version__), "ghdl": ghdl, "part": "xcvu13p-flga2577-2-e",
               "vectors": args.vectors, "ensembles": list(out.values())}
    BENCH.mkdir(exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (BENCH / "conifer_comparison.md").write_text(write_markdown(results))
    print(write_markdown(results))
    ok = all(r["verify"]["pass"] and r["conifer"]["equal_sums"] == r["conifer"]["vectors"] == r["verify"]["vectors"]
             for r in results["ensembles"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
