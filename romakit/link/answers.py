"""Reading ROMA Connect LINK's answers: endpoints checked, error bodies turned into
:class:`~romakit.ApiError`, request ids found, pages and item lists validated. No I/O:
the client sends, this module reads what came back.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from romakit._net import is_loopback
from romakit.errors import ApiError, InputError, MalformedResponse
from romakit.jsondepth import MAX_DEPTH, gc_paused, too_deep


def check_endpoint(endpoint: str, allow_insecure: bool) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"endpoint must be an http(s) URL like https://roma.cn-north-4.myhuaweicloud.com, got {endpoint!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure:
        raise InputError(
            f"refusing plain HTTP to {parts.hostname}: credentials and device ids would cross the network "
            "unencrypted; use https, or pass allow_insecure=True if you really mean it"
        )
    return endpoint.rstrip("/")


def public_endpoint(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(when.timestamp() - time.time(), 0.0) if when else None


def request_id_of(resp: httpx.Response, body: Any) -> str | None:
    if isinstance(body, Mapping):
        rid = body.get("request_id") or body.get("requestId")
        if rid:
            return str(rid)
    return resp.headers.get("X-Request-Id")


def clock_skew(resp: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the server's clock (the answer's ``Date`` header, 1 s resolution) is ahead
    of this machine's; None without a readable Date."""
    value = resp.headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return when.timestamp() - (time.time() if now is None else now)


def api_error(resp: httpx.Response, cls: type[ApiError] = ApiError) -> ApiError:
    """The :class:`ApiError` (or ``cls``) an error answer stands for; with the clock skew
    the answer's ``Date`` shows when the credentials were refused."""
    try:  # not JSON, or nested past any sense: no body to read
        body = None if too_deep(resp.content) else resp.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        body = {}
    return cls(
        resp.status_code,
        body.get("error_code") and str(body.get("error_code")),
        body.get("error_msg") and str(body.get("error_msg"))[:200],
        request_id_of(resp, body),
        retry_after(resp.headers.get("Retry-After")),
        clock_skew(resp) if resp.status_code in (401, 403) else None,
    )


def refuse_deep(resp: httpx.Response) -> None:
    """:class:`MalformedResponse` when the answer nests past :data:`MAX_DEPTH`: refused
    before a decoder recurses into it."""
    if too_deep(resp.content):
        raise malformed(f"HTTP {resp.status_code} answer is JSON nested too deep to read (past {MAX_DEPTH} levels, "
                        f"{len(resp.content)} bytes)", resp.headers.get("X-Request-Id"))


def json_body(resp: httpx.Response) -> Any:
    """The answer's JSON; :class:`MalformedResponse` (with the request id) when it is none."""
    refuse_deep(resp)
    try:
        return resp.json()
    except ValueError:
        raise malformed(f"HTTP {resp.status_code} answer is not JSON ({len(resp.content)} bytes)",
                        resp.headers.get("X-Request-Id")) from None


#: error codes that, answering the pre-flight read, say the instance or project does not exist
MISSING_TARGET_CODES = frozenset({"ROMA.00110002", "ROMA.00110006"})


def target_missing(err: ApiError) -> bool:
    """The pre-flight read's error says there is no such instance or project (a 404, or
    ``ROMA.00110002`` "instance does not exist", which the service sends as HTTP 500)."""
    return err.status == 404 or (err.error_code or "") in MISSING_TARGET_CODES


def malformed(message: str, request_id: str | None) -> MalformedResponse:
    """A MalformedResponse that keeps the answer's request id (the batch engine puts it on
    the devices' rows: it is what a support ticket needs)."""
    err = MalformedResponse(f"{message} (request_id={request_id})")
    err.request_id = request_id  # type: ignore[attr-defined]
    return err


