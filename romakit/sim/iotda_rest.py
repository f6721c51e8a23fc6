"""The sandbox's IoTDA application-side REST API: ListDevices and ShowDevice, from the fleet.

``GET /v5/iot/{project_id}/devices`` with the documented filters (``product_id``,
``gateway_id`` + ``is_cascade_query``, ``node_id``, ``device_name``, ``start_time`` /
``end_time`` on the creation time, ``app_id``), ``limit`` 1..50 (default 10), ``marker``
(the last record id of the previous page; records newest first, by record id
descending) and ``offset`` 0..500 from the marker. ``GET .../devices/{device_id}``.

Choices where the fleet is the LINK side's and IoTDA differs:

* A device's IoTDA id is the fleet's ``client_id``; its record id (the marker) is the
  LINK id as 24 hex digits, so records made later sort first.
* ``status`` of a gateway or directly connected device says whether it holds an MQTT
  connection to the sandbox broker now (``connected(device_id)``), or a simulated field
  device holds it (``connection(device_id)``, the fleet's): ONLINE, else INACTIVE if it
  never connected, OFFLINE otherwise; FROZEN when disabled. Children report through
  their gateway: their status is the fleet's online status.
  ``connection_status_update_time`` is when that status last changed.
* ``gateway_id`` of a device without a parent is its own id (as IoTDA documents);
  the ``gateway_id`` filter lists what is under that gateway, not the gateway itself.
* ShowDevice answers every field of the SDK's model: ``auth_info`` with the device's
  MQTT ``secret`` (or its certificate's ``fingerprint``; no secondary ones), ``modules``
  (one OTA module, ``main``, at the firmware version, once the device has connected),
  ``create_time`` as ``yyyyMMddTHHmmssZ`` and the two other times as
  ``yyyy-MM-ddTHH:mm:ss.SSSZ``, as the model documents them. ``device_sdk_version`` is
  the device SDK's once the device has connected, null before.

Signed like IoTDA: ``SDK-HMAC-SHA256`` (basic edition) or the derived ``V11-HMAC-SHA256``
of standard and enterprise instances (service ``iotdm``, the sandbox's region), or an
IAM token in ``X-Auth-Token``. Written independently of romakit's client signer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from romakit import wire
from romakit.sim import catalog, signature
from romakit.sim.view import FleetView

REGION = "cn-north-4"
SERVICE = "iotdm"
_DERIVED = re.compile(r"^\s*V11-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)\s*,"
                      r"\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$")
_TIME = re.compile(r"^\d{8}T\d{6}Z$")
_STATUS = {0: "INACTIVE", 1: "ONLINE", 2: "OFFLINE"}


class _Refused(Exception):
    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _derived_signature(sk: str, ak: str, date: str, scope: str, canonical: str) -> str:
    prk = hmac.new(ak.encode(), sk.encode(), hashlib.sha256).digest()
    key = hmac.new(prk, scope.encode() + b"\x01", hashlib.sha256).hexdigest()
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return hmac.new(key.encode(), f"V11-HMAC-SHA256\n{date}\n{scope}\n{digest}".encode(), hashlib.sha256).hexdigest()


def verify_derived(method: str, raw_path: bytes, raw_query: bytes, headers: dict[str, str], body: bytes,
                   ak: str, sk: str, region: str = REGION) -> None:
    """Check a derived (V11-HMAC-SHA256) signature; raise :class:`signature.SignatureError`."""
    m = _DERIVED.match(headers.get("authorization", ""))
    if not m:
        raise signature.SignatureError("Authorization is not 'V11-HMAC-SHA256 Credential=ak/date/region/service, ...'")
    got_ak, day, got_region, service, signed, sig = m.groups()
    if not hmac.compare_digest(got_ak.encode(), ak.encode()):
        raise signature.SignatureError("unknown access key", unknown_key=True)
    if got_region != region or service != SERVICE:
        raise signature.SignatureError(f"credential scope {got_region}/{service} is not {region}/{SERVICE}")
    names = signed.split(";")
    date = headers.get("x-sdk-date", "").strip()
    if "x-sdk-date" not in names or not date.startswith(day):
        raise signature.SignatureError("X-Sdk-Date must be signed and match the credential scope's date")
    try:
        when = datetime.strptime(date, signature.DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise signature.SignatureError(f"X-Sdk-Date {date!r} is not YYYYMMDDTHHMMSSZ") from None
    if abs((datetime.now(UTC) - when).total_seconds()) > signature.MAX_SKEW_S:
        raise signature.SignatureError("X-Sdk-Date is more than 15 minutes away from the server clock")
    body_hash = signature.EMPTY_HASH
    if body:
        declared = headers.get("x-sdk-content-sha256", "").strip()
        body_hash = signature.UNSIGNED_PAYLOAD if declared == signature.UNSIGNED_PAYLOAD else hashlib.sha256(body).hexdigest()
    canonical = signature.canonical_request(method, raw_path, raw_query, headers, names, body_hash)
    if not hmac.compare_digest(_derived_signature(sk, ak, date, f"{day}/{region}/{service}", canonical), sig.lower()):
        raise signature.SignatureError("signature does not match")


def _ms_time(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


def _ms_iso(ms: int | None) -> str | None:
    """Epoch ms as ``yyyy-MM-ddTHH:mm:ss.SSSZ`` (ShowDevice's active times)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class IotdaRest:
    """The ASGI app (``.app``) serving IoTDA's inventory of ``fleet`` to ``credentials``.

    ``connected(device_id)`` says whether a device holds a broker connection now;
    ``fingerprint(device_id)`` the X.509 fingerprint registered for it (or None).
    """

    def __init__(self, fleet: Any, credentials: Any, *, connected: Callable[[str], bool] | None = None,
                 fingerprint: Callable[[str], str | None] | None = None, region: str = REGION,
                 connection: Callable[[str], tuple[bool, int | None] | None] | None = None) -> None:
        self.fleet, self.credentials, self.region = fleet, credentials, region
        self.connected = connected or (lambda _id: False)
        self.connection = connection or (lambda _id: None)
        self.fingerprint = fingerprint or (lambda _id: None)
        self.requests = 0
        self.app = Starlette(routes=[
            Route("/v5/iot/{project_id}/devices", self._list, methods=["GET"]),
            Route("/v5/iot/{project_id}/devices/{device_id}", self._show, methods=["GET"]),
        ])

    # -- the wire ---------------------------------------------------------------------
    async def _list(self, request: Request) -> JSONResponse:
        return await self._serve(request, self._list_body)

    async def _show(self, request: Request) -> JSONResponse:
        return await self._serve(request, self._show_body)

    async def _serve(self, request: Request, body_of: Callable[[Request], dict]) -> JSONResponse:
        self.requests += 1
        try:
            self._authenticate(request, await request.body())
            if request.path_params["project_id"] != self.credentials.project_id:
                raise _Refused(403, "IOTDA.000004", "The project_id in the path is not this account's.")
            return JSONResponse(body_of(request))
        except _Refused as e:
            return JSONResponse({"error_code": e.code, "error_msg": e.msg}, status_code=e.status)

    def _authenticate(self, request: Request, body: bytes) -> None:
        headers = signature.header_map(request.scope.get("headers") or [])
        c = self.credentials
        if "x-auth-token" in headers:
            if hmac.compare_digest(headers["x-auth-token"].strip().encode("utf-8", "surrogateescape"), c.token.encode()):
                return
            raise _Refused(401, "APIG.1002", "Incorrect token or token resolution failed.")
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        query = request.scope.get("query_string", b"")
        try:
            if headers.get("authorization", "").lstrip().startswith("V11-HMAC-SHA256"):
                verify_derived(request.method, raw_path, query, headers, body, c.ak, c.sk, self.region)
            else:
                signature.verify(request.method, raw_path, query, headers, body,
                                 lambda ak: c.sk if hmac.compare_digest(ak.encode("utf-8", "surrogateescape"),
                                                                        c.ak.encode()) else None)
        except signature.SignatureError as e:
            raise _Refused(401, "APIG.0301", f"Incorrect IAM authentication information: {e}."[:200]) from None

    # -- records ------------------------------------------------------------------------
    def status_of(self, dev: dict[str, Any]) -> str:
        if dev.get("status") == 1:
            return "FROZEN"
        if dev.get("node_type") == 2:
            return _STATUS.get(dev.get("online_status"), "OFFLINE")
        if dev.get("online_status") == 1 and self._held(dev["client_id"]) or self.connected(dev["client_id"]):
            return "ONLINE"
        return "INACTIVE" if dev.get("online_status") == 0 else "OFFLINE"

    def _held(self, client_id: str) -> bool:
        conn = self.connection(client_id)
        return bool(conn and conn[0])

    def record(self, dev: dict[str, Any], gateways: dict[int, str | None] | None = None) -> dict[str, Any]:
        """IoTDA's QueryDeviceSimplify of a LINK device dict; ``gateways`` (parent LINK id
        -> its client_id) is filled as parents are met, so a page of children formats
        each of its few gateways once."""
        gateways = {} if gateways is None else gateways
        pid = dev.get("parent_device_id")
        gateway_id = None
        if pid:
            if pid not in gateways:
                parent = self.fleet.get(pid)
                gateways[pid] = parent["client_id"] if parent else None
            gateway_id = gateways[pid]
        product = dev["product"]
        return {
            "app_id": dev["app_id"], "app_name": dev["app_name"], "device_id": dev["client_id"],
            "node_id": dev["node_id"], "gateway_id": gateway_id or dev["client_id"],
            "device_name": dev["device_name"], "node_type": "ENDPOINT" if dev["node_type"] == 2 else "GATEWAY",
            "description": dev.get("description") or "", "fw_version": dev.get("version"),
            "sw_version": dev.get("version"),
            "device_sdk_version": None if dev.get("online_status") == 0 else catalog.DEVICE_SDK_VERSION,
            "product_id": str(product["product_id"]), "product_name": product["product_name"],
            "status": self.status_of(dev),
            "tags": [{"tag_key": t, "tag_value": ""} for t in dev.get("tags") or []],
        }

    def _list_body(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        limit = _int(q.get("limit", "10"), "limit", 1, wire.IOTDA_PAGE_LIMIT)
        offset = _int(q.get("offset", "0"), "offset", 0, wire.IOTDA_MAX_OFFSET)
        marker = q.get("marker")
        if marker is not None and not re.fullmatch(r"[0-9a-f]{24}", marker):
            raise _Refused(400, "IOTDA.000006", "Invalid input data: marker must be 24 hex characters.")
        for k in ("start_time", "end_time"):
            if k in q and not _TIME.match(q[k]):
                raise _Refused(400, "IOTDA.000006", f"Invalid input data: {k} must be yyyyMMddTHHmmssZ.")
        cascade = q.get("is_cascade_query", "false")
        if cascade not in ("true", "false"):
            raise _Refused(400, "IOTDA.000006", "Invalid input data: is_cascade_query must be true or false.")
        with self.fleet.lock:
            devs = self._matching(q, cascade == "true")
            count = len(devs)
            if marker is not None:
                devs = devs.where(devs.column("id") < int(marker, 16))
            page = devs[offset:offset + limit]
            gateways: dict[int, str | None] = {}
            records = [self.record(d, gateways) for d in page]
        return {"devices": records, "page": {"count": count, "marker": f"{page[-1]['id']:024x}" if page else None}}

    def _matching(self, q: Any, cascade: bool) -> FleetView:
        """The devices the query selects, newest (highest id) first; filtered on the
        fleet's columns, so only the page asked for is formatted."""
        view = self.fleet.snapshot()
        gw_id = q.get("gateway_id")
        if gw_id is not None:
            gw = self.fleet.by_client_id(gw_id)
            if gw is None:
                return view.where(np.zeros(len(view), dtype=bool))
            parents, ids = view.column("parent_id"), view.column("id")
            under = {gw["id"]}
            if cascade:  # every level below: children of children, ...
                grew = True
                while grew:
                    more = set(ids[np.isin(parents, list(under))].tolist())
                    grew, under = not more <= under, under | more
            view = view.where(np.isin(parents, list(under)) & (ids != gw["id"]))
        if "product_id" in q:
            same = [p["product_id"] for p in self.fleet.products() if str(p["product_id"]) == q["product_id"]]
            view = view.where(np.isin(view.column("product_id"), same))
        if "node_id" in q:
            dev = self.fleet.by_node_id(q["node_id"])
            view = view.where(view.column("id") == (dev["id"] if dev else -1))
        if "device_name" in q:
            view = view.where(np.array([n == q["device_name"] for n in view.strings("device_name")], dtype=bool))
        if "app_id" in q:
            apps = [a for a, _ in self.fleet.apps()]
            view = view.where(view.column("app") == (apps.index(q["app_id"]) if q["app_id"] in apps else -1))
        for key, keep in (("start_time", lambda t, v: t >= v), ("end_time", lambda t, v: t <= v)):
            if q.get(key):
                created = view.column("created_datetime").tolist()
                view = view.where(np.array([keep(_ms_time(ms), q[key]) for ms in created], dtype=bool))
        return view.reversed()

    def _show_body(self, request: Request) -> dict[str, Any]:
        did = request.path_params["device_id"]
        with self.fleet.lock:
            dev = self.fleet.by_client_id(did)
            if dev is None:
                raise _Refused(404, "IOTDA.014000", f"The device {did} does not exist.")
            out = self.record(dev)
            created, active = dev.get("created_datetime"), dev.get("last_active_time")
            secret = self.fleet.secret_of(did)
        fp = self.fingerprint(did)
        out.update({
            "auth_info": {"auth_type": "CERTIFICATES" if fp else "SECRET", "secret": None if fp else secret,
                          "secondary_secret": None, "fingerprint": fp, "secondary_fingerprint": None,
                          "secure_access": True, "timeout": 0},
            "create_time": _ms_time(created), "active_time": _ms_iso(active),
            "connection_status_update_time": _ms_iso((self.connection(did) or (False, active))[1]),
            "extension_info": self.fleet.extension_of(did),
            "modules": [] if active is None else [{"module_name": "main", "module_version": dev.get("version")}],
        })
        return out


def _int(text: str, name: str, low: int, high: int) -> int:
    try:
        v = int(text)
    except ValueError:
        v = low - 1
    if not low <= v <= high:
        raise _Refused(400, "IOTDA.000006", f"Invalid input data: {name} must be {low}..{high}.")
    return v


__all__ = ["REGION", "SERVICE", "IotdaRest", "verify_derived"]
