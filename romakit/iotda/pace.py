"""The pace of one gateway's upstream messages: a rate that slows itself when answers stop.

IoTDA drops upstream messages beyond the instance's spec (about 10/s on the smallest
editions, 50/s per device at most) without a word: the request simply never gets an
answer. :class:`Pace` spaces the messages at ``rate`` per second and, when ``adaptive``,
halves the pace on a timeout (at most once per ``cool_s``) and wins it back slowly with
each answer (+5 % of ``rate``), so a run that sees timeouts pile up stops piling more on.
Thread-safe: requests from any event loop share one pace.
"""

from __future__ import annotations

import asyncio
import threading
import time

#: the pace never drops below this (messages/s)
FLOOR = 0.5


class Pace:
    """Messages per second for one gateway (``None``: no pacing)."""

    def __init__(self, rate: float | None, *, adaptive: bool = True, cool_s: float = 1.0) -> None:
        self.rate = None if rate is None else float(rate)
        self.adaptive = adaptive
        self.cool_s = cool_s
        self._lock = threading.Lock()
        self._current = self.rate
        self._next = 0.0
        self._last_cut = -1e9
        #: how many times the pace was cut for timeouts
        self.slowdowns = 0

    def __repr__(self) -> str:
        return f"Pace(rate={self.rate}, current={self.current}, adaptive={self.adaptive})"

    @property
    def current(self) -> float | None:
        """Messages per second now (below ``rate`` after timeouts)."""
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

    async def wait(self) -> None:
        """Wait for this message's slot (pacing, not synchronisation)."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

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


__all__ = ["FLOOR", "Pace"]
