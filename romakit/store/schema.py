"""The journal's schema (the same on SQLite and PostgreSQL) and where the SQLite file is.

The journal: every batch operation, chunk by chunk, append-only, so nothing is lost
when a kernel or a script dies part-way; ``rk.resume`` finishes the job.

Where: ``ROMAKIT_JOURNAL=postgresql://...`` puts it in PostgreSQL (a team's journal);
otherwise ``$ROMAKIT_HOME/journal.sqlite3`` if ``ROMAKIT_HOME`` is set, else
``platformdirs.user_data_dir("romakit")/journal.sqlite3``. ``ROMAKIT_JOURNAL=0``
switches journaling off (:mod:`romakit.store.target`). Runs on a sandbox go to
``sandbox/journal.sqlite3`` beside it instead (:func:`sandbox_path`), whatever
``ROMAKIT_JOURNAL`` says, unless a journal is given to the client.

What (the journal tables only ever get inserts: triggers refuse UPDATE and DELETE):

``operations``      one row when a run starts: op_id, operation, target, the client's
                    kind and address (LINK endpoint/project/instance, or MQTT
                    host/port/gateway: never a key, token, password or secret),
                    requested devices, chunks, parent op and relation (retry/resume),
                    who started it (OS user, host, pid, romakit version) and its
                    policy (chunking, concurrency, retry: JSON, no secrets; its
                    ``rollout`` is the policy in force, the registry's default included,
                    or null when it ran without one: ``rk.resume`` keeps it)
``chunks``          per chunk: ``planned`` (its ids) at start, and again when the
                    engine's window splits a chunk (schema 4: the latest ``planned`` row
                    of a chunk holds its ids; the rest is planned as a new chunk);
                    ``sent`` (attempt, time) committed BEFORE each request goes out;
                    ``done`` when the engine has its verdict: attempts, times,
                    request/event id, the chunk's outcome rows, column-wise as JSON
                    lists (one insert per chunk), the answer's HTTP status, and
                    ``settled_by`` (schema 4: ``read`` when settled by reading the
                    devices before a re-send, else NULL). A unique index keeps each
                    chunk done once.
``rows``            a view: those outcome rows, one per device (for plain SQL)
``operation_ends``  one row when a run returns: state, stop reason, counts
``leases``          who is running or resuming an operation now (the one mutable
                    table): holder, user, host, pid, since, and an expiry the holder
                    renews (liveness across machines)
``events``          (schema 5) what a watch saw change in the fleet, one row per device
                    and change: when it was observed (``at``), the service's own time of
                    it when it has one, the instance or IoTDA project/gateway, the device,
                    ``kind`` (online, offline, inactive, abnormal, frozen, appeared, gone),
                    the status before, a detail, and which watch saw it
``watch_snapshots`` (schema 5) a watch's whole known state now and then (compressed), the
                    last event it covers: a restarted watch resumes from it
``snapshots``       (schema 6) what a deletion removed: for each device of a chunk, its
                    record read just before the chunk was sent (the id the deletion names
                    it by, the gateway or instance it was under, a JSON record of what a
                    restore re-creates it from: product, name, node id, parent, tags,
                    description, extension info; never a secret)
``schema_version``  the versions applied, by which romakit, when

Reading it back: a chunk with ``done`` has its rows; one ``sent`` but never done ended
``unknown`` (``INTERRUPTED``); one never sent ended ``skipped``.
"""

from __future__ import annotations

import os
from pathlib import Path

from romakit.paths import home

ENV_SWITCH = "ROMAKIT_JOURNAL"
FILENAME = "journal.sqlite3"
#: 1: the first SQLite journal (PRAGMA user_version); 2: seq columns, who and policy,
#: leases, append-only triggers, the version table; 3: each done chunk's ``http_status``
#: (a rebuilt result equals the engine's); 4: ``chunks.settled_by`` (reconcile) and split
#: chunks (a chunk may be planned again); 5: the watch's ``events`` and ``watch_snapshots``;
#: 6: the deletions' ``snapshots``; the same on both backends
SCHEMA_VERSION = 6

