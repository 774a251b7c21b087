"""Benchmark of `trigger prove` (trigger/prove.py): per op proved / not proved, method, time, peak memory.

Designs: the reference QKeras jet tagger (its bundle as built, pipeline auto; and one module per op,
pipeline layer), the benchmark network 16-64-32-32-5 (scripts/bench_da4ml.py's seeded 6-bit network, both
pipelines), the reference Conv1D (KERAS_conv1d_small) and the tree ensemble models/muon_pt_bdt (bundles as
built). Each proof runs from an empty proof cache. Also reported: the adders whose result is wider than the
exact range of their value needs (the bits, about LUTs, that the builder could save), and the load average
(the machine is shared: wall times are upper bounds). Peak memory is the prover process's resident peak so
far (each design is proved in a process of its own).
Writes benchmarks/prove.json (machine) and benchmarks/prove.md (people).

    .venv/bin/python scripts/bench_prove.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
REFERENCE = ROOT.parent / "shared" / "reference_models"

DESIGNS = {  # name -> (how it is made, source, pipeline[, ii: resource sharing, each op at the ii it can use])
    "qkeras_3layer (auto)": ("bundle", REFERENCE / "qkeras_3layer.json", None),
    "qkeras_3layer (layer)": ("rtl_of", "qkeras_3layer (auto)", "layer"),
    "network 16-64-32-32-5 (auto)": ("network", None, "auto"),
    "network 16-64-32-32-5 (layer)": ("network", None, "layer"),
    "network 16-64-32-32-5 (layer ii 4)": ("network", None, "layer", 4),
    "network 16-64-32-32-5 (auto ii 4)": ("network", None, "auto", 4),
    "conv1d_small": ("bundle", REFERENCE / "KERAS_conv1d_small.json", None),
    # a streamed CNN (tests/test_stream_conv.py's 2D model: conv 3x2 stride 2x1, scale, relu, average pool streamed;
    # its dense tail shared over 3 clocks)
    "streamed hand2d (tail ii 3)": ("stream_case", "hand2d", "layer", 3),
    "muon_pt_bdt": ("bundle", ROOT / "models" / "muon_pt_bdt", None),
    # graph models: the anomaly example (trained as tests/test_anomaly_detector.py does, on 20,000 events for 2
    # epochs: the proof does not depend on the weights' quality) and two of tests/graph_cases.py's functional
    # models; the DeepSets example (a chain; the same short training)
    "anomaly_detector": ("example", ROOT / "models" / "anomaly_detector", None),
    "multi_collection_tagger": ("keras_graph", "multi_collection_tagger", None),
    "deepsets_jet_tagger": ("example", ROOT / "models" / "deepsets_jet_tagger", None),  # item_dense, mean, softmax
    "residual_block": ("keras_graph", "residual_block", None),
}


def model_source(kind: str, source, folder: Path) -> Path:
    """What `trigger build` reads for a design: the example with a short training, or a graph case saved."""
    if kind == "example":
        import yaml

        cfg = yaml.safe_load((Path(source) / "trigger.yml").read_text())
        cfg["dataset"].update(n_train=20000, n_test=5000)
        if "zero_bias_events" in cfg["dataset"]:  # the anomaly example's rate samples
            cfg["dataset"].update(zero_bias_events=100_000, signal_events=2000)
        cfg["train"]["epochs"] = 2
        (folder / "model").mkdir(parents=True, exist_ok=True)
        (folder / "model" / "trigger.yml").write_text(yaml.safe_dump(cfg))
        return folder / "model"
    sys.path.insert(0, str(ROOT / "tests"))
    from graph_cases import GRAPH_CASES, save

    return save(GRAPH_CASES[source](), folder / "model")


def build(source: Path, out: Path) -> float:
    """`trigger build` (in its own process); its wall seconds."""
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "trigger.cli", "build", str(source), "-o", str(out), "--vectors", "200"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"bench_prove: build of {source} failed:\n{run.stderr[-2000:]}")
    return round(time.perf_counter() - t, 1)


LIMIT = 1 << 25  # values per enumeration (trigger prove's default); wider accumulators go to z3

def prove_one(kind: str, source: str, pipeline: str | None, work: Path, ii: int = 1) -> dict:
    """Runs in a child process (``--one``): proves one design, returns its ops' results."""
    from trigger.backends.rtl import write_rtl
    from trigger.ir.ii import resolve_ii
    from trigger.ir.model import FirmwareModel
    from trigger.prove import prove_bundle, prove_design, prove_reference

    t0 = time.perf_counter()
    if kind == "bundle":
        report = prove_bundle(Path(source), confirm_sim=True, limit=LIMIT)
        ops = report["ops"]
    else:
        if kind == "network":
            from bench_da4ml import jet_tagger

            model = jet_tagger()
        elif kind == "stream_case":
            sys.path.insert(0, str(ROOT / "tests"))
            from test_stream_conv import _hand_models

            model = _hand_models()[source]
        else:
            model = FirmwareModel.load(Path(source))
        rtl_dir = work / "rtl"
        design = write_rtl(model, rtl_dir, top="bench", pipeline=pipeline, ii=ii,
                           op_ii=resolve_ii(model, ii)[1] if ii > 1 else None)
        rtl = {"top": design.top, "sources": [Path(s).relative_to(work).as_posix() for s in design.sources],
               "op_latency": design.op_latency, "pipeline": design.pipeline, "multiplier": design.multiplier,
               "max_delay_ns_per_stage": design.max_delay_ns, "op_ii": design.op_ii, "ii": design.ii,
               "stream": design.stream}
        ops = prove_design(model, work, rtl, limit=LIMIT)
        # the reference Verilog's leg, as prove_bundle runs it (trigger/backends/rtl/reference.py)
        by_name, ranges = {op.name: (k, op) for k, op in enumerate(model.ops)}, (model.ranges() if model.is_chain else None)
        (work / "reference").mkdir(exist_ok=True)
        for r in ops:
            r["reference"] = prove_reference(by_name, ranges, r["op"], work / "reference", work, LIMIT)
            r["reference_used"] = "verilog" if r["reference"]["status"] == "proved" else "python form"
    return {"ops": ops, "wall_s": round(time.perf_counter() - t0, 1)}


