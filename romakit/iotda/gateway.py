"""An IoTDA gateway on paho-mqtt 2 that manages its child devices in batches.

``Gateway`` logs in as one IoTDA gateway device and speaks ``$sub_device_manager``:
delete and add children, update their status, ask for a sync. Every batch goes
through romakit's batch engine (:func:`romakit.engine.run_batch`): chunks of at most
50 (100 for status), a window of ``max_in_flight`` requests, IoTDA's 50 messages/s
per device, one outcome row per device.

How requests meet their answers: each request carries its own ``event_id`` (uuid4);
a table of pending requests maps it to an asyncio future on the loop that awaits
it, and paho's network thread resolves that future with ``call_soon_threadsafe``.
Answers nobody waits for (unknown ``event_id``, a second copy of an answered one, one
that comes after its request gave up) and unreadable payloads are recorded
(:meth:`Gateway.events`, :attr:`Gateway.stats`) and otherwise ignored: they never
count twice and never reach a batch result. Nothing in a paho callback blocks or
raises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import ssl
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

import paho.mqtt.client as mqtt

from romakit import _runner, wire
from romakit import outcomes as oc
from romakit._net import is_loopback
from romakit.engine import Answer, BatchKwargs, BatchOptions, RetryPolicy, run_batch
from romakit.errors import ConnectRefused, InputError, MalformedResponse, MqttError, TransportError
from romakit.ids import IOTDA_ID_RE, iotda_ids
from romakit.iotda import auth
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
from romakit.operations import GATEWAY, OPERATIONS, check_chunk
from romakit.results import BatchResult
from romakit.store.writer import journal_observer

log = logging.getLogger("romakit.iotda")

#: The retry policy of every MQTT batch operation unless one is given.
#:
#: A chunk that was published but never answered (timeout, link lost, unreadable
#: answer) is NOT sent again: child deletion is not idempotent in its *outcome*. If
#: the first request did reach the platform, a second one would come back with the
#: children listed as failed ("not found") and the result would call deleted devices
#: failed. Such devices end ``unknown`` instead, which is the truth; the recorder
#: keeps any late answer for inspection. Chunks that never left (not connected) are
#: tried once more after a back-off. The same holds for adds (a repeated add fails
#: as a duplicate) and is harmless for status updates.
MQTT_RETRY = RetryPolicy(attempts=2, backoff=1.0, max_backoff=5.0, resend_unanswered=False)

#: CONNACK reason names (paho converts MQTT 3.1.1 return codes to them) -> the 3.1.1 code
_CONNACK_CODES = {
    "Unsupported protocol version": 1,
    "Client identifier not valid": 2,
    "Server unavailable": 3,
    "Bad user name or password": 4,
    "Not authorized": 5,
}
_CONNACK_MEANING = {
    1: "unacceptable protocol version",
    2: "client id rejected (device id, or the _0_{sig}_{YYYYMMDDHH} suffix, or keepalive)",
    3: "server unavailable",
    4: "bad username or password (device id or secret wrong, or the device does not exist)",
    5: "not authorised (device frozen or not allowed to connect)",
}
_EVENT_ID_IN_TEXT = re.compile(rb'"event_id"\s*:\s*"([0-9A-Za-z_.:-]{1,64})"')
_REMEMBER = 20_000  # answered / given-up event ids kept to tell duplicates and late answers apart
_ADD_KEYS = frozenset({"node_id", "product_id", "device_id", "name", "description", "parent_device_id", "extension_info"})


class MalformedAnswer(MalformedResponse, TransportError):
    """The platform answered a request with something unreadable.

    Also a :class:`TransportError` (``sent=True``, code ``romakit.Malformed``) so the
    batch engine keeps the ``event_id`` on the devices' rows, which end ``unknown``.
    """

    def __init__(self, message: str, *, event_id: str | None) -> None:
        TransportError.__init__(self, message, sent=True, code=oc.MALFORMED, event_id=event_id)


class _LinkLost(Exception):
    """Internal: the connection dropped while a request waited for its answer."""


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


def _call_on(loop: asyncio.AbstractEventLoop, fut: asyncio.Future, value: Any = None, exc: BaseException | None = None) -> None:
    try:
        loop.call_soon_threadsafe(_settle, fut, value, exc)
    except RuntimeError:  # that loop is closed: nobody is waiting any more
        pass


class _PahoNoise(logging.Filter):
    """Drops paho 2.2's ERROR "Client is not connected" that its loop logs once after
    every deliberate disconnect; real link losses are reported by ``on_disconnect``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_paho_log = logging.getLogger("romakit.iotda.paho")
