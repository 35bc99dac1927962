"""End-to-end fine-tuning pieces for `workbench.training.fit`: an encoder + mean pooling + linear head classifier,
tokenized items, a dynamic-padding collate and a length-grouped batch sampler.

Dynamic padding pads each batch only to its longest text; grouping texts of similar length into a batch (sorted
within shuffled pools, batches then shuffled) removes most of the remaining padding, so that a step's cost follows
the real tokens rather than `max_length`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import SequenceClassifierOutput

from workbench.saving import HubModule


class EncoderClassifier(nn.Module, HubModule):
    """A Hugging Face encoder, mean pooling over the non-padding tokens, dropout and a linear head.

    `forward` returns a `SequenceClassifierOutput` with the logits, and the cross-entropy `loss` when `labels` are
    given, so the same module trains under `workbench.training.fit` (which computes its own loss from the logits) and
    under the Hugging Face `Trainer` (which reads `loss`). A `HubModule`: `save_pretrained(folder)` writes the
    encoder's config and every weight, `EncoderClassifier.from_pretrained(folder)` rebuilds it offline."""

    def __init__(self, encoder: PreTrainedModel, num_classes: int = 2, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mean of the final token states over the real tokens: what the head reads."""
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask.long()).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        logits = self.head(self.dropout(self.pooled(input_ids, attention_mask)))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def token_items(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], labels: Sequence[int], max_length: int = 128
) -> list[dict[str, torch.Tensor]]:
    """One `{"input_ids", "labels"}` item per text: token ids truncated at `max_length`, unpadded (the collate
    pads), so that a dataset is a plain list and an item's length is `len(item["input_ids"])`."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return [
        {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(int(label), dtype=torch.long)}
        for ids, label in zip(encoded, labels)
    ]


@dataclass
class PadCollator:
    """Dynamic padding: stack items into a batch padded to its longest sequence (right padding with `pad_id`), with
    the attention mask made from the lengths. A plain picklable callable (DataLoader workers)."""

    pad_id: int = 0

    def __call__(self, items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        ids = [item["input_ids"] for item in items]
        lengths = torch.tensor([len(x) for x in ids])
        input_ids = nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=self.pad_id)
        attention_mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()
        labels = torch.stack([torch.as_tensor(item["labels"]) for item in items])
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of indices with similar lengths: each epoch the indices are shuffled, cut into pools of
    `batch_size * pool_batches`, each pool sorted by length (ties broken at random) and cut into batches, and the
    batches shuffled. Seeded and deterministic: the e-th iteration always yields the same batches for the same seed,
    so two training loops given fresh samplers see identical batches."""

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool_batches: int = 50, drop_last: bool = False
    ):
        if batch_size < 1 or pool_batches < 1:
            raise ValueError(f"batch_size and pool_batches must be at least 1, not {batch_size}, {pool_batches}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.seed, self.pool_batches, self.drop_last = batch_size, seed, pool_batches, drop_last
        self.epoch = 0

    @classmethod
    def for_items(
        cls, items: Sequence[dict[str, torch.Tensor]], batch_size: int, **kwargs
    ) -> LengthGroupedBatchSampler:
        """A sampler over `token_items` output (lengths read from `input_ids`)."""
        return cls([len(item["input_ids"]) for item in items], batch_size, **kwargs)

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch (what the `epoch`-th iteration yields)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        tiebreak = rng.random(len(self.lengths))
        pool = self.batch_size * self.pool_batches
        out: list[list[int]] = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.lexsort((tiebreak[chunk], self.lengths[chunk]))]
            out.extend(chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size))
        if self.drop_last:
            out = [b for b in out if len(b) == self.batch_size]
        return [out[i] for i in rng.permutation(len(out))]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches(self.epoch)
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        n, b = len(self.lengths), self.batch_size
        if not self.drop_last:
            return -(-n // b)
        pool = b * self.pool_batches  # only the last batch of each pool can be short
        return sum(min(pool, n - s) // b for s in range(0, n, pool))


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of padding tokens in `batches` under dynamic padding (each batch padded to its longest item)."""
    lengths = np.asarray(lengths)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches if len(b))
    real = sum(int(lengths[b].sum()) for b in batches)
    return 1.0 - real / padded if padded else 0.0


