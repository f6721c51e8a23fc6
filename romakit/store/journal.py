"""A journal as a value: :class:`Journal`, what a client carries (its operations are
journaled there) and what a result carries (its report reads the chain of retries and
resumes there)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from romakit.errors import InputError
from romakit.store.backend import Conn
from romakit.store.schema import sandbox_path
from romakit.store.target import Url, check, connect, location, reader, setting
from romakit.wire import is_sandbox_instance

if TYPE_CHECKING:  # pragma: no cover
    from romakit.results.report import History


@dataclass(frozen=True)
class Journal:
    """A journal: ``url`` (a postgresql:// URL or a SQLite file) is used as given;
    without it, ``ROMAKIT_JOURNAL``, else ``default`` (a profile's ``journal`` key),
    else the SQLite file under ``ROMAKIT_HOME`` (:mod:`romakit.store.target`), read
    each time it is opened. ``off``: no journal at all (a client's ``journal=False``): its
    runs are not recorded and there is nothing to read. ``sandbox``: a sandbox's runs
    (:meth:`for_sandbox`): the sandbox journal, ``<romakit home>/sandbox/journal.sqlite3``,
    in place of the default file (and of a profile's ``journal``); a journal named by
    ``url`` or ``ROMAKIT_JOURNAL`` still wins."""

    url: str | None = None
    default: str | None = None
    off: bool = False
    sandbox: bool = False

    def __post_init__(self) -> None:
        for name in ("url", "default"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check(os.fspath(value)))

    @classmethod
    def of(cls, value: Journal | Url | bool | None) -> Journal:
        """``value`` as a Journal (a URL or a file: that one; None or True: the one in
        effect; False: none, :attr:`off`)."""
        if isinstance(value, Journal):
            return value
        if isinstance(value, bool):
            return cls(off=not value)
        return cls(None if value is None else os.fspath(value))

    @classmethod
    def for_sandbox(cls) -> Journal:
        """Where a sandbox's runs are recorded: the sandbox journal, so that practice and
        training never fill the real journal's default file; a journal you name
        (``ROMAKIT_JOURNAL``, the command line's ``--journal``) is used as named.
        ``ROMAKIT_HOME`` moves it with the rest."""
        return cls(sandbox=True)

    def for_instance(self, instance_id: object) -> Journal:
        """The journal of a client acting on ``instance_id`` that was given no journal:
        :meth:`for_sandbox` for a sandbox's instance (:func:`romakit.wire.is_sandbox_instance`)
        unless this one names a journal (``url``, a profile's ``default``) or none (``off``);
        else this one."""
        named = self.url is not None or self.default is not None or self.off or self.sandbox
        return Journal.for_sandbox() if not named and is_sandbox_instance(instance_id) else self

    def resolved(self) -> Journal:
        """This journal as it resolves now (``ROMAKIT_JOURNAL`` or the default file read
        once): what a run or a rebuilt result keeps as the journal it belongs to."""
        return self if self.off else Journal(os.fspath(self.where))

    @property
    def where(self) -> str | Path:
        """The journal in effect: a PostgreSQL URL (str) or a SQLite file (Path)."""
        if self.off:
            raise InputError("this client journals nothing (journal=False): there is no journal to read")
        return setting(self.url, default=sandbox_path() if self.sandbox else self.default)

    @property
    def location(self) -> str:
        """Where it is, printable (a URL without its password, or the file; ``not journaled``)."""
        return "not journaled" if self.off else location(self.where)

    def connect(self) -> Conn:
        """A connection, the schema created or migrated on first use."""
        return connect(self.where)

    def reader(self) -> Conn | None:
        """A connection to it if it exists yet, else None."""
        return reader(self.where)

    def history(self, op_id: str) -> History | None:
        """What the evidence report reads about ``op_id``: :func:`romakit.store.reader.history`."""
        from romakit.store.reader import history

        if self.off:
            return None
        return history(op_id, self.where)

    def __repr__(self) -> str:
        return f"Journal({self.location!r})"
