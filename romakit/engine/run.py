"""The batch engine: one implementation of chunking, a window of requests in flight,
retries, pacing, progress, cancel and outcome rows for every batch operation.

Each protocol brings only a ``send(ids, chunk, attempt) -> Answer`` coroutine (one
HTTP request, one MQTT request/response); everything else is here, so force-offline
over REST and child deletion over MQTT behave the same way and are tested once.
The engine knows no journal: the caller passes an observer (the clients pass the
journal's).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from romakit import outcomes as oc
from romakit.engine import limit
from romakit.engine.adaptive import AdaptiveLimiter
from romakit.engine.observer import Answer, BatchObserver, ChunkRows, RecordFailed, SendChunk
from romakit.engine.options import BatchKwargs, BatchOptions
from romakit.engine.plan import cut
from romakit.engine.policy import RetryPolicy
from romakit.engine.rollout import RolloutState, resolve
from romakit.engine.window import Window
from romakit.errors import ApiError, ClientClosed, InputError, MalformedResponse, TransportError
from romakit.operations import OPERATIONS
from romakit.results import BatchResult, ResultBuilder
from romakit.results.schema import SETTLED_READ

log = logging.getLogger("romakit.engine")


@dataclass
class _Chunk:
    no: int
    ids: list
    attempts: int = 0
    sent_at: float | None = None
    #: position of its first id among the requested ids (results keep request order)
    start: int = 0
    canary: bool = False


def chunked(ids: Sequence, size: int) -> list[list]:
    """Split ``ids`` into lists of at most ``size``."""
    if size < 1:
        raise InputError(f"chunk_size must be >= 1, got {size!r}")
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


class BatchRun:
    """One run of ``send`` over ``ids``: its chunks, the state while it goes on, and the
    rows it ends with. :meth:`run` returns the :class:`BatchResult`."""

    def __init__(self, ids: Sequence[Hashable], *, operation: str, target: str, send: SendChunk,
                 options: BatchOptions) -> None:
        if options.chunk_size is None:
            raise InputError("chunk_size must be given")
        self.ids = list(ids)
        self.operation = operation
        self.target = target
        self.send = send
        self.opts = options
        self.concurrency = options.concurrency or 4
        self.retry = options.retry or RetryPolicy()
        self.observer = options.observer or BatchObserver()
        self.names: Mapping | None = options.names
        self.builder = ResultBuilder(operation, target, options.op_id)
        self.rollout = resolve(options.rollout, operation)
        settled = set(options.settled or ())
        self.settled = [i for i in self.ids if i in settled] if settled else []
        # the ids to send and their positions among the requested ids (None: all, in order)
        where = [pos for pos, i in enumerate(self.ids) if i not in settled] if settled else None
        todo = [self.ids[pos] for pos in where] if where is not None else self.ids
        size = options.chunk_size
        self.chunks: list[_Chunk] = []
        if self.settled:  # chunk 0: read as already done before the run; never sent
            self.chunks.append(_Chunk(0, self.settled, start=-1))
        for lo, hi, is_canary in cut(len(todo), size, self.rollout):  # the plan's chunks (engine/plan.py)
            self.chunks.append(_Chunk(len(self.chunks), todo[lo:hi], start=where[lo] if where is not None else lo,
                                      canary=is_canary))
        self.queue = deque(c for c in self.chunks if c.start >= 0)
        self.next_no = len(self.chunks)
        self.state = RolloutState(self.rollout) if self.rollout else None
        self.window = Window(self.state, size, self.concurrency)
        self.in_flight = 0
        # the service's limit (engine/adaptive.py): a rate and an in-flight window found from
        # its answers, ceiling = concurrency; the requests actually on the wire are bounded by
        # the smaller of this and the exposure window above. A client's fixed ``rate`` first.
        self.adaptive = AdaptiveLimiter(self.concurrency) if options.adaptive is not False else None
        limiters: list[limit.Limiter] = [limit.Pace(options.rate, adaptive=False)] if options.rate else []
        self.limiter = limit.Limits(*limiters, *([self.adaptive] if self.adaptive else []))
        #: set once the run has a stop reason: a chunk waiting for its turn wakes and is skipped
        self._stopped = asyncio.Event()
        self._stop_reason: str | None = None
        self.stop_code: str | None = None
        self.bad_devices = 0
        self.extra_ids = 0
        self.rows: dict[int, ChunkRows] = {}
        self.starts: dict[int, int] = {}
        #: the rollout's come-back judge for the chunks after the canary (see :meth:`_watch_come_back`)
        self.come_back: Any = None

    @property
    def op_id(self) -> str:
        return self.builder.op_id

    @property
    def stop_reason(self) -> str | None:
        """Why the run stops (None while it goes on)."""
        return self._stop_reason

    @stop_reason.setter
    def stop_reason(self, reason: str | None) -> None:
        self._stop_reason = reason
        if reason:
            self._stopped.set()

    # -- the run -------------------------------------------------------------------------
    async def run(self) -> BatchResult:
        from romakit._progress import progress_bar

        self.observer.policy(self.op_id, self.rollout.to_dict() if self.rollout else None)
        self.observer.started(self.op_id, self.operation, self.target, [c.ids for c in self.chunks])
        self.bar = progress_bar(len(self.ids), self.operation, self.opts.progress)
        try:
            if self.settled:
                self._settle(self.chunks[0])
            if self.queue and self.queue[0].canary and self.state is not None:
                await self._phase(canary=True)
                if not self.stop_reason and self.queue:
                    await self._canary_gate()
            self.come_back = self._rolling_judge()
            watch = asyncio.ensure_future(self._watch_come_back()) if self.come_back is not None else None
            try:
                await self._phase(canary=False)
            finally:
                if watch is not None:
                    watch.cancel()
                    await asyncio.gather(watch, return_exceptions=True)
        finally:
            self.bar.close()
        return self._finish()

    def _settle(self, chunk: _Chunk) -> None:
        """Devices read as already in the operation's effect before the run: ``success``,
        settled by the read, never sent."""
        effect = getattr(OPERATIONS.get(self.operation), "expected", None) or "done"
        rows = self._uniform_rows(chunk, oc.SUCCESS, None, f"already {effect} when read before sending",
                                  answered_at=time.time())
        rows["settled_by"] = SETTLED_READ
        self._record(chunk, rows)

    def _stopping(self) -> bool:
        cancel = self.opts.cancel
        if cancel is not None and cancel.cancelled and not self.stop_reason:
            self.stop_reason, self.stop_code = cancel.reason or "cancelled", oc.CANCELLED
        return self.stop_reason is not None

    async def _phase(self, *, canary: bool) -> None:
        """Send chunks while the window lets them out; in the canary phase, only the canary."""
        tasks: set[asyncio.Task] = set()
        try:
            while not self._stopping() and self.queue and (self.queue[0].canary or not canary):
                size = self.window.next_size(self.in_flight, len(tasks))
                if size:
                    chunk = self._take(size)
                    self.in_flight += len(chunk.ids)
                    self.window.sent(self.in_flight)
                    tasks.add(asyncio.ensure_future(self._one(chunk)))
                    continue
                if not tasks:  # pragma: no cover - the window always lets one request out
                    raise AssertionError(f"batch engine stalled: {self.window!r}")
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
            if tasks:  # chunks in flight finish and are recorded
                await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise

    def _take(self, size: int) -> _Chunk:
        """The next request: the head chunk, split when the window takes fewer devices."""
        head = self.queue.popleft()
        if len(head.ids) > size:
            tail = _Chunk(self.next_no, head.ids[size:], start=head.start + size, canary=head.canary)
            self.next_no += 1
            head.ids = head.ids[:size]
            self.queue.appendleft(tail)
            self.chunks.append(tail)
            self.observer.chunk_split(self.op_id, head.no, head.ids, tail.no, tail.ids)
        return head

    async def _one(self, chunk: _Chunk) -> None:
        rows = await self._run_chunk(chunk)
        self.in_flight -= len(chunk.ids)
        self._record(chunk, rows)
        outcomes = rows["outcome"]
        if self.come_back is not None and not chunk.canary:
            at = rows["answered_at"] or rows["sent_at"] or time.time()
            self.come_back.add((i, at) for i, o in zip(rows["ids"], outcomes, strict=True) if o == oc.SUCCESS)
        self.bad_devices += sum(1 for o in outcomes if o != oc.SUCCESS)
        if self.state is not None:
            self.state.record(outcomes, rows["error_code"])
            self.window.answered(sum(1 for o in outcomes if o == oc.SUCCESS))
            reason = self.state.abort_reason()
            if reason and not self.stop_reason:
                self.stop_reason, self.stop_code = reason, oc.ABORTED
        self.bar.update(len(chunk.ids))
        self.bar.set_postfix_str(f"not ok {self.bad_devices}", refresh=False)

    def _record(self, chunk: _Chunk, rows: ChunkRows) -> None:
        self.rows[chunk.no] = rows
        self.starts[chunk.no] = chunk.start
        try:
            self.observer.chunk_done(self.op_id, chunk.no, rows)
        except RecordFailed as e:  # the record keeps the chunk as sent (unknown); nothing more goes out
            self._record_failed(e)

    def _record_failed(self, e: RecordFailed) -> None:
        if not self.stop_reason:
            self.stop_reason, self.stop_code = f"journal write failed: {e}", oc.JOURNAL_FAILED

    def _unrecorded(self, chunk: _Chunk, e: RecordFailed) -> ChunkRows:
        """``chunk`` could not be recorded as sent: not sent, and the run stops."""
        self._record_failed(e)
        return self._not_sent(chunk, oc.JOURNAL_FAILED, f"journal write failed: {e}")

    def _not_sent(self, chunk: _Chunk, code: str, why: str) -> ChunkRows:
        """This try of ``chunk`` never went out: its devices end ``skipped``, or ``unknown``
        when an earlier try of it did."""
        chunk.attempts -= 1
        if chunk.attempts:
            return self._uniform_rows(chunk, oc.UNKNOWN, code,
                                      f"sent {chunk.attempts} time(s) without a final answer; not sent again: {why}")
        return self._uniform_rows(chunk, oc.SKIPPED, code, f"stopped: {why}")

    async def _pace(self, devices: int) -> None:
        """The rollout's devices-per-minute cap, before the limiter's permit."""
        if self.state is not None:
            wait = self.state.delay_for(devices)
            if wait > 0:  # until its turn, or until the run stops
                try:
                    await asyncio.wait_for(self._stopped.wait(), wait)
                except TimeoutError:
                    pass

    async def _canary_gate(self) -> None:
        """After the canary: the policy's gate (a person, in a notebook) or its threshold decides."""
        state = self.state
        assert state is not None
        counts = {o: 0 for o in oc.OUTCOMES}
        for c in self.chunks:
            if c.canary and c.no in self.rows:
                for o in self.rows[c.no]["outcome"]:
                    counts[o] += 1
        report = state.canary_report(counts)
        if report.passed and (why := await state.came_back([self.rows[c.no] for c in self.chunks if c.canary and c.no in self.rows])):
            self.stop_reason, self.stop_code = why, oc.CANARY_REFUSED
            return
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
                self.stop_reason = f"canary gate not answered within {state.policy.gate_timeout:g} s; {report}"
                self.stop_code = oc.CANARY_REFUSED
                return
        if not go:
            self.stop_reason = str(report) if not report.passed else f"{report}; refused at the gate"
            self.stop_code = oc.CANARY_REFUSED

    def _rolling_judge(self) -> Any:
        """The rollout's come-back judge when it can follow the later chunks, else None."""
        p = self.rollout
        judge = p.judge if p is not None and p.come_back is not None else None
        return judge if callable(getattr(judge, "add", None)) and callable(getattr(judge, "check", None)) else None

    async def _watch_come_back(self) -> None:
        """While the chunks after the canary go out: follow their forced devices and stop
        the run when too few come back (the judge's :meth:`check`). A read that fails is
        logged and tried again next time: the run's own answers are judged anyway."""
        judge = self.come_back
        while not self.stop_reason:
            await asyncio.sleep(judge.every)
            try:
                why = await judge.check()
            except Exception as e:  # noqa: BLE001 - a failed read must not end the run
                log.warning("%s: reading who came back failed: %s", self.op_id, e)
                continue
            if why and not self.stop_reason:
                self.stop_reason, self.stop_code = why, oc.ABORTED

    def _finish(self) -> BatchResult:
        for chunk in self.queue:  # never sent: the run stopped
            self.rows[chunk.no] = self._uniform_rows(
                chunk, oc.SKIPPED, self.stop_code or oc.CANCELLED, f"stopped: {self.stop_reason}")
            self.starts[chunk.no] = chunk.start
        builder = self.builder
        for no in sorted(self.rows, key=self.starts.__getitem__):  # request order
            r = self.rows[no]
            builder.add(
                r["ids"], outcome=r["outcome"], names=r["names"], error_code=r["error_code"],
                error_msg=r["error_msg"], chunk=no, attempts=r["attempts"], request_id=r["request_id"],
                event_id=r["event_id"], sent_at=r["sent_at"], answered_at=r["answered_at"],
                http_status=r.get("http_status"), settled_by=r.get("settled_by"),
            )
        if len(builder) != len(self.ids):  # the promise: every requested device ends in the result
            raise AssertionError(f"batch engine lost devices: {len(self.ids)} requested, {len(builder)} recorded")
        if self.extra_ids:
            log.warning("%s: the service answered for %d ids that were not requested; ignored",
                        self.operation, self.extra_ids)
        result = builder.build(stopped=self.stop_reason, parent_op_id=self.opts.parent_op_id)
        result.peak_in_flight = self.window.peak
        self.observer.finished(result)
        return result

    # -- one chunk ---------------------------------------------------------------------------
    def _uniform_rows(self, chunk: _Chunk, outcome: str, code: str | None, msg: str | None, *,
                      request_id: str | None = None, event_id: str | None = None,
                      answered_at: float | None = None, http_status: int | None = None) -> ChunkRows:
        n = len(chunk.ids)
        names = self.names
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
            "http_status": http_status,
            "settled_by": None,
        }

    def _answer_rows(self, chunk: _Chunk, ans: Answer) -> ChunkRows:
        ids = chunk.ids
        # first mention wins: dict() keeps the last of the reversed pairs
        ok: dict[Hashable, str | None] = dict(reversed(list(ans.success)))
        bad: dict[Hashable, tuple[str | None, str, str | None]] = {}
        for dev_id, name, code, msg in ans.failed:
            # a device listed both ways is reported as failed: the service itself doubts it
            if dev_id not in bad:
                bad[dev_id] = (name or ok.get(dev_id), code or oc.REPORTED_FAILED, msg)
        requested = set(ids)
        extra = len((ok.keys() | bad.keys() if bad else ok.keys()) - requested)
        self.extra_ids += extra
        rows = self._uniform_rows(chunk, oc.UNKNOWN, None, None, request_id=ans.request_id, event_id=ans.event_id,
                                  http_status=ans.http_status)
        rows["answered_at"] = time.time()
        names = rows["names"]
        if not bad and not extra and len(ok) == len(requested):  # every id a success: the usual answer
            rows["outcome"] = [oc.SUCCESS] * len(ids)
            rows["names"] = [ok[dev_id] or base for dev_id, base in zip(ids, names, strict=True)]
            return rows
        for i, dev_id in enumerate(ids):
            v = bad.get(dev_id)
            if v is not None:
                outcome, name, code, msg = oc.FAILED, *v
                if msg is None and code == oc.REPORTED_FAILED:
                    msg = "listed in 'failed' by the service (no reason given)"
            elif dev_id in ok:
                outcome, name, code, msg = oc.SUCCESS, ok[dev_id], None, None
            else:
                rows["error_code"][i] = oc.NOT_IN_ANSWER
                rows["error_msg"][i] = "the answer mentioned neither success nor failure for this device"
                continue
            rows["outcome"][i] = outcome
            if name:
                names[i] = name
            rows["error_code"][i] = code
            rows["error_msg"][i] = msg
        return rows

    async def _run_chunk(self, chunk: _Chunk) -> ChunkRows:
        """Try one chunk until it has an answer or the retry policy gives up; never raises
        for anything the far side does."""
        retry, attempt_timeout = self.retry, self.opts.attempt_timeout
        while True:
            chunk.attempts += 1
            await self._pace(len(chunk.ids))
            if chunk.attempts == 1 and self.stop_reason:  # the run stopped while this chunk waited its turn
                chunk.attempts = 0
                return self._uniform_rows(chunk, oc.SKIPPED, self.stop_code or oc.CANCELLED, f"stopped: {self.stop_reason}")
            ticket = await self.limiter.acquire()  # a place in the adaptive window, a slot in the rate
            signal = limit.NEUTRAL
            try:  # write-ahead: recorded as sent before it goes out, else not sent
                self.observer.chunk_sent(self.op_id, chunk.no, chunk.attempts)
            except RecordFailed as e:
                self.limiter.release(ticket, limit.NEUTRAL)
                return self._unrecorded(chunk, e)
            before, chunk.sent_at = chunk.sent_at, time.time()
            final: tuple[str, str, str] | None = None  # (outcome, code, msg) when we give up
            retry_after: float | None = None
            may_retry = chunk.attempts < retry.attempts
            req_id = ev_id = status = None
            try:
                coro = self.send(chunk.ids, chunk.no, chunk.attempts)
                ans = await (asyncio.wait_for(coro, attempt_timeout) if attempt_timeout else coro)
                signal = limit.OK
                return self._answer_rows(chunk, ans)
            except ApiError as e:
                signal = limit.THROTTLED if e.throttled else limit.OVERLOADED if e.status >= 500 else limit.OK
                req_id, status = e.request_id, e.status
                final = (oc.FAILED, e.error_code or f"HTTP.{e.status}", e.error_msg or f"HTTP {e.status}")
                retry_after = e.retry_after
                kind = "throttled" if e.throttled else "server"
                may_retry = may_retry and e.retryable and retry.retries(kind)
                if e.auth_refused and not self.stop_reason:  # never hammer a refused key: stop the run
                    self.stop_reason, self.stop_code = f"credentials refused: {e}", oc.AUTH_REFUSED
            except TransportError as e:
                req_id, ev_id = e.request_id, e.event_id
                if e.sent:
                    signal = limit.LOST
                    final = (oc.UNKNOWN, e.code or oc.TIMEOUT, str(e))
                    may_retry = may_retry and retry.retries("unanswered")
                elif self.opts.cancel is not None and self.opts.cancel.cancelled:  # never sent: the run stopped
                    final = (oc.SKIPPED, oc.CANCELLED, f"stopped: {self.opts.cancel.reason or 'cancelled'}")
                    may_retry = False
                else:
                    signal = limit.OVERLOADED
                    final = (oc.FAILED, e.code or oc.CONNECT_ERROR, str(e))
                    may_retry = may_retry and retry.retries("connect")
            except MalformedResponse as e:
                req_id = getattr(e, "request_id", None)
                final = (oc.UNKNOWN, oc.MALFORMED, str(e)[:200])
                may_retry = may_retry and retry.retries("unanswered")
            except TimeoutError:
                signal = limit.LOST
                final = (oc.UNKNOWN, oc.TIMEOUT, f"no answer within {attempt_timeout} s")
                may_retry = may_retry and retry.retries("unanswered")
            except ClientClosed as e:  # our client was closed under the run (Ctrl-C, clean-up): this try never went out
                why = f"the client was closed: {e}"
                if not self.stop_reason:
                    self.stop_reason, self.stop_code = why, oc.CANCELLED
                chunk.sent_at = before
                return self._not_sent(chunk, oc.CANCELLED, why)
            except Exception as e:  # a bug of ours: keep the devices, say what happened
                log.exception("chunk %d of %s failed inside romakit", chunk.no, self.op_id)
                final = (oc.UNKNOWN, oc.INTERNAL, f"{type(e).__name__}: {e}"[:200])
                may_retry = False
            finally:
                self.limiter.release(ticket, signal)  # the outcome, before any retry wait
            if self.stop_code == oc.AUTH_REFUSED:  # not even a retry once the credentials were refused
                may_retry = False
            if not may_retry:
                outcome, code, msg = final
                return self._uniform_rows(
                    chunk, outcome, code, msg, request_id=req_id, event_id=ev_id,
                    answered_at=time.time() if outcome == oc.FAILED else None, http_status=status,
                )
            await asyncio.sleep(retry.delay(chunk.attempts, retry_after))


async def run_batch(
    ids: Sequence[Hashable],
    *,
    operation: str,
    target: str,
    send: SendChunk,
    options: BatchOptions | None = None,
    **kwargs: Unpack[BatchKwargs],
) -> BatchResult:
    """Run ``send`` over ``ids`` in chunks and return one row per requested id.

    ``ids`` must already be validated and de-duplicated. ``options`` (or the same as
    keywords, :class:`BatchOptions`) say how: at most ``concurrency`` chunks in
    flight, ``rate`` request starts per second (retries included; a client's setting),
    ``attempt_timeout`` bounding each try, ``rollout`` for a canary and its gate, a
    devices-per-minute cap, a ramp and abort criteria (None: the operation registry's
    default; False: none), under which the window starts slow (:mod:`~romakit.engine.window`).
    ``settled`` ids were read as already done: they end ``success`` (settled by ``read``)
    and are not sent. No observer given: no journal.
    """
    opts = options or BatchOptions()
    if kwargs:
        opts = BatchOptions.from_kwargs(kwargs, where="run_batch").merged(**vars(opts))
    return await BatchRun(ids, operation=operation, target=target, send=send, options=opts).run()
