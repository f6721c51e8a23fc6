"""The journal: every batch operation, chunk by chunk, append-only, in SQLite (the
embedded default) or PostgreSQL (a team's journal), behind one small interface.

- :mod:`~romakit.store.schema`: the schema (the same on both backends), the SQLite file's place
- :mod:`~romakit.store.backend`: :class:`Conn`, the interface; :mod:`~romakit.store.sqlite`
  and :mod:`~romakit.store.postgres` implement it; :mod:`~romakit.store.target` picks one
  (``ROMAKIT_JOURNAL=postgresql://...``)
- :mod:`~romakit.store.writer`: :class:`JournalObserver`, the engine's hooks that write it
- :mod:`~romakit.store.lease`: who holds an operation now (runs, resumes), liveness
- :mod:`~romakit.store.reader`, :mod:`~romakit.store.listing`: operations, results and
  the listing frame rebuilt from its rows
- :mod:`~romakit.store.migrate`: :func:`copy_journal`, a SQLite journal into PostgreSQL

``rk.journal()`` and ``rk.resume()`` (:mod:`romakit.replay`) sit on top.
"""

from typing import Any as _Any

from romakit.results import report as _report


def _history(op_id: str) -> dict[str, _Any] | None:
    from romakit.store.reader import history

    return history(op_id)


_report.use_journal(_history)  # the evidence report reads the chain of an operation from here
