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


def test_demo_runs_examples_in_processes_of_their_own_and_reports_each(tmp_path, capsys):
    """trigger.demo: each example's `trigger ci` in a child process, its log printed in one block,
    its status and times in demo.json; a failing example fails the demo without stopping the others."""
    import json

    from trigger.demo import run_demo

    for name in ("broken_a", "broken_b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trigger.yml").write_text("kind: nonsense\n")
    code = run_demo([tmp_path / "broken_b", tmp_path / "broken_a"], tmp_path / "out", jobs=2)
    summary = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert code == 1 and summary["jobs"] == 2 and summary["passed"] == 0
    assert [e["name"] for e in summary["examples"]] == ["broken_a", "broken_b"]
    assert all(e["status"] == "failed" and e["exit_code"] == 2 and e["cpu_s"] > 0 for e in summary["examples"])
    out = capsys.readouterr().out
    assert "== broken_a: failed" in out and "   trigger ci: error:" in out and "\r" not in out


def test_python_dash_m_runs_the_same_command_line():
    """`python -m trigger` is the `trigger` script (for environments without the script on PATH)."""
    run = subprocess.run([sys.executable, "-m", "trigger", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("trigger "), run.stderr
    run = subprocess.run([sys.executable, "-m", "trigger", "no-such-command"], capture_output=True, text=True)
    assert run.returncode == 2 and "no-such-command" in run.stderr
