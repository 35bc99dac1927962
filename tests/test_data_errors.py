"""Bad input for every dataset family, through the loaders and through `workbench data`.

For each family (afrisenti, besstie, twitter, bicodemix, imdb, multimodal) there is a fixture file for each class
of bad input: rows with values outside the known sets (checked over the whole file before any filtering), broken
containers (truncated or corrupt gzip / zip / npz, Git LFS pointers), another delimiter or encoding, header-only
files, folders that lack a file, filters that leave nothing, and pickles that hold more than arrays. The loader
raises a DataError naming the file (and the line where there is one); `workbench data` exits non-zero, names the
file and prints no traceback.
"""

from __future__ import annotations

import csv
import io
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fixtures import file_payload, git_lfs_pointer, write_payload
from fixtures_multimodal import write_mmsa_fixture

from workbench.data import (
    DataError,
    afrisenti_languages,
    load_afrisenti,
    load_besstie,
    load_bicodemix,
    load_imdb,
    load_twitter_entity,
)
from workbench.data.catalog import summarize
from workbench.data.multimodal import _ArraysOnlyUnpickler, load_mmsa_pickle, load_mosi

Loader = Callable[[Path], object]


@dataclass(frozen=True)
class Family:
    folder: str  # copied from the fixture tree for the CLI runs
    file: str  # the file the bad input replaces
    load: Loader
    delimiter: str | None = None  # None: binary
    quoting: int = csv.QUOTE_MINIMAL
    header: bool = True


FAMILIES = {
    "afrisenti": Family(
        "afrisenti", "afrisenti/kin/dev.tsv", lambda r: load_afrisenti("kin", "dev", root=r), "\t", csv.QUOTE_NONE
    ),
    "besstie": Family(
        "besstie", "besstie/valid.csv", lambda r: load_besstie("Sentiment", "en-AU", "Google", "valid", root=r), ","
    ),
    "twitter": Family(
        "twitter_entity_sentiment",
        "twitter_entity_sentiment/twitter_training.csv.zip",
        lambda r: load_twitter_entity("train", root=r),
        ",",
        header=False,
    ),
    "bicodemix": Family(
        "bicodemix", "bicodemix/annotated_bicodemix_publicsa_v2.csv", lambda r: load_bicodemix("sentiment", root=r), ","
    ),
    "imdb": Family("imdb", "imdb/imdb_50k_aclImdb.csv.gz", lambda r: load_imdb("train", root=r), ","),
    "multimodal": Family(
        "multimodal/cmu_mosi", "multimodal/cmu_mosi/mosi_bclstm_utterances.npz", lambda r: load_mosi(root=r)
    ),
}


# ------------------------------------------------------------------------------------- mutations of the good file
def _lfs(family: Family, raw: bytes) -> tuple[bytes, int | None, str]:
    return git_lfs_pointer(raw), None, "Git LFS pointer"


