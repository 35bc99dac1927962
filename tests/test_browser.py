"""The views in a real browser with the network blocked: headless Debian Chromium driven by Playwright, every request
that is not a local file or the local JupyterLab aborted.

Fast: bertviz's head view (d3 and jQuery shipped in the package) and an offline HTML export (head view, MathML
formulas, a plotly figure with the shared plotly.js, a widget's static snapshot) drawn from files.
Slow / JupyterLab: the SpAtten notebook run in the smoke profile (mask explorer slider dragged, token grid checked,
grids scrolling on their own, the pruned head view drawn), the quickstart's head view, and both notebooks' HTML
exports written by the runner. Screenshots go to reports/browser/.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "04_spatten.ipynb"
QUICKSTART = REPO / "notebooks" / "00_quickstart.ipynb"
SHOTS = REPO / "reports" / "browser"
SCREENSHOT = SHOTS / "spatten_mask_explorer.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HEAD_VIEW_LINES = "[id^='bertviz-'] svg line"
SCRIPT_ERRORS = ("require is not defined", "Javascript Error", "ReferenceError", "is not a function")


def _chromium() -> str:
    path = os.environ.get("WORKBENCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.skip("Debian's chromium is not installed here (`apt-get install -y chromium`); CI installs it")
    pytest.importorskip("playwright.sync_api", reason="the playwright PyPI package is not installed")
    return path


class Offline:
    """A page whose every request outside `allowed` (URL prefixes; files always) is aborted, and whose script
    errors and console messages are kept."""

    def __init__(self, page, allowed: tuple[str, ...] = ()):
        self.page, self.allowed = page, ("file:", "data:", "blob:", *allowed)
        self.blocked: list[tuple[str, str]] = []
        self.messages: list[str] = []
        page.on("pageerror", lambda err: self.messages.append(f"pageerror: {err}"))
        page.on("console", lambda msg: self.messages.append(f"{msg.type}: {msg.text}"))
        page.route("**/*", self._route)

    def _route(self, route) -> None:
        request = route.request
        if request.url.startswith(self.allowed):
            route.continue_()
        else:
            self.blocked.append((request.resource_type, request.url))
            route.abort()

    def assert_clean(self) -> None:
        """No script was wanted from outside, and no script error of the kind a missing library causes."""
        scripts = [url for kind, url in self.blocked if kind in ("script", "stylesheet", "font")]
        assert not scripts, f"the page asked the network for {scripts}"
        errors = [m for m in self.messages if any(e in m for e in SCRIPT_ERRORS) or m.startswith("pageerror")]
        assert not errors, errors
        text = self.page.locator("body").inner_text()
        assert not any(e in text for e in SCRIPT_ERRORS[:2]), "a script error is shown on the page"


@contextmanager
def _browser(viewport: dict[str, int] | None = None) -> Iterator:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=viewport or {"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def _line_count(page, scope: str = "") -> int:
    return page.locator(f"{scope} {HEAD_VIEW_LINES}".strip()).count()


def _assert_scrolls_with_fixed_labels(page, grid: str) -> None:
    """`grid` is wider than its box: it scrolls inside the box, its row labels stay where they were, and the mask
    explorer itself stays within the page (so its sliders stay in view)."""
    scroll = page.locator(f"{grid} .wb-scroll").first
    label = page.locator(f"{grid} tr:last-child th").first
    scroll_width, box_width = scroll.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert scroll_width > box_width, f"{grid}: {scroll_width} px of grid in a {box_width} px box does not scroll"
    x = label.bounding_box()["x"]
    assert scroll.evaluate("el => { el.scrollLeft = 300; return el.scrollLeft; }") > 0
    page.wait_for_timeout(100)
    assert abs(label.bounding_box()["x"] - x) < 1, "the row labels scrolled away with the grid"
    right = page.evaluate("document.querySelector('.wb-mask-explorer').getBoundingClientRect().right")
    assert right <= page.viewport_size["width"], "the explorer is wider than the page: its sliders scroll away"


def _tiny_attention(layers: int = 2, heads: int = 3, tokens: int = 7, seed: int = 0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    attention = [torch.softmax(torch.randn(1, heads, tokens, tokens, generator=generator), -1) for _ in range(layers)]
    return attention, ["[CLS]", *(f"w{i}" for i in range(tokens - 2)), "[SEP]"]


# ---------------------------------------------------------------- fast: files, no JupyterLab


def test_head_view_draws_offline_in_chromium(tmp_path: Path):
    from workbench.viz.attention import head_view_html

    attention, tokens = _tiny_attention()
    fragment, second = head_view_html(attention, tokens), head_view_html(attention, tokens)
    assert not re.search(r"<script[^>]*\ssrc=", fragment), "the head view loads a script from somewhere"
    assert "cdnjs" not in fragment and "require.config" not in fragment
    assert fragment.count('"left_text"') == 1, "the attention data is written more than once"
    page_file = tmp_path / "head_view.html"
    # a page that already has an AMD loader must not capture the shipped libraries (the classic notebook has one)
    amd = "<script>window.define = function () {}; window.define.amd = {};</script>"
    page_file.write_text(f"<!doctype html><meta charset='utf-8'><body>{amd}{fragment}{second}</body>")
    with _browser() as page:
        offline = Offline(page)
        page.goto(page_file.as_uri())
        page.wait_for_selector(HEAD_VIEW_LINES, state="attached")
        page.wait_for_function(f'document.querySelectorAll("{HEAD_VIEW_LINES}").length >= 2 * 3 * 49')
        roots = page.locator("[id^='bertviz-']")
        assert roots.count() == 2
        for i in range(2):
            assert roots.nth(i).locator("svg line").count() == 3 * 7 * 7  # every head, every token pair
            assert roots.nth(i).locator("select#layer option").count() == 2  # the layer dropdown is filled
        assert page.evaluate("typeof window.d3 === 'undefined' && typeof window.jQuery === 'undefined'")
        offline.assert_clean()


def _export_fixture_notebook(path: Path) -> None:
    """An executed-looking notebook: a formula, a head view, a plotly figure and a saved mask explorer."""
    import ipywidgets as widgets
    import nbformat
    import plotly.graph_objects as go
    import plotly.io as pio

    from workbench.encoders import load_encoder
    from workbench.viz.attention import head_view_html
    from workbench.viz.export import PLOTLY_MIME, WIDGET_STATE_MIME, WIDGET_VIEW_MIME
    from workbench.viz.pruning import mask_explorer

    attention, tokens = _tiny_attention()
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout_title_text="bars")
    explorer = mask_explorer(load_encoder("tiny"), ["a rather long sentence " * 8], token_keep=0.3, max_length=64)
    view = {"model_id": explorer.model_id, "version_major": 2, "version_minor": 0}
    out = nbformat.v4.new_output
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(r"Mean pooling $e = \frac{1}{|T|}\sum_{t \in T} h_t$ and $$\lceil t_l\, n\rceil$$"),
        nbformat.v4.new_code_cell("view", outputs=[out("display_data", data={"text/html": head_view_html(attention, tokens)})]),
        nbformat.v4.new_code_cell("fig", outputs=[out("display_data", data={PLOTLY_MIME: json.loads(pio.to_json(fig))})]),
        nbformat.v4.new_code_cell("explorer", outputs=[out("display_data", data={WIDGET_VIEW_MIME: view, "text/plain": "VBox()"})]),
    ]  # fmt: skip
    nb.metadata["widgets"] = {WIDGET_STATE_MIME: widgets.Widget.get_manager_state(drop_defaults=False)}
    nbformat.write(nb, path)


def test_offline_export_draws_head_view_formulas_plotly_and_widgets(tmp_path: Path):
    from workbench.viz.export import export_notebook_html

    notebook = tmp_path / "run" / "example.ipynb"
    notebook.parent.mkdir()
    _export_fixture_notebook(notebook)
    target = export_notebook_html(notebook, assets=tmp_path / "assets")
    text = target.read_text(encoding="utf-8")
    assert 'src="http' not in text and "src='http" not in text, "a script or image is loaded from a network"
    assert "MathJax" not in text and "require.min.js" not in text and "embed-amd" not in text
    assert text.count("<math") == 2 and "application/vnd.jupyter.widget-state+json" not in text
    shared = sorted((tmp_path / "assets").glob("plotly-*.min.js"))
    assert len(shared) == 1 and f'src="../assets/{shared[0].name}"' in text  # one plotly.js, by a relative path
    with _browser() as page:
        offline = Offline(page)
        page.goto(target.as_uri())
        page.wait_for_selector(HEAD_VIEW_LINES, state="attached")
        page.wait_for_selector(".plotly-graph-div .main-svg", state="attached")
        assert _line_count(page) == 3 * 7 * 7
        widths = page.evaluate(
            "Array.from(document.querySelectorAll('math')).map(m => m.getBoundingClientRect().width)"
        )
        assert len(widths) == 2 and min(widths) > 20, f"MathML formulas not drawn: widths {widths}"
        grid = page.locator(".wb-mask-explorer .wb-token-grid")
        assert grid.count() == 1 and grid.locator("td.wb-pruned").count() > 0  # the saved state, drawn statically
        assert page.locator(".wb-mask-explorer .wb-keep-readout").count() == 1
        _assert_scrolls_with_fixed_labels(page, ".wb-mask-explorer .wb-token-grid")
        offline.assert_clean()


# ---------------------------------------------------------------- JupyterLab


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _smoke_copy(source: Path, target: Path, report_dir: Path) -> Path:
    """A study notebook with its parameters cell set to the smoke profile and a temporary report folder."""
    nb = json.loads(source.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            text = "".join(cell["source"])
            text = text.replace('profile = "quick"', 'profile = "smoke"')
            text = text.replace("report_dir = None", f"report_dir = {str(report_dir)!r}")
            cell["source"] = text
    target.write_text(json.dumps(nb), encoding="utf-8")
    return target


def _wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"jupyter lab exited with code {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer at {url} within {timeout:.0f} s")


@contextmanager
def _jupyterlab(tmp_path: Path, data_dir: Path, notebooks: list[Path]) -> Iterator[tuple[str, str]]:
    """JupyterLab on 127.0.0.1 serving smoke copies of `notebooks`; yields (base URL, token)."""
    root = tmp_path / "lab"
    root.mkdir()
    for notebook in notebooks:
        _smoke_copy(notebook, root / notebook.name, tmp_path / f"report-{notebook.stem}")
    with _lab_server(tmp_path, data_dir, root, REPO) as served:
        yield served


@contextmanager
def _lab_server(
    tmp_path: Path, data_dir: Path, root: Path, package: Path, extra: tuple[str, ...] = ()
) -> Iterator[tuple[str, str]]:
    """JupyterLab on 127.0.0.1 serving `root` (with `extra` arguments), its kernels importing `workbench` from
    `package`; yields (base URL, token)."""
    settings = tmp_path / "lab_settings" / "@jupyterlab"
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false"})
    )
    (settings / "notebook-extension").mkdir(parents=True)  # draw every cell, also those scrolled out of view
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "WORKBENCH_DATA": str(data_dir),
        "WORKBENCH_CACHE": str(tmp_path / "cache"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter_config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab_settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab_workspaces"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(package), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root",
        *extra,
    ]  # fmt: skip
    log_path = tmp_path / "jupyter.log"
    log = open(log_path, "wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", server, log_path)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _accept_kernel_dialog(page) -> None:
    """JupyterLab may ask which kernel to start; take the preselected Python 3 one."""
    select = page.locator(".jp-Dialog button", has_text="Select")
    try:
        select.first.wait_for(timeout=20_000)
    except Exception:
        return
    select.first.click()
    select.first.wait_for(state="detached", timeout=20_000)


def _open_and_run_all(page, base: str, token: str, name: str) -> Offline:
    offline = Offline(page, allowed=(base,))
    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.locator(".jp-Notebook").first.wait_for()
    _accept_kernel_dialog(page)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    return offline


def _wait_or_shoot(page, selector: str, shot: str, timeout: float = 400_000) -> None:
    try:
        page.locator(selector).first.wait_for(state="attached", timeout=timeout)
    except Exception:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / shot), full_page=True)
        raise


def _shoot_head_view(page, index: int, path: Path) -> None:
    view = page.locator("[id^='bertviz-']").nth(index)
    view.scroll_into_view_if_needed()
    path.parent.mkdir(parents=True, exist_ok=True)
    view.screenshot(path=str(path))
    assert path.stat().st_size > 5_000


def test_mask_explorer_responds_in_chromium(fixture_data_dir: Path, tmp_path: Path):
    """04_spatten in JupyterLab, offline: the slider drives the token grid, the wide grids scroll inside their own
    boxes with the row labels fixed, the readout states the kept heads, and the pruned head view is drawn."""
    with (
        _jupyterlab(tmp_path, fixture_data_dir, [NOTEBOOK]) as (base, token),
        _browser({"width": 1500, "height": 1100}) as page,
    ):
        offline = _open_and_run_all(page, base, token, NOTEBOOK.name)
        _wait_or_shoot(page, ".wb-mask-explorer .wb-token-grid", "spatten_failure.png")
        grid = page.locator(".wb-mask-explorer .wb-token-grid").first
        before = grid.get_attribute("data-kept")
        pruned_before = page.locator(".wb-mask-explorer .wb-token-grid td.wb-pruned").count()

        handle = page.locator(".wb-mask-explorer .widget-slider .noUi-handle").first
        handle.scroll_into_view_if_needed()
        box = handle.bounding_box()
        assert box is not None, "the token keep slider has no handle on screen"
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] - 400, box["y"] + box["height"] / 2, steps=12)  # to the smallest keep
        page.mouse.up()
        page.wait_for_function(
            "before => { const g = document.querySelector('.wb-mask-explorer .wb-token-grid');"
            " return g && g.getAttribute('data-kept') !== before; }",
            arg=before,
            timeout=60_000,
        )
        after = grid.get_attribute("data-kept")
        pruned_after = page.locator(".wb-mask-explorer .wb-token-grid td.wb-pruned").count()
        assert after != before
        assert pruned_after > pruned_before, "keeping fewer tokens must grey out more cells"

        readout = page.locator(".wb-mask-explorer .wb-keep-readout").first
        assert "heads" in readout.inner_text() and int(readout.get_attribute("data-heads")) >= 1

        # a long sentence: its grids are wider than the explorer and scroll in their own boxes
        page.locator(".wb-mask-explorer input[type='text']").first.fill("a rather long sentence indeed " * 12)
        page.wait_for_function(
            "after => { const g = document.querySelector('.wb-mask-explorer .wb-token-grid');"
            " return g && g.getAttribute('data-kept') !== after; }",
            arg=after,
            timeout=60_000,
        )
        _assert_scrolls_with_fixed_labels(page, ".wb-mask-explorer .wb-token-grid")
        _assert_scrolls_with_fixed_labels(page, ".wb-mask-explorer .wb-qk-grid")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.locator(".wb-mask-explorer").first.screenshot(path=str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 10_000

        _wait_or_shoot(page, HEAD_VIEW_LINES, "spatten_head_view_failure.png", timeout=60_000)
        _shoot_head_view(page, 0, SHOTS / "spatten_pruned_head_view_lab.png")
        offline.assert_clean()


@pytest.mark.slow
def test_quickstart_head_view_draws_in_jupyterlab_offline(fixture_data_dir: Path, tmp_path: Path):
    with _jupyterlab(tmp_path, fixture_data_dir, [QUICKSTART]) as (base, token), _browser() as page:
        offline = _open_and_run_all(page, base, token, QUICKSTART.name)
        _wait_or_shoot(page, HEAD_VIEW_LINES, "quickstart_failure.png")
        page.wait_for_function(f'document.querySelectorAll("{HEAD_VIEW_LINES}").length > 0')
        assert page.locator("[id^='bertviz-'] select#layer option").count() > 0, "empty Layer: dropdown"
        _shoot_head_view(page, 0, SHOTS / "quickstart_head_view_lab.png")
        offline.assert_clean()


@pytest.mark.slow
@pytest.mark.parametrize("notebook", [QUICKSTART, NOTEBOOK], ids=lambda p: p.stem)
def test_runner_html_export_draws_offline(notebook: Path, fixture_data_dir: Path, tmp_path: Path, monkeypatch):
    """The runner's HTML export of a smoke run: head view drawn, formulas drawn, nothing fetched from a network,
    and the figures in figures/ loading the one plotly.js in reports/assets/."""
    from workbench.runner import run_notebook

    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    outcome = run_notebook(notebook, profile="smoke", reports=tmp_path, progress=False)
    assert outcome.status == "ok", outcome.error
    run_dir = Path(outcome.run_dir)
    export = run_dir / f"{notebook.stem}.html"
    text = export.read_text(encoding="utf-8")
    assert 'src="http' not in text and "cdnjs" not in text and "unpkg" not in text
    assert [p.name for p in (tmp_path / "assets").iterdir()] == [
        p.name for p in (tmp_path / "assets").glob("plotly-*.min.js")
    ]
    assert not list(run_dir.rglob("plotly*.js")), "a run folder carries its own plotly.js"
    with _browser() as page:
        offline = Offline(page)
        page.goto(export.as_uri())
        page.wait_for_selector(HEAD_VIEW_LINES, state="attached")
        widths = page.evaluate(
            "Array.from(document.querySelectorAll('math')).map(m => m.getBoundingClientRect().width)"
        )
        assert widths and min(widths) > 0, "formulas are not drawn"
        _shoot_head_view(page, 0, SHOTS / f"{notebook.stem}_head_view_export.png")
        offline.assert_clean()
        for figure in sorted((run_dir / "figures").glob("*.html"))[:2]:
            page.goto(figure.as_uri())
            page.wait_for_selector(".plotly-graph-div .main-svg", state="attached")
        offline.assert_clean()


@pytest.mark.slow
def test_run_all_in_jupyterlab_leaves_git_clean_and_lists_the_run(fixture_data_dir: Path, tmp_path: Path):
    """JupyterLab as `workbench lab` starts it, on a clone: Run All on the committed quickstart notebook, then save;
    `git status --porcelain` stays empty (the save hook writes the notebook as committed) and the run is listed in
    the clone's reports/index.html."""
    from workbench.cli import lab_command

    if not shutil.which("git"):
        pytest.skip("needs git")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    notebook = clone / "notebooks" / QUICKSTART.name
    hook = tuple(arg for arg in lab_command([]) if arg.startswith("--ContentsManager"))
    assert hook, "workbench lab no longer installs the save hook"
    with _lab_server(tmp_path, fixture_data_dir, clone, clone, hook) as (base, token), _browser() as page:
        offline = _open_and_run_all(page, base, token, f"notebooks/{QUICKSTART.name}")
        _wait_or_shoot(page, HEAD_VIEW_LINES, "git_clean_failure.png")
        page.wait_for_function("document.querySelectorAll('.jp-InputArea-prompt').length > 0")
        page.wait_for_function(  # every cell has run: no prompt still shows [*]
            "!Array.from(document.querySelectorAll('.jp-InputArea-prompt')).some(p => p.textContent.includes('*'))",
            timeout=400_000,
        )
        saved_before = notebook.stat().st_mtime_ns
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 30
        while notebook.stat().st_mtime_ns == saved_before and time.monotonic() < deadline:
            time.sleep(0.5)
        if notebook.stat().st_mtime_ns == saved_before:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "git_clean_save_failure.png"), full_page=True)
        assert notebook.stat().st_mtime_ns != saved_before, "JupyterLab did not save the notebook"
        offline.assert_clean()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout
    index = (clone / "reports" / "index.html").read_text(encoding="utf-8")
    assert "quickstart-interactive" in index
