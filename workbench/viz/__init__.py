"""Figures and interactive views. Nothing here is imported by model code; notebooks import from here.

Importing this package makes plotly figures carry an HTML copy next to their JSON, so that they show in JupyterLab
and also in the runner's HTML export (which cannot draw the JSON-only plotly output).
"""

import plotly.io as pio

from workbench.viz.figures import confusion_matrix_figure, heatmap_figure, mean_std_table, metric_bar_figure

if pio.renderers.default in ("plotly_mimetype", "plotly_mimetype+notebook_connected", "notebook_connected"):
    pio.renderers.default = "plotly_mimetype+notebook"

__all__ = ["confusion_matrix_figure", "heatmap_figure", "mean_std_table", "metric_bar_figure"]
