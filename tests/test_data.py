"""Data layer: every loader on the fixture tree, the real files against their PROVENANCE counts, bad input, and the
`workbench data` listing."""

from __future__ import annotations

import argparse
import gzip
import io
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from workbench.data import (
    AFRISENTI_LABELS,
    DataError,
    afrisenti_languages,
    label_distribution,
    load_afrisenti,
    load_besstie,
    load_bicodemix,
    load_imdb,
    load_twitter_entity,
    remove_overlap,
)
from workbench.data.catalog import COLUMNS, summarize
from workbench.data.commands import add_data_commands

FIXTURE_LANGUAGES = ["amh", "hau", "kin", "orm", "swa", "tso", "yor"]
SCHEMA = ["text", "label", "label_name"]


def assert_schema(frame: pd.DataFrame, label_names: list[str]) -> None:
    assert list(frame.columns[:3]) == SCHEMA
    assert frame["label"].dtype == "int64"
    assert frame.attrs["label_names"] == label_names
    assert (frame["label_name"] == [label_names[i] for i in frame["label"]]).all()
    assert frame["text"].str.strip().str.len().gt(0).all()


def data_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) - 1


# ---------------------------------------------------------------------------------------------- AfriSenti
def test_afrisenti_languages_on_fixture(fixture_data_dir):
    assert afrisenti_languages(fixture_data_dir) == FIXTURE_LANGUAGES


@pytest.mark.parametrize("language", FIXTURE_LANGUAGES)
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_afrisenti_fixture_splits(fixture_data_dir, language, split):
    frame = load_afrisenti(language, split, root=fixture_data_dir)
    path = fixture_data_dir / "afrisenti" / language / f"{split}.tsv"
    assert len(frame) == data_lines(path)
    if language == "orm" and split == "train":  # header-only stub of a zero-shot language
        assert frame.empty and frame.attrs["label_names"] == AFRISENTI_LABELS
        return
    assert_schema(frame, AFRISENTI_LABELS)
    assert set(frame["label_name"]) == set(AFRISENTI_LABELS)
    assert (frame["language"] == language).all() and (frame["split"] == split).all()
    assert frame.attrs["dropped"] == {}
    assert frame["line"].iloc[0] == 2  # line numbers count the header


def test_afrisenti_unknown_language_names_what_is_present(fixture_data_dir):
    with pytest.raises(DataError, match=r"unknown AfriSenti language 'xyz'.*kin"):
        load_afrisenti("xyz", root=fixture_data_dir)


# ---------------------------------------------------------------------------------------------- BESSTIE
SLICES = [(v, s) for v in ("en-AU", "en-IN", "en-UK") for s in ("Google", "Reddit")]
BESSTIE_NAMES = {"Sentiment": ["negative", "positive"], "Sarcasm": ["not_sarcastic", "sarcastic"]}


@pytest.mark.parametrize("task", ["Sentiment", "Sarcasm"])
@pytest.mark.parametrize("variety,source", SLICES)
@pytest.mark.parametrize("split", ["train", "valid"])
def test_besstie_every_slice(fixture_data_dir, task, variety, source, split):
    frame = load_besstie(task, variety, source, split, root=fixture_data_dir)
    assert_schema(frame, BESSTIE_NAMES[task])
    assert len(frame) >= 16 and frame["label"].nunique() == 2
    assert (frame["task"] == task).all() and (frame["variety"] == variety).all()
    assert (frame["source"] == source).all() and (frame["split"] == split).all()
    assert frame["seeded_split"].all() == (variety == "en-IN" and source == "Google")


def test_besstie_valid_counts_match_the_long_file(fixture_data_dir):
    raw = pd.read_csv(fixture_data_dir / "besstie" / "valid.csv", keep_default_na=False)
    for (task, variety, source), group in raw.groupby(["task", "variety", "source"]):
        if variety == "en-IN" and source == "Google":
            continue
        frame = load_besstie(task, variety, source, "valid", root=fixture_data_dir)
        assert len(frame) == len(group)
        assert frame["label"].tolist() == group["label"].tolist()
        assert frame["text"].tolist() == group["text"].tolist()  # quotes and line breaks survive


