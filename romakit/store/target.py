"""Which journal: the one setting, and a connection to it.

The setting is a PostgreSQL URL (``postgresql://user@host:5432/db``, a team's journal)
or a SQLite file (``sqlite:///path/journal.sqlite3`` or a plain path); unset, the
SQLite file under ``ROMAKIT_HOME`` (:func:`romakit.store.schema.path`). Where it comes
from, strongest first: an explicit ``url=`` (a client's ``journal=``), the
``ROMAKIT_JOURNAL`` variable (the CLI's ``--journal`` sets it, :func:`use`), a
``default=`` (a profile's ``journal`` key), the default file. ``ROMAKIT_JOURNAL=0`` (or
false/no/off) switches journaling off.
"""

from __future__ import annotations

import os
from pathlib import Path

from romakit.errors import InputError, RomakitError
from romakit.store.backend import Conn, JournalUnavailable, SchemaError
from romakit.store.schema import ENV_SWITCH, path

_SWITCH_WORDS = {"", "0", "false", "no", "off", "1", "true", "yes", "on"}
_PG_SCHEMES = ("postgresql://", "postgres://")

#: a journal as given: a postgresql:// URL, a ``sqlite:`` URL or a file path
Url = str | os.PathLike[str]


def use(url: Url | bool) -> None:
    """Journal into ``url`` in this process and the processes it starts: the command
    line's ``--journal``, set as ``ROMAKIT_JOURNAL`` (False: no journal, ``--no-journal``)."""
    os.environ[ENV_SWITCH] = "0" if url is False else check(str(url))


def named_by_env() -> bool:
    """True when ``ROMAKIT_JOURNAL`` names a journal (not unset, nor an on/off word)."""
    return os.environ.get(ENV_SWITCH, "").strip().lower() not in _SWITCH_WORDS


def check(value: str) -> str:
    """``value`` if it names a journal (a PostgreSQL URL or a SQLite path), else InputError."""
    v = value.strip()
    if v.startswith(_PG_SCHEMES) or v.startswith("sqlite:") or "/" in v or v.endswith((".sqlite3", ".db")):
        return v
    raise InputError(f"journal {v!r} is neither a postgresql:// URL nor a SQLite file path")


def setting(url: Url | None = None, *, default: Url | None = None) -> str | Path:
    """The journal in effect: a PostgreSQL URL (str) or a SQLite file (Path)."""
    env = os.environ.get(ENV_SWITCH, "").strip()
    for v in (url, None if env.lower() in _SWITCH_WORDS else env, default):
        if v is None:
            continue
        if isinstance(v, Path):
            return v.expanduser()
        v = check(str(v))
        if v.startswith(_PG_SCHEMES):
            return v
        if v.startswith("sqlite:"):
            v = v[len("sqlite://"):] if v.startswith("sqlite://") else v[len("sqlite:"):]
        return Path(v).expanduser()
    return path()


def location(url: Url | None = None) -> str:
    """Where the journal is, printable (a URL without its password, or the file)."""
    where = setting(url)
    if isinstance(where, str):
        from romakit.store.postgres import redact

        return redact(where)
    return str(where)


def connect(url: Url | None = None) -> Conn:
    """A connection to the journal, its schema created or migrated on first use
    (:class:`~romakit.store.backend.JournalUnavailable` when it cannot be opened)."""
    where = setting(url)
    try:
        if isinstance(where, str):
            from romakit.store.postgres import PostgresConn

            return PostgresConn(where)
        from romakit.store.sqlite import SqliteConn

        return SqliteConn(where)
    except (RomakitError, SchemaError):
        raise
    except Exception as e:  # the driver's own: said with where the journal is
        raise JournalUnavailable(f"cannot open the journal at {location(where)}: {type(e).__name__}: "
                                 f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e


def reader(url: Url | None = None) -> Conn | None:
    """A connection to an existing journal, or None when there is none yet (a SQLite
    file not yet written; a PostgreSQL journal always exists once it answers)."""
    where = setting(url)
    if isinstance(where, Path) and not where.exists():
        return None
    return connect(url)
