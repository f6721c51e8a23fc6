"""The event recorder is bounded in bytes as well as rows: huge downstream events (the
platform's or a hostile broker's) push the oldest rows out and are cut to their share,
with counts of what was not kept. Payloads are built as the platform sends them and fed
to the correlator, as paho's thread does (no broker needed for the bound itself)."""

from __future__ import annotations

import tracemalloc

import pytest

from romakit.iotda import envelope as env
from romakit.iotda.correlator import Correlator
from romakit.iotda.recorder import DEFAULT_MAX_BYTES, EventRecorder

pytestmark = pytest.mark.timeout(120)
GW = "gw-1"


def _huge(k: int, n: int = 4000) -> bytes:
    """An unmatched delete answer of ``n`` distinct 36-character ids (about 157 KiB for 4000)."""
    ids = [f"{k:06d}-{i:029d}" for i in range(n)]
    return env.build(GW, env.DELETE_RESPONSE, {"successful_devices": ids, "failed_devices": []}, event_id=f"e{k}")


@pytest.mark.slow
def test_events_of_157_kib_stay_within_the_byte_bound():
    assert 150 * 2**10 < len(_huge(0)) < 170 * 2**10
    rec = EventRecorder(max_bytes=4 * 2**20)  # 100 of them held whole would take about 35 MiB
    c = Correlator(rec, name=GW)
    c.link_up()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(100):
            c.receive(_huge(k))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert rec.total == 100 and rec.bytes <= rec.max_bytes
    assert rec.dropped == 100 - len(rec) and rec.dropped > 80  # the oldest went first
    assert grown < 8 * 2**20, f"{grown / 2**20:.0f} MiB held under a 4 MiB bound"
    newest = rec.records()[-1]
    assert newest.event_id == "e99" and newest.n_devices == 4000 and len(newest.device_ids) == 4000


def test_one_event_past_its_share_keeps_what_fits_and_counts_the_rest():
    rec = EventRecorder(max_bytes=2**20)  # a share of 128 KiB a row
    c = Correlator(rec, name=GW)
    c.link_up()
    c.receive(_huge(1, n=10_000))
    (row,) = rec.records()
    assert row.n_devices == 10_000 and 0 < len(row.device_ids) < 10_000
    assert rec.dropped_ids == 10_000 - len(row.device_ids) and "device ids not kept" in row.problem
    assert rec.bytes <= rec.max_bytes // 8
    assert rec.frame()["n_devices"].tolist() == [10_000]


def test_the_bounds_are_settable_and_clear_frees_the_count():
    rec = EventRecorder()
    assert rec.max_bytes == DEFAULT_MAX_BYTES and rec.max_rows == 100_000
    rec.max_rows = 3
    c = Correlator(rec, name=GW)
    c.link_up()
    for k in range(5):
        c.receive(_huge(k, n=3))
    assert len(rec) == 3 and rec.dropped == 2 and rec.bytes > 0
    rec.clear()
    assert len(rec) == 0 and rec.bytes == 0
