"""A deletion's snapshot: what each device was just before its chunk was sent, kept with
the operation in the journal (``snapshots``, schema 6) so that ``rk.restore`` can put
it back.

:class:`Snapshotter` wraps a deletion's send-one-chunk function. Before a chunk's first
try goes out it reads the records of the chunk's devices with the client's own reader
(``read(ids) -> {id: record}``: LINK's ShowDevice, a gateway's inventory or its
sub-device sync), hands them to the run's observer (the journal writes them in one
transaction) and keeps them for the result (``res.snapshot``). A chunk whose records
cannot be read or written is not sent: its devices end ``failed`` with
:data:`~romakit.outcomes.SNAPSHOT_UNREADABLE` (nothing deleted; a retry reads again).
An id the read does not find (already gone, or not a child) is sent without a record.

A record is a plain dict of what a restore needs and what the evidence shows (``kind``:
``link`` or ``child``; product, name, node id, parent, tags, description, extension
info, ...), built by the client from an allow-list of fields and passed once more
through :func:`romakit.redact.scrub` here: nothing secret-like is ever stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from romakit.engine.observer import Answer, BatchObserver, RecordFailed, SendChunk
from romakit.errors import TransportError
from romakit.outcomes import SNAPSHOT_UNREADABLE
from romakit.redact import scrub
from romakit.store.backend import Conn

#: a client's reader: the records of the devices it finds among ``ids`` ({id: record})
Reader = Callable[[list], Awaitable[Mapping[Any, Mapping[str, Any]]]]
#: what the observer is handed per chunk: (device id, target it was under, record)
Rows = list[tuple[str, str, dict[str, Any]]]


class Snapshotter:
    """The snapshot of one deletion run (see the module docstring): ``records`` holds
    every record read so far, by the device id as a string."""

    def __init__(self, read: Reader, observer: BatchObserver | None, op_id: str, target: str) -> None:
        self.read = read
        self.observer = observer or BatchObserver()
        self.op_id = op_id
        self.target = target
        self.records: dict[str, dict[str, Any]] = {}
        self._read: set[str] = set()  # ids already read (a retry of a chunk does not read again)

    def wrap(self, send: SendChunk) -> SendChunk:
        """``send`` preceded, for the ids not read yet, by the read and its record."""

        async def snapshotted(ids: list, no: int, attempt: int) -> Answer:
            todo = [i for i in ids if str(i) not in self._read]
            if todo:
                await self.take(todo, no)
            return await send(ids, no, attempt)

        return snapshotted

    async def take(self, ids: list, chunk: int) -> None:
        """Read and record the snapshot of ``ids`` (of ``chunk``); TransportError (not sent)
        when it cannot be read or written."""
        try:
            got = await self.read(ids)
        except Exception as e:  # noqa: BLE001 - whatever went wrong, nothing is deleted unseen
            raise TransportError(f"not sent: the records of chunk {chunk} could not be read before deleting "
                                 f"({type(e).__name__}: {str(e)[:150]})", sent=False, code=SNAPSHOT_UNREADABLE) from e
        wanted = {str(i) for i in ids}
        rows: Rows = []
        for dev, record in got.items():
            key = str(dev)
            if key in wanted:
                clean = scrub(dict(record))
                rows.append((key, str(clean.get("gateway_id") or self.target), clean))
        try:
            self.observer.snapshot(self.op_id, chunk, rows)
        except RecordFailed as e:
            raise TransportError(f"not sent: the snapshot of chunk {chunk} could not be journaled ({e})",
                                 sent=False, code=SNAPSHOT_UNREADABLE) from e
        self.records.update((d, r) for d, _, r in rows)
        self._read.update(wanted)


def insert_rows(db: Conn, sql: str, op_id: str, chunk: int, rows: Rows) -> None:
    """Write one chunk's snapshot rows (``sql``: the snapshots insert) in one transaction."""
    now = time.time()
    with db.transaction():
        db.executemany(sql, [(op_id, chunk, now, dev, target, json.dumps(record, separators=(",", ":")))
                             for dev, target, record in rows])


def load(db: Conn, op_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The snapshot records of the operations ``op_ids`` (a deletion and its retries and
    resumes), by device id; a device read twice keeps its earlier record (what it was
    before anything of the chain touched it)."""
    ids = list(op_ids)
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        marks = ",".join("?" * len(part))
        for r in db.stream(f"SELECT device_id, record FROM snapshots WHERE op_id IN ({marks}) ORDER BY seq", part):
            out.setdefault(str(r["device_id"]), json.loads(r["record"]))
    return out


def frame(records: Mapping[str, Mapping[str, Any]], order: Sequence[str] | None = None) -> Any:
    """The records as a DataFrame, one row per device (``device_id`` first), in ``order``
    when given (ids without a record left out)."""
    import pandas as pd

    keys = [k for k in (order if order is not None else records) if k in records]
    rows = [{"device_id": k, **{c: v for c, v in records[k].items() if c != "device_id"}} for k in keys]
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame({"device_id": pd.Series(dtype=object)})




def deletion_of(db: Conn, op_id: str) -> str | None:
    """The deletion a restore (or a retry or resume of one) puts back: up the
    ``parent_op_id`` links to the first ``restore``; None when ``op_id`` is no restore."""
    rows = {r["op_id"]: (r["parent_op_id"], r["relation"])
            for r in db.rows("SELECT op_id, parent_op_id, relation FROM operations", ())}
    seen, here = set(), op_id
    while here in rows and here not in seen:
        seen.add(here)
        parent, relation = rows[here]
        if relation == "restore":
            return parent
        if relation not in ("retry", "resume"):
            return None
        here = parent
    return None


def of_deletion(db: Conn, op_id: str) -> dict[str, dict[str, Any]]:
    """The snapshot records of deletion ``op_id`` and of its retries and resumes."""
    from romakit.store.chain import chain_ids

    return load(db, chain_ids(db, op_id))


__all__ = ["Reader", "Rows", "Snapshotter", "deletion_of", "frame", "insert_rows", "load", "of_deletion"]
