"""Figures for the multi-level attention study: learning curves, representation projections, global vs local."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.figures import attention_maps_figure


def learning_curves_figure(curves: pd.DataFrame, metric: str = "dev_accuracy") -> go.Figure:
    """Train loss (left) and a dev metric (right) per epoch; one line per model, mean over seeds with min-max band.

    `curves` has columns `model`, `seed`, `epoch`, `train_loss` and `metric`.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", metric.replace("_", " ")))
    palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    ]  # fmt: skip
    for i, (model, rows) in enumerate(curves.groupby("model", sort=False)):
        color = palette[i % len(palette)]
        for col, column in enumerate(("train_loss", metric), start=1):
            stats = rows.groupby("epoch")[column].agg(["mean", "min", "max"]).reset_index()
            epochs = stats["epoch"] + 1
            fig.add_trace(
                go.Scatter(
                    x=list(epochs) + list(epochs[::-1]),
                    y=list(stats["max"]) + list(stats["min"][::-1]),
                    fill="toself",
                    fillcolor=color,
                    opacity=0.15,
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=model,
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=stats["mean"],
                    mode="lines+markers",
                    name=model,
                    line=dict(color=color),
                    legendgroup=model,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title="Learning curves (mean over seeds, band = min-max)", height=420)
    return fig


def projection_figure(
    points: dict[str, np.ndarray],
    labels: np.ndarray,
    label_names: Sequence[str],
    scores: dict[str, float] | None = None,
) -> go.Figure:
    """Side-by-side 2-D scatter plots of pooled representations (one panel per setting), coloured by true label."""
    names = list(points)
    titles = [f"{n}" + (f" (silhouette {scores[n]:.3f})" if scores and n in scores else "") for n in names]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=titles)
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"]
    for col, name in enumerate(names, start=1):
        xy = points[name]
        for k, label_name in enumerate(label_names):
            sel = labels == k
            fig.add_trace(
                go.Scattergl(
                    x=xy[sel, 0],
                    y=xy[sel, 1],
                    mode="markers",
                    marker=dict(size=4, opacity=0.5, color=colors[k % len(colors)]),
                    name=label_name,
                    legendgroup=label_name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    fig.update_layout(title="Pooled test representations, 2-D projection", height=450)
    return fig


def global_local_attention_figure(
    tokens: Sequence[str], global_weights: np.ndarray, local_weights: np.ndarray, gate: np.ndarray | None = None
) -> go.Figure:
    """Head-averaged global and local attention (query rows, key columns) for one review, and the gate per token.

    The local map is a band: each token only sees its window. A gate near 1 means the token took the global view.
    """
    maps = {"global attention": global_weights, "local attention": local_weights}
    extra = ["gate (1 = global)"] if gate is not None else []
    widths = [0.42, 0.42, 0.16] if gate is not None else None
    title = "Global vs local attention for one review (last layer, mean over heads)"
    fig = attention_maps_figure(tokens, maps, title, extra_panels=extra, column_widths=widths)
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    if gate is not None:
        fig.add_trace(go.Bar(x=gate, y=labels, orientation="h", marker_color="#7f7f7f", showlegend=False), row=1, col=3)
        fig.update_xaxes(range=[0, 1], row=1, col=3)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=8))
    fig.update_xaxes(tickfont=dict(size=8), row=1, col=1)
    fig.update_xaxes(tickfont=dict(size=8), row=1, col=2)
    fig.update_layout(height=650)
    return fig
