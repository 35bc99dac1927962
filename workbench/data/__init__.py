"""Dataset loaders. Every loader returns a DataFrame with `text`, integer `label`, `label_name`, and the metadata
columns that exist; `frame.attrs["label_names"]` keeps the names and `frame.attrs["dropped"]` counts rows dropped
on purpose. The data root is `$WORKBENCH_DATA`, else `./data`."""

from workbench.data.afrisenti import AFRISENTI_LABELS, afrisenti_languages, load_afrisenti
from workbench.data.besstie import BESSTIE_SOURCES, BESSTIE_TASKS, BESSTIE_VARIETIES, load_besstie
from workbench.data.bicodemix import load_bicodemix
from workbench.data.imdb import load_imdb
from workbench.data.schema import DataError, concat_frames, data_dir, label_distribution, remove_overlap
from workbench.data.twitter import load_twitter_entity

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
