"""Embedding-space figures for MAGE: 2-d projections (PCA, t-SNE) of original and augmented sentence embeddings,
and the attention weights each head gives each embedding type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from workbench.viz.figures import heatmap_figure

SYMBOLS = ("circle", "x", "diamond", "square", "triangle-up", "star", "cross")


def project_views(views: Mapping[str, np.ndarray], method: str = "pca", seed: int = 0) -> pd.DataFrame:
    """Project every view's rows into 2-d with one shared projection (so that views are comparable).

    `views` maps an embedding type (`original`, `linear`, …) to an (m, d) array whose rows are the same m
    examples. PCA is fitted on the originals only and applied to all; t-SNE embeds all points jointly (it has no
    out-of-sample transform), after a 50-component PCA. Returns columns x, y, view, example.
    """
    names = list(views)
    stacked = np.concatenate([np.asarray(views[n], np.float32) for n in names])
    if method == "pca":
        coords = PCA(n_components=2, random_state=seed).fit(views[names[0]]).transform(stacked)
    elif method == "tsne":
        reduced = PCA(n_components=min(50, *stacked.shape), random_state=seed).fit_transform(stacked)
        perplexity = float(min(30.0, max(2.0, (len(stacked) - 1) / 3)))
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    else:
        raise ValueError(f"method must be 'pca' or 'tsne', not {method!r}")
    m = len(views[names[0]])
    return pd.DataFrame(
        {
            "x": coords[:, 0],
            "y": coords[:, 1],
            "view": np.repeat(names, m),
            "example": np.tile(np.arange(m), len(names)),
        }
    )


def embedding_projection_figure(
    views: Mapping[str, np.ndarray],
    labels: Sequence[int],
    label_names: Sequence[str],
    method: str = "pca",
    title: str | None = None,
    seed: int = 0,
) -> go.Figure:
    """Scatter of the projected views: colour = sentiment label, marker = embedding type (original or augmenter).

    Read it as: augmented points should stay near their originals and inside the region of their label; a
    cloud that drifts away or mixes labels is an augmentation that adds noise rather than plausible examples.
    """
    frame = project_views(views, method, seed)
    m = len(labels)
    frame["label"] = [label_names[int(i)] for i in np.tile(np.asarray(labels), len(views))]
    fig = px.scatter(
        frame,
        x="x",
        y="y",
        color="label",
        symbol="view",
        symbol_sequence=list(SYMBOLS),
        category_orders={"label": list(label_names), "view": list(views)},
        hover_data={"example": True, "x": False, "y": False},
        opacity=0.7,
        title=title or f"{method.upper()} of original and augmented embeddings ({m} training examples)",
    )
    fig.update_traces(marker=dict(size=6))
    fig.update_layout(xaxis_title=f"{method} 1", yaxis_title=f"{method} 2", legend_title="label, view")
    return fig


def attention_weights_frame(weights: np.ndarray, view_names: Sequence[str]) -> pd.DataFrame:
    """Mean attention weight per head (rows) and embedding type (columns) over examples: (n, H, K) → (H, K)."""
    weights = np.asarray(weights)
    if weights.ndim != 3 or weights.shape[2] != len(view_names):
        raise ValueError(f"expected weights (n, heads, {len(view_names)}), got {weights.shape}")
    frame = pd.DataFrame(weights.mean(axis=0), columns=list(view_names))
    frame.index = [f"head {h + 1}" for h in range(weights.shape[1])]
    frame.index.name, frame.columns.name = "head", "embedding type"
    return frame


def attention_weights_figure(weights: np.ndarray, view_names: Sequence[str], title: str) -> go.Figure:
    """Heatmap of the mean weight each head gives each embedding type (each row sums to 1).

    Read it as: a uniform row (every cell ≈ 1/K) is a head that averages the views; a row with one bright cell is
    a head that picks that embedding type.
    """
    frame = attention_weights_frame(weights, view_names)
    return heatmap_figure(frame, title=title, zmin=0.0, zmax=1.0, colorscale="Blues")


def attention_spread_figure(weights: np.ndarray, view_names: Sequence[str], title: str) -> go.Figure:
    """Box plots of the per-example weights, one box per (head, embedding type): how much the weighting varies
    from example to example (a flat box means the head applies the same weights to every tweet)."""
    weights = np.asarray(weights)
    n, heads, k = weights.shape
    frame = pd.DataFrame(
        {
            "weight": weights.reshape(-1),
            "head": np.repeat([f"head {h + 1}" for h in range(heads)], k)[None].repeat(n, 0).reshape(-1),
            "embedding type": np.tile(list(view_names), n * heads),
        }
    )
    fig = px.box(frame, x="embedding type", y="weight", color="head", title=title, points=False)
    fig.update_layout(yaxis_range=[0, 1])
    return fig
