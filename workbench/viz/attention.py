"""bertviz glue: an interactive head view of one text's attention, for any encoder from the registry."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from workbench.encoders import Encoder


@torch.no_grad()
def attention_of(encoder: Encoder, text: str, max_length: int = 128) -> tuple[list[str], tuple[torch.Tensor, ...]]:
    """Tokens and per-layer attention weights (1, heads, L, L) of one text (needs eager attention)."""
    batch = encoder.tokenize([text], max_length)
    out = encoder.model(**batch, output_attentions=True)
    if out.attentions is None or out.attentions[0] is None:
        raise ValueError("this encoder returns no attention weights: load it with load_encoder(name, attentions=True)")
    tokens = encoder.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    return tokens, tuple(a.cpu() for a in out.attentions)


def head_view(
    encoder: Encoder,
    text: str,
    max_length: int = 128,
    layers: Sequence[int] | None = None,
    html_action: str = "view",
):
    """Show bertviz's head view of `text` in the notebook (or return its HTML with `html_action="return"`)."""
    from bertviz import head_view as _bertviz_head_view

    tokens, attentions = attention_of(encoder, text, max_length)
    return _bertviz_head_view(
        list(attentions), tokens, include_layers=list(layers) if layers else None, html_action=html_action
    )
