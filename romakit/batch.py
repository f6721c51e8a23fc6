"""The batch engine: one implementation of chunking, a window of requests in flight,
retries, pacing, progress, cancel and outcome rows for every batch operation.

Each protocol brings only a ``send(ids, chunk, attempt) -> Answer`` coroutine (one
HTTP request, one MQTT request/response); everything else is here, so force-offline
over REST and child deletion over MQTT behave the same way and are tested once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from romakit import outcomes as oc
from romakit.errors import ApiError, InputError, MalformedResponse, TransportError
from romakit.results import BatchResult, ResultBuilder
from romakit.rollout import Rollout, RolloutState

log = logging.getLogger("romakit.batch")


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


@dataclass
class Answer:
    """What one chunk's request got back: the service's verdict per device.

    ``success`` holds ``(id, name)`` pairs, ``failed`` holds ``(id, name, error_code,
    error_msg)``; requested ids mentioned in neither end ``unknown`` (not in answer).
    """

    success: Sequence[tuple[Hashable, str | None]] = ()
    failed: Sequence[tuple[Hashable, str | None, str | None, str | None]] = ()
    request_id: str | None = None
    event_id: str | None = None


SendChunk = Callable[[list, int, int], Awaitable[Answer]]


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


class BatchObserver:
    """Hooks called by the engine (the journal implements them). All no-ops here.

    Called on the engine's event loop: implementations must be quick and must not raise.
    """

    def started(self, op_id: str, operation: str, target: str, chunks: list[list]) -> None: ...

    def chunk_sent(self, op_id: str, chunk: int, attempt: int) -> None: ...

    def chunk_done(self, op_id: str, chunk: int, rows: dict[str, list]) -> None: ...

    def finished(self, result: BatchResult) -> None: ...


@dataclass
class _Chunk:
    no: int
    ids: list
    attempts: int = 0
    sent_at: float | None = None


@dataclass
class _Run:
    """State of one run, kept out of the public signature."""

    stop_reason: str | None = None
    stop_code: str | None = None
    bad_devices: int = 0
    extra_ids: int = 0
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)


def chunked(ids: Sequence, size: int) -> list[list]:
    """Split ``ids`` into lists of at most ``size``."""
    if size < 1:
        raise InputError(f"chunk_size must be >= 1, got {size!r}")
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


async def run_batch(
    ids: Sequence[Hashable],
    *,
    operation: str,
    target: str,
    send: SendChunk,
    chunk_size: int,
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    names: Mapping[Hashable, str] | None = None,
    rate_per_second: float | None = None,
    attempt_timeout: float | None = None,
    progress: bool | None | Callable[[int, int], None] = None,
    cancel: CancelToken | None = None,
    observer: BatchObserver | None = None,
    op_id: str | None = None,
    parent_op_id: str | None = None,
    rollout: Rollout | None = None,
) -> BatchResult:
    """Run ``send`` over ``ids`` in chunks and return one row per requested id.

    ``ids`` must already be validated and de-duplicated. At most ``concurrency``
    chunks are in flight; ``rate_per_second`` caps how many requests start per second
    (retries included); ``attempt_timeout`` bounds each try whatever ``send`` does.
    ``rollout`` adds a canary and its gate, a devices-per-minute cap, a ramp and abort
    criteria (:class:`romakit.Rollout`).
    """
    if concurrency < 1:
        raise InputError(f"concurrency must be >= 1, got {concurrency!r}")
    retry = retry or RetryPolicy()
    if observer is None:  # the journal, unless ROMAKIT_JOURNAL=0 (imported here: `import romakit` stays light)
        from romakit.journal import default_observer

        observer = default_observer(parent_op_id)
    builder = ResultBuilder(operation, target, op_id)
    ids = list(ids)
    canary = min(rollout.canary, len(ids)) if rollout else 0
    groups = chunked(ids[:canary], chunk_size) if canary else []
    n_canary = len(groups)
    groups += chunked(ids[canary:], chunk_size) if canary < len(ids) else []
    chunks = [_Chunk(i, c) for i, c in enumerate(groups)]
    queue = deque(chunks)
    run = _Run()
    pacer = _Pacer(rate_per_second)
    state = RolloutState(rollout) if rollout else None

    async def pace(devices: int) -> None:
        if state is not None:
            wait = state.delay_for(devices)
            if wait > 0:
                await asyncio.sleep(wait)
        await pacer.wait()

    observer.started(builder.op_id, operation, target, [c.ids for c in chunks])

    from romakit._progress import progress_bar

    bar = progress_bar(len(ids), operation, progress)

    async def one(chunk: _Chunk) -> None:
        rows = await _run_chunk(chunk, send, retry, pace, attempt_timeout, observer, builder.op_id, names, run)
        run.rows[chunk.no] = rows
        observer.chunk_done(builder.op_id, chunk.no, rows)
        n = len(chunk.ids)
        run.bad_devices += sum(1 for o in rows["outcome"] if o != oc.SUCCESS)
        if state is not None:
            state.record(rows["outcome"])
            reason = state.abort_reason()
            if reason and not run.stop_reason:
                run.stop_reason, run.stop_code = reason, oc.ABORTED
        bar.update(n)
        bar.set_postfix_str(f"not ok {run.bad_devices}", refresh=False)

    async def worker(limit: int) -> None:
        while queue and queue[0].no < limit:
            if cancel is not None and cancel.cancelled:
                run.stop_reason, run.stop_code = cancel.reason or "cancelled", oc.CANCELLED
            if run.stop_reason:
                return
            await one(queue.popleft())

    async def phase(limit: int) -> None:
        await asyncio.gather(*(worker(limit) for _ in range(min(concurrency, max(len(chunks), 1)))))

    try:
        if n_canary and state is not None:
            await phase(n_canary)
            if not run.stop_reason and queue:
                await _canary_gate(state, run, n_canary)
        await phase(len(chunks))
    finally:
        bar.close()

    for chunk in queue:  # never sent: the run stopped
        run.rows[chunk.no] = _uniform_rows(
            chunk, oc.SKIPPED, run.stop_code or oc.CANCELLED, f"stopped: {run.stop_reason}", names
        )
    for no in sorted(run.rows):
        r = run.rows[no]
        builder.add(
            r["ids"],
            outcome=r["outcome"],
            names=r["names"],
            error_code=r["error_code"],
            error_msg=r["error_msg"],
            chunk=no,
            attempts=r["attempts"],
            request_id=r["request_id"],
            event_id=r["event_id"],
            sent_at=r["sent_at"],
            answered_at=r["answered_at"],
        )
    if len(builder) != len(ids):  # the promise: every requested device ends in the result
        raise AssertionError(f"batch engine lost devices: {len(ids)} requested, {len(builder)} recorded")
    if run.extra_ids:
        log.warning("%s: the service answered for %d ids that were not requested; ignored", operation, run.extra_ids)
    result = builder.build(stopped=run.stop_reason, parent_op_id=parent_op_id)
    observer.finished(result)
    return result


async def _canary_gate(state: RolloutState, run: _Run, n_canary: int) -> None:
    """After the canary: the policy's gate (a person, in a notebook) or its threshold decides."""
    counts = {o: 0 for o in oc.OUTCOMES}
    for no in range(n_canary):
        for o in run.rows[no]["outcome"]:
            counts[o] += 1
    report = state.canary_report(counts)
    gate = state.policy.gate
    if gate is None:
        go = report.passed
    else:
        try:
            verdict = await asyncio.wait_for(asyncio.to_thread(gate, report), state.policy.gate_timeout)
            if asyncio.iscoroutine(verdict) or isinstance(verdict, asyncio.Future):
                verdict = await asyncio.wait_for(verdict, state.policy.gate_timeout)
            go = bool(verdict)
        except TimeoutError:
            run.stop_reason = f"canary gate not answered within {state.policy.gate_timeout:g} s; {report}"
            run.stop_code = oc.CANARY_REFUSED
            return
    if not go:
        run.stop_reason = str(report) if not report.passed else f"{report}; refused at the gate"
        run.stop_code = oc.CANARY_REFUSED


