"""Figures for the multimodal fusion study: test accuracy per model, attention weight per modality, and the
train/test gap per model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.figures import metric_bar_figure

MODALITY_COLOURS = {"text": "#1f77b4", "audio": "#ff7f0e", "visual": "#2ca02c"}


def _scheme_mode_grid(frame: pd.DataFrame, vertical_spacing: float) -> tuple[go.Figure, list[str], list[str]]:
    """An empty subplot grid with one panel per label scheme (rows) and mode (columns), in order of appearance."""
    schemes, modes = list(dict.fromkeys(frame["scheme"])), list(dict.fromkeys(frame["mode"]))
    fig = make_subplots(
        rows=len(schemes),
        cols=len(modes),
        shared_yaxes=True,
        subplot_titles=[f"{s} · {m}" for s in schemes for m in modes],
        vertical_spacing=vertical_spacing,
    )
    return fig, schemes, modes


def test_accuracy_figure(test_rows: pd.DataFrame, scheme: str, majority: float | None = None) -> go.Figure:
    """Test accuracy per model (mean ± std over seeds), one bar colour per mode, for one label scheme; the dotted
    line is the majority-class accuracy, the floor any model must clear."""
    rows = test_rows[test_rows["scheme"] == scheme]
    fig = metric_bar_figure(
        rows, x="model", metric="accuracy", color="mode", title=f"{scheme}: test accuracy (mean ± std over seeds)"
    )
    if majority is not None:
        fig.add_hline(y=majority, line_dash="dot", annotation_text=f"majority {majority:.3f}")
    return fig


def modality_weight_figure(weights: pd.DataFrame, model: str = "attention") -> go.Figure:
    """Box plots of the per-sample attention weight of each modality (test split, all seeds), one panel per label
    scheme (rows) and mode (columns). Quartiles are computed here, so the figure stays small. The dashed line is
    the uniform weight 1/M: a box above it means the fusion leans on that modality."""
    rows = weights[weights["model"] == model]
    fig, schemes, modes = _scheme_mode_grid(rows, vertical_spacing=0.08)
    for r, scheme in enumerate(schemes, start=1):
        for c, mode in enumerate(modes, start=1):
            panel = rows[(rows["scheme"] == scheme) & (rows["mode"] == mode)]
            for modality, group in panel.groupby("modality", sort=False):
                q1, median, q3 = np.percentile(group["weight"], [25, 50, 75])
                fig.add_trace(
                    go.Box(
                        x=[modality],
                        q1=[q1],
                        median=[median],
                        q3=[q3],
                        lowerfence=[group["weight"].min()],
                        upperfence=[group["weight"].max()],
                        mean=[group["weight"].mean()],
                        name=modality,
                        marker_color=MODALITY_COLOURS.get(modality),
                        showlegend=r == 1 and c == 1,
                    ),
                    row=r,
                    col=c,
                )
            if not panel.empty:
                uniform = 1.0 / panel["modality"].nunique()
                fig.add_hline(y=uniform, line_dash="dash", line_color="grey", row=r, col=c)
    fig.update_yaxes(title_text="attention weight", col=1)
    fig.update_layout(
        title=f"{model} fusion: weight per modality on test samples (whiskers: min-max; dashed: 1/M)",
        height=260 * max(len(schemes), 1) + 80,
    )
    return fig


def train_test_gap_figure(gap: pd.DataFrame, metric: str = "accuracy") -> go.Figure:
    """Train vs test `metric` per model (mean over seeds), one panel per scheme (rows) and mode (columns).
    A tall train bar over a short test bar is overfitting, or for MOSI text/visual the extractors' leak."""
    fig, schemes, modes = _scheme_mode_grid(gap, vertical_spacing=0.1)
    for r, scheme in enumerate(schemes, start=1):
        for c, mode in enumerate(modes, start=1):
            panel = gap[(gap["scheme"] == scheme) & (gap["mode"] == mode)]
            for split, colour in (("train", "#9ecae1"), ("test", "#08519c")):
                fig.add_bar(
                    x=panel["model"],
                    y=panel[split],
                    name=split,
                    marker_color=colour,
                    showlegend=r == 1 and c == 1,
                    text=[f"{v:.2f}" for v in panel[split]],
                    textposition="outside",
                    row=r,
                    col=c,
                )
    fig.update_yaxes(range=[0, 1.1], title_text=metric, col=1)
    fig.update_layout(
        barmode="group", title=f"Train vs test {metric} per model (mean over seeds)", height=280 * len(schemes) + 80
    )
    return fig
