"""Run profiles: `smoke` (tiny model, tens of rows, seconds), `quick` (offline default encoder on real data, minutes
on a 2-core CPU), `paper` (the paper's own settings, meant for a GPU)."""

from __future__ import annotations

from collections.abc import Mapping

PROFILES = ("smoke", "quick", "paper")


def resolve_parameters(
    defaults: Mapping[str, Mapping[str, object]], profile: str, **overrides: object
) -> dict[str, object]:
    """The profile's defaults, with every override that is not None put on top.

    Notebooks keep run-specific parameters at None in their `parameters` cell, so a value given with
    `workbench run -p key=value` (or papermill) wins and everything else follows the profile.
    """
    if profile not in defaults:
        raise ValueError(f"unknown profile {profile!r}; expected one of {tuple(defaults)}")
    unknown = [k for k in overrides if k not in defaults[profile]]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for this notebook; known: {sorted(defaults[profile])}")
    return {**defaults[profile], **{k: v for k, v in overrides.items() if v is not None}}
