"""The sandbox's LINK REST API as an OpenAPI 3.0 document (served at ``GET /openapi.json``).

:func:`link_openapi` describes what :class:`~romakit.sim.link_app.LinkSimulator` answers,
held to the public ROMA Connect LINK reference (``shared/reference/roma-link-api.md``):
path parameters (project_id <= 32, instance_id <= 36), ListDevices' query parameters with
their ranges, the bodies of force-offline, batch delete and create, the ``Device`` (every
field of the official SDK's model; ShowDevice's ``DeviceDetail`` adds ``plugin_id``) and
``DeviceInfoSimple`` shapes, and the error body for 400/401/403/404/429/500.

Where the public reference contradicts itself the document follows what the service
does, and says so in a ``description``:

- ``limit`` has no ``maximum``: the service cuts a larger value to 999 instead of
  refusing it (so the page size, ``size``, is at most 999);
- ``device_ids`` items are numbers, not integers: "the value is automatically rounded
  down", so ``[7.9]`` means device 7; after rounding an id must lie in
  1..99,999,999,999,999,999, which for a number ``x`` is ``1 <= x <= MAX_ID``;
- the error body's request id is documented as at most 64 characters, yet the service's
  own examples are 79 characters long: no ``maxLength`` is set. 400 and 404 spell it
  ``requestId`` (the seed's examples), the others ``request_id``; both are described and
  the ``X-Request-Id`` header carries the same value.

The document is the sandbox's contract for the schemathesis fuzz test
(``tests/sim/test_sim_fuzz.py``): every answer it gets must fit it.
"""

from __future__ import annotations

import copy
from typing import Any

from romakit import wire

#: DeviceInfoSimple.id range documented for LINK (the same bound as romakit.ids)
MAX_ID = wire.LINK_ID_MAX
#: ListDevices answers at most this many items per page
MAX_LIMIT = wire.LINK_PAGE_LIMIT
#: force-offline / batch delete: most ids in one call (the schema's maxItems)
MAX_IDS = wire.LINK_MAX_IDS
#: force-offline: most entries in each of ``success`` and ``failed``
MAX_RESULT_ITEMS = 9_999

PREFIX = "/v2/{project_id}/link/instances/{instance_id}"

_JSON = "application/json"
#: ListDevices' online_status: a comma list of 0/1/2 (spaces around the items allowed)
ONLINE_STATUS_PATTERN = r"^ *[012] *(, *[012] *)*$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _bounded(kind: str, low_key: str, high_key: str, lo: int | None, hi: int | None, extra: dict) -> dict[str, Any]:
    s: dict[str, Any] = {"type": kind, **extra}
    s.update({k: v for k, v in ((low_key, lo), (high_key, hi)) if v is not None})
    return s


def _int(lo: int | None = None, hi: int | None = None, **extra: Any) -> dict[str, Any]:
    return _bounded("integer", "minimum", "maximum", lo, hi, extra)


def _str(lo: int | None = None, hi: int | None = None, **extra: Any) -> dict[str, Any]:
    return _bounded("string", "minLength", "maxLength", lo, hi, extra)


_DEVICE_ID_NUMBER = {
    "type": "number",
    "minimum": 1,
    "maximum": MAX_ID,
    "description": "A device id. The value is automatically rounded down (7.9 means 7); "
                   f"the rounded id must lie in 1..{MAX_ID}.",
}

