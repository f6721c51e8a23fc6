"""``romakit delete-children --across-gateways``: the children of many gateways in one run,
as a support engineer meets it in a terminal (a pseudo-terminal from ``pty``) against the
sandbox served from this process over real sockets. Every wait is on output or on the
sandbox's own log, never a sleep."""

from __future__ import annotations

import json
import os

import pytest
from support.cli import Terminal, link_env, romakit

import romakit as rk

pytestmark = pytest.mark.timeout(180)


SANDBOX = {"devices": 900, "seed": 71}  # the module's sandbox (conftest's sb fixture)


def busy(sb, n: int, skip: int = 0) -> list[str]:
    """``n`` gateways with at least 6 children, after the first ``skip`` of them."""
    return [g for g in sb.gateways() if len(sb.children(g)) >= 6][skip:skip + n]


def secrets_file(tmp_path, sb, gateways: list[str]) -> str:
    path = tmp_path / "gateways.txt"
    path.write_text("# gateway secret\n" + "".join(f"{g} {sb.fleet.secret_of(g)}\n" for g in gateways))
    path.chmod(0o600)
    return str(path)


def args_for(sb, *extra: str) -> list[str]:
    host, port = sb.mqtt_address
    return ["delete-children", "--across-gateways", "--host", host, "--port", str(port), "--no-progress", *extra]


def deletes(sb, since: int) -> list[tuple]:
    return [h for h in sb.platform.handled[since:] if h[2] == "delete_sub_device_request"]


def test_dry_run_counts_per_gateway_and_names_what_is_missing(sb, tmp_path):
    gws = busy(sb, 3)
    kids = {g: sb.children(g)[:4] for g in gws}
    ids = [c for g in gws for c in kids[g]]
    secrets = secrets_file(tmp_path, sb, gws[:2])  # the third gateway's secret is not there
    before = len(sb.platform.handled)
    p = romakit(*args_for(sb, "--dry-run", "--json", "--secrets-file", secrets, *ids, "dev-nope-1", gws[0]),
                env=link_env(sb))
    assert p.returncode == 1, p.stderr  # something would be refused: not a clean plan
    info = json.loads(p.stdout)
    assert info["dry_run"] and info["target"] == "3 gateways" and info["devices"] == len(ids)
    assert info["gateways"] == {g: 4 for g in gws}
    assert info["not_found"] == ["dev-nope-1"] and info["not_children"] == [gws[0]]
    assert info["no_secret"] == [gws[2]] and info["requests"] == 3
    assert "canary of 50" in info["rollout"]  # a deletion's default policy
    text = romakit(*args_for(sb, "--dry-run", "--secrets-file", secrets, *ids), env=link_env(sb))
    assert text.returncode == 1
    assert "across 3 gateways" in text.stdout and "nothing sent" in text.stdout
    for g in gws:
        assert any(line.split()[:2] == [g, "4"] for line in text.stdout.splitlines()), text.stdout
    assert f"have no secret (--secrets-file): {gws[2]}" in text.stdout
    assert len(sb.platform.handled) == before and all(set(kids[g]) <= set(sb.children(g)) for g in gws)