def test_besstie_wide_train_file_gives_both_tasks(fixture_data_dir):
    sentiment = load_besstie("Sentiment", ["en-AU", "en-UK"], split="train", root=fixture_data_dir)
    sarcasm = load_besstie("Sarcasm", ["en-AU", "en-UK"], split="train", root=fixture_data_dir)
    assert len(sentiment) == len(sarcasm) == 160
    assert sentiment["text"].tolist() == sarcasm["text"].tolist()


@pytest.mark.parametrize("task", ["Sentiment", "Sarcasm"])
def test_besstie_seeded_en_in_google_split(fixture_data_dir, task):
    def part(split, seed):
        return load_besstie(task, "en-IN", "Google", split, root=fixture_data_dir, seed=seed)

    train, valid = part("train", 0), part("valid", 0)
    assert train["seeded_split"].all() and valid["seeded_split"].all()
    assert not set(train["text"]) & set(valid["text"])
    raw = pd.read_csv(fixture_data_dir / "besstie" / "valid.csv", keep_default_na=False)
    whole = raw[(raw.task == task) & (raw.variety == "en-IN") & (raw.source == "Google")]
    assert sorted(train["text"].tolist() + valid["text"].tolist()) == sorted(whole["text"])
    assert len(valid) == math.ceil(0.4 * len(whole))  # sklearn rounds the held-out share up
    assert train["label"].nunique() == valid["label"].nunique() == 2  # stratified
    assert part("train", 0)["text"].tolist() == train["text"].tolist()
    assert part("train", 1)["text"].tolist() != train["text"].tolist()


def test_besstie_overlap_between_train_and_valid_is_removed_and_counted(fixture_data_dir):
    train = load_besstie("Sarcasm", ["en-AU", "en-UK"], split="train", root=fixture_data_dir)
    valid = load_besstie("Sarcasm", ["en-AU", "en-UK"], split="valid", root=fixture_data_dir)
    raw_valid = pd.read_csv(fixture_data_dir / "besstie" / "valid.csv", keep_default_na=False)
    raw_train = pd.read_csv(fixture_data_dir / "besstie" / "original_train_en-AU_en-UK.csv", keep_default_na=False)
    shared = raw_train["text"].str.strip().isin(set(raw_valid.loc[raw_valid.variety != "en-IN", "text"].str.strip()))
    clean, removed = remove_overlap(train, valid)
    assert removed == shared.sum() >= 12  # the fixture reuses 3 validation texts in each wide-file group
    assert len(clean) == len(train) - removed
    assert not set(clean["text"].str.strip()) & set(valid["text"].str.strip())
    assert clean.attrs["dropped"] == {"text also in evaluation set": removed}


def test_besstie_en_in_reddit_train_comes_from_the_cm_split(fixture_data_dir):
    frame = load_besstie("Sentiment", "en-IN", "Reddit", "train", root=fixture_data_dir)
    path = fixture_data_dir / "besstie" / "splits_en-IN_Reddit_cm" / "Sentiment" / "train_cm.csv"
    assert frame.attrs["source_files"] == [str(path)]
    assert len(frame) == len(pd.read_csv(path))


# ---------------------------------------------------------------------------------------------- Twitter
def test_twitter_all_labels_drops_and_counts_empty_texts(fixture_data_dir):
    labels = ("Negative", "Neutral", "Positive", "Irrelevant")
    frame = load_twitter_entity("train", labels=labels, root=fixture_data_dir)
    assert_schema(frame, ["negative", "neutral", "positive", "irrelevant"])
    assert len(frame) == 115 and frame.attrs["dropped"] == {"empty text": 5}
    assert set(frame["label_name"]) == {"negative", "neutral", "positive", "irrelevant"}
    assert {"id", "entity", "source"} <= set(frame.columns)


def test_twitter_default_labels_count_the_others_as_dropped(fixture_data_dir):
    frame = load_twitter_entity("train", root=fixture_data_dir)
    assert frame.attrs["label_names"] == ["negative", "positive"]
    dropped = frame.attrs["dropped"]
    assert dropped["label 'Neutral' dropped on purpose"] == 30
    assert dropped["label 'Irrelevant' dropped on purpose"] == 30
    assert len(frame) + sum(dropped.values()) == 120


def test_twitter_min_words_keeps_long_tweets_of_both_labels(fixture_data_dir):
    everything = load_twitter_entity("train", root=fixture_data_dir)
    frame = load_twitter_entity("train", min_words=40, root=fixture_data_dir)
    assert frame["text"].str.split().str.len().ge(40).all()
    assert frame["label"].nunique() == 2
    assert frame.attrs["dropped"]["fewer than 40 words"] == len(everything) - len(frame) > 0