_ID_LIST = {
    "type": "array",
    "items": _DEVICE_ID_NUMBER,
    "maxItems": MAX_IDS,
    "description": f"Device ids (at most {MAX_IDS:,} per call).",
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "The error body of every 4xx and 5xx answer. The request id is also in the "
                       "X-Request-Id header; 400 and 404 spell its key requestId, the others request_id.",
        "required": ["error_code", "error_msg"],
        "properties": {
            "error_code": _str(0, 64, description="SCB.00000000 bad parameter (400); ROMA.00110006 no such "
                                                  "resource (404); APIG.0101 no such API (404); APIG.0301 (401); "
                                                  "APIG.0302 (403); APIG.0308 throttled (429); ROMA.00110002 no "
                                                  "such instance (500); APIG.9999 system error (500); "
                                                  "CreateDevice's ROMA.00110007 node_id taken, ROMA.00110014 "
                                                  "quota reached (400, the sandbox's)."),
            "error_msg": _str(0, 200),
            "request_id": _str(1, description="Documented as at most 64 characters; the service's own "
                                              "examples are 79."),
            "requestId": _str(1, description="The spelling of the seed's 400 and 404 examples."),
        },
        "anyOf": [{"required": ["request_id"]}, {"required": ["requestId"]}],
    },
    "Product": {
        "type": "object",
        "required": ["product_id", "product_name", "manufacturer_id", "model", "protocol_type", "product_type"],
        "properties": {
            "product_id": _int(0),
            "product_name": _str(),
            "manufacturer_id": _str(),
            "model": _str(),
            "protocol_type": _int(description="0 mqtt, 1 coap, 2 modbus, 3 http, 4 opcua", enum=[0, 1, 2, 3, 4]),
            "product_type": _int(description="0 normal, 1 gateway", enum=[0, 1]),
        },
    },
    "Authentication": {
        "type": "object",
        "description": "The device's own MQTT credentials (one per device or per product).",
        "required": ["user_name", "password"],
        "properties": {
            "user_name": _str(description="The MQTT user name (the client id)."),
            "password": _str(8, 32, description="A secret: at least one digit, upper- and lower-case letter and "
                                                "sign."),
        },
    },
    "User": {
        "type": "object",
        "description": "A user of the customer's account (who created or last changed the device).",
        "required": ["user_id", "user_name"],
        "properties": {"user_id": _str(), "user_name": _str()},
    },
    "Device": {
        "type": "object",
        "required": ["id", "device_id", "device_name", "client_id", "node_id", "parent_device_id",
                     "parent_device_name", "product", "status", "online_status", "node_type", "device_type",
                     "app_id", "app_name", "tags", "description", "created_datetime", "last_updated_datetime",
                     "last_login_datetime", "last_active_time", "client_ip", "keep_alive", "version",
                     "permissions", "authentication", "created_user", "last_updated_user", "instance_id",
                     "connect_address", "ssl_connect_address", "ipv6_connect_address", "ipv6_ssl_connect_address"],
        "properties": {
            "id": _int(1, MAX_ID),
            "device_id": _int(1, MAX_ID, description="Legacy copy of id."),
            "device_name": _str(2, 64),
            "client_id": _str(0, 32, description="Made by the platform (the IoTDA device id)."),
            "node_id": _str(2, 64, description="MAC- or IMEI-like, unique."),
            "parent_device_id": _int(1, MAX_ID, nullable=True),
            "parent_device_name": _str(nullable=True),
            "product": _ref("Product"),
            "status": _int(description="0 enabled, 1 disabled", enum=[0, 1]),
            "online_status": _int(description="0 never connected, 1 online, 2 offline", enum=[0, 1, 2]),
            "node_type": _int(description="0 direct, 1 gateway, 2 child", enum=[0, 1, 2]),
            "device_type": _int(description="0 plain, 1 gateway, 2 child", enum=[0, 1, 2]),
            "app_id": _str(),
            "app_name": _str(),
            "tags": {"type": "array", "items": _str()},
            "description": _str(0, 200),
            "created_datetime": _int(0, description="Epoch ms, UTC."),
            "last_updated_datetime": _int(0, description="Epoch ms, UTC."),
            "last_login_datetime": _int(0, nullable=True, description="Epoch ms, UTC; null if never connected."),
            "last_active_time": _int(0, nullable=True, description="Epoch ms, UTC; null if never connected."),
            "client_ip": _str(),
            "keep_alive": _str(),
            "version": _str(),
            "permissions": {"type": "array", "items": _str(), "description": "What the caller may do with it."},
            "authentication": _ref("Authentication"),
            "created_user": _ref("User"),
            "last_updated_user": _ref("User"),
            "instance_id": _str(1, 36),
            "connect_address": _str(description="MQTT access address (host:port)."),
            "ssl_connect_address": _str(description="MQTT over TLS access address (host:port)."),
            "ipv6_connect_address": _str(description="MQTT access address over IPv6 ([host]:port)."),
            "ipv6_ssl_connect_address": _str(description="MQTT over TLS access address over IPv6 ([host]:port)."),
        },
    },
    "DeviceDetail": {
        "description": "ShowDevice's answer: a Device and its protocol plugin.",
        "allOf": [_ref("Device"), {
            "type": "object", "required": ["plugin_id"],
            "properties": {"plugin_id": _int(0, nullable=True, description="The protocol plugin (Modbus, OPC UA "
                                                                           "products); null for the others.")},
        }],
    },
    "DeviceInfoSimple": {
        "type": "object",
        "required": ["id", "device_name"],
        "properties": {
            "id": _int(1, MAX_ID),
            "device_name": _str(0, 32, description="Empty for an id that does not exist."),
            "device_id": _int(1, MAX_ID, description="Legacy copy of id."),
        },
    },
    "DeviceList": {
        "type": "object",
        "required": ["total", "size", "items", "connect_address", "ssl_connect_address", "ipv6_connect_address",
                     "ipv6_ssl_connect_address"],
        "properties": {
            "total": _int(0, description="Devices matching the filters."),
            "size": _int(0, MAX_LIMIT, description="Items on this page."),
            "items": {"type": "array", "items": _ref("Device"), "maxItems": MAX_LIMIT},
            "connect_address": _str(),
            "ssl_connect_address": _str(),
            "ipv6_connect_address": _str(),
            "ipv6_ssl_connect_address": _str(),
        },
    },
    "ForceOfflineRequest": {
        "type": "object",
        "required": ["device_ids"],
        "properties": {"device_ids": _ID_LIST},
    },
    "ForceOfflineResult": {
        "type": "object",
        "required": ["success", "failed"],
        "description": "Each distinct id once, in first-seen order; an unknown id is in failed with an "
                       "empty device_name.",
        "properties": {
            "success": {"type": "array", "items": _ref("DeviceInfoSimple"), "maxItems": MAX_RESULT_ITEMS},
            "failed": {"type": "array", "items": _ref("DeviceInfoSimple"), "maxItems": MAX_RESULT_ITEMS},
        },
    },
    "BatchDeleteRequest": {
        "type": "object",
        "description": "The docs name the field device_ids; the official SDK sends resources. Either or both. "
                       "Ids that do not exist are ignored.",
        "properties": {"device_ids": _ID_LIST, "resources": _ID_LIST},
        "anyOf": [{"required": ["device_ids"]}, {"required": ["resources"]}],
    },
    "CreateDeviceRequest": {
        "type": "object",
        "description": "One device per request: the official SDK's CreateDeviceRequestBody (product as "
                       "product.product_id; a top-level product_id is taken too). Unknown fields are ignored. "
                       "A password is checked, never kept or shown.",
        "required": ["device_name", "node_id"],
        "properties": {
            "device_name": _str(2, 64, pattern=r"^[A-Za-z0-9\u4e00-\u9fff（）。；，：“”、？《》()_,#.?'\-@%&!]{2,64}$",
                                description="Letters, digits, CJK characters and ()_,#.?'-@%&! signs."),
            "node_id": _str(2, 64, pattern=r"^[A-Za-z0-9_\-:]{2,64}$",
                            description="Unique in the instance. The reference allows letters, digits, _ and -; the "
                                        "sandbox also takes ':' (its fleet's node ids are MAC addresses)."),
            "product_id": _int(1, description="An existing product."),
            "product": {"type": "object", "properties": {"product_id": _int(1)}, "required": ["product_id"]},
            "app_id": _str(1, 64, description="An existing application (default: the first)."),
            "parent_device_id": _int(1, MAX_ID, description="An existing gateway: makes a child device."),
            "description": _str(0, 200),
            "tags": {"type": "array", "items": _str()},
            "status": _int(description="0 enabled, 1 disabled", enum=[0, 1]),
            "user_name": _str(10, 50, pattern=r"^[A-Za-z0-9\-]{10,50}$"),
            "password": _str(8, 32, description="At least one digit, upper- and lower-case letter and sign."),
        },
        "anyOf": [{"required": ["product_id"]}, {"required": ["product"]}],
    },
}

