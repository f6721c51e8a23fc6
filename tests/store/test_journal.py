"""The journal: what it records, how it rebuilds a result, and resuming an operation
whose process was SIGKILLed part-way, over real sockets.

The kill tests run the sandbox in one process (``python -m romakit sim``, slowed with
latency), the batch in another (the ``romakit`` command), kill the batch once the
journal shows answered chunks, and resume from this process. ``ROMAKIT_HOME`` is a
fresh directory per test (tests/conftest.py), the PostgreSQL journal a fresh schema.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import romakit as rk
from romakit import outcomes as oc
from romakit.engine import Answer, BatchObserver, CancelToken, RetryPolicy, run_batch
from romakit.errors import InputError
from romakit.sim.fleet import ERR_NOT_CHILD
from romakit.store.reader import INTERRUPTED, operation_record
from romakit.store.schema import path
from romakit.store.target import connect, reader
from romakit.store.writer import journal_observer

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


# -- helpers ---------------------------------------------------------------------------------
def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause.wait(interval)


def done_chunks() -> int:
    """Chunks with a recorded verdict in the journal in effect (0 while it does not exist)."""
    db = reader()
    if db is None:
        return 0
    with db:
        return db.scalar("SELECT COUNT(*) AS n FROM chunks WHERE state = 'done'")


def table_texts() -> str:
    """Every value of every table of the journal in effect, as text."""
    with connect() as db:
        return "\n".join(repr(dict(r)) for t in db.tables() for r in db.rows(f"SELECT * FROM {t}"))


def journal_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.glob("journal.sqlite3*")))


def cancel_after(devices: int, token: CancelToken):
    """A progress callback that cancels the run once ``devices`` are done."""
    def cb(done: int, total: int) -> None:
        if done >= devices:
            token.cancel("test stop")
    return cb


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROMAKIT_")}
    env.update(ROMAKIT_HOME=str(home), PYTHONPATH=str(ROOT), **extra)
    # the same journal (PostgreSQL: the same schema), named: a command pointed at a sandbox
    # would otherwise journal into the sandbox journal
    env["ROMAKIT_JOURNAL"] = os.environ.get("ROMAKIT_JOURNAL") or str(home / "journal.sqlite3")
    return env


# -- a sandbox in another process ---------------------------------------------------------------
@pytest.fixture(scope="module")
def slow_sim():
    """``python -m romakit sim`` with 150 ms latency on both sides, forced devices staying
    offline; yields its description."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "romakit", "sim", "--devices", "2000", "--seed", "5", "--gateways", "80",
         "--latency-ms", "150", "--mqtt-delay-ms", "150", "--reconnect-s", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env_for(Path("/nonexistent")),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=60)
    except queue.Empty:
        proc.kill()
        raise AssertionError("romakit sim printed nothing within 60 s") from None
    if not line:
        proc.wait(10)
        raise AssertionError(f"romakit sim failed: {proc.stderr.read()[-2000:]}")
    try:
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def link_of(desc: dict) -> rk.LinkClient:
    """A client of the sim journaling into the journal in effect (``journal=True``; the
    sandbox journal otherwise), which the tests read and name to the command (:func:`env_for`)."""
    li = desc["link"]
    return rk.LinkClient(li["endpoint"], li["project_id"], li["instance_id"], rk.AkSk(li["ak"], li["sk"]),
                         journal=True)


def kill_when_answered(cmd: list[str], env: dict, home: Path, chunks: int) -> None:
    """Start ``cmd``, SIGKILL it once the journal holds ``chunks`` answered chunks."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        wait_until(lambda: done_chunks() >= chunks or proc.poll() is not None,
                   60, f"{chunks} answered chunks in the journal")
        assert proc.poll() is None, f"the batch ended before it could be killed: {proc.communicate()[1][-2000:]!r}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)  # reaped: its pid no longer counts as running
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def assert_no_secrets(home: Path, *secrets: str) -> None:
    """No secret in any table of the journal, nor (SQLite) in its files' bytes."""
    texts = table_texts()
    assert "op_id" in texts, "the journal is empty"
    data = journal_bytes(home)
    assert data or os.environ.get("ROMAKIT_JOURNAL"), "the SQLite journal has no file"
    for s in secrets:
        assert s not in texts, "a secret was written to a journal table"
        assert s.encode() not in data, "a secret was written to the journal file"


