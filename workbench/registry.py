"""One registry convention for every family of interchangeable parts: name -> factory.

Method modules register their parts with `@register(kind, name)` (a class or a function that builds one) and
callers build them with `build(kind, name, **kwargs)`. An unknown name raises `UnknownNameError` listing the names
of that kind. Kinds in use: `head`, `text_model`, `fusion`, `projection`, `loss`, `augmenter`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)
_REGISTRIES: dict[str, dict[str, Callable]] = {}


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered under a kind (a KeyError for lookups, a ValueError for parameter checks)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register(kind: str, name: str) -> Callable[[F], F]:
    """Decorator: file `factory` under `kind` / `name` (a second registration of the same name is an error)."""

    def decorator(factory: F) -> F:
        table = _REGISTRIES.setdefault(kind, {})
        if name in table and table[name] is not factory:
            raise ValueError(f"{kind} {name!r} is registered twice")
        table[name] = factory
        return factory

    return decorator


def _load_methods() -> None:
    importlib.import_module("workbench.methods")  # importing the package registers every method's parts


def kinds() -> tuple[str, ...]:
    """Every registered kind."""
    _load_methods()
    return tuple(sorted(_REGISTRIES))


def names(kind: str) -> tuple[str, ...]:
    """The registered names of `kind`, in registration order."""
    _load_methods()
    if kind not in _REGISTRIES:
        raise UnknownNameError(f"unknown kind {kind!r}; known kinds: {', '.join(sorted(_REGISTRIES))}")
    return tuple(_REGISTRIES[kind])


def get(kind: str, name: str) -> Callable:
    """The factory registered as `kind` / `name`."""
    known = names(kind)
    if name not in known:
        raise UnknownNameError(f"unknown {kind} {name!r}; registered: {', '.join(known)}")
    return _REGISTRIES[kind][name]


def build(kind: str, name: str, /, *args: object, **kwargs: object):
    """Call the factory registered as `kind` / `name` with the given arguments."""
    return get(kind, name)(*args, **kwargs)
