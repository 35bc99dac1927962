"""SpAtten views: the mask explorer widget (layers x tokens grid, query/key mask per layer, per-sample head mask,
bertviz head view of the pruned model) and the accuracy-versus-speed figures."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from workbench.encoders import Encoder
from workbench.methods.spatten import CascadePruner, PruneSchedule, keep_summary
from workbench.viz.attention import head_view_html, show_html
from workbench.viz.widgets import show_in


@dataclass
class PruningTrace:
    """One text's pruning under one schedule: tokens, which layer kept which token and head, importance, attention."""

    tokens: list[str]
    schedule: PruneSchedule
    token_masks: np.ndarray  # (layers, tokens) bool
    head_masks: np.ndarray  # (layers, heads) bool
    token_importance: np.ndarray  # (tokens,) accumulated attention received
    attentions: list[torch.Tensor]  # per layer (1, heads, tokens, tokens), zeros where pruned

    @property
    def kept_per_layer(self) -> list[int]:
        return [int(v) for v in self.token_masks.sum(1)]


@torch.inference_mode()
def trace_pruning(encoder: Encoder, text: str, schedule: PruneSchedule, max_length: int = 128) -> PruningTrace:
    """Run one text through the cascade pruner and keep everything the explorer shows."""
    batch = encoder.tokenize([text], max_length)
    pruner = CascadePruner.from_encoder(encoder, schedule).eval()
    out = pruner(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), output_attentions=True)
    return PruningTrace(
        tokens=encoder.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist()),
        schedule=schedule,
        token_masks=out.token_masks[0].cpu().numpy(),
        head_masks=out.head_masks[0].cpu().numpy(),
        token_importance=out.token_importance[0].float().cpu().numpy(),
        attentions=[a.cpu() for a in out.attentions],
    )


# Wide grids scroll inside their own box (row labels and the column header stay put), so the explorer's sliders
# stay in view however long the sentence; `min-width: 0` lets the widget boxes shrink below the tables' width.
_STYLE = """<style>
.wb-scroll {overflow: auto; max-width: 100%; max-height: 26em; line-height: normal}
.wb-grid {border-collapse: separate; border-spacing: 0; font: 12px monospace; margin: 4px 0}
.wb-grid td, .wb-grid th {border: 1px solid #ddd; padding: 2px 4px; text-align: center; white-space: nowrap}
.wb-grid td.wb-pruned {background: #f3f3f3; color: #bbb; text-decoration: line-through}
.wb-grid th {background: #fafafa; font-weight: normal; color: #555}
.wb-grid th:first-child {position: sticky; left: 0; z-index: 2}
.wb-grid tr.wb-colhead th {position: sticky; top: 0; z-index: 1}
.wb-grid tr.wb-colhead th:first-child {z-index: 3}
.wb-mask-explorer, .wb-mask-explorer .widget-html, .wb-mask-explorer .widget-html-content {min-width: 0; max-width: 100%}
</style>"""


def _scroll(table: str) -> str:
    return f'<div class="wb-scroll">{table}</div>'


def token_grid_html(trace: PruningTrace) -> str:
    """Layers x tokens table (like SpAtten's Figure 11): a kept token is shaded by its final accumulated importance,
    a pruned one is greyed and struck through. Each row says how many tokens that layer processed."""
    importance = trace.token_importance
    top = float(importance.max()) or 1.0
    rows = []
    for layer, kept in enumerate(trace.token_masks):
        cells = []
        for token, alive, score in zip(trace.tokens, kept, importance):
            label = html.escape(token)
            if alive:
                alpha = 0.15 + 0.85 * float(score) / top
                cells.append(f'<td class="wb-kept" style="background: rgba(33,113,181,{alpha:.2f})">{label}</td>')
            else:
                cells.append(f'<td class="wb-pruned">{label}</td>')
        header = f"<th>layer {layer} ({int(kept.sum())}/{len(kept)})</th>"
        rows.append(f"<tr>{header}{''.join(cells)}</tr>")
    summary = "/".join(str(k) for k in trace.kept_per_layer)
    return (
        f'{_STYLE}<div class="wb-token-grid" data-kept="{summary}">'
        f"<b>Tokens kept per layer</b> ({html.escape(keep_summary(trace.schedule))})"
        + _scroll(f'<table class="wb-grid">{"".join(rows)}</table>')
        + "</div>"
    )


def head_grid_html(trace: PruningTrace) -> str:
    """Layers x heads table of this text's head mask: which heads each layer computed."""
    header = "".join(f"<th>h{h}</th>" for h in range(trace.head_masks.shape[1]))
    rows = []
    for layer, kept in enumerate(trace.head_masks):
        cells = "".join(
            '<td class="wb-kept" style="background: #9ecae1">on</td>' if k else '<td class="wb-pruned">off</td>'
            for k in kept
        )
        rows.append(f"<tr><th>layer {layer} ({int(kept.sum())})</th>{cells}</tr>")
    table = f'<table class="wb-grid"><tr class="wb-colhead"><th></th>{header}</tr>{"".join(rows)}</table>'
    return f'{_STYLE}<div class="wb-head-grid"><b>Heads computed per layer</b>{_scroll(table)}</div>'


