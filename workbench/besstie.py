"""The BESSTIE study: classification heads, CrossTalk multitask with PCGrad, cross-variety and domain-shift matrices,
and the per-batch training time of each head.

Every experiment trains one head variant (`HEAD_VARIANTS`) on one training set and tests it on BESSTIE's
validation rows of each variety: the cross-variety matrices train on one variety (Google sentiment, Reddit
sentiment, Reddit sarcasm), the domain-shift matrices train on Twitter or Bicodemix. Every matrix cell becomes one
flat metric row. Heads see the encoder's token states: cached once from a frozen encoder (`finetune=False`,
the `quick` profile) or computed by an encoder fine-tuned end to end with the head (`finetune=True`, `paper`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from workbench.data import (
    BESSTIE_VARIETIES,
    load_besstie,
    load_bicodemix,
    load_twitter_entity,
    remove_overlap,
)
from workbench.data.besstie import load_besstie_multitask
from workbench.encoders import Encoder, encode_tokens, load_encoder
from workbench.heads import SequenceClassifier, build_head, collate_token_states, token_state_dataset
from workbench.methods.pcgrad import fit_multitask, pcgrad_backward, predict_multitask
from workbench.results import Timings, describe_data
from workbench.runtime import set_seed, torch_threads
from workbench.training import TrainConfig, class_weights, classification_metrics, fit, predict

STUDY = "besstie"
CROSS_VARIETY_TASKS = (("Sentiment", "Google"), ("Sentiment", "Reddit"), ("Sarcasm", "Reddit"))
SINGLE_TASK_HEADS = ("linear", "cnn", "bilstm")
MULTITASK_HEADS = ("crosstalk", "crosstalk+pcgrad")
HEAD_VARIANTS = SINGLE_TASK_HEADS + MULTITASK_HEADS
DOMAIN_SOURCES = ("Twitter", "Bicodemix")

_COMMON = dict(
    heads=list(HEAD_VARIANTS),
    varieties=list(BESSTIE_VARIETIES),
    domain_sources=list(DOMAIN_SOURCES),
    twitter_min_words=40,
    dropout=0.1,
    kernel_size=3,
    cross_talk_layers=1,
    weighted_loss=True,
    # the dev splits are small (95-180 Google rows): their macro-F1 moves in steps of a point and picked
    # under-trained first epochs; the mean dev loss is a smooth early-stopping signal
    monitor="loss",
    seeded_eval_fraction=0.4,
    timing_batch_size=8,
    max_test_rows=None,
    torch_threads=1,
)
DEFAULTS: dict[str, dict[str, object]] = {
    "smoke": {
        **_COMMON,
        "encoder": "tiny",
        "state_layers": 2,
        "linear_pooling": "cls",
        "finetune": False,
        "max_length": 32,
        "max_train_rows": 30,
        "max_domain_rows": 40,
        "dev_fraction": 0.2,
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "weight_decay": 0.01,
        "patience": 2,
        "channels": 16,
        "lstm_hidden": 16,
        "task_dim": 16,
        "domain_heads": ["linear", "crosstalk+pcgrad"],
        "twitter_min_words": 5,
        "timing_batches": 1,
        "timing_end_to_end": True,
    },
    "quick": {
        **_COMMON,
        "encoder": "minilm",
        "state_layers": 4,  # last four layers vs final: Linear 0.885 / 0.897 vs 0.874 / 0.859 (en-AU / en-UK Google)
        "linear_pooling": "mean",
        "finetune": False,
        "max_length": 128,
        "max_train_rows": None,
        "max_domain_rows": 2000,
        "dev_fraction": 0.1,
        "epochs": 20,
        "batch_size": 32,
        "lr": 3e-3,
        "weight_decay": 0.01,
        "patience": 3,
        "channels": 64,
        "lstm_hidden": 32,
        "task_dim": 32,
        "domain_heads": ["linear", "cnn", "crosstalk", "crosstalk+pcgrad"],
        "timing_batches": 5,
        "timing_end_to_end": True,
    },
    "paper": {
        **_COMMON,
        "encoder": "bert-base-uncased",
        "state_layers": 1,
        "linear_pooling": "cls",
        "finetune": True,
        "max_length": 128,
        "max_train_rows": None,
        "max_domain_rows": None,
        "dev_fraction": 0.1,
        "epochs": 30,
        "batch_size": 8,
        "lr": 2e-5,
        "weight_decay": 0.0,
        "patience": 3,
        "channels": 256,
        "lstm_hidden": 256,
        "task_dim": 128,
        "domain_heads": ["linear", "cnn", "bilstm", "crosstalk", "crosstalk+pcgrad"],
        "timing_batches": 50,
        "timing_end_to_end": True,
        "torch_threads": None,
    },
}
PROFILE_DIFFERENCES = (
    "quick vs paper: frozen all-MiniLM-L6-v2 (6 layers, hidden 384) instead of fine-tuning BERT end to end; "
    "token states (the mean of the last four layers, not the final layer) cached once and heads trained on them "
    "(AdamW lr 3e-3, batch 32, up to 20 epochs, early stopping on the dev loss with patience 3) instead of Adam "
    "lr 2e-5, batch 8, up to 30 epochs; smaller heads (64 conv channels, 32 LSTM units, 32-d CrossTalk spaces); "
    "the Linear head reads the mean of the token states instead of [CLS] (the frozen sentence-transformer's [CLS] "
    "state is untrained: about 0.75 vs 0.83 macro-F1 on Google sentiment); Twitter and Bicodemix training sets "
    "subsampled to 2,000 rows (stratified, seeded); domain shift without the BiLSTM head; one seed. Both use "
    "max_length 128."
)


# ---------------------------------------------------------------------------------------------- data


@dataclass
class StudyData:
    """Every frame the study trains or tests on, keyed by what it is, plus how many training rows were removed
    because their text is an evaluation text."""

    test: dict[tuple[str, str, str], pd.DataFrame]  # (task, source, variety) -> BESSTIE validation rows
    single_train: dict[tuple[str, str, str], pd.DataFrame]  # (task, source, variety) -> training rows
    multitask_train: dict[tuple[str, str], pd.DataFrame]  # (source, variety) -> rows with `label` and `sarcasm`
    domain_train: dict[str, pd.DataFrame]  # "Twitter", "Bicodemix" (sentiment), "Bicodemix-sarcasm", ...
    removed: dict[str, int] = field(default_factory=dict)

    def texts(self) -> list[str]:
        frames = [*self.test.values(), *self.single_train.values(), *self.multitask_train.values()]
        frames += list(self.domain_train.values())
        return sorted({text for frame in frames for text in frame["text"]})

    def describe(self) -> list[dict[str, object]]:
        """`describe_data` entries for results.json, one per frame."""
        out = [describe_data(f"test/{t}/{s}/{v}", f) for (t, s, v), f in self.test.items()]
        out += [describe_data(f"train/{t}/{s}/{v}", f) for (t, s, v), f in self.single_train.items()]
        out += [describe_data(f"train/multitask/{s}/{v}", f) for (s, v), f in self.multitask_train.items()]
        out += [describe_data(f"train/domain/{name}", f) for name, f in self.domain_train.items()]
        return out


def subsample(frame: pd.DataFrame, rows: int | None, seed: int, column: str = "label") -> pd.DataFrame:
    """At most `rows` rows, stratified on `column` and seeded; the frame itself when it is already small enough."""
    if rows is None or len(frame) <= rows:
        return frame
    try:
        keep, _ = train_test_split(range(len(frame)), train_size=rows, random_state=seed, stratify=frame[column])
    except ValueError:  # a class too small to stratify
        keep, _ = train_test_split(range(len(frame)), train_size=rows, random_state=seed)
    out = frame.iloc[sorted(keep)].reset_index(drop=True)
    out.attrs = {**frame.attrs, "dropped": {**frame.attrs.get("dropped", {}), "subsampled away": len(frame) - rows}}
    return out


def dev_split(
    frame: pd.DataFrame, fraction: float, seed: int, column: str = "label"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded (train, dev) split of a training frame, stratified on `column` where every class allows it; the dev
    rows pick the epoch to keep, so the BESSTIE validation rows are only ever used for testing."""
    n_dev = max(2, int(round(fraction * len(frame))))
    try:
        train_idx, dev_idx = train_test_split(
            range(len(frame)), test_size=n_dev, random_state=seed, stratify=frame[column]
        )
    except ValueError:
        train_idx, dev_idx = train_test_split(range(len(frame)), test_size=n_dev, random_state=seed)
    return frame.iloc[sorted(train_idx)].reset_index(drop=True), frame.iloc[sorted(dev_idx)].reset_index(drop=True)


