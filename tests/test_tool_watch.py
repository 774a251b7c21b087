"""The check behind the `slow` marker (tests/conftest.py, tests/tool_watch): which starts count as running a
tool, and a Python process started by a test (the CLI, a Dask worker) reports its own starts."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.tool_watch.sitecustomize import LOG, tool_of


def test_tools_are_named_and_version_probes_are_not_runs():
    assert tool_of(["/opt/verilator/bin/verilator", "-cc", "top.v"]) == "verilator"
    assert tool_of(["make", "-s", "-C", "obj_dir"]) == "make"
    assert tool_of(["bash", "-c", "yosys -q -s synth.ys"]) == "yosys"
    assert tool_of("iverilog -o sim top.v") == "iverilog"
    assert tool_of(["./build_lib.sh"]) == "build_lib.sh"
    assert tool_of(["g++", "--version"]) is None
    assert tool_of(["g++", "-Werror", "-fsyntax-only", "-xc++", "-"]) is None
    assert tool_of([sys.executable, "-m", "trigger.cli", "verify"]) is None


def test_a_python_child_reports_the_tools_it_starts(tmp_path):
    """The session put tests/tool_watch first on PYTHONPATH: a child Python process gets the audit hook
    at start-up and logs a start (here of a verilator that does not exist: the start is what counts)."""
    log = tmp_path / "tools.log"
    code = ("import subprocess\n"
            "try:\n    subprocess.run(['/nonexistent/bin/verilator', '-cc', 'top.v'])\n"
            "except FileNotFoundError:\n    pass\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, LOG: str(log)})
    tool, pid, command = log.read_text().splitlines()[0].split("\t")
    assert tool == "verilator" and command == "/nonexistent/bin/verilator -cc top.v" and int(pid) > 0
