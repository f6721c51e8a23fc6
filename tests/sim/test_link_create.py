"""The sandbox's CreateDevice over real loopback: the official SDK's request body (its
``CreateDeviceRequest``, sent by the SDK's own client, unchanged), the reference's name
and node id rules, LINK's 404 for what does not exist, the node id taken and the device
quota, a created device listed with its fields and never connected, the OpenAPI
document's description of it; and a child re-added over MQTT with its extension info."""

from __future__ import annotations

import re

import httpx
import pytest

SANDBOX = {"devices": 300, "seed": 41}
TIMEOUT = 30


@pytest.fixture
def raw(sb):
    c = sb.credentials
    base = f"{sb.link_endpoint}/v2/{c.project_id}/link/instances/{c.instance_id}"
    sb.clear_faults()
    with httpx.Client(base_url=base, headers={"X-Auth-Token": c.token}, timeout=TIMEOUT) as http:
        yield http
    sb.clear_faults()


def _product(sb, gateway: bool = False) -> int:
    return next(p["product_id"] for p in sb.fleet.products() if p["product_type"] == (1 if gateway else 0))


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_code"] == code, body
    assert r.headers["X-Request-Id"] and (body.get("request_id") or body.get("requestId")) == r.headers["X-Request-Id"]
    return body["error_msg"]


def test_a_created_device_is_listed_with_its_fields_and_never_connected(sb, raw):
    gw = sb.fleet.gateways()[0]
    app = sb.fleet.apps()[-1][0]
    body = {"device_name": "温度-restored_01", "node_id": "RESTORED-01", "product": {"product_id": _product(sb)},
            "parent_device_id": gw["id"], "app_id": app, "status": 1, "description": "kept by the snapshot",
            "tags": ["site-sz", "pilot"], "user_name": "restored-user-01", "password": "Secr3t!pass"}
    r = raw.post("/devices", json=body)
    assert r.status_code == 201, r.text
    dev = r.json()
    assert "Secr3t!pass" not in r.text  # a given password is checked, never kept or shown
    listed = raw.get("/devices", params={"node_id": "RESTORED-01"}).json()["items"]
    assert [d["id"] for d in listed] == [dev["id"]]
    (item,) = listed
    for key, want in (("device_name", body["device_name"]), ("parent_device_id", gw["id"]),
                      ("parent_device_name", gw["device_name"]), ("app_id", app), ("status", 1),
                      ("description", body["description"]), ("tags", body["tags"]), ("node_type", 2),
                      ("online_status", 0), ("last_login_datetime", None), ("last_active_time", None)):
        assert item[key] == want, (key, item[key])
    assert item["product"]["product_id"] == _product(sb) and item["client_id"]


@pytest.mark.parametrize(("change", "field"), [
    ({"device_name": "x"}, "device_name"), ({"device_name": "a name with spaces"}, "device_name"),
    ({"device_name": "名" * 65}, "device_name"), ({"node_id": "n"}, "node_id"), ({"node_id": "node/1"}, "node_id"),
    ({"status": 2}, "status"), ({"tags": ["ok", 3]}, "tags"), ({"description": "d" * 201}, "description"),
    ({"user_name": "short"}, "user_name"), ({"password": "weakpassword"}, "password"), ({"product": {}}, "product"),
])
def test_bad_fields_are_400_naming_the_field(sb, raw, change, field):
    body = {"device_name": "rule-check", "node_id": "RULE-CHECK-1", "product": {"product_id": _product(sb)}, **change}
    msg = _error(raw.post("/devices", json=body), 400, "SCB.00000000")
    assert "romalink.link-device.create" in msg and f"[{field}]" in msg
    assert sb.fleet.by_node_id("RULE-CHECK-1") is None


