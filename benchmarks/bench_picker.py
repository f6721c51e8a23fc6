"""The device picker where the user meets it: JupyterLab in Chromium, 1,000,000 devices.

    .venv/bin/python benchmarks/bench_picker.py [--devices 1000000] [--baseline 100000]

Starts JupyterLab exactly as the browser tests do (``tests/support/browser.py``: loopback, its own
config and token, Debian's Chromium through Playwright), runs a notebook cell by cell
and times, in the page, what a person waits for: the picker appearing, a search, the
next page, a sort, a Ctrl-click, "select all filtered", "clear", "reset filters".
Each step is timed from the action to the page showing its effect (polled every
animation frame). Side by side in the same run, the baseline: the whole view sent
to the browser as one ``itables`` table (what the picker did before #14), at
``--baseline`` rows, timed to appearing and to a Ctrl-click showing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from support import browser as _browser  # noqa: E402  # the browser tests' launcher: the same Lab and Chromium

FLEET = '''from support.fleets import big_fleet  # tests/support: the same generated fleet as the tests
fleet = big_fleet(N_DEVICES, devices_per_gateway=400)
base_fleet = fleet.iloc[:N_BASE].reset_index(drop=True)
print("ready", len(fleet))'''
CELLS = [
    FLEET,
    'from romakit.widgets import DevicePicker\npicker = DevicePicker(fleet)\npicker.widget.add_class("rk-picker")\npicker',
    'from itables.widget import ITable\nbase = ITable(base_fleet[picker._display.columns], select=True, maxBytes=0, '
    'showIndex=False, pageLength=15)\nbase.add_class("rk-base")\nbase',
]


def _text(sel: str, needle: str) -> str:
    """JS: true once some element matching ``sel`` contains ``needle``."""
    return f"() => [...document.querySelectorAll({sel!r})].some(e => e.textContent.includes({needle!r}))"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=int, default=100_000, help="rows of the whole-view itables baseline (0: skip)")
    ap.add_argument("--step-timeout", type=float, default=600.0, help="seconds any one step may take")
    a = ap.parse_args()
    if (reason := _browser.lab_skip_reason()) is not None:
        sys.exit(reason)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        root = tmp / "nb"
        root.mkdir()
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(c.replace("N_DEVICES", str(a.devices)).replace("N_BASE", str(max(a.baseline, 1))) if i == 0 else c)
                    for i, c in enumerate(CELLS if a.baseline else CELLS[:2])]
        nbformat.write(nb, str(root / "bench.ipynb"))
        env = {**os.environ, **_browser._write_config(tmp), "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        token = secrets.token_hex(16)
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--IdentityProvider.token={token}",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0", "--ServerApp.port_retries=0",
               f"--ServerApp.root_dir={root}", "--ServerApp.terminals_enabled=False", "--allow-root"]
        log = tmp / "lab.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        url = None
        try:
            port = _browser._server_port(Path(env["JUPYTER_RUNTIME_DIR"]), proc, log)
            url = f"http://127.0.0.1:{port}"
            _browser._wait_until_answers(url, token, proc, log)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(_browser.CHROMIUM), args=_browser.CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1800})
                    page.set_default_timeout(a.step_timeout * 1000)
                    results = _drive(page, url, token, a)
                finally:
                    browser.close()
        finally:
            _browser._stop(proc, url, token)
    load = os.getloadavg()
    print(f"\npicker in JupyterLab/Chromium, {a.devices:,} devices (load average {load[0]:.1f} {load[1]:.1f}, "
          f"{os.cpu_count()} cores)")
    for k, v in results.items():
        print(f"  {k:<48} {v:8.3f} s")


def _drive(page, url: str, token: str, a: argparse.Namespace) -> dict[str, float]:
    page.goto(f"{url}/doc/tree/bench.ipynb?token={token}", wait_until="domcontentloaded")
    status = page.locator("#jp-main-statusbar").get_by_title("Change kernel for bench.ipynb")
    status.filter(has_text="Idle").wait_for()
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    out: dict[str, float] = {}

    def run_cell(i: int) -> None:
        cells.nth(i).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")

    def timed(name: str, action, cond: str) -> None:
        t0 = time.perf_counter()
        action()
        try:
            page.wait_for_function(cond, polling="raf", timeout=a.step_timeout * 1000)
        except Exception:
            page.screenshot(path=str(ROOT / "benchmarks" / "bench_picker_failed.png"))
            raise
        out[name] = time.perf_counter() - t0
        print(f"{name}: {out[name]:.3f} s", flush=True)

    run_cell(0)
    page.wait_for_function(_text(".jp-OutputArea-output", "ready"), polling=100, timeout=600_000)
    n = a.devices
    count = ".rk-picker .widget-html"
    rows = ".rk-picker table.rk-page tbody tr"
    timed(f"appears ({n:,} devices: run cell -> rows shown)", lambda: run_cell(1),
          f"() => document.querySelectorAll({rows!r}).length > 0")
    picker = page.locator(".rk-picker")
    search = picker.get_by_placeholder("name, node id or client id contains…")
    sz = n // 5

    def do_search() -> None:
        search.fill("sz")
        search.press("Enter")
    timed(f"search 'sz' ({sz:,} match)", do_search, _text(count, f"of {sz:,} shown"))
    timed("next page", lambda: picker.get_by_role("button", name="Next").click(),
          _text(".rk-picker .widget-html", f"Showing 16 to 30 of {sz:,}"))
    timed("sort by device_name (first sort builds the order)", lambda: picker.locator("th[title='sort by device_name']").click(),
          _text(".rk-picker th", "device_name \u25b2"))
    timed("sort again (descending)", lambda: picker.locator("th[title='sort by device_name']").click(),
          _text(".rk-picker th", "device_name \u25bc"))
    timed("Ctrl-click a row", lambda: page.locator(rows).nth(2).click(modifiers=["ControlOrMeta"]),
          f"() => document.querySelectorAll({rows!r})[2].classList.contains('selected') && "
          f"[...document.querySelectorAll({count!r})].some(e => e.textContent.includes('1 selected'))")
    timed(f"select all filtered ({sz:,})", lambda: picker.get_by_role("button", name="Select all filtered").click(),
          _text(count, f"{sz:,} selected"))
    timed("reset filters (selection kept)", lambda: picker.get_by_role("button", name="Reset filters").click(),
          _text(count, f"of {n:,} shown"))
    timed(f"select all filtered ({n:,})", lambda: picker.get_by_role("button", name="Select all filtered").click(),
          _text(count, f"{n:,} selected"))
    timed(f"clear selection ({n:,} selected)", lambda: picker.get_by_role("button", name="Clear selection").click(),
          _text(count, "0 selected"))
    if a.baseline:
        brow = ".rk-base table.dataTable tbody tr"
        timed(f"BASELINE appears (whole view in itables, {a.baseline:,} rows)", lambda: run_cell(2),
              f"() => document.querySelectorAll({brow!r}).length > 0")
        timed("BASELINE Ctrl-click a row", lambda: page.locator(brow).nth(2).click(modifiers=["ControlOrMeta"]),
              f"() => document.querySelectorAll({brow!r})[2].classList.contains('selected')")
    return out


if __name__ == "__main__":
    main()
