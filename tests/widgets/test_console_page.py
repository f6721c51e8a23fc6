"""``romakit console``, the console as a page with no code cells, as a person meets it.

Started in a pseudo-terminal (its own Jupyter and romakit directories), it serves Voilà
on 127.0.0.1 with a random token and prints the address; headless Chromium (Playwright,
``tests/support/browser.py``) opens it, picks rows of the table, presses *Preview*,
ticks the confirmation, presses *Run* and reads the result off the page; the journal
the page names has exactly the clicked devices. Ctrl-C in the terminal stops the server
and its kernel. Also: ``--help`` on a terminal, and a Python without Voilà told what to
install (``tests/test_cli_console.py``). Every wait is on output or on the page, never a sleep.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from support.browser import chromium_page, chromium_skip_reason
from support.cli import Terminal

if TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

DEVICES, SEED, GATEWAYS = 300, 5, 2
PICK_ROWS = (1, 3, 6)
UI = 30_000  # ms: the longest a step in the page may take
FIRST_VIEW = 120_000  # ms: a kernel started, the sandbox up, the fleet listed, the widgets drawn
SHOT = Path(__file__).resolve().parent / "browser" / "console_page_last_run.png"


def _jupyter_dirs(tmp: Path) -> dict[str, str]:
    """Jupyter's and romakit's directories under ``tmp``: nothing of the user's is read or written."""
    return {
        "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "jupyter-data"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "ROMAKIT_HOME": str(tmp / "romakit-home"),
        "ROMAKIT_CONFIG": str(tmp / "romakit-config.toml"),
    }


@dataclass
class Served:
    """A running ``romakit console``: its terminal, the address it printed, how long it took."""

    term: Terminal
    url: str
    ready_s: float


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[Served]:
    reason = chromium_skip_reason()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("voila", reason="voila is not installed (pip install -e '.[lab]')")
    started = time.monotonic()
    term = Terminal(["console", "--devices", str(DEVICES), "--seed", str(SEED), "--gateways", str(GATEWAYS)],
                    _jupyter_dirs(tmp_path))
    try:
        m = term.expect(re.compile(rb"open (http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{20,})"), timeout=120)
        ready_s = time.monotonic() - started
        term.expect("Ctrl-C stops it")
        yield Served(term, m.group(1).decode(), ready_s)
    finally:
        if term.status is None:  # the test failed before its own Ctrl-C
            term.ctrl_c()
            term.wait(60)


def test_pick_preview_confirm_run_on_the_console_page(served: Served, tmp_path: Path) -> None:
    import romakit as rk
    from romakit.sim.server import SimCredentials

    assert "sandbox (300 devices, seed 5)" in served.term.text
    print(f"\nromakit console ready in {served.ready_s:.1f} s (pseudo-terminal, from exec to the address printed)")
    with chromium_page(height=1800, timeout_ms=UI, shot=tmp_path / "console_page.png", copy=SHOT) as page:
        seen = _drive(page, served.url)
        content = page.content()
    print(f"first view {seen.first_view_s:.1f} s after the page was asked for; read off the page: {seen.summary!r}")

    # what the page's kernel journaled is exactly what was clicked, all of it a success
    res = rk.journal(seen.op_id, url=seen.journal)
    assert sorted(res.frame["device_id"].astype(str)) == sorted(seen.ids)
    assert set(res.frame["outcome"].astype(str)) == {"success"}
    assert res.frame["operation"].astype(str).unique().tolist() == ["force_offline"]
    assert rk.journal(url=seen.journal)["op_id"].astype(str).tolist() == [seen.op_id]  # the refused click sent nothing

    # no secret of the sandbox, and not the page's own token, anywhere in the page
    c = SimCredentials.from_seed(SEED)
    token = served.url.split("token=", 1)[1]
    for secret in (c.sk, c.password, c.token, token):
        assert secret not in content

    # Ctrl-C in the terminal: the server and its kernel stop, the address answers no more
    served.term.ctrl_c()
    assert served.term.wait(60) == 0, served.term.text
    assert "romakit console: stopped" in served.term.text
    with pytest.raises(httpx.ConnectError):
        httpx.get(served.url, timeout=5)


@dataclass
class Seen:
    ids: list[str]
    summary: str
    op_id: str
    journal: str
    first_view_s: float


def _drive(page: Page, url: str) -> Seen:
    """Open the page; pick rows; Preview; confirm; Run; read the outcome and the journal's place."""
    from playwright.sync_api import expect

    asked = time.monotonic()
    page.goto(url, wait_until="domcontentloaded")
    picker, panel, results = page.locator(".rk-picker"), page.locator(".rk-panel"), page.locator(".rk-results")
    rows = picker.locator("table.dataTable tbody tr")
    expect(rows.first).to_be_visible(timeout=FIRST_VIEW)
    first_view_s = time.monotonic() - asked
    header = page.locator(".rk-page-header")
    expect(header).to_contain_text(f"the built-in sandbox ({DEVICES} devices, seed {SEED})")
    expect(header).to_contain_text("Nothing here reaches a real fleet")
    expect(page.locator(".jp-InputArea, .jp-CodeMirrorEditor, .cm-editor")).to_have_count(0)  # no code anywhere
    tabs = page.locator(".lm-TabBar-tab, .p-TabBar-tab")
    expect(tabs).to_have_count(1 + GATEWAYS + 1 + 1)  # LINK, each gateway, All gateways, Timeline
    count = picker.locator(".widget-html", has_text="selected")
    expect(count).to_contain_text(f"0 selected of {DEVICES} shown")

    ids = []
    for i in PICK_ROWS:
        row = rows.nth(i)
        ids.append(row.locator("td").first.inner_text().strip())
        row.click(modifiers=["ControlOrMeta"])
        expect(row).to_have_class(re.compile(r"\bselected\b"))
        expect(count).to_contain_text(f"{len(ids)} selected of {DEVICES} shown")
    assert all(re.fullmatch(r"\d+", i) for i in ids), ids

    n = len(ids)
    panel.get_by_role("button", name="Preview (dry run)").click()
    expect(panel).to_contain_text("Dry run (nothing sent): Force offline on")
    expect(panel).to_contain_text(f"{n} devices in 1 chunk")
    run = panel.locator("button", has_text=re.compile(r"^\s*Run\s*$"))
    run.click()  # before the confirmation: refused, in words, nothing sent
    expect(panel).to_contain_text(f"tick the confirm box first: this will force {n} devices offline")
    panel.get_by_label(f"I confirm: force {n} devices offline").check()
    run.click()

    status = panel.locator(".widget-html", has_text="done:")
    expect(status).to_contain_text(f"done: {n} success", timeout=FIRST_VIEW)
    summary = status.inner_text().strip()
    op_id = re.search(r"\(op ([0-9a-f]+)\)", summary).group(1)
    expect(results).to_contain_text(f"op {op_id}: {n} devices: {n} success")
    journal = page.locator("code.rk-journal").inner_text().strip()
    return Seen(ids=ids, summary=summary, op_id=op_id, journal=journal, first_view_s=first_view_s)
