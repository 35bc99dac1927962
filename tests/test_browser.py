"""The SpAtten mask explorer in a real browser: JupyterLab on 127.0.0.1, headless Debian Chromium driven by
Playwright, the notebook run in the smoke profile, a slider dragged, the token grid checked, a screenshot saved."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "04_spatten.ipynb"
SCREENSHOT = REPO / "reports" / "browser" / "spatten_mask_explorer.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    path = os.environ.get("WORKBENCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.skip("Debian's chromium is not installed here (`apt-get install -y chromium`); CI installs it")
    pytest.importorskip("playwright.sync_api", reason="the playwright PyPI package is not installed")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _smoke_copy(target: Path, report_dir: Path) -> Path:
    """The study notebook with its parameters cell set to the smoke profile and a temporary report folder."""
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"])
            source = source.replace('profile = "quick"', 'profile = "smoke"')
            source = source.replace("report_dir = None", f"report_dir = {str(report_dir)!r}")
            cell["source"] = source
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


def _accept_kernel_dialog(page) -> None:
    """JupyterLab may ask which kernel to start; take the preselected Python 3 one."""
    select = page.locator(".jp-Dialog button", has_text="Select")
    try:
        select.first.wait_for(timeout=20_000)
    except Exception:
        return
    select.first.click()
    select.first.wait_for(state="detached", timeout=20_000)


def test_mask_explorer_responds_in_chromium(fixture_data_dir: Path, tmp_path: Path):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "lab"
    root.mkdir()
    _smoke_copy(root / NOTEBOOK.name, tmp_path / "report")
    settings = tmp_path / "lab_settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "WORKBENCH_DATA": str(fixture_data_dir),
        "WORKBENCH_CACHE": str(tmp_path / "cache"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter_config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab_settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab_workspaces"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root",
    ]  # fmt: skip
    log_path = tmp_path / "jupyter.log"
    log = open(log_path, "wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", server, log_path)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.locator(".jp-Notebook").first.wait_for()
            _accept_kernel_dialog(page)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            grid = page.locator(".wb-mask-explorer .wb-token-grid").first
            try:
                grid.wait_for(timeout=150_000)
            except Exception:
                page.screenshot(path=str(SCREENSHOT.with_name("spatten_failure.png")), full_page=True)
                raise
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

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.locator(".wb-mask-explorer").first.screenshot(path=str(SCREENSHOT))
            browser.close()
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
