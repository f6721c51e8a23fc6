"""The sandbox's answers against the official SDKs' models, endpoint by endpoint.

Each answer is walked along the model's ``openapi_types`` (nested models, lists of
models): every field the model declares must be in the answer, every value must have
the declared type (``None`` allowed, as the SDKs allow it), and no field the model
does not know may be there. Across a sample of devices every declared field must
carry a value at least once (so its type is checked), unless listed in
``ALWAYS_NULL`` with the reason. A field an SDK release adds fails here, named.
"""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import pytest

SANDBOX = {"devices": 600, "seed": 23, "mqtt_tls": True}  # TLS: a device may log in with a certificate
ROMA, IOTDA = "huaweicloudsdkroma.v2", "huaweicloudsdkiotda.v5"

#: (endpoint, field path) -> why the sandbox never gives it a value
ALWAYS_NULL = {
    ("iotda ShowDevice", "auth_info.secondary_secret"): "no sandbox device has a secondary secret",
    ("iotda ShowDevice", "auth_info.secondary_fingerprint"): "no sandbox device has a secondary certificate",
}
_PRIMITIVES: dict[str, Any] = {"int": int, "str": str, "bool": bool, "float": (int, float), "object": dict}


def _model(package: str, name: str) -> type:
    return getattr(importlib.import_module(package), name)


class Walk:
    """What one endpoint's answers showed: the problems, and the paths seen with a value."""

    def __init__(self, endpoint: str, package: str) -> None:
        self.endpoint, self.package = endpoint, package
        self.problems: list[str] = []
        self.valued: set[str] = set()
        self.declared: set[str] = set()

    def check(self, value: Any, kind: str, path: str = "", extras_from: type | None = None) -> None:
        """``value`` against the SDK type ``kind`` (``int``, ``list[Tag]``, a model name)."""
        if path:
            self.declared.add(path)
        if value is None:
            return
        if path:
            self.valued.add(path)
        where = path or "(answer)"
        if kind.startswith("list[") and kind.endswith("]"):
            if not isinstance(value, list):
                self.problems.append(f"{where}: {type(value).__name__}, the SDK declares {kind}")
                return
            for item in value:
                self.check(item, kind[5:-1], f"{path}[]")
            return
        if kind in _PRIMITIVES:
            python = _PRIMITIVES[kind]
            if isinstance(value, bool) and kind != "bool" or not isinstance(value, python):
                self.problems.append(f"{where}: {value!r} is a {type(value).__name__}, the SDK declares {kind}")
            return
        model = _model(self.package, kind)
        if not isinstance(value, dict):
            self.problems.append(f"{where}: {type(value).__name__}, the SDK declares the object {kind}")
            return
        known = set(model.attribute_map.values()) | (set((extras_from or model).attribute_map.values()))
        for attr, sub in model.openapi_types.items():
            key = model.attribute_map[attr]
            sub_path = f"{path}.{key}" if path else key
            if key not in value:
                self.problems.append(f"{sub_path}: missing (the SDK's {kind} declares it, type {sub})")
                continue
            self.check(value[key], sub, sub_path)
        for key in sorted(set(value) - known):
            self.problems.append(f"{path + '.' if path else ''}{key}: not a field of the SDK's {kind}")

    def verdict(self) -> list[str]:
        never = sorted(p for p in self.declared - self.valued
                       if (self.endpoint, p.replace("[]", "")) not in ALWAYS_NULL)
        return sorted(set(self.problems)) + [f"{p}: null in every answer, its type never checked" for p in never]


@pytest.fixture(scope="module")
def raw(sb):
    """httpx clients on the sandbox's LINK and IoTDA sides, with its token."""
    c = sb.credentials
    headers = {"X-Auth-Token": c.token, "Content-Type": "application/json"}
    link = httpx.Client(base_url=f"{sb.link_endpoint}/v2/{c.project_id}/link/instances/{c.instance_id}",
                        headers=headers, timeout=30)
    iotda = httpx.Client(base_url=f"{sb.iotda_endpoint}/v5/iot/{c.project_id}", headers=headers, timeout=30)
    with link, iotda:
        yield link, iotda


def _sample(sb) -> list[dict]:
    """Devices of every role, online status and product (a device of each kind)."""
    seen: dict[tuple, dict] = {}
    for d in sb.fleet.all():
        seen.setdefault((d["node_type"], d["online_status"], d["product"]["product_id"]), d)
    return list(seen.values())


