"""Figures and a widget for the BESSTIE study: cross-variety heatmaps (one per task x head · base, diagonal outlined,
seeded-split cells starred, mean ± std over seeds in the hover text), a head comparison beside the paper,
domain-shift heatmaps, and the timing bars.

A head is shown per base it stood on (`arm` = `head · base`: `linear · finetuned` is the encoder fine-tuned end to
end with the Linear head, `cnn · frozen` a head on frozen token states); rows of older runs without a `base` column
are frozen-state heads.

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


def with_arms(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with `base` and `arm` (`head · base`) columns: rows of runs from before the base existed stood on frozen
    states."""
    if "arm" in rows and rows["arm"].notna().all():
        return rows
    base = rows["base"].fillna("frozen") if "base" in rows else pd.Series("frozen", index=rows.index, dtype=object)
    return rows.assign(base=base, arm=[f"{h} · {b}" for h, b in zip(rows["head"], base)])


def _select_arm(rows: pd.DataFrame, head: str) -> pd.DataFrame:
    """The rows of one arm: `head` is an arm label (`linear · finetuned`) or a head name that only one base has."""
    if head in set(rows["arm"]):
        return rows[rows["arm"] == head]
    picked = rows[rows["head"] == head]
    arms = sorted(set(picked["arm"]))
    if len(arms) > 1:
        raise ValueError(f"head {head!r} ran on several bases in these rows: name one arm of {arms}")
    return picked


def _rows(metrics: pd.DataFrame, experiment: str, head: str | None = None, **equal) -> pd.DataFrame:
    rows = with_arms(metrics[metrics["experiment"] == experiment])
    for column, value in equal.items():
        rows = rows[rows[column] == value]
    return rows if head is None else _select_arm(rows, head)


def _arms(rows: pd.DataFrame) -> list[str]:
    """The arms of `rows`, in the order they first appear."""
    return list(dict.fromkeys(rows["arm"]))