def query_key_mask_html(trace: PruningTrace, layer: int) -> str:
    """Queries x keys of one layer: mean attention over the computed heads where both tokens are kept (shaded
    relative to the layer's largest value), blank where the query or the key was pruned before this layer (that score
    was never computed)."""
    attention = trace.attentions[layer][0]
    heads = trace.head_masks[layer]
    mean = attention[torch.from_numpy(heads)].mean(0).numpy()
    kept = trace.token_masks[layer]
    computed = mean[np.ix_(kept, kept)]
    top = float(computed.max()) if computed.size else 1.0
    tokens = [html.escape(t) for t in trace.tokens]
    header = "".join(f"<th>{t}</th>" for t in tokens)
    rows = []
    for i, query in enumerate(tokens):
        cells = []
        for j in range(len(tokens)):
            if kept[i] and kept[j]:
                alpha = 0.05 + 0.95 * float(mean[i, j]) / (top or 1.0)
                cells.append(f'<td class="wb-kept" style="background: rgba(203,24,29,{alpha:.2f})"></td>')
            else:
                cells.append('<td class="wb-pruned"></td>')
        rows.append(f"<tr><th>{query}</th>{''.join(cells)}</tr>")
    table = f'<table class="wb-grid"><tr class="wb-colhead"><th></th>{header}</tr>{"".join(rows)}</table>'
    return (
        f'{_STYLE}<div class="wb-qk-grid"><b>Layer {layer}: query (rows) x key (columns) mask, shaded by attention'
        f"</b>{_scroll(table)}</div>"
    )


def keep_readout_html(trace: PruningTrace) -> str:
    """What the pruned model actually computes for this text: the last layer's kept tokens and heads, and the head
    count of every layer. The sliders set keep *ratios*; a layer keeps ceil(ratio x real tokens) tokens and
    max(1, round(ratio x heads)) heads, so the count can differ from ratio x total (e.g. 0.3 of 2 heads is 1 head)."""
    tokens = trace.kept_per_layer
    heads = [int(v) for v in trace.head_masks.sum(1)]
    n_tokens, n_heads = trace.token_masks.shape[1], trace.head_masks.shape[1]
    return (
        f'<div class="wb-keep-readout" data-tokens="{tokens[-1]}" data-heads="{heads[-1]}">'
        f"last layer computes <b>{tokens[-1]} of {n_tokens} tokens</b> and <b>{heads[-1]} of {n_heads} heads</b>"
        f" (heads per layer: {'/'.join(map(str, heads))})</div>"
    )


def pruned_head_view(trace: PruningTrace, html_action: str = "return"):
    """bertviz head view of the pruned model's attention (pruned tokens and heads carry zero attention), drawn with
    the scripts shipped in the package (works offline and in JupyterLab): an `IPython.display.HTML` with
    `html_action="return"`, shown in the cell with `"view"`."""
    return show_html(head_view_html(trace.attentions, trace.tokens), html_action)


