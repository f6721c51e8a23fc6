"""IoTDA login values, envelopes and the down-event recorder: pure units, no network."""

from __future__ import annotations

import json
import pickle
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from romakit.errors import InputError
from romakit.iotda import auth
from romakit.iotda import envelope as env
from romakit.iotda.recorder import DUPLICATE, MATCHED, NOTIFY, EventRecorder, Record

# -- auth ---------------------------------------------------------------------------------


def test_password_matches_the_documented_check_value() -> None:
    # IoTDA reference: secret 12345678, timestamp 2025041401
    assert auth.password("12345678", "2025041401") == (
        "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
    )
    assert auth.password(auth.Secret("12345678"), "2025041401") == auth.password("12345678", "2025041401")


def test_timestamp_and_client_id_are_utc_hours() -> None:
    beijing = timezone(timedelta(hours=8))
    when = datetime(2025, 4, 14, 9, 59, 59, tzinfo=beijing)  # 01:59:59 UTC
    assert auth.timestamp(when) == "2025041401"
    assert auth.client_id("gw-1", "2025041401") == "gw-1_0_0_2025041401"
    assert auth.client_id("gw-1", "2025041401", sig=1) == "gw-1_0_1_2025041401"
    with pytest.raises(InputError):
        auth.client_id("gw-1", "2025041401", sig=2)
    with pytest.raises(InputError):
        auth.timestamp(datetime(2025, 4, 14, 1))  # naive: ambiguous


def test_login_hides_the_password_and_the_secret_never_prints() -> None:
    when = datetime(2025, 4, 14, 1, tzinfo=UTC)
    lg = auth.login("gw-1", "12345678", when=when)
    assert (lg.client_id, lg.username) == ("gw-1_0_0_2025041401", "gw-1")
    assert lg.password.startswith("c75150e6")
    assert "c75150e6" not in repr(lg)
    s = auth.Secret("12345678")
    assert "12345678" not in repr(s) and "12345678" not in str(s) and "12345678" not in f"{s}"
    assert s.reveal() == "12345678"
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(InputError):
        auth.Secret("")


# -- building -----------------------------------------------------------------------------


def test_event_time_is_utc_compact() -> None:
    when = datetime(2015, 12, 12, 20, 12, 12, tzinfo=timezone(timedelta(hours=8)))
    assert env.format_event_time(when) == "20151212T121212Z"
    assert env.parse_event_time("20151212T121212Z") == datetime(2015, 12, 12, 12, 12, 12, tzinfo=UTC)
    assert env.parse_event_time("2015-12-12 12:12:12") is None  # the SDK's local format
    assert env.parse_event_time(None) is None
    with pytest.raises(ValueError):
        env.format_event_time(datetime(2015, 12, 12))


def test_build_delete_request_has_the_documented_shape() -> None:
    body = json.loads(env.build("gw-1", env.DELETE_REQUEST, env.delete_paras(["a", "b"]), event_id="e-1"))
    assert body["object_device_id"] == "gw-1"
    (svc,) = body["services"]
    assert svc["service_id"] == "$sub_device_manager"
    assert svc["event_type"] == "delete_sub_device_request"
    assert svc["event_id"] == "e-1"
    assert env.parse_event_time(svc["event_time"]) is not None
    assert svc["paras"] == {"devices": ["a", "b"]}
    fresh = json.loads(env.build("gw-1", env.SYNC_REQUEST, env.sync_paras()))["services"][0]
    assert len(fresh["event_id"]) == 36 and fresh["paras"] == {}
    assert env.up_topic("gw-1") == "$oc/devices/gw-1/sys/events/up"
    assert env.down_topic("gw-1") == "$oc/devices/gw-1/sys/events/down"


def test_request_limits_are_enforced_by_the_builders() -> None:
    with pytest.raises(ValueError, match="1..50"):
        env.delete_paras([f"d{i}" for i in range(51)])
    with pytest.raises(ValueError):
        env.delete_paras([])
    with pytest.raises(ValueError, match="1..100"):
        env.status_paras((f"d{i}", "ONLINE") for i in range(101))
    assert env.status_paras([("d1", "OFFLINE")]) == {"device_statuses": [{"device_id": "d1", "status": "OFFLINE"}]}
    assert env.sync_paras(3) == {"version": 3}


