"""Credentials that expire and renew themselves: a :class:`Lease` on what IAM issued,
and :class:`Renewing`, the ``httpx.Auth`` base of :class:`~romakit.Token` and
:class:`~romakit.AkSk`.

Before each request the current credential is checked against its expiry and renewed
once it is within ``margin`` of it; a 401 answer to a renewable credential renews it
once and sends the request again (a credential revoked or expired early). Renewal is
one IAM call however many requests are in flight: callers wait on one lock, and the
ones that arrive after a renewal use its result. Async clients renew in a worker
thread, so the event loop never blocks on IAM.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator

import httpx

from romakit.link.iam import Issued

log = logging.getLogger("romakit.link")
#: renew this long before expiry at most (seconds); a short credential renews at 3/4 of its life
DEFAULT_MARGIN = 300.0


class Lease:
    """The current credential and how to get the next one (``issue()``, one IAM call)."""

    def __init__(self, issue: Callable[[], Issued], *, what: str, margin: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._issue = issue
        self.what = what
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        #: how many credentials this lease has had (the first one included)
        self.issued = 0
        self._current = self._renew()

    def __repr__(self) -> str:
        return f"Lease({self.what}, issued={self.issued}, expires_at={self.expires_at!r})"

    @property
    def expires_at(self) -> float | None:
        return self._current.expires_at

    def _renew(self) -> Issued:
        fresh = dataclasses.replace(self._issue(), received_at=self._clock())
        self.issued += 1
        if self.issued > 1:
            log.info("%s renewed (%d issued so far)", self.what, self.issued)
        return fresh

    def _due(self, cur: Issued) -> bool:
        if cur.expires_at is None:
            return False
        left = cur.expires_at - self._clock()
        margin = self._margin
        if margin is None:  # 5 minutes, or a quarter of a short credential's life
            life = cur.expires_at - (cur.received_at if cur.received_at is not None else cur.expires_at)
            margin = min(DEFAULT_MARGIN, max(life, 0.0) / 4)
        return left <= margin

    def current(self) -> Issued:
        """The credential to use now, renewed first when it is due."""
        cur = self._current
        if not self._due(cur):
            return cur
        return self.renew(cur)

    def renew(self, stale: Issued) -> Issued:
        """Replace ``stale`` (unless another caller already did) and return the new one."""
        with self._lock:
            if self._current is stale:
                self._current = self._renew()
            return self._current

    def peek(self) -> Issued:
        """The current credential, never renewed."""
        return self._current


class Renewing(httpx.Auth):
    """An ``httpx.Auth`` over a fixed credential or a :class:`Lease`; subclasses say how a
    credential goes on a request (:meth:`_apply`)."""

    _fixed: Issued | None = None
    _lease: Lease | None = None

    def _apply(self, request: httpx.Request, cred: Issued) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _credential(self) -> Issued:
        if self._lease is not None:
            return self._lease.current()
        assert self._fixed is not None
        return self._fixed

    @property
    def renewable(self) -> bool:
        """True when this credential renews itself through IAM."""
        return self._lease is not None

    @property
    def expires_at(self) -> float | None:
        """When the current credential expires (epoch seconds), None if never said."""
        cred = self._lease.peek() if self._lease is not None else self._fixed
        return cred.expires_at if cred is not None else None

    @property
    def issued(self) -> int:
        """How many credentials IAM issued for this one (1 for a fixed credential)."""
        return self._lease.issued if self._lease is not None else 1

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Put the current credential on ``request`` and send it (no renewal)."""
        self._apply(request, self._credential())
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.requires_request_body:
            request.read()
        cred = self._credential()
        self._apply(request, cred)
        response = yield request
        if response.status_code == 401 and self._lease is not None:
            log.info("401 with a %s: renewing it and sending the request once more", self._lease.what)
            self._apply(request, self._lease.renew(cred))
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self.requires_request_body:
            await request.aread()
        lease = self._lease
        if lease is None:
            cred = self._credential()
        else:
            cred = lease.peek()
            if lease._due(cred):
                cred = await asyncio.to_thread(lease.renew, cred)
        self._apply(request, cred)
        response = yield request
        if response.status_code == 401 and lease is not None:
            log.info("401 with a %s: renewing it and sending the request once more", lease.what)
            self._apply(request, await asyncio.to_thread(lease.renew, cred))
            yield request
