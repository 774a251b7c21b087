"""trigger as a package: every subpackage and the shipped data folders (templates, cocotb testbench,
examples) are in the wheel, under trigger/. scripts/check_wheel.sh installs that wheel and runs it."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = {"firmware_templates": "trigger/firmware_templates", "sim": "trigger/sim", "models": "trigger/models"}


def _pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _source_packages() -> set[str]:
    """Every folder of trigger/ holding Python code, as a dotted package name."""
    folders = {p.parent for p in (REPO / "trigger").rglob("*.py") if "__pycache__" not in p.parts}
    return {".".join(f.relative_to(REPO).parts) for f in folders}


def test_pyproject_lists_every_subpackage_and_maps_the_data_folders():
    setuptools = _pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    missing = _source_packages() - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    for folder, target in DATA.items():
        package = target.replace("/", ".")
        assert package in listed and setuptools["package-dir"][package] == folder
        assert setuptools["package-data"][package]


@pytest.mark.slow
def test_wheel_holds_the_code_templates_testbench_and_examples(tmp_path):
    # Build from a copy of the working tree: an in-place build would leave build/ in the checkout,
    # and setuptools packs whatever stale files an old build/lib still holds.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                    "sim_build", "out", "benchmarks", "docs", "tests")
    shutil.copytree(REPO, source, ignore=ignore)
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
                          "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("trigger-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {p.relative_to(REPO).as_posix() for p in (REPO / "trigger").rglob("*.py")
                if "__pycache__" not in p.parts}
    for folder, target in DATA.items():
        expected |= {f"{target}/{p.relative_to(REPO / folder).as_posix()}"
                     for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"

    assert "trigger/sim/standard_top_tb.py" in names
    assert {"trigger/models/jet_tagger/trigger.yml", "trigger/models/muon_pt_lut/trigger.yml"} <= names
    assert any(n.startswith("trigger/firmware_templates/rtl/") and n.endswith(".v.j2") for n in names)
    stray = sorted(n for n in names if not n.startswith(("trigger/", "trigger-")))
    assert not stray, f"files outside the package: {stray}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "trigger = trigger.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
