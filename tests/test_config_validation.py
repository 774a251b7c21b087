"""Every bad trigger.yml value is refused before any work: exit 2, one line naming the field, within a second.

The cases run through `trigger build` as the command line runs it (``trigger.cli.main``), in one Python process
per kind of design (a driver subprocess times each case on its own), so the suite pays the interpreter's start-up
three times, not once per case. One case per kind also runs as its own ``python -m trigger.cli`` process.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"network": ROOT / "models" / "jet_tagger", "lut": ROOT / "models" / "muon_pt_lut",
            "bdt": ROOT / "models" / "muon_pt_bdt"}
# an alias bomb: 10^8 values when expanded (a list of 9 lists of ... of 10 ones)
BOMB = "\n".join([f"b{i}: &b{i} [{', '.join(['1'] * 10 if i == 0 else [f'*b{i - 1}'] * 10)}]" for i in range(8)])

# kind -> (dotted field, bad value, the text the error line must contain)
CASES = {
    "network": [
        ("dataset.n_train", "lots", "dataset.n_train"),
        ("train.learning_rate", "fast", "train.learning_rate"),
        ("quantization.weight_bits", "six", "quantization.weight_bits"),
        ("train.learning_rate", math.nan, "train.learning_rate"),
        ("dataset.n_test", math.nan, "dataset.n_test"),
        ("train.epochs", -1, "train.epochs"),
        ("verify.vectors", 0, "verify.vectors"),
        ("train.batch_size", 0, "train.batch_size"),
        ("quantization.weight_bits", 100, "quantization.weight_bits"),
        ("quantization.activation_integer", 9, "quantization.activation_integer"),
        ("rtl.pipeline", -1, "rtl.pipeline"),
        ("rtl.ii", 0, "rtl.ii"),
        ("rtl.multiplier", "fpga", "rtl.multiplier"),
        ("target.clock_mhz", 0, "target.clock_mhz"),
        ("target.part", 7, "target.part"),
        ("target.speed", 2, "target.speed"),
        ("model.hidden", [64, "x"], "model.hidden[1]"),
        ("model.keep_softmax", "maybe", "model.keep_softmax"),
        ("dataset.generator", "higgs", "dataset.generator"),
        ("hls.io_type", "sideways", "hls.io_type"),
        ("budget.latency_ns", "soon", "latency_ns"),
        ("name", 5, "name"),
        ("training", {"epochs": 3}, "training"),
    ],
    "lut": [
        ("data.n_train", "lots", "data.n_train"),
        ("model.learning_rate", "fast", "model.learning_rate"),
        ("model.epochs", -1, "model.epochs"),
        ("model.batch_size", 0, "model.batch_size"),
        ("target.clock_mhz", math.nan, "target.clock_mhz"),
        ("target.part", "", "target.part"),
        ("scale.workers", 0, "scale.workers"),
        ("budget.BRAM", -1, "BRAM"),
        ("verify.vectors", 0, "verify"),
        ("address.part_bits", "big", "address.part_bits"),
    ],
    "bdt": [
        ("train.n_train", "lots", "train.n_train"),
        ("train.learning_rate", "fast", "train.learning_rate"),
        ("train.max_depth", 100, "train.max_depth"),
        ("verify.vectors", 0, "verify.vectors"),
        ("rtl.pipeline", -1, "rtl.pipeline"),
        ("target.clock_mhz", -5, "target.clock_mhz"),
        ("leaf.fractional_bits", "six", "leaf.fractional_bits"),
        ("report.low_pt_max", math.nan, "report.low_pt_max"),
    ],
}
# files that are not even read: a duplicate key, an alias bomb (kind -> where the bomb goes)
BOMB_FIELD = {"network": "model.hidden", "lut": "model.hidden", "bdt": "report.thresholds"}

DRIVER = """
import contextlib, io, json, sys, time
from trigger.cli import main
rows = []
for folder in json.loads(sys.argv[1]):
    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err):
        rc = main(["build", folder, "-o", folder + "/out"])
    rows.append({"rc": rc, "stderr": err.getvalue(), "seconds": time.perf_counter() - t0})
