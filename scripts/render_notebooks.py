"""Execute the documentation notebooks (docs/notebooks/*.ipynb) and render each to HTML beside it.

    .venv/bin/python scripts/render_notebooks.py [NOTEBOOK ...]

Each notebook runs in the repository's root folder with nbclient (the kernel of this venv), its outputs are
saved into the .ipynb, and nbconvert's HTMLExporter writes docs/notebooks/<name>.html (one self-contained page,
images embedded). tests/test_api.py executes the same notebooks without saving them.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def render(path: Path) -> Path:
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    for cell in notebook.cells:  # no machine-specific timings in the committed copy's metadata
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(notebook, path)
    body, _ = HTMLExporter().from_notebook_node(notebook)
    out = path.with_suffix(".html")
    out.write_text(body)
    return out


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted((REPO / "docs" / "notebooks").glob("*.ipynb"))
    for path in paths:
        print(f"{path}: executed, rendered to {render(path.resolve())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
