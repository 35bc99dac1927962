"""Claims and verdicts: known effects on hand-made rows, missing arms reported, the bootstrap on stored predictions,
every study's claims well formed, `workbench claims --json`."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from workbench import claims
from workbench.claims import Claim, Except, judge, load_runs, paired_bootstrap, t_interval, verdicts

REQUIRED = {"study", "claim", "metric", "effect", "ci_low", "ci_high", "n", "verdict", "paper_effect"}


def _claim(**overrides) -> Claim:
    spec = dict(
        id="toy",
        study="toy",
        sentence="A beats B.",
        metric="accuracy",
        arm_a={"arm": "a"},
        arm_b={"arm": "b"},
        arm_names=("A", "B"),
        pair_on=("seed",),
    )
    return Claim(**{**spec, **overrides})


def _rows(differences, base=0.6, study="toy", **extra) -> pd.DataFrame:
    """Two arms over seeds 0..n-1: arm b at `base` (+ a seed-dependent shift), arm a = b + the given difference."""
    rows = []
    for seed, diff in enumerate(differences):
        b = base + 0.01 * seed
        rows.append({"study": study, "profile": "quick", "arm": "b", "seed": seed, "accuracy": b, **extra})
        rows.append({"study": study, "profile": "quick", "arm": "a", "seed": seed, "accuracy": b + diff, **extra})
    return pd.DataFrame(rows)


def _one(table: pd.DataFrame) -> pd.Series:
    assert len(table) == 1, table
    return table.iloc[0]


def test_clearly_positive_effect_is_reproduced():
    row = _one(verdicts(_rows([0.05, 0.06, 0.04, 0.05, 0.055]), [_claim()]))
    assert row.verdict == "reproduced"
    assert row.effect == pytest.approx(0.051)
    assert row.n == 5 and 0 < row.ci_low < row.effect < row.ci_high
    assert "t over 5" in row.method


def test_clearly_negative_effect_is_contradicted():
    row = _one(verdicts(_rows([-0.05, -0.06, -0.04, -0.05]), [_claim()]))
    assert row.verdict == "contradicted"
    assert row.ci_high < 0 and row.effect == pytest.approx(-0.05)


def test_interval_spanning_zero_is_inconclusive():
    row = _one(verdicts(_rows([0.02, -0.03, 0.01, -0.01]), [_claim()]))
    assert row.verdict == "inconclusive"
    assert row.ci_low < 0 < row.ci_high


def test_direction_minus_one_means_the_paper_says_a_is_lower():
    row = _one(verdicts(_rows([-0.05, -0.06, -0.04]), [_claim(direction=-1)]))
    assert row.verdict == "reproduced"
    row = _one(verdicts(_rows([0.05, 0.06, 0.04]), [_claim(direction=-1)]))
    assert row.verdict == "contradicted"


def test_margin_makes_a_non_inferiority_claim():
    small_loss = [-0.002, -0.003, -0.001, -0.002, -0.0025]
    assert _one(verdicts(_rows(small_loss), [_claim()])).verdict == "contradicted"
    assert _one(verdicts(_rows(small_loss), [_claim(margin=0.01)])).verdict == "reproduced"
    big_loss = [-0.05, -0.06, -0.04]
    assert _one(verdicts(_rows(big_loss), [_claim(margin=0.01)])).verdict == "contradicted"
    assert _claim(margin=0.01).hypothesis == "A ≥ B − 0.01"


def test_missing_arm_is_reported_not_skipped():
    rows = _rows([0.05, 0.06, 0.04])
    claim = _claim(id="absent", arm_a={"arm": "c"})
    table = verdicts(rows, [claim, _claim()])
    assert list(table["claim"]) == ["absent", "toy"]
    row = table.iloc[0]
    assert row.verdict == "missing" and row.n == 0 and math.isnan(row.effect)
    assert "arm A" in row.reason and "arm=c" in row.reason


def test_claim_of_a_study_without_runs_is_missing():
    row = _one(verdicts(_rows([0.05, 0.06, 0.04]), [_claim(study="other")]))
    assert row.verdict == "missing" and "no run of study 'other'" in row.reason
    row = _one(verdicts(pd.DataFrame(), [_claim()]))
    assert row.verdict == "missing"


def test_arms_that_never_pair_are_missing():
    rows = _rows([0.05, 0.06, 0.04])
    rows.loc[rows["arm"] == "b", "seed"] += 10
    row = _one(verdicts(rows, [_claim()]))
    assert row.verdict == "missing" and "pairs" in row.reason


def test_fewer_than_three_pairs_without_predictions_is_inconclusive():
    row = _one(verdicts(_rows([0.2, 0.3]), [_claim()]))
    assert row.verdict == "inconclusive" and row.n == 2
    assert row.effect == pytest.approx(0.25)
    assert math.isnan(row.ci_low) and "n = 2 < 3" in row.reason


def test_identical_differences_give_no_interval():
    row = _one(verdicts(_rows([0.0, 0.0, 0.0]), [_claim(margin=0.01)]))
    assert row.verdict == "inconclusive" and "all equal" in row.reason


def test_settings_get_one_verdict_each_plus_a_pooled_one():
    rows = pd.concat([_rows([0.05, 0.06, 0.04], language="kin"), _rows([-0.01, 0.02, 0.0], language="swa")])
    table = verdicts(rows, [_claim(per=("language",))])
    assert list(table["setting"]) == ["language=kin", "language=swa", "pooled"]
    assert list(table["verdict"]) == ["reproduced", "inconclusive", "inconclusive"]
    assert table.iloc[2].n == 6
    assert len(verdicts(rows, [_claim(per=("language",), pooled=False)])) == 2
    assert list(claims.headline(table)["setting"]) == ["pooled"]


def test_a_fixed_arm_pairs_with_every_setting_of_the_other():
    """SpAtten's shape: every pruned schedule against the one dense row of the same seed."""
    rows = []
    for seed in range(3):
        rows.append({"study": "toy", "schedule": "dense", "seed": seed, "accuracy": 0.80 + 0.01 * seed})
        rows.append({"study": "toy", "schedule": "t0.5", "seed": seed, "accuracy": 0.79 + 0.011 * seed})
        rows.append({"study": "toy", "schedule": "t0.2", "seed": seed, "accuracy": 0.70 + 0.012 * seed})
    claim = _claim(arm_a={"schedule": Except("dense")}, arm_b={"schedule": "dense"}, per=("schedule",), margin=0.02)
    table = verdicts(pd.DataFrame(rows), [claim])
    by_setting = table.set_index("setting")
    assert by_setting.loc["schedule=t0.5", "effect"] == pytest.approx(-0.009)
    assert by_setting.loc["schedule=t0.5", "verdict"] == "reproduced"
    assert by_setting.loc["schedule=t0.2", "verdict"] == "contradicted"


