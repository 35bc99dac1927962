"""Multimodal fusion study (arXiv 2501.08085): do text, audio and visual transformers fused by learned multi-head
attention beat early fusion (concatenation), late fusion (majority vote) and attention with uniform weights?

Here on CMU-MOSI utterance features (bc-LSTM release, released train/test split); CMU-MOSEI users name their own
MMSA pickle or SDK `.csd` folder. Every model is trained per label scheme, mode and seed with fixed
hyperparameters and no validation split, then scored on train and test; a ridge probe on the pooled features
gives the floor. The models live in `workbench.methods.fusion`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.data.multimodal import (
    LABEL_SCHEMES,
    MODALITIES,
    MultimodalCorpus,
    MultimodalSplit,
    standardize,
    utterance_view,
    video_view,
)
from workbench.data.sampling import split_indices
from workbench.methods.fusion import (
    AttentionFusion,
    LateFusion,
    ModalityTransformerConfig,
    SequenceDataset,
    build_model,
    fusion_loss,
    inverse_frequency_weights,
    modality_weights,
    predictions,
)
from workbench.methods.probe import sklearn_probe
from workbench.profiles import Param, Profiles
from workbench.registry import names
from workbench.results import StudyResult, Timings, describe_data
from workbench.runtime import set_seed, torch_threads
from workbench.saving import TrainedModel, model_name
from workbench.studies.tables import compare_arms, mean_std_text, summarise
from workbench.training import TrainConfig, classification_metrics, fit

STUDY = "multimodal_fusion"
DATASETS = ("mosi", "mosei_mmsa", "mosei_csd")
MODES = ("utterance", "context")
MODEL_FAMILIES = ("unimodal", "fusion")
DATA_SEED = 0  # seed of the row cap's stratified sample: the same rows for every training seed


def model_kinds() -> tuple[str, ...]:
    """Every model a run can train: the unimodal baselines (one per modality), then every registered fusion."""
    return (*MODALITIES, *names("fusion"))


PROFILES = Profiles(
    base={
        "seeds": Param([0, 1, 2, 3, 4], "training seeds, one training per model and seed (5+ for fusion verdicts)"),
        "dataset": Param(
            "mosi", "mosi (shared data), mosei_mmsa (MMSA pickle) or mosei_csd (SDK .csd folder)", choices=DATASETS
        ),
        "mosei_path": Param(
            None, "your CMU-MOSEI pickle or .csd folder; pickles are code: name only files you trust", kind="str"
        ),
        "max_rows_per_split": Param(
            None, "stratified cap on samples per split (seeded, binary label); None: all", kind="int", minimum=1
        ),
        "schemes": Param(
            ["3class", "binary", "7class"],
            "label schemes to run; the first is the headline (3class: the paper's metric)",
            choices=LABEL_SCHEMES,
        ),
        "band": Param(0.0, "3-class neutral band: |score| <= band is neutral", minimum=0),
        "modes": Param(
            ["utterance", "context"],
            "utterance: one sample per utterance; context: one per video (MOSI only)",
            choices=MODES,
        ),
        "kinds": Param(
            [*MODALITIES, "late", "early", "attention", "uniform"],
            "models: modality names (unimodal baselines) and fusions",
            choices=model_kinds,
        ),
        "hidden": Param(64, "hidden size of every modality transformer and classifier", minimum=1),
        "layers": Param(1, "transformer layers per modality", minimum=1),
        "heads": Param(4, "attention heads (transformers and attention fusion)", minimum=1),
        "feedforward": Param(128, "transformer feed-forward size", minimum=1),
        "dropout": Param(0.2, "dropout in transformers and classifiers", minimum=0),
        "max_steps": Param(50, "CMU-MOSEI: time steps kept per segment", minimum=1),
        "epochs_utterance": Param(15, "training epochs in utterance mode (fixed: no early stopping)", minimum=1),
        "epochs_context": Param(40, "training epochs in context mode (fixed: no early stopping)", minimum=1),
        "batch_utterance": Param(64, "batch size in utterance mode (utterances)", minimum=1),
        "batch_context": Param(8, "batch size in context mode (videos)", minimum=1),
        "lr": Param(1e-3, "Adam learning rate", minimum=0),
        "weighted_loss": Param(False, "inverse-frequency class weights in the cross-entropy"),
        "torch_threads": Param(
            1, "torch threads while training (None: torch's default)", kind="int", optional=True, minimum=1
        ),
        "save_models": Param(True, "save the first seed's model of every scheme, mode and kind under models/"),
    },
    # smoke: a plumbing check in seconds: 64 samples per split, 2 seeds (a seed spread, so the verdicts run), 1 epoch
    smoke={
        "seeds": [0, 1],
        "schemes": ["3class", "binary"],
        "max_rows_per_split": 64,
        "hidden": 16,
        "heads": 2,
        "feedforward": 32,
        "dropout": 0.1,
        "max_steps": 8,
        "epochs_utterance": 1,
        "epochs_context": 1,
        "batch_utterance": 16,
        "batch_context": 4,
    },
    # quick: 5 seeds for the fusion verdicts; 7-class left out so that 5 seeds x 2 schemes cost what 3 x 3 did
    quick={"schemes": ["3class", "binary"]},
    # The paper's data (CMU-MOSEI time steps, 3 classes first) and a larger transformer; the paper does not state
    # its sizes in the material we have, so those are our choice.
    paper={
        "dataset": "mosei_mmsa",
        "modes": ["utterance"],
        "hidden": 128,
        "layers": 2,
        "feedforward": 256,
        "dropout": 0.1,
        "epochs_utterance": 30,
        "epochs_context": 60,
        "lr": 1e-4,
        "torch_threads": None,
    },
    # `--dry-run`: CMU-MOSEI is not shipped, so the CMU-MOSI features present stand in for it; a few rows, one seed,
    # one epoch (and one step: `fit`); the transformer sizes stay the profile's own.
    dry_run={
        "dataset": "mosi",
        "max_rows_per_split": 32,
        "seeds": [0],
        "epochs_utterance": 1,
        "epochs_context": 1,
    },
)

# REFERENCES.md: arXiv 2501.08085 (CMU-MOSEI, 3 classes, test accuracy %), MMSA's table for two peers, and the
# MOSI ridge probe measured when the data was staged (binary test accuracy, fractions).
PAPER = {
    "mosei_3class_accuracy": {
        "text": 69.36,
        "audio": 65.84,
        "visual": 65.69,
        "late": 66.23,
        "early": 71.87,
        "attention": 72.39,
    },
    "mmsa_mosei_3class": {
        "MulT": {"accuracy": 67.04, "weighted_f1": 65.01},
        "MISA": {"accuracy": 67.63, "weighted_f1": 65.39},
    },
    "mosi_staging_probe_binary_accuracy": {"text": 0.739, "audio": 0.553, "visual": 0.525, "concat": 0.750},
    "mosi_test_majority_accuracy": 0.621,
}


# ------------------------------------------------------------------------------------------------------- data


def load(params: Mapping[str, object]) -> MultimodalCorpus:
    """The study's data: `mosi` from the data root, or CMU-MOSEI from `mosei_path` (MMSA pickle or `.csd` folder);
    each split capped at `max_rows_per_split` samples when set."""
    return cap_rows(_load_corpus(params), params.get("max_rows_per_split"))


def cap_rows(corpus: MultimodalCorpus, rows: int | None, seed: int = DATA_SEED) -> MultimodalCorpus:
    """At most `rows` samples per split: a seeded sample stratified on the binary label, in the original order (so
    a video's utterances stay contiguous); the corpus itself when `rows` is None."""
    if rows is None:
        return corpus
    splits = {}
    for name, split in corpus.splits.items():
        if len(split) <= rows:
            splits[name] = split
            continue
        binary = (split.frame["score"].to_numpy() >= 0).astype(int)
        keep = np.asarray(split_indices(len(split), binary, seed, train_size=int(rows))[0])
        frame = split.frame.iloc[keep].reset_index(drop=True)
        dropped = {**split.frame.attrs.get("dropped", {}), "subsampled away": len(split) - len(keep)}
        frame.attrs = {**split.frame.attrs, "dropped": dropped}
        features = {m: x[keep] for m, x in split.features.items()}
        splits[name] = MultimodalSplit(frame, features, {m: n[keep] for m, n in split.lengths.items()})
    return replace(corpus, splits=splits)


def _load_corpus(params: Mapping[str, object]) -> MultimodalCorpus:
    from workbench.data.multimodal import load_csd_directory, load_mmsa_pickle, load_mosi

    dataset, path = params["dataset"], params.get("mosei_path")
    band, max_steps = float(params["band"]), int(params["max_steps"])
    if dataset == "mosi":
        return load_mosi(band=band)
    if dataset not in ("mosei_mmsa", "mosei_csd"):
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    if not path:
        raise ValueError(
            f"dataset={dataset!r} needs mosei_path: CMU-MOSEI is not shipped here. Get it (MMSA pickle or the "
            "CMU-MultimodalSDK .csd files) and pass -p mosei_path=/path/to/it"
        )
    if dataset == "mosei_mmsa":
        return load_mmsa_pickle(path, band=band, max_steps=max_steps)
    return load_csd_directory(path, band=band, max_steps=max_steps)


def usable_modes(corpus: MultimodalCorpus, modes: Iterable[str]) -> list[str]:
    """The requested modes this corpus supports: the video-context mode needs one vector per utterance."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; expected {MODES}")
    has_steps = next(iter(corpus.splits.values())).has_time_axis
    return [m for m in modes if not (m == "context" and has_steps)]


def pooled_features(split: MultimodalSplit, modality: str) -> np.ndarray:
    """One vector per sample: the MOSI vector itself, or the mean over valid MOSEI time steps."""
    x = split.features[modality]
    if x.ndim == 2:
        return x
    mask = np.arange(x.shape[1])[None, :] < split.lengths[modality][:, None]
    return (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)


def linear_probe(corpus: MultimodalCorpus, alpha: float = 10.0, evaluate_on: str = "test") -> pd.DataFrame:
    """Ridge classifier on standardised pooled features per modality and on their concatenation (the staging
    baseline: alpha = 10), scored on train and on `evaluate_on`. One row per (probe, split)."""
    train, test = corpus.splits["train"], corpus.splits[evaluate_on]
    inputs = {m: (pooled_features(train, m), pooled_features(test, m)) for m in corpus.modalities}
    inputs["concat"] = tuple(np.concatenate([inputs[m][i] for m in corpus.modalities], 1) for i in (0, 1))
    labels = list(range(len(corpus.label_names)))
    rows = []
    for name, (x_train, x_test) in inputs.items():
        probe = sklearn_probe(x_train, train.frame["label"], kind="ridge", strength=alpha, standardise=True)
        for split, x, frame in (("train", x_train, train.frame), (evaluate_on, x_test, test.frame)):
            metrics = classification_metrics(frame["label"], probe.predict(x), labels=labels)
            rows.append({"model": name, "family": "linear probe", "split": split, **metrics})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------- the run


@dataclass
class MultimodalResult(StudyResult):
    """Metric rows of every model (family `unimodal` / `fusion`, per scheme, mode, seed and split), of the linear
    probes (`linear probe`) and of the mean attention weights (`modality weight`); plus the per-sample attention
    weights and test predictions the views need, the fusion verdicts, the corpus and the modes that ran."""

    weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdicts: pd.DataFrame = field(default_factory=pd.DataFrame)
    corpus: MultimodalCorpus | None = None
    modes: list[str] = field(default_factory=list)

    @property
    def models(self) -> pd.DataFrame:
        """The trained models' rows only (unimodal baselines and fusions)."""
        return model_rows(self.metrics)

    @property
    def probes(self) -> pd.DataFrame:
        """The linear probes' rows only."""
        return self.metrics[self.metrics["family"] == "linear probe"].dropna(axis=1, how="all")


def model_rows(metrics: pd.DataFrame, split: str | None = None) -> pd.DataFrame:
    """Rows of the trained models (optionally of one split), without the columns only other rows use."""
    rows = metrics[metrics["family"].isin(MODEL_FAMILIES)]
    if split is not None:
        rows = rows[rows["split"] == split]
    return rows.dropna(axis=1, how="all")


def transformer_config(params: Mapping[str, object]) -> ModalityTransformerConfig:
    """The modality-transformer sizes named by the parameters."""
    fields = ModalityTransformerConfig.__dataclass_fields__
    return ModalityTransformerConfig(**{k: params[k] for k in fields if k in params})


def train_config(params: Mapping[str, object], mode: str, seed: int) -> TrainConfig:
    """Fixed epochs, no dev set, gradient clipping at 1, one seed; on the GPU when there is one."""
    return TrainConfig(
        epochs=int(params[f"epochs_{mode}"]),
        lr=float(params["lr"]),
        batch_size=int(params[f"batch_{mode}"]),
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=seed,
        progress=False,
        device="cpu" if not torch.cuda.is_available() else None,
    )


def _views(corpus: MultimodalCorpus, mode: str) -> tuple[SequenceDataset, SequenceDataset]:
    train, test = standardize(corpus.splits["train"], corpus.splits["test"])
    make = {"utterance": utterance_view, "context": video_view}[mode]
    return SequenceDataset(make(train)), SequenceDataset(make(test))


def _score(model: nn.Module, data: SequenceDataset, num_classes: int) -> dict[str, float]:
    y_true, y_pred = predictions(model, data)
    return classification_metrics(y_true, y_pred, labels=list(range(num_classes)))


def train_and_evaluate(
    corpus: MultimodalCorpus,
    params: Mapping[str, object],
    modes: Sequence[str],
    progress: bool = True,
    keep: dict[str, TrainedModel] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train and score every model of `params["kinds"]` per scheme, mode and seed: (metric rows, per-sample
    attention weights on test, test predictions). A `keep` dict receives the first seed's models, to save.

    Late fusion is the vote of the unimodal baselines of the same seed when they come first in `kinds` (no extra
    training); otherwise it is trained as a whole. No validation split: one carved from MOSI train videos would
    overstate the text and visual features, whose extractors saw the train labels."""
    from tqdm.auto import tqdm

    config = transformer_config(params)
    kinds, seeds, schemes = list(params["kinds"]), list(params["seeds"]), list(params["schemes"])
    metric_rows, weight_frames, prediction_frames = [], [], []
    bar = tqdm(total=len(schemes) * len(modes) * len(seeds) * len(kinds), desc="models", disable=not progress)
    for scheme in schemes:
        labelled = corpus.relabel(scheme, float(params["band"]))
        num_classes = len(labelled.label_names)
        for mode in modes:
            train_data, test_data = _views(labelled, mode)
            class_weight = inverse_frequency_weights(train_data, num_classes) if params["weighted_loss"] else None
            for seed in seeds:
                trained: dict[str, nn.Module] = {}
                for kind in kinds:
                    start, cpu_start = time.perf_counter(), time.process_time()
                    set_seed(seed)
                    voters = {m: trained.get(m) for m in labelled.modalities}
                    if kind == "late" and all(voters.values()):
                        model, epochs = LateFusion.from_unimodal(voters), 0
                    else:
                        model = build_model(kind, labelled.feature_dims, num_classes, config, mode == "context")
                        history = fit(
                            model,
                            train_data,
                            None,
                            train_config(params, mode, seed),
                            loss_fn=partial(fusion_loss, class_weight=class_weight),
                            optimizer=torch.optim.Adam(model.parameters(), lr=float(params["lr"])),
                        )
                        epochs = len(history.epochs)
                    trained[kind] = model
                    if keep is not None and seed == seeds[0]:
                        if epochs == 0:  # late fusion assembled from the voters: rebuilt whole, same weights
                            whole = LateFusion(labelled.feature_dims, num_classes, config, mode == "context")
                            whole.load_state_dict(model.state_dict())
                            model = whole
                        rows = {"scheme": scheme, "mode": mode, "model": kind, "seed": seed}
                        keep[model_name(kind, scheme, mode)] = _model_to_save(model, test_data, rows, params)
                    key = {"scheme": scheme, "mode": mode, "model": kind, "seed": seed}
                    cost = {
                        "epochs": epochs,
                        "seconds": time.perf_counter() - start,
                        "cpu_seconds": time.process_time() - cpu_start,
                    }
                    family = "unimodal" if kind in labelled.modalities else "fusion"
                    for split, data in (("train", train_data), ("test", test_data)):
                        scores = _score(model, data, num_classes)
                        metric_rows.append({**key, "family": family, "split": split, **scores, **cost})
                    y_true, y_pred = predictions(model, test_data)
                    prediction_frames.append(pd.DataFrame({**key, "y_true": y_true, "y_pred": y_pred}))
                    if isinstance(model, AttentionFusion):
                        w = pd.DataFrame(modality_weights(model, test_data), columns=list(labelled.modalities))
                        w = (
                            w.rename_axis("sample")
                            .reset_index()
                            .melt("sample", var_name="modality", value_name="weight")
                        )
                        weight_frames.append(w.assign(**key))
                    bar.update()
    bar.close()
    return pd.DataFrame(metric_rows), _concat(weight_frames), _concat(prediction_frames)


def _model_to_save(
    model: nn.Module, test: SequenceDataset, rows: dict[str, object], params: Mapping[str, object]
) -> TrainedModel:
    """A trained model with the first test samples (features and masks per modality) as its test inputs."""
    inputs = ({m: x[:32] for m, x in test.features.items()}, {m: x[:32] for m, x in test.masks.items()})
    kind = rows["model"]
    what = f"the {kind} unimodal baseline" if kind in test.features else f"{kind} fusion"
    description = (
        f"{what.capitalize()} ({params['dataset']}, {rows['scheme']} labels, {rows['mode']} mode, seed "
        f"{rows['seed']}, the run's first). Inputs: (features, masks), one (B, L, d) float tensor and one (B, L) "
        "boolean mask per modality, standardised with the training statistics (`workbench.data.multimodal."
        "standardize`); the output's `logits` are the class scores."
    )
    return TrainedModel(model, inputs, rows, description)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def weight_summary(weights: pd.DataFrame) -> pd.DataFrame:
    """Mean attention weight per scheme, mode, model, seed and modality over the test samples (flat rows)."""
    if weights.empty:
        return pd.DataFrame()
    keys = ["scheme", "mode", "model", "seed", "modality"]
    return weights.groupby(keys, sort=False)["weight"].mean().reset_index()


def _flat_rows(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One metric table from frames with different columns; integer columns stay integers (None where absent)."""
    out = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    for column in ("seed", "epochs"):
        if column in out:
            out[column] = pd.Series([None if pd.isna(v) else int(v) for v in out[column]], dtype=object)
    return out


def run(params: Mapping[str, object], data: MultimodalCorpus | None = None, progress: bool = True) -> MultimodalResult:
    """Load the data (unless given), fit the linear probes, train and score every model, judge the fusions."""
    timings = Timings()
    with timings("load"):
        corpus = data if data is not None else load(params)
    modes = usable_modes(corpus, params["modes"])
    band = float(params["band"])
    with timings("linear_probe"):
        probes = pd.concat(
            [linear_probe(corpus.relabel(s, band)).assign(scheme=s) for s in params["schemes"]], ignore_index=True
        )
    start_cpu = time.process_time()
    with timings("train_and_evaluate"), torch_threads(params.get("torch_threads")):
        saved: dict[str, TrainedModel] | None = {} if params["save_models"] else None
        models, weights, test_predictions = train_and_evaluate(corpus, params, modes, progress, saved)
    timings["train_and_evaluate_cpu"] = time.process_time() - start_cpu

    weights_mean = weight_summary(weights)
    metrics = _flat_rows(
        [
            models,
            probes.assign(mode="pooled features", seed=None),
            weights_mean.assign(family="modality weight", split="test") if not weights_mean.empty else weights_mean,
        ]
    )
    verdicts = compare_fusions(metrics)
    verdict_notes = [
        f"{r.scheme}/{r.mode}: {r.verdict} (diff {r.effect:+.2f} points, spread {r.spread:.2f})"
        for r in verdicts.itertuples()
    ]
    return MultimodalResult(
        study=STUDY,
        params={**params, "transformer": asdict(transformer_config(params)), "modes_run": modes},
        metrics=metrics,
        data=[
            describe_data(f"{corpus.name} {split}", part.frame, time_steps=part.has_time_axis)
            for split, part in corpus.splits.items()
        ],
        timings=dict(timings),
        notes=[*notes(params), *corpus.notes, *verdict_notes],
        headline=headline(metrics, params["schemes"], modes),
        weights=weights,
        predictions=test_predictions,
        verdicts=verdicts,
        corpus=corpus,
        modes=modes,
        trained_models=saved or {},
    )


HEADLINE_SCHEMES = ("3class", "binary")  # the paper's metric first, binary beside it


def headline_schemes(schemes: Sequence[str]) -> list[str]:
    """The schemes a run's headline reports: 3-class (the paper's metric) then binary, those that ran; else the
    first scheme run."""
    chosen = [s for s in HEADLINE_SCHEMES if s in schemes]
    return chosen or list(schemes[:1])


def headline(metrics: pd.DataFrame, schemes: str | Sequence[str], modes: Sequence[str]) -> dict[str, float]:
    """Mean test accuracy of attention, early, late and uniform fusion per mode, and the concatenated probe's:
    3-class first (the paper's metric), binary beside it (`headline_schemes`). Keys `<scheme>_<mode>_<model>_accuracy`
    and `<scheme>_linear_probe_concat_accuracy` (the report index shows these)."""
    out: dict[str, float] = {}
    rows = model_rows(metrics, "test")
    for scheme in headline_schemes([schemes] if isinstance(schemes, str) else list(schemes)):
        summary = summarise(rows[rows["scheme"] == scheme], ["mode", "model"], ["accuracy"])
        summary = summary.set_index(["mode", "model"])
        for mode in modes:
            for model in ("attention", "early", "late", "uniform"):
                if (mode, model) in summary.index:
                    out[f"{scheme}_{mode}_{model}_accuracy"] = float(summary.loc[(mode, model), "accuracy_mean"])
        probe = metrics[
            (metrics["family"] == "linear probe")
            & (metrics["scheme"] == scheme)
            & (metrics["model"] == "concat")
            & (metrics["split"] == "test")
        ]
        if len(probe):
            out[f"{scheme}_linear_probe_concat_accuracy"] = float(probe["accuracy"].iloc[0])
    return out


def notes(params: Mapping[str, object]) -> list[str]:
    """What this run is and how it differs from the paper, derived from the parameters it used."""
    dataset, modes, kinds = params["dataset"], list(params["modes"]), list(params["kinds"])
    mosi = dataset == "mosi"
    path = params.get("mosei_path") or "(mosei_path not set)"
    source = {
        "mosi": "CMU-MOSI bc-LSTM utterance vectors (one vector per utterance, no time axis), released split",
        "mosei_mmsa": f"CMU-MOSEI time steps from the MMSA pickle {path}",
        "mosei_csd": f"CMU-MOSEI time steps from the SDK .csd folder {path}",
    }[dataset]
    run_modes = [m for m in modes if mosi or m != "context"]
    epochs = ", ".join(f"{params[f'epochs_{m}']} in {m} mode" for m in run_modes)
    out = []
    if params.get("dry_run"):
        out.append(
            "DRY RUN: capped rows, one optimisation step per model, random initial weights (this study loads no "
            "pretrained model or tokenizer): the profile's code path and model sizes are exercised, the numbers "
            "mean nothing"
        )
        if mosi:
            out.append(
                "stand-in data: the CMU-MOSI features present here stand in for the paper's CMU-MOSEI (not on this "
                "machine): one vector per utterance instead of time steps"
            )
    out.append(f"data: {source}; scored on the test split only, after fixed epochs ({epochs})")
    if params.get("max_rows_per_split"):
        out.append(
            f"at most {params['max_rows_per_split']} samples per split (seeded sample stratified on the binary label, "
            f"seed {DATA_SEED}): not the whole split"
        )
    if mosi:
        out.append(
            "no validation split: one carved from MOSI train videos would overstate text and visual, whose "
            "extractors saw the train labels (see the train/test gap)"
        )
        out.append(
            "the paper uses CMU-MOSEI with word-level time steps; this run uses other data, so compare the ordering "
            "of the methods, not the values"
        )
    else:
        out.append("no validation split: fixed epochs, as on MOSI, so that the two runs are trained alike")
        if "context" in modes:
            out.append("context mode skipped: CMU-MOSEI has time steps, so each segment is one sample (utterance mode)")
    if "3class" in params["schemes"]:
        neutral = "score exactly 0" if float(params["band"]) == 0 else f"|score| <= {params['band']}"
        out.append(f"3-class labels (the paper's scheme): neutral = {neutral}")
    else:
        out.append("no 3-class scheme in this run: the paper reports 3 classes, so no row compares like for like")
    shown = headline_schemes(list(params["schemes"]))
    out.append(
        f"headline: {' and '.join(f'{s} test accuracy' for s in shown)}"
        + (" (the paper's metric first, binary beside it)" if shown == list(HEADLINE_SCHEMES) else "")
        + f"; label schemes run: {', '.join(params['schemes'])}"
    )
    out.append(
        f"each modality transformer: {params['layers']} layer(s), hidden {params['hidden']}, {params['heads']} "
        f"heads, feed-forward {params['feedforward']}, dropout {params['dropout']} (the paper's sizes are not in the "
        "material we have: our choice)"
    )
    loss = "class-weighted (inverse frequency)" if params["weighted_loss"] else "unweighted"
    seeds = list(params["seeds"])
    out.append(f"Adam, lr {params['lr']}, {loss} cross-entropy, {len(seeds)} seed(s) {seeds}")
    if len(seeds) < 2:
        out.append("one seed: no seed spread, so the fusion comparisons give no verdict")
    elif len(seeds) < 5:
        out.append(f"only {len(seeds)} seeds: the seed spread behind the fusion verdicts is a rough estimate (use 5+)")
    rows = params.get("max_rows_per_split")
    if rows is not None and rows < 200 and not params.get("dry_run"):
        out.append(f"plumbing check only: at most {rows} samples per split, so the numbers and figures mean nothing")
    if "late" in kinds:
        voters = [m for m in MODALITIES if m in kinds and kinds.index(m) < kinds.index("late")]
        out.append(
            "late fusion = majority vote of the unimodal baselines of the same seed (no extra training)"
            if len(voters) == len(MODALITIES)
            else "late fusion trained as a whole (sum of the voters' losses): not every unimodal baseline runs before it"
        )
    out.append("hyperparameters were fixed a priori, not tuned on the test split")
    return out


# ------------------------------------------------------------------------------------------------------ tables


def compare_fusions(
    metrics: pd.DataFrame,
    better: str = "attention",
    than: Sequence[str] = ("early", "uniform"),
    metric: str = "accuracy",
) -> pd.DataFrame:
    """Is `better` ahead of each rival by more than the seed spread (the two seed stds added), in test `metric`
    points (x100)? Per scheme and mode: both means, the effect, the spread, paired per-seed gains, a verdict (none
    where an arm ran one seed only: its spread is unknown, not 0)."""
    rows = model_rows(metrics, "test")
    frames = []
    for rival in than:
        table = compare_arms(rows, "model", better, rival, metric, by=["scheme", "mode"])
        if table.empty:
            continue
        table = table.rename(columns={better: f"{metric}_model", rival: f"{metric}_rival"})
        table.insert(2, "model", better)
        table.insert(3, "rival", rival)
        # one seed has no spread (its std reads 0): no verdict rather than "beyond the spread" on any difference
        seeds = rows[rows["model"].isin([better, rival])].groupby(["scheme", "mode", "model"])["seed"].nunique()
        fewest = seeds.groupby(["scheme", "mode"]).min()
        single = [fewest.get((s, m), 0) < 2 for s, m in zip(table["scheme"], table["mode"])]
        table["verdict"] = table["verdict"].where(~np.array(single, dtype=bool), "one seed")
        table["verdict"] = [_verdict_text(v, better, rival) for v in table["verdict"]]
        frames.append(table)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    order = {key: i for i, key in enumerate(dict.fromkeys(zip(rows["scheme"], rows["mode"])))}
    rank = [order[(s, m)] for s, m in zip(out["scheme"], out["mode"])]
    return out.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)


def _verdict_text(verdict: str, better: str, rival: str) -> str:
    return {
        "better": f"{better} beats {rival} by more than the seed spread",
        "worse": f"{better} is worse than {rival} by more than the seed spread",
        "within spread": f"no difference beyond the seed spread ({better} vs {rival})",
        "one seed": f"one seed only: no seed spread to judge {better} vs {rival} against (no verdict)",
    }.get(verdict, f"{better} vs {rival}: {verdict}")


def train_test_gap(metrics: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean train and test `metric` per scheme, mode and model, and their difference (the overfit/leak gap)."""
    means = model_rows(metrics).pivot_table(
        index=["scheme", "mode", "model"], columns="split", values=metric, aggfunc="mean", sort=False
    )
    means["gap"] = means["train"] - means["test"]
    return means.reset_index()


def beside_paper(metrics: pd.DataFrame, scheme: str = "3class", beside: str | None = "binary") -> pd.DataFrame:
    """Our test accuracy (mean ± std over seeds, per mode) in `scheme` beside the paper's CMU-MOSEI 3-class accuracy,
    with MMSA's MulT and MISA as published peers, and our `beside` scheme's accuracy next to it (binary: the usual
    MOSI metric; the paper reports 3 classes only)."""
    rows = model_rows(metrics, "test")
    paper = {**PAPER["mosei_3class_accuracy"], **{k: v["accuracy"] for k, v in PAPER["mmsa_mosei_3class"].items()}}
    shown = [s for s in dict.fromkeys([scheme, beside]) if s is not None and (rows["scheme"] == s).any()]
    ours = {
        s: mean_std_text(rows[rows["scheme"] == s], ["model", "mode"], ["accuracy"])["accuracy"].unstack("mode")
        for s in shown
    }
    models = [m for s in shown for m in ours[s].index]
    index = pd.Index(list(dict.fromkeys([*PAPER["mosei_3class_accuracy"], *models, *paper])), name="model")
    out = pd.DataFrame(index=index)
    out["paper (MOSEI, 3-class)"] = [paper.get(m, np.nan) / 100 for m in index]
    for mode in dict.fromkeys(rows.loc[rows["scheme"].isin(shown), "mode"]):
        for s in shown:
            table = ours[s]
            have = mode in table.columns
            out[f"ours ({mode}, {s})"] = [table.loc[m, mode] if have and m in table.index else "" for m in index]
    return out.reset_index()


def probe_beside_staging(metrics: pd.DataFrame) -> pd.DataFrame:
    """Our binary ridge-probe test accuracy beside the one measured when MOSI was staged (same data, same probe)."""
    probes = metrics[(metrics["family"] == "linear probe") & (metrics["split"] == "test")]
    probes = probes[probes["scheme"] == "binary"].set_index("model")["accuracy"]
    staged = PAPER["mosi_staging_probe_binary_accuracy"]
    return pd.DataFrame(
        {
            "model": list(staged),
            "staged (MOSI binary)": list(staged.values()),
            "ours": [float(probes[m]) if m in probes.index else np.nan for m in staged],
        }
    )


def label_table(corpus: MultimodalCorpus, schemes: Iterable[str], band: float) -> pd.DataFrame:
    """Samples per label, per scheme and split."""
    return (
        pd.concat(
            [
                corpus.relabel(s, band).splits[split].frame["label_name"].value_counts().rename(f"{s} · {split}")
                for s in schemes
                for split in corpus.splits
            ],
            axis=1,
        )
        .fillna(0)
        .astype(int)
    )


def majority_accuracy(corpus: MultimodalCorpus, scheme: str, band: float) -> float:
    """Test accuracy of always predicting the most frequent test label."""
    return float(corpus.relabel(scheme, band).splits["test"].frame["label"].value_counts(normalize=True).max())


def tables(result: MultimodalResult) -> dict[str, pd.DataFrame]:
    """The tables the notebook shows, in order."""
    params, metrics = result.params, result.metrics
    schemes, band = list(params["schemes"]), float(params["band"])
    out: dict[str, pd.DataFrame] = {}
    if result.corpus is not None:
        out["labels"] = label_table(result.corpus, schemes, band)
        out["majority"] = pd.DataFrame(
            {"scheme": schemes, "majority_accuracy": [majority_accuracy(result.corpus, s, band) for s in schemes]}
        )
    out["linear_probe"] = result.probes.pivot_table(
        index=["scheme", "model"], columns="split", values=["accuracy", "macro_f1"], sort=False
    ).round(3)
    if params["dataset"] == "mosi" and "binary" in schemes:
        out["linear_probe_vs_staging"] = probe_beside_staging(metrics)
    out["test_scores"] = mean_std_text(
        model_rows(metrics, "test"), ["scheme", "mode", "model"], ["accuracy", "macro_f1", "weighted_f1"]
    )
    out["beside_paper"] = beside_paper(metrics, "3class" if "3class" in schemes else schemes[0])
    out["verdicts"] = result.verdicts.round(4)
    weights = metrics[metrics["family"] == "modality weight"]
    if len(weights):
        out["modality_weights"] = (
            weights[weights["model"] == "attention"]
            .pivot_table(index=["scheme", "mode"], columns="modality", values="weight", sort=False)
            .round(3)
        )
    out["train_test_gap"] = train_test_gap(metrics).round(3)
    return out
