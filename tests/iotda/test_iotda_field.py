"""IoTDA as a field gateway meets it: one connection per device (takeover refused, then
allowed, knocked off mid-run without a reconnect fight), the instance's pace (a 10 msg/s
limit that drops the rest), WebSocket / wss and a proxy, X.509 logins, TLS checks."""

from __future__ import annotations

import select
import socket
import socketserver
import threading

import pytest

import romakit as rk
from romakit.engine.limit import Pace
from romakit.errors import ConnectRefused, InputError, MqttError


@pytest.fixture(scope="module")
def fsb():
    with rk.sandbox(devices=2000, seed=9, mqtt_tls=True) as s:
        yield s


def gateways_with_children(sb, n: int = 20) -> list[str]:
    """Enabled gateways with at least ``n`` children, most first."""
    gws = [g["client_id"] for g in sb.fleet.gateways() if g["status"] == 0 and len(sb.children(g["client_id"])) >= n]
    return sorted(gws, key=lambda g: -len(sb.children(g)))


# -- the pace ------------------------------------------------------------------------------------
def test_pace_spaces_messages_and_slows_on_timeouts() -> None:
    p = Pace(10)
    assert [round(p.reserve(now=100.0), 3) for _ in range(3)] == [0.0, 0.1, 0.2]
    p.timed_out(now=100.0)
    p.timed_out(now=100.5)  # once per second at most
    assert p.current == 5 and p.slowdowns == 1
    for _ in range(10):
        p.answered()
    assert p.current == 10
    fixed = Pace(50, adaptive=False)
    fixed.timed_out(now=1.0)
    assert fixed.current == 50 and Pace(None).reserve() == 0.0


@pytest.mark.slow
def test_a_deletion_under_a_10_per_second_limit_ends_far_less_unknown_at_the_default_pace(fsb) -> None:
    """IoTDA drops messages over the instance's spec: at a fixed 50/s many requests are
    never answered; at the default 10/s (and adaptively from 50/s) far fewer."""
    gws = gateways_with_children(fsb, 100)
    unknown: dict[str, int] = {}
    fsb.set_fault(mqtt_rate_limit=10)
    try:
        for label, gid, opts in (("fixed 50/s", gws[0], {"rate": 50, "adaptive_pace": False}),
                                 ("default 10/s", gws[1], {})):
            ids = fsb.children(gid)[:100]
            with fsb.gateway(gid, tls=False, timeout=2, **opts) as gw:
                # the pace alone: the default rollout's slow-start window would throttle the messages itself
                res = gw.delete_sub_devices(ids, chunk_size=4, progress=False, rollout=False)
            assert len(res.frame) == len(ids)
            unknown[label] = int(res.counts.get("unknown", 0))
    finally:
        fsb.set_fault(mqtt_rate_limit=None)
    print("unknown under a 10 msg/s limit:", unknown)
    assert unknown["fixed 50/s"] >= 20 and unknown["default 10/s"] * 4 <= unknown["fixed 50/s"], unknown


# -- one connection per device ---------------------------------------------------------------------
@pytest.mark.slow
def test_takeover_refused_then_allowed_and_knocked_off_mid_deletion_without_a_fight(fsb) -> None:
    gid = gateways_with_children(fsb, 40)[2]
    field = fsb.field_gateway(gid)
    try:
        assert fsb.iotda_client().status(gid) == "ONLINE"
        with pytest.raises(rk.TakeoverRefused, match=f"{gid} is ONLINE.*takeover=True"):
            fsb.gateway(gid, tls=False).connect()
        assert field.drops == 0  # refused before any login: the field gateway never noticed
        ids = fsb.children(gid)
        gw = fsb.gateway(gid, tls=False, takeover=True, timeout=5)
        gw.connect()
        try:
            res = gw.delete_sub_devices(ids, chunk_size=1, progress=False)
            assert gw.aio.session.wait_taken_over(10)
        finally:
            gw.close()
        f = res.frame
        assert sorted(f["device_id"]) == sorted(ids)  # every id accounted for
        assert f"another client logged in as {gid}" in (gw.taken_over or "")
        assert f"another client logged in as {gid}" in str(res.stopped)
        assert set(f["outcome"]) <= {"success", "unknown", "skipped"} and (f["outcome"] == "skipped").any()
        assert gw.stats["reconnects"] == 0
        # no fight: the field gateway logged in again once, and romakit never knocked it off again
        assert field.wait_logins(2, 10) and not field.wait_logins(3, 2.5)
        assert fsb.iotda_client().status(gid) == "ONLINE"
    finally:
        field.stop()


