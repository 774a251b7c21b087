"""The command line: doctor finds every required tool, errors are one line."""

import subprocess
import sys

from trigger.cli import main


def test_doctor_finds_every_required_tool(capsys):
    assert main(["doctor", "-v"]) == 0
    out = capsys.readouterr().out
    for name in ("tensorflow", "qkeras", "hls4ml", "cocotb", "g++", "verilator", "iverilog", "yosys"):
        line = next(l for l in out.splitlines() if l.startswith(name + " "))
        assert " ok" in line, line
    assert "site-packages/verilator/bin/verilator" in out  # the bundled binary, PATH untouched


def test_help_explains_every_command():
    out = subprocess.run([sys.executable, "-m", "trigger.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("doctor", "build", "verify", "report", "ci", "demo"):
        assert command in out.stdout


def test_unknown_command_fails():
    out = subprocess.run([sys.executable, "-m", "trigger.cli", "frobnicate"], capture_output=True, text=True)
    assert out.returncode != 0 and "invalid choice" in out.stderr