def load_classifier(
    encoder: str = "minilm", num_classes: int = 2, seed: int = 0, dropout: float = 0.1
) -> tuple[EncoderClassifier, PreTrainedTokenizerBase]:
    """An `EncoderClassifier` over a named encoder (`workbench.encoders.load_encoder`: the offline default `minilm`,
    `tiny`, a folder or a hub id) with a seeded head, and its tokenizer."""
    from workbench.encoders import load_encoder

    loaded = load_encoder(encoder, seed=seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = EncoderClassifier(loaded.model, num_classes, dropout)
    return model, loaded.tokenizer


@torch.no_grad()
def classifier_logits(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int = 128,
    batch_size: int = 64,
    progress: bool = False,
    output: str = "logits",
) -> np.ndarray:
    """Logits (`output='logits'`) or the mean-pooled states the head reads (`output='pooled'`, an
    `EncoderClassifier`) for `texts`, in their order: evaluated in length-sorted batches with dynamic padding (a batch
    costs its longest text, so sorting saves most of the padding on long-tailed data such as IMDB reviews)."""
    from tqdm.auto import tqdm

    if output not in ("logits", "pooled"):
        raise ValueError(f"output must be 'logits' or 'pooled', not {output!r}")
    items = token_items(tokenizer, texts, [0] * len(texts), max_length)
    order = np.argsort([len(item["input_ids"]) for item in items], kind="stable")
    collate = PadCollator(tokenizer.pad_token_id or 0)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    for start in tqdm(range(0, len(order), batch_size), desc="scoring", disable=not progress, leave=False):
        batch = collate([items[i] for i in order[start : start + batch_size]])
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        values = model.pooled(ids, mask) if output == "pooled" else model(input_ids=ids, attention_mask=mask).logits
        chunks.append(values.float().cpu().numpy())
    model.train(was_training)
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    out = np.empty((len(items), chunks[0].shape[1]), dtype=np.float32)
    out[order] = np.concatenate(chunks)
    return out


def fit_classifier(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    dev_texts: Sequence[str] | None,
    dev_labels: Sequence[int] | None,
    num_classes: int,
    config,
    max_length: int = 128,
    desc: str = "fine-tuning",
):
    """Train a built text classifier (ours or a Hugging Face `...ForSequenceClassification`) end to end under
    `workbench.training.fit`: length-grouped batches with dynamic padding, the config's schedule, warm-up, gradient
    accumulation and freezing, early stopping on dev macro-F1 when a dev split is given. Returns the history."""
    from workbench.training import fit

    train = token_items(tokenizer, train_texts, train_labels, max_length)
    dev = token_items(tokenizer, dev_texts, dev_labels, max_length) if dev_texts is not None else None
    sampler = LengthGroupedBatchSampler.for_items(train, config.batch_size, seed=config.seed)
    return fit(
        model,
        train,
        dev,
        config,
        collate_fn=PadCollator(tokenizer.pad_token_id or 0),
        batch_sampler=sampler,
        num_classes=num_classes,
        desc=desc,
    )


def finetune_classifier(
    encoder: str,
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    dev_texts: Sequence[str] | None,
    dev_labels: Sequence[int] | None,
    num_classes: int,
    config,
    max_length: int = 128,
    dropout: float = 0.1,
):
    """Fine-tune `encoder` end to end with mean pooling and a linear head (`EncoderClassifier`) under
    `workbench.training.fit`: length-grouped batches with dynamic padding, the config's schedule, warm-up, gradient
    accumulation and freezing, early stopping on dev macro-F1 when a dev split is given.

    Returns `(model, tokenizer, history)`; score new texts with `classifier_logits`."""
    model, tokenizer = load_classifier(encoder, num_classes, seed=config.seed, dropout=dropout)
    history = fit_classifier(
        model, tokenizer, train_texts, train_labels, dev_texts, dev_labels, num_classes, config, max_length
    )
    return model, tokenizer, history
