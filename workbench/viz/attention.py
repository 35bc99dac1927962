"""bertviz glue: an interactive head view of one text's attention, for any encoder from the registry.

bertviz's own output loads require.js, d3 and jQuery from a CDN, so it draws nothing offline and nothing at all in
JupyterLab ("require is not defined"). `head_view_html` keeps bertviz's drawing code (its `head_view.js`) but hands it
the d3 and jQuery shipped in `workbench/viz/assets/`, inlined into one self-contained HTML fragment: it draws in
JupyterLab, in the classic notebook, in an nbconvert HTML export and in a file opened without a network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import torch

from workbench.encoders import Encoder
from workbench.viz.offline import d3_and_jquery_prelude, script_safe

_REQUIRE_TAG = re.compile(r"<script[^>]*\bsrc=[\"'][^\"']*require[^\"']*[\"'][^>]*>\s*</script>", re.IGNORECASE)
_SCRIPT = re.compile(r"<script[^>]*>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_REQUIRE_CONFIG = re.compile(r"require\.config\(\s*\{.*?\}\s*\);", re.DOTALL)
_ROOT_ID = re.compile(r'id="(bertviz-[0-9a-f]+)"')


@torch.no_grad()
def attention_of(encoder: Encoder, text: str, max_length: int = 128) -> tuple[list[str], tuple[torch.Tensor, ...]]:
    """Tokens and per-layer attention weights (1, heads, L, L) of one text (needs eager attention)."""
    batch = encoder.tokenize([text], max_length)
    out = encoder.model(**batch, output_attentions=True)
    if out.attentions is None or out.attentions[0] is None:
        raise ValueError("this encoder returns no attention weights: load it with load_encoder(name, attentions=True)")
    tokens = encoder.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    return tokens, tuple(a.cpu() for a in out.attentions)


def head_view_html(
    attentions: Sequence[torch.Tensor],
    tokens: Sequence[str],
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    decimals: int = 3,
) -> str:
    """bertviz's head view as one self-contained HTML fragment (no network, no require.js).

    `attentions`: one (1, heads, L, L) tensor per layer. Weights are rounded to `decimals` places (a line's opacity
    cannot show more) and written once, without spaces: a 64-token view of a 6-layer, 12-head model is about 1.8 MB
    (d3 and jQuery included), where bertviz's own output is about 13 MB.
    """
    from bertviz import head_view as bertviz_head_view

    if not attentions:
        raise ValueError("no attention tensors: pass one (1, heads, L, L) tensor per layer")
    rounded = [a.detach().to("cpu", torch.float64).round(decimals=decimals) for a in attentions]
    page = bertviz_head_view(
        rounded,
        list(tokens),
        include_layers=list(layers) if layers is not None else None,
        heads=list(heads) if heads is not None else None,
        html_action="return",
    ).data
    page = _REQUIRE_TAG.sub("", page)
    scripts = _SCRIPT.findall(page)
    root = _ROOT_ID.search(page)
    if len(scripts) != 1 or root is None or "requirejs(" not in scripts[0]:
        raise RuntimeError("unexpected bertviz head_view output: this bertviz version is not supported here")
    markup = _SCRIPT.sub("", page).strip()
    view = _drop_params_comment(_REQUIRE_CONFIG.sub("", scripts[0]))
    # bertviz calls requirejs(['jquery', 'd3'], function ($, d3) {...}): a local stand-in hands it the shipped copies.
    # The view starts once its root element is in the page (JupyterLab may run the script before attaching it).
    script = (
        "(function () {\n"
        f"{d3_and_jquery_prelude()}"
        "function draw() {\n"
        "  var requirejs = function (names, callback) { callback($, d3); };\n"
        f"{view}\n"
        "}\n"
        f"var rootId = {json.dumps(root.group(1))}, tries = 0;\n"
        "(function start() {\n"
        "  if (document.getElementById(rootId)) { draw(); }\n"
        "  else if (tries++ < 400) { setTimeout(start, 50); }\n"
        "})();\n"
        "})();"
    )
    return f'{markup}\n<script type="text/javascript">\n{script_safe(script)}\n</script>\n'


def _drop_params_comment(script: str) -> str:
    """bertviz pastes its parameters (the whole attention data) a second time, into the comment after
    `const params = PYTHON_PARAMS;`: keep `const params = <json>;` only, the JSON without spaces. The line is
    `const params = J; // HACK: J is a template marker ...` with the same J twice, which gives J's length exactly."""
    head, tail, sep = "const params = ", " is a template marker that is replaced by actual params.", "; // HACK: "
    lines = script.split("\n")
    for i, line in enumerate(lines):
        start, body = line.find(head), line.rstrip()
        if start < 0 or not body.endswith(tail):
            continue
        middle = body[start + len(head) : len(body) - len(tail)]
        size = (len(middle) - len(sep)) // 2
        if size > 0 and middle[size : size + len(sep)] == sep and middle[:size] == middle[size + len(sep) :]:
            compact = json.dumps(json.loads(middle[:size]), separators=(",", ":"))
            lines[i] = line[: start + len(head)] + compact + ";"
    return "\n".join(lines)


def head_view(
    encoder: Encoder,
    text: str,
    max_length: int = 128,
    layers: Sequence[int] | None = None,
    html_action: str = "view",
):
    """Show bertviz's head view of `text` in the notebook (or return it as an `IPython.display.HTML` with
    `html_action="return"`); it works offline (see `head_view_html`)."""
    tokens, attentions = attention_of(encoder, text, max_length)
    return show_html(head_view_html(attentions, tokens, layers=layers), html_action)


def show_html(fragment: str, html_action: str = "view"):
    """Display an HTML fragment as one cell output (`"view"`), or return it as `IPython.display.HTML` (`"return"`)."""
    from IPython.display import HTML, display

    if html_action not in ("view", "return"):
        raise ValueError(f"html_action must be 'view' or 'return', not {html_action!r}")
    if html_action == "return":
        return HTML(fragment)
    display(HTML(fragment))
    return None


__all__ = ["attention_of", "head_view", "head_view_html", "show_html"]
