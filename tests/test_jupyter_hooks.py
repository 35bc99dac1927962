"""JupyterLab's save hook: a workbench notebook is written as committed; other notebooks are left alone."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from workbench.jupyter_hooks import is_workbench_notebook, strip_on_save

REPO = Path(__file__).resolve().parents[1]


class _Manager:
    def __init__(self, root: Path):
        self.root_dir = str(root)


def _executed(source: Path) -> dict:
    nb = json.loads(source.read_text(encoding="utf-8"))
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = i + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"}
    return nb


def test_a_workbench_notebook_is_saved_byte_for_byte_as_committed(tmp_path: Path):
    committed = REPO / "notebooks" / "07_claims.ipynb"
    model = {"type": "notebook", "content": _executed(committed)}
    strip_on_save(model, "notebooks/07_claims.ipynb", _Manager(REPO))
    written = nbformat.writes(nbformat.from_dict(model["content"]), version=nbformat.NO_CONVERT) + "\n"
    assert written == committed.read_text(encoding="utf-8")


def test_other_notebooks_keep_their_outputs(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    model = {"type": "notebook", "content": _executed(REPO / "notebooks" / "07_claims.ipynb")}
    strip_on_save(model, "notebooks/07_claims.ipynb", _Manager(tmp_path))  # not a workbench checkout
    assert any(c.get("outputs") for c in model["content"]["cells"])
    assert not is_workbench_notebook(REPO / "README.md")
    assert is_workbench_notebook(REPO / "notebooks" / "00_quickstart.ipynb")
