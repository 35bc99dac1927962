"""HTML exports that work offline: an executed notebook as one HTML page, and standalone plotly figures.

nbconvert's default export loads require.js, MathJax and the ipywidgets embed script from CDNs, and plotly's
notebook output carries its own 4.8 MB copy of plotly.js and a CDN MathJax tag in every figure. Here:

- formulas in markdown are converted to MathML when the page is written (`latex2mathml`; browsers draw MathML
  natively), and shown as plain LaTeX text in a `<code>` element where that is not possible;
- widgets are drawn from the widget state papermill saved in the notebook, as a static snapshot (their values at
  the end of the run, e.g. the mask explorer's grids);
- plotly figures are drawn from their JSON by one plotly.js: a file shared by a whole reports folder
  (`reports/assets/plotly-<version>.min.js`, written once) or, with no shared folder, inlined once;
- nothing is loaded from a network: no `<script src>` points outside the reports folder.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.runtime import atomic_write_text
from workbench.viz.offline import ASSETS, script_safe

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
TEMPLATE = "workbench_offline.html.j2"  # in assets/nbconvert: nbconvert's lab template without CDN scripts

_STATIC_CSS = """<style type="text/css">
.wb-static {display: flex; flex-direction: column; gap: 4px; min-width: 0; max-width: 100%}
.wb-static-row {flex-direction: row; flex-wrap: wrap; align-items: center}
.wb-static > * {min-width: 0; max-width: 100%}
.wb-static-control {display: inline-flex; align-items: center; gap: 6px; font-size: 13px}
.wb-static-note {color: #777; font-size: 11px; font-style: italic}
.wb-static-tab-title {font-weight: bold; margin-top: 6px}
math {font-size: 1.1em}
code.wb-tex {background: none; color: inherit}
</style>"""


# ---------------------------------------------------------------- formulas


def latex_to_html(latex: str, display: bool = False) -> str:
    """MathML for one LaTeX formula (drawn by the browser, no script), or the LaTeX itself as plain text in a
    `<code class="wb-tex">` when `latex2mathml` is missing or cannot parse it."""
    try:
        from latex2mathml.converter import convert

        return convert(latex.strip(), display="block" if display else "inline")
    except Exception:  # not installed, or a construct it does not know: plain text never fails
        text = html.escape(latex.strip())
        return f'<div><code class="wb-tex">{text}</code></div>' if display else f'<code class="wb-tex">{text}</code>'


def _exporter_class():
    """nbconvert's HTMLExporter with formulas written as MathML (defined lazily: nbconvert is slow to import)."""
    from jinja2 import pass_context
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        def inline_math(self, body: str) -> str:
            return latex_to_html(body)

        def block_math(self, body: str) -> str:
            return latex_to_html(body, display=True)

        def latex_environment(self, name: str, body: str) -> str:
            return latex_to_html(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    class OfflineHTMLExporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):  # same as nbconvert's, with the MathML renderer
            cell = context.get("cell", {})
            renderer = MathMLRenderer(
                escape=False,
                attachments=cell.get("attachments", {}),
                embed_images=self.embed_images,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text,
                exclude_anchor_links=self.exclude_anchor_links,
                **self.lexer_options,
            )
            return MarkdownWithMath(renderer=renderer).render(source)

    return OfflineHTMLExporter


# ---------------------------------------------------------------- plotly


def shared_plotly_js(assets: Path) -> Path:
    """`assets/plotly-<version>.min.js`, written once (atomically) and shared by every page that needs it."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    path = Path(assets) / f"plotly-{get_plotlyjs_version()}.min.js"
    if not path.is_file() or path.stat().st_size == 0:
        _write_public(path, get_plotlyjs())
    return path


def _write_public(path: Path, text: str) -> None:
    """Atomic write, readable by all (a web server may serve the reports folder; temporary files are 0600)."""
    atomic_write_text(path, text)
    os.chmod(path, 0o644)


def _relative_src(target: Path, asset: Path) -> str:
    return Path(os.path.relpath(Path(asset).resolve(), Path(target).resolve().parent)).as_posix()


def write_figure_html(fig, path: Path, assets: Path) -> Path:
    """A standalone page of one plotly figure that loads the plotly.js shared in `assets` by a relative path."""
    path = Path(path)
    src = _relative_src(path, shared_plotly_js(assets))
    _write_public(path, fig.to_html(include_plotlyjs=src, include_mathjax=False, full_html=True))
    return path


def figure_div(spec: Mapping[str, Any]) -> str:
    """A plotly figure's JSON as a `<div>` drawn by the page's global `Plotly` (no plotly.js, no MathJax inside)."""
    import plotly.io as pio

    fig = pio.from_json(json.dumps(spec), skip_invalid=True)
    return pio.to_html(fig, include_plotlyjs=False, include_mathjax=False, full_html=False, default_height="500px")


def _is_plotly_loader(data: Mapping[str, Any]) -> bool:
    """The output that plotly's `notebook` / `notebook_connected` renderer adds to load plotly.js (not a figure)."""
    if PLOTLY_MIME in data or set(data) - {"text/html", "text/plain"}:
        return False
    text = "".join(data.get("text/html", ""))
    head = text[:3000]
    return ("plotly.js v" in head and "window.Plotly" in text) or "cdn.plot.ly" in head


# ---------------------------------------------------------------- widgets


def _model_id(ref: object) -> str | None:
    return ref[len("IPY_MODEL_") :] if isinstance(ref, str) and ref.startswith("IPY_MODEL_") else None


_LAYOUT_CSS = (
    "width", "height", "min_width", "min_height", "max_width", "max_height", "overflow", "border", "margin",
    "padding", "flex", "display", "visibility", "align_items", "justify_content",
)  # fmt: skip


class StaticWidgets:
    """Static HTML of saved ipywidgets (`nb.metadata.widgets[...]["state"]`): each widget's value at save time."""

    def __init__(self, state: Mapping[str, Any]):
        self.state = state

    def html(self, model_id: str, depth: int = 0) -> str | None:
        """The widget and its children, or None when the model is not in the saved state."""
        model = self.state.get(model_id)
        if not isinstance(model, Mapping) or depth > 50:
            return None
        name = str(model.get("model_name", ""))
        s = model.get("state", {})
        classes = " ".join(["wb-static", *(html.escape(str(c)) for c in s.get("_dom_classes", []))])
        style = self._layout_style(s.get("layout"))
        desc = html.escape(str(s.get("description") or ""))
        label = f"<label>{desc}</label>" if desc else ""
        tip = html.escape(str(s.get("tooltip") or ""), quote=True)
        attrs = f'class="{classes}" style="{style}"' + (f' title="{tip}"' if tip else "")
        children = [self.html(c, depth + 1) or "" for c in map(_model_id, s.get("children", [])) if c]
        if name in ("VBoxModel", "BoxModel", "GridBoxModel"):
            return f"<div {attrs}>{''.join(children)}</div>"
        if name == "HBoxModel":
            return f"<div {attrs.replace('wb-static', 'wb-static wb-static-row', 1)}>{''.join(children)}</div>"
        if name in ("TabModel", "AccordionModel", "StackModel"):
            titles = list(s.get("titles") or []) + [""] * len(children)
            if name == "StackModel" and s.get("selected_index") is not None:
                children, titles = [children[s["selected_index"]]], [titles[s["selected_index"]]]
            parts = [
                f'<div class="wb-static-tab-title">{html.escape(str(t))}</div>{c}' for t, c in zip(titles, children)
            ]
            return f"<div {attrs}>{''.join(parts)}</div>"
        if name in ("HTMLModel", "HTMLMathModel"):
            return f"<div {attrs}>{label}<div>{s.get('value', '')}</div></div>"
        if name == "LabelModel":
            return f"<div {attrs}>{label}<span>{html.escape(str(s.get('value', '')))}</span></div>"
        if name == "OutputModel":
            outputs = "".join(output_html(o, self) for o in s.get("outputs", []))
            return f"<div {attrs}>{outputs}</div>"
        if name.endswith("SliderModel") or name.endswith("ProgressModel"):
            return f'<div {attrs}><span class="wb-static-control">{label}{self._range(name, s)}</span></div>'
        if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel", "SelectionSliderModel"):
            labels, index = list(s.get("_options_labels", [])), s.get("index")
            options = "".join(
                f"<option{' selected' if i == index else ''}>{html.escape(str(t))}</option>"
                for i, t in enumerate(labels)
            )
            return (
                f'<div {attrs}><span class="wb-static-control">{label}<select disabled>{options}</select></span></div>'
            )
        if name in ("CheckboxModel", "ToggleButtonModel"):
            checked = " checked" if s.get("value") else ""
            box = f'<input type="checkbox" disabled{checked}>'
            return f'<div {attrs}><span class="wb-static-control">{box}{label}</span></div>'
        if name == "ButtonModel":
            return f"<div {attrs}><button disabled>{desc}</button></div>"
        if "value" in s and not isinstance(s["value"], (dict, list)):  # Text, Combobox, Textarea, IntText, ...
            value = html.escape(str(s["value"]), quote=True)
            field = f'<input type="text" disabled value="{value}" style="width: 100%">'
            return f'<div {attrs}><span class="wb-static-control" style="width: 100%">{label}{field}</span></div>'
        return f'<div {attrs}><span class="wb-static-note">[{html.escape(name or "widget")}]</span></div>'

    def _layout_style(self, ref: object) -> str:
        layout = self.state.get(_model_id(ref) or "", {}).get("state", {})
        rules = [f"{k.replace('_', '-')}: {layout[k]}" for k in _LAYOUT_CSS if layout.get(k) not in (None, "")]
        return html.escape("; ".join(rules), quote=True)

    @staticmethod
    def _range(name: str, s: Mapping[str, Any]) -> str:
        value, low, high = s.get("value"), s.get("min", 0), s.get("max", 100)
        if name.endswith("ProgressModel"):
            return f'<progress value="{value}" max="{high}"></progress>'
        if isinstance(value, (list, tuple)):  # a range slider
            return f"<span>{html.escape(' – '.join(map(str, value)))}</span>"
        try:
            shown = format(value, str(s.get("readout_format") or ""))
        except (TypeError, ValueError):
            shown = str(value)
        step = s.get("step") or "any"
        return (
            f'<input type="range" disabled min="{low}" max="{high}" step="{step}" value="{value}">'
            f"<span>{html.escape(shown)}</span>"
        )


# ---------------------------------------------------------------- outputs


def output_html(output: Mapping[str, Any], widgets: StaticWidgets | None = None) -> str:
    """HTML of one nbformat output (used for the outputs kept inside Output widgets)."""
    kind = output.get("output_type")
    if kind == "stream":
        return f"<pre>{html.escape(''.join(output.get('text', '')))}</pre>"
    if kind == "error":
        return f"<pre>{html.escape(str(output.get('ename')))}: {html.escape(str(output.get('evalue')))}</pre>"
    data = output.get("data", {})
    view = data.get(WIDGET_VIEW_MIME)
    if view and widgets is not None:
        drawn = widgets.html(str(view.get("model_id")))
        if drawn is not None:
            return drawn
    if PLOTLY_MIME in data:
        return figure_div(data[PLOTLY_MIME])
    for mime in ("text/html", "image/svg+xml"):
        if mime in data:
            return "".join(data[mime])
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            return f'<img src="data:{mime};base64,{"".join(data[mime]).strip()}" alt="figure">'
    if "text/markdown" in data:
        from nbconvert.filters.markdown import markdown2html

        return markdown2html("".join(data["text/markdown"]))
    return f"<pre>{html.escape(''.join(data.get('text/plain', '')))}</pre>"


def offline_notebook(nb) -> tuple[Any, bool]:
    """A copy of an nbformat notebook ready for an offline export, and whether it shows plotly figures.

    Widget views become their static HTML (the saved state is then dropped), plotly figures become `<div>`s drawn
    by one shared plotly.js, and the outputs that only loaded plotly.js are removed."""
    import copy

    nb = copy.deepcopy(nb)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})
    widgets = StaticWidgets(state)
    uses_plotly = False
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data")
            if data is None:
                kept.append(out)
                continue
            if _is_plotly_loader(data):
                continue
            if PLOTLY_MIME in data or WIDGET_VIEW_MIME in data:
                drawn = output_html(out, widgets)
                if WIDGET_VIEW_MIME in data and PLOTLY_MIME not in data and drawn.startswith("<div"):
                    note = '<div class="wb-static-note">static snapshot of an interactive widget: run the notebook'
                    drawn = f"{drawn}{note} in JupyterLab to use it</div>"
                uses_plotly = uses_plotly or PLOTLY_MIME in data or "plotly-graph-div" in drawn
                out["data"] = {"text/html": drawn, "text/plain": data.get("text/plain", "")}
            kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    nb.metadata.pop("widgets", None)
    return nb, uses_plotly


