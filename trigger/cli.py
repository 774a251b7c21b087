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
import math
import sys
from pathlib import Path

from trigger import __version__
from trigger.rtlsim import SIMULATORS
from trigger.errors import TriggerError


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


def fpga_part(text: str) -> str:
    """--part: a part whose capacity is known, e.g. xcvu13p-flga2577-2-e (matched by its prefix)."""
    from trigger.synth import PARTS, part_info

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

    models = models_dir()
    examples = sorted(p for p in models.iterdir() if (p / "trigger.yml").exists())
    if args.only:
        examples = [p for p in examples if p.name in args.only]
    failed = []
    for example in examples:
        print(f"\n== {example.name}: build, verify, report")
        out = Path(args.output) / example.name
        ns = argparse.Namespace(source=str(example), output=str(out), weights=None, precision=None, backend=None,
                                pipeline=None, softmax=False, part=None, clock=None, vectors=None,
                                budget=None, sim="verilator")
        if cmd_ci(ns):
            failed.append(example.name)
    print(f"\n== demo: {len(examples) - len(failed)} of {len(examples)} examples built, verified bit exact "
          f"and within budget; bundles and reports under {args.output}/")
    for name in failed:
        print(f"   FAILED: {name}", file=sys.stderr)
    return 1 if failed else 0


def cmd_build(args: argparse.Namespace) -> int:
    from trigger.bundle import build_bundle
    from trigger.frontends import BuildOptions

    source = Path(args.source)
    out = Path(args.output) if args.output else Path("build") / source.stem
    options = BuildOptions(weights=args.weights, precision=args.precision, backend=args.backend,
                           pipeline=args.pipeline, keep_softmax=args.softmax, part=args.part,
                           clock_period_ns=args.clock, vectors=args.vectors, argmax=getattr(args, "argmax", False))
    bundle = build_bundle(source, out, options)
    print(f"bundle written to {bundle}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from trigger.verify import format_mismatch, verify_bundle

    result = verify_bundle(Path(args.bundle), simulator=args.sim, vectors=args.vectors)
    cover = result.get("cover")
    covered = f" (every value of the {cover['tensor']}: {cover['values']})" if cover else ""
    print(f"{result['vectors']} vectors{covered}; latency {result['latency_cycles']} cycles, II {result['ii']}")
    for name, count in result["mismatches"].items():
        print(f"  {name}: {count} mismatches")
    if not result["pass"] and result.get("first_mismatch"):
        print(format_mismatch(result["first_mismatch"]), file=sys.stderr)
    print("bit exact: " + ("yes" if result["pass"] else "NO"))
    return 0 if result["pass"] else 1


def cmd_report(args: argparse.Namespace) -> int:
    from trigger.report import build_report, print_summary

    report = build_report(Path(args.bundle), args.budget, synth=not args.no_synth,
                          vendor=getattr(args, "vendor", False))
    print_summary(report)
    print(f"report written to {Path(args.bundle) / 'reports' / 'report.html'}")
    if not report["budget"]["pass"]:
        for v in report["budget"]["violations"]:
            print(f"budget violation: {v['metric']} = {v['value']} exceeds {v['limit']}", file=sys.stderr)
        return 1
    return 0


def cmd_ci(args: argparse.Namespace) -> int:
    """Build, verify and report in one go; non-zero on any mismatch or budget violation."""
    if args.budget:  # fail on a bad budget before the long work
        from trigger.report import load_budget
        load_budget(args.budget)
    build_args = argparse.Namespace(**{**vars(args), "source": args.source})
    status = cmd_build(build_args)
    out = Path(args.output) if args.output else Path("build") / Path(args.source).stem
    verified = cmd_verify(argparse.Namespace(bundle=out, sim=args.sim, vectors=args.vectors))
    reported = cmd_report(argparse.Namespace(bundle=out, budget=args.budget, no_synth=False))
    if status or verified or reported:
        print("trigger ci: FAILED" + (" (bit mismatches)" if verified else "") + (" (budget)" if reported else ""),
              file=sys.stderr)
        return 1
    print("trigger ci: passed")
    return 0


def _add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="model folder with trigger.yml, a trigger.yml, a Keras .json (+ --weights), "
                                  "a full-model .h5 or an .onnx file")
    p.add_argument("-o", "--output", help="bundle folder to write (default: build/<name>)")
    p.add_argument("--weights", help="weights .h5 for a .json architecture (default: <name>_weights.h5 beside it)")
    p.add_argument("--precision", help="post-training quantization precision for float models, e.g. 'fixed<16,6>'")
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
                   help="FPGA part, e.g. xcvu13p-flga2577-2-e (default from trigger.yml, else xcvu13p-flga2577-2-e)")
    p.add_argument("--clock", type=clock_period_ns, metavar="NS",
                   help="target clock PERIOD in ns, not a frequency: 4 for 250 MHz "
                        "(default from trigger.yml, else 5)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trigger",
        description="Take quantized networks and look-up-table regressors from Python to "
                    "bit-exact FPGA firmware, with verification and latency/resource reports.")
    parser.add_argument("--version", action="version", version=f"trigger {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("doctor", help="list the compilers, simulators and synthesis tools found",
                       description="Print the version of every tool the flow uses, mark each required "
                                   "one ok or missing with the fix. Exit 1 when a required tool is missing.")
    p.add_argument("-v", "--verbose", action="store_true", help="also print where each tool was found")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("build", help="build a firmware bundle (HLS project, RTL, test vectors) from a model",
                       description="Convert a model or a model-zoo config into a firmware bundle: manifest.json, "
                                   "hls/ (hls4ml project), rtl/ (Verilog), vectors/ (emulator inputs/outputs). "
                                   "Written atomically: a failed build leaves nothing behind.")
    _add_build_options(p)
    p.add_argument("--vectors", type=positive_int, default=None, metavar="N",
                   help="number of test vectors to store in the bundle (default from trigger.yml)")
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
    p.set_defaults(func=cmd_verify)

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
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("ci", help="build + verify + report in one command, for a CI pipeline",
                       description="Build the bundle, verify it and report against the budget; exit non-zero on "
                                   "any bit mismatch or budget violation.")
    _add_build_options(p)
    p.add_argument("--budget", help="budget YAML (default: the model's trigger.yml budget section)")
    p.add_argument("--vectors", type=positive_int, default=None, metavar="N", help="number of test vectors to store and verify (default from trigger.yml)")
    p.add_argument("--sim", choices=sorted(SIMULATORS), default="verilator", help="RTL simulator")
    p.set_defaults(func=cmd_ci)

    p = sub.add_parser("demo", help="run the whole flow on the built-in examples",
                       description="Check the tools, then build, verify and report every example under models/ "
                                   "(what `make demo` runs).")
    p.add_argument("-o", "--output", default="build/demo", help="where the bundles go (default build/demo)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these examples")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's own exits included, for in-process callers)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a malformed option already reported
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    try:
        return args.func(args)
    except TriggerError as err:  # an expected failure: one line naming the culprit
        print(f"trigger {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trigger {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