# -- reading ------------------------------------------------------------------------------


def _down(event_type: str, paras: object, event_id: object = "e-1", **extra: object) -> bytes:
    svc = {"service_id": "$sub_device_manager", "event_type": event_type, "event_time": "20151212T121212Z",
           "event_id": event_id, "paras": paras, **extra}
    return json.dumps({"object_device_id": "gw-1", "services": [svc]}).encode()


def test_parse_the_documented_delete_response() -> None:
    payload = _down(env.DELETE_RESPONSE, {
        "successful_devices": ["c6b39067b0325db34663d3ef421a42f6_subdevice11"],
        "failed_devices": [{"device_id": "c6b39067b0325db34663d3ef421a42f6_subdevice12",
                            "error_code": "XXX", "error_msg": "XXXX"}],
    }, event_id="40cc9ab1-3579-488c-95c6-c18941c99eb4")
    msg = env.parse_down(payload)
    assert msg.problem is None and msg.object_device_id == "gw-1"
    (ev,) = msg.events
    assert ev.is_response and not ev.is_notify and ev.problem is None
    assert ev.event_id == "40cc9ab1-3579-488c-95c6-c18941c99eb4"
    assert ev.event_time_utc == datetime(2015, 12, 12, 12, 12, 12, tzinfo=UTC)
    assert [d["device_id"] for d in ev.successful] == ["c6b39067b0325db34663d3ef421a42f6_subdevice11"]
    assert ev.failed == (env.Failure("c6b39067b0325db34663d3ef421a42f6_subdevice12", "XXX", "XXXX"),)
    assert ev.device_ids == ["c6b39067b0325db34663d3ef421a42f6_subdevice11",
                             "c6b39067b0325db34663d3ef421a42f6_subdevice12"]


def test_absent_failed_devices_is_tolerated() -> None:
    # the official SDK crashes here
    (ev,) = env.parse_down(_down(env.DELETE_RESPONSE, {"successful_devices": ["a"]})).events
    assert ev.problem is None and ev.failed == () and ev.device_ids == ["a"]


def test_unreadable_items_are_skipped_and_noted() -> None:
    (ev,) = env.parse_down(_down(env.DELETE_RESPONSE, {
        "successful_devices": ["a", 7, None, {"device_id": "b"}],
        "failed_devices": [{"device_id": "c", "error_code": 42}, "junk", {"error_code": "X"}],
    })).events
    assert ev.problem is None
    assert [d["device_id"] for d in ev.successful] == ["a", "b"]  # a bare number is not an id
    assert ev.failed == (env.Failure("c", "42", None),)
    assert ev.notes == "4 unreadable item(s) skipped"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"services": []}', "no 'services'"),
        (b'{"services": {"a": 1}}', "no 'services'"),
    ],
)
def test_unreadable_messages_become_problems(payload: bytes, problem: str) -> None:
    msg = env.parse_down(payload)
    assert msg.events == () and problem in msg.problem


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (_down(env.DELETE_RESPONSE, {}), "neither"),
        (_down(env.DELETE_RESPONSE, {"successful_devices": "all", "failed_devices": None}), "not a list"),
        (_down(env.DELETE_RESPONSE, None), "'paras'"),
        (_down(env.DELETE_RESPONSE, {"successful_devices": []}, event_id=None), "without 'event_id'"),
        (_down(env.DELETE_RESPONSE, {"successful_devices": []}, event_id=12), "without 'event_id'"),
        (_down(env.DELETE_NOTIFY, {"version": 3}), "'devices'"),
        (json.dumps({"services": [{"event_type": "x"}]}).encode(), "service_id"),
        (json.dumps({"services": ["x"]}).encode(), "not an object"),
    ],
)
def test_misshapen_events_carry_a_problem(payload: bytes, problem: str) -> None:
    (ev,) = env.parse_down(payload).events
    assert ev.problem is not None and problem in ev.problem


