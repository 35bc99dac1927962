"""Multi-level attention and contrastive learning on IMDB (arXiv 2501.13467): the study.

The ablation ladder *plain transformer -> + multi-level attention -> + supervised contrastive loss -> + lightweight
module* (the proposed model) and the BiLSTM / TextCNN baselines are trained from scratch on the same WordPiece ids,
data and budget, for every seed, and scored on the IMDB test set; a BERT row (a frozen encoder's embeddings with a
logistic regression, or the encoder fine-tuned) stands beside them. The models are in `workbench.methods.multilevel`
and `workbench.methods.textmodels`; this module holds the settings, the data, the loop and the tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from workbench.data import load_imdb, remove_overlap
from workbench.data.sampling import split_indices, stratified_sample
from workbench.encoders import EncoderUnavailable, encoder_name_problem, load_encoder
from workbench.methods.multilevel import feed_forward_cost
from workbench.methods.textmodels import (
    TextRun,
    TokenIds,
    fine_tuned_encoder_baseline,
    frozen_encoder_baseline,
    tokenize_texts,
    train_text_model,
)
from workbench.paper_models import PAPER_ARCHITECTURES
from workbench.profiles import Param, Profiles
from workbench.results import StudyResult, Timings, describe_data
from workbench.saving import TrainedModel, model_name
from workbench.studies.tables import compare_arms, mean_std_text, summarise
from workbench.training import TrainConfig

STUDY = "multilevel"
DATA_SEED = 0  # the train / dev / test subsets are the same for every model seed
PATIENCE = 2  # early stopping on dev accuracy

PROFILES = Profiles(
    base={
        "seeds": Param([0, 1, 2], "model seeds (at least 3 for a seed spread)"),
        "train_size": Param(
            3000,
            "training reviews from the 25k train split (None: all left after the dev set)",
            optional=True,
            minimum=1,
        ),
        "dev_size": Param(
            500, "train reviews held out for early stopping and learning curves (at most a quarter)", minimum=2
        ),
        "test_size": Param(None, "test reviews scored (None: the full 25k test set)", kind="int", minimum=1),
        "max_length": Param(128, "WordPiece tokens kept per review (the head of the review)", minimum=1),
        "d_model": Param(64, "model width; also the BiLSTM hidden size and the TextCNN filters per width", minimum=1),
        "num_layers": Param(2, "transformer layers", minimum=1),
        "num_heads": Param(4, "attention heads (must divide d_model)", minimum=1),
        "d_ff": Param(256, "feed-forward hidden width of a full layer", minimum=1),
        "bottleneck_ratio": Param(
            4, "lightweight module: feed-forward hidden width d_ff / bottleneck_ratio", minimum=1
        ),
        "window": Param(8, "local attention half-width: token i sees tokens i-window to i+window", minimum=0),
        "epochs": Param(3, "maximum training epochs (early stopping on dev accuracy, patience 2)", minimum=1),
        "batch_size": Param(32, "training batch size (also the contrastive loss's pool of positives)", minimum=1),
        "lr": Param(3e-3, "AdamW learning rate of the from-scratch models", minimum=0),
        "contrastive_weight": Param(0.5, "lambda: weight of the supervised contrastive loss", minimum=0),
        "temperature": Param(0.1, "tau: temperature of the supervised contrastive loss", minimum=0),
        "bert_encoder": Param(
            "minilm", "BERT row encoder: `minilm`, `tiny`, a local folder or a hub id", validate=encoder_name_problem
        ),
        "bert_max_length": Param(128, "tokens per review for the BERT row", minimum=1),
        "bert_train_size": Param(
            3000, "training reviews for the BERT row (None: the whole training subset)", optional=True, minimum=1
        ),
        "bert_test_size": Param(
            None, "test reviews for the BERT row (None: the same test set as every model)", kind="int", minimum=1
        ),
        "fine_tune_bert": Param(False, "fine-tune the BERT encoder end to end (else: frozen embeddings + a probe)"),
        "projection_size": Param(2000, "test reviews in the 2-D projection of the pooled representations", minimum=2),
        "save_models": Param(True, "save the first seed's model of every row (BERT: when fine-tuned) under models/"),
    },
    smoke=dict(
        train_size=48,
        dev_size=24,
        test_size=200,
        max_length=64,
        d_model=16,
        num_layers=1,
        num_heads=2,
        d_ff=32,
        window=4,
        epochs=2,
        batch_size=16,
        lr=2e-3,
        bert_encoder="tiny",
        bert_max_length=32,
        bert_train_size=48,
        projection_size=300,
        save_models=False,
    ),
    # quick = base: sized for 30 minutes on 2 CPU cores. Per review at 128 tokens, one thread: training 0.8 (TextCNN)
    # to 7 ms (multi-level), test 0.3-1.2 ms; MiniLM encodes ~49 reviews/s (28k reviews: ~10 min). On 3,000 reviews
    # dev accuracy levels off by epoch 3-4 at batch 32 and lr 3e-3 (batch 64 / lr 2e-3 stalled at 0.56-0.65 test
    # accuracy); 4 epochs took 29.2 min cold, too close to the limit, so 3.
    quick={},
    paper=dict(
        train_size=None,
        dev_size=2500,
        max_length=512,
        d_model=256,
        num_layers=4,
        num_heads=8,
        d_ff=1024,
        window=16,
        epochs=10,
        lr=5e-4,
        bert_encoder="bert-base-uncased",
        bert_max_length=512,
        bert_train_size=None,
        fine_tune_bert=True,
        projection_size=5000,
    ),
    # `--dry-run`: the paper's model sizes on a handful of rows, one seed, one epoch (fit takes one step). BERT-base is
    # still fine-tuned at 512 tokens (its position limit; one step of 4 reviews: ~30 s on one core), the from-scratch
    # models see 128 (at 512 each costs ~12 s on one core and checks no more).
    dry_run=dict(
        seeds=[0], train_size=8, dev_size=4, test_size=8, max_length=128, epochs=1, batch_size=4, bert_train_size=8
    ),
)

# The paper's IMDB accuracies (%), from /work/shared/REFERENCES.md; table names as in `EXPERIMENTS`.
PAPER = {
    "accuracy": {
        "BiLSTM": 85.6,
        "TextCNN": 86.8,
        "Transformer": 88.5,
        "BERT": 90.2,
        "+ multi-level": 90.0,
        "+ contrastive": 91.2,
        "Proposed (+ lightweight)": 92.3,
    },
    "ablation": {"1 plain": 88.5, "2 + multi-level": 90.0, "3 + contrastive": 91.2, "4 + lightweight": 92.3},
    "proposed": {"accuracy": 92.3, "f1": 92.1, "recall": 91.9},
}

# (name in the tables, `text_model` registry name, trained with the contrastive loss, ablation step)
EXPERIMENTS = (
    ("BiLSTM", "bilstm", False, None),
    ("TextCNN", "textcnn", False, None),
    ("Transformer", "transformer", False, "1 plain"),
    ("+ multi-level", "multilevel", False, "2 + multi-level"),
    ("+ contrastive", "multilevel", True, "3 + contrastive"),
    ("Proposed (+ lightweight)", "multilevel_lightweight", True, "4 + lightweight"),
)
PROPOSED = "Proposed (+ lightweight)"
TABLE_ORDER = ["BiLSTM", "TextCNN", "Transformer", "BERT", "+ multi-level", "+ contrastive", PROPOSED]
COMPONENTS = {
    "1 plain": "Plain transformer (the base of the ladder)",
    "2 + multi-level": "Multi-level attention",
    "3 + contrastive": "The contrastive loss",
    "4 + lightweight": "The lightweight module",
}
MODEL_KNOBS = ("d_model", "num_layers", "num_heads", "d_ff", "bottleneck_ratio", "window", "max_length")
COST_COLUMNS = [
    "params",
    "params_non_embedding",
    "gflops_per_review",
    "train_seconds_per_epoch",
    "inference_reviews_per_second",
]


@dataclass
class MultiLevelData:
    """The IMDB subsets (frames in file order) and their WordPiece ids (MiniLM's uncased tokenizer)."""

    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    train_ids: TokenIds
    dev_ids: TokenIds
    test_ids: TokenIds
    tokenizer: object
    removed_overlap: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        return list(self.train.attrs["label_names"])

    def datasets(self) -> tuple[torch.utils.data.TensorDataset, ...]:
        """(train, dev, test) as `TensorDataset(input_ids, attention_mask, labels)`."""
        return tuple(
            ids.dataset(frame["label"].to_numpy())
            for ids, frame in ((self.train_ids, self.train), (self.dev_ids, self.dev), (self.test_ids, self.test))
        )

    def describe(self) -> list[dict[str, object]]:
        """The results.json `data` rows."""
        return [
            describe_data("imdb train subset", self.train, removed_overlap_with_test=self.removed_overlap),
            describe_data("imdb dev (held out from train)", self.dev),
            describe_data("imdb test", self.test),
        ]


@dataclass
class MultiLevelResult(StudyResult):
    """A run's metric rows plus what the views need: learning curves, the first seed's trained models, the 2-D
    projection of pooled test representations (with and without the contrastive loss) and one review's maps."""

    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    runs: dict[str, TextRun] = field(default_factory=dict)
    label_names: list[str] = field(default_factory=list)
    test_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    projection: dict[str, np.ndarray] = field(default_factory=dict)
    projection_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    silhouettes: dict[str, float] = field(default_factory=dict)
    attention_example: dict[str, object] = field(default_factory=dict)

    def save(self, report_dir: str | Path | None) -> Path:
        """results.json, and the learning curves as `learning_curves.csv` beside it."""
        from workbench.runtime import atomic_write_text

        path = super().save(report_dir)
        atomic_write_text(path.parent / "learning_curves.csv", self.curves.to_csv(index=False))
        return path


def load(params: dict[str, object]) -> MultiLevelData:
    """IMDB train (minus reviews whose text is also in the test set) split into seeded, stratified train and dev
    subsets, the (optionally subsampled) test split, and the WordPiece ids of exactly those rows."""
    timings = Timings()
    with timings("load data"):
        train_all, test = load_imdb("train"), load_imdb("test")
        train_all, removed = remove_overlap(train_all, test)
        test = stratified_sample(test, params["test_size"], DATA_SEED)
        n_dev = min(params["dev_size"], len(train_all) // 4)
        rest_index, dev_index = split_indices(len(train_all), train_all["label"], DATA_SEED, test_size=n_dev)
        dev = train_all.iloc[dev_index].reset_index(drop=True)
        train = stratified_sample(train_all.iloc[rest_index].reset_index(drop=True), params["train_size"], DATA_SEED)
    with timings("tokenize"):  # only the rows used: tokenizing all 50k reviews takes minutes
        tokenizer = load_encoder("tiny").tokenizer  # MiniLM's WordPiece tokenizer (the tiny model is not used)
        ids = [tokenize_texts(f["text"].tolist(), tokenizer, params["max_length"]) for f in (train, dev, test)]
    return MultiLevelData(train, dev, test, *ids, tokenizer=tokenizer, removed_overlap=removed, timings=dict(timings))


def train_config(params: dict[str, object], seed: int) -> TrainConfig:
    """The training settings of every from-scratch model (unweighted cross-entropy: IMDB is balanced)."""
    return TrainConfig(
        epochs=params["epochs"],
        lr=params["lr"],
        batch_size=params["batch_size"],
        seed=seed,
        patience=PATIENCE,
        monitor="accuracy",
        weighted_loss=False,
        progress=False,
    )


def _require_hub_encoder(params: dict[str, object]) -> None:
    """Fail in seconds, not after hours of training, when the encoder to fine-tune cannot be loaded."""
    if params["fine_tune_bert"]:
        try:
            load_encoder(params["bert_encoder"], device="cpu")
        except EncoderUnavailable as err:
            raise RuntimeError(
                f"this run fine-tunes {params['bert_encoder']!r}, which needs the Hugging Face Hub: {err}"
            ) from None


def _bert_rows(
    params: dict[str, object], data: MultiLevelData, timings: Timings, progress: bool = False, keep: dict | None = None
) -> list[dict[str, object]]:
    """The BERT baseline: fine-tuned (one row per seed) or a frozen encoder with a logistic regression (one row)."""
    train = stratified_sample(data.train, params["bert_train_size"], DATA_SEED)
    test = stratified_sample(data.test, params["bert_test_size"], DATA_SEED)
    texts, labels = {}, {}
    for name, frame in (("train", train), ("dev", data.dev), ("test", test)):
        texts[name], labels[name] = frame["text"].tolist(), frame["label"].to_numpy()
    if params["fine_tune_bert"]:
        with timings("BERT fine-tuning"):
            rows = fine_tuned_encoder_baseline(
                params["bert_encoder"], texts["train"], labels["train"], texts["dev"], labels["dev"], texts["test"],
                labels["test"], params["seeds"], params["bert_max_length"], params["batch_size"], progress=progress,
                keep=keep,
            )  # fmt: skip
        for row in rows:
            row.update(bert_train_size=len(train), bert_max_length=params["bert_max_length"], test_size=len(test))
        return rows
    encoder = load_encoder(params["bert_encoder"])
    row = frozen_encoder_baseline(
        encoder, texts["train"], labels["train"], texts["test"], labels["test"], params["bert_max_length"], timings
    )
    return [row]


def _projection(
    runs: dict[str, TextRun], test: torch.utils.data.TensorDataset, size: int
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """PCA (2-D) of the pooled test representations of the multi-level model without and with the contrastive
    loss (first seed), on a stratified sample of `size` test reviews, and their silhouettes (cosine, full space)."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    labels = test.tensors[2].numpy()
    sample = split_indices(len(labels), labels, DATA_SEED, train_size=size)[0] if size < len(labels) else None
    ids, mask, labels = (t if sample is None else t[sample] for t in test.tensors)
    points, silhouettes = {}, {}
    for name in ("+ multi-level", "+ contrastive"):
        model = runs[name].model.eval()
        with torch.no_grad():
            pooled = torch.cat([model.features(i, m)[1] for i, m in zip(ids.split(256), mask.split(256))]).numpy()
        points[name] = PCA(n_components=2, random_state=0).fit_transform(pooled)
        silhouettes[name] = float(silhouette_score(pooled, labels.numpy(), metric="cosine"))
    return points, labels.numpy(), silhouettes


def _attention_example(model, test: torch.utils.data.TensorDataset, data: MultiLevelData) -> dict[str, object]:
    """Last-layer global and local attention (mean over heads) and the gate of the first test review with 21-59
    tokens (else the first review)."""
    ids_all, mask_all, labels = test.tensors
    lengths = mask_all.sum(1)
    fits = (lengths > 20) & (lengths < 60)
    example = int(torch.nonzero(fits)[0]) if fits.any() else 0
    n_tokens = int(lengths[example])
    ids, mask = ids_all[example : example + 1, :n_tokens], mask_all[example : example + 1, :n_tokens]
    maps = model.attention_maps(ids, mask)[-1]
    return {
        "index": example,
        "text": data.test["text"].iloc[example],
        "label": data.label_names[int(labels[example])],
        "tokens": data.tokenizer.convert_ids_to_tokens(ids[0].tolist()),
        "global": maps["global"][0].mean(0).numpy(),
        "local": maps["local"][0].mean(0).numpy(),
        "gate": maps["gate"][0].numpy(),
    }


def run(params: dict[str, object], data: MultiLevelData | None = None, progress: bool = True) -> MultiLevelResult:
    """Train and score every model of `EXPERIMENTS` for every seed, then the BERT row; one metric row per run."""
    _require_hub_encoder(params)
    data = data if data is not None else load(params)
    timings = Timings(data.timings)
    train, dev, test = data.datasets()
    weight = params["contrastive_weight"]
    model_kwargs = {k: params[k] for k in MODEL_KNOBS}
    rows, curves, kept = [], [], {}
    bar = tqdm(total=len(EXPERIMENTS) * len(params["seeds"]), desc="models x seeds", disable=not progress)
    for name, architecture, contrastive, step in EXPERIMENTS:
        for seed in params["seeds"]:
            with timings(f"train+test {name}"):
                trained = train_text_model(
                    name, architecture, train, dev, test, train_config(params, seed),
                    vocab_size=data.tokenizer.vocab_size, contrastive_weight=weight if contrastive else 0.0,
                    temperature=params["temperature"], model_kwargs=model_kwargs,
                )  # fmt: skip
            rows.append({
                "model": name, "architecture": architecture, "ablation_step": step,
                "contrastive_weight": weight if contrastive else 0.0, "seed": seed, **trained.metrics, **trained.cost,
            })  # fmt: skip
            curves += [{"model": name, "seed": seed, **epoch} for epoch in trained.history.epochs]
            if seed == params["seeds"][0]:
                kept[name] = trained
            bar.update()
            if progress:
                bar.write(f"{name:26s} seed {seed}: accuracy {trained.metrics['accuracy']:.4f} "
                          f"({trained.cost['epochs_run']} epochs)")  # fmt: skip
    bar.close()
    tuned_bert = {} if params["save_models"] else None  # the first seed's fine-tuned BERT, to save
    bert_rows = _bert_rows(params, data, timings, progress, tuned_bert)
    if progress:
        for row in bert_rows:
            print(f"BERT ({row['architecture']}): accuracy {row['accuracy']:.4f}")
    rows += bert_rows
    metrics = pd.DataFrame(rows)
    metrics["test_size"] = metrics["test_size"].fillna(len(data.test)).astype(int)
    metrics = metrics.assign(profile=params["profile"], train_size=len(data.train), max_length=params["max_length"])

    points, point_labels, silhouettes = _projection(kept, test, params["projection_size"])
    example = _attention_example(kept[PROPOSED].model, test, data)
    means = metrics.groupby("model")["accuracy"].mean()
    truncated = float((data.test_ids.mask.sum(1) == params["max_length"]).mean())
    verdicts = ablation_table(metrics).dropna(subset=["verdict"])
    bert = metrics[metrics["model"] == "BERT"].iloc[0]
    run_notes = [
        f"{truncated:.0%} of the test reviews are cut at {params['max_length']} tokens.",
        "Verdicts (accuracy gain vs the sum of the two seed stds): "
        + "; ".join(f"{r['component']}: {r['verdict']}" for _, r in verdicts.iterrows()),
        f"Silhouette of pooled test representations (cosine): {silhouettes}.",
        f"BERT data: trained on {int(bert['bert_train_size'])} reviews, scored on {int(bert['test_size'])} test "
        f"reviews{'' if int(bert['test_size']) == len(data.test) else ' (a stratified sample of the test set)'}.",
    ]
    return MultiLevelResult(
        study=STUDY,
        params=dict(params),
        metrics=metrics,
        data=data.describe(),
        timings=dict(timings),
        notes=notes(params) + run_notes,
        headline={
            "proposed_accuracy": means.get(PROPOSED),
            "transformer_accuracy": means.get("Transformer"),
            "bert_accuracy": means.get("BERT"),
            "multilevel_gain": means.get("+ multi-level") - means.get("Transformer"),
            "contrastive_gain": means.get("+ contrastive") - means.get("+ multi-level"),
            **({"dry_run": True} if params.get("dry_run") else {}),
        },
        curves=pd.DataFrame(curves),
        runs=kept,
        label_names=data.label_names,
        test_labels=data.test["label"].to_numpy(),
        projection=points,
        projection_labels=point_labels,
        silhouettes=silhouettes,
        attention_example=example,
        trained_models=_models_to_save(params, data, kept, test, tuned_bert),
    )


def _models_to_save(
    params: dict[str, object], data: MultiLevelData, kept: dict[str, TextRun], test, bert: dict | None
) -> dict[str, TrainedModel]:
    """With `save_models`: the first seed's model of every from-scratch row and the fine-tuned BERT (the frozen
    BERT row is a scikit-learn probe and is not saved), each with the first test reviews' ids as inputs."""
    if bert is None:
        return {}
    inputs = tuple(t[:32] for t in test.tensors[:2])
    seed = params["seeds"][0]
    out = {}
    for name, trained in kept.items():
        architecture, contrastive = next((a, c) for n, a, c, _ in EXPERIMENTS if n == name)
        description = (
            f"'{name}' ({architecture}) trained from scratch on {len(data.train):,} IMDB reviews (seed {seed}, the "
            f"run's first) on MiniLM's WordPiece ids, {params['max_length']} tokens. Inputs: input_ids and "
            "attention_mask from the tokenizer saved here (right-padded)."
        )
        rows = {"model": name, "seed": seed}
        folder = model_name(architecture, "contrastive" if contrastive else None)
        out[folder] = TrainedModel(trained.model, inputs, rows, description, data.tokenizer)
    if bert:
        description = (
            f"The encoder {params['bert_encoder']} fine-tuned end to end with a linear head on the [CLS] state (the "
            f"BERT row, seed {bert['seed']}). Inputs: input_ids and attention_mask from the tokenizer saved here."
        )
        rows = {"model": "BERT", "seed": bert["seed"]}
        out["bert-finetuned"] = TrainedModel(bert["model"], bert["inputs"], rows, description, bert["tokenizer"])
    return out


def _count(value: object, whole: str) -> str:
    return whole if value is None else f"{value:,}"


def notes(params: dict[str, object]) -> list[str]:
    """What this run is and how it differs from the paper, derived from the parameters it used."""
    p = params
    hidden = p["d_ff"] // p["bottleneck_ratio"]
    test = "the full 25k test set" if p["test_size"] is None else f"a stratified {p['test_size']:,} test reviews"
    out = []
    if p.get("dry_run"):
        bert = (
            f"the BERT row's {p['bert_encoder']!r} has its published architecture but random weights and a stand-in "
            "tokenizer (MiniLM's)"
            if p["bert_encoder"] in PAPER_ARCHITECTURES
            else f"the BERT row uses {p['bert_encoder']!r}"
        )
        out.append(
            f"DRY RUN: {bert}, the rows are capped and every training takes one optimisation step: this checks the "
            "paper path's code, shapes and memory; the numbers, tables and figures mean nothing."
        )
    out += [
        f"Data: {_count(p['train_size'], 'all')} training reviews (seeded and stratified, from the 25k train split "
        f"less {p['dev_size']:,} held-out dev reviews and those whose text is also in the test set), scored on "
        f"{test}; reviews cut to their first {p['max_length']} WordPiece tokens (MiniLM uncased tokenizer).",
        f"From-scratch models: d_model={p['d_model']}, {p['num_layers']} layer(s), {p['num_heads']} heads, "
        f"d_ff={p['d_ff']}, local window ±{p['window']}, lightweight feed-forward {p['d_ff']} -> {hidden}; up to "
        f"{p['epochs']} epochs, batch {p['batch_size']}, AdamW lr {p['lr']}, early stopping on dev accuracy "
        f"(patience {PATIENCE}); contrastive weight {p['contrastive_weight']}, temperature {p['temperature']}; "
        f"seeds {p['seeds']}.",
        "Gate: per-token, per-channel sigmoid over [global; local]; both views share the Q/K/V projections.",
    ]
    bert_data = f"{_count(p['bert_train_size'], 'all the')} training reviews, {p['bert_max_length']} tokens per review"
    if p["fine_tune_bert"]:
        out.append(
            f"BERT row: {p['bert_encoder']} fine-tuned end to end ([CLS] head, AdamW lr 2e-5, batch {p['batch_size']}, "
            f"up to 3 epochs, early stopping on dev accuracy), one row per seed ({len(p['seeds'])}); {bert_data}."
        )
    else:
        out.append(
            f"BERT row: {p['bert_encoder']} frozen (its weights are not trained): its mean-pooled embeddings feed a standardised "
            f"logistic regression; {bert_data}; deterministic, so one row and no seed spread."
        )
    # the paper profile's own values (`PROFILES.defaults` would add the dry-run caps and hide the differences)
    paper = {name: PROFILES.overrides["paper"].get(name, param.value) for name, param in PROFILES.base.items()}
    differences = [
        f"{k}={p[k]} (paper: {paper[k]})" for k in PROFILES.names if k not in ("seeds", "projection_size")
        and p[k] != paper[k]
    ]  # fmt: skip
    out.append(
        "Differences from the paper's settings: " + ", ".join(differences) + "."
        if differences
        else "Settings as in the paper profile."
    )
    if not p.get("dry_run") and (p["bert_encoder"] == "tiny" or (p["train_size"] or 25000) < 500):
        out.append(
            "Plumbing check only (a tiny random encoder or under 500 training reviews): the numbers and figures "
            "of this run mean nothing."
        )
    out.append("Timings are wall-clock on the machine that ran this (noisy when it is shared); compare within a run.")
    return out


def ablation_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """The ablation ladder (accuracy, %): each step's mean and std over seeds, its gain over the previous step,
    the seed spread (the two stds added), the paired per-seed gains, the verdict, and the paper's number."""
    ladder = metrics.dropna(subset=["ablation_step"])
    steps = sorted(ladder["ablation_step"].unique())
    summary = summarise(ladder, ["ablation_step"], ["accuracy"]).set_index("ablation_step")
    rows = []
    for previous, step in zip([None] + steps[:-1], steps):
        row = {
            "step": step,
            "component": COMPONENTS.get(step),
            "accuracy mean": summary.loc[step, "accuracy_mean"] * 100,
            "accuracy std": summary.loc[step, "accuracy_std"] * 100,
            "seeds": int(summary.loc[step, "seeds"]),
        }
        if previous is not None:
            versus = compare_arms(ladder, "ablation_step", step, previous, "accuracy", scale=100.0).iloc[0]
            row.update({
                "gain vs previous": versus["effect"], "spread (sum of stds)": versus["spread"],
                "paired gains": versus.get("paired_gains", ""), "verdict": versus["verdict"],
            })  # fmt: skip
        row["paper accuracy"] = PAPER["ablation"].get(step)
        rows.append(row)
    columns = ["step", "component", "accuracy mean", "accuracy std", "seeds", "gain vs previous",
               "spread (sum of stds)", "paired gains", "verdict", "paper accuracy"]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=columns)


def tables(result: MultiLevelResult) -> dict[str, pd.DataFrame]:
    """`data`, `main` (mean ± std over seeds beside the paper), `ablation` (with verdicts), `cost` (same runs) and
    `feed_forward` (the lightweight module's saving per layer, from the parameters)."""
    metrics, p = result.metrics, result.params
    order = [m for m in TABLE_ORDER if m in set(metrics["model"])]
    main = mean_std_text(metrics, ["model"], ["accuracy", "precision", "recall", "macro_f1"], scale=100.0, digits=2)
    main = main.reindex(order)
    main["paper accuracy"] = [PAPER["accuracy"].get(m) for m in main.index]
    main["paper F1"] = [PAPER["proposed"]["f1"] if m == PROPOSED else None for m in main.index]
    main["paper recall"] = [PAPER["proposed"]["recall"] if m == PROPOSED else None for m in main.index]
    cost = metrics.groupby("model", sort=False)[[c for c in COST_COLUMNS if c in metrics]].mean().reindex(order)
    hidden = p["d_ff"] // p["bottleneck_ratio"]
    ffn = []
    for name, width in (("full", p["d_ff"]), ("lightweight", hidden)):
        c = feed_forward_cost(p["d_model"], width, tokens=p["max_length"])
        ffn.append({"feed-forward": name, "d_model": p["d_model"], "hidden": width, "params per layer": c["params"],
                    "FLOPs per review per layer": c["flops"]})  # fmt: skip
    feed_forward = pd.DataFrame(ffn).set_index("feed-forward")
    feed_forward["params vs full"] = feed_forward["params per layer"] / feed_forward.loc["full", "params per layer"]
    data = pd.DataFrame(result.data)[["name", "rows", "labels", "dropped"]]
    return {
        "data": data,
        "main": main,
        "ablation": ablation_table(metrics),
        "cost": cost,
        "feed_forward": feed_forward,
    }
