"""Plotly figures shared by every study: confusion matrix, annotated heatmap, metric bars with error bars."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.metrics import confusion_matrix


def confusion_matrix_figure(
    y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str], title: str = "Confusion matrix"
) -> go.Figure:
    """Counts with row-normalised colour: rows are true labels, columns predictions; the diagonal is correct."""
    labels = list(range(len(label_names)))
    counts = confusion_matrix(y_true, y_pred, labels=labels)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    text = [[f"{c}<br>{s:.0%}" for c, s in zip(row_c, row_s)] for row_c, row_s in zip(counts, share)]
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=list(label_names),
            y=list(label_names),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="share of row"),
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return fig


def heatmap_figure(
    matrix: pd.DataFrame,
    title: str,
    zmin: float | None = 0.0,
    zmax: float | None = 1.0,
    colorscale: str = "Viridis",
    value_format: str = ".3f",
    x_title: str | None = None,
    y_title: str | None = None,
) -> go.Figure:
    """An annotated heatmap of a DataFrame (index = rows, columns = columns), NaN cells left blank."""
    values = matrix.to_numpy(dtype=float)
    text = [["" if np.isnan(v) else format(v, value_format) for v in row] for row in values]
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=[str(c) for c in matrix.columns],
            y=[str(i) for i in matrix.index],
            text=text,
            texttemplate="%{text}",
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            hovertemplate="%{y} → %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title=x_title or matrix.columns.name,
        yaxis_title=y_title or matrix.index.name,
        yaxis_autorange="reversed",
    )
    return fig


def metric_bar_figure(
    rows: pd.DataFrame, x: str, metric: str, color: str | None = None, title: str | None = None
) -> go.Figure:
    """Mean ± std of `metric` over seeds (or any repeats) for each `x` (and `color`) group."""
    keys = [x] + ([color] if color else [])
    summary = rows.groupby(keys, sort=False)[metric].agg(["mean", "std", "count"]).reset_index()
    fig = go.Figure()
    groups = summary.groupby(color, sort=False) if color else [(None, summary)]
    for name, group in groups:
        fig.add_bar(
            x=group[x].astype(str),
            y=group["mean"],
            error_y=dict(type="data", array=group["std"].fillna(0)),
            name=str(name) if name is not None else metric,
            hovertemplate="%{x}: %{y:.4f} ± %{error_y.array:.4f}<extra></extra>",
        )
    fig.update_layout(barmode="group", title=title or f"{metric} (mean ± std)", yaxis_title=metric, xaxis_title=x)
    return fig


def mean_std_table(rows: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """A `mean ± std (n)` table of `metrics` grouped by `by` (for reports)."""
    grouped = rows.groupby(list(by), sort=False)[list(metrics)]
    mean, std, count = grouped.mean(), grouped.std().fillna(0.0), grouped.count()
    out = mean.copy().astype(object)
    for m in metrics:
        out[m] = [f"{a:.4f} ± {b:.4f} (n={int(c)})" for a, b, c in zip(mean[m], std[m], count[m])]
    return out.reset_index()


def attention_maps_figure(
    tokens: Sequence[str],
    maps: dict[str, np.ndarray],
    title: str,
    extra_panels: Sequence[str] = (),
    column_widths: Sequence[float] | None = None,
) -> go.Figure:
    """Side-by-side L x L attention maps of one text on one colour scale: rows are query tokens, columns keys.

    `extra_panels` names empty panels left on the right for the caller to fill (e.g. a gate per token).
    """
    titles = list(maps) + list(extra_panels)
    fig = make_subplots(
        rows=1, cols=len(titles), subplot_titles=titles, column_widths=column_widths, horizontal_spacing=0.08
    )
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    zmax = float(max(m.max() for m in maps.values()))
    for col, matrix in enumerate(maps.values(), start=1):
        fig.add_trace(
            go.Heatmap(
                z=matrix,
                x=labels,
                y=labels,
                zmin=0,
                zmax=zmax,
                colorscale="Viridis",
                showscale=col == len(maps),
                hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title)
    return fig
