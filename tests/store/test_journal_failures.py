"""A journal that never runs blind: a run whose journal cannot be written does not start,
a write that fails mid-run stops it, and what the journal holds is never less than what
was sent. The failures are real: a corrupt SQLite file, a PostgreSQL server that does not
answer, and a trigger in the journal's own database that refuses rows once a number of
them is written (the way a full disk refuses them), on both backends.
"""

from __future__ import annotations

import asyncio
import os

import pytest

import romakit as rk
from romakit import outcomes as oc
from romakit.engine import Answer, RetryPolicy, run_batch
from romakit.store.schema import path
from romakit.store.target import connect
from romakit.store.writer import JournalUnwritable, journal_observer

pytestmark = pytest.mark.timeout(120)

SANDBOX = {"devices": 3000, "seed": 23}
DISK_FULL = "database or disk is full"


def online(link, ids: list[int]) -> set[int]:
    f = link.devices(online_status="online")
    return set(f["id"].astype(int).tolist()) & set(ids)


def break_the_journal(backend: str, monkeypatch, tmp_path) -> str:
    """Make the journal in effect unwritable for real; returns what its location shows."""
    if backend == "postgresql":  # nothing listens on port 1
        url = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2"
        monkeypatch.setenv("ROMAKIT_JOURNAL", url)
        return "127.0.0.1:1"
    path().parent.mkdir(parents=True, exist_ok=True)
    path().write_bytes(b"this is not a SQLite database" * 200)  # a corrupt journal file
    return str(path())


def fail_after(backend: str, state: str, rows: int) -> None:
    """From now on the journal refuses a ``chunks`` row of ``state`` once ``rows`` of them
    are there, with the error a full disk gives (a trigger in the journal's database)."""
    connect().close()  # the schema first
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(path()) as db:
            db.execute(f"CREATE TRIGGER disk_full BEFORE INSERT ON chunks WHEN NEW.state = '{state}' AND "
                       f"(SELECT count(*) FROM chunks WHERE state = '{state}') >= {rows} "
                       f"BEGIN SELECT RAISE(ABORT, '{DISK_FULL}'); END")
        return
    import psycopg

    with psycopg.connect(os.environ["ROMAKIT_JOURNAL"], autocommit=True) as db:
        db.execute(f"""CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.state = '{state}' AND (SELECT count(*) FROM chunks WHERE state = '{state}') >= {rows} THEN
                    RAISE EXCEPTION '{DISK_FULL}';
                END IF;
                RETURN NEW;
            END $$""")
        db.execute("CREATE TRIGGER disk_full BEFORE INSERT ON chunks FOR EACH ROW EXECUTE FUNCTION disk_full()")


def test_a_run_whose_journal_cannot_be_written_does_not_start(link, claim, backend, monkeypatch, tmp_path):
    ids = claim.online(20)
    where = break_the_journal(backend, monkeypatch, tmp_path)
    with pytest.raises(JournalUnwritable) as e:
        link.force_offline(ids, chunk_size=5)
    msg = str(e.value)
    assert "not started, nothing sent" in msg and where in msg and "--no-journal" in msg
    assert online(link, ids) == set(ids)  # nothing was sent


def test_the_engine_sends_nothing_when_the_journal_cannot_start(backend, monkeypatch, tmp_path):
    break_the_journal(backend, monkeypatch, tmp_path)
    sent: list = []

    async def send(chunk, no, attempt):
        sent.append(chunk)
        return Answer(success=[(i, None) for i in chunk])

    with pytest.raises(JournalUnwritable):
        asyncio.run(run_batch([1, 2, 3], operation="force_offline", target="t", send=send, chunk_size=2,
                              progress=False, retry=RetryPolicy(attempts=1), observer=journal_observer(None)))
    assert sent == []


