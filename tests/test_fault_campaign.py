"""The fault campaign: every sandbox fault, alone and combined, through force-offline
(LINK REST) and child deletion (IoTDA MQTT), on real loopback sockets.

Each case runs against a sandbox of its own (nothing leaks from one case into the next)
and checks:

* the call returns, and every requested id is in the result exactly once (lost = 0);
* a device is ``unknown`` only where no readable answer about it was had, checked
  against what the sandbox really did: the LINK simulator's ``answers`` log (what each
  ``request_id`` was answered with), the platform's ``handled`` list and the gateway's
  event record (which ``event_id`` got a matched answer);
* ``success`` and ``failed`` match the fleet (offline / deleted, or untouched);
* retries stay within the policy, counted on the server side too;
* the journal holds every chunk's verdict and ``rk.journal(op_id)`` rebuilds the result.

Every case adds one row to the "fault campaign" table that ``tests/conftest.py`` prints
at the end of the run (requested / success / failed / unknown / skipped / lost).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import romakit as rk
from romakit import outcomes as oc
from romakit.iotda.gateway import MQTT_RETRY

pytestmark = pytest.mark.timeout(60)

SEED = 23
TABLE = "table: fault campaign (devices per outcome; lost must be 0)"
FORCE_OFFLINE = "/devices/force-offline"


# -- shared checks ------------------------------------------------------------------------------
def _counts(res: Any) -> dict[str, int]:
    return {o: int(res.counts.get(o, 0)) for o in oc.OUTCOMES}


def _lost(res: Any, requested: list) -> int:
    """Requested ids missing from the result, plus rows beyond one per id."""
    got = [str(i) for i in res.frame["device_id"]]
    want = {str(i) for i in requested}
    return len(want - set(got)) + (len(got) - len(set(got))) + len(set(got) - want)


def _check_journal(res: Any) -> None:
    """Every chunk planned, sent and done in the journal it ran in (a sandbox's runs: the
    sandbox journal); the rebuilt result is the same."""
    db = sqlite3.connect(res.journal.where)
    try:
        states: dict[str, set[int]] = {}
        for chunk, state in db.execute("SELECT chunk, state FROM chunks WHERE op_id = ?", (res.op_id,)):
            states.setdefault(state, set()).add(chunk)
        ends = db.execute("SELECT state, counts FROM operation_ends WHERE op_id = ?", (res.op_id,)).fetchall()
    finally:
        db.close()
    chunks = set(int(c) for c in res.frame["chunk"])
    assert states.get("planned") == chunks and states.get("done") == chunks, states
    assert states.get("sent", set()) <= chunks and len(ends) == 1 and ends[0][0] == "finished"
    again = rk.journal(res.op_id, url=res.journal)
    assert _counts(again) == _counts(res)
    mine = res.frame.set_index("device_id")[["outcome", "error_code", "attempts"]].astype(str).sort_index()
    theirs = again.frame.set_index("device_id")[["outcome", "error_code", "attempts"]].astype(str).sort_index()
    assert mine.equals(theirs)


def _row(record_property: Callable, operation: str, fault: str, requested: list, res: Any, *,
         unknown_done: int, attempts: int, policy: int, server: int) -> dict:
    c = _counts(res)
    row = {"operation": operation, "fault": fault, "requested": len(requested), **c,
           "lost": _lost(res, requested), "unknown but done": unknown_done,
           "max attempts": f"{attempts}/{policy}", "requests seen": server}
    record_property(TABLE, row)  # recorded before any assertion: a failing case shows too
    return row


def _params(cases: list) -> list:
    """The cases as parameters named after them, the slow ones marked slow."""
    return [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in cases]


# -- force-offline over REST -------------------------------------------------------------------
@dataclass(frozen=True)
class RestCase:
    name: str
    faults: dict[str, Any] = field(default_factory=dict)
    attempts: int = 4
    timeout: float = 10.0  # the client's per-request timeout
    devices: int = 40
    chunk_size: int = 5
    concurrency: int = 4
    refused: int = 0  # devices of the request put in fail_ids
    expect: dict[str, int] | None = None  # exact counts, where the case decides them
    codes: frozenset[str] | None = None  # the only error codes allowed
    some_success: bool = False
    slow: bool = False  # takes three seconds or more (marked slow)


REST_CASES = [
    RestCase("none", expect={"success": 40}),
    RestCase("refused ids (fail_ids)", refused=7, expect={"success": 33, "failed": 7},
             codes=frozenset({oc.REPORTED_FAILED})),
    RestCase("429 storm, Retry-After 0.05 s", {"rate_limit": 10, "retry_after": 0.05},
             attempts=40, chunk_size=2, some_success=True),
    RestCase("429 storm, no Retry-After", {"rate_limit": 10, "retry_after": None},
             attempts=40, chunk_size=2, some_success=True),
    RestCase("429 storm that never ends", {"rate_limit": 0, "retry_after": 0.05}, attempts=3,
             expect={"failed": 40}, codes=frozenset({"APIG.0308"}), slow=True),
    RestCase("500s, half", {"error_rate": 0.5}, attempts=8, some_success=True),
    RestCase("500s, all", {"error_rate": 1.0}, attempts=3, expect={"failed": 40},
             codes=frozenset({"APIG.9999"})),
    RestCase("latency 800 ms past a 0.25 s timeout", {"latency_ms": 800}, attempts=2, timeout=0.25,
             expect={"unknown": 40}, codes=frozenset({oc.TIMEOUT})),
    RestCase("connection resets, half", {"reset_rate": 0.5}, attempts=8, some_success=True),
    RestCase("connection resets, all", {"reset_rate": 1.0}, attempts=2, expect={"unknown": 40},
             codes=frozenset({oc.CONNECTION_LOST})),
    RestCase("truncated / non-JSON bodies, half", {"garbage_rate": 0.5}, attempts=8, some_success=True),
    RestCase("truncated / non-JSON bodies, all", {"garbage_rate": 1.0}, attempts=2, expect={"unknown": 40},
             codes=frozenset({oc.MALFORMED})),
    RestCase("missing fields, half", {"missing_fields_rate": 0.5}, attempts=6, some_success=True),
    RestCase("missing fields, all", {"missing_fields_rate": 1.0}, attempts=3,
             codes=frozenset({oc.MALFORMED, oc.NOT_IN_ANSWER})),
    RestCase("429 + 500 + resets + garbage + missing",
             {"rate_limit": 15, "retry_after": 0.02, "error_rate": 0.2, "reset_rate": 0.15,
              "garbage_rate": 0.15, "missing_fields_rate": 0.1, "latency_ms": 10},
             attempts=10, chunk_size=4, refused=3, some_success=True),
    RestCase("latency near the timeout + resets + 500s",
             {"latency_ms": 150, "reset_rate": 0.2, "error_rate": 0.2}, attempts=3, timeout=0.3,
             concurrency=8),
]


@pytest.mark.parametrize("case", _params(REST_CASES))
def test_force_offline_under_fault(case: RestCase, record_property: Callable) -> None:
    policy = rk.RetryPolicy(attempts=case.attempts, backoff=0.02, max_backoff=0.1, max_retry_after=0.2)
    with rk.sandbox(devices=300, seed=SEED, mqtt=False) as sb:
        fleet = sb.fleet
        ids = [d["id"] for d in fleet.all() if d["online_status"] == 1][: case.devices]
        assert len(ids) == case.devices
        refused = set(ids[: case.refused])
        sb.set_fault(**case.faults, fail_ids=refused)
        with sb.link_client(progress=False, timeout=case.timeout, retry=policy, chunk_size=case.chunk_size,
                            concurrency=case.concurrency) as link:
            res = link.force_offline(ids, rollout=False)  # the transport under fault, no policy stopping it
    # closed: uvicorn let the requests still in its hands finish, so the logs are complete
    answers = {rid: (status, kind) for rid, status, kind in sb.link.answers}
    server = sum(1 for r in sb.link.requests if r[1] == "POST" and r[2].endswith(FORCE_OFFLINE))
    f = res.frame
    per_chunk_attempts = f.groupby("chunk")["attempts"].first()
    offline = {i: fleet.get(i)["online_status"] == 2 for i in ids}
    unknown_done = sum(1 for d, o in zip(f["device_id"], f["outcome"], strict=True)
                       if o == oc.UNKNOWN and offline[int(d)])
    _row(record_property, "force_offline (REST)", case.name, ids, res, unknown_done=unknown_done,
         attempts=int(f["attempts"].max()), policy=case.attempts, server=server)

    # every requested id exactly once
    assert _lost(res, ids) == 0 and len(f) == len(ids)
    # retries bounded, and the sandbox saw exactly the requests the client says it made
    assert 1 <= f["attempts"].min() and f["attempts"].max() <= case.attempts
    assert server == int(per_chunk_attempts.sum())
    # each outcome agrees with what the sandbox answered and with the fleet
    for row in f.itertuples():
        dev, rid, code = int(row.device_id), row.request_id, row.error_code
        got = answers.get(rid) if isinstance(rid, str) else None
        if row.outcome == oc.SUCCESS:
            assert got is not None and got[0] == 200 and got[1] in ("ok", "missing"), (dev, got)
            assert offline[dev], f"{dev} reported offline but is not"
        elif row.outcome == oc.FAILED:
            if code == oc.REPORTED_FAILED:  # listed in 'failed' of a readable answer
                assert got is not None and got[0] == 200 and dev in refused and not offline[dev]
            else:  # the service refused the whole request (429/5xx) on the last try
                assert got is not None and got[1] == "error" and code in ("APIG.0308", "APIG.9999"), (dev, got, code)
        elif row.outcome == oc.UNKNOWN:  # only where no readable answer about it was had
            if code in (oc.TIMEOUT, oc.CONNECTION_LOST):
                assert got is None, (dev, code, got)
            elif code == oc.MALFORMED:
                assert got is not None and got[1] in ("garbage", "missing"), (dev, got)
            elif code == oc.NOT_IN_ANSWER:
                assert got is not None and got[1] == "missing", (dev, got)
            else:
                pytest.fail(f"unknown with unexpected code {code!r}")
        else:
            pytest.fail(f"{dev}: {row.outcome} in a run nobody stopped")
        if dev in refused and got is not None and got[1] == "ok":
            assert row.outcome == oc.FAILED  # a refused device is never reported done
    if case.expect is not None:
        assert {k: v for k, v in _counts(res).items() if v} == case.expect, res.summary()
    if case.codes is not None:
        assert set(f.loc[f["outcome"] != oc.SUCCESS, "error_code"].dropna()) <= case.codes
    if case.some_success:
        assert res.counts["success"] > 0, res.summary()
    if case.expect and set(case.expect) == {"failed"} and case.codes != {oc.REPORTED_FAILED}:
        assert (f["attempts"] == case.attempts).all()  # tried exactly as often as allowed
    _check_journal(res)


def test_list_devices_never_silently_shrinks_under_missing_fields() -> None:
    """A ListDevices page without ``total`` or item ids is a malformed answer, retried like
    any other: the paging neither ends early nor folds devices together."""
    with rk.sandbox(devices=2200, seed=SEED, mqtt=False) as sb:
        sb.set_fault(missing_fields_rate=0.5)
        policy = rk.RetryPolicy(attempts=20, backoff=0.0, max_backoff=0.0)
        with sb.link_client(progress=False, retry=policy) as link:
            for _ in range(3):
                assert len(link.devices()) == 2200
        sb.set_fault(missing_fields_rate=1.0)  # every page lacks a field: one the reading needs, or not
        with sb.link_client(progress=False, retry=rk.RetryPolicy(attempts=2, backoff=0.0)) as link:
            for _ in range(5):
                try:
                    assert len(link.devices()) == 2200  # only fields the listing does not read were missing
                except rk.MalformedResponse:
                    break
            else:
                raise AssertionError("five listings with a field missing from every page all read whole")


# -- child deletion over MQTT ---------------------------------------------------------------------
@dataclass(frozen=True)
class MqttCase:
    name: str
    faults: dict[str, Any] = field(default_factory=dict)
    children: int = 40
    chunk_size: int = 10
    concurrency: int = 4
    timeout: float = 1.0
    refused: int = 0
    restart_after: int | None = None  # restart the broker once this many devices are done
    expect: dict[str, int] | None = None
    codes: frozenset[str] | None = None
    late: bool = False  # answers come after the timeout: wait for them to be recorded as late
    slow: bool = False  # takes three seconds or more (marked slow)


MQTT_CASES = [
    MqttCase("none", expect={"success": 40}),
    MqttCase("refused ids (mqtt_fail_ids)", refused=6, expect={"success": 34, "failed": 6},
             codes=frozenset({"IOTDA.014016"})),
    MqttCase("answers dropped, all", {"mqtt_drop_rate": 1.0}, expect={"unknown": 40},
             codes=frozenset({oc.TIMEOUT})),
    MqttCase("answers dropped, half", {"mqtt_drop_rate": 0.5}, codes=frozenset({oc.TIMEOUT})),
    MqttCase("answers duplicated", {"mqtt_duplicate_rate": 1.0}, expect={"success": 40}),
    MqttCase("answers delayed 300 ms (inside the timeout)", {"mqtt_delay_ms": 300}, expect={"success": 40}),
    MqttCase("answers delayed 1.5 s past a 1 s timeout", {"mqtt_delay_ms": 1500}, expect={"unknown": 40},
             codes=frozenset({oc.TIMEOUT}), late=True),
    MqttCase("answers malformed, all", {"mqtt_malformed_rate": 1.0}, expect={"unknown": 40},
             codes=frozenset({oc.MALFORMED})),
    MqttCase("answers malformed, half", {"mqtt_malformed_rate": 0.5}, codes=frozenset({oc.MALFORMED})),
    MqttCase("dropped + duplicated + malformed + delayed",
             {"mqtt_drop_rate": 0.3, "mqtt_duplicate_rate": 0.3, "mqtt_malformed_rate": 0.3, "mqtt_delay_ms": 100},
             children=60, refused=3),
    MqttCase("delayed past the timeout + duplicated", {"mqtt_delay_ms": 1500, "mqtt_duplicate_rate": 1.0},
             expect={"unknown": 40}, codes=frozenset({oc.TIMEOUT}), late=True),
    MqttCase("broker restarted mid-deletion", {"mqtt_delay_ms": 200}, children=80, concurrency=2,
             restart_after=20, slow=True),
]


def _new_gateway(fleet: Any, children: int) -> tuple[str, list[str]]:
    """A fresh gateway with ``children`` children in the fleet: (its id, their ids)."""
    products = fleet.products()
    gw_product = next(p["product_id"] for p in products if p["product_type"] == 1)
    child_product = next(p["product_id"] for p in products if p["product_type"] == 0)
    gid = f"camp-{secrets.token_hex(4)}"
    gw = fleet.create(device_name=f"gw {gid}", product_id=gw_product, node_id=f"n-{gid}", client_id=gid)
    kids = [fleet.create(device_name=f"child {i}", product_id=child_product, node_id=f"{gid}-{i}",
                         parent_device_id=gw["id"])["client_id"] for i in range(children)]
    return gid, kids


@pytest.mark.parametrize("case", _params(MQTT_CASES))
def test_delete_children_under_fault(case: MqttCase, record_property: Callable) -> None:
    with rk.sandbox(devices=60, seed=SEED) as sb:
        fleet = sb.fleet
        gid, kids = _new_gateway(fleet, case.children)
        refused = set(kids[: case.refused])
        sb.set_fault(**case.faults, mqtt_fail_ids=refused)
        restarts: list[threading.Thread] = []
        sessions_before = sb.platform.sessions

        def progress(done: int, total: int) -> None:  # on the engine's loop: never block it
            if case.restart_after is not None and done >= case.restart_after and not restarts:
                t = threading.Thread(target=sb.broker.restart, name="campaign-broker-restart", daemon=True)
                restarts.append(t)
                t.start()

        with sb.gateway(gid, timeout=case.timeout, connect_timeout=5.0, max_in_flight=case.concurrency) as gw:
            res = gw.delete_sub_devices(kids, chunk_size=case.chunk_size, progress=progress,
                                        rollout=False)  # the transport under fault, no policy stopping it
            for t in restarts:
                t.join(20)
                assert not t.is_alive()
            if case.late:  # the answers still come: recorded as late, never counted
                n_chunks = res.frame["chunk"].nunique()
                assert gw.recorder.wait(lambda rows: sum(r.match == "late" for r in rows) >= n_chunks, timeout=10)
            if restarts:
                assert sb.platform.wait_ready(timeout=20, sessions=sessions_before + 1)
            stats = gw.stats
            events = gw.events()
        handled = [h for h in sb.platform.handled if h[1] == gid and h[2] == "delete_sub_device_request"]
        gone = {k: fleet.by_client_id(k) is None for k in kids}
    handled_eids = {h[3] for h in handled}
    matched = set(events.loc[events["match"] == "matched", "event_id"].dropna())
    malformed = set(events.loc[events["match"] == "malformed", "event_id"].dropna())
    f = res.frame
    unknown_done = sum(1 for d, o in zip(f["device_id"], f["outcome"], strict=True) if o == oc.UNKNOWN and gone[d])
    _row(record_property, "delete_sub_devices (MQTT)", case.name, kids, res, unknown_done=unknown_done,
         attempts=int(f["attempts"].max()), policy=MQTT_RETRY.attempts, server=len(handled))

    assert _lost(res, kids) == 0 and len(f) == len(kids)
    assert f["attempts"].max() <= MQTT_RETRY.attempts
    chunks = f["chunk"].nunique()
    assert stats["published"] <= chunks * MQTT_RETRY.attempts
    if not restarts:  # each request published reached the platform once
        assert len(handled) == stats["published"] == len(handled_eids)
    else:  # paho may re-send a request the broker lost; the platform then sees it twice
        assert len(handled_eids) <= stats["published"]
    for row in f.itertuples():
        dev, eid, code = row.device_id, row.event_id, row.error_code
        if row.outcome == oc.SUCCESS:
            assert eid in matched and eid in handled_eids and gone[dev], (dev, eid)
        elif row.outcome == oc.FAILED:
            assert not gone[dev], f"{dev} reported failed but was deleted"
            if code == oc.CONNECT_ERROR:  # never published: the platform cannot have it
                assert eid not in handled_eids
            else:  # the platform's own verdict, in a matched answer
                assert eid in matched and dev in refused and code == "IOTDA.014016", (dev, eid, code)
        elif row.outcome == oc.UNKNOWN:  # only where no readable answer was had
            assert eid not in matched, (dev, eid)
            assert code in (oc.TIMEOUT, oc.CONNECTION_LOST, oc.MALFORMED), code
            if code == oc.MALFORMED:
                assert eid in malformed
        else:
            pytest.fail(f"{dev}: {row.outcome} in a run nobody stopped")
    if case.expect is not None:
        assert {k: v for k, v in _counts(res).items() if v} == case.expect, res.summary()
    if case.codes is not None:
        assert set(f.loc[f["outcome"] != oc.SUCCESS, "error_code"].dropna()) <= case.codes
    if restarts:
        assert stats["reconnects"] >= 1
        assert res.counts["success"] >= case.restart_after  # answered before the restart
    _check_journal(res)