#: the columns of each journal table, in order (``seq`` excepted): inserts and the
#: migration name them, so both backends and both schema versions agree
COLUMNS = {
    "operations": ("op_id", "operation", "target", "client_kind", "client", "requested", "chunks", "chunk_size",
                   "created_at", "parent_op_id", "relation", "pid", "hostname", "version", "os_user", "policy"),
    "chunks": ("op_id", "chunk", "state", "attempt", "at", "n", "ids", "sent_at", "answered_at", "request_id",
               "event_id", "names", "outcomes", "error_codes", "error_msgs", "http_status", "settled_by"),
    "operation_ends": ("op_id", "finished_at", "state", "stopped", "stop_code", "counts"),
    "snapshots": ("op_id", "chunk", "at", "device_id", "target", "record"),
}
JOURNAL_TABLES = tuple(COLUMNS)
#: the columns each schema version added to a table (older journals lack them)
ADDED = {3: {"chunks": ("http_status",)}, 4: {"chunks": ("settled_by",)}}


def columns_before(table: str, version: int) -> tuple[str, ...]:
    """The columns of ``table`` (as in :data:`COLUMNS`) a journal of schema ``version`` has."""
    later = {c for v, tables in ADDED.items() if v > version for c in tables.get(table, ())}
    return tuple(c for c in COLUMNS[table] if c not in later)


#: the shared steps that bring a journal of each version to the next, on both backends
#: (the ``rows`` view is dropped to be made again with the new columns)
UPGRADES = {
    2: "DROP VIEW IF EXISTS rows;\nALTER TABLE chunks ADD COLUMN http_status INTEGER;\n",
    # split chunks are planned again (a chunk stays done once); settled_by on done rows
    # (NULL in older ones: "answer" or nothing, by outcome)
    3: "DROP VIEW IF EXISTS rows;\nDROP INDEX IF EXISTS chunks_once;\nALTER TABLE chunks ADD COLUMN settled_by TEXT;\n",
    4: "",  # the watch's tables are new ones: the shared DDL makes them
    5: "",  # the snapshots table is a new one: the shared DDL makes it
}

#: the columns of the watch's tables (not operations': :func:`romakit.store.migrate.copy_journal`
#: copies operations only)
EVENT_COLUMNS = ("watch_id", "at", "service_time", "target", "device_id", "kind", "previous", "detail")
SNAPSHOT_COLUMNS = ("watch_id", "at", "target", "filters", "devices", "last_event", "state")


def insert_sql(table: str) -> str:
    cols = COLUMNS[table]
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


