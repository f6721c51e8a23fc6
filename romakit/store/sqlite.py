"""The embedded journal: one SQLite file (WAL), the default.

Writes are one statement and commit per chunk event (``synchronous=NORMAL``: durable
across a process crash); write transactions are ``BEGIN IMMEDIATE``, so they take the
file's one write lock up front (which is what serializes leases here). A file of any
earlier schema (1: SQLite only, no leases) is migrated in place on first use.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from romakit.store.backend import Conn
from romakit.store.schema import JOURNAL_TABLES, SCHEMA_VERSION, TABLES, columns_before

#: how long a connection waits for another's lock (busy handler, and the WAL switch)
BUSY_TIMEOUT_S = 10.0

ROWS_VIEW = """
CREATE VIEW IF NOT EXISTS rows AS
    SELECT c.op_id, c.chunk, CAST(j.key AS INTEGER) AS pos, CAST(j.value AS TEXT) AS device_id,
           json_extract(c.names, '$[' || j.key || ']') AS device_name,
           json_extract(c.outcomes, '$[' || j.key || ']') AS outcome,
           json_extract(c.error_codes, '$[' || j.key || ']') AS error_code,
           json_extract(c.error_msgs, '$[' || j.key || ']') AS error_msg,
           c.attempt AS attempts, c.request_id, c.event_id, c.sent_at, c.answered_at, c.http_status,
           c.settled_by
    FROM chunks AS c, json_each(c.ids) AS j
    WHERE c.state = 'done';
"""


class SqliteConn(Conn):
    kind = "sqlite"
    ddl_words: ClassVar[dict[str, str]] = {"SEQ": "INTEGER PRIMARY KEY", "REAL": "REAL"}

    def __init__(self, file: Path) -> None:
        self.file = Path(file)
        self.where = str(self.file)
        new = not self.file.exists()
        if new:
            self.file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.file, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._db = db
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _to_wal(db, deadline=time.monotonic() + BUSY_TIMEOUT_S)
            db.execute("PRAGMA synchronous = NORMAL")
            self.execute = db.execute  # type: ignore[method-assign,assignment]  # the driver's own: the hot path
            self.executemany = db.executemany  # type: ignore[method-assign,assignment]
            self.ensure_schema()
            if new:
                with contextlib.suppress(OSError):
                    os.chmod(self.file, 0o600)
        except BaseException:
            db.close()
            raise

    @contextlib.contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[None]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def script(self, sql: str) -> None:
        buf = ""
        for line in sql.splitlines(keepends=True):
            buf += line
            if sqlite3.complete_statement(buf):
                self._db.execute(buf)
                buf = ""
        if buf.strip():
            self._db.execute(buf)

    def stored_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _versioned(self) -> None:
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def tables(self) -> list[str]:
        return [r[0] for r in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]

    def extra_ddl(self) -> str:
        triggers = "".join(
            f"CREATE TRIGGER IF NOT EXISTS {t}_no_{verb.lower()} BEFORE {verb} ON {t} "
            f"BEGIN SELECT RAISE(ABORT, 'the journal is append-only: no {verb} on {t}'); END;\n"
            for t in JOURNAL_TABLES for verb in ("UPDATE", "DELETE")
        )
        return ROWS_VIEW + triggers

    def upgrade_from(self, version: int) -> str:
        if version != 1:
            return super().upgrade_from(version)
        # schema 1 had no seq columns (rowid kept the order), no who/policy, no leases
        # (and none of the later columns: the current tables are made, the old rows copied)
        moved = ("chunks", "operation_ends")
        copy = "".join(
            f"INSERT INTO {t} (seq, {', '.join(columns_before(t, 1))}) SELECT rowid, {', '.join(columns_before(t, 1))} "
            f"FROM {t}_v1 ORDER BY rowid;\nDROP TABLE {t}_v1;\n" for t in moved
        )
        return (
            "DROP VIEW IF EXISTS rows;\nDROP INDEX IF EXISTS chunks_op;\nDROP INDEX IF EXISTS ends_op;\n"
            "ALTER TABLE operations ADD COLUMN os_user TEXT;\nALTER TABLE operations ADD COLUMN policy TEXT;\n"
            + "".join(f"ALTER TABLE {t} RENAME TO {t}_v1;\n" for t in moved)
            + TABLES.format(**self.ddl_words) + copy
        )

    def close(self) -> None:
        self._db.close()


def _to_wal(db: sqlite3.Connection, *, deadline: float) -> None:
    """Put the file in WAL mode. Switching needs the file to itself, and SQLite answers
    a switch that meets another connection "database is locked" at once, without its busy
    handler (seen when several processes open a new journal together), so the switch
    is tried again, backing off, until ``deadline`` (time.monotonic())."""
    delay = 0.001
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
