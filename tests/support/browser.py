"""Debian's Chromium through Playwright, for the browser tests (JupyterLab, the console
page): where it is, how it is launched here, and why a test cannot run without it.

Browser downloads are impossible here, so Playwright launches the system Chromium
(``apt-get install chromium``); without it, or without the ``playwright`` package, a
test skips and says why.

JupyterLab for them: :func:`start_lab` serves a directory on loopback (a random token,
a port the OS picks, its own config, settings, runtime and ``ROMAKIT_HOME``),
:func:`open_notebook` opens one of its notebooks in a page and waits for its kernel,
:func:`run_all` runs every cell from the Run menu."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Browser, Locator, Page, Playwright

#: Debian's Chromium (``ROMAKIT_CHROMIUM`` points elsewhere, e.g. to check the skip)
CHROMIUM = Path(os.environ.get("ROMAKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",  # the machine's network is closed: no calls home
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_skip_reason() -> str | None:
    """Why Chromium cannot be driven here (no ``playwright`` package, no Chromium), or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python 'playwright' package is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)"
    return None


def launch(pw: Playwright) -> Browser:
    """Headless Chromium (the system's), as every browser test starts it."""
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


@contextlib.contextmanager
def chromium_page(*, height: int, timeout_ms: int, shot: Path, copy: Path | None = None) -> Iterator[Page]:
    """A page 1280 wide in headless Chromium, every step (and ``expect``) timing out after
    ``timeout_ms``; on the way out, pass or fail, a screenshot of wherever it got to at
    ``shot`` (and ``copy``), its path printed."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.set_default_timeout(timeout_ms)
            expect.set_options(timeout=timeout_ms)
            try:
                yield page
            finally:
                page.screenshot(path=str(shot))
                if copy is not None:
                    shutil.copyfile(shot, copy)
                print(f"screenshot: {shot}" + (f" (copy: {copy})" if copy is not None else ""))
        finally:
            browser.close()


def log_tail(log: Path, lines: int = 40) -> str:
    """The last ``lines`` of a server's log file, for an assertion's message."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- JupyterLab ----------------------------------------------------------------------------------
SERVER_START = 60.0  # seconds for JupyterLab to answer
RUN_ALL = 60_000  # ms: kernel start + running every cell (imports, sandbox)


@dataclass
class Lab:
    """A running JupyterLab: where it answers, its token, and its directories."""

    url: str
    token: str = field(repr=False)
    root: Path
    home: Path
    log: Path


#: the lab :func:`start_lab` started last (what :func:`open_notebook` opens in by default)
_current: Lab | None = None


def lab_skip_reason() -> str | None:
    """Why a JupyterLab browser test cannot run here (no Chromium, Playwright or
    JupyterLab), or None."""
    reason = chromium_skip_reason()
    if reason:
        return reason
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "jupyterlab is not installed (pip install -e '.[lab]')"
    return None


@contextlib.contextmanager
def start_lab(root: Path) -> Iterator[Lab]:
    """JupyterLab serving ``root`` on 127.0.0.1, shut down on exit. Its own config,
    settings, runtime and ``ROMAKIT_HOME`` are in a new directory beside ``root`` (kept,
    with the lab's log: a test's ``tmp_path`` holds both)."""
    global _current
    tmp = Path(tempfile.mkdtemp(prefix="lab-", dir=Path(root).parent))
    env = {**os.environ, **_write_config(tmp)}
    token = secrets.token_hex(24)
    log = tmp / "jupyter-lab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",  # the OS picks a free port; read back from the server info file
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI runs as root
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    url: str | None = None
    try:
        port = _server_port(Path(env["JUPYTER_RUNTIME_DIR"]), proc, log)
        url = f"http://127.0.0.1:{port}"
        _wait_until_answers(url, token, proc, log)
        _current = Lab(url, token, Path(root), Path(env["ROMAKIT_HOME"]), log)
        yield _current
    finally:
        _stop(proc, url, token)
        _current = None


def open_notebook(page: Page, name: str, lab: Lab | None = None) -> Locator:
    """Open ``name`` (under the lab's root; default: the lab started last) and wait until
    its kernel is connected and idle; returns the notebook panel."""
    from playwright.sync_api import expect

    lab = lab or _current
    if lab is None:
        raise RuntimeError("open_notebook: no lab running (start_lab first)")
    page.goto(f"{lab.url}/doc/tree/{name}?token={lab.token}", wait_until="domcontentloaded")
    notebook = page.locator(".jp-NotebookPanel").first
    expect(notebook.locator(".jp-Cell").first).to_be_visible()
    # the status bar names the kernel and its state once the kernel is connected (running
    # cells before that makes JupyterLab ask which kernel to start)
    kernel_state = page.locator("#jp-main-statusbar").get_by_title(f"Change kernel for {Path(name).name}")
    expect(kernel_state).to_have_text(re.compile(r"^Python 3.*\| Idle$"), timeout=RUN_ALL)
    return notebook


def run_all(page: Page) -> None:
    """Run > Run All Cells, as a person does (the cells' outputs arrive after)."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def _server_port(runtime: Path, proc: subprocess.Popen, log: Path) -> int:
    """The port JupyterLab bound (``--port=0``), from the server info file it writes."""
    info = runtime / f"jpserver-{proc.pid}.json"
    deadline = time.monotonic() + SERVER_START
    while time.monotonic() < deadline:
        if info.exists():
            try:
                return int(json.loads(info.read_text())["port"])
            except (ValueError, KeyError):
                pass  # written but not complete yet
        try:  # wait on the process itself: returns early only if it died
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"jupyter lab exited with {proc.returncode}:\n{log_tail(log)}")
    raise AssertionError(f"jupyter lab wrote no server info in {SERVER_START:.0f} s:\n{log_tail(log)}")


def _wait_until_answers(url: str, token: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll ``/api/status`` until it answers 200 (or the deadline, or the process dies)."""
    deadline = time.monotonic() + SERVER_START
    last = "no answer yet"
    with httpx.Client(timeout=5.0, headers={"Authorization": f"token {token}"}) as http:
        while time.monotonic() < deadline:
            try:
                r = http.get(f"{url}/api/status")
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"jupyter lab exited with {proc.returncode}:\n{log_tail(log)}")
    raise AssertionError(f"jupyter lab did not answer in {SERVER_START:.0f} s ({last}):\n{log_tail(log)}")


def _write_config(tmp: Path) -> dict[str, str]:
    """Config and settings that keep the lab quiet, offline and reproducible; the env to use."""
    config, settings = tmp / "jupyter-config", tmp / "lab-settings"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "LabApp": {
                    "news_url": None,  # no announcements fetched, no news toast
                    "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                },
            }
        )
    )
    user_settings = {
        # render every cell, on screen or not: no virtual scrolling under the test
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        # as `make lab` sets it: running a notebook does not rewrite it
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    }
    for plugin, values in user_settings.items():
        pkg, name = plugin.rsplit("/", 1)
        d = settings / pkg
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    home = tmp / "romakit-home"
    return {
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "jupyter-data"),  # kernelspecs: the venv's only
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-workspaces"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "ROMAKIT_HOME": str(home),
        "ROMAKIT_CONFIG": str(tmp / "romakit-config.toml"),
    }


def _stop(proc: subprocess.Popen, url: str | None, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then terminate, then kill."""
    if proc.poll() is not None:
        return
    if url:
        try:
            httpx.post(f"{url}/api/shutdown", headers={"Authorization": f"token {token}"}, timeout=5.0)
        except httpx.HTTPError:
            pass
    for stop in (None, proc.terminate, proc.kill):
        if stop is not None:
            stop()
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue
