"""The sandbox's MQTT side: embedded IoTDA-style broker and the IoTDA platform simulator.

Clients here are raw paho clients (not romakit's Gateway), over real loopback sockets.
Platform tests run on the embedded broker and, when it answers, on the local Mosquitto
(``-m mosquitto``); there each test uses its own topic root so parallel runs sharing
Mosquitto never see each other's requests.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from amqtt.broker import Broker

from romakit.sim.broker import AMQTT_VERSION, EmbeddedBroker
from romakit.sim.faults import Faults
from romakit.sim.fleet import Fleet
from romakit.sim.iotda_platform import ERR_TOO_MANY, FAIL_IDS_MSG, SERVICE_ID
from romakit.sim.mqtt import MqttSide
from romakit.sim.mqtt_login import iotda_client_id, iotda_password, iotda_timestamp

MOSQUITTO = ("127.0.0.1", 1883)
WAIT = 5.0  # seconds: every network wait in this file


# -- helpers ----------------------------------------------------------------------------
class Raw:
    """A raw paho client that records CONNACK, SUBACKs and messages."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        username: str | None,
        password: str | None,
        keepalive: int = 30,
        clean_session: bool = True,
    ) -> None:
        self.connack = threading.Event()
        self.reason: Any = None
        self.messages: list[tuple[float, str, bytes]] = []
        self._cv = threading.Condition()
        self._subacks: dict[int, list] = {}
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=clean_session
        )
        if username is not None:
            self.c.username_pw_set(username, password)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.connect(host, port, keepalive=keepalive)
        self.c.loop_start()
        assert self.connack.wait(WAIT), "no CONNACK"

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.reason = rc
        if rc.is_failure:
            c.disconnect()  # refused: no automatic reconnect
        self.connack.set()

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.reason is None:
            self.reason = rc
        self.connack.set()

    def _on_subscribe(self, c: Any, u: Any, mid: int, rcs: list, props: Any) -> None:
        with self._cv:
            self._subacks[mid] = rcs
            self._cv.notify_all()

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cv:
            self.messages.append((time.monotonic(), msg.topic, msg.payload))
            self._cv.notify_all()

    def subscribe(self, topic: str) -> list:
        _, mid = self.c.subscribe(topic, qos=1)
        with self._cv:
            assert self._cv.wait_for(lambda: mid in self._subacks, WAIT), "no SUBACK"
            return self._subacks[mid]

    def wait_messages(self, pred: Callable[[bytes], bool], count: int = 1, timeout: float = WAIT) -> list:
        with self._cv:
            self._cv.wait_for(lambda: sum(1 for m in self.messages if pred(m[2])) >= count, timeout)
            return [m for m in self.messages if pred(m[2])]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _json(payload: bytes) -> dict | None:
    try:
        out = json.loads(payload)
    except ValueError:
        return None
    return out if isinstance(out, dict) else None


def _service(payload: bytes) -> dict | None:
    body = _json(payload)
    svcs = body.get("services") if body else None
    return svcs[0] if isinstance(svcs, list) and svcs and isinstance(svcs[0], dict) else None


def _is(event_id: str | None = None, event_type: str | None = None) -> Callable[[bytes], bool]:
    def pred(payload: bytes) -> bool:
        svc = _service(payload)
        return (
            svc is not None
            and (event_id is None or svc.get("event_id") == event_id)
            and (event_type is None or svc.get("event_type") == event_type)
        )

    return pred


class Gateway:
    """One gateway played by a raw client: logs in as IoTDA wants (embedded) or anonymously."""

    def __init__(self, side: MqttSide, fleet: Fleet, device_id: str) -> None:
        self.id = device_id
        self.root = side.topic_root
        if side.broker is not None:
            ts = iotda_timestamp()
            self.raw = Raw(side.host, side.port, iotda_client_id(device_id, ts), device_id,
                           iotda_password(fleet.secret_of(device_id), ts))
        else:
            self.raw = Raw(side.host, side.port, f"{device_id}-{uuid.uuid4().hex[:8]}", None, None)
        assert self.raw.reason == 0, f"login refused: {self.raw.reason}"
        assert not self.raw.subscribe(f"{self.root}/{device_id}/sys/events/down")[0].is_failure

    @property
    def up(self) -> str:
        return f"{self.root}/{self.id}/sys/events/up"

    def send(self, *services: tuple[str, dict | None, str | None], topic: str | None = None) -> list[str]:
        """Publish one message carrying the given (event_type, paras, event_id) services."""
        ids, svcs = [], []
        for event_type, paras, event_id in services:
            eid = event_id or str(uuid.uuid4())
            ids.append(eid)
            svcs.append({"service_id": SERVICE_ID, "event_type": event_type,
                         "event_time": "20250101T000000Z", "event_id": eid, "paras": paras})
        self.publish({"object_device_id": self.id, "services": svcs}, topic)
        return ids

    def request(self, event_type: str, paras: dict | None, event_id: str | None = None, wait: bool = True) -> str:
        eid = event_id or str(uuid.uuid4())
        body = {"object_device_id": self.id, "services": [{
            "service_id": SERVICE_ID, "event_type": event_type, "event_time": "20250101T000000Z",
            "event_id": eid, "paras": paras}]}
        self.publish(body, wait=wait)
        return eid

    def publish(self, body: Any, topic: str | None = None, wait: bool = True) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        info = self.raw.c.publish(topic or self.up, data, qos=1)
        if wait:
            info.wait_for_publish(WAIT)
            assert info.is_published(), "request not acknowledged by the broker"

    def answer(self, event_id: str, event_type: str | None = None, count: int = 1, timeout: float = WAIT) -> list[dict]:
        msgs = self.raw.wait_messages(_is(event_id, event_type), count, timeout)
        assert len(msgs) >= count, f"no answer to {event_id} ({event_type}) within {timeout} s"
        return [_service(m[2]) for m in msgs]

    def close(self) -> None:
        self.raw.close()


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture
def fleet() -> Fleet:
    return Fleet(devices=240, seed=11)


@pytest.fixture
def faults() -> Faults:
    return Faults(seed=3)


@pytest.fixture
def embedded(fleet: Fleet, faults: Faults):
    side = MqttSide(fleet, faults)
    side.start()
    yield side
    side.stop()


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def side(request: pytest.FixtureRequest, fleet: Fleet, faults: Faults):
    if request.param == "mosquitto":
        request.getfixturevalue("mosquitto")  # skips, saying why, when Mosquitto does not answer
        s = MqttSide(fleet, faults, external=MOSQUITTO, topic_root=f"$oc/t{uuid.uuid4().hex[:12]}/devices")
    else:
        s = MqttSide(fleet, faults)
    s.start()
    yield s
    s.stop()


def _busiest_gateway(fleet: Fleet) -> dict:
    return max(fleet.gateways(), key=lambda g: len(fleet.children_of(g["id"])))


@pytest.fixture
def gw(side: MqttSide, fleet: Fleet):
    g = Gateway(side, fleet, _busiest_gateway(fleet)["client_id"])
    yield g
    g.close()


def _children(fleet: Fleet, gateway_cid: str) -> list[str]:
    return [c["client_id"] for c in fleet.children_of(fleet.by_client_id(gateway_cid)["id"])]