def test_twitter_validation_file(fixture_data_dir):
    frame = load_twitter_entity(
        "valid", labels=("Negative", "Neutral", "Positive", "Irrelevant"), root=fixture_data_dir
    )
    assert len(frame) == 40 and frame["label"].value_counts().tolist() == [10, 10, 10, 10]


def test_twitter_reads_an_unzipped_training_file(fixture_data_dir, tmp_path):
    target = tmp_path / "twitter_entity_sentiment"
    target.mkdir()
    with zipfile.ZipFile(fixture_data_dir / "twitter_entity_sentiment" / "twitter_training.csv.zip") as zf:
        (target / "twitter_training.csv").write_bytes(zf.read("twitter_training.csv"))
    assert len(load_twitter_entity("train", root=tmp_path)) == len(load_twitter_entity("train", root=fixture_data_dir))


def test_twitter_rejects_unknown_label_names(fixture_data_dir):
    with pytest.raises(ValueError, match="unknown Twitter labels"):
        load_twitter_entity("train", labels=("Negative", "Happy"), root=fixture_data_dir)


# ---------------------------------------------------------------------------------------------- Bicodemix
def test_bicodemix_sentiment_drops_rows_without_majority(fixture_data_dir):
    frame = load_bicodemix("sentiment", root=fixture_data_dir, languages=None)  # every language (default: English)
    assert_schema(frame, ["negative", "neutral", "positive"])
    assert len(frame) == 194 and frame.attrs["dropped"] == {"no majority label": 6}
    assert {"id", "lang_id", "source", "task"} <= set(frame.columns)
    assert set(frame["lang_id"]) == {"my", "en", "cm"}


def test_bicodemix_sarcasm_keeps_every_row(fixture_data_dir):
    frame = load_bicodemix("sarcasm", root=fixture_data_dir, languages=None)
    assert_schema(frame, ["notsarc", "sarc"])
    assert len(frame) == 200 and frame.attrs["dropped"] == {}


@pytest.mark.parametrize("task", ["sentiment", "sarcasm"])
def test_bicodemix_split_is_disjoint_stratified_and_seeded(fixture_data_dir, task):
    whole = load_bicodemix(task, "all", root=fixture_data_dir, languages=None)
    parts = {
        split: load_bicodemix(task, split, seed=0, root=fixture_data_dir, languages=None)
        for split in ("train", "dev", "test")
    }
    ids = {split: set(part["id"]) for split, part in parts.items()}
    assert not (ids["train"] & ids["dev"] or ids["train"] & ids["test"] or ids["dev"] & ids["test"])
    assert ids["train"] | ids["dev"] | ids["test"] == set(whole["id"])
    assert [round(len(p) / len(whole), 1) for p in parts.values()] == [0.7, 0.1, 0.2]
    overall = whole["label"].value_counts(normalize=True)
    for split, part in parts.items():
        assert (part["split"] == split).all()
        share = part["label"].value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert (share - overall).abs().max() < 0.1, split  # stratified: label shares follow the whole file
    again = load_bicodemix(task, "test", seed=0, root=fixture_data_dir, languages=None)
    other = load_bicodemix(task, "test", seed=1, root=fixture_data_dir, languages=None)
    assert again["id"].tolist() == parts["test"]["id"].tolist()
    assert other["id"].tolist() != parts["test"]["id"].tolist()


# ---------------------------------------------------------------------------------------------- IMDB
@pytest.mark.parametrize("split", ["train", "test"])
def test_imdb_fixture(fixture_data_dir, split):
    frame = load_imdb(split, root=fixture_data_dir)
    assert_schema(frame, ["negative", "positive"])
    assert len(frame) == 60 and label_distribution(frame) == {"negative": 30, "positive": 30}
    assert (frame["split"] == split).all() and frame["text"].str.contains("<br /><br />").all()
    ratings = frame["rating"].astype(int)
    assert (ratings[frame["label"] == 1] >= 7).all() and (ratings[frame["label"] == 0] <= 4).all()


def test_imdb_all_is_train_plus_test(fixture_data_dir):
    assert len(load_imdb("all", root=fixture_data_dir)) == 120


