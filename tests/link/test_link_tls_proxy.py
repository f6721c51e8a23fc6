"""TLS against the OS trust store plus extra CA files (never replacing it), and
``HTTPS_PROXY`` honoured: a real CONNECT proxy process on loopback carries LINK's and
IAM's traffic (sandboxes serving HTTPS with throwaway CAs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import romakit as rk

PROXY = Path(__file__).parent.parent / "support" / "connect_proxy.py"


@pytest.fixture(scope="module")
def two():
    """Two HTTPS sandboxes, each with its own CA: A's plays the OS store, B's an extra CA."""
    with rk.sandbox(devices=50, seed=31, mqtt=False, link_tls=True) as a, \
            rk.sandbox(devices=60, seed=32, mqtt=False, link_tls=True) as b:
        yield a, b


def _client(sb, **kw) -> rk.LinkClient:
    c = sb.credentials
    return rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk), progress=False,
                         retry=rk.RetryPolicy(attempts=1), **kw)


def test_extra_ca_files_add_to_the_os_store_never_replace_it(two, monkeypatch):
    a, b = two
    assert a.link_endpoint.startswith("https://127.0.0.1:")
    monkeypatch.setenv("SSL_CERT_FILE", a.link_ca_file)  # OpenSSL's default store: the "OS store" here
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with _client(a) as by_store:  # no extra CA: the store alone trusts A
        assert by_store.device_page(0, 1)["total"] == 50
    with _client(a, ca_files=b.link_ca_file) as store_and_b, _client(b, ca_files=b.link_ca_file) as b_only:
        assert store_and_b.device_page(0, 1)["total"] == 50  # B's CA added, A still trusted
        assert b_only.device_page(0, 1)["total"] == 60
    with _client(a, verify=b.link_ca_file) as old_style:  # a CA path as verify= is added too
        assert old_style.device_page(0, 1)["total"] == 50
    with _client(b) as untrusted:
        with pytest.raises(rk.TransportError, match="TLS certificate is not trusted: add its CA with ca_files="):
            untrusted.device_page(0, 1)
    with pytest.raises(rk.InputError, match="ca_files: CA file '/nonexistent/ca.pem' does not exist"):
        _client(a, ca_files="/nonexistent/ca.pem")


def test_https_proxy_carries_link_and_iam_traffic(two, tmp_path, monkeypatch):
    a, _ = two
    log = tmp_path / "proxy.log"
    proc = subprocess.Popen([sys.executable, str(PROXY), str(log)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{line.split()[1]}")
        for name in ("NO_PROXY", "no_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        c = a.credentials
        tok = rk.Token.from_password(c.domain, c.user, c.password, region=a.region, iam_endpoint=a.iam_endpoint,
                                     ca_files=a.link_ca_file)
        with rk.LinkClient(region=a.region, instance_id=c.instance_id, auth=tok, endpoint=a.link_endpoint,
                           iam_endpoint=a.iam_endpoint, ca_files=a.link_ca_file, progress=False) as link:
            res = link.force_offline(link.devices().id[:10])
        assert res.ok
    finally:
        proc.terminate()
        proc.wait(10)
    tunnels = log.read_text().splitlines()
    iam_port, link_port = a.iam_endpoint.rsplit(":", 1)[1], a.link_endpoint.rsplit(":", 1)[1]
    assert f"CONNECT 127.0.0.1:{iam_port}" in tunnels and f"CONNECT 127.0.0.1:{link_port}" in tunnels


def test_the_pre_flight_names_an_untrusted_certificate_and_what_to_set(two):
    _, b = two
    with _client(b) as untrusted, pytest.raises(rk.TransportError) as e:
        untrusted.preflight()
    assert str(e.value).startswith(f"pre-flight read could not reach {b.link_endpoint}: ConnectError (its TLS "
                                   "certificate is not trusted: add its CA with ca_files= or ROMAKIT_REST_CA_FILE")


def test_an_unreachable_proxy_is_named_without_its_password(two, monkeypatch):
    a, _ = two
    for name in ("NO_PROXY", "no_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:hunter2@127.0.0.1:9")  # the discard port: nothing listens
    with _client(a, ca_files=a.link_ca_file) as link, pytest.raises(rk.TransportError) as e:
        link.preflight()
    msg = str(e.value)
    assert "through the proxy 127.0.0.1:9 that HTTPS_PROXY names" in msg and "hunter2" not in msg, msg