# -- the broker: amqtt guard, login, ACL ------------------------------------------------------
def test_amqtt_override_still_applies() -> None:
    """IotdaBroker overrides private amqtt methods: fail loudly when amqtt changes under it."""
    installed = importlib.metadata.version("amqtt")
    assert installed == AMQTT_VERSION, (
        f"amqtt {installed} is installed but romakit.sim.broker.IotdaBroker was written against amqtt "
        f"{AMQTT_VERSION}: re-read amqtt/broker.py (the '$' refusal in _handle_message_delivery, "
        "_initialize_client_session) and re-check the override before moving the pin"
    )
    expected = {
        "_handle_message_delivery": ["self", "client_session", "handler", "wait_deliver"],
        "_initialize_client_session": ["self", "reader", "writer", "remote_address", "remote_port"],
        "_delete_session": ["self", "client_id"],
        "_cleanup_session": ["self", "client_id"],
        "_topic_filtering": ["self", "session", "topic", "action"],
        "_broadcast_message": ["self", "session", "topic", "data", "force_qos"],
        "add_subscription": ["self", "subscription", "session"],
        "stream_connected": ["self", "reader", "writer", "listener_name"],
        "shutdown": ["self"],
    }
    for name, params in expected.items():
        method = getattr(Broker, name, None)
        assert method is not None, f"amqtt Broker.{name} is gone: IotdaBroker's override no longer applies"
        got = list(inspect.signature(method).parameters)
        assert got == params, f"amqtt Broker.{name}{got} changed (expected {params}): re-check IotdaBroker"
    assert 'startswith("$")' in inspect.getsource(Broker._handle_message_delivery), (
        "amqtt no longer refuses '$' topics in _handle_message_delivery: IotdaBroker's override may be obsolete"
    )
    assert "_initialize_client_session" in inspect.getsource(Broker._client_connected), (
        "amqtt's _client_connected no longer calls _initialize_client_session: exact CONNACK codes are lost"
    )
    assert "self._delete_session(" in inspect.getsource(Broker._initialize_client_session), (
        "amqtt's _initialize_client_session no longer deletes old sessions itself: re-check IotdaBroker._delete_session"
    )


def test_password_check_value() -> None:
    assert iotda_password("12345678", "2025041401") == (
        "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
    )


def _login(side: MqttSide, client_id: str, username: str | None, password: str | None, keepalive: int = 30) -> Any:
    raw = Raw(side.host, side.port, client_id, username, password, keepalive)
    try:
        return raw.reason
    finally:
        raw.close()


def test_login_accepted(embedded: MqttSide, fleet: Fleet) -> None:
    dev = next(d for d in fleet.all() if d["node_type"] == 0 and d["status"] == 0)["client_id"]
    ts = iotda_timestamp()
    assert _login(embedded, iotda_client_id(dev, ts), dev, iotda_password(fleet.secret_of(dev), ts)) == 0
    # sig 0: the timestamp is not checked against the clock
    old = iotda_timestamp(datetime.now(UTC) - timedelta(days=3))
    assert _login(embedded, iotda_client_id(dev, old, sig=0), dev, iotda_password(fleet.secret_of(dev), old)) == 0


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("bad password", 134),  # CONNACK 4: bad user name or password
        ("bad client id", 133),  # CONNACK 2: identifier rejected
        ("client id of another device", 133),
        ("keepalive too short", 133),  # CONNACK 2 covers the keepalive too
        ("unknown device", 134),
        ("stale timestamp, sig 1", 134),
        ("no username", 134),
        ("bad platform password", 134),
        ("frozen device", 135),  # CONNACK 5: not authorised
    ],
)
def test_login_refused(embedded: MqttSide, fleet: Fleet, case: str, code: int) -> None:
    gw = fleet.gateways()[0]["client_id"]
    secret = fleet.secret_of(gw)
    ts = iotda_timestamp()
    good = iotda_password(secret, ts)
    stale = iotda_timestamp(datetime.now(UTC) - timedelta(hours=3))
    args = {
        "bad password": (iotda_client_id(gw, ts), gw, iotda_password("wrong", ts)),
        "bad client id": (f"{gw}-{ts}", gw, good),
        "client id of another device": (iotda_client_id("dev-000001", ts), gw, good),
        "unknown device": (iotda_client_id("nobody", ts), "nobody", good),
        "stale timestamp, sig 1": (iotda_client_id(gw, stale, sig=1), gw, iotda_password(secret, stale)),
        "no username": (iotda_client_id(gw, ts), None, None),
        "bad platform password": ("platform-x", embedded.broker.platform_username, "nope"),
        "keepalive too short": (iotda_client_id(gw, ts), gw, good, 10),
    }
    if case == "frozen device":
        product = next(p for p in fleet.products() if p["product_type"] == 0)
        frozen = fleet.create(device_name="frozen-one", product_id=product["product_id"], node_id="FROZEN-01", status=1)
        cid = frozen["client_id"]
        args[case] = (iotda_client_id(cid, ts), cid, iotda_password(fleet.secret_of(cid), ts))
    rc = _login(embedded, *args[case])
    assert rc == code, f"{case}: got {rc!r} ({getattr(rc, 'value', rc)}), expected {code}"


