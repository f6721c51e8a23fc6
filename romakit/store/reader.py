"""Reading the journal back: operations, their chunks, and results rebuilt from them.

A chunk with ``done`` has its rows; one ``sent`` but never done ends ``unknown``
(:data:`INTERRUPTED`); one never sent ends ``skipped``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from romakit.errors import InputError
from romakit.outcomes import SKIPPED, UNKNOWN
from romakit.results import BatchResult, ResultBuilder
from romakit.store.backend import Conn, Row
from romakit.store.lease import run_alive
from romakit.store.target import location, reader

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from romakit.results.report import History

log = logging.getLogger("romakit.journal")

#: error code of devices whose chunk was sent but whose answer the journal never got
INTERRUPTED = "romakit.Interrupted"


@dataclass
class OpRecord:
    row: Row
    plan: list[tuple[int, list]]  # (chunk, ids) in request order (each chunk's latest plan)
    sent: dict[int, tuple[int, float]]  # chunk -> (last attempt, last sent time)
    done: dict[int, Row]
    end: Row | None
    lease: Row | None = None


def load(db: Conn, op_id: str) -> OpRecord:
    """``op_id``'s rows (a unique prefix will do; an empty one names nothing)."""
    if not isinstance(op_id, str) or not op_id.strip():
        raise InputError(f"give an operation id (see rk.journal() or romakit journal), not {op_id!r}")
    row = db.one("SELECT * FROM operations WHERE op_id = ?", (op_id,))
    if row is None:
        like = [r["op_id"] for r in db.rows(
            "SELECT op_id FROM operations WHERE substr(op_id, 1, ?) = ? ORDER BY op_id LIMIT 2", (len(op_id), op_id))]
        if len(like) == 1:
            return load(db, like[0])
        if like:
            raise InputError(f"{op_id!r} matches several operations ({', '.join(like)}, ...): give more of the op_id")
        raise InputError(f"no operation {op_id!r} in the journal at {db.where}")
    planned: dict[int, list] = {}  # a chunk's latest planned row wins (the window splits chunks)
    pos: dict[str, int] = {}  # request order: where each id was first planned
    sent: dict[int, tuple[int, float]] = {}
    done: dict[int, Row] = {}
    for c in db.rows("SELECT * FROM chunks WHERE op_id = ? ORDER BY seq", (row["op_id"],)):
        if c["state"] == "planned":
            ids = planned[c["chunk"]] = json.loads(c["ids"])
            for i in ids:
                pos.setdefault(str(i), len(pos))
        elif c["state"] == "sent":
            sent[c["chunk"]] = (c["attempt"], c["at"])
        elif c["state"] == "done":
            done[c["chunk"]] = c
    end = db.one("SELECT * FROM operation_ends WHERE op_id = ? ORDER BY seq DESC LIMIT 1", (row["op_id"],))
    lease = db.one("SELECT * FROM leases WHERE op_id = ?", (row["op_id"],))
    plan = sorted(((no, ids) for no, ids in planned.items() if ids), key=lambda p: pos[str(p[1][0])])
    return OpRecord(row, plan, sent, done, end, lease)


def state_of(op: OpRecord) -> str:
    if op.end is not None:
        return op.end["state"]
    return "running" if run_alive(op.row, op.lease) else "interrupted"


@contextlib.contextmanager
def existing(op_id: str, url: Any = None) -> Iterator[Conn]:
    """The journal, open, for a question about ``op_id`` (InputError when there is none yet)."""
    db = reader(url)
    if db is None:
        raise InputError(f"no operation {op_id!r}: the journal at {location(url)} does not exist yet")
    with db:
        yield db


@dataclass(frozen=True)
class OperationRecord:
    """One operation as the journal holds it (its ``operations`` row, decoded), with its
    state and how many devices have an answer. Fields read as attributes, or by name
    as a row's are (``rec["op_id"]``, ``rec.get("os_user")``)."""

    op_id: str
    operation: str
    target: str
    client_kind: str | None
    #: the client's secret-free address (its ``identity()``): endpoint, project and
    #: instance; host, port and gateway; a fan-out's ``gateways``
    client: dict[str, Any] | None
    requested: int
    chunks: int
    chunk_size: int
    created_at: float
    parent_op_id: str | None
    relation: str | None
    pid: int | None
    hostname: str | None
    version: str | None
    os_user: str | None
    #: what the run was told: chunking, pace, retry, the rollout in force (JSON, no secret)
    policy: dict[str, Any] | None
    #: the rollout in force: its dict; False: ran without one; None: not recorded (the
    #: registry's default applies)
    rollout: dict[str, Any] | Literal[False] | None
    #: finished, stopped, running or interrupted
    state: str
    #: devices of this operation's chunks that have an answer (``skipped`` ones do not)
    answered: int

    def __getitem__(self, name: str) -> Any:
        if name not in _RECORD_FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in _RECORD_FIELDS else default


