"""The command's safety in a real terminal (a pseudo-terminal from ``pty``): deletions ask
above a count, ``resume`` keeps the operation's rollout. (Ctrl-C naming the resume is
tested in tests/test_cli_terminal.py.)"""

from __future__ import annotations

import json

import pytest
from support.cli import Terminal, romakit

import romakit as rk
from romakit.replay import recorded_rollout
from romakit.store.reader import pending_ids

pytestmark = pytest.mark.timeout(120)


SANDBOX = {"devices": 600, "seed": 43}  # the module's sandbox (conftest's sb fixture)


def test_delete_children_asks_above_a_count_unless_yes(sb):
    gid = max(sb.gateways(), key=lambda g: len(sb.children(g)))
    kids = sb.children(gid)[:15]
    host, port = sb.mqtt_address
    args = ["delete-children", "--host", host, "--port", str(port), "--gateway", gid, "--json", "--no-progress", *kids]
    secret = {"ROMAKIT_DEVICE_SECRET": sb.fleet.secret_of(gid)}

    # no terminal to ask on (a scheduler): refused, nothing sent
    p = romakit(*args, env=secret, start_new_session=True, stdin="")  # no terminal: a closed pipe
    assert p.returncode == 2 and "no terminal to ask on; nothing sent" in p.stderr and "--yes" in p.stderr
    assert set(kids) <= set(sb.children(gid))

    term = Terminal(args, secret)  # a person who types the wrong count
    term.expect("Type 15 to go ahead")
    term.type("14")
    assert term.wait() == 2 and "not confirmed; nothing sent" in term.text
    assert set(kids) <= set(sb.children(gid))

    term = Terminal(args, secret)  # and one who types it right
    term.expect("permanently delete 15 child devices")
    term.type("15")
    assert term.wait() == 0, term.text
    assert not set(kids) & set(sb.children(gid))

    more = sb.children(gid)[:12]
    p = romakit(*args[:-15], *more, "--yes", env=secret, start_new_session=True)
    assert p.returncode == 0, p.stderr


def test_resume_keeps_the_operations_rollout(sb):
    ids = [d["id"] for d in sb.fleet.all()][300:360]
    policy = rk.Rollout(abort_threshold=0.3, abort_min=77, max_per_minute=60_000)
    token = rk.CancelToken()
    with sb.link_client(chunk_size=10, concurrency=1, progress=False) as link:
        first = link.force_offline(ids, rollout=policy, cancel=token,
                                   progress=lambda d, t: token.cancel("paused") if d >= 20 else None)
    assert first.counts["skipped"] > 0
    rec, todo = pending_ids(first.op_id)
    assert recorded_rollout(rec) == policy  # kept in the journal (schema 2's rollout column)
    p = romakit("resume", first.op_id, "--dry-run", "--json")
    out = json.loads(p.stdout)
    assert "abort when 30% failed or unknown after 77 devices" in out["rollout"] and out["devices"] == len(todo)
    p = romakit("offline", "--dry-run", "--json", "--no-rollout", "1", "2")
    assert json.loads(p.stdout)["rollout"] is None and json.loads(p.stdout)["worst_case"] == 2
    p = romakit("delete-children", "--dry-run", "--json", "c-1")
    assert "canary of 50" in json.loads(p.stdout)["rollout"]  # a deletion's default, from the registry
