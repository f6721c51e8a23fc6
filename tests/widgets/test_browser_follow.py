"""The Follow button and the console's Timeline tab in a real browser: JupyterLab on
loopback, Debian's Chromium driven by Playwright (``tests/support/browser.py``).

The notebook (``tests/widgets/browser/follow_and_timeline.py``) starts a sandbox whose
forced devices reconnect at classroom speed (a share never does), watches it, forces 40
devices offline and prints which the sandbox will never bring back. The test then does
what a person would: in the results view it sets *within* and *every* and presses
*Follow*, and reads the reconnect curve (an image that loads) and the devices not back
(exactly the never-returning ones); in the console it opens the *Timeline* tab, where
the operation shown is already chosen, presses *Show*, and reads the headline, the
chart and the devices still down (the same ones) off the page. A screenshot is saved
(its path printed; a copy in ``tests/widgets/browser/follow_last_run.png``, ignored by git).
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.browser import (
    RUN_ALL,
    chromium_page,
    lab_skip_reason,
    open_notebook,
    run_all,
    start_lab,
)

if TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

HERE = Path(__file__).resolve().parent
NOTEBOOK = "follow_and_timeline.ipynb"
LAST_SCREENSHOT = HERE / "browser" / "follow_last_run.png"
UI = 30_000  # ms: the longest any single step may take in the page
FORCED = 40


def _write_notebook(path: Path) -> None:
    spec = importlib.util.spec_from_file_location("follow_and_timeline", HERE / "browser" / "follow_and_timeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write(path)


def test_follow_button_and_timeline_tab_in_chromium(tmp_path: Path) -> None:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "notebooks"
    root.mkdir()
    _write_notebook(root / NOTEBOOK)
    started = time.monotonic()
    with start_lab(root) as lab:
        print(f"\njupyter lab log: {lab.log}")
        with chromium_page(height=2400, timeout_ms=UI, shot=tmp_path / "follow_and_timeline.png",
                           copy=LAST_SCREENSHOT) as page:
            notebook = open_notebook(page, NOTEBOOK)
            run_all(page)
            never = _never(notebook)
            _follow(page, notebook.locator(".rk-results").first, never)
            _timeline(page, notebook.locator(".rk-console").first, never)
    print(f"browser flow: {time.monotonic() - started:.1f} s")


def _never(notebook: Locator) -> set[str]:
    """The ids the kernel printed as never coming back."""
    from playwright.sync_api import expect

    out = notebook.locator(".jp-OutputArea-output", has_text="never:").first
    expect(out).to_contain_text("(end)", timeout=RUN_ALL)
    never = set(re.search(r"never:(.*)\(end\)", out.inner_text(), re.S).group(1).split())
    assert never and all(i.isdigit() for i in never), never
    assert len(never) < FORCED
    return never


def _loaded(page: Page, img: Locator) -> None:
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())


def _rows(table_box: Locator) -> set[str]:
    """The first cell of each body row of the table in ``table_box``."""
    cells = table_box.locator("table tbody tr td:first-child")
    return {cells.nth(k).inner_text().strip() for k in range(cells.count())}


def _follow(page: Page, results: Locator, never: set[str]) -> None:
    """Follow: set within and every, press the button, read the curve and the stragglers."""
    from playwright.sync_api import expect

    expect(results).to_contain_text(f"{FORCED} devices: {FORCED} success", timeout=RUN_ALL)
    for label, value in (("within", "4s"), ("every", "0.2s")):
        box = results.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
    button = results.locator("button", has_text=re.compile(r"^\s*Follow\s*$"))
    expect(button).to_be_enabled()
    button.click()
    back = FORCED - len(never)
    expect(results).to_contain_text(f"{back} of {FORCED} back within 4 s, {len(never)} not back", timeout=RUN_ALL)
    curve = results.locator("img").nth(1)  # the outcome chart first, the reconnect curve second
    expect(curve).to_be_visible()
    _loaded(page, curve)
    stragglers = results.locator(".widget-html", has_text="Not back").last
    expect(stragglers.locator("table tbody tr")).to_have_count(len(never))
    assert _rows(stragglers) == never


def _timeline(page: Page, console: Locator, never: set[str]) -> None:
    """The Timeline tab: the operation already chosen, Show, the headline, chart and tables."""
    from playwright.sync_api import expect

    console.get_by_role("tab", name="Timeline").click()
    view = console.locator(".rk-timeline")
    expect(view).to_be_visible()
    expect(console.locator("button", has_text="Preview (dry run)")).to_be_hidden()  # the actions step aside
    chosen = "el => el.options[el.selectedIndex] ? el.options[el.selectedIndex].text : ''"
    op = view.locator(".widget-dropdown select").first
    assert "force_offline" in op.evaluate(chosen)
    view.locator("button", has_text="Show").click()
    expect(view).to_contain_text("events around operation", timeout=RUN_ALL)
    head = view.locator(".widget-html b", has_text="events on").first
    expect(head).to_contain_text(f"{len(never)} still down")
    expect(head).to_contain_text("1 operation")
    chart = view.locator("img").first
    expect(chart).to_be_visible()
    _loaded(page, chart)
    still = view.locator(".widget-html", has_text="Still down (").first
    expect(still.locator("table tbody tr")).to_have_count(len(never))
    assert _rows(still) == never
    ended = view.locator(".widget-html", has_text="Longest spells that ended").first
    expect(ended.locator("table tbody tr").first).to_be_visible()
    view.screenshot(path=str(LAST_SCREENSHOT.with_name("timeline_last_run.png")))
    console.get_by_role("tab", name="LINK").click()
    expect(console.locator("button", has_text="Preview (dry run)")).to_be_visible()
