"""The import graph of ``trigger/``, read with ``ast`` (no module is imported): stages import only earlier stages.

The stage order enforced here, earliest first:

1. basics: ``errors``, ``fixed``, ``quiet``, ``templates``, ``resources``, ``toolchain``, ``budget``, ``data``;
   and ``cluster`` (the executor: it imports nothing of trigger but ``errors``);
2. ``ir`` (the firmware model and its ops), ``vectors``;
3. ``frontends`` (models and tables -> IR);
4. ``backends`` (IR -> RTL, HLS project, emulator library), ``rtlsim``;
5. ``bundle`` (writes what the frontends and backends made);
6. ``verify``;
7. ``report``, ``scan``, ``ii_curve``, ``prove``, ``physics``; then ``api`` and ``cli``.

Checked: no module under ``trigger/frontends`` reaches (directly or through any chain of imports)
``trigger.bundle``, ``trigger.verify``, ``trigger.backends``, ``trigger.report`` or ``trigger.cli``; no backend
reaches ``bundle``, ``verify``, ``report`` or ``cli``; ``verify`` reaches neither ``report`` nor ``cli``;
``cluster`` reaches nothing but ``errors``. Every import counts, also one inside a function (run later, it
still makes the module depend on the other). No import circle except among the modules of one package
(split files of one piece of work, e.g. ``backends/rtl``); the circles that cross packages today are
listed in ``KNOWN_CIRCLES`` with the item that removes them, and the test fails when a circle is added
or changes, so the list can only shrink. The root package ``trigger/__init__.py`` is the public API's
facade: Python imports it before any submodule, its own imports are lazy (inside functions), and
modules read ``__version__`` from it; it is not a stage and its edges are left out.

Run alone: ``.venv/bin/python -m pytest -q tests/test_import_graph.py`` (a fraction of a second).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "trigger"

# Circles across packages that exist today, each with what removes it.
KNOWN_CIRCLES: set = set()  # none left: a circle across packages fails the test


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the trigger modules it imports (an imported name that is a module counts as that module)."""
    modules = module_names()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps |= {resolve(a.name) for a in node.names if a.name.split(".")[0] == "trigger"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                if base.split(".")[0] == "trigger":
                    deps |= {resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in modules else resolve(base)
                             for a in node.names}
        deps -= {None, name, "trigger"}
        graph[name] = deps
    graph.pop("trigger")  # the API facade (see the module's docstring)
    return graph


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for dep in graph[stack.pop()]:
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def circles(graph: dict[str, set[str]]) -> list[frozenset]:
    """The strongly connected components with more than one module."""
    return [frozenset(c) for c in {frozenset({m} | {d for d in reaches(graph, m) if m in reaches(graph, d)})
                                   for m in graph} if len(c) > 1]


def under(name: str, *stages: str) -> bool:
    return any(name == s or name.startswith(s + ".") for s in stages)


def test_the_graph_is_read():
    graph = import_graph()
    assert len(graph) > 50
    assert "trigger.cluster" in graph["trigger.frontends.lut.parts"]  # the executor, an earlier stage
    assert "trigger.verify" in reaches(graph, "trigger.cli")  # through a lazy import in a function


def test_no_frontend_reaches_a_later_stage():
    graph = import_graph()
    later = ("trigger.bundle", "trigger.verify", "trigger.backends", "trigger.report", "trigger.cli")
    wrong = {m: sorted(d for d in reaches(graph, m) if under(d, *later))
             for m in graph if under(m, "trigger.frontends")}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_backends_verify_and_the_executor_reach_only_earlier_stages():
    graph = import_graph()
    for stage, later in (("trigger.backends", ("trigger.bundle", "trigger.verify", "trigger.report", "trigger.cli")),
                         ("trigger.rtlsim", ("trigger.bundle", "trigger.verify", "trigger.report", "trigger.cli")),
                         ("trigger.verify", ("trigger.report", "trigger.cli", "trigger.scan")),
                         ("trigger.vectors", ("trigger.frontends", "trigger.backends", "trigger.bundle"))):
        wrong = {m: sorted(d for d in reaches(graph, m) if under(d, *later)) for m in graph if under(m, stage)}
        assert {m: d for m, d in wrong.items() if d} == {}, stage
    assert reaches(graph, "trigger.cluster") == {"trigger.errors"}


def test_no_import_circle_but_within_one_package():
    def one_package(circle) -> bool:  # every module of the circle inside one package below trigger/ itself
        return any(p != "trigger" and all(under(m, p) for m in circle)
                   for p in {m.rpartition(".")[0] for m in circle} | set(circle))

    crossing = {c for c in circles(import_graph()) if not one_package(c)}
    assert crossing == KNOWN_CIRCLES