@pytest.mark.parametrize("clean_session", [True, False])
def test_refused_login_leaves_the_connected_device_alone(embedded: MqttSide, fleet: Fleet, clean_session: bool) -> None:
    """A bad CONNECT reusing a live client id must not wipe the live session or change its rights."""
    g = Gateway(embedded, fleet, fleet.gateways()[0]["client_id"])
    try:
        client_id = g.raw.c._client_id.decode()
        other = fleet.gateways()[1]["client_id"]
        for username, password, code in ((g.id, "wrong password", 134), (other, "x", 133)):
            raw = Raw(embedded.host, embedded.port, client_id, username, password, clean_session=clean_session)
            raw.close()
            assert raw.reason == code
        g.answer(g.request("sub_device_sync_request", {}), "add_sub_device_notify")
    finally:
        g.close()


def test_a_second_login_closes_the_first_connection(embedded: MqttSide, fleet: Fleet) -> None:
    first = Gateway(embedded, fleet, fleet.gateways()[0]["client_id"])
    dropped = threading.Event()

    def kicked(client: mqtt.Client, *args: Any) -> None:
        client.disconnect()  # no reconnect: it would kick the second one in turn
        dropped.set()

    first.raw.c.on_disconnect = kicked
    second = Gateway(embedded, fleet, first.id)
    try:
        assert dropped.wait(WAIT), "the older connection of the same client id was left open"
        first.close()
        second.answer(second.request("sub_device_sync_request", {}), "add_sub_device_notify")
    finally:
        first.close()
        second.close()


def test_acl_keeps_devices_under_their_own_topics(embedded: MqttSide, fleet: Fleet) -> None:
    gws = [g["client_id"] for g in fleet.gateways()[:2]]
    a = Gateway(embedded, fleet, gws[0])
    try:
        for foreign in (f"$oc/devices/{gws[1]}/sys/events/down", "$oc/devices/+/sys/events/up", "#", "plain/topic"):
            assert a.raw.subscribe(foreign)[0].is_failure, f"subscription to {foreign} was allowed"
        # publishing outside its own topics is dropped; its own request after it is answered
        a.send(("delete_sub_device_request", {"devices": ["x"]}, None), topic=f"$oc/devices/{gws[1]}/sys/events/up")
        own = a.request("delete_sub_device_request", {"devices": ["y"]})
        a.answer(own)
        assert [h[1] for h in embedded.platform.handled] == [gws[0]]
    finally:
        a.close()


def test_sys_topics_are_delivered_without_subscribing_once(embedded: MqttSide, fleet: Fleet) -> None:
    gid = fleet.gateways()[0]["client_id"]
    ts = iotda_timestamp()
    raw = Raw(embedded.host, embedded.port, iotda_client_id(gid, ts), gid, iotda_password(fleet.secret_of(gid), ts))
    try:
        up = f"$oc/devices/{gid}/sys/events/up"
        first = str(uuid.uuid4())
        body = {"services": [{"service_id": SERVICE_ID, "event_type": "sub_device_sync_request",
                              "event_id": first, "paras": {}}]}
        raw.c.publish(up, json.dumps(body), qos=1)
        assert raw.wait_messages(_is(first)), "no implicit delivery of sys/events/down"
        # an explicit subscription to the same filter must not double the deliveries
        assert not raw.subscribe(f"$oc/devices/{gid}/sys/events/down")[0].is_failure
        second, third = str(uuid.uuid4()), str(uuid.uuid4())
        for eid in (second, third):
            body["services"][0]["event_id"] = eid
            raw.c.publish(up, json.dumps(body), qos=1)
        assert raw.wait_messages(_is(third))
        # delivered in order: a second copy of `second` would have come before `third`
        assert len(raw.wait_messages(_is(second), timeout=0)) == 1
    finally:
        raw.close()


