"""IoTDA's application-side REST inventory: ``rk.IotdaClient`` (ListDevices, ShowDevice).

On a real account IoTDA keeps its own device inventory, apart from ROMA Connect LINK's:
a gateway's children are listed here (``gateway_id=``), and a device's ``status``
(ONLINE, OFFLINE, ABNORMAL, INACTIVE, FROZEN) says whether it holds a connection now,
which is what a gateway login must check before it takes the field gateway's place.

``GET /v5/iot/{project_id}/devices`` pages with a ``marker`` (the last record's id,
newest first), at most 50 per page; :meth:`IotdaClient.devices` follows every page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from romakit import __version__, jsondepth, wire
from romakit._net import is_loopback
from romakit.bounded import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, Bounds, exchange_sync
from romakit.errors import (
    ApiError,
    ClientClosed,
    InputError,
    MalformedResponse,
    TransportError,
    closed_message,
)
from romakit.ids import IOTDA_ID_RE
from romakit.redact import scrub

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: ListDevices' largest page (IoTDA: limit 1..50)
PAGE_LIMIT = wire.IOTDA_PAGE_LIMIT
#: the filters ListDevices documents (besides limit, marker, offset)
FILTERS = ("product_id", "gateway_id", "is_cascade_query", "node_id", "device_name", "start_time", "end_time",
           "app_id")
STATUSES = ("ONLINE", "OFFLINE", "ABNORMAL", "INACTIVE", "FROZEN")
#: columns of :meth:`IotdaClient.devices`, in order
COLUMNS = ("device_id", "device_name", "node_id", "node_type", "gateway_id", "status", "product_id",
           "product_name", "app_id", "app_name", "description", "fw_version", "sw_version",
           "device_sdk_version", "tags")
_TIME = re.compile(r"^\d{8}T\d{6}Z$")
_MAX_PAGES = 100_000  # a far side that never stops paging is a bug, not a fleet


def _check_filters(filters: Mapping[str, Any]) -> dict[str, str]:
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise InputError(f"unknown ListDevices filter(s) {', '.join(unknown)}; known: {', '.join(FILTERS)}")
    out: dict[str, str] = {}
    for k, v in filters.items():
        if v is None:
            continue
        if k == "is_cascade_query":
            if not isinstance(v, bool):
                raise InputError(f"is_cascade_query must be True or False, got {v!r}")
            out[k] = "true" if v else "false"
            continue
        if isinstance(v, bool) or not isinstance(v, (str, int)) or str(v) == "":
            raise InputError(f"filter {k} must be a non-empty string, got {v!r}")
        v = str(v)
        if k in ("start_time", "end_time") and not _TIME.match(v):
            raise InputError(f"{k} must be UTC yyyyMMddTHHmmssZ (e.g. 20250101T000000Z), got {v!r}")
        if k == "gateway_id" and not IOTDA_ID_RE.match(v):
            raise InputError(f"gateway_id {v!r} is not an IoTDA device id")
        out[k] = v
    if "is_cascade_query" in out and "gateway_id" not in out:
        raise InputError("is_cascade_query only applies with gateway_id")
    return out


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame.from_records([{c: r.get(c) for c in COLUMNS} for r in rows], columns=list(COLUMNS))
    df["status"] = pd.Categorical(df["status"], categories=STATUSES)
    df["node_type"] = df["node_type"].astype("category")
    df["tags"] = [[f"{t.get('tag_key')}={t.get('tag_value')}" if isinstance(t, dict) else str(t) for t in (v or [])]
                  for v in df["tags"]]
    return df


class IotdaClient:
    """IoTDA's device inventory for one project (``rk.IotdaClient``), synchronous.

    ``endpoint`` is the instance's REST access address (``https://...:443``);
    ``auth`` any ``httpx.Auth``: :class:`~romakit.iotda.rest_auth.IotdaAkSk` (plain or
    derived AK/SK; standard and enterprise instances need derived, with the region),
    ``rk.AkSk`` (plain) or ``rk.Token``. ``instance_id`` is sent as ``Instance-Id``
    where the instance needs it. TLS verified (``verify``: a CA path or context); plain
    HTTP only to loopback unless ``allow_insecure``.
    """

    def __init__(self, endpoint: str, project_id: str, auth: httpx.Auth, *, instance_id: str | None = None,
                 timeout: float = 15.0, verify: Any = True, allow_insecure: bool = False,
                 deadline: float = DEFAULT_DEADLINE, max_answer_bytes: int = DEFAULT_MAX_BYTES) -> None:
        parts = urlsplit(endpoint if isinstance(endpoint, str) else "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"endpoint must be an http(s) URL (the instance's REST access address), got {endpoint!r}")
        if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure:
            raise InputError(f"refusing plain HTTP to {parts.hostname}: use https, or pass allow_insecure=True")
        if not isinstance(project_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", project_id):
            raise InputError(f"project_id must be 1..64 letters, digits, '_' or '-', got {project_id!r}")
        if not isinstance(auth, httpx.Auth):
            raise InputError("auth must be an httpx.Auth: rk.IotdaAkSk(ak, sk, region=...), rk.AkSk or rk.Token")
        self.endpoint, self.project_id, self.instance_id, self.auth = endpoint.rstrip("/"), project_id, instance_id, auth
        self._bounds = Bounds(deadline, max_answer_bytes)
        headers = {"User-Agent": f"romakit/{__version__}", "Content-Type": "application/json"}
        if instance_id:
            headers["Instance-Id"] = instance_id
        self._http = httpx.Client(base_url=self.endpoint, auth=auth, timeout=httpx.Timeout(timeout), verify=verify,
                                  headers=headers)
        self._closed_why: str | None = None  # what closed it, said when it is used again

    def __repr__(self) -> str:
        return f"IotdaClient(endpoint={self.endpoint!r}, project_id={self.project_id!r}, auth={self.auth!r})"

    def identity(self) -> dict[str, Any]:
        """Where this client reads (no credentials)."""
        return {"kind": "iotda", "endpoint": self.endpoint, "project_id": self.project_id,
                "instance_id": self.instance_id}

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = f"/v5/iot/{quote(self.project_id, safe='')}{path}"
        if self._http.is_closed:  # a romakit error, never httpx's "the client has been closed"
            raise ClientClosed(closed_message(f"IotdaClient for project {self.project_id}", self._closed_why))
        try:
            r = exchange_sync(self._http, "GET", url, {"params": params}, self._bounds)
        except httpx.HTTPError as e:
            raise TransportError(f"IoTDA {url}: {type(e).__name__}: {e}", sent=False) from None
        try:
            body = jsondepth.loads(r.content) if r.content else {}
        except ValueError:
            body = None
        if r.status_code >= 400:
            err = body if isinstance(body, dict) else {}
            raise ApiError(r.status_code, err.get("error_code"), err.get("error_msg") or r.text[:200],
                           r.headers.get("X-Request-Id"))
        if not isinstance(body, dict):
            raise MalformedResponse(f"IoTDA {url}: the answer is not a JSON object")
        return body

    def devices(self, **filters: Any) -> pd.DataFrame:
        """Every device matching ``filters`` (ListDevices, all pages of 50), one row each:
        :data:`COLUMNS`. ``gateway_id=`` lists that gateway's children
        (``is_cascade_query=True``: every level below it); also ``product_id``,
        ``node_id``, ``device_name``, ``app_id``, ``start_time``/``end_time``
        (UTC ``yyyyMMddTHHmmssZ``)."""
        params = _check_filters(filters)
        rows: list[dict[str, Any]] = []
        marker: str | None = None
        for _ in range(_MAX_PAGES):
            page_params = {**params, "limit": str(PAGE_LIMIT), **({"marker": marker} if marker else {})}
            body = self._get("/devices", page_params)
            page = body.get("devices")
            if not isinstance(page, list) or not all(isinstance(d, dict) for d in page):
                raise MalformedResponse("ListDevices answer without a 'devices' list of objects")
            rows.extend(page)
            paging = body.get("page")
            info = paging if isinstance(paging, dict) else {}
            nxt, count = info.get("marker"), info.get("count")
            done = isinstance(count, int) and not isinstance(count, bool) and len(rows) >= count
            if done or len(page) < PAGE_LIMIT or not nxt or nxt == marker:
                break
            marker = nxt
        else:  # pragma: no cover - a broken far side
            raise MalformedResponse(f"ListDevices kept paging past {_MAX_PAGES} pages")
        gw = params.get("gateway_id")
        if gw is not None:  # a gateway is its own gateway_id: list only what is under it
            rows = [r for r in rows if r.get("device_id") != gw]
        return _frame(rows)

    def device(self, device_id: str) -> dict[str, Any]:
        """One device (ShowDevice): ``status``, ``gateway_id``, ``auth_info``, ..., less
        its secrets (``auth_info.secret``...: :func:`romakit.redact.scrub`)."""
        if not isinstance(device_id, str) or not IOTDA_ID_RE.match(device_id):
            raise InputError(f"device_id {device_id!r} is not an IoTDA device id")
        return scrub(self._get(f"/devices/{quote(device_id, safe='')}"))

    def status(self, device_id: str) -> str | None:
        """The device's ``status`` (ONLINE, OFFLINE, ABNORMAL, INACTIVE, FROZEN); None if absent."""
        value = self.device(device_id).get("status")
        return value if isinstance(value, str) else None

    @property
    def closed(self) -> bool:
        """True once the client was closed: it reads nothing any more."""
        return self._http.is_closed

    def close(self, *, reason: str | None = None) -> None:
        """Close the connections; using the client afterwards raises
        :class:`~romakit.errors.ClientClosed` (naming ``reason`` when given)."""
        if not self._http.is_closed:
            self._closed_why = reason
        self._http.close()

    def __enter__(self) -> IotdaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["COLUMNS", "FILTERS", "PAGE_LIMIT", "STATUSES", "IotdaClient"]
