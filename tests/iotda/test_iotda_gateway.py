"""romakit's IoTDA gateway against real brokers: the embedded sandbox broker (always) and
the local Mosquitto (when it answers on 127.0.0.1:1883), each with the IoTDA platform
simulator attached. No mocks: paho talks to a broker over loopback sockets.

On Mosquitto, which other test runs share, every test uses a gateway with a random id
(created in the fleet), so no other platform simulator answers it and no other client
takes its client id.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import secrets
import socket
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import pytest

from romakit import outcomes as oc
from romakit._net import is_loopback
from romakit.errors import ConnectRefused, InputError, MqttError
from romakit.iotda import envelope as env
from romakit.iotda.gateway import Gateway
from romakit.sim.faults import Faults
from romakit.sim.fleet import ERR_NOT_CHILD, Fleet
from romakit.sim.mqtt import MqttSide

pytestmark = pytest.mark.timeout(60)

MOSQUITTO = ("127.0.0.1", 1883)


@dataclass
class Sandbox:
    """A fleet, its faults, and the MQTT side (broker + platform simulator) in front of it."""

    kind: str
    fleet: Fleet
    faults: Faults
    side: MqttSide
    gateways: list[Gateway] = field(default_factory=list)

    @property
    def handled(self) -> list:
        assert self.side.platform is not None
        return self.side.platform.handled

    def new_gateway(self, children: int) -> tuple[str, list[str]]:
        """A gateway with a random id and ``children`` children; returns (id, child ids)."""
        products = self.fleet.products()
        gw_product = next(p["product_id"] for p in products if p["product_type"] == 1)
        child_product = next(p["product_id"] for p in products if p["product_type"] == 0)
        gid = f"rkt-{secrets.token_hex(5)}"
        gw = self.fleet.create(device_name=f"gw {gid}", product_id=gw_product, node_id=f"n-{gid}", client_id=gid)
        kids = [
            self.fleet.create(device_name=f"child {i}", product_id=child_product, node_id=f"{gid}-{i}",
                              parent_device_id=gw["id"])["client_id"]
            for i in range(children)
        ]
        return gid, kids

    def gateway(self, device_id: str, **kw: object) -> Gateway:
        kw.setdefault("timeout", 5.0)
        kw.setdefault("connect_timeout", 5.0)
        gw = Gateway(self.side.host, self.side.port, device_id, self.fleet.secret_of(device_id), **kw)
        self.gateways.append(gw)
        return gw

    def children(self, gateway_id: str) -> list[str]:
        dev = self.fleet.by_client_id(gateway_id)
        return [c["client_id"] for c in self.fleet.children_of(dev["id"])]

    def platform_client(self) -> mqtt.Client:
        """A plain paho client allowed to publish to any gateway's down topic."""
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"rkt-test-{secrets.token_hex(4)}",
                        protocol=mqtt.MQTTv311)
        if self.side.broker is not None:
            c.username_pw_set(self.side.broker.platform_username, self.side.broker.platform_password)
        c.connect(self.side.host, self.side.port, keepalive=30)
        c.loop_start()
        return c

    def stop(self) -> None:
        for gw in self.gateways:
            gw.close()
        self.side.stop()


