"""Reading the journal back: operations, their chunks, and results rebuilt from them.

A chunk with ``done`` has its rows; one ``sent`` but never done ends ``unknown``
(:data:`INTERRUPTED`); one never sent ends ``skipped``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from romakit.errors import InputError
from romakit.outcomes import OUTCOMES, SKIPPED, UNKNOWN
from romakit.results import BatchResult, ResultBuilder
from romakit.store.schema import path, reader
from romakit.store.writer import active, active_lock

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("romakit.journal")

#: error code of devices whose chunk was sent but whose answer the journal never got
INTERRUPTED = "romakit.Interrupted"


@dataclass
class OpRecord:
    row: sqlite3.Row
    plan: list[tuple[int, list]]  # (chunk, ids) in chunk order
    sent: dict[int, tuple[int, float]]  # chunk -> (last attempt, last sent time)
    done: dict[int, sqlite3.Row]
    end: sqlite3.Row | None


def load(db: sqlite3.Connection, op_id: str) -> OpRecord:
    db.row_factory = sqlite3.Row
    row = db.execute("SELECT * FROM operations WHERE op_id = ?", (op_id,)).fetchone()
    if row is None:
        like = [r[0] for r in db.execute(
            "SELECT op_id FROM operations WHERE substr(op_id, 1, ?) = ? LIMIT 2", (len(op_id), op_id))]
        if len(like) == 1:
            return load(db, like[0])
        if like:
            raise InputError(f"{op_id!r} matches several operations ({', '.join(like)}, ...): give more of the op_id")
        raise InputError(f"no operation {op_id!r} in the journal at {path()}")
    plan: list[tuple[int, list]] = []
    sent: dict[int, tuple[int, float]] = {}
    done: dict[int, sqlite3.Row] = {}
    for c in db.execute("SELECT * FROM chunks WHERE op_id = ? ORDER BY chunk, rowid", (row["op_id"],)):
        if c["state"] == "planned":
            plan.append((c["chunk"], json.loads(c["ids"])))
        elif c["state"] == "sent":
            sent[c["chunk"]] = (c["attempt"], c["at"])
        elif c["state"] == "done":
            done[c["chunk"]] = c
    end = db.execute("SELECT * FROM operation_ends WHERE op_id = ? ORDER BY rowid DESC LIMIT 1", (row["op_id"],)).fetchone()
    return OpRecord(row, plan, sent, done, end)


def alive(pid: int | None, hostname: str | None, op_id: str) -> bool:
    if pid is None or hostname != socket.gethostname():
        return False
    if pid == os.getpid():
        with active_lock:
            if op_id not in active:
                return False
            task = active[op_id]
        return task is None or not task.done()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def state_of(op: OpRecord) -> str:
    if op.end is not None:
        return op.end["state"]
    return "running" if alive(op.row["pid"], op.row["hostname"], op.row["op_id"]) else "interrupted"


def rebuild(db: sqlite3.Connection, op: OpRecord, *, only_done: bool = False) -> BatchResult:
    """The op's BatchResult from its rows: done chunks as recorded, sent-but-not-done
    chunks ``unknown``, never-sent chunks ``skipped`` (left out with ``only_done``)."""
    r = op.row
    builder = ResultBuilder(r["operation"], r["target"], r["op_id"])
    state = state_of(op)
    end = op.end
    for no, ids in op.plan:
        d = op.done.get(no)
        if d is not None:
            builder.add(
                json.loads(d["ids"]), names=json.loads(d["names"]), outcome=json.loads(d["outcomes"]),
                error_code=json.loads(d["error_codes"]), error_msg=json.loads(d["error_msgs"]), chunk=no,
                attempts=d["attempt"] or 0, request_id=d["request_id"], event_id=d["event_id"],
                sent_at=d["sent_at"], answered_at=d["answered_at"],
            )
        elif only_done:
            continue
        elif no in op.sent:
            attempt, at = op.sent[no]
            why = "still in flight" if state == "running" else "the run was interrupted"
            builder.add(ids, outcome=UNKNOWN, chunk=no, attempts=attempt, sent_at=at, error_code=INTERRUPTED,
                        error_msg=f"sent (attempt {attempt}), no answer recorded: {why}")
        else:
            if end is not None and end["stopped"]:
                code, msg = end["stop_code"] or INTERRUPTED, f"stopped: {end['stopped']}"
            else:
                code = INTERRUPTED
                msg = "not sent yet" if state == "running" else "never sent: the run was interrupted"
            builder.add(ids, outcome=SKIPPED, chunk=no, error_code=code, error_msg=msg)
    stopped = end["stopped"] if end is not None else ("interrupted" if state == "interrupted" else None)
    return builder.build(stopped=stopped, parent_op_id=r["parent_op_id"], requested=r["requested"])



LIST_COLUMNS = [
    "op_id", "operation", "target", "requested", *OUTCOMES, "state", "stopped", "created_at",
    "finished_at", "parent_op_id", "relation", "resumed_by", "client",
]



def listing(db: sqlite3.Connection) -> pd.DataFrame:
    import pandas as pd

    db.row_factory = sqlite3.Row
    ops = db.execute("SELECT * FROM operations ORDER BY created_at, rowid").fetchall()
    ends = {r["op_id"]: r for r in db.execute("SELECT * FROM operation_ends ORDER BY rowid")}
    children: dict[str, list[str]] = {}
    for o in ops:
        if o["parent_op_id"] and o["relation"] == "resume":
            children.setdefault(o["parent_op_id"], []).append(o["op_id"])
    open_ops = [o["op_id"] for o in ops if o["op_id"] not in ends]
    counts: dict[str, dict[str, int]] = {}
    if open_ops:  # finished runs keep their counts in operation_ends; the others are counted
        marks = ",".join("?" * len(open_ops))
        for oid, outcomes in db.execute(
            f"SELECT op_id, outcomes FROM chunks WHERE op_id IN ({marks}) AND state = 'done'", open_ops
        ):
            c = counts.setdefault(oid, {})
            for o in json.loads(outcomes):
                c[o] = c.get(o, 0) + 1
        undone = db.execute(
            f"""SELECT p.op_id, p.n, EXISTS (SELECT 1 FROM chunks s WHERE s.op_id = p.op_id AND s.chunk = p.chunk AND s.state = 'sent')
                FROM chunks p WHERE p.op_id IN ({marks}) AND p.state = 'planned'
                AND NOT EXISTS (SELECT 1 FROM chunks d WHERE d.op_id = p.op_id AND d.chunk = p.chunk AND d.state = 'done')""",
            open_ops,
        )
        for oid, n, was_sent in undone:
            c = counts.setdefault(oid, {})
            key = UNKNOWN if was_sent else SKIPPED
            c[key] = c.get(key, 0) + n
    out = []
    for o in ops:
        end = ends.get(o["op_id"])
        c = json.loads(end["counts"]) if end is not None and end["counts"] else counts.get(o["op_id"], {})
        if end is not None:
            state = end["state"]
        else:
            state = "running" if alive(o["pid"], o["hostname"], o["op_id"]) else "interrupted"
        client = json.loads(o["client"]) if o["client"] else {}
        where = client.get("endpoint") or (f"{client['host']}:{client['port']}" if client.get("host") else None)
        out.append({
            "op_id": o["op_id"], "operation": o["operation"], "target": o["target"], "requested": o["requested"],
            **{k: int(c.get(k, 0)) for k in OUTCOMES},
            "state": state, "stopped": end["stopped"] if end is not None else None,
            "created_at": o["created_at"], "finished_at": end["finished_at"] if end is not None else None,
            "parent_op_id": o["parent_op_id"], "relation": o["relation"],
            "resumed_by": ",".join(children.get(o["op_id"], [])) or None, "client": where,
        })
    f = pd.DataFrame(out, columns=LIST_COLUMNS)
    for col in ("created_at", "finished_at"):
        f[col] = pd.to_datetime(pd.to_numeric(f[col]), unit="s", utc=True)
    for col in ("operation", "state"):
        f[col] = f[col].astype("category")
    for col in ("op_id", "target", "stopped", "parent_op_id", "relation", "resumed_by", "client"):
        f[col] = f[col].astype("string")
    for col in ("requested", *OUTCOMES):
        f[col] = f[col].astype("int64")
    return f


def operation_record(op_id: str) -> dict[str, Any]:
    """The journal's facts about one operation (its ``client`` address included), as a dict."""
    db = reader()
    if db is None:
        raise InputError(f"no operation {op_id!r}: the journal at {path()} does not exist yet")
    try:
        op = load(db, op_id)
        rec = dict(op.row)
        rec["client"] = json.loads(rec["client"]) if rec["client"] else None
        rec["state"] = state_of(op)
        return rec
    finally:
        db.close()



