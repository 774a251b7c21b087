"""The `trigger` command line: one sub-command per user-facing step of the flow.

Every command exits 0 on success; errors are one line on stderr naming the
culprit, with a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys

from trigger import __version__


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


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
    """The main job: check the tools, then run the whole flow on the built-in examples."""
    print("== trigger doctor")
    status = cmd_doctor(argparse.Namespace(verbose=False))
    if status:
        return status
    print("== fixed-point core self-check")
    from trigger.fixed import FixedFormat, OverflowCount

    fmt = FixedFormat.parse("ap_fixed<8,3,AP_RND_CONV,AP_SAT>")
    count = OverflowCount()
    raw = fmt.quantize([-5.0, -0.0625, 0.03125, 0.09375, 3.96875, 100.0], count)
    print(f"{fmt.cpp}: raw {raw.tolist()} = {fmt.to_float(raw).tolist()}, {count.overflows} of {count.values} saturated")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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

    p = sub.add_parser("demo", help="run the whole flow on the built-in examples",
                       description="Check the tools, then run the flow on every built-in example.")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UserError, ValueError, FileNotFoundError) as err:
        print(f"trigger {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trigger {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
