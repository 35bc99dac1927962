"""JavaScript the interactive views need, shipped inside the package (`workbench/viz/assets/`, with licences), so
that every view draws without a network: in JupyterLab (which has no require.js), in a static HTML export and in a
browser opened from a file.

Libraries are inlined into the view's own `<script>` and evaluated with `define`, `exports` and `module` hidden, so
they never register with an AMD loader that a page may have, nor overwrite the page's globals.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

ASSETS = Path(__file__).with_name("assets")
D3 = "d3-5.16.0.min.js"  # npm d3@5.16.0 dist/d3.min.js (BSD-3-Clause: LICENSE-d3.txt); bertviz needs d3 v5
JQUERY = "jquery-3.7.1.slim.min.js"  # npm jquery@3.7.1 dist/jquery.slim.min.js (MIT: LICENSE-jquery.txt)


@cache
def read_asset(name: str) -> str:
    """The text of one shipped asset; a clear error when the package was installed without its assets."""
    path = ASSETS / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the workbench package (its viz assets are package data)")
    return path.read_text(encoding="utf-8")


def script_safe(js: str) -> str:
    """JavaScript that can sit inside an inline `<script>` element: `</script` becomes `<\\/script` (the same text
    in a JS string, regex or comment, but no longer the end of the element)."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)


def d3_and_jquery_prelude() -> str:
    """JS statements that define local variables `d3` (v5) and `$` (jQuery) from the shipped copies, touching no
    global: d3 is evaluated with `this` bound to a private object, jQuery is handed back with `noConflict(true)`."""
    return (
        "var __wb = {};\n"
        "(function (define, exports, module) {\n"
        f"(function () {{\n{read_asset(D3)}\n}}).call(__wb);\n"
        f"{read_asset(JQUERY)}\n"
        "__wb.$ = window.jQuery.noConflict(true);\n"
        "})();\n"
        "var d3 = __wb.d3, $ = __wb.$;\n"
    )


__all__ = ["ASSETS", "D3", "JQUERY", "d3_and_jquery_prelude", "read_asset", "script_safe"]
