"""The comparison dashboard as a user sees it: kd.ipynb run in JupyterLab, in headless Chromium.

JupyterLab of the project's own environment starts on a free loopback port with a random token and
opens a copy of ``notebooks/01_response/kd.ipynb`` (a copy, so that nothing the browser does can
save into the committed notebook). The test runs all cells from JupyterLab's Run menu, scrolls to the
comparison dashboard (section 7), selects two methods, clicks Compare and checks that the chart and the
table are drawn and that no cell and no widget shows an error. Screenshots (the dashboard before and
after Compare, one Chinese prose cell) go to ``build/browser/`` (git-ignored).

Needs Debian's ``chromium`` (driven through Playwright for Python with ``executable_path``; Playwright's
own browser download is not used), a CJK font (``fonts-noto-cjk``) and ``playwright`` in the venv;
``.ci/run`` installs the first two with apt, ``make`` the third (a test dependency). Without them the test fails and says what to install; setting
``KDTEACH_BROWSER_TEST=skip`` turns that into a skip with the same message.
"""

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
NOTEBOOK = REPO / "notebooks" / "01_response" / "kd.ipynb"
SHOTS = REPO / "build" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
INSTALL = ("apt-get install -y chromium fonts-noto-cjk (as .ci/run does) and pip install playwright "
           "(a test dependency: make installs it)")
NEWS_PROMPT = "official Jupyter news"
RUN_ALL_TIMEOUT_S = 300


