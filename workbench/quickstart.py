"""The quickstart study: BESSTIE Google sentiment with a frozen encoder and a small trained head.

Train on the official train rows of the chosen varieties (texts that also occur in the evaluation rows removed),
evaluate on the official validation rows, which play the role of the held-out test set here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from workbench.data import load_besstie, remove_overlap
from workbench.encoders import embed_texts, load_encoder
from workbench.probe import EmbeddingClassifier, tensor_dataset, train_probe
from workbench.results import Timings, describe_data
from workbench.training import History, TrainConfig, classification_metrics, predict

STUDY = "quickstart"
_SETUP = dict(train_varieties=["en-AU", "en-UK"], test_varieties=["en-AU", "en-UK"], source="Google", task="Sentiment")
DEFAULTS: dict[str, dict[str, object]] = {
    "smoke": dict(_SETUP, encoder="tiny", max_length=64, max_train_rows=80, epochs=3, lr=3e-3, hidden_dim=None),
    "quick": dict(_SETUP, encoder="minilm", max_length=256, max_train_rows=None, epochs=60, lr=3e-3, hidden_dim=None),
    "paper": dict(
        _SETUP, encoder="bert-base-uncased", max_length=512, max_train_rows=None, epochs=60, lr=1e-3, hidden_dim=None
    ),
}


@dataclass
class QuickstartRun:
    """Everything the notebook shows: data, predictions, per-variety metric rows, training history, timings."""

    train: pd.DataFrame
    test: pd.DataFrame
    predictions: np.ndarray
    metrics: list[dict[str, object]]
    history: History
    model: EmbeddingClassifier
    removed_overlap: int
    timings: Timings = field(default_factory=Timings)

    @property
    def label_names(self) -> list[str]:
        return self.test.attrs["label_names"]

    def data_description(self) -> list[dict[str, object]]:
        return [
            describe_data("besstie-train", self.train, removed_overlap=self.removed_overlap),
            describe_data("besstie-valid (held out)", self.test),
        ]


def run_quickstart(params: dict[str, object], seed: int = 0) -> QuickstartRun:
    """Load, encode (cached), train the head with early stopping on a dev split of train, predict the held-out rows."""
    timings = Timings()
    task, source = params["task"], params["source"]
    with timings("load"):
        train = load_besstie(task, params["train_varieties"], source, "train", seed=seed)
        test = load_besstie(task, params["test_varieties"], source, "valid", seed=seed)
        train, removed = remove_overlap(train, test)
        if params["max_train_rows"]:
            train = train.sample(n=min(len(train), int(params["max_train_rows"])), random_state=seed)
            train = train.sort_index().reset_index(drop=True)
    with timings("encode"):
        encoder = load_encoder(str(params["encoder"]))
        x_train = embed_texts(train["text"].tolist(), encoder, max_length=int(params["max_length"]))
        x_test = embed_texts(test["text"].tolist(), encoder, max_length=int(params["max_length"]))
    num_classes = len(train.attrs["label_names"])
    config = TrainConfig(epochs=int(params["epochs"]), lr=float(params["lr"]), batch_size=32, patience=8, seed=seed)
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
    return QuickstartRun(train, test, predictions, rows, history, model, removed, timings)
