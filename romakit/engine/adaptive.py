"""A client that finds the service's limit: an adaptive send rate and an adaptive
window of requests in flight, on by default, with the user's ``concurrency`` as ceiling.

The idea is the AWS SDKs' *adaptive* retry mode: a client-side token bucket that is
off until the service first throttles (HTTP 429), then sends at what the service was
seen to accept, backs off again on every new throttle, and grows back while answers
come back clean (slowly near the last limit, faster the longer all stays clean, so a
lifted limit is found again). Beside it, an AIMD window of requests in flight: halved
when the service answers "overloaded" (5xx, refused connections), widened by one per
window of clean answers, never above the ceiling. A timeout says nothing certain about
load and changes neither.

It is a :class:`~romakit.engine.limit.Limiter`: the engine calls
:meth:`AdaptiveLimiter.acquire` before each send and :meth:`AdaptiveLimiter.release`
with the outcome after it (``romakit.engine.run``); another window (e.g. a slow start)
composes with this one: the effective window is the smaller of the two.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque

from romakit.engine.limit import LOST, NEUTRAL, OK, OVERLOADED, THROTTLED, check_signal
from romakit.errors import InputError


class AdaptiveLimiter:
    """Adaptive rate (token bucket) and in-flight window for one batch run.

    - ``ceiling``: the most requests ever in flight (the user's ``concurrency``).
    - ``backoff``: the share of the measured accepted rate kept after a throttle.
    - ``growth``: the rate's growth per second while clean, near the last limit.
    - ``min_rate``: requests/s never gone below.
    """

    def __init__(self, ceiling: int, *, backoff: float = 0.95, growth: float = 0.02,
                 min_rate: float = 0.5, window: float = 1.0) -> None:
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling < 1:
            raise InputError(f"ceiling must be an int >= 1, got {ceiling!r}")
        if not 0 < backoff <= 1 or growth <= 0 or min_rate <= 0:
            raise InputError("backoff must be in (0, 1], growth and min_rate > 0")
        self.ceiling = ceiling
        self.backoff, self.growth, self.min_rate, self.span = backoff, growth, min_rate, window
        #: requests/s the bucket lets through; None until the service first throttles
        self.rate: float | None = None
        #: the AIMD window of requests in flight (float; its floor is what counts)
        self.window = float(ceiling)
        self.in_flight = 0
        self.throttles = 0
        self._next = 0.0  # when the next token is due
        self._cut_at = 0.0  # sends before this moment are from before the last cut
        self._clean_since = time.monotonic()
        self._grown_at = self._clean_since
        self._accepted: deque[float] = deque()  # send times of answers not throttled
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sent: dict[int, float] = {}
        self._tickets = itertools.count(1)

    def __repr__(self) -> str:
        rate = "off" if self.rate is None else f"{self.rate:.1f}/s"
        return f"AdaptiveLimiter(rate={rate}, window={int(self.window)}/{self.ceiling}, throttles={self.throttles})"

    async def acquire(self) -> int:
        """Wait for a place in the window and a token; returns a ticket for :meth:`release`."""
        while self.in_flight >= max(1, int(self.window)):
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if not fut.done():
                    fut.cancel()
        self.in_flight += 1
        if self.rate is not None:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rate
            if start > now:
                await asyncio.sleep(start - now)
        ticket = next(self._tickets)
        self._sent[ticket] = time.monotonic()
        return ticket

    def release(self, ticket: int, signal: str) -> None:
        """Report how the request of ``ticket`` ended (:data:`OK`, :data:`THROTTLED`,
        :data:`OVERLOADED`; :data:`LOST` and :data:`NEUTRAL` change nothing) and free its place."""
        check_signal(signal)
        sent = self._sent.pop(ticket, time.monotonic())
        now = time.monotonic()
        if signal == THROTTLED:
            self._throttled(sent, now)
        elif signal == OVERLOADED:
            if sent >= self._cut_at:
                self.window = max(1.0, self.window / 2)
                self._cut_at = now
            self._clean_since = now
        elif signal == OK:
            self._accepted.append(sent)
            self._clean(now)
        self.in_flight -= 1
        free = max(1, int(self.window)) - self.in_flight
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1

    # -- the rules ----------------------------------------------------------------------
    def _measured(self, now: float) -> float:
        """Requests/s the service accepted over the last ``window`` seconds."""
        acc = self._accepted
        while acc and acc[0] < now - self.span:
            acc.popleft()
        return len(acc) / self.span

    def _throttled(self, sent: float, now: float) -> None:
        self.throttles += 1
        self._clean_since = now
        if sent < self._cut_at:  # sent before the last cut: already accounted for
            return
        measured = self._measured(now)
        base = measured if measured > 0 else (self.rate or self.min_rate * 2) / 2
        self.rate = max(self.min_rate, self.backoff * base if self.rate is None else min(self.rate, base) * self.backoff)
        self._cut_at = now
        self._grown_at = now

    def _clean(self, now: float) -> None:
        if self.window < self.ceiling:  # additive increase: +1 per window of clean answers
            self.window = min(float(self.ceiling), self.window + 1.0 / self.window)
        if self.rate is not None:
            dt = now - self._grown_at
            clean = now - self._clean_since
            # slow near the last limit; doubling every 5 clean seconds, to find a lifted one
            g = min(1.0, self.growth * 2 ** (clean / 5.0))
            self.rate *= 1 + g * dt
            self._grown_at = now


__all__ = ["LOST", "NEUTRAL", "OK", "OVERLOADED", "THROTTLED", "AdaptiveLimiter"]
