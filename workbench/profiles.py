"""Run profiles: typed parameters with base values and per-profile overrides, one decoder for every override source.

A study declares each knob once, as a `Param` in `base` (its value, type, allowed values and one line of help),
and each profile (`smoke`: tiny model, tens of rows, seconds; `quick`: offline default encoder on real data,
minutes on a 2-core CPU; `paper`: the paper's settings, meant for a GPU) lists only what differs from `base`.
`Profiles.resolve(profile, **overrides)` gives the plain dict a study runs on; every override, from a notebook's
parameters cell, `workbench run -p key=value` or a benchmark flag, is decoded by `decode_value` (YAML) and checked
against its `Param` before anything runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import yaml

from workbench.paper_models import dry_run

PROFILES = ("smoke", "quick", "paper")
_KINDS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list, tuple),
    "dict": (dict,),
    "any": (object,),
}


class ParameterError(ValueError):
    """A parameter name, type or value that the study does not accept; the message says what is allowed."""


def decode_value(raw: object) -> object:
    """A command-line or environment string as a YAML value (`'[0, 1]'` -> [0, 1]; `null`, `None` -> None); other
    values as they are."""
    if not isinstance(raw, str):
        return raw
    if raw.strip() in ("None", "none"):  # Python's spelling, as users type it
        return None
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError as err:
        raise ParameterError(f"value {raw!r} is not valid YAML ({err})") from None


@dataclass(frozen=True)
class Param:
    """One knob: its base value, kind (`int`, `float`, `bool`, `str`, `list`, `dict`, `any`; inferred from a non-None
    value), whether None is allowed, the allowed values (for a list: of each element), a lower bound, and help."""

    value: object
    help: str = ""
    kind: str | None = None
    optional: bool | None = None
    choices: Sequence[object] | Callable[[], Sequence[object]] | None = None
    minimum: float | None = None
    validate: Callable[[object], str | None] | None = None  # a problem with the value, or None (e.g. encoder names)

    @property
    def type_name(self) -> str:
        kind = self.kind or _infer_kind(self.value)
        return f"{kind} or None" if self.allows_none else kind

    @property
    def allows_none(self) -> bool:
        return self.value is None if self.optional is None else self.optional

    def allowed(self) -> Sequence[object] | None:
        """The allowed values (a callable is evaluated now: e.g. the languages present in the data)."""
        return self.choices() if callable(self.choices) else self.choices

    def check(self, name: str, value: object) -> object:
        """`value` decoded and validated; raises ParameterError naming the parameter, the value and what is allowed."""
        value = decode_value(value) if (self.kind or _infer_kind(self.value)) != "str" else value
        if value is None:
            if self.allows_none:
                return None
            raise ParameterError(f"parameter {name!r}: None is not allowed (expected {self.type_name})")
        kind = self.kind or _infer_kind(self.value)
        if not isinstance(value, _KINDS[kind]) or (kind in ("int", "float") and isinstance(value, bool)):
            raise ParameterError(
                f"parameter {name!r}: {value!r} is a {type(value).__name__}, expected {self.type_name}"
            )
        if kind == "float":
            value = float(value)
        if kind == "list":
            value = list(value)
        allowed = self.allowed()
        if allowed is not None:
            items = value if kind == "list" else [value]
            bad = [item for item in items if item not in allowed]
            if bad:
                raise ParameterError(
                    f"parameter {name!r}: {bad[0]!r} is not allowed; allowed: {', '.join(map(repr, allowed))}"
                )
        if self.minimum is not None and kind in ("int", "float") and value < self.minimum:
            raise ParameterError(f"parameter {name!r}: {value!r} is below the minimum {self.minimum}")
        problem = self.validate(value) if self.validate else None
        if problem:
            raise ParameterError(f"parameter {name!r}: {problem}")
        return value


def _infer_kind(value: object) -> str:
    for kind in ("bool", "int", "float", "str", "list", "dict"):
        if isinstance(value, _KINDS[kind]) and not (kind in ("int", "float") and isinstance(value, bool)):
            return kind
    return "any"


class Profiles:
    """Base parameters plus the differences of each profile; `resolve` applies overrides and checks every value."""

    def __init__(
        self,
        base: Mapping[str, Param],
        *,
        smoke: Mapping[str, object],
        quick: Mapping[str, object] | None = None,
        paper: Mapping[str, object] | None = None,
        dry_run: Mapping[str, object] | None = None,
    ):
        self.base = dict(base)
        self.overrides = {"smoke": dict(smoke), "quick": dict(quick or {}), "paper": dict(paper or {})}
        self.dry_run = dict(dry_run or {})  # caps (rows, epochs, sizes) put on any profile in a `--dry-run`
        for profile, values in {**self.overrides, "dry_run": self.dry_run}.items():
            self._reject_unknown(values, f"profile {profile!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """Every knob, in declaration order: exactly the names a notebook's parameters cell lists."""
        return tuple(self.base)

    def defaults(self, profile: str) -> dict[str, object]:
        """The profile's values before any override (unchecked: choices may depend on the data present)."""
        if profile not in self.overrides:
            raise ParameterError(f"unknown profile {profile!r}; expected one of {PROFILES}")
        values = {name: self.overrides[profile].get(name, param.value) for name, param in self.base.items()}
        if dry_run():
            values.update(self.dry_run)
        return values

    def resolve(self, profile: str, **overrides: object) -> dict[str, object]:
        """The profile's values with every override that is not None on top, each decoded and checked; the result
        also carries `profile` (and `dry_run` inside a `--dry-run`), so that a study's notes can say what ran."""
        values = self.defaults(profile)
        self._reject_unknown(overrides, "this study")
        values.update({k: v for k, v in overrides.items() if v is not None})
        checked = {name: self.base[name].check(name, value) for name, value in values.items()}
        return {"profile": profile, **({"dry_run": True} if dry_run() else {}), **checked}

    def check(self, overrides: Mapping[str, object]) -> None:
        """Validate overrides alone (names, types, allowed values), as the runner does before a kernel starts."""
        self._reject_unknown(overrides, "this study")
        for name, value in overrides.items():
            self.base[name].check(name, value)

    def spec(self) -> dict[str, dict[str, object]]:
        """The static part of every knob as JSON-able data: kind, whether None is allowed, fixed allowed values,
        minimum (not the callables: choices read from the data, custom validators)."""
        out: dict[str, dict[str, object]] = {}
        for name, param in self.base.items():
            choices = None if callable(param.choices) or param.choices is None else list(param.choices)
            if choices is not None and not all(isinstance(c, (str, int, float, bool)) for c in choices):
                choices = None
            out[name] = {
                "kind": param.kind or _infer_kind(param.value),
                "optional": param.allows_none,
                "choices": choices,
                "minimum": param.minimum,
            }
        return out

    @classmethod
    def from_spec(cls, spec: Mapping[str, Mapping[str, object]]) -> Profiles:
        """Profiles that check names, kinds, fixed choices and minimums from `spec` (see `spec`); their values are
        placeholders, for `check` only."""
        base = {
            name: Param(
                None,
                kind=str(entry["kind"]),
                optional=bool(entry["optional"]),
                choices=tuple(entry["choices"]) if entry.get("choices") is not None else None,
                minimum=entry.get("minimum"),
            )
            for name, entry in spec.items()
        }
        return cls(base, smoke={})

    def table(self) -> list[dict[str, object]]:
        """One row per knob: name, type, the value under each profile, help (for `workbench list NAME`)."""
        return [
            {
                "name": name,
                "type": param.type_name,
                **{p: self.overrides[p].get(name, param.value) for p in PROFILES},
                "help": param.help,
            }
            for name, param in self.base.items()
        ]

    def _reject_unknown(self, values: Mapping[str, object], where: str) -> None:
        for name in values:
            if name not in self.base:
                close = difflib.get_close_matches(name, self.base, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(self.base)}"
                raise ParameterError(f"unknown parameter {name!r} for {where}{hint}")