def test_broker_restart_on_same_port_and_platform_reconnects(embedded: MqttSide, fleet: Fleet) -> None:
    port, sessions = embedded.port, embedded.platform.sessions
    embedded.broker.restart()
    assert embedded.broker.port == port
    assert embedded.platform.wait_ready(10, sessions + 1), "platform did not reconnect after a broker restart"
    g = Gateway(embedded, fleet, fleet.gateways()[0]["client_id"])
    try:
        g.answer(g.request("sub_device_sync_request", {}), "add_sub_device_notify")
    finally:
        g.close()


def test_embedded_broker_refuses_a_taken_port(fleet: Fleet) -> None:
    with EmbeddedBroker(fleet) as first:
        second = EmbeddedBroker(fleet, port=first.port)
        with pytest.raises(RuntimeError, match="failed to start"):
            second.start(timeout=15)
        assert first.platform_password not in repr(first.authenticator)


# -- the platform ------------------------------------------------------------------------
def test_delete_answers_with_the_same_event_id_and_notifies(side: MqttSide, fleet: Fleet, gw: Gateway) -> None:
    kids = _children(fleet, gw.id)
    version = fleet.version_of(gw.id)
    eid = gw.request("delete_sub_device_request", {"devices": [*kids[:2], "nobody"]})
    (resp,) = gw.answer(eid)
    assert resp["event_type"] == "delete_sub_device_response"
    assert resp["paras"]["successful_devices"] == kids[:2]
    assert [f["device_id"] for f in resp["paras"]["failed_devices"]] == ["nobody"]
    assert all(f["error_code"] and f["error_msg"] for f in resp["paras"]["failed_devices"])
    assert len(resp["event_time"]) == 16 and resp["event_time"].endswith("Z")
    assert fleet.by_client_id(kids[0]) is None and fleet.by_client_id(kids[2]) is not None
    notify = gw.raw.wait_messages(_is(event_type="delete_sub_device_notify"))
    assert notify, "no delete_sub_device_notify"
    paras = _service(notify[0][2])["paras"]
    assert paras["version"] == fleet.version_of(gw.id) == version + 2
    assert [d["device_id"] for d in paras["devices"]] == kids[:2]
    assert all(d["parent_device_id"] == gw.id and d["node_id"] for d in paras["devices"])


def test_many_requests_in_flight_from_several_gateways(side: MqttSide, fleet: Fleet, faults: Faults) -> None:
    faults.update(mqtt_delay_ms=500)
    gws = [Gateway(side, fleet, g["client_id"]) for g in fleet.gateways()[:3]]
    try:
        sent = {g.id: [] for g in gws}
        for i in range(8):  # interleaved, without waiting for PUBACKs: all in flight at once
            for g in gws:
                sent[g.id].append(g.request("delete_sub_device_request", {"devices": [f"ghost-{i}"]}, wait=False))
        for g in gws:
            for i, eid in enumerate(sent[g.id]):
                (resp,) = g.answer(eid)
                assert resp["paras"]["failed_devices"][0]["device_id"] == f"ghost-{i}"
        platform = side.platform
        assert {h[3] for h in platform.handled} == {e for ids in sent.values() for e in ids}
        # every request was read before the first (delayed) answer left: answers do not queue on the delay
        first_answer = min(m[0] for g in gws for m in g.raw.messages)
        assert max(h[0] for h in platform.handled) < first_answer
        for g in gws:  # each gateway saw only its own answers
            assert {_service(m[2])["event_id"] for m in g.raw.messages} == set(sent[g.id])
    finally:
        for g in gws:
            g.close()


def test_one_message_with_several_services(side: MqttSide, fleet: Fleet, gw: Gateway) -> None:
    kids = _children(fleet, gw.id)
    e1, e2 = gw.send(
        ("delete_sub_device_request", {"devices": [kids[0]]}, None),
        ("sub_device_update_status", {"device_statuses": [{"device_id": kids[1], "status": "ONLINE"}]}, None),
    )
    assert gw.answer(e1)[0]["paras"]["successful_devices"] == [kids[0]]
    assert gw.answer(e2)[0]["paras"]["successful_devices"] == [{"device_id": kids[1], "status": "ONLINE"}]


