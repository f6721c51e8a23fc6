"""The evidence report: written by ``res.report()`` and ``romakit report OP``, opened in
Chromium with every network request refused, checked for its sections and the chain
(original, retry, resume), and scanned for the sandbox's secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import romakit as rk
from romakit.engine import CancelToken
from romakit.results.report import SECTIONS

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("ROMAKIT_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A force-offline with failures, its retry and a resume, and the sandbox's secrets."""
    with rk.sandbox(devices=900, seed=29) as sb, sb.link_client(progress=False) as link:
        fleet = link.devices()
        ids = fleet.loc[fleet["online_status"] == "online", "id"].tolist()[:240]
        token = CancelToken()
        sb.set_fault(error_rate=0.3, fail_ids=ids[:3])
        first = link.force_offline(ids, chunk_size=20, concurrency=1, cancel=token, retry=rk.RetryPolicy(attempts=1),
                                   rollout=rk.Rollout(abort_threshold=0.9, abort_min=50),
                                   progress=lambda d, t: token.cancel("paused by the test") if d >= 160 else None)
        sb.clear_faults()
        retried = first.retry(link)
        resumed = rk.resume(first.op_id, link)
        secrets = [sb.credentials.sk, sb.credentials.token, *(sb.fleet.secret_of(g) for g in sb.gateways())]
        out = tmp_path_factory.mktemp("report") / "case-1234"
        path = first.report(out, verify=link)
        gw_id = sb.gateways()[0]
        with sb.gateway(gw_id) as gw:
            gw_res = gw.delete_sub_devices([*sb.children(gw_id)[:4], "not-a-child"], progress=False)
        cli = subprocess.run([sys.executable, "-m", "romakit", "report", gw_res.op_id, "-o", str(out.parent / "gw.html")],
                             capture_output=True, text=True, timeout=120, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        yield {"home": os.environ["ROMAKIT_HOME"], "path": path, "first": first, "retried": retried, "resumed": resumed, "secrets": secrets,
               "cli": cli, "gw_path": out.parent / "gw.html", "gw_res": gw_res}


def test_report_holds_the_evidence_and_no_secret(case):
    path, first = case["path"], case["first"]
    assert path.name == "case-1234.html" and path.is_absolute()
    text = path.read_text()
    for sid, _title in SECTIONS:  # a force-offline has no snapshot: only deletions (and restores) keep one
        assert (f"<section id='{sid}'>" in text) == (sid != "snapshot"), sid
    assert "http://" not in text.replace(re.search(r"client endpoint</th><td>(http://[^<]+)", text).group(1), "")
    assert "paused by the test" in text and "abort when 90% failed or unknown after 50 devices" in text
    bad_request_ids = first.failures()["request_id"].dropna().astype(str).unique()
    assert len(bad_request_ids) and all(r in text for r in bad_request_ids)  # the ids to quote to Huawei
    for op in (first.op_id, case["retried"].op_id):
        assert op in text
    assert "retry" in text and "resume" in text and "verified" in text
    for secret in case["secrets"]:
        assert secret not in text
    assert case["cli"].returncode == 0, case["cli"].stderr
    gw_text = case["gw_path"].read_text()
    assert case["gw_res"].op_id in gw_text and "event ids to quote" in gw_text
    assert "<section id='snapshot'>" in gw_text and case["gw_res"].snapshot  # what the deletion removed
    assert all(r["node_id"] in gw_text for r in case["gw_res"].snapshot.values())
    assert not any(s in gw_text for s in case["secrets"])


STORELESS = """
import sys
from romakit.results import BatchResult

res = BatchResult.read_parquet(sys.argv[1])
alone = res.report(sys.argv[2] + "-alone").read_text()
assert "romakit.store" not in sys.modules, "reading a result and reporting on it imported the journal"
from romakit.store.journal import Journal

chained = res.report(sys.argv[2], journal=Journal.for_sandbox()).read_text()  # where the sandbox's runs are
print(int(sys.argv[3] in alone), int(sys.argv[3] in chained))
print(alone.split("<section id='chain'>")[1].split("</section>")[0])
"""


def test_a_report_reads_the_chain_from_the_journal_it_is_given(case, tmp_path):
    """In a fresh process that never imports romakit.store, a result read from a file
    names no chain and says why; given the journal, its report holds the chain."""
    saved = tmp_path / "first.parquet"
    case["first"].to_parquet(saved)
    retry_id = case["retried"].op_id
    out = subprocess.run([sys.executable, "-c", STORELESS, str(saved), str(tmp_path / "r.html"), retry_id],
                         capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "ROMAKIT_HOME": case["home"]})
    assert out.returncode == 0, out.stderr
    found, note = out.stdout.split("\n", 1)
    assert found == "0 1"  # the retry is in the chain only when the journal is given
    assert "carries no journal" in note and "journal=" in note
    assert retry_id in case["first"].report(tmp_path / "own.html").read_text()  # a run's result: its own journal


def test_report_opens_in_chromium_without_a_network(case, tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the Python 'playwright' package is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium")
    asked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def refuse(route):  # the file itself and its data: images pass; anything else is a dependency
                if not route.request.url.startswith(("file:", "data:")):
                    asked.append(route.request.url)
                    return route.abort()
                return route.continue_()

            page.route("**/*", refuse)
            page.goto(case["path"].as_uri(), wait_until="load")
            headings = page.locator("section h2").all_inner_texts()
            assert headings == [t for sid, t in SECTIONS if sid != "snapshot"]
            images = page.locator("img")
            assert images.count() >= 2
            assert page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            chain = page.locator("#chain table tbody tr")
            assert chain.count() == 3  # the original, its retry, its resume
            assert page.locator("#chain").inner_text().count("this report") == 1
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert asked == []
