"""Property-based tests of every loader on its real on-disk format (Hypothesis).

Well-formed rows round-trip with nothing lost (every row kept or counted as dropped on purpose, texts verbatim, in
file order, with their line numbers). Random bytes, damaged containers, mutated bytes and rows with values outside
the known sets give a DataError naming the file (and the line of the first bad row), never another exception.
Each example writes into its own temporary folder; the whole file runs in well under a minute (50 examples per
test; set WORKBENCH_FUZZ_EXAMPLES for a longer hunt).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fixtures import write_payload
from fixtures_multimodal import write_mosi_fixture
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from workbench.data import DataError, load_afrisenti, load_besstie, load_bicodemix, load_imdb, load_twitter_entity
from workbench.data.multimodal import load_mmsa_pickle, load_mosi

EXAMPLES = int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "50"))  # raise it for a longer hunt
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FEW = settings(FUZZ, max_examples=max(5, EXAMPLES // 3))


@contextmanager
def data_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        yield Path(folder)


def load_or_error(load: Callable[[], object], path: Path):
    """The loader's result, or its DataError (which must name `path`); any other exception fails the test."""
    try:
        return load()
    except DataError as err:
        assert Path(err.path) == path or err.path.startswith(str(path)), str(err)
        return err


# ------------------------------------------------------------------------------------------------- strategies
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r")
csv_text = st.text(CHARS, min_size=1, max_size=30).filter(lambda t: t.strip())  # commas, quotes, line breaks
tsv_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n\t"), min_size=1,
                   max_size=30).filter(lambda t: t.strip())  # fmt: skip
maybe_empty_csv_text = st.one_of(csv_text, st.sampled_from(["", "  "]))


def outside(allowed: set[str], alphabet=CHARS) -> st.SearchStrategy[str]:
    return st.text(alphabet, max_size=12).filter(lambda v: v.strip() not in allowed)