# ---------------------------------------------------------------------------------------------- real data
AFRISENTI_COUNTS = {  # PROVENANCE.md: rows, negative, neutral, positive
    ("amh", "train"): (5984, 1548, 3104, 1332), ("amh", "dev"): (1497, 388, 776, 333),
    ("amh", "test"): (1999, 1337, 224, 438), ("arq", "train"): (1651, 892, 342, 417),
    ("arq", "dev"): (414, 223, 86, 105), ("arq", "test"): (958, 475, 154, 329),
    ("ary", "train"): (5583, 1664, 2161, 1758), ("ary", "dev"): (494, 138, 189, 167),
    ("ary", "test"): (2961, 850, 967, 1144), ("hau", "train"): (14172, 4573, 4912, 4687),
    ("hau", "dev"): (2677, 894, 896, 887), ("hau", "test"): (5303, 1759, 1789, 1755),
    ("ibo", "train"): (10192, 2600, 4508, 3084), ("ibo", "dev"): (1841, 470, 811, 560),
    ("ibo", "test"): (3682, 943, 1621, 1118), ("kin", "train"): (3302, 1146, 1257, 899),
    ("kin", "dev"): (827, 287, 315, 225), ("kin", "test"): (1026, 355, 393, 278),
    ("orm", "train"): (0, 0, 0, 0), ("orm", "dev"): (396, 117, 125, 154),
    ("orm", "test"): (2096, 733, 901, 462), ("pcm", "train"): (5121, 3241, 72, 1808),
    ("pcm", "dev"): (1281, 813, 21, 447), ("pcm", "test"): (4154, 2326, 431, 1397),
    ("por", "train"): (3063, 782, 1600, 681), ("por", "dev"): (767, 196, 400, 171),
    ("por", "test"): (3662, 655, 2379, 628), ("swa", "train"): (1810, 191, 1072, 547),
    ("swa", "dev"): (453, 48, 268, 137), ("swa", "test"): (748, 80, 444, 224),
    ("tir", "train"): (0, 0, 0, 0), ("tir", "dev"): (398, 215, 122, 61),
    ("tir", "test"): (2000, 970, 387, 643), ("tso", "train"): (804, 284, 136, 384),
    ("tso", "dev"): (203, 72, 35, 96), ("tso", "test"): (254, 90, 43, 121),
    ("twi", "train"): (3481, 1315, 522, 1644), ("twi", "dev"): (388, 147, 58, 183),
    ("twi", "test"): (949, 353, 146, 450), ("yor", "train"): (8522, 1872, 3108, 3542),
    ("yor", "dev"): (2090, 443, 763, 884), ("yor", "test"): (4515, 981, 1616, 1918),
}  # fmt: skip

BESSTIE_VALID_COUNTS = {  # PROVENANCE.md section 1: (task, variety, source) -> rows, label 0, label 1
    ("Sarcasm", "en-AU", "Google"): (130, 121, 9), ("Sarcasm", "en-AU", "Reddit"): (241, 140, 101),
    ("Sarcasm", "en-IN", "Google"): (225, 223, 2), ("Sarcasm", "en-IN", "Reddit"): (230, 199, 31),
    ("Sarcasm", "en-UK", "Google"): (249, 249, 0), ("Sarcasm", "en-UK", "Reddit"): (141, 110, 31),
    ("Sentiment", "en-AU", "Google"): (130, 34, 96), ("Sentiment", "en-AU", "Reddit"): (241, 164, 77),
    ("Sentiment", "en-IN", "Google"): (225, 57, 168), ("Sentiment", "en-IN", "Reddit"): (230, 172, 58),
    ("Sentiment", "en-UK", "Google"): (248, 62, 186), ("Sentiment", "en-UK", "Reddit"): (138, 122, 16),
}  # fmt: skip

BESSTIE_WIDE_COUNTS = {  # PROVENANCE.md section 3: (source, variety) -> rows, sentiment 0/1, sarcasm 0/1
    ("Google", "en-AU"): (946, 251, 695, 880, 66),
    ("Reddit", "en-AU"): (1763, 1200, 563, 1024, 739),
    ("Google", "en-UK"): (1817, 458, 1359, 1816, 1),
    ("Reddit", "en-UK"): (1005, 890, 115, 787, 218),
}


def counts(frame: pd.DataFrame) -> tuple[int, ...]:
    return (len(frame), *label_distribution(frame).values())