MUTATIONS = {  # name -> (op, edit of its module's Verilog): the bugs of tests/test_prove.py
    "shift (one more bit on a shared adder's operand)": ("output", lambda t: re.sub(
        r"\.SB\(([1-9]\d*)\)", lambda m: f".SB({int(m.group(1)) + 1})", t, count=1)),
    "constant digit (a bias's lowest bit)": ("output", lambda t: _flip_constant(t)),
    "adder 2 bits too narrow (output 3's root)": ("output", lambda t: _narrow_root(t, 3, 2)),
    "adder 1 bit narrower (output 0's root)": ("output", lambda t: _narrow_root(t, 0, 1)),
    "rounding bit (element 0's cast)": ("relu3", lambda t: re.sub(
        r"wire y0_half = y0_x\[(\d+)\];", lambda m: f"wire y0_half = y0_x[{int(m.group(1)) - 1}];", t, count=1)),
}
RANDOM_VECTORS = 1500


def _flip_constant(text: str) -> str:
    m = re.search(r"wire signed \[(\d+):0\] (b[\d_]+) = (\d+)'sh([0-9a-f]+);", text)
    return text.replace(m.group(0), f"wire signed [{m.group(1)}:0] {m.group(2)} = {m.group(3)}'sh"
                                    f"{int(m.group(4), 16) ^ 1:x};")


def _narrow_root(text: str, j: int, cut: int) -> str:
    root = re.search(rf"wire signed \[\d+:0\] y{j}_r = \$signed\((\w+)\);", text).group(1)
    decl = re.search(rf"wire \[(\d+):0\] {root}_y;", text)
    w = int(decl.group(1)) + 1
    n = w - cut
    text = text.replace(decl.group(0), f"wire [{n - 1}:0] {root}_y;")
    inst = re.search(rf"_sa #\(\.W\({w}\).* u_{root} .*;", text).group(0)
    text = text.replace(inst, inst.replace(f".W({w})", f".W({n})"))
    return text.replace(f"$signed({root}_y)", f"$signed({{{{{cut}{{{root}_y[{n - 1}]}}}}, {root}_y}})")


