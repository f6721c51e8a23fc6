"""The journal: every batch operation, chunk by chunk, append-only, in SQLite (the
embedded default) or PostgreSQL (a team's journal), behind one small interface.

- :mod:`~romakit.store.schema`: the schema (the same on both backends), the SQLite file's place
- :mod:`~romakit.store.backend`: :class:`Conn`, the interface; :mod:`~romakit.store.sqlite`
  and :mod:`~romakit.store.postgres` implement it; :mod:`~romakit.store.target` picks one
  (``ROMAKIT_JOURNAL=postgresql://...``)
- :mod:`~romakit.store.journal`: :class:`Journal`, one journal as a value: what a client
  journals into and what a result's report reads its chain from
- :mod:`~romakit.store.writer`: :class:`JournalObserver`, the engine's hooks that write it
- :mod:`~romakit.store.lease`: who holds an operation now (runs, resumes), liveness
- :mod:`~romakit.store.reader`, :mod:`~romakit.store.listing`: operations, results and
  the listing frame rebuilt from its rows
- :mod:`~romakit.store.migrate`: :func:`copy_journal`, a SQLite journal into PostgreSQL

``rk.journal()`` and ``rk.resume()`` (:mod:`romakit.replay`) sit on top.
"""
