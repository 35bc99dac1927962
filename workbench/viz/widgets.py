"""Small helpers shared by the interactive views."""

from __future__ import annotations


def show_in(output, obj: object) -> None:
    """Make an `ipywidgets.Output` show `obj` (and nothing else).

    Sets the widget's `outputs` directly instead of capturing display messages with `with output:`; under
    papermill/nbclient the capture path sometimes left the cell "running" forever with the kernel idle (seen on
    the BESSTIE heatmap explorer on a loaded machine, with ipykernel 6 and 7; jupyter/nbclient#312). Objects with
    a MIME bundle of their own (plotly figures) supply it directly: their `_ipython_display_` would publish to
    the cell instead of returning data.
    """
    bundle = obj._repr_mimebundle_() if hasattr(obj, "_repr_mimebundle_") else None
    if bundle:
        output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
    else:
        output.outputs = ()
        output.append_display_data(obj)
