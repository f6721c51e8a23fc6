"""Writing the journal: :class:`JournalObserver` records one run as the engine goes, and
:func:`journal_observer` is the one the clients use unless given another.

Writes happen on the engine's event loop, one connection per operation, one statement
and commit per chunk event (the same SQL on both backends). The run holds a lease on
its op_id until it ends (:mod:`~romakit.store.lease`). The journal never runs blind: a
run whose journal cannot be written does not start, and a write that fails mid-run stops
it (:class:`~romakit.engine.observer.RecordFailed`). Each try of a chunk is recorded as
sent before it goes out, so what the journal holds is never less than what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import msgspec

from romakit.engine.observer import BatchObserver, ChunkRows, RecordFailed
from romakit.operations import OPERATIONS
from romakit.outcomes import SKIPPED
from romakit.store.backend import Conn, JournalUnavailable
from romakit.store.journal import Journal
from romakit.store.lease import LEASE_INSERT, Lease, active, active_lock, os_user
from romakit.store.schema import COLUMNS, enabled, insert_sql
from romakit.store.snapshot import insert_rows
from romakit.store.target import Url, connect

if TYPE_CHECKING:  # pragma: no cover
    from romakit.engine.options import BatchOptions
    from romakit.results import BatchResult

log = logging.getLogger("romakit.journal")

OP_INSERT = insert_sql("operations")
PLAN_INSERT = "INSERT INTO chunks (op_id, chunk, state, at, n, ids) VALUES (?,?,'planned',?,?,?)"
SENT_INSERT = "INSERT INTO chunks (op_id, chunk, state, attempt, at) VALUES (?,?,'sent',?,?)"
DONE_INSERT = (f"INSERT INTO chunks ({', '.join(COLUMNS['chunks'])})"
               f" VALUES (?,?,'done',{','.join('?' * (len(COLUMNS['chunks']) - 3))})")
END_INSERT = insert_sql("operation_ends")
SNAPSHOT_INSERT = insert_sql("snapshots")


class JournalUnwritable(RecordFailed):
    """The journal cannot be written; the message names the reason and where it is."""


class JournalObserver(BatchObserver):
    """Writes one run to the journal (the engine calls these hooks on its loop).

    ``journal`` picks the journal (a :class:`Journal`, a URL or a file; default: the
    one in effect, :mod:`romakit.store.target`), and the result it returns carries it;
    ``policy`` is what the run was told (JSON-able, no
    secrets: :func:`policy_of`), its ``rollout`` replaced by the one in force when the
    engine says (:meth:`policy`: the registry's default when the caller gave none; null
    when it runs without one). A journal that cannot be written raises
    :class:`JournalUnwritable` from :meth:`started` (the run does not start), and from
    :meth:`chunk_sent` and :meth:`chunk_done` once a write has failed (the engine
    stops the run: nothing goes out unrecorded).
    """

    def __init__(
        self,
        *,
        client: dict[str, Any] | None = None,
        parent_op_id: str | None = None,
        relation: str | None = None,
        journal: Journal | Url | None = None,
        policy: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.parent_op_id = parent_op_id
        self.relation = relation if parent_op_id else None
        self.journal = Journal.of(journal)
        self.wrote: Journal | None = None  # the journal this run went into, once started
        self.told = policy  # the policy to record (self.policy is the engine's hook)
        self.op_id: str | None = None
        self._db: Conn | None = None
        self._lease: Lease | None = None
        #: why the journal can no longer be written for this run (None: it can)
        self.broken: str | None = None

    def _fail(self, what: str, exc: BaseException, *, warn: bool = True) -> JournalUnwritable:
        """The run's journal failed: closed, and the error the engine stops on (logged
        once with ``warn``)."""
        if self.broken is None:
            self.broken = (f"could not {what}: {exc}" if isinstance(exc, JournalUnavailable) else
                           f"could not {what} in the journal at {self._where()} ({type(exc).__name__}: {exc})")
            if warn:
                log.warning("journal: %s for op %s; the run stops", self.broken, self.op_id)
        self._close()
        return JournalUnwritable(self.broken)

    def _where(self) -> str:
        try:
            return self.journal.location
        except Exception:  # noqa: BLE001 - the location itself is unreadable: say so
            return "(unreadable journal setting)"

    def _writable(self) -> Conn:
        """The open connection, or :class:`JournalUnwritable` once a write has failed."""
        if self._db is None:
            raise JournalUnwritable(self.broken or f"the journal at {self._where()} is not open")
        return self._db

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):
                db.close()

    def _release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release(self._db)

    def policy(self, op_id: str, rollout: dict | None) -> None:
        """The rollout in force (``Rollout.to_dict``, None: none), what ``rk.resume`` keeps."""
        recorded: dict[str, Any] | None = None
        if rollout is not None:
            from romakit.engine.rollout import Rollout

            recorded = {"describe": Rollout.from_dict(rollout).describe(), **rollout}
        self.told = {**(self.told or {}), "rollout": recorded}

    def started(self, op_id: str, operation: str, target: str, chunks: list[list]) -> None:
        self.op_id = op_id
        now = time.time()
        try:
            where = self.journal.where
            self._db = db = connect(where)
            client = self.client
            lease = Lease(where, op_id, "run", heartbeat=db.kind != "sqlite")
            task = self._activate(op_id)  # active, and the lease held, before another thread can read the rows
            with lease.writing(), db.transaction():
                db.execute(OP_INSERT, (
                    op_id, operation, target,
                    (client or {}).get("kind") or (OPERATIONS[operation].kind if operation in OPERATIONS else None),
                    json.dumps(client) if client else None,
                    sum(len(c) for c in chunks), len(chunks), max((len(c) for c in chunks), default=0),
                    now, self.parent_op_id, self.relation, os.getpid(), socket.gethostname(), _version(),
                    os_user(), json.dumps(self.told) if self.told else None,
                ))
                db.executemany(PLAN_INSERT, [(op_id, no, now, len(c), _dumps(c)) for no, c in enumerate(chunks)])
                db.execute(LEASE_INSERT, lease.row(now))
            self._lease = lease.held()
            self.wrote = Journal(os.fspath(where))  # as resolved for this run
        except Exception as e:  # a run that cannot be journaled does not start
            with active_lock:
                active.pop(op_id, None)
            self._fail("record the start of the run", e, warn=False)  # raised: said once
            raise JournalUnwritable(
                f"not started, nothing sent: {self.broken}. Fix the journal, point --journal/ROMAKIT_JOURNAL "
                "elsewhere, or run without one (journal=False; --no-journal)") from e
        if task is not None:  # a run killed with its task (cancelled) closes its connection here
            task.add_done_callback(lambda _t: self._abandoned())

    @staticmethod
    def _activate(op_id: str) -> asyncio.Task | None:
        """This process runs ``op_id`` in the current task (if any), returned: see lease.run_alive."""
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        with active_lock:
            active[op_id] = task
        return task

    def _abandoned(self) -> None:
        with active_lock:
            active.pop(self.op_id or "", None)
        self._release()
        self._close()

    def chunk_split(self, op_id: str, chunk: int, ids: list, new_chunk: int, new_ids: list) -> None:
        """The window sent only ``ids`` of ``chunk``: plan it again with those, and the rest
        as ``new_chunk`` (the reader takes a chunk's latest plan)."""
        db = self._db
        if db is None:
            return
        now = time.time()
        try:
            with db.transaction():
                db.executemany(PLAN_INSERT, [(op_id, chunk, now, len(ids), _dumps(ids)),
                                             (op_id, new_chunk, now, len(new_ids), _dumps(new_ids))])
        except Exception as e:  # the next chunk_sent stops the run
            self._fail(f"record the split of chunk {chunk}", e)

    def chunk_sent(self, op_id: str, chunk: int, attempt: int) -> None:
        db = self._writable()
        try:
            db.execute(SENT_INSERT, (op_id, chunk, attempt, time.time()))
        except Exception as e:
            raise self._fail(f"record chunk {chunk} as sent", e) from e

    def chunk_done(self, op_id: str, chunk: int, rows: ChunkRows) -> None:
        db = self._writable()
        try:
            ids = rows["ids"]
            db.execute(DONE_INSERT, (
                op_id, chunk, rows["attempts"], time.time(), len(ids), _dumps([str(i) for i in ids]),
                rows["sent_at"], rows["answered_at"], rows["request_id"], rows["event_id"],
                _dumps(rows["names"]), _dumps(rows["outcome"]), _dumps(rows["error_code"]), _dumps(rows["error_msg"]),
                rows["http_status"], rows["settled_by"],
            ))
        except Exception as e:
            raise self._fail(f"record chunk {chunk}'s outcome", e) from e

    def snapshot(self, op_id: str, chunk: int, rows: list[tuple[str, str, dict]]) -> None:
        """A deletion's records of ``chunk``'s devices, before it is sent (:mod:`romakit.store.snapshot`)."""
        if not rows:
            return
        db = self._writable()
        try:
            insert_rows(db, SNAPSHOT_INSERT, op_id, chunk, rows)
        except Exception as e:
            raise self._fail(f"record the snapshot of chunk {chunk}", e) from e

    def finished(self, result: BatchResult) -> None:
        with active_lock:
            active.pop(result.op_id, None)
        result.journal = self.wrote
        db = self._db
        if db is not None:
            try:
                stop_code = None
                if result.stopped:
                    sk = result.frame.loc[result.frame["outcome"] == SKIPPED, "error_code"].dropna()
                    stop_code = str(sk.iloc[0]) if len(sk) else None
                db.execute(END_INSERT, (result.op_id, time.time(), "stopped" if result.stopped else "finished",
                                        result.stopped, stop_code, json.dumps(result.counts)))
            except Exception as e:
                self._fail("record the end of the run", e)
        self._release()
        self._close()


_encode = msgspec.json.Encoder().encode


def _dumps(value: Any) -> str:
    """Compact JSON text (msgspec: a chunk's columns several times faster than ``json``)."""
    return _encode(value).decode()


def _version() -> str:
    from romakit import __version__

    return __version__


def _plain(obj: Any) -> dict[str, Any]:
    """A policy dataclass's plain fields (callables, e.g. a rollout gate, by kind only)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, frozenset | set):
            v = sorted(v)
        elif not (v is None or isinstance(v, bool | int | float | str)):
            v = type(v).__name__
        out[f.name] = v
    return out


def policy_of(options: BatchOptions | None) -> dict[str, Any] | None:
    """What a run was told, for the journal: chunking, pace, retry and rollout (its
    one-line description too; the engine's :meth:`JournalObserver.policy` hook replaces
    it by the rollout in force, the registry's default when none was given). Nothing
    secret lives in batch options."""
    if options is None:
        return None
    out: dict[str, Any] = {k: getattr(options, k) for k in
                           ("chunk_size", "concurrency", "timeout", "rate", "attempt_timeout", "adaptive")
                           if getattr(options, k, None) is not None}
    if options.retry is not None:
        out["retry"] = _plain(options.retry)
    if options.rollout is False:  # explicitly none (the engine's policy() hook says so too)
        out["rollout"] = None
    elif options.rollout is not None and options.rollout is not True:
        out["rollout"] = {"describe": options.rollout.describe(), **options.rollout.to_dict()}
    if options.cancel is not None:
        out["cancellable"] = True
    return out or None


def journal_observer(identity: dict[str, Any] | None, *, parent_op_id: str | None = None,
                     relation: str | None = None, options: BatchOptions | None = None,
                     journal: Journal | Url | None = None) -> BatchObserver:
    """The observer a client hands the engine when the caller gave none: ``journal``
    (the client's; None: the one in effect), with the client's secret-free ``identity``
    and the run's ``options`` as its policy, unless switched off (``ROMAKIT_JOURNAL=0``,
    a client's ``journal=False``)."""
    if not enabled() or Journal.of(journal).off:
        return BatchObserver()
    return JournalObserver(client=identity, parent_op_id=parent_op_id, policy=policy_of(options), journal=journal,
                           relation=relation or ("child" if parent_op_id else None))


def with_journal(options: BatchOptions, identity: dict[str, Any], journal: Journal | Url | None = None) -> BatchOptions:
    """``options`` with ``journal`` (the client's) as observer when the caller gave none:
    what every client does before handing a run to the engine."""
    if options.observer is not None:
        return options
    return dataclasses.replace(options, observer=journal_observer(
        identity, parent_op_id=options.parent_op_id, relation=options.relation, options=options, journal=journal))
