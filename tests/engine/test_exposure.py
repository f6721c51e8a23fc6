"""Exposure bounded by the policy, whatever the chunk size and concurrency: counted from
the sandbox's own request log (what the LINK simulator answered), never from the client.

The scenario: one product failing always, its devices first."""

from __future__ import annotations

import asyncio
import threading

import pytest

import romakit as rk
from romakit.engine import Answer, run_batch
from romakit.engine.rollout import Rollout, RolloutState
from romakit.engine.window import SLOW_START

FORCE_OFFLINE = "/devices/force-offline"
ABORT_MIN = 200




@pytest.fixture(scope="module")
def ordered(sb):
    """(failing product id, its devices then the others)."""
    by_product: dict[int, list[int]] = {}
    for d in sb.fleet.all():
        by_product.setdefault(d["product"]["product_id"], []).append(d["id"])
    bad, bad_ids = max(by_product.items(), key=lambda kv: len(kv[1]))
    assert len(bad_ids) > 2 * ABORT_MIN
    return bad, bad_ids + [i for p, ids in by_product.items() if p != bad for i in ids]


def sent_devices(sb) -> int:
    return sum(n for _, _, path, _, n in sb.link.requests if path.endswith(FORCE_OFFLINE))


@pytest.mark.parametrize("chunk_size", [50, 250, 500])
@pytest.mark.parametrize("concurrency", [1, 8, 16])
def test_a_failing_product_first_is_stopped_within_abort_min(sb, ordered, chunk_size, concurrency):
    bad, ids = ordered
    sb.set_fault(fail_products={bad})
    sb.link.clear_log()
    policy = rk.Rollout(abort_threshold=0.2, abort_min=ABORT_MIN)
    try:
        with sb.link_client(chunk_size=chunk_size, concurrency=concurrency, progress=False) as link:
            res = link.force_offline(ids[:1500], rollout=policy)
    finally:
        sb.clear_faults()
    sent = sent_devices(sb)
    assert ABORT_MIN <= sent <= ABORT_MIN + SLOW_START, (sent, res.counts)
    assert sent <= policy.worst_case(1500) + SLOW_START
    f = res.frame
    assert f["device_id"].is_unique and len(f) == 1500  # every id once
    assert res.counts["failed"] + res.counts["success"] == sent and res.counts["skipped"] == 1500 - sent
    assert res.stopped and "after" in res.stopped


def test_a_canary_of_100_exposes_at_most_100_before_the_gate(sb, ordered):
    bad, ids = ordered
    sb.set_fault(fail_products={bad})
    sb.link.clear_log()
    at_gate = []

    def gate(report):
        at_gate.append((report.devices, sent_devices(sb)))
        return False

    try:
        with sb.link_client(chunk_size=500, concurrency=16, progress=False) as link:
            res = link.force_offline(ids[:1500], rollout=rk.Rollout(canary=100, abort_min=1000, gate=gate))
    finally:
        sb.clear_faults()
    assert at_gate == [(100, 100)]  # the gate saw the whole canary, and no more was on the wire
    assert sent_devices(sb) == 100 and res.counts["skipped"] == 1400


def test_the_worst_case_in_the_preview_is_what_a_run_sends(sb, ordered):
    from romakit.widgets import ActionPanel, DevicePicker

    bad, ids = ordered
    with sb.link_client(chunk_size=500, concurrency=16, progress=False) as link:
        fleet = link.devices().set_index("id").loc[ids].reset_index()  # the failing product first
        picker = DevicePicker(fleet)
        picker.select(ids[:1000])
        panel = ActionPanel(link, picker, blast_radius=5000)
        panel.rollout = rk.Rollout(abort_threshold=0.2, abort_min=ABORT_MIN)
        plan = panel.make_preview()
        assert plan.worst_case == ABORT_MIN and f"at most {ABORT_MIN} devices" in panel.preview.value
        sb.set_fault(fail_products={bad})
        sb.link.clear_log()
        try:
            panel.confirm.value = True
            assert panel.run() and panel.wait(60)
        finally:
            sb.clear_faults()
    assert sent_devices(sb) == plan.worst_case == panel.result.counts["failed"]


def test_a_clean_run_widens_to_the_full_window():
    """Clean answers widen the window until concurrency x chunk_size are in flight."""
    in_flight = peak = 0
    lock = threading.Lock()

    async def send(chunk, no, attempt):
        nonlocal in_flight, peak
        with lock:
            in_flight += len(chunk)
            peak = max(peak, in_flight)
        await asyncio.sleep(0)
        with lock:
            in_flight -= len(chunk)
        return Answer(success=[(i, None) for i in chunk])

    ids = list(range(1, 40_001))
    res = asyncio.run(run_batch(ids, operation="force_offline", target="t", send=send, chunk_size=500,
                                concurrency=8, progress=False, rollout=Rollout(abort_threshold=0.5, abort_min=200)))
    assert res.ok and res.frame["device_id"].tolist() == [str(i) for i in ids]
    assert peak == res.peak_in_flight == 4000
    first = res.frame.groupby("chunk", sort=False).size().iloc[0]
    assert first == SLOW_START  # the first request is small


def test_judge_is_the_fewest_failures_that_stop_the_run():
    p = Rollout(abort_threshold=0.2, abort_min=200)
    s = RolloutState(p)
    assert s.judge() == 200
    s.record(["success"] * 1000)
    assert s.judge() == 250  # 250 / 1250 = 20%
    s.record(["failed"] * 249)
    assert s.judge() == 1 and s.abort_reason() is None
    s.record(["failed"])
    assert s.abort_reason() and s.judge() == 0
    assert Rollout(abort_threshold=1.0).worst_case() == 200
    assert Rollout(canary=50).worst_case(30) == 30 and Rollout(canary=500).worst_case() == 200
    assert "at most 50 devices hit before the first stop can act" in Rollout(canary=50).describe()