def resume_children(db: sqlite3.Connection, op_id: str) -> list[str]:
    """Resume operations of ``op_id``, oldest first."""
    return [r[0] for r in db.execute(
        "SELECT op_id FROM operations WHERE parent_op_id = ? AND relation = 'resume' ORDER BY created_at, rowid", (op_id,)
    )]


def completed(db: sqlite3.Connection, op: OpRecord, new: BatchResult | None) -> BatchResult:
    """The op's rows completed by its resumes (answered rows only) and ``new``: every
    requested id once, in request order; later answers win."""
    import numpy as np

    parts = [rebuild(db, op, only_done=True)]
    parts += [rebuild(db, load(db, c), only_done=True) for c in resume_children(db, op.row["op_id"])]
    if new is not None:
        parts.append(new)
    order = [str(i) for _, ids in op.plan for i in ids]
    base = rebuild(db, op)  # every requested id, unanswered ones unknown/skipped
    if new is None:  # unresolved ids keep their unknown/skipped rows from the op itself
        parts.insert(0, base)
    merged = BatchResult.concat([p for p in parts if len(p.frame)] or [base])
    f = merged.frame.iloc[::-1]
    f = f[~f["device_id"].duplicated()]  # the latest row of each id
    pos = pd_index(order).get_indexer(f["device_id"].astype(object))
    f = f[pos >= 0].iloc[np.argsort(pos[pos >= 0], kind="stable")].reset_index(drop=True)
    if len(f) != len(order):
        raise AssertionError(f"resume lost devices: {len(order)} requested, {len(f)} accounted for")
    r = op.row
    if new is not None:
        stopped = new.stopped
    else:  # still "interrupted"/"cancelled" only while some device is left unanswered
        left = (f["outcome"] == SKIPPED) | (f["error_code"].astype(object) == INTERRUPTED)
        stopped = base.stopped if left.any() else None
    return BatchResult(f, operation=r["operation"], target=r["target"], op_id=r["op_id"], stopped=stopped,
                       parent_op_id=r["parent_op_id"], requested=r["requested"])


