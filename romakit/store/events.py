"""The watch's part of the journal: status changes as ``events`` rows, and the watch's
known state as ``watch_snapshots`` (both insert-only, the same on SQLite and PostgreSQL).

A snapshot holds one watch's whole state (device keys, status codes, the service's
login and activity times) compressed into one text cell, with the seq of the last event
of that watch it covers. A watch's state now is its last snapshot with its later events
applied (:func:`resume`): a watch killed between two snapshots loses nothing.
"""

from __future__ import annotations

import base64
import json
import re
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from romakit.store.backend import Conn
from romakit.store.schema import EVENT_COLUMNS, SNAPSHOT_COLUMNS

#: a device's status, as the state stores it (an int8 code) and as events name it
STATUSES = ("inactive", "online", "offline", "abnormal", "frozen")
CODE = {s: k for k, s in enumerate(STATUSES)}
#: kinds of events besides the statuses
APPEARED, GONE = "appeared", "gone"
KINDS = (*STATUSES, APPEARED, GONE)
BATCH = 5000
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])?", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _insert(table: str, cols: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


EVENT_INSERT = _insert("events", EVENT_COLUMNS)
SNAPSHOT_INSERT = _insert("watch_snapshots", SNAPSHOT_COLUMNS)


class State:
    """A watch's known state: ``keys`` (device ids: int64 for LINK, text for IoTDA), and
    per key ``status`` (int8 code of :data:`STATUSES`), ``login`` and ``active`` (the
    service's epoch ms, -1 unknown), sorted by key."""

    __slots__ = ("active", "keys", "login", "status")

    def __init__(self, keys: np.ndarray, status: np.ndarray, login: np.ndarray, active: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        if len(order) and not np.all(order[:-1] < order[1:]):
            keys, status, login, active = keys[order], status[order], login[order], active[order]
        self.keys, self.status, self.login, self.active = keys, status, login, active

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def empty(cls, text: bool = False) -> State:
        return cls(np.array([], dtype=object if text else np.int64), np.array([], np.int8),
                   np.array([], np.int64), np.array([], np.int64))

    def encode(self) -> str:
        text = self.keys.dtype == object
        keys = "\n".join(self.keys.tolist()).encode() if text else self.keys.astype("<i8").tobytes()
        head = json.dumps({"n": len(self), "text": bool(text), "keys": len(keys)}).encode()
        body = b"".join((len(head).to_bytes(4, "little"), head, keys, self.status.astype("i1").tobytes(),
                         self.login.astype("<i8").tobytes(), self.active.astype("<i8").tobytes()))
        return base64.b64encode(zlib.compress(body, 1)).decode("ascii")

    @classmethod
    def decode(cls, cell: str) -> State:
        body = zlib.decompress(base64.b64decode(cell))
        h = int.from_bytes(body[:4], "little")
        head = json.loads(body[4:4 + h])
        n, at = head["n"], 4 + h
        raw = body[at:at + head["keys"]]
        at += head["keys"]
        if head["text"]:
            keys = np.array(raw.decode().split("\n") if n else [], dtype=object)
        else:
            keys = np.frombuffer(raw, "<i8").astype(np.int64)
        status = np.frombuffer(body, "i1", n, at).astype(np.int8)
        login = np.frombuffer(body, "<i8", n, at + n).astype(np.int64)
        active = np.frombuffer(body, "<i8", n, at + 9 * n).astype(np.int64)
        return cls(keys, status, login, active)


def record(conn: Conn, rows: Sequence[Sequence[Any]], snapshot: tuple[str, str, dict, State] | None = None) -> None:
    """Insert ``rows`` (tuples in :data:`EVENT_COLUMNS` order) and, when given, a
    snapshot ``(watch_id, target, filters, state)`` covering them, in one transaction."""
    with conn.transaction(lock="romakit.watch"):
        for i in range(0, len(rows), BATCH):
            conn.executemany(EVENT_INSERT, rows[i:i + BATCH])
        if snapshot is not None:
            watch_id, target, filters, state = snapshot
            last = conn.scalar("SELECT MAX(seq) AS m FROM events WHERE watch_id = ?", (watch_id,))
            conn.execute(SNAPSHOT_INSERT, (watch_id, time.time(), target, json.dumps(filters, default=str),
                                           len(state), last, state.encode()))


def resume(conn: Conn, watch_id: str) -> tuple[State | None, list[Any], int]:
    """The last snapshot of ``watch_id`` (None: never), the events recorded after it as
    rows ``(device_id, kind, detail, service_time)`` in order, and how many snapshots
    it has had."""
    snap = conn.one("SELECT state, last_event FROM watch_snapshots WHERE watch_id = ? ORDER BY seq DESC LIMIT 1",
                    (watch_id,))
    if snap is None:
        return None, [], 0
    after = snap["last_event"] if snap["last_event"] is not None else -1
    later = [(r["device_id"], r["kind"], r["detail"], r["service_time"]) for r in conn.stream(
        "SELECT device_id, kind, detail, service_time FROM events WHERE watch_id = ? AND seq > ? ORDER BY seq",
        (watch_id, after))]
    count = conn.scalar("SELECT COUNT(*) AS n FROM watch_snapshots WHERE watch_id = ?", (watch_id,))
    return State.decode(snap["state"]), later, int(count)


def read(conn: Conn, since: float | None, until: float | None, target: str | None = None,
         devices: Iterable[str] | None = None, watch_id: str | None = None) -> dict[str, list]:
    """The events between ``since`` and ``until`` (epoch s, either open), column-wise, in
    the order they were recorded."""
    where, params = ["1 = 1"], []
    for sql, value in (("at >= ?", since), ("at < ?", until), ("target = ?", target), ("watch_id = ?", watch_id)):
        if value is not None:
            where.append(sql)
            params.append(value)
    wanted = None if devices is None else [str(d) for d in devices]
    if wanted is not None and len(wanted) <= 500:
        where.append(f"device_id IN ({', '.join('?' * len(wanted))})")
        params.extend(wanted)
        wanted = None
    cols = ("at", "service_time", "target", "device_id", "kind", "previous", "detail", "watch_id")
    cur = conn.execute(f"SELECT {', '.join(cols)} FROM events WHERE {' AND '.join(where)} ORDER BY seq", params)
    out: dict[str, list] = {c: [] for c in cols}
    keep = None if wanted is None else set(wanted)
    while batch := cur.fetchmany(20000):
        for r in batch:
            if keep is not None and r["device_id"] not in keep:
                continue
            for c in cols:
                out[c].append(r[c])
    return out


def operations(conn: Conn, since: float | None, until: float | None) -> list[dict[str, Any]]:
    """romakit's own operations that overlap ``since``..``until``: op_id, operation,
    target, requested, started (epoch s), finished (epoch s or None), state."""
    rows = conn.rows(
        "SELECT o.op_id, o.operation, o.target, o.requested, o.created_at AS started, "
        "MAX(e.finished_at) AS finished, MAX(e.state) AS state FROM operations AS o "
        "LEFT JOIN operation_ends AS e ON e.op_id = o.op_id "
        + ("" if until is None else "WHERE o.created_at < ? ")
        + "GROUP BY o.op_id, o.operation, o.target, o.requested, o.created_at ORDER BY o.created_at",
        () if until is None else (until,))
    return [dict(r) for r in rows if since is None or r["finished"] is None or r["finished"] >= since]


def seconds(value: Any, name: str = "every") -> float:
    """A duration in seconds from a number, a timedelta or ``"30s"``/``"5m"``/``"2h"``/``"1d"``."""
    from datetime import timedelta

    from romakit.errors import InputError

    given = value
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
        value = float(m.group(1)) * _UNIT[(m.group(2) or "s").lower()]
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    raise InputError(f"{name}={given!r} is not a duration: give seconds or a string like '30s', '5m', '2h'")
