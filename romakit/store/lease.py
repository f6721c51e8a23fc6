"""Who holds an operation now: leases, their heartbeat, and liveness.

A run holds a lease on its own op_id from start to end (purpose ``run``); ``rk.resume``
takes one on the operation it finishes (purpose ``resume``) before it reads what is
left, and gives it back when done. Taking a lease is one write transaction under the
backend's lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL an advisory lock on the op_id),
so of two resumers exactly one gets it; the other gets an :class:`InputError` naming
the holder and since when.

Is a holder alive? On this host, by its process id (a SIGKILLed run frees its operation
at once). On another host, by the lease's expiry, which the holder's
heartbeat thread pushes forward every ``LEASE_SECONDS / 3`` (PostgreSQL; a SQLite
journal lives on one host).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from romakit.errors import InputError
from romakit.store.backend import Conn, Row
from romakit.store.target import connect

log = logging.getLogger("romakit.journal")

#: how long a lease lasts without a heartbeat (the heartbeat renews it 3 times as often)
LEASE_SECONDS = 60.0

#: runs of this process in progress, op_id -> the engine's task (to tell "running" from
#: "interrupted" when a run dies with its task, e.g. a KeyboardInterrupt in a notebook)
active: dict[str, asyncio.Task | None] = {}
active_lock = threading.Lock()
#: lease tokens this process holds
held: set[str] = set()

LEASE_INSERT = ("INSERT INTO leases (op_id, holder, purpose, os_user, hostname, pid, acquired_at, expires_at)"
                " VALUES (?,?,?,?,?,?,?,?)")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def run_alive(op: Row, lease: Row | None, now: float | None = None) -> bool:
    """Is the run that wrote ``op`` (an operations row) still going? Same host: its
    process (or, in this process, its task); another host: its unexpired run lease."""
    pid, host, op_id = op["pid"], op["hostname"], op["op_id"]
    if host == socket.gethostname():
        if pid is None:
            return False
        if pid == os.getpid():
            with active_lock:
                if op_id not in active:
                    return False
                task = active[op_id]
            return task is None or not task.done()
        return pid_alive(pid)
    return lease is not None and lease["purpose"] == "run" and lease["expires_at"] > (now or time.time())


def holder_alive(lease: Row, now: float | None = None) -> bool:
    if lease["hostname"] == socket.gethostname():
        if lease["pid"] == os.getpid():
            return lease["holder"] in held
        return lease["pid"] is not None and pid_alive(lease["pid"])
    return lease["expires_at"] > (now or time.time())


def leases(conn: Conn) -> dict[str, Row]:
    return {r["op_id"]: r for r in conn.rows("SELECT * FROM leases")}


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def busy_message(op_id: str, lease: Row) -> str:
    who = f"{lease['os_user']}@{lease['hostname']} (process {lease['pid']})"
    if lease["purpose"] == "run":
        return (f"operation {op_id} is still running: started by {who} since {_when(lease['acquired_at'])}; "
                "resume it once it has stopped")
    return (f"operation {op_id} is already being resumed by {who} since {_when(lease['acquired_at'])} "
            f"(lease renewed until {_when(lease['expires_at'])}); wait for it, then check rk.journal()")


class Lease:
    """A lease this process holds; :meth:`release` gives it back (PostgreSQL: a heartbeat
    thread renews it meanwhile, on its own connection)."""

    def __init__(self, where: Any, op_id: str, purpose: str, *, heartbeat: bool) -> None:
        self.where, self.op_id, self.purpose = where, op_id, purpose
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat = heartbeat

    def row(self, now: float) -> tuple:
        return (self.op_id, self.token, self.purpose, os_user(), socket.gethostname(), os.getpid(), now,
                now + LEASE_SECONDS)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Lease]:
        """Around the transaction that writes this lease's row: its token is held from
        before the row can be read (another thread of this process reading it right
        after the commit must find a live holder, not a stale row of this pid), and let
        go again if the write fails."""
        held.add(self.token)
        try:
            yield self
        except BaseException:
            held.discard(self.token)
            raise

    def held(self) -> Lease:
        """The row is written: start the heartbeat (PostgreSQL)."""
        if self._heartbeat:
            self._thread = threading.Thread(target=self._beat, name=f"romakit-lease-{self.op_id[:8]}", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        conn: Conn | None = None
        try:
            while not self._stop.wait(LEASE_SECONDS / 3):  # a short run never opens a connection here
                if conn is None:
                    conn = connect(self.where)
                n = conn.execute("UPDATE leases SET expires_at = ? WHERE op_id = ? AND holder = ?",
                                 (time.time() + LEASE_SECONDS, self.op_id, self.token)).rowcount
                if n == 0:
                    log.warning("journal: the lease on %s was taken over by another process", self.op_id)
                    return
        except Exception as e:  # the heartbeat never raises; the lease then expires
            log.warning("journal: lease heartbeat for %s stopped (%s: %s)", self.op_id, type(e).__name__, e)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def release(self, conn: Conn | None = None) -> None:
        held.discard(self.token)
        self._stop.set()
        try:
            with contextlib.ExitStack() as stack:
                c = conn if conn is not None else stack.enter_context(connect(self.where))
                c.execute("DELETE FROM leases WHERE op_id = ? AND holder = ?", (self.op_id, self.token))
        except Exception as e:  # an unreleased lease expires, or dies with this process
            log.warning("journal: could not release the lease on %s (%s: %s)", self.op_id, type(e).__name__, e)


def take(conn: Conn, where: Any, op_id: str, purpose: str = "resume", *, force: bool = False) -> Lease:
    """Take the lease on ``op_id``, or raise InputError naming who holds it and since
    when (``force``: take it over regardless)."""
    lease = Lease(where, op_id, purpose, heartbeat=conn.kind != "sqlite")
    now = time.time()
    with lease.writing(), conn.transaction(lock=f"romakit.lease:{op_id}"):
        row = conn.one("SELECT * FROM leases WHERE op_id = ?", (op_id,))
        if row is not None:
            if not force and holder_alive(row, now):
                raise InputError(busy_message(op_id, row))
            conn.execute("DELETE FROM leases WHERE op_id = ?", (op_id,))
        conn.execute(LEASE_INSERT, lease.row(now))
    return lease.held()
