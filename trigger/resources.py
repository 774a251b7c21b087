"""Where the files shipped with the package live: templates, the cocotb testbench, examples.

In a wheel they are package data under ``trigger/`` (pyproject maps them there);
in a source checkout they are the top-level folders of the repository. Every
module asks here instead of walking up from its own ``__file__``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"trigger's {name}/ folder is missing from the installation ({_PACKAGE})")


def templates_dir() -> Path:
    """Jinja2 templates of every generated file (``firmware_templates/``)."""
    return _data_dir("firmware_templates")


def sim_dir() -> Path:
    """The cocotb testbench of the standard RTL top (``sim/``)."""
    return _data_dir("sim")


def models_dir() -> Path:
    """The built-in examples, one folder with a ``trigger.yml`` each (``models/``)."""
    return _data_dir("models")