_RECORD_FIELDS = frozenset(f.name for f in fields(OperationRecord))


def record_of(op: OpRecord) -> OperationRecord:
    row = dict(op.row)
    policy = json.loads(row["policy"]) if row.get("policy") else None
    told = policy or {}
    return OperationRecord(
        op_id=row["op_id"], operation=row["operation"], target=row["target"], client_kind=row.get("client_kind"),
        client=json.loads(row["client"]) if row["client"] else None, requested=row["requested"],
        chunks=row["chunks"], chunk_size=row["chunk_size"], created_at=row["created_at"],
        parent_op_id=row["parent_op_id"], relation=row.get("relation"), pid=row.get("pid"),
        hostname=row.get("hostname"), version=row.get("version"), os_user=row.get("os_user"), policy=policy,
        rollout=(told["rollout"] or False) if "rollout" in told else None, state=state_of(op),
        answered=sum(_concluded(d) for d in op.done.values()),
    )


def _concluded(done: Any) -> int:
    """How many devices of a done chunk have an outcome other than ``skipped`` (never
    sent: a resume sends those)."""
    outcomes = json.loads(done["outcomes"]) if done["outcomes"] else None
    return (done["n"] or 0) if outcomes is None else sum(o != SKIPPED for o in outcomes)


def rebuild(db: Conn, op: OpRecord, *, only_done: bool = False) -> BatchResult:
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
                sent_at=d["sent_at"], answered_at=d["answered_at"], http_status=d["http_status"],
                settled_by=d["settled_by"],
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



def operation_record(op_id: str) -> OperationRecord:
    """The journal's facts about one operation (its ``client`` address and policy
    included, and its ``state``)."""
    with existing(op_id) as db:
        return record_of(load(db, op_id))


def resume_children(db: Conn, op_id: str) -> list[str]:
    """Resume operations of ``op_id``, oldest first."""
    return [r["op_id"] for r in db.rows(
        "SELECT op_id FROM operations WHERE parent_op_id = ? AND relation = 'resume' ORDER BY created_at, op_id",
        (op_id,))]


def completed(db: Conn, op: OpRecord, new: BatchResult | None) -> BatchResult:
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


def pending_ids(op_id: str, db: Conn | None = None) -> tuple[OperationRecord, list]:
    """``(operation record, ids still to send)`` for ``op_id``: ids of chunks with no
    recorded answer (sent and lost, or never sent) and ids recorded ``skipped`` (never
    sent: the run stopped before them), minus those its resumes concluded."""
    if db is None:
        with existing(op_id) as db:
            return pending_ids(op_id, db)
    op = load(db, op_id)
    concluded: set[str] = set()
    for c in [op.row["op_id"], *resume_children(db, op.row["op_id"])]:
        for r in db.rows("SELECT ids, outcomes FROM chunks WHERE op_id = ? AND state = 'done'", (c,)):
            ids, outcomes = json.loads(r["ids"]), json.loads(r["outcomes"] or "null")
            concluded.update(ids if outcomes is None else (i for i, o in zip(ids, outcomes, strict=True) if o != SKIPPED))
    return record_of(op), [i for _, ids in op.plan for i in ids if str(i) not in concluded]


def family_of(op_id: str, parent: dict[str, str | None]) -> tuple[str, set[str]]:
    """``(root, members)``: the first operation above ``op_id`` along ``parent`` (op ->
    the op it continues) and every operation below that root, itself included."""
    root, seen = op_id, {op_id}
    while parent.get(root) in parent and parent[root] not in seen:
        root = parent[root]  # type: ignore[assignment]  # a key of parent: a str
        seen.add(root)
    members, todo = {root}, [root]
    while todo:
        here = todo.pop()
        for child, p in parent.items():
            if p == here and child not in members:
                members.add(child)
                todo.append(child)
    return root, members


def history(op_id: str, url: Any = None) -> History | None:
    """The journal's evidence about ``op_id`` (a unique prefix will do), for the report:
    its ``request`` (the recorded policy: chunking, pace, retry, rollout; and its chunk
    count), its ``client`` address (no secret), and its ``chain``: the listing rows of
    the first operation of its family and every retry and resume below it, oldest
    first. None when the journal has no such operation."""
    from romakit.store.listing import listing

    db = reader(url)
    if db is None:
        return None
    with db:
        try:
            op = load(db, op_id)
        except InputError:
            return None
        rec = record_of(op)
        parents = {r["op_id"]: r["parent_op_id"] for r in db.rows("SELECT op_id, parent_op_id FROM operations", ())}
        _, family = family_of(rec.op_id, parents)
        table = listing(db)
        chain = table[table["op_id"].isin(family)].reset_index(drop=True)
    request = dict(rec.policy or {}) or None
    if request is not None:
        request.setdefault("chunks", rec.chunks)
    return {"op_id": rec.op_id, "chain": chain, "state": rec.state, "request": request,
            "client": rec.client, "created_at": rec.created_at, "version": rec.version}
