"""The journal's SQLite file: where it is, its schema, and opening it.

The journal: every batch operation, chunk by chunk, in an append-only SQLite file, so
nothing is lost when a kernel or a script dies part-way; ``rk.resume`` finishes the job.

Where: ``$ROMAKIT_HOME/journal.sqlite3`` if ``ROMAKIT_HOME`` is set, else
``platformdirs.user_data_dir("romakit")/journal.sqlite3``. ``ROMAKIT_JOURNAL=0``
switches journaling off. The clients journal every run that is not given an observer
of its own (:func:`romakit.store.writer.journal_observer`).

What (only inserts, never an update or delete; WAL mode):

``operations``      one row when a run starts: op_id, operation, target, the client's
                    kind and address (LINK endpoint/project/instance, or MQTT
                    host/port/gateway: never a key, token, password or secret),
                    requested devices, chunks, parent op and relation (retry/resume)
``chunks``          per chunk: ``planned`` (its ids) at start; ``sent`` (attempt, time)
                    committed BEFORE each request goes out; ``done`` when the engine
                    has its verdict: attempts, times, request/event id and the chunk's
                    outcome rows, column-wise as JSON lists (one insert per chunk)
``rows``            a view: those outcome rows, one per device (for plain SQL)
``operation_ends``  one row when a run returns: state, stop reason, counts
``requests``        one row when a run starts: what it was asked (chunking, concurrency,
                    retry and rollout policy) as JSON, for the evidence report

Reading it back: a chunk with ``done`` has its rows; one ``sent`` but never done ended
``unknown`` (:data:`INTERRUPTED`); one never sent ended ``skipped``. ``resume`` sends
exactly those two kinds again (:mod:`romakit.replay`), as a new operation linked to the first.

Writes happen on the engine's event loop, one connection per operation, one statement
and commit per chunk event (``synchronous=NORMAL``: durable across a process crash;
about 0.1 ms per chunk event here). A journal that cannot be written logs one warning and never
stops a batch.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

ENV_HOME = "ROMAKIT_HOME"
ENV_SWITCH = "ROMAKIT_JOURNAL"
FILENAME = "journal.sqlite3"
SCHEMA_VERSION = 2  # 2: the requests table
SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    op_id         TEXT PRIMARY KEY,
    operation     TEXT NOT NULL,
    target        TEXT NOT NULL,
    client_kind   TEXT,
    client        TEXT,            -- JSON: non-secret address facts only
    requested     INTEGER NOT NULL,
    chunks        INTEGER NOT NULL,
    chunk_size    INTEGER NOT NULL,
    created_at    REAL NOT NULL,
    parent_op_id  TEXT,
    relation      TEXT,            -- 'retry', 'resume' or NULL
    pid           INTEGER,
    hostname      TEXT,
    version       TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    op_id        TEXT NOT NULL,
    chunk        INTEGER NOT NULL,
    state        TEXT NOT NULL,    -- 'planned', 'sent', 'done'
    attempt      INTEGER,          -- sent: this try; done: tries made
    at           REAL NOT NULL,    -- when this record was written
    n            INTEGER,          -- planned, done: devices in the chunk
    ids          TEXT,             -- planned, done: JSON list of the chunk's ids, in order
    sent_at      REAL,             -- done: the last try's times
    answered_at  REAL,
    request_id   TEXT,
    event_id     TEXT,
    names        TEXT,             -- done: JSON lists, one item per id
    outcomes     TEXT,
    error_codes  TEXT,
    error_msgs   TEXT
);
CREATE INDEX IF NOT EXISTS chunks_op ON chunks (op_id, chunk);
CREATE VIEW IF NOT EXISTS rows AS
    SELECT c.op_id, c.chunk, CAST(j.key AS INTEGER) AS pos, CAST(j.value AS TEXT) AS device_id,
           json_extract(c.names, '$[' || j.key || ']') AS device_name,
           json_extract(c.outcomes, '$[' || j.key || ']') AS outcome,
           json_extract(c.error_codes, '$[' || j.key || ']') AS error_code,
           json_extract(c.error_msgs, '$[' || j.key || ']') AS error_msg,
           c.attempt AS attempts, c.request_id, c.event_id, c.sent_at, c.answered_at
    FROM chunks AS c, json_each(c.ids) AS j
    WHERE c.state = 'done';
CREATE TABLE IF NOT EXISTS operation_ends (
    op_id        TEXT NOT NULL,
    finished_at  REAL NOT NULL,
    state        TEXT NOT NULL,    -- 'finished' or 'stopped'
    stopped      TEXT,
    stop_code    TEXT,
    counts       TEXT              -- JSON {outcome: devices}
);
CREATE INDEX IF NOT EXISTS ends_op ON operation_ends (op_id);
CREATE TABLE IF NOT EXISTS requests (
    op_id        TEXT NOT NULL,
    request      TEXT NOT NULL     -- JSON: chunking, retry and rollout policy (no secret)
);
CREATE INDEX IF NOT EXISTS requests_op ON requests (op_id);
"""

#: runs of this process in progress, op_id -> the engine's task (to tell "running" from

# -- where -------------------------------------------------------------------------------
def home() -> Path:
    """The directory of romakit's own files: ``$ROMAKIT_HOME`` or the user data dir."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("romakit", appauthor=False))


def path() -> Path:
    """The journal file."""
    return home() / FILENAME


def enabled() -> bool:
    """False when ``ROMAKIT_JOURNAL`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def connect(file: Path | None = None) -> sqlite3.Connection:
    """A connection to the journal (created with its schema on first use), WAL mode."""
    file = Path(file) if file is not None else path()
    new = not file.exists()
    if new:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite3.connect(file, timeout=10.0, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 10000")
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"the journal at {file} was written by a newer romakit (schema {version}; this one knows "
                f"{SCHEMA_VERSION}): upgrade romakit, or point ROMAKIT_HOME elsewhere"
            )
        if version < SCHEMA_VERSION:
            with tx(db):
                db.executescript("BEGIN IMMEDIATE;" + SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};" + "COMMIT;")
        if new:
            with contextlib.suppress(OSError):
                os.chmod(file, 0o600)
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def tx(db: sqlite3.Connection) -> Iterator[None]:
    """Rolls back a transaction left open by a failure inside the block."""
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise



def reader(file: Path | None = None) -> sqlite3.Connection | None:
    """A connection to an existing journal, or None when there is none yet."""
    file = Path(file) if file is not None else path()
    if not file.exists():
        return None
    return connect(file)
