"""Records every external tool a Python process starts, for the `slow` marker check in tests/conftest.py.

The test session puts this folder first on PYTHONPATH, so every Python process it starts (the CLI run as
a subprocess, pytest-xdist workers, Dask workers) imports this module at start-up and gets the same audit
hook as the session itself. The hook appends one line per tool started to the file named by
$TRIGGER_TEST_TOOL_LOG (read at each start, so a process may change it), with O_APPEND: lines from
concurrent processes do not interleave.
"""

from __future__ import annotations

import os
import shlex
import sys

LOG = "TRIGGER_TEST_TOOL_LOG"
# Compilers, simulators and synthesis tools (build_lib.sh: hls4ml's C-simulation compile).
TOOLS = {"verilator", "verilator_bin", "iverilog", "vvp", "yosys", "g++", "gcc", "c++", "cc", "clang++", "make",
         "vivado", "vivado_hls", "vitis_hls", "build_lib.sh"}
# Asking a tool its version or probing a compiler flag takes milliseconds: not running it.
PROBES = {"--version", "-V", "-version", "--getenv", "-fsyntax-only", "-dumpversion", "-dumpfullversion"}


def tool_of(argv) -> str | None:
    """The tool an argv runs (a shell's -c command looked into), or None."""
    if isinstance(argv, (str, bytes)):
        argv = shlex.split(os.fsdecode(argv))
    argv = [os.fsdecode(a) for a in argv or ()]
    if not argv:
        return None
    name = os.path.basename(argv[0])
    if name in ("sh", "bash") and "-c" in argv[1:-1]:
        return tool_of(argv[argv.index("-c") + 1])
    if name in TOOLS and not PROBES & set(argv[1:]):
        return name
    return None


def _hook(event: str, args) -> None:
    if event == "subprocess.Popen":
        argv = args[1] if args[1] is not None else [args[0]]
    elif event == "os.system":
        argv = args[0]
    elif event in ("os.posix_spawn", "os.exec"):
        argv = args[1]
    else:
        return
    log = os.environ.get(LOG)
    if not log:
        return
    try:
        tool = tool_of(argv)
    except ValueError:  # a shell command shlex cannot split
        return
    if tool:
        command = " ".join(os.fsdecode(a) for a in argv)[:300] if not isinstance(argv, (str, bytes)) else os.fsdecode(argv)[:300]
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{tool}\t{os.getpid()}\t{command}\n".replace("\n", " ").rstrip().encode() + b"\n")
        finally:
            os.close(fd)


def install() -> None:
    if not getattr(sys, "_trigger_tool_watch", False):
        sys._trigger_tool_watch = True
        sys.addaudithook(_hook)


if os.environ.get(LOG):
    install()