def _bicodemix_frames(seed: int, rows: int | None) -> dict[str, pd.DataFrame]:
    """Bicodemix training frames, all drawn from one seeded subsample of `rows` comments (so each text is encoded
    once). Its sentiment is 3-class while BESSTIE's is binary: neutral rows are dropped (counted) and
    negative/positive map to BESSTIE's 0/1; sarcasm (notsarc/sarc) maps to 0/1 as is."""
    sarcasm = subsample(load_bicodemix("sarcasm", "all"), rows, seed)
    sentiment = load_bicodemix("sentiment", "all")
    sentiment = sentiment[sentiment["id"].isin(set(sarcasm["id"]))]
    binary = sentiment[sentiment["label_name"] != "neutral"].reset_index(drop=True)
    binary["label"] = (binary["label_name"] == "positive").astype("int64")
    binary.attrs = {
        **sentiment.attrs,
        "label_names": ["negative", "positive"],
        "dropped": {
            **sarcasm.attrs["dropped"],
            "no majority sentiment": len(sarcasm) - len(sentiment),
            "neutral (BESSTIE is binary)": int((sentiment["label_name"] == "neutral").sum()),
        },
    }
    both = binary.copy()
    both["sarcasm"] = sarcasm.set_index("id")["label"].loc[both["id"]].to_numpy().astype("int64")
    both.attrs = binary.attrs
    return {"Bicodemix": binary, "Bicodemix-sarcasm": sarcasm, "Bicodemix-multitask": both}


