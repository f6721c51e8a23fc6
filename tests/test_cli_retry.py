"""``romakit retry OP`` and the gateway's secret and login, in a real terminal (a
pseudo-terminal from ``pty``) against the sandbox served from this process: a run with
transient failures names the retry, the retry goes through the same dry run and typed
count as the other acting commands, a deletion's retry reads first; a single-gateway
resume takes its secret from ``--secrets-file``; a refused login is said before anyone
is asked to confirm. Every wait is on output, never a sleep."""

from __future__ import annotations

import json

import pytest
from support.cli import Terminal, link_env, romakit

import romakit as rk

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SANDBOX = {"devices": 700, "seed": 29}  # the module's sandbox (conftest's sb fixture)


def secrets_file(tmp_path, sb, gateways: list[str]) -> str:
    path = tmp_path / "gws.txt"
    path.write_text("".join(f"{g} {sb.fleet.secret_of(g)}\n" for g in gateways))
    path.chmod(0o600)
    return str(path)


def busy(sb, n: int, skip: int = 0, least: int = 16) -> list[str]:
    """``n`` gateways with at least ``least`` children, after the first ``skip`` of them."""
    return [g for g in sb.gateways() if len(sb.children(g)) >= least][skip:skip + n]


def mqtt_flags(sb) -> list[str]:
    host, port = sb.mqtt_address
    return ["--host", host, "--port", str(port)]


def test_a_run_with_transient_failures_names_the_retry_which_sends_them_again(sb):
    env = link_env(sb)
    ids = [str(d["id"]) for d in sb.fleet.all()][:30]
    sb.set_fault(error_rate=1.0)  # every request answered 500: transient
    try:
        first = romakit("offline", *ids, "--no-rollout", "--no-progress", env=env)
    finally:
        sb.clear_faults()
    assert first.returncode == 1, first.stderr
    op = json.loads(romakit("journal", "--json", env=env).stdout)[-1]["op_id"]
    assert f"romakit retry {op}" in first.stdout  # the hint names the command that finishes the job
    dry = romakit("retry", op, "--dry-run", "--json", env=env)
    assert dry.returncode == 0 and json.loads(dry.stdout)["devices"] == 30
    term = Terminal(["retry", op, "--no-rollout"], env)
    term.expect(rb"success\s+30\b")
    assert term.wait() == 0, term.text
    listing = json.loads(romakit("journal", "--json", env=env).stdout)
    again = listing[-1]
    assert again["parent_op_id"] == op and again["operation"] == "force_offline" and again["success"] == 30
    nothing = romakit("retry", again["op_id"], env=env)
    assert nothing.returncode == 0 and "nothing to retry" in nothing.stdout


def test_a_deletions_retry_asks_the_count_and_reads_first(sb):
    gid = busy(sb, 1)[0]
    kids = sb.children(gid)[:15]
    env = {"ROMAKIT_GATEWAY_ID": gid, "ROMAKIT_DEVICE_SECRET": sb.fleet.secret_of(gid)}
    args = ["delete-children", *mqtt_flags(sb), "--no-progress", "--yes", "--no-rollout", "--timeout", "1",
            "--no-snapshot", *kids]  # (the snapshot's sync would be dropped too: nothing deleted)
    sb.set_fault(mqtt_drop_rate=1.0)  # the platform deletes, its answers are lost: unknown, transient
    try:
        first = romakit(*args, env=env)
    finally:
        sb.clear_faults()
    assert first.returncode == 1, first.stderr
    op = next(w for w in first.stdout.split() if len(w) >= 8 and f"romakit retry {w}" in first.stdout)
    assert not set(kids) & set(sb.children(gid))  # already gone: a blind re-send would report them failed
    handled = len(sb.platform.handled)
    term = Terminal(["retry", op, *mqtt_flags(sb), "--no-rollout", "--json"], env)
    term.expect("permanently delete 15 child devices")
    term.expect("Type 15 to go ahead")
    term.type("15")
    out = json.loads(term.expect(rb'\{"op_id".*\}').group(0))
    assert term.wait() == 0, term.text
    assert out["parent_op_id"] == op and out["counts"]["success"] == 15 and out["retried"] == 15
    sent = [h for h in sb.platform.handled[handled:] if h[2] == "delete_sub_device_request"]
    assert not sent  # every child read as gone before sending: nothing sent again
    rows = rk.journal(out["op_id"]).frame
    assert set(rows["settled_by"]) == {"read"}