_ERROR_TEXT = {
    "400": "Bad Request: a bad parameter (SCB.00000000).",
    "401": "Unauthorized: missing, wrong, stale or expired credentials, or a locked access key (APIG.0301).",
    "403": "Forbidden: X-Project-Id of another project (APIG.0302).",
    "404": "Not Found: no such resource (ROMA.00110006) or API (APIG.0101).",
    "429": "Too Many Requests: throttled (APIG.0308); honour Retry-After.",
    "500": "Internal Server Error: no such instance (ROMA.00110002) or a system error (APIG.9999).",
}

_REQUEST_ID_HEADER = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}


def _error(status: str) -> dict[str, Any]:
    headers = dict(_REQUEST_ID_HEADER)
    if status == "429":
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return {"description": _ERROR_TEXT[status], "headers": headers,
            "content": {_JSON: {"schema": _ref("Error")}}}


def _ok(description: str, schema: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "headers": dict(_REQUEST_ID_HEADER)}
    if schema is not None:
        out["content"] = {_JSON: {"schema": _ref(schema)}}
    return out


def _operation(op_id: str, summary: str, ok: dict[str, dict[str, Any]], *, parameters: list | None = None,
               body: str | None = None, errors: tuple[str, ...] = ("400", "401", "403", "404", "429", "500"),
               description: str = "") -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary,
                          "responses": {**ok, **{s: {"$ref": f"#/components/responses/E{s}"} for s in errors}}}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {_JSON: {"schema": _ref(body)}}}
    return op


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