def test_add_and_status_responses_and_notifies() -> None:
    (add,) = env.parse_down(_down(env.ADD_RESPONSE, {
        "successful_devices": [{"device_id": "gw_c1", "node_id": "n1", "name": "x", "status": "INACTIVE"}],
        "failed_devices": [{"node_id": "n2", "product_id": 5, "error_code": "E", "error_msg": "dup"}],
    })).events
    assert add.successful[0]["node_id"] == "n1"
    assert add.failed[0].key == "n2" and add.failed[0].product_id == "5"
    (st_ev,) = env.parse_down(_down(env.STATUS_RESPONSE, {
        "successful_devices": [{"device_id": "c1", "status": "ONLINE"}], "failed_devices": []})).events
    assert st_ev.successful == ({"device_id": "c1", "status": "ONLINE"},)
    (notify,) = env.parse_down(_down(env.DELETE_NOTIFY, {
        "devices": [{"parent_device_id": "gw", "device_id": "c1", "node_id": "n"}, 5], "version": "12"})).events
    assert notify.is_notify and notify.version == 12 and notify.device_ids == ["c1"]
    assert notify.notes == "1 unreadable item(s) skipped"


def test_several_services_and_foreign_services_in_one_message() -> None:
    body = {"object_device_id": "gw-1", "services": [
        {"service_id": "$ota", "event_type": "version_query", "paras": {}},
        {"service_id": "$sub_device_manager", "event_type": env.DELETE_RESPONSE, "event_id": "a",
         "paras": {"successful_devices": ["x"]}},
        {"service_id": "$sub_device_manager", "event_type": env.DELETE_RESPONSE, "event_id": "b",
         "paras": {"failed_devices": [{"device_id": "y", "error_code": "E", "error_msg": "m"}]}},
    ]}
    evs = env.parse_down(json.dumps(body)).events
    assert [e.is_sub_device_event for e in evs] == [False, True, True]
    assert evs[0].problem is None  # another service is not malformed, just not ours
    assert [e.event_id for e in evs[1:]] == ["a", "b"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=5),
    max_leaves=20,
)
_keys = st.sampled_from(["services", "service_id", "event_type", "event_id", "paras", "successful_devices",
                         "failed_devices", "devices", "version", "device_id", "error_code"])
_shaped = st.recursive(
    st.none() | st.integers() | st.text(max_size=6) | st.just("$sub_device_manager") | st.sampled_from(sorted(env.RESPONSES)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, _shaped))
def test_parse_never_raises(value: object) -> None:
    msg = env.parse_down(json.dumps(value))
    for ev in msg.events:
        _ = (ev.device_ids, ev.is_response, ev.is_notify, ev.event_time_utc)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_parse_never_raises_on_bytes(raw: bytes) -> None:
    env.parse_down(raw)


# -- recorder -----------------------------------------------------------------------------


def test_recorder_frame_and_wait() -> None:
    rec = EventRecorder(max_rows=3)
    (ev,) = env.parse_down(_down(env.DELETE_RESPONSE, {"successful_devices": ["a", "b"]})).events
    rec.add(Record.of(ev, MATCHED))
    mark = rec.total
    (notify,) = env.parse_down(_down(env.DELETE_NOTIFY, {"devices": [{"device_id": "a"}], "version": 4})).events

    def later() -> None:
        rec.add(Record.of(ev, DUPLICATE))
        rec.add(Record.of(notify, NOTIFY))

    assert not rec.wait_for_event(env.DELETE_NOTIFY, since=mark, timeout=0.01)  # nothing can add one yet
    t = threading.Thread(target=later)
    t.start()
    assert rec.wait_for_event(env.DELETE_NOTIFY, since=mark, timeout=5)
    t.join(5)
    assert rec.wait(lambda rows: len(rows) == 3, timeout=1)
    rec.add(Record.of(notify, NOTIFY))
    assert len(rec) == 3 and rec.dropped == 1 and rec.total == 4
    df = rec.frame()
    assert list(df["match"]) == [DUPLICATE, NOTIFY, NOTIFY]
    assert str(df["received_at"].dtype).startswith("datetime64") and str(df["match"].dtype) == "category"
    assert df["version"].tolist()[1:] == [4, 4] and df["device_ids"].iloc[0] == ["a", "b"]
    assert int(df["n_successful"].iloc[0]) == 2
    assert EventRecorder().frame().empty
