"""The sandbox's LINK side: the seeded fleet, the AK/SK verifier, and the LINK REST simulator.

HTTP tests talk to a real ``HttpServer`` on loopback with httpx; AK/SK requests are
signed by Huawei's own ``huaweicloudsdkcore`` Signer, and the official
``huaweicloudsdkroma`` client is run against the simulator too.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from romakit.sim import signature
from romakit.sim.faults import Faults
from romakit.sim.fleet import ERR_BAD_PRODUCT, ERR_DUPLICATE, ERR_NOT_CHILD, MAX_ID, Fleet
from romakit.sim.http import HttpServer
from romakit.sim.link_app import LinkSimulator
from romakit.sim.server import SimCredentials

TIMEOUT = 10.0
RID_RE = re.compile(r"^[0-9a-f-]{36}-\d{13}-sandbox-P-romalink-service01$")


# -- fixtures and helpers -------------------------------------------------------------------
class Link:
    """A running LINK simulator and an httpx client that knows its paths and credentials."""

    def __init__(self, sim: LinkSimulator, server: HttpServer, creds: SimCredentials) -> None:
        self.sim, self.server, self.creds = sim, server, creds
        self.fleet, self.faults = sim.fleet, sim.faults
        self.prefix = f"/v2/{creds.project_id}/link/instances/{creds.instance_id}"
        self.http = httpx.Client(base_url=server.url, timeout=TIMEOUT)

    def call(self, method: str, path: str, *, auth: str = "token", params: dict | None = None,
             body: Any = None, headers: dict | None = None, full_path: bool = False) -> httpx.Response:
        """Send ``method`` to ``prefix + path`` with token auth, AK/SK auth or none."""
        url = path if full_path else self.prefix + path
        content = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if auth == "token":
            hdrs["X-Auth-Token"] = self.creds.token
            return self.http.request(method, url, params=params, content=content, headers=hdrs)
        if auth == "aksk":
            return self.signed(method, url, params=params, content=content, headers=hdrs)
        return self.http.request(method, url, params=params, content=content, headers=hdrs)

    def signed(self, method: str, path: str, *, params: dict | None = None, content: bytes | None = None,
               headers: dict | None = None, ak: str | None = None, sk: str | None = None) -> httpx.Response:
        """Sign with huaweicloudsdkcore's Signer, then send exactly what it signed."""
        req = sdk_signed(method, f"127.0.0.1:{self.server.port}", path, params, content, headers,
                         ak or self.creds.ak, sk or self.creds.sk)
        return self.http.request(method, req.uri, content=content, headers=req.header_params)


def sdk_signed(method: str, host: str, path: str, params: dict | None, body: bytes | None,
               headers: dict | None, ak: str, sk: str) -> SdkRequest:
    req = SdkRequest(method=method, schema="http", host=host, resource_path=path,
                     query_params=list((params or {}).items()), header_params=dict(headers or {}),
                     body=body or "")
    return Signer(BasicCredentials(ak, sk)).sign(req)


@pytest.fixture(scope="module")
def link() -> Iterator[Link]:
    creds = SimCredentials.from_seed(7)
    sim = LinkSimulator(Fleet(devices=2000, seed=7), Faults(seed=7), creds)
    server = HttpServer(sim.app).start()
    lk = Link(sim, server, creds)
    try:
        yield lk
    finally:
        lk.http.close()
        server.stop()


@pytest.fixture(autouse=True)
def _no_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "link" in request.fixturenames:
        request.getfixturevalue("link").faults.clear()


def pick(link: Link, n: int, **match: Any) -> list[dict]:
    """``n`` devices matching ``match`` that no other test has touched (marks them used)."""
    used = link.__dict__.setdefault("_used", set())
    out = []
    for d in link.fleet.all():
        if d["id"] in used or any(d.get(k) != v for k, v in match.items()):
            continue
        used.add(d["id"])
        out.append(d)
        if len(out) == n:
            return out
    raise AssertionError(f"not enough unused devices matching {match}")


