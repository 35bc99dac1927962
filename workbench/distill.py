"""Comet: hybrid knowledge distillation with attention matching (AfroXLMR-Comet, arXiv 2502.18020).

A frozen teacher fine-tuned for sentiment teaches a compact student of the same architecture family:

    loss = alpha * KL(p_t || p_s) * T^2 + (1 - alpha) * MSE(P(A_s), A_t),   p = softmax(z / T)

where A is one layer's attention averaged over heads (final layer by default), flattened, and P a learnable map
from the student's to the teacher's attention space. Only the student and P learn.

KL direction: the issue writes KL(softmax(z_s/T) || softmax(z_t/T)); the usual implementations (Hinton et al.,
DistilBERT, TextBrewer) compute `kl_div(log_softmax(z_s/T), softmax(z_t/T))`, which is KL(p_t || p_s) = the
cross-entropy to the teacher's soft targets minus a constant. `kd` in `LOSSES` is that usual direction;
`kd_reverse` is the literal reading (mode-seeking), available as `DistillConfig(kd="kd_reverse")`.

Two stages, as the paper: (1) task-agnostic distillation on unlabelled tweets of every AfriSenti language (labels
dropped); the KD term there uses the teacher's sentiment-head logits on those tweets (the teacher is one
multilingual model, so its logits exist for every tweet); (2) per-language fine-tuning on labelled AfriSenti, with
weighted cross-entropy plus the same distillation loss (`stage2="ce+distill"`) or cross-entropy alone (`"ce"`).

Projection variants (`PROJECTIONS`): `faithful` is the paper's dense (L^2 x L^2) linear map (268M parameters at
L=128, so only for short sequences); `identity` is valid because student and teacher share the tokenizer, so both
maps are L x L over the same tokens; `low_rank` is identity plus a rank-r correction (2 L^2 r parameters). The
learnable variants start at the identity, so all three give the same signal at step 0.

Student initialisation (`init`): `pca` (default when the hidden sizes differ) sets the word, position and type
embeddings to the teacher's, projected on the top principal components of the teacher's word embeddings (one
linear map for all three, so their sum is projected consistently); `teacher` (same hidden size) copies the
embeddings and evenly spaced teacher layers (DistilBERT-style); `random` keeps the config's initialisation.
Transformer layers of a narrower student are random.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from torch import nn
from torch.utils.data import TensorDataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from workbench.data import AFRISENTI_LABELS, afrisenti_languages, concat_frames, load_afrisenti, remove_overlap
from workbench.encoders import OFFLINE_DEFAULT, TINY_CONFIG, EncoderUnavailable, minilm_path
from workbench.runtime import set_seed
from workbench.training import TrainConfig, class_weights, classification_metrics, fit, predict

STUDY = "comet"

# ---------------------------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------------------------

_COMMON = dict(
    temperatures=[1.0, 1.5, 2.0, 3.0, 4.0],
    alphas=[0.3, 0.5, 0.7],
    temperature=2.0,
    alpha=0.5,
    kd="kd",
    attention_layer="final",
    projection="identity",
    projection_rank=16,
    stage2="ce+distill",
    student_init="auto",
    batch_size=32,
    teacher_freeze_embeddings=True,
    torch_threads=1,  # a busy shared CPU runs small models far faster on one thread than on two
    measure_memory=True,
)

DEFAULTS: dict[str, dict[str, object]] = {
    "smoke": dict(
        _COMMON,
        teacher="tiny",
        languages=None,  # every language with training rows in the data, up to `max_languages`
        max_languages=3,
        max_length=16,
        student_layers=1,
        student_hidden=16,
        student_heads=2,
        extra_student_sizes=[[1, 8, 2]],
        train_rows=24,
        dev_rows=12,
        test_rows=16,
        corpus_rows=16,
        teacher_epochs=1,
        teacher_lr=1e-3,
        stage1_epochs=1,
        stage1_lr=1e-3,
        stage2_epochs=1,
        stage2_lr=1e-3,
        patience=1,
        bench_rounds=2,
        measure_memory=False,
    ),
    "quick": dict(
        _COMMON,
        teacher=OFFLINE_DEFAULT,
        languages=["hau", "ibo", "kin", "pcm", "yor"],
        max_languages=5,
        max_length=32,
        student_layers=2,
        student_hidden=128,
        student_heads=4,
        extra_student_sizes=[[1, 64, 2]],
        train_rows=600,
        dev_rows=200,
        test_rows=500,
        corpus_rows=200,
        teacher_epochs=2,
        teacher_lr=1e-4,
        stage1_epochs=1,
        stage1_lr=1e-3,
        stage2_epochs=3,
        stage2_lr=5e-4,
        patience=2,
        bench_rounds=5,
    ),
    "paper": dict(
        _COMMON,
        teacher="Davlan/afro-xlmr-large",
        languages=["amh", "arq", "ary", "hau", "ibo", "kin", "pcm", "por", "swa", "tso", "twi", "yor"],
        max_languages=12,
        max_length=128,
        projection="faithful",
        student_layers=6,
        student_hidden=256,
        student_heads=8,
        extra_student_sizes=[],
        train_rows=None,
        dev_rows=None,
        test_rows=None,
        corpus_rows=None,
        teacher_epochs=3,
        teacher_lr=1e-5,
        stage1_epochs=3,
        stage1_lr=5e-4,
        stage2_epochs=5,
        stage2_lr=5e-5,
        patience=2,
        teacher_freeze_embeddings=False,
        torch_threads=None,
        bench_rounds=20,
    ),
}

# ---------------------------------------------------------------------------------------------------------------
# Distillation as data
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudentSpec:
    """The student's size: layers, hidden width, heads (feed-forward width: the teacher's ratio by default)."""

    num_layers: int
    hidden_size: int
    num_heads: int
    intermediate_size: int | None = None

    @property
    def label(self) -> str:
        return f"{self.num_layers}L-{self.hidden_size}H-{self.num_heads}A"


@dataclass(frozen=True)
class DistillConfig:
    """One distillation recipe: which loss terms with which weights, which attention layer, which projection."""

    name: str
    student: StudentSpec
    temperature: float = 2.0
    alpha: float = 0.5
    kd: str = "kd"
    attention_layer: str = "final"
    projection: str = "identity"
    projection_rank: int = 16
    stage2: str = "ce+distill"
    init: str = "auto"

    def row(self) -> dict[str, object]:
        """Flat description for a metric row."""
        out = {k: v for k, v in asdict(self).items() if k != "student"}
        out.update(student=self.student.label, student_layers=self.student.num_layers)
        out.update(student_hidden=self.student.hidden_size, student_heads=self.student.num_heads)
        return out


def base_config(params: Mapping[str, object]) -> DistillConfig:
    """The default recipe of a profile (T=2, alpha=0.5, final layer, identity projection unless overridden)."""
    spec = StudentSpec(int(params["student_layers"]), int(params["student_hidden"]), int(params["student_heads"]))
    return DistillConfig(
        name="hybrid",
        student=spec,
        temperature=float(params["temperature"]),
        alpha=float(params["alpha"]),
        kd=str(params["kd"]),
        attention_layer=str(params["attention_layer"]),
        projection=str(params["projection"]),
        projection_rank=int(params["projection_rank"]),
        stage2=str(params["stage2"]),
        init=str(params["student_init"]),
    )


def sweep_configs(params: Mapping[str, object]) -> list[tuple[str, DistillConfig]]:
    """(experiment, config) pairs: ablation, temperature, alpha, attention layer, projection and student size.

    The default recipe appears once (experiment `ablation`, name `hybrid`) and is the reference point of every
    other sweep, which changes one knob at a time.
    """
    base = base_config(params)
    out = [
        ("ablation", base),
        ("ablation", replace(base, name="kd_only", alpha=1.0)),
        ("ablation", replace(base, name="attention_only", alpha=0.0)),
    ]
    out += [("temperature", replace(base, name=f"T={t:g}", temperature=t)) for t in params["temperatures"]]
    out += [("alpha", replace(base, name=f"alpha={a:g}", alpha=a)) for a in params["alphas"]]
    other_layer = "upper_middle" if base.attention_layer == "final" else "final"
    out.append(("attention_layer", replace(base, name=f"layer={other_layer}", attention_layer=other_layer)))
    for kind in PROJECTIONS:
        if kind != base.projection:
            out.append(("projection", replace(base, name=f"projection={kind}", projection=kind)))
    for layers, hidden, heads in params["extra_student_sizes"]:
        spec = StudentSpec(int(layers), int(hidden), int(heads))
        out.append(("student_size", replace(base, name=f"student={spec.label}", student=spec)))
    unique: dict[DistillConfig, tuple[str, DistillConfig]] = {}
    for experiment, config in out:  # the default T / alpha / projection would repeat the base recipe
        key = replace(config, name="")
        if key not in unique:
            unique[key] = (experiment, config)
    return list(unique.values())


# ---------------------------------------------------------------------------------------------------------------
# Losses (name -> function)
# ---------------------------------------------------------------------------------------------------------------


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p_t || p_s) * T^2 on temperature-softened logits, mean over the batch (the usual KD direction)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * temperature**2


def kd_reverse_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p_s || p_t) * T^2: the literal reading of the issue's formula (mode-seeking)."""
    return kd_loss(teacher_logits, student_logits, temperature)