#: ``{SEQ}``: an auto-numbered key; ``{REAL}``: a double (the backends fill them in)
TABLES = """
CREATE TABLE IF NOT EXISTS schema_version (
    version       INTEGER PRIMARY KEY,
    applied_at    {REAL} NOT NULL,
    romakit       TEXT
);
CREATE TABLE IF NOT EXISTS operations (
    op_id         TEXT PRIMARY KEY,
    operation     TEXT NOT NULL,
    target        TEXT NOT NULL,
    client_kind   TEXT,
    client        TEXT,            -- JSON: non-secret address facts only
    requested     INTEGER NOT NULL,
    chunks        INTEGER NOT NULL,
    chunk_size    INTEGER NOT NULL,
    created_at    {REAL} NOT NULL,
    parent_op_id  TEXT,
    relation      TEXT,            -- 'retry', 'resume', 'child' or NULL
    pid           INTEGER,
    hostname      TEXT,
    version       TEXT,            -- romakit's
    os_user       TEXT,
    policy        TEXT             -- JSON: chunk size, concurrency, retry, the rollout in force (no secrets)
);
CREATE INDEX IF NOT EXISTS operations_created ON operations (created_at);
CREATE TABLE IF NOT EXISTS chunks (
    seq          {SEQ},
    op_id        TEXT NOT NULL,
    chunk        INTEGER NOT NULL,
    state        TEXT NOT NULL,    -- 'planned', 'sent', 'done'
    attempt      INTEGER,          -- sent: this try; done: tries made
    at           {REAL} NOT NULL,  -- when this record was written
    n            INTEGER,          -- planned, done: devices in the chunk
    ids          TEXT,             -- planned, done: JSON list of the chunk's ids, in order
    sent_at      {REAL},           -- done: the last try's times
    answered_at  {REAL},
    request_id   TEXT,
    event_id     TEXT,
    names        TEXT,             -- done: JSON lists, one item per id
    outcomes     TEXT,
    error_codes  TEXT,
    error_msgs   TEXT,
    http_status  INTEGER,          -- done: the HTTP status of the last answer (REST), else NULL
    settled_by   TEXT              -- done: 'read' when settled by reading the devices, else NULL
);
CREATE INDEX IF NOT EXISTS chunks_op ON chunks (op_id, chunk);
CREATE UNIQUE INDEX IF NOT EXISTS chunks_done_once ON chunks (op_id, chunk) WHERE state = 'done';
CREATE TABLE IF NOT EXISTS operation_ends (
    seq          {SEQ},
    op_id        TEXT NOT NULL,
    finished_at  {REAL} NOT NULL,
    state        TEXT NOT NULL,    -- 'finished' or 'stopped'
    stopped      TEXT,
    stop_code    TEXT,
    counts       TEXT              -- JSON {{outcome: devices}}
);
CREATE INDEX IF NOT EXISTS ends_op ON operation_ends (op_id);
CREATE TABLE IF NOT EXISTS snapshots (
    seq          {SEQ},
    op_id        TEXT NOT NULL,
    chunk        INTEGER NOT NULL,
    at           {REAL} NOT NULL,  -- when it was read: just before the chunk was sent
    device_id    TEXT NOT NULL,    -- the id the deletion names the device by
    target       TEXT,             -- the gateway it was under (IoTDA child), or the LINK instance
    record       TEXT NOT NULL     -- JSON: what a restore re-creates it from (never a secret)
);
CREATE INDEX IF NOT EXISTS snapshots_op ON snapshots (op_id, device_id);
CREATE TABLE IF NOT EXISTS events (
    seq           {SEQ},
    watch_id      TEXT NOT NULL,
    at            {REAL} NOT NULL,   -- observed (epoch s, UTC)
    service_time  {REAL},            -- the service's own time of the change, when it has one
    target        TEXT NOT NULL,     -- LINK instance id, or IoTDA project[/gateway]
    device_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,     -- online, offline, inactive, abnormal, frozen, appeared, gone
    previous      TEXT,              -- the status before
    detail        TEXT
);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
CREATE INDEX IF NOT EXISTS events_watch ON events (watch_id, seq);
CREATE TABLE IF NOT EXISTS watch_snapshots (
    seq           {SEQ},
    watch_id      TEXT NOT NULL,
    at            {REAL} NOT NULL,
    target        TEXT NOT NULL,
    filters       TEXT,              -- JSON
    devices       INTEGER NOT NULL,
    last_event    INTEGER,           -- the seq of the last event of this watch it includes
    state         TEXT NOT NULL      -- base64 of zlib of the state (romakit.store.events)
);
CREATE INDEX IF NOT EXISTS snapshots_watch ON watch_snapshots (watch_id, seq);
CREATE TABLE IF NOT EXISTS leases (
    op_id        TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,    -- a random token of the holding process
    purpose      TEXT NOT NULL,    -- 'run' (the operation itself) or 'resume'
    os_user      TEXT,
    hostname     TEXT,
    pid          INTEGER,
    acquired_at  {REAL} NOT NULL,
    expires_at   {REAL} NOT NULL   -- renewed by the holder; past it, another host may take over
);
"""




def path() -> Path:
    """The default SQLite journal file."""
    return home() / FILENAME


def sandbox_path() -> Path:
    """The sandbox journal: every run on a romakit sandbox, apart from the real journal."""
    return home() / "sandbox" / FILENAME


def enabled() -> bool:
    """False when ``ROMAKIT_JOURNAL`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")
