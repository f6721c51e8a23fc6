"""The journal's one small storage interface: :class:`Conn`, a connection to a journal.

Everything above it (writer, reader, leases, migration) speaks the same SQL text with
``?`` placeholders and reads rows by column name; the two implementations
(:mod:`~romakit.store.sqlite`, :mod:`~romakit.store.postgres`) differ only where the
drivers do: placeholders, row objects, transactions and locks, a few DDL words, and
how the schema's version is found. :meth:`Conn.ensure_schema` creates or migrates the
schema the same way on both, under the backend's lock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from romakit.errors import RomakitError
from romakit.store.schema import SCHEMA_VERSION, TABLES, UPGRADES

Row = Mapping[str, Any]


class SchemaError(RuntimeError):
    """The journal was written by a newer romakit (or is not a journal)."""


class JournalUnavailable(RomakitError):
    """The journal cannot be opened (a corrupt file, a server that does not answer); the
    message names where it is and why."""


class Conn:
    """One connection to a journal. Rows are read by column name (``row["op_id"]``)."""

    kind: ClassVar[str]
    #: DDL words the shared schema text leaves open
    ddl_words: ClassVar[dict[str, str]]
    where: str  # a printable location (never a password)

    # -- what each driver provides ------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def transaction(self, lock: str | None = None) -> contextlib.AbstractContextManager[None]:
        """A write transaction; ``lock`` names what it serializes on (SQLite: every write
        transaction holds the file's write lock; PostgreSQL: an advisory lock)."""
        raise NotImplementedError

    def script(self, sql: str) -> None:
        """Run several DDL statements (inside the current transaction)."""
        raise NotImplementedError

    def stored_version(self) -> int:
        """The schema version this journal holds (0: none yet)."""
        raise NotImplementedError

    def tables(self) -> list[str]:
        """Every table of this journal (for audits: a secret must be in none of them)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def extra_ddl(self) -> str:
        """Backend-only DDL after the shared tables: the ``rows`` view, the append-only triggers."""
        raise NotImplementedError

    def upgrade_from(self, version: int) -> str:
        """The steps that bring a journal of schema ``version`` to the shared tables: the
        shared :data:`~romakit.store.schema.UPGRADES` from ``version`` on (a backend adds
        its own for versions only it had)."""
        if version not in UPGRADES:
            raise SchemaError(f"the journal at {self.where} has schema {version}, which this romakit cannot migrate")
        return "".join(UPGRADES[v] for v in range(version, SCHEMA_VERSION))

    # -- shared --------------------------------------------------------------------------
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[next(iter(row.keys()))]

    def stream(self, sql: str, params: Sequence[Any] = (), size: int = 2000) -> Iterator[Row]:
        cur = self.execute(sql, params)
        while batch := cur.fetchmany(size):
            yield from batch

    def ensure_schema(self) -> None:
        """Create the schema, or migrate an older one to :data:`SCHEMA_VERSION`, once,
        under the backend's lock; refuse a newer one."""
        if self._check_version(self.stored_version()):
            return
        with self.transaction(lock="romakit.schema"):
            version = self.stored_version()
            if self._check_version(version):
                return
            if version:  # an older schema's own steps first
                self.script(self.upgrade_from(version))
            self.script(TABLES.format(**self.ddl_words))
            self.script(self.extra_ddl())
            from romakit import __version__

            # the DDL is idempotent and a writer that raced here (a stale catalog view) adds no second row
            self.execute("INSERT INTO schema_version (version, applied_at, romakit) SELECT ?, ?, ?"
                         " WHERE NOT EXISTS (SELECT 1 FROM schema_version WHERE version = ?)",
                         (SCHEMA_VERSION, time.time(), __version__, SCHEMA_VERSION))
            self._versioned()

    def _check_version(self, version: int) -> bool:
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"the journal at {self.where} was written by a newer romakit (schema {version}; this one knows "
                f"{SCHEMA_VERSION}): upgrade romakit, or point ROMAKIT_JOURNAL elsewhere"
            )
        return version == SCHEMA_VERSION

    def _versioned(self) -> None:
        """Called inside the schema's transaction once it is current (SQLite: user_version)."""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
