"""The team journal: PostgreSQL through psycopg 3, chosen by ``ROMAKIT_JOURNAL=postgresql://...``.

The same tables as SQLite (the same SQL text: only placeholders, row objects, a few DDL
words, the ``rows`` view's JSON functions and the trigger syntax differ). Autocommit:
one statement per chunk event, as on SQLite; write transactions that must not interleave
(leases, the schema) take an advisory lock on their key. The URL may name a schema
with ``?options=-csearch_path%3Dname`` (the tests use one per run).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

from romakit.store.backend import Conn
from romakit.store.schema import JOURNAL_TABLES

ROWS_VIEW = """
CREATE OR REPLACE VIEW rows AS
    SELECT c.op_id, c.chunk, (j.ord - 1)::integer AS pos, j.id AS device_id,
           c.names::jsonb ->> (j.ord - 1)::integer AS device_name,
           c.outcomes::jsonb ->> (j.ord - 1)::integer AS outcome,
           c.error_codes::jsonb ->> (j.ord - 1)::integer AS error_code,
           c.error_msgs::jsonb ->> (j.ord - 1)::integer AS error_msg,
           c.attempt AS attempts, c.request_id, c.event_id, c.sent_at, c.answered_at, c.http_status,
           c.settled_by
    FROM chunks AS c CROSS JOIN LATERAL jsonb_array_elements_text(c.ids::jsonb) WITH ORDINALITY AS j(id, ord)
    WHERE c.state = 'done';
CREATE OR REPLACE FUNCTION romakit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: no % on %', TG_OP, TG_TABLE_NAME;
END $$;
"""


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (the shared SQL has no ``%`` and no ``?`` in literals)."""
    return sql.replace("?", "%s")


def redact(url: str) -> str:
    """``url`` without its password (what messages and logs may show)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        d = conninfo_to_dict(url)
    except Exception:  # an unreadable URL is shown by its scheme only
        return "postgresql://..."
    user = f"{d['user']}@" if d.get("user") else ""
    port = f":{d['port']}" if d.get("port") else ""
    opts = f" ({d['options']})" if d.get("options") else ""
    return f"postgresql://{user}{d.get('host', '')}{port}/{d.get('dbname', '')}{opts}"


class PostgresConn(Conn):
    kind = "postgresql"
    ddl_words: ClassVar[dict[str, str]] = {
        "SEQ": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "REAL": "DOUBLE PRECISION"}

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        import psycopg
        from psycopg.rows import dict_row

        self.where = redact(url)
        self._c = psycopg.connect(url, autocommit=True, row_factory=dict_row,
                                  connect_timeout=max(1, int(connect_timeout)), application_name="romakit")
        try:
            self.ensure_schema()
        except BaseException:
            self._c.close()
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._c.execute(_pg(sql), params or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._c.cursor() as cur:
            cur.executemany(_pg(sql), rows)

    @contextlib.contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[None]:
        with self._c.transaction():
            if lock:
                self._c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
            yield

    def script(self, sql: str) -> None:
        if sql.strip():
            self._c.execute(sql)  # no parameters: several statements at once

    def stored_version(self) -> int:
        if self.scalar("SELECT to_regclass('schema_version')::text") is None:
            return 0
        return int(self.scalar("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version"))

    def tables(self) -> list[str]:
        return [r["table_name"] for r in self.rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_type = 'BASE TABLE' ORDER BY table_name")]

    def extra_ddl(self) -> str:
        return ROWS_VIEW + "".join(
            f"CREATE OR REPLACE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t}"
            " FOR EACH ROW EXECUTE FUNCTION romakit_append_only();\n" for t in JOURNAL_TABLES
        )

    def close(self) -> None:
        self._c.close()
