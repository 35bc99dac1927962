"""Comet: hybrid knowledge distillation with attention matching (AfroXLMR-Comet, arXiv 2502.18020).

A frozen teacher fine-tuned for sentiment teaches a compact student of the same architecture family:

    loss = alpha * KL(p_t || p_s) * T^2 + (1 - alpha) * MSE(P(A_s), A_t),   p = softmax(z / T)

where A is one layer's attention averaged over heads (final layer by default), flattened, and P a learnable map
from the student's to the teacher's attention space. Only the student and P learn.

KL direction: the issue writes KL(softmax(z_s/T) || softmax(z_t/T)); the usual implementations (Hinton et al.,
DistilBERT, TextBrewer) compute `kl_div(log_softmax(z_s/T), softmax(z_t/T))`, which is KL(p_t || p_s) = the
cross-entropy to the teacher's soft targets minus a constant. The loss registered as `kd` is that usual direction;
`kd_reverse` is the literal reading (mode-seeking), available as `DistillConfig(kd="kd_reverse")`.

Two stages (`run_distillation`):

(1) distillation on unlabelled text, of one of two kinds (`stage1`): `task-specific` (`TeacherTargets` of a corpus:
the KD term uses the fine-tuned teacher's sentiment-head logits, the attention term its maps), or `task-agnostic`,
the paper's (`AgnosticTargets`: the pretrained teacher's masked-language-model logits at masked positions, the
attention term its maps on the masked text; `load_mlm_teacher`). A checkpoint without MLM head weights (a sentence
encoder such as all-MiniLM-L6-v2) would get a newly initialised head, whose logits teach nothing: then the KD term
becomes hidden-state matching (MSE between the student's final hidden states, linearly mapped to the teacher's
width, and the teacher's, at every real token) and the caller is told (`mlm_head_in_checkpoint`). `none` skips
stage 1 (the label-only student).

(2) per-language fine-tuning on labelled rows with weighted cross-entropy alone (`stage2="ce"`, the paper's), or
plus the task-specific distillation loss (`"ce+kd"`).

Projections (registry kind `projection`): `faithful` is the paper's dense (L^2 x L^2) linear map (268M parameters
at L=128, so only for short sequences); `identity` is valid because student and teacher share the tokenizer, so
both maps are L x L over the same tokens; `low_rank` is identity plus a rank-r correction (2 L^2 r parameters). The
learnable variants start at the identity, so all three give the same signal at step 0.

Student initialisation (`init`): `pca` (default when the hidden sizes differ) sets the word, position and type
embeddings to the teacher's, projected on the top principal components of the teacher's word embeddings (one
linear map for all three, so their sum is projected consistently); `teacher` (same hidden size) copies the
embeddings and evenly spaced teacher layers (DistilBERT-style); `random` keeps the config's initialisation.
Transformer layers of a narrower student are random.

Models are saved with their tokenizer (`save_model`, `load_classifier`), and `efficiency` measures size, CPU speed
and peak memory of saved model folders, timed in one process.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from workbench.encoders import OFFLINE_DEFAULT, TINY_CONFIG, EncoderUnavailable, minilm_path
from workbench.paper_models import PAPER_ARCHITECTURES, dry_run, paper_config
from workbench.parallel import model_parts, rebuild_model
from workbench.registry import build, get, register
from workbench.runtime import atomic_directory, set_seed
from workbench.training import TrainConfig, class_weights, classification_metrics, fit, predict

ATTENTION_LAYERS = ("final", "upper_middle")
STAGE1_KINDS = ("task-specific", "task-agnostic", "none")
STAGE2_MODES = ("ce", "ce+kd")
MASK_PROBABILITY = 0.15  # BERT's masked-language-model rate
STUDENT_INITS = ("auto", "pca", "teacher", "random")
KD_LOSSES = ("kd", "kd_reverse")

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
    stage1: str = "task-specific"
    stage2: str = "ce"
    init: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], not {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}")
        for name, value, allowed in (
            ("kd", self.kd, KD_LOSSES),
            ("attention_layer", self.attention_layer, ATTENTION_LAYERS),
            ("stage1", self.stage1, STAGE1_KINDS),
            ("stage2", self.stage2, STAGE2_MODES),
            ("init", self.init, STUDENT_INITS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {value!r}")

    def row(self) -> dict[str, object]:
        """Flat description for a metric row."""
        out = {k: v for k, v in asdict(self).items() if k != "student"}
        out.update(student=self.student.label, student_layers=self.student.num_layers)
        out.update(student_hidden=self.student.hidden_size, student_heads=self.student.num_heads)
        return out


# ---------------------------------------------------------------------------------------------------------------
# Losses (registry kind "loss")
# ---------------------------------------------------------------------------------------------------------------


@register("loss", "kd")
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p_t || p_s) * T^2 on temperature-softened logits, mean over the batch (the usual KD direction)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * temperature**2


@register("loss", "kd_reverse")
def kd_reverse_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p_s || p_t) * T^2: the literal reading of the issue's formula (mode-seeking)."""
    return kd_loss(teacher_logits, student_logits, temperature)


