"""The journal suite runs against both backends: every test in tests/store takes the
``backend`` fixture (autouse), once with the SQLite file under the test's own
ROMAKIT_HOME and once with PostgreSQL on 127.0.0.1:5432 (database ``test``), in a fresh
schema per test (``ROMAKIT_JOURNAL=postgresql://...?options=-csearch_path%3Drk_test_...``),
dropped afterwards. The PostgreSQL half skips, saying why, when nothing answers there.
"""

from __future__ import annotations

import pytest
from support.postgres import PgSchema, postgres_reason


@pytest.fixture(params=["sqlite", "postgresql"], autouse=True)
def backend(request, monkeypatch):
    """``"sqlite"`` or ``"postgresql"``: the journal every test in this directory uses."""
    if request.param == "sqlite":
        monkeypatch.delenv("ROMAKIT_JOURNAL", raising=False)
        yield "sqlite"
        return
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    schema = PgSchema()
    monkeypatch.setenv("ROMAKIT_JOURNAL", schema.url)
    try:
        yield "postgresql"
    finally:
        schema.drop()