print(json.dumps(rows))
"""


def _set(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _write_cases(kind: str, tmp_path: Path) -> list[tuple[Path, str]]:
    """One folder per bad trigger.yml of ``kind``; returns (folder, the text its error must name)."""
    text = (EXAMPLES[kind] / "trigger.yml").read_text()
    folders = []
    for i, (field, value, named) in enumerate(CASES[kind]):
        config = yaml.safe_load(text)
        _set(config, field, value)
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        (folder / "trigger.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        folders.append((folder, named))
    dup = tmp_path / "duplicate"
    dup.mkdir()
    (dup / "trigger.yml").write_text(text + f"\nname: {kind}_again\n")
    folders.append((dup, "duplicate key 'name'"))
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    config = yaml.safe_load(text)
    _set(config, BOMB_FIELD[kind], "BOMB")
    (bomb / "trigger.yml").write_text(BOMB + "\n" + yaml.safe_dump(config, sort_keys=False).replace(
        "BOMB", "[" + ", ".join(["*b7"] * 9) + "]"))
    folders.append((bomb, "aliases expand"))
    return folders


@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_bad_value_exits_2_naming_the_field_within_a_second(kind, tmp_path):
    cases = _write_cases(kind, tmp_path)
    run = subprocess.run([sys.executable, "-c", DRIVER, json.dumps([str(f) for f, _ in cases])],
                         capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    bad = []
    for (folder, named), row in zip(cases, rows):
        lines = row["stderr"].strip().splitlines()
        if row["rc"] != 2 or len(lines) != 1 or named not in lines[0] or row["seconds"] > 1.0 \
                or not lines[0].startswith("trigger build: error: ") or len(lines[0]) > 400:
            bad.append((named, row))
        assert not (folder / "out").exists()  # nothing written
    assert not bad, f"{len(bad)} of {len(rows)} cases not refused as they should be: {bad}"


def test_the_command_line_process_exits_2(tmp_path):
    """The same through `python -m trigger.cli` itself: the exit code a CI job sees."""
    folder, named = _write_cases("network", tmp_path)[0]
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "trigger.cli", "build", str(folder), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and named in run.stderr and "'lots'" in run.stderr
    assert time.perf_counter() - t0 < 20  # the interpreter and numpy start; nothing is trained


@pytest.mark.parametrize("output, says", [("afile/sub", "is a file, not a folder"), ("afile", "is not a folder"),
                                          ("/proc/trigger-out", "cannot write in /proc")])
def test_an_output_folder_that_cannot_be_written_is_refused_before_the_build(output, says, tmp_path, capsys):
    from trigger.cli import main

    (tmp_path / "afile").write_text("x")
    out = output if output.startswith("/") else str(tmp_path / output)
    t0 = time.perf_counter()
    assert main(["build", str(EXAMPLES["network"]), "-o", out]) == 2
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and says in line and f"-o {out}" in line, line
    assert time.perf_counter() - t0 < 1.0


def test_yaml_reader_refuses_duplicates_and_bombs_but_reads_the_examples(tmp_path):
    from trigger.errors import ConfigError
    from trigger.settings import MAX_YAML_VALUES, load_yaml, read_yaml

    for example in EXAMPLES.values():
        assert read_yaml(example / "trigger.yml") == yaml.safe_load((example / "trigger.yml").read_text())
    assert load_yaml("a: &x [1, 2]\nb: *x\nc: {<<: {d: 1}, e: 2}\n", "t") == {"a": [1, 2], "b": [1, 2],
                                                                              "c": {"d": 1, "e": 2}}
    for text, says in (("a: 1\nb:\n  c: 2\n  c: 3\n", "line 4: duplicate key 'c' (first on line 3)"),
                       ("a: &x [1, *x]\n", "refers to the list or mapping that holds it"),
                       (BOMB + "\nx: [*b7, *b7]\n", f"more than {MAX_YAML_VALUES:,} values")):
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match="^t: ") as err:
            load_yaml(text, "t")
        assert says in str(err.value) and time.perf_counter() - t0 < 0.5