def test_journal_false_is_the_explicit_way_to_run_without_one(sb, claim, backend, monkeypatch, tmp_path):
    ids = claim.online(6)
    break_the_journal(backend, monkeypatch, tmp_path)
    with sb.link_client(progress=False, journal=False) as c:
        res = c.force_offline(ids, chunk_size=3)
        assert res.ok and res.journal is None and c.journal.location == "not journaled"
        assert online(c, ids) == set()


def test_a_journal_failing_mid_run_stops_it_and_never_records_a_sent_device_as_skipped(link, claim, backend):
    ids = claim.online(200)
    fail_after(backend, "done", 3)  # the 4th answer cannot be recorded: the disk is full
    res = link.force_offline(ids, chunk_size=10, concurrency=2, rollout=False)
    assert res.stopped and res.stopped.startswith("journal write failed: ") and DISK_FULL in res.stopped
    assert res.counts[oc.SKIPPED] > 0  # the run stopped instead of going on unrecorded
    sk = res.frame[res.frame.outcome == oc.SKIPPED]
    assert set(sk.error_code.astype(str)) == {oc.JOURNAL_FAILED}
    still_online = online(link, ids)
    rebuilt = rk.journal(res.op_id).frame
    outcome = rebuilt["outcome"].astype(str).set_axis(rebuilt["device_id"].astype(str))
    sent = [str(i) for i in ids if i not in still_online]  # the sandbox says these were forced offline
    assert len(sent) > 30
    # what the journal holds is never less than what was sent: a device forced offline is
    # recorded success, or unknown (sent, its answer not recorded); never "skipped"
    assert set(outcome[sent]) <= {oc.SUCCESS, oc.UNKNOWN} and (outcome[sent] == oc.UNKNOWN).any()
    assert (outcome == oc.SUCCESS).sum() == 30
    never = outcome[outcome == oc.SKIPPED].index
    assert set(never) <= {str(i) for i in still_online}  # what it says was never sent, was never sent


def test_a_journal_refusing_the_sent_record_sends_nothing_more(link, claim, backend):
    ids = claim.online(60)
    fail_after(backend, "sent", 2)  # the third request cannot be recorded as sent
    res = link.force_offline(ids, chunk_size=10, concurrency=1, rollout=False)
    assert res.stopped and DISK_FULL in res.stopped
    assert res.counts[oc.SUCCESS] == 20 and res.counts[oc.SKIPPED] == 40
    assert online(link, ids) == set(ids[20:])  # the chunk not recorded as sent was not sent
    rebuilt = rk.journal(res.op_id)
    assert (rebuilt.counts[oc.SUCCESS], rebuilt.counts[oc.SKIPPED]) == (20, 40)


def test_a_retry_that_cannot_be_recorded_is_not_sent_and_its_chunk_stays_unknown(backend):
    fail_after(backend, "sent", 1)  # the first try goes out recorded; no other can be recorded
    tries: list[tuple[int, int]] = []

    async def send(chunk, no, attempt):
        tries.append((no, attempt))
        raise TimeoutError  # no answer: worth another try

    res = asyncio.run(run_batch(list(range(1, 21)), operation="force_offline", target="t", send=send, chunk_size=10,
                                concurrency=1, progress=False, rollout=False, observer=journal_observer(None),
                                retry=RetryPolicy(attempts=3, backoff=0.0)))
    assert tries == [(0, 1)]  # neither the retry nor chunk 1 went out unrecorded
    f = res.frame.set_index(res.frame.device_id.astype(int))
    assert set(f.loc[1:10, "outcome"].astype(str)) == {oc.UNKNOWN} and f.loc[1:10, "attempts"].eq(1).all()
    assert set(f.loc[11:20, "outcome"].astype(str)) == {oc.SKIPPED}
    rebuilt = rk.journal(res.op_id).counts
    assert (rebuilt[oc.UNKNOWN], rebuilt[oc.SKIPPED]) == (10, 10)  # the record agrees: sent once, the rest never
