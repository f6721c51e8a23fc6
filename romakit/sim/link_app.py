"""The sandbox's ROMA Connect LINK device API (REST), as a Starlette ASGI app.

``LinkSimulator(fleet, faults, credentials).app`` answers the device operations of
:mod:`romakit.sim.link_devices` under ``/v2/{project_id}/link/instances/{instance_id}``,
their input read as :mod:`romakit.sim.link_request` reads it.

``GET /openapi.json`` answers the API's OpenAPI 3.0 document
(:func:`romakit.sim.openapi.link_openapi`) without auth, faults or logging; every answer
fits it (``tests/sim/test_sim_fuzz.py`` fuzzes the simulator from it with schemathesis).

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

Faults are read from the shared :class:`~romakit.sim.faults.Faults` on every request,
with the simulator's own :class:`~romakit.sim.faults.Dice`:

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
  item, one of the three at random. Its die is rolled only while its rate is above 0.

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
import time
import traceback
import uuid
from collections import deque
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from romakit.sim import faults as trouble
from romakit.sim import signature
from romakit.sim.faults import Dice, Faults, TokenBucket
from romakit.sim.fleet import Fleet
from romakit.sim.gatekeeper import Gatekeeper, Refused
from romakit.sim.http import ABORT_EXTENSION
from romakit.sim.iam_app import IamState
from romakit.sim.link_devices import LinkDevices
from romakit.sim.link_request import Answer, LinkRequest
from romakit.sim.openapi import link_openapi

REQUEST_LOG_MAX = 500_000
#: JSON encoder of answers: a page of 999 devices in ~1 ms, so a million-device
#: listing is not the sandbox's bottleneck
_encode = msgspec.json.Encoder().encode


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
        #: the device operations (ListDevices, CreateDevice, ...) on ``fleet``
        self.devices = LinkDevices(fleet, faults, connect_address=connect_address,
                                   ssl_connect_address=ssl_connect_address, instance_id=credentials.instance_id)
        self.requests: deque[tuple[float, str, str, int, int]] = deque(maxlen=REQUEST_LOG_MAX)
        self.answers: deque[tuple[str, int, str]] = deque(maxlen=REQUEST_LOG_MAX)
        self._log_since = -math.inf  # requests that arrived before the last clear_log stay out
        self._dice = Dice(faults)
        self._bucket = TokenBucket()
        self._openapi_body: bytes | None = None
        self._prefix = f"/v2/{credentials.project_id}/link/instances/{credentials.instance_id}"
        self.app = Starlette(routes=[Route("/{path:path}", _AsgiEndpoint(self))])

    def clock(self) -> float:
        """The sandbox's clock: this machine's plus ``faults.clock_offset_s``."""
        return time.time() + (self.faults.clock_offset_s or 0.0)

    @property
    def devices_served(self) -> int:
        """Devices answered so far by ListDevices (every item of every page) and
        ShowDevice: what readers cost the service (never reset; take differences)."""
        return self.devices.served

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
        ctx: LinkRequest | None = None
        kind = "ok"
        try:
            body = await request.body()
            ctx = LinkRequest(body, request.query_params)
            ctx.count_ids(method, path)  # before any refusal: the log counts ids as offered
            self._throttle(arrived)
            self._authenticate(request, body)
            op, ctx.arg = self._route(method, path)
            reset_roll, error_roll, garbage_roll, late_roll = self._dice.rolls(4)
            reset = reset_roll < f.reset_rate
            if reset and late_roll < 0.5:
                await self._reset(scope, send, rid, arrived, method, path, ctx.n_ids)
                return
            if error_roll < f.error_rate:
                raise Answer(f.error_status, f.error_code, "System error. The backend is unavailable (sandbox fault).")
            status, payload = op(ctx)
            if reset:
                await self._reset(scope, send, rid, arrived, method, path, ctx.n_ids)
                return
            headers = {}
            missing = f.missing_fields_rate > 0 and self._dice.random() < f.missing_fields_rate
            if payload is not None and garbage_roll < f.garbage_rate:
                status, content, headers = 200, trouble.garbage(payload, self._dice), {"content-type": "text/plain"}
                kind = "garbage"
            else:
                if missing and isinstance(payload, dict):
                    payload, kind = trouble.without_fields(payload, self._dice), "missing"
                content = b"" if payload is None else _encode(payload)
        except _ConnectionDropped:
            raise
        except Answer as a:
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
        if rate is not None and not self._bucket.take(rate, now):
            raise Answer(429, "APIG.0308", "The request is throttled.", self._retry_after())

    def _retry_after(self) -> dict[str, str]:
        ra = self.faults.retry_after
        return {} if ra is None else {"Retry-After": f"{ra:g}"}

    def _authenticate(self, request: Request, body: bytes) -> None:
        headers = signature.header_map(request.scope.get("headers") or [])
        raw_path = request.scope.get("raw_path") or request.scope.get("path", "").encode()
        try:
            self.gate.check(request.method, raw_path, request.scope.get("query_string", b""), headers, body)
        except Refused as r:
            raise Answer(r.status, r.code, r.msg) from None

    def _route(self, method: str, path: str) -> tuple[Any, str]:
        parts = path.split("/")
        # "", "v2", project, "link", "instances", instance, "devices", ...
        if len(parts) < 7 or parts[1] != "v2" or parts[3:5] != ["link", "instances"] or parts[6] != "devices":
            raise Answer(404, "APIG.0101", "The API does not exist or has not been published in the environment.")
        project, instance, rest = parts[2], parts[5], parts[7:]
        if project != self.credentials.project_id or instance != self.credentials.instance_id:
            raise Answer(500, "ROMA.00110002",
                         f"The instance does not exist. project_id: {project}, instance_id: {instance}"[:200])
        found = self.devices.operation(method, rest)
        if found is None:
            raise Answer(404, "APIG.0101", "The API does not exist or has not been published in the environment.")
        return found
