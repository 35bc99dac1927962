"""Dataset loaders. Every loader returns a DataFrame with `text`, integer `label`, `label_name`, and the metadata
columns that exist; `frame.attrs["label_names"]` keeps the names and `frame.attrs["dropped"]` counts rows dropped
on purpose. The data root is `$WORKBENCH_DATA`, else `./data`."""

from __future__ import annotations

import importlib

# name -> submodule, imported on first use (PEP 562): `workbench.data.schema.DataError` for the command line does not
# import pandas and scikit-learn through every loader
_SOURCES = {
    "AFRISENTI_LABELS": "afrisenti",
    "afrisenti_languages": "afrisenti",
    "load_afrisenti": "afrisenti",
    "BESSTIE_SOURCES": "besstie",
    "BESSTIE_TASKS": "besstie",
    "BESSTIE_VARIETIES": "besstie",
    "load_besstie": "besstie",
    "load_bicodemix": "bicodemix",
    "load_imdb": "imdb",
    "DataError": "schema",
    "concat_frames": "schema",
    "data_dir": "schema",
    "label_distribution": "schema",
    "remove_overlap": "schema",
    "load_twitter_entity": "twitter",
}


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module 'workbench.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"workbench.data.{_SOURCES[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AFRISENTI_LABELS",
    "BESSTIE_SOURCES",
    "BESSTIE_TASKS",
    "BESSTIE_VARIETIES",
    "DataError",
    "afrisenti_languages",
    "concat_frames",
    "data_dir",
    "label_distribution",
    "load_afrisenti",
    "load_besstie",
    "load_bicodemix",
    "load_imdb",
    "load_twitter_entity",
    "remove_overlap",
]
