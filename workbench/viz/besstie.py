"""Figures and a widget for the BESSTIE study: cross-variety heatmaps (one per task x head, diagonal outlined,
seeded-split cells starred), a head comparison beside the paper, domain-shift heatmaps, and the timing bars.

All functions read the study's flat metric rows (`result.metrics` or `load_results(...)`), so they work on a
fresh run and on a saved `results.json` alike. The paper's numbers come in as arguments (the study's `PAPER`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.figures import heatmap_figure

SEEDED_MARK = "*"
PaperScores = Mapping[str, Mapping[str, Mapping[str, float]]]  # task -> source -> variety -> macro-F1


def _rows(metrics: pd.DataFrame, experiment: str, **equal) -> pd.DataFrame:
    rows = metrics[metrics["experiment"] == experiment]
    for column, value in equal.items():
        rows = rows[rows[column] == value]
    return rows


def _task_sources(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The (task, source) slices present in `rows`, in the order they first appear."""
    return list(dict.fromkeys(zip(rows["task"], rows["source"])))


def cross_variety_matrix(
    metrics: pd.DataFrame, task: str, source: str, head: str, value: str = "macro_f1"
) -> pd.DataFrame:
    """Train variety (rows) x test variety (columns) of one task, source and head, averaged over seeds."""
    rows = _rows(metrics, "cross_variety", task=task, source=source, head=head)
    return rows.pivot_table(index="train_variety", columns="test_variety", values=value, aggfunc="mean")


def domain_shift_matrix(metrics: pd.DataFrame, task: str, head: str, value: str = "macro_f1") -> pd.DataFrame:
    """Training set (rows) x BESSTIE test slice `variety source` (columns) of one task and head."""
    rows = _rows(metrics, "domain_shift", task=task, head=head)
    rows = rows.assign(test=rows["test_variety"] + " " + rows["source"])
    return rows.pivot_table(index="train_variety", columns="test", values=value, aggfunc="mean")


def _cell_text(matrix: pd.DataFrame, seeded: pd.DataFrame | None) -> list[list[str]]:
    text = []
    for train in matrix.index:
        line = []
        for test in matrix.columns:
            value = matrix.loc[train, test]
            mark = SEEDED_MARK if seeded is not None and bool(seeded.loc[train, test]) else ""
            line.append("" if np.isnan(value) else f"{value:.3f}{mark}")
        text.append(line)
    return text


def _seeded_matrix(metrics: pd.DataFrame, task: str, source: str, head: str) -> pd.DataFrame:
    rows = _rows(metrics, "cross_variety", task=task, source=source, head=head)
    return rows.pivot_table(index="train_variety", columns="test_variety", values="seeded_split", aggfunc="max")


def _outline_diagonal(fig: go.Figure, matrix: pd.DataFrame, row: int | None = None, col: int | None = None) -> None:
    for i, train in enumerate(matrix.index):
        if train in matrix.columns:
            j = list(matrix.columns).index(train)
            fig.add_shape(
                type="rect",
                x0=j - 0.5,
                x1=j + 0.5,
                y0=i - 0.5,
                y1=i + 0.5,
                line=dict(color="white", width=3),
                row=row,
                col=col,
            )


def cross_variety_heatmap(metrics: pd.DataFrame, task: str, source: str, head: str) -> go.Figure:
    """Macro-F1 of one head: train variety (rows) x test variety (columns); the in-variety diagonal is outlined and
    cells that use the seeded en-IN Google split carry a star."""
    matrix = cross_variety_matrix(metrics, task, source, head)
    fig = heatmap_figure(
        matrix,
        f"{task} · {source} · {head}: macro-F1",
        x_title="test variety",
        y_title="train variety",
    )
    fig.data[0].text = _cell_text(matrix, _seeded_matrix(metrics, task, source, head))
    _outline_diagonal(fig, matrix)
    fig.update_layout(width=460, height=400)
    return fig


def cross_variety_grid(metrics: pd.DataFrame, heads: list[str] | None = None) -> go.Figure:
    """All cross-variety matrices at once: tasks down, heads across, one colour scale (0 to 1)."""
    rows = _rows(metrics, "cross_variety")
    heads = heads or list(dict.fromkeys(rows["head"]))
    tasks = _task_sources(rows)
    fig = make_subplots(
        rows=len(tasks),
        cols=len(heads),
        subplot_titles=[f"{t} {s} · {h}" for t, s in tasks for h in heads],
        horizontal_spacing=0.03,
        vertical_spacing=0.09,
    )
    for r, (task, source) in enumerate(tasks, start=1):
        for c, head in enumerate(heads, start=1):
            matrix = cross_variety_matrix(metrics, task, source, head)
            if matrix.empty:
                continue
            fig.add_trace(
                go.Heatmap(
                    z=matrix.to_numpy(dtype=float),
                    x=list(matrix.columns),
                    y=list(matrix.index),
                    text=_cell_text(matrix, _seeded_matrix(metrics, task, source, head)),
                    texttemplate="%{text}",
                    coloraxis="coloraxis",
                    hovertemplate=f"{task} {source} {head}<br>train %{{y}} → test %{{x}}: %{{text}}<extra></extra>",
                ),
                row=r,
                col=c,
            )
            _outline_diagonal(fig, matrix, r, c)
            fig.update_yaxes(autorange="reversed", showticklabels=c == 1, row=r, col=c)
    fig.update_layout(
        coloraxis=dict(colorscale="Viridis", cmin=0, cmax=1, colorbar=dict(title="macro-F1")),
        height=280 * len(tasks) + 80,
        width=230 * len(heads) + 160,
        title="Cross-variety macro-F1 (rows: train variety, columns: test variety; * = seeded en-IN Google split)",
        font=dict(size=10),
    )
    return fig


