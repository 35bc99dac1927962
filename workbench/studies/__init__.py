"""One module per paper, all with the same contract (checked by tests/test_layout.py):

- `STUDY`: the study's name in results.json;
- `PROFILES`: a `workbench.profiles.Profiles` (every knob once: base values + per-profile differences);
- `PAPER`: the paper's reference numbers, from REFERENCES.md;
- `load(params)`: the study's data;
- `run(params, data=None, progress=True)`: a `workbench.results.StudyResult` (subclassed with what views need);
- `notes(params)`: what this run is, derived from the parameters it used;
- `tables(result)`: named DataFrames the notebook shows.

Notebooks, `bench`, `runner` and `cli` import studies; `methods` never do.

Alike by design (the `duplicates` tool lists them by shape): each study's profile tables (`Param` declarations and
per-profile overrides) and its `StudyResult(...)` construction are declarations of the same contract, not logic;
folding them into a helper would hide which knobs a study has.
"""

from __future__ import annotations

import importlib
from types import ModuleType

NOTEBOOK_STUDIES = {
    "00_quickstart": "quickstart",
    "01_mage": "mage",
    "02_comet": "comet",
    "03_besstie": "besstie",
    "04_spatten": "spatten",
    "05_multilevel": "multilevel",
    "06_multimodal": "multimodal",
}


def study_module(name: str) -> ModuleType:
    """The study module `workbench.studies.<name>` (a notebook stem such as `03_besstie` works too)."""
    name = NOTEBOOK_STUDIES.get(name, name)
    if name not in NOTEBOOK_STUDIES.values():
        raise KeyError(f"unknown study {name!r}; known: {', '.join(NOTEBOOK_STUDIES.values())}")
    return importlib.import_module(f"workbench.studies.{name}")
