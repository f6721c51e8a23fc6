"""The journal: every batch operation, chunk by chunk, in an append-only SQLite file, so
nothing is lost when a kernel or a script dies part-way; ``rk.resume`` finishes the job.

Where: ``$ROMAKIT_HOME/journal.sqlite3`` if ``ROMAKIT_HOME`` is set, else
``platformdirs.user_data_dir("romakit")/journal.sqlite3``. ``ROMAKIT_JOURNAL=0``
switches journaling off. The batch engine journals every run that is not given an
observer of its own (:func:`default_observer`).

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

Reading it back: a chunk with ``done`` has its rows; one ``sent`` but never done ended
``unknown`` (:data:`INTERRUPTED`); one never sent ended ``skipped``. ``resume`` sends
exactly those two kinds again, as a new operation linked to the first.

Writes happen on the engine's event loop, one connection per operation, one statement
and commit per chunk event (``synchronous=NORMAL``: durable across a process crash;
about 0.1 ms per chunk event here). A journal that cannot be written logs one warning and never
stops a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from romakit.batch import BatchObserver
from romakit.errors import InputError
from romakit.outcomes import OUTCOMES, SKIPPED, UNKNOWN

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results import BatchResult

log = logging.getLogger("romakit.journal")

ENV_HOME = "ROMAKIT_HOME"
ENV_SWITCH = "ROMAKIT_JOURNAL"
FILENAME = "journal.sqlite3"
#: error code of devices whose chunk was sent but whose answer the journal never got
INTERRUPTED = "romakit.Interrupted"
#: which client carries each operation (and so which client ``resume``/``retry`` need)
OPERATION_KIND = {
    "force_offline": "link",
    "delete_devices": "link",
    "delete_sub_devices": "gateway",
}
_LINK_OPS = {"force_offline", "delete_devices"}
_SCHEMA_VERSION = 1
_SCHEMA = """
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
"""

#: runs of this process in progress, op_id -> the engine's task (to tell "running" from
#: "interrupted" when a run dies with its task, e.g. a KeyboardInterrupt in a notebook)
_active: dict[str, asyncio.Task | None] = {}
_active_lock = threading.Lock()


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
        if version > _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"the journal at {file} was written by a newer romakit (schema {version}; this one knows "
                f"{_SCHEMA_VERSION}): upgrade romakit, or point ROMAKIT_HOME elsewhere"
            )
        if version < _SCHEMA_VERSION:
            with _tx(db):
                db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA user_version = {_SCHEMA_VERSION};" + "COMMIT;")
        if new:
            with contextlib.suppress(OSError):
                os.chmod(file, 0o600)
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def _tx(db: sqlite3.Connection) -> Iterator[None]:
    """Rolls back a transaction left open by a failure inside the block."""
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


# -- what the caller knows that the engine does not ----------------------------------------
@dataclass(frozen=True)
class _Context:
    client: dict[str, Any] | None
    parent_op_id: str | None
    relation: str | None


_context: contextvars.ContextVar[_Context | None] = contextvars.ContextVar("romakit_journal_context", default=None)


@contextlib.contextmanager
def recording(client: Any = None, *, parent_op_id: str | None = None, relation: str | None = None) -> Iterator[None]:
    """Batch operations started inside this block are journaled with ``client``'s
    address (see :func:`client_info`), and linked to ``parent_op_id`` as ``relation``.

    Blocks nest: what an inner block leaves out (None) is kept from the outer one, so a
    client may wrap its own batches in ``recording(self)`` without losing the relation
    set by ``retry``/``resume`` around it. A context variable: it follows the call into
    romakit's background loop.
    """
    info = client if isinstance(client, dict) or client is None else client_info(client)
    outer = _context.get()
    if outer is not None:
        info = info or outer.client
        if parent_op_id is None:
            parent_op_id, relation = outer.parent_op_id, relation or outer.relation
    token = _context.set(_Context(info, parent_op_id, relation))
    try:
        yield
    finally:
        _context.reset(token)


def _public_endpoint(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def client_info(client: Any) -> dict[str, Any]:
    """The non-secret facts that name where ``client`` acts: kind, address and target.

    LinkClient/AsyncLinkClient -> endpoint (no user info or query), project and instance
    ids; Gateway -> host, port, gateway id, TLS. Never credentials.
    """
    if all(hasattr(client, a) for a in ("endpoint", "project_id", "instance_id")):
        return {
            "kind": "link",
            "endpoint": _public_endpoint(str(client.endpoint)),
            "project_id": str(client.project_id),
            "instance_id": str(client.instance_id),
            "target": str(client.instance_id),
        }
    if all(hasattr(client, a) for a in ("host", "port", "device_id")):
        return {
            "kind": "gateway",
            "host": str(client.host),
            "port": int(client.port),
            "gateway_id": str(client.device_id),
            "tls": bool(getattr(client, "tls", False)),
            "target": str(client.device_id),
        }
    raise InputError(f"expected a LinkClient, AsyncLinkClient or Gateway, got {type(client).__name__}")


# -- writing -----------------------------------------------------------------------------
class JournalObserver(BatchObserver):
    """Writes one run to the journal (the engine calls these hooks on its loop).

    Never raises: on a write error it logs once and stops writing for this run (a run
    whose journal is cut short resumes conservatively: its later chunks count as sent).
    """

    def __init__(
        self,
        *,
        client: dict[str, Any] | None = None,
        parent_op_id: str | None = None,
        relation: str | None = None,
        file: Path | None = None,
    ) -> None:
        self.client = client
        self.parent_op_id = parent_op_id
        self.relation = relation if parent_op_id else None
        self.file = file
        self.op_id: str | None = None
        self._db: sqlite3.Connection | None = None

    def _fail(self, what: str, exc: BaseException) -> None:
        log.warning("journal: could not %s for op %s (%s: %s); this run is no longer journaled",
                    what, self.op_id, type(exc).__name__, exc)
        self._close()

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def started(self, op_id: str, operation: str, target: str, chunks: list[list]) -> None:
        self.op_id = op_id
        now = time.time()
        try:
            self._db = db = connect(self.file)
            client = self.client
            with _tx(db):
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "INSERT INTO operations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        op_id, operation, target,
                        (client or {}).get("kind") or OPERATION_KIND.get(operation),
                        json.dumps(client) if client else None,
                        sum(len(c) for c in chunks), len(chunks), max((len(c) for c in chunks), default=0),
                        now, self.parent_op_id, self.relation, os.getpid(), socket.gethostname(), _version(),
                    ),
                )
                db.executemany(
                    "INSERT INTO chunks (op_id, chunk, state, at, n, ids) VALUES (?,?,'planned',?,?,?)",
                    ((op_id, no, now, len(c), json.dumps(c)) for no, c in enumerate(chunks)),
                )
                db.execute("COMMIT")
        except (sqlite3.Error, OSError, TypeError, ValueError) as e:
            self._fail("start the journal", e)
            return
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        with _active_lock:
            _active[op_id] = task
        if task is not None:  # a run killed with its task (cancelled) closes its connection here
            task.add_done_callback(lambda _t: self._abandoned())

    def _abandoned(self) -> None:
        with _active_lock:
            _active.pop(self.op_id or "", None)
        self._close()

    def chunk_sent(self, op_id: str, chunk: int, attempt: int) -> None:
        db = self._db
        if db is None:
            return
        try:
            db.execute(
                "INSERT INTO chunks (op_id, chunk, state, attempt, at) VALUES (?,?,'sent',?,?)",
                (op_id, chunk, attempt, time.time()),
            )
        except sqlite3.Error as e:
            self._fail(f"record chunk {chunk} as sent", e)

    def chunk_done(self, op_id: str, chunk: int, rows: dict[str, list]) -> None:
        db = self._db
        if db is None:
            return
        try:
            ids = rows["ids"]
            db.execute(
                "INSERT INTO chunks (op_id, chunk, state, attempt, at, n, ids, sent_at, answered_at, request_id,"
                " event_id, names, outcomes, error_codes, error_msgs) VALUES (?,?,'done',?,?,?,?,?,?,?,?,?,?,?,?)",
                (op_id, chunk, rows["attempts"], time.time(), len(ids), _dumps([str(i) for i in ids]),
                 rows["sent_at"], rows["answered_at"], rows["request_id"], rows["event_id"],
                 _dumps(rows["names"]), _dumps(rows["outcome"]), _dumps(rows["error_code"]), _dumps(rows["error_msg"])),
            )
        except (sqlite3.Error, TypeError, ValueError) as e:
            self._fail(f"record chunk {chunk}'s outcome", e)

    def finished(self, result: BatchResult) -> None:
        with _active_lock:
            _active.pop(result.op_id, None)
        db = self._db
        if db is None:
            return
        try:
            stop_code = None
            if result.stopped:
                sk = result.frame.loc[result.frame["outcome"] == SKIPPED, "error_code"].dropna()
                stop_code = str(sk.iloc[0]) if len(sk) else None
            db.execute(
                "INSERT INTO operation_ends VALUES (?,?,?,?,?,?)",
                (result.op_id, time.time(), "stopped" if result.stopped else "finished", result.stopped,
                 stop_code, json.dumps(result.counts)),
            )
        except sqlite3.Error as e:
            self._fail("record the end of the run", e)
        self._close()


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _version() -> str:
    from romakit import __version__

    return __version__


def default_observer(parent_op_id: str | None = None) -> BatchObserver:
    """The observer the engine uses when given none: the journal, unless switched off
    (``ROMAKIT_JOURNAL=0``). Picks up :func:`recording`'s client and relation."""
    if not enabled():
        return BatchObserver()
    ctx = _context.get()
    parent = parent_op_id or (ctx.parent_op_id if ctx else None)
    return JournalObserver(
        client=ctx.client if ctx else None,
        parent_op_id=parent,
        relation=(ctx.relation if ctx and ctx.relation else ("child" if parent else None)),
    )