#: the sandbox's own bound on free-text filters (the reference sets none)
_TEXT = _str(0, 256)

_LIST_PARAMETERS = [
    _query("offset", _int(0, default=0), "Items to skip (ordered by id)."),
    _query("limit", _int(1, default=10), f"Page size, 1..{MAX_LIMIT}; a larger value is cut to {MAX_LIMIT}."),
    _query("app_id", _TEXT, "Application id (exact)."),
    _query("product_id", _int(0), "Product id (exact)."),
    _query("product_name", _TEXT, "Product name (substring)."),
    _query("device_name", _str(2, 64), "Device name (substring), 2..64 characters."),
    _query("client_id", _TEXT, "Client id (exact)."),
    _query("node_id", _str(2, 64), "Node id (exact), 2..64 characters."),
    _query("node_type", _int(enum=[0, 1, 2]), "0 direct, 1 gateway, 2 child."),
    _query("online_status", _str(pattern=ONLINE_STATUS_PATTERN),
           "Comma-separated list of 0 (never connected), 1 (online), 2 (offline)."),
    _query("created_date_start", _int(0), "Created at or after (epoch ms, UTC)."),
    _query("created_date_end", _int(0), "Created at or before (epoch ms, UTC)."),
    _query("tag", _TEXT, "One of the device's tags (exact)."),
]