@pytest.mark.slow
def test_bad_input_is_refused_before_anything_is_sent(sb, tmp_path):
    gws = busy(sb, 2)
    ids = [c for g in gws for c in sb.children(g)[:3]]
    secrets = secrets_file(tmp_path, sb, gws)
    env = link_env(sb)
    before = len(sb.platform.handled)
    cases = {
        "no secret for 1 gateway": args_for(sb, "--yes", "--secrets-file", secrets_file(tmp_path, sb, gws[:1]), *ids),
        "not in the device listing": args_for(sb, "--yes", "--secrets-file", secrets, *ids, "dev-nope-2"),
        "not children of any gateway": args_for(sb, "--yes", "--secrets-file", secrets, *ids, gws[1]),
        "names one gateway": args_for(sb, "--yes", "--gateway", gws[0], "--secrets-file", secrets, *ids),
        "chunk_size must be 1..50": args_for(sb, "--yes", "--chunk-size", "51", "--secrets-file", secrets, *ids),
        "cannot be combined": args_for(sb, "--yes", "--no-rollout", "--canary", "5", "--secrets-file", secrets, *ids),
        "expected 'GATEWAY SECRET'": args_for(sb, "--yes", "--secrets-file", __file__, *ids),
    }
    for why, args in cases.items():
        p = romakit(*args, env=env)
        assert p.returncode == 2 and why in p.stderr, (why, p.stderr)
    host, port = sb.mqtt_address  # one gateway's secret is read from the file too: refused when it is not there
    p = romakit("delete-children", "--host", host, "--port", str(port), "--gateway", gws[0], "--secrets-file",
                secrets_file(tmp_path, sb, gws[1:]), *ids, env=env)
    assert p.returncode == 2 and f"has no secret for gateway {gws[0]}; nothing sent" in p.stderr
    assert len(sb.platform.handled) == before  # nothing reached the platform
    assert all(set(sb.children(g)[:3]) <= set(sb.children(g)) for g in gws)
    assert set(ids) <= {c for g in gws for c in sb.children(g)}


@pytest.mark.slow
def test_confirmed_in_a_terminal_then_every_child_once_through_its_own_gateway(sb, tmp_path):
    gws = busy(sb, 3, skip=3)
    kids = {g: sb.children(g)[:5] for g in gws}
    ids = [c for g in gws for c in kids[g]]
    secrets = secrets_file(tmp_path, sb, gws)
    args = args_for(sb, "--secrets-file", secrets, "--json", "--all-rows", *ids)
    env = link_env(sb)
    before = len(sb.platform.handled)

    p = romakit(*args, env=env, start_new_session=True, stdin="")  # a scheduler: no terminal to ask on
    assert p.returncode == 2 and "no terminal to ask on; nothing sent" in p.stderr

    term = Terminal(args, env)  # a person who types the wrong count
    term.expect(f"permanently delete 15 child devices across 3 gateways ({gws[0]}: 5")
    term.expect("Type 15 to go ahead")
    term.type("5")
    assert term.wait() == 2 and "not confirmed; nothing sent" in term.text
    assert len(sb.platform.handled) == before and all(set(kids[g]) <= set(sb.children(g)) for g in gws)

    term = Terminal(args, env)  # and one who types it right
    term.expect("Type 15 to go ahead")
    term.type("15")
    assert term.wait() == 0, term.text
    out = json.loads(term.text[term.text.index("{"):])
    assert out["target"] == "3 gateways" and out["counts"]["success"] == 15 and out["exit_status"] == 0
    assert out["gateways"] == {g: 5 for g in gws}
    assert all(not set(kids[g]) & set(sb.children(g)) for g in gws)
    log = deletes(sb, before)
    assert sum(h[4] for h in log) == 15 and {h[1] for h in log} == set(gws)  # each id once, as its gateway
    assert {r["device_id"]: r["target"] for r in out["rows"]} == {c: g for g in gws for c in kids[g]}
    assert out["op_id"] in set(rk.journal()["op_id"])  # one operation in the journal


def test_secrets_from_romakit_sim_json_and_a_text_summary(sb, tmp_path):
    gws = busy(sb, 2, skip=6)
    ids = [c for g in gws for c in sb.children(g)[:2]]
    path = tmp_path / "sim.json"  # `romakit sim --gateways N > sim.json` works as a secrets file
    path.write_text(json.dumps({"mqtt": {"gateways": [{"device_id": g, "secret": sb.fleet.secret_of(g)} for g in gws]}}))
    os.chmod(path, 0o644)
    p = romakit(*args_for(sb, "--secrets-file", str(path), *ids), env=link_env(sb))
    assert p.returncode == 0, p.stderr
    assert "readable by other users" in p.stderr and sb.fleet.secret_of(gws[0]) not in p.stdout + p.stderr
    assert "delete_sub_devices on 2 gateways" in p.stdout and "success" in p.stdout
    assert not set(ids) & {c for g in gws for c in sb.children(g)}


