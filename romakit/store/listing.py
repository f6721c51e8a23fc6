"""The journal as one frame of operations (``rk.journal()``), with filters; the same
frame from both backends.

Filters on who, when, target and operation go into the SQL (``WHERE``); the state and
outcome filters apply to what the rows say (a state is known only once liveness is
checked).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from romakit.errors import InputError
from romakit.outcomes import OUTCOMES, SKIPPED, UNKNOWN
from romakit.store.backend import Conn
from romakit.store.lease import leases, run_alive

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

LIST_COLUMNS = [
    "op_id", "operation", "target", "requested", *OUTCOMES, "state", "stopped", "created_at",
    "finished_at", "parent_op_id", "relation", "resumed_by", "client", "who", "version", "policy",
]
STATES = ("finished", "stopped", "running", "interrupted")
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def when(value: Any, name: str = "since") -> float:
    """Seconds since the epoch from a datetime/date/Timestamp, an ISO string (naive:
    local time), epoch seconds, a timedelta or ``"90m"``/``"2h"``/``"7d"``/``"1w"`` ago."""
    if isinstance(value, bool):
        raise InputError(f"{name}={value!r} is not a time")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, timedelta):
        return time.time() - value.total_seconds()
    if isinstance(value, str):
        m = _AGO.match(value)
        if m:
            return time.time() - float(m.group(1)) * _UNIT[m.group(2).lower()]
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"{name}={value!r} is not a time: give an ISO date/time or an age like '2h', '7d'") from None
    if isinstance(value, datetime):  # pandas Timestamps are datetimes
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).timestamp()
    raise InputError(f"{name}={value!r} is not a time")


def _names(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def where_clause(*, who: Any = None, since: Any = None, until: Any = None, target: Any = None,
                 operation: Any = None) -> tuple[str, list[Any]]:
    """SQL (``WHERE ...`` or empty) and its parameters for the filters that live in rows."""
    parts: list[str] = []
    params: list[Any] = []
    for col, val in (("target", target), ("operation", operation)):
        names = _names(val)
        if names is not None:
            parts.append(f"{col} IN ({','.join('?' * len(names))})" if names else "1 = 0")
            params += names
    people = _names(who)
    if people is not None:  # "alice", "alice@host-1" or "@host-1"
        ors = []
        for p in people:
            user, _, host = p.partition("@")
            conds = ([("os_user = ?", user)] if user else []) + ([("hostname = ?", host)] if host else [])
            if conds:
                ors.append("(" + " AND ".join(c for c, _ in conds) + ")")
                params += [v for _, v in conds]
        parts.append("(" + " OR ".join(ors) + ")" if ors else "1 = 0")
    if since is not None:
        parts.append("created_at >= ?")
        params.append(when(since, "since"))
    if until is not None:
        parts.append("created_at <= ?")
        params.append(when(until, "until"))
    return ("WHERE " + " AND ".join(parts)) if parts else "", params


def _open_counts(db: Conn, open_ops: list[str]) -> dict[str, dict[str, int]]:
    """Devices per outcome of runs with no end row (finished runs keep their counts)."""
    counts: dict[str, dict[str, int]] = {}
    for i in range(0, len(open_ops), 500):
        part = open_ops[i:i + 500]
        marks = ",".join("?" * len(part))
        for r in db.rows(f"SELECT op_id, outcomes FROM chunks WHERE op_id IN ({marks}) AND state = 'done'", part):
            c = counts.setdefault(r["op_id"], {})
            for o in json.loads(r["outcomes"]):
                c[o] = c.get(o, 0) + 1
        undone = db.rows(
            f"""SELECT p.op_id, p.n, EXISTS (SELECT 1 FROM chunks s WHERE s.op_id = p.op_id AND s.chunk = p.chunk
                                              AND s.state = 'sent') AS was_sent
                FROM chunks p WHERE p.op_id IN ({marks}) AND p.state = 'planned'
                AND NOT EXISTS (SELECT 1 FROM chunks d WHERE d.op_id = p.op_id AND d.chunk = p.chunk AND d.state = 'done')""",
            part,
        )
        for r in undone:
            c = counts.setdefault(r["op_id"], {})
            key = UNKNOWN if r["was_sent"] else SKIPPED
            c[key] = c.get(key, 0) + r["n"]
    return counts


def _policy_text(raw: str | None) -> str | None:
    if not raw:
        return None
    p = json.loads(raw)
    parts = [f"{k}={p[k]}" for k in ("chunk_size", "concurrency") if k in p]
    if "rollout" in p:
        parts.append(f"rollout: {p['rollout'].get('describe')}")
    return ", ".join(parts) or None


def listing(db: Conn, *, state: Any = None, outcome: Any = None, **filters: Any) -> pd.DataFrame:
    """One row per operation, oldest first (:data:`LIST_COLUMNS`); ``filters`` as in
    :func:`where_clause`, ``state`` one of :data:`STATES` (or several), ``outcome``
    operations with at least one device in it (or in one of several)."""
    states, outcomes = _names(state), _names(outcome)
    for got, known, what in ((states, STATES, "state"), (outcomes, OUTCOMES, "outcome")):
        bad = sorted(set(got or ()) - set(known))
        if bad:
            raise InputError(f"unknown {what} {', '.join(map(repr, bad))}: known are {', '.join(known)}")
    where, params = where_clause(**filters)
    ops = db.rows(f"SELECT * FROM operations {where} ORDER BY created_at, op_id", params)
    ends = {r["op_id"]: r for r in db.rows("SELECT * FROM operation_ends ORDER BY seq")}
    held = leases(db)
    children: dict[str, list[str]] = {}
    for o in db.rows("SELECT op_id, parent_op_id FROM operations WHERE relation = 'resume' ORDER BY created_at, op_id"):
        children.setdefault(o["parent_op_id"], []).append(o["op_id"])
    counts = _open_counts(db, [o["op_id"] for o in ops if o["op_id"] not in ends])
    now = time.time()
    out = []
    for o in ops:
        end = ends.get(o["op_id"])
        c = json.loads(end["counts"]) if end is not None and end["counts"] else counts.get(o["op_id"], {})
        if end is not None:
            st = end["state"]
        else:
            st = "running" if run_alive(o, held.get(o["op_id"]), now) else "interrupted"
        if (states is not None and st not in states) or (outcomes is not None and not any(c.get(k) for k in outcomes)):
            continue
        client = json.loads(o["client"]) if o["client"] else {}
        where_ = client.get("endpoint") or (f"{client['host']}:{client['port']}" if client.get("host") else None)
        out.append({
            "op_id": o["op_id"], "operation": o["operation"], "target": o["target"], "requested": o["requested"],
            **{k: int(c.get(k, 0)) for k in OUTCOMES},
            "state": st, "stopped": end["stopped"] if end is not None else None,
            "created_at": o["created_at"], "finished_at": end["finished_at"] if end is not None else None,
            "parent_op_id": o["parent_op_id"], "relation": o["relation"],
            "resumed_by": ",".join(children.get(o["op_id"], [])) or None, "client": where_,
            "who": f"{o['os_user'] or '?'}@{o['hostname']}" if o["hostname"] else o["os_user"],
            "version": o["version"], "policy": _policy_text(o["policy"]),
        })
    return frame(out)


def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    f = pd.DataFrame(records, columns=LIST_COLUMNS)
    for col in ("created_at", "finished_at"):
        f[col] = pd.to_datetime(pd.to_numeric(f[col]), unit="s", utc=True)
    for col in ("operation", "state"):
        f[col] = f[col].astype("category")
    for col in ("op_id", "target", "stopped", "parent_op_id", "relation", "resumed_by", "client", "who", "version",
                "policy"):
        f[col] = f[col].astype("string")
    for col in ("requested", *OUTCOMES):
        f[col] = f[col].astype("int64")
    return f