def notebook_html(nb, target: Path, assets: Path | None = None) -> str:
    """The offline HTML page of an nbformat notebook that will be written at `target` (see the module doc)."""
    nb, uses_plotly = offline_notebook(nb)
    head = _STATIC_CSS
    if uses_plotly:
        if assets is not None:
            src = html.escape(_relative_src(target, shared_plotly_js(assets)), quote=True)
            head += f'\n<script type="text/javascript" src="{src}"></script>'
        else:
            from plotly.offline import get_plotlyjs

            head += f'\n<script type="text/javascript">{script_safe(get_plotlyjs())}</script>'
    exporter = _exporter_class()(
        template_name="lab", extra_template_paths=[str(ASSETS / "nbconvert")], template_file=TEMPLATE
    )
    body, _ = exporter.from_notebook_node(
        nb, resources={"workbench_head": head, "metadata": {"name": Path(target).stem}}
    )
    return body


def export_notebook_html(notebook: Path, target: Path | None = None, assets: Path | None = None) -> Path:
    """Write the offline HTML export of an executed notebook (default: next to it, `.html`). With `assets` (a
    folder, e.g. `reports/assets`), plotly.js is loaded from a shared file there instead of being inlined."""
    import nbformat

    notebook = Path(notebook)
    target = Path(target) if target is not None else notebook.with_suffix(".html")
    nb = nbformat.read(notebook, as_version=4)
    _write_public(target, notebook_html(nb, target, assets))
    return target


__all__ = [
    "StaticWidgets",
    "export_notebook_html",
    "figure_div",
    "latex_to_html",
    "notebook_html",
    "offline_notebook",
    "output_html",
    "shared_plotly_js",
    "write_figure_html",
]
