"""The credential chain, in the official SDK's order (explicit values, a romakit profile,
ROMAKIT_*, HUAWEICLOUD_SDK_*, ~/.huaweicloud/credentials), in a temporary home, against
the sandbox over loopback; where each setting came from is said, never its value."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

import romakit as rk
from romakit import config


@pytest.fixture(scope="module")
def sandbox():
    with rk.sandbox(devices=120, seed=41, mqtt=False) as s:
        yield s


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A temporary home with the SDK's credentials file, and no chain variables set."""
    for name in [*config.ENV_VARS, *config.ENV_ALIASES, "ROMAKIT_PROFILE", "HUAWEICLOUD_SDK_CREDENTIALS_FILE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".huaweicloud").mkdir()
    return tmp_path


def _credentials_file(home, **values) -> None:
    text = "[basic]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    (home / ".huaweicloud" / "credentials").write_text(text)


def _temporary_key(sb):
    c = sb.credentials
    tok = rk.Token.from_password(c.domain, c.user, c.password, region=sb.region, iam_endpoint=sb.iam_endpoint)
    return rk.AkSk.from_token(tok, iam_endpoint=sb.iam_endpoint, duration=900)._credential()


def _where(sb, monkeypatch) -> None:
    monkeypatch.setenv("ROMAKIT_ENDPOINT", sb.link_endpoint)
    monkeypatch.setenv("ROMAKIT_INSTANCE_ID", sb.credentials.instance_id)


def test_the_sdk_credentials_file_is_the_last_link(sandbox, home, monkeypatch):
    c = sandbox.credentials
    _where(sandbox, monkeypatch)
    _credentials_file(home, ak=c.ak, sk=c.sk, project_id=c.project_id)
    conn = rk.connect()
    src = conn.sources()
    assert src["ak"] == f"ak in {home}/.huaweicloud/credentials [basic]"
    assert src["sk"].startswith("sk in ") and src["sk"].endswith(".huaweicloud/credentials [basic]")
    assert src["endpoint"] == "ROMAKIT_ENDPOINT" and src["project_id"].startswith("project_id in ")
    assert conn.check()["total"] == 120
    assert c.sk not in repr(conn) and c.sk not in json.dumps(src)


def test_sdk_variables_beat_the_file_and_carry_a_security_token(sandbox, home, monkeypatch):
    c = sandbox.credentials
    _where(sandbox, monkeypatch)
    _credentials_file(home, ak="FILEAK0000000000", sk="file-sk", project_id=c.project_id)
    key = _temporary_key(sandbox)
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", key.access)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", key.secret)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SECURITY_TOKEN", key.security_token)
    conn = rk.connect()
    src = conn.sources()
    assert (src["ak"], src["sk"], src["security_token"]) == (
        "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_SECURITY_TOKEN")
    assert src["project_id"].startswith("project_id in ")  # not a credential: taken one by one
    assert conn.link.auth.temporary and conn.check()["total"] == 120  # the sandbox requires the token
    text = repr(conn)
    assert key.secret not in text and key.security_token not in text and "file-sk" not in text


def test_romakit_variables_beat_the_sdk_and_credentials_are_never_mixed(sandbox, home, monkeypatch):
    c = sandbox.credentials
    _where(sandbox, monkeypatch)
    monkeypatch.setenv("ROMAKIT_PROJECT_ID", c.project_id)
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", "SDKAK00000000000")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "sdk-secret-value")
    monkeypatch.setenv("ROMAKIT_AK", c.ak)  # an AK here and an SK only in the SDK's variables
    with pytest.raises(rk.InputError, match=r"ak \(from ROMAKIT_AK\) given without sk \(set ROMAKIT_SK or "
                                            r"HUAWEICLOUD_SDK_SK\)") as e:
        rk.connect()
    assert "sdk-secret-value" not in str(e.value)
    monkeypatch.setenv("ROMAKIT_SK", c.sk)
    conn = rk.connect()
    assert (conn.sources()["ak"], conn.sources()["sk"]) == ("ROMAKIT_AK", "ROMAKIT_SK")
    assert conn.check()["total"] == 120