def _task_sources(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The (task, source) slices present in `rows`, in the order they first appear."""
    return list(dict.fromkeys(zip(rows["task"], rows["source"])))


def cross_variety_matrix(
    metrics: pd.DataFrame, task: str, source: str, head: str, value: str = "macro_f1", stat: str = "mean"
) -> pd.DataFrame:
    """Train variety (rows) x test variety (columns) of one task, source and head (an arm label such as
    `linear · finetuned`, or a head name that ran on one base only): the `stat` (mean, std, count) over seeds."""
    rows = _rows(metrics, "cross_variety", head, task=task, source=source)
    return rows.pivot_table(index="train_variety", columns="test_variety", values=value, aggfunc=stat)


def seed_spread_text(metrics: pd.DataFrame, task: str, source: str, head: str) -> list[list[str]]:
    """Hover text of a cross-variety matrix: `mean ± std (n seeds)` per cell (std 0 with one seed)."""
    mean = cross_variety_matrix(metrics, task, source, head)
    std = cross_variety_matrix(metrics, task, source, head, stat="std").reindex_like(mean)
    count = cross_variety_matrix(metrics, task, source, head, stat="count").reindex_like(mean)
    text = []
    for train in mean.index:
        line = []
        for test in mean.columns:
            m, sd, n = mean.loc[train, test], std.loc[train, test], count.loc[train, test]
            if np.isnan(m):
                line.append("")
                continue
            n = int(n)
            line.append(f"{m:.3f} ± {0.0 if np.isnan(sd) else sd:.3f} ({n} seed{'s' if n != 1 else ''})")
        text.append(line)
    return text


def domain_shift_matrix(metrics: pd.DataFrame, task: str, head: str, value: str = "macro_f1") -> pd.DataFrame:
    """Training set (rows) x BESSTIE test slice `variety source` (columns) of one task and head."""
    rows = _rows(metrics, "domain_shift", head, task=task)
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
    rows = _rows(metrics, "cross_variety", head, task=task, source=source)
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
    """Macro-F1 of one head (or arm, `linear · finetuned`): train variety (rows) x test variety (columns), the mean
    over seeds; the in-variety diagonal is outlined, cells that use the seeded en-IN Google split carry a star, and
    the hover text gives mean ± std over the seeds."""
    matrix = cross_variety_matrix(metrics, task, source, head)
    fig = heatmap_figure(
        matrix,
        f"{task} · {source} · {head}: macro-F1",
        x_title="test variety",
        y_title="train variety",
    )
    fig.data[0].text = _cell_text(matrix, _seeded_matrix(metrics, task, source, head))
    fig.data[0].customdata = seed_spread_text(metrics, task, source, head)
    fig.data[0].hovertemplate = "train %{y} → test %{x}: %{customdata}<extra></extra>"
    _outline_diagonal(fig, matrix)
    fig.update_layout(width=460, height=400)
    return fig


def cross_variety_grid(metrics: pd.DataFrame, heads: list[str] | None = None) -> go.Figure:
    """All cross-variety matrices at once: tasks down, heads (arms: `head · base`) across, one colour scale (0 to 1);
    the hover text of each cell gives mean ± std over the seeds."""
    rows = _rows(metrics, "cross_variety")
    heads = heads or _arms(rows)
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
            if not ((rows["task"] == task) & (rows["source"] == source) & (rows["arm"] == head)).any():
                continue
            matrix = cross_variety_matrix(metrics, task, source, head)
            fig.add_trace(
                go.Heatmap(
                    z=matrix.to_numpy(dtype=float),
                    x=list(matrix.columns),
                    y=list(matrix.index),
                    text=_cell_text(matrix, _seeded_matrix(metrics, task, source, head)),
                    customdata=seed_spread_text(metrics, task, source, head),
                    texttemplate="%{text}",
                    coloraxis="coloraxis",
                    hovertemplate=f"{task} {source} {head}<br>train %{{y}} → test %{{x}}: %{{customdata}}"
                    "<extra></extra>",
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
    """In-variety macro-F1 of every head · base per task, source and variety (bars: mean over seeds, error bars: std),
    with the paper's scores (`paper[task][source][variety]`, e.g. the study's `PAPER["bert_large_macro_f1"]`) as
    black diamonds."""
    rows = _rows(metrics, "cross_variety")
    tasks = _task_sources(rows)
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=[f"{t} · {s}" for t, s in tasks], shared_yaxes=True)
    heads = _arms(rows)
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
    colours = dict(zip(heads, palette))
    for c, (task, source) in enumerate(tasks, start=1):
        part = rows[(rows["task"] == task) & (rows["source"] == source)]
        diag = part[part["in_variety"].astype(bool)]
        for head in heads:
            mine = diag[diag["arm"] == head].groupby("test_variety")["macro_f1"].agg(["mean", "std"])
            fig.add_bar(
                x=list(mine.index),
                y=mine["mean"].to_numpy(),
                error_y=dict(type="data", array=mine["std"].fillna(0.0).to_numpy()),
                name=head,
                marker_color=colours.get(head),
                legendgroup=head,
                showlegend=c == 1,
                row=1,
                col=c,
                hovertemplate=f"{head} %{{x}}: %{{y:.3f}} ± %{{error_y.array:.3f}}<extra>in-variety</extra>",
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
    heads = heads or _arms(rows)
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
    for mode, part in rows.groupby("mode", sort=False) if len(rows) else []:
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

    def arms_of(value: str) -> list[str]:  # the arms with rows in one task · source (fine-tuned: sentiment only)
        task, source = value.split(" · ", 1)
        return _arms(rows[(rows["task"] == task) & (rows["source"] == source)])

    head = widgets.Dropdown(options=arms_of(slices[0]), description="head · base", style=wide)
    output = widgets.Output()
    explorer = widgets.VBox([widgets.HBox([task_source, head]), output])
    explorer.add_class("wb-besstie-explorer")

    def show(_=None) -> None:
        task, source = task_source.value.split(" · ", 1)
        explorer.figure = cross_variety_heatmap(metrics, task, source, head.value)
        show_in(output, explorer.figure)

    def new_slice(_=None) -> None:
        options, kept = arms_of(task_source.value), head.value
        with head.hold_trait_notifications():
            head.options = options
            head.value = kept if kept in options else options[0]
        show()

    task_source.observe(new_slice, names="value")
    head.observe(show, names="value")
    show()
    return explorer