def _truncated(family: Family, raw: bytes) -> tuple[bytes, int | None, str]:
    if family.delimiter is None or family.file.endswith((".gz", ".zip")):
        problem = {".gz": "truncated or corrupt gzip", ".zip": "truncated or corrupt zip", ".npz": "truncated"}
        return raw[: len(raw) // 2], None, problem[Path(family.file).suffix]
    cut = raw.index(family.delimiter.encode(), len(raw) // 2) + 1  # the last record stops after a delimiter
    return raw[:cut], "any", ""


def _corrupt(family: Family, raw: bytes) -> tuple[bytes, int | None, str]:
    middle = len(raw) // 2
    damaged = raw[:middle] + bytes(b ^ 0x5A for b in raw[middle : middle + 64]) + raw[middle + 64 :]
    return damaged, None, "corrupt"


def _rows(family: Family, payload: bytes) -> list[list[str]]:
    reader = csv.reader(io.StringIO(payload.decode("utf-8"), newline=""), delimiter=family.delimiter,
                        quoting=family.quoting)  # fmt: skip
    return [row for row in reader if row]


def _payload_case(edit: Callable[[Family, bytes], tuple[bytes, int | None, str]]):
    """A mutation of the content (inside the gzip or zip, which stays intact)."""

    def mutate(family: Family, raw: bytes, path: Path) -> tuple[bytes, int | None, str]:
        payload, line, problem = edit(family, file_payload(path))
        write_payload(path, payload)
        return path.read_bytes(), line, problem

    return mutate


def _other_delimiter(family: Family, payload: bytes) -> tuple[bytes, int | None, str]:
    other, name = (",", "comma") if family.delimiter == "\t" else (";", "semicolon")
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=other, lineterminator="\n").writerows(_rows(family, payload))
    line = 1 if family.header else "any"  # headerless: the first record that does not split into 4 fields
    return buffer.getvalue().encode("utf-8"), line, f"the file looks {name}-separated"


def _latin1(family: Family, payload: bytes) -> tuple[bytes, int | None, str]:
    at = payload.index(b"\n") + 1 if family.header else 0
    return payload[:at] + b"caf\xe9 " + payload[at:], 2 if family.header else 1, "cannot decode as utf-8 (byte 0xe9)"


def _utf16(family: Family, payload: bytes) -> tuple[bytes, int | None, str]:
    return payload.decode("utf-8").encode("utf-16"), None, "UTF-16"


def _header_only(family: Family, payload: bytes) -> tuple[bytes, int | None, str]:
    if not family.header:  # the upstream Kaggle copy's header line, in a file that has none
        return b"Tweet_ID,entity,sentiment,tweet_content\r\n", 1, "header line"
    return payload[: payload.index(b"\n") + 1], None, "only a header line"


def _mosi_object_array(family: Family, raw: bytes, path: Path) -> tuple[bytes, int | None, str]:
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["transcript"] = arrays["transcript"].astype(object)  # stored as a pickle inside the npz
    np.savez(path, **arrays)
    return path.read_bytes(), None, "object array, which only pickle can load: refused"


def _mosi_no_rows(family: Family, raw: bytes, path: Path) -> tuple[bytes, int | None, str]:
    with np.load(path) as archive:
        arrays = {key: value[:0] for key, value in archive.items()}
    np.savez(path, **arrays)
    return path.read_bytes(), None, "no train rows"


def _raw_case(edit):
    def mutate(family: Family, raw: bytes, path: Path) -> tuple[bytes, int | None, str]:
        return edit(family, raw)

    return mutate


TEXT_CASES = {
    "lfs pointer": _raw_case(_lfs),
    "truncated": _raw_case(_truncated),
    "other delimiter": _payload_case(_other_delimiter),
    "latin-1 bytes": _payload_case(_latin1),
    "utf-16": _payload_case(_utf16),
    "header only": _payload_case(_header_only),
}
CONTAINER_CASES = {"corrupt container": _raw_case(_corrupt)}
MOSI_CASES = {
    "lfs pointer": _raw_case(_lfs),
    "truncated": _raw_case(_truncated),
    "corrupt container": _raw_case(_corrupt),
    "object array (pickle) inside the npz": _mosi_object_array,
    "no rows": _mosi_no_rows,
}


def _container_cases() -> list[tuple[str, str]]:
    cases = []
    for name, family in FAMILIES.items():
        if family.delimiter is None:
            cases += [(name, case) for case in MOSI_CASES]
            continue
        cases += [(name, case) for case in TEXT_CASES]
        if Path(family.file).suffix in (".gz", ".zip"):
            cases += [(name, case) for case in CONTAINER_CASES]
    return cases


CONTAINER_MATRIX = _container_cases()


def bad_tree(fixture_root: Path, tmp_path: Path, family: Family) -> tuple[Path, Path]:
    """A data root holding only `family`'s folder, copied from the fixture tree; returns (root, its bad file)."""
    root = tmp_path / "data"
    shutil.copytree(fixture_root / family.folder, root / family.folder)
    return root, root / family.file


def apply_container_case(fixture_root: Path, tmp_path: Path, name: str, case: str):
    family = FAMILIES[name]
    root, path = bad_tree(fixture_root, tmp_path, family)
    mutate = {**TEXT_CASES, **CONTAINER_CASES}[case] if family.delimiter else MOSI_CASES[case]
    data, line, problem = mutate(family, path.read_bytes(), path)
    path.write_bytes(data)
    return family, root, path, line, problem


def assert_names(err: DataError, path: Path, line: int | str | None, problem: str) -> None:
    assert Path(err.path) == path, str(err)
    if line != "any":
        assert err.line == line, str(err)
    assert problem in str(err)
    assert str(err).startswith(f"{path}:{err.line}: " if err.line else f"{path}: ")


@pytest.mark.parametrize("name,case", CONTAINER_MATRIX)
def test_container_and_format_problems_name_the_file(fixture_data_dir, tmp_path, name, case):
    family, root, path, line, problem = apply_container_case(fixture_data_dir, tmp_path, name, case)
    with pytest.raises(DataError) as caught:
        family.load(root)
    assert_names(caught.value, path, line, problem)


# ------------------------------------------------------------------------------------- rows outside the known sets
VALID_HEADER = b"text,label,variety,source,task\n"
GOOD_VALID = b"".join(
    f'"{task} {variety} {source} {i}, good",{i % 2},{variety},{source},{task}\n'.encode()
    for task in ("Sentiment", "Sarcasm")
    for variety in ("en-AU", "en-IN", "en-UK")
    for source in ("Google", "Reddit")
    for i in range(4)
)  # 48 rows: lines 2..49


def besstie_valid(*extra: bytes) -> bytes:
    return VALID_HEADER + GOOD_VALID + b"".join(extra)


def besstie_valid_without(drop: Callable[[bytes], bool]) -> bytes:
    return VALID_HEADER + b"".join(line + b"\n" for line in GOOD_VALID.splitlines() if not drop(line))


def en_au_google(root: Path):
    return load_besstie("Sentiment", "en-AU", "Google", "valid", root=root)


ROW_CASES = {
    # id: (family, file, bytes, loader, line, problem)
    "afrisenti label outside the set": (
        "afrisenti", "afrisenti/kin/dev.tsv", b"tweet\tlabel\nbyiza\tpositive\nnabi\tnegatif\n",
        lambda r: load_afrisenti("kin", "dev", root=r), 3, "unknown label 'negatif' in column 'label'",
    ),
    "afrisenti duplicate ID": (
        "afrisenti", "afrisenti/kin/dev.tsv", b"ID\ttweet\tlabel\nk1\tbyiza\tpositive\nk1\tnabi\tnegative\n",
        lambda r: load_afrisenti("kin", "dev", root=r), 3, "duplicate id 'k1' in column 'ID'",
    ),
    "afrisenti header-only file that is no zero-shot stub": (
        "afrisenti", "afrisenti/kin/train.tsv", b"tweet\tlabel\n",
        lambda r: load_afrisenti("kin", "train", root=r), None, "only a header line",
    ),
    "besstie label outside the set in another slice": (  # the observed bug: used to be dropped by the filter
        "besstie", "besstie/valid.csv", besstie_valid(b"Cold food,2,en-UK,Reddit,Sentiment\n"),
        en_au_google, 50, "unknown label '2' in column 'label'",
    ),
    "besstie unknown variety": (
        "besstie", "besstie/valid.csv", besstie_valid(b"Lovely,1,en-XX,Google,Sentiment\n"),
        en_au_google, 50, "unknown variety 'en-XX' in column 'variety'",
    ),
    "besstie unknown source": (
        "besstie", "besstie/valid.csv", besstie_valid(b"Lovely,1,en-AU,Yelp,Sentiment\n"),
        en_au_google, 50, "unknown source 'Yelp' in column 'source'",
    ),
    "besstie unknown task": (
        "besstie", "besstie/valid.csv", besstie_valid(b"Lovely,1,en-AU,Google,Irony\n"),
        en_au_google, 50, "unknown task 'Irony' in column 'task'",
    ),
    "besstie wide train file with an en-IN row": (
        "besstie", "besstie/original_train_en-AU_en-UK.csv",
        b"example_id,source,variety,text,sentiment,sarcasm\nt0,google,en-AU,Nice,1,0\nt1,reddit,en-IN,Okay yaar,1,0\n",
        lambda r: load_besstie("Sarcasm", "en-AU", "Google", "train", root=r), 3, "unknown variety 'en-IN'",
    ),
    "besstie code-mixed train label": (
        "besstie", "besstie/splits_en-IN_Reddit_cm/Sentiment/train_cm.csv",
        b"id,text,label,is_cm\n0,accha,1,True\n1,bekar,yes,False\n",
        lambda r: load_besstie("Sentiment", "en-IN", "Reddit", "train", root=r), 3, "unknown label 'yes'",
    ),
    "twitter label outside the set (in a row the filter would drop)": (
        "twitter", "twitter_entity_sentiment/twitter_validation.csv",
        b"1,Xbox,Positive,fun\r\n2,Xbox,Negative,bad\r\n3,Xbox,Happy,yay\r\n",
        lambda r: load_twitter_entity("valid", root=r), 3, "unknown label 'Happy' in column 'sentiment'",
    ),
    "twitter id that is not a number": (
        "twitter", "twitter_entity_sentiment/twitter_validation.csv",
        b"1,Xbox,Positive,fun\r\n2x,Xbox,Negative,bad\r\n",
        lambda r: load_twitter_entity("valid", root=r), 2, "id '2x' in column 'id' is not an integer",
    ),
    "bicodemix language code outside the set": (
        "bicodemix", "bicodemix/annotated_bicodemix_publicsa_v2.csv",
        b"id,comment/tweet,majority_sent,majority_sarc,lang_id\n1,bagus,positive,notsarc,my\n2,teruk,negative,sarc,zz\n",
        lambda r: load_bicodemix("sentiment", root=r), 3, "unknown language code 'zz' in column 'lang_id'",
    ),
    "bicodemix other task's label outside the set": (
        "bicodemix", "bicodemix/annotated_bicodemix_publicsa_v2.csv",
        b"id,comment/tweet,majority_sent,majority_sarc,lang_id\n1,bagus,positive,notsarc,my\n2,teruk,negative,maybe,en\n",
        lambda r: load_bicodemix("sentiment", root=r), 3, "unknown label 'maybe' in column 'majority_sarc'",
    ),
    "bicodemix duplicate id": (
        "bicodemix", "bicodemix/annotated_bicodemix_publicsa_v2.csv",
        b"id,comment/tweet,majority_sent,majority_sarc,lang_id\n7,bagus,positive,notsarc,my\n7,teruk,negative,sarc,en\n",
        lambda r: load_bicodemix("sarcasm", root=r), 3, "duplicate id '7' in column 'id'",
    ),
    "imdb label outside the set in the other split": (
        "imdb", "imdb/imdb_50k_aclImdb.csv.gz",
        b"review,sentiment,split,file_id,rating\ngreat,positive,train,0,9\nmeh,neutral,test,0,5\n",
        lambda r: load_imdb("train", root=r), 3, "unknown label 'neutral' in column 'sentiment'",
    ),
    "imdb unknown split": (
        "imdb", "imdb/imdb_50k_aclImdb.csv.gz",
        b"review,sentiment,split,file_id,rating\ngreat,positive,train,0,9\nawful,negative,dev,1,2\n",
        lambda r: load_imdb("train", root=r), 3, "unknown split 'dev' in column 'split'",
    ),
    "imdb rating outside 1..10": (
        "imdb", "imdb/imdb_50k_aclImdb.csv.gz",
        b"review,sentiment,split,file_id,rating\ngreat,positive,train,0,11\n",
        lambda r: load_imdb("all", root=r), 2, "rating '11' in column 'rating' is not an integer in 1..10",
    ),
}  # fmt: skip

EMPTY_SLICE_CASES = {
    # id: (family, file, bytes, loader, problem)
    "besstie valid.csv without en-IN rows": (
        "besstie", "besstie/valid.csv",
        besstie_valid_without(lambda line: b"en-IN" in line),
        lambda r: load_besstie("Sentiment", "en-IN", "Google", "train", root=r),
        "no rows with variety = 'en-IN' among the rows with task = 'Sentiment'; values present: ['en-AU', 'en-UK']",
    ),
    "besstie seeded split with too few rows": (
        "besstie", "besstie/valid.csv",
        besstie_valid_without(lambda line: line.startswith(b'"Sentiment en-IN Google 1')),
        lambda r: load_besstie("Sentiment", "en-IN", "Google", "train", root=r),
        "cannot make the seeded stratified split of Sentiment en-IN Google from 3 rows",
    ),
    "imdb without test rows": (
        "imdb", "imdb/imdb_50k_aclImdb.csv.gz", b"review,sentiment,split\ngreat,positive,train\n",
        lambda r: load_imdb("test", root=r), "no rows with split = 'test'; values present: ['train']",
    ),
    "twitter without any text": (
        "twitter", "twitter_entity_sentiment/twitter_validation.csv", b"1,Xbox,Negative,\r\n2,Xbox,Positive,  \r\n",
        lambda r: load_twitter_entity("valid", labels=("Negative", "Neutral", "Positive", "Irrelevant"), root=r),
        "and a text; labels present: ['Negative', 'Positive']",
    ),
    "bicodemix rows without any majority": (
        "bicodemix", "bicodemix/annotated_bicodemix_publicsa_v2.csv",
        b"id,comment/tweet,majority_sent,majority_sarc,lang_id\n1,bagus,,notsarc,my\n",
        lambda r: load_bicodemix("sentiment", root=r), "no rows left for sentiment",
    ),
}  # fmt: skip


def write_case(root: Path, relative: str, content: bytes) -> Path:
    return write_payload(root / relative, content)


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_rows_are_checked_before_any_filter(tmp_path, case):
    _, relative, content, load, line, problem = ROW_CASES[case]
    path = write_case(tmp_path, relative, content)
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    assert_names(caught.value, path, line, problem)


@pytest.mark.parametrize("case", list(EMPTY_SLICE_CASES))
def test_a_filter_that_leaves_nothing_names_itself(tmp_path, case):
    _, relative, content, load, problem = EMPTY_SLICE_CASES[case]
    path = write_case(tmp_path, relative, content)
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    assert_names(caught.value, path, None, problem)


def test_twitter_label_filter_that_leaves_nothing(tmp_path):
    path = write_case(tmp_path, "twitter_entity_sentiment/twitter_validation.csv", b"1,Xbox,Neutral,news\r\n")
    with pytest.raises(DataError) as caught:
        load_twitter_entity("valid", root=tmp_path)
    assert_names(caught.value, path, None, "no rows with a label in ['Negative', 'Positive'] and a text")
    with pytest.raises(DataError, match="no rows left with min_words=40: the longest text has 1"):
        load_twitter_entity("valid", labels=("Neutral",), min_words=40, root=tmp_path)


def test_many_bad_rows_quote_the_first_few_and_count_them_all(tmp_path):
    bad = [f"text {i},{i + 2},en-AU,Google,Sentiment\n".encode() for i in range(8)]
    path = write_case(tmp_path, "besstie/valid.csv", besstie_valid(*bad))
    with pytest.raises(DataError) as caught:
        en_au_google(tmp_path)
    err = caught.value
    assert (err.line, err.total) == (50, 8) and [line for line, _ in err.more] == [51, 52, 53, 54]
    lines = str(err).splitlines()
    assert lines[0] == f"{path}:50: unknown label '2' in column 'label' (expected one of ['0', '1'])"
    assert lines[1].strip().startswith(f"{path}:51: unknown label '3'")
    assert lines[-1].strip() == "... and 3 more bad row(s): 8 in all"


def test_good_rows_of_a_checked_file_still_load(tmp_path):
    write_case(tmp_path, "besstie/valid.csv", besstie_valid())
    frame = en_au_google(tmp_path)
    assert frame["text"].tolist() == [f"Sentiment en-AU Google {i}, good" for i in range(4)]
    assert frame["label"].tolist() == [0, 1, 0, 1] and frame["line"].tolist() == [2, 3, 4, 5]


# ------------------------------------------------------------------------------------- incomplete folders
INCOMPLETE = {
    "afrisenti": "afrisenti/kin/test.tsv",
    "besstie": "besstie/splits_en-IN_Reddit_cm/Sarcasm/train_cm.csv",
    "twitter": "twitter_entity_sentiment/twitter_validation.csv",
    "bicodemix": "bicodemix/annotated_bicodemix_publicsa_v2.csv",
    "imdb": "imdb/imdb_50k_aclImdb.csv.gz",
    "multimodal": "multimodal/cmu_mosi/mosi_bclstm_utterances.npz",
}


@pytest.mark.parametrize("name", list(INCOMPLETE))
def test_summarize_lists_the_files_an_incomplete_folder_lacks(fixture_data_dir, tmp_path, name):
    root, _ = bad_tree(fixture_data_dir, tmp_path, FAMILIES[name])
    (root / INCOMPLETE[name]).unlink()
    table = summarize(root)
    assert table.attrs["incomplete"] == [str(root / INCOMPLETE[name])]
    rows = table[table["note"].str.startswith("incomplete folder")]
    assert len(rows) >= 1 and (rows["status"] == "missing").all()
    assert Path(INCOMPLETE[name]).name in rows["note"].iloc[0]


def test_afrisenti_language_without_test_split_is_listed_not_skipped(fixture_data_dir, tmp_path, caplog):
    root, _ = bad_tree(fixture_data_dir, tmp_path, FAMILIES["afrisenti"])
    (root / "afrisenti" / "kin" / "test.tsv").unlink()
    assert "kin" not in afrisenti_languages(root)  # only complete test splits count as a language here ...
    assert "afrisenti/kin is incomplete: test.tsv missing" in caplog.text  # ... but it is said
    table = summarize(root).set_index(["dataset", "subset", "split"])
    assert table.loc[("afrisenti", "kin", "train"), "status"] == "ok"
    assert table.loc[("afrisenti", "kin", "test"), "status"] == "missing"
    with pytest.raises(DataError, match="file not found"):
        load_afrisenti("kin", "test", root=root)


# ------------------------------------------------------------------------------------- through `workbench data`
def run_data(monkeypatch, capsys, root: Path | str | None, *argv: str) -> tuple[int, str, str]:
    from workbench.cli import main

    if root is None:
        monkeypatch.delenv("WORKBENCH_DATA", raising=False)
    else:
        monkeypatch.setenv("WORKBENCH_DATA", str(root))
    code = main(["data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_cli_names(code: int, err: str, path: Path, line: int | str | None) -> None:
    assert code != 0
    assert "Traceback" not in err
    where = f"{path}:{line}:" if isinstance(line, int) else str(path)
    assert where in err, err


@pytest.mark.parametrize("name,case", CONTAINER_MATRIX)
def test_cli_container_and_format_problems(fixture_data_dir, tmp_path, monkeypatch, capsys, name, case):
    _, root, path, line, _ = apply_container_case(fixture_data_dir, tmp_path, name, case)
    code, _, err = run_data(monkeypatch, capsys, root)
    assert code == 2
    assert_cli_names(code, err, path, line)


@pytest.mark.parametrize("case", [*ROW_CASES, *EMPTY_SLICE_CASES])
def test_cli_rows_outside_the_known_sets(fixture_data_dir, tmp_path, monkeypatch, capsys, case):
    name, relative, content, *_ = ROW_CASES.get(case) or EMPTY_SLICE_CASES[case]
    root, _ = bad_tree(fixture_data_dir, tmp_path, FAMILIES[name])
    path = write_case(root, relative, content)
    code, _, err = run_data(monkeypatch, capsys, root)
    line = ROW_CASES[case][4] if case in ROW_CASES else None
    assert_cli_names(code, err, path, line)


@pytest.mark.parametrize("name", list(INCOMPLETE))
def test_cli_incomplete_folder_exits_1_and_names_the_file(fixture_data_dir, tmp_path, monkeypatch, capsys, name):
    root, _ = bad_tree(fixture_data_dir, tmp_path, FAMILIES[name])
    (root / INCOMPLETE[name]).unlink()
    code, out, err = run_data(monkeypatch, capsys, root)
    assert code == 1
    assert_cli_names(code, err, root / INCOMPLETE[name], None)
    assert "incomplete folder" in out  # the table says it too


def test_cli_says_which_root_it_read_and_why(fixture_data_dir, tmp_path, monkeypatch, capsys):
    code, out, _ = run_data(monkeypatch, capsys, fixture_data_dir)
    assert code == 0 and out.splitlines()[0] == f"data root: {fixture_data_dir} (from $WORKBENCH_DATA)"
    code, out, _ = run_data(monkeypatch, capsys, tmp_path / "elsewhere", "--root", str(fixture_data_dir))
    assert code == 0 and out.splitlines()[0] == f"data root: {fixture_data_dir} (given with --root)"
    workdir = tmp_path / "project"
    (workdir / "data").mkdir(parents=True)
    shutil.copytree(fixture_data_dir / "imdb", workdir / "data" / "imdb")
    monkeypatch.chdir(workdir)
    code, out, _ = run_data(monkeypatch, capsys, None)
    expected = f"data root: {workdir / 'data'} (default ./data: $WORKBENCH_DATA is not set)"
    assert code == 0 and out.splitlines()[0] == expected


@pytest.mark.parametrize("setting", ["unset", "empty", "nonexistent", "no dataset inside"])
def test_cli_without_data_exits_2_with_a_hint(tmp_path, monkeypatch, capsys, setting):
    workdir = tmp_path / "a" / "b"  # neither ./data nor ../data exists here
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    root = {"unset": None, "empty": "", "nonexistent": tmp_path / "nowhere", "no dataset inside": tmp_path}[setting]
    code, out, err = run_data(monkeypatch, capsys, root)
    assert code == 2 and "Traceback" not in err
    assert "set WORKBENCH_DATA" in err and "workbench data download" in err
    reason = {
        "unset": "$WORKBENCH_DATA is not set",
        "empty": "$WORKBENCH_DATA is set but empty",
        "nonexistent": "from $WORKBENCH_DATA",
        "no dataset inside": "from $WORKBENCH_DATA",
    }[setting]
    assert reason in out.splitlines()[0] and reason in err
    assert ("no dataset found" if setting == "no dataset inside" else "does not exist") in err


# ------------------------------------------------------------------------------------- untrusted pickles
MARKER = "workbench_pickle_marker"


class Instance:
    """Any class instance: its pickle refers to this class by module and name."""

    def __init__(self):
        self.value = 1


class RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _good_payload(tmp_path: Path) -> dict:
    with write_mmsa_fixture(tmp_path / "good.pkl").open("rb") as handle:
        return pickle.load(handle)


@pytest.mark.parametrize("kind", ["class instance", "os.system", "builtins.eval", "nested in valid data"])
def test_mmsa_pickle_refuses_everything_but_containers_and_arrays(tmp_path, kind):
    marker = tmp_path / MARKER
    payload = {
        "class instance": lambda: {"train": Instance()},
        "os.system": lambda: RunsACommand(marker),
        "builtins.eval": lambda: {"train": type("E", (), {"__reduce__": lambda s: (eval, ("1",))})()},
        "nested in valid data": lambda: {**_good_payload(tmp_path), "extra": [RunsACommand(marker)]},
    }[kind]()
    path = tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(DataError) as caught:
        load_mmsa_pickle(path)
    err = caught.value
    assert Path(err.path) == path and "refused" in err.problem
    refused = {"class instance": "Instance", "os.system": "system", "builtins.eval": "builtins.eval"}
    assert refused.get(kind, "system") in err.problem
    assert not marker.exists()  # nothing was executed


def test_mmsa_pickle_allows_numpy_1_spellings_and_loads_good_data(tmp_path):
    unpickler = _ArraysOnlyUnpickler(io.BytesIO(b""), tmp_path / "x.pkl")
    for module, name in [("os", "system"), ("builtins", "getattr"), ("subprocess", "Popen"), ("numpy", "load")]:
        with pytest.raises(DataError, match=f"refers to {module}.{name}; refused"):
            unpickler.find_class(module, name)
    good = _good_payload(tmp_path)
    for protocol in (3, 4, 5):  # 5: numpy's _frombuffer reconstruction
        path = tmp_path / f"good{protocol}.pkl"
        data = pickle.dumps(good, protocol=protocol)
        if protocol == 3:  # GLOBAL opcodes are text: spell them as numpy 1.x wrote them
            data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
            assert b"numpy.core.multiarray\n_reconstruct" in data
        path.write_bytes(data)
        corpus = load_mmsa_pickle(path)
        assert len(corpus.splits["train"]) == 18
        np.testing.assert_array_equal(corpus.splits["valid"].features["visual"], good["valid"]["vision"])
        assert corpus.splits["test"].frame["text"].tolist() == good["test"]["raw_text"].tolist()


class Reduces:
    """Pickles as whatever `__reduce__` tuple it is given: crafts numpy states that numpy itself would not write."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def crafted_array(spec: str, state: tuple, data: bytes | list, shape=(2,)) -> Reduces:
    _reconstruct = np.arange(1).__reduce__()[0]  # numpy.(_)core.multiarray._reconstruct
    dtype = Reduces(np.dtype, (spec, False, True), state)
    return Reduces(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


def test_mmsa_pickle_rebuilds_arrays_from_a_fresh_dtype(tmp_path):
    """numpy's own __setstate__ would take dtype flags from the file (e.g. 'holds objects' on float bytes)."""
    path = tmp_path / "crafted.pkl"
    flagged = crafted_array("f8", (3, "<", None, None, None, -1, -1, 63), np.array([1.5, 2.5]).tobytes())
    path.write_bytes(pickle.dumps({"x": flagged}, protocol=4))
    with path.open("rb") as handle:
        array = _ArraysOnlyUnpickler(handle, path).load_safe()["x"]
    assert array.dtype == np.float64 and not array.dtype.hasobject and array.tolist() == [1.5, 2.5]
    for bad, problem in [
        (crafted_array("i4,f8", (3, "|", None, None, None, 12, 1, 0), b"\0" * 24), "only plain numbers"),
        (crafted_array("f8", (3, "<", None, None, None, -1, -1, 0), b"\0" * 8), "array data of bytes for 2 x"),
        (crafted_array("f8", (3, "<", None, None, None, -1, -1, 0), b"\0" * 16, shape=(-1,)), "array shape"),
        (crafted_array("O8", (3, "|", None, None, None, -1, -1, 63), b"\0" * 16), "object array without"),
    ]:
        path.write_bytes(pickle.dumps({"train": bad}, protocol=4))
        with pytest.raises(DataError, match=problem) as caught:
            load_mmsa_pickle(path)
        assert Path(caught.value.path) == path and "refused" in caught.value.problem


@pytest.mark.parametrize("kind", ["lfs pointer", "truncated"])
def test_mmsa_pickle_container_problems(tmp_path, kind):
    good = write_mmsa_fixture(tmp_path / "good.pkl").read_bytes()
    path = tmp_path / "bad.pkl"
    path.write_bytes(git_lfs_pointer(good) if kind == "lfs pointer" else good[: len(good) // 2])
    with pytest.raises(DataError, match="Git LFS pointer" if kind == "lfs pointer" else "cannot unpickle") as caught:
        load_mmsa_pickle(path)
    assert Path(caught.value.path) == path
