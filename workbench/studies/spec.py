"""Every study's parameters as data (`parameters.json` beside this module), so that `workbench run` rejects an
unknown name or a wrong type within a second, before it imports a study (torch and transformers take seconds).

The file records a fingerprint of the package's sources; when the sources have changed since it was written it is
ignored and the study's own `PROFILES` check everything (slower, same verdicts). Rewrite it after changing a study's
parameters: `python -m workbench.studies.spec` (tests/test_profiles.py fails while it is out of date).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from workbench.profiles import Profiles
from workbench.studies import NOTEBOOK_STUDIES, study_module

SPEC_FILE = Path(__file__).with_name("parameters.json")
PACKAGE = Path(__file__).resolve().parents[1]


def package_fingerprint() -> str:
    """SHA-1 over the package's Python sources (paths and contents)."""
    digest = hashlib.sha1()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build() -> dict[str, object]:
    """The spec of every study's `PROFILES` (imports every study)."""
    return {
        "fingerprint": package_fingerprint(),
        "studies": {stem: study_module(stem).PROFILES.spec() for stem in NOTEBOOK_STUDIES},
    }


def static_profiles(stem: str) -> Profiles | None:
    """Profiles for a first check of `stem`'s parameters from the spec file; None when the file is missing, does
    not know the study, or is out of date."""
    try:
        spec = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    studies = spec.get("studies", {})
    if stem not in studies or spec.get("fingerprint") != package_fingerprint():
        return None
    return Profiles.from_spec(studies[stem])


def write() -> Path:
    SPEC_FILE.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return SPEC_FILE


if __name__ == "__main__":
    print(f"wrote {write()}")
