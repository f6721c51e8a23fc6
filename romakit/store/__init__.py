"""The journal: every batch operation, chunk by chunk, in an append-only SQLite file.

- :mod:`~romakit.store.schema`: where the file is, its schema, opening it
- :mod:`~romakit.store.writer`: :class:`JournalObserver`, the engine's hooks that write it
- :mod:`~romakit.store.reader`: operations and results rebuilt from its rows

``rk.journal()`` and ``rk.resume()`` (:mod:`romakit.replay`) sit on top.
"""

from typing import Any as _Any

from romakit.results import report as _report


def _history(op_id: str) -> dict[str, _Any] | None:
    from romakit.store.reader import history

    return history(op_id)


_report.use_journal(_history)  # the evidence report reads the chain of an operation from here
