"""Claims: each paper's central claims as data, judged from the metric rows of `results.json` files.

A `Claim` names two arms of one study (row selectors), the metric, which arm the paper says is better (and by how
much, where REFERENCES.md gives a number), and how rows pair up. `verdicts(rows)` computes, per claim and setting,
the effect (arm A − arm B, the mean of paired differences), a 95% interval and a verdict:

- interval: a t-interval over the paired differences when there are n ≥ 3 pairs (seeds, or seeds × replicates);
  with fewer pairs, a paired bootstrap over test rows where the runs stored their test predictions; otherwise none;
- verdict: *reproduced* when the interval excludes 0 in the paper's direction, *contradicted* when it excludes 0 in
  the other direction, *inconclusive* otherwise (or with no interval), *missing* when the rows hold no pair of the
  two arms (the claim is reported, never skipped). A claim with a `margin` (e.g. "no accuracy loss") is a
  non-inferiority claim: reproduced when the interval lies above −margin, contradicted when it lies below.

A gain smaller than the seed spread is not a gain: that is what the interval says. Claims live here grouped by
study (one block each, keyed by the study's `STUDY` name) so that this module needs no study import.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS_FILE = "results.json"  # the same name as workbench.results.RESULTS_FILE
RUN_COLUMNS = ("run", "study", "profile")  # what load_runs adds to every metric row
REPORT_STUDY = "claims"  # the `study` of 07_claims's own results.json: verdicts, not a run to judge
VERDICTS = ("reproduced", "contradicted", "inconclusive", "missing")
POOLED = "pooled"  # the setting label of the verdict over every setting together
CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 2000
TABLE_COLUMNS = [
    "study", "claim", "profile", "setting", "metric", "arm_a", "arm_b", "effect", "ci_low", "ci_high", "n",
    "method", "verdict", "paper_effect", "hypothesis", "reason", "mean_a", "mean_b", "sentence", "source",
]  # fmt: skip


@dataclass(frozen=True)
class Except:
    """A selector value matching any value but these (e.g. every pruned schedule: `Except("dense")`)."""

    values: tuple[object, ...]

    def __init__(self, *values: object):
        object.__setattr__(self, "values", tuple(values))

    def __str__(self) -> str:
        return "not " + "/".join(map(str, self.values))


@dataclass(frozen=True)
class Claim:
    """One central claim of a paper, as a comparison of two arms of its study's metric rows.

    `arm_a` / `arm_b` select rows by column value (a scalar: equal; a list or tuple: any of; `Except(...)`: none of).
    `pair_on` are the replicate columns that pair an A row with a B row (seed, variety, head, ...); `per` are the
    columns whose values are separate settings (one verdict each, plus a pooled one). A column an arm's selector
    fixes to one value, or that the arm's rows do not have, is not matched on that arm: its rows then pair with every
    value of the other arm (e.g. each pruned schedule against the one dense row). Several rows of one arm under the
    same key are averaged (e.g. the two cross-variety train sets of one test variety).

    `shared_b`: `pair_on` columns on which arm B is one reference for every A row (a teacher fine-tuned once, at the
    run's first seed, against students at several seeds).
    `pooled`: also one verdict over every setting together (off where settings are not alike, e.g. schedules).
    `direction` is +1 when the paper says A > B, −1 when it says A < B; `margin` > 0 makes a non-inferiority claim
    ("A is no worse than B by more than margin"). `paper_effect` is the paper's own A − B in the metric's units
    (None where the paper gives none); `source` says where in REFERENCES.md it comes from.
    """

    id: str
    study: str
    sentence: str
    metric: str
    arm_a: Mapping[str, object]
    arm_b: Mapping[str, object]
    arm_names: tuple[str, str]
    pair_on: tuple[str, ...] = ("seed",)
    per: tuple[str, ...] = ()
    shared_b: tuple[str, ...] = ()
    pooled: bool = True
    direction: int = 1
    margin: float = 0.0
    paper_effect: float | None = None
    source: str = ""

    def __post_init__(self):
        if self.direction not in (1, -1):
            raise ValueError(f"claim {self.id!r}: direction must be +1 or -1, not {self.direction!r}")
        if self.margin < 0:
            raise ValueError(f"claim {self.id!r}: margin must be >= 0, not {self.margin!r}")

    @property
    def hypothesis(self) -> str:
        """The claim as an inequality between the two arms."""
        a, b = self.arm_names
        if self.margin:
            sign = "≥" if self.direction > 0 else "≤"
            shift = "−" if self.direction > 0 else "+"
            return f"{a} {sign} {b} {shift} {self.margin:g}"
        return f"{a} {'>' if self.direction > 0 else '<'} {b}"


# ---------------------------------------------------------------------------------------------------------------
# The claims, one block per study (keyed by the study's STUDY name). Paper numbers: REFERENCES.md only.
# ---------------------------------------------------------------------------------------------------------------

# MAGE (arXiv 2502.17987), study "mage". Rows: language, seed, row_study (the row's own `study`: ablation / heads /
# noise / baseline), config (none / linear / ae / dae / vae / mage / all), classifier, attention (the weighting arm:
# none = LiDA labelled copies, learned = multi-head attention, uniform = the same K views weighted 1/K), heads.
_MAGE_REF = "REFERENCES.md, MAGE: "
MAGE_CLAIMS = (
    Claim(
        id="mage-augmentation",
        study="mage",
        sentence="Augmenting the sentence embeddings (linear noise, AE and VAE views weighted by attention) raises "
        "accuracy over no augmentation (gains up to +3.64 points).",
        metric="accuracy",
        arm_a={"row_study": "ablation", "config": "mage", "attention": "learned"},
        arm_b={"row_study": "ablation", "config": "none"},
        arm_names=("MAGE set with attention", "no augmentation"),
        per=("language", "classifier"),
        paper_effect=0.0364,
        source=_MAGE_REF + "'MAGE gains up to +3.64 accuracy points' (the best gain, not an average)",
    ),
    Claim(
        id="mage-attention-vae",
        study="mage",
        sentence="Weighting the original and VAE-augmented embeddings with multi-head attention adds accuracy "
        "(+0.4 points with VAE); here against equal weights on the same views.",
        metric="accuracy",
        arm_a={"row_study": "ablation", "config": "vae", "attention": "learned"},
        arm_b={"row_study": "ablation", "config": "vae", "attention": "uniform"},
        arm_names=("VAE views, attention", "VAE views, uniform weights"),
        per=("language", "classifier"),
        paper_effect=0.0040,
        source=_MAGE_REF + "'attention adds +0.4 with VAE'",
    ),
    Claim(
        id="mage-attention-dae",
        study="mage",
        sentence="Weighting the original and DAE-augmented embeddings with multi-head attention adds accuracy "
        "(+1.21 points with DAE); here against equal weights on the same views.",
        metric="accuracy",
        arm_a={"row_study": "ablation", "config": "dae", "attention": "learned"},
        arm_b={"row_study": "ablation", "config": "dae", "attention": "uniform"},
        arm_names=("DAE views, attention", "DAE views, uniform weights"),
        per=("language", "classifier"),
        paper_effect=0.0121,
        source=_MAGE_REF + "'attention adds ... +1.21 with DAE'",
    ),
)

# AfroXLMR-Comet (arXiv 2502.18020), study "comet". Rows: model (teacher / student / ...), experiment, config
# (hybrid = the default recipe, sweep arms such as stage2=ce+kd, label_only = the same student trained on labels
# alone), stage2 (ce: cross-entropy only, the paper's stage 2; ce+kd: with the distillation term), language, seed
# (the default recipe and label_only run at every `student_seeds`; the teacher and the other sweeps at `seed`).
_COMET_REF = "REFERENCES.md, AfroXLMR-Comet: "
COMET_CLAIMS = (
    Claim(
        id="comet-hybrid-vs-label-only",
        study="comet",
        sentence="Hybrid distillation (KD on temperature-softened logits + attention matching) gives a better compact "
        "student than training the same student on the labels alone.",
        metric="macro_f1",
        arm_a={"model": "student", "config": "hybrid"},
        arm_b={"model": "student", "config": "label_only"},
        arm_names=("hybrid student", "label-only student"),
        per=("language",),
        paper_effect=None,
        source=_COMET_REF + "no label-only student figure (teacher 73.22, student 65.28 only)",
    ),
    Claim(
        id="comet-retention",
        study="comet",
        sentence="The compact student keeps most of the teacher's F1: it loses no more than the paper's 7.94 points "
        "(65.28 vs 73.22, 89% kept).",
        metric="macro_f1",
        arm_a={"model": "student", "config": "hybrid"},
        arm_b={"model": "teacher"},
        arm_names=("hybrid student", "teacher"),
        per=("language",),
        shared_b=("seed",),
        margin=0.0794,
        paper_effect=round(0.6528 - 0.7322, 4),
        source=_COMET_REF + "'Average F1 on AfriSenti: teacher 73.22, student 65.28 (89% kept)' (its F1 average is "
        "not said to be macro; ours is macro-F1)",
    ),
    Claim(
        id="comet-stage2-ce",
        study="comet",
        sentence="Stage 2 needs no distillation term: fine-tuning the distilled student with cross-entropy alone "
        "(the paper's stage 2) is no worse than with cross-entropy + KD (within 1 point).",
        metric="macro_f1",
        arm_a={"model": "student", "config": ["hybrid", "stage2=ce"], "stage2": "ce"},
        arm_b={"model": "student", "config": ["hybrid", "stage2=ce+kd"], "stage2": "ce+kd"},
        arm_names=("stage 2: CE only", "stage 2: CE + KD"),
        per=("language",),
        margin=0.01,
        paper_effect=None,
        source=_COMET_REF + "the recipe (stage 2 with cross-entropy only); no ablation figure",
    ),
)

# BESSTIE (Srirag et al., Findings of ACL 2025) and the figurative-language study on it, study "besstie". Rows:
# experiment (cross_variety / domain_shift / timing), task, source, train_variety, test_variety, in_variety, head
# (linear / cnn / bilstm / crosstalk / crosstalk+pcgrad / spatten), base (frozen / finetuned: what the head stood on;
# paired on, so that a fine-tuned Linear row never pairs with, or is averaged into, a frozen-state one), seed.
_BESSTIE_REF = "REFERENCES.md, BESSTIE: "
_CROSS = {"experiment": "cross_variety"}
_BERT_LARGE = {  # REFERENCES.md, BESSTIE table, BERT-Large row: macro-F1 en-AU / en-IN / en-UK
    ("Sentiment", "Google"): (0.935, 0.790, 0.926),
    ("Sentiment", "Reddit"): (0.813, 0.731, 0.846),
    ("Sarcasm", "Reddit"): (0.627, 0.564, 0.621),
}
BESSTIE_CLAIMS = (
    Claim(
        id="besstie-in-variety",
        study="besstie",
        sentence="A model scores higher on the English variety it was trained on than on the other varieties "
        "(cross-variety drop).",
        metric="macro_f1",
        arm_a={**_CROSS, "in_variety": True},
        arm_b={**_CROSS, "in_variety": False},
        arm_names=("in-variety", "cross-variety"),
        pair_on=("test_variety", "head", "base", "seed"),
        per=("task", "source"),
        paper_effect=None,
        source=_BESSTIE_REF + "in-variety macro-F1 only (cross-variety results: heatmaps, no numbers)",
    ),
    Claim(
        id="besstie-en-in-harder",
        study="besstie",
        sentence="Sentiment of Google reviews is harder to classify in Indian English than in British English "
        "(BERT-Large macro-F1 .790 vs .926).",
        metric="macro_f1",
        arm_a={**_CROSS, "in_variety": True, "task": "Sentiment", "source": "Google", "test_variety": "en-IN"},
        arm_b={**_CROSS, "in_variety": True, "task": "Sentiment", "source": "Google", "test_variety": "en-UK"},
        arm_names=("en-IN (in-variety)", "en-UK (in-variety)"),
        pair_on=("head", "base", "seed"),
        direction=-1,
        paper_effect=round(_BERT_LARGE["Sentiment", "Google"][1] - _BERT_LARGE["Sentiment", "Google"][2], 4),
        source=_BESSTIE_REF + "BERT-Large, Sentiment Google: en-IN .790, en-UK .926",
    ),
    Claim(
        id="besstie-sarcasm-harder",
        study="besstie",
        sentence="Sarcasm is harder than sentiment on the same Reddit comments (BERT-Large, mean over the three "
        "varieties: .604 vs .797 macro-F1).",
        metric="macro_f1",
        arm_a={**_CROSS, "in_variety": True, "task": "Sarcasm", "source": "Reddit"},
        arm_b={**_CROSS, "in_variety": True, "task": "Sentiment", "source": "Reddit"},
        arm_names=("sarcasm (Reddit)", "sentiment (Reddit)"),
        pair_on=("test_variety", "head", "base", "seed"),
        direction=-1,
        paper_effect=round(
            float(np.mean(_BERT_LARGE["Sarcasm", "Reddit"]) - np.mean(_BERT_LARGE["Sentiment", "Reddit"])), 4
        ),
        source=_BESSTIE_REF + "BERT-Large, Reddit: sarcasm .627/.564/.621 vs sentiment .813/.731/.846",
    ),
    Claim(
        id="besstie-spatten-head",
        study="besstie",
        sentence="Adding SpAtten (by masking) to the Linear head keeps its macro-F1 (within 1 point) across the "
        "varieties; the study shows this as heatmaps, without numbers.",
        metric="macro_f1",
        arm_a={**_CROSS, "head": "spatten"},
        arm_b={**_CROSS, "head": "linear"},
        arm_names=("SpAtten + Linear", "Linear"),
        pair_on=("train_variety", "test_variety", "base", "seed"),
        per=("task", "source"),
        margin=0.01,
        paper_effect=None,
        source=_BESSTIE_REF + "figurative-language study: heatmaps only, no table of numbers",
    ),
)

# SpAtten (HPCA 2021) and software token pruning, study "spatten". Rows: schedule (dense, hf_dense, spatten t.. h..),
# training (post_hoc / pruning_aware / dense / finetuned / finetuned_pruning_aware / ...), pooling with `chosen` (the
# pooling picked on the dev split), runtime (fp32 / int8 / onnx ... peers), macro_f1, speedup (against hf_dense,
# measured in the run), seed. The hf_dense row carries the strongest dense reference's macro-F1 (its pooling picked
# on the dev split, never on test).
_SPATTEN_REF = "REFERENCES.md, SpAtten and token pruning: "
_PRUNED = {"training": "pruning_aware", "schedule": Except("dense", "hf_dense"), "chosen": True, "runtime": "fp32"}
SPATTEN_CLAIMS = (
    Claim(
        id="spatten-no-accuracy-loss",
        study="spatten",
        sentence="Cascade token (and head) pruning loses no accuracy against the dense model (SpAtten: no loss; "
        "LTP, PoWER-BERT: < 1%): macro-F1 within 1 point.",
        metric="macro_f1",
        arm_a=_PRUNED,
        arm_b={"schedule": "hf_dense"},
        arm_names=("pruned", "strongest dense"),
        per=("schedule",),
        pooled=False,
        margin=0.01,
        paper_effect=0.0,
        source=_SPATTEN_REF + "'token pruning 1.9x on average with no accuracy loss'; LTP '< 1% accuracy loss'",
    ),
    Claim(
        id="spatten-speedup",
        study="spatten",
        sentence="Token pruning makes inference faster: 1.9x on average (SpAtten; LTP 1.9x on CPU). Effect: "
        "speed-up over the dense model minus 1.",
        metric="speedup",
        arm_a=_PRUNED,
        arm_b={"schedule": "hf_dense"},
        arm_names=("pruned", "dense (Hugging Face)"),
        per=("schedule",),
        pooled=False,
        paper_effect=0.9,
        source=_SPATTEN_REF + "'token pruning 1.9x on average'; 'LTP 1.9x throughput on CPU'",
    ),
    Claim(
        id="spatten-finetuned-no-loss",
        study="spatten",
        sentence="In SpAtten's own setting, an encoder fine-tuned with token pruning on loses no accuracy against the "
        "same encoder fine-tuned densely (macro-F1 within 1 point).",
        metric="macro_f1",
        arm_a={"training": "finetuned_pruning_aware"},
        arm_b={"training": "finetuned", "schedule": "dense"},
        arm_names=("fine-tuned with pruning", "fine-tuned dense"),
        margin=0.01,
        paper_effect=0.0,
        source=_SPATTEN_REF + "'token pruning 1.9x on average with no accuracy loss'",
    ),
)

# Multi-level attention + contrastive learning (arXiv 2501.13467), IMDB, study "multilevel". Rows: model
# (BiLSTM / TextCNN / Transformer / + multi-level / + contrastive / Proposed (+ lightweight) / BERT), seed.
_MULTILEVEL_REF = "REFERENCES.md, Multi-level attention + contrastive: "
_PROPOSED = "Proposed (+ lightweight)"
MULTILEVEL_CLAIMS = (
    Claim(
        id="multilevel-contrastive-vs-transformer",
        study="multilevel",
        sentence="Multi-level attention with the supervised contrastive loss beats the plain transformer on IMDB "
        "(91.2 vs 88.5 accuracy).",
        metric="accuracy",
        arm_a={"model": "+ contrastive"},
        arm_b={"model": "Transformer"},
        arm_names=("multi-level + contrastive", "transformer baseline"),
        paper_effect=round(0.912 - 0.885, 4),
        source=_MULTILEVEL_REF + "'Transformer 88.5'; ablation '+ contrastive 91.2'",
    ),
    Claim(
        id="multilevel-attention-vs-transformer",
        study="multilevel",
        sentence="Multi-level (global + local) attention alone beats the plain transformer (90.0 vs 88.5 accuracy).",
        metric="accuracy",
        arm_a={"model": "+ multi-level"},
        arm_b={"model": "Transformer"},
        arm_names=("multi-level attention", "transformer baseline"),
        paper_effect=round(0.900 - 0.885, 4),
        source=_MULTILEVEL_REF + "'Transformer 88.5'; ablation '+ multi-level attention 90.0'",
    ),
    Claim(
        id="multilevel-proposed-vs-bert",
        study="multilevel",
        sentence="The proposed model (multi-level + contrastive + lightweight module) beats BERT on IMDB "
        "(92.3 vs 90.2 accuracy).",
        metric="accuracy",
        arm_a={"model": _PROPOSED},
        arm_b={"model": "BERT"},
        arm_names=("proposed", "BERT"),
        paper_effect=round(0.923 - 0.902, 4),
        source=_MULTILEVEL_REF + "'BERT 90.2, proposed 92.3'",
    ),
)

# Multimodal fusion (arXiv 2501.08085; paper: CMU-MOSEI, here CMU-MOSI), study "multimodal_fusion". Rows: scheme
# (3class / binary), mode (utterance / context / pooled features), family (unimodal / fusion / ...), model (text,
# audio, visual, early, late, attention, uniform), split (train / test), seed.
_MULTIMODAL_REF = "REFERENCES.md, Multimodal fusion (CMU-MOSEI, 3 classes): "
_TEST_3CLASS = {"scheme": "3class", "split": "test"}
MULTIMODAL_CLAIMS = (
    Claim(
        id="multimodal-attention-vs-early",
        study="multimodal_fusion",
        sentence="Multi-head attention fusion beats early fusion (concatenation) in 3-class accuracy (72.39 vs 71.87).",
        metric="accuracy",
        arm_a={**_TEST_3CLASS, "family": "fusion", "model": "attention"},
        arm_b={**_TEST_3CLASS, "family": "fusion", "model": "early"},
        arm_names=("attention fusion", "early fusion"),
        per=("mode",),
        paper_effect=round(0.7239 - 0.7187, 4),
        source=_MULTIMODAL_REF + "'early fusion (concat) 71.87; multi-head attention fusion 72.39'",
    ),
    Claim(
        id="multimodal-early-vs-late",
        study="multimodal_fusion",
        sentence="Early fusion (concatenation) beats late fusion (majority vote) in 3-class accuracy (71.87 vs 66.23).",
        metric="accuracy",
        arm_a={**_TEST_3CLASS, "family": "fusion", "model": "early"},
        arm_b={**_TEST_3CLASS, "family": "fusion", "model": "late"},
        arm_names=("early fusion", "late fusion"),
        per=("mode",),
        paper_effect=round(0.7187 - 0.6623, 4),
        source=_MULTIMODAL_REF + "'late fusion (majority vote) 66.23; early fusion (concat) 71.87'",
    ),
    Claim(
        id="multimodal-fusion-vs-text",
        study="multimodal_fusion",
        sentence="Attention fusion of text, audio and video beats the best single modality, text (72.39 vs 69.36).",
        metric="accuracy",
        arm_a={**_TEST_3CLASS, "family": "fusion", "model": "attention"},
        arm_b={**_TEST_3CLASS, "family": "unimodal", "model": "text"},
        arm_names=("attention fusion", "text only"),
        per=("mode",),
        paper_effect=round(0.7239 - 0.6936, 4),
        source=_MULTIMODAL_REF + "'text 69.36'; 'multi-head attention fusion 72.39'",
    ),
)

# The quickstart (study "quickstart") is a tour, not a paper: no claims.
CLAIMS: dict[str, tuple[Claim, ...]] = {
    "quickstart": (),
    "mage": MAGE_CLAIMS,
    "comet": COMET_CLAIMS,
    "besstie": BESSTIE_CLAIMS,
    "spatten": SPATTEN_CLAIMS,
    "multilevel": MULTILEVEL_CLAIMS,
    "multimodal_fusion": MULTIMODAL_CLAIMS,
}


def claims_for(study: str | None = None) -> tuple[Claim, ...]:
    """Every claim, or those of one study (its `STUDY` name); an unknown study is a KeyError naming the known."""
    if study is None:
        return tuple(c for group in CLAIMS.values() for c in group)
    if study not in CLAIMS:
        raise KeyError(f"no claims for study {study!r}; known: {', '.join(CLAIMS)}")
    return CLAIMS[study]


# ---------------------------------------------------------------------------------------------------------------
# Rows: every run's metric rows in one frame
# ---------------------------------------------------------------------------------------------------------------


def run_rows(
    metrics: Iterable[Mapping[str, object]],
    *,
    study: str,
    profile: str,
    run: str,
    predictions: Iterable[Mapping[str, object]] = (),
) -> pd.DataFrame:
    """One run's metric rows with `run`, `study` and `profile` added. A row's own column of the same name with a
    different value (MAGE's `study`: ablation / heads / ...) is kept as `row_<name>`. `predictions` (results.json's
    optional `predictions` list: each entry names its rows by column values and holds `y_true` and `y_pred`, the
    test labels and predictions in one order) are attached to the rows they name as `y_true` / `y_pred`."""
    run_level = {"run": run, "study": study, "profile": profile}
    rows = []
    for metric_row in metrics:
        row = dict(run_level)
        for key, value in metric_row.items():
            if key in run_level and value != run_level[key]:
                row[f"row_{key}"] = value
            elif key not in run_level:
                row[key] = value
        rows.append(row)
    frame = pd.DataFrame(rows)
    entries = [dict(p) for p in predictions]
    if entries and not frame.empty:
        frame["y_true"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        frame["y_pred"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        for entry in entries:
            y_true, y_pred = entry.pop("y_true", None), entry.pop("y_pred", None)
            if y_true is None or y_pred is None or len(y_true) != len(y_pred):
                continue
            names = {(f"row_{k}" if f"row_{k}" in frame else k): v for k, v in entry.items()}
            mask = np.ones(len(frame), bool)
            for column, value in names.items():
                mask &= _matches(frame, column, value)
            for index in frame.index[mask]:
                frame.at[index, "y_true"] = np.asarray(y_true, np.int64)
                frame.at[index, "y_pred"] = np.asarray(y_pred, np.int64)
    return frame


def load_runs(reports: str | Path = "reports", profile: str | None = None) -> pd.DataFrame:
    """Every metric row of every `*/results.json` under `reports` (or of one results.json file), one frame, with
    `run`, `study` and `profile` (`<profile>-dryrun` for a `--dry-run`); `profile` keeps one profile's runs. Claims
    reports (07_claims's own results.json) are not runs and are left out.
    A folder without runs gives an empty frame; a folder that does not exist is a FileNotFoundError."""
    reports = Path(reports)
    if not reports.exists():
        raise FileNotFoundError(f"no reports folder {reports}")
    paths = [reports] if reports.is_file() else sorted(reports.glob(f"*/{RESULTS_FILE}"))
    frames = []
    for path in paths:
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):  # a run still writing, or a broken file: not a run to judge
            continue
        if not isinstance(payload, dict) or "study" not in payload or payload["study"] == REPORT_STUDY:
            continue  # not a run, or a claims report (verdicts, not metrics)
        run_profile = str(payload.get("profile", ""))
        if (payload.get("parameters") or {}).get("dry_run"):
            run_profile += "-dryrun"
        if profile is not None and run_profile != profile:
            continue
        frames.append(
            run_rows(
                payload.get("metrics", []),
                study=str(payload["study"]),
                profile=run_profile,
                run=path.parent.name,
                predictions=payload.get("predictions", []),
            )
        )
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame(columns=list(RUN_COLUMNS))


# ---------------------------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------------------------


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _matches(frame: pd.DataFrame, column: str, wanted: object) -> np.ndarray:
    """Rows whose `column` matches a selector value (booleans match booleans only: True is not 1)."""
    if column not in frame:
        return np.zeros(len(frame), bool)
    values = frame[column].tolist()
    if isinstance(wanted, Except):
        return ~_matches(frame, column, list(wanted.values)) & np.array([not _is_empty(v) for v in values], bool)
    options = list(wanted) if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]

    def hit(value: object) -> bool:
        for option in options:
            if isinstance(option, (bool, np.bool_)) or isinstance(value, (bool, np.bool_)):
                if isinstance(option, (bool, np.bool_)) and isinstance(value, (bool, np.bool_)):
                    if bool(option) == bool(value):
                        return True
                continue
            if not _is_empty(value) and value == option:
                return True
        return False

    return np.array([hit(v) for v in values], bool)


def _select(frame: pd.DataFrame, selector: Mapping[str, object]) -> pd.DataFrame:
    mask = np.ones(len(frame), bool)
    for column, wanted in selector.items():
        mask &= _matches(frame, column, wanted)
    return frame[mask]


def _key_text(value: object) -> str:
    """A key value as text, so that 0, 0.0 and np.int64(0) pair up and an empty value is ''."""
    if _is_empty(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer()):
        return str(int(value))
    return str(value)


def _fixed(selector: Mapping[str, object], column: str) -> bool:
    """Whether a selector pins `column` to a single value (then the arm is not matched on it)."""
    if column not in selector:
        return False
    wanted = selector[column]
    if isinstance(wanted, Except):
        return False
    return not isinstance(wanted, (list, tuple, set, frozenset)) or len(wanted) == 1


def _arm_cells(arm: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """One cell per key: the metric (mean over its rows), the row count and stored predictions (one row only)."""
    frame = pd.DataFrame({k: [_key_text(v) for v in arm[k]] for k in keys}, index=arm.index)
    frame["value"] = pd.to_numeric(arm[metric], errors="coerce")
    has_predictions = "y_true" in arm and "y_pred" in arm
    frame["y_true"] = arm["y_true"] if has_predictions else None
    frame["y_pred"] = arm["y_pred"] if has_predictions else None
    if not keys:
        frame["_all"] = ""
        keys = ["_all"]
    cells = []
    for key, group in frame.groupby(keys, sort=True):
        single = len(group) == 1 and isinstance(group["y_true"].iloc[0], np.ndarray)
        cells.append(
            {
                **dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                "value": float(group["value"].mean()),
                "rows": len(group),
                "y_true": group["y_true"].iloc[0] if single else None,
                "y_pred": group["y_pred"].iloc[0] if single else None,
            }
        )
    return pd.DataFrame(cells)


def _confusions(y_true: np.ndarray, y_pred: np.ndarray, index: np.ndarray, classes: int) -> np.ndarray:
    """(draws, classes, classes) confusion counts of the resampled test rows `index` (draws, n)."""
    draws = index.shape[0]
    cells = np.arange(draws)[:, None] * classes * classes + y_true[index] * classes + y_pred[index]
    return np.bincount(cells.ravel(), minlength=draws * classes * classes).reshape(draws, classes, classes)


def metric_from_confusions(metric: str, confusion: np.ndarray) -> np.ndarray:
    """accuracy, macro_f1, weighted_f1, precision or recall (macro) of each confusion matrix (…, K, K), averaging
    over all K labels with 0 for an undefined ratio (scikit-learn's `labels=range(K), zero_division=0`)."""
    confusion = np.asarray(confusion, float)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    support, predicted = confusion.sum(-1), confusion.sum(-2)
    total = support.sum(-1)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    f1 = ratio(2 * tp, support + predicted)
    values = {
        "accuracy": lambda: ratio(tp.sum(-1), total),
        "macro_f1": lambda: f1.mean(-1),
        "weighted_f1": lambda: ratio((f1 * support).sum(-1), total),
        "precision": lambda: ratio(tp, predicted).mean(-1),
        "recall": lambda: ratio(tp, support).mean(-1),
    }
    if metric not in values:
        raise KeyError(f"no bootstrap for metric {metric!r}; known: {', '.join(values)}")
    return values[metric]()


BOOTSTRAP_METRICS = ("accuracy", "macro_f1", "weighted_f1", "precision", "recall")


def paired_bootstrap(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    metric: str,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile interval of mean(metric(A) − metric(B)) over `pairs` of (y_true, y_pred_a, y_pred_b), resampling
    test rows with replacement; both arms of a pair, and pairs on the same test rows, share each draw's rows."""
    rng = np.random.default_rng(seed)
    classes = 1 + max(int(max(t.max(), a.max(), b.max())) for t, a, b in pairs)
    total = np.zeros(draws)
    by_test_set: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for t, a, b in pairs:
        by_test_set.setdefault(hashlib.sha1(np.ascontiguousarray(t).tobytes()).hexdigest(), []).append((t, a, b))
    chunk = max(1, 2_000_000 // max(len(t) for t, _, _ in pairs))  # bound the (draws, n) index matrix's memory
    for group in by_test_set.values():
        n = len(group[0][0])
        for start in range(0, draws, chunk):
            index = rng.integers(0, n, size=(min(chunk, draws - start), n))
            for t, a, b in group:
                diff = metric_from_confusions(metric, _confusions(t, a, index, classes)) - metric_from_confusions(
                    metric, _confusions(t, b, index, classes)
                )
                total[start : start + len(index)] += diff
    total /= len(pairs)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(total, [tail, 100 - tail])
    return float(low), float(high)


def t_interval(differences: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean of paired differences (n ≥ 2; a zero spread gives a point)."""
    from scipy.special import stdtrit  # the t quantile; scipy.stats takes seconds to import

    d = np.asarray(differences, float)
    mean = float(d.mean())
    half = float(stdtrit(len(d) - 1, 0.5 + confidence / 2) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean - half, mean + half


def judge(low: float, high: float, direction: int = 1, margin: float = 0.0) -> str:
    """reproduced / contradicted / inconclusive for an interval of A − B and a claim's direction and margin."""
    if _is_empty(low) or _is_empty(high):
        return "inconclusive"
    low, high = (low, high) if direction > 0 else (-high, -low)  # in the paper's direction
    if low > -margin:
        return "reproduced"
    if high < -margin:
        return "contradicted"
    return "inconclusive"


def interval_reading(low: float, high: float) -> str | None:
    """above / below when an interval of a margin (A − B) excludes zero, inconclusive when it spans it; None without
    one (a NaN bound)."""
    if _is_empty(low) or _is_empty(high):
        return None
    return {"reproduced": "above", "contradicted": "below"}.get(judge(low, high), "inconclusive")


@dataclass
class _Setting:
    label: str
    pairs: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _verdict_row(claim: Claim, profile: object, setting: _Setting | None, reason: str = "") -> dict[str, object]:
    row: dict[str, object] = {
        "study": claim.study,
        "claim": claim.id,
        "profile": profile,
        "setting": setting.label if setting else "",
        "metric": claim.metric,
        "arm_a": claim.arm_names[0],
        "arm_b": claim.arm_names[1],
        "effect": float("nan"),
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "n": 0,
        "method": "",
        "verdict": "missing",
        "paper_effect": claim.paper_effect,
        "hypothesis": claim.hypothesis,
        "reason": reason,
        "mean_a": float("nan"),
        "mean_b": float("nan"),
        "sentence": claim.sentence,
        "source": claim.source,
    }
    if setting is None:
        return row
    pairs = setting.pairs
    diffs = (pairs["value_a"] - pairs["value_b"]).to_numpy(float)
    n = len(diffs)
    row.update(effect=float(diffs.mean()), n=n, mean_a=float(pairs["value_a"].mean()))
    row["mean_b"] = float(pairs["value_b"].mean())
    notes = list(setting.notes)
    low = high = float("nan")
    if n >= 3 and np.ptp(diffs) <= 1e-12:  # e.g. deterministic arms: the "seeds" are not independent replicates
        notes.insert(0, f"the {n} paired differences are all equal: no spread to judge against, no interval")
    elif n >= 3:
        low, high = t_interval(diffs)
        row["method"] = f"t over {n} paired differences"
    else:
        stored = [
            (t, a, b)
            for t, a, b, tb in zip(pairs["y_true_a"], pairs["y_pred_a"], pairs["y_pred_b"], pairs["y_true_b"])
            if isinstance(t, np.ndarray) and isinstance(tb, np.ndarray) and len(t) == len(tb) and (t == tb).all()
        ]
        if len(stored) == n and claim.metric in BOOTSTRAP_METRICS:
            low, high = paired_bootstrap(stored, claim.metric)
            row["method"] = f"paired bootstrap over {len(stored[0][0])} test rows ({BOOTSTRAP_DRAWS} draws)"
        else:
            notes.insert(0, f"n = {n} < 3 and no stored test predictions for both arms: no interval")
    verdict = judge(low, high, claim.direction, claim.margin)
    if str(profile).startswith("smoke") or str(profile).endswith("-dryrun"):
        # tiny random models or one training step: an interval away from 0 is noise, never a verdict on the paper
        notes.insert(0, f"{profile} run: figures not meaningful, no verdict (the interval alone says {verdict})")
        verdict = "inconclusive"
    row.update(ci_low=low, ci_high=high, verdict=verdict)
    row["reason"] = "; ".join(notes)
    return row


def _settings(claim: Claim, rows: pd.DataFrame, pooled: bool) -> tuple[list[_Setting], str]:
    """The paired cells of one claim in one profile's rows, per setting (+ pooled); or a reason they are missing."""
    if claim.metric not in rows:
        return [], f"no row has the metric {claim.metric!r}"
    rows = rows[pd.to_numeric(rows[claim.metric], errors="coerce").notna()]
    arms = {}
    for side, selector, name in (("a", claim.arm_a, claim.arm_names[0]), ("b", claim.arm_b, claim.arm_names[1])):
        arm = _select(rows, selector)
        if arm.empty:
            wanted = ", ".join(f"{k}={v}" for k, v in selector.items())
            absent = [k for k in selector if k not in rows]
            hint = f" (no column {', '.join(absent)})" if absent else ""
            return [], f"arm {side.upper()} ({name}: {wanted}) has no row with {claim.metric}{hint}"
        arms[side] = arm
    notes = []
    keys = {}
    for side, selector in (("a", claim.arm_a), ("b", claim.arm_b)):
        arm = arms[side]
        shared = claim.shared_b if side == "b" else ()
        keys[side] = [
            c
            for c in dict.fromkeys((*claim.per, *claim.pair_on))
            if not _fixed(selector, c) and c not in shared and c in arm and arm[c].map(lambda v: not _is_empty(v)).any()
        ]
    selectors = {"a": claim.arm_a, "b": claim.arm_b}
    for side, other in (("a", "b"), ("b", "a")):  # e.g. a deterministic baseline run once, without a seed
        unmatched = [c for c in claim.pair_on if c in keys[other] and c not in keys[side]]
        unmatched = [c for c in unmatched if not _fixed(selectors[side], c)]
        shared = [c for c in unmatched if side == "b" and c in claim.shared_b]
        if shared:
            notes.append(f"arm B is one reference across {', '.join(shared)}: it pairs with every arm A row")
        if unmatched := [c for c in unmatched if c not in shared]:
            notes.append(
                f"arm {side.upper()} has no {', '.join(unmatched)}: it pairs with every arm {other.upper()} row"
            )
    cells_a, cells_b = _arm_cells(arms["a"], keys["a"], claim.metric), _arm_cells(arms["b"], keys["b"], claim.metric)
    common = [c for c in keys["a"] if c in keys["b"]]
    pairs = cells_a.merge(cells_b, on=common, how="inner", suffixes=("_a", "_b")) if common else None
    if pairs is None:
        pairs = cells_a.merge(cells_b, how="cross", suffixes=("_a", "_b"))
    if pairs.empty:
        return [], f"no row of arm A pairs with a row of arm B on {', '.join(common)}"
    if (pairs["rows_a"] > 1).any() or (pairs["rows_b"] > 1).any():
        notes.append("several rows of one arm under one key were averaged")
    per = [c for c in claim.per if c in pairs]
    out = []
    if per:
        for key, group in pairs.groupby(per, sort=True):
            values = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{c}={v}" for c, v in zip(per, values))
            out.append(_Setting(label, group, notes))
    if not per or (pooled and claim.pooled and len(out) > 1):
        out.append(_Setting(POOLED if per else "all", pairs, notes))
    return out, ""


def verdicts(rows: pd.DataFrame, claims: Iterable[Claim] | None = None, *, pooled: bool = True) -> pd.DataFrame:
    """Per claim, profile and setting: effect (A − B), 95% interval, n, method, verdict, the paper's effect, and why
    (see the module docstring). A claim whose study has no rows, or whose arms are absent, is one `missing` row."""
    claims = claims_for() if claims is None else tuple(claims)
    out = []
    for claim in claims:
        study_rows = rows[rows["study"] == claim.study] if "study" in rows else rows.iloc[:0]
        if study_rows.empty:
            out.append(_verdict_row(claim, None, None, f"no run of study {claim.study!r}"))
            continue
        profiles = study_rows.groupby("profile", sort=True) if "profile" in study_rows else [(None, study_rows)]
        for profile, group in profiles:
            settings, reason = _settings(claim, group, pooled)
            if not settings:
                out.append(_verdict_row(claim, profile, None, reason))
            out += [_verdict_row(claim, profile, s) for s in settings]
    return pd.DataFrame(out, columns=TABLE_COLUMNS)


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim and profile, the row that answers it: the pooled (or only) setting, or the `missing` row; a claim
    without a pooled verdict (settings not alike) keeps every setting."""
    if table.empty:
        return table
    summary = table["setting"].isin([POOLED, "all", ""])
    groups = table.assign(_summary=summary).groupby(["claim", table["profile"].fillna("")], sort=False)["_summary"]
    has_summary = groups.transform("any")
    return table[summary | ~has_summary].reset_index(drop=True)


def table_for(result, *, settings: bool = True) -> pd.DataFrame:
    """The claims table of one study run (a `StudyResult`, before or after saving), for the end of its notebook."""
    profile = str(result.params.get("profile", ""))
    if result.params.get("dry_run"):
        profile += "-dryrun"
    rows = run_rows(result.metrics.to_dict("records"), study=result.study, profile=profile, run="this run")
    table = verdicts(rows, claims_for(result.study))
    table = table if settings else headline(table)
    return readable(table)


def readable(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The columns a reader needs, numbers rounded, the interval as one `[low, high]` text."""
    out = table.copy()

    def interval(low: float, high: float) -> str:
        return "" if _is_empty(low) or _is_empty(high) else f"[{low:+.{digits}f}, {high:+.{digits}f}]"

    out["95% CI"] = [interval(lo, hi) for lo, hi in zip(out["ci_low"], out["ci_high"])]
    for column in ("effect", "paper_effect"):
        out[column] = [None if _is_empty(v) else round(float(v), digits) for v in out[column]]
    columns = ["study", "claim", "profile", "setting", "metric", "hypothesis", "effect", "95% CI", "n", "verdict",
               "paper_effect", "method", "reason"]  # fmt: skip
    return out[columns].reset_index(drop=True)


def format_table(table: pd.DataFrame) -> str:
    """The verdicts as plain text for a terminal: one line per claim × profile × setting, then a count."""
    if table.empty:
        return "no claims"
    shown = readable(table)
    shown["paper_effect"] = shown["paper_effect"].map(lambda v: "—" if _is_empty(v) else f"{v:+.4f}")
    shown["effect"] = shown["effect"].map(lambda v: "" if _is_empty(v) else f"{v:+.4f}")
    shown = shown.drop(columns=["method", "hypothesis", "reason"])
    counts = table["verdict"].value_counts()
    tally = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
    return shown.to_string(index=False) + f"\n\n{len(table)} verdicts: {tally}"


def records(table: pd.DataFrame) -> list[dict[str, object]]:
    """The verdicts as JSON-ready dicts (NaN as None)."""
    return [{k: (None if _is_empty(v) else v) for k, v in row.items()} for row in table.to_dict("records")]


# ---------------------------------------------------------------------------------------------------------------
# The claims report (notebooks/07_claims.ipynb)
# ---------------------------------------------------------------------------------------------------------------


def reports_folder(reports: str | Path | None = None, report_dir: str | Path | None = None) -> Path:
    """The folder of runs to judge: `reports` if given; else the folder this run's report goes into (a batch run
    judges its neighbours); else the project's `reports/`."""
    if reports:
        return Path(reports)
    if report_dir:
        return Path(report_dir).resolve().parent
    from workbench.runtime import project_root

    return project_root() / "reports"


def run_profile(profile: str | None, dry: bool = False) -> str | None:
    """The profile label of the runs to judge: `<profile>-dryrun` inside a `--dry-run`; None: every profile."""
    return None if profile is None else f"{profile}-dryrun" if dry else str(profile)


def notes(rows: pd.DataFrame, table: pd.DataFrame, reports: str | Path, profile: str | None) -> list[str]:
    """What this claims report judged, derived from the runs it read and the verdicts it reached."""
    runs = rows.drop_duplicates("run")[["run", "study"]] if len(rows) else pd.DataFrame(columns=["run", "study"])
    which = f"profile {profile}" if profile else "every profile"
    out = [
        f"Judged {len(runs)} run(s) of {which} under {reports}: "
        + (", ".join(f"{s} ({n})" for s, n in runs["study"].value_counts().sort_index().items()) or "none")
        + "."
    ]
    answer = headline(table)
    counts = answer["verdict"].value_counts()
    out.append(
        f"{answer['claim'].nunique()} claims, {len(answer)} answers: "
        + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
        + "."
    )
    out.append(
        f"Intervals: {CONFIDENCE:.0%} t over >= 3 paired differences (seeds, or seeds x replicates); with fewer, a "
        "paired bootstrap over stored test predictions; otherwise none (inconclusive)."
    )
    if profile and profile.startswith("smoke"):
        out.append("Smoke runs: tiny random models on a few rows; their verdicts mean nothing.")
    if profile and profile.endswith("-dryrun"):
        out.append("Dry run: the judged runs are dry runs (random weights, one step per training); the verdicts mean "
                   "nothing.")  # fmt: skip
    return out


def save(
    report_dir: str | Path | None,
    table: pd.DataFrame,
    rows: pd.DataFrame,
    *,
    reports: str | Path,
    profile: str | None,
    dry: bool = False,
) -> Path:
    """Write the claims report's `results.json`: one metric row per verdict (all settings), the runs read, notes
    and the verdict counts as headline."""
    from workbench.results import save_results

    answer = headline(table)
    counts = answer["verdict"].value_counts()
    runs = sorted(set(rows["run"])) if "run" in rows else []
    parameters = {"profile": profile, "reports": str(reports), **({"dry_run": True} if dry else {})}
    return save_results(
        report_dir,
        study=REPORT_STUDY,
        profile=str(profile or "all"),
        parameters=parameters,
        data=[{"name": "runs", "rows": len(rows), "runs": runs}],
        metrics=records(table),
        notes=notes(rows, table, reports, run_profile(profile, dry)),
        headline={"claims": int(answer["claim"].nunique()), **{v: int(counts.get(v, 0)) for v in VERDICTS}},
    )
