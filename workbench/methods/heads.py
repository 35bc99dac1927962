"""Classification heads over an encoder's token states (the BESSTIE figurative-language study), and the two ways
of feeding them: token states cached from a frozen encoder, or an encoder fine-tuned end to end with the head.

Every head takes `states` (batch, L, hidden) and a boolean `mask` (batch, L) (True on real tokens, padding at the
end) and returns logits. Single-task heads return one tensor (batch, classes); the multitask CrossTalk head returns
a tuple (sentiment logits, sarcasm logits). Heads are registered as kind `"head"` and built by name with
`workbench.registry.build("head", name, hidden_size, num_classes, **options)`, so one experiment loop (and one
parametrized test) covers them all. `SequenceClassifier` puts a head on a transformer for end-to-end fine-tuning
(`FineTunedEncoder`); with a frozen encoder the same heads train on cached token states (`CachedStates`). The `spatten`
head (SpAtten + Linear) is the Linear head fed by a pruned encoder pass: `for_head` hands it `PrunedCachedStates` or
`PrunedFineTunedEncoder` (SpAtten's cascade token pruning, `workbench.methods.spatten`), in training and testing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from workbench.encoders import Encoder, ShardCache, TokenStates, encode_tokens, run_layers, text_key
from workbench.methods.spatten import CascadePruner, PruneSchedule, token_lengths
from workbench.registry import get, register
from workbench.saving import HubModule


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the token axis of (batch, L, d) values, counting only positions where `mask` is True."""
    weights = mask.to(values.dtype).unsqueeze(-1)
    return (values * weights).sum(1) / weights.sum(1).clamp(min=1.0)


@register("head", "linear")
class LinearHead(nn.Module, HubModule):
    """Dropout and a linear layer on the first ([CLS]) token state (`pooling="cls"`, the study's head), or on the
    mean of the real tokens' states (`pooling="mean"`: for frozen sentence-transformer encoders such as
    all-MiniLM-L6-v2, which were trained to be read by mean pooling and whose [CLS] state was never trained)."""

    num_tasks = 1

    def __init__(self, hidden_size: int, num_classes: int = 2, dropout: float = 0.1, pooling: str = "cls"):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', not {pooling!r}")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = states[:, 0] if self.pooling == "cls" else masked_mean(states, mask)
        return self.classifier(self.dropout(pooled))