def load_study_data(params: dict, seed: int = 0) -> StudyData:
    """Load every frame the study needs and remove from each training set the texts of every evaluation set."""
    varieties = list(params["varieties"])
    frac = params["seeded_eval_fraction"]
    test = {
        (task, source, var): subsample(
            load_besstie(task, var, source, "valid", seed=seed, seeded_eval_fraction=frac),
            params["max_test_rows"],
            seed,
        )
        for task, source in CROSS_VARIETY_TASKS
        for var in varieties
    }
    evaluation = list(test.values())
    removed: dict[str, int] = {}

    def clean(name: str, frame: pd.DataFrame, rows: int | None) -> pd.DataFrame:
        frame, removed[name] = remove_overlap(frame, *evaluation)
        return subsample(frame, rows, seed)

    single = {
        (task, source, var): clean(
            f"train/{task}/{source}/{var}",
            load_besstie(task, var, source, "train", seed=seed, seeded_eval_fraction=frac),
            params["max_train_rows"],
        )
        for task, source in CROSS_VARIETY_TASKS
        for var in varieties
    }
    multitask = {
        (source, var): clean(
            f"train/multitask/{source}/{var}",
            load_besstie_multitask(var, source, "train", seed=seed, seeded_eval_fraction=frac),
            params["max_train_rows"],
        )
        for source in sorted({s for _, s in CROSS_VARIETY_TASKS})
        for var in varieties
    }
    domain: dict[str, pd.DataFrame] = {}
    if "Twitter" in params["domain_sources"]:
        twitter = load_twitter_entity("train", ("Negative", "Positive"), min_words=params["twitter_min_words"])
        unique = twitter.drop_duplicates("text").reset_index(drop=True)  # the file repeats some tweets verbatim
        unique.attrs = {
            **twitter.attrs,
            "dropped": {**twitter.attrs["dropped"], "duplicate text": len(twitter) - len(unique)},
        }
        twitter = unique
        domain["Twitter"] = clean("train/domain/Twitter", twitter, params["max_domain_rows"])
    if "Bicodemix" in params["domain_sources"]:
        for name, frame in _bicodemix_frames(seed, params["max_domain_rows"]).items():
            domain[name] = clean(f"train/domain/{name}", frame, None)
    return StudyData(test=test, single_train=single, multitask_train=multitask, domain_train=domain, removed=removed)