# -- reading -------------------------------------------------------------------------------
def _reader(file: Path | None = None) -> sqlite3.Connection | None:
    file = Path(file) if file is not None else path()
    if not file.exists():
        return None
    return connect(file)


@dataclass
class _Op:
    row: sqlite3.Row
    plan: list[tuple[int, list]]  # (chunk, ids) in chunk order
    sent: dict[int, tuple[int, float]]  # chunk -> (last attempt, last sent time)
    done: dict[int, sqlite3.Row]
    end: sqlite3.Row | None


def _load(db: sqlite3.Connection, op_id: str) -> _Op:
    db.row_factory = sqlite3.Row
    row = db.execute("SELECT * FROM operations WHERE op_id = ?", (op_id,)).fetchone()
    if row is None:
        like = [r[0] for r in db.execute(
            "SELECT op_id FROM operations WHERE substr(op_id, 1, ?) = ? LIMIT 2", (len(op_id), op_id))]
        if len(like) == 1:
            return _load(db, like[0])
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
    return _Op(row, plan, sent, done, end)


def _alive(pid: int | None, hostname: str | None, op_id: str) -> bool:
    if pid is None or hostname != socket.gethostname():
        return False
    if pid == os.getpid():
        with _active_lock:
            if op_id not in _active:
                return False
            task = _active[op_id]
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


