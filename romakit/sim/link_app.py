"""The sandbox's ROMA Connect LINK device API (REST), as a Starlette ASGI app.

(Longer than romakit's other modules on purpose: one file holds the whole documented
route table with its strict input rules, so it can be read against the API reference
in one go.)

``LinkSimulator(fleet, faults, credentials).app`` answers, under
``/v2/{project_id}/link/instances/{instance_id}``:

======  ==========================  ==========================================
GET     ``/devices``                ListDevices (paged, filtered, ordered by id)
POST    ``/devices``                CreateDevice -> 201 Device
DELETE  ``/devices``                BatchDeleteDevices (``device_ids`` or ``resources``) -> 204
GET     ``/devices/{id}``           ShowDevice -> Device or 404 ROMA.00110006
DELETE  ``/devices/{id}``           DeleteDevice -> 204 or 404
POST    ``/devices/force-offline``  BatchFreezeDevices -> ``{"success", "failed"}``
======  ==========================  ==========================================

``GET /openapi.json`` answers the API's OpenAPI 3.0 document
(:func:`romakit.sim.openapi.link_openapi`) without auth, faults or logging; every answer
fits it (``tests/sim/test_sim_fuzz.py`` fuzzes the simulator from it with schemathesis).
Input is read strictly: integers in the query and path are ASCII digits (``int()``
alone would take " 5", "+5", "1_0" and "５"); ids in bodies are numbers whose rounded
value lies in 1..99,999,999,999,999,999; CreateDevice fields have the documented types;
a body nested too deep for the JSON reader is "not valid JSON". All of these are 400.

Order of work for each request: request id; rate limit (429 APIG.0308); auth
(401/403); project and instance (500 ROMA.00110002); fault dice (reset, 500
APIG.9999); the operation; garbage or missing fields; latency; answer. Every answer carries
``X-Request-Id``; error bodies are ``{"error_code", "error_msg", "requestId"}``
for 400 and 404 (the seed's spelling) and ``{"error_code", "error_msg",
"request_id"}`` otherwise. Unknown paths and methods answer 404 APIG.0101, as
API Gateway does. An unexpected exception answers 500 APIG.9999 with that body,
never a bare 500.

Authentication is API Gateway's (:mod:`romakit.sim.gatekeeper`): the sandbox token
or an IAM-issued one, the sandbox AK/SK or an IAM-issued temporary key; refusals are
401 ``APIG.0301`` (with the gateway's wording: ``verify aksk signature fail``, ``token
expires``, ...) and 403 ``APIG.0302`` for an ``X-Project-Id`` of another project; more
than five refused signatures in a row lock the AK for five minutes. Every answer
carries ``Date`` from the sandbox's clock (``clock_offset_s`` shifts it, and the
15-minute signature window with it).

Choices where the public docs are silent (all documented on the handlers):
already-offline devices land in ``success`` (force-offline is idempotent); repeated
ids are answered once; ``success``/``failed`` are cut at 9,999 entries each as the
schema allows (the devices beyond are still processed); ``device_name`` and
``product_name`` filters match substrings, the other string filters match exactly.

Faults are read from the shared :class:`~romakit.sim.faults.Faults` on every request,
with dice from ``random.Random(faults.seed)`` owned by the simulator:

- ``latency_ms``: ``asyncio.sleep`` before every answer;
- ``rate_limit``: token bucket of ``rate_limit`` requests/s, burst one second's
  worth (at least 1; 0 throttles everything); over it -> 429 APIG.0308 with
  ``Retry-After: {retry_after}`` (omitted when retry_after is None);
- ``error_rate``: ``error_status`` ``error_code`` (500 APIG.9999 unless switched, e.g.
  502 APIG.0202) before the operation runs (no effect);
- ``list_churn``: that many ListDevices pages past the first each delete the lowest-id
  device just before they are read (a fleet changing under a paged read);
- ``reset_rate``: the TCP connection is reset (RST) without any answer, through the
  HTTP server's ``romakit.abort`` extension (see :mod:`romakit.sim.http`); half of
  the resets happen *after* the operation ran (effect applied, answer lost), so
  clients meet the truly unknown case. Under a server without the extension, the
  answer is cut short instead (headers promise more body than is sent);
- ``garbage_rate``: a 200 whose body is not JSON or is JSON cut short (after the
  operation ran);
- ``missing_fields_rate``: a 200 whose JSON object lacks fields the API promises
  (after the operation ran): one top-level field (``success``, ``failed``, ``total``,
  ``items``, ...), every field (``{}``), or the ``id``/``device_id`` of every list
  item, one of the three at random. Its die is rolled only while the rate is above
  0, so runs without it replay as before.

``simulator.requests`` logs ``(monotonic_time, method, path, status, n_ids)`` per
request, appended when answered, with the arrival time; status 0 marks a reset
connection; n_ids counts the ids a force-offline or batch-delete body offers (1 for
single-device calls), whatever the answer (throttled and refused ones included).
``simulator.answers`` logs ``(request_id, status, kind)`` at the same moments, kind
being ``ok``, ``error`` (4xx/5xx body), ``garbage``, ``missing`` (fields left out)
or ``reset`` (no answer): what a client's ``request_id`` was really answered with.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import re
import time
import traceback
import uuid
from collections import OrderedDict, deque
from typing import Any

import msgspec
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from romakit.sim import signature
from romakit.sim.faults import Faults
from romakit.sim.fleet import MAX_ID, Fleet, FleetView
from romakit.sim.gatekeeper import Gatekeeper, Refused
from romakit.sim.http import ABORT_EXTENSION
from romakit.sim.iam_app import IamState
from romakit.sim.openapi import ONLINE_STATUS_PATTERN, link_openapi

MAX_LIMIT = 999
MAX_FORCE_OFFLINE_IDS = 999_999
MAX_RESULT_ITEMS = 9_999
REQUEST_LOG_MAX = 500_000
_INT_RE = re.compile(r"-?[0-9]+")
_ONLINE_STATUS_RE = re.compile(ONLINE_STATUS_PATTERN)
_FILTERS = ("app_id", "product_id", "product_name", "device_name", "client_id", "node_id",
            "node_type", "online_status", "created_date_start", "created_date_end", "tag")


class _Answer(Exception):
    """An error answer, raised from deep inside a handler."""

    def __init__(self, status: int, code: str, msg: str, headers: dict[str, str] | None = None) -> None:
        # header bytes that were not UTF-8 arrive as lone surrogates: never echo them raw
        msg = msg.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(f"{status} {code}: {msg}")
        self.status, self.code, self.msg, self.headers = status, code, msg, headers or {}


def _bad(operation: str, parameter: str, processor: str, detail: str = "") -> _Answer:
    msg = (f"Parameter is not valid for operation [romalink.link-device.{operation}]. "
           f"Parameter is [{parameter}]. Processor is [{processor}].")
    if detail:
        msg = f"{msg} {detail}"
    return _Answer(400, "SCB.00000000", msg[:200])


def _not_found(what: object) -> _Answer:
    return _Answer(404, "ROMA.00110006",
                   f"The resource does not exist. Check whether the resource ID {what} is correct.")


class _ConnectionDropped(Exception):
    """Raised to make the HTTP server drop a connection whose answer was cut short."""


class _AsgiEndpoint:
    """Wraps the dispatcher so Starlette's Route treats it as an ASGI app (every method)."""

    def __init__(self, sim: LinkSimulator) -> None:
        self.sim = sim

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.sim._serve(scope, receive, send)