def simulated(row: dict, result: dict, op, sources: list[Path], module: str, latency: int, folder: Path) -> dict:
    """A mutant's row, with its counterexample replayed through Verilator and what 1,500 uniformly random vectors
    through Verilator find against the emulator."""
    import numpy as np

    from trigger.prove import confirm

    if result.get("counterexample"):
        x = np.array([result["counterexample"]["input"]])
        sim = confirm(op, sources, module, latency, x, folder / "sim")
        row["confirmed_by_verilator"] = bool(np.any(sim != op.emulate(x, {})))
    rng = np.random.default_rng(2)
    x = rng.integers(op.input.min_raw, op.input.max_raw + 1, size=(RANDOM_VECTORS, op.input.n))
    sim = confirm(op, sources, module, latency, x, folder / "random")
    row["random_vectors"] = RANDOM_VECTORS
    row["random_mismatches"] = int(np.any(sim != op.emulate(x, {}), axis=1).sum())
    return row


def mutations(bundle: Path, work: Path) -> list[dict]:
    """Each bug in the tagger's op module (pipeline layer): the proof's verdict and time, its counterexample
    replayed through Verilator, and what 1,500 random vectors through Verilator find."""
    import shutil

    from trigger.backends.rtl import write_rtl
    from trigger.ir.model import FirmwareModel
    from trigger.prove import op_modules, prove_op

    model = FirmwareModel.load(bundle)
    design = write_rtl(model, work / "rtl", top="tagger", pipeline="layer")
    modules = {m[0].name: m for m in op_modules(model, work / "rtl", "tagger", design.op_latency)}
    rows = []
    for k, (name, (op_name, edit)) in enumerate(MUTATIONS.items()):
        op, module, sources, latency = modules[op_name]
        folder = work / f"mutant{k}"
        folder.mkdir()
        copies = [Path(shutil.copy(src, folder / src.name)) for src in sources]
        copies[0].write_text(edit(copies[0].read_text()))
        result = prove_op(op, copies, module, latency, folder)
        row = {"mutation": name, "op": op_name, "status": result["status"], "method": result.get("method"),
               "seconds": result["seconds"], "reason": result.get("reason")}
        rows.append(simulated(row, result, op, copies, module, latency, folder))
        print(f"  {name}: {row['status']} in {row['seconds']} s, random mismatches {row['random_mismatches']}",
              flush=True)
    return rows


