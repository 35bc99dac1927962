"""The one shape of the package: import directions, the study contract, notebooks' parameters, the registries."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest

from workbench.studies import NOTEBOOK_STUDIES, study_module

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STUDY_NAMES = sorted(set(NOTEBOOK_STUDIES.values()))


def _imports(path: Path) -> set[str]:
    """Every `workbench.*` module a file imports (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("workbench")}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _imports_package(imports: set[str], package: str) -> bool:
    return any(name == package or name.startswith(package + ".") for name in imports)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_one_way(module: str):
    imports = MODULES[module]
    allowed_studies = module.startswith(("workbench.studies", "workbench.bench")) or module in (
        "workbench.cli",
        "workbench.runner",
        "workbench.train",  # the `accelerate launch` entry point runs a study, like the cli
    )
    if not allowed_studies:
        assert not _imports_package(imports, "workbench.studies"), f"{module} imports workbench.studies"
    if not module.startswith("workbench.bench") and module != "workbench.cli":  # the cli only dispatches to them
        assert not _imports_package(imports, "workbench.bench"), f"{module} imports workbench.bench"
    if module.startswith("workbench.methods"):
        assert not _imports_package(imports, "workbench.viz"), f"method {module} imports viz"


def test_the_layout_has_methods_and_studies():
    methods = {p.stem for p in (PACKAGE / "methods").glob("*.py")} - {"__init__"}
    assert {"heads", "pcgrad", "probe", "mage", "comet", "spatten", "multilevel", "textmodels", "fusion"} <= methods
    studies = {p.stem for p in (PACKAGE / "studies").glob("*.py")} - {"__init__"}
    assert set(STUDY_NAMES) | {"tables"} <= studies
    old = {"augment", "distill", "multimodal", "besstie", "quickstart", "pruning", "heads", "multitask", "probe"}
    assert not {p.stem for p in PACKAGE.glob("*.py")} & old, "method and study modules live in methods/ and studies/"


@pytest.mark.parametrize("name", STUDY_NAMES)
def test_every_study_has_the_same_contract(name: str):
    from workbench.profiles import Profiles
    from workbench.results import StudyResult

    study = study_module(name)
    assert isinstance(study.STUDY, str) and study.STUDY
    assert isinstance(study.PROFILES, Profiles)
    assert isinstance(study.PAPER, dict) and study.PAPER, "the paper's reference numbers"
    for function in ("load", "run", "notes", "tables"):
        assert callable(getattr(study, function, None)), f"{name}.{function} missing"
    assert list(inspect.signature(study.run).parameters)[:1] == ["params"]
    returned = inspect.signature(study.run).return_annotation
    assert returned is not inspect.Signature.empty
    for profile in ("smoke", "quick", "paper"):
        params = study.PROFILES.resolve(profile)
        assert params["profile"] == profile
        notes = study.notes(params)
        assert notes and all(isinstance(n, str) and n for n in notes)
    assert study.notes(study.PROFILES.resolve("quick")) != study.notes(study.PROFILES.resolve("paper"))
    assert issubclass(StudyResult, object)


@pytest.mark.parametrize("stem", sorted(NOTEBOOK_STUDIES))
def test_parameters_cell_lists_exactly_the_study_knobs(stem: str):
    nb = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]
    study = study_module(stem)
    assert names[:2] == ["profile", "report_dir"]
    assert names[2:] == list(study.PROFILES.names), "one line per knob, in the study's order"
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert f"from workbench.studies import {NOTEBOOK_STUDIES[stem]} as study" in code
    assert "study.PROFILES.resolve(" in code and "study.run(" in code
    assert "workbench.bench" not in code, "notebooks never import bench"
    assert "for seed in" not in code, "the experiment loop lives in the study"