def attention_mse(projected: torch.Tensor, teacher_map: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the (query, key) pairs where both tokens are real (not padding)."""
    pairs = (mask[:, :, None] & mask[:, None, :]).to(projected.dtype)
    return ((projected - teacher_map) ** 2 * pairs).sum() / pairs.sum().clamp(min=1)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "kd": kd_loss,
    "kd_reverse": kd_reverse_loss,
    "attention_mse": attention_mse,
    "ce": F.cross_entropy,
}


def project_map(projection: nn.Module, student_map: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """P(A_s): zero the padding pairs, flatten each L x L map, project, reshape back."""
    pairs = mask[:, :, None] & mask[:, None, :]
    flat = (student_map * pairs).flatten(1)
    length = student_map.shape[-1]
    return projection(flat).view(-1, length, length)


def hybrid_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_map: torch.Tensor | None,
    teacher_map: torch.Tensor | None,
    mask: torch.Tensor,
    projection: nn.Module,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    kd: str = "kd",
) -> tuple[torch.Tensor, dict[str, float]]:
    """alpha * KD + (1 - alpha) * attention MSE; a term with weight 0 is not computed. Returns (loss, parts)."""
    total = student_logits.new_zeros(())
    parts: dict[str, float] = {}
    if alpha > 0:
        kd_term = LOSSES[kd](student_logits, teacher_logits, temperature)
        total = total + alpha * kd_term
        parts["kd"] = kd_term.item()
    if alpha < 1:
        if student_map is None or teacher_map is None:
            raise ValueError("alpha < 1 needs the student's and the teacher's attention maps")
        att_term = LOSSES["attention_mse"](project_map(projection, student_map, mask), teacher_map, mask)
        total = total + (1 - alpha) * att_term
        parts["attention"] = att_term.item()
    return total, parts


# ---------------------------------------------------------------------------------------------------------------
# Projections P: student attention space -> teacher attention space
# ---------------------------------------------------------------------------------------------------------------


class IdentityProjection(nn.Module):
    """P = I: valid when both maps are L x L over the same tokens (shared tokenizer); no parameters."""

    def __init__(self, seq_len: int, rank: int = 0):
        super().__init__()
        self.seq_len = seq_len

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return flat


class FaithfulProjection(nn.Module):
    """The paper's dense linear map on the flattened map: (L^2)^2 + L^2 parameters, initialised at the identity."""

    def __init__(self, seq_len: int, rank: int = 0):
        super().__init__()
        self.seq_len = seq_len
        size = seq_len * seq_len
        self.linear = nn.Linear(size, size)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(size))
            self.linear.bias.zero_()

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return self.linear(flat)