class ConvPool(nn.Module):
    """1-D convolution over tokens (hidden size as input channels), ReLU, masked global average pooling.

    Padding positions are zeroed before the convolution, so a text's last tokens see the same zeros whether the
    batch is padded further or not (the encoder's states at padding positions are not zero when fine-tuning)."""

    def __init__(self, hidden_size: int, channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(hidden_size, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = states * mask.unsqueeze(-1).to(states.dtype)
        features = torch.relu(self.conv(states.transpose(1, 2))).transpose(1, 2)
        return masked_mean(features[:, : mask.shape[1]], mask)


@register("head", "cnn")
class CNNHead(nn.Module, HubModule):
    """Convolution over the token axis, ReLU, masked global average pooling, dropout, linear."""

    num_tasks = 1

    def __init__(
        self, hidden_size: int, num_classes: int = 2, dropout: float = 0.1, channels: int = 128, kernel_size: int = 3
    ):
        super().__init__()
        self.encoder = ConvPool(hidden_size, channels, kernel_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.encoder(states, mask)))


@register("head", "bilstm")
class BiLSTMHead(nn.Module, HubModule):
    """One bidirectional LSTM layer over the real tokens (packed, so padding is never read); the output at the
    first position (forward state after [CLS], backward state after the whole text) goes through a linear layer."""

    num_tasks = 1

    def __init__(self, hidden_size: int, num_classes: int = 2, dropout: float = 0.1, lstm_hidden: int = 128):
        super().__init__()
        self.lstm = nn.LSTM(hidden_size, lstm_hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * lstm_hidden, num_classes)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(states, lengths, batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True)
        return self.classifier(self.dropout(output[:, 0]))


class CrossTalkLayer(nn.Module):
    """One exchange between the sentiment and sarcasm representations: each is updated from both,
    s' = s + ReLU(W_s [s; r]), r' = r + ReLU(W_r [r; s]), so each task can read what the other has found."""

    def __init__(self, dim: int):
        super().__init__()
        self.to_sentiment = nn.Linear(2 * dim, dim)
        self.to_sarcasm = nn.Linear(2 * dim, dim)

    def forward(self, sentiment: torch.Tensor, sarcasm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new_sentiment = sentiment + torch.relu(self.to_sentiment(torch.cat([sentiment, sarcasm], -1)))
        new_sarcasm = sarcasm + torch.relu(self.to_sarcasm(torch.cat([sarcasm, sentiment], -1)))
        return new_sentiment, new_sarcasm


@register("head", "crosstalk")
class CrossTalkHead(nn.Module, HubModule):
    """Multitask head: a shared convolutional encoder over the token states, projections into a sentiment and a
    sarcasm space, `layers` cross-talk exchanges between the two, and one classifier per task.

    Returns (sentiment logits, sarcasm logits). Only the two classifiers are task-specific: every other parameter
    receives gradients from both losses, which is what PCGrad (`workbench.methods.pcgrad`) operates on.
    """

    num_tasks = 2
    task_names = ("sentiment", "sarcasm")

    def __init__(
        self,
        hidden_size: int,
        num_classes: int | tuple[int, int] = 2,
        dropout: float = 0.1,
        channels: int = 128,
        kernel_size: int = 3,
        task_dim: int = 64,
        layers: int = 1,
    ):
        super().__init__()
        classes = (num_classes, num_classes) if isinstance(num_classes, int) else tuple(num_classes)
        self.encoder = ConvPool(hidden_size, channels, kernel_size)
        self.to_sentiment = nn.Linear(channels, task_dim)
        self.to_sarcasm = nn.Linear(channels, task_dim)
        self.cross_talk = nn.ModuleList(CrossTalkLayer(task_dim) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.sentiment_classifier = nn.Linear(task_dim, classes[0])
        self.sarcasm_classifier = nn.Linear(task_dim, classes[1])

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = self.dropout(self.encoder(states, mask))
        sentiment, sarcasm = torch.relu(self.to_sentiment(shared)), torch.relu(self.to_sarcasm(shared))
        for layer in self.cross_talk:
            sentiment, sarcasm = layer(sentiment, sarcasm)
        return self.sentiment_classifier(self.dropout(sentiment)), self.sarcasm_classifier(self.dropout(sarcasm))


class SequenceClassifier(nn.Module, HubModule):
    """A transformer encoder with a head on its token states (the final layer, or the mean of the last `layers`:
    `workbench.encoders.run_layers`), for end-to-end fine-tuning (paper profile).

    `forward(input_ids, attention_mask, token_type_ids=None)` returns what the head returns.
    """

    def __init__(self, encoder_model: nn.Module, head: nn.Module, layers: int = 1):
        super().__init__()
        self.encoder = encoder_model
        self.head = head
        self.layers = layers
        self.num_tasks = getattr(head, "num_tasks", 1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, **extra}
        return self.head(run_layers(self.encoder, batch, self.layers), attention_mask.bool())


def token_state_dataset(states: np.ndarray, mask: np.ndarray, *labels: np.ndarray) -> TensorDataset:
    """A dataset of cached token states (kept in their stored dtype, float16 from the cache) and label arrays;
    batch it with `collate_token_states`, which trims padding and casts to float32."""
    tensors = [torch.from_numpy(np.ascontiguousarray(states)), torch.from_numpy(np.ascontiguousarray(mask))]
    tensors += [torch.tensor(np.asarray(y, dtype=np.int64)) for y in labels]
    return TensorDataset(*tensors)


def collate_token_states(items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack a batch of (states, mask, *labels), cut the padding columns no text in the batch uses, float32."""
    states, mask, *labels = (torch.stack(column) for column in zip(*items))
    width = max(int(mask.sum(1).max()), 1)
    return (states[:, :width].float(), mask[:, :width], *labels)


def collate_token_ids(items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack (input_ids, attention_mask, *labels) and cut the padding columns no text in the batch uses."""
    ids, mask, *labels = (torch.stack(column) for column in zip(*items))
    width = max(int(mask.sum(1).max()), 1)
    return (ids[:, :width], mask[:, :width], *labels)


class CachedStates:
    """Frozen encoder: every text's token states (the mean of the last `layers` layers) are computed once (and
    cached on disk); heads train on them directly."""

    finetune = False
    pruned: PrunedCachedStates | None = None  # the SpAtten-pruned states of the same texts (`for_head`)

    def __init__(
        self,
        encoder: Encoder,
        texts: Sequence[str],
        max_length: int,
        progress: bool = True,
        layers: int = 1,
        schedule: PruneSchedule | None = None,
    ):
        self.encoder, self.max_length, self.layers = encoder, max_length, layers
        self.encoder_name, self.hidden_size = encoder.name, encoder.hidden_size
        tokens = self._token_states(list(texts), progress)
        self.states, self.mask = tokens.states, tokens.mask
        self.index = {text: i for i, text in enumerate(texts)}
        self.collate = collate_token_states
        if schedule is not None:
            self.pruned = PrunedCachedStates(encoder, texts, max_length, schedule, progress, layers)

    def _token_states(self, texts: list[str], progress: bool) -> TokenStates:
        return encode_tokens(texts, self.encoder, max_length=self.max_length, progress=progress, layers=self.layers)

    def for_head(self, variant: str) -> CachedStates:
        """The inputs of head `variant`: these states, or the SpAtten-pruned ones for a head that prunes tokens."""
        return _inputs_for(self, variant)

    def memory_mapped(self, folder: str | Path, name: str = "states") -> CachedStates:
        """A copy whose states and mask (and the pruned ones, if any) live in .npy files under `folder`, opened
        read-only as memory maps. Worker processes (`workbench.parallel.parallel_map`) receive such arrays by
        reference, sharing the pages, where in-memory ones would be hashed again for every call."""
        mapped = object.__new__(type(self))  # not copy.copy: that goes through __getstate__, dropping the encoder
        mapped.__dict__.update(self.__dict__)
        for attribute in ("states", "mask"):
            path = Path(folder) / f"{name}-{attribute}.npy"
            np.save(path, getattr(self, attribute))
            setattr(mapped, attribute, np.load(path, mmap_mode="r"))
        if self.pruned is not None:
            mapped.pruned = self.pruned.memory_mapped(folder, f"{name}-pruned")
        return mapped

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the encoder: a copy in another process trains and scores heads on the states, which need
        no encoder (and a Hugging Face model that has returned attention maps does not pickle)."""
        return {**self.__dict__, "encoder": None}

    def dataset(self, frame: pd.DataFrame, label_columns: Sequence[str]) -> Dataset:
        """(states, mask, *labels) of `frame`'s texts (each must be among the encoded texts)."""
        rows = np.array([self.index[text] for text in frame["text"]], dtype=np.int64)
        states, mask = (_mapped_for_this_read(a) for a in (self.states, self.mask))
        return token_state_dataset(states[rows], mask[rows], *(frame[c].to_numpy() for c in label_columns))

    def model(self, head: nn.Module) -> nn.Module:
        """What to train: the head alone."""
        return head


def _mapped_for_this_read(array: np.ndarray) -> np.ndarray:
    """`array`, or for a memory-mapped .npy file (`CachedStates.memory_mapped`) a fresh map of it that is dropped after
    the read: the pages read then leave this process's resident memory with it, where the long-lived map would keep
    every page ever read (a worker would grow by the whole file, and loky restarts workers that grow)."""
    if isinstance(array, np.memmap) and array.filename:
        return np.load(array.filename, mmap_mode="r")
    return array


class FineTunedEncoder:
    """End-to-end fine-tuning: every head gets its own fresh copy of the pretrained encoder (`SequenceClassifier`),
    so no model sees another one's updates."""

    finetune = True
    pruned: PrunedFineTunedEncoder | None = None  # the same encoder fine-tuned with SpAtten pruning on (`for_head`)

    def __init__(self, encoder: Encoder, max_length: int, layers: int = 1, schedule: PruneSchedule | None = None):
        self.encoder, self.max_length, self.layers = encoder, max_length, layers
        self.collate = collate_token_ids
        self._initial = {k: v.detach().cpu().clone() for k, v in encoder.model.state_dict().items()}
        if schedule is not None:
            self.pruned = PrunedFineTunedEncoder(encoder, max_length, layers, schedule, initial=self._initial)

    def for_head(self, variant: str) -> FineTunedEncoder:
        """The inputs of head `variant`: this encoder, or its SpAtten-pruned twin for a head that prunes tokens."""
        return _inputs_for(self, variant)

    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    @property
    def encoder_name(self) -> str:
        return self.encoder.name

    def dataset(self, frame: pd.DataFrame, label_columns: Sequence[str]) -> Dataset:
        """(input_ids, attention_mask, *labels) of `frame`'s texts, padded to `max_length`."""
        batch = self.encoder.tokenizer(
            list(frame["text"]), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        labels = [torch.tensor(frame[c].to_numpy(dtype=np.int64)) for c in label_columns]
        return TensorDataset(batch["input_ids"], batch["attention_mask"], *labels)

    def model(self, head: nn.Module) -> nn.Module:
        """What to train: a copy of the pretrained encoder with `head` on its token states."""
        encoder = copy.deepcopy(self.encoder.model)
        encoder.load_state_dict(self._initial)
        encoder.train()
        return SequenceClassifier(encoder, head, self.layers)


# ---------------------------------------------------------------------------------------------- SpAtten + Linear


@register("head", "spatten")
class SpAttenLinearHead(LinearHead):
    """SpAtten + Linear (the figurative-language study's pruning variant): the Linear head over the tokens that
    SpAtten's cascade token pruning kept to the encoder's last layer.

    The pruning happens in the encoder pass, not in this module: `prunes_tokens` makes `for_head` feed it the
    states of a pruned pass (`PrunedCachedStates` for a frozen encoder, `PrunedFineTunedEncoder` when fine-tuning),
    in training and testing alike, so it is trained with pruning on. It reads the [CLS] state (never pruned, but it
    has attended only to kept tokens) or the mean of the kept tokens' states (`pooling`)."""

    prunes_tokens = True


def prunes_tokens(variant: str) -> bool:
    """Whether head variant `variant` (`spatten`, `crosstalk+pcgrad`, ...) reads SpAtten-pruned token states."""
    return bool(getattr(get("head", variant.split("+")[0]), "prunes_tokens", False))


def _inputs_for(inputs: CachedStates | FineTunedEncoder, variant: str):
    if not prunes_tokens(variant):
        return inputs
    if inputs.pruned is None:
        raise ValueError(
            f"head {variant!r} reads SpAtten-pruned token states: build its inputs with a PruneSchedule (schedule=)"
        )
    return inputs.pruned


def spatten_schedule(encoder: Encoder, token_keep: float, head_keep: float = 1.0) -> PruneSchedule:
    """SpAtten's schedule shape over `encoder`'s layers (`PruneSchedule.spatten`): the first ~15% of layers keep
    every token, the first ~30% every head, then the kept share decays to `token_keep` / `head_keep` at the last."""
    return PruneSchedule.spatten(encoder.num_layers, token_keep=token_keep, head_keep=head_keep)


@torch.inference_mode()
def pruned_token_states(
    texts: Sequence[str],
    encoder: Encoder,
    schedule: PruneSchedule,
    *,
    max_length: int = 128,
    layers: int = 1,
    batch_size: int = 64,
    cache: bool = True,
    progress: bool = True,
) -> TokenStates:
    """States of the tokens SpAtten's cascade keeps to the last layer under `schedule` (`CascadePruner`: tokens and
    heads really removed, by accumulated attention), each kept token's final state or the mean of its last `layers`
    layers, in original token order, padded; cached on disk like `encode_tokens`, keyed by the schedule too."""
    settings = {
        "kind": "spatten tokens",
        "max_length": max_length,
        "layers": layers,
        "token_keep": list(schedule.token_keep),
        "head_keep": list(schedule.head_keep),
    }
    store = ShardCache(encoder, settings, cache)
    keys = [text_key(t) for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in store.items}.items(), key=lambda kv: len(kv[1]))
    pruner = CascadePruner.from_encoder(encoder, schedule).eval()
    bar = tqdm(total=len(todo), desc=f"pruned pass ({encoder.name}, {schedule.name})", disable=not progress or not todo)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        batch = encoder.tokenize([t for _, t in chunk], max_length)
        out = pruner(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), state_layers=layers)
        states = (out.last_hidden_state if out.kept_layer_mean is None else out.kept_layer_mean).float()
        store.save([k for k, _ in chunk], [s[m].cpu().numpy().astype(np.float16) for s, m in zip(states, out.mask)])
        bar.update(len(chunk))
    bar.close()
    arrays = [store.items[k] for k in keys]
    width = max((len(a) for a in arrays), default=0)
    out_states = np.zeros((len(arrays), width, encoder.hidden_size), np.float16)
    mask = np.zeros((len(arrays), width), bool)
    for i, a in enumerate(arrays):
        out_states[i, : len(a)] = a
        mask[i, : len(a)] = True
    return TokenStates(states=out_states, mask=mask)


class PrunedCachedStates(CachedStates):
    """Frozen encoder with SpAtten token pruning: every text's kept tokens' states (`pruned_token_states`) are
    computed once and cached; the `spatten` head trains on them. `kept_share` is the mean share of each text's real
    tokens that reached the last layer."""

    def __init__(
        self,
        encoder: Encoder,
        texts: Sequence[str],
        max_length: int,
        schedule: PruneSchedule,
        progress: bool = True,
        layers: int = 1,
    ):
        self.schedule = schedule
        super().__init__(encoder, texts, max_length, progress, layers)
        real = token_lengths(list(texts), encoder, max_length)
        self.kept_share = float(np.mean(self.mask.sum(1) / np.maximum(real, 1))) if len(real) else float("nan")

    def _token_states(self, texts: list[str], progress: bool) -> TokenStates:
        return pruned_token_states(
            texts, self.encoder, self.schedule, max_length=self.max_length, layers=self.layers, progress=progress
        )

    def for_head(self, variant: str) -> PrunedCachedStates:
        return self


class PrunedSequenceClassifier(nn.Module, HubModule):
    """A transformer encoder run by SpAtten's `CascadePruner` (tokens and heads removed per sample as `schedule`
    says) with a head on the kept tokens' states: end-to-end fine-tuning with pruning on. Gradients reach the
    encoder through the kept tokens; which tokens are kept is not differentiated. The pruned pass re-implements the
    BERT layer without its attention and feed-forward dropout (the embeddings' dropout stays)."""

    def __init__(
        self,
        encoder_model: nn.Module,
        head: nn.Module,
        schedule: PruneSchedule,
        protected_ids: Sequence[int] = (),
        layers: int = 1,
    ):
        super().__init__()
        self.pruner = CascadePruner(encoder_model, schedule, protected_ids)
        self.head = head
        self.layers = layers
        self.num_tasks = getattr(head, "num_tasks", 1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.pruner(input_ids, attention_mask, token_type_ids, state_layers=self.layers)
        states = out.last_hidden_state if out.kept_layer_mean is None else out.kept_layer_mean
        return self.head(states, out.mask)


class PrunedFineTunedEncoder(FineTunedEncoder):
    """End-to-end fine-tuning with SpAtten pruning on: every head gets a fresh copy of the pretrained encoder inside
    a `PrunedSequenceClassifier`."""

    def __init__(
        self,
        encoder: Encoder,
        max_length: int,
        layers: int,
        schedule: PruneSchedule,
        initial: dict[str, torch.Tensor] | None = None,
    ):
        self.encoder, self.max_length, self.layers, self.schedule = encoder, max_length, layers, schedule
        self.collate = collate_token_ids
        self._initial = initial or {k: v.detach().cpu().clone() for k, v in encoder.model.state_dict().items()}
        tokenizer = encoder.tokenizer
        self.protected_ids = [i for i in tokenizer.all_special_ids if i != tokenizer.pad_token_id]

    def for_head(self, variant: str) -> PrunedFineTunedEncoder:
        return self

    def model(self, head: nn.Module) -> nn.Module:
        """What to train: a copy of the pretrained encoder, run with pruning, with `head` on its kept tokens."""
        encoder = copy.deepcopy(self.encoder.model)
        encoder.load_state_dict(self._initial)
        encoder.train()
        return PrunedSequenceClassifier(encoder, head, self.schedule, self.protected_ids, self.layers)