def test_several_rows_of_one_arm_under_one_key_are_averaged():
    """BESSTIE's shape: the in-variety cell against the mean of the two cross-variety cells of a test variety."""
    rows = []
    for seed in range(3):
        rows.append({"study": "toy", "in_variety": True, "seed": seed, "accuracy": 0.9})
        rows.append({"study": "toy", "in_variety": False, "seed": seed, "accuracy": 0.7 + 0.01 * seed})
        rows.append({"study": "toy", "in_variety": False, "seed": seed, "accuracy": 0.8 + 0.01 * seed})
    claim = _claim(arm_a={"in_variety": True}, arm_b={"in_variety": False})
    row = _one(verdicts(pd.DataFrame(rows), [claim]))
    assert row.effect == pytest.approx(0.9 - 0.76) and row.n == 3
    assert "averaged" in row.reason


def test_a_shared_reference_pairs_with_every_seed():
    """Comet's shape: students at three seeds against the one teacher, fine-tuned at the run's first seed."""
    rows = [{"study": "toy", "model": "teacher", "seed": 0, "accuracy": 0.70}]
    rows += [{"study": "toy", "model": "student", "seed": s, "accuracy": 0.60 + 0.01 * s} for s in range(3)]
    claim = _claim(arm_a={"model": "student"}, arm_b={"model": "teacher"}, direction=-1)
    assert _one(verdicts(pd.DataFrame(rows), [claim])).n == 1  # paired on seed: only seed 0
    row = _one(verdicts(pd.DataFrame(rows), [_claim(**{**claim.__dict__, "shared_b": ("seed",)})]))
    assert row.n == 3 and row.effect == pytest.approx(-0.09) and row.verdict == "reproduced"
    assert "one reference across seed" in row.reason


