"""Comet figures: F1 retention vs speed-up per recipe, one sweep as a line, teacher vs student attention maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from workbench.viz.figures import attention_maps_figure as shared_attention_maps


def retention_speedup_figure(
    frame: pd.DataFrame, target_retention: float = 0.9, target_speedup: float = 5.0, title: str | None = None
) -> go.Figure:
    """One point per recipe (`config`, `experiment`, `speedup`, `retention` columns); dashed lines mark the target.

    Points up and to the right of both lines meet the goal (>= 5x faster, >= 90% of the teacher's macro-F1).
    """
    fig = px.scatter(
        frame,
        x="speedup",
        y="retention",
        color="experiment",
        text="config",
        hover_data=[c for c in ("student", "student_macro_f1", "student_params") if c in frame],
        title=title or "Macro-F1 retention vs CPU throughput speed-up (batch 32)",
    )
    fig.update_traces(textposition="top center", marker=dict(size=11))
    fig.add_hline(y=target_retention, line_dash="dash", annotation_text=f"{target_retention:.0%} retention")
    fig.add_vline(x=target_speedup, line_dash="dash", annotation_text=f"{target_speedup:g}x")
    fig.update_layout(xaxis_title="student / teacher sequences per second", yaxis_title="student / teacher macro-F1")
    return fig


def sweep_figure(frame: pd.DataFrame, x: str, y: str = "macro_f1", title: str | None = None) -> go.Figure:
    """Mean (over languages) of `y` against a swept knob `x`, one line per language plus their mean."""
    per_language = frame.groupby([x, "language"], as_index=False)[y].mean()
    fig = px.line(per_language, x=x, y=y, color="language", markers=True, title=title or f"{y} vs {x}")
    mean = frame.groupby(x, as_index=False)[y].mean()
    fig.add_scatter(x=mean[x], y=mean[y], mode="lines+markers", name="mean", line=dict(width=4, color="black"))
    return fig


def attention_maps_figure(
    tokens: Sequence[str],
    teacher_map: np.ndarray,
    student_map: np.ndarray,
    title: str = "Head-mean attention, teacher vs student",
) -> go.Figure:
    """Side-by-side L x L maps for one text: row = query token, column = key token, colour = attention weight."""
    fig = shared_attention_maps(tokens, {"teacher": teacher_map, "student": student_map}, title)
    fig.update_layout(height=520, width=1050)
    return fig
