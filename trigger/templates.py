"""The one Jinja2 environment that prints every generated file (Verilog, C++, TCL, Yosys, reports).

Variables are written ``{= ... =}`` in every template, because Verilog needs
``{{ }}`` for replication. Undefined variables are errors; HTML is autoescaped.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from trigger.resources import templates_dir


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())), undefined=jinja2.StrictUndefined,
        variable_start_string="{=", variable_end_string="=}", autoescape=jinja2.select_autoescape(["html"]),
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context) -> str:
    """The text of ``firmware_templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)


def write(path: Path, template: str, **context) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(template, **context))
    return path