def _state(op: _Op) -> str:
    if op.end is not None:
        return op.end["state"]
    return "running" if _alive(op.row["pid"], op.row["hostname"], op.row["op_id"]) else "interrupted"


def _rebuild(db: sqlite3.Connection, op: _Op, *, only_done: bool = False) -> BatchResult:
    """The op's BatchResult from its rows: done chunks as recorded, sent-but-not-done
    chunks ``unknown``, never-sent chunks ``skipped`` (left out with ``only_done``)."""
    from romakit.results import ResultBuilder

    r = op.row
    builder = ResultBuilder(r["operation"], r["target"], r["op_id"])
    state = _state(op)
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


_LIST_COLUMNS = [
    "op_id", "operation", "target", "requested", *OUTCOMES, "state", "stopped", "created_at",
    "finished_at", "parent_op_id", "relation", "resumed_by", "client",
]


def journal(op_id: str | None = None, *, with_resumes: bool = False) -> pd.DataFrame | BatchResult:
    """Past operations, oldest first, as a DataFrame (``op_id``, operation, target,
    requested, devices per outcome, state, ...); or, given ``op_id`` (a unique prefix
    will do), that operation's :class:`BatchResult` rebuilt from the journal.

    ``state`` is ``finished``, ``stopped`` (cancel/abort), ``running`` or ``interrupted``
    (its process is gone): an interrupted operation's unanswered devices show as
    ``unknown`` (sent) or ``skipped`` (never sent) until ``rk.resume`` completes it.
    ``with_resumes=True`` gives the operation as completed by its resumes so far.
    """
    import pandas as pd

    db = _reader()
    if op_id is not None:
        if db is None:
            raise InputError(f"no operation {op_id!r}: the journal at {path()} does not exist yet")
        try:
            op = _load(db, op_id)
            if with_resumes:
                return _completed(db, op, None)
            return _rebuild(db, op)
        finally:
            db.close()
    if db is None:
        return pd.DataFrame(columns=_LIST_COLUMNS)
    try:
        return _listing(db)
    finally:
        db.close()