class LinkSimulator:
    """ROMA Connect LINK device API over a :class:`Fleet`, with switchable faults."""

    def __init__(
        self,
        fleet: Fleet,
        faults: Faults,
        credentials: Any,
        *,
        connect_address: str = "127.0.0.1:1883",
        ssl_connect_address: str = "127.0.0.1:8883",
        gate: Gatekeeper | None = None,
    ) -> None:
        self.fleet = fleet
        self.faults = faults
        self.credentials = credentials
        #: who may call (API Gateway's checks); an IAM record of its own unless given
        self.gate = gate or Gatekeeper(credentials, IamState(credentials, self.clock), self.clock)
        self.connect_address = connect_address
        self.ssl_connect_address = ssl_connect_address
        self.requests: deque[tuple[float, str, str, int, int]] = deque(maxlen=REQUEST_LOG_MAX)
        self.answers: deque[tuple[str, int, str]] = deque(maxlen=REQUEST_LOG_MAX)
        self._log_since = -math.inf  # requests that arrived before the last clear_log stay out
        self._rnd = random.Random(faults.seed)
        self._bucket_rate: float | None = None
        self._tokens = 0.0
        self._bucket_t = 0.0
        self._filtered: OrderedDict[tuple, tuple[int, FleetView]] = OrderedDict()
        self._openapi_body: bytes | None = None
        self._prefix = f"/v2/{credentials.project_id}/link/instances/{credentials.instance_id}"
        self.app = Starlette(routes=[Route("/{path:path}", _AsgiEndpoint(self))])

    def clock(self) -> float:
        """The sandbox's clock: this machine's plus ``faults.clock_offset_s``."""
        return time.time() + (self.faults.clock_offset_s or 0.0)

    def clear_log(self) -> None:
        """Forget the request log (and the answers log). A request that arrived before
        the clear and is answered after it (a slow one, a dead client's) stays out too,
        so the log holds exactly what arrived since."""
        self._log_since = time.monotonic()
        self.requests.clear()
        self.answers.clear()

    def _log(self, arrived: float, request: tuple, answer: tuple) -> None:
        if arrived >= self._log_since:
            self.requests.append(request)
            self.answers.append(answer)

    # -- the request cycle ------------------------------------------------------------
    async def _serve(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("path") == "/openapi.json" and scope.get("method") in ("GET", "HEAD"):
            # the API's own description: no auth, no faults, not in the request log
            await self._openapi(scope, receive, send)
            return
        arrived = time.monotonic()
        request = Request(scope, receive)
        rid = f"{uuid.uuid4()}-{int(time.time() * 1000)}-sandbox-P-romalink-service01"
        method, path = request.method, scope.get("path", "")
        f = self.faults
        ctx: _Ctx | None = None
        kind = "ok"
        try:
            body = await request.body()
            ctx = _Ctx(body, request.query_params)
            ctx.count_ids(method, path)  # before any refusal: the log counts ids as offered
            self._throttle(arrived)
            self._authenticate(request, body)
            op, ctx.arg = self._route(method, path)
            reset_roll, error_roll, garbage_roll, late_roll = (self._rnd.random() for _ in range(4))
            reset = reset_roll < f.reset_rate
            if reset and late_roll < 0.5:
                await self._reset(scope, send, rid, arrived, method, path, ctx.n_ids)
                return
            if error_roll < f.error_rate:
                raise _Answer(f.error_status, f.error_code, "System error. The backend is unavailable (sandbox fault).")
            status, payload = op(ctx)
            if reset:
                await self._reset(scope, send, rid, arrived, method, path, ctx.n_ids)
                return
            headers = {}
            missing = f.missing_fields_rate > 0 and self._rnd.random() < f.missing_fields_rate
            if payload is not None and garbage_roll < f.garbage_rate:
                status, content, headers = 200, _garbage(payload, self._rnd), {"content-type": "text/plain"}
                kind = "garbage"
            else:
                if missing and isinstance(payload, dict):
                    payload, kind = _missing_fields(payload, self._rnd), "missing"
                content = b"" if payload is None else _encode(payload)
        except _ConnectionDropped:
            raise
        except _Answer as a:
            status, headers, kind = a.status, dict(a.headers), "error"
            key = "requestId" if a.status in (400, 404) else "request_id"
            content = json.dumps({"error_code": a.code, "error_msg": a.msg, key: rid}).encode()
        except Exception as e:  # never a bare 500
            status, headers, kind = 500, {}, "error"
            detail = "".join(traceback.format_exception_only(e)).strip()
            content = json.dumps({"error_code": "APIG.9999",
                                  "error_msg": f"System error: {detail}"[:200], "request_id": rid}).encode()
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        headers.setdefault("content-type", "application/json;charset=UTF-8")
        headers["X-Request-Id"] = rid
        headers["Date"] = email.utils.formatdate(self.clock(), usegmt=True)
        self._log(arrived, (arrived, method, path, status, ctx.n_ids if ctx else 0), (rid, status, kind))
        response = Response(content, status_code=status, headers=headers)
        if status == 204:
            response = Response(status_code=204, headers={"X-Request-Id": rid, "Date": headers["Date"]})
        await response(scope, receive, send)

    async def _openapi(self, scope: dict, receive: Any, send: Any) -> None:
        if self._openapi_body is None:
            self._openapi_body = json.dumps(link_openapi(), separators=(",", ":")).encode()
        await Response(self._openapi_body, headers={"content-type": "application/json"})(scope, receive, send)

    async def _reset(self, scope: dict, send: Any, rid: str, arrived: float, method: str,
                     path: str, n_ids: int) -> None:
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        self._log(arrived, (arrived, method, path, 0, n_ids), (rid, 0, "reset"))
        abort = (scope.get("extensions") or {}).get(ABORT_EXTENSION)
        if abort is not None and await abort():
            return
        # fallback: promise a body and send only part of it; the server then closes
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096"),
                                (b"x-request-id", rid.encode())]})
        await send({"type": "http.response.body", "body": b'{"success":[', "more_body": True})
        raise _ConnectionDropped("sandbox fault: connection reset (answer cut short)")

    def _throttle(self, now: float) -> None:
        rate = self.faults.rate_limit
        if rate is None:
            self._bucket_rate = None
            return
        if rate <= 0:
            raise _Answer(429, "APIG.0308", "The request is throttled.", self._retry_after())
        burst = max(1.0, float(rate))
        if self._bucket_rate != rate:  # (re)configured: start with a full bucket
            self._bucket_rate, self._tokens, self._bucket_t = rate, burst, now
        self._tokens = min(burst, self._tokens + (now - self._bucket_t) * rate)
        self._bucket_t = now
        if self._tokens < 1.0:
            raise _Answer(429, "APIG.0308", "The request is throttled.", self._retry_after())
        self._tokens -= 1.0

    def _retry_after(self) -> dict[str, str]:
        ra = self.faults.retry_after
        return {} if ra is None else {"Retry-After": f"{ra:g}"}

    def _authenticate(self, request: Request, body: bytes) -> None:
        headers = signature.header_map(request.scope.get("headers") or [])
        raw_path = request.scope.get("raw_path") or request.scope.get("path", "").encode()
        try:
            self.gate.check(request.method, raw_path, request.scope.get("query_string", b""), headers, body)
        except Refused as r:
            raise _Answer(r.status, r.code, r.msg) from None

    def _route(self, method: str, path: str) -> tuple[Any, str]:
        parts = path.split("/")
        # "", "v2", project, "link", "instances", instance, "devices", ...
        if len(parts) < 7 or parts[1] != "v2" or parts[3:5] != ["link", "instances"] or parts[6] != "devices":
            raise _Answer(404, "APIG.0101", "The API does not exist or has not been published in the environment.")
        project, instance, rest = parts[2], parts[5], parts[7:]
        if project != self.credentials.project_id or instance != self.credentials.instance_id:
            raise _Answer(500, "ROMA.00110002",
                          f"The instance does not exist. project_id: {project}, instance_id: {instance}"[:200])
        table = {
            ((), "GET"): self._list,
            ((), "POST"): self._create,
            ((), "DELETE"): self._delete_batch,
            (("force-offline",), "POST"): self._force_offline,
        }
        key = (tuple(rest), method)
        if key in table:
            return table[key], ""
        if len(rest) == 1 and rest[0] and rest[0] != "force-offline":
            if method == "GET":
                return self._show, rest[0]
            if method == "DELETE":
                return self._delete_one, rest[0]
        raise _Answer(404, "APIG.0101", "The API does not exist or has not been published in the environment.")

    # -- operations: each returns (status, JSON payload or None) ------------------------
    def _show(self, ctx: _Ctx) -> tuple[int, Any]:
        did = _path_id(ctx.arg, "show")
        dev = self.fleet.get(did)
        if dev is None:
            raise _not_found(ctx.arg)
        return 200, dev

    def _delete_one(self, ctx: _Ctx) -> tuple[int, Any]:
        did = _path_id(ctx.arg, "delete")
        if not self.fleet.delete([did]):
            raise _not_found(ctx.arg)
        return 204, None

    def _delete_batch(self, ctx: _Ctx) -> tuple[int, Any]:
        """Delete devices by id; the body names them ``device_ids`` (docs) or ``resources`` (SDK).

        Ids that do not exist are ignored: the answer is 204 either way.
        """
        data = ctx.json_object("batchDelete", "deviceBatchDeleteRequest")
        if "device_ids" not in data and "resources" not in data:
            raise _bad("batchDelete", "device_ids", "body", "device_ids (or resources) is required.")
        ids: list[int] = []
        for key in ("device_ids", "resources"):
            if key in data:
                ids += _id_list(data[key], "batchDelete", key, MAX_FORCE_OFFLINE_IDS)
        self.fleet.delete(dict.fromkeys(ids))
        return 204, None

    def _force_offline(self, ctx: _Ctx) -> tuple[int, Any]:
        """Bring devices offline.

        Per distinct id (repeats answered once, first-seen order): unknown ->
        ``failed`` with device_name ""; in ``faults.fail_ids`` or a product in
        ``faults.fail_products`` -> ``failed``, unchanged; in ``faults.lie_ids`` ->
        ``success`` but left as it is; otherwise ``success`` and online_status 2,
        including devices already offline or never connected (idempotent).
        Each list is cut at 9,999 entries, as the schema allows; every id is
        processed regardless.
        """
        data = ctx.json_object("forceDisconnect", "deviceDisconnectRequest")
        if "device_ids" not in data:
            raise _bad("forceDisconnect", "deviceDisconnectRequest", "body", "device_ids is required.")
        ids = list(dict.fromkeys(_id_list(data["device_ids"], "forceDisconnect", "deviceDisconnectRequest",
                                          MAX_FORCE_OFFLINE_IDS)))
        f = self.faults
        fail_ids, fail_products, lie_ids = set(f.fail_ids), set(f.fail_products), set(f.lie_ids)
        success: list[dict] = []
        failed: list[dict] = []
        to_offline: list[int] = []
        fleet = self.fleet
        with fleet.lock:
            for did, found in zip(ids, fleet.names_and_products(ids), strict=True):
                if found is None:
                    failed.append({"id": did, "device_name": "", "device_id": did})
                    continue
                name, product_id = found
                item = {"id": did, "device_name": name, "device_id": did}
                if did in fail_ids or product_id in fail_products:
                    failed.append(item)
                    continue
                success.append(item)
                if did not in lie_ids:
                    to_offline.append(did)
            fleet.force_offline(to_offline)
        return 200, {"success": success[:MAX_RESULT_ITEMS], "failed": failed[:MAX_RESULT_ITEMS]}

    def _create(self, ctx: _Ctx) -> tuple[int, Any]:
        """Create a device: ``device_name``, ``node_id`` and ``product_id`` (top level, or
        ``product.product_id`` as the SDK sends it) are required -> 201 Device.

        Types are checked here (ids are numbers, fractions rounded down; names, ``app_id``
        and ``description`` strings; ``tags`` a list; ``status`` the integer 0 or 1),
        existence and ranges by the fleet: every refusal is 400 SCB.00000000 naming the field.
        """
        data = ctx.json_object("create", "deviceCreateRequest")
        fields: dict[str, Any] = {}
        for k in ("device_name", "node_id", "app_id", "parent_device_id", "description", "tags", "status"):
            if data.get(k) is not None:
                fields[k] = data[k]
        pid = data.get("product_id")
        if pid is None and isinstance(data.get("product"), dict):
            pid = data["product"].get("product_id")
        fields["product_id"] = _whole(pid, "create", "product_id")
        if "parent_device_id" in fields:
            fields["parent_device_id"] = _whole(fields["parent_device_id"], "create", "parent_device_id")
        for name, kind in (("device_name", str), ("node_id", str), ("app_id", str), ("description", str),
                           ("tags", list)):
            if name in fields and not isinstance(fields[name], kind):  # the fleet takes falsy values as absent
                raise _bad("create", name, "body", f"{name} must be a {'string' if kind is str else 'list'}.")
        status = fields.get("status")
        if status is not None and (type(status) is not int or status not in (0, 1)):
            raise _bad("create", "status", "body", f"status must be 0 or 1, got {str(status)[:20]}.")
        try:
            dev = self.fleet.create(**fields)
        except ValueError as e:
            raise _bad("create", str(e).split(" ", 1)[0], "body", str(e)) from None
        return 201, dev

    # -- list ------------------------------------------------------------------------------
    def _churn(self) -> None:
        """The ``list_churn`` fault: another operator deletes the lowest-id device while a
        page past the first is read (so offset paging shifts under the reader)."""
        with self.faults._lock:
            if self.faults.list_churn <= 0:
                return
            self.faults.list_churn -= 1
        with self.fleet.lock:
            first = self.fleet.snapshot().column("id")[:1].tolist()  # the id alone, no device formatted
        self.fleet.delete(first)

    def _list(self, ctx: _Ctx) -> tuple[int, Any]:
        """Query devices, ordered by id.

        ``offset`` >= 0 (default 0), ``limit`` 1.. (default 10, more than 999 is cut to
        999). Filters: ``app_id``, ``client_id``, ``node_id`` (2..64), ``tag`` (one of
        the device's tags), ``product_id`` (int) and ``node_type`` (0/1/2) match exactly;
        ``device_name`` (2..64) and ``product_name`` match substrings (case-sensitive);
        ``online_status`` is a comma list of 0/1/2; ``created_date_start`` /
        ``created_date_end`` bound ``created_datetime`` (epoch ms, inclusive). A bad
        value answers 400 SCB.00000000; unknown parameters are ignored.
        """
        op, query = "list", ctx.query

        def integer(name: str, lo: int, hi: int | None = None, default: int | None = None) -> int | None:
            raw = query.get(name)
            if raw is None:
                return default
            if not _INT_RE.fullmatch(raw):  # ASCII digits only: int() would take " 5", "+5", "1_0", "５"
                raise _bad(op, name, "query", f"{name} must be an integer.")
            # past 30 digits every value acts alike (and int() refuses past 4,300 digits)
            v = int(raw) if len(raw.lstrip("-0")) <= 30 else (-1 if raw.startswith("-") else 10**30)
            if v < lo or (hi is not None and v > hi):
                raise _bad(op, name, "query", f"{name} is out of range.")
            return v

        def text(name: str, lo: int = 0, hi: int = 256) -> str | None:
            raw = query.get(name)
            if raw is None or (raw == "" and lo == 0):
                return None
            if not lo <= len(raw) <= hi:
                raise _bad(op, name, "query", f"{name} must be {lo}..{hi} characters.")
            return raw

        offset = integer("offset", 0, default=0)
        limit = min(integer("limit", 1, default=10), MAX_LIMIT)
        # each filter is a mask over the fleet's columns: no device is formatted to be filtered
        masks: list[Any] = []
        if (v := text("app_id")) is not None:
            apps = [a for a, _ in self.fleet.apps()]
            masks.append(lambda w, v=v: w.column("app") == (apps.index(v) if v in apps else -1))
        if (v := integer("product_id", 0)) is not None:
            masks.append(lambda w, v=v: w.column("product_id") == v)
        if (v := text("product_name")) is not None:
            named = [p["product_id"] for p in self.fleet.products() if v in p["product_name"]]
            masks.append(lambda w, named=named: np.isin(w.column("product_id"), named))
        if (v := text("device_name", 2, 64)) is not None:
            masks.append(lambda w, v=v: np.array([v in name for name in w.strings("device_name")], dtype=bool))
        if (v := text("client_id")) is not None:
            masks.append(lambda w, v=v: w.column("id") == _id_of(self.fleet.by_client_id(v)))
        if (v := text("node_id", 2, 64)) is not None:
            masks.append(lambda w, v=v: w.column("id") == _id_of(self.fleet.by_node_id(v)))
        if (v := integer("node_type", 0, 2)) is not None:
            masks.append(lambda w, v=v: w.column("node_type") == v)
        raw = query.get("online_status")
        if raw is not None:
            if not _ONLINE_STATUS_RE.fullmatch(raw):
                raise _bad(op, "online_status", "query", "online_status must list 0, 1 or 2.")
            wanted = sorted({int(x) for x in raw.split(",")})
            masks.append(lambda w, v=wanted: np.isin(w.column("online_status"), v))
        if (v := integer("created_date_start", 0)) is not None:
            masks.append(lambda w, v=v: w.column("created_datetime") >= min(v, 2**62))
        if (v := integer("created_date_end", 0)) is not None:
            masks.append(lambda w, v=v: w.column("created_datetime") <= min(v, 2**62))
        if (v := text("tag")) is not None:
            masks.append(lambda w, v=v: w.has_tag(v))
        fleet = self.fleet
        if offset > 0 and self.faults.list_churn > 0:
            self._churn()
        with fleet.lock:
            devices = fleet.snapshot()
            if masks:
                # cached per filter set and fleet revision: paging through one filter is O(page)
                k = tuple(query.get(name) for name in _FILTERS)
                hit = self._filtered.get(k)
                if hit is not None and hit[0] == fleet.revision:
                    devices = hit[1]
                    self._filtered.move_to_end(k)
                else:
                    for mask in masks:
                        devices = devices.where(mask(devices))
                    self._filtered[k] = (fleet.revision, devices)
                    while len(self._filtered) > 16:
                        self._filtered.popitem(last=False)
            total = len(devices)
            size = len(devices.rows[offset:offset + limit])
            if self.faults.garbage_rate or self.faults.missing_fields_rate:
                page: Any = devices[offset:offset + limit]  # dicts: the faults take the answer apart
            else:  # the bytes straight from the columns (no dicts built)
                page = msgspec.Raw(devices.json(offset, offset + limit))
        return 200, {"total": total, "size": size, "items": page,
                     "connect_address": self.connect_address,
                     "ssl_connect_address": self.ssl_connect_address}