# -- SIGKILL part-way, then resume --------------------------------------------------------------
@pytest.mark.slow
def test_force_offline_killed_part_way_resumes_every_id_once(slow_sim, tmp_path):
    home = Path(os.environ["ROMAKIT_HOME"])
    li = slow_sim["link"]
    link = link_of(slow_sim)
    fleet = link.devices()
    ids = fleet.loc[fleet["online_status"] == "online", "id"].astype(int).tolist()[:400]
    assert len(ids) == 400
    id_file = tmp_path / "ids.txt"
    id_file.write_text("\n".join(map(str, ids)))
    cmd = [sys.executable, "-m", "romakit", "offline", "--file", str(id_file), "--endpoint", li["endpoint"],
           "--project-id", li["project_id"], "--instance-id", li["instance_id"], "--chunk-size", "10",
           "--concurrency", "2", "--json"]
    kill_when_answered(cmd, env_for(home, ROMAKIT_AK=li["ak"], ROMAKIT_SK=li["sk"]), home, chunks=3)

    (op,) = rk.journal().itertuples()
    assert op.state == "interrupted" and op.requested == 400 and op.operation == "force_offline"
    before = rk.journal(op.op_id)
    assert before.stopped == "interrupted" and len(before) == 400
    assert before.counts["success"] >= 30 and before.counts["unknown"] + before.counts["skipped"] > 0
    assert set(before.frame.loc[before.frame.outcome != "success", "error_code"].astype(str)) == {INTERRUPTED}

    res = rk.resume(op.op_id, link)
    f = res.frame
    assert res.op_id == op.op_id and len(res) == 400 and res.requested == 400
    assert f["device_id"].tolist() == [str(i) for i in ids]  # every id once, in request order
    assert res.ok, res.summary()
    resumed = set(f.loc[f.op_id != op.op_id, "device_id"])
    assert resumed == set(before.frame.loc[before.frame.outcome != "success", "device_id"])
    after = link.devices()
    status = after.set_index("id").loc[ids, "online_status"].astype(str)
    assert (status == "offline").all()
    assert res.verify(after)["verified"].all()

    ops = rk.journal()
    assert len(ops) == 2
    child = ops.iloc[1]
    assert child.parent_op_id == op.op_id and child.relation == "resume" and child.requested == len(resumed)
    assert ops.iloc[0].resumed_by == child.op_id
    again = rk.resume(op.op_id, link)  # nothing is left: a second resume sends nothing
    assert again.ok and again.frame["device_id"].tolist() == f["device_id"].tolist() and len(rk.journal()) == 2
    assert_no_secrets(home, li["sk"], li["token"], li["ak"])
    link.close()


@pytest.mark.slow
def test_child_deletion_killed_part_way_resumes_with_no_deleted_device_reported_failed(slow_sim, tmp_path, backend):
    home = Path(os.environ["ROMAKIT_HOME"])
    gw_desc = max(slow_sim["mqtt"]["gateways"], key=lambda g: len(g["children"]))
    skip = 0 if backend == "sqlite" else 300  # children the other backend's run left alone
    children = gw_desc["children"][skip:skip + 300]
    assert len(children) == 300
    id_file = tmp_path / "children.txt"
    id_file.write_text(" ".join(children))
    host, port = slow_sim["mqtt"]["host"], slow_sim["mqtt"]["port"]
    cmd = [sys.executable, "-m", "romakit", "delete-children", "--file", str(id_file), "--host", host,
           "--port", str(port), "--gateway", gw_desc["device_id"], "--chunk-size", "10", "--concurrency", "2",
           "--json", "--no-progress", "--yes"]
    kill_when_answered(cmd, env_for(home, ROMAKIT_DEVICE_SECRET=gw_desc["secret"]), home, chunks=3)

    (op,) = rk.journal().itertuples()
    assert op.state == "interrupted" and op.operation == "delete_sub_devices" and op.target == gw_desc["device_id"]
    before = rk.journal(op.op_id)
    in_flight = set(before.frame.loc[before.frame.outcome == "unknown", "device_id"])
    assert before.counts["success"] >= 30 and before.counts["unknown"] + before.counts["skipped"] > 0
    recorded = rk.journal().iloc[0]
    assert recorded.requested == 300

    link = link_of(slow_sim)
    with pytest.raises(InputError, match="Gateway"):
        rk.resume(op.op_id, link)  # the wrong kind of client is refused before anything is sent
    pending = set(before.frame.loc[before.frame.outcome.isin(["unknown", "skipped"]), "device_id"])
    listed = set(link.devices()["client_id"].astype(str))
    gone = {c for c in pending if c not in listed}  # the platform had done them; their answers died with the run
    with rk.Gateway(host, port, gw_desc["device_id"], gw_desc["secret"]) as gw:
        res = rk.resume(op.op_id, gw)
    f = res.frame
    assert f["device_id"].tolist() == children  # every id once, in request order
    # in-flight chunks the platform had done are read as gone, not re-sent (and so never "not a child");
    # those still waiting for the gateway's pace when it was killed had not gone out: sent again, answered
    assert res.ok, res.summary()
    assert set(f["outcome"].astype(str)) == {"success"} and ERR_NOT_CHILD not in set(f["error_code"].astype(str))
    read = set(f.loc[f.settled_by == "read", "device_id"])
    assert gone <= read <= in_flight
    assert set(f.loc[f.settled_by == "answer", "device_id"]) | read == set(children)
    v = res.verify(link)  # LINK lists the same fleet: every child is gone
    assert v["holds"].all() and v["verified"].dropna().all()
    ops = rk.journal()
    assert ops.iloc[1].parent_op_id == op.op_id and ops.iloc[1].relation == "resume"
    assert ops.iloc[1].client == f"{host}:{port}"
    assert_no_secrets(home, gw_desc["secret"], slow_sim["link"]["sk"], slow_sim["link"]["token"])
    link.close()