@register("loss", "attention_mse")
def attention_mse(projected: torch.Tensor, teacher_map: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the (query, key) pairs where both tokens are real (not padding)."""
    pairs = (mask[:, :, None] & mask[:, None, :]).to(projected.dtype)
    return ((projected - teacher_map) ** 2 * pairs).sum() / pairs.sum().clamp(min=1)


@register("loss", "hidden_mse")
def hidden_mse(projected: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per hidden unit between (mapped) student and teacher hidden states (B, K, d), over the
    positions where `mask` (B, K) is true."""
    weights = mask.to(projected.dtype)[..., None]
    return ((projected - teacher_hidden) ** 2 * weights).sum() / (weights.sum() * projected.shape[-1]).clamp(min=1)


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
    """alpha * KD + (1 - alpha) * attention MSE; a term with weight 0 is not computed. Returns (loss, parts).

    `kd` names a registered loss (`kd` or `kd_reverse`)."""
    total = student_logits.new_zeros(())
    parts: dict[str, float] = {}
    if alpha > 0:
        kd_term = get("loss", kd)(student_logits, teacher_logits, temperature)
        total = total + alpha * kd_term
        parts["kd"] = kd_term.item()
    if alpha < 1:
        if student_map is None or teacher_map is None:
            raise ValueError("alpha < 1 needs the student's and the teacher's attention maps")
        att_term = get("loss", "attention_mse")(project_map(projection, student_map, mask), teacher_map, mask)
        total = total + (1 - alpha) * att_term
        parts["attention"] = att_term.item()
    return total, parts


# ---------------------------------------------------------------------------------------------------------------
# Projections P: student attention space -> teacher attention space (registry kind "projection")
# ---------------------------------------------------------------------------------------------------------------


@register("projection", "identity")
class IdentityProjection(nn.Module):
    """P = I: valid when both maps are L x L over the same tokens (shared tokenizer); no parameters."""

    def __init__(self, seq_len: int, rank: int = 0):
        super().__init__()
        self.seq_len = seq_len

    @staticmethod
    def parameter_count(seq_len: int, rank: int = 0) -> int:
        return 0

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return flat


@register("projection", "faithful")
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

    @staticmethod
    def parameter_count(seq_len: int, rank: int = 0) -> int:
        size = seq_len * seq_len
        return size * size + size

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return self.linear(flat)


@register("projection", "low_rank")
class LowRankProjection(nn.Module):
    """x + U V x with rank r (2 L^2 r parameters); U starts at zero, so P starts at the identity."""

    def __init__(self, seq_len: int, rank: int = 16):
        super().__init__()
        self.seq_len = seq_len
        size = seq_len * seq_len
        self.down = nn.Linear(size, rank, bias=False)
        self.up = nn.Linear(rank, size, bias=False)
        nn.init.zeros_(self.up.weight)

    @staticmethod
    def parameter_count(seq_len: int, rank: int = 16) -> int:
        return 2 * seq_len * seq_len * rank

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return flat + self.up(self.down(flat))


def projection_parameters(kind: str, seq_len: int, rank: int = 16) -> int:
    """Parameter count of a registered projection, computed from its shape (no allocation: usable at L=128)."""
    return get("projection", kind).parameter_count(seq_len, rank)


TRAINING_BYTES_PER_PARAMETER = 16  # fp32 weight + gradient + two AdamW moments


def projection_memory_mib(kind: str, seq_len: int, rank: int = 16) -> float:
    """Training memory of P's parameters (weights, gradients, AdamW moments), in MiB, from its shape."""
    return projection_parameters(kind, seq_len, rank) * TRAINING_BYTES_PER_PARAMETER / 2**20


# ---------------------------------------------------------------------------------------------------------------
# Teacher and student models
# ---------------------------------------------------------------------------------------------------------------


def load_teacher(name: str, num_labels: int = 3, seed: int = 0) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and a sequence classifier on top of a pretrained encoder (`minilm`, `tiny`, folder or hub id).

    Eager attention, so that `output_attentions=True` returns the maps. Offline, a hub id that is not cached
    raises `EncoderUnavailable` naming the offline default. Under `--dry-run` a paper model (`PAPER_ARCHITECTURES`)
    is built from its published config with random weights (seeded) and MiniLM's tokenizer: nothing is downloaded.
    """
    if dry_run() and name in PAPER_ARCHITECTURES:
        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        config = paper_config(name, num_labels=num_labels)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
        return tokenizer, model.eval()
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
        raise ValueError(f"unknown student init {init!r}; known: {', '.join(STUDENT_INITS)}")
    return student


def _scaled_intermediate(config, hidden_size: int) -> int:
    """The teacher's feed-forward / hidden ratio applied to the student's width (4x for BERT and XLM-R)."""
    return max(1, round(config.intermediate_size * hidden_size / config.hidden_size))


_PCA_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def _embedding_pca(
    weights: torch.Tensor, components: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(basis (hidden, components), mean, the centred word embeddings projected on the basis) of the word-embedding
    matrix; memoised for the latest matrix only, since every recipe of a run reuses it (250k x 1024 for XLM-R)."""
    key = (weights.data_ptr(), tuple(weights.shape), float(weights[:8].detach().sum()), components, seed)
    if key not in _PCA_CACHE:
        _PCA_CACHE.clear()
        words = weights.detach().float().cpu()
        with threadpool_limits(1):  # BLAS rounding varies with its thread count: the same basis in every process
            pca = PCA(n_components=components, svd_solver="randomized", random_state=seed).fit(words.numpy())
        basis = torch.from_numpy(pca.components_.T.astype(np.float32))
        mean = torch.from_numpy(pca.mean_.astype(np.float32))
        _PCA_CACHE[key] = (basis, mean, (words - mean) @ basis)
    return _PCA_CACHE[key]


def _init_embeddings_pca(student: PreTrainedModel, teacher: PreTrainedModel, seed: int) -> None:
    source, target = teacher.base_model.embeddings, student.base_model.embeddings
    basis, _, projected = _embedding_pca(source.word_embeddings.weight, student.config.hidden_size, seed)
    with torch.no_grad():
        target.word_embeddings.weight.copy_(projected)
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
        self.stage1_head: nn.Module | None = None  # the task-agnostic stage 1's MLM head or hidden-state map

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.student(input_ids=input_ids, attention_mask=attention_mask).logits

    def __getstate__(self) -> dict[str, object]:  # a student trained in a worker process comes back pickled
        state = dict(vars(self))
        modules = dict(state["_modules"])
        state["_student_parts"] = model_parts(modules.pop("student"))  # its output-recording hooks do not pickle
        state["_modules"] = modules
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        student = rebuild_model(state.pop("_student_parts"))
        super().__setstate__(state)
        self._modules = {"student": student, **self._modules}  # in construction order, as state_dict() lists it

    def logits_and_map(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the chosen layer's attention, averaged over heads: (B, L, L)."""
        out = self.student(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        return out.logits, out.attentions[self.attention_layer].mean(1)

    def hidden_and_map(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, with_map: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The encoder's final hidden states (B, L, d) and, `with_map`, the chosen layer's head-mean attention."""
        out = self.student.base_model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=with_map)
        return out.last_hidden_state, out.attentions[self.attention_layer].mean(1) if with_map else None


def student_with_projection(teacher: PreTrainedModel, config: DistillConfig, max_length: int, seed: int = 0):
    """A fresh student for `config` (built from the teacher) with its projection for L = `max_length`."""
    student = build_student(teacher, config.student, config.init, seed)
    layer = attention_layer_index(config.student.num_layers, config.attention_layer)
    projection = build("projection", config.projection, max_length, config.projection_rank)
    return StudentWithProjection(student, projection, layer)


# ---------------------------------------------------------------------------------------------------------------
# Inputs and teacher targets (computed once: the teacher is frozen)
# ---------------------------------------------------------------------------------------------------------------


def tokenize_fixed(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Token ids and mask padded to exactly `max_length` (the dense projection needs a fixed L)."""
    batch = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def labelled_dataset(tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int) -> TensorDataset:
    """(ids, mask, labels) of a frame with `text` and integer `label`, for evaluation and teacher fine-tuning."""
    enc = tokenize_fixed(tokenizer, frame["text"].tolist(), max_length)
    return TensorDataset(
        enc["input_ids"], enc["attention_mask"], torch.tensor(frame["label"].to_numpy(), dtype=torch.long)
    )


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
    progress: bool = False,
) -> TeacherTargets:
    """Run the frozen teacher once over `texts`; keep logits and the final / upper-middle head-mean maps (fp16).
    `progress` shows a bar over the batches (minutes for a large teacher on a CPU)."""
    teacher.eval()
    device = next(teacher.parameters()).device
    enc = tokenize_fixed(tokenizer, texts, max_length)
    layers = {c: attention_layer_index(teacher.config.num_hidden_layers, c) for c in ATTENTION_LAYERS}
    logits, maps = [], {c: [] for c in layers}
    for start in tqdm(range(0, len(texts), batch_size), desc="teacher targets", unit="batch", disable=not progress):
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
# Task-agnostic stage 1: the pretrained teacher's masked-language-model logits and attention on unlabelled text
# ---------------------------------------------------------------------------------------------------------------


def mlm_head_of(model: PreTrainedModel) -> nn.Module:
    """The language-modelling head of a `...ForMaskedLM` model: its one child that is not the base model (BERT's
    `cls`, XLM-R's `lm_head`)."""
    heads = [module for _, module in model.named_children() if module is not model.base_model]
    if len(heads) != 1:
        raise ValueError(f"{type(model).__name__} has {len(heads)} modules beside its base model, expected one head")
    return heads[0]


def _mlm_source(name: str) -> str:
    return str(minilm_path()) if name == OFFLINE_DEFAULT else name


def mlm_head_in_checkpoint(name: str) -> bool | None:
    """Whether the teacher checkpoint `name` holds masked-LM head weights, read from its local safetensors key names
    (no weights loaded): True for `tiny` and dry-run paper models (built whole from a config), None when it cannot
    be told without loading (a hub id, or a folder without safetensors)."""
    if name == "tiny" or (dry_run() and name in PAPER_ARCHITECTURES):
        return True
    folder = Path(_mlm_source(name))
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), "pt") as handle:
            if any(k.startswith(("cls.", "lm_head.")) or ".lm_head." in k for k in handle.keys()):
                return True
    return False


def load_mlm_teacher(name: str, seed: int = 0) -> tuple[PreTrainedModel, list[str]]:
    """The teacher's pretrained encoder with its masked-LM head (`AutoModelForMaskedLM`, eager attention, frozen),
    and the names of the head weights its checkpoint lacks (newly initialised: its logits teach nothing; empty when
    the head is whole). `tiny` and dry-run paper models are built from their config, seeded (random like the rest)."""
    if dry_run() and name in PAPER_ARCHITECTURES:
        config = paper_config(name)
        config._attn_implementation = "eager"
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model, missing = AutoModelForMaskedLM.from_config(config, attn_implementation="eager"), []
    elif name == "tiny":
        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        config = BertConfig(vocab_size=tokenizer.vocab_size, **TINY_CONFIG)
        config._attn_implementation = "eager"
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model, missing = BertForMaskedLM(config), []
    else:
        source = _mlm_source(name)
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # a missing head is initialised from this seed
            try:
                model, info = AutoModelForMaskedLM.from_pretrained(
                    source, local_files_only=True, attn_implementation="eager", output_loading_info=True
                )
            except OSError:
                try:
                    model, info = AutoModelForMaskedLM.from_pretrained(
                        source, attn_implementation="eager", output_loading_info=True
                    )
                except OSError as err:
                    raise EncoderUnavailable(
                        f"could not load the masked-LM teacher {name!r} (task-agnostic stage 1): not a local folder, "
                        f"not in the Hugging Face cache, and the Hub could not be reached. Cause: "
                        f"{err.__class__.__name__}"
                    ) from None
        prefix = model.base_model_prefix + "."
        missing = sorted(k for k in info.get("missing_keys", []) if not k.startswith(prefix))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), missing