def head_comparison_figure(
    metrics: pd.DataFrame, paper: PaperScores | None = None, paper_label: str = "paper BERT-Large"
) -> go.Figure:
    """In-variety macro-F1 of every head per task, source and variety (bars), with the paper's scores
    (`paper[task][source][variety]`, e.g. the study's `PAPER["bert_large_macro_f1"]`) as black diamonds."""
    rows = _rows(metrics, "cross_variety")
    tasks = _task_sources(rows)
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=[f"{t} · {s}" for t, s in tasks], shared_yaxes=True)
    heads = list(dict.fromkeys(rows["head"]))
    colours = dict(zip(heads, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")))
    for c, (task, source) in enumerate(tasks, start=1):
        part = rows[(rows["task"] == task) & (rows["source"] == source)]
        diag = part[part["in_variety"].astype(bool)]
        for head in heads:
            mine = diag[diag["head"] == head].groupby("test_variety")["macro_f1"].mean()
            fig.add_bar(
                x=list(mine.index),
                y=mine.to_numpy(),
                name=head,
                marker_color=colours.get(head),
                legendgroup=head,
                showlegend=c == 1,
                row=1,
                col=c,
                hovertemplate=f"{head} %{{x}}: %{{y:.3f}}<extra>in-variety</extra>",
            )
        reference = (paper or {}).get(task, {}).get(source, {})
        if not reference:
            continue
        fig.add_scatter(
            x=list(reference),
            y=list(reference.values()),
            mode="markers",
            marker=dict(symbol="diamond", size=11, color="black"),
            name=paper_label,
            legendgroup="paper",
            showlegend=c == 1,
            row=1,
            col=c,
        )
    fig.update_layout(
        barmode="group",
        title="In-variety macro-F1 per head (bars)" + (f" vs {paper_label} (diamonds)" if paper else ""),
        yaxis_title="macro-F1",
        yaxis_range=[0, 1],
        height=420,
        width=1100,
    )
    return fig


def domain_shift_heatmap(metrics: pd.DataFrame, task: str, heads: list[str] | None = None) -> go.Figure:
    """Macro-F1 of models trained on Twitter / Bicodemix (rows, one block per head) tested on each BESSTIE
    variety and source (columns), without adaptation."""
    rows = _rows(metrics, "domain_shift", task=task)
    heads = heads or list(dict.fromkeys(rows["head"]))
    blocks = []
    for head in heads:
        matrix = domain_shift_matrix(metrics, task, head)
        if not matrix.empty:
            blocks.append(matrix.set_axis([f"{train} · {head}" for train in matrix.index], axis=0))
    matrix = pd.concat(blocks) if blocks else pd.DataFrame()
    matrix.index.name, matrix.columns.name = "training data · head", "BESSTIE test slice"
    fig = heatmap_figure(matrix, f"Domain shift, {task}: macro-F1 on BESSTIE without adaptation")
    fig.update_layout(height=120 + 34 * len(matrix), width=200 + 110 * max(len(matrix.columns), 1))
    return fig


def timing_figure(metrics: pd.DataFrame, paper: Mapping[str, float] | None = None) -> go.Figure:
    """Seconds per training batch per head (bars per mode, log scale) with the paper's seconds per head (the study's
    `PAPER["seconds_per_batch"]`: Table I, T4 GPU, BERT-base) as diamonds; the modes measured on this machine differ
    from the paper's hardware, so compare the ratios."""
    rows = _rows(metrics, "timing")
    fig = go.Figure()
    for mode, part in rows.groupby("mode", sort=False):
        mean = part.groupby("head", sort=False)["seconds_per_batch"].mean()
        fig.add_bar(x=list(mean.index), y=mean.to_numpy(), name=f"this run: {mode}")
    if paper:
        fig.add_scatter(
            x=list(paper),
            y=list(paper.values()),
            mode="markers",
            marker=dict(symbol="diamond", size=11, color="black"),
            name="paper (T4 GPU, BERT-base)",
        )
    fig.update_layout(
        barmode="group",
        yaxis_type="log",
        yaxis_title="seconds per training batch",
        title=f"Training time per batch (batch {int(rows['batch_size'].iloc[0]) if len(rows) else 8})",
        height=400,
        width=800,
    )
    return fig


def heatmap_explorer(metrics: pd.DataFrame):
    """A widget: pick task · source and head from dropdowns and see that cross-variety heatmap (the figure on show
    is also kept as the widget's `figure` attribute)."""
    import ipywidgets as widgets

    from workbench.viz.widgets import show_in

    rows = _rows(metrics, "cross_variety")
    slices = [f"{t} · {s}" for t, s in _task_sources(rows)]
    wide = {"description_width": "initial"}
    task_source = widgets.Dropdown(options=slices, description="task · source", style=wide)
    head = widgets.Dropdown(options=list(dict.fromkeys(rows["head"])), description="head", style=wide)
    output = widgets.Output()
    explorer = widgets.VBox([widgets.HBox([task_source, head]), output])
    explorer.add_class("wb-besstie-explorer")

    def show(_=None) -> None:
        task, source = task_source.value.split(" · ")
        explorer.figure = cross_variety_heatmap(metrics, task, source, head.value)
        show_in(output, explorer.figure)

    task_source.observe(show, names="value")
    head.observe(show, names="value")
    show()
    return explorer
