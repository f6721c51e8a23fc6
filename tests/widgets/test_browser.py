"""The widgets in a real browser: JupyterLab on loopback, Debian's Chromium driven by Playwright.

The test copies ``tests/widgets/browser/`` to a temporary root, starts ``jupyter lab`` on it
(loopback, a random token, a port the OS picks, its own config, settings, runtime and
``ROMAKIT_HOME`` directories), opens ``pick_and_act.ipynb`` in headless Chromium, runs
all cells from the Run menu, then does what a person would: types a filter into the
picker, clicks rows of the itables table, presses *Preview*, ticks the confirm box,
presses *Run*, and reads the result summary off the page. It checks the journal the
kernel wrote against the rows it clicked, and saves a screenshot (its path is printed;
a copy goes to ``tests/widgets/browser/last_run.png``, ignored by git).

JupyterLab and Chromium come from ``tests/support/browser.py`` (the system's Chromium;
without it, or without the ``playwright`` package, the test skips and says why).
"""

from __future__ import annotations

import functools
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.browser import (
    RUN_ALL,
    Lab,
    chromium_page,
    lab_skip_reason,
    open_notebook,
    run_all,
    start_lab,
)

if TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

HERE = Path(__file__).resolve().parent
NOTEBOOK_DIR = HERE / "browser"
NOTEBOOK = "pick_and_act.ipynb"
LAST_SCREENSHOT = NOTEBOOK_DIR / "last_run.png"
FILTER = "-sz-"  # the picker's text filter (how many of the notebook's 200 devices: shown_by_filter())
PICK_ROWS = (0, 2, 4)  # rows of the filtered table the test clicks
UI = 30_000  # ms: the longest any single step may take in the page


@functools.cache
def shown_by_filter() -> int:
    """How many of the notebook's devices the picker shows under FILTER: the same fleet
    and the same picker, in this process."""
    import romakit as rk
    from romakit.widgets import DevicePicker

    with rk.sandbox(devices=200, seed=5, mqtt=False) as sb, sb.link_client(progress=False) as link:
        picker = DevicePicker(link.devices())
    picker.text.value = FILTER
    return len(picker.shown)


def _notebook_source():
    """tests/widgets/browser/pick_and_act.py, which writes the notebook this test opens."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pick_and_act", NOTEBOOK_DIR / "pick_and_act.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab serving a copy of ``tests/widgets/browser`` on 127.0.0.1, shut down afterwards."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "notebooks"
    root.mkdir()
    _notebook_source().write(root / NOTEBOOK)
    with start_lab(root) as running:
        yield running


def _journal_rows(home: Path, op_id: str) -> list[tuple[str, str]]:
    """(device_id, outcome) of every device the kernel's journal has for ``op_id``."""
    db = sqlite3.connect(f"file:{home / 'sandbox' / 'journal.sqlite3'}?mode=ro", uri=True)  # a sandbox's runs
    try:
        rows = db.execute("SELECT device_id, outcome FROM rows WHERE op_id = ? ORDER BY chunk, pos", (op_id,))
        return [(str(d), str(o)) for d, o in rows]
    finally:
        db.close()


def test_pick_preview_confirm_run_in_chromium(lab: Lab, tmp_path: Path) -> None:
    print(f"\njupyter lab log: {lab.log}")
    started = time.monotonic()
    # tall enough for the whole notebook: the screenshot shows every step at once
    with chromium_page(height=2100, timeout_ms=UI, shot=tmp_path / "pick_and_act.png", copy=LAST_SCREENSHOT) as page:
        picked = _drive(page, lab)
        _gate(page)
    print(f"read off the page: {picked.summary!r}")
    print(f"browser flow: {time.monotonic() - started:.1f} s")

    # what the kernel sent, as its journal has it, is exactly what was clicked
    rows = _journal_rows(lab.home, picked.op_id)
    assert sorted(d for d, _ in rows) == sorted(picked.ids), rows
    assert {o for _, o in rows} == {"success"}, rows
    everything = _journal_rows(lab.home, picked.all_op_id)  # "select all filtered": the rows shown, no more
    assert len(everything) == shown_by_filter() and {o for _, o in everything} == {"success"}, everything


@dataclass
class Picked:
    """What the browser did and saw: the ids of the clicked rows and the run's summary."""

    ids: list[str]
    summary: str
    op_id: str
    all_op_id: str = ""