def student_mlm_head(student: PreTrainedModel) -> nn.Module:
    """A fresh masked-LM head for the student (its family's, from its config), whose output layer is tied to the
    student's word embeddings as in pretraining."""
    config = copy.deepcopy(student.config)
    mlm = AutoModelForMaskedLM.from_config(config)
    head = mlm_head_of(mlm)
    mlm.get_output_embeddings().weight = student.get_input_embeddings().weight
    return head


@dataclass
class AgnosticTargets:
    """Inputs and the frozen pretrained teacher's outputs for task-agnostic stage 1: (masked) token ids and mask, the
    positions the KD term reads per text (B, K; -1 pads), the teacher's final hidden states there (fp16) and its
    head-mean maps per layer choice (fp16). `head` is the teacher's masked-LM head (logits = head(hidden), applied
    per batch, so that no vocabulary-sized tensor is stored); None means hidden-state matching at every token."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    positions: torch.Tensor
    hidden: torch.Tensor
    maps: dict[str, torch.Tensor]
    head: nn.Module | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def signal(self) -> str:
        """What the KD term matches: `mlm-logits` or `hidden-states`."""
        return "mlm-logits" if self.head is not None else "hidden-states"

    def dataset(self, layer_choice: str) -> TensorDataset:
        """(ids, mask, positions, teacher hidden states, teacher map)."""
        return TensorDataset(self.input_ids, self.attention_mask, self.positions, self.hidden, self.maps[layer_choice])


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_ids: Sequence[int],
    mask_id: int,
    vocab_size: int,
    probability: float = MASK_PROBABILITY,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking, seeded: per text, round(probability x real tokens) positions (at least one) among the
    non-special tokens; 80% become `mask_id`, 10% a random token, 10% stay. Returns (masked ids, positions (N, K),
    -1 where a text has fewer than K = ceil(probability x L) positions)."""
    generator = torch.Generator().manual_seed(seed)
    candidates = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(list(special_ids), dtype=input_ids.dtype))
    slots = max(1, math.ceil(probability * input_ids.shape[1]))
    scores = torch.rand(input_ids.shape, generator=generator).masked_fill(~candidates, 2.0)
    order = scores.argsort(dim=1)[:, :slots]
    counts = (candidates.sum(1).float() * probability).round().clamp(min=1).long().clamp(max=slots)
    counts = torch.where(candidates.any(1), counts, torch.zeros_like(counts))
    positions = torch.where(torch.arange(slots)[None, :] < counts[:, None], order, torch.full_like(order, -1))
    masked = input_ids.clone()
    rows = torch.arange(len(input_ids))[:, None].expand_as(positions)
    chosen = positions >= 0
    r, c = rows[chosen], positions[chosen]
    roll = torch.rand(len(r), generator=generator)
    masked[r[roll < 0.8], c[roll < 0.8]] = mask_id
    swap = (roll >= 0.8) & (roll < 0.9)
    masked[r[swap], c[swap]] = torch.randint(vocab_size, (int(swap.sum()),), generator=generator, dtype=masked.dtype)
    return masked, positions