def test_booleans_match_booleans_only():
    rows = pd.DataFrame(
        [
            {"study": "toy", "attention": True, "seed": 0, "accuracy": 0.9},
            {"study": "toy", "attention": 1, "seed": 0, "accuracy": 0.1},
            {"study": "toy", "attention": "uniform", "seed": 0, "accuracy": 0.5},
        ]
    )
    row = _one(verdicts(rows, [_claim(arm_a={"attention": True}, arm_b={"attention": "uniform"})]))
    assert row.effect == pytest.approx(0.4) and row.n == 1


def test_t_interval_and_judge_known_values():
    low, high = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.3027
    assert (low, high) == pytest.approx((2 - 4.302653 / math.sqrt(3), 2 + 4.302653 / math.sqrt(3)))
    assert judge(0.01, 0.02) == "reproduced"
    assert judge(-0.02, -0.01) == "contradicted"
    assert judge(-0.01, 0.02) == "inconclusive"
    assert judge(float("nan"), float("nan")) == "inconclusive"
    assert judge(-0.02, -0.01, direction=-1) == "reproduced"


def test_bootstrap_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    y_pred[:5] = 0
    confusion = np.zeros((3, 3))
    np.add.at(confusion, (y_true, y_pred), 1)
    kw = dict(labels=[0, 1, 2], zero_division=0)
    expected = {
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, average="macro", **kw),
        "weighted_f1": f1_score(y_true, y_pred, average="weighted", **kw),
        "precision": precision_score(y_true, y_pred, average="macro", **kw),
        "recall": recall_score(y_true, y_pred, average="macro", **kw),
    }
    for metric, value in expected.items():
        assert claims.metric_from_confusions(metric, confusion) == pytest.approx(value)


def test_paired_bootstrap_interval_covers_the_effect_and_is_reproducible():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, 400)
    good = np.where(rng.random(400) < 0.9, y_true, 1 - y_true)  # ~90% right
    poor = np.where(rng.random(400) < 0.6, y_true, 1 - y_true)  # ~60% right
    effect = accuracy_score(y_true, good) - accuracy_score(y_true, poor)
    low, high = paired_bootstrap([(y_true, good, poor)], "accuracy", draws=500)
    assert 0 < low < effect < high
    assert high - low < 0.15
    assert (low, high) == paired_bootstrap([(y_true, good, poor)], "accuracy", draws=500)
    low, high = paired_bootstrap([(y_true, good, good)], "accuracy", draws=200)
    assert low == high == 0.0


def _write_run(folder, name, study, profile, metrics, **extra):
    (folder / name).mkdir(parents=True)
    payload = {"study": study, "profile": profile, "parameters": {}, "metrics": metrics, **extra}
    (folder / name / "results.json").write_text(json.dumps(payload))


def test_paired_bootstrap_on_stored_predictions(tmp_path):
    """One seed, but the run stored its test predictions: the interval comes from resampling test rows."""
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 3, 300)
    good = np.where(rng.random(300) < 0.85, y_true, (y_true + 1) % 3)
    poor = np.where(rng.random(300) < 0.5, y_true, (y_true + 1) % 3)
    metrics = [
        {"arm": "a", "seed": 0, "accuracy": accuracy_score(y_true, good)},
        {"arm": "b", "seed": 0, "accuracy": accuracy_score(y_true, poor)},
    ]
    predictions = [
        {"arm": "a", "seed": 0, "y_true": y_true.tolist(), "y_pred": good.tolist()},
        {"arm": "b", "seed": 0, "y_true": y_true.tolist(), "y_pred": poor.tolist()},
    ]
    _write_run(tmp_path, "toy-quick", "toy", "quick", metrics, predictions=predictions)
    row = _one(verdicts(load_runs(tmp_path), [_claim()]))
    assert row.n == 1 and row.verdict == "reproduced"
    assert "bootstrap" in row.method and row.ci_low > 0
    assert row.ci_low < row.effect < row.ci_high
    # without the predictions the same run is one pair and no interval
    _write_run(tmp_path / "bare", "toy-quick", "toy", "quick", metrics)
    assert _one(verdicts(load_runs(tmp_path / "bare"), [_claim()])).verdict == "inconclusive"


