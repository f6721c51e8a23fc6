"""Every walkthrough as a classroom meets it: opened in JupyterLab in Chromium, *Run All*
from the Run menu, and then used. After Run All no widget may say "Closed" (the clean-up is
a button, pressed on purpose); a widget of each notebook must work: where there is a picker
and an action panel, *Select all filtered* and *Preview (dry run)* agree on the count shown
(a panel shown alone previews what its picker holds);
then the *Clean up* button closes everything, and says so, and the picker shows its closed
note.

One JupyterLab serves copies of the notebooks, parameterized as papermill does (a small
fleet, so the whole run stays within a few minutes), their stored outputs cleared so that
what the page shows comes from this run. Three notebooks run at a time (their kernels wait
on the sandbox's throttling and timeouts more than they compute); each kernel is shut down
once its notebook is done.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from support.browser import lab_skip_reason, launch, open_notebook, run_all, start_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(480)]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
#: the fleet of every notebook here (papermill's parameters, as in tests/test_notebooks_papermill.py)
PARAMETERS = {"devices": 200, "seed": 17}
AT_ONCE = 3
#: what a closed widget shows (romakit.widgets._base.CLOSED_NOTE)
CLOSED = "Closed: the client and sandbox"
#: ms for one notebook's Run All (the throttling exercise alone waits ~20 s on Retry-After)
RUN_ONE = 150_000
UI = 30_000  # ms: the longest any single step may take in the page


def _copy(nb: Path, root: Path) -> None:
    """``nb`` into ``root``, parameterized as papermill does and without its stored outputs."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    node = load_notebook_node(str(nb))  # with the metadata papermill keeps
    for cell in node.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    node = parameterize_notebook(node, PARAMETERS)
    nbformat.write(node, str(root / nb.name))


#: true once the notebook's last code cell has an execution count, or some cell wrote to
#: stderr (an error stops Run All there: the last cell would never run)
_DONE_OR_FAILED = """() => {
  const nb = document.querySelector('.jp-NotebookPanel');
  const cells = nb.querySelectorAll('.jp-CodeCell');
  const prompt = cells[cells.length - 1].querySelector('.jp-InputPrompt').textContent.trim();
  return /^\\[\\d+\\]:$/.test(prompt) ||
    nb.querySelector(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']") !== null;
}"""


def _wait_run_all(page, notebook, name: str) -> None:
    """Until the last code cell has run; a cell that failed (or wrote to stderr) fails the test."""
    page.wait_for_function(_DONE_OR_FAILED, timeout=RUN_ONE)
    errors = notebook.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    if errors.count():
        raise AssertionError(f"{name}: a cell failed or wrote to stderr under Run All:\n{errors.first.inner_text()[:3000]}")


def _use_a_widget(notebook, name: str) -> str:
    """Use the notebook's picker and panel (if it has them): select what the filters show
    and preview it; what the page said."""
    from playwright.sync_api import expect

    picker = notebook.locator(".rk-picker").first
    panel = notebook.locator(".rk-panel").first
    if not panel.count():
        return "no panel"
    if not picker.count():  # a panel shown alone acts on what its picker selected in code
        panel.get_by_role("button", name="Preview (dry run)").click()
        status = panel.locator(".widget-html", has_text="preview ready:").first
        expect(status).to_contain_text(re.compile(r"preview ready: [\d,]+ devices? in [\d,]+ chunks?"))
        expect(panel).to_contain_text("(nothing sent)")
        return status.inner_text().strip()
    count = picker.locator(".widget-html", has_text="selected of").first
    expect(count).to_contain_text(re.compile(r"\d+ selected of [\d,]+ shown"))
    shown = int(re.search(r"selected of ([\d,]+) shown", count.inner_text()).group(1).replace(",", ""))
    assert shown > 0, f"{name}: the picker shows nothing to act on"
    picker.get_by_role("button", name=re.compile("Select all filtered")).click()
    expect(count).to_contain_text(f"{shown:,} selected of {shown:,} shown")
    panel.get_by_role("button", name="Preview (dry run)").click()
    expect(panel).to_contain_text("(nothing sent)")
    devices = f"{shown:,} device" + ("" if shown == 1 else "s")
    expect(panel).to_contain_text(devices)
    return f"selected all {shown:,} shown, previewed {devices}"


@contextlib.contextmanager
def _closing(browser):
    try:
        yield browser
    finally:
        browser.close()


def _shut_down_kernels(lab) -> None:
    """Stop every kernel the lab runs (a finished notebook's, to free the machine)."""
    with httpx.Client(base_url=lab.url, timeout=10.0, headers={"Authorization": f"token {lab.token}"}) as http:
        for k in http.get("/api/kernels").json():
            http.delete(f"/api/kernels/{k['id']}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("papermill")
    tmp = tmp_path_factory.mktemp("notebooks-in-chromium")
    root = tmp / "notebooks"
    root.mkdir()
    for nb in NOTEBOOKS:
        _copy(nb, root)
    with start_lab(root) as running:
        yield running


def test_every_notebook_after_run_all_in_chromium(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    started = time.monotonic()
    said: dict[str, str] = {}
    expect.set_options(timeout=UI)
    with sync_playwright() as pw, _closing(launch(pw)) as chromium:
        for at in range(0, len(NOTEBOOKS), AT_ONCE):
            batch = [nb.name for nb in NOTEBOOKS[at:at + AT_ONCE]]
            pages = {}
            for name in batch:  # their kernels run side by side
                page = chromium.new_page(viewport={"width": 1280, "height": 1600})
                page.set_default_timeout(UI)
                notebook = open_notebook(page, name, lab)
                run_all(page)
                pages[name] = (page, notebook)
            for name, (page, notebook) in pages.items():
                try:
                    _wait_run_all(page, notebook, name)
                    expect(notebook).not_to_contain_text(CLOSED)  # Run All leaves every widget alive
                    said[name] = _use_a_widget(notebook, name)
                    # the clean-up, pressed on purpose: everything closes, visibly
                    cleanup = notebook.locator(".rk-cleanup").last
                    expect(cleanup).to_contain_text("press the button when you are done", ignore_case=True)
                    cleanup.get_by_role("button", name=re.compile("Clean up")).click()
                    expect(cleanup).to_contain_text(re.compile(r"Closed .*Sandbox\. Run the notebook again"), timeout=UI)
                    if notebook.locator(".rk-picker").count():
                        expect(notebook.locator(".rk-picker").first).to_contain_text(CLOSED)
                except BaseException:
                    shot = tmp_path / f"{Path(name).stem}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"screenshot of {name}: {shot}")
                    raise
                page.close()
            _shut_down_kernels(lab)
    took = time.monotonic() - started
    print(json.dumps(said, indent=1))
    print(f"{len(NOTEBOOKS)} notebooks run all and used in Chromium in {took:.0f} s")
    assert set(said) == {nb.name for nb in NOTEBOOKS}
    assert said["02_pick_and_force_offline.ipynb"].startswith("selected all")
    assert said["03_gateway_child_deletion.ipynb"].startswith("selected all")  # the console's picker and panel
    assert said["07_training_rollouts.ipynb"].startswith("preview ready")  # its panel, shown alone