def kind_mutations(work: Path) -> list[dict]:
    """tests/test_prove.py's mutants, one or more per op kind (its small models, pipeline layer): the clean
    module's proof, the broken one's, its counterexample through Verilator, and 1,500 random vectors."""
    import shutil

    sys.path.insert(0, str(ROOT / "tests"))
    from test_prove import MUTANTS, kind_models

    from trigger.backends.rtl import write_rtl
    from trigger.prove import op_modules, prove_op

    models, rows = kind_models(), []
    for k, (name, (kind, op_name, edit, edited_file, limit)) in enumerate(sorted(MUTANTS.items())):
        folder = work / f"kind{k}"
        design = write_rtl(models[kind], folder / "clean", top="k", pipeline="layer")
        op, module, sources, latency = {m[0].name: m for m in op_modules(models[kind], folder / "clean", "k",
                                                                          design.op_latency)}[op_name]
        clean = prove_op(op, sources, module, latency, folder / "proof_clean", limit=limit)
        broken = folder / "broken"
        shutil.copytree(folder / "clean", broken)
        copies = [broken / s.name for s in sources]
        target = broken / edited_file if edited_file else copies[0]
        target.write_text(edit(target.read_text()))
        result = prove_op(op, copies, module, latency, folder / "proof_broken", limit=limit)
        row = {"mutant": name, "kind": op.kind, "op": op_name, "clean": clean["status"],
               "clean_method": clean.get("method"), "clean_seconds": clean["seconds"], "status": result["status"],
               "method": result.get("method"), "seconds": result["seconds"], "input_bits": sum(op.input.widths)}
        rows.append(simulated(row, result, op, copies, module, latency, folder))
        print(f"  {name}: clean {row['clean']}, broken {row['status']} in {row['seconds']} s, random mismatches "
              f"{row['random_mismatches']}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="folder for the bundles (default: a temporary one)")
    parser.add_argument("--md-only", action="store_true", help="rewrite prove.md from benchmarks/prove.json")
    parser.add_argument("--mutations-only", metavar="BUNDLE", default=None,
                        help="only (re)run the mutation section on this tagger bundle, into benchmarks/prove.json")
    parser.add_argument("--kinds-only", action="store_true",
                        help="only (re)run the per-kind mutation section, into benchmarks/prove.json")
    parser.add_argument("--designs", default=None,
                        help="comma-separated design names: prove only these, into benchmarks/prove.json's designs")
    parser.add_argument("--one", nargs=5, metavar=("KIND", "SOURCE", "PIPELINE", "WORK", "II"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mutations_only:
        out = ROOT / "benchmarks"
        result = json.loads((out / "prove.json").read_text())
        result["mutations"] = mutations(Path(args.mutations_only), Path(tempfile.mkdtemp(prefix="mutants_")))
        (out / "prove.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / "prove.md").write_text(markdown(result))
        return 0
    if args.kinds_only:
        out = ROOT / "benchmarks"
        result = json.loads((out / "prove.json").read_text())
        result["kind_mutations"] = kind_mutations(Path(tempfile.mkdtemp(prefix="kinds_")))
        (out / "prove.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / "prove.md").write_text(markdown(result))
        return 0
    if args.md_only:
        out = ROOT / "benchmarks"
        (out / "prove.md").write_text(markdown(json.loads((out / "prove.json").read_text())))
        return 0
    if args.one:
        kind, source, pipeline, work, ii = args.one
        result = prove_one(kind, source, None if pipeline == "-" else pipeline, Path(work), int(ii))
        print("RESULT " + json.dumps(result, default=str))
        return 0

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_prove_"))
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="prove_cache_"))
    load_before = os.getloadavg()
    designs, bundles = {}, {}
    chosen = args.designs.split(",") if args.designs else list(DESIGNS)
    for name in chosen:
        if name not in DESIGNS:
            raise SystemExit(f"bench_prove: no design {name!r} (designs: {', '.join(DESIGNS)})")
    for name, (kind, source, pipeline, *sharing) in DESIGNS.items():
        if name not in chosen:
            continue
        ii = sharing[0] if sharing else 1
        folder = work / name.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")
        entry = {"kind": kind, "pipeline": pipeline, "ii": ii}
        if kind in ("example", "keras_graph"):
            kind, source = "bundle", model_source(kind, source, folder / "source")
            folder = folder / "bundle"
        if kind == "bundle":
            entry["build_s"] = build(source, folder) if not (folder / "manifest.json").exists() else None
            bundles[name] = folder
            target, pipe = folder, "-"
            entry["pipeline"] = json.loads((folder / "manifest.json").read_text())["rtl"]["pipeline"]
        elif kind == "rtl_of":
            target, pipe = bundles[source], pipeline
            folder.mkdir(exist_ok=True)
        else:
            target, pipe = (source if kind == "stream_case" else "-"), pipeline
            folder.mkdir(exist_ok=True)
        print(f"proving {name} ...", flush=True)
        run = subprocess.run([sys.executable, __file__, "--one", "bundle" if kind == "bundle" else kind,
                              str(target), pipe, str(folder), str(ii)], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "TRIGGER_CACHE": str(cache / name.replace(" ", "_"))})
        lines = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")]
        if run.returncode != 0 or not lines:
            raise SystemExit(f"bench_prove: proving {name} failed:\n{run.stderr[-3000:]}")
        entry.update(json.loads(lines[-1][7:]))
        entry["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        designs[name] = entry
        for r in entry["ops"]:
            print(f"  {r['op']:<12} {r['status']:<14} {r.get('method', '')}  {r.get('seconds', 0):.1f} s", flush=True)
    if args.designs:
        out = ROOT / "benchmarks"
        result = json.loads((out / "prove.json").read_text())
        result["designs"].update(designs)
        result["designs_rerun"] = {"designs": chosen, "load_average_before": [round(x, 2) for x in load_before],
                                   "load_average_after": [round(x, 2) for x in os.getloadavg()]}
        (out / "prove.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / "prove.md").write_text(markdown(result))
        print(f"wrote {out / 'prove.json'} and {out / 'prove.md'}")
        return 0
    print("mutations of the tagger's modules ...", flush=True)
    rows = mutations(bundles["qkeras_3layer (auto)"], work / "mutations")
    print("mutations of every op kind ...", flush=True)
    kinds = kind_mutations(work / "kinds")
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_before": [round(x, 2) for x in load_before],
                          "load_average_after": [round(x, 2) for x in os.getloadavg()]},
              "designs": designs, "mutations": rows, "kind_mutations": kinds}
    out = ROOT / "benchmarks"
    (out / "prove.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "prove.md").write_text(markdown(result))
    print(f"wrote {out / 'prove.json'} and {out / 'prove.md'}")
    return 0


def domain_label(text: str) -> str:
    """A short name for where an op's inputs ranged (trigger.prove's ``domain``)."""
    if "proved output range" in text:
        return "proved range of the op before"
    if "builder" in text:
        return "builder's ranges (op before not proved)"
    if "model's range" in text:
        return "model ranges (range analysis)"
    return text


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = ["# `trigger prove`: each op's RTL against its integer semantics, for all inputs", "",
             "Written by `scripts/bench_prove.py`. Per op: the result, the method (`affine`: every output an exact "
             "affine form equal to the reference; `enumeration`: the output's non-linear cone and the reference "
             "cast evaluated on every value of the accumulator; `sat`: the same question put to z3 where the "
             "accumulator has more values than the limit; `sat per tree`: each tree's leaf register against the "
             "tree by z3, then the sum over the leaf registers as an affine form and its cast; `sat per output`: "
             "each output by z3 over all inputs (max_pool, argmax, merge multiply/maximum/minimum); `products`: a dot's "
             "multipliers matched to its pairs, then the sum over the products as an affine form and its cast; "
             "`exhaustive`: every input of the op), wall and "
             "CPU seconds (from an empty proof cache), and the prover process's peak resident memory so far. "
             f"Enumeration limit: 2^{LIMIT.bit_length() - 1} values per accumulator (`trigger prove --max-values`); "
             "z3's time limit 60 s per question. "
             "The last column: the op's reference Verilog (`reports/reference/<op>.v`, printed by "
             "trigger/backends/rtl/reference.py) proved equal to the same reference form by the same steps, so that "
             "where both are proved the op's module equals the reference Verilog for all inputs (`not run`: rows "
             "measured before the reference Verilog existed). "
             f"Machine: {m['cpus']} CPUs shared with other jobs; load average {m['load_average_before']} before, "
             f"{m['load_average_after']} after: wall times are upper bounds.", ""]
    for name, d in result["designs"].items():
        counts = {s: sum(r["status"] == s for r in d["ops"]) for s in ("proved", "counterexample", "not proved")}
        spare = sum(r.get("adders", {}).get("spare_bits", 0) for r in d["ops"])
        bits = sum(r.get("adders", {}).get("bits", 0) for r in d["ops"])
        wider = sum(r.get("adders", {}).get("wider_than_needed", 0) for r in d["ops"])
        shared = (" (streamed: each stage's ops proved for every window of its kernel datapath, the line buffers and "
                  f"collector checked over one frame unrolled; the tail shared at ii {d['ii']})" if d["kind"] == "stream_case"
                  else f" at ii {d['ii']} (resource sharing: each op proved over one event unrolled, the operand "
                  "multiplexers folded by the cycle counters; a dense's input read as one variable per slice)"
                  if d.get("ii", 1) > 1 else "")
        lines += [f"## {name}", "",
                  f"RTL pipeline {d.get('pipeline')}{shared}; {counts['proved']} of {len(d['ops'])} ops proved, "
                  f"{counts['counterexample']} counterexamples; proof wall time {d['wall_s']} s in all"
                  + (f" (the build took {d['build_s']} s)" if d.get("build_s") else "") + "."
                  + (f" The first op's time includes {d['ops'][0]['chain_setup_seconds']} s of chain set-up (Yosys "
                     "on the whole chain, the op boundaries' signal names)." if d["ops"][0].get("chain_setup_seconds")
                     else "")
                  + (f" The first op's time includes {d['ops'][0]['graph_setup_seconds']} s of graph set-up (Yosys "
                     "on the whole graph module, each tensor's signal names)." if d["ops"][0].get("graph_setup_seconds")
                     else "")
                  + (f" Load average after it: {d['load_average_after']}." if d.get("load_average_after") else ""),
                  "",
                  "| op | kind | result | method | domain | wall s | CPU s | peak MB | spare adder bits "
                  "| reference Verilog = reference form |",
                  "|---|---|---|---|---|---:|---:|---:|---:|---|"]
        for r in d["ops"]:
            why = f" ({r['reason']})" if r["status"] != "proved" and r.get("reason") else ""
            dom = domain_label(r.get("domain", ""))
            ref = r.get("reference")
            ref = ("not run" if ref is None else f"{ref['status']} ({ref.get('method', '')}, {ref['seconds']} s)"
                   if "seconds" in ref else f"{ref['status']} ({ref.get('reason', '')})")
            lines.append(f"| {r['op']} | {r['kind']} | {r['status']}{why} | {r.get('method', '')} | {dom} | "
                         f"{r.get('seconds', '')} | {r.get('cpu_seconds', '')} | {r.get('peak_rss_mb', '')} | "
                         f"{r.get('adders', {}).get('spare_bits', '')} | {ref} |")
        if bits:
            lines += ["", f"Adders read as exact affine words: {bits} result bits; {wider} of them are wider than "
                          f"the exact range of their value needs, by {spare} bits in all (about {spare} LUTs, "
                          f"{100 * spare / bits:.1f}% of the adder bits) that the builder could save by sizing "
                          "from these ranges (its interval analysis does not see that shared subexpressions "
                          "and signed digits cancel)."]
        lines.append("")
    if result.get("mutations"):
        lines += ["## Injected bugs (the tagger's modules, pipeline layer)", "",
                  "Each bug edited into one op module; the proof's verdict and time; its counterexample replayed "
                  f"through Verilator; and {RANDOM_VECTORS:,} uniformly random vectors through Verilator against the "
                  "emulator.", "",
                  "| bug | op | proof | time s | Verilator confirms | random vectors that differ |",
                  "|---|---|---|---:|---|---:|"]
        for r in result["mutations"]:
            lines.append(f"| {r['mutation']} | {r['op']} | {r['status']} | {r['seconds']} | "
                         f"{r.get('confirmed_by_verilator', '-')} | {r['random_mismatches']} of {r['random_vectors']} |")
        lines += ["", "The adder one bit narrower is proved still exact (its range needs one bit less than the builder "
                      "gave it); two bits narrower wraps only near the ends of its range, which the random vectors "
                      "never reach.", ""]
    if result.get("kind_mutations"):
        lines += ["## Injected bugs, every op kind (tests/test_prove.py's small models, pipeline layer)", "",
                  "Per op kind, the module as built is proved, then a broken copy; the counterexample replayed through "
                  f"Verilator; {RANDOM_VECTORS:,} uniformly random vectors through Verilator against the emulator. "
                  "Mutants named `..._by_solver` and `cast_rnd_conv_tie` run with an enumeration limit of 16 values, so that the casts go to the solver.",
                  "", "| bug | kind | input bits | clean: proof (method) | broken: proof | time s | Verilator confirms "
                      "| random vectors that differ |", "|---|---|---:|---|---|---:|---|---:|"]
        for r in result["kind_mutations"]:
            lines.append(f"| {r['mutant']} | {r['kind']} | {r['input_bits']} | {r['clean']} ({r['clean_method']}) | "
                         f"{r['status']} | {r['seconds']} | {r.get('confirmed_by_verilator', '-')} | "
                         f"{r['random_mismatches']} of {r['random_vectors']} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