class LowRankProjection(nn.Module):
    """x + U V x with rank r (2 L^2 r parameters); U starts at zero, so P starts at the identity."""

    def __init__(self, seq_len: int, rank: int = 16):
        super().__init__()
        self.seq_len = seq_len
        size = seq_len * seq_len
        self.down = nn.Linear(size, rank, bias=False)
        self.up = nn.Linear(rank, size, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return flat + self.up(self.down(flat))


PROJECTIONS: dict[str, type[nn.Module]] = {
    "identity": IdentityProjection,
    "faithful": FaithfulProjection,
    "low_rank": LowRankProjection,
}


def make_projection(kind: str, seq_len: int, rank: int = 16) -> nn.Module:
    """A projection by name (`identity`, `faithful`, `low_rank`) for L = `seq_len`."""
    if kind not in PROJECTIONS:
        raise ValueError(f"unknown projection {kind!r}; known: {sorted(PROJECTIONS)}")
    return PROJECTIONS[kind](seq_len, rank)


def projection_parameters(kind: str, seq_len: int, rank: int = 16) -> int:
    """Parameter count of a projection variant, computed from its shape (no allocation: usable at L=128)."""
    size = seq_len * seq_len
    return {"identity": 0, "faithful": size * size + size, "low_rank": 2 * size * rank}[kind]


# ---------------------------------------------------------------------------------------------------------------
# Teacher and student models
# ---------------------------------------------------------------------------------------------------------------


def load_teacher(name: str, num_labels: int = 3, seed: int = 0) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and a sequence classifier on top of a pretrained encoder (`minilm`, `tiny`, folder or hub id).

    Eager attention, so that `output_attentions=True` returns the maps. Offline, a hub id that is not cached
    raises `EncoderUnavailable` naming the offline default.
    """
    if name == "tiny":
        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        config = BertConfig(vocab_size=tokenizer.vocab_size, num_labels=num_labels, **TINY_CONFIG)
        config._attn_implementation = "eager"
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return tokenizer, BertForSequenceClassification(config).eval()
    source = minilm_path() if name == OFFLINE_DEFAULT else name
    kwargs = dict(num_labels=num_labels, attn_implementation="eager")
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the new classifier head
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(source, local_files_only=True, **kwargs)
        except OSError:
            try:
                tokenizer = AutoTokenizer.from_pretrained(source)
                model = AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
            except OSError as err:
                raise EncoderUnavailable(
                    f"could not load teacher {name!r}: not a local folder, not in the Hugging Face cache, and the "
                    f"Hub could not be reached (offline?). The `paper` profile needs it; the offline default is "
                    f"{OFFLINE_DEFAULT!r} (profile `quick`). Cause: {err.__class__.__name__}"
                ) from None
    return tokenizer, model.eval()


def build_student(teacher: PreTrainedModel, spec: StudentSpec, init: str = "auto", seed: int = 0) -> PreTrainedModel:
    """A student of the teacher's family (same config class, vocabulary and labels), smaller per `spec`.

    Eager attention (the distillation loss reads the maps). See the module docstring for `init`.
    """
    if spec.hidden_size % spec.num_heads:
        raise ValueError(f"hidden size {spec.hidden_size} is not divisible by {spec.num_heads} heads")
    settings = teacher.config.to_dict()
    for key in ("architectures", "_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        settings.pop(key, None)
    settings.update(
        num_hidden_layers=spec.num_layers,
        hidden_size=spec.hidden_size,
        num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size or _scaled_intermediate(teacher.config, spec.hidden_size),
    )
    config = type(teacher.config).from_dict(settings)
    config._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        student = type(teacher)(config)
    same_width = all(getattr(config, k) == getattr(teacher.config, k) for k in ("hidden_size", "intermediate_size"))
    mode = ("teacher" if same_width else "pca") if init == "auto" else init
    if mode == "pca":
        _init_embeddings_pca(student, teacher, seed)
    elif mode == "teacher":
        if not same_width:
            raise ValueError("init='teacher' needs the teacher's hidden and feed-forward sizes")
        _init_from_teacher_layers(student, teacher)
    elif mode != "random":
        raise ValueError(f"unknown student init {init!r}; known: auto, pca, teacher, random")
    return student


def _scaled_intermediate(config, hidden_size: int) -> int:
    """The teacher's feed-forward / hidden ratio applied to the student's width (4x for BERT and XLM-R)."""
    return max(1, round(config.intermediate_size * hidden_size / config.hidden_size))


_PCA_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _embedding_pca(weights: torch.Tensor, components: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(basis (hidden, components), mean) of the word-embedding matrix; memoised, since every recipe reuses it."""
    key = (weights.data_ptr(), tuple(weights.shape), float(weights[:8].detach().sum()), components, seed)
    if key not in _PCA_CACHE:
        words = weights.detach().float().cpu().numpy()
        pca = PCA(n_components=components, svd_solver="randomized", random_state=seed).fit(words)
        _PCA_CACHE[key] = (
            torch.from_numpy(pca.components_.T.astype(np.float32)),
            torch.from_numpy(pca.mean_.astype(np.float32)),
        )
    return _PCA_CACHE[key]


def _init_embeddings_pca(student: PreTrainedModel, teacher: PreTrainedModel, seed: int) -> None:
    source, target = teacher.base_model.embeddings, student.base_model.embeddings
    basis, mean = _embedding_pca(source.word_embeddings.weight, student.config.hidden_size, seed)
    with torch.no_grad():
        target.word_embeddings.weight.copy_((source.word_embeddings.weight.float().cpu() - mean) @ basis)
        for name in ("position_embeddings", "token_type_embeddings"):
            if hasattr(source, name) and hasattr(target, name):
                src, dst = getattr(source, name).weight, getattr(target, name).weight
                rows = min(len(src), len(dst))
                dst[:rows].copy_(src[:rows].float().cpu() @ basis)


def _init_from_teacher_layers(student: PreTrainedModel, teacher: PreTrainedModel) -> None:
    student.base_model.embeddings.load_state_dict(teacher.base_model.embeddings.state_dict())
    source, target = teacher.base_model.encoder.layer, student.base_model.encoder.layer
    picks = np.linspace(0, len(source) - 1, len(target)).round().astype(int)
    for dst, src in zip(target, picks):
        dst.load_state_dict(source[int(src)].state_dict())


def attention_layer_index(num_layers: int, choice: str) -> int:
    """`final` -> the last layer; `upper_middle` -> the layer at two thirds of the depth (0-based)."""
    if choice == "final":
        return num_layers - 1
    if choice == "upper_middle":
        return max(0, round(2 * num_layers / 3) - 1)
    raise ValueError(f"attention layer must be 'final' or 'upper_middle', not {choice!r}")


class StudentWithProjection(nn.Module):
    """The student and its projection P trained together; `forward` returns the student's logits only."""

    def __init__(self, student: PreTrainedModel, projection: nn.Module, attention_layer: int):
        super().__init__()
        self.student = student
        self.projection = projection
        self.attention_layer = attention_layer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.student(input_ids=input_ids, attention_mask=attention_mask).logits

    def logits_and_map(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the chosen layer's attention, averaged over heads: (B, L, L)."""
        out = self.student(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        return out.logits, out.attentions[self.attention_layer].mean(1)


# ---------------------------------------------------------------------------------------------------------------
# Teacher targets (computed once: the teacher is frozen)
# ---------------------------------------------------------------------------------------------------------------


def tokenize_fixed(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Token ids and mask padded to exactly `max_length` (the dense projection needs a fixed L)."""
    batch = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


@dataclass
class TeacherTargets:
    """Inputs and the frozen teacher's outputs for a list of texts: logits and head-mean maps per layer choice."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    logits: torch.Tensor
    maps: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.input_ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> TeacherTargets:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return TeacherTargets(
            self.input_ids[idx], self.attention_mask[idx], self.logits[idx], {k: v[idx] for k, v in self.maps.items()}
        )

    def dataset(self, layer_choice: str, labels: Sequence[int] | None = None) -> TensorDataset:
        """(ids, mask, teacher logits, teacher map, labels); labels are -1 (unused) for unlabelled text."""
        y = (
            torch.full((len(self),), -1, dtype=torch.long)
            if labels is None
            else torch.tensor(np.asarray(labels), dtype=torch.long)
        )
        return TensorDataset(self.input_ids, self.attention_mask, self.logits, self.maps[layer_choice], y)


@torch.no_grad()
def teacher_targets(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
) -> TeacherTargets:
    """Run the frozen teacher once over `texts`; keep logits and the final / upper-middle head-mean maps (fp16)."""
    teacher.eval()
    device = next(teacher.parameters()).device
    enc = tokenize_fixed(tokenizer, texts, max_length)
    layers = {c: attention_layer_index(teacher.config.num_hidden_layers, c) for c in ("final", "upper_middle")}
    logits, maps = [], {c: [] for c in layers}
    for start in range(0, len(texts), batch_size):
        ids = enc["input_ids"][start : start + batch_size].to(device)
        mask = enc["attention_mask"][start : start + batch_size].to(device)
        out = teacher(input_ids=ids, attention_mask=mask, output_attentions=True)
        logits.append(out.logits.float().cpu())
        for choice, index in layers.items():
            maps[choice].append(out.attentions[index].mean(1).half().cpu())
    empty = torch.zeros((0, max_length, max_length), dtype=torch.float16)
    return TeacherTargets(
        enc["input_ids"],
        enc["attention_mask"],
        torch.cat(logits) if logits else torch.zeros((0, teacher.config.num_labels)),
        {c: torch.cat(v) if v else empty for c, v in maps.items()},
    )


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class StudyData:
    """Per-language labelled subsets and the unlabelled distillation corpus (train tweets of all languages)."""

    languages: list[str]
    train: dict[str, pd.DataFrame]
    dev: dict[str, pd.DataFrame]
    test: dict[str, pd.DataFrame]
    corpus: pd.DataFrame  # text, language; the first rows are the labelled train subsets, in language order
    train_index: dict[str, np.ndarray] = field(default_factory=dict)


def _sample(frame: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    if rows is None or len(frame) <= rows:
        return frame.reset_index(drop=True)
    out = frame.sample(n=int(rows), random_state=seed).reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    return out


def load_study_data(params: Mapping[str, object], seed: int = 0) -> StudyData:
    """Seeded subsets per language; every training and corpus text that also appears in an evaluation split of an
    evaluated language is removed (counted in `attrs['dropped']`)."""
    present = [lang for lang in afrisenti_languages() if len(load_afrisenti(lang, "train"))]
    languages = list(params["languages"] or present[: int(params["max_languages"])])
    missing = [lang for lang in languages if lang not in present]
    if missing:
        raise ValueError(f"no AfriSenti training data for {missing}; languages with training rows: {present}")
    train, dev, test = {}, {}, {}
    for lang in languages:
        dev[lang] = _sample(load_afrisenti(lang, "dev"), params["dev_rows"], seed)
        test[lang] = _sample(load_afrisenti(lang, "test"), params["test_rows"], seed)
    evaluation = [*dev.values(), *test.values()]
    for lang in languages:
        clean, _ = remove_overlap(load_afrisenti(lang, "train"), *evaluation)
        train[lang] = _sample(clean, params["train_rows"], seed)
    extra = []
    for lang in present:
        if lang not in languages:
            clean, _ = remove_overlap(load_afrisenti(lang, "train"), *evaluation)
            extra.append(_sample(clean, params["corpus_rows"], seed))
    parts = [train[lang] for lang in languages] + extra
    corpus = concat_frames(parts)[["text", "language"]].reset_index(drop=True)
    offsets = np.cumsum([0] + [len(train[lang]) for lang in languages])
    index = {lang: np.arange(offsets[i], offsets[i + 1]) for i, lang in enumerate(languages)}
    return StudyData(languages, train, dev, test, corpus, index)


def labelled_dataset(tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int) -> TensorDataset:
    """(ids, mask, labels) for evaluation and teacher fine-tuning."""
    enc = tokenize_fixed(tokenizer, frame["text"].tolist(), max_length)
    return TensorDataset(
        enc["input_ids"], enc["attention_mask"], torch.tensor(frame["label"].to_numpy(), dtype=torch.long)
    )


# ---------------------------------------------------------------------------------------------------------------
# Training: teacher fine-tuning, stage 1, stage 2
# ---------------------------------------------------------------------------------------------------------------


def fine_tune_teacher(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: StudyData,
    params: Mapping[str, object],
    seed: int = 0,
    progress: bool = True,
):
    """Fine-tune the teacher on the pooled labelled train subsets of all evaluated languages (one multilingual
    sentiment teacher, like AfroXLMR); early stopping on the pooled dev subsets. Frozen afterwards."""
    length = int(params["max_length"])
    train = labelled_dataset(tokenizer, concat_frames(list(data.train.values())), length)
    dev = labelled_dataset(tokenizer, concat_frames(list(data.dev.values())), length)
    if params["teacher_freeze_embeddings"]:  # saves the optimizer pass over the vocabulary matrix on CPU
        teacher.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    config = TrainConfig(
        epochs=int(params["teacher_epochs"]),
        lr=float(params["teacher_lr"]),
        batch_size=int(params["batch_size"]),
        patience=int(params["patience"]),
        seed=seed,
        progress=progress,
    )
    history = fit(teacher, train, dev, config, num_classes=len(AFRISENTI_LABELS), optimizer=adamw(teacher, config))
    for p in teacher.parameters():
        p.requires_grad_(False)
    return history.frame()


def adamw(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, fused where torch supports it (about 50x faster steps on CPU, which
    matters here: the vocabulary-sized embedding matrix dominates a small student's optimizer step)."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def distillation_loss_fn(config: DistillConfig, weight: torch.Tensor | None = None, with_ce: bool = False, log=None):
    """`loss_fn(model, batch)` for `training.fit`: the hybrid loss (+ weighted CE on labels when `with_ce`)."""

    def loss_fn(model: StudentWithProjection, batch) -> torch.Tensor:
        ids, mask, t_logits, t_map, labels = batch
        if config.alpha < 1:
            s_logits, s_map = model.logits_and_map(ids, mask)
        else:
            s_logits, s_map = model(ids, mask), None
        loss, parts = hybrid_loss(
            s_logits,
            t_logits,
            s_map,
            t_map.float(),
            mask.bool(),
            model.projection,
            temperature=config.temperature,
            alpha=config.alpha,
            kd=config.kd,
        )
        if with_ce:
            ce = F.cross_entropy(s_logits, labels, weight=None if weight is None else weight.to(s_logits.device))
            loss = loss + ce
            parts["ce"] = ce.item()
        if log is not None:
            log.append(parts)
        return loss

    return loss_fn


@dataclass
class DistillRun:
    """The outcome of one recipe: per-language students and scores, loss-term magnitudes, seconds per stage."""

    config: DistillConfig
    students: dict[str, StudentWithProjection]
    scores: list[dict[str, object]]
    loss_terms: dict[str, float]
    seconds: dict[str, float]
    student_params: int
    projection_params: int


def _mean_parts(log: list[dict[str, float]], prefix: str) -> dict[str, float]:
    keys = sorted({k for parts in log for k in parts})
    return {f"{prefix}_{k}": float(np.mean([p[k] for p in log if k in p])) for k in keys}


def run_distillation(
    config: DistillConfig,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: StudyData,
    targets: TeacherTargets,
    params: Mapping[str, object],
    seed: int = 0,
    progress: bool = False,
) -> DistillRun:
    """Stage 1 on the whole corpus, then stage 2 per language from a copy of the stage-1 student; test scores."""
    set_seed(seed)
    length = int(params["max_length"])
    student = build_student(teacher, config.student, config.init, seed)
    layer = attention_layer_index(config.student.num_layers, config.attention_layer)
    model = StudentWithProjection(student, make_projection(config.projection, length, config.projection_rank), layer)
    seconds: dict[str, float] = {}
    common = dict(batch_size=int(params["batch_size"]), patience=int(params["patience"]), seed=seed, progress=progress)
    log1: list[dict[str, float]] = []
    start = time.perf_counter()
    stage1 = TrainConfig(epochs=int(params["stage1_epochs"]), lr=float(params["stage1_lr"]), **common)
    loss1 = distillation_loss_fn(config, log=log1)
    fit(model, targets.dataset(config.attention_layer), None, stage1, loss_fn=loss1, optimizer=adamw(model, stage1))
    seconds["stage1"] = time.perf_counter() - start
    students, scores, log2 = {}, [], []
    start = time.perf_counter()
    for lang in data.languages:
        tuned = copy.deepcopy(model)
        labels = data.train[lang]["label"].to_numpy()
        weight = class_weights(labels, len(AFRISENTI_LABELS))
        lang_targets = targets.subset(data.train_index[lang])
        stage2 = TrainConfig(epochs=int(params["stage2_epochs"]), lr=float(params["stage2_lr"]), **common)
        if config.stage2 == "ce":
            train_ds, loss_fn = labelled_dataset(tokenizer, data.train[lang], length), None
        elif config.stage2 == "ce+distill":
            train_ds = lang_targets.dataset(config.attention_layer, labels)
            loss_fn = distillation_loss_fn(config, weight, with_ce=True, log=log2)
        else:
            raise ValueError(f"stage2 must be 'ce' or 'ce+distill', not {config.stage2!r}")
        dev_ds = labelled_dataset(tokenizer, data.dev[lang], length)
        optimizer = adamw(tuned, stage2)
        fit(tuned, train_ds, dev_ds, stage2, loss_fn=loss_fn, num_classes=len(AFRISENTI_LABELS), optimizer=optimizer)
        students[lang] = tuned
        scores.append({"language": lang, **score(tuned, tokenizer, data.test[lang], length)})
    seconds["stage2"] = time.perf_counter() - start
    return DistillRun(
        config=config,
        students=students,
        scores=scores,
        loss_terms={**_mean_parts(log1, "stage1"), **_mean_parts(log2, "stage2")},
        seconds=seconds,
        student_params=sum(p.numel() for p in student.parameters()),
        projection_params=sum(p.numel() for p in model.projection.parameters()),
    )


def score(model: nn.Module, tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int) -> dict:
    """Test metrics (accuracy, macro / weighted F1, precision, recall) of a classifier on a labelled frame."""
    logits = predict(model, labelled_dataset(tokenizer, frame, max_length))
    return classification_metrics(frame["label"].to_numpy(), logits.argmax(-1), labels=list(range(logits.shape[1])))


def retention(student_f1: Sequence[float], teacher_f1: Sequence[float]) -> float:
    """Mean student F1 over languages divided by mean teacher F1 (the paper's 65.28 / 73.22 = 0.89)."""
    return float(np.mean(student_f1) / max(np.mean(teacher_f1), 1e-12))


def save_student(model: StudentWithProjection | PreTrainedModel, directory: str | Path, tokenizer=None) -> Path:
    """`save_pretrained` (safetensors + config.json) of the bare student, with the tokenizer when given."""
    student = model.student if isinstance(model, StudentWithProjection) else model
    directory = Path(directory)
    student.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def load_classifier(directory: str | Path, attention: str = "sdpa") -> PreTrainedModel:
    """A saved teacher or student, in eval mode (sdpa attention for speed; `eager` to read the maps)."""
    return AutoModelForSequenceClassification.from_pretrained(directory, attn_implementation=attention).eval()


def save_models(directory: str | Path, teacher: PreTrainedModel, tokenizer, run: DistillRun) -> Path:
    """`<dir>/teacher` and `<dir>/student-<lang>` (save_pretrained, safetensors, with the tokenizer)."""
    directory = Path(directory)
    save_student(teacher, directory / "teacher", tokenizer)
    for lang, model in run.students.items():
        save_student(model, directory / f"student-{lang}", tokenizer)
    return directory


def head_mean_attention(model: PreTrainedModel, tokenizer, text: str, layer: str = "final", max_length: int = 64):
    """(tokens, the chosen layer's attention averaged over heads as an L x L array) for one text."""
    enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
    eager = copy.deepcopy(model).eval()
    eager.config._attn_implementation = "eager"
    with torch.no_grad():
        out = eager(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_attentions=True)
    index = attention_layer_index(model.config.num_hidden_layers, layer)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return tokens, out.attentions[index][0].mean(0).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Result rows and summaries
# ---------------------------------------------------------------------------------------------------------------

TRAINING_BYTES_PER_PARAMETER = 16  # fp32 weight + gradient + two AdamW moments


def projection_memory_mib(kind: str, seq_len: int, rank: int = 16) -> float:
    """Training memory of P's parameters (weights, gradients, AdamW moments), in MiB, from its shape."""
    return projection_parameters(kind, seq_len, rank) * TRAINING_BYTES_PER_PARAMETER / 2**20


def metric_rows(experiment: str, run: DistillRun, seed: int, max_length: int) -> list[dict[str, object]]:
    """One flat row per language: the recipe, its test metrics, sizes, projection memory and stage seconds."""
    recipe = run.config.row()
    recipe["config"] = recipe.pop("name")
    extra = {
        "student_params": run.student_params,
        "projection_params": run.projection_params,
        "projection_train_mib": projection_memory_mib(run.config.projection, max_length, run.config.projection_rank),
        "projection_params_at_L128": projection_parameters(run.config.projection, 128, run.config.projection_rank),
        "stage1_seconds": run.seconds["stage1"],
        "stage2_seconds": run.seconds["stage2"],
        **run.loss_terms,
    }
    return [
        {"experiment": experiment, "model": "student", "seed": seed, **recipe, **scores, **extra}
        for scores in run.scores
    ]


def summarise(students: pd.DataFrame, teacher: pd.DataFrame) -> pd.DataFrame:
    """Per recipe: mean macro / weighted F1 over languages and retention against the teacher on the same
    languages (ratio of means, like the paper)."""
    teacher_f1 = teacher.set_index("language")["macro_f1"]
    teacher_wf1 = teacher.set_index("language")["weighted_f1"]
    rows = []
    keys = ["experiment", "config", "student", "projection", "temperature", "alpha", "attention_layer", "kd"]
    for key, group in students.groupby(keys, sort=False):
        langs = group["language"]
        rows.append(
            {
                **dict(zip(keys, key)),
                "languages": len(group),
                "student_macro_f1": group["macro_f1"].mean(),
                "student_weighted_f1": group["weighted_f1"].mean(),
                "teacher_macro_f1": teacher_f1[langs].mean(),
                "retention": retention(group["macro_f1"], teacher_f1[langs]),
                "weighted_retention": retention(group["weighted_f1"], teacher_wf1[langs]),
                "student_params": group["student_params"].iloc[0],
                "projection_params": group["projection_params"].iloc[0],
                "projection_train_mib": group["projection_train_mib"].iloc[0],
                "projection_params_at_L128": group["projection_params_at_L128"].iloc[0],
                "stage1_seconds": group["stage1_seconds"].iloc[0],
            }
        )
    return pd.DataFrame(rows)
