"""The claims forest plot: per claim, our effect (arm A − arm B) with its 95% interval beside the paper's effect."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

VERDICT_COLOURS = {
    "reproduced": "#2ca02c",
    "contradicted": "#d62728",
    "inconclusive": "#7f7f7f",
    "missing": "#aaaaaa",
}


def _number(value: object) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def forest_figure(table: pd.DataFrame, title: str = "Claims: our effect (95% CI) beside the paper's") -> go.Figure:
    """A forest plot of a verdicts table (`workbench.claims.verdicts`, usually its `headline`): one line per claim
    (and setting), a dot coloured by verdict with its interval, the paper's effect as an open diamond, zero as a
    dashed line; a missing claim is listed with a grey cross at zero. One panel per metric: their units differ."""
    metrics = list(dict.fromkeys(table["metric"])) if len(table) else ["(no claims)"]
    heights = [max(1, int((table["metric"] == m).sum())) for m in metrics]
    fig = make_subplots(
        rows=len(metrics),
        cols=1,
        row_heights=heights,
        subplot_titles=[f"{m} (arm A − arm B)" for m in metrics],
        vertical_spacing=min(0.08, 0.3 / max(len(metrics), 1)),
    )
    shown: set[str] = set()
    for index, metric in enumerate(metrics, start=1):
        part = table[table["metric"] == metric]
        labels = [
            f"{row.claim}" + (f" [{row.setting}]" if row.setting not in ("", "all", "pooled") else "")
            + (f" ({row.profile})" if table["profile"].nunique() > 1 else "")
            for row in part.itertuples()
        ]  # fmt: skip
        for verdict, colour in VERDICT_COLOURS.items():
            chosen = (part["verdict"] == verdict).to_numpy()
            if not chosen.any():
                continue
            rows = part[chosen]
            effect = rows["effect"].map(_number)
            low, high = rows["ci_low"].map(_number), rows["ci_high"].map(_number)
            fig.add_trace(
                go.Scatter(
                    x=effect.where(effect.notna(), 0.0) if verdict == "missing" else effect,
                    y=[label for label, keep in zip(labels, chosen) if keep],
                    mode="markers",
                    marker=dict(color=colour, size=10, symbol="x-thin-open" if verdict == "missing" else "circle"),
                    error_x=dict(
                        type="data",
                        symmetric=False,
                        array=(high - effect).fillna(0).tolist(),
                        arrayminus=(effect - low).fillna(0).tolist(),
                        color=colour,
                    ),
                    name=verdict,
                    legendgroup=verdict,
                    showlegend=verdict not in shown,
                    customdata=rows[["n", "method", "reason"]].fillna("").to_numpy(),
                    hovertemplate="effect %{x:+.4f}<br>n %{customdata[0]}<br>%{customdata[1]}%{customdata[2]}"
                    f"<extra>{verdict}</extra>",
                ),
                row=index,
                col=1,
            )
            shown.add(verdict)
        paper = part["paper_effect"].map(_number)
        if paper.notna().any():
            fig.add_trace(
                go.Scatter(
                    x=paper[paper.notna()],
                    y=[label for label, keep in zip(labels, paper.notna()) if keep],
                    mode="markers",
                    marker=dict(symbol="diamond-open", size=12, color="#1f77b4", line=dict(width=2)),
                    name="paper",
                    legendgroup="paper",
                    showlegend="paper" not in shown,
                    hovertemplate="paper %{x:+.4f}<extra></extra>",
                ),
                row=index,
                col=1,
            )
            shown.add("paper")
        fig.add_vline(x=0, line_dash="dash", line_color="#444", row=index, col=1)
        fig.update_yaxes(categoryorder="array", categoryarray=labels, autorange="reversed", row=index, col=1)
    fig.update_layout(
        title=title,
        height=160 + 34 * sum(heights) + 40 * len(metrics),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        margin=dict(l=20, r=20, t=110, b=40),
    )
    return fig