def _listing(db: sqlite3.Connection) -> pd.DataFrame:
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
            state = "running" if _alive(o["pid"], o["hostname"], o["op_id"]) else "interrupted"
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
    f = pd.DataFrame(out, columns=_LIST_COLUMNS)
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
    db = _reader()
    if db is None:
        raise InputError(f"no operation {op_id!r}: the journal at {path()} does not exist yet")
    try:
        op = _load(db, op_id)
        rec = dict(op.row)
        rec["client"] = json.loads(rec["client"]) if rec["client"] else None
        rec["state"] = _state(op)
        return rec
    finally:
        db.close()


# -- retry and resume -------------------------------------------------------------------
def check_client(client: Any, operation: str, target: str, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
    """``client_info(client)`` after checking that the client can carry ``operation``
    against ``target`` (and the recorded project, when there is one); refuses otherwise."""
    kind = OPERATION_KIND.get(operation)
    if kind is None:
        raise InputError(f"romakit cannot run a {operation!r} operation again (only {', '.join(OPERATION_KIND)})")
    info = client_info(client)
    if info["kind"] != kind:
        want = "a LinkClient" if kind == "link" else "a Gateway"
        raise InputError(f"{operation} runs over {'LINK REST' if kind == 'link' else 'gateway MQTT'}: pass {want}, not {type(client).__name__}")
    if info["target"] != target:
        what = "instance" if kind == "link" else "gateway"
        raise InputError(f"this {operation} ran on {what} {target!r}, but the client is for {what} {info['target']!r}")
    if recorded and kind == "link" and recorded.get("project_id") and recorded["project_id"] != info["project_id"]:
        raise InputError(f"this {operation} ran in project {recorded['project_id']!r}, but the client is for project {info['project_id']!r}")
    if recorded and kind == "link" and recorded.get("endpoint") and recorded["endpoint"] != info["endpoint"]:
        log.warning("resuming on %s although the operation ran through %s (same instance)", info["endpoint"], recorded["endpoint"])
    return info


def run_operation(
    client: Any,
    operation: str,
    target: str,
    ids: Sequence,
    *,
    parent_op_id: str,
    relation: str,
    recorded: dict[str, Any] | None = None,
    names: dict | None = None,
    **options: Any,
) -> Any:
    """Run ``operation`` on ``ids`` through ``client`` as a new operation linked to
    ``parent_op_id``; the BatchResult, or a coroutine when ``client`` is async."""
    info = check_client(client, operation, target, recorded)
    fn = getattr(client, operation)
    kwargs = {**options, "parent_op_id": parent_op_id}
    if names:
        kwargs["names"] = names

    def link(result: BatchResult) -> BatchResult:
        result.parent_op_id = parent_op_id
        return result

    if inspect.iscoroutinefunction(fn):
        async def arun() -> BatchResult:
            with recording(info, parent_op_id=parent_op_id, relation=relation):
                return link(await fn(list(ids), **kwargs))

        return arun()
    with recording(info, parent_op_id=parent_op_id, relation=relation):
        return link(fn(list(ids), **kwargs))


def _resume_children(db: sqlite3.Connection, op_id: str) -> list[str]:
    """Resume operations of ``op_id``, oldest first."""
    return [r[0] for r in db.execute(
        "SELECT op_id FROM operations WHERE parent_op_id = ? AND relation = 'resume' ORDER BY created_at, rowid", (op_id,)
    )]


def _completed(db: sqlite3.Connection, op: _Op, new: BatchResult | None) -> BatchResult:
    """The op's rows completed by its resumes (answered rows only) and ``new``: every
    requested id once, in request order; later answers win."""
    import numpy as np

    from romakit.results import BatchResult

    parts = [_rebuild(db, op, only_done=True)]
    parts += [_rebuild(db, _load(db, c), only_done=True) for c in _resume_children(db, op.row["op_id"])]
    if new is not None:
        parts.append(new)
    order = [str(i) for _, ids in op.plan for i in ids]
    base = _rebuild(db, op)  # every requested id, unanswered ones unknown/skipped
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
    db = _reader()
    if db is None:
        raise InputError(f"no operation {op_id!r}: the journal at {path()} does not exist yet")
    try:
        op = _load(db, op_id)
        answered: set[str] = set()
        for c in [op.row["op_id"], *_resume_children(db, op.row["op_id"])]:
            for (ids,) in db.execute("SELECT ids FROM chunks WHERE op_id = ? AND state = 'done'", (c,)):
                answered.update(json.loads(ids))
        todo = [i for _, ids in op.plan for i in ids if str(i) not in answered]
        rec = dict(op.row)
        rec["client"] = json.loads(rec["client"]) if rec["client"] else None
        rec["state"] = _state(op)
        return rec, todo
    finally:
        db.close()


def resume(op_id: str, client: Any, *, force: bool = False, **options: Any) -> Any:
    """Finish an interrupted (or stopped) operation: send only the devices whose chunk
    never got an answer, as a new operation linked to ``op_id`` (relation ``resume``),
    and return the completed :class:`BatchResult`: every requested id exactly once, the
    journal's answered rows plus the new ones.

    ``client`` carries the credentials the journal never holds: a LinkClient for the
    same instance (force-offline, delete) or a connected Gateway for the same gateway
    (child deletion); anything else is refused. With an async client this returns a
    coroutine. ``options`` go to the client's method (``chunk_size=``, ...). Resuming an
    operation that is still running is refused (``force=True`` overrides, e.g. when its
    process id was reused); resuming a complete one sends nothing.
    """
    rec, todo = pending_ids(op_id)
    full_id = rec["op_id"]
    check_client(client, rec["operation"], rec["target"], rec["client"])
    if rec["state"] == "running" and not force:
        raise InputError(f"operation {full_id} is still running (process {rec['pid']}); resume it once it has stopped")

    def complete(new: BatchResult | None) -> BatchResult:
        db = _reader()
        assert db is not None
        try:
            return _completed(db, _load(db, full_id), new)
        finally:
            db.close()

    if not todo:
        return complete(None)
    call = run_operation(client, rec["operation"], rec["target"], todo, parent_op_id=full_id, relation="resume",
                         recorded=rec["client"], **options)
    if inspect.iscoroutine(call):
        async def finish() -> BatchResult:
            return complete(await call)

        return finish()
    return complete(call)