def csv_records(rows: list[list[str]], header: list[str] | None, delimiter=",", end="\n") -> tuple[bytes, list[int]]:
    """The file's bytes and each record's first line (as the loaders count it)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=end)
    line, starts = 1, []
    if header is not None:
        writer.writerow(header)
        line = 2
    for row in rows:
        before = buffer.tell()
        writer.writerow(row)
        starts.append(line)
        line += buffer.getvalue()[before:].count("\n")
    return buffer.getvalue().encode("utf-8"), starts


def tsv_records(rows: list[list[str]], header: list[str]) -> tuple[bytes, list[int]]:
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8"), list(range(2, len(rows) + 2))


# ------------------------------------------------------------------------------------------------- per family
AFRISENTI = ["negative", "neutral", "positive"]
afrisenti_rows = st.lists(st.tuples(tsv_text, st.sampled_from(AFRISENTI)), min_size=1, max_size=25)


@FUZZ
@given(rows=afrisenti_rows, with_id=st.booleans())
def test_afrisenti_round_trip(rows, with_id):
    header = ["ID", "tweet", "label"] if with_id else ["tweet", "label"]
    table = [[f"x_{i}", t, lab] if with_id else [t, lab] for i, (t, lab) in enumerate(rows)]
    data, starts = tsv_records(table, header)
    with data_root() as root:
        write_payload(root / "afrisenti" / "kin" / "dev.tsv", data)
        frame = load_afrisenti("kin", "dev", root=root)
    assert frame["text"].tolist() == [t for t, _ in rows]
    assert frame["label_name"].tolist() == [lab for _, lab in rows]
    assert frame["line"].tolist() == starts and frame.attrs["dropped"] == {}


@FUZZ
@given(rows=afrisenti_rows, data=st.data())
def test_afrisenti_label_outside_the_set_names_its_line(rows, data):
    bad_at = data.draw(st.integers(0, len(rows) - 1))
    bad = data.draw(outside(set(AFRISENTI), st.characters(blacklist_categories=("Cs",),
                                                          blacklist_characters="\x00\r\n\t")))  # fmt: skip
    table = [[t, bad if i == bad_at else lab] for i, (t, lab) in enumerate(rows)]
    payload, starts = tsv_records(table, ["tweet", "label"])
    with data_root() as root:
        path = write_payload(root / "afrisenti" / "kin" / "dev.tsv", payload)
        err = load_or_error(lambda: load_afrisenti("kin", "dev", root=root), path)
    assert isinstance(err, DataError) and err.line == starts[bad_at] and "column 'label'" in err.problem


VARIETIES, SOURCES, TASKS = ["en-AU", "en-IN", "en-UK"], ["Google", "Reddit"], ["Sentiment", "Sarcasm"]
besstie_row = st.tuples(
    csv_text, st.sampled_from(["0", "1"]), st.sampled_from(VARIETIES), st.sampled_from(SOURCES), st.sampled_from(TASKS)
)


@FUZZ
@given(rows=st.lists(besstie_row, min_size=1, max_size=25), data=st.data())
def test_besstie_valid_round_trip(rows, data):
    slices = sorted({(r[4], r[2], r[3]) for r in rows if not (r[2] == "en-IN" and r[3] == "Google")})
    assume(slices)
    task, variety, source = data.draw(st.sampled_from(slices))
    payload, starts = csv_records([list(r) for r in rows], ["text", "label", "variety", "source", "task"])
    with data_root() as root:
        write_payload(root / "besstie" / "valid.csv", payload)
        frame = load_besstie(task, variety, source, "valid", root=root)
    picked = [(r, s) for r, s in zip(rows, starts) if (r[4], r[2], r[3]) == (task, variety, source)]
    assert frame["text"].tolist() == [r[0] for r, _ in picked]  # quotes, commas and line breaks survive
    assert frame["label"].tolist() == [int(r[1]) for r, _ in picked]
    assert frame["line"].tolist() == [s for _, s in picked]


@FUZZ
@given(rows=st.lists(besstie_row, min_size=1, max_size=20), data=st.data())
def test_besstie_value_outside_its_set_is_caught_in_any_slice(rows, data):
    """The observed bug: a bad row in another slice used to be filtered away before it was checked."""
    column = data.draw(st.integers(1, 4))
    allowed = [{"0", "1"}, set(VARIETIES), set(SOURCES), set(TASKS)][column - 1]
    bad_at = data.draw(st.integers(0, len(rows) - 1))
    bad = data.draw(outside(allowed) if column == 1 else st.text(CHARS, max_size=12).filter(lambda v: v not in allowed))
    table = [list(r) for r in rows]
    table[bad_at][column] = bad
    payload, starts = csv_records(table, ["text", "label", "variety", "source", "task"])
    with data_root() as root:
        path = write_payload(root / "besstie" / "valid.csv", payload)
        err = load_or_error(lambda: load_besstie("Sentiment", "en-AU", "Google", "valid", root=root), path)
    assert isinstance(err, DataError) and err.line == starts[bad_at]
    assert f"column '{['label', 'variety', 'source', 'task'][column - 1]}'" in err.problem


TWITTER = ["Negative", "Neutral", "Positive", "Irrelevant"]
twitter_row = st.tuples(st.integers(0, 10**6).map(str), csv_text, st.sampled_from(TWITTER), maybe_empty_csv_text)


@FUZZ
@given(rows=st.lists(twitter_row, min_size=1, max_size=25), zipped=st.booleans())
def test_twitter_round_trip(rows, zipped):
    payload, starts = csv_records([list(r) for r in rows], None, end="\r\n")
    with data_root() as root:
        name = "twitter_training.csv.zip" if zipped else "twitter_validation.csv"
        path = write_payload(root / "twitter_entity_sentiment" / name, payload)
        result = load_or_error(
            lambda: load_twitter_entity("train" if zipped else "valid", labels=TWITTER, root=root), path
        )
    kept = [(r, s) for r, s in zip(rows, starts) if r[3].strip()]
    if not kept:  # every text empty: the filter that emptied the frame is named
        assert isinstance(result, DataError) and "and a text" in result.problem
        return
    assert result["text"].tolist() == [r[3] for r, _ in kept] and result["id"].tolist() == [r[0] for r, _ in kept]
    assert result["entity"].tolist() == [r[1] for r, _ in kept]
    assert result["label_name"].tolist() == [r[2].lower() for r, _ in kept]
    assert result["line"].tolist() == [s for _, s in kept]
    assert len(result) + result.attrs["dropped"].get("empty text", 0) == len(rows)


@FUZZ
@given(rows=st.lists(twitter_row, min_size=1, max_size=15), data=st.data())
def test_twitter_label_outside_the_set_names_its_line(rows, data):
    bad_at = data.draw(st.integers(0, len(rows) - 1))
    table = [list(r) for r in rows]
    table[bad_at][2] = data.draw(outside(set(TWITTER)))
    payload, starts = csv_records(table, None, end="\r\n")
    with data_root() as root:
        path = write_payload(root / "twitter_entity_sentiment" / "twitter_validation.csv", payload)
        err = load_or_error(lambda: load_twitter_entity("valid", root=root), path)
    assert isinstance(err, DataError) and err.line == starts[bad_at] and "column 'sentiment'" in err.problem


BICODEMIX_HEADER = ["id", "comment/tweet", "majority_sent", "majority_sarc", "lang_id"]
bicodemix_row = st.tuples(
    maybe_empty_csv_text,
    st.sampled_from(["", "negative", "neutral", "positive"]),
    st.sampled_from(["notsarc", "sarc"]),
    st.sampled_from(["my", "en", "cm"]),
)


@FUZZ
@given(rows=st.lists(bicodemix_row, min_size=1, max_size=25))
def test_bicodemix_round_trip(rows):
    payload, starts = csv_records([[str(i + 1), *r] for i, r in enumerate(rows)], BICODEMIX_HEADER)
    with data_root() as root:
        path = write_payload(root / "bicodemix" / "annotated_bicodemix_publicsa_v2.csv", payload)
        result = load_or_error(lambda: load_bicodemix("sentiment", "all", root=root, languages=None), path)
    kept = [(i, r, s) for i, (r, s) in enumerate(zip(rows, starts)) if r[1] and r[0].strip()]
    if not kept:
        assert isinstance(result, DataError) and "no rows left for sentiment" in result.problem
        return
    assert result["text"].tolist() == [r[0] for _, r, _ in kept]
    assert result["label_name"].tolist() == [r[1] for _, r, _ in kept]
    assert result["id"].tolist() == [str(i + 1) for i, _, _ in kept]
    assert result["line"].tolist() == [s for *_, s in kept]
    dropped = result.attrs["dropped"]
    assert dropped.get("no majority label", 0) == sum(not r[1] for r in rows)
    assert len(result) + sum(dropped.values()) == len(rows)


@FUZZ
@given(rows=st.lists(bicodemix_row, min_size=1, max_size=15), data=st.data())
def test_bicodemix_value_outside_its_set_names_its_line(rows, data):
    column = data.draw(st.sampled_from([2, 3, 4]))
    allowed = [None, None, {"", "negative", "neutral", "positive"}, {"", "notsarc", "sarc"}, {"my", "en", "cm"}]
    bad_at = data.draw(st.integers(0, len(rows) - 1))
    table = [[str(i + 1), *r] for i, r in enumerate(rows)]
    table[bad_at][column] = data.draw(
        outside(allowed[column]) if column < 4 else st.text(CHARS, max_size=5).filter(lambda v: v not in allowed[4])
    )
    payload, starts = csv_records(table, BICODEMIX_HEADER)
    with data_root() as root:
        path = write_payload(root / "bicodemix" / "annotated_bicodemix_publicsa_v2.csv", payload)
        err = load_or_error(lambda: load_bicodemix("sarcasm", root=root), path)
    assert isinstance(err, DataError) and err.line == starts[bad_at]
    assert f"column '{BICODEMIX_HEADER[column]}'" in err.problem


IMDB_HEADER = ["review", "sentiment", "split", "file_id", "rating"]
imdb_row = st.tuples(
    csv_text,
    st.sampled_from(["negative", "positive"]),
    st.sampled_from(["train", "test"]),
    st.integers(0, 12500).map(str),
    st.integers(1, 10).map(str),
)


@FUZZ
@given(rows=st.lists(imdb_row, min_size=1, max_size=25), split=st.sampled_from(["train", "test", "all"]))
def test_imdb_round_trip(rows, split):
    payload, starts = csv_records([list(r) for r in rows], IMDB_HEADER, end="\r\n")
    with data_root() as root:
        path = write_payload(root / "imdb" / "imdb_50k_aclImdb.csv.gz", payload)
        result = load_or_error(lambda: load_imdb(split, root=root), path)
    kept = [(r, s) for r, s in zip(rows, starts) if split in ("all", r[2])]
    if not kept:
        assert isinstance(result, DataError) and f"no rows with split = {split!r}" in result.problem
        return
    assert result["text"].tolist() == [r[0] for r, _ in kept]
    assert result["label_name"].tolist() == [r[1] for r, _ in kept]
    assert result[["split", "file_id", "rating"]].values.tolist() == [list(r[2:]) for r, _ in kept]
    assert result["line"].tolist() == [s for _, s in kept]


@FUZZ
@given(rows=st.lists(imdb_row, min_size=1, max_size=15), data=st.data())
def test_imdb_value_outside_its_set_names_its_line(rows, data):
    column = data.draw(st.sampled_from([1, 2, 4]))
    bad = data.draw(
        {
            1: outside({"negative", "positive"}),
            2: st.text(CHARS, max_size=8).filter(lambda v: v not in ("train", "test")),
            4: st.one_of(st.integers(11, 10**4).map(str), st.just("0"), st.text(st.sampled_from("ab-. 7"), max_size=4)),
        }[column]
    )
    assume(column != 4 or not (bad.strip().isdigit() and 1 <= int(bad) <= 10))
    bad_at = data.draw(st.integers(0, len(rows) - 1))
    table = [list(r) for r in rows]
    table[bad_at][column] = bad
    payload, starts = csv_records(table, IMDB_HEADER)
    with data_root() as root:
        path = write_payload(root / "imdb" / "imdb_50k_aclImdb.csv.gz", payload)
        err = load_or_error(lambda: load_imdb("all", root=root), path)
    assert isinstance(err, DataError) and err.line == starts[bad_at]
    assert f"column '{IMDB_HEADER[column]}'" in err.problem


# ------------------------------------------------------------------------------------------------- damaged bytes
TEXT_FILES = {
    "afrisenti/kin/dev.tsv": lambda r: load_afrisenti("kin", "dev", root=r),
    "besstie/valid.csv": lambda r: load_besstie("Sarcasm", "en-UK", "Reddit", "valid", root=r),
    "besstie/original_train_en-AU_en-UK.csv": lambda r: load_besstie("Sentiment", "en-AU", "Reddit", "train", root=r),
    "besstie/splits_en-IN_Reddit_cm/Sarcasm/train_cm.csv": lambda r: load_besstie("Sarcasm", "en-IN", "Reddit", root=r),
    "twitter_entity_sentiment/twitter_training.csv.zip": lambda r: load_twitter_entity("train", root=r),
    "twitter_entity_sentiment/twitter_validation.csv": lambda r: load_twitter_entity("valid", root=r),
    "bicodemix/annotated_bicodemix_publicsa_v2.csv": lambda r: load_bicodemix("sentiment", "train", root=r),
    "imdb/imdb_50k_aclImdb.csv.gz": lambda r: load_imdb("test", root=r),
}


@FUZZ
@given(relative=st.sampled_from(sorted(TEXT_FILES)), raw=st.binary(max_size=300), wrap=st.booleans())
def test_random_bytes_give_a_data_error(relative, raw, wrap):
    """Random bytes as the file itself, or (wrap) as the content of its gzip / zip / plain container."""
    with data_root() as root:
        path = root / relative
        if wrap:
            write_payload(path, raw)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)
        load_or_error(lambda: TEXT_FILES[relative](root), path)


@pytest.fixture(scope="module")
def good_files(fixture_data_dir) -> dict[str, bytes]:
    return {relative: (fixture_data_dir / relative).read_bytes() for relative in TEXT_FILES}


@FUZZ
@given(relative=st.sampled_from(sorted(TEXT_FILES)), data=st.data())
def test_damaged_good_files_give_a_data_error(good_files, relative, data):
    """Truncated, bit-flipped, or with random bytes spliced in (raw or inside the container)."""
    raw = good_files[relative]
    inside = data.draw(st.booleans()) and relative.endswith((".gz", ".zip"))
    if inside:
        raw = gzip.decompress(raw) if relative.endswith(".gz") else _unzip(raw)
    at = data.draw(st.integers(0, len(raw)))
    how = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    if how == "truncate":
        damaged = raw[:at]
    elif how == "flip":
        damaged = raw[:at] + bytes(b ^ 0xFF for b in raw[at : at + 8]) + raw[at + 8 :]
    else:
        damaged = raw[:at] + data.draw(st.binary(min_size=1, max_size=16)) + raw[at:]
    with data_root() as root:
        path = root / relative
        if inside:
            write_payload(path, damaged)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(damaged)
        load_or_error(lambda: TEXT_FILES[relative](root), path)


def _unzip(raw: bytes) -> bytes:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return zf.read(zf.namelist()[0])


@FUZZ
@given(
    relative=st.sampled_from(sorted(TEXT_FILES)),
    rows=st.lists(st.lists(st.text(CHARS, max_size=8), min_size=0, max_size=7), min_size=0, max_size=8),
    header=st.booleans(),
)
def test_random_rows_give_a_data_error(relative, rows, header):
    """Rows of random fields and random field counts (after the real header, or none)."""
    header_line = {
        "afrisenti": ["tweet", "label"],
        "besstie/valid": ["text", "label", "variety", "source", "task"],
        "besstie/original": ["source", "variety", "text", "sentiment", "sarcasm"],
        "besstie/splits": ["id", "text", "label", "is_cm"],
        "bicodemix": BICODEMIX_HEADER,
        "imdb": IMDB_HEADER,
    }
    names = next((v for k, v in header_line.items() if relative.startswith(k)), None)
    delimiter = "\t" if relative.endswith(".tsv") else ","
    payload, _ = csv_records(rows, names if header and names else None, delimiter=delimiter)
    with data_root() as root:
        path = write_payload(root / relative, payload)
        load_or_error(lambda: TEXT_FILES[relative](root), path)


# ------------------------------------------------------------------------------------------------- multimodal
def mmsa_payload(rng: np.random.Generator, sizes: dict[str, int], steps: int) -> dict:
    payload = {}
    for split, n in sizes.items():
        payload[split] = {
            "id": np.array([f"{split}v{i // 2}$_${i % 2}" for i in range(n)], dtype=object),
            "raw_text": np.array([f"utterance {i}" for i in range(n)], dtype=object),
            "text": rng.normal(size=(n, steps, 5)).astype(np.float32),
            "audio": rng.normal(size=(n, steps, 3)).astype(np.float32),
            "vision": rng.normal(size=(n, steps, 2)).astype(np.float32),
            "audio_lengths": rng.integers(0, steps + 1, n).tolist(),
            "vision_lengths": rng.integers(0, steps + 1, n).tolist(),
            "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
        }
    return payload


@FEW
@given(
    sizes=st.fixed_dictionaries({s: st.integers(1, 6) for s in ("train", "valid", "test")}),
    steps=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    protocol=st.sampled_from([3, 4, 5]),
)
def test_mmsa_pickle_round_trip(sizes, steps, seed, protocol):
    payload = mmsa_payload(np.random.default_rng(seed), sizes, steps)
    with data_root() as root:
        path = root / "mosei.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
        corpus = load_mmsa_pickle(path)
    for split, part in payload.items():
        got = corpus.splits[split]
        assert got.frame["id"].tolist() == part["id"].tolist()
        assert got.frame["text"].tolist() == part["raw_text"].tolist()
        np.testing.assert_allclose(got.frame["score"], part["regression_labels"].astype(np.float64))
        np.testing.assert_array_equal(got.features["visual"], part["vision"])
        assert got.lengths["audio"].tolist() == part["audio_lengths"]


@FUZZ
@given(data=st.data())
def test_mmsa_pickle_damage_gives_a_data_error(data):
    good = pickle.dumps(mmsa_payload(np.random.default_rng(0), {"train": 2, "valid": 2, "test": 2}, 2), protocol=4)
    how = data.draw(st.sampled_from(["random", "truncate", "flip", "structure"]))
    if how == "random":
        raw = data.draw(st.binary(max_size=200))
    elif how == "truncate":
        raw = good[: data.draw(st.integers(0, len(good) - 1))]
    elif how == "flip":
        at = data.draw(st.integers(0, len(good) - 1))
        raw = good[:at] + bytes([good[at] ^ data.draw(st.integers(1, 255))]) + good[at + 1 :]
    else:
        payload = mmsa_payload(np.random.default_rng(1), {"train": 2, "valid": 2, "test": 2}, 2)
        split = data.draw(st.sampled_from(["train", "valid", "test"]))
        key = data.draw(st.sampled_from(sorted(payload[split])))
        payload[split][key] = data.draw(
            st.one_of(st.none(), st.text(max_size=4), st.integers(), st.lists(st.text(max_size=2), max_size=3))
        )
        raw = pickle.dumps(payload, protocol=4)
    with data_root() as root:
        path = root / "mosei.pkl"
        path.write_bytes(raw)
        load_or_error(lambda: load_mmsa_pickle(path), path)


@FEW
@given(videos=st.tuples(st.integers(1, 3), st.integers(1, 3)), seed=st.integers(0, 2**16))
def test_mosi_round_trip(videos, seed):
    with data_root() as root:
        path = write_mosi_fixture(root, videos_train=videos[0], videos_test=videos[1], seed=seed)
        with np.load(path) as archive:
            ids, splits = archive["ids"].tolist(), archive["split_bclstm"].tolist()
        corpus = load_mosi(root=root)
    for split in ("train", "test"):
        frame = corpus.splits[split].frame
        assert sorted(frame["id"]) == sorted(i for i, s in zip(ids, splits) if s == split)
        assert len(corpus.splits[split].features["audio"]) == len(frame)


@FUZZ
@given(data=st.data())
def test_mosi_damage_gives_a_data_error(data):
    with data_root() as root:
        path = write_mosi_fixture(root, videos_train=1, videos_test=1)
        good = path.read_bytes()
        how = data.draw(st.sampled_from(["random", "truncate", "flip"]))
        if how == "random":
            raw = data.draw(st.binary(max_size=300))
        elif how == "truncate":
            raw = good[: data.draw(st.integers(0, len(good) - 1))]
        else:
            at = data.draw(st.integers(0, len(good) - 1))
            raw = good[:at] + bytes(b ^ 0xFF for b in good[at : at + 4]) + good[at + 4 :]
        path.write_bytes(raw)
        load_or_error(lambda: load_mosi(root=root), path)