# -- in-process: what is recorded and rebuilt --------------------------------------------------
SANDBOX = {"devices": 3000, "seed": 21}  # the module's sandbox (conftest's sb fixture)


def test_rebuilt_result_equals_the_engines_result(link, sb, claim):
    ids = claim.online(200)
    sb.set_fault(fail_ids=ids[5:8])
    try:
        token = CancelToken()
        res = link.force_offline(ids, chunk_size=20, concurrency=1, cancel=token, progress=cancel_after(80, token),
                                 rollout=False)  # fixed chunks of 20 (split chunks: test_window_splits_...)
    finally:
        sb.clear_faults()
    assert res.counts == {"success": 77, "failed": 3, "unknown": 0, "skipped": 120}
    again = rk.journal(res.op_id)
    pd.testing.assert_frame_equal(again.frame, res.frame)  # http_status too: the journal keeps it (schema 3)
    sent = res.frame["outcome"] != "skipped"
    assert (again.frame.loc[sent, "http_status"] == 200).all() and again.frame.loc[~sent, "http_status"].isna().all()
    assert (again.op_id, again.stopped, again.requested) == (res.op_id, "test stop", 200)
    row = rk.journal().set_index("op_id").loc[res.op_id]
    assert (row.state, row.stopped, row.success, row.failed, row.skipped) == ("stopped", "test stop", 77, 3, 120)
    assert rk.journal(res.op_id[:6]).op_id == res.op_id  # a unique prefix is enough
    with connect() as db:  # plain SQL sees one row per answered device
        got = db.rows("SELECT device_id, outcome, error_code FROM rows WHERE op_id = ? ORDER BY chunk, pos",
                      (res.op_id,))
    assert [g["device_id"] for g in got] == [str(i) for i in ids[:80]]
    assert [g["device_id"] for g in got if g["outcome"] == "failed"] == [str(i) for i in ids[5:8]]


def test_resume_of_a_stopped_run_sends_only_the_skipped(link, sb, claim):
    ids = claim.online(150)
    token = CancelToken()
    first = link.force_offline(ids, chunk_size=25, concurrency=1, cancel=token, progress=cancel_after(50, token))
    assert first.counts["skipped"] == 100
    done = rk.resume(first.op_id, link, chunk_size=7)
    assert done.ok and done.frame["device_id"].tolist() == [str(i) for i in ids]
    assert done.stopped is None and done.op_id == first.op_id
    ops = rk.journal().set_index("op_id")
    child = ops[ops.parent_op_id == first.op_id]
    assert len(child) == 1 and child.iloc[0].requested == 100 and child.iloc[0].relation == "resume"
    assert ops.loc[first.op_id, "client"] == sb.link_endpoint
    merged = rk.journal(first.op_id, with_resumes=True)
    assert merged.ok and merged.stopped is None and len(merged) == 150


