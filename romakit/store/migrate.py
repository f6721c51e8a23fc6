"""Moving a journal: :func:`copy_journal` copies every operation of one journal into
another (typically a laptop's SQLite file into the team's PostgreSQL), in one
transaction on the destination, keeping each table's order.

Operations the destination already holds are left alone, so running it twice copies
nothing twice. Leases are not copied (they belong to live processes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from romakit.errors import InputError
from romakit.store.schema import COLUMNS, JOURNAL_TABLES, insert_sql
from romakit.store.target import connect, location, reader, setting

BATCH = 1000


def copy_journal(src: str | os.PathLike | None = None, dst: str | os.PathLike | None = None) -> dict[str, Any]:
    """Copy the operations of journal ``src`` (default: the one in effect, e.g. this
    user's SQLite file) into ``dst`` (a ``postgresql://`` URL or a file; default: the one
    in effect). Returns what was copied: ``{"operations": n, "chunks": n,
    "operation_ends": n, "already_there": n, "from": ..., "to": ...}``."""
    if src is None and dst is None:
        raise InputError("copy_journal needs a destination (or a source other than the journal in effect)")
    if _same(src, dst):
        raise InputError(f"the source and the destination are the same journal ({location(src)})")
    source = reader(src)
    if source is None:
        raise InputError(f"no journal at {location(src)} to copy")
    out: dict[str, Any] = {"from": location(src), "to": location(dst)}
    with source, connect(dst) as target:
        have = {r["op_id"] for r in target.rows("SELECT op_id FROM operations")}
        todo = [r["op_id"] for r in source.rows("SELECT op_id FROM operations ORDER BY created_at, op_id")
                if r["op_id"] not in have]
        out["already_there"] = len(have & {r["op_id"] for r in source.rows("SELECT op_id FROM operations")})
        new = set(todo)
        with target.transaction(lock="romakit.migrate"):
            for table in JOURNAL_TABLES:
                cols = ", ".join(COLUMNS[table])
                order = "created_at, op_id" if table == "operations" else "seq"
                sql = insert_sql(table)
                n, batch = 0, []
                for row in source.stream(f"SELECT {cols} FROM {table} ORDER BY {order}"):
                    if row["op_id"] in new:
                        batch.append(tuple(row[c] for c in COLUMNS[table]))
                        if len(batch) >= BATCH:
                            target.executemany(sql, batch)
                            n, batch = n + len(batch), []
                if batch:
                    target.executemany(sql, batch)
                    n += len(batch)
                out[table] = n
    return out


def _same(src: Any, dst: Any) -> bool:
    a, b = setting(src), setting(dst)
    if isinstance(a, Path) and isinstance(b, Path):
        return a.expanduser().resolve() == b.expanduser().resolve()
    return a == b
