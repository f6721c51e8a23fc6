"""The command line and its journal: a run whose journal cannot be written is refused
before anything is sent (exit 3, the reason and where the journal is named, no
traceback); ``--no-journal`` runs without one by choice, and the preview says so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.cli import link_args, romakit

SANDBOX = {"devices": 400, "seed": 43}

pytestmark = pytest.mark.timeout(120)


def creds(sb) -> dict[str, str]:
    return {"ROMAKIT_AK": sb.credentials.ak, "ROMAKIT_SK": sb.credentials.sk}


def online(sb, ids: list[int]) -> set[int]:
    with sb.link_client(progress=False) as c:
        f = c.devices(online_status="online")
    return set(f["id"].astype(int).tolist()) & set(ids)


def sent_offline(sb) -> int:
    """Force-offline requests the sandbox has received so far."""
    return sum(1 for _, method, path, _, _ in list(sb.link.requests) if path.endswith("/force-offline"))


def journal_file() -> Path:
    return Path(os.environ["ROMAKIT_HOME"], "journal.sqlite3")


def test_a_corrupt_journal_refuses_the_run_before_anything_is_sent(sb, claim, tmp_path):
    ids = claim.online(10)
    bad = tmp_path / "broken.sqlite3"
    bad.write_bytes(b"not a database" * 500)
    before = sent_offline(sb)
    p = romakit("--journal", str(bad), "offline", *link_args(sb), *map(str, ids), env=creds(sb))
    assert p.returncode == 3, p.stderr
    assert "Traceback" not in p.stderr and "not started, nothing sent" in p.stderr and str(bad) in p.stderr
    assert "--no-journal" in p.stderr
    assert online(sb, ids) == set(ids)
    assert sent_offline(sb) == before


def test_no_journal_runs_without_one_and_the_preview_says_so(sb, claim):
    ids = claim.online(6)
    dry = romakit("--no-journal", "offline", "--dry-run", "--instance-id", "x", *map(str, ids))
    assert dry.returncode == 0 and "not journaled" in dry.stdout
    dry = romakit("--no-journal", "offline", "--dry-run", "--json", "--instance-id", "x", *map(str, ids))
    assert json.loads(dry.stdout)["journal"] == "not journaled"
    journaled = romakit("offline", "--dry-run", "--instance-id", "x", *map(str, ids))
    assert "not journaled" not in journaled.stdout
    p = romakit("--no-journal", "offline", *link_args(sb), *map(str, ids), env=creds(sb))
    assert p.returncode == 0, p.stderr
    assert "not journaled" in p.stdout and "romakit journal" not in p.stdout and "romakit report" not in p.stdout
    assert online(sb, ids) == set() and not journal_file().exists()


def test_reading_a_corrupt_journal_is_an_error_naming_it_not_a_traceback(tmp_path):
    bad = tmp_path / "broken.sqlite3"
    bad.write_bytes(b"not a database" * 500)
    for args in (["journal"], ["journal", "abc123"], ["report", "abc123"]):
        p = romakit("--journal", str(bad), *args)
        assert p.returncode == 3 and "Traceback" not in p.stderr, p.stderr
        assert f"cannot open the journal at {bad}" in p.stderr
