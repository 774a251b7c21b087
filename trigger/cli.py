"""The `trigger` command line: one sub-command per user-facing step of the flow.

Exit codes: 0 success, 1 a check failed (bit mismatch, budget violation; for
``doctor``, a required tool missing), 2 bad input or a tool that failed. Bad input is one line on stderr naming the culprit: argparse
refuses malformed options (the ``type=`` functions below), and every
``trigger.errors.TriggerError`` raised by the flow is printed as
``trigger <command>: error: <message>``. Any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
from pathlib import Path

from trigger import __version__
from trigger.rtlsim import SIMULATORS
from trigger.errors import Terminated, TriggerError, check_stop, clear_stop, request_stop
from trigger.parts import DEFAULT_PART
from trigger.settings import DEFAULT_CLOCK_NS


# ------------------------------------------------------------ option types
# Each raises argparse.ArgumentTypeError: argparse then prints
# "trigger <command>: error: argument --x: <message>" and exits 2.
def clock_period_ns(text: str) -> float:
    """--clock: the target clock period in ns, a positive finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a clock period in ns (e.g. 4 for 250 MHz), got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"the clock period must be a positive, finite number of ns "
                                         f"(e.g. 4 for 250 MHz), got {text!r}")
    return value


def positive_int(text: str) -> int:
    """--vectors: a positive whole number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def pipeline_setting(text: str):
    """--pipeline: 'layer', 'auto' (registers where the clock needs them) or a positive number of adder levels."""
    if text.strip().lower() in ("layer", "auto"):
        return text.strip().lower()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected 'layer', 'auto' or a positive number of adder levels, got {text!r}")
    return value


def ii_setting(text: str):
    """--ii: 'auto' (floor(clock / 40 MHz), within the budget's ii) or a positive whole number of clocks."""
    from trigger.errors import ConfigError
    from trigger.ir.ii import parse_ii

    try:
        return parse_ii(text, "--ii")
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--ii: ")) from None


def fpga_part(text: str) -> str:
    """--part: a part whose capacity is known, e.g. xcvu13p-flga2577-2-e (matched by its prefix)."""
    from trigger.parts import PARTS, part_info

    if not text.strip() or part_info(text) is None:
        raise argparse.ArgumentTypeError(f"unknown FPGA part {text!r}; known parts (any package/speed grade, "
                                         f"e.g. xcvu13p-flga2577-2-e): {', '.join(PARTS)}")
    return text


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): what is wrong, and where to read more."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def cmd_doctor(args: argparse.Namespace) -> int:
    from trigger.toolchain import survey

    tools = survey()
    width = max(len(t.name) for t in tools)
    missing = 0
    for tool in tools:
        if tool.ok:
            state = "ok"
        elif tool.required:
            state = "MISSING"
            missing += 1
        else:
            state = "not found (optional)"
        line = f"{tool.name:<{width}}  {tool.version or '-':<12} {state}"
        if not tool.ok:
            line += f"  -> {tool.fix}"
        elif args.verbose and tool.path:
            line += f"  {tool.path}"
        print(line)
    if missing:
        print(f"{missing} required tool(s) missing", file=sys.stderr)
        return 1
    print("all required tools found")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: check the tools, then build, verify and report every built-in example."""
    print("== trigger doctor")
    status = cmd_doctor(argparse.Namespace(verbose=False))
    if status:
        return status
    from trigger.resources import models_dir

    from trigger.demo import run_demo

    models = models_dir()
    examples = sorted(p for p in models.iterdir() if (p / "trigger.yml").exists())
    if args.only:
        examples = [p for p in examples if p.name in args.only]
    return run_demo(examples, Path(args.output), args.jobs)  # `trigger ci` on each, args.jobs at a time


def cmd_build(args: argparse.Namespace) -> int:
    from trigger.bundle import build_bundle
    from trigger.frontends import BuildOptions
    from trigger.limits import check_build

    from trigger.settings import check_output_folder

    source = Path(args.source)
    out = Path(args.output) if args.output else Path("build") / source.stem
    check_output_folder(out)  # a file in the way or a read-only folder: refused before the build
    options = BuildOptions(weights=args.weights, precision=args.precision, hls_config=getattr(args, "hls_config", None),
                           backend=args.backend,
                           pipeline=args.pipeline, keep_softmax=args.softmax, part=args.part,
                           clock_period_ns=args.clock, vectors=args.vectors, argmax=getattr(args, "argmax", False),
                           ii=getattr(args, "ii", None), scheduler=getattr(args, "scheduler", None),
                           workers=getattr(args, "workers", None), io_type=getattr(args, "io_type", None))
    check_build(source, options)  # the work estimated from the files, refused over a limit (trigger.limits)
    design = None
    if getattr(args, "data", None):  # the source model on the user's events, stored for `trigger report --data`
        from trigger.frontends import load_design
        from trigger.physics import store_source_outputs

        from trigger.bundle import check_output

        check_output(out)
        design = load_design(source, options)
        store_source_outputs(design, args.data)
    bundle = build_bundle(source, out, options, design=design)
    print(f"bundle written to {bundle}")
    return 0


def failed_checks_exit_1(command):
    """A bundle or verdict that is not what its manifest hashed is a failed check of the design (exit 1, one
    line), not bad input (exit 2)."""
    import functools

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from trigger.bundle import BundleChanged

        try:
            return command(args)
        except BundleChanged as err:
            print(f"trigger {getattr(args, 'command', command.__name__[4:])}: check failed: {_one_line(err)}",
                  file=sys.stderr)
            return 1
    return run


@failed_checks_exit_1
def cmd_verify(args: argparse.Namespace) -> int:
    from trigger.verify import format_mismatch, verify_bundle, verify_on_cluster

    options = {"simulator": args.sim, "vectors": args.vectors, "addresses": getattr(args, "addresses", None)}
    if _verify_distributed(args):  # the same verifier, its vector sets run on Dask workers (trigger.cluster)
        result = verify_on_cluster(Path(args.bundle), getattr(args, "scheduler", None), getattr(args, "workers", None),
                                   **options)
    else:
        result = verify_bundle(Path(args.bundle), **options)
    cover = result.get("cover")
    covered = f" (every value of the {cover['tensor']}: {cover['values']})" if cover else ""
    print(f"{result['vectors']} vectors{covered}; latency {result['latency_cycles']} cycles, II {result['ii']}")
    for name, count in result["mismatches"].items():
        print(f"  {name}: {count} mismatches")
    if not result["pass"] and result.get("first_mismatch"):
        print(format_mismatch(result["first_mismatch"]), file=sys.stderr)
    print("bit exact: " + ("yes" if result["pass"] else "NO"))
    return 0 if result["pass"] else 1


def cmd_emulator(args: argparse.Namespace) -> int:
    """Build the bundle's emulator library (emulator/Makefile, cached) and put lib<name>.so where asked."""
    import shutil
    import tempfile

    from trigger.backends import emulator_lib
    from trigger.bundle import load_manifest

    bundle = Path(args.bundle)
    manifest = load_manifest(bundle)
    em = emulator_lib.section(bundle, manifest)
    out = Path(args.output) if args.output else bundle / em["folder"] / em["library"]
    if out.is_dir():
        out = out / em["library"]
    with tempfile.TemporaryDirectory(prefix="trigger-emulator-") as work:  # (used when caching is off)
        lib, timings = emulator_lib.build_library(bundle, manifest, Path(work))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.partial")
        shutil.copyfile(lib, tmp)
        tmp.replace(out)
    state = "cached" if timings["library_cached"] else f"built in {timings['library_build_s']:.1f} s"
    print(f"{out} ({state})")
    print(f"  class {em['class']} (hls4mlEmulator::Model), header {bundle / em['header']}")
    print("  load: dlopen the .so, dlsym \"create_model\" / \"destroy_model\"; in CMSSW "
          f"hls4mlEmulator::ModelLoader(\"{Path(em['library']).stem}\") with the folder on LD_LIBRARY_PATH")
    if args.check:
        import numpy as np

        from trigger.ir.model import FirmwareModel, emulate
        from trigger.verify import mismatching_rows

        model = FirmwareModel.load(bundle)
        raw = np.load(bundle / "vectors" / "inputs.npy", allow_pickle=False)
        with tempfile.TemporaryDirectory(prefix="trigger-emulator-") as work:
            (got,) = emulator_lib.run_libraries([(out.resolve(), raw, model.output.n)], Path(work))
        rows = mismatching_rows(emulate(model, raw).outputs, got)
        print(f"  {len(raw)} stored vectors through dlopen: {rows.size} mismatches with the emulator")
        return 1 if rows.size else 0
    return 0