@pytest.mark.slow
def test_without_an_inventory_a_second_knock_off_stops_the_reconnects(fsb) -> None:
    gid = gateways_with_children(fsb, 20)[3]
    gw = fsb.gateway(gid, tls=False, inventory=None)
    gw.connect()
    try:
        field = fsb.field_gateway(gid)  # logs in: knocks romakit off; romakit reconnects once ...
        try:
            assert gw.aio.session.wait_taken_over(20)  # ... is knocked off again, and gives up
            assert "most likely" in gw.taken_over and gw.stats["reconnects"] == 1
            # the field gateway logged in twice (at start, and after romakit's one reconnect);
            # romakit never knocks it off a third time
            assert field.wait_logins(2, 10) and not field.wait_logins(3, 2.5)
        finally:
            field.stop()
    finally:
        gw.close()


# -- transports ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_deletion_over_websocket(fsb, tls) -> None:
    gid = gateways_with_children(fsb, 20)[4 + tls]
    ids = fsb.children(gid)[:10]
    with fsb.gateway(gid, tls=tls, transport="websockets") as gw:
        assert gw.port == (fsb.mqtt_wss_address if tls else fsb.mqtt_ws_address)[1]
        res = gw.delete_sub_devices(ids, progress=False)
    assert res.counts.get("success") == 10
    assert not set(ids) & set(fsb.children(gid))


