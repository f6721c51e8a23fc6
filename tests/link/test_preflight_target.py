"""The pre-flight read proves the target exists as well as the credentials: an instance
or project id that is not there (the service answers HTTP 500 ``ROMA.00110002``) stops
a batch before anything of it is sent or journaled, in Python and in the command (exit
3), instead of being retried as a service in trouble (sandbox over loopback)."""

from __future__ import annotations

import time

import pytest
from support.cli import link_env

import romakit as rk
from romakit import cli

SANDBOX = {"devices": 300, "seed": 41, "mqtt": False}


def _sent(sb) -> list:
    return [r for r in sb.link.requests if r[1] != "GET"]


# a project id one character off is another project to API Gateway (403 APIG.0302, refused
# credentials); an instance id one character off is an instance that does not exist
@pytest.mark.parametrize(("wrong", "error", "says"), [
    ("instance_id", rk.TargetNotFound, "ROMA.00110002.*check the instance id and project id"),
    ("project_id", rk.AuthRefused, "APIG.0302"),
])
def test_a_mistyped_target_stops_the_batch_before_anything_is_sent(sb, wrong, error, says):
    sb.link.clear_log()
    c = sb.credentials
    where = {"project_id": c.project_id, "instance_id": c.instance_id}
    where[wrong] = where[wrong][:-1] + ("0" if where[wrong][-1] != "0" else "1")  # one character off
    ids = [d["id"] for d in sb.fleet.snapshot()[:200]]
    with rk.LinkClient(sb.link_endpoint, auth=rk.AkSk(c.ak, c.sk), progress=False, **where) as link:
        t0 = time.monotonic()
        with pytest.raises(error, match=says):
            link.force_offline(ids)
        assert time.monotonic() - t0 < 5  # one read, not a minute of retries
    assert not _sent(sb) and len(sb.link.requests) == 1
    assert len(rk.journal()) == 0  # nothing journaled either


def test_the_command_exits_3_on_a_mistyped_instance_and_sends_nothing(sb, monkeypatch, capsys):
    sb.link.clear_log()
    for k, v in link_env(sb).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ROMAKIT_INSTANCE_ID", sb.credentials.instance_id[:-2] + "02")
    ids = [str(d["id"]) for d in sb.fleet.snapshot()[:50]]
    code = cli.main(["offline", "--no-progress", *ids])
    err = capsys.readouterr().err
    assert code == cli.EXIT_UNREACHABLE == 3
    assert "nothing was done" in err and "does not exist" in err and "Traceback" not in err
    assert not _sent(sb)