_paho_log.addFilter(_PahoNoise())


def _remember(store: OrderedDict, key: str) -> None:
    store[key] = None
    if len(store) > _REMEMBER:
        store.popitem(last=False)


class Gateway:
    """One IoTDA gateway connection; manages its children over ``$sub_device_manager``.

    Use it as a context manager (``with gw:`` connects, waits for CONNACK and the
    subscription, and disconnects on exit) or call :meth:`connect` / :meth:`close`.

    ``tls`` defaults to on for port 8883 and off otherwise; TLS always verifies the
    server (``ca_file`` or the system CAs). Plain MQTT to a host that is not loopback is
    refused unless ``allow_insecure=True``: the password would cross the network in
    clear. ``timeout`` bounds the wait for each answer (IoTDA answers within 30 s),
    ``max_in_flight`` the requests awaiting answers, ``rate_per_second`` the requests
    started per second (IoTDA allows 50 upstream messages/s per device).

    paho reconnects by itself after a lost link, with the login of the first connect.
    With ``sig=0`` (the default) IoTDA does not check its hour stamp; with ``sig=1`` a
    reconnect hours later may be refused (``stats["refused"]``): close and connect again.
    """

    def __init__(
        self,
        host: str,
        port: int,
        device_id: str,
        secret: str | auth.Secret,
        *,
        tls: bool | None = None,
        ca_file: str | None = None,
        keepalive: int = 120,
        timeout: float = 30.0,
        max_in_flight: int = 8,
        rate_per_second: float | None = 50,
        sig: int = wire.IOTDA_DEFAULT_SIG,
        allow_insecure: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        if not isinstance(host, str) or not host.strip():
            raise InputError(f"host must be a non-empty string, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InputError(f"port must be an int in 1..65535, got {port!r}")
        if not isinstance(device_id, str) or not IOTDA_ID_RE.match(device_id):
            raise InputError(f"device_id must be 1..128 letters, digits, '_' or '-', got {device_id!r}")
        if isinstance(keepalive, bool) or not isinstance(keepalive, int) or not 30 <= keepalive <= 1200:
            raise InputError(f"keepalive must be 30..1200 seconds (IoTDA's range), got {keepalive!r}")
        for name, val in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not isinstance(val, (int, float)) or isinstance(val, bool) or not val > 0:
                raise InputError(f"{name} must be a number of seconds > 0, got {val!r}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise InputError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        if rate_per_second is not None and not rate_per_second > 0:
            raise InputError(f"rate_per_second must be > 0 or None, got {rate_per_second!r}")
        if sig not in (0, 1) or isinstance(sig, bool):
            raise InputError(f"sig must be 0 (timestamp not checked) or 1 (checked), got {sig!r}")
        self.host = host.strip()
        self.port = port
        self.device_id = device_id
        self._secret = auth.Secret(secret)
        self.tls = (port == 8883) if tls is None else bool(tls)
        if ca_file is not None and not self.tls:
            raise InputError("ca_file was given but TLS is off; pass tls=True (IoTDA's TLS port is 8883)")
        if not self.tls and not allow_insecure and not is_loopback(self.host):
            raise InputError(
                f"plain MQTT to {self.host!r} would send the device password unencrypted; "
                "use TLS (port 8883, tls=True) or pass allow_insecure=True"
            )
        self.ca_file = ca_file
        self.keepalive = keepalive
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_in_flight = max_in_flight
        self.rate_per_second = rate_per_second
        self.sig = sig
        self.up_topic = env.up_topic(device_id)
        self.down_topic = env.down_topic(device_id)
        #: every downstream event seen (see :meth:`events`)
        self.recorder = EventRecorder()

        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._connected = False
        self._ever_connected = False
        self._closing = False
        self._pending: dict[str, _Pending] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._given_up: OrderedDict[str, None] = OrderedDict()
        self._conn_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._conn_event = threading.Event()
        self._connack = threading.Event()
        self._connack_reason: Any = None
        self._suback = threading.Event()
        self._sub_mid: int | None = None
        self._counts: Counter[str] = Counter()

    # -- display ------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"Gateway(host={self.host!r}, port={self.port}, device_id={self.device_id!r}, "
            f"tls={self.tls}, connected={self.connected})"
        )

    kind = GATEWAY

    @property
    def target(self) -> str:
        """What the batch operations act on: this gateway's device id."""
        return self.device_id

    def identity(self) -> dict[str, Any]:
        """The non-secret facts that name where this gateway acts (what the journal keeps):
        host, port, gateway id, TLS. Never the secret."""
        return {"kind": GATEWAY, "host": self.host, "port": int(self.port), "gateway_id": self.device_id,
                "tls": bool(self.tls), "target": self.device_id}

    @property
    def connected(self) -> bool:
        """True while the MQTT link is up (False during paho's reconnects)."""
        return self._connected

    @property
    def stats(self) -> dict[str, int]:
        """Counters: published requests, answered (matched), timeouts, link_lost (requests
        given up because the link dropped), duplicates, late, unmatched, malformed, notifies,
        other, reconnects, refused (reconnects refused by the broker), peak_pending (most requests
        awaiting answers at once), pending (now)."""
        keys = ("published", "answered", "timeouts", "link_lost", "duplicates", "late", "unmatched",
                "malformed", "notifies", "other", "reconnects", "refused", "peak_pending")
        with self._lock:
            out = {k: int(self._counts.get(k, 0)) for k in keys}
            out["pending"] = len(self._pending)
        return out

    def events(self) -> Any:
        """Every downstream event this gateway saw, as a pandas DataFrame (one row per event):
        ``received_at``, ``event_type``, ``event_id``, ``match`` (matched, duplicate, late,
        unmatched, malformed, notify, other), ``event_time``, ``version``, ``n_devices``,
        ``n_successful``, ``n_failed``, ``device_ids``, ``problem``."""
        return self.recorder.frame()

    # -- life -------------------------------------------------------------------------
    def __enter__(self) -> Gateway:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tls_context(self) -> ssl.SSLContext:
        from romakit.tls import client_context

        ctx = client_context(self.ca_file)  # the OS store plus ca_file on top; verifies chain and host name
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def connect(self) -> Gateway:
        """Connect, wait for CONNACK and the SUBACK of the down topic; raise on refusal.

        Raises :class:`ConnectRefused` (with the MQTT 3.1.1 CONNACK code 1..5) when the
        broker refuses the login, :class:`MqttError` when it cannot be reached in time.
        """
        with self._lock:
            if self._client is not None:
                return self
            self._closing = False
        login = auth.login(self.device_id, self._secret, sig=self.sig)
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=login.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        client.username_pw_set(login.username, login.password)
        del login
        if self.tls:
            client.tls_set_context(self._tls_context())
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(max(20, 2 * self.max_in_flight))
        client.connect_timeout = self.connect_timeout
        client.enable_logger(_paho_log)  # paho logs no passwords or payloads
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._connack.clear()
        self._suback.clear()
        self._connack_reason = None
        try:
            client.connect(self.host, self.port, keepalive=self.keepalive)
        except (OSError, ValueError) as e:  # refused, unreachable, TLS verification...
            hint = ""
            if isinstance(e, ssl.SSLCertVerificationError):
                hint = (" (the broker's certificate is not trusted: pass ca_file= with its CA;"
                        " the sandbox's is in sb.describe()['mqtt']['ca_file'])")
            raise MqttError(f"could not connect to {self.host}:{self.port}: {type(e).__name__}: {e}{hint}") from None
        # Drive the handshake from this thread: a refused login then leaves no network
        # thread behind (paho's would sit in its reconnect back-off for up to a second).
        deadline = time.monotonic() + self.connect_timeout
        failure: Exception | None = None
        while not self._connack.is_set() and time.monotonic() < deadline:
            rc = client.loop(timeout=0.05)
            if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN) and not self._connack.is_set():
                failure = MqttError(f"{self.host}:{self.port} closed the connection before CONNACK: "
                                    f"{mqtt.error_string(rc)}")
                break
        reason = self._connack_reason
        if failure is None and not self._connack.is_set():
            failure = MqttError(f"no CONNACK from {self.host}:{self.port} within {self.connect_timeout} s")
        elif failure is None and reason is not None:
            name = reason.getName() if hasattr(reason, "getName") else str(reason)
            code = _CONNACK_CODES.get(name, int(getattr(reason, "value", 0) or 0))
            failure = ConnectRefused(code, f"{name}: {_CONNACK_MEANING.get(code, 'refused')}")
        # loop() made paho's wake-up socket pair; loop_start() makes its own, so close this one
        # (paho has no public call for it; guarded in case a release renames it)
        reset = getattr(client, "_reset_sockets", None)
        if failure is not None:
            client.disconnect()
            if reset is not None:
                reset()  # the connection too
            raise failure
        if reset is not None:
            reset(sockpair_only=True)
        with self._lock:
            self._client = client
        client.loop_start()
        if not self._suback.wait(max(deadline - time.monotonic(), 1.0)):
            log.warning("no SUBACK for %s within %s s; relying on the broker's implicit delivery",
                        self.down_topic, self.connect_timeout)
        return self

    def close(self) -> None:
        """Disconnect and stop paho's thread; requests still waiting end ``unknown``."""
        with self._lock:
            client, self._client = self._client, None
            self._closing = True
        if client is not None:
            try:
                client.disconnect()
            except Exception:  # already gone: nothing to say goodbye to
                log.debug("disconnect of %s failed", self.device_id, exc_info=True)
            client.loop_stop()
        self._lose_pending("the gateway was closed")
        with self._lock:
            self._connected = False
            self._conn_event.clear()
            waiters, self._conn_waiters = self._conn_waiters, []
        for loop, fut in waiters:
            _call_on(loop, fut, False)

    def wait_connected(self, timeout: float) -> bool:
        """Block until the link is up (after a reconnect, say); False after ``timeout`` s."""
        return self._conn_event.wait(timeout)

    # -- paho callbacks: network thread, never block, never raise ------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            if reason_code.is_failure:
                with self._lock:
                    again = self._ever_connected
                    if again:
                        self._counts["refused"] += 1
                if again:
                    log.warning("broker %s:%s refused the reconnect of %s: %s", self.host, self.port,
                                self.device_id, reason_code)
                self._connack_reason = reason_code
                self._connack.set()
                return
            result, mid = client.subscribe(self.down_topic, qos=1)
            self._sub_mid = mid
            if result != mqtt.MQTT_ERR_SUCCESS:
                log.warning("subscribe to %s failed: %s", self.down_topic, mqtt.error_string(result))
            with self._lock:
                if self._ever_connected:
                    self._counts["reconnects"] += 1
                    log.info("gateway %s reconnected to %s:%s", self.device_id, self.host, self.port)
                self._ever_connected = True
                self._connected = True
                self._conn_event.set()
                waiters, self._conn_waiters = self._conn_waiters, []
            for loop, fut in waiters:
                _call_on(loop, fut, True)
            self._connack.set()
        except Exception:
            log.exception("romakit gateway %s: error in on_connect (ignored)", self.device_id)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if mid != self._sub_mid:
            return
        if any(getattr(rc, "is_failure", False) for rc in reason_codes):
            log.warning("broker refused the subscription to %s; relying on its implicit delivery", self.down_topic)
        self._suback.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            with self._lock:
                current = client is self._client  # not: closing, or refused inside connect()
                if current:
                    self._connected = False
                    self._conn_event.clear()
                closing = self._closing or not current
            if not current:
                return
            self._lose_pending(f"the MQTT link dropped ({reason_code})")
            if not closing:
                log.warning("gateway %s lost the link to %s:%s (%s); paho reconnects",
                            self.device_id, self.host, self.port, reason_code)
        except Exception:
            log.exception("romakit gateway %s: error in on_disconnect (ignored)", self.device_id)

    def _lose_pending(self, why: str) -> None:
        """Fail every waiting request: its answer can no longer be told apart from none."""
        with self._lock:
            lost, self._pending = self._pending, {}
            for eid in lost:
                _remember(self._given_up, eid)
            self._counts["link_lost"] += len(lost)
        for p in lost.values():
            _call_on(p.loop, p.future, exc=_LinkLost(why))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handle_down(msg.topic, msg.payload)
        except Exception:  # a bad message must never kill the network thread
            log.exception("romakit gateway %s: error handling a message on %s (ignored)", self.device_id, msg.topic)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _handle_down(self, topic: str, payload: bytes) -> None:
        if topic != self.down_topic:
            log.debug("message on %s ignored (not %s)", topic, self.down_topic)
            return
        message = env.parse_down(payload)
        if message.problem is None:
            for ev in message.events:
                self._handle_event(ev)
            return
        # unreadable as a whole: if it still names a waiting request, end that request now
        m = _EVENT_ID_IN_TEXT.search(bytes(payload[:4096]))
        eid = m.group(1).decode() if m else None
        with self._lock:
            p = self._pending.pop(eid, None) if eid else None
            if p is not None:
                _remember(self._answered, eid)
            self._counts["malformed"] += 1
        if p is not None:
            _call_on(p.loop, p.future, exc=MalformedAnswer(
                f"unreadable answer to {p.request_type} {eid}: {message.problem}", event_id=eid))
        log.warning("gateway %s: malformed message on %s: %s (%d bytes)", self.device_id, topic,
                    message.problem, len(payload))
        self.recorder.add(Record(time.time(), None, eid, MALFORMED, problem=message.problem))

    def _handle_event(self, ev: env.DownEvent) -> None:
        if not ev.is_sub_device_event:
            match = MALFORMED if ev.problem else OTHER
            self._count("malformed" if ev.problem else "other")
            self.recorder.add(Record.of(ev, match))
            return
        if ev.is_notify and ev.problem is None:
            self._count("notifies")
            self.recorder.add(Record.of(ev, NOTIFY))
            return
        if not ev.is_response and ev.problem is None:
            self._count("other")
            self.recorder.add(Record.of(ev, OTHER))
            return
        eid = ev.event_id
        with self._lock:
            p = self._pending.pop(eid, None) if eid else None
            if p is not None:
                _remember(self._answered, eid)
                if ev.problem:
                    match, key = MALFORMED, "malformed"
                elif ev.event_type != p.answer_type:
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
                _call_on(p.loop, p.future, ev)
            else:
                problem = ev.problem or f"answered with {ev.event_type}, expected {p.answer_type}"
                _call_on(p.loop, p.future, exc=MalformedAnswer(
                    f"unreadable answer to {p.request_type} {eid}: {problem}", event_id=eid))
        if match == MALFORMED:
            log.warning("gateway %s: malformed %s (event_id %s): %s", self.device_id, ev.event_type, eid,
                        problem or ev.problem)
        elif match != MATCHED:
            log.info("gateway %s: %s %s (event_id %s) ignored", self.device_id, match, ev.event_type, eid)
        self.recorder.add(Record.of(ev, match, problem))

    # -- one request ---------------------------------------------------------------------
    async def _wait_connected(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future, timeout: float) -> bool:
        try:
            done, _ = await asyncio.wait({fut}, timeout=max(timeout, 0.0))
        finally:
            if not fut.done():
                with self._lock:
                    self._conn_waiters = [(lp, f) for lp, f in self._conn_waiters if f is not fut]
        return bool(done) and fut.result() is True

    async def request(self, event_type: str, paras: Mapping[str, Any], *, timeout: float | None = None) -> env.DownEvent:
        """Publish one ``$sub_device_manager`` request and return its matched answer.

        Waits up to ``timeout`` for the link to be up (else ``TransportError(sent=False)``),
        then up to ``timeout`` for the answer. No answer in time: ``TransportError(sent=True,
        code=romakit.Timeout)``; the link dropped meanwhile: ``code=romakit.ConnectionLost``;
        an unreadable answer: :class:`MalformedAnswer`. Each carries the ``event_id``.

        A request the link lost is given up at once even though paho re-sends unacknowledged
        QoS 1 messages after reconnecting: whatever answer follows is recorded as ``late``.
        """
        answer_type = env.RESPONSE_OF.get(event_type)
        if answer_type is None:
            raise InputError(f"{event_type!r} is not a request that gets an answer; known: {sorted(env.RESPONSE_OF)}")
        timeout = self.timeout if timeout is None else float(timeout)
        loop = asyncio.get_running_loop()
        eid = env.new_event_id()
        payload = env.build(self.device_id, event_type, paras, event_id=eid)
        pending = _Pending(loop, loop.create_future(), event_type, answer_type)
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                client = self._client
                if client is None:
                    raise TransportError(f"gateway {self.device_id} is not connected (closed); {event_type} not sent",
                                         sent=False, code=oc.CONNECT_ERROR, event_id=eid)
                if self._connected:
                    self._pending[eid] = pending  # before publishing: the answer may be quick
                    if len(self._pending) > self._counts["peak_pending"]:
                        self._counts["peak_pending"] = len(self._pending)
                    break
                waiter = loop.create_future()
                self._conn_waiters.append((loop, waiter))
            if not await self._wait_connected(loop, waiter, deadline - loop.time()):
                raise TransportError(f"gateway {self.device_id} not connected within {timeout} s; {event_type} not sent",
                                     sent=False, code=oc.CONNECT_ERROR, event_id=eid)
        try:
            info = client.publish(self.up_topic, payload, qos=1)
            rc = info.rc
        except Exception as e:
            rc, err = None, f"{type(e).__name__}: {e}"
        else:
            err = mqtt.error_string(rc)
        # MQTT_ERR_NO_CONN: the link dropped under us; paho queued the message and sends
        # it after reconnecting, so it counts as sent (on_disconnect ends the wait).
        if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            with self._lock:
                self._pending.pop(eid, None)
            raise TransportError(f"{event_type} not published: {err}", sent=False, code=oc.CONNECT_ERROR, event_id=eid)
        self._count("published")
        try:
            done, _ = await asyncio.wait({pending.future}, timeout=timeout)
        except asyncio.CancelledError:
            self._give_up(eid)
            raise
        if not done:
            with self._lock:
                timed_out = self._pending.pop(eid, None) is not None
                if timed_out:
                    _remember(self._given_up, eid)
                    self._counts["timeouts"] += 1
            if timed_out:
                raise TransportError(f"no {answer_type} for event_id {eid} within {timeout} s",
                                     sent=True, code=oc.TIMEOUT, event_id=eid)
            # answered (or lost) at the last moment: its resolution is already scheduled
            await asyncio.wait({pending.future}, timeout=5.0)
        try:
            return pending.future.result()
        except _LinkLost as e:
            raise TransportError(f"{event_type} {eid}: {e} before the answer came", sent=True,
                                 code=oc.CONNECTION_LOST, event_id=eid) from None
        except asyncio.InvalidStateError:  # pragma: no cover - only if the loop stalled 5 s
            raise TransportError(f"{event_type} {eid}: answer lost inside romakit", sent=True,
                                 code=oc.INTERNAL, event_id=eid) from None

    def _give_up(self, eid: str) -> None:
        with self._lock:
            if self._pending.pop(eid, None) is not None:
                _remember(self._given_up, eid)

    # -- batch operations ------------------------------------------------------------------
    # Every operation comes as an async method (awaitable on any loop: the futures of its
    # requests live on the loop that awaits them) and a sync twin that runs it on
    # romakit's background loop. Besides the arguments named in the signatures, both take
    # the batch engine's ``names``, ``observer``, ``op_id``, ``parent_op_id`` and
    # ``rollout`` (see :func:`romakit.engine.run_batch`).

    def _require_client(self) -> None:
        if self._client is None:
            raise MqttError(f"gateway {self.device_id} is not connected: use `with gw:` or gw.connect() first")

    async def _batch(self, operation: str, keys: list[str], send: Any, options: BatchOptions) -> BatchResult:
        """The shared engine with this gateway's defaults, journaled with its (secret-free) address."""
        self._require_client()
        opts = options.merged(concurrency=self.max_in_flight, retry=MQTT_RETRY, rate_per_second=self.rate_per_second)
        if opts.observer is None:
            opts = dataclasses.replace(opts, observer=journal_observer(
                self.identity(), parent_op_id=opts.parent_op_id, relation=opts.relation))
        return await run_batch(keys, operation=operation, target=self.device_id, send=send, options=opts)

    @staticmethod
    def _options(operation: str, options: dict[str, Any]) -> BatchOptions:
        """The batch options of one call, checked (chunk size within the operation's limit)."""
        opts = BatchOptions.from_kwargs(options, refuse=("rate_per_second", "attempt_timeout"), where=operation)
        opts = opts.merged(chunk_size=OPERATIONS[operation].default_chunk)
        check_chunk(operation, opts.chunk_size)
        return opts

    # delete ---------------------------------------------------------------------------------
    async def adelete_sub_devices(self, ids: Any, **options: Unpack[BatchKwargs]) -> BatchResult:
        """Async twin of :meth:`delete_sub_devices`."""
        keys = iotda_ids(ids)
        opts = self._options("delete_sub_devices", options)
        timeout = opts.timeout

        async def send(chunk: list, no: int, attempt: int) -> Answer:
            ev = await self.request(env.DELETE_REQUEST, env.delete_paras(chunk), timeout=timeout)
            return Answer(
                success=[(d["device_id"], None) for d in ev.successful if d.get("device_id")],
                failed=[(f.device_id, None, f.error_code, f.error_msg) for f in ev.failed if f.device_id],
                event_id=ev.event_id,
            )

        return await self._batch("delete_sub_devices", keys, send, opts)

    def delete_sub_devices(self, ids: Any, **options: Unpack[BatchKwargs]) -> BatchResult:
        """Delete child devices of this gateway; one outcome row per requested id.

        Ids are checked (IoTDA id syntax, duplicates collapsed) before anything is sent.
        Chunks of ``chunk_size`` (at most 50) go out ``concurrency`` at a time (default
        ``max_in_flight``), each with its own ``event_id``, each answered within
        ``timeout`` (default the gateway's). A chunk whose answer never comes ends
        ``unknown`` (``romakit.Timeout`` / ``romakit.ConnectionLost``) and is not re-sent.

        Why not re-send: a delete is not idempotent in its *outcome*. If the unanswered
        request did reach the platform, the children are gone, and a second request would
        come back listing them as failed ("not found"): deleted devices reported failed.
        So requests in flight when the link drops end ``unknown``, never retried by
        default (:data:`MQTT_RETRY`: ``resend_unanswered=False``); a late answer, if one
        comes, shows in :meth:`events` as ``match == "late"``. Pass ``retry=`` to choose
        otherwise.

        Options (those of :meth:`adelete_sub_devices`): ``chunk_size``, ``concurrency``,
        ``timeout``, ``progress``, ``cancel``, ``retry``, and the engine's ``rollout``,
        ``names``, ``op_id``, ``parent_op_id``.
        """
        return _runner.run(self.adelete_sub_devices(ids, **options))

    # add ---------------------------------------------------------------------------------------
    @staticmethod
    def _check_add_specs(devices: Any) -> dict[str, dict[str, Any]]:
        if hasattr(devices, "to_dict") and not isinstance(devices, Mapping):  # a DataFrame
            devices = devices.to_dict("records")
        if isinstance(devices, Mapping) or isinstance(devices, (str, bytes)) or not isinstance(devices, Iterable):
            raise InputError(f"devices must be a list of dicts (node_id, product_id, ...), got {type(devices).__name__}")
        items = list(devices)
        if not items:
            raise InputError("no devices given")
        bad: list[str] = []
        specs: dict[str, dict[str, Any]] = {}
        for i, d in enumerate(items):
            if not isinstance(d, Mapping):
                bad.append(f"item {i}: not a dict ({type(d).__name__})")
                continue
            unknown = sorted(set(d) - _ADD_KEYS)
            node_id, pid, dev_id = d.get("node_id"), d.get("product_id"), d.get("device_id")
            if unknown:
                bad.append(f"item {i}: unknown key(s) {', '.join(map(repr, unknown))}")
            elif not isinstance(node_id, str) or not 1 <= len(node_id) <= 64:
                bad.append(f"item {i}: node_id {node_id!r} must be a string of 1..64 characters")
            elif pid is None or isinstance(pid, bool) or not isinstance(pid, (str, int)) or pid == "":
                bad.append(f"item {i}: product_id {pid!r} is missing or not a string/int")
            elif dev_id is not None and (not isinstance(dev_id, str) or not IOTDA_ID_RE.match(dev_id)):
                bad.append(f"item {i}: device_id {dev_id!r} is not a valid IoTDA device id")
            elif node_id in specs:
                bad.append(f"item {i}: node_id {node_id!r} given twice")
            else:
                spec = {k: v for k, v in d.items() if v is not None}
                spec["product_id"] = str(pid)
                specs[node_id] = spec
        if bad:
            more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise InputError(f"{len(bad)} of {len(items)} devices refused, nothing was sent: {'; '.join(bad[:10])}{more}")
        return specs

    async def aadd_sub_devices(self, devices: Any, **options: Unpack[BatchKwargs]) -> BatchResult:
        """Async twin of :meth:`add_sub_devices`."""
        specs = self._check_add_specs(devices)
        opts = self._options("add_sub_devices", options).merged(
            names={k: s["name"] for k, s in specs.items() if isinstance(s.get("name"), str)})
        timeout = opts.timeout

        async def send(chunk: list, no: int, attempt: int) -> Answer:
            by_dev = {specs[k]["device_id"]: k for k in chunk if specs[k].get("device_id")}
            ev = await self.request(env.ADD_REQUEST, env.add_paras(specs[k] for k in chunk), timeout=timeout)
            success = []
            for d in ev.successful:
                key = d.get("node_id") or by_dev.get(d.get("device_id"))
                if key:
                    success.append((key, d.get("name") if isinstance(d.get("name"), str) else None))
            failed = [(f.node_id or by_dev.get(f.device_id), None, f.error_code, f.error_msg)
                      for f in ev.failed if f.node_id or by_dev.get(f.device_id)]
            return Answer(success=success, failed=failed, event_id=ev.event_id)

        result = await self._batch("add_sub_devices", list(specs), send, opts)
        result.inputs = specs
        return result

    def add_sub_devices(self, devices: Any, **options: Unpack[BatchKwargs]) -> BatchResult:
        """Add child devices under this gateway; one row per device, keyed by ``node_id``.

        Each device is a dict with ``node_id`` and ``product_id`` (required) and optional
        ``device_id``, ``name``, ``description``, ``parent_device_id``, ``extension_info``;
        unknown keys are refused (a DataFrame of such columns works too). The ids the
        platform assigned are in :meth:`events` (the ``add_sub_device_response`` rows).
        """
        return _runner.run(self.aadd_sub_devices(devices, **options))

    # status ------------------------------------------------------------------------------------
    @staticmethod
    def _check_statuses(statuses: Any) -> dict[str, str]:
        if isinstance(statuses, Mapping):
            pairs = list(statuses.items())
        elif isinstance(statuses, Iterable) and not isinstance(statuses, (str, bytes)):
            pairs = []
            for i, item in enumerate(statuses):
                if not isinstance(item, Mapping) or set(item) - {"device_id", "status"}:
                    raise InputError(f"status item {i} must be a dict with device_id and status, got {item!r}")
                pairs.append((item.get("device_id"), item.get("status")))
        else:
            raise InputError(f"statuses must be a dict {{device_id: status}} or a list of dicts, got {type(statuses).__name__}")
        if not pairs:
            raise InputError("no statuses given")
        iotda_ids([d for d, _ in pairs])  # names bad ids
        out: dict[str, str] = {}
        bad: list[str] = []
        for dev, st in pairs:
            s = st.upper() if isinstance(st, str) else st
            if s not in ("ONLINE", "OFFLINE"):
                bad.append(f"{dev!r}: status {st!r} is not ONLINE or OFFLINE")
            elif out.get(dev, s) != s:
                bad.append(f"{dev!r}: given both ONLINE and OFFLINE")
            else:
                out[dev] = s
        if bad:
            raise InputError(f"{len(bad)} statuses refused, nothing was sent: {'; '.join(bad[:10])}")
        return out

    async def aupdate_sub_device_status(
        self, statuses: Mapping[str, str] | Sequence[Mapping[str, str]], **options: Unpack[BatchKwargs]
    ) -> BatchResult:
        """Async twin of :meth:`update_sub_device_status`."""
        wanted = self._check_statuses(statuses)
        opts = self._options("update_sub_device_status", options)
        timeout = opts.timeout

        async def send(chunk: list, no: int, attempt: int) -> Answer:
            ev = await self.request(env.STATUS_REQUEST, env.status_paras((k, wanted[k]) for k in chunk), timeout=timeout)
            return Answer(
                success=[(d["device_id"], None) for d in ev.successful if d.get("device_id")],
                failed=[(f.device_id, None, f.error_code, f.error_msg) for f in ev.failed if f.device_id],
                event_id=ev.event_id,
            )

        result = await self._batch("update_sub_device_status", list(wanted), send, opts)
        result.inputs = wanted
        return result

    def update_sub_device_status(
        self, statuses: Mapping[str, str] | Sequence[Mapping[str, str]], **options: Unpack[BatchKwargs]
    ) -> BatchResult:
        """Report children ONLINE or OFFLINE (``{device_id: status}`` or a list of
        ``{"device_id", "status"}`` dicts, case-insensitive); chunks of at most 100; one
        row per device."""
        return _runner.run(self.aupdate_sub_device_status(statuses, **options))

    # sync ----------------------------------------------------------------------------------------
    def sync_sub_devices(self, version: int | None = None) -> str:
        """Ask the platform for the child list (``sub_device_sync_request``); returns its event_id.

        The platform answers with add/delete notify events; they land in :meth:`events`
        (``match == "notify"``). Wait for them with ``gw.recorder.wait_for_event(...)``.
        """
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
            raise InputError(f"version must be an int >= 0 or None, got {version!r}")
        with self._lock:
            client = self._client if self._connected else None
        if client is None:
            raise MqttError(f"gateway {self.device_id} is not connected")
        eid = env.new_event_id()
        info = client.publish(self.up_topic, env.build(self.device_id, env.SYNC_REQUEST, env.sync_paras(version),
                                                       event_id=eid), qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise MqttError(f"sub_device_sync_request not published: {mqtt.error_string(info.rc)}")
        self._count("published")
        return eid


__all__ = ["Gateway", "MalformedAnswer", "MQTT_RETRY", "is_loopback"]  # is_loopback: romakit._net