def test_what_does_not_exist_is_404_the_node_id_taken_and_the_quota_are_named(sb, raw):
    base = {"device_name": "exists-check", "node_id": "EXISTS-CHECK-1", "product": {"product_id": _product(sb)}}
    for missing in ({"product": {"product_id": 1}}, {"parent_device_id": 1}, {"app_id": "no-such-app"}):
        _error(raw.post("/devices", json={**base, **missing}), 404, "ROMA.00110006")
    child = next(d for d in sb.fleet.all() if d["node_type"] == 2)
    assert "not a gateway" in _error(raw.post("/devices", json={**base, "parent_device_id": child["id"]}), 400,
                                     "SCB.00000000")
    taken = sb.fleet.all()[0]["node_id"]
    assert taken in _error(raw.post("/devices", json={**base, "node_id": taken}), 400, "ROMA.00110007")
    sb.set_fault(device_quota=len(sb.fleet))
    assert "quota" in _error(raw.post("/devices", json=base), 400, "ROMA.00110014")
    sb.clear_faults()
    assert raw.post("/devices", json=base).status_code == 201


def test_the_openapi_document_describes_create_device(sb, raw):
    doc = httpx.get(f"{sb.link_endpoint}/openapi.json", timeout=TIMEOUT).json()
    post = next(v["post"] for k, v in doc["paths"].items() if k.endswith("/devices"))
    assert set(post["responses"]) >= {"201", "400", "404"}
    assert "ROMA.00110007" in post["description"] and "ROMA.00110014" in post["description"]
    schema = doc["components"]["schemas"]["CreateDeviceRequest"]["properties"]
    from huaweicloudsdkroma.v2 import CreateDeviceRequestBody

    assert set(CreateDeviceRequestBody.attribute_map.values()) <= set(schema)  # every field the SDK sends
    assert re.match(schema["device_name"]["pattern"], "meter-bj-00001") and not re.match(schema["node_id"]["pattern"], "a b")


def test_the_official_sdks_create_device_request_works_unchanged(sb):
    """The SDK's own client signs and sends its CreateDeviceRequest; the sandbox answers
    the SDK's CreateDeviceResponse and lists the device."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkroma.v2 import (
        CreateDeviceRequest,
        CreateDeviceRequestBody,
        ProductReferer,
        RomaClient,
    )

    c = sb.credentials
    config = HttpConfig.get_default_config()
    config.timeout = (TIMEOUT, TIMEOUT)
    client = (RomaClient.new_builder().with_http_config(config)
              .with_credentials(BasicCredentials(c.ak, c.sk, c.project_id))
              .with_endpoints([sb.link_endpoint]).build())
    gw = sb.fleet.gateways()[1]
    body = CreateDeviceRequestBody(product=ProductReferer(product_id=_product(sb)), device_name="sdk-created-01",
                                   node_id="SDK-CREATED-01", app_id=sb.fleet.apps()[0][0], parent_device_id=gw["id"],
                                   status=0, description="made by the SDK", tags=["sdk"])
    made = client.create_device(CreateDeviceRequest(instance_id=c.instance_id, body=body))
    assert made.device_name == "sdk-created-01" and made.node_id == "SDK-CREATED-01" and made.online_status == 0
    assert made.product.product_id == _product(sb) and made.node_type == 2 and made.tags == ["sdk"]
    dev = sb.fleet.by_node_id("SDK-CREATED-01")
    assert dev["id"] == made.id and dev["parent_device_id"] == gw["id"] and dev["description"] == "made by the SDK"


def test_a_child_readded_over_mqtt_keeps_its_device_id_and_extension_info(sb):
    """What a child restore relies on: re-added with its own device id, node id and
    extension info, the child is listed again as it was (ShowDevice and the sync)."""
    iot = sb.iotda_client()
    gw_id = max(sb.gateways(), key=lambda g: len(sb.children(g)))
    kid = sb.children(gw_id)[-1]
    before = iot.device(kid)
    with sb.gateway(gw_id) as gw:
        assert gw.delete_sub_devices([kid], rollout=False, progress=False).ok
        spec = {"device_id": kid, "node_id": before["node_id"], "product_id": before["product_id"],
                "name": before["device_name"], "description": "back", "extension_info": {"floor": 3}}
        assert gw.add_sub_devices([spec], rollout=False, progress=False).ok
        synced = {d["device_id"]: d for d in gw.sync_sub_devices(wait=True)}
    after = iot.device(kid)
    assert (after["node_id"], after["device_name"], after["product_id"], after["gateway_id"]) == (
        before["node_id"], before["device_name"], before["product_id"], gw_id)
    assert after["extension_info"] == {"floor": 3} == synced[kid]["extension_info"]
    iot.close()
