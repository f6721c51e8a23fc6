"""One request and its whole answer, bounded in time and in size, whatever the service
sends: a body trickled one byte at a time ends at the ``deadline`` (httpx's own read
timeout restarts with every byte), a body past ``max_bytes`` is stopped there and its
connection dropped (never read to the end). One ``asyncio`` timeout around the whole
exchange, on the caller's loop: no thread per request. The synchronous clients (IAM,
IoTDA's inventory) take :func:`exchange_sync`: the same caps, the deadline checked as
each piece of the body arrives (so it can run over by at most one read timeout).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from romakit.errors import AnswerTooLarge, DeadlineExceeded, InputError
from romakit.outcomes import TIMEOUT

#: seconds one request may take from sending to the last byte of its answer
DEFAULT_DEADLINE = 60.0
#: the largest answer read (a full ListDevices page of 999 devices is about 1 MiB)
DEFAULT_MAX_BYTES = 64 * 2**20
#: headers that describe the body as sent, not as kept (it is kept decoded and whole)
_AS_SENT = ("content-encoding", "content-length", "transfer-encoding")


@dataclass(frozen=True)
class Bounds:
    """How long (``deadline``, seconds) and how large (``max_bytes``) one answer may be."""

    deadline: float = DEFAULT_DEADLINE
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if isinstance(self.deadline, bool) or not isinstance(self.deadline, (int, float)) or not self.deadline > 0:
            raise InputError(f"deadline must be a number of seconds > 0, got {self.deadline!r}")
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes < 1:
            raise InputError(f"max_answer_bytes must be an int >= 1, got {self.max_bytes!r}")


async def exchange(http: httpx.AsyncClient, method: str, url: str, kwargs: dict[str, Any],
                   bounds: Bounds) -> httpx.Response:
    """``http.request(method, url, **kwargs)`` within ``bounds``; the answer read whole.

    Raises :class:`~romakit.errors.DeadlineExceeded` (sent, effect unknown) when the
    answer is not whole within the deadline and :class:`~romakit.errors.AnswerTooLarge`
    past the size cap; httpx's own errors pass through."""
    timer = asyncio.timeout(bounds.deadline)
    try:
        async with timer:
            resp = await http.send(http.build_request(method, url, **kwargs), stream=True)
            try:
                body = await _capped(resp, bounds.max_bytes)
            finally:
                await resp.aclose()
    except TimeoutError:
        if not timer.expired():
            raise
        raise _late(bounds) from None
    return _whole(resp, body)


def exchange_sync(http: httpx.Client, method: str, url: str, kwargs: dict[str, Any],
                  bounds: Bounds) -> httpx.Response:
    """:func:`exchange` for a synchronous ``httpx.Client``: the same errors."""
    end = time.monotonic() + bounds.deadline
    with http.stream(method, url, **kwargs) as resp:
        _check_declared(resp, bounds.max_bytes)
        chunks, n = [], 0
        for chunk in resp.iter_bytes():
            n += len(chunk)
            if n > bounds.max_bytes:
                raise _too_large(resp, bounds.max_bytes, "reading stopped there")
            if time.monotonic() > end:
                raise _late(bounds)
            chunks.append(chunk)
    return _whole(resp, b"".join(chunks))


def _late(bounds: Bounds) -> DeadlineExceeded:
    return DeadlineExceeded(f"no whole answer within the {bounds.deadline} s deadline (the client's deadline= "
                            "option sets it)", sent=True, code=TIMEOUT)


def _whole(resp: httpx.Response, body: bytes) -> httpx.Response:
    """The answer as read: ``body`` kept decoded, the headers that describe it as sent dropped."""
    headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _AS_SENT]
    return httpx.Response(resp.status_code, headers=headers, content=body, request=resp.request,
                          extensions=resp.extensions)


def _check_declared(resp: httpx.Response, cap: int) -> None:
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap and "content-encoding" not in resp.headers:
        raise _too_large(resp, cap, f"it declares {int(declared):,} bytes")


async def _capped(resp: httpx.Response, cap: int) -> bytes:
    """The body, decoded, as long as it stays within ``cap`` bytes."""
    _check_declared(resp, cap)
    chunks, n = [], 0
    async for chunk in resp.aiter_bytes():
        n += len(chunk)
        if n > cap:
            raise _too_large(resp, cap, "reading stopped there")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(resp: httpx.Response, cap: int, how: str) -> AnswerTooLarge:
    rid = resp.headers.get("X-Request-Id")
    err = AnswerTooLarge(f"HTTP {resp.status_code} answer larger than the {_size(cap)} cap ({how}; the client's "
                         f"max_answer_bytes= option sets it) (request_id={rid})")
    err.request_id = rid  # type: ignore[attr-defined]
    return err


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n % 2**20 == 0 else f"{n:,} bytes"