def _missing() -> list[str]:
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"no Chromium at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append(f"playwright is not installed in {sys.prefix}")
    fc_list = shutil.which("fc-list")
    if fc_list is None or not subprocess.run([fc_list, ":lang=zh"], capture_output=True, text=True).stdout.strip():
        missing.append("no CJK font (fontconfig finds none for :lang=zh)")
    return missing


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1:<free port> with a random token, serving a folder holding a copy of kd.ipynb."""
    missing = _missing()
    if missing:
        message = f"the browser test needs {'; '.join(missing)}. Install: {INSTALL}"
        if os.environ.get("KDTEACH_BROWSER_TEST", "").strip().lower() == "skip":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    shutil.copy2(NOTEBOOK, root / NOTEBOOK.name)
    # this session's own user settings: no autosave; every cell attached to the page (windowing "none"),
    # so that the test sees all cells however far they are scrolled (the project's overrides still apply)
    for plugin, name, text in (("docmanager-extension", "plugin", '{"autosave": false}'),
                               ("notebook-extension", "tracker", '{"windowingMode": "none"}')):
        folder = base / "user-settings" / "@jupyterlab" / plugin
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jupyterlab-settings").write_text(text)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(24)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(base / "user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"), "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    log = open(base / "jupyterlab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
                            + (["--allow-root"] if os.geteuid() == 0 else []),   # CI containers run as root
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(f"JupyterLab did not start: {(base / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield {"url": url, "token": token, "log": base / "jupyterlab.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _cell_errors(page) -> list[str]:
    """Error outputs of any cell (tracebacks, stderr with an exception) and widgets that failed to render."""
    return page.evaluate("""() => {
        const out = [];
        for (const el of document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')) {
            const t = el.innerText;
            if (/Traceback|Error|Exception/.test(t)) out.push(t.slice(0, 400));
        }
        for (const el of document.querySelectorAll('.jp-OutputArea-output')) {
            const t = el.innerText || '';
            if (/Error displaying widget|Failed to load model class|Traceback \\(most recent call last\\)/.test(t))
                out.push(t.slice(0, 400));
        }
        return out;
    }""")


def _dashboard(page):
    """The dashboard's widget area: the outer VBox holding the method list, the Compare button and the
    output (the first in document order; its inner controls VBox holds the button too)."""
    return page.locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.locator("button", has_text="Compare")).first


def test_dashboard_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab['url']}/lab/tree/{NOTEBOOK.name}?token={lab['token']}")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
            # the kernel is up once the status bar reads "Python 3 (ipykernel) | Idle"
            page.locator(".jp-StatusBar-TextItem", has_text="(ipykernel) | Idle").wait_for(timeout=90_000)
            # Run > Run All Cells, as a user does
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            n_code = sum(c["cell_type"] == "code" for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"])
            assert page.locator(".jp-CodeCell").count() == n_code
            # the run has started: the first code cell is queued, running or done
            page.wait_for_function("() => /^\\[(\\*|\\d+)\\]:$/.test(document.querySelector("
                                   "'.jp-CodeCell .jp-InputArea-prompt').textContent.trim())", timeout=60_000)
            page.wait_for_function(
                """(n) => {
                    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                        .map(e => e.textContent.trim());
                    return prompts.length === n && prompts.every(t => /^\\[\\d+\\]:$/.test(t));
                }""", arg=n_code, timeout=RUN_ALL_TIMEOUT_S * 1000, polling=1000)
            assert _cell_errors(page) == []
            assert not page.get_by_text(NEWS_PROMPT).is_visible(), "JupyterLab's news prompt is shown"

            dash = _dashboard(page)
            dash.scroll_into_view_if_needed()
            chart = dash.locator(".widget-output img").first
            chart.wait_for(timeout=30_000)
            dash.screenshot(path=str(SHOTS / "dashboard_before_compare.png"))
            before = chart.get_attribute("src")
            rows_before = dash.locator(".widget-output table tbody tr").count()

            select = dash.locator(".widget-select-multiple select")
            methods = select.locator("option").all_inner_texts()
            assert {"kd", "student"} <= set(methods) and len(methods) > 2, methods
            select.select_option(["kd", "student"])
            dash.locator("button", has_text="Compare").click()
            # the output is redrawn for the two methods: a new bar chart, and table rows of kd and student only
            dash.locator(".widget-output img").first.wait_for(timeout=30_000)
            page.wait_for_function(
                """([src, n]) => {
                    const out = [...document.querySelectorAll('.widget-output')].find(o => o.querySelector('table'));
                    const img = out && out.querySelector('img');
                    const rows = out ? [...out.querySelectorAll('table tbody tr td:first-child')] : [];
                    return img && img.src !== src && img.complete && img.naturalWidth > 0 && rows.length > 0
                        && rows.length < n;
                }""", arg=[before, rows_before], timeout=30_000)
            chart = dash.locator(".widget-output img").first
            box = chart.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 60, box
            assert chart.evaluate("img => img.naturalWidth > 0 && img.complete")
            groups = dash.locator(".widget-output table tbody tr td:first-child").all_inner_texts()
            assert groups and {g.split(" / ")[0] for g in groups} == {"kd", "student"}, groups
            assert _cell_errors(page) == []
            assert "No runs match" not in dash.inner_text()
            dash.screenshot(path=str(SHOTS / "dashboard_after_compare.png"))

            zh = page.locator(".jp-MarkdownCell").filter(has_text="神经网络中的知识蒸馏").first
            zh.scroll_into_view_if_needed()
            zh.screenshot(path=str(SHOTS / "zh_prose_cell.png"))
            assert not page.get_by_text(NEWS_PROMPT).is_visible(), "JupyterLab's news prompt is shown"
        except Exception:
            page.screenshot(path=str(SHOTS / "failure.png"))   # what the page showed when the test failed
            (SHOTS / "failure.html").write_text(page.content(), encoding="utf-8")
            raise
        finally:
            browser.close()
    for name in ("dashboard_before_compare.png", "dashboard_after_compare.png", "zh_prose_cell.png"):
        assert (SHOTS / name).stat().st_size > 5_000, name


def test_a_missing_browser_is_named_with_what_to_install(monkeypatch, tmp_path):
    """Without Chromium, Playwright or a CJK font the fixture fails (or, asked to, skips) saying what to install."""
    import _pytest.outcomes

    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    assert f"no Chromium at {tmp_path / 'no-chromium'}" in _missing()
    gen = lab.__wrapped__(None)   # the fixture's body; it stops before starting anything
    monkeypatch.delenv("KDTEACH_BROWSER_TEST", raising=False)
    with pytest.raises(_pytest.outcomes.Failed, match=r"apt-get install -y chromium fonts-noto-cjk"):
        next(gen)
    monkeypatch.setenv("KDTEACH_BROWSER_TEST", "skip")
    with pytest.raises(pytest.skip.Exception, match="no Chromium at"):
        next(lab.__wrapped__(None))
