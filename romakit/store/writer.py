"""Writing the journal: :class:`JournalObserver` records one run as the engine goes, and
:func:`journal_observer` is the one the clients use unless given another.

Writes happen on the engine's event loop, one connection per operation, one statement
and commit per chunk event. A journal that cannot be written logs one warning and never
stops a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from romakit.engine.observer import BatchObserver
from romakit.operations import OPERATIONS
from romakit.outcomes import SKIPPED
from romakit.store.schema import connect, enabled, tx

if TYPE_CHECKING:  # pragma: no cover
    from romakit.results import BatchResult

log = logging.getLogger("romakit.journal")

#: runs of this process in progress, op_id -> the engine's task (to tell "running" from
#: "interrupted" when a run dies with its task, e.g. a KeyboardInterrupt in a notebook)
active: dict[str, asyncio.Task | None] = {}
active_lock = threading.Lock()


class JournalObserver(BatchObserver):
    """Writes one run to the journal (the engine calls these hooks on its loop).

    Never raises: on a write error it logs once and stops writing for this run (a run
    whose journal is cut short resumes conservatively: its later chunks count as sent).
    """

    def __init__(
        self,
        *,
        client: dict[str, Any] | None = None,
        parent_op_id: str | None = None,
        relation: str | None = None,
        file: Path | None = None,
    ) -> None:
        self.client = client
        self.parent_op_id = parent_op_id
        self.relation = relation if parent_op_id else None
        self.file = file
        self.op_id: str | None = None
        self._db: sqlite3.Connection | None = None

    def _fail(self, what: str, exc: BaseException) -> None:
        log.warning("journal: could not %s for op %s (%s: %s); this run is no longer journaled",
                    what, self.op_id, type(exc).__name__, exc)
        self._close()

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def started(self, op_id: str, operation: str, target: str, chunks: list[list]) -> None:
        self.op_id = op_id
        now = time.time()
        try:
            self._db = db = connect(self.file)
            client = self.client
            with tx(db):
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "INSERT INTO operations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        op_id, operation, target,
                        (client or {}).get("kind") or (OPERATIONS[operation].kind if operation in OPERATIONS else None),
                        json.dumps(client) if client else None,
                        sum(len(c) for c in chunks), len(chunks), max((len(c) for c in chunks), default=0),
                        now, self.parent_op_id, self.relation, os.getpid(), socket.gethostname(), _version(),
                    ),
                )
                db.executemany(
                    "INSERT INTO chunks (op_id, chunk, state, at, n, ids) VALUES (?,?,'planned',?,?,?)",
                    ((op_id, no, now, len(c), json.dumps(c)) for no, c in enumerate(chunks)),
                )
                db.execute("COMMIT")
        except (sqlite3.Error, OSError, TypeError, ValueError) as e:
            self._fail("start the journal", e)
            return
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        with active_lock:
            active[op_id] = task
        if task is not None:  # a run killed with its task (cancelled) closes its connection here
            task.add_done_callback(lambda _t: self._abandoned())

    def _abandoned(self) -> None:
        with active_lock:
            active.pop(self.op_id or "", None)
        self._close()

    def requested(self, op_id: str, request: dict[str, Any]) -> None:
        db = self._db
        if db is None:
            return
        try:
            db.execute("INSERT INTO requests VALUES (?,?)", (op_id, json.dumps(request, default=str)))
        except (sqlite3.Error, TypeError, ValueError) as e:
            self._fail("record the request", e)

    def chunk_sent(self, op_id: str, chunk: int, attempt: int) -> None:
        db = self._db
        if db is None:
            return
        try:
            db.execute(
                "INSERT INTO chunks (op_id, chunk, state, attempt, at) VALUES (?,?,'sent',?,?)",
                (op_id, chunk, attempt, time.time()),
            )
        except sqlite3.Error as e:
            self._fail(f"record chunk {chunk} as sent", e)

    def chunk_done(self, op_id: str, chunk: int, rows: dict[str, list]) -> None:
        db = self._db
        if db is None:
            return
        try:
            ids = rows["ids"]
            db.execute(
                "INSERT INTO chunks (op_id, chunk, state, attempt, at, n, ids, sent_at, answered_at, request_id,"
                " event_id, names, outcomes, error_codes, error_msgs) VALUES (?,?,'done',?,?,?,?,?,?,?,?,?,?,?,?)",
                (op_id, chunk, rows["attempts"], time.time(), len(ids), _dumps([str(i) for i in ids]),
                 rows["sent_at"], rows["answered_at"], rows["request_id"], rows["event_id"],
                 _dumps(rows["names"]), _dumps(rows["outcome"]), _dumps(rows["error_code"]), _dumps(rows["error_msg"])),
            )
        except (sqlite3.Error, TypeError, ValueError) as e:
            self._fail(f"record chunk {chunk}'s outcome", e)

    def finished(self, result: BatchResult) -> None:
        with active_lock:
            active.pop(result.op_id, None)
        db = self._db
        if db is None:
            return
        try:
            stop_code = None
            if result.stopped:
                sk = result.frame.loc[result.frame["outcome"] == SKIPPED, "error_code"].dropna()
                stop_code = str(sk.iloc[0]) if len(sk) else None
            db.execute(
                "INSERT INTO operation_ends VALUES (?,?,?,?,?,?)",
                (result.op_id, time.time(), "stopped" if result.stopped else "finished", result.stopped,
                 stop_code, json.dumps(result.counts)),
            )
        except sqlite3.Error as e:
            self._fail("record the end of the run", e)
        self._close()


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _version() -> str:
    from romakit import __version__

    return __version__


def journal_observer(identity: dict[str, Any] | None, *, parent_op_id: str | None = None,
                     relation: str | None = None) -> BatchObserver:
    """The observer a client hands the engine when the caller gave none: the journal
    (with the client's secret-free ``identity``), unless switched off (``ROMAKIT_JOURNAL=0``)."""
    if not enabled():
        return BatchObserver()
    return JournalObserver(client=identity, parent_op_id=parent_op_id,
                           relation=relation or ("child" if parent_op_id else None))
