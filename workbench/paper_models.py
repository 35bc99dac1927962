"""The paper models' architectures, from their published configuration values, for `--dry-run`.

`workbench run ... --profile paper --dry-run` exercises every paper code path on a CPU without downloading anything:
`load_encoder` / `load_teacher` build each hub model named here from these values with random weights (seeded) and
the offline MiniLM WordPiece tokenizer as a stand-in (its ids fit every vocabulary below), every training takes one
optimisation step, and each study caps its rows. Shape, memory and code-path errors show up; the numbers mean nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig

DRY_RUN_ENV = "WORKBENCH_DRY_RUN"

# Published `config.json` values of the models the paper profiles name (architecture only; no weights).
PAPER_ARCHITECTURES: dict[str, dict[str, object]] = {
    "bert-base-uncased": dict(
        model_type="bert",
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        type_vocab_size=2,
    ),
    "bert-large-uncased": dict(
        model_type="bert",
        vocab_size=30522,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=512,
        type_vocab_size=2,
    ),
    "castorini/afriberta_large": dict(
        model_type="xlm-roberta",
        vocab_size=70006,
        hidden_size=768,
        num_hidden_layers=10,
        num_attention_heads=6,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
    ),
    # Smaller African-language candidates for a CPU teacher (`workbench bench teachers`). Layers, width, heads and
    # feed-forward size from their model cards; vocabularies: AfriBERTa's 70k SentencePiece (as afriberta_large),
    # XLM-R's 250k for afro-xlmr-mini (MLM adaptation of mMiniLMv2-L12-H384, vocabulary not reduced) and -base.
    "castorini/afriberta_base": dict(
        model_type="xlm-roberta",
        vocab_size=70006,
        hidden_size=768,
        num_hidden_layers=8,
        num_attention_heads=6,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
    ),
    "Davlan/afro-xlmr-mini": dict(
        model_type="xlm-roberta",
        vocab_size=250002,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
    ),
    "Davlan/afro-xlmr-base": dict(
        model_type="xlm-roberta",
        vocab_size=250002,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
    ),
    "Davlan/afro-xlmr-large": dict(
        model_type="xlm-roberta",
        vocab_size=250002,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
    ),
    "xlm-roberta-base": dict(
        model_type="xlm-roberta",
        vocab_size=250002,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
    ),
}


def dry_run() -> bool:
    """True inside a `--dry-run` (the runner sets WORKBENCH_DRY_RUN=1 for the notebook's kernel)."""
    return os.environ.get(DRY_RUN_ENV, "") not in ("", "0", "false", "False")


def paper_config(name: str, **overrides: object) -> PretrainedConfig:
    """The Transformers config of a paper model, from the published values kept above."""
    if name not in PAPER_ARCHITECTURES:
        raise KeyError(f"no published architecture kept for {name!r}; known: {', '.join(PAPER_ARCHITECTURES)}")
    from transformers import AutoConfig

    values = dict(PAPER_ARCHITECTURES[name])
    return AutoConfig.for_model(values.pop("model_type"), **values, **overrides)
