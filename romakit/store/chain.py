"""The chain as the unit of evidence: an operation, its retries and its resumes (and
theirs), read as one net state.

A retry or a resume is a new operation linked to the one it continues
(``parent_op_id``, ``relation``). What a chain did to each device is the latest word
on it: every device of the chain once, with the row of the step that settled it (the
row's ``op_id``, :attr:`ChainResult.settled_in`). A step that never sent a device
(``skipped``) leaves the earlier word on it standing.

A restore of a deletion (relation ``restore``; its retries and resumes) is listed among
the chain's steps, after it: it undoes the chain's effect rather than continuing it, so
its rows do not change the deletion's net state (``rk.journal(restore_op)`` shows them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from romakit.outcomes import OUTCOMES, SKIPPED, UNKNOWN
from romakit.results import BatchResult
from romakit.store.backend import Conn
from romakit.store.reader import INTERRUPTED, OpRecord, family_of, load, rebuild, state_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: the relations that continue an operation on the same devices
CONTINUES = ("retry", "resume")


def restores_of(db: Conn, ids: list[str]) -> list[str]:
    """The restores of the chain ``ids`` and their own retries and resumes, oldest first."""
    rows = db.rows("SELECT op_id, parent_op_id, relation, created_at FROM operations ORDER BY created_at, op_id", ())
    found: list[str] = []
    heads = set(ids)
    for r in rows:  # oldest first: a restore comes before its own retries and resumes
        if (r["relation"] == "restore" and r["parent_op_id"] in heads) or \
                (r["relation"] in CONTINUES and r["parent_op_id"] in found):
            found.append(r["op_id"])
    return found


def chain_ids(db: Conn, op_id: str) -> list[str]:
    """The op ids of ``op_id``'s chain, oldest first: its first operation (up through
    retries and resumes) and every retry and resume below it. ``op_id`` is a full id."""
    rows = db.rows("SELECT op_id, parent_op_id, relation, created_at FROM operations", ())
    # every operation is a key; only a retry's or a resume's link leads up
    parent = {r["op_id"]: r["parent_op_id"] if r["relation"] in CONTINUES else None for r in rows}
    root, members = family_of(op_id, parent)
    created = {r["op_id"]: (r["created_at"], r["op_id"]) for r in rows}
    return sorted(members, key=lambda o: (o != root, created.get(o, (0.0, o))))


class ChainResult(BatchResult):
    """The net state of a chain of operations: one row per device, its latest outcome;
    the row's ``op_id`` (:attr:`settled_in`) names the operation that settled it.
    :attr:`steps` lists the operations, oldest first."""

    #: one row per operation of the chain, oldest first: op_id, relation, state,
    #: requested, stopped, and ``settled`` (devices whose latest word it holds)
    steps: pd.DataFrame
    #: devices nobody in the chain has an answer for (never sent, or sent and lost)
    unanswered: int = 0

    @property
    def settled_in(self) -> pd.Series:
        """For each device (row), the operation whose row it is."""
        return self.frame["op_id"].rename("settled_in")

    def describe(self) -> str:
        """One line: ``net state of a chain of 3 operations: first abc (interrupted), ...``."""
        steps = ", ".join(f"{rel} {op} ({state}, settled {n:,})" for op, rel, state, n in
                          zip(self.steps["op_id"], self.steps["relation"], self.steps["state"],
                              self.steps["settled"], strict=True))
        c = self.counts
        counts = ", ".join(f"{c[o]:,} {o}" for o in OUTCOMES if c[o]) or "no devices"
        return f"net state of a chain of {len(self.steps)} operations: {counts}; steps: {steps}"

    def __repr__(self) -> str:
        return f"<ChainResult {self.operation} on {self.target} op={self.op_id}: {self.describe()}>"


def _left_open(f: pd.DataFrame) -> Any:
    """Rows of devices nobody has an answer for: never sent, or sent and lost."""
    return (f["outcome"] == SKIPPED) | ((f["outcome"] == UNKNOWN) & (f["error_code"].astype(object) == INTERRUPTED))


def net_state(db: Conn, op_id: str) -> BatchResult:
    """What ``op_id``'s chain did (:class:`ChainResult`), or ``op_id``'s own rows when it
    is alone in its chain. ``op_id``: any operation of the chain (a unique prefix will do)."""
    import numpy as np
    import pandas as pd

    op = load(db, op_id)
    ids = chain_ids(db, op.row["op_id"])
    undone = restores_of(db, ids) if op.row["relation"] != "restore" else []
    if len(ids) == 1 and not undone:
        return rebuild(db, op)
    ops: list[OpRecord] = [op if o == op.row["op_id"] else load(db, o) for o in ids]
    parts = [rebuild(db, o) for o in ops]
    merged = BatchResult.concat(parts).frame
    key: list[str] = merged["device_id"].astype(str).tolist()
    # a step's row replaces earlier ones, except "skipped" (that step never sent it) over an earlier word
    rank = np.where(merged["outcome"] == SKIPPED, 0, 1) * len(merged) + np.arange(len(merged))
    latest = pd.Series(rank).groupby(np.asarray(key, dtype=object)).idxmax()
    order = {k: n for n, k in enumerate(dict.fromkeys(key))}  # the first operation's request order first
    rows = sorted(latest.to_numpy().tolist(), key=lambda r: order[key[r]])
    f = merged.iloc[rows].reset_index(drop=True)
    root = ops[0].row
    by_op = {p.op_id: p for p in parts}
    open_rows = f.loc[_left_open(f), "op_id"].astype(str)
    stopped = by_op[open_rows.iloc[-1]].stopped if len(open_rows) else None
    out = ChainResult(f, operation=root["operation"], target=root["target"], op_id=root["op_id"], stopped=stopped,
                      requested=len(f))
    out.unanswered = len(open_rows)
    settled = f["op_id"].astype(str).value_counts()
    restored = [load(db, o) for o in undone]
    out.steps = pd.DataFrame([{
        "op_id": o.row["op_id"], "relation": o.row["relation"] if o is not ops[0] else "first",
        "parent_op_id": o.row["parent_op_id"] if o is not ops[0] else None, "state": state_of(o),
        "requested": o.row["requested"], "stopped": by_op[o.row["op_id"]].stopped if o.row["op_id"] in by_op
        else (o.end["stopped"] if o.end is not None else None),
        "settled": int(settled.get(o.row["op_id"], 0)),
    } for o in [*ops, *restored]])
    return out
