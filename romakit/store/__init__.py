"""The journal: every batch operation, chunk by chunk, in an append-only SQLite file.

- :mod:`~romakit.store.schema`: where the file is, its schema, opening it
- :mod:`~romakit.store.writer`: :class:`JournalObserver`, the engine's hooks that write it
- :mod:`~romakit.store.reader`: operations and results rebuilt from its rows

``rk.journal()`` and ``rk.resume()`` (:mod:`romakit.replay`) sit on top.
"""