@pytest.mark.real_data
@pytest.mark.parametrize("language,split", sorted(AFRISENTI_COUNTS))
def test_real_afrisenti_counts(real_data_dir, language, split):
    assert counts(load_afrisenti(language, split, root=real_data_dir)) == AFRISENTI_COUNTS[language, split]


@pytest.mark.real_data
def test_real_afrisenti_has_all_14_languages(real_data_dir):
    assert len(afrisenti_languages(real_data_dir)) == 14


@pytest.mark.real_data
@pytest.mark.parametrize("task,variety,source", sorted(BESSTIE_VALID_COUNTS))
def test_real_besstie_valid_counts(real_data_dir, task, variety, source):
    valid = load_besstie(task, variety, source, "valid", root=real_data_dir)
    if variety == "en-IN" and source == "Google":  # seeded split of the validation rows: train + valid = all
        train = load_besstie(task, variety, source, "train", root=real_data_dir)
        assert not set(train["text"]) & set(valid["text"])
        valid = pd.concat([train, valid]).set_axis(range(len(train) + len(valid)))
        valid.attrs = train.attrs
    assert counts(valid) == BESSTIE_VALID_COUNTS[task, variety, source]


@pytest.mark.real_data
def test_real_besstie_wide_train_file(real_data_dir):
    sentiment = load_besstie("Sentiment", ["en-AU", "en-UK"], split="train", root=real_data_dir)
    sarcasm = load_besstie("Sarcasm", ["en-AU", "en-UK"], split="train", root=real_data_dir)
    assert len(sentiment) == len(sarcasm) == 5531
    for (source, variety), expected in BESSTIE_WIDE_COUNTS.items():
        pick = (sentiment["source"] == source) & (sentiment["variety"] == variety)
        got = (
            int(pick.sum()),
            *sentiment.loc[pick, "label"].value_counts().sort_index(),
            *sarcasm.loc[pick, "label"].value_counts().sort_index(),
        )
        assert got == expected, (source, variety)


@pytest.mark.real_data
@pytest.mark.parametrize("task,expected", [("Sentiment", (1685, 1256, 429)), ("Sarcasm", (1686, 1462, 224))])
def test_real_besstie_en_in_reddit_train(real_data_dir, task, expected):
    assert counts(load_besstie(task, "en-IN", "Reddit", "train", root=real_data_dir)) == expected


@pytest.mark.real_data
def test_real_twitter_counts(real_data_dir):
    labels = ("Negative", "Neutral", "Positive", "Irrelevant")
    train = load_twitter_entity("train", labels=labels, root=real_data_dir)
    assert len(train) + train.attrs["dropped"]["empty text"] == 74682
    assert train.attrs["dropped"] == {"empty text": 858}  # PROVENANCE: 858 empty-or-whitespace texts
    valid = load_twitter_entity("valid", labels=labels, root=real_data_dir)
    assert counts(valid) == (1000, 266, 285, 277, 172)


@pytest.mark.real_data
def test_real_bicodemix_counts(real_data_dir):
    sentiment = load_bicodemix("sentiment", root=real_data_dir, languages=None)
    assert counts(sentiment) == (9838, 4197, 2569, 3072)
    assert sentiment.attrs["dropped"] == {"no majority label": 162}
    assert counts(load_bicodemix("sarcasm", root=real_data_dir, languages=None)) == (10000, 7645, 2355)


@pytest.mark.real_data
def test_real_imdb_counts(real_data_dir):
    frame = load_imdb("all", root=real_data_dir)
    for split in ("train", "test"):
        part = frame[frame["split"] == split]
        assert len(part) == 25000 and part["label"].value_counts().tolist() == [12500, 12500]


