"""event_id correlation: which downstream answer belongs to which waiting request.

Pure logic, no paho and no sockets: :class:`Correlator` is fed the payloads of the
gateway's down topic (from any thread) and resolves the futures of the requests that
wait for them, each on the event loop that awaits it (``call_soon_threadsafe``).

Each request carries its own ``event_id``. Answers nobody waits for (an unknown
``event_id``, a second copy of an answered one, one that comes after its request gave
up) and unreadable payloads are recorded in the :class:`~romakit.iotda.recorder.EventRecorder`
and counted, and otherwise ignored: they never count twice and never reach a batch
result. Nothing here blocks or raises into the thread that delivers a message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from romakit import outcomes as oc
from romakit.errors import MalformedResponse, TransportError
from romakit.iotda import envelope as env
from romakit.iotda.recorder import (
    DUPLICATE,
    LATE,
    MALFORMED,
    MATCHED,
    NOTIFY,
    OTHER,
    UNMATCHED,
    EventRecorder,
    Record,
)

log = logging.getLogger("romakit.iotda")

_EVENT_ID_IN_TEXT = re.compile(rb'"event_id"\s*:\s*"([0-9A-Za-z_.:-]{1,64})"')
#: answered / given-up event ids kept to tell duplicates and late answers apart
REMEMBER = 20_000
#: the counters, in the order :meth:`Correlator.stats` lists them
COUNTERS = ("published", "answered", "timeouts", "link_lost", "duplicates", "late", "unmatched",
            "malformed", "notifies", "other", "peak_pending")


class MalformedAnswer(MalformedResponse, TransportError):
    """The platform answered a request with something unreadable.

    Also a :class:`TransportError` (``sent=True``, code ``romakit.Malformed``) so the
    batch engine keeps the ``event_id`` on the devices' rows, which end ``unknown``.
    """

    def __init__(self, message: str, *, event_id: str | None) -> None:
        TransportError.__init__(self, message, sent=True, code=oc.MALFORMED, event_id=event_id)


class LinkLost(Exception):
    """The connection dropped (or was closed) while a request waited for its answer."""


@dataclass
class _Pending:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    request_type: str
    answer_type: str


def _settle(fut: asyncio.Future, value: Any = None, exc: BaseException | None = None) -> None:
    """Resolve ``fut`` unless it is already done (cancelled by a timeout, say)."""
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


def call_on(loop: asyncio.AbstractEventLoop, fut: asyncio.Future, value: Any = None,
            exc: BaseException | None = None) -> None:
    """Resolve ``fut`` on its own ``loop``, from any thread; nothing if that loop is closed."""
    try:
        loop.call_soon_threadsafe(_settle, fut, value, exc)
    except RuntimeError:  # that loop is closed: nobody is waiting any more
        pass


def _remember(store: OrderedDict, key: str) -> None:
    store[key] = None
    if len(store) > REMEMBER:
        store.popitem(last=False)


class Correlator:
    """The pending table of one gateway: requests by ``event_id`` -> their futures.

    ``link_up()`` opens it for requests and ``link_down(why)`` fails every waiting one
    (:class:`LinkLost`) and closes it again, atomically with :meth:`expect`: a request is
    either registered before the link went down (and then lost with it) or refused.
    """

    def __init__(self, recorder: EventRecorder, *, name: str = "gateway") -> None:
        self.recorder = recorder
        self.name = name
        self._lock = threading.Lock()
        self._up = False
        self._pending: dict[str, _Pending] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._given_up: OrderedDict[str, None] = OrderedDict()
        self._counts: Counter[str] = Counter()
        #: called with every notify event (paho's thread: must not block)
        self.on_notify: Any = None

    def __repr__(self) -> str:
        return f"Correlator({self.name!r}, up={self._up}, pending={self.pending})"

    # -- counters -----------------------------------------------------------------------------
    def count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    @property
    def pending(self) -> int:
        """Requests awaiting their answers now."""
        with self._lock:
            return len(self._pending)

    def stats(self) -> dict[str, int]:
        """The counters (:data:`COUNTERS`) and ``pending`` (now)."""
        with self._lock:
            out = {k: int(self._counts.get(k, 0)) for k in COUNTERS}
            out["pending"] = len(self._pending)
        return out

    # -- the link -------------------------------------------------------------------------------
    def link_up(self) -> None:
        """Accept requests from now on."""
        with self._lock:
            self._up = True

    def link_down(self, why: str) -> int:
        """Refuse new requests and fail every waiting one with :class:`LinkLost` (its
        answer can no longer be told apart from none); returns how many were failed."""
        with self._lock:
            self._up = False
            lost, self._pending = self._pending, {}
            for eid in lost:
                _remember(self._given_up, eid)
            self._counts["link_lost"] += len(lost)
        for p in lost.values():
            call_on(p.loop, p.future, exc=LinkLost(why))
        return len(lost)

    # -- requests ---------------------------------------------------------------------------
    def expect(self, event_id: str, request_type: str, answer_type: str,
               loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future | None:
        """Register a request before it is published (the answer may be quick); returns the
        future its answer resolves, on ``loop`` (default: the running one), or None while
        the link is down."""
        loop = loop or asyncio.get_running_loop()
        pending = _Pending(loop, loop.create_future(), request_type, answer_type)
        with self._lock:
            if not self._up:
                return None
            self._pending[event_id] = pending
            if len(self._pending) > self._counts["peak_pending"]:
                self._counts["peak_pending"] = len(self._pending)
        return pending.future

    def withdraw(self, event_id: str) -> None:
        """Forget a request that was never sent (its publish failed)."""
        with self._lock:
            self._pending.pop(event_id, None)

    def give_up(self, event_id: str) -> None:
        """Stop waiting for ``event_id`` (cancelled); an answer that still comes is ``late``."""
        with self._lock:
            if self._pending.pop(event_id, None) is not None:
                _remember(self._given_up, event_id)

    async def answer(self, event_id: str, future: asyncio.Future, timeout: float, request_type: str) -> env.DownEvent:
        """Wait up to ``timeout`` s for the answer to ``event_id`` (registered with
        :meth:`expect`, published since) and return it.

        No answer in time: ``TransportError(sent=True, code=romakit.Timeout)``; the link
        dropped meanwhile: ``code=romakit.ConnectionLost``; an unreadable answer:
        :class:`MalformedAnswer`. Each carries the ``event_id``.
        """
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
        except asyncio.CancelledError:
            self.give_up(event_id)
            raise
        if not done:
            with self._lock:
                timed_out = self._pending.pop(event_id, None) is not None
                if timed_out:
                    _remember(self._given_up, event_id)
                    self._counts["timeouts"] += 1
            if timed_out:
                raise TransportError(f"no {env.RESPONSE_OF.get(request_type, 'answer')} for event_id {event_id} "
                                     f"within {timeout} s", sent=True, code=oc.TIMEOUT, event_id=event_id)
            # answered (or lost) at the last moment: its resolution is already scheduled
            await asyncio.wait({future}, timeout=5.0)
        try:
            return future.result()
        except LinkLost as e:
            raise TransportError(f"{request_type} {event_id}: {e} before the answer came", sent=True,
                                 code=oc.CONNECTION_LOST, event_id=event_id) from None
        except asyncio.InvalidStateError:  # pragma: no cover - only if the loop stalled 5 s
            raise TransportError(f"{request_type} {event_id}: answer lost inside romakit", sent=True,
                                 code=oc.INTERNAL, event_id=event_id) from None

    # -- what comes down ------------------------------------------------------------------------
    def receive(self, payload: bytes | bytearray, topic: str = "the down topic") -> None:
        """One message of the down topic: match, record and count each of its events."""
        message = env.parse_down(payload)
        if message.problem is None:
            for ev in message.events:
                self._receive_event(ev)
            return
        # unreadable as a whole: if it still names a waiting request, end that request now
        m = _EVENT_ID_IN_TEXT.search(bytes(payload[:4096]))
        eid = m.group(1).decode() if m else None
        with self._lock:
            p = self._pending.pop(eid, None) if eid else None
            if p is not None and eid:
                _remember(self._answered, eid)
            self._counts["malformed"] += 1
        if p is not None:
            call_on(p.loop, p.future, exc=MalformedAnswer(
                f"unreadable answer to {p.request_type} {eid}: {message.problem}", event_id=eid))
        log.warning("gateway %s: malformed message on %s: %s (%d bytes)", self.name, topic,
                    message.problem, len(payload))
        self.recorder.add(Record(time.time(), None, eid, MALFORMED, problem=message.problem))

    def _receive_event(self, ev: env.DownEvent) -> None:
        if not ev.is_sub_device_event:
            match = MALFORMED if ev.problem else OTHER
            self.count("malformed" if ev.problem else "other")
            self.recorder.add(Record.of(ev, match))
            return
        if ev.is_notify and ev.problem is None:
            self.count("notifies")
            if self.on_notify is not None:
                self.on_notify(ev)
            self.recorder.add(Record.of(ev, NOTIFY))
            return
        if not ev.is_response and ev.problem is None:
            self.count("other")
            self.recorder.add(Record.of(ev, OTHER))
            return
        eid = ev.event_id
        with self._lock:
            p = self._pending.pop(eid, None) if eid else None
            if p is not None and eid:
                _remember(self._answered, eid)
                if ev.problem or ev.event_type != p.answer_type:
                    match, key = MALFORMED, "malformed"
                else:
                    match, key = MATCHED, "answered"
            elif ev.problem:
                match, key = MALFORMED, "malformed"
            elif eid in self._answered:
                match, key = DUPLICATE, "duplicates"
            elif eid in self._given_up:
                match, key = LATE, "late"
            else:
                match, key = UNMATCHED, "unmatched"
            self._counts[key] += 1
        problem = None
        if p is not None:
            if match == MATCHED:
                call_on(p.loop, p.future, ev)
            else:
                problem = ev.problem or f"answered with {ev.event_type}, expected {p.answer_type}"
                call_on(p.loop, p.future, exc=MalformedAnswer(
                    f"unreadable answer to {p.request_type} {eid}: {problem}", event_id=eid))
        if match == MALFORMED:
            log.warning("gateway %s: malformed %s (event_id %s): %s", self.name, ev.event_type, eid,
                        problem or ev.problem)
        elif match != MATCHED:
            log.info("gateway %s: %s %s (event_id %s) ignored", self.name, match, ev.event_type, eid)
        self.recorder.add(Record.of(ev, match, problem))


__all__ = ["COUNTERS", "Correlator", "LinkLost", "MalformedAnswer", "call_on"]