_DEVICE_ID_PATH = {
    "name": "device_id", "in": "path", "required": True,
    "schema": _int(1, MAX_ID), "description": "The device id (an id out of range is simply not found).",
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "romakit sandbox: ROMA Connect LINK device API",
        "version": "2",
        "description": "The devices part of Huawei Cloud ROMA Connect LINK (v2), as the romakit sandbox "
                       "serves it. Authenticate with X-Auth-Token or an SDK-HMAC-SHA256 signature.",
    },
    "servers": [{"url": "/"}],
    "security": [{"token": []}, {"aksk": []}],
    "paths": {
        f"{PREFIX}/devices": {
            "get": _operation("ListDevices", "Query devices, paged and filtered, ordered by id",
                              {"200": _ok("A page of devices.", "DeviceList")}, parameters=_LIST_PARAMETERS,
                              errors=("400", "401", "403", "429", "500")),
            "post": _operation("CreateDevice", "Create a device",
                               {"201": _ok("The new device (online_status 0, never connected).", "Device")},
                               body="CreateDeviceRequest",
                               description="400 SCB.00000000: a bad parameter; 404 ROMA.00110006: no such product, "
                                           "parent gateway or application; 400 ROMA.00110007: the node_id is taken; "
                                           "400 ROMA.00110014: the device quota is reached (the last two are the "
                                           "sandbox's codes: the public reference names none)."),
            "delete": _operation("BatchDeleteDevices", "Delete devices in batches",
                                 {"204": _ok("Deleted (ids that do not exist are ignored).")},
                                 body="BatchDeleteRequest", errors=("400", "401", "403", "429", "500")),
        },
        f"{PREFIX}/devices/force-offline": {
            "post": _operation("BatchFreezeDevices", "Bring devices offline in batches",
                               {"200": _ok("Which devices went offline and which did not.", "ForceOfflineResult")},
                               body="ForceOfflineRequest", errors=("400", "401", "403", "429", "500"),
                               description="Idempotent: a device already offline lands in success."),
        },
        f"{PREFIX}/devices/{{device_id}}": {
            "parameters": [_DEVICE_ID_PATH],
            "get": _operation("ShowDevice", "Device details", {"200": _ok("The device.", "DeviceDetail")}),
            "delete": _operation("DeleteDevice", "Delete one device", {"204": _ok("Deleted.")}),
        },
    },
    "components": {
        "schemas": _SCHEMAS,
        "parameters": {},
        "headers": {
            "X-Request-Id": {"required": True, "schema": _str(1), "description": "The request id."},
            "Retry-After": {"required": False, "schema": _str(1), "description": "Seconds to wait."},
        },
        "responses": {f"E{s}": _error(s) for s in _ERROR_TEXT},
        "securitySchemes": {
            "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                      "description": "An IAM token."},
            "aksk": {"type": "apiKey", "in": "header", "name": "Authorization",
                     "description": "SDK-HMAC-SHA256 Access={AK}, SignedHeaders={list}, Signature={hex}, with "
                                    "X-Sdk-Date (within 15 minutes of the server's clock); see the official "
                                    "SDK's Signer."},
        },
    },
}

_PATH_PARAMETERS = [
    {"name": "project_id", "in": "path", "required": True, "schema": _str(1, 32),
     "description": "Project id, at most 32 characters."},
    {"name": "instance_id", "in": "path", "required": True, "schema": _str(1, 36),
     "description": "ROMA Connect instance id, at most 36 characters."},
]
for _item in _DOCUMENT["paths"].values():
    _item["parameters"] = [*_PATH_PARAMETERS, *_item.get("parameters", [])]
del _DOCUMENT["components"]["parameters"]


def link_openapi() -> dict[str, Any]:
    """A fresh copy of the OpenAPI 3.0 document (callers may change it freely)."""
    return copy.deepcopy(_DOCUMENT)


__all__ = ["link_openapi", "ONLINE_STATUS_PATTERN", "PREFIX", "MAX_ID", "MAX_LIMIT", "MAX_IDS", "MAX_RESULT_ITEMS"]
