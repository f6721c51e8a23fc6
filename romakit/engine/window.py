"""How many devices a run may have on the wire: the window of the batch engine.

Without a rollout policy the window is the client's: ``concurrency`` requests of up to
``chunk_size`` devices. With one, the engine starts slow and widens only as clean
answers come back, like a TCP slow start (or AWS IoT Jobs' exponential rollout):

- the first request carries :data:`SLOW_START` devices; every device answered
  ``success`` widens the window by one (so it doubles per round trip while answers are
  clean) up to ``concurrency`` x ``chunk_size``;
- whatever the window, devices sent but not yet answered never exceed what the abort
  criteria can still judge (:meth:`RolloutState.judge`: the fewest further failures that
  would stop the run). If every device in flight failed, the criteria would stop the run
  exactly as they would have one device at a time, so nothing is exposed past the point
  where they act. That is what makes :meth:`Rollout.worst_case` hold for any chunk size.

Requests are cut to fit (a planned chunk is split); a gap smaller than a slow-start
request is left until more answers come back, so the window never fills with crumbs.
"""

from __future__ import annotations

import math

from romakit.engine.rollout import RolloutState

#: devices in the first request of a run under a rollout policy
SLOW_START = 10


class Window:
    """The devices the engine may send now, given what is in flight."""

    def __init__(self, state: RolloutState | None, chunk_size: int, concurrency: int) -> None:
        self.state = state
        self.chunk_size = chunk_size
        self.concurrency = concurrency
        self.cap = chunk_size * concurrency
        self.cwnd = min(SLOW_START, self.cap) if state is not None else self.cap
        #: the most devices ever in flight at once (for tests and reports)
        self.peak = 0

    def allowed(self) -> float:
        """Devices that may be in flight now (before subtracting those that are)."""
        if self.state is None:
            return self.cap
        return min(self.cwnd, self.state.judge())

    def next_size(self, in_flight: int, requests: int) -> int:
        """Devices the next request may carry now (0: wait for an answer first)."""
        if requests >= self.concurrency:
            return 0
        allowed = self.allowed()
        free = allowed - in_flight
        if free < 1:
            return 0
        size = int(min(self.chunk_size, free))
        smallest = min(self.chunk_size, SLOW_START, allowed)
        if in_flight and size < smallest:
            return 0  # a crumb: wait until answers free a real request's worth
        return size

    def sent(self, in_flight: int) -> None:
        self.peak = max(self.peak, in_flight)

    def answered(self, successes: int) -> None:
        """Clean answers widen the window (by one device per success)."""
        if self.state is not None:
            self.cwnd = min(self.cap, self.cwnd + successes)

    def __repr__(self) -> str:
        a = self.allowed()
        return f"Window(allowed={'unbounded' if math.isinf(a) else int(a)}, cwnd={self.cwnd}, cap={self.cap})"