def test_a_profile_beats_the_environment_and_arguments_beat_the_profile(sandbox, home, monkeypatch, tmp_path):
    c = sandbox.credentials
    _where(sandbox, monkeypatch)
    monkeypatch.setenv("ROMAKIT_TOKEN", "MIIenv-token-never-used")
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[acme]\nregion = "{sandbox.region}"\niam_endpoint = "{sandbox.iam_endpoint}"\n'
                        f'instance_id = "wrong-instance"\nagency_domain = "{c.agency_domain}"\n'
                        f'agency = "{c.agency}"\nagency_duration = 900\nak = "{c.ak}"\nsk = "{c.sk}"\n')
    profiles.chmod(0o600)
    monkeypatch.setenv("ROMAKIT_CONFIG", str(profiles))
    conn = rk.connect("acme", instance_id=c.instance_id)
    src = conn.sources()
    assert src["instance_id"] == "argument instance_id=" and src["agency"].startswith("agency in profile 'acme'")
    assert src["ak"].startswith("ak in profile 'acme'")  # the profile's credentials, not ROMAKIT_TOKEN
    assert src["endpoint"] == "ROMAKIT_ENDPOINT" and "project_id" not in src  # looked up with the agency's key
    link = conn.link
    assert link.auth.temporary and link.auth.renewable
    assert conn.check()["total"] == 120 and link.project_id == c.project_id
    assert "agency 'romakit_support' of 'customer-acme' via AK" in repr(conn) and c.sk not in repr(conn)
    monkeypatch.setenv("ROMAKIT_PROFILE", "acme")  # the same profile, named by the variable
    assert rk.connect(instance_id=c.instance_id).sources()["agency"].startswith("agency in profile 'acme'")


@pytest.mark.parametrize(("env", "message"), [
    ({"ROMAKIT_REGION": "cn_north_4", "ROMAKIT_INSTANCE_ID": "i", "ROMAKIT_TOKEN": "t"},
     r"region \(from ROMAKIT_REGION\) must be a region id like 'cn-north-4', got 'cn_north_4'"),
    ({"ROMAKIT_REGION": "cn-north-4", "ROMAKIT_INSTANCE_ID": "i", "ROMAKIT_TOKEN": "t", "ROMAKIT_AGENCY": "a"},
     "an agency needs both agency and agency_domain; missing agency_domain"),
    ({"ROMAKIT_REGION": "cn-north-4", "ROMAKIT_INSTANCE_ID": "i", "ROMAKIT_TOKEN": "t", "ROMAKIT_AGENCY": "a",
      "ROMAKIT_AGENCY_DOMAIN": "d", "ROMAKIT_AGENCY_DURATION": "60"},
     r"agency_duration \(from ROMAKIT_AGENCY_DURATION\).*900..86400"),
    ({"ROMAKIT_REGION": "cn-north-4", "ROMAKIT_INSTANCE_ID": "i", "ROMAKIT_USER": "u",
      "ROMAKIT_PASSWORD": "pw-never-shown"}, "a password login needs domain, user and password; missing domain"),
    ({"ROMAKIT_ENDPOINT": "roma.example.com", "ROMAKIT_PROJECT_ID": "p", "ROMAKIT_INSTANCE_ID": "i",
      "ROMAKIT_TOKEN": "t"}, r"endpoint \(from ROMAKIT_ENDPOINT\) must be an http\(s\) URL"),
    ({"ROMAKIT_REGION": "cn-north-4", "ROMAKIT_INSTANCE_ID": "i", "ROMAKIT_TOKEN": "t",
      "ROMAKIT_REST_CA_FILE": "/nonexistent/corp-ca.pem"}, "rest_ca_file .*CA file '/nonexistent/corp-ca.pem' does not exist"),
    ({"HUAWEICLOUD_SDK_SECURITY_TOKEN": "sts-never-shown", "ROMAKIT_REGION": "cn-north-4", "ROMAKIT_INSTANCE_ID": "i"},
     r"security_token \(from HUAWEICLOUD_SDK_SECURITY_TOKEN\) given without ak and sk"),
])
def test_bad_settings_are_named_never_shown_before_anything_is_sent(home, monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(rk.InputError, match=message) as e:
        rk.connect()
    assert "pw-never-shown" not in str(e.value) and "sts-never-shown" not in str(e.value)


def test_federated_sdk_settings_are_said_to_be_unsupported(home, monkeypatch, caplog):
    monkeypatch.setenv("HUAWEICLOUD_SDK_IDP_ID", "idp")
    monkeypatch.setenv("HUAWEICLOUD_SDK_ID_TOKEN_FILE", "/tmp/token")
    with caplog.at_level(logging.WARNING, logger="romakit.config"):
        config.chain()
    assert "id_token_file, idp_id (a federated identity) is not supported" in caplog.text


def test_the_command_resolves_the_same_chain_and_says_where(sandbox, home):
    c = sandbox.credentials
    _credentials_file(home, ak=c.ak, sk=c.sk, project_id=c.project_id)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "ROMAKIT_HOME": str(home / "rk"),
           "ROMAKIT_CONFIG": str(home / "none.toml"), "PYTHONPATH": ":".join(sys.path)}
    p = subprocess.run([sys.executable, "-m", "romakit", "check", "--json", "--endpoint", sandbox.link_endpoint,
                        "--instance-id", c.instance_id], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] and out["devices"] == 120 and out["sources"]["endpoint"] == "--endpoint"
    assert out["sources"]["sk"].endswith("credentials [basic]") and c.sk not in p.stdout + p.stderr
    p = subprocess.run([sys.executable, "-m", "romakit", "check", "--endpoint", sandbox.link_endpoint,
                        "--instance-id", c.instance_id], capture_output=True, text=True,
                       env={**env, "HUAWEICLOUD_SDK_AK": c.ak, "HUAWEICLOUD_SDK_SK": "0" * 40}, timeout=120)
    assert p.returncode == 3 and "APIG.0301" in p.stderr and "0" * 40 not in p.stderr