BROKERS = ["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)]


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> str:
    if request.param == "mosquitto":
        request.getfixturevalue("mosquitto")  # skips, saying why, when Mosquitto does not answer
    return request.param


@pytest.fixture
def make_sandbox(broker: str):
    made: list[Sandbox] = []

    def make(devices: int = 40, seed: int = 11) -> Sandbox:
        fleet = Fleet(devices, seed)
        faults = Faults(seed=3)
        side = MqttSide(fleet, faults, external=MOSQUITTO if broker == "mosquitto" else None)
        side.start()
        mq = Sandbox(broker, fleet, faults, side)
        made.append(mq)
        return mq

    yield make
    for mq in made:
        mq.stop()


@pytest.fixture
def mq(make_sandbox) -> Sandbox:
    return make_sandbox()


def _rows_once(res, ids: list[str]) -> None:
    """Every requested id has exactly one row."""
    got = res.frame["device_id"].tolist()
    assert len(got) == len(ids) and sorted(got) == sorted(ids)


# -- connecting -----------------------------------------------------------------------------


def test_connect_repr_and_close(mq: Sandbox) -> None:
    gid, _ = mq.new_gateway(0)
    secret = mq.fleet.secret_of(gid)
    gw = mq.gateway(gid)
    assert "connected=False" in repr(gw)
    with gw:
        assert gw.connected
        text = repr(gw) + str(vars(gw))
        assert gid in repr(gw) and "connected=True" in repr(gw)
        assert secret not in text
    assert not gw.connected and "connected=False" in repr(gw)
    with pytest.raises(MqttError, match="not connected"):
        gw.delete_sub_devices(["a"])


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_bad_secret_is_refused_with_the_connack_code(mq: Sandbox) -> None:
    gid, _ = mq.new_gateway(0)
    gw = Gateway(mq.side.host, mq.side.port, gid, "0123456789abcdef", connect_timeout=5)
    with pytest.raises(ConnectRefused) as info:
        gw.connect()
    assert info.value.code == 4 and "password" in info.value.reason
    assert "0123456789abcdef" not in str(info.value)
    assert not gw.connected
    unknown = Gateway(mq.side.host, mq.side.port, "no-such-gateway", "x", connect_timeout=5)
    with pytest.raises(ConnectRefused) as info:
        with unknown:
            pass
    assert info.value.code == 4


def test_unreachable_broker_is_an_mqtt_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = Gateway("127.0.0.1", port, "gw-1", "secret", connect_timeout=2)
    with pytest.raises(MqttError, match="could not connect"):
        gw.connect()


def test_plain_mqtt_off_loopback_is_refused_before_connecting() -> None:
    with pytest.raises(InputError, match="allow_insecure"):
        Gateway("iot-mqtts.cn-north-4.myhuaweicloud.com", 1883, "gw-1", "secret")
    with pytest.raises(InputError, match="ca_file"):
        Gateway("127.0.0.1", 1883, "gw-1", "secret", ca_file="/tmp/ca.pem")
    assert Gateway("iot.example.com", 8883, "gw-1", "secret").tls is True
    assert Gateway("iot.example.com", 1883, "gw-1", "secret", allow_insecure=True).tls is False
    assert Gateway("localhost", 1883, "gw-1", "secret").tls is False
    for bad in ({"keepalive": 10}, {"port": 0}, {"sig": 2}, {"max_in_flight": 0}, {"timeout": 0}):
        with pytest.raises(InputError):
            Gateway("127.0.0.1", bad.pop("port", 1883), "gw-1", "secret", **bad)
    with pytest.raises(InputError):
        Gateway("127.0.0.1", 1883, "gw/1", "secret")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com")


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_tls_is_verified_not_silently_plain(mq: Sandbox) -> None:
    gid, _ = mq.new_gateway(0)
    gw = mq.gateway(gid, tls=True, connect_timeout=1.0)  # the sandbox broker speaks plain MQTT: the handshake must fail
    with warnings.catch_warnings():  # paho 2.2 leaves the socket of a failed handshake unclosed
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(MqttError, match="could not connect"):
            gw.connect()
        gc.collect()


# -- refusing bad input -----------------------------------------------------------------------


def test_bad_ids_are_refused_before_anything_is_published(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(3)
    with mq.gateway(gid) as gw:
        with pytest.raises(InputError, match=r"nothing was sent.*'bad/id'"):
            gw.delete_sub_devices([kids[0], "bad/id", 7, ""])
        with pytest.raises(InputError, match="chunk_size"):
            gw.delete_sub_devices(kids, chunk_size=51)
        with pytest.raises(InputError):
            gw.delete_sub_devices([])
        with pytest.raises(InputError, match="product_id"):
            gw.add_sub_devices([{"node_id": "n1"}])
        with pytest.raises(InputError, match="unknown key"):
            gw.add_sub_devices([{"node_id": "n1", "product_id": "1", "nodeid": "typo"}])
        with pytest.raises(InputError, match="ONLINE or OFFLINE"):
            gw.update_sub_device_status({kids[0]: "ABNORMAL"})
        with pytest.raises(InputError, match="chunk_size"):
            gw.update_sub_device_status({kids[0]: "ONLINE"}, chunk_size=101)
        assert gw.stats["published"] == 0
    assert mq.handled == []
    assert mq.children(gid) == kids


# -- deleting -------------------------------------------------------------------------------------


def test_many_requests_in_flight_are_each_matched(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(200)
    mq.faults.update(mqtt_delay_ms=300)  # answers lag, so the window fills up
    with mq.gateway(gid, max_in_flight=8, rate=None) as gw:
        res = gw.delete_sub_devices(kids, chunk_size=5)
        stats = gw.stats
    assert res.counts["success"] == 200, res.summary()
    _rows_once(res, kids)
    # one more message than the 40 deletes: the sub-device sync that read the snapshot, once a run
    assert stats["published"] - 1 == stats["answered"] == 40
    assert stats["peak_pending"] == 8
    assert stats["timeouts"] == stats["duplicates"] == stats["unmatched"] == stats["malformed"] == 0
    per_chunk = res.frame.groupby("chunk", observed=True)["event_id"].agg(["nunique", "first"])
    assert (per_chunk["nunique"] == 1).all() and per_chunk["first"].nunique() == 40
    # each chunk's rows carry the event_id of the request that held exactly those ids
    handled = {h[3]: h[4] for h in mq.handled}
    assert all(handled[e] == 5 for e in per_chunk["first"])
    assert mq.children(gid) == []


def test_delete_more_than_2000_children(make_sandbox, broker: str) -> None:
    if broker == "embedded":
        mq = make_sandbox(devices=10_000, seed=13)  # this fleet's biggest gateway has 3,184 children
        top = max(mq.fleet.gateways(), key=lambda g: len(mq.fleet.children_of(g["id"])))
        gid, kids = top["client_id"], mq.children(top["client_id"])
    else:
        mq = make_sandbox()
        gid, kids = mq.new_gateway(2000)
    assert len(kids) >= 2000
    with mq.gateway(gid, rate=None) as gw:
        res = gw.delete_sub_devices(kids, rollout=False)
        stats = gw.stats
    _rows_once(res, kids)
    assert res.ok, res.summary()
    assert res.frame["chunk"].nunique() == -(-len(kids) // 50)
    assert stats["published"] - 1 == stats["answered"] == res.frame["chunk"].nunique()  # + the snapshot's sync
    assert mq.children(gid) == []
    assert all(mq.fleet.by_client_id(k) is None for k in kids)


def test_ids_that_are_not_children_fail_with_the_platform_code(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(3)
    with mq.gateway(gid) as gw:
        res = gw.delete_sub_devices(kids + ["not-a-child"])
    f = res.frame.set_index("device_id")
    assert f.loc["not-a-child", "outcome"] == "failed" and f.loc["not-a-child", "error_code"] == ERR_NOT_CHILD
    assert (f.loc[kids, "outcome"] == "success").all()


# -- faults ------------------------------------------------------------------------------------------


def test_delayed_answers_still_succeed(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(60)
    mq.faults.update(mqtt_delay_ms=300)
    with mq.gateway(gid, timeout=5) as gw:
        res = gw.delete_sub_devices(kids)
    assert res.ok
    assert (res.frame["latency_ms"] >= 300).all()


def test_dropped_answers_end_unknown_and_are_not_resent(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(120)
    mq.faults.update(mqtt_drop_rate=1.0)
    with mq.gateway(gid, timeout=1.0) as gw:  # (no snapshot: its sync would be dropped too, nothing deleted)
        res = gw.delete_sub_devices(kids, rollout=False, keep_snapshot=False)
        stats = gw.stats
    _rows_once(res, kids)
    assert res.counts["unknown"] == 120
    assert set(res.frame["error_code"]) == {oc.TIMEOUT}
    assert res.frame["event_id"].notna().all() and res.frame["event_id"].nunique() == 3
    assert stats["timeouts"] == 3 and stats["published"] == 3
    assert len(mq.handled) == 3  # never re-sent: a second delete would report "not found"
    # the platform did delete them: that is exactly why the outcome is "unknown", not "failed"
    assert mq.children(gid) == []
    assert sorted(res.retry_ids()) == sorted(kids)


def test_duplicate_answers_are_not_counted_twice(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(100)
    mq.faults.update(mqtt_duplicate_rate=1.0)
    with mq.gateway(gid) as gw:
        res = gw.delete_sub_devices(kids, rollout=False)
        assert gw.recorder.wait(lambda rows: sum(r.match == "duplicate" for r in rows) == 2, timeout=5)
        stats = gw.stats
        events = gw.events()
    _rows_once(res, kids)
    assert res.ok
    assert stats["answered"] == 2 and stats["duplicates"] == 2
    responses = events[events["event_type"] == env.DELETE_RESPONSE]
    assert sorted(responses["match"]) == ["duplicate", "duplicate", "matched", "matched"]


def test_malformed_answers_are_recorded_and_end_unknown(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(400)
    mq.faults.update(mqtt_malformed_rate=1.0)
    with mq.gateway(gid, timeout=3.0) as gw:  # (no snapshot: its sync's answer would be malformed too)
        res = gw.delete_sub_devices(kids, rollout=False, keep_snapshot=False)
        stats = gw.stats
        events = gw.events()
        gw_alive = gw.connected
    _rows_once(res, kids)
    assert res.counts["unknown"] == 400
    # even a payload cut short still names its event_id: the chunk ends at once, not after the timeout
    assert set(res.frame["error_code"]) == {oc.MALFORMED}
    assert stats["malformed"] == 8 and stats["timeouts"] == 0 and stats["answered"] == 0
    assert (events["match"] == "malformed").sum() == 8 and events.loc[events["match"] == "malformed", "problem"].notna().all()
    assert gw_alive


def test_fail_ids_end_failed_with_the_code(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(30)
    mq.faults.update(mqtt_fail_ids=set(kids[:4]), mqtt_fail_code="IOTDA.014016")
    with mq.gateway(gid) as gw:
        res = gw.delete_sub_devices(kids)
    f = res.frame.set_index("device_id")
    assert (f.loc[kids[:4], "outcome"] == "failed").all()
    assert set(f.loc[kids[:4], "error_code"]) == {"IOTDA.014016"}
    assert f.loc[kids[:4], "error_msg"].str.contains("mqtt_fail_ids").all()
    assert (f.loc[kids[4:], "outcome"] == "success").all()
    assert sorted(mq.children(gid)) == sorted(kids[:4])
    assert res.retry_ids() == []  # the platform said no: not a transient cause


def test_stray_and_broken_messages_never_stop_the_gateway(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(5)
    with mq.gateway(gid) as gw:
        pub = mq.platform_client()
        try:
            topic = env.down_topic(gid)
            stray = {"object_device_id": gid, "services": [
                {"service_id": "$sub_device_manager", "event_type": env.DELETE_RESPONSE,
                 "event_id": "not-ours", "paras": {"successful_devices": [kids[0]], "failed_devices": []}},
                {"service_id": "$ota", "event_type": "version_query", "paras": {}},
            ]}
            for payload in (json.dumps(stray).encode(), b"\x00\xffgarbage", b'{"services": 5}'):
                pub.publish(topic, payload, qos=1).wait_for_publish(5)
        finally:
            pub.disconnect()
            pub.loop_stop()
        assert gw.recorder.wait(lambda rows: len(rows) == 4, timeout=5)
        res = gw.delete_sub_devices(kids)  # the network thread survived
        stats = gw.stats
        events = gw.events()
    assert res.ok
    assert stats["unmatched"] == 1 and stats["other"] == 1 and stats["malformed"] == 2
    assert list(events["match"][:4]) == ["unmatched", "other", "malformed", "malformed"]


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_link_lost_while_waiting_ends_unknown_then_reconnects(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(10)
    mq.faults.update(mqtt_delay_ms=3000)
    with mq.gateway(gid, timeout=10.0) as gw, ThreadPoolExecutor(1) as pool:
        running = pool.submit(gw.delete_sub_devices, kids)
        assert mq.side.platform.wait_handled(2, timeout=8)  # the snapshot's sync, then the delete
        mq.side.broker.restart()
        res = running.result(timeout=15)
        assert gw.wait_connected(15)
        stats = gw.stats
    assert res.counts["unknown"] == 10
    assert set(res.frame["error_code"]) == {oc.CONNECTION_LOST}
    assert stats["link_lost"] == 1 and stats["reconnects"] >= 1


# -- events, add, status, sync -----------------------------------------------------------------------


def test_events_record_notifies_and_sync(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(12)
    with mq.gateway(gid) as gw:
        mark = gw.recorder.total
        res = gw.delete_sub_devices(kids[:5])
        assert res.ok
        assert gw.recorder.wait_for_event(env.DELETE_NOTIFY, since=mark, timeout=5)
        mark = gw.recorder.total
        eid = gw.sync_sub_devices()
        assert gw.recorder.wait_for_event(env.ADD_NOTIFY, since=mark, timeout=5)
        events = gw.events()
        stats = gw.stats
    deleted = events[events["event_type"] == env.DELETE_NOTIFY].iloc[0]
    assert deleted["match"] == "notify" and sorted(deleted["device_ids"]) == sorted(kids[:5])
    synced = events[events["event_type"] == env.ADD_NOTIFY].iloc[-1]
    assert sorted(synced["device_ids"]) == sorted(kids[5:]) and synced["n_devices"] == 7
    assert synced["version"] == mq.fleet.version_of(gid)
    assert len(eid) == 36
    assert stats["notifies"] == 3 and stats["published"] == 3  # the deletion's snapshot read a sync too
    assert set(events.columns) >= {"received_at", "event_type", "event_id", "match", "version", "n_devices", "device_ids"}


def test_add_children_then_update_their_status(mq: Sandbox) -> None:
    gid, _ = mq.new_gateway(0)
    product = next(p["product_id"] for p in mq.fleet.products() if p["product_type"] == 0)
    devices = [{"node_id": f"{gid}-new-{i}", "product_id": product, "name": f"new {i}"} for i in range(3)]
    devices.append({"node_id": f"{gid}-bad", "product_id": "999"})
    with mq.gateway(gid) as gw:
        added = gw.add_sub_devices(devices)
        f = added.frame.set_index("device_id")
        assert (f.loc[[d["node_id"] for d in devices[:3]], "outcome"] == "success").all()
        assert f.loc[f"{gid}-bad", "outcome"] == "failed" and f.loc[f"{gid}-bad", "error_code"]
        kids = mq.children(gid)
        assert len(kids) == 3
        status = gw.update_sub_device_status({kids[0]: "online", kids[1]: "OFFLINE", "not-mine": "ONLINE"})
    s = status.frame.set_index("device_id")
    assert s.loc[kids[0], "outcome"] == "success" and s.loc[kids[1], "outcome"] == "success"
    assert s.loc["not-mine", "outcome"] == "failed" and s.loc["not-mine", "error_code"] == ERR_NOT_CHILD
    assert mq.fleet.by_client_id(kids[0])["online_status"] == 1
    assert mq.fleet.by_client_id(kids[1])["online_status"] == 2


def test_async_twin_runs_on_the_callers_loop(mq: Sandbox) -> None:
    gid, kids = mq.new_gateway(60)

    async def main() -> object:
        with mq.gateway(gid) as gw:
            return await gw.aio.delete_sub_devices(kids, progress=False)

    res = asyncio.run(main())
    assert res.ok and len(res) == 60


def test_no_secret_or_password_in_logs(mq: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    gid, kids = mq.new_gateway(3)
    secret = mq.fleet.secret_of(gid)
    caplog.set_level(logging.DEBUG, logger="romakit")
    with mq.gateway(gid) as gw:
        gw.delete_sub_devices(kids)
        password = None
        client = gw.aio.session.client
        if client is not None:
            password = client._password.decode() if isinstance(client._password, bytes) else client._password
    assert caplog.records  # paho and romakit did log
    assert password and len(password) == 64
    text = caplog.text
    assert secret not in text and password not in text


def test_threads_are_not_left_behind(mq: Sandbox) -> None:
    gid, _ = mq.new_gateway(0)
    before = {t.ident for t in threading.enumerate()}
    with mq.gateway(gid):
        pass
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("paho")]
    assert leftover == []


def test_runs_are_journaled_with_the_gateway_address_and_report_progress(mq: Sandbox) -> None:
    from romakit.replay import journal
    from romakit.store.reader import operation_record

    gid, kids = mq.new_gateway(120)
    secret = mq.fleet.secret_of(gid)
    calls: list[tuple[int, int]] = []
    with mq.gateway(gid) as gw:
        res = gw.delete_sub_devices(kids, rollout=False, progress=lambda done, total: calls.append((done, total)))
    assert res.ok
    assert calls and calls[-1] == (120, 120) and len(calls) == 3
    ops = journal()
    row = ops[ops["op_id"] == res.op_id].iloc[0]
    assert row["operation"] == "delete_sub_devices" and row["target"] == gid
    assert row["client"] == f"{mq.side.host}:{mq.side.port}"
    client = operation_record(res.op_id)["client"]
    assert client["kind"] == "gateway" and client["gateway_id"] == gid and client["port"] == mq.side.port
    assert secret not in json.dumps(client)
    again = journal(res.op_id)
    assert sorted(again.frame["device_id"]) == sorted(kids) and again.counts["success"] == 120


# -- the session and the async twin ------------------------------------------------------------------


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_a_refused_login_is_not_retried_and_leaves_no_thread(mq: Sandbox) -> None:
    gid, _ = mq.new_gateway(0)
    authenticator = mq.side.broker.authenticator
    logins: list[str] = []
    again = threading.Event()
    check_login = authenticator.check_login

    def counting(client_id, *args, **kw):
        if client_id.startswith(gid):
            logins.append(client_id)
            if len(logins) > 1:
                again.set()
        return check_login(client_id, *args, **kw)

    authenticator.check_login = counting
    try:
        before = {t.ident for t in threading.enumerate()}
        gw = Gateway(mq.side.host, mq.side.port, gid, "0123456789abcdef", connect_timeout=5)
        with pytest.raises(ConnectRefused) as info:
            gw.connect()
        assert info.value.code == 4
        leftover = [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("paho")]
        assert leftover == []
        assert not again.wait(2.5), logins  # paho's reconnect back-off starts at 1 s
        assert gw.aio.session.client is None and not gw.connected
        with pytest.raises(MqttError, match="not connected"):
            gw.delete_sub_devices(["a"])
    finally:
        authenticator.check_login = check_login


def test_async_gateway_end_to_end(mq: Sandbox) -> None:
    import romakit as rk

    gid, kids = mq.new_gateway(30)
    product = next(p["product_id"] for p in mq.fleet.products() if p["product_type"] == 0)

    async def main() -> tuple:
        gw = rk.AsyncGateway(mq.side.host, mq.side.port, gid, mq.fleet.secret_of(gid), timeout=5.0)
        assert gw.kind == "gateway" and gw.target == gid and "AsyncGateway(" in repr(gw) and not gw.connected
        async with gw:
            assert gw.connected and await gw.wait_connected(1)
            deleted = await gw.delete_sub_devices(kids[:20], progress=False)
            added = await gw.add_sub_devices([{"node_id": f"{gid}-new", "product_id": product}], progress=False)
            status = await gw.update_sub_device_status({kids[20]: "online"}, progress=False)
            eid = await gw.sync_sub_devices()
            ev = await gw.request(env.DELETE_REQUEST, env.delete_paras(kids[21:23]))
            stats = gw.stats
        assert not gw.connected and not await gw.wait_connected(0.1)
        return deleted, added, status, eid, ev, stats

    deleted, added, status, eid, ev, stats = asyncio.run(main())
    assert deleted.ok and len(deleted) == 20 and added.ok and status.ok and len(eid) == 36
    assert sorted(d["device_id"] for d in ev.successful) == sorted(kids[21:23])
    # the deletion's default rollout starts slow: its 20 children went in two requests (10, then 10)
    # and the deletion read its snapshot with one sync (a notify, not an answer)
    assert stats["published"] == stats["answered"] + 2 == 7 and stats["pending"] == 0
    assert list(stats) == ["published", "answered", "timeouts", "link_lost", "duplicates", "late", "unmatched",
                           "malformed", "notifies", "other", "reconnects", "refused", "peak_pending", "pending"]


def test_sync_gateway_mirrors_its_async_core(mq: Sandbox) -> None:
    import inspect

    gid, kids = mq.new_gateway(4)
    with mq.gateway(gid) as gw:
        assert gw.aio.device_id == gw.device_id == gw.target == gid and gw.identity()["gateway_id"] == gid
        assert gw.timeout == 5.0 and gw.port == mq.side.port and gw.tls is False and gw.ca_file is None
        ev = gw.request(env.DELETE_REQUEST, env.delete_paras(kids[:1]))  # sync, like LinkClient.request
        assert [d["device_id"] for d in ev.successful] == kids[:1]
        assert not hasattr(gw, "adelete_sub_devices") and not inspect.iscoroutinefunction(gw.delete_sub_devices)
        res = asyncio.run(gw.aio.delete_sub_devices(kids[1:], progress=False))
    assert res.ok and len(res) == 3
    with pytest.raises(AttributeError):
        gw.timeout = 1.0  # read-only: set it when building the gateway
    assert list(inspect.signature(Gateway).parameters)[:5] == ["host", "port", "device_id", "secret", "tls"]
    assert "event_id" in (Gateway.delete_sub_devices.__doc__ or "")