def test_load_runs_keeps_row_columns_that_clash_and_marks_dry_runs(tmp_path):
    _write_run(tmp_path, "01_mage-quick", "mage", "quick", [{"study": "ablation", "config": "none", "accuracy": 0.5}])
    (tmp_path / "01_mage-paper-dryrun").mkdir()
    payload = {"study": "mage", "profile": "paper", "parameters": {"dry_run": True}, "metrics": [{"accuracy": 0.3}]}
    (tmp_path / "01_mage-paper-dryrun" / "results.json").write_text(json.dumps(payload))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    rows = load_runs(tmp_path)
    assert sorted(rows["profile"]) == ["paper-dryrun", "quick"]
    quick = rows[rows["profile"] == "quick"].iloc[0]
    assert quick["study"] == "mage" and quick["row_study"] == "ablation" and quick["run"] == "01_mage-quick"
    assert len(load_runs(tmp_path, profile="quick")) == 1
    assert load_runs(tmp_path / "broken").empty
    with pytest.raises(FileNotFoundError, match="no reports folder"):
        load_runs(tmp_path / "absent")


def test_every_study_states_its_claims():
    from workbench.studies import NOTEBOOK_STUDIES, study_module

    studies = {study_module(name).STUDY for name in NOTEBOOK_STUDIES.values()}
    assert set(claims.CLAIMS) == studies, "claims are keyed by each study's STUDY name"
    everything = claims.claims_for()
    assert len(everything) >= 10
    assert len({c.id for c in everything}) == len(everything), "claim ids are unique"
    for study, group in claims.CLAIMS.items():
        if study != "quickstart":
            assert len(group) >= 2, f"{study}: at least two claims"
        for c in group:
            assert c.study == study and c.sentence and c.source.startswith("REFERENCES.md")
            assert set(c.arm_a) | set(c.arm_b), f"{c.id}: arms select rows"
            if c.paper_effect is not None:  # the paper's own number agrees with the claimed direction
                assert c.direction * c.paper_effect >= -c.margin - 1e-12, c.id
    with pytest.raises(KeyError, match="known"):
        claims.claims_for("nope")


def test_table_for_a_study_result():
    from workbench.results import StudyResult

    rows = _rows([0.051, 0.06, 0.04], study="multilevel").drop(columns=["study", "profile"])
    rows["model"] = rows.pop("arm").map({"a": "+ contrastive", "b": "Transformer"})
    result = StudyResult(study="multilevel", params={"profile": "quick"}, metrics=rows)
    table = claims.table_for(result)
    assert list(table["claim"]) == [c.id for c in claims.claims_for("multilevel")]
    first = table.iloc[0]
    assert first.verdict == "reproduced" and first.profile == "quick" and first.paper_effect == pytest.approx(0.027)
    assert set(table["verdict"][1:]) == {"missing"}


def test_cli_claims_json_reports_every_claim(tmp_path, capsys):
    from workbench.cli import main

    rows = _rows([0.05, 0.06, 0.04], study="multilevel").drop(columns=["study", "profile"])
    rows["model"] = rows.pop("arm").map({"a": "+ multi-level", "b": "Transformer"})
    _write_run(tmp_path, "05_multilevel-quick", "multilevel", "quick", rows.to_dict("records"))
    assert main(["claims", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) >= 10 and all(REQUIRED <= set(r) for r in out)
    per_study = pd.Series([r["study"] for r in out]).value_counts()
    assert (per_study.drop("quickstart", errors="ignore") >= 2).all() and len(per_study) == 6
    judged = {r["claim"]: r for r in out}
    assert judged["multilevel-attention-vs-transformer"]["verdict"] == "reproduced"
    assert judged["multilevel-attention-vs-transformer"]["paper_effect"] == pytest.approx(0.015)
    assert judged["mage-augmentation"]["verdict"] == "missing" and judged["mage-augmentation"]["effect"] is None
    assert main(["claims", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "multilevel-attention-vs-transformer" in text and "reproduced" in text and "missing" in text
    assert main(["claims", str(tmp_path / "absent")]) == 2