def pd_index(values: list[str]) -> Any:
    import pandas as pd

    return pd.Index(values, dtype=object)


def pending_ids(op_id: str) -> tuple[dict[str, Any], list]:
    """``(operation record, ids still to send)`` for ``op_id``: ids of chunks with no
    recorded answer (sent and lost, or never sent), minus those its resumes answered."""
    db = reader()
    if db is None:
        raise InputError(f"no operation {op_id!r}: the journal at {path()} does not exist yet")
    try:
        op = load(db, op_id)
        answered: set[str] = set()
        for c in [op.row["op_id"], *resume_children(db, op.row["op_id"])]:
            for (ids,) in db.execute("SELECT ids FROM chunks WHERE op_id = ? AND state = 'done'", (c,)):
                answered.update(json.loads(ids))
        todo = [i for _, ids in op.plan for i in ids if str(i) not in answered]
        rec = dict(op.row)
        rec["client"] = json.loads(rec["client"]) if rec["client"] else None
        rec["state"] = state_of(op)
        return rec, todo
    finally:
        db.close()



def history(op_id: str) -> dict[str, Any] | None:
    """The journal's evidence about ``op_id`` (a unique prefix will do): its ``request``
    (chunking, retry, rollout), its ``client`` address (no secret), and its ``chain``: the
    rows of :func:`listing` for the first operation of its family and every retry and
    resume below it, oldest first. None when the journal has no such operation."""
    db = reader()
    if db is None:
        return None
    try:
        try:
            op = load(db, op_id)
        except InputError:
            return None
        full = op.row["op_id"]
        parents = dict(db.execute("SELECT op_id, parent_op_id FROM operations"))
        root, seen = full, {full}
        while parents.get(root) and parents[root] in parents and parents[root] not in seen:
            root = parents[root]
            seen.add(root)
        family, todo = {root}, [root]
        while todo:
            here = todo.pop()
            for child, parent in parents.items():
                if parent == here and child not in family:
                    family.add(child)
                    todo.append(child)
        table = listing(db)
        chain = table[table["op_id"].isin(family)].reset_index(drop=True)
        try:
            req = db.execute("SELECT request FROM requests WHERE op_id = ? LIMIT 1", (full,)).fetchone()
        except sqlite3.OperationalError:  # a journal written before the requests table
            req = None
        return {
            "op_id": full, "journal": str(path()), "chain": chain, "state": state_of(op),
            "request": json.loads(req[0]) if req else None,
            "client": json.loads(op.row["client"]) if op.row["client"] else None,
            "created_at": op.row["created_at"], "version": op.row["version"], "hostname": op.row["hostname"],
        }
    finally:
        db.close()
