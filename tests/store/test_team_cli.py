"""The team journal where terminal users meet it: ``romakit --journal URL``, the
``romakit journal`` filters, and ``romakit migrate-journal`` (one command from a
laptop's SQLite file into the team's PostgreSQL)."""

from __future__ import annotations

import json
import os

import pytest
from support.cli import romakit

import romakit as rk


@pytest.fixture(scope="module")
def small():
    with rk.sandbox(devices=300, seed=21, mqtt=False, journal=True) as sb:  # the journal in effect, the backend's
        yield sb


@pytest.mark.slow
def test_filters_and_migration_from_the_command_line(backend, small, pg_schema):
    """Runs journaled in this backend, read with filters, then moved into a fresh
    PostgreSQL schema (from the SQLite file, or from one PostgreSQL schema to another)."""
    here = {"ROMAKIT_JOURNAL": os.environ["ROMAKIT_JOURNAL"]} if backend == "postgresql" else {}
    link = small.link_client()
    ids = link.devices()["id"].astype(int).tolist()
    first = link.force_offline(ids[:20], chunk_size=10)
    second = link.delete_devices(ids[20:25], chunk_size=5)
    link.close()

    mine = json.loads(romakit("journal", "--json", "--operation", "delete_devices", env=here).stdout)
    assert [o["op_id"] for o in mine] == [second.op_id]
    who = mine[0]["who"]
    assert who and "@" in who
    assert {o["op_id"] for o in json.loads(romakit("journal", "--json", "--who", who.split("@")[0], env=here).stdout)} == {
        first.op_id, second.op_id}
    assert json.loads(romakit("journal", "--json", "--who", "nobody-here", env=here).stdout) == []
    assert len(json.loads(romakit("journal", "--json", "--since", "1h", env=here).stdout)) == 2

    source = ["--from", here["ROMAKIT_JOURNAL"]] if here else []  # default: the local SQLite file
    moved = romakit("migrate-journal", "--to", pg_schema.url, *source, "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["operations"] == 2
    again = romakit("migrate-journal", "--to", pg_schema.url, *source, "--json")
    assert json.loads(again.stdout)["operations"] == 0  # nothing copied twice

    team = json.loads(romakit("--journal", pg_schema.url, "journal", "--json").stdout)
    assert {o["op_id"] for o in team} == {first.op_id, second.op_id}
    shown = romakit("--journal", pg_schema.url, "journal", first.op_id, "--json")
    assert json.loads(shown.stdout)["counts"]["success"] == 20
    assert small.credentials.sk not in moved.stdout + shown.stdout