def _ok(walk: Walk) -> None:
    problems = walk.verdict()
    assert not problems, f"{walk.endpoint}: the sandbox's answers differ from the SDK's model:\n  " + "\n  ".join(problems)


def test_link_list_devices_has_every_field_of_the_sdk(sb, raw) -> None:
    link, _ = raw
    walk = Walk("link ListDevices", ROMA)
    for offset in (0, 300):
        r = link.get("/devices", params={"offset": offset, "limit": 300})
        assert r.status_code == 200, r.text
        walk.check(r.json(), "ListDevicesResponse")
    _ok(walk)


@pytest.mark.parametrize(("side", "package", "key"), [("link", ROMA, "id"), ("iotda", IOTDA, "client_id")])
def test_show_device_has_every_field_of_the_sdk(sb, raw, side, package, key) -> None:
    walk = Walk(f"{side} ShowDevice", package)
    sample = _sample(sb)
    sb.device_certificate(sample[0]["client_id"])  # one device with an X.509 fingerprint, the others secrets
    for d in sample:
        r = raw[side == "iotda"].get(f"/devices/{d[key]}")
        assert r.status_code == 200, r.text
        walk.check(r.json(), "ShowDeviceResponse")
    _ok(walk)


def test_link_create_and_force_offline_answers_fit_the_sdk(sb, raw) -> None:
    link, _ = raw
    product = next(p for p in sb.fleet.products() if p["product_type"] == 0)
    r = link.post("/devices", json={"device_name": "sdk-fields-new", "node_id": "SDKFIELDS:01",
                                    "product_id": product["product_id"]})
    assert r.status_code == 201, r.text
    created = Walk("link CreateDevice", ROMA)
    created.check(r.json(), "CreateDeviceResponse", extras_from=_model(ROMA, "Device"))  # the whole Device
    _ok(created)
    ids = [d["id"] for d in sb.fleet.all()[:3]]
    r = link.post("/devices/force-offline", json={"device_ids": [*ids, 99]})
    assert r.status_code == 200, r.text
    frozen = Walk("link BatchFreezeDevices", ROMA)
    frozen.check(r.json(), "BatchFreezeDevicesResponse")
    _ok(frozen)


def test_iotda_list_devices_has_every_field_of_the_sdk(sb, raw) -> None:
    _, iotda = raw
    walk = Walk("iotda ListDevices", IOTDA)
    marker = None
    for _ in range(15):  # 750 records: past the fleet
        r = iotda.get("/devices", params={"limit": 50, **({"marker": marker} if marker else {})})
        assert r.status_code == 200, r.text
        walk.check(r.json(), "ListDevicesResponse")
        marker = r.json()["page"]["marker"]
        if marker is None:
            break
    _ok(walk)


def test_the_walk_names_a_field_the_sdk_gains(monkeypatch) -> None:
    """The check itself: a field a newer SDK declares is reported by name."""
    device = _model(ROMA, "ProductReferer")
    monkeypatch.setitem(device.openapi_types, "firmware_channel", "str")
    monkeypatch.setitem(device.attribute_map, "firmware_channel", "firmware_channel")
    walk = Walk("probe", ROMA)
    walk.check({"product_id": 1, "product_name": "p", "manufacturer_id": "m", "model": "x", "protocol_type": 0,
                "product_type": True, "bogus": 1}, "ProductReferer")
    assert walk.verdict() == [
        "bogus: not a field of the SDK's ProductReferer",
        "firmware_channel: missing (the SDK's ProductReferer declares it, type str)",
        "product_type: True is a bool, the SDK declares int",
    ]


def _properties(doc: dict, name: str) -> set[str]:
    schema = doc["components"]["schemas"][name]
    parts = schema.get("allOf", [schema])
    return set().union(*(_properties(doc, p["$ref"].rsplit("/", 1)[1]) if "$ref" in p else set(p["properties"])
                         for p in parts))


@pytest.mark.parametrize(("schema", "model"), [
    ("Device", "Device"), ("DeviceDetail", "ShowDeviceResponse"), ("DeviceList", "ListDevicesResponse"),
    ("Product", "ProductReferer"), ("Authentication", "Authentication"), ("User", "CreatedUser"),
    ("User", "LastUpdatedUser"), ("DeviceInfoSimple", "DeviceInfoSimple"),
])
def test_the_openapi_document_names_the_fields_of_the_sdk(schema, model) -> None:
    from romakit.sim.openapi import link_openapi

    assert _properties(link_openapi(), schema) == set(_model(ROMA, model).attribute_map.values())