def _drive(page: Page, lab: Lab) -> Picked:
    """Open the notebook, run it, pick rows, preview, confirm, run; read the outcome."""
    from playwright.sync_api import expect

    notebook = open_notebook(page, NOTEBOOK, lab)
    run_all(page)

    picker = notebook.locator(".rk-picker")
    panel = notebook.locator(".rk-panel:not(.rk-gated)")  # every ActionPanel is .rk-panel; the gated one is apart
    results = notebook.locator(".rk-results")
    table_rows = picker.locator("table.dataTable tbody tr")
    expect(table_rows.first).to_be_visible(timeout=RUN_ALL)
    expect(panel).to_be_visible(timeout=RUN_ALL)
    expect(results).to_be_visible(timeout=RUN_ALL)
    count = picker.locator(".widget-html", has_text="selected")
    expect(count).to_contain_text("0 selected of 200 shown")
    # what a person sees before touching anything: filters at (any), 15 rows a page, a hint, no broken image
    chosen = "el => el.options[el.selectedIndex] ? el.options[el.selectedIndex].text : ''"
    expect(picker.locator(".widget-dropdown select").first).to_be_visible()
    assert picker.locator(".widget-dropdown select").first.evaluate(chosen) == "(any)"
    length = picker.locator(".rk-length select").first
    assert length.evaluate(chosen) == "15"
    expect(picker).to_contain_text("Ctrl-click")  # how to select several is said
    images = results.locator("img")  # the outcome chart and the follow's curve
    for k in range(images.count()):
        expect(images.nth(k)).to_be_hidden()  # no broken-image icon before a result

    # filter by text (the box commits on Enter); wait for the kernel's label AND for the
    # table to be redrawn, so that no click lands on the old, unfiltered rows
    search = picker.get_by_placeholder("name, node id or client id contains…")
    search.fill(FILTER)
    search.press("Enter")
    shown = shown_by_filter()
    expect(count).to_contain_text(f"0 selected of {shown} shown")
    expect(picker).to_contain_text(f"Showing 1 to {min(15, shown)} of {shown} entries")
    # one search: the table has no search box of its own, so what it shows is the filter's
    expect(picker.locator("input[type=search]")).to_have_count(0)
    ids = []
    for i in PICK_ROWS:
        row = table_rows.nth(i)
        expect(row).to_contain_text(FILTER)
        ids.append(row.locator("td").first.inner_text().strip())
        row.click(modifiers=["ControlOrMeta"])  # the table selects like a file list: ctrl adds
        expect(row).to_have_class(re.compile(r"\bselected\b"))
        expect(count).to_contain_text(f"{len(ids)} selected of {shown} shown")  # the kernel has it
    assert all(re.fullmatch(r"\d+", i) for i in ids), ids

    # Preview (dry run), confirm, Run
    n = len(ids)
    panel.get_by_role("button", name="Preview (dry run)").click()
    expect(panel).to_contain_text("Dry run (nothing sent): Force offline on")
    expect(panel).to_contain_text(f"{n} devices in 1 chunk")
    confirm = panel.get_by_label(f"I confirm: force {n} devices offline")
    expect(confirm).to_be_enabled()
    confirm.check()
    # (an icon's glyph is part of a button's accessible name: match the button's text)
    run = panel.locator("button", has_text=re.compile(r"^\s*Run\s*$"))
    expect(run).to_be_enabled()
    run.click()

    # the outcome, read off the page: the panel's status line and the results view
    status = panel.locator(".widget-html", has_text="done:")
    expect(status).to_have_text(re.compile(rf"^done: {n} success \(op [0-9a-f]+\)\. {n} acted-on devices left "
                                           r"the selection\.$"), timeout=RUN_ALL)
    summary = status.inner_text().strip()
    op_id = re.search(r"\(op ([0-9a-f]+)\)", summary).group(1)
    expect(results).to_contain_text(f"op {op_id}: {n} devices: {n} success")
    expect(results.locator("button", has_text="Retry transient failures (0)")).to_be_disabled()
    chart = results.locator("img").first  # the outcome chart arrives last, as a PNG
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    expect(count).to_contain_text(f"0 selected of {shown} shown")  # what was acted on left the selection

    # "Select all filtered" selects exactly the rows the table shows, and Run sends those
    picker.get_by_role("button", name=re.compile("Select all filtered")).click()
    expect(count).to_contain_text(f"{shown} selected of {shown} shown (200 total)")
    expect(picker.locator("table.dataTable tbody tr.selected")).to_have_count(min(15, shown))  # this page's rows (15 a page)
    panel.get_by_role("button", name="Preview (dry run)").click()
    expect(panel).to_contain_text(f"{shown} devices in {-(-shown // 10)} chunks")
    panel.get_by_label(f"I confirm: force {shown} devices offline").check()
    run.click()
    expect(status).to_contain_text(f"done: {shown} success", timeout=RUN_ALL)
    all_op = re.search(r"\(op ([0-9a-f]+)\)", status.inner_text()).group(1)
    return Picked(ids=ids, summary=summary, op_id=op_id, all_op_id=all_op)


def _gate(page: Page) -> None:
    """The canary gate as a person meets it: the panel says it waits, the decision's
    buttons are visible under that line (the rollout section stays folded), Stop is the
    main action of a failed canary; clicking it stops the run."""
    from playwright.sync_api import expect

    gated = page.locator(".jp-NotebookPanel").first.locator(".rk-gated")
    gated.get_by_role("button", name="Preview (dry run)").click()
    expect(gated).to_contain_text("20 devices in")
    gated.get_by_label("I confirm: force 20 devices offline").check()
    gated.locator("button", has_text=re.compile(r"^\s*Run\s*$")).click()
    expect(gated).to_contain_text("waiting at the canary gate for your decision below", timeout=RUN_ALL)
    stop = gated.locator("button", has_text="Stop here (recommended)")
    expect(stop).to_be_visible()
    expect(stop).to_have_class(re.compile(r"\bmod-primary\b"))
    expect(gated.locator("button", has_text="Continue anyway")).to_be_visible()
    stop.click()  # a real click: Playwright refuses an element that is hidden or covered
    expect(gated).to_contain_text("stopped: canary refused: 3 of 3 devices", timeout=RUN_ALL)
    expect(gated).to_contain_text("17 skipped")