def _verify_distributed(args: argparse.Namespace) -> bool:
    """Vector sets on a Dask cluster (trigger.cluster) when asked for; otherwise in this process."""
    return any(getattr(args, k, None) is not None for k in ("scheduler", "workers"))  # `ci` has none


def address_range(text: str) -> tuple[int, int]:
    """START:STOP (integers, STOP exclusive) for `trigger verify --addresses`."""
    try:
        lo, hi = (int(v, 0) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP, got {text!r}") from None
    if not 0 <= lo < hi:
        raise argparse.ArgumentTypeError(f"expected 0 <= START < STOP, got {text!r}")
    return lo, hi


def _add_scale_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="tables: run the table (build) or its address ranges (verify) on this Dask scheduler's "
                        "workers (default: trigger.yml scale:, else a LocalCluster)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="LocalCluster worker processes (default: one per core)")


@failed_checks_exit_1
def cmd_report(args: argparse.Namespace) -> int:
    from trigger.report import build_report, print_summary

    physics = None
    if getattr(args, "data", None):  # the physics section on the user's events (trigger.physics)
        physics = {"data": args.data, "task": getattr(args, "task", None), "threshold": getattr(args, "threshold", None),
                   "rate_mhz": getattr(args, "rate_mhz", None) or 40.0, "class_names": getattr(args, "classes", None)}
    report = build_report(Path(args.bundle), args.budget, synth=not args.no_synth,
                          vendor=getattr(args, "vendor", False), ii_curve=getattr(args, "ii_curve", None),
                          physics=physics)
    print_summary(report)
    print(f"report written to {Path(args.bundle) / 'reports' / 'report.html'}")
    if not report["budget"]["pass"]:
        for v in report["budget"]["violations"]:
            text = v.get("message") or f"{v['metric']} = {v['value']} exceeds {v['limit']}"
            print(f"budget violation: {text}", file=sys.stderr)
        return 1
    return 0


@failed_checks_exit_1
def cmd_ci(args: argparse.Namespace) -> int:
    """Build, verify and report in one go; non-zero on any mismatch or budget violation."""
    if args.budget:  # fail on a bad budget before the long work
        from trigger.report import load_budget
        load_budget(args.budget)
    build_args = argparse.Namespace(**{**vars(args), "source": args.source})
    status = cmd_build(build_args)
    out = Path(args.output) if args.output else Path("build") / Path(args.source).stem
    verified = cmd_verify(argparse.Namespace(bundle=out, sim=args.sim, vectors=args.vectors))
    disproved = 0
    if getattr(args, "prove", False) and not status:  # before the report, which shows it; a counterexample
        disproved = cmd_prove(argparse.Namespace(bundle=out, op=None))  # fails, 'not proved' only with proved: true
    reported = cmd_report(argparse.Namespace(bundle=out, budget=args.budget, no_synth=False, data=args.data,
                                             task=args.task, threshold=args.threshold, rate_mhz=args.rate_mhz,
                                             classes=args.classes))
    if status or verified or reported or disproved:
        print("trigger ci: FAILED" + (" (bit mismatches)" if verified else "") + (" (budget)" if reported else "")
              + (" (counterexample)" if disproved else ""), file=sys.stderr)
        return 1
    print("trigger ci: passed")
    return 0


def cmd_prove(args: argparse.Namespace) -> int:
    """Each op module of the bundle's RTL against its op's integer semantics, for all inputs (trigger/prove.py)."""
    from trigger.prove import line, prove_bundle

    limit = getattr(args, "max_values", None)
    report = prove_bundle(Path(args.bundle), ops=args.op or None, progress=lambda r: print(line(r), flush=True),
                          **({"limit": limit} if limit else {}))
    counts = report["summary"]
    print(f"proved {counts['proved']}, counterexample {counts['counterexample']}, not proved {counts['not proved']} "
          f"(reports/prove.json)")
    return 1 if counts["counterexample"] else 0


def cmd_scan(args: argparse.Namespace) -> int:
    """A grid of build settings on a Dask cluster: scan.json/md/html and a Pareto plot; exit 1 if a point failed."""
    from trigger.scan import load_grid_file, parse_set, run_scan

    keys = load_grid_file(args.grid) if args.grid else {}
    for key, values in parse_set(args.set).items():
        keys[key] = values
    result = run_scan(args.source, keys, args.output, scheduler=args.scheduler, workers=args.workers,
                      budget=args.budget, vectors=args.vectors, keep=args.keep, simulator=getattr(args, "sim", None))
    print(f"scan written to {Path(args.output) / 'scan.html'} (and scan.json, scan.md, pareto.png)")
    for point in result["points"]:
        if point["status"] != "ok":
            print(f"point {point['id']} failed: {point['error']}", file=sys.stderr)
    for pid in result.get("not_bit_exact", []):
        print(f"point {pid}: not bit exact", file=sys.stderr)
    return 1 if result["failed"] or result.get("not_bit_exact") else 0


def cmd_ii_curve(args: argparse.Namespace) -> int:
    """The resource-versus-II curve (trigger.ii_curve); exit 1 when a point is not bit exact or its II differs."""
    from trigger.ii_curve import ii_curve, parse_iis

    curve = ii_curve(args.source, args.output, parse_iis(args.ii_values), vectors=args.vectors, simulator=args.sim,
                     pipeline=args.pipeline, scheduler=getattr(args, "scheduler", None),
                     workers=getattr(args, "workers", None))
    print(f"resource-versus-II curve written to {Path(args.output) / 'ii_curve.md'} (and .json, .png)")
    bad = [p["ii"] for p in curve["points"] if not p["bit_exact"] or p["ii_measured"] != p["ii"]]
    for ii in bad:
        print(f"II {ii}: not bit exact or measured II differs", file=sys.stderr)
    return 1 if bad else 0


def _add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="model folder with trigger.yml, a trigger.yml, a Keras .json (+ --weights), "
                                  "a full-model .h5 or an .onnx file")
    p.add_argument("-o", "--output", help="bundle folder to write (default: build/<name>)")
    p.add_argument("--weights", help="weights .h5 for a .json architecture (default: <name>_weights.h5 beside it)")
    p.add_argument("--precision", help="post-training quantization precision for float models, e.g. 'fixed<16,6>'")
    p.add_argument("--hls-config", metavar="FILE", default=None,
                   help="hls4ml config (YAML or JSON) as hls4ml.utils.config_from_keras_model(model, "
                        "granularity='name') writes it: each layer's Precision (result, accum, weight, bias, ...) is "
                        "honoured exactly, over trigger.yml's hls.precision; Model.Precision sets the post-training "
                        "default, ReuseFactor must match the II, Strategy must be Latency; any other key is refused")
    p.add_argument("--backend", choices=["vitis", "vivado"], default=None, help="hls4ml backend (default vitis)")
    p.add_argument("--pipeline", type=pipeline_setting, default=None, metavar="layer|auto|N",
                   help="where RTL pipeline registers go: 'layer' (after every layer), 'auto' (wherever a stage "
                        "would miss the target clock) or N (every N adder levels)")
    p.add_argument("--softmax", action="store_true",
                   help="keep a final softmax (hls4ml's, with trigger's default tables; see hls.softmax in "
                        "trigger.yml; default: output logits)")
    p.add_argument("--argmax", action="store_true",
                   help="append an argmax: the firmware outputs the class index (trigger.yml: model.output: argmax)")
    p.add_argument("--part", type=fpga_part,
                   help=f"FPGA part (default from trigger.yml, else {DEFAULT_PART})")
    p.add_argument("--ii", type=ii_setting, default=None, metavar="N|auto",
                   help="a new input every N clocks, the arithmetic shared over them (default from trigger.yml "
                        "rtl.ii, else 1); auto: floor(clock MHz / 40), at most the budget's ii; see docs/ii.md")
    p.add_argument("--io-type", choices=("auto", "io_parallel", "io_stream"), default=None,
                   help="convolutions unrolled (io_parallel), streamed through a line buffer (io_stream: one pixel "
                        "per clock, docs/streaming.md) or auto: streamed when too large to unroll (trigger.yml "
                        "hls.io_type; default auto)")
    p.add_argument("--clock", type=clock_period_ns, metavar="NS",
                   help="target clock PERIOD in ns, not a frequency: 4 for 250 MHz "
                        f"(default from trigger.yml, else {DEFAULT_CLOCK_NS:g})")


