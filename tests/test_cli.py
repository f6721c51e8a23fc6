"""The ``romakit`` command in a subprocess against a sandbox served from this process:
ids from arguments, files and stdin, ``--json``, ``--dry-run``, exit statuses, the
journal and resume commands. Credentials travel in the environment only."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from support.cli import link_args, romakit

import romakit as rk
from romakit.engine import CancelToken

pytestmark = pytest.mark.timeout(120)



SANDBOX = {"devices": 800, "seed": 41}  # the module's sandbox (conftest's sb fixture)


@pytest.fixture(scope="module")
def online(sb):
    with sb.link_client() as link:
        f = link.devices(online_status="online")
    return f.loc[f.node_type != "child", "id"].astype(int).tolist()  # children may be deleted by another test


def creds(sb) -> dict[str, str]:
    return {"ROMAKIT_AK": sb.credentials.ak, "ROMAKIT_SK": sb.credentials.sk}


def test_offline_ids_from_stdin_json_and_exit_status(sb, online):
    ids = online[:40]
    sb.set_fault(fail_ids=[ids[3]])
    try:
        p = romakit("offline", *link_args(sb), "--chunk-size", "15", "--json", "-",
                    stdin="\n".join(map(str, ids[:20])) + "\n# a comment\n" + ",".join(map(str, ids[20:])), env=creds(sb))
    finally:
        sb.clear_faults()
    assert p.returncode == 1, p.stderr  # a device failed
    out = json.loads(p.stdout)
    assert out["counts"] == {"success": 39, "failed": 1, "unknown": 0, "skipped": 0}
    assert out["requested"] == 40 and out["stopped"] is None and out["operation"] == "force_offline"
    (bad,) = out["failures"]
    assert bad["device_id"] == str(ids[3]) and bad["outcome"] == "failed"
    assert sb.fleet.get(ids[0])["online_status"] == 2
    row = rk.journal().set_index("op_id").loc[out["op_id"]]
    assert row.client == sb.link_endpoint and row.requested == 40


def test_offline_all_ok_exits_zero_with_ids_as_arguments_and_file(sb, online, tmp_path):
    f = tmp_path / "ids.txt"
    f.write_text(" ".join(map(str, online[50:60])))
    p = romakit("offline", *link_args(sb), *map(str, online[60:65]), "--file", str(f), "--json", "--all-rows",
                env={"ROMAKIT_TOKEN": sb.credentials.token})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["counts"]["success"] == 15 and len(out["rows"]) == 15
    text = romakit("journal", out["op_id"])
    assert text.returncode == 0 and out["op_id"] in text.stdout and re.search(r"success\s+15\b", text.stdout)


def test_dry_run_sends_nothing(sb, online):
    before = len(sb.link.requests)
    p = romakit("offline", "--instance-id", "x", "--dry-run", "--json", "--chunk-size", "7", *map(str, online[:20]), "20")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert "missing endpoint" in out.pop("not_checked")  # no LINK settings: the ids cannot be checked, and it says so
    assert out == {  # force-offline gets the registry's abort criteria by default
        "dry_run": True, "operation": "force_offline", "target": "x", "devices": 21, "chunk_size": 7, "chunks": 3,
        "rollout": "abort when 10% failed or unknown after 200 devices; at most 21 devices hit before the first stop can act"
                   "; unpaced: all 21 reconnect at once, in bursts of up to 7 as each chunk is forced; "
                   "max_reconnects_per_second=100 paces the run at 6,000 devices/min to keep reconnects under 100/s",
        "worst_case": 21, "checked": None}
    kids = sb.children(sb.gateways()[0])[:5]
    p = romakit("delete-children", "--gateway", "gw-x", "--dry-run", *kids)
    assert p.returncode == 0 and "5 devices" in p.stdout and "1 chunk" in p.stdout
    assert len(sb.link.requests) == before and not Path(os.environ["ROMAKIT_HOME"], "journal.sqlite3").exists()


@pytest.mark.slow
def test_bad_input_exits_two_naming_the_value(sb):
    p = romakit("offline", *link_args(sb), "12", "abc", "--json", env=creds(sb))
    assert p.returncode == 2 and "'abc'" in p.stderr and not p.stdout
    p = romakit("offline", *link_args(sb), "12")  # no credentials in the environment
    assert p.returncode == 2 and "ROMAKIT_AK" in p.stderr
    p = romakit("offline", *link_args(sb), env=creds(sb), stdin="")
    assert p.returncode == 2 and "no device ids" in p.stderr
    p = romakit("delete-children", "--dry-run", "ok-1", "bad!id")  # whitespace separates ids
    assert p.returncode == 2 and "'bad!id'" in p.stderr
    p = romakit("resume", "nosuchop00")
    assert p.returncode == 2 and "no operation" in p.stderr
    p = romakit("offline", "--bogus-flag")
    assert p.returncode == 2


def test_secrets_are_not_accepted_as_flags(sb):
    p = romakit("offline", *link_args(sb), "--sk", sb.credentials.sk, "1")
    assert p.returncode == 2 and "unrecognized arguments" in p.stderr


@pytest.mark.slow
def test_delete_children_json_and_unreachable_broker(sb):
    gw_id = sb.gateways()[1]
    kids = sb.children(gw_id)[:6]
    host, port = sb.mqtt_address
    secret = {"ROMAKIT_DEVICE_SECRET": sb.fleet.secret_of(gw_id)}
    p = romakit("delete-children", "--host", host, "--port", str(port), "--gateway", gw_id, "--json", *kids,
                "not-a-child", env=secret)
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["counts"]["success"] == 6 and out["counts"]["failed"] == 1 and out["target"] == gw_id
    assert sb.children(gw_id)[:6] != kids
    p = romakit("delete-children", "--host", "127.0.0.1", "--port", "1", "--gateway", gw_id, "--timeout", "2",
                "x1", env=secret)
    assert p.returncode == 3, (p.returncode, p.stderr)


@pytest.mark.slow
def test_journal_and_resume_commands(sb, link):
    ids = link.devices(online_status="online")["id"].astype(int).tolist()[:60]  # still there, still online
    token = CancelToken()
    first = link.force_offline(ids, chunk_size=10, concurrency=1, cancel=token,  # the journal learns the endpoint
                               progress=lambda d, t: token.cancel("paused") if d >= 20 else None)
    assert first.counts["skipped"] == 40
    listing = romakit("journal", "--json")
    assert listing.returncode == 0
    ops = {o["op_id"]: o for o in json.loads(listing.stdout)}
    assert ops[first.op_id]["state"] == "stopped" and ops[first.op_id]["skipped"] == 40
    dry = romakit("resume", first.op_id, "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["devices"] == 40
    # endpoint, project and instance come from the journal; only the credentials from the environment
    p = romakit("resume", first.op_id, "--json", env=creds(sb))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["op_id"] == first.op_id and out["resumed"] == 40 and out["counts"]["success"] == 60
    again = romakit("resume", first.op_id[:8], "--json", env=creds(sb))
    assert again.returncode == 0 and json.loads(again.stdout)["resumed"] == 0
    text = romakit("journal")
    assert text.returncode == 0 and first.op_id in text.stdout and "resume" not in text.stdout.split("\n")[0]


# -- settings through romakit.config, limits through romakit.operations (in process) ----------
@pytest.fixture
def bare_env(monkeypatch):
    from romakit import config

    for name in [*config.ENV_VARS, *config.ENV_ALIASES]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_gateway_from_the_environment_and_its_deprecated_alias(bare_env, capsys):
    from romakit import cli

    bare_env.setenv("ROMAKIT_GATEWAY", "gw-old")
    assert cli.main(["delete-children", "--dry-run", "--json", "c-1", "c-2"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["target"] == "gw-old"
    bare_env.setenv("ROMAKIT_GATEWAY_ID", "gw-new")
    assert cli.main(["delete-children", "--dry-run", "--json", "c-1"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["target"] == "gw-new"
    assert cli.main(["delete-children", "--gateway", "gw-flag", "--dry-run", "--json", "c-1"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["target"] == "gw-flag"


def test_chunk_limits_and_defaults_come_from_the_operations_registry(bare_env, capsys):
    from romakit import cli
    from romakit.operations import OPERATIONS

    for sub, name in (("delete-children", "delete_sub_devices"), ("offline", "force_offline")):
        op = OPERATIONS[name]
        ids = [str(i) for i in range(1, 2 * op.default_chunk + 2)]
        assert cli.main([sub, "--dry-run", "--json", *ids]) == cli.EXIT_OK
        assert json.loads(capsys.readouterr().out)["chunk_size"] == op.default_chunk
        code = cli.main([sub, "--dry-run", "--chunk-size", str(op.max_chunk + 1), "1"])
        assert code == cli.EXIT_BAD_INPUT and f"1..{op.max_chunk}" in capsys.readouterr().err


def test_missing_settings_name_the_flag_and_the_variable(bare_env, capsys):
    from romakit import cli

    assert cli.main(["offline", "--endpoint", "https://roma.example.com", "1"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "missing project_id, instance_id" in err and "--project-id or ROMAKIT_PROJECT_ID" in err
    bare_env.setenv("ROMAKIT_DEVICE_SECRET", "s")
    assert cli.main(["delete-children", "--port", "8883", "c-1"]) == cli.EXIT_BAD_INPUT
    assert "--host or ROMAKIT_MQTT_HOST" in capsys.readouterr().err


def test_plain_http_refusal_names_the_flag(bare_env, capsys):
    from romakit import cli

    bare_env.setenv("ROMAKIT_TOKEN", "MIItoken")
    code = cli.main(["offline", "--endpoint", "http://192.0.2.1", "--project-id", "p" * 32, "--instance-id", "i" * 36, "5"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and "pass --allow-insecure" in err and "allow_insecure=True" not in err