def test_a_single_gateway_resume_takes_its_secret_from_the_file(sb, tmp_path):
    gid, other = busy(sb, 2, skip=1)
    kids = sb.children(gid)[:16]
    token = rk.CancelToken()
    with sb.gateway(gid, max_in_flight=1) as gw:
        first = gw.delete_sub_devices(kids, chunk_size=4, concurrency=1, rollout=False, cancel=token,
                                      progress=lambda done, total: token.cancel("paused") if done >= 4 else None)
    skipped = first.ids("skipped")
    assert len(skipped) >= 11
    # the environment names another gateway (as after `romakit sim --env`): the file gives this one's secret
    env = {"ROMAKIT_GATEWAY_ID": other, "ROMAKIT_DEVICE_SECRET": sb.fleet.secret_of(other)}
    secrets = secrets_file(tmp_path, sb, [other, gid])
    refused = romakit("resume", first.op_id, *mqtt_flags(sb), "--yes", env=env)
    assert refused.returncode == 2 and "--secrets-file" in refused.stderr and other in refused.stderr
    term = Terminal(["resume", first.op_id, *mqtt_flags(sb), "--secrets-file", secrets, "--no-progress"], env)
    term.expect(f"Type {len(skipped)} to go ahead")
    term.type(str(len(skipped)))
    term.expect(rb"success\s+16\b")
    assert term.wait() == 0, term.text
    assert not set(kids) & set(sb.children(gid))
    assert set(sb.children(other))  # the environment's gateway was not acted on


def test_a_refused_login_is_said_before_the_confirmation(sb, tmp_path):
    gid = busy(sb, 1, least=12)[-1]
    kids = sb.children(gid)[:12]
    wrong = {"ROMAKIT_GATEWAY_ID": gid, "ROMAKIT_DEVICE_SECRET": "not-the-secret"}
    term = Terminal(["delete-children", *mqtt_flags(sb), "--no-progress", *kids], wrong)
    assert term.wait() == 3, term.text
    assert f"gateway {gid}: broker refused the connection: 4" in term.text and "nothing sent" in term.text
    assert "Type 12" not in term.text
    assert set(kids) <= set(sb.children(gid))
    other = next(g for g in sb.gateways() if g != gid and len(sb.children(g)) >= 2)
    across = tmp_path / "across.txt"  # across gateways: every gateway's login is checked before asking
    across.write_text(f"{gid} not-the-secret\n{other} {sb.fleet.secret_of(other)}\n")
    across.chmod(0o600)
    term = Terminal(["delete-children", "--across-gateways", *mqtt_flags(sb), "--secrets-file", str(across),
                     "--no-progress", *kids, *sb.children(other)[:2]], link_env(sb))
    assert term.wait() == 3, term.text
    assert f"gateway {gid}: broker refused the connection" in term.text and "nothing sent" in term.text
    assert "Type 14" not in term.text and set(kids) <= set(sb.children(gid))
    # --secrets-file with --gateway: the file's line of that gateway is its secret
    good = secrets_file(tmp_path, sb, [gid])
    term = Terminal(["delete-children", *mqtt_flags(sb), "--gateway", gid, "--secrets-file", good, "--no-progress",
                     *kids], {"ROMAKIT_DEVICE_SECRET": "not-the-secret"})
    term.expect("Type 12 to go ahead")
    term.type("12")
    assert term.wait() == 0, term.text
    assert not set(kids) & set(sb.children(gid))