def test_delay(side: MqttSide, gw: Gateway, faults: Faults) -> None:
    faults.update(mqtt_delay_ms=300)
    t0 = time.monotonic()
    eid = gw.request("delete_sub_device_request", {"devices": ["ghost"]})
    gw.answer(eid)
    received = gw.raw.wait_messages(_is(eid))[0][0]
    assert received - t0 >= 0.29


def test_drop(side: MqttSide, gw: Gateway, faults: Faults, fleet: Fleet) -> None:
    kid = _children(fleet, gw.id)[0]
    faults.update(mqtt_drop_rate=1.0)
    lost = gw.request("delete_sub_device_request", {"devices": [kid]})
    assert side.platform.wait_handled(1)
    faults.update(mqtt_drop_rate=0.0)
    later = gw.request("sub_device_sync_request", {})
    gw.answer(later)  # answers arrive in order: the dropped one would have come first
    assert gw.raw.wait_messages(_is(lost), timeout=0) == []
    assert fleet.by_client_id(kid) is None, "a dropped answer still means the request was carried out"


def test_duplicate(side: MqttSide, gw: Gateway, faults: Faults) -> None:
    faults.update(mqtt_duplicate_rate=1.0)
    eid = gw.request("delete_sub_device_request", {"devices": ["ghost"]})
    a, b = gw.answer(eid, count=2)
    assert a == b


def test_malformed(side: MqttSide, gw: Gateway, faults: Faults) -> None:
    faults.update(mqtt_malformed_rate=1.0)
    ids = [gw.request("delete_sub_device_request", {"devices": ["ghost"]}) for _ in range(6)]
    assert side.platform.wait_handled(6)
    faults.update(mqtt_malformed_rate=0.0)
    gw.answer(gw.request("sub_device_sync_request", {}))
    bad = [m[2] for m in gw.raw.messages if any(e.encode() in m[2] for e in ids)]
    assert len(bad) == 6, "every malformed answer still carries its event_id"
    for payload in bad:
        svc = _service(payload)
        paras = (svc or {}).get("paras") or {}
        assert svc is None or not isinstance(paras.get("successful_devices"), list) or not isinstance(
            paras.get("failed_devices"), list
        ), f"answer is not malformed: {payload!r}"
    assert any(_json(p) is None for p in bad) and any(_json(p) is not None for p in bad)


def test_fail_ids(side: MqttSide, gw: Gateway, faults: Faults, fleet: Fleet) -> None:
    kids = _children(fleet, gw.id)[:3]
    faults.update(mqtt_fail_ids={kids[1]}, mqtt_fail_code="IOTDA.099999")
    (resp,) = gw.answer(gw.request("delete_sub_device_request", {"devices": kids}))
    assert resp["paras"]["successful_devices"] == [kids[0], kids[2]]
    assert resp["paras"]["failed_devices"] == [
        {"device_id": kids[1], "error_code": "IOTDA.099999", "error_msg": FAIL_IDS_MSG}
    ]
    assert fleet.by_client_id(kids[1]) is not None


def test_more_than_50_devices_all_fail(side: MqttSide, gw: Gateway, fleet: Fleet) -> None:
    kids = _children(fleet, gw.id)
    ids = (kids + [f"ghost-{i}" for i in range(60)])[:51]
    (resp,) = gw.answer(gw.request("delete_sub_device_request", {"devices": ids}))
    assert resp["paras"]["successful_devices"] == []
    assert [f["device_id"] for f in resp["paras"]["failed_devices"]] == ids
    assert {f["error_code"] for f in resp["paras"]["failed_devices"]} == {ERR_TOO_MANY}
    assert _children(fleet, gw.id) == kids