def test_a_client_closed_under_its_run_leaves_the_rest_for_the_resume(link, sb, claim):
    """Closing the client under a run (Ctrl-C's clean-up, a notebook's) stops it: the chunk
    it refused was never sent, so it ends ``skipped`` with no send time, and a resume
    sends it with the rest (a skipped row is not an answer)."""
    ids = claim.online(40)
    c = sb.credentials

    async def go() -> rk.BatchResult:
        a = rk.AsyncLinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk), journal=link.journal)
        closing: list[asyncio.Task] = []

        def close_after_first(done: int, total: int) -> None:
            if done >= 10 and not closing:
                closing.append(asyncio.ensure_future(a.aclose(reason="closed by the test")))

        try:
            return await a.force_offline(ids, chunk_size=10, concurrency=1, progress=close_after_first)
        finally:
            await asyncio.gather(*closing)

    first = asyncio.run(go())
    f = first.frame
    assert first.stopped and "the client was closed" in first.stopped
    assert first.counts["success"] == 10 and first.counts["skipped"] == 30 and first.counts["unknown"] == 0
    assert f.loc[f["outcome"] == "skipped", "sent_at"].isna().all()  # never sent: no send time
    assert not (f["error_code"].astype(object) == "romakit.InternalError").any()
    done = rk.resume(first.op_id, link)
    assert done.ok and done.frame["device_id"].tolist() == [str(i) for i in ids]
    ops = rk.journal().set_index("op_id")
    assert ops[ops.parent_op_id == first.op_id].iloc[0].requested == 30  # the skipped ones, each once


def test_resume_refuses_a_client_for_another_target(link, claim):
    ids = claim.online(30)
    token = CancelToken()
    first = link.force_offline(ids, chunk_size=10, concurrency=1, cancel=token, progress=cancel_after(10, token))
    with rk.sandbox(devices=50, seed=99, mqtt=False, journal=True) as other:  # the journal in effect
        stranger = other.link_client()
        with pytest.raises(InputError, match="ran on instance"):
            rk.resume(first.op_id, stranger)
        stranger.close()
    with pytest.raises(InputError, match="no operation"):
        rk.resume("feedfacecafe", link)
    with pytest.raises(InputError, match="expected a LinkClient"):
        rk.resume(first.op_id, object())
    assert rk.journal(first.op_id).counts["skipped"] == 20  # nothing was sent


def test_resume_with_an_async_client(link, sb, claim):
    ids = claim.online(60)
    token = CancelToken()
    first = link.force_offline(ids, chunk_size=10, concurrency=1, cancel=token, progress=cancel_after(20, token))
    c = sb.credentials

    async def go():
        async with rk.AsyncLinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk),
                                      journal=True) as a:  # the journal in effect, not the sandbox journal
            return await rk.resume(first.op_id, a)

    done = asyncio.run(go())
    assert done.ok and len(done) == 60


def test_a_client_journals_where_it_was_told_and_a_resume_reads_there(link, sb, claim, tmp_path):
    """``journal=`` travels with the client: its runs go there (not to the journal in
    effect), its results carry it, and a resume with it reads the operation there."""
    own = tmp_path / "own.sqlite3"
    ids = claim.online(40)
    with sb.link_client(journal=own) as mine:
        assert mine.journal.where == own
        token = CancelToken()
        first = mine.force_offline(ids[:30], chunk_size=10, concurrency=1, cancel=token,
                                   progress=cancel_after(10, token))
        elsewhere = link.force_offline(ids[30:], progress=False)
        assert rk.journal(url=own)["op_id"].tolist() == [first.op_id]
        assert rk.journal()["op_id"].tolist() == [elsewhere.op_id]
        assert first.journal.where == own and elsewhere.journal.where != own
        with pytest.raises(InputError, match="no operation"):
            rk.resume(first.op_id, link)  # the journal in effect never saw it
        done = rk.resume(first.op_id, mine)
        assert done.ok and len(done) == 30 and done.journal.where == own
    gw_id = sb.gateways()[0]
    with sb.gateway(gw_id, journal=own) as gw:
        res = gw.delete_sub_devices(["no-such-child"], progress=False)
    assert gw.journal.where == own and res.op_id in rk.journal(url=own)["op_id"].tolist()
    assert res.op_id not in rk.journal()["op_id"].tolist()