# ---------------------------------------------------------------------------------------------- bad input
def write_like(path: Path, text: bytes) -> None:
    """Write `text` into `path` the way the real file is stored there (plain, gzip, or the one member of a zip)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text))
    elif path.suffix == ".zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            zf.writestr(path.stem, text)
        path.write_bytes(buffer.getvalue())
    else:
        path.write_bytes(text)


BAD_INPUT = {
    # id: (file under the data root, bytes to write or None to leave it absent, loader call, line, problem)
    "missing file": (
        "afrisenti/kin/dev.tsv", None, lambda r: load_afrisenti("kin", "dev", root=r), None, "file not found"
    ),
    "missing column": (
        "afrisenti/kin/train.tsv", b"tweet\tsentiment\nmwiriwe\tpositive\n",
        lambda r: load_afrisenti("kin", "train", root=r), 1, "missing column(s) ['label']",
    ),
    "missing column in gzip": (
        "imdb/imdb_50k_aclImdb.csv.gz", b"review,split\ngood,train\n", lambda r: load_imdb("train", root=r), 1,
        "missing column(s) ['sentiment']",
    ),
    "unknown label": (
        "afrisenti/kin/train.tsv", b"tweet\tlabel\nmwiriwe\tpositive\nnabi\tnegatve\n",
        lambda r: load_afrisenti("kin", "train", root=r), 3, "unknown label 'negatve' in column 'label'",
    ),
    "unknown label in BESSTIE": (
        "besstie/valid.csv", b'text,label,variety,source,task\n"Great, truly",1,en-AU,Google,Sentiment\n'
        b"Cold food,2,en-AU,Google,Sentiment\n",
        lambda r: load_besstie("Sentiment", "en-AU", "Google", "valid", root=r), 3, "unknown label '2'",
    ),
    "empty text": (
        "afrisenti/kin/test.tsv", b"tweet\tlabel\nmwiriwe\tpositive\n  \tneutral\n",
        lambda r: load_afrisenti("kin", "test", root=r), 3, "empty text in column 'tweet'",
    ),
    "undecodable bytes": (
        "afrisenti/kin/train.tsv", b"tweet\tlabel\nmwiriwe\tpositive\nnabi \xff\xfe\tnegative\n",
        lambda r: load_afrisenti("kin", "train", root=r), 3, "cannot decode as utf-8 (byte 0xff)",
    ),
    "undecodable bytes in zip": (
        "twitter_entity_sentiment/twitter_training.csv.zip", b"1,Xbox,Positive,fun\r\n2,Xbox,Negative,bad \xe9\r\n",
        lambda r: load_twitter_entity("train", root=r), 2, "cannot decode as utf-8",
    ),
    "ragged row": (
        "afrisenti/kin/train.tsv", b"tweet\tlabel\nmwiriwe\tpositive\nnabi\tnegative\textra\n",
        lambda r: load_afrisenti("kin", "train", root=r), 3, "ragged row: expected 2 fields (tweet, label), found 3",
    ),
    "ragged row in headerless CSV": (
        "twitter_entity_sentiment/twitter_validation.csv", b"1,Xbox,Positive,fun\r\n2,Xbox,Negative\r\n",
        lambda r: load_twitter_entity("valid", root=r), 2, "ragged row: expected 4 fields",
    ),
    "ragged row after a multi-line text": (
        "bicodemix/annotated_bicodemix_publicsa_v2.csv",
        b"id,comment/tweet,majority_sent,majority_sarc,lang_id\n1,\"two\nlines\",neutral,notsarc,my\n2,short,neutral\n",
        lambda r: load_bicodemix("sentiment", root=r), 4, "ragged row: expected 5 fields",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_names_file_line_and_problem(tmp_path, case):
    relative, content, load, line, problem = BAD_INPUT[case]
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is not None:
        write_like(path, content)
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    err = caught.value
    assert Path(err.path) == path
    assert err.line == line
    assert problem in err.problem
    where = f"{path}:{line}" if line else str(path)
    assert str(err).startswith(f"{where}: ")


# ---------------------------------------------------------------------------------------------- catalog and CLI
def test_summarize_fixture_tree(fixture_data_dir):
    table = summarize(fixture_data_dir)
    assert list(table.columns) == COLUMNS
    assert not table.duplicated(["dataset", "subset", "split"]).any()
    row = table.set_index(["dataset", "subset", "split"])
    kin = row.loc[("afrisenti", "kin", "train")]
    assert kin["rows"] == 42 and kin["labels"] == "negative 14 / neutral 14 / positive 14"
    assert row.loc[("afrisenti", "orm", "train"), "status"] == "empty"
    assert row.loc[("twitter_entity_sentiment", "all 4 labels", "train"), "dropped"] == "empty text: 5"
    assert row.loc[("bicodemix", "sentiment", "all"), "dropped"] == "no majority label: 6"
    assert "seeded" in row.loc[("besstie", "Sentiment en-IN Google", "train"), "note"]
    assert row.loc[("imdb", "aclImdb v1.0", "test"), "rows"] == 60
    assert len(table[table["dataset"] == "besstie"]) == 24


def test_summarize_lists_absent_datasets_with_the_download_command(fixture_data_dir, tmp_path):
    shutil.copytree(fixture_data_dir / "afrisenti", tmp_path / "afrisenti")
    (tmp_path / "imdb").mkdir()  # folder present, file absent
    table = summarize(tmp_path)
    missing = table[table["status"] == "missing"].set_index("dataset")
    assert {"besstie", "twitter_entity_sentiment", "bicodemix", "imdb", "multimodal"} <= set(missing.index)
    assert "workbench data download bicodemix" in missing.loc["bicodemix", "note"]
    assert "imdb_50k_aclImdb.csv.gz not found" in missing.loc["imdb", "note"]
    assert (table.loc[table["dataset"] == "afrisenti", "status"] != "missing").all()


def test_summarize_raises_on_a_malformed_file(fixture_data_dir, tmp_path):
    shutil.copytree(fixture_data_dir / "afrisenti", tmp_path / "afrisenti")
    (tmp_path / "afrisenti" / "kin" / "dev.tsv").write_text("tweet\tlabel\nmwiriwe\tpositive\textra\n")
    with pytest.raises(DataError, match=r"kin/dev.tsv:2: ragged row"):
        summarize(tmp_path)


@pytest.mark.real_data
def test_summarize_lists_mosi_through_the_multimodal_loader(real_data_dir, tmp_path, monkeypatch):
    pytest.importorskip("workbench.data.multimodal")
    (tmp_path / "multimodal").symlink_to((real_data_dir / "multimodal").resolve())
    mosi = summarize(tmp_path).query("dataset == 'multimodal'").set_index("split")
    assert mosi.loc["train", "rows"] == 1447 and mosi.loc["test", "rows"] == 752  # PROVENANCE: 2,199 utterances
    assert mosi.loc["train", "labels"].startswith("negative ") and "{" not in mosi.loc["train", "labels"]
    monkeypatch.setitem(sys.modules, "workbench.data.multimodal", None)  # module absent: listed, not loaded
    row = summarize(tmp_path).query("dataset == 'multimodal'").iloc[0]
    assert row["status"] == "present" and "loader not installed" in row["note"]


def data_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench")
    add_data_commands(parser.add_subparsers(dest="command"))
    return parser


def test_data_command_prints_the_table(fixture_data_dir, capsys):
    for argv in (["data", "--root", str(fixture_data_dir)], ["data", "--root", str(fixture_data_dir), "list"]):
        args = data_parser().parse_args(argv)
        assert args.func(args) == 0
        out = capsys.readouterr().out
        assert "negative 14 / neutral 14 / positive 14" in out and "empty text: 5" in out


def test_data_download_command_prints_manual_steps_for_besstie(tmp_path, capsys):
    args = data_parser().parse_args(["data", "download", "besstie", "--root", str(tmp_path)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "huggingface.co/datasets/unswnlporg/BESSTIE" in out and str(tmp_path / "besstie") in out


def run_cli(*argv: str, data: Path) -> subprocess.CompletedProcess:
    code = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "WORKBENCH_DATA": str(data)}
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def cli_with_data_commands():
    cli = pytest.importorskip("workbench.cli")
    try:
        cli.build_parser().parse_args(["data"])
    except SystemExit:
        pytest.skip("the CLI does not register `workbench data` yet")


def test_cli_workbench_data_lists_the_fixture_tree(cli_with_data_commands, fixture_data_dir):
    result = run_cli("data", data=fixture_data_dir)
    assert result.returncode == 0, result.stderr
    assert "afrisenti" in result.stdout and "negative 14 / neutral 14 / positive 14" in result.stdout


def test_cli_bad_file_gives_one_line_and_exit_2(cli_with_data_commands, fixture_data_dir, tmp_path):
    shutil.copytree(fixture_data_dir / "afrisenti", tmp_path / "afrisenti")
    bad = tmp_path / "afrisenti" / "swa" / "test.tsv"
    bad.write_bytes(b"tweet\tlabel\nhabari\tneutral\nmbaya\tnegative\textra\n")
    result = run_cli("data", data=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}:3: ragged row: expected 2 fields (tweet, label), found 3"
    ]
    assert "Traceback" not in result.stderr