def simple_items(items: Any, what: str, request_id: str | None) -> list[tuple[int, str | None]]:
    """``(id, device_name or None)`` of each item; :class:`MalformedResponse` (the whole
    answer: its devices end ``unknown``, never ``success``) when an item's id is not an
    exact int or string of digits."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise malformed(f"'{what}' is {type(items).__name__}, expected a list", request_id)
    out = []
    for it in items:
        if not isinstance(it, Mapping):
            raise malformed(f"an item of '{what}' is not an object", request_id)
        raw = it.get("id", it.get("device_id"))
        dev = whole_number(raw)  # exact: true is not device 1, 31.9 is not device 31
        if dev is None:
            raise malformed(f"an item of '{what}' has no usable id (an exact int or string of digits): {raw!r}"[:300],
                            request_id)
        name = it.get("device_name")
        out.append((dev, str(name) if name else None))
    return out


class _Simple(msgspec.Struct, gc=False):
    """DeviceInfoSimple as the typed decoder takes it (anything else: the generic path)."""

    id: int | msgspec.UnsetType = msgspec.UNSET
    device_id: int | msgspec.UnsetType = msgspec.UNSET
    device_name: str | None = None


class _Verdicts(msgspec.Struct, gc=False):
    success: list[_Simple] | None = None
    failed: list[_Simple] | None = None
    request_id: str | None = None
    requestId: str | None = None  # noqa: N815 - the wire's spelling


_VERDICTS = msgspec.json.Decoder(_Verdicts)

Verdicts = tuple[list[tuple[int, str | None]], list[tuple[int, str | None]], str | None]


def verdicts(resp: httpx.Response) -> Verdicts:
    """A force-offline answer -> (``success`` pairs, ``failed`` pairs, request id), each
    pair ``(id, device_name or None)``; :class:`MalformedResponse` (with the request id)
    when it is not one.

    The bytes are decoded straight into typed structs (no dict per device); an answer
    the typed decoder refuses (a numeric string for an id, a bool, no JSON) takes the
    generic path, the same checks as before (:func:`simple_items`), so its verdict or its
    refusal is unchanged.
    """
    try:  # the typed decoder first, the collector paused: a body nested too deep stops it
        with gc_paused():  # with RecursionError, and the generic path refuses it (refuse_deep)
            got = _VERDICTS.decode(resp.content)
    except (msgspec.DecodeError, RecursionError):  # ValidationError included
        got = None
    if got is not None:
        ok, bad = _pairs(got.success), _pairs(got.failed)
        if ok is not None and bad is not None:
            return ok, bad, got.request_id or got.requestId or resp.headers.get("X-Request-Id")
    body = json_body(resp)
    rid = request_id_of(resp, body)
    if not isinstance(body, Mapping):
        raise malformed("force-offline answer is not an object", rid)
    return simple_items(body.get("success"), "success", rid), simple_items(body.get("failed"), "failed", rid), rid


def _pairs(items: list[_Simple] | None) -> list[tuple[int, str | None]] | None:
    """(id, name) pairs as :func:`simple_items` gives them; None when an item has no id
    (the generic path then says so)."""
    if not items:
        return []
    unset = msgspec.UNSET
    out = [(it.id if it.id is not unset else it.device_id, it.device_name or None) for it in items]
    return None if any(dev is unset for dev, _ in out) else out  # type: ignore[return-value]


def whole_number(value: Any) -> int | None:
    """An int from an int or a string of digits; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 4000:
        return int(value)
    return None


def check_page(body: Any) -> dict:
    """A ListDevices page as the API promises it (a ``total`` and ``items`` that carry
    ids), else :class:`MalformedResponse`: a page without them would silently shrink
    the fleet (no ``total``: no further pages; items without ids: folded together)."""
    if not isinstance(body, Mapping):
        raise MalformedResponse("ListDevices answer is not an object")
    total = whole_number(body.get("total"))
    if total is None or total < 0:
        raise MalformedResponse(f"ListDevices answer has no usable 'total' (got {body.get('total')!r})")
    items = body.get("items")
    if items is None and total == 0:
        items = []
    if not isinstance(items, list):
        raise MalformedResponse("ListDevices answer has no 'items' list")
    for it in items:
        if not isinstance(it, Mapping) or whole_number(it.get("id", it.get("device_id"))) is None:
            raise MalformedResponse("an item of the ListDevices answer has no usable 'id'")
    return {**body, "total": total, "items": items}