class _Pacer:
    """Spaces request starts evenly to stay under a rate (e.g. IoTDA's 50 messages/s)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise InputError(f"rate must be > 0, got {rate!r}")
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def _uniform_rows(
    chunk: _Chunk,
    outcome: str,
    code: str | None,
    msg: str | None,
    names: Mapping | None,
    *,
    request_id: str | None = None,
    event_id: str | None = None,
    answered_at: float | None = None,
) -> dict[str, Any]:
    n = len(chunk.ids)
    return {
        "ids": chunk.ids,
        "names": [names.get(i) for i in chunk.ids] if names else [None] * n,
        "outcome": [outcome] * n,
        "error_code": [code] * n,
        "error_msg": [msg] * n,
        "attempts": chunk.attempts,
        "request_id": request_id,
        "event_id": event_id,
        "sent_at": chunk.sent_at,
        "answered_at": answered_at,
    }


def _answer_rows(chunk: _Chunk, ans: Answer, names: Mapping | None, run: _Run) -> dict[str, Any]:
    verdict: dict[Hashable, tuple[str, str | None, str | None, str | None]] = {}
    for dev_id, name in ans.success:
        verdict.setdefault(dev_id, (oc.SUCCESS, name, None, None))
    for dev_id, name, code, msg in ans.failed:
        # a device listed both ways is reported as failed: the service itself doubts it
        prev = verdict.get(dev_id)
        if prev is None or prev[0] == oc.SUCCESS:
            verdict[dev_id] = (oc.FAILED, name or (prev[1] if prev else None), code or oc.REPORTED_FAILED, msg)
    requested = set(chunk.ids)
    run.extra_ids += sum(1 for k in verdict if k not in requested)
    rows = _uniform_rows(chunk, oc.UNKNOWN, None, None, names, request_id=ans.request_id, event_id=ans.event_id)
    rows["answered_at"] = time.time()
    for i, dev_id in enumerate(chunk.ids):
        v = verdict.get(dev_id)
        if v is None:
            rows["error_code"][i] = oc.NOT_IN_ANSWER
            rows["error_msg"][i] = "the answer mentioned neither success nor failure for this device"
            continue
        rows["outcome"][i] = v[0]
        if v[1]:
            rows["names"][i] = v[1]
        rows["error_code"][i] = v[2]
        rows["error_msg"][i] = v[3] if v[3] is not None else (
            "listed in 'failed' by the service (no reason given)" if v[2] == oc.REPORTED_FAILED else None
        )
    return rows


async def _run_chunk(
    chunk: _Chunk,
    send: SendChunk,
    retry: RetryPolicy,
    pace: Callable[[int], Awaitable[None]],
    attempt_timeout: float | None,
    observer: BatchObserver,
    op_id: str,
    names: Mapping | None,
    run: _Run,
) -> dict[str, Any]:
    """Try one chunk until it has an answer or the retry policy gives up; never raises
    for anything the far side does."""
    while True:
        chunk.attempts += 1
        await pace(len(chunk.ids))
        chunk.sent_at = time.time()
        observer.chunk_sent(op_id, chunk.no, chunk.attempts)
        final: tuple[str, str, str] | None = None  # (outcome, code, msg) when we give up
        retry_after: float | None = None
        may_retry = chunk.attempts < retry.attempts
        req_id = ev_id = None
        try:
            coro = send(chunk.ids, chunk.no, chunk.attempts)
            ans = await (asyncio.wait_for(coro, attempt_timeout) if attempt_timeout else coro)
            return _answer_rows(chunk, ans, names, run)
        except ApiError as e:
            req_id = e.request_id
            final = (oc.FAILED, e.error_code or f"HTTP.{e.status}", e.error_msg or f"HTTP {e.status}")
            retry_after = e.retry_after
            kind = "throttled" if e.status == 429 else "server"
            may_retry = may_retry and e.retryable and retry.retries(kind)
        except TransportError as e:
            req_id, ev_id = e.request_id, e.event_id
            if e.sent:
                final = (oc.UNKNOWN, e.code or oc.TIMEOUT, str(e))
                may_retry = may_retry and retry.retries("unanswered")
            else:
                final = (oc.FAILED, e.code or oc.CONNECT_ERROR, str(e))
                may_retry = may_retry and retry.retries("connect")
        except MalformedResponse as e:
            req_id = getattr(e, "request_id", None)
            final = (oc.UNKNOWN, oc.MALFORMED, str(e)[:200])
            may_retry = may_retry and retry.retries("unanswered")
        except TimeoutError:
            final = (oc.UNKNOWN, oc.TIMEOUT, f"no answer within {attempt_timeout} s")
            may_retry = may_retry and retry.retries("unanswered")
        except Exception as e:  # a bug of ours: keep the devices, say what happened
            log.exception("chunk %d of %s failed inside romakit", chunk.no, op_id)
            final = (oc.UNKNOWN, oc.INTERNAL, f"{type(e).__name__}: {e}"[:200])
            may_retry = False
        if not may_retry:
            outcome, code, msg = final
            return _uniform_rows(
                chunk, outcome, code, msg, names, request_id=req_id, event_id=ev_id,
                answered_at=time.time() if outcome == oc.FAILED else None,
            )
        await asyncio.sleep(retry.delay(chunk.attempts, retry_after))