@torch.no_grad()
def agnostic_targets(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    *,
    use_mlm: bool = True,
    probability: float = MASK_PROBABILITY,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> AgnosticTargets:
    """Run the frozen masked-LM `teacher` (`load_mlm_teacher`) once over `texts` (labels unused). With `use_mlm`:
    masked input (`mask_tokens`), the final hidden states at the masked positions, and the teacher's MLM head. Without
    (no head weights in the checkpoint): unmasked input and the final hidden states at every real token, for
    hidden-state matching. Both keep the final / upper-middle head-mean maps."""
    teacher.eval()
    device = next(teacher.parameters()).device
    enc = tokenize_fixed(tokenizer, texts, max_length)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if use_mlm:
        if tokenizer.mask_token_id is None:
            raise ValueError("the teacher's tokenizer has no mask token: task-agnostic stage 1 needs one")
        vocab = min(tokenizer.vocab_size, teacher.config.vocab_size)
        ids, positions = mask_tokens(
            ids, mask, tokenizer.all_special_ids, tokenizer.mask_token_id, vocab, probability, seed
        )
    else:
        positions = torch.where(mask.bool(), torch.arange(ids.shape[1])[None, :], torch.full_like(ids, -1))
    layers = {c: attention_layer_index(teacher.config.num_hidden_layers, c) for c in ATTENTION_LAYERS}
    hidden, maps = [], {c: [] for c in layers}
    base = teacher.base_model
    for start in tqdm(range(0, len(texts), batch_size), desc="agnostic targets", unit="batch", disable=not progress):
        batch_ids, batch_mask = ids[start : start + batch_size].to(device), mask[start : start + batch_size].to(device)
        out = base(input_ids=batch_ids, attention_mask=batch_mask, output_attentions=True)
        where = positions[start : start + batch_size].to(device)
        index = where.clamp(min=0)[..., None].expand(-1, -1, out.last_hidden_state.shape[-1])
        picked = out.last_hidden_state.gather(1, index) * (where >= 0)[..., None]
        hidden.append(picked.half().cpu())
        for choice, layer in layers.items():
            maps[choice].append(out.attentions[layer].mean(1).half().cpu())
    width = teacher.config.hidden_size
    empty_maps = torch.zeros((0, max_length, max_length), dtype=torch.float16)
    head = mlm_head_of(teacher) if use_mlm else None
    return AgnosticTargets(
        ids,
        mask,
        positions,
        torch.cat(hidden) if hidden else torch.zeros((0, positions.shape[1], width), dtype=torch.float16),
        {c: torch.cat(v) if v else empty_maps for c, v in maps.items()},
        head,
    )


def agnostic_loss_fn(config: DistillConfig, teacher_head: nn.Module | None, log=None):
    """`loss_fn(model, batch)` of task-agnostic stage 1: alpha x (KD on masked-LM logits at the masked positions,
    through the student's MLM head; or, with no teacher head, hidden-state MSE through the student's linear map) +
    (1 - alpha) x the attention MSE on the same (masked) input. The student's head is `model.stage1_head`."""

    def loss_fn(model: StudentWithProjection, batch) -> torch.Tensor:
        ids, mask, positions, t_hidden, t_map = batch
        hidden, s_map = model.hidden_and_map(ids, mask, with_map=config.alpha < 1)
        valid = positions >= 0
        index = positions.clamp(min=0)[..., None].expand(-1, -1, hidden.shape[-1])
        gathered = hidden.gather(1, index)
        total = hidden.new_zeros(())
        parts: dict[str, float] = {}
        if config.alpha > 0:
            if teacher_head is not None:
                s_logits = model.stage1_head(gathered[valid])
                with torch.no_grad():
                    t_logits = teacher_head.to(s_logits.device)(t_hidden[valid].float())
                term = get("loss", config.kd)(s_logits, t_logits, config.temperature)
                parts["mlm_kd"] = term.item()
            else:
                term = get("loss", "hidden_mse")(model.stage1_head(gathered), t_hidden.float(), valid)
                parts["hidden"] = term.item()
            total = total + config.alpha * term
        if config.alpha < 1:
            pair_mask = mask.bool()
            att = get("loss", "attention_mse")(
                project_map(model.projection, s_map, pair_mask), t_map.float(), pair_mask
            )
            total = total + (1 - config.alpha) * att
            parts["attention"] = att.item()
        if log is not None:
            log.append(parts)
        return total

    return loss_fn


# ---------------------------------------------------------------------------------------------------------------
# Training: teacher fine-tuning, stage 1, stage 2
# ---------------------------------------------------------------------------------------------------------------


def fine_tune_teacher(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: pd.DataFrame,
    dev: pd.DataFrame,
    config: TrainConfig,
    max_length: int,
    freeze_embeddings: bool = False,
) -> pd.DataFrame:
    """Fine-tune the teacher end to end on labelled `train` rows (weighted cross-entropy, the config's schedule and
    warm-up, early stopping on `dev` macro-F1), then freeze every parameter. Batches are length-grouped with dynamic
    padding (`workbench.methods.finetune`): a step costs the batch's longest tweet, not `max_length`.
    `freeze_embeddings` keeps the word embeddings fixed (the old frozen setting: cheaper, but MiniLM's English
    WordPiece vocabulary then cannot adapt to African-language words). Returns the per-epoch history."""
    from workbench.methods.finetune import fit_classifier

    if freeze_embeddings:
        teacher.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    texts, labels = train["text"].tolist(), train["label"].tolist()
    num_classes = teacher.config.num_labels
    history = fit_classifier(
        teacher, tokenizer, texts, labels, dev["text"].tolist(), dev["label"].tolist(), num_classes, config,
        max_length, desc="teacher",
    )  # fmt: skip
    for p in teacher.parameters():
        p.requires_grad_(False)
    return history.frame()


def distillation_loss_fn(config: DistillConfig, weight: torch.Tensor | None = None, with_ce: bool = False, log=None):
    """`loss_fn(model, batch)` for `training.fit`: the hybrid loss (+ weighted CE on labels when `with_ce`); each
    batch's term values are appended to `log` when given."""

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
    stage1_signal: str = ""  # what stage 1's KD term matched: sentiment-logits, mlm-logits, hidden-states or none


def _mean_parts(log: list[dict[str, float]], prefix: str) -> dict[str, float]:
    keys = sorted({k for parts in log for k in parts})
    return {f"{prefix}_{k}": float(np.mean([p[k] for p in log if k in p])) for k in keys}


def run_distillation(
    config: DistillConfig,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    targets: TeacherTargets,
    *,
    train: Mapping[str, pd.DataFrame],
    dev: Mapping[str, pd.DataFrame],
    test: Mapping[str, pd.DataFrame],
    target_rows: Mapping[str, np.ndarray],
    stage1: TrainConfig,
    stage2: TrainConfig,
    max_length: int,
    seed: int = 0,
    progress: bool = False,
    agnostic: AgnosticTargets | None = None,
) -> DistillRun:
    """Stage 1 on the unlabelled corpus (`config.stage1`: `task-specific` on `targets`, `task-agnostic` on
    `agnostic`, `none`: skipped), then stage 2 per language (the keys of `train`) from a copy of the stage-1
    student, with early stopping on that language's `dev` rows; scores on its `test` rows. `progress` shows a bar
    over the languages of stage 2.

    `target_rows[lang]` are the positions of `train[lang]`'s rows in `targets` (their teacher logits and maps)."""
    set_seed(seed)
    model = student_with_projection(teacher, config, max_length, seed)
    num_classes = teacher.config.num_labels
    seconds: dict[str, float] = {}
    log1: list[dict[str, float]] = []
    start = time.perf_counter()
    signal = "none"
    if config.stage1 == "task-specific":
        loss_fn = distillation_loss_fn(config, log=log1)
        fit(model, targets.dataset(config.attention_layer), None, stage1, loss_fn=loss_fn)
        signal = "sentiment-logits"
    elif config.stage1 == "task-agnostic":
        if agnostic is None:
            raise ValueError(f"recipe {config.name!r}: a task-agnostic stage 1 needs `agnostic` (agnostic_targets)")
        if agnostic.head is not None:
            model.stage1_head = student_mlm_head(model.student)
        else:
            model.stage1_head = nn.Linear(model.student.config.hidden_size, agnostic.hidden.shape[-1])
        loss_fn = agnostic_loss_fn(config, agnostic.head, log=log1)
        fit(model, agnostic.dataset(config.attention_layer), None, stage1, loss_fn=loss_fn)
        model.stage1_head = None  # stage 2 and the saved student need only the encoder and its classifier
        signal = agnostic.signal
    seconds["stage1"] = time.perf_counter() - start
    students, scores, log2 = {}, [], []
    start = time.perf_counter()
    for lang, frame in tqdm(
        train.items(), desc=f"{config.name}: stage 2", total=len(train), leave=False, disable=not progress
    ):
        tuned = copy.deepcopy(model)
        labels = frame["label"].to_numpy()
        if config.stage2 == "ce":
            train_ds, loss_fn = labelled_dataset(tokenizer, frame, max_length), None
        else:
            weight = class_weights(labels, num_classes)
            train_ds = targets.subset(target_rows[lang]).dataset(config.attention_layer, labels)
            loss_fn = distillation_loss_fn(config, weight, with_ce=True, log=log2)
        dev_ds = labelled_dataset(tokenizer, dev[lang], max_length)
        fit(tuned, train_ds, dev_ds, stage2, loss_fn=loss_fn, num_classes=num_classes)
        students[lang] = tuned
        scores.append({"language": lang, **score(tuned, tokenizer, test[lang], max_length)})
    seconds["stage2"] = time.perf_counter() - start
    return DistillRun(
        config=config,
        students=students,
        scores=scores,
        loss_terms={**_mean_parts(log1, "stage1"), **_mean_parts(log2, "stage2")},
        seconds=seconds,
        student_params=sum(p.numel() for p in model.student.parameters()),
        projection_params=sum(p.numel() for p in model.projection.parameters()),
        stage1_signal=signal,
    )


def frame_logits(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int
) -> np.ndarray:
    """(rows, classes) logits of a classifier on a labelled frame's texts, in order."""
    return predict(model, labelled_dataset(tokenizer, frame, max_length))


def logit_scores(labels: np.ndarray, logits: np.ndarray) -> dict:
    """Metrics (accuracy, macro / weighted F1, precision, recall) of the logits' argmax against the labels."""
    return classification_metrics(np.asarray(labels), logits.argmax(-1), labels=list(range(logits.shape[1])))


def score(model: nn.Module, tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame, max_length: int) -> dict:
    """Test metrics (accuracy, macro / weighted F1, precision, recall) of a classifier on a labelled frame."""
    return logit_scores(frame["label"].to_numpy(), frame_logits(model, tokenizer, frame, max_length))


def retention(student_f1: Sequence[float], teacher_f1: Sequence[float]) -> float:
    """Mean student F1 over languages divided by mean teacher F1 (the paper's 65.28 / 73.22 = 0.89)."""
    return float(np.mean(student_f1) / max(np.mean(teacher_f1), 1e-12))


# ---------------------------------------------------------------------------------------------------------------
# Saving and loading: Hugging Face folders, always with the tokenizer
# ---------------------------------------------------------------------------------------------------------------


def save_model(
    model: StudentWithProjection | PreTrainedModel,
    directory: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    files: Mapping[str, str] | None = None,
) -> Path:
    """`save_pretrained` (safetensors + config.json) of a teacher or of the bare student, with its tokenizer, so
    that `load_classifier` (or `AutoTokenizer` / `AutoModelForSequenceClassification`) can load the folder alone.
    `files` (name -> text) are written into the same folder, in the same atomic replacement (e.g. a run's card)."""
    bare = model.student if isinstance(model, StudentWithProjection) else model
    directory = Path(directory)
    with atomic_directory(directory) as tmp:  # a reader never sees a model without its tokenizer (or its card)
        bare.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return directory


def save_models(
    directory: str | Path,
    models: Mapping[str, StudentWithProjection | PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
) -> dict[str, Path]:
    """`<directory>/<name>` for each named model (`save_model`, with the tokenizer); returns name -> folder."""
    directory = Path(directory)
    return {name: save_model(model, directory / name, tokenizer) for name, model in models.items()}


def load_classifier(directory: str | Path, attention: str = "sdpa") -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """(tokenizer, model) of a folder written by `save_model`, in eval mode (sdpa attention for speed; `eager` to
    read the maps). A folder without a tokenizer is an error that names it."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"no saved model in {directory} (config.json missing)")
    model = AutoModelForSequenceClassification.from_pretrained(directory, attn_implementation=attention)
    return load_tokenizer(directory), model.eval()


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in a model folder; a folder without one is an error that names it (never a Hub id)."""
    directory = Path(directory)
    if not any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        raise FileNotFoundError(f"the model folder {directory} has no tokenizer; save models with `save_model`")
    return AutoTokenizer.from_pretrained(directory)


def head_mean_attention(model: PreTrainedModel, tokenizer, text: str, layer: str = "final", max_length: int = 64):
    """(tokens, the chosen layer's attention averaged over heads as an L x L array) for one text."""
    enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
    eager = model
    if model.training or model.config._attn_implementation != "eager":  # a copy: the model itself stays as it is
        eager = copy.deepcopy(model).eval()
        eager.config._attn_implementation = "eager"
    with torch.no_grad():
        out = eager(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_attentions=True)
    index = attention_layer_index(model.config.num_hidden_layers, layer)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return tokens, out.attentions[index][0].mean(0).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Efficiency of saved models: size, CPU speed, peak memory
# ---------------------------------------------------------------------------------------------------------------


def parameter_count(model: nn.Module) -> int:
    """All parameters (embeddings included, as the paper counts 559M / 69M)."""
    return sum(p.numel() for p in model.parameters())


def disk_size_mib(directory: str | Path) -> float:
    """Size of the saved weights (`*.safetensors`) in MiB."""
    return sum(f.stat().st_size for f in Path(directory).glob("*.safetensors")) / 2**20


@torch.inference_mode()
def _forward_seconds(model: PreTrainedModel, batches: Sequence[dict[str, torch.Tensor]]) -> list[float]:
    out = []
    for batch in batches:
        start = time.perf_counter()
        model(**batch)
        out.append(time.perf_counter() - start)
    return out


def _batches(tokenizer, texts: Sequence[str], batch_size: int, max_length: int) -> list[dict[str, torch.Tensor]]:
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return out


def speed_comparison(
    models: Mapping[str, PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    rounds: int = 5,
    latency_texts: int = 32,
    batch_size: int = 32,
) -> dict[str, float]:
    """`<name>_latency_ms` (median over single-text forwards) and `<name>_seq_per_s` (batch 32) per model, timed in
    interleaved rounds (one model after the other, `rounds` times) so that a noisy shared machine slows all alike;
    the median round is kept. Forward only, on pre-tokenized input."""
    singles = _batches(tokenizer, texts[:latency_texts], 1, max_length)
    batches = _batches(tokenizer, texts, batch_size, max_length)
    for model in models.values():  # warm-up
        _forward_seconds(model, singles[:2] + batches[:1])
    latency: dict[str, list[float]] = {name: [] for name in models}
    rate: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            latency[name].append(statistics.median(_forward_seconds(model, singles)) * 1000)
            rate[name].append(len(texts) / sum(_forward_seconds(model, batches)))
    out = {}
    for name in models:
        out[f"{name}_latency_ms"] = statistics.median(latency[name])
        out[f"{name}_seq_per_s"] = statistics.median(rate[name])
    return out


_MEMORY_SCRIPT = """
import json, resource, sys
import torch
from transformers import AutoConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING as MAPPING
directory, batch, length, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
config = AutoConfig.from_pretrained(directory)
cls = MAPPING[type(config)]

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

try:  # reset the high-water mark so that import-time peaks do not count (Linux >= 4.0)
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS:")
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = cls.from_pretrained(directory, attn_implementation="sdpa").eval()
ids = torch.randint(5, config.vocab_size, (batch, length))
with torch.inference_mode():
    model(input_ids=ids, attention_mask=torch.ones_like(ids))
after = status("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": (after - before) / 1024}))
"""


def peak_memory_mib(directory: str | Path, batch_size: int = 32, max_length: int = 32) -> float:
    """Peak RSS growth (MiB, high-water mark reset after imports) of a fresh process that loads the saved model
    and runs one forward at `batch_size` (weights + activations)."""
    args = [str(directory), str(batch_size), str(max_length), str(torch.get_num_threads())]
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, *args], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"])


def efficiency(
    model_dirs: Mapping[str, str | Path],
    texts: Sequence[str],
    max_length: int,
    rounds: int = 5,
    reference: str = "teacher",
    memory: bool = True,
) -> dict[str, dict[str, float]]:
    """Per saved model folder: params, disk MiB, latency ms, seq/s, peak MiB (NaN when `memory` is False), and
    speed-ups over `reference` (`speedup`: throughput ratio, `latency_speedup`). All models are timed in this one
    process, interleaved (`speed_comparison`), on the reference folder's tokenizer."""
    tokenizer = load_tokenizer(model_dirs[reference])
    models = {name: load_classifier(directory)[1] for name, directory in model_dirs.items()}
    speed = speed_comparison(models, tokenizer, texts, max_length, rounds)
    out = {}
    for name, directory in model_dirs.items():
        out[name] = {
            "params": parameter_count(models[name]),
            "disk_mib": disk_size_mib(directory),
            "latency_ms": speed[f"{name}_latency_ms"],
            "seq_per_s": speed[f"{name}_seq_per_s"],
            "peak_mib": peak_memory_mib(directory, 32, max_length) if memory else float("nan"),
        }
    for row in out.values():
        row["speedup"] = row["seq_per_s"] / out[reference]["seq_per_s"]
        row["latency_speedup"] = out[reference]["latency_ms"] / row["latency_ms"]
    return out