def test_an_interrupted_run_in_this_process_shows_sent_chunks_unknown():
    async def main():
        release = asyncio.Event()
        sent = asyncio.Event()

        async def send(chunk, no, attempt):
            if no == 0:
                return Answer(success=[(i, None) for i in chunk])
            sent.set()
            await release.wait()  # never released: the run is cancelled while chunk 1 is in flight
            raise AssertionError("unreachable")

        task = asyncio.create_task(run_batch(list(range(1, 31)), operation="force_offline", target="inst", send=send,
                                             chunk_size=10, concurrency=1, progress=False,
                                             observer=journal_observer(None)))
        await asyncio.wait_for(sent.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (op,) = rk.journal().itertuples()
    assert op.state == "interrupted" and (op.success, op.unknown, op.skipped) == (10, 10, 10)
    res = rk.journal(op.op_id)
    f = res.frame
    assert f.loc[f.chunk == 1, "attempts"].eq(1).all() and f.loc[f.chunk == 1, "sent_at"].notna().all()
    assert res.retry_ids() == list(range(11, 21))  # unknown counts as transient


def test_journal_switched_off_writes_nothing(monkeypatch):
    monkeypatch.setenv("ROMAKIT_JOURNAL", "0")

    async def send(chunk, no, attempt):
        return Answer(success=[(i, None) for i in chunk])

    res = asyncio.run(run_batch([1, 2, 3], operation="force_offline", target="t", send=send, chunk_size=2, progress=False,
                                observer=journal_observer(None)))
    assert res.ok and not path().exists() and rk.journal().empty


def test_an_explicit_observer_replaces_the_journal():
    async def send(chunk, no, attempt):
        return Answer(success=[(i, None) for i in chunk])

    asyncio.run(run_batch([1, 2], operation="force_offline", target="t", send=send, chunk_size=1,
                          progress=False, observer=BatchObserver()))
    assert not path().exists() and rk.journal().empty


def test_journal_observer_takes_the_relation_it_is_given():
    obs = journal_observer({"kind": "link", "target": "a"}, parent_op_id="p1", relation="retry")
    assert (obs.client["target"], obs.parent_op_id, obs.relation) == ("a", "p1", "retry")
    assert journal_observer(None, parent_op_id="p2").relation == "child"
    assert journal_observer(None).parent_op_id is None


def test_client_info_holds_no_secrets(sb, link):
    info = link.identity()
    assert info == {"kind": "link", "endpoint": sb.link_endpoint, "project_id": sb.credentials.project_id,
                    "instance_id": sb.credentials.instance_id, "target": sb.credentials.instance_id}
    gw_id = sb.gateways()[0]
    gw = sb.gateway(gw_id)
    assert gw.identity() == {"kind": "gateway", "host": "127.0.0.1", "port": sb.mqtt_address[1],
                               "gateway_id": gw_id, "tls": False, "target": gw_id}
    assert sb.fleet.secret_of(gw_id) not in json.dumps(gw.identity())


def test_retry_is_a_new_operation_linked_to_its_parent(link, sb, claim):
    ids = claim.online(40)
    sb.set_fault(error_rate=1.0)
    try:
        first = link.force_offline(ids, chunk_size=10, retry=RetryPolicy(attempts=1))
    finally:
        sb.clear_faults()
    assert first.counts["failed"] == 40 and set(first.frame.error_code.astype(str)) == {"APIG.9999"}
    assert first.retry_ids() == ids
    second = first.retry(link)
    assert second.ok and second.parent_op_id == first.op_id and second.op_id != first.op_id
    row = rk.journal().set_index("op_id").loc[second.op_id]
    assert (row.parent_op_id, row.relation, row.requested) == (first.op_id, "retry", 40)
    assert first.retry(link, ids=[]).requested == 0  # nothing to retry: an empty result, nothing sent
    with pytest.raises(InputError, match="Gateway"):
        BatchResult_for_gateway(first).retry(link)
    assert oc.is_transient("unknown", INTERRUPTED)


def BatchResult_for_gateway(res):  # noqa: N802 - reads as a constructor
    from romakit.results import BatchResult

    return BatchResult(res.frame, operation="delete_sub_devices", target="gw-0001", op_id="x")


def _as_schema_3(db) -> None:
    """Turn a fresh journal into what romakit's schema 3 left: no ``chunks.settled_by``, the
    rows view without it, each chunk planned once (``chunks_once``), version 3."""
    from romakit.store import postgres, sqlite
    from romakit.store.schema import SCHEMA_VERSION

    view = (sqlite.ROWS_VIEW if db.kind == "sqlite" else postgres.ROWS_VIEW).replace(",\n           c.settled_by", "")
    assert "settled_by" not in view
    with db.transaction(lock="romakit.schema"):
        # (SQLite cannot drop the last column past its comment: both go, and http_status comes back last)
        db.script("DROP VIEW rows;\nDROP INDEX chunks_done_once;\nALTER TABLE chunks DROP COLUMN http_status;\n"
                  "ALTER TABLE chunks DROP COLUMN settled_by;\nALTER TABLE chunks ADD COLUMN http_status INTEGER;\n"
                  "CREATE UNIQUE INDEX chunks_once ON chunks (op_id, chunk, state) WHERE state <> 'sent';\n" + view)
        db.execute("UPDATE schema_version SET version = 3 WHERE version = ?", (SCHEMA_VERSION,))
        if db.kind == "sqlite":
            db.execute("PRAGMA user_version = 3")


def test_a_schema_3_journal_is_upgraded_in_place_to_4(backend):
    """Schema 4 adds ``chunks.settled_by`` and lets a split chunk be planned again; a
    journal written by schema 3 (on either backend) gets both on first use, its rows read
    back as before (settled by their answer), and the operation resumes."""
    from romakit.store.schema import SCHEMA_VERSION

    with connect() as db:
        _as_schema_3(db)
        assert db.stored_version() == 3
        three = ("op_id", "chunk", "state", "attempt", "at", "n", "ids", "sent_at", "answered_at", "request_id",
                 "event_id", "names", "outcomes", "error_codes", "error_msgs", "http_status")
        db.execute("INSERT INTO operations (op_id, operation, target, client_kind, client, requested, chunks, chunk_size,"
                   " created_at, pid, hostname, version, os_user, policy) VALUES ('v3op', 'force_offline', 'inst',"
                   " 'link', NULL, 3, 2, 2, 1.7e9, 1, 'gone-host', '0.3', 'u', '{\"chunk_size\": 2}')")
        db.executemany("INSERT INTO chunks (op_id, chunk, state, at, n, ids) VALUES (?, ?, 'planned', 1.7e9, ?, ?)",
                       [("v3op", 0, 2, '["1","2"]'), ("v3op", 1, 1, '["3"]')])
        db.execute(f"INSERT INTO chunks ({', '.join(three)}) VALUES ('v3op', 0, 'done', 1, 1.7e9, 2, '[\"1\",\"2\"]',"
                   " 1.7e9, 1.7e9, 'r', NULL, '[null,null]', '[\"success\",\"failed\"]', '[null,\"E1\"]',"
                   " '[null,\"no\"]', 200)")
    with connect() as db:  # the first use by this romakit migrates it
        assert db.stored_version() == SCHEMA_VERSION == 6
        assert [r["version"] for r in db.rows("SELECT version FROM schema_version ORDER BY version")][-2:] == [3, 6]
        assert [r["settled_by"] for r in db.rows("SELECT settled_by FROM chunks WHERE state = 'done'")] == [None]
        assert [(r["settled_by"], r["http_status"]) for r in db.rows("SELECT * FROM rows ORDER BY pos")] == [(None, 200)] * 2
        db.execute("INSERT INTO chunks (op_id, chunk, state, at, n, ids) VALUES ('v3op', 1, 'planned', 1.8e9, 1, '[\"3\"]')")
        with pytest.raises(Exception, match="(?i)unique"):  # a chunk is still done once
            db.execute("INSERT INTO chunks (op_id, chunk, state, at, n, ids) VALUES ('v3op', 0, 'done', 1.8e9, 0, '[]')")
    back = rk.journal("v3op")
    f = back.frame
    assert f["device_id"].tolist() == ["1", "2", "3"]
    assert f["outcome"].astype(str).tolist() == ["success", "failed", "skipped"]
    assert f["settled_by"].astype(object).where(f["settled_by"].notna(), None).tolist() == ["answer", "answer", None]
    listed = rk.journal().set_index("op_id").loc["v3op"]
    assert (listed.state, listed.success, listed.failed, listed.skipped) == ("interrupted", 1, 1, 1)
    rec = operation_record("v3op")
    assert rec.rollout is None  # not recorded by schema 3: a resume takes the registry's default


def test_window_splits_are_journaled_and_rebuilt_in_request_order(link, sb, claim):
    """Under a policy the window splits planned chunks; the journal plans the pieces and
    rebuilds the same result, every id once, in request order."""
    ids = claim.online(120)
    res = link.force_offline(ids, chunk_size=50, concurrency=2)  # the registry's abort criteria: slow start
    assert res.ok and res.frame["chunk"].nunique() > 3
    again = rk.journal(res.op_id)
    pd.testing.assert_frame_equal(again.frame, res.frame)
    assert again.frame["device_id"].tolist() == [str(i) for i in ids]