# ---------------------------------------------------------------------------------------------- inputs


class CachedStates:
    """Frozen encoder: every text's token states are computed once (and cached on disk), heads train on them."""

    finetune = False

    def __init__(self, encoder: Encoder, texts: Sequence[str], max_length: int, progress: bool = True, layers: int = 1):
        self.encoder, self.max_length, self.layers = encoder, max_length, layers
        tokens = encode_tokens(list(texts), encoder, max_length=max_length, progress=progress, layers=layers)
        self.states, self.mask = tokens.states, tokens.mask
        self.index = {text: i for i, text in enumerate(texts)}
        self.collate = collate_token_states

    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    def dataset(self, frame: pd.DataFrame, label_columns: Sequence[str]) -> Dataset:
        rows = np.array([self.index[text] for text in frame["text"]], dtype=np.int64)
        return token_state_dataset(self.states[rows], self.mask[rows], *(frame[c].to_numpy() for c in label_columns))

    def model(self, head: nn.Module) -> nn.Module:
        return head


def collate_token_ids(items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack (input_ids, attention_mask, *labels) and cut the padding columns no text in the batch uses."""
    ids, mask, *labels = (torch.stack(column) for column in zip(*items))
    width = max(int(mask.sum(1).max()), 1)
    return (ids[:, :width], mask[:, :width], *labels)


class FineTunedEncoder:
    """End-to-end fine-tuning: every head gets its own copy of the pretrained encoder (`SequenceClassifier`)."""

    finetune = True

    def __init__(self, encoder: Encoder, max_length: int, layers: int = 1):
        self.encoder, self.max_length, self.layers = encoder, max_length, layers
        self.collate = collate_token_ids
        self._initial = {k: v.detach().cpu().clone() for k, v in encoder.model.state_dict().items()}

    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    def dataset(self, frame: pd.DataFrame, label_columns: Sequence[str]) -> Dataset:
        batch = self.encoder.tokenizer(
            list(frame["text"]), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        labels = [torch.tensor(frame[c].to_numpy(dtype=np.int64)) for c in label_columns]
        return TensorDataset(batch["input_ids"], batch["attention_mask"], *labels)

    def model(self, head: nn.Module) -> nn.Module:
        encoder = copy.deepcopy(self.encoder.model)
        encoder.load_state_dict(self._initial)
        encoder.train()
        return SequenceClassifier(encoder, head, self.layers)


def make_inputs(params: dict, texts: Sequence[str], progress: bool = True) -> CachedStates | FineTunedEncoder:
    """The inputs of the heads for this profile: cached frozen states, or an encoder to fine-tune.

    A hub encoder (paper profile) fails offline with `EncoderUnavailable`, which names the offline default.
    """
    encoder = load_encoder(params["encoder"])
    if params["finetune"]:
        return FineTunedEncoder(encoder, params["max_length"], params["state_layers"])
    return CachedStates(encoder, texts, params["max_length"], progress, params["state_layers"])


# ---------------------------------------------------------------------------------------------- training


def head_options(name: str, params: dict) -> dict[str, object]:
    """Constructor options of a head variant from the study parameters."""
    base = name.split("+")[0]
    options: dict[str, object] = {"dropout": params["dropout"]}
    if base in ("cnn", "crosstalk"):
        options.update(channels=params["channels"], kernel_size=params["kernel_size"])
    if base == "linear":
        options["pooling"] = params["linear_pooling"]
    if base == "bilstm":
        options["lstm_hidden"] = params["lstm_hidden"]
    if base == "crosstalk":
        options.update(task_dim=params["task_dim"], layers=params["cross_talk_layers"])
    return options


def train_config(params: dict, seed: int, progress: bool = False) -> TrainConfig:
    return TrainConfig(
        epochs=params["epochs"],
        lr=params["lr"],
        batch_size=params["batch_size"],
        weight_decay=params["weight_decay"],
        patience=params["patience"],
        seed=seed,
        weighted_loss=params["weighted_loss"],
        monitor=params["monitor"],
        progress=progress,
    )


@dataclass
class TrainedHead:
    """A trained head variant and what to read its predictions with."""

    variant: str
    model: nn.Module
    best_epoch: int
    train_rows: int
    history: pd.DataFrame

    @property
    def multitask(self) -> bool:
        return self.variant in MULTITASK_HEADS

    def predict(self, inputs, frame: pd.DataFrame, task: str = "Sentiment") -> np.ndarray:
        """Predicted labels for `frame` (for multitask heads: from the sentiment or the sarcasm output)."""
        if self.multitask:
            data = inputs.dataset(frame, ["label", "label"])
            logits = predict_multitask(self.model, data, 2, collate_fn=inputs.collate)[0 if task == "Sentiment" else 1]
        else:
            logits = predict(self.model, inputs.dataset(frame, ["label"]), collate_fn=inputs.collate)
        return logits.argmax(-1)


def train_head(
    variant: str, inputs, frame: pd.DataFrame, params: dict, seed: int, label_column: str = "label"
) -> TrainedHead:
    """Train one head variant on `frame` (multitask variants need `label` and `sarcasm` columns), keeping the
    epoch with the best macro-F1 on a seeded dev split of `frame`."""
    set_seed(seed)
    train, dev = dev_split(frame, params["dev_fraction"], seed, label_column)
    base, pcgrad = variant.split("+")[0], variant.endswith("+pcgrad")
    head = build_head(base, inputs.hidden_size, 2, **head_options(variant, params))
    model = inputs.model(head)
    config = train_config(params, seed)
    if variant in MULTITASK_HEADS:
        columns = ["label", "sarcasm"]
        history = fit_multitask(
            model,
            inputs.dataset(train, columns),
            inputs.dataset(dev, columns),
            config,
            pcgrad=pcgrad,
            collate_fn=inputs.collate,
            task_names=("sentiment", "sarcasm"),
        )
    else:
        history = fit(
            model,
            inputs.dataset(train, [label_column]),
            inputs.dataset(dev, [label_column]),
            config,
            collate_fn=inputs.collate,
            num_classes=2,
        )
    return TrainedHead(variant, model, history.best_epoch, len(train), history.frame())


def _cell(
    trained: TrainedHead, inputs, data: StudyData, task: str, source: str, test_variety: str, train_variety: str, **keys
) -> dict[str, object]:
    """One matrix cell as a metric row: `trained` scored on BESSTIE's `task`/`source`/`test_variety` test rows.
    `seeded_split` marks cells that touch the seeded en-IN Google split (in training or in testing)."""
    test = data.test[task, source, test_variety]
    predicted = trained.predict(inputs, test, task)
    scores = classification_metrics(test["label"].to_numpy(), predicted, labels=[0, 1])
    return {
        **keys,
        "source": source,
        "train_variety": train_variety,
        "test_variety": test_variety,
        "in_variety": train_variety == test_variety,
        "seeded_split": source == "Google" and "en-IN" in (train_variety, test_variety),
        "task": task,
        "head": trained.variant,
        "macro_f1": scores["macro_f1"],
        "accuracy": scores["accuracy"],
        "train_rows": trained.train_rows,
        "test_rows": len(test),
        "best_epoch": trained.best_epoch,
    }


def _progress(items: list, desc: str, progress: bool) -> Iterable:
    return tqdm(items, desc=desc, disable=not progress)


def run_cross_variety(
    data: StudyData, inputs, params: dict, seed: int = 0, progress: bool = True
) -> list[dict[str, object]]:
    """Train each head variant on each variety and test on every variety: one metric row per matrix cell.

    Single-task heads train per task; a CrossTalk variant trains once per (source, variety) on rows with both
    labels and fills the sentiment matrix of that source and, for Reddit, the sarcasm matrix too.
    """
    varieties = list(params["varieties"])
    jobs: list[tuple[str, str, str | None, str]] = []  # (variant, source, task or None for multitask, variety)
    for variant in params["heads"]:
        if variant in MULTITASK_HEADS:
            jobs += [(variant, source, None, var) for source in ("Google", "Reddit") for var in varieties]
        else:
            jobs += [(variant, source, task, var) for task, source in CROSS_VARIETY_TASKS for var in varieties]
    rows = []
    for variant, source, task, train_var in _progress(jobs, "cross-variety", progress):
        if task is None:
            trained = train_head(variant, inputs, data.multitask_train[source, train_var], params, seed)
            tasks = [t for t, s in CROSS_VARIETY_TASKS if s == source]
        else:
            trained = train_head(variant, inputs, data.single_train[task, source, train_var], params, seed)
            tasks = [task]
        common = dict(experiment="cross_variety", train_source=source, seed=seed)
        rows += [_cell(trained, inputs, data, t, source, v, train_var, **common) for t in tasks for v in varieties]
    return rows


def run_domain_shift(
    data: StudyData, inputs, params: dict, seed: int = 0, progress: bool = True
) -> list[dict[str, object]]:
    """Train on Twitter (sentiment) and Bicodemix (sentiment, sarcasm, and both for CrossTalk) and test, without
    adaptation, on every BESSTIE variety and source: sentiment on Google and Reddit, sarcasm on Reddit."""
    varieties = list(params["varieties"])
    jobs: list[tuple[str, str, str]] = []  # (variant, training frame name, task or "both")
    for variant in params["domain_heads"]:
        if variant in MULTITASK_HEADS:
            if "Bicodemix-multitask" in data.domain_train:
                jobs.append((variant, "Bicodemix-multitask", "both"))
            continue
        if "Twitter" in data.domain_train:
            jobs.append((variant, "Twitter", "Sentiment"))
        if "Bicodemix" in data.domain_train:
            jobs += [(variant, "Bicodemix", "Sentiment"), (variant, "Bicodemix-sarcasm", "Sarcasm")]
    rows = []
    for variant, name, task in _progress(jobs, "domain shift", progress):
        trained = train_head(variant, inputs, data.domain_train[name], params, seed)
        tasks = ["Sentiment", "Sarcasm"] if task == "both" else [task]
        origin = name.split("-")[0]  # Twitter, Bicodemix
        common = dict(experiment="domain_shift", train_source=origin, seed=seed)
        slices = [(t, s, v) for t, s in CROSS_VARIETY_TASKS if t in tasks for v in varieties]
        rows += [_cell(trained, inputs, data, t, s, v, origin, **common) for t, s, v in slices]
    return rows


# ---------------------------------------------------------------------------------------------- timing


def _time_steps(step: Callable[[tuple], None], batches: list[tuple], warmup: int = 1) -> float:
    for batch in batches[:warmup]:
        step(batch)
    start = time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
    return (time.perf_counter() - start) / max(len(batches) - warmup, 1)


def seconds_per_batch(
    variant: str, inputs, frame: pd.DataFrame, params: dict, batches: int, batch_size: int = 8, seed: int = 0
) -> float:
    """Average wall seconds of one training step (forward, backward, optimizer) of a head variant at `batch_size`,
    over `batches` batches of `frame` after one warm-up batch. Multitask variants need `sarcasm` labels."""
    set_seed(seed)
    multitask = variant in MULTITASK_HEADS
    columns = ["label", "sarcasm"] if multitask else ["label"]
    head = build_head(variant.split("+")[0], inputs.hidden_size, 2, **head_options(variant, params))
    model = inputs.model(head)
    model.train()
    params_ = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params_, lr=params["lr"])
    data = inputs.dataset(frame.iloc[: (batches + 1) * batch_size], columns)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=inputs.collate)
    weights = [class_weights(frame[c].to_numpy(), 2) for c in columns]
    criteria = [nn.CrossEntropyLoss(weight=w) for w in weights]
    generator = torch.Generator().manual_seed(seed)

    def step(batch: tuple) -> None:
        n = len(columns)
        outputs = model(*batch[:-n])
        outputs = outputs if multitask else (outputs,)
        losses = [c(o, y) for c, o, y in zip(criteria, outputs, batch[-n:])]
        optimizer.zero_grad()
        if variant.endswith("+pcgrad"):
            pcgrad_backward(losses, params_, generator)
        else:
            torch.stack(losses).sum().backward()
        optimizer.step()

    return _time_steps(step, list(loader))


def run_timing(data: StudyData, inputs, params: dict, seed: int = 0, progress: bool = True) -> list[dict[str, object]]:
    """Seconds per training batch (batch `timing_batch_size`) for every head variant, all in this run, on en-UK
    (else the first variety) Google training rows: heads alone on cached states, and (when
    `timing_end_to_end`) with the encoder fine-tuned, which is what the study's Table I measures."""
    variety = "en-UK" if ("Google", "en-UK") in data.multitask_train else params["varieties"][0]
    frame = data.multitask_train["Google", variety]
    modes = [("fine-tune encoder + head", inputs)] if inputs.finetune else [("head on cached states", inputs)]
    if not inputs.finetune and params["timing_end_to_end"]:
        modes.append(("fine-tune encoder + head", FineTunedEncoder(inputs.encoder, inputs.max_length, inputs.layers)))
    rows = []
    jobs = [(mode, source, v) for mode, source in modes for v in params["heads"]]
    for mode, source, variant in _progress(jobs, "timing", progress):
        seconds = seconds_per_batch(
            variant, source, frame, params, params["timing_batches"], params["timing_batch_size"], seed
        )
        rows.append(
            {
                "experiment": "timing",
                "head": variant,
                "mode": mode,
                "encoder": inputs.encoder.name,
                "seconds_per_batch": seconds,
                "batch_size": params["timing_batch_size"],
                "batches": params["timing_batches"],
                "train_variety": variety,
                "source": "Google",
                "seed": seed,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------- whole study


@dataclass
class StudyRun:
    """Everything one run of the study produced: metric rows, data descriptions, step timings."""

    metrics: pd.DataFrame
    data: list[dict[str, object]]
    timings: Timings
    removed: dict[str, int]


def run_study(params: dict, seeds: Sequence[int] = (0,), progress: bool = True) -> StudyRun:
    """Load data, prepare the heads' inputs, and run cross-variety, domain shift and timing for every seed."""
    with torch_threads(params["torch_threads"]):
        return _run_study(params, seeds, progress)


def _run_study(params: dict, seeds: Sequence[int], progress: bool) -> StudyRun:
    timings, rows, described, removed = Timings(), [], [], {}
    for seed in seeds:
        with timings("load data"):
            data = load_study_data(params, seed)
        with timings("encode (token states)"):
            inputs = make_inputs(params, data.texts(), progress)
        with timings("cross-variety"):
            rows += run_cross_variety(data, inputs, params, seed, progress)
        with timings("domain shift"):
            rows += run_domain_shift(data, inputs, params, seed, progress)
        with timings("timing table"):
            rows += run_timing(data, inputs, params, seed, progress)
        if not described:
            described, removed = data.describe(), dict(data.removed)
    return StudyRun(metrics=pd.DataFrame(rows), data=described, timings=timings, removed=removed)


def cross_variety_matrix(
    metrics: pd.DataFrame, task: str, source: str, head: str, value: str = "macro_f1"
) -> pd.DataFrame:
    """Train variety (rows) x test variety (columns) of one task, source and head, averaged over seeds."""
    rows = metrics[
        (metrics["experiment"] == "cross_variety")
        & (metrics["task"] == task)
        & (metrics["source"] == source)
        & (metrics["head"] == head)
    ]
    return rows.pivot_table(index="train_variety", columns="test_variety", values=value, aggfunc="mean")


def domain_shift_matrix(metrics: pd.DataFrame, task: str, head: str, value: str = "macro_f1") -> pd.DataFrame:
    """Training set (rows) x BESSTIE test slice `variety/source` (columns) of one task and head."""
    rows = metrics[(metrics["experiment"] == "domain_shift") & (metrics["task"] == task) & (metrics["head"] == head)]
    rows = rows.assign(test=rows["test_variety"] + " " + rows["source"])
    return rows.pivot_table(index="train_variety", columns="test", values=value, aggfunc="mean")


def timing_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Seconds per training batch: head (rows) x mode (columns)."""
    rows = metrics[metrics["experiment"] == "timing"]
    return rows.pivot_table(index="head", columns="mode", values="seconds_per_batch", aggfunc="mean")


# BESSTIE paper, BERT-Large, macro-F1 per variety (REFERENCES.md, from the authors' Results/ metric.csv files).
PAPER_BERT_LARGE = {
    ("Sentiment", "Google"): {"en-AU": 0.935, "en-IN": 0.790, "en-UK": 0.926},
    ("Sentiment", "Reddit"): {"en-AU": 0.813, "en-IN": 0.731, "en-UK": 0.846},
    ("Sarcasm", "Reddit"): {"en-AU": 0.627, "en-IN": 0.564, "en-UK": 0.621},
}
# The figurative-language study's Table I: seconds per training batch (batch 8, T4 GPU, BERT-base, Google sentiment).
PAPER_SECONDS_PER_BATCH = {"linear": 0.280, "cnn": 0.312, "bilstm": 0.383}


def paper_comparison(metrics: pd.DataFrame) -> pd.DataFrame:
    """In-variety macro-F1 of every head beside the BESSTIE paper's BERT-Large, per task, source and variety."""
    rows = metrics[(metrics["experiment"] == "cross_variety") & metrics["in_variety"].astype(bool)]
    table = rows.pivot_table(
        index=["task", "source", "test_variety"], columns="head", values="macro_f1", aggfunc="mean"
    )
    table.insert(0, "paper BERT-Large", [PAPER_BERT_LARGE.get((t, s), {}).get(v, np.nan) for t, s, v in table.index])
    return table


def headline(metrics: pd.DataFrame) -> dict[str, float]:
    """The few numbers a report index shows: in-variety Linear-head macro-F1 on Google sentiment, the mean
    in-variety macro-F1 per head over all three tasks."""
    out: dict[str, float] = {}
    cv = metrics[(metrics["experiment"] == "cross_variety") & metrics["in_variety"].astype(bool)]
    for var in ("en-AU", "en-UK"):
        cell = cv[
            (cv["head"] == "linear")
            & (cv["task"] == "Sentiment")
            & (cv["source"] == "Google")
            & (cv["test_variety"] == var)
        ]
        if len(cell):
            out[f"google_sentiment_{var}_linear_macro_f1"] = float(cell["macro_f1"].mean())
    for head, value in cv.groupby("head")["macro_f1"].mean().items():
        out[f"mean_in_variety_macro_f1_{head}"] = float(value)
    return out


__all__ = [
    "CROSS_VARIETY_TASKS",
    "DEFAULTS",
    "HEAD_VARIANTS",
    "PAPER_BERT_LARGE",
    "PAPER_SECONDS_PER_BATCH",
    "PROFILE_DIFFERENCES",
    "STUDY",
    "StudyData",
    "StudyRun",
    "cross_variety_matrix",
    "domain_shift_matrix",
    "headline",
    "load_study_data",
    "make_inputs",
    "paper_comparison",
    "run_cross_variety",
    "run_domain_shift",
    "run_study",
    "run_timing",
    "seconds_per_batch",
    "timing_table",
    "train_head",
]
