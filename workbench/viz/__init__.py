"""Figures and interactive views. Nothing here is imported by model code; notebooks import from here.

Plotly figures render as plotly's own JSON output (`plotly_mimetype`): JupyterLab draws it with the
jupyterlab-plotly extension shipped inside the plotly package, so nothing is fetched from a CDN and no notebook
carries its own 4.8 MB copy of plotly.js. The runner's HTML export draws the same JSON with one plotly.js shared by
the whole reports folder (`workbench.viz.export`).
"""

import plotly.io as pio

from workbench.viz.figures import confusion_matrix_figure, heatmap_figure, mean_std_table, metric_bar_figure

if pio.renderers.default in (
    "plotly_mimetype+notebook",
    "plotly_mimetype+notebook_connected",
    "notebook_connected",
    "notebook",
):
    pio.renderers.default = "plotly_mimetype"

__all__ = ["confusion_matrix_figure", "heatmap_figure", "mean_std_table", "metric_bar_figure"]
