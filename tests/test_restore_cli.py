"""``romakit restore OP`` against the sandbox served from this process: the dry run says
what comes back (and, for LINK, that each field device needs its secret reset), the run
re-creates the deletion's devices, a second run creates nothing, ``--where`` restores a
part, children of several gateways come back through each with ``--secrets-file``."""

from __future__ import annotations

import json

import pytest
from support.cli import link_env, romakit

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SANDBOX = {"devices": 700, "seed": 29}


def mqtt_flags(sb) -> list[str]:
    host, port = sb.mqtt_address
    return ["--host", host, "--port", str(port)]


def busy(sb, n: int, skip: int = 0) -> list[str]:
    return [g for g in sb.gateways() if len(sb.children(g)) >= 12][skip:skip + n]


def test_one_gateways_children_deleted_and_restored_by_the_command(sb):
    gid = busy(sb, 1)[0]
    kids = sb.children(gid)[:12]
    env = {"ROMAKIT_GATEWAY_ID": gid, "ROMAKIT_DEVICE_SECRET": sb.fleet.secret_of(gid)}
    gone = romakit("delete-children", *mqtt_flags(sb), "--yes", "--no-progress", "--json", *kids, env=env)
    assert gone.returncode == 0, gone.stderr
    op = json.loads(gone.stdout)["op_id"]
    assert not set(kids) & set(sb.children(gid))
    dry = romakit("restore", op, "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["operation"] == "restore_sub_devices" and plan["devices"] == 12 and plan["restores"] == op
    assert "own device id" in plan["comes_back"] and plan["target"] == gid
    text = romakit("restore", op, "--dry-run", env=env).stdout
    assert "dry run: restore_sub_devices of 12 devices deleted by delete_sub_devices" in text and "nothing sent" in text
    done = romakit("restore", op, *mqtt_flags(sb), "--no-progress", "--json", env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["counts"]["success"] == 12 and out["parent_op_id"] == op and set(kids) <= set(sb.children(gid))
    handled = len(sb.platform.handled)
    again = romakit("restore", op, *mqtt_flags(sb), "--no-progress", "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["counts"]["success"] == 12
    assert not [h for h in sb.platform.handled[handled:] if h[2] == "add_sub_device_request"]  # nothing created
    retried = romakit("retry", out["op_id"], env=env)  # a restore's retry is restoring again: the command says so
    assert retried.returncode == 2 and f"romakit restore {op} reads which devices are back" in retried.stderr


def test_children_of_two_gateways_come_back_through_each_and_where_picks_a_part(sb, tmp_path):
    gws = busy(sb, 2, skip=2)
    kids = [c for g in gws for c in sb.children(g)[:5]]
    secrets = tmp_path / "gws.txt"
    secrets.write_text("".join(f"{g} {sb.fleet.secret_of(g)}\n" for g in gws))
    secrets.chmod(0o600)
    env = link_env(sb)
    gone = romakit("delete-children", "--across-gateways", *mqtt_flags(sb), "--secrets-file", str(secrets), "--yes",
                   "--no-progress", "--json", *kids, env=env)
    assert gone.returncode == 0, gone.stderr
    op = json.loads(gone.stdout)["op_id"]
    part = romakit("restore", op, "--where", f"gateway_id={gws[0]}", *mqtt_flags(sb), "--secrets-file", str(secrets),
                   "--no-progress", "--json", env=env)
    assert part.returncode == 0, part.stderr
    assert json.loads(part.stdout)["counts"]["success"] == 5
    assert set(kids[:5]) <= set(sb.children(gws[0])) and not set(kids[5:]) & set(sb.children(gws[1]))
    dry = json.loads(romakit("restore", op, "--dry-run", "--json", env=env).stdout)
    assert dry["devices"] == 10 and dry["gateways"] == {gws[0]: 5, gws[1]: 5}
    rest = romakit("restore", op, *mqtt_flags(sb), "--secrets-file", str(secrets), "--no-progress", "--json", env=env)
    out = json.loads(rest.stdout)
    assert rest.returncode == 0 and out["counts"]["success"] == 10 and set(kids[5:]) <= set(sb.children(gws[1]))
    no_secret = romakit("restore", op, *mqtt_flags(sb), "--no-progress", env=env)
    assert no_secret.returncode == 2 and "no secret for 2" in no_secret.stderr


def test_a_link_deletion_restored_by_the_command_says_the_secrets_are_new(sb):
    with sb.link_client(progress=False) as link:
        fleet = link.devices()
        ids = fleet[fleet["node_type"].astype(str) == "direct"]["id"].astype(int).tolist()[-3:]
        op = link.delete_devices(ids, rollout=False).op_id
    env = link_env(sb)
    dry = romakit("restore", op, "--dry-run", env=env)
    assert dry.returncode == 0 and "new id, client id and secret" in dry.stdout and "secret reset" in dry.stdout
    done = romakit("restore", op, "--no-progress", env=env)
    assert done.returncode == 0, done.stderr
    assert "reset each field device's secret" in done.stdout
    nodes = set(fleet.set_index("id").loc[ids, "node_id"])
    assert nodes <= {d["node_id"] for d in sb.fleet.all()}
    bad = romakit("restore", op, "--where", "colour=red", "--dry-run", env=env)
    assert bad.returncode == 2 and "unknown option or record field" in bad.stderr
