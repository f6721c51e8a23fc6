"""Debian's Chromium through Playwright, for the browser tests (JupyterLab, the console
page): where it is, how it is launched here, and why a test cannot run without it.

Browser downloads are impossible here, so Playwright launches the system Chromium
(``apt-get install chromium``); without it, or without the ``playwright`` package, a
test skips and says why."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Browser, Page, Playwright

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
