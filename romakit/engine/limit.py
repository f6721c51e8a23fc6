"""How fast and how many requests may go: one :class:`Limiter` interface and its kinds.

A limiter hands out permits: :meth:`Limiter.acquire` waits for one (a place in a window,
a slot in a rate) and returns a ticket; :meth:`Limiter.release` gives it back with how
the request ended (:data:`OK`, :data:`THROTTLED`, :data:`OVERLOADED`, :data:`LOST`,
:data:`NEUTRAL`), which an adaptive limiter learns from. The engine, the gateways and
the fan-out all speak it:

- :class:`Pace`: permits spaced at ``rate`` per second (an IoTDA gateway's upstream
  messages), halved on :data:`LOST` answers when ``adaptive``; thread-safe;
- :class:`Slots`: at most ``n`` permits out at once (a gateway's window in a fan-out);
- :class:`~romakit.engine.adaptive.AdaptiveLimiter`: a rate and a window found from the
  service's answers (the engine's, on by default);
- :class:`Limits`: several limiters taken in order, as one.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from romakit.errors import InputError

#: how a request ended, as told to :meth:`Limiter.release`: answered; throttled (429);
#: the service overloaded (5xx, refused connection); sent but never answered; nothing to learn
OK, THROTTLED, OVERLOADED, LOST, NEUTRAL = "ok", "throttled", "overloaded", "lost", "neutral"
SIGNALS = (OK, THROTTLED, OVERLOADED, LOST, NEUTRAL)
#: a :class:`Pace` never drops below this many permits per second
FLOOR = 0.5


class Limiter(Protocol):
    """Permits over time: wait for one, give it back with how its request ended."""

    async def acquire(self) -> int:
        """Wait for a permit; returns the ticket to :meth:`release`."""
        ...

    def release(self, ticket: int, signal: str) -> None:
        """Give the permit of ``ticket`` back; ``signal`` says how its request ended."""
        ...


def check_signal(signal: str) -> None:
    if signal not in SIGNALS:
        raise InputError(f"signal must be one of {SIGNALS}, got {signal!r}")


@asynccontextmanager
async def held(limiter: Limiter) -> AsyncIterator[None]:
    """Hold a permit of ``limiter`` around a block (released :data:`NEUTRAL`)."""
    ticket = await limiter.acquire()
    try:
        yield
    finally:
        limiter.release(ticket, NEUTRAL)


class Pace:
    """Permits spaced at ``rate`` per second (``None``: no spacing).

    ``adaptive``: a :data:`LOST` request (no answer in time: IoTDA drops upstream
    messages beyond its spec without a word) halves the pace, at most once per
    ``cool_s``; each :data:`OK` wins back 5 % of ``rate``. Thread-safe: requests from
    any event loop share one pace.
    """

    def __init__(self, rate: float | None, *, adaptive: bool = True, cool_s: float = 1.0) -> None:
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0):
            raise InputError(f"rate must be a number > 0 or None, got {rate!r}")
        self.rate = None if rate is None else float(rate)
        self.adaptive = adaptive
        self.cool_s = cool_s
        self._lock = threading.Lock()
        self._current = self.rate
        self._next = 0.0
        self._last_cut = -1e9
        #: how many times the pace was cut for lost requests
        self.slowdowns = 0

    def __repr__(self) -> str:
        return f"Pace(rate={self.rate}, current={self.current}, adaptive={self.adaptive})"

    @property
    def current(self) -> float | None:
        """Permits per second now (below ``rate`` after lost requests)."""
        with self._lock:
            return None if self._current is None else round(self._current, 3)

    def reserve(self, now: float | None = None) -> float:
        """Take the next slot; the seconds to wait before sending in it."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._current is None:
                return 0.0
            slot = max(now, self._next)
            self._next = slot + 1.0 / self._current
            return slot - now

    async def acquire(self) -> int:
        """Wait for this request's slot (pacing, not synchronisation)."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        return 0

    def release(self, ticket: int, signal: str) -> None:
        if signal == LOST:
            self.timed_out()
        elif signal == OK:
            self.answered()

    def timed_out(self, now: float | None = None) -> None:
        """A request got no answer in time: halve the pace (once per ``cool_s``)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self.adaptive or self._current is None or now - self._last_cut < self.cool_s:
                return
            self._current = max(FLOOR, self._current / 2)
            self._last_cut = now
            self.slowdowns += 1

    def answered(self) -> None:
        """A request was answered: win back 5 % of ``rate``, up to ``rate``."""
        with self._lock:
            if self.adaptive and self._current is not None and self.rate is not None and self._current < self.rate:
                self._current = min(self.rate, self._current + 0.05 * self.rate)


class Slots:
    """At most ``n`` permits out at once (on the loop that uses it)."""

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"slots must be an int >= 1, got {n!r}")
        self.n = n
        self._sem = asyncio.Semaphore(n)

    def __repr__(self) -> str:
        return f"Slots({self.n})"

    async def acquire(self) -> int:
        await self._sem.acquire()
        return 0

    def release(self, ticket: int, signal: str) -> None:
        self._sem.release()


class Limits:
    """Several limiters as one: permits taken in the order given, all given back."""

    def __init__(self, *limiters: Limiter) -> None:
        self.limiters = limiters
        self._held: dict[int, list[int]] = {}
        self._tickets = itertools.count(1)

    def __repr__(self) -> str:
        return f"Limits{self.limiters!r}"

    async def acquire(self) -> int:
        got: list[int] = []
        try:
            for lim in self.limiters:
                got.append(await lim.acquire())
        except BaseException:
            for lim, t in zip(self.limiters, got, strict=False):
                lim.release(t, NEUTRAL)
            raise
        ticket = next(self._tickets)
        self._held[ticket] = got
        return ticket

    def release(self, ticket: int, signal: str) -> None:
        check_signal(signal)
        for lim, t in zip(self.limiters, self._held.pop(ticket, ()), strict=False):
            lim.release(t, signal)


__all__ = ["FLOOR", "LOST", "NEUTRAL", "OK", "OVERLOADED", "SIGNALS", "THROTTLED", "Limiter", "Limits", "Pace",
           "Slots", "held"]
