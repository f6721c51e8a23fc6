"""Security: MQTT over TLS verified by default, no plain traffic off loopback unless asked,
and no secret in any repr, log line, exception, output, journal or stored notebook.

TLS runs against the sandbox's own TLS listener (a throwaway CA and certificate made at
start-up). The plain-traffic refusals are checked under an audit hook that records every
socket connect and name lookup: the refusal must come before any of them, so no packet
ever leaves for the documentation addresses used here (192.0.2.1, 198.51.100.7,
2001:db8::1, example.com).
"""

from __future__ import annotations

import ast
import contextlib
import ipaddress
import json
import logging
import os
import queue
import re
import secrets
import signal
import stat
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import romakit as rk
from romakit import cli
from romakit.errors import ConnectRefused, InputError, MqttError
from romakit.iotda import auth
from romakit.iotda.gateway import Gateway
from romakit.sim.tls import SandboxTls

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
SEED = 31
OFF_LOOPBACK_HOSTS = ["192.0.2.1", "198.51.100.7", "2001:db8::1", "example.com", "localhost.example.com",
                      "127.0.0.1.example.com"]


# -- an audit hook that sees every connect and name lookup ------------------------------------
_WATCHES: list[list[tuple[str, Any]]] = []


def _loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    h = host.strip("[]").lower()
    if h in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(h.split("%")[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple) -> None:
    if not _WATCHES:
        return
    if event == "socket.connect" and isinstance(args[1], tuple) and not _loopback(args[1][0]):
        hit = (event, args[1])
    elif event == "socket.getaddrinfo" and not _loopback(args[0]):
        hit = (event, args[0])
    elif event in ("socket.gethostbyname", "socket.gethostbyname_ex") and not _loopback(args[0]):
        hit = (event, args[0])
    else:
        return
    for w in _WATCHES:
        w.append(hit)


sys.addaudithook(_audit)


@contextlib.contextmanager
def no_traffic_off_loopback() -> Iterator[list]:
    """Fails if anything inside connects to, or even looks up, a host that is not loopback."""
    seen: list[tuple[str, Any]] = []
    _WATCHES.append(seen)
    try:
        yield seen
    finally:
        _WATCHES.remove(seen)
    assert seen == [], f"traffic towards non-loopback hosts: {seen}"


def _fleet_gateway(sb: Any) -> tuple[str, list[str]]:
    """The sandbox gateway with the most children."""
    gid = max(sb.gateways(), key=lambda g: len(sb.children(g)))
    return gid, sb.children(gid)


# -- TLS --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_sb():
    with rk.sandbox(devices=300, seed=SEED, mqtt_tls=True) as sb:
        yield sb


def test_sandbox_serves_mqtt_over_tls_and_the_gateway_verifies_it(tls_sb: Any) -> None:
    sb = tls_sb
    desc = sb.describe()
    host, tls_port = sb.mqtt_tls_address
    ca = Path(sb.mqtt_ca_file)
    assert desc["mqtt"]["tls_port"] == tls_port != desc["mqtt"]["port"]
    assert desc["mqtt"]["ca_file"] == str(ca) and ca.is_file()
    assert "BEGIN CERTIFICATE" in ca.read_text() and "PRIVATE KEY" not in ca.read_text()
    assert "PRIVATE KEY" not in json.dumps(desc) and "key" not in json.dumps(desc["mqtt"]).lower()
    assert f"mqtts={host}:{tls_port}" in repr(sb)
    # the private files: a 0700 directory, the key 0600, and the CA's own key written nowhere
    assert stat.S_IMODE(ca.parent.stat().st_mode) == 0o700
    files = {p.name: p for p in ca.parent.iterdir()}
    assert set(files) == {"ca.pem", "server.pem", "server-key.pem"}
    assert stat.S_IMODE(files["server-key.pem"].stat().st_mode) == 0o600
    assert [n for n, p in files.items() if "PRIVATE KEY" in p.read_text()] == ["server-key.pem"]
    # ListDevices points devices at the TLS port
    with sb.link_client(progress=False) as link:
        assert link.device_page(0, 1)["ssl_connect_address"] == f"{host}:{tls_port}"

    gid, kids = _fleet_gateway(sb)
    gw = sb.gateway(gid, timeout=5.0)
    assert gw.tls and gw.port == tls_port and gw.ca_file == str(ca)
    with gw:
        res = gw.delete_sub_devices(kids[:5], progress=False)
    assert res.ok and len(res) == 5
    # the certificate names localhost too, and a plain-port gateway is still there on request
    with Gateway("localhost", tls_port, gid, sb.fleet.secret_of(gid), tls=True, ca_file=str(ca)) as by_name:
        assert by_name.connected
    with sb.gateway(gid, tls=False) as plain:
        assert not plain.tls and plain.port == sb.mqtt_address[1] and plain.connected


def test_tls_without_the_right_ca_is_refused_with_a_verification_error(tls_sb: Any) -> None:
    sb = tls_sb
    host, tls_port = sb.mqtt_tls_address
    gid, _ = _fleet_gateway(sb)
    secret = sb.fleet.secret_of(gid)
    with warnings.catch_warnings(), SandboxTls() as stranger:
        warnings.simplefilter("ignore", ResourceWarning)  # paho 2.2 leaves a failed handshake's socket open
        for ca_file in (None, str(stranger.ca_file)):  # system CAs, then another CA
            gw = Gateway(host, tls_port, gid, secret, tls=True, ca_file=ca_file, connect_timeout=5.0)
            with pytest.raises(MqttError, match="certificate verify failed") as info:
                gw.connect()
            assert secret not in str(info.value) and not gw.connected
        # plain MQTT on the TLS port: the broker drops it, the client says so (no hang)
        plain = Gateway(host, tls_port, gid, secret, tls=False, connect_timeout=3.0)
        with pytest.raises(MqttError):
            plain.connect()


def test_tls_listener_and_its_ca_survive_a_broker_restart() -> None:
    with rk.sandbox(devices=120, seed=SEED, mqtt_tls=True) as sb:
        ca, tls_port = sb.mqtt_ca_file, sb.mqtt_tls_address[1]
        gid, kids = _fleet_gateway(sb)
        sessions = sb.platform.sessions
        with sb.gateway(gid, timeout=5.0) as gw:
            sb.broker.restart()
            assert gw.wait_connected(20) and sb.platform.wait_ready(20, sessions=sessions + 1)
            assert sb.mqtt_ca_file == ca and Path(ca).is_file() and sb.mqtt_tls_address[1] == tls_port
            res = gw.delete_sub_devices(kids[:3], progress=False)
            assert gw.stats["reconnects"] >= 1
        assert res.ok
    assert not Path(ca).exists() and not Path(ca).parent.exists()  # deleted with the sandbox


def test_cli_sim_serves_tls_and_deletes_its_files_on_exit() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "romakit", "sim", "--devices", "60", "--seed", str(SEED), "--mqtt-tls",
         "--gateways", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        desc = json.loads(lines.get(timeout=30))
        mq = desc["mqtt"]
        ca = Path(mq["ca_file"])
        assert mq["tls_port"] and ca.is_file() and "PRIVATE KEY" not in ca.read_text()
        gw_desc = mq["gateways"][0]
        with Gateway(mq["host"], mq["tls_port"], gw_desc["device_id"], gw_desc["secret"], tls=True,
                     ca_file=str(ca)) as gw:
            assert gw.connected and gw.tls
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0, err
    assert not ca.exists()


def test_sandbox_tls_files_unit() -> None:
    from cryptography import x509

    with SandboxTls(["127.0.0.1", "sandbox.localhost"]) as t:
        cert = x509.load_pem_x509_certificate(t.cert_file.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {str(v) for v in san.get_values_for_type(x509.DNSName)}
        ips = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
        assert names == {"localhost", "sandbox.localhost"} and ips == {"127.0.0.1", "::1"}
        assert "PRIVATE" not in repr(t) and "key" not in repr(t).lower()
        ca = x509.load_pem_x509_certificate(t.ca_file.read_bytes())
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert t.server_context() and t.client_context().check_hostname
        where = t.ca_file.parent
    assert not where.exists() and "closed" in repr(t)
    with pytest.raises(RuntimeError, match="deleted"):
        _ = t.ca_file


# -- no plain traffic off loopback --------------------------------------------------------------
@pytest.mark.parametrize("host", OFF_LOOPBACK_HOSTS)
def test_plain_mqtt_to_a_non_loopback_host_is_refused_before_any_traffic(host: str) -> None:
    with no_traffic_off_loopback():
        with pytest.raises(InputError, match="allow_insecure") as info:
            Gateway(host, 1883, "gw-1", "s3cr3t-value")
        assert "s3cr3t-value" not in str(info.value)
        with pytest.raises(InputError, match="allow_insecure"):
            Gateway(host, 8883, "gw-1", "s3cr3t-value", tls=False)
        # TLS (the default on 8883) and an explicit opt-in are allowed; neither connects yet.
        # TLS to an IP literal is refused: IoTDA's certificates name its domain
        try:
            ipaddress.ip_address(host)
            is_ip = True
        except ValueError:
            is_ip = False
        if is_ip:
            with pytest.raises(InputError, match="IP address"):
                Gateway(host, 8883, "gw-1", "s3cr3t-value")
        else:
            assert Gateway(host, 8883, "gw-1", "s3cr3t-value").tls is True
        assert Gateway(host, 1883, "gw-1", "s3cr3t-value", allow_insecure=True).tls is False


@pytest.mark.parametrize("endpoint", [
    "http://192.0.2.1", "http://198.51.100.7:8080/", "http://[2001:db8::1]:80", "http://example.com",
    "http://localhost.example.com", "http://127.0.0.1.example.com", "http://127.0.0.1@192.0.2.1/",
    "http://127.0.0.1:80@192.0.2.1", "http://0.0.0.0:8080",
])
def test_plain_http_to_a_non_loopback_host_is_refused_before_any_traffic(endpoint: str) -> None:
    with no_traffic_off_loopback():
        for cls in (rk.LinkClient, rk.AsyncLinkClient):
            with pytest.raises(InputError, match="plain HTTP"):
                cls(endpoint, "p" * 32, "i" * 36, rk.Token("MIItoken-never-sent"))
        https = endpoint.replace("http://", "https://", 1)
        assert rk.LinkClient(https, "p" * 32, "i" * 36, rk.Token("t")).endpoint.startswith("https://")
        rk.LinkClient(endpoint, "p" * 32, "i" * 36, rk.Token("t"), allow_insecure=True)


def test_loopback_stays_allowed_in_plain() -> None:
    with no_traffic_off_loopback():
        for endpoint in ("http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "http://127.8.9.10:9"):
            rk.LinkClient(endpoint, "p" * 32, "i" * 36, rk.Token("t"))
        for host in ("127.0.0.1", "localhost", "::1", "[::1]"):
            assert Gateway(host, 1883, "gw-1", "s").tls is False


def test_cli_refuses_plain_traffic_off_loopback_before_sending(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("ROMAKIT_DEVICE_SECRET", "cli-device-secret")
    monkeypatch.setenv("ROMAKIT_TOKEN", "MIIcli-token")
    with no_traffic_off_loopback():
        code = cli.main(["delete-children", "--host", "192.0.2.1", "--port", "1883", "--gateway", "gw-1",
                         "--no-progress", "child-1"])
        assert code == cli.EXIT_BAD_INPUT
        code = cli.main(["offline", "--endpoint", "http://192.0.2.1", "--project-id", "p" * 32,
                         "--instance-id", "i" * 36, "--no-progress", "5"])
        assert code == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "allow_insecure" in err or "allow-insecure" in err
    assert "plain HTTP" in err
    assert "cli-device-secret" not in err and "MIIcli-token" not in err


# -- secrets: a realistic session, then every place a secret could end up is scanned -------------
class _KeepAll(logging.Handler):
    """Keeps every record, formatted with its traceback, plus its raw fields."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(threadName)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record) + "\n" + repr(record.args) + "\n" + repr(vars(record)))
        except Exception as e:  # a record that cannot be formatted is itself worth seeing
            self.texts.append(f"unformattable record {record.name}: {e!r} {record.msg!r}")


def _iotda_passwords(secret: str) -> set[str]:
    now = datetime.now(UTC)
    return {auth.password(secret, auth.timestamp(now + timedelta(hours=h))) for h in (-1, 0, 1)}


def _texts_of(obj: Any) -> list[str]:
    out = [repr(obj), str(obj)]
    for attr in ("_repr_html_", "summary", "to_string", "to_csv", "describe_policy"):
        fn = getattr(obj, attr, None)
        if callable(fn):
            with contextlib.suppress(Exception):
                out.append(str(fn()))
    frame = getattr(obj, "frame", None)
    frame = frame() if callable(frame) else frame
    if hasattr(frame, "to_csv"):
        out.append(frame.to_csv())
    return out


def _exception_texts(e: BaseException) -> list[str]:
    return [repr(e), str(e), "".join(traceback.format_exception(e)), repr(e.args), repr(vars(e))]


@pytest.mark.slow
def test_no_secret_anywhere_after_a_realistic_session(capfd: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    keep = _KeepAll()
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    # every record any logger makes, also those that do not propagate to the root (uvicorn's)
    handle = logging.Logger.handle

    def spy(self: logging.Logger, record: logging.LogRecord) -> None:
        if self.filter(record):  # what the logger's own filters let through, as they redact it
            keep.handle(record)
        handle(self, record)

    monkeypatch.setattr(logging.Logger, "handle", spy)
    objects: list[Any] = []
    errors: list[BaseException] = []
    fast = rk.RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, max_retry_after=0.05)
    try:
        with rk.sandbox(devices=400, seed=SEED, mqtt_tls=True) as sb:
            c = sb.credentials
            wrong_sk, wrong_token, wrong_secret = secrets.token_hex(20), "MII" + secrets.token_hex(24), secrets.token_hex(8)
            gid, kids = _fleet_gateway(sb)
            gid2 = next(g for g in sb.gateways() if g != gid and sb.children(g))
            watched = {"SK": c.sk, "token": c.token, "broker platform password": sb.broker.platform_password,
                       "wrong SK": wrong_sk, "wrong token": wrong_token, "wrong device secret": wrong_secret}
            for g in (gid, gid2):
                watched[f"secret of {g}"] = sb.fleet.secret_of(g)
            for name, value in list(watched.items()):
                if name.startswith(("secret of", "wrong device")):
                    for i, pw in enumerate(sorted(_iotda_passwords(value))):
                        watched[f"IoTDA password {i} of {name}"] = pw

            # LINK: AK/SK and token clients, reads, force-offline under faults, a retry
            link = sb.link_client(progress=False, retry=fast, chunk_size=10)
            token_link = sb.link_client(auth="token", progress=False, retry=fast, chunk_size=10)
            online = link.devices(online_status="online")["id"].tolist()
            sb.set_fault(error_rate=0.3, reset_rate=0.1, garbage_rate=0.1, missing_fields_rate=0.1,
                         rate_limit=40, retry_after=0.01)
            r1 = link.force_offline(online[:60])
            r2 = token_link.force_offline(online[60:100])
            sb.clear_faults()
            r3 = r1.retry(link)
            objects += [sb, c, link, link.auth, link.aio, token_link, token_link.auth, r1, r2, r3]
            # bad credentials, on purpose
            with rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, wrong_sk),
                               progress=False, retry=fast) as bad:
                objects += [bad, bad.auth]
                with pytest.raises(rk.ApiError) as e:
                    bad.device_page(0, 1)
                errors.append(e.value)
                with pytest.raises(rk.AuthRefused) as e:  # the pre-flight read stops it, nothing sent
                    bad.force_offline(online[100:110])
                errors.append(e.value)
            with rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, wrong_sk),
                               progress=False, retry=fast, preflight=False) as bad:
                objects.append(bad.force_offline(online[100:110]))  # the engine stops: the rest skipped
            with rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.Token(wrong_token),
                               progress=False, retry=fast) as bad:
                objects += [bad, bad.auth]
                with pytest.raises(rk.ApiError) as e:
                    bad.device_page(0, 1)
                errors.append(e.value)

            # IAM: a password token, an agency's temporary keys renewed mid-batch, a wrong password
            watched["IAM password"] = c.password
            tok = rk.Token.from_password(c.domain, c.user, c.password, region=sb.region, iam_endpoint=sb.iam_endpoint)
            agency = rk.AkSk.from_agency(c.agency_domain, c.agency, auth=tok, iam_endpoint=sb.iam_endpoint)
            with rk.LinkClient(region=sb.region, instance_id=c.instance_id, auth=agency, endpoint=sb.link_endpoint,
                               iam_endpoint=sb.iam_endpoint, progress=False, chunk_size=10, concurrency=1) as iam_link:
                r5 = iam_link.force_offline(online[100:140], progress=lambda done, _: done == 10 and sb.iam.expire_all())
                objects += [tok, agency, iam_link, r5, iam_link.aio]
            with pytest.raises(rk.ApiError) as e:
                rk.Token.from_password(c.domain, c.user, wrong_token, region=sb.region, iam_endpoint=sb.iam_endpoint)
            errors.append(e.value)
            for issued_token in sb.iam._tokens:
                watched[f"IAM token {issued_token[-4:]}"] = issued_token
            for ak, grant in sb.iam._keys.items():
                watched[f"temporary SK of {ak}"] = grant.sk
                watched[f"security token of {ak}"] = grant.security_token

            # MQTT over TLS with faults, a plain-port gateway, a refused CONNACK, an unverified TLS
            sb.set_fault(mqtt_drop_rate=0.3, mqtt_malformed_rate=0.2, mqtt_duplicate_rate=0.3,
                         mqtt_fail_ids={kids[0]})
            with sb.gateway(gid, timeout=1.0) as gw:
                r4 = gw.delete_sub_devices(kids)
                objects += [gw, gw.stats, gw.events(), gw.recorder, r4]
            sb.clear_faults()
            with sb.gateway(gid2, tls=False, timeout=5.0) as gw2:
                objects += [gw2, gw2.delete_sub_devices(sb.children(gid2)[:3])]
            host, tls_port = sb.mqtt_tls_address
            refused = Gateway(host, tls_port, gid, wrong_secret, tls=True, ca_file=sb.mqtt_ca_file, connect_timeout=5)
            with pytest.raises(ConnectRefused) as e:
                refused.connect()
            errors.append(e.value)
            objects.append(refused)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                unverified = Gateway(host, tls_port, gid, sb.fleet.secret_of(gid), tls=True, connect_timeout=5)
                with pytest.raises(MqttError) as e:
                    unverified.connect()
            errors.append(e.value)
            objects += [unverified, sb.broker, sb.platform, sb.faults]

            # the journal (the sandbox journal: a sandbox's runs go there), listed and rebuilt
            js = sb.journal
            objects += [rk.journal(url=js), rk.journal(r1.op_id, url=js), rk.journal(r4.op_id, url=js),
                        rk.journal(r3.op_id, url=js), rk.resume(r1.op_id, link)]
            link.close()
            token_link.close()
    finally:
        monkeypatch.setattr(logging.Logger, "handle", handle)
        root.setLevel(old_level)
    out, err = capfd.readouterr()

    places: dict[str, str] = {"stdout": out, "stderr": err}
    for i, obj in enumerate(objects):
        places[f"repr/str of {type(obj).__name__} #{i}"] = "\n".join(_texts_of(obj))
    for i, exc in enumerate(errors):
        places[f"exception {type(exc).__name__} #{i}"] = "\n".join(_exception_texts(exc))
    places["log records"] = "\n".join(keep.texts)
    from romakit.store.schema import home

    journal_files = sorted(home().rglob("journal.sqlite3*"))  # the sandbox journal is in sandbox/
    assert journal_files, "the session wrote no journal"
    for p in journal_files:
        places[f"journal file {p.name}"] = p.read_bytes().decode("latin-1")
    assert len(keep.texts) > 100  # DEBUG logging really was on (httpx, paho, amqtt, romakit)
    assert errors and all(isinstance(e, Exception) for e in errors)

    leaks = [f"{name} in {where}" for where, text in places.items() for name, value in watched.items()
             if value and value in text]
    assert leaks == []


def _notebook_secrets(nb: dict) -> tuple[set[str], set[str]]:
    """(the device secrets of the fleet the notebook's sandbox builds, its SK and token)."""
    from romakit.sim.fleet import Fleet
    from romakit.sim.server import SimCredentials

    params: dict[str, Any] = {"devices": 2000, "seed": 7}
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    with contextlib.suppress(ValueError):
                        params[node.targets[0].id] = ast.literal_eval(node.value)
    fleet = Fleet(devices=params["devices"], seed=params["seed"])
    creds = SimCredentials.from_seed(params["seed"])
    return {fleet.secret_of(d["client_id"]) for d in fleet.all()}, {creds.sk, creds.token}


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_stored_notebook_outputs_hold_no_secret(path: Path) -> None:
    """Beyond tests/test_notebooks_meta.py (gateway secrets, AK/SK, token): every device's
    secret of the notebook's fleet, and anything shaped like an IoTDA password."""
    nb = json.loads(path.read_text())
    outputs = json.dumps([c.get("outputs", []) for c in nb["cells"] if c["cell_type"] == "code"])
    device_secrets, link_secrets = _notebook_secrets(nb)
    hex16 = set(re.findall(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])", outputs))
    assert hex16 & device_secrets == set()
    assert [s for s in link_secrets if s in outputs] == []
    assert re.findall(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", outputs) == []  # IoTDA passwords are 64 hex
