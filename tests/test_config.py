"""rk.connect(): the sandbox by default, profiles from the environment or a TOML file,
and secrets never shown."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest

import romakit as rk
from romakit import config

AK = "AKIDEXAMPLE0123456789"
SK = "sk-very-secret-value-0123456789abcdef"
TOKEN = "MIItoken-secret-value-abcdef0123456789"
DEV_SECRET = "device-secret-42"
PROJECT = "0123456789abcdef0123456789abcdef"
INSTANCE = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in [*config.ENV_VARS, *config.ENV_ALIASES, "ROMAKIT_PROFILE"]:
        monkeypatch.delenv(name, raising=False)


def _no_secret(text: str) -> None:
    for secret in (SK, TOKEN, DEV_SECRET, AK):
        assert secret not in text


def test_env_profile_aksk(monkeypatch):
    monkeypatch.setenv("ROMAKIT_ENDPOINT", "https://roma.cn-north-4.example.com")
    monkeypatch.setenv("ROMAKIT_PROJECT_ID", PROJECT)
    monkeypatch.setenv("ROMAKIT_INSTANCE_ID", INSTANCE)
    monkeypatch.setenv("ROMAKIT_AK", AK)
    monkeypatch.setenv("ROMAKIT_SK", SK)
    conn = rk.connect()
    assert conn.kind == "env" and conn.sandbox is None
    text = repr(conn)
    assert "roma.cn-north-4.example.com" in text and PROJECT in text and INSTANCE in text
    assert "AK AKID… / SK ***" in text
    _no_secret(text)
    link = conn.link
    assert isinstance(link, rk.LinkClient) and link is conn.link
    assert (link.endpoint, link.project_id, link.instance_id) == ("https://roma.cn-north-4.example.com", PROJECT, INSTANCE)
    _no_secret(repr(link))
    with pytest.raises(rk.InputError, match="no MQTT settings"):
        conn.gateway()
    conn.close()


def test_env_profile_token_and_gateway(monkeypatch, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until connect")
    for k, v in {
        "ROMAKIT_ENDPOINT": "https://roma.example.com", "ROMAKIT_PROJECT_ID": PROJECT,
        "ROMAKIT_INSTANCE_ID": INSTANCE, "ROMAKIT_TOKEN": TOKEN, "ROMAKIT_MQTT_HOST": "iot-mqtts.example.com",
        "ROMAKIT_MQTT_PORT": "8883", "ROMAKIT_GATEWAY_ID": "gw-0001", "ROMAKIT_DEVICE_SECRET": DEV_SECRET,
        "ROMAKIT_CA_FILE": str(ca),
    }.items():
        monkeypatch.setenv(k, v)
    conn = rk.connect()
    text = repr(conn)
    assert "token ***" in text and "iot-mqtts.example.com:8883" in text and "device_secret='***'" in text
    _no_secret(text)
    gw = conn.gateway()
    assert (gw.host, gw.port, gw.device_id, gw.tls, gw.ca_file) == ("iot-mqtts.example.com", 8883, "gw-0001", True, str(ca))
    _no_secret(repr(gw))
    with pytest.raises(rk.InputError, match="holds the secret of gateway 'gw-0001' only"):
        conn.gateway("gw-0002")
    conn.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROMAKIT_ENDPOINT": "https://roma.example.com", "ROMAKIT_AK": AK, "ROMAKIT_SK": SK}, "missing project_id, instance_id"),
        ({"ROMAKIT_ENDPOINT": "https://x.example.com", "ROMAKIT_PROJECT_ID": PROJECT, "ROMAKIT_INSTANCE_ID": INSTANCE,
          "ROMAKIT_AK": AK}, r"ak \(from ROMAKIT_AK\) given without sk \(set ROMAKIT_SK or HUAWEICLOUD_SDK_SK\)"),
        ({"ROMAKIT_ENDPOINT": "https://x.example.com", "ROMAKIT_PROJECT_ID": PROJECT, "ROMAKIT_INSTANCE_ID": INSTANCE,
          "ROMAKIT_AK": AK, "ROMAKIT_SK": SK, "ROMAKIT_TOKEN": TOKEN}, "one kind of credentials, not ak . sk and token"),
        ({"ROMAKIT_MQTT_HOST": "h.example.com", "ROMAKIT_DEVICE_SECRET": DEV_SECRET}, "missing gateway_id"),
        ({"ROMAKIT_MQTT_HOST": "h.example.com", "ROMAKIT_GATEWAY_ID": "g", "ROMAKIT_DEVICE_SECRET": DEV_SECRET,
          "ROMAKIT_MQTT_PORT": "eighty"}, "mqtt_port must be an integer"),
    ],
)
def test_env_profile_refused(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(rk.InputError, match=message) as info:
        rk.connect()
    _no_secret(str(info.value))


PROFILES = f"""
[prod]
endpoint = "https://roma.cn-north-4.example.com"
project_id = "{PROJECT}"
instance_id = "{INSTANCE}"
ak = "{AK}"
sk = "{SK}"