def mask_explorer(
    encoder: Encoder,
    texts: Sequence[str],
    token_keep: float = 0.3,
    head_keep: float = 1.0,
    token_start: float = 0.15,
    head_start: float = 0.30,
    max_length: int = 64,
    show_head_view: bool = False,
):
    """An ipywidgets explorer: pick or type a sentence, move the token / head keep sliders (the last layer's keep
    ratio of a SpAtten-shaped schedule), pick a layer for its query/key mask; the grids update on every change.
    Beside the sliders, a readout says how many tokens and heads the last layer actually computes."""
    import ipywidgets as widgets

    sentence = widgets.Combobox(
        options=list(dict.fromkeys(texts)),
        value=texts[0] if texts else "",
        placeholder="type or pick a sentence",
        description="sentence",
        ensure_option=False,
        layout=widgets.Layout(width="95%"),
    )
    style = {"description_width": "initial"}
    token_slider = widgets.FloatSlider(
        value=token_keep, min=0.05, max=1.0, step=0.05, description="token keep (last layer)", style=style
    )
    head_slider = widgets.FloatSlider(
        value=head_keep, min=0.1, max=1.0, step=0.05, description="head keep ratio (last layer)", style=style
    )
    readout = widgets.HTML()
    readout.add_class("wb-keep-readout-box")
    layer_slider = widgets.IntSlider(
        value=encoder.num_layers - 1,
        min=0,
        max=encoder.num_layers - 1,
        description="layer (query/key mask)",
        style=style,
    )
    wide = widgets.Layout(width="100%")
    tokens_view, heads_view, qk_view = widgets.HTML(layout=wide), widgets.HTML(layout=wide), widgets.HTML(layout=wide)
    bertviz_view = widgets.Output()
    state: dict[str, PruningTrace] = {}

    def refresh(_=None) -> None:
        text = sentence.value.strip() or (texts[0] if texts else "")
        schedule = PruneSchedule.spatten(
            encoder.num_layers, token_slider.value, head_slider.value, token_start, head_start
        )
        trace = trace_pruning(encoder, text, schedule, max_length)
        state["trace"] = trace
        readout.value = keep_readout_html(trace)
        tokens_view.value = token_grid_html(trace)
        heads_view.value = head_grid_html(trace)
        qk_view.value = query_key_mask_html(trace, layer_slider.value)
        if show_head_view:
            from IPython.display import HTML

            show_in(bertviz_view, HTML(head_view_html(trace.attentions, trace.tokens)))

    def refresh_layer(_=None) -> None:
        if "trace" in state:
            qk_view.value = query_key_mask_html(state["trace"], layer_slider.value)

    for control in (sentence, token_slider, head_slider):
        control.observe(refresh, names="value")
    layer_slider.observe(refresh_layer, names="value")
    refresh()
    box = widgets.VBox(
        [
            sentence,
            widgets.HBox([token_slider, head_slider, readout], layout=widgets.Layout(flex_flow="row wrap")),
            tokens_view,
            heads_view,
            layer_slider,
            qk_view,
            bertviz_view,
        ],
        layout=widgets.Layout(width="100%"),
    )
    box.add_class("wb-mask-explorer")
    box.trace = lambda: state["trace"]  # for tests and for users who want the arrays
    return box


def accuracy_speed_figure(
    curve: pd.DataFrame,
    dense_seq_per_s: float,
    dense_f1: float,
    tolerance: float = 0.01,
    target: float = 2.0,
    peers: pd.DataFrame | None = None,
) -> go.Figure:
    """Macro-F1 against measured throughput, one line per training (post-hoc vs pruning-aware), dense HF as a star;
    dotted lines at `tolerance` below dense macro-F1 and at `target` times dense throughput. `peers` (columns
    runtime, schedule, seq_per_s, macro_f1) adds one marker series per runtime (e.g. int8, ONNX Runtime)."""
    fig = go.Figure()
    for training, group in curve.groupby("training", sort=False):
        group = group.sort_values("seq_per_s")
        fig.add_scatter(
            x=group["seq_per_s"],
            y=group["macro_f1"],
            mode="lines+markers",
            name=str(training),
            text=group["schedule"],
            hovertemplate="%{text}<br>%{x:.1f} seq/s<br>macro-F1 %{y:.4f}<extra></extra>",
        )
    for runtime, group in (peers if peers is not None else pd.DataFrame(columns=["runtime"])).groupby(
        "runtime", sort=False
    ):
        fig.add_scatter(
            x=group["seq_per_s"],
            y=group["macro_f1"],
            mode="markers",
            marker=dict(symbol="diamond", size=10),
            name=str(runtime),
            text=group["schedule"],
            hovertemplate="%{text}<br>%{x:.1f} seq/s<br>macro-F1 %{y:.4f}<extra></extra>",
        )
    fig.add_scatter(
        x=[dense_seq_per_s], y=[dense_f1], mode="markers", marker=dict(symbol="star", size=14), name="dense (HF)"
    )
    fig.add_hline(y=dense_f1 - tolerance, line_dash="dot", annotation_text=f"dense − {tolerance * 100:g} F1 point")
    fig.add_vline(x=target * dense_seq_per_s, line_dash="dot", annotation_text=f"{target:g}× dense")
    fig.update_layout(title="Accuracy versus measured speed", xaxis_title="sequences / s", yaxis_title="macro-F1")
    return fig


def speedup_figure(curve: pd.DataFrame) -> go.Figure:
    """Measured speed-up beside the theoretical FLOP ratio, per schedule (dense HF = 1)."""
    rows = curve.drop_duplicates("schedule")
    fig = go.Figure()
    fig.add_bar(x=rows["schedule"], y=rows["speedup"], name="measured (seq/s ratio)")
    fig.add_bar(x=rows["schedule"], y=rows["flop_ratio"], name="theoretical (FLOP ratio)")
    fig.add_hline(y=2.0, line_dash="dot", annotation_text="2×")
    fig.update_layout(barmode="group", title="Speed-up over the dense model", yaxis_title="× dense")
    return fig


__all__ = [
    "PruningTrace",
    "accuracy_speed_figure",
    "head_grid_html",
    "keep_readout_html",
    "mask_explorer",
    "pruned_head_view",
    "query_key_mask_html",
    "speedup_figure",
    "token_grid_html",
    "trace_pruning",
]
