"""PostgreSQL on 127.0.0.1:5432 (database ``test``) for the journal's tests: whether it
answers, and a fresh schema a test journals into and drops."""

from __future__ import annotations

import os
import uuid

PG_BASE = os.environ.get("ROMAKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_reason: list[str | None] = []


def postgres_reason() -> str | None:
    """None when PostgreSQL answers at PG_BASE, else why its tests are skipped (asked once)."""
    if not _reason:
        try:
            import psycopg

            with psycopg.connect(PG_BASE, connect_timeout=3, autocommit=True) as c:
                c.execute("SELECT 1")
            _reason.append(None)
        except Exception as e:  # any failure to answer is a reason to skip, said plainly
            _reason.append(f"PostgreSQL does not answer at {PG_BASE} ({type(e).__name__}: {str(e).strip()[:200]})")
    return _reason[0]


class PgSchema:
    """A fresh schema in the test database; ``url`` journals into it."""

    def __init__(self) -> None:
        import psycopg

        self.name = f"rk_test_{uuid.uuid4().hex[:12]}"
        self._psycopg = psycopg
        with psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {self.name}")
        sep = "&" if "?" in PG_BASE else "?"
        self.url = f"{PG_BASE}{sep}options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        with self._psycopg.connect(PG_BASE, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")