#: JSON encoder of answers: a page of 999 devices in ~1 ms (json.dumps: ~10 ms), so a
#: million-device listing is not the sandbox's bottleneck
_encode = msgspec.json.Encoder().encode


def _id_of(dev: dict | None) -> int:
    """A device's id; -1 (no device has it) for None."""
    return -1 if dev is None else dev["id"]


def _whole(value: Any, op: str, name: str) -> int | None:
    """A JSON number as an int (a finite fraction rounded down); None stays None; else 400."""
    if value is None or (type(value) is int):
        return value
    if type(value) is float and math.isfinite(value):
        return math.floor(value)
    raise _bad(op, name, "body", f"{name} must be an integer.")


def _path_id(raw: str, op: str) -> int:
    """The device id of a path: ASCII digits (else 400); out of 1..MAX_ID is simply not found."""
    if not _INT_RE.fullmatch(raw):
        raise _bad(op, "device_id", "path", f"device_id {raw[:40]!r} is not an integer.")
    if len(raw.lstrip("-0")) > 17 or not 1 <= int(raw) <= MAX_ID:
        raise _not_found(raw[:40])
    return int(raw)


def _reject_constant(c: str) -> None:
    raise ValueError(f"{c} is not valid JSON")


class _Ctx:
    """One request as the operations see it: path argument, body (parsed once), query."""

    _UNPARSED = object()

    def __init__(self, body: bytes, query: Any) -> None:
        self.body, self.query, self.arg, self.n_ids = body, query, "", 0
        self._data: Any = self._UNPARSED

    def json(self) -> Any:
        """The body as JSON (None when empty); ValueError when it is not JSON."""
        if self._data is self._UNPARSED:
            try:
                self._data = json.loads(self.body, parse_constant=_reject_constant) if self.body else None
            except (ValueError, UnicodeDecodeError, RecursionError) as e:  # nested too deep: not ours to parse
                self._data = ValueError(f"{type(e).__name__}: {str(e)[:100]}")
        if isinstance(self._data, ValueError):
            raise self._data
        return self._data

    def json_object(self, op: str, param: str) -> dict:
        try:
            data = self.json()
        except ValueError:
            raise _bad(op, param, "body", "The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise _bad(op, param, "body", "The body must be a JSON object.")
        return data

    def count_ids(self, method: str, path: str) -> None:
        """Count the ids a request carries, for the request log (never raises)."""
        tail = path.rstrip("/").split("/")
        last = tail[-1]
        if method in ("GET", "DELETE") and len(tail) > 1 and tail[-2] == "devices" and last.isdigit():
            self.n_ids = 1
            return
        if not ((method == "POST" and last == "force-offline") or (method == "DELETE" and last == "devices")):
            return
        try:
            data = self.json()
        except ValueError:
            return
        if isinstance(data, dict):
            self.n_ids = sum(len(v) for k, v in data.items()
                             if k in ("device_ids", "resources") and isinstance(v, list))


def _id_list(value: Any, op: str, param: str, max_len: int) -> list[int]:
    """A JSON list of device ids -> ints (fractions rounded down) in 1..MAX_ID; anything else -> 400."""
    if not isinstance(value, list):
        raise _bad(op, param, "body", "device ids must be a list of integers.")
    if len(value) > max_len:
        raise _bad(op, param, "body", f"At most {max_len} device ids per call.")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _bad(op, param, "body", f"device id {str(v)[:30]!r} is not a number.")
        if isinstance(v, float):
            if not math.isfinite(v):
                raise _bad(op, param, "body", "device ids must be finite numbers.")
            v = math.floor(v)
        if not 1 <= v <= MAX_ID:  # DeviceInfoSimple.id is 1..MAX_ID: an id outside can only be a mistake
            raise _bad(op, param, "body", f"device id {str(v)[:30]} is out of range 1..{MAX_ID}.")
        out.append(v)
    return out


def _missing_fields(payload: dict, rnd: random.Random) -> dict:
    """``payload`` without some of its fields: one top-level field, all of them, or the
    ids of every item of its lists (the ``missing_fields_rate`` fault)."""
    kind = rnd.randrange(3)
    out = dict(payload)
    if kind == 0 and out:
        out.pop(rnd.choice(sorted(out)))
    elif kind == 1:
        out = {}
    else:
        for key, value in out.items():
            if isinstance(value, list):
                out[key] = [{k: v for k, v in item.items() if k not in ("id", "device_id")}
                            if isinstance(item, dict) else item for item in value]
    return out


def _garbage(payload: Any, rnd: random.Random) -> bytes:
    """A body that is not what the API promises: HTML, or JSON cut short."""
    if rnd.random() < 0.5:
        return b"<html><body><h1>502 Bad Gateway</h1>sandbox fault</body></html>"
    text = json.dumps(payload, separators=(",", ":")).encode()
    return text[: max(1, len(text) // 2)]