def _add_data_options(p: argparse.ArgumentParser, report: bool = True) -> None:
    """--data (build, report, ci): the physics section on the user's events (trigger.physics)."""
    p.add_argument("--data", metavar="FILE", default=None,
                   help="your events: .npz or .h5 with x (and optionally y), or a CSV with named columns (y/label/"
                        "target is the truth); " + ("the report shows the firmware (emulator) and the source model "
                                                     "side by side" if report else
                                                     "the source model's outputs on them are stored in the bundle "
                                                     "for `trigger report --data`"))
    if report:
        p.add_argument("--task", choices=["classifier", "regressor", "anomaly"], default=None,
                       help="how to read the outputs (default: several outputs or an argmax: classifier; one output "
                            "and real-valued y: regressor; else anomaly score)")
        p.add_argument("--threshold", type=float, default=None, metavar="T",
                       help="regressor: the turn-on's threshold on the prediction (default: the median of y); "
                            "anomaly: the score threshold whose rate is quoted")
        p.add_argument("--rate-mhz", type=float, default=None, metavar="MHZ",
                       help="rate of events before the trigger (rate = acceptance x this; default 40)")
        p.add_argument("--classes", default=None, metavar="A,B,...",
                       help="classifier: the class names, in output order (default: 0, 1, ...)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trigger",
        description="Take quantized networks and look-up-table regressors from Python to "
                    "bit-exact FPGA firmware, with verification and latency/resource reports.")
    parser.add_argument("--version", action="version", version=f"trigger {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from trigger.limits import describe

    limits_text = describe()

    p = sub.add_parser("doctor", help="list the compilers, simulators and synthesis tools found",
                       description="Print the version of every tool the flow uses, mark each required "
                                   "one ok or missing with the fix. Exit 1 when a required tool is missing.")
    p.add_argument("-v", "--verbose", action="store_true", help="also print where each tool was found")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("build", help="build a firmware bundle (HLS project, RTL, test vectors) from a model",
                       description="Convert a model or a model-zoo config into a firmware bundle: manifest.json, "
                                   "hls/ (hls4ml project), rtl/ (Verilog), vectors/ (emulator inputs/outputs). "
                                   "Written atomically: a failed build leaves nothing behind (SIGTERM and SIGINT "
                                   "included). Refused before any work, in one line naming the setting, when the job "
                                   f"is over a limit: {limits_text}.")
    _add_build_options(p)
    p.add_argument("--vectors", type=positive_int, default=None, metavar="N",
                   help="number of test vectors to store in the bundle (default from trigger.yml)")
    _add_scale_options(p)  # a table evaluated in parts on Dask workers (trigger.cluster)
    _add_data_options(p, report=False)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("verify", help="check emulator == HLS C simulation == RTL simulation, integer for integer",
                       description="Run the bundle's test vectors (every address, for a table) through the numpy "
                                   "emulator, the HLS C simulation and the RTL under cocotb; write "
                                   "reports/verify.json. Exit 0 exactly when every mismatch count is 0.")
    p.add_argument("bundle", help="bundle folder written by `trigger build`")
    p.add_argument("--vectors", type=positive_int, default=None, metavar="N",
                   help="check the first N test vectors only (default: the stored ones plus, where the design has a "
                        "small enough tensor, every value of it: every address of a table)")
    p.add_argument("--sim", choices=sorted(SIMULATORS), default="verilator", help="RTL simulator")
    _add_scale_options(p)  # address ranges verified on Dask workers (trigger.cluster)
    p.add_argument("--addresses", type=address_range, default=None, metavar="START:STOP",
                   help="verify only these table addresses (default: every address)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("emulator", help="build the bundle's emulator library lib<name>.so for the experiment's software",
                       description="Compile the bundle's emulator/ (hls4mlEmulator::Model around the bundle's own HLS "
                                   "C++, in the model's namespace) with its Makefile and g++ (cached by content), and "
                                   "write lib<name>.so into emulator/ (or --output). `trigger verify` checks it against "
                                   "the emulator on every vector (library_vs_emulator). Exit 2 when g++ is missing.")
    p.add_argument("bundle", help="bundle folder written by `trigger build`")
    p.add_argument("-o", "--output", default=None, metavar="PATH",
                   help="where the library goes: a file or a folder (default: the bundle's emulator/lib<name>.so)")
    p.add_argument("--check", action="store_true",
                   help="also run the stored vectors through the library (dlopen) and compare with the emulator; "
                        "exit 1 on a mismatch")
    p.set_defaults(func=cmd_emulator)

    p = sub.add_parser("report", help="latency, resources and bit-exactness against a budget",
                       description="Synthesize the bundle's RTL with Yosys, gather latency from verify.json and "
                                   "write reports/report.json, report.md and report.html. Exit 1 when the "
                                   "budget fails, naming each violation.")
    p.add_argument("bundle", help="a verified bundle folder")
    p.add_argument("--budget", help="budget YAML (default: the 'budget' section of the model's trigger.yml)")
    p.add_argument("--no-synth", action="store_true", help="skip the Yosys run (no resource figures)")
    p.add_argument("--vendor", action="store_true",
                   help="also run hls4ml's build with vitis_hls/vivado_hls (when on PATH) and show its C-synthesis "
                        "estimate beside the Yosys one")
    p.add_argument("--ii-curve", metavar="DIR", default=None,
                   help="show the resource-versus-II curve in DIR (`trigger ii-curve`; default: the one beside "
                        "the bundle, if any)")
    _add_data_options(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("ci", help="build + verify + report in one command, for a CI pipeline",
                       description="Build the bundle, verify it and report against the budget; exit non-zero on "
                                   f"any bit mismatch or budget violation. The build's limits: {limits_text}.")
    _add_build_options(p)
    p.add_argument("--budget", help="budget YAML (default: the model's trigger.yml budget section)")
    p.add_argument("--vectors", type=positive_int, default=None, metavar="N", help="number of test vectors to store and verify (default from trigger.yml)")
    p.add_argument("--sim", choices=sorted(SIMULATORS), default="verilator", help="RTL simulator")
    p.add_argument("--prove", action="store_true",
                   help="also run `trigger prove`: fail on a counterexample ('not proved' is reported, not a failure, "
                        "unless the budget says proved: true)")
    _add_data_options(p)
    p.set_defaults(func=cmd_ci)

    p = sub.add_parser("prove", help="prove each op's RTL equal to its integer semantics for all inputs",
                       description="Flatten each op module of the bundle's RTL with Yosys (registers removed by "
                                   "latency) and prove it equal to the op's reference (trigger/prove.py): exact affine "
                                   "forms for the arithmetic, exhaustive enumeration for narrow non-linear parts. "
                                   "Writes reports/prove.json. Exit 1 on a counterexample; 'not proved' is reported.")
    p.add_argument("bundle", help="bundle folder written by `trigger build`")
    p.add_argument("--op", action="append", metavar="NAME", help="prove only this op (repeatable)")
    p.add_argument("--max-values", type=positive_int, default=None, metavar="N",
                   help="enumerate at most N values of one accumulator (default 2^25; time grows linearly)")
    p.set_defaults(func=cmd_prove)

    p = sub.add_parser("ii-curve", help="resources and latency versus II (resource sharing): table and plot",
                       description="Build the model at several II (rtl.ii; see docs/ii.md), verify each 3-way and "
                                   "synthesise it with Yosys; write OUT/ii_curve.json, ii_curve.md and ii_curve.png "
                                   "(LUT/FF/DSP/BRAM and latency per II). II values larger than the model can use "
                                   "are skipped. Exit 1 when a point is not bit exact or its measured II differs. "
                                   "A preset of `trigger scan --set ii=... --sim SIM` (bundles OUT/ii<N>, and the "
                                   "scan's own files beside the curve's).")
    p.add_argument("source", help="model folder with trigger.yml, a trigger.yml, or a model file")
    p.add_argument("-o", "--output", required=True, help="folder for the bundles (ii<N>/) and the curve")
    p.add_argument("--ii-values", default="1,2,3,6,9", metavar="N,N,...", help="the IIs (default 1,2,3,6,9)")
    p.add_argument("--vectors", type=positive_int, default=None, metavar="N", help="test vectors per point")
    p.add_argument("--pipeline", type=pipeline_setting, default=None, metavar="layer|auto|N",
                   help="RTL pipeline registers of every point (default from trigger.yml); 'auto' places them so "
                        "that each stage fits the clock, and the latencies in ns are then real ones")
    p.add_argument("--sim", choices=sorted(SIMULATORS), default="verilator", help="RTL simulator")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=positive_int, metavar="N", help="LocalCluster worker processes (default: one per core)")
    p.set_defaults(func=cmd_ii_curve)

    p = sub.add_parser("demo", help="run the whole flow on the built-in examples",
                       description="Check the tools, then build, verify and report every example under models/ "
                                   "(what `make demo` runs).")
    p.add_argument("-o", "--output", default="build/demo", help="where the bundles go (default build/demo)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these examples")
    p.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                   help="examples run at once, each in a process of its own (default 2, or 1 on one CPU)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("scan", help="build, score and synthesise a grid of settings on a Dask cluster; Pareto plot",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Build one bundle per point of a grid of settings, score its physics (accuracy of "
                                   "a classifier trained in the flow, pT resolution of a table or trees, else agreement "
                                   "with the source model), synthesise it with Yosys, and write OUT/scan.json, scan.md, "
                                   "scan.html and pareto.png (physics vs LUTs, latency as colour, Pareto front and the "
                                   "recommended point for the budget marked). Points run as Dask tasks: a LocalCluster "
                                   "by default, or a running cluster with --scheduler. A failing point records why; "
                                   "the others go on. Exit 0 when every point built, 1 when some failed, 2 on bad input.",
                       epilog="settings a grid may set:\n"
                              "  any dotted key the trigger.yml sets, e.g. quantization.weight_bits, hls.input_precision,\n"
                              "  target.clock_mhz, features.dphi12.bits (items of a list by their name; a table's\n"
                              "  address.bits follows its features), and for any model:\n"
                              "  pipeline (or rtl.pipeline): layer | auto | N    rtl.multiplier: shift_add | dsp | N\n"
                              "  precision: post-training quantization of a float model, e.g. fixed<16,6>\n"
                              "  ii: a new event every N clocks (resources shared)    part, clock_ns\n"
                              "Points that differ only in pipeline/multiplier share one design (one training).\n\n"
                              "example:\n"
                              "  trigger scan models/jet_tagger --set quantization.weight_bits=4,6,8 \\\n"
                              "      --set rtl.pipeline=2,3,4 --budget latency_ns=100,lut_pct=5 -o build/scan\n\n"
                              "grid.yml: a mapping of setting -> list of values, e.g.\n"
                              "  quantization.weight_bits: [4, 6, 8]\n"
                              "  rtl.pipeline: [2, 3, 4]\n"
                              "On a real cluster the output folder must be on a filesystem every worker sees.")
    p.add_argument("source", help="model folder with trigger.yml, a trigger.yml, or a model file")
    p.add_argument("--grid", metavar="GRID.yml", help="YAML mapping of setting -> list of values")
    p.add_argument("--set", action="append", metavar="KEY=V1,V2",
                   help="a grid axis (repeatable); commas inside <> belong to a value: precision=fixed<8,3>,fixed<16,6>")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=positive_int, metavar="N", help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--budget", help="budget for the recommended point: a YAML file or KEY=VALUE,... e.g. "
                                    "latency_ns=100,lut_pct=5 (LUT=5%% works too; default: the trigger.yml budget)")
    p.add_argument("--keep", type=float, default=0.01, metavar="FRACTION",
                   help="recommended point: the fewest LUTs whose physics figure is within this fraction of the best "
                        "point in budget (default 0.01 = 1 %%)")
    p.add_argument("--vectors", type=positive_int, default=2000, metavar="N",
                   help="test vectors stored per point (default 2000)")
    p.add_argument("--sim", choices=sorted(SIMULATORS), default=None,
                   help="verify every point 3-way (emulator, HLS C simulation, RTL with this simulator) before "
                        "synthesis; exit 1 when a point is not bit exact (default: no verification)")
    p.add_argument("-o", "--output", required=True, help="scan folder to write (one bundle per point under points/)")
    p.set_defaults(func=cmd_scan)
    return parser


