"""What a caller tells the engine about patience and stopping: :class:`RetryPolicy` and
:class:`CancelToken` (plain data and a flag; no I/O)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from romakit.errors import InputError

#: the failure types a RetryPolicy can retry
FAILURE_TYPES = frozenset({"throttled", "server", "connect", "unanswered"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a chunk is tried again.

    ``attempts`` counts every try (1 = never retry). Throttling (429) waits for the
    server's ``Retry-After`` (capped at ``max_retry_after``) or the back-off; 5xx and
    transport errors back off exponentially from ``backoff`` with jitter. A chunk whose
    answer never came (timeout, connection lost after sending) is re-sent only when
    ``resend_unanswered`` is true, which is safe for idempotent operations only.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 10.0
    max_retry_after: float = 30.0
    resend_unanswered: bool = True
    #: which failure types are retried: "throttled" (429), "server" (5xx),
    #: "connect" (never reached the service), "unanswered" (timeout, lost, unreadable)
    retry_on: frozenset[str] = FAILURE_TYPES

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InputError(f"RetryPolicy.attempts must be >= 1, got {self.attempts!r}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InputError("RetryPolicy back-off values must be >= 0")
        unknown = set(self.retry_on) - FAILURE_TYPES
        if unknown:
            raise InputError(f"RetryPolicy.retry_on has unknown failure types {sorted(unknown)}; known: {sorted(FAILURE_TYPES)}")
        object.__setattr__(self, "retry_on", frozenset(self.retry_on))

    def retries(self, failure_type: str) -> bool:
        """Whether this kind of failure is worth another try under this policy."""
        if failure_type == "unanswered" and not self.resend_unanswered:
            return False
        return failure_type in self.retry_on

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)
        return base * (0.5 + random.random() / 2)  # jitter: spread the retries of parallel chunks


class CancelToken:
    """Stop a running batch between chunks: chunks already sent complete and are
    recorded; the rest end ``skipped``. Thread-safe (a widget's button may press it)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def cancel(self, reason: str = "cancelled by the user") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"