def test_add_update_status_and_sync(side: MqttSide, gw: Gateway, fleet: Fleet) -> None:
    product = next(p for p in fleet.products() if p["product_type"] == 0)
    node = f"NODE-{uuid.uuid4().hex[:10]}"
    spec = {"node_id": node, "product_id": str(product["product_id"]), "name": "added-by-test"}
    eid = gw.request("add_sub_device_request", {"devices": [spec, {"node_id": node, "product_id": "0"}]})
    (resp,) = gw.answer(eid, "add_sub_device_response")
    (ok,) = resp["paras"]["successful_devices"]
    assert ok["node_id"] == node and ok["parent_device_id"] == gw.id
    assert len(resp["paras"]["failed_devices"]) == 1
    new_id = ok["device_id"]
    assert fleet.by_client_id(new_id)["parent_device_id"] == fleet.by_client_id(gw.id)["id"]
    notes = gw.raw.wait_messages(_is(event_type="add_sub_device_notify"))
    assert notes and [d["device_id"] for d in _service(notes[0][2])["paras"]["devices"]] == [new_id]

    eid = gw.request("sub_device_update_status", {"device_statuses": [
        {"device_id": new_id, "status": "ONLINE"}, {"device_id": "ghost", "status": "ONLINE"}]})
    (resp,) = gw.answer(eid, "sub_device_update_status_response")
    assert resp["paras"]["successful_devices"] == [{"device_id": new_id, "status": "ONLINE"}]
    assert [f["device_id"] for f in resp["paras"]["failed_devices"]] == ["ghost"]
    assert fleet.by_client_id(new_id)["online_status"] == 1

    eid = gw.request("sub_device_sync_request", {"version": 1})
    (note,) = gw.answer(eid, "add_sub_device_notify")
    assert sorted(d["device_id"] for d in note["paras"]["devices"]) == sorted(_children(fleet, gw.id))
    assert note["paras"]["version"] == fleet.version_of(gw.id)
    assert next(d for d in note["paras"]["devices"] if d["device_id"] == new_id)["status"] == "ONLINE"


def test_malformed_requests_are_skipped(side: MqttSide, gw: Gateway) -> None:
    for junk in (b"not json", b"[1, 2]", {"services": "x"}, {"services": [1, None]},
                 {"services": [{"service_id": SERVICE_ID, "event_type": "delete_sub_device_request",
                                "event_id": "e1", "paras": {"devices": "x"}}]},
                 {"services": [{"service_id": SERVICE_ID, "event_type": "delete_sub_device_request",
                                "event_id": "e2", "paras": None}]},
                 {"services": [{"service_id": SERVICE_ID, "event_type": "delete_sub_device_request",
                                "event_id": "e3", "paras": {"devices": [{"a": 1}, ["b"], 7]}}]},
                 {"services": [{"service_id": "other", "event_type": "x", "event_id": "e4"}]}):
        gw.publish(junk)
    # the platform survived: a good request is answered (and e3's odd ids got a failure answer)
    (resp,) = gw.answer(gw.request("delete_sub_device_request", {"devices": ["ghost"]}))
    assert resp["paras"]["failed_devices"][0]["device_id"] == "ghost"
    (odd,) = gw.answer("e3")
    assert len(odd["paras"]["failed_devices"]) == 3
    assert [h[3] for h in side.platform.handled][-2:] == ["e3", resp["event_id"]]


def test_request_without_event_id_gets_one(side: MqttSide, gw: Gateway) -> None:
    gw.publish({"services": [{"service_id": SERVICE_ID, "event_type": "sub_device_sync_request", "paras": {}}]})
    notes = gw.raw.wait_messages(_is(event_type="add_sub_device_notify"))
    assert notes and len(_service(notes[0][2])["event_id"]) == 36


def test_platform_start_times_out_on_a_silent_broker(fleet: Fleet, faults: Faults) -> None:
    with socket.socket() as sock:  # a bound, never-listening port: connections are refused
        sock.bind(("127.0.0.1", 0))
        side = MqttSide(fleet, faults, external=("127.0.0.1", sock.getsockname()[1]))
        with pytest.raises(TimeoutError, match="could not connect"):
            side.start(timeout=0.5)
    assert side.platform is None and side.broker is None