def _stop_children() -> None:
    """Terminate this process's children (compilers, simulators, local Dask workers) so that the threads
    waiting on them return at once and the clean-up runs within seconds, not after a minute-long compile."""
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass


@contextlib.contextmanager
def _signals_as_exceptions():
    """SIGTERM raises Terminated (SIGINT raises KeyboardInterrupt already); a second signal while the first
    is cleaned up is ignored. Only in the main thread (signal handlers cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        request_stop(Terminated)  # the raise below can be lost in a weakref callback: bundles check this too
        _stop_children()
        raise Terminated()

    def interrupt(signum, frame):
        request_stop(KeyboardInterrupt)
        raise KeyboardInterrupt()

    clear_stop()
    handlers = {signal.SIGTERM: terminate,
                signal.SIGINT: interrupt if signal.getsignal(signal.SIGINT) is signal.default_int_handler
                else signal.getsignal(signal.SIGINT)}
    before = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        clear_stop()
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's own exits included, for in-process callers)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a malformed option already reported
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    try:
        with _signals_as_exceptions():
            try:
                status = args.func(args)
                check_stop()  # a signal whose exception was lost (see trigger.errors.request_stop)
                return status
            except KeyboardInterrupt:  # cleaned up like a failure on the way here; no traceback
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                print(f"trigger {args.command}: interrupted", file=sys.stderr)
                return 130
            except Terminated:
                print(f"trigger {args.command}: terminated (SIGTERM)", file=sys.stderr)
                return 143
    except TriggerError as err:  # an expected failure: one line naming the culprit
        print(f"trigger {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