def error(r: httpx.Response, status: int, code: str) -> dict:
    """Assert an error answer: status, code, request id in the right key and header."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_code"] == code, body
    key = "requestId" if status in (400, 404) else "request_id"
    assert set(body) == {"error_code", "error_msg", key}, body
    assert body[key] == r.headers["X-Request-Id"] and RID_RE.match(body[key])
    return body


# -- the fleet ------------------------------------------------------------------------------
def test_fleet_is_reproducible_from_its_seed() -> None:
    a, b, c = Fleet(800, seed=7), Fleet(800, seed=7), Fleet(800, seed=8)
    assert a.all() == b.all() and a.products() == b.products()
    assert a.all() != c.all()
    cid = a.gateways()[0]["client_id"]
    assert a.secret_of(cid) == b.secret_of(cid) != c.secret_of(cid)
    assert re.fullmatch(r"[0-9a-f]{16}", a.secret_of(cid))
    with pytest.raises(KeyError):
        a.secret_of("nobody")


def test_fleet_composition() -> None:
    fleet = Fleet(2000, seed=7)
    devs = fleet.all()
    assert len(fleet) == len(devs) == 2000
    ids = [d["id"] for d in devs]
    assert ids == sorted(set(ids)) and all(1 <= i <= MAX_ID for i in ids)
    assert len({b - a for a, b in zip(ids, ids[1:], strict=False)}) > 5, "ids should not be consecutive"
    assert all(d["device_id"] == d["id"] for d in devs)
    kinds = Counter(d["node_type"] for d in devs)
    assert 40 <= kinds[1] <= 60 and 1100 <= kinds[2] <= 1300 and kinds[0] > 500
    assert all(d["device_type"] == d["node_type"] for d in devs)
    products = fleet.products()
    assert 6 <= len(products) <= 8
    gw_products = {p["product_id"] for p in products if p["product_type"] == 1}
    assert gw_products and all(d["product"]["product_id"] in gw_products for d in fleet.gateways())
    assert all(d["product"]["product_type"] == 0 for d in devs if d["node_type"] != 1)
    gateways = fleet.gateways()
    assert [g["client_id"] for g in gateways] == [f"gw-{i:04d}" for i in range(1, len(gateways) + 1)]
    counts = [len(fleet.children_of(g["id"])) for g in gateways]
    assert sum(counts) == kinds[2] and max(counts) > 4 * (sum(counts) / len(counts)) > 0  # uneven
    for g in gateways[:5]:
        for ch in fleet.children_of(g["id"]):
            assert ch["parent_device_id"] == g["id"] and ch["parent_device_name"] == g["device_name"]
            assert re.fullmatch(re.escape(g["client_id"]) + r"_c\d{4}", ch["client_id"])
    for d in devs:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", d["client_id"]) and len(d["device_name"]) <= 32
        assert 2 <= len(d["node_id"]) <= 64
        if d["node_type"] == 0:
            assert re.fullmatch(r"dev-\d{6}", d["client_id"]) and d["parent_device_id"] is None
        assert fleet.epoch_ms - 366 * 86_400_000 <= d["created_datetime"] <= d["last_updated_datetime"] <= fleet.epoch_ms
    assert len({d["node_id"] for d in devs}) == len({d["client_id"] for d in devs}) == 2000
    online = Counter(d["online_status"] for d in devs)
    assert online[0] and online[1] > online[2] > online[0]
    assert Counter(d["status"] for d in devs)[1] > 0
    assert len({d["app_id"] for d in devs}) in (2, 3)
    assert any(len(d["tags"]) > 1 for d in devs) and any(d["description"] for d in devs)


def test_fleet_sizes_at_the_edges() -> None:
    assert len(Fleet(0)) == 0
    one = Fleet(1)
    assert len(one) == 1 and not one.gateways()
    two = Fleet(2)
    assert len(two.gateways()) == 1
    with pytest.raises(ValueError):
        Fleet(-1)


def test_fleet_readers_hand_out_copies() -> None:
    fleet = Fleet(100, seed=3)
    d = fleet.all()[0]
    d["online_status"] = 99
    d["product"]["product_name"] = "changed"
    fresh = fleet.get(d["id"])
    assert fresh["online_status"] != 99 and fresh["product"]["product_name"] != "changed"


def test_fleet_link_side_changes() -> None:
    fleet = Fleet(200, seed=5)
    dev = fleet.all()[0]
    assert fleet.force_offline([dev["id"], 1]) == [dev["id"]]
    assert fleet.get(dev["id"])["online_status"] == 2
    product = next(p for p in fleet.products() if p["product_type"] == 0)
    gw = fleet.gateways()[0]
    v0 = fleet.version_of(gw["client_id"])
    child = fleet.create(device_name="added-child", product_id=product["product_id"], node_id="NEW:01",
                         parent_device_id=gw["id"])
    assert child["id"] > fleet.all()[-2]["id"] and child["node_type"] == 2
    assert child["client_id"].startswith(gw["client_id"] + "_c") and fleet.version_of(gw["client_id"]) == v0 + 1
    assert fleet.by_client_id(child["client_id"])["id"] == child["id"]
    for bad in ({"product_id": 1}, {"node_id": "NEW:01"}, {"device_name": "x"}, {"parent_device_id": dev["id"] + 10**9}):
        with pytest.raises(ValueError):
            fleet.create(**{"device_name": "ok-name", "product_id": product["product_id"], "node_id": "NEW:02", **bad})
    assert fleet.delete([child["id"], 12345]) == [child["id"]]
    assert fleet.get(child["id"]) is None and fleet.version_of(gw["client_id"]) == v0 + 2


def test_fleet_mqtt_side_changes() -> None:
    fleet = Fleet(400, seed=9)
    gw, other = fleet.gateways()[:2]
    gcid = gw["client_id"]
    kids = [k["client_id"] for k in fleet.children_of(gw["id"])]
    foreign = fleet.children_of(other["id"])[0]["client_id"] if fleet.children_of(other["id"]) else "dev-000001"
    v0 = fleet.version_of(gcid)
    ok, failed = fleet.delete_children(gcid, [kids[0], "nobody", foreign])
    assert ok == [kids[0]] and fleet.by_client_id(kids[0]) is None
    assert [(f[0], f[1]) for f in failed] == [("nobody", ERR_NOT_CHILD), (foreign, ERR_NOT_CHILD)]
    assert gcid in failed[0][2] and fleet.version_of(gcid) == v0 + 1
    assert fleet.delete_children("gw-9999", ["x"])[1][0][1] == ERR_NOT_CHILD
    child_product = next(p for p in fleet.products() if p["product_type"] == 0)["product_id"]
    gw_product = next(p for p in fleet.products() if p["product_type"] == 1)["product_id"]
    ok, failed = fleet.add_children(gcid, [
        {"node_id": "MQTT-NEW-1", "product_id": child_product, "name": "new one"},
        {"node_id": "MQTT-NEW-1", "product_id": child_product},
        {"node_id": "MQTT-NEW-2", "product_id": 42},
        {"node_id": "MQTT-NEW-3", "product_id": gw_product},
        {"node_id": "MQTT-NEW-4", "product_id": str(child_product), "device_id": "my-child"},
    ])
    assert [s["node_id"] for s in ok] == ["MQTT-NEW-1", "MQTT-NEW-4"]
    assert ok[0]["parent_device_id"] == gcid and ok[0]["name"] == "new one" and ok[1]["device_id"] == "my-child"
    assert set(ok[0]) == {"device_id", "node_id", "parent_device_id", "name", "product_id", "status"}
    assert [(f["node_id"], f["error_code"]) for f in failed] == [
        ("MQTT-NEW-1", ERR_DUPLICATE), ("MQTT-NEW-2", ERR_BAD_PRODUCT), ("MQTT-NEW-3", ERR_BAD_PRODUCT)]
    assert fleet.by_client_id("my-child")["parent_device_id"] == gw["id"]
    assert fleet.version_of(gcid) == v0 + 3
    ok, failed = fleet.set_child_status(gcid, [{"device_id": "my-child", "status": "ONLINE"},
                                               {"device_id": kids[1], "status": "OFFLINE"},
                                               {"device_id": kids[2], "status": "FROZEN"},
                                               {"device_id": "nobody", "status": "ONLINE"}])
    assert ok == [{"device_id": "my-child", "status": "ONLINE"}, {"device_id": kids[1], "status": "OFFLINE"}]
    assert [f["device_id"] for f in failed] == [kids[2], "nobody"]
    assert fleet.by_client_id("my-child")["online_status"] == 1
    assert fleet.by_client_id(kids[1])["online_status"] == 2
    assert fleet.version_of("nobody") == 0


# -- the AK/SK verifier against Huawei's Signer -------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("GET", "/v2/p1/link/instances/i-1/devices", {"limit": 10, "offset": 0}, None),
        ("GET", "/v2/p1/link/instances/i-1/devices", {"device_name": "a b+c/d~é", "tag": "x=y&z", "b": "", "a": "1"}, None),
        ("POST", "/v2/p1/link/instances/i-1/devices/force-offline", None, b'{"device_ids": [1, 2]}'),
        ("DELETE", "/v2/p1/link/instances/i-1/devices/7100001", {}, None),
    ],
)
def test_verifier_accepts_what_the_sdk_signer_signs(method: str, path: str, params: dict, body: bytes | None) -> None:
    req = sdk_signed(method, "roma.example.com", path, params, body,
                     {"Content-Type": "application/json", "X-Project-Id": "p1", "x_ignored": "1"}, "AK1", "SK1")
    wire_path, _, wire_query = req.uri.partition("?")
    headers = {k.lower(): v for k, v in req.header_params.items()}
    assert signature.verify(method, wire_path, wire_query, headers, body or b"", {"AK1": "SK1"}.get) == "AK1"
    # anything changed after signing is refused
    for change in ({"body": (body or b"") + b" "}, {"query": wire_query + "&extra=1"},
                   {"path": wire_path + "x"}, {"headers": {**headers, "x-project-id": "p2"}}):
        with pytest.raises(signature.SignatureError):
            signature.verify(method, change.get("path", wire_path), change.get("query", wire_query),
                             change.get("headers", headers), change.get("body", body or b""), {"AK1": "SK1"}.get)
    with pytest.raises(signature.SignatureError) as e:
        signature.verify(method, wire_path, wire_query, headers, body or b"", {"AK2": "SK1"}.get)
    assert e.value.unknown_key
    with pytest.raises(signature.SignatureError):
        signature.verify(method, wire_path, wire_query, headers, body or b"", {"AK1": "SK2"}.get)


def test_verifier_canonical_forms() -> None:
    assert signature.canonical_uri(b"/v2/a%20b/c") == "/v2/a%20b/c/"
    assert signature.canonical_uri("/") == "/"
    assert signature.canonical_query(b"b=2&a=x+y&a=%7E") == "a=x%20y&a=~&b=2"


def test_verifier_date_window() -> None:
    when = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    req = sdk_signed("GET", "h", "/x", None, None, {"X-Sdk-Date": when.strftime("%Y%m%dT%H%M%SZ")}, "A", "S")
    headers = {k.lower(): v for k, v in req.header_params.items()}
    assert signature.verify("GET", "/x", "", headers, b"", {"A": "S"}.get, now=when + timedelta(minutes=14)) == "A"
    for off in (timedelta(minutes=16), -timedelta(minutes=16)):
        with pytest.raises(signature.SignatureError, match="away"):
            signature.verify("GET", "/x", "", headers, b"", {"A": "S"}.get, now=when + off)


# -- HTTP server ----------------------------------------------------------------------------
def test_http_server_binds_free_port_and_stops() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = HttpServer(app).start()
    try:
        assert server.port > 0
        assert httpx.get(server.url, timeout=TIMEOUT).text == "ok"
        thread = server._thread
    finally:
        server.stop()
    assert thread is not None and not thread.is_alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url, timeout=TIMEOUT)


# -- ListDevices ----------------------------------------------------------------------------
def test_list_default_page_and_shape(link: Link) -> None:
    r = link.call("GET", "/devices")
    assert r.status_code == 200 and RID_RE.match(r.headers["X-Request-Id"])
    body = r.json()
    assert body["total"] == len(link.fleet) and body["size"] == 10 == len(body["items"])
    assert body["connect_address"] and body["ssl_connect_address"]
    assert [d["id"] for d in body["items"]] == [d["id"] for d in link.fleet.all()[:10]]
    item = body["items"][0]
    for key in ("id", "device_id", "device_name", "client_id", "node_id", "parent_device_id", "product",
                "status", "online_status", "node_type", "device_type", "app_id", "app_name", "tags",
                "created_datetime", "last_updated_datetime", "last_login_datetime", "client_ip", "keep_alive"):
        assert key in item
    assert isinstance(item["status"], int) and isinstance(item["product"]["protocol_type"], int)


def test_list_pages_through_everything_in_id_order(link: Link) -> None:
    ids: list[int] = []
    offset = 0
    while True:
        body = link.call("GET", "/devices", params={"offset": offset, "limit": 700}).json()
        ids += [d["id"] for d in body["items"]]
        offset += body["size"]
        if body["size"] < 700:
            break
    assert ids == sorted(set(ids)) and len(ids) == len(link.fleet)
    assert link.call("GET", "/devices", params={"limit": 5000}).json()["size"] == 999
    past = link.call("GET", "/devices", params={"offset": 10**6}).json()
    assert past["size"] == 0 and past["items"] == [] and past["total"] == len(link.fleet)


@pytest.fixture(scope="module")
def pristine() -> Iterator[Link]:
    """A second simulator whose fleet no test changes (for exact filter results)."""
    creds = SimCredentials.from_seed(7)
    sim = LinkSimulator(Fleet(devices=2000, seed=7), Faults(seed=7), creds)
    with HttpServer(sim.app) as server:
        lk = Link(sim, server, creds)
        yield lk
        lk.http.close()


FILTER_CASES = ["app_id", "product_id", "product_name", "device_name", "device_name part", "client_id",
                "node_id", "node_type 0", "node_type 1", "node_type 2", "online_status 1",
                "online_status 0,2", "created_date_start", "created_date_end", "created range", "tag",
                "two filters", "nothing matches"]


def _filter_cases(fleet: Fleet) -> dict[str, tuple[dict, Any]]:
    some = fleet.all()[123]
    child = next(d for d in fleet.all() if d["node_type"] == 2)
    tagged = next(d for d in fleet.all() if len(d["tags"]) > 1)
    product = some["product"]
    mid = sorted(d["created_datetime"] for d in fleet.all())[1000]
    cases = [
        ("app_id", {"app_id": some["app_id"]}, lambda d: d["app_id"] == some["app_id"]),
        ("product_id", {"product_id": product["product_id"]}, lambda d: d["product"]["product_id"] == product["product_id"]),
        ("product_name", {"product_name": product["product_name"][:6]},
         lambda d: product["product_name"][:6] in d["product"]["product_name"]),
        ("device_name", {"device_name": some["device_name"]}, lambda d: some["device_name"] in d["device_name"]),
        ("device_name part", {"device_name": "meter-sz"}, lambda d: "meter-sz" in d["device_name"]),
        ("client_id", {"client_id": child["client_id"]}, lambda d: d["client_id"] == child["client_id"]),
        ("node_id", {"node_id": some["node_id"]}, lambda d: d["node_id"] == some["node_id"]),
        ("node_type 0", {"node_type": 0}, lambda d: d["node_type"] == 0),
        ("node_type 1", {"node_type": 1}, lambda d: d["node_type"] == 1),
        ("node_type 2", {"node_type": 2}, lambda d: d["node_type"] == 2),
        ("online_status 1", {"online_status": "1"}, lambda d: d["online_status"] == 1),
        ("online_status 0,2", {"online_status": "0,2"}, lambda d: d["online_status"] in (0, 2)),
        ("created_date_start", {"created_date_start": mid}, lambda d: d["created_datetime"] >= mid),
        ("created_date_end", {"created_date_end": mid}, lambda d: d["created_datetime"] <= mid),
        ("created range", {"created_date_start": mid - 10**10, "created_date_end": mid},
         lambda d: mid - 10**10 <= d["created_datetime"] <= mid),
        ("tag", {"tag": tagged["tags"][0]}, lambda d: tagged["tags"][0] in d["tags"]),
        ("two filters", {"node_type": 2, "online_status": "2"}, lambda d: d["node_type"] == 2 and d["online_status"] == 2),
        ("nothing matches", {"client_id": "no-such-device"}, lambda d: False),
    ]
    assert [c[0] for c in cases] == FILTER_CASES
    return {name: (params, pred) for name, params, pred in cases}


@pytest.mark.parametrize("name", FILTER_CASES)
def test_list_filters(pristine: Link, name: str) -> None:
    params, pred = _filter_cases(pristine.fleet)[name]
    expected = [d["id"] for d in pristine.fleet.all() if pred(d)]
    r = pristine.call("GET", "/devices", params={**params, "limit": 999})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(expected)
    assert [d["id"] for d in body["items"]] == expected[:999]
    if name != "nothing matches":
        assert expected, f"filter case {name} selects nothing: a useless test"


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": -3}, {"limit": "ten"}, {"offset": -1}, {"offset": "1.5"},
     {"product_id": "abc"}, {"node_type": 3}, {"node_type": "x"}, {"online_status": "1,4"},
     {"online_status": "on"}, {"online_status": ""}, {"device_name": "a"}, {"device_name": "x" * 65},
     {"node_id": "a"}, {"created_date_start": "yesterday"}, {"created_date_end": -5}],
)
def test_list_refuses_bad_values(link: Link, params: dict) -> None:
    body = error(link.call("GET", "/devices", params=params), 400, "SCB.00000000")
    assert body["error_msg"].startswith("Parameter is not valid for operation")
    assert f"[{next(iter(params))}]" in body["error_msg"]


# -- ShowDevice, DeleteDevice, BatchDeleteDevices, CreateDevice -------------------------------
def test_show_device_and_not_found(link: Link) -> None:
    dev = link.fleet.all()[5]
    r = link.call("GET", f"/devices/{dev['id']}")
    assert r.status_code == 200
    instance = link.sim.devices.instance_fields()
    assert r.json() == {**dev, **instance, "plugin_id": r.json()["plugin_id"]}  # the fleet's, the instance's
    assert instance["instance_id"] == link.creds.instance_id and instance["ipv6_connect_address"].startswith("[::1]:")
    body = error(link.call("GET", "/devices/1"), 404, "ROMA.00110006")
    assert body["error_msg"] == "The resource does not exist. Check whether the resource ID 1 is correct."
    error(link.call("GET", "/devices/abc"), 400, "SCB.00000000")


def test_delete_one_device(link: Link) -> None:
    (dev,) = pick(link, 1)
    r = link.call("DELETE", f"/devices/{dev['id']}")
    assert r.status_code == 204 and r.content == b"" and r.headers["X-Request-Id"]
    assert link.fleet.get(dev["id"]) is None
    error(link.call("DELETE", f"/devices/{dev['id']}"), 404, "ROMA.00110006")


@pytest.mark.parametrize("key", ["device_ids", "resources"])
def test_batch_delete_takes_both_body_spellings(link: Link, key: str) -> None:
    devs = pick(link, 3)
    r = link.call("DELETE", "/devices", body={key: [d["id"] for d in devs] + [12345]})
    assert r.status_code == 204, r.text
    assert all(link.fleet.get(d["id"]) is None for d in devs)


@pytest.mark.parametrize("body", [b"", b"not json", {"ids": [1]}, {"device_ids": "1,2"}, {"resources": [1, "x"]}, [1, 2]])
def test_batch_delete_refuses_bad_bodies(link: Link, body: Any) -> None:
    error(link.call("DELETE", "/devices", body=body), 400, "SCB.00000000")


def test_create_device(link: Link) -> None:
    product = next(p for p in link.fleet.products() if p["product_type"] == 0)
    gw = link.fleet.gateways()[-1]
    r = link.call("POST", "/devices", body={"device_name": "created-by-test", "node_id": "CREATED:01",
                                            "product": {"product_id": product["product_id"]},
                                            "parent_device_id": gw["id"], "tags": ["t1"], "description": "d"})
    assert r.status_code == 201, r.text
    dev = r.json()
    assert dev["device_name"] == "created-by-test" and dev["node_type"] == 2 and dev["parent_device_id"] == gw["id"]
    assert dev["product"]["product_id"] == product["product_id"] and dev["online_status"] == 0 and dev["tags"] == ["t1"]
    assert link.call("GET", f"/devices/{dev['id']}").json() == {**dev, "plugin_id": None}  # an MQTT product
    flat = link.call("POST", "/devices", body={"device_name": "created-flat", "node_id": "CREATED:02",
                                               "product_id": product["product_id"]})
    assert flat.status_code == 201 and flat.json()["node_type"] == 0
    for bad in ({"device_name": None}, {"device_name": "x"}, {"tags": "t1"}, {"node_id": "bad node"},
                {"parent_device_id": dev["id"]}):  # a child is no gateway
        body = {"device_name": "bad-one", "node_id": "CREATED:03", "product_id": product["product_id"], **bad}
        msg = error(link.call("POST", "/devices", body=body), 400, "SCB.00000000")["error_msg"]
        assert "romalink.link-device.create" in msg
    for missing in ({"product_id": 1}, {"parent_device_id": 1}, {"app_id": "no-such-app"}):  # LINK's 404
        body = {"device_name": "bad-one", "node_id": "CREATED:03", "product_id": product["product_id"], **missing}
        error(link.call("POST", "/devices", body=body), 404, "ROMA.00110006")
    body = {"device_name": "bad-one", "node_id": "CREATED:01", "product_id": product["product_id"]}
    error(link.call("POST", "/devices", body=body), 400, "ROMA.00110007")  # the node id is taken


# -- BatchFreezeDevices (force-offline) -------------------------------------------------------
def test_force_offline_takes_devices_offline(link: Link) -> None:
    online = pick(link, 4, online_status=1)
    offline = pick(link, 1, online_status=2)
    ids = [d["id"] for d in online] + [offline[0]["id"], 5, online[0]["id"]]
    r = link.call("POST", "/devices/force-offline", body={"device_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] == [{"id": d["id"], "device_name": d["device_name"], "device_id": d["id"]}
                               for d in online + offline]
    assert body["failed"] == [{"id": 5, "device_name": "", "device_id": 5}]
    assert all(link.fleet.get(d["id"])["online_status"] == 2 for d in online + offline)


def test_list_sees_changes_between_pages(link: Link) -> None:
    first = link.call("GET", "/devices", params={"online_status": "1", "limit": 2}).json()
    again = link.call("GET", "/devices", params={"online_status": "1", "limit": 2, "offset": 2}).json()
    assert again["total"] == first["total"]
    (dev,) = pick(link, 1, online_status=1)
    rev = link.fleet.revision
    link.call("POST", "/devices/force-offline", body={"device_ids": [dev["id"]]})
    assert link.fleet.revision > rev
    after = link.call("GET", "/devices", params={"online_status": "1", "limit": 2}).json()
    assert after["total"] == first["total"] - 1


def test_force_offline_rounds_fractions_down(link: Link) -> None:
    (dev,) = pick(link, 1, online_status=1)
    body = link.call("POST", "/devices/force-offline", body={"device_ids": [dev["id"] + 0.9]}).json()
    assert [s["id"] for s in body["success"]] == [dev["id"]]
    assert link.fleet.get(dev["id"])["online_status"] == 2


def test_force_offline_fault_lists(link: Link) -> None:
    fail, lie, ok = pick(link, 1, online_status=1), pick(link, 1, online_status=1), pick(link, 1, online_status=1)
    product_id = fail[0]["product"]["product_id"]
    by_product = next(d for d in link.fleet.all() if d["product"]["product_id"] == product_id
                      and d["online_status"] == 1 and d["id"] != fail[0]["id"])
    ok = [d for d in ok if d["product"]["product_id"] != product_id] or pick(link, 1, online_status=1)
    link.faults.update(fail_ids={fail[0]["id"]}, lie_ids={lie[0]["id"]})
    ids = [fail[0]["id"], lie[0]["id"], ok[0]["id"]]
    body = link.call("POST", "/devices/force-offline", body={"device_ids": ids}).json()
    assert [f["id"] for f in body["failed"]] == [fail[0]["id"]] and body["failed"][0]["device_name"]
    assert sorted(s["id"] for s in body["success"]) == sorted([lie[0]["id"], ok[0]["id"]])
    assert link.fleet.get(fail[0]["id"])["online_status"] == 1
    assert link.fleet.get(lie[0]["id"])["online_status"] == 1  # reported a success, still online
    assert link.fleet.get(ok[0]["id"])["online_status"] == 2
    link.faults.update(fail_ids=set(), fail_products={product_id})
    body = link.call("POST", "/devices/force-offline", body={"device_ids": [by_product["id"]]}).json()
    assert [f["id"] for f in body["failed"]] == [by_product["id"]] and body["success"] == []
    assert link.fleet.get(by_product["id"])["online_status"] == 1


@pytest.mark.parametrize(
    "body",
    [b"", b"{bad json", b'{"device_ids": [NaN]}', [1, 2], {}, {"ids": [1]}, {"device_ids": 5},
     {"device_ids": "1,2"}, {"device_ids": ["1"]}, {"device_ids": [True]}, {"device_ids": [None]},
     {"device_ids": [{"id": 1}]}],
)
def test_force_offline_refuses_bad_bodies(link: Link, body: Any) -> None:
    msg = error(link.call("POST", "/devices/force-offline", body=body), 400, "SCB.00000000")["error_msg"]
    assert msg.startswith("Parameter is not valid for operation [romalink.link-device.forceDisconnect]. "
                          "Parameter is [deviceDisconnectRequest]. Processor is [body].")


def test_force_offline_refuses_more_than_999999_ids(link: Link) -> None:
    body = b'{"device_ids": [' + b",".join([b"1"] * 1_000_000) + b"]}"
    error(link.call("POST", "/devices/force-offline", body=body), 400, "SCB.00000000")


# -- authentication -------------------------------------------------------------------------
def test_aksk_signed_requests_are_accepted(link: Link) -> None:
    r = link.call("GET", "/devices", auth="aksk", params={"limit": 3, "device_name": "meter sz", "online_status": "1,2"})
    assert r.status_code == 200, r.text
    (dev,) = pick(link, 1, online_status=1)
    r = link.call("POST", "/devices/force-offline", auth="aksk", body={"device_ids": [dev["id"]]})
    assert r.status_code == 200 and r.json()["success"][0]["id"] == dev["id"]
    r = link.call("GET", f"/devices/{dev['id']}", auth="aksk", headers={"X-Project-Id": link.creds.project_id})
    assert r.status_code == 200


def test_auth_refusals(link: Link) -> None:
    path = link.prefix + "/devices"
    error(link.call("GET", "/devices", auth="none"), 401, "APIG.0301")
    error(link.call("GET", "/devices", auth="none", headers={"X-Auth-Token": "MIIwrong"}), 401, "APIG.0301")
    # a signature over other content
    req = sdk_signed("POST", f"127.0.0.1:{link.server.port}", path + "/force-offline", None, b'{"device_ids": [1]}',
                     {"Content-Type": "application/json"}, link.creds.ak, link.creds.sk)
    r = link.http.post(req.uri, content=b'{"device_ids": [2]}', headers=req.header_params)
    error(r, 401, "APIG.0301")
    # a valid signature, but 16 minutes old
    stale = (datetime.now(UTC) - timedelta(minutes=16)).strftime("%Y%m%dT%H%M%SZ")
    r = link.signed("GET", path, headers={"X-Sdk-Date": stale})
    assert "away from the server clock" in error(r, 401, "APIG.0301")["error_msg"]
    r = link.signed("GET", path, sk="wrong-secret")
    error(r, 401, "APIG.0301")
    r = link.signed("GET", path, ak="UNKNOWNAK0000000000")
    assert "Get secretKey failed" in error(r, 401, "APIG.0301")["error_msg"]
    r = link.signed("GET", path, headers={"X-Project-Id": "another-project"})
    error(r, 403, "APIG.0302")
    error(link.call("GET", "/devices", auth="none", headers={"Authorization": "Basic abc"}), 401, "APIG.0301")


# -- errors and request ids -----------------------------------------------------------------
def test_wrong_instance_or_project_is_roma_00110002(link: Link) -> None:
    c = link.creds
    for path in (f"/v2/{c.project_id}/link/instances/not-mine/devices",
                 f"/v2/other/link/instances/{c.instance_id}/devices/force-offline"):
        body = error(link.call("GET", path, full_path=True), 500, "ROMA.00110002")
        assert body["error_msg"].startswith("The instance does not exist. project_id: ")


def test_unknown_paths_and_methods_are_404(link: Link) -> None:
    for method, path in (("GET", "/nothing/here"), ("GET", "/v2/x"), ("PUT", link.prefix + "/devices"),
                         ("GET", link.prefix + "/devices/force-offline"), ("PATCH", link.prefix + "/devices/1")):
        error(link.call(method, path, full_path=True), 404, "APIG.0101")


def test_every_answer_has_a_request_id(link: Link) -> None:
    seen = set()
    for r in (link.call("GET", "/devices"), link.call("GET", "/devices/1"), link.call("GET", "/devices", auth="none")):
        seen.add(r.headers["X-Request-Id"])
        assert RID_RE.match(r.headers["X-Request-Id"])
    assert len(seen) == 3


def test_request_log(link: Link) -> None:
    link.sim.clear_log()
    devs = pick(link, 3)
    link.call("POST", "/devices/force-offline", body={"device_ids": [d["id"] for d in devs]})
    link.call("GET", f"/devices/{devs[0]['id']}")
    link.call("GET", "/devices/1")
    log = list(link.sim.requests)
    assert [(m, s, n) for _, m, _, s, n in log] == [("POST", 200, 3), ("GET", 200, 1), ("GET", 404, 1)]
    assert log[0][2] == link.prefix + "/devices/force-offline" and log[0][0] <= log[1][0] <= log[2][0]
    link.sim.clear_log()
    assert not link.sim.requests


def test_request_log_keeps_out_what_arrived_before_the_clear(link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    # a slow request arrives, the log is cleared, then it is answered: it must not appear
    # in a log that says what arrived since (a notebook counts devices received from it)
    (dev,) = pick(link, 1)
    arrived, real_get = threading.Event(), link.fleet.get

    def get(*args: Any, **kwargs: Any) -> Any:
        arrived.set()
        return real_get(*args, **kwargs)

    monkeypatch.setattr(link.fleet, "get", get)
    link.faults.update(latency_ms=300)
    slow = threading.Thread(target=link.call, args=("GET", f"/devices/{dev['id']}"))
    slow.start()
    assert arrived.wait(timeout=10)
    link.sim.clear_log()
    slow.join(timeout=10)
    assert not slow.is_alive() and not link.sim.requests and not link.sim.answers
    link.faults.update(latency_ms=0)
    link.call("GET", f"/devices/{dev['id']}")
    assert [(m, s) for _, m, _, s, _ in link.sim.requests] == [("GET", 200)]


# -- faults ---------------------------------------------------------------------------------
def test_fault_latency(link: Link) -> None:
    link.faults.update(latency_ms=80)
    t0 = time.monotonic()
    r = link.call("GET", "/devices", params={"limit": 1})
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.075


def test_fault_rate_limit(link: Link) -> None:
    link.faults.update(rate_limit=1, retry_after=3)
    answers = [link.call("GET", "/devices", params={"limit": 1}) for _ in range(6)]
    assert answers[0].status_code == 200
    throttled = [r for r in answers if r.status_code == 429]
    assert throttled, "six requests at once under 1 request/s: some must be throttled"
    body = error(throttled[0], 429, "APIG.0308")
    assert throttled[0].headers["Retry-After"] == "3" and body["error_msg"]
    link.faults.update(rate_limit=0, retry_after=None)
    r = link.call("GET", "/devices")
    error(r, 429, "APIG.0308")
    assert "Retry-After" not in r.headers
    link.sim.clear_log()
    link.call("POST", "/devices/force-offline", body={"device_ids": [1, 2, 3]})
    assert [(s, n) for _, _, _, s, n in link.sim.requests] == [(429, 3)]  # ids offered, even when throttled


def test_fault_error_rate_has_no_effect(link: Link) -> None:
    (dev,) = pick(link, 1, online_status=1)
    link.faults.update(error_rate=1.0)
    error(link.call("POST", "/devices/force-offline", body={"device_ids": [dev["id"]]}), 500, "APIG.9999")
    assert link.fleet.get(dev["id"])["online_status"] == 1


def test_fault_reset_gives_no_answer() -> None:
    # a private simulator: its dice depend only on its own seed and requests
    creds = SimCredentials.from_seed(4)
    sim = LinkSimulator(Fleet(200, seed=4), Faults(seed=4, reset_rate=1.0), creds)
    devs = [d for d in sim.fleet.all() if d["online_status"] == 1][:8]
    url = f"/v2/{creds.project_id}/link/instances/{creds.instance_id}/devices"
    with HttpServer(sim.app) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT,
                                                     headers={"X-Auth-Token": creds.token}) as http:
        for d in devs:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                http.post(url + "/force-offline", json={"device_ids": [d["id"]]})
        assert [(s, n) for _, _, _, s, n in sim.requests] == [(0, 1)] * 8
        # some resets came after the change was made (answer lost), others before it (no effect)
        states = Counter(sim.fleet.get(d["id"])["online_status"] for d in devs)
        assert states[1] and states[2], states
        sim.faults.update(reset_rate=0.0)
        assert http.get(url).status_code == 200  # the server is still fine


def test_fault_reset_without_the_abort_extension_cuts_the_answer() -> None:
    creds = SimCredentials.from_seed(1)
    sim = LinkSimulator(Fleet(20, seed=1), Faults(reset_rate=1.0), creds)

    async def without_extension(scope: dict, receive: Any, send: Any) -> None:
        await sim.app({**scope, "extensions": {}}, receive, send)

    with HttpServer(without_extension) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(f"/v2/{creds.project_id}/link/instances/{creds.instance_id}/devices",
                     headers={"X-Auth-Token": creds.token})
    assert [s for _, _, _, s, _ in sim.requests] == [0]


def test_fault_garbage(link: Link) -> None:
    link.faults.update(garbage_rate=1.0)
    for _ in range(4):
        r = link.call("GET", "/devices", params={"limit": 3})
        assert r.status_code == 200 and r.headers["X-Request-Id"]
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)


def test_faults_are_replayable_from_the_seed() -> None:
    def run() -> list[int]:
        creds = SimCredentials.from_seed(2)
        sim = LinkSimulator(Fleet(50, seed=2), Faults(seed=5, error_rate=0.5), creds)
        with HttpServer(sim.app) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
            url = f"/v2/{creds.project_id}/link/instances/{creds.instance_id}/devices"
            return [http.get(url, headers={"X-Auth-Token": creds.token}).status_code for _ in range(12)]

    first = run()
    assert first == run() and set(first) == {200, 500}


# -- the official SDK against the simulator ---------------------------------------------------
def test_official_sdk_lists_and_freezes_devices(link: Link) -> None:
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkroma.v2 import (
        BatchDeleteDevicesRequest,
        BatchDeleteDevicesRequestBody,
        BatchFreezeDevicesRequest,
        BatchFreezeDevicesRequestBody,
        ListDevicesRequest,
        RomaClient,
        ShowDeviceRequest,
    )

    c = link.creds
    config = HttpConfig.get_default_config()
    config.timeout = (TIMEOUT, TIMEOUT)
    client = (RomaClient.new_builder().with_http_config(config)
              .with_credentials(BasicCredentials(c.ak, c.sk, c.project_id))
              .with_endpoints([link.server.url]).build())
    listed = client.list_devices(ListDevicesRequest(instance_id=c.instance_id, limit=5, offset=2, online_status="1"))
    assert listed.total == sum(1 for d in link.fleet.all() if d["online_status"] == 1) and len(listed.items) == 5
    assert all(d.online_status == 1 for d in listed.items) and listed.items[0].product.product_id
    devs = pick(link, 2, online_status=1)
    frozen = client.batch_freeze_devices(BatchFreezeDevicesRequest(
        instance_id=c.instance_id, body=BatchFreezeDevicesRequestBody(device_ids=[d["id"] for d in devs] + [3])))
    assert [s.id for s in frozen.success] == [d["id"] for d in devs] and [f.id for f in frozen.failed] == [3]
    assert all(link.fleet.get(d["id"])["online_status"] == 2 for d in devs)
    shown = client.show_device(ShowDeviceRequest(instance_id=c.instance_id, device_id=devs[0]["id"]))
    assert shown.device_name == devs[0]["device_name"] and shown.online_status == 2
    client.batch_delete_devices(BatchDeleteDevicesRequest(
        instance_id=c.instance_id, body=BatchDeleteDevicesRequestBody(resources=[devs[1]["id"]])))
    assert link.fleet.get(devs[1]["id"]) is None