[lab-gateway]
mqtt_host = "iot-mqtts.example.com"
mqtt_port = 8883
gateway_id = "gw-lab"
device_secret = "{DEV_SECRET}"

[broken]
endpoint = "https://roma.example.com"
project_id = "{PROJECT}"
instance_id = "{INSTANCE}"
ak = "{AK}"
sk = 12345
"""


def test_file_profiles(tmp_path, monkeypatch):
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILES)
    path.chmod(0o600)
    monkeypatch.setenv("ROMAKIT_CONFIG", str(path))
    assert config.config_path() == path

    conn = rk.connect("prod")
    assert conn.kind == "profile" and conn.profile.name == "prod"
    assert conn.link.instance_id == INSTANCE
    _no_secret(repr(conn))
    conn.close()

    gw = rk.connect("lab-gateway").gateway()
    assert (gw.device_id, gw.port, gw.tls) == ("gw-lab", 8883, True)

    monkeypatch.setenv("ROMAKIT_PROFILE", "lab-gateway")
    conn = rk.connect()
    assert conn.kind == "profile" and conn.profile.gateway_id == "gw-lab"
    _no_secret(repr(conn))

    with pytest.raises(rk.InputError, match=r"profile 'nope' not found .*broken, lab-gateway, prod"):
        rk.connect("nope")
    with pytest.raises(rk.InputError, match=r"sk must be a string, got int \(hidden\)") as info:
        rk.connect("broken")
    assert "12345" not in str(info.value)


def test_file_profile_problems(tmp_path, monkeypatch, caplog):
    path = tmp_path / "p.toml"
    monkeypatch.setenv("ROMAKIT_CONFIG", str(path))
    with pytest.raises(rk.InputError, match="no profiles file at"):
        rk.connect("prod")
    path.write_text("[prod]\nendpoint = 'https://x.example.com'\nregon = 'cn-north-4'\n")
    with pytest.raises(rk.InputError, match="unknown setting.*regon"):
        rk.connect("prod")
    path.write_text("[prod\n")
    with pytest.raises(rk.InputError, match="not valid TOML"):
        rk.connect("prod")
    path.write_text(PROFILES)
    if os.name == "posix":
        path.chmod(0o644)
        with caplog.at_level(logging.WARNING, logger="romakit.config"):
            rk.connect("prod")
        assert "readable by other users" in caplog.text
        _no_secret(caplog.text)


def test_default_config_path_is_the_user_config_dir(monkeypatch):
    import platformdirs

    monkeypatch.delenv("ROMAKIT_CONFIG", raising=False)
    assert config.config_path() == Path(platformdirs.user_config_dir("romakit")) / "profiles.toml"


def test_sandbox_by_default_and_reused():
    conn = rk.connect(devices=120, seed=4)
    try:
        assert conn.kind == "sandbox" and conn.sandbox is not None
        again = rk.connect()
        assert again.sandbox is conn.sandbox
        assert rk.connect("sandbox").sandbox is conn.sandbox
        fleet = conn.link.devices()
        assert len(fleet) == 120
        gw = conn.gateway()
        assert gw.device_id == conn.sandbox.gateways()[0]
        text = repr(conn)
        assert text.startswith("Connection(kind='sandbox', <Sandbox running: 120 devices")
        creds = conn.sandbox.credentials
        assert creds.sk not in text and creds.token not in text
        conn.close()
    finally:
        conn.sandbox.close()
    fresh = rk.connect(devices=50, seed=5)  # a closed sandbox is replaced
    try:
        assert fresh.sandbox is not conn.sandbox and len(fresh.sandbox.fleet) == 50
    finally:
        fresh.sandbox.close()


# -- one table of settings: the environment variables, the profile fields, the CLI flags ------
def test_one_settings_table_drives_profiles_the_environment_and_the_cli(capsys):
    from romakit import cli
    from romakit.cli.parser import build_parser, connection_flags

    # a profile's journal key is where its clients journal, not a connection setting
    # (ROMAKIT_JOURNAL and --journal are the journal's own)
    fields = {f.name for f in dataclasses.fields(config.Profile)} - {"name", "needs", "how", "origin", "journal"}
    assert fields == {s.field for s in config.SETTINGS} == set(config.ENV_VARS.values())
    for kind, sub in (("link", "offline"), ("gateway", "delete-children")):
        rows = [s for s in config.settings_for(kind) if s.flag]
        typed = {int: ("1", 1), float: ("2.5", 2.5)}
        argv = [sub, *(x for s in rows for x in (
            (s.flag,) if s.type is bool else (s.flag, typed.get(s.type, (f"v-{s.field}",))[0])))]
        given = connection_flags(build_parser().parse_args(argv), kind)
        assert {k: v for k, v in given.items() if v is not None} == {
            s.field: True if s.type is bool else typed[s.type][1] if s.type in typed else f"v-{s.field}" for s in rows}
        with pytest.raises(SystemExit):
            cli.main([sub, "--help"])
        sub_help = capsys.readouterr().out
        assert all(s.env in sub_help for s in config.settings_for(kind) if s.part == kind)
    top_help = cli.build_parser().format_help()
    for s in config.SETTINGS:
        assert s.env in top_help and s.env in (cli.__doc__ or "") and s.env in (config.__doc__ or "")
        assert not (s.secret and s.flag)  # secrets never on the command line
    assert "ROMAKIT_GATEWAY (deprecated)" in top_help


def test_deprecated_gateway_alias_is_read_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("ROMAKIT_MQTT_HOST", "iot-mqtts.example.com")
    monkeypatch.setenv("ROMAKIT_DEVICE_SECRET", DEV_SECRET)
    monkeypatch.setenv("ROMAKIT_GATEWAY", "gw-old")
    with caplog.at_level(logging.WARNING, logger="romakit.config"):
        conn = rk.connect()
    assert conn.kind == "env" and conn.gateway().device_id == "gw-old"
    assert "ROMAKIT_GATEWAY is deprecated: set ROMAKIT_GATEWAY_ID" in caplog.text
    monkeypatch.setenv("ROMAKIT_GATEWAY_ID", "gw-new")  # the real name wins
    assert rk.connect().gateway().device_id == "gw-new"
    assert config.ENV_ALIASES == {"ROMAKIT_GATEWAY": "ROMAKIT_GATEWAY_ID",
                                  "ROMAKIT_CA_FILE": "ROMAKIT_REST_CA_FILE and ROMAKIT_MQTT_CA_FILE"}


def test_chain_flags_then_environment_then_journal(monkeypatch):
    monkeypatch.setenv("ROMAKIT_PROJECT_ID", PROJECT)
    monkeypatch.setenv("ROMAKIT_INSTANCE_ID", "env-instance")
    monkeypatch.setenv("ROMAKIT_TOKEN", TOKEN)
    monkeypatch.setenv("ROMAKIT_MQTT_HOST", "half-set.example.com")  # the MQTT part is not read for LINK
    recorded = {"kind": "link", "endpoint": "https://recorded.example.com", "project_id": "recorded-project",
                "instance_id": "recorded-instance", "target": "recorded-instance"}
    sources = config.chain(flags={"instance_id": "flag-instance", "endpoint": None}, recorded=recorded, kind="link")
    p = config.resolve("cli", sources, needs="link")
    assert (p.endpoint, p.project_id, p.instance_id, p.token) == (
        "https://recorded.example.com", PROJECT, "flag-instance", TOKEN)
    assert p.mqtt_host is None
    link = p.link_client()
    assert isinstance(link, rk.LinkClient) and link.instance_id == "flag-instance"
    link.close()
    _no_secret(repr(p))


def test_journal_source_maps_the_recorded_identity():
    gw = config.Source.journal({"kind": "gateway", "host": "h", "port": 8883, "gateway_id": "gw-1", "tls": True,
                                "target": "gw-1"}, "gateway")
    assert gw.values == {"mqtt_host": "h", "mqtt_port": 8883, "gateway_id": "gw-1"}
    assert config.Source.journal({"target": "inst"}, "link").values == {"instance_id": "inst"}


def test_resolve_names_where_to_set_what_is_missing(monkeypatch):
    with pytest.raises(rk.InputError, match=r"missing endpoint, project_id, instance_id \(or region\) \(set "
                                            r"--endpoint or ROMAKIT_ENDPOINT; --project-id or ROMAKIT_PROJECT_ID"):
        config.resolve("cli", config.chain(flags={"endpoint": None}), needs="link")
    flags = {"endpoint": "https://x.example.com", "project_id": PROJECT, "instance_id": INSTANCE}
    with pytest.raises(rk.InputError, match=r"needs ak and sk, or token, or user and password \(set ROMAKIT_AK or "
                                            r"HUAWEICLOUD_SDK_AK; ROMAKIT_SK or HUAWEICLOUD_SDK_SK; ROMAKIT_TOKEN\)"):
        config.resolve("cli", config.chain(flags=flags), needs="link")
    with pytest.raises(rk.InputError, match=r"MQTT settings incomplete, missing mqtt_host, gateway_id, device_secret"):
        config.resolve("cli", config.chain(flags=flags), needs="gateway")
    with pytest.raises(rk.InputError, match=r"missing project_id, instance_id \(or region\)$"):  # a file names no variables
        config.Profile.from_mapping("prod", {"endpoint": "https://x.example.com", "ak": AK, "sk": SK}, "file")


def test_a_profiles_journal_stays_with_the_clients_of_its_connection(sb, tmp_path, monkeypatch):
    """A profile's ``journal`` key is where that connection's clients journal; a profile
    read afterwards without one journals into the default file (here, as its instance is a
    sandbox's, the sandbox journal), and ``ROMAKIT_JOURNAL`` wins over both."""
    from romakit.store.journal import Journal
    from romakit.store.schema import sandbox_path as sb_path

    team, other = tmp_path / "team.sqlite3", tmp_path / "other.sqlite3"
    c = sb.credentials
    where = (f"endpoint = '{sb.link_endpoint}'\nproject_id = '{c.project_id}'\ninstance_id = '{c.instance_id}'\n"
             f"ak = '{c.ak}'\nsk = '{c.sk}'\n")
    path = tmp_path / "profiles.toml"
    path.write_text(f"[team]\n{where}journal = '{team}'\n\n[solo]\n{where}")
    path.chmod(0o600)
    monkeypatch.setenv("ROMAKIT_CONFIG", str(path))
    with sb.link_client() as link:
        ids = link.devices(online_status="online")["id"].astype(int).tolist()[:9]

    a, b = rk.connect("team"), rk.connect("solo")
    try:
        res_b = b.link.force_offline(ids[:3], progress=False)
        res_a = a.link.force_offline(ids[3:6], progress=False)
        assert rk.journal(url=team)["op_id"].tolist() == [res_a.op_id]
        assert rk.journal().empty  # the default file under ROMAKIT_HOME: a sandbox's run is not there ...
        assert rk.journal(url=b.journal)["op_id"].tolist() == [res_b.op_id]  # ... but in the sandbox journal
        assert b.journal.where == Journal.for_sandbox().where == sb_path()
        assert rk.journal(url=a.journal)["op_id"].tolist() == [res_a.op_id]
        assert a.link.journal.where == team and b.journal.where == b.link.journal.where != team
        assert rk.resume(res_a.op_id, a.link).op_id == res_a.op_id  # read where the client journals: nothing left

        monkeypatch.setenv("ROMAKIT_JOURNAL", str(other))
        res_env = a.link.force_offline(ids[6:], progress=False)
        assert rk.journal()["op_id"].tolist() == [res_env.op_id]
        assert b.link.journal.where == other  # a journal named in the environment wins over the sandbox's
        assert rk.journal(url=team)["op_id"].tolist() == [res_a.op_id]
    finally:
        a.close()
        b.close()
