"""Bicodemix's language filter: English comments by default (the figurative-language study used them), Malay and
code-mixed as an opt-in, every other row dropped and counted per language, before the labels are read."""

from __future__ import annotations

import pytest

from workbench.data import DataError, load_bicodemix
from workbench.data.bicodemix import BICODEMIX_LANGUAGES

MALAY = "language my (Malay) not selected"
CODE_MIXED = "language cm (code-mixed) not selected"


def test_english_is_the_default_and_the_dropped_rows_are_counted_per_language(fixture_data_dir):
    frame = load_bicodemix("sarcasm", root=fixture_data_dir)  # the fixture: 200 rows, lang_id my/my/cm/en in turn
    assert set(frame["lang_id"]) == {"en"} and len(frame) == 50
    assert frame.attrs["dropped"] == {MALAY: 100, CODE_MIXED: 50}
    assert frame.attrs["languages"] == ["en"]
    assert len(frame) + sum(frame.attrs["dropped"].values()) == 200
    sentiment = load_bicodemix("sentiment", root=fixture_data_dir)
    # no-majority rows are counted among the English rows only: 2 of the fixture's 6 are English
    assert sentiment.attrs["dropped"] == {MALAY: 100, CODE_MIXED: 50, "no majority label": 2}
    assert len(sentiment) == 48 and set(sentiment["lang_id"]) == {"en"}


def test_code_mixed_and_malay_are_opt_in(fixture_data_dir):
    mixed = load_bicodemix("sarcasm", root=fixture_data_dir, languages=["cm", "en"])
    assert mixed["lang_id"].value_counts().to_dict() == {"cm": 50, "en": 50}
    assert mixed.attrs["dropped"] == {MALAY: 100} and mixed.attrs["languages"] == ["en", "cm"]
    every = load_bicodemix("sarcasm", root=fixture_data_dir, languages=None)
    assert len(every) == 200 and every.attrs["dropped"] == {} and every.attrs["languages"] == list(BICODEMIX_LANGUAGES)
    assert load_bicodemix("sarcasm", root=fixture_data_dir, languages="my")["lang_id"].eq("my").all()


def test_the_seeded_split_is_made_within_the_chosen_languages(fixture_data_dir):
    whole = load_bicodemix("sentiment", "all", root=fixture_data_dir)
    parts = [load_bicodemix("sentiment", s, seed=0, root=fixture_data_dir) for s in ("train", "dev", "test")]
    assert sorted(id_ for part in parts for id_ in part["id"]) == sorted(whole["id"])
    assert all(set(part["lang_id"]) == {"en"} for part in parts)
    assert all(part.attrs["dropped"] == whole.attrs["dropped"] for part in parts)


def test_unknown_or_empty_languages_are_refused(fixture_data_dir):
    with pytest.raises(ValueError, match=r"lang_id codes from \('my', 'en', 'cm'\).*not \['english'\]"):
        load_bicodemix("sentiment", root=fixture_data_dir, languages=["english"])
    with pytest.raises(ValueError, match="non-empty"):
        load_bicodemix("sentiment", root=fixture_data_dir, languages=[])


def test_a_language_without_rows_is_a_clear_error(tmp_path):
    header = "id,comment/tweet,majority_sent,majority_sarc,lang_id\n"
    path = tmp_path / "bicodemix" / "annotated_bicodemix_publicsa_v2.csv"
    path.parent.mkdir()
    path.write_text(header + "1,saya suka,positive,notsarc,my\n2,teruk betul,negative,sarc,my\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no rows left for sarcasm in languages \['en'\].*Malay\) not selected': 2"):
        load_bicodemix("sarcasm", root=tmp_path)
    assert len(load_bicodemix("sarcasm", root=tmp_path, languages=["my"])) == 2


@pytest.mark.real_data
def test_real_bicodemix_english_rows(real_data_dir):
    """PROVENANCE.md: lang_id my 6,671 / cm 2,320 / en 1,009."""
    sarcasm = load_bicodemix("sarcasm", root=real_data_dir)
    assert len(sarcasm) == 1009 and sarcasm.attrs["dropped"] == {MALAY: 6671, CODE_MIXED: 2320}
    sentiment = load_bicodemix("sentiment", root=real_data_dir)
    assert len(sentiment) + sentiment.attrs["dropped"]["no majority label"] == 1009
