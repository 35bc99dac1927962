"""The quickstart study: BESSTIE Google sentiment with a frozen encoder and a small trained head.

Train on the official train rows of the chosen varieties (texts that also occur in the evaluation rows removed),
evaluate on the official validation rows, which play the role of the held-out test set here. The head is the
shared linear probe (`workbench.methods.probe.train_probe`) on mean-pooled, cached sentence embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.data import BESSTIE_VARIETIES, load_besstie, remove_overlap
from workbench.data.besstie import BESSTIE_SOURCES, BESSTIE_TASKS
from workbench.data.sampling import stratified_sample
from workbench.encoders import embed_texts, encoder_name_problem, load_encoder
from workbench.methods.probe import EmbeddingClassifier, tensor_dataset, train_probe
from workbench.profiles import Param, Profiles
from workbench.results import StudyResult, Timings, describe_data
from workbench.saving import TrainedModel
from workbench.studies.besstie import PAPER as BESSTIE_PAPER
from workbench.training import History, TrainConfig, classification_metrics, predict

STUDY = "quickstart"
# The BESSTIE paper's fine-tuned BERT-Large, macro-F1 per task, source and variety (REFERENCES.md); the same
# numbers as the BESSTIE study's, which owns them.
PAPER = {"bert_large_macro_f1": BESSTIE_PAPER["bert_large_macro_f1"]}

PROFILES = Profiles(
    base={
        "seed": Param(0, "seed of the dev split, the head's initialisation and the batch order", minimum=0),
        "encoder": Param(
            "minilm",
            "the frozen encoder: 'minilm', 'tiny', or a hub id such as 'bert-base-uncased'",
            validate=encoder_name_problem,
        ),
        "max_length": Param(256, "tokens per review", minimum=1),
        "max_train_rows": Param(None, "cap on training rows (stratified, seeded; None: all)", kind="int", minimum=1),
        "max_test_rows": Param(None, "cap on held-out rows (stratified, seeded; None: all)", kind="int", minimum=1),
        "epochs": Param(60, "maximum training epochs of the head", minimum=1),
        "lr": Param(3e-3, "learning rate (AdamW)", minimum=0),
        "batch_size": Param(32, "training batch size", minimum=1),
        "patience": Param(8, "epochs without dev macro-F1 improvement before stopping", minimum=1),
        "hidden_dim": Param(
            None, "None: a linear head; an int adds a hidden layer of that size", kind="int", minimum=1
        ),
        "train_varieties": Param(["en-AU", "en-UK"], "varieties of the training rows", choices=BESSTIE_VARIETIES),
        "test_varieties": Param(["en-AU", "en-UK"], "varieties of the held-out rows", choices=BESSTIE_VARIETIES),
        "source": Param("Google", "BESSTIE source", choices=BESSTIE_SOURCES),
        "task": Param("Sentiment", "BESSTIE task", choices=BESSTIE_TASKS),
        "example_index": Param(0, "which held-out review the attention view shows", minimum=0),
        "save_models": Param(True, "save the trained head (Hugging Face form, model card) under the report's models/"),
    },
    smoke={"encoder": "tiny", "max_length": 64, "max_train_rows": 80, "epochs": 3},
    paper={"encoder": "bert-base-uncased", "max_length": 512, "lr": 1e-3},
    # `--dry-run`: the profile's encoder architecture (random weights) on a handful of rows, short texts, one step
    dry_run={"max_length": 64, "max_train_rows": 24, "max_test_rows": 16, "epochs": 1},
)


@dataclass
class QuickstartData:
    """Training rows (evaluation texts removed) and the held-out rows."""

    train: pd.DataFrame
    test: pd.DataFrame
    removed_overlap: int

    def describe(self) -> list[dict[str, object]]:
        return [
            describe_data("besstie-train", self.train, removed_overlap=self.removed_overlap),
            describe_data("besstie-valid (held out)", self.test),
        ]


@dataclass
class QuickstartResult(StudyResult):
    """What the notebook shows besides the metric rows: data, predictions, training history, the trained head."""

    train: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    predictions: np.ndarray | None = None
    history: History | None = None
    model: EmbeddingClassifier | None = None
    removed_overlap: int = 0

    @property
    def label_names(self) -> list[str]:
        return self.test.attrs["label_names"]


def load(params: Mapping[str, object]) -> QuickstartData:
    """Training rows of `train_varieties` (capped at `max_train_rows`, stratified) without any held-out text, and the
    held-out validation rows of `test_varieties` (capped at `max_test_rows`)."""
    task, source, seed = params["task"], params["source"], params["seed"]
    train = load_besstie(task, params["train_varieties"], source, "train", seed=seed)
    test = load_besstie(task, params["test_varieties"], source, "valid", seed=seed)
    train, removed = remove_overlap(train, test)  # against every held-out row, before any cap
    test = stratified_sample(test, params["max_test_rows"], seed)
    train = stratified_sample(train, params["max_train_rows"], seed)
    return QuickstartData(train, test, removed)


def notes(params: Mapping[str, object]) -> list[str]:
    """What this run is, derived from the parameters it used."""
    head = f"a head with one hidden layer of {params['hidden_dim']} units" if params["hidden_dim"] else "a linear head"
    out = []
    if params.get("dry_run"):
        out.append(
            f"DRY RUN: encoder {params['encoder']} has the paper architecture with random weights and MiniLM's "
            "tokenizer as a stand-in, rows are capped and the head takes one optimisation step: the numbers mean "
            "nothing; this run only checks that the paper's code path works."
        )
    if params["encoder"] == "tiny":
        out.append("Encoder 'tiny' is a small randomly initialised BERT: its scores and figures mean nothing.")
    out.append(
        f"Encoder {params['encoder']} used frozen: each review mean-pooled over its first {params['max_length']} "
        f"tokens and cached; {head} trained on the embeddings (AdamW lr {params['lr']:g}, batch "
        f"{params['batch_size']}, up to {params['epochs']} epochs, early stopping on the dev macro-F1 with patience "
        f"{params['patience']}; the dev split comes from the training rows)."
    )
    out.append(
        f"Held-out rows: BESSTIE's official {params['source']} {params['task']} validation split of "
        f"{', '.join(params['test_varieties'])}; training on {', '.join(params['train_varieties'])}; training texts "
        "found among the held-out rows were removed."
    )
    if "en-IN" in [*params["train_varieties"], *params["test_varieties"]] and params["source"] == "Google":
        out.append("en-IN Google has no official train split: a seeded split of its validation rows stands in.")
    if params["max_train_rows"] is not None:
        out.append(f"Training rows capped at {params['max_train_rows']} (stratified, seeded).")
    if params["max_test_rows"] is not None:
        out.append(f"Held-out rows capped at {params['max_test_rows']} (stratified, seeded).")
    if PAPER["bert_large_macro_f1"].get(params["task"], {}).get(params["source"]):
        out.append("The BESSTIE paper fine-tunes BERT-Large end to end (its scores are in the paper table).")
    out.append(f"Seed {params['seed']} (one run).")
    return out


def run(params: Mapping[str, object], data: QuickstartData | None = None, progress: bool = True) -> QuickstartResult:
    """Load (unless given), encode (cached), train the head with early stopping on a dev split of the training rows,
    predict the held-out rows, and score them per variety and over all."""
    timings = Timings()
    task, source, seed = params["task"], params["source"], int(params["seed"])
    if data is None:
        with timings("load"):
            data = load(params)
    train, test = data.train, data.test
    with timings("encode"):
        encoder = load_encoder(str(params["encoder"]))
        x_train = embed_texts(train["text"].tolist(), encoder, max_length=int(params["max_length"]), progress=progress)
        x_test = embed_texts(test["text"].tolist(), encoder, max_length=int(params["max_length"]), progress=progress)
    num_classes = len(train.attrs["label_names"])
    config = TrainConfig(
        epochs=int(params["epochs"]),
        lr=float(params["lr"]),
        batch_size=int(params["batch_size"]),
        patience=int(params["patience"]),
        seed=seed,
        progress=progress,
    )
    with timings("train"):
        torch.manual_seed(seed)
        model, history = train_probe(x_train, train["label"].to_numpy(), num_classes, config, params["hidden_dim"])
    with timings("predict"):
        predictions = predict(model, tensor_dataset(x_test, test["label"].to_numpy())).argmax(-1)
    rows = []
    groups = [("all", np.ones(len(test), bool))] + [
        (v, (test["variety"] == v).to_numpy()) for v in params["test_varieties"]
    ]
    for variety, mask in groups:
        scores = classification_metrics(
            test["label"].to_numpy()[mask], predictions[mask], labels=list(range(num_classes))
        )
        rows.append(
            {
                "task": task,
                "source": source,
                "train_varieties": "+".join(params["train_varieties"]),
                "test_variety": variety,
                "encoder": params["encoder"],
                "classifier": "linear-probe",
                "seed": seed,
                "n_test": int(mask.sum()),
                **scores,
            }
        )
    metrics = pd.DataFrame(rows)
    return QuickstartResult(
        study=STUDY,
        params=dict(params),
        metrics=metrics,
        data=data.describe(),
        timings=dict(timings),
        notes=notes(params),
        headline={"macro_f1": rows[0]["macro_f1"], "accuracy": rows[0]["accuracy"]},
        train=train,
        test=test,
        predictions=predictions,
        history=history,
        model=model,
        removed_overlap=data.removed_overlap,
        trained_models=_trained_models(params, model, x_test),
    )


def _trained_models(params: Mapping[str, object], model: EmbeddingClassifier, x_test: np.ndarray) -> dict:
    """The head to save (when `save_models` is on), with the first held-out embeddings as its test inputs."""
    if not params["save_models"]:
        return {}
    description = (
        f"The quickstart head: {'an MLP' if params['hidden_dim'] else 'a linear layer'} on the frozen encoder "
        f"{params['encoder']}'s mean-pooled embeddings ({params['max_length']} tokens per review), trained on BESSTIE "
        f"{params['source']} {params['task']} ({', '.join(params['train_varieties'])}). The encoder is not saved: it "
        "is pretrained and frozen; `workbench.encoders.embed_texts` with it gives this head's inputs."
    )
    inputs = (torch.as_tensor(np.asarray(x_test, dtype=np.float32)),)
    return {"linear-probe": TrainedModel(model, inputs, rows={"classifier": "linear-probe"}, description=description)}


def paper_comparison(result: QuickstartResult) -> pd.DataFrame:
    """Macro-F1 per held-out variety beside the BESSTIE paper's fine-tuned BERT-Large on the same task and source."""
    paper = PAPER["bert_large_macro_f1"].get(result.params["task"], {}).get(result.params["source"], {})
    table = result.metrics.set_index("test_variety")[["macro_f1"]].rename(columns={"macro_f1": "ours"})
    table["paper BERT-Large"] = [paper.get(v, np.nan) for v in table.index]
    return table


def tables(result: QuickstartResult) -> dict[str, pd.DataFrame]:
    """The tables the notebook shows: scores per held-out variety, and ours beside the paper."""
    columns = ["test_variety", "n_test", "macro_f1", "weighted_f1", "accuracy", "precision", "recall"]
    return {"metrics": result.metrics[columns].set_index("test_variety"), "paper": paper_comparison(result)}