@pytest.mark.slow
def test_resume_of_a_stopped_fan_out_sends_only_what_never_got_an_answer(sb, tmp_path):
    gws = busy(sb, 3, skip=8)
    ids = [c for g in gws for c in sb.children(g)[:4]]
    with sb.link_client(progress=False) as link:
        fleet = link.devices()
    token = rk.CancelToken()
    first = rk.delete_children(ids, parents=fleet, gateways={g: sb.gateway(g, max_in_flight=1) for g in gws},
                               chunk_size=2, concurrency=1, rollout=False, cancel=token,
                               progress=lambda done, total: token.cancel("paused") if done >= 2 else None)
    skipped = first.ids("skipped")
    assert first.counts["success"] >= 2 and skipped
    host, port = sb.mqtt_address
    env = link_env(sb)
    base = ["resume", first.op_id, "--host", host, "--port", str(port), "--no-progress", "--json"]
    p = romakit(*base, "--yes", "--secrets-file", secrets_file(tmp_path, sb, gws[:2]), env=env)
    assert p.returncode == 2 and "no secret for 1" in p.stderr  # refused before connecting
    before = len(sb.platform.handled)
    p = romakit(*base, "--yes", "--secrets-file", secrets_file(tmp_path, sb, gws), env=env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["resumed"] == len(skipped) and out["counts"]["success"] == len(ids)
    assert sum(h[4] for h in deletes(sb, before)) == len(skipped)  # only the skipped ones were sent
    assert not set(ids) & {c for g in gws for c in sb.children(g)}


def test_the_resume_hint_of_a_fan_out_carries_the_secrets_file():
    # the journal never holds the gateways' secrets: the hint must say how to pass them again
    import argparse

    from romakit.cli.output import resume_command

    fan = argparse.Namespace(across_gateways=True, secrets_file="my gws.txt")
    assert resume_command("0123456789ab", fan) == "romakit resume 0123456789ab --secrets-file 'my gws.txt'"
    again = argparse.Namespace(secrets_file="gws.txt")  # ``romakit resume``: no --across-gateways flag
    assert resume_command("0123456789ab", again) == "romakit resume 0123456789ab --secrets-file gws.txt"
    one = argparse.Namespace(across_gateways=False, secrets_file=None)
    assert resume_command("0123456789ab", one) == "romakit resume 0123456789ab"


def test_retry_of_a_fan_out_reads_first_then_confirms_with_every_gateway_logged_in(sb, tmp_path):
    gws = busy(sb, 2, skip=11)
    ids = [c for g in gws for c in sb.children(g)[:3]]
    secrets = secrets_file(tmp_path, sb, gws)
    host, port = sb.mqtt_address
    env = link_env(sb)
    sb.set_fault(mqtt_drop_rate=1.0)  # the children are deleted, the answers lost: unknown, transient
    try:
        first = romakit(*args_for(sb, "--secrets-file", secrets, "--yes", "--no-rollout", "--timeout", "1",
                                  "--no-snapshot", *ids), env=env)  # (the snapshot's sync would be dropped too)
    finally:
        sb.clear_faults()
    assert first.returncode == 1, first.stderr
    op = next(w for w in first.stdout.split() if len(w) >= 8 and f"romakit retry {w} --secrets-file" in first.stdout)
    before = len(sb.platform.handled)
    base = ["retry", op, "--host", host, "--port", str(port), "--no-progress", "--json", "--confirm-above", "3"]
    p = romakit(*base, "--yes", env=env)
    assert p.returncode == 2 and "no secret for 2" in p.stderr  # the journal never holds the secrets
    term = Terminal([*base, "--secrets-file", secrets], env)
    term.expect(f"Type {len(ids)} to go ahead")
    term.type(str(len(ids)))
    assert term.wait() == 0, term.text
    out = json.loads(term.text[term.text.index("{"):])
    assert out["parent_op_id"] == op and out["counts"]["success"] == len(ids) and out["retried"] == len(ids)
    assert not deletes(sb, before)  # every child read as gone: nothing sent again
