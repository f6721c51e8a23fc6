"""The chain as the unit of evidence: an operation that was resumed or retried is read
back (``rk.journal``, ``romakit journal``, ``romakit report``) as its chain's net state,
whichever op id of the chain is given: every device once, its latest outcome, the
operation that settled it, and each step listed. On both backends, against the sandbox."""

from __future__ import annotations

import json
import os
import re

import pytest
from support.cli import romakit

import romakit as rk
from romakit import outcomes as oc
from romakit.engine import CancelToken, RetryPolicy
from romakit.errors import InputError

pytestmark = pytest.mark.timeout(120)

SANDBOX = {"devices": 4000, "seed": 29}


def cli(backend: str, *args: str) -> str:
    """``romakit ARGS`` on this test's journal; its output (exit 0 asserted)."""
    env = {"ROMAKIT_JOURNAL": os.environ["ROMAKIT_JOURNAL"]} if backend == "postgresql" else {}
    p = romakit(*args, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture
def resumed(link, claim):
    """A force-offline of 300 devices stopped after 60, then resumed to the end."""
    ids = claim.online(300)
    token = CancelToken()
    first = link.force_offline(ids, chunk_size=10, concurrency=1, cancel=token, rollout=False,
                               progress=lambda d, t: token.cancel("paused") if d >= 60 else None)
    assert (first.counts[oc.SUCCESS], first.counts[oc.SKIPPED]) == (60, 240)
    done = rk.resume(first.op_id, link)
    assert done.counts[oc.SUCCESS] == 300
    (step,) = rk.journal().query("relation == 'resume'")["op_id"]
    return ids, first.op_id, step


def test_a_resumed_operation_reads_as_its_chains_net_state(resumed):
    ids, first, step = resumed
    for given in (first, step, first[:8]):  # whichever op id of the chain is given: the same chain
        net = rk.journal(given)
        assert net.counts[oc.SUCCESS] == 300 and len(net) == 300 and net.stopped is None
        assert net.op_id == first and net.frame["device_id"].astype(int).tolist() == ids  # request order
        assert net.settled_in.astype(str).value_counts().to_dict() == {step: 240, first: 60}
        assert net.steps["op_id"].tolist() == [first, step] and net.steps["relation"].tolist() == ["first", "resume"]
        assert net.describe().startswith("net state of a chain of 2 operations: 300 success")
    own = rk.journal(first, step=True)  # the one operation's own rows, on request
    assert (own.counts[oc.SUCCESS], own.counts[oc.SKIPPED]) == (60, 240)


def test_romakit_journal_and_report_show_the_chain_after_a_resume(resumed, backend, tmp_path):
    _, first, step = resumed
    text = cli(backend, "journal", first)
    assert "net state of a chain of 2 operations: 300 success" in text and step in text
    assert "romakit resume" not in text and "stopped:" not in text
    out = json.loads(cli(backend, "journal", step, "--json"))
    assert out["counts"][oc.SUCCESS] == 300 and [s["op_id"] for s in out["chain"]] == [first, step]
    path = tmp_path / "r.html"
    cli(backend, "report", step, "-o", str(path))
    page = path.read_text()
    assert "Net state of a chain of 2 operations" in page and "300 success" in page
    assert "Stopped early" not in page and "every device has an answer" in page


def test_the_report_after_a_retry_keeps_the_originals_permanent_failures(link, sb, claim, backend, tmp_path):
    bogus = [990000000 + i for i in range(5)]  # no such devices: refused for good
    ids = bogus + claim.online(25)
    fault = lambda d, t: sb.set_fault(error_rate=1.0) if d >= 10 else None  # noqa: E731 - after two chunks
    try:
        first = link.force_offline(ids, chunk_size=5, concurrency=1, rollout=False, progress=fault,
                                   retry=RetryPolicy(attempts=1))
    finally:
        sb.clear_faults()
    assert (first.counts[oc.SUCCESS], first.counts[oc.FAILED]) == (5, 25)
    assert sorted(first.retry_ids()) == sorted(ids[10:])  # the five unknown ids are no transient failure
    retry = first.retry(link)
    assert retry.ok and len(retry) == 20
    net = rk.journal(retry.op_id)
    assert net.op_id == first.op_id and (net.counts[oc.SUCCESS], net.counts[oc.FAILED]) == (25, 5)
    failed = net.frame.loc[net.frame.outcome == oc.FAILED]
    assert sorted(failed.device_id.astype(int)) == bogus and set(failed.op_id.astype(str)) == {first.op_id}
    path = tmp_path / "retry.html"
    cli(backend, "report", retry.op_id, "-o", str(path))
    page = path.read_text()
    assert all(str(b) in page for b in bogus)  # the failures needing a human are in the report
    timeline = re.search(r"<section id='timeline'>.*?</section>", page, re.S).group(0)
    listed = len(re.findall(r"<tr\b", timeline)) - 1  # the chunk table's rows, its header aside
    said = re.search(r"<th>chunks \(as in the timeline\)</th><td>(\d+)</td>", page)
    chunks = net.frame.groupby(["op_id", "chunk"], observed=True).ngroups  # the first run's 2, the retry's
    assert said and int(said.group(1)) == listed == chunks and chunks > 2
    assert first.op_id in timeline and retry.op_id in timeline


def test_an_empty_op_id_names_no_operation(link, claim):
    link.force_offline(claim.online(2), chunk_size=2)  # the journal's only operation
    for empty in ("", "  "):
        with pytest.raises(InputError, match="give an operation id"):
            rk.journal(empty)
        with pytest.raises(InputError, match="give an operation id"):
            rk.resume(empty, link)