def test_the_iotda_inventory_is_signed_with_the_same_chain(sandbox, home, monkeypatch):
    """The IoTDA inventory a profile's gateway reads is built where the other clients
    are, from the chain's credentials: here the SDK's variables, signed derived with
    ``iotda_region``; or a token. No secret of its own, none shown."""
    c = sandbox.credentials
    _where(sandbox, monkeypatch)
    gid = max(sandbox.gateways(), key=lambda g: len(sandbox.children(g)))
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", c.ak)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", c.sk)
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", c.project_id)
    mqtt = {"mqtt_host": "127.0.0.1", "mqtt_port": 1883, "gateway_id": gid, "device_secret": sandbox.fleet.secret_of(gid)}
    conn = rk.connect(iotda_endpoint=sandbox.iotda_endpoint, iotda_region=sandbox.region, **mqtt)
    assert conn.sources()["iotda_endpoint"] == "argument iotda_endpoint=" and conn.sources()["sk"] == "HUAWEICLOUD_SDK_SK"
    inv = conn.gateway().inventory
    assert isinstance(inv.auth, rk.IotdaAkSk) and inv.auth.derives_for("127.0.0.1") and inv.project_id == c.project_id
    assert sorted(inv.devices(gateway_id=gid)["device_id"]) == sorted(sandbox.children(gid))
    assert c.sk not in repr(inv) + repr(conn)
    inv.close()
    for k in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("ROMAKIT_TOKEN", c.token)
    inv = rk.connect(iotda_endpoint=sandbox.iotda_endpoint, **mqtt).gateway().inventory
    assert isinstance(inv.auth, rk.Token) and inv.status(gid) in ("ONLINE", "OFFLINE", "INACTIVE", "ABNORMAL", "FROZEN")
    inv.close()
    without = rk.connect(**mqtt).gateway()  # no iotda_endpoint: no inventory, as before
    assert without.inventory is None
