"""JupyterLab saves a workbench notebook the way it is committed: without outputs, execution counts or
`language_info`, with its cell ids (the flags of the pre-commit hook and of the git filter in `.gitconfig`).

A run's results live in `reports/` (results.json, figures, the index), not in the notebook, so Run All and save
leave `git status` clean. `pip install` enables the hook for JupyterLab servers of that environment
(`etc/jupyter/jupyter_server_config.d/workbench.json`); it touches only notebooks in the `notebooks/` folder of a
workbench checkout, never other notebooks the server saves.
"""

from __future__ import annotations

from pathlib import Path

STRIPPED_KEYS = ["metadata.language_info"]  # the --extra-keys of .pre-commit-config.yaml and .gitconfig


def is_workbench_notebook(path: Path) -> bool:
    """True for `<checkout>/notebooks/*.ipynb` of a workbench checkout (a folder holding `notebooks/` and
    `workbench/`)."""
    path = Path(path).resolve()
    return path.suffix == ".ipynb" and path.parent.name == "notebooks" and (path.parent.parent / "workbench").is_dir()


def strip_on_save(model: dict, path: str, contents_manager, **_kwargs) -> None:
    """`ContentsManager.pre_save_hook`: strip a workbench notebook's outputs before the server writes it."""
    if model.get("type") != "notebook" or "content" not in model:
        return
    root = getattr(contents_manager, "root_dir", None)
    if root is None or not is_workbench_notebook(Path(root) / path.strip("/")):
        return
    import nbformat
    from nbstripout import strip_output

    notebook = nbformat.from_dict(model["content"])
    model["content"] = strip_output(
        notebook, keep_output=False, keep_count=False, keep_id=True, extra_keys=list(STRIPPED_KEYS)
    )