class _ConnectProxy(socketserver.ThreadingTCPServer):
    """A real HTTP CONNECT proxy on loopback; ``tunnels`` lists the targets it opened."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        super().__init__(("127.0.0.1", 0), _Tunnel)


class _Tunnel(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, port = target.rsplit(":", 1)
        self.server.tunnels.append(target)
        with socket.create_connection((host, int(port)), timeout=5) as up:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pair = [self.request, up]
            while True:
                ready, _, _ = select.select(pair, [], [], 30)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (up if s is self.request else self.request).sendall(data)


@pytest.mark.parametrize("transport", ["tcp", "websockets"])
def test_deletion_through_an_http_proxy(fsb, transport) -> None:
    proxy = _ConnectProxy()
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        gid = gateways_with_children(fsb, 20)[6 + (transport == "websockets")]
        ids = fsb.children(gid)[:5]
        with fsb.gateway(gid, tls=False, transport=transport,
                         proxy=f"http://127.0.0.1:{proxy.server_address[1]}") as gw:
            res = gw.delete_sub_devices(ids, progress=False)
        assert res.counts.get("success") == 5
        assert proxy.tunnels and proxy.tunnels[0].endswith(f":{gw.port}")
    finally:
        proxy.shutdown()
        proxy.server_close()


# -- X.509 and TLS -----------------------------------------------------------------------------------
def test_x509_login_accepted_and_a_wrong_certificate_refused(fsb) -> None:
    gid, other = gateways_with_children(fsb, 20)[8:10]
    cert, key = fsb.device_certificate(gid)
    wrong_cert, wrong_key = fsb.device_certificate(other)
    assert fsb.iotda_client().device(gid)["auth_info"]["auth_type"] == "CERTIFICATES"
    with fsb.gateway(gid, certfile=cert, keyfile=key) as gw:
        assert gw.connected and repr(gw).count("key") == 0
        assert len(gw.sync_sub_devices(wait=True)) == len(fsb.children(gid))
    with pytest.raises(ConnectRefused) as info:
        fsb.gateway(gid, certfile=wrong_cert, keyfile=wrong_key).connect()
    assert info.value.code == 4
    with pytest.raises(ConnectRefused) as info:  # its secret no longer logs it in
        rk.Gateway(*fsb.mqtt_tls_address, gid, fsb.fleet.secret_of(gid), tls=True, ca_file=fsb.mqtt_ca_file).connect()
    assert info.value.code == 4


def test_tls_checks_stay_on_and_the_hint_says_where_the_ca_comes_from(fsb) -> None:
    with pytest.raises(InputError, match="IP address.*domain name"):
        rk.Gateway("192.0.2.10", 8883, "gw-1", "secret")
    assert rk.Gateway("192.0.2.10", 443, "gw-1", "secret", transport="websockets", allow_insecure=True,
                      tls=False).tls is False
    host, port = fsb.mqtt_tls_address
    gw = fsb.gateways()[0]
    with pytest.raises(MqttError, match="Huawei Cloud publishes"):
        rk.Gateway(host, port, gw, fsb.fleet.secret_of(gw), tls=True, inventory=None).connect()


def test_children_from_the_inventory_and_from_the_gateways_own_sync(fsb) -> None:
    gid = gateways_with_children(fsb, 20)[10]
    want = sorted(fsb.children(gid))
    gw = fsb.gateway(gid, tls=False)
    assert sorted(gw.children()["device_id"]) == want and not gw.connected  # REST: no login needed
    with fsb.gateway(gid, tls=False, inventory=None) as gw2:
        assert sorted(gw2.children()["device_id"]) == want


def _lagging_presence(sb, monkeypatch, gid: str):
    """Make the sandbox's IoTDA see ``gid`` as still connected until ``released`` is set
    (a platform that has not yet seen a disconnect); ``reads`` counts its status reads."""
    real, released, reads, reread = sb.broker.is_online, threading.Event(), [], threading.Event()

    def is_online(device_id: str) -> bool:
        if device_id == gid and not released.is_set():
            reads.append(device_id)
            if len(reads) >= 2:
                reread.set()
            return True
        return real(device_id)

    monkeypatch.setattr(sb.broker, "is_online", is_online)
    return released, reads, reread


@pytest.fixture()
def lone():
    """A sandbox of its own: no other test's deletions or takeovers touch its gateways."""
    with rk.sandbox(devices=120, seed=5) as s:
        yield s


def _enabled(sb) -> list[str]:
    return [g for g in sb.gateways() if sb.fleet.by_client_id(g)["status"] == 0]


def test_a_gateway_waits_out_its_own_disconnect_before_calling_it_a_takeover(lone, monkeypatch):
    gid = _enabled(lone)[0]
    gw = lone.gateway(gid)
    gw.connect()
    gw.close()
    released, reads, reread = _lagging_presence(lone, monkeypatch, gid)
    again = threading.Thread(target=gw.connect)
    again.start()
    assert reread.wait(timeout=10), "it refused (or went on) without reading the status again"
    released.set()  # the platform has now seen the disconnect
    again.join(timeout=15)
    try:
        assert not again.is_alive() and gw.connected
    finally:
        gw.close()


def test_a_gateway_still_online_past_the_grace_is_a_takeover(lone, monkeypatch):
    from romakit.iotda import field

    gid = _enabled(lone)[1]
    gw = lone.gateway(gid)
    gw.connect()
    gw.close()
    _lagging_presence(lone, monkeypatch, gid)  # never released: a field gateway holds it
    monkeypatch.setattr(field, "OWN_DISCONNECT_GRACE", 0.5)
    with pytest.raises(rk.TakeoverRefused):
        gw.connect()
    fresh = lone.gateway(gid)  # never connected by romakit: refused at the first read
    with pytest.raises(rk.TakeoverRefused):
        fresh.connect()
