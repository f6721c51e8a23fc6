"""An IoTDA gateway that manages its child devices in batches: :class:`AsyncGateway`
and its synchronous twin :class:`Gateway` (``rk.Gateway``).

It logs in as one gateway device and speaks ``$sub_device_manager``: delete and add
children, update their status, ask for a sync. Every batch goes through the batch
pipeline (:func:`romakit.batch.run_operation`): chunks of at most 50 (100 for status), a
window of ``max_in_flight`` requests, each message at the gateway's pace (a
:class:`~romakit.engine.limit.Pace`), one row per device.

The parts: :mod:`~romakit.iotda.settings` (checked once), :mod:`~romakit.iotda.checks`
(input), :mod:`~romakit.iotda.chunks` (each chunk's request and rows),
:mod:`~romakit.iotda.session` (the MQTT link), :mod:`~romakit.iotda.correlator` (answers
to requests, by ``event_id``), :mod:`~romakit.iotda.field` (takeover, the child list),
:mod:`~romakit.iotda.envelope` (the messages).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

from romakit import outcomes as oc
from romakit._runner import REQUIRED, constructor_signature, forward, mirror, run, twin
from romakit.batch import run_operation
from romakit.engine import BatchKwargs, BatchOptions, CancelToken, RetryPolicy, SendChunk, limit
from romakit.engine.client import Ids
from romakit.engine.limit import Pace
from romakit.errors import ClientClosed, InputError, MqttError, TransportError, closed_message
from romakit.ids import iotda_ids
from romakit.iotda import auth, checks, chunks, restore
from romakit.iotda import envelope as env
from romakit.iotda import field as field_side
from romakit.iotda.correlator import Correlator, MalformedAnswer
from romakit.iotda.field import FieldSide, children_frame
from romakit.iotda.recorder import EventRecorder
from romakit.iotda.session import Hooks, Session
from romakit.iotda.settings import GatewayOptions, GatewaySettings, Inventory, Shown
from romakit.operations import GATEWAY
from romakit.results import BatchResult
from romakit.store.journal import Journal

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

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

#: the keys of :attr:`AsyncGateway.stats`, in order
STATS = ("published", "answered", "timeouts", "link_lost", "duplicates", "late", "unmatched",
         "malformed", "notifies", "other", "reconnects", "refused", "peak_pending", "pending")


class AsyncGateway:
    """One IoTDA gateway connection; manages its children over ``$sub_device_manager``.

    ``async with gw:`` connects, waits for CONNACK and the subscription, and disconnects on
    exit (or await :meth:`connect` / :meth:`close`). Its operations are awaitable on any
    loop: the futures of their requests live on the loop that awaits them.

    ``tls`` defaults to on for port 8883 and off otherwise; TLS always verifies the
    server (``ca_file`` or the system CAs). Plain MQTT to a host that is not loopback is
    refused unless ``allow_insecure=True``: the password would cross the network in
    clear. ``timeout`` bounds the wait for each answer (IoTDA answers within 30 s),
    ``max_in_flight`` the requests awaiting answers.

    **Pace**: ``rate`` upstream messages per second (default 10, safe on the smallest
    edition, which drops what exceeds its spec; 50 is the per-device ceiling), halved
    when answers time out and won back as they come (``adaptive_pace=False``: fixed).

    **Takeover**: IoTDA allows a device one connection, so logging in as a gateway that
    is online knocks the field gateway off. With an ``inventory`` (``rk.IotdaClient``)
    :meth:`connect` reads the gateway's status first and refuses an ONLINE one
    (:class:`~romakit.TakeoverRefused`) unless ``takeover=True``. Knocked off mid-run
    (another client logged in as this gateway), the gateway gives up instead of
    fighting back: waiting requests end ``unknown``, the rest ``skipped``, and
    ``taken_over`` says what happened.

    **Transports**: ``transport="websockets"`` (``ws_path``) for networks that open only
    443 (IoTDA's wss port; TLS is on by default for 8883 and 443); ``proxy=`` an HTTP or
    SOCKS proxy URL. ``ca_file`` is trusted on top of the system store. X.509 login:
    ``certfile=`` and ``keyfile=`` (TLS; ``secret`` may then be None).

    After a drop that is not a takeover the gateway reconnects by itself, with back-off.
    With ``sig=0`` (the default) IoTDA does not check its hour stamp; with ``sig=1`` a
    reconnect hours later may be refused (``stats["refused"]``): close and connect again.
    """

    kind = GATEWAY
    # the settings, read-only (``takeover`` is settable on the gateway)
    host = Shown[str]("The broker's host.")
    port = Shown[int]("The broker's port.")
    device_id = Shown[str]("This gateway's IoTDA device id.")
    tls = Shown[bool]("Whether the link uses TLS (verified).")
    ca_file = Shown[str | None]("The CA file TLS trusts on top of the system store (None: the system's).")
    keepalive = Shown[int]("MQTT keepalive, in seconds.")
    timeout = Shown[float]("Seconds to wait for each answer.")
    connect_timeout = Shown[float]("Seconds to wait for CONNACK.")
    max_in_flight = Shown[int]("Default requests awaiting answers at once.")
    rate = Shown[float | None]("Upstream messages per second at most (None: no limit).")
    sig = Shown[int]("0: IoTDA does not check the login's hour stamp; 1: it does.")
    transport = Shown[str]("'tcp' or 'websockets'.")
    proxy = Shown[str | None]("The HTTP or SOCKS proxy the link goes through, or None.")
    inventory = Shown[Inventory | None]("The IoTDA inventory (rk.IotdaClient) the takeover check reads, or None.")

    def __init__(self, host: str, port: int, device_id: str, secret: str | auth.Secret | None,
                 **options: Unpack[GatewayOptions]) -> None:
        self.settings = s = GatewaySettings(host, port, device_id, **options)
        if secret is None and s.certfile is None:
            raise InputError("give the device secret, or certfile= and keyfile= for an X.509 login")
        secret = auth.Secret(secret) if secret is not None else None
        self.takeover = s.takeover
        #: where this gateway's operations are journaled (None given: ROMAKIT_JOURNAL, else the default file)
        self.journal = Journal.of(s.journal)
        #: the pace of this gateway's upstream messages (``pace.current``: now)
        self.pace = Pace(s.rate, adaptive=s.adaptive_pace)
        self.up_topic, self.down_topic = env.up_topic(device_id), env.down_topic(device_id)
        #: every downstream event seen (see :meth:`events`)
        self.recorder = EventRecorder()
        self._correlator = Correlator(self.recorder, name=device_id)
        self._field = FieldSide(s, recorder=self.recorder, pace=self.pace, count=self._correlator.count,
                                up_topic=self.up_topic)
        self._session = Session(s, secret, Hooks(
            on_message=self._correlator.receive, on_up=self._correlator.link_up, on_down=self._correlator.link_down,
            is_taken=self._field.online_elsewhere if s.inventory is not None else None, on_taken=self._field.taken,
        ))
        self._correlator.on_notify = self._field.keep_notify
        self._closed_why: str | None = None  # closed for good (its sandbox was closed): why

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(host={self.host!r}, port={self.port}, device_id={self.device_id!r}, "
            f"tls={self.tls}, connected={self.connected})"
        )

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
        return self._session.connected

    @property
    def stats(self) -> dict[str, int]:
        """Counters: published requests, answered (matched), timeouts, link_lost (given up as
        the link dropped), duplicates, late, unmatched, malformed, notifies, other, reconnects,
        refused (reconnects refused), peak_pending (most awaiting answers at once), pending."""
        counts = {**self._correlator.stats(), **self._session.counts}
        return {k: counts[k] for k in STATS}

    def events(self) -> pd.DataFrame:
        """Every downstream event this gateway saw, as a pandas DataFrame (one row per event):
        ``received_at``, ``event_type``, ``event_id``, ``match`` (matched, duplicate, late,
        unmatched, malformed, notify, other), ``event_time``, ``version``, ``n_devices``,
        ``n_successful``, ``n_failed``, ``device_ids``, ``problem``."""
        return self.recorder.frame()

    @property
    def session(self) -> Session:
        """The MQTT connection underneath."""
        return self._session

    @property
    def taken_over(self) -> str | None:
        """Why the gateway gave up its link (another client logged in as it), or None."""
        return self._session.taken_over

    def check_takeover(self, grace: float = 0.0) -> str | None:
        """The gateway's status in the inventory (None without one); raises
        :class:`~romakit.TakeoverRefused` for an ONLINE gateway unless ``takeover=True``.

        One read, unless ``grace`` (seconds; :meth:`connect` passes
        ``OWN_DISCONNECT_GRACE``): then an ONLINE status within ``grace`` of romakit closing
        this gateway's own session is read again until it clears or the grace is over,
        since the platform lets go of a connection a moment late (a retry right after a run)."""
        return self._field.check_takeover(self.takeover, self._session.closed_at, grace)

    async def sync_sub_devices(self, version: int | None = None, *, wait: bool = False,
                               timeout: float | None = None) -> Any:
        """Ask the platform for the child list (``sub_device_sync_request``).

        Returns its event_id; with ``wait=True`` waits (up to ``timeout``, default the
        gateway's) for the ``add_sub_device_notify`` that answers it and returns the
        children it lists, as dicts (``device_id``, ``node_id``, ``name``, ``status``, ...).
        The notifies also land in :meth:`events` (``match == "notify"``).
        """
        self._check_usable()
        return await self._field.sync(self._session, version, wait=wait, timeout=timeout)

    async def children(self) -> pd.DataFrame:
        """This gateway's children as a DataFrame: from the inventory (IoTDA REST,
        ``rk.IotdaClient.devices(gateway_id=...)``) when the gateway has one, else from its
        own sync, logging in first if needed (the gateway stays connected). Columns include
        ``device_id``, ``node_id``, ``status``."""
        self._check_usable()
        if self.inventory is not None:
            return await asyncio.to_thread(self.inventory.devices, gateway_id=self.device_id)
        if not self._session.is_open:
            await self.connect()
        return children_frame(await self.sync_sub_devices(wait=True))

    async def connect(self) -> AsyncGateway:
        """Connect, wait for CONNACK and the SUBACK of the down topic; raise on refusal.

        Raises :class:`~romakit.ConnectRefused` (with the MQTT 3.1.1 CONNACK code 1..5) when
        the broker refuses the login, :class:`~romakit.MqttError` when it cannot be reached
        in time, :class:`~romakit.TakeoverRefused` when the inventory shows the gateway
        ONLINE (see ``takeover``). The waiting happens in a worker thread, not on the loop.
        """
        self._check_usable()
        if not self._session.is_open:
            await asyncio.to_thread(self.check_takeover, field_side.OWN_DISCONNECT_GRACE)
        await asyncio.to_thread(self._session.connect)
        return self

    def _check_usable(self) -> None:
        """Refuse a gateway closed for good (:meth:`close` with a ``reason``)."""
        if self._closed_why is not None:
            raise ClientClosed(closed_message(f"Gateway {self.device_id}", self._closed_why))

    @property
    def closed(self) -> bool:
        """True once closed for good (``close(reason=...)``, e.g. by its sandbox's close):
        it connects no more. A plain :meth:`close` only disconnects (``connect()`` again works)."""
        return self._closed_why is not None

    async def close(self, *, reason: str | None = None) -> None:
        """Disconnect and stop paho's thread; requests still waiting end ``unknown``.
        ``connect()`` logs in again, unless ``reason`` is given (e.g. "its sandbox was
        closed"): then the gateway is closed for good and using it raises
        :class:`~romakit.errors.ClientClosed` naming the reason."""
        if reason is not None and self._closed_why is None:
            self._closed_why = reason
        await asyncio.to_thread(self._session.close)

    async def __aenter__(self) -> AsyncGateway:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until the link is up (after a reconnect, say); False after ``timeout`` s."""
        return await self._session.wait_up(timeout)

    async def request(self, event_type: str, paras: Mapping[str, Any], *, timeout: float | None = None) -> env.DownEvent:
        """Publish one ``$sub_device_manager`` request and return its matched answer.

        Waits up to ``timeout`` for the link to be up (else ``TransportError(sent=False)``),
        then up to ``timeout`` for the answer (:meth:`Correlator.answer
        <romakit.iotda.correlator.Correlator.answer>` says what ends the wait). A request
        the link lost is given up at once even though paho re-sends it after reconnecting:
        whatever answer follows is recorded as ``late``.
        """
        if event_type not in env.RESPONSE_OF:
            raise InputError(f"{event_type!r} is not a request that gets an answer; known: {sorted(env.RESPONSE_OF)}")
        timeout = self.timeout if timeout is None else float(timeout)
        eid = env.new_event_id()
        payload = env.build(self.device_id, event_type, paras, event_id=eid)
        ticket = await self.pace.acquire()  # the gateway's pace: every message, adaptive
        signal = limit.NEUTRAL
        try:
            answer = await self._exchange(event_type, eid, payload, timeout)
            signal = limit.OK
            return answer
        except TransportError as e:
            if e.code == oc.TIMEOUT:
                signal = limit.LOST
            raise
        finally:
            self.pace.release(ticket, signal)

    async def _exchange(self, event_type: str, eid: str, payload: bytes, timeout: float) -> env.DownEvent:
        """Publish ``payload`` once the link is up (within ``timeout``) and wait for its answer
        (within ``timeout`` again)."""
        loop = asyncio.get_running_loop()
        deadline, answer_type = loop.time() + timeout, env.RESPONSE_OF[event_type]
        while True:
            if not self._session.is_open:
                why = self._session.taken_over or "closed"
                raise TransportError(f"gateway {self.device_id} is not connected ({why}); {event_type} not sent",
                                     sent=False, code=oc.CONNECT_ERROR, event_id=eid)
            future = self._correlator.expect(eid, event_type, answer_type, loop)  # before publishing
            if future is not None:
                break
            if not await self._session.wait_up(deadline - loop.time()):
                raise TransportError(f"gateway {self.device_id} not connected within {timeout} s; {event_type} not sent",
                                     sent=False, code=oc.CONNECT_ERROR, event_id=eid)
        problem = self._session.publish(self.up_topic, payload)
        if problem is not None:
            self._correlator.withdraw(eid)
            raise TransportError(f"{event_type} not published: {problem}", sent=False, code=oc.CONNECT_ERROR,
                                 event_id=eid)
        self._correlator.count("published")
        try:
            return await self._correlator.answer(eid, future, timeout, event_type)
        except TransportError as e:
            if e.code == oc.CONNECTION_LOST and self._session.taken_over:
                raise TransportError(f"{event_type} {eid}: {self._session.taken_over} before the answer came",
                                     sent=True, code=oc.CONNECTION_LOST, event_id=eid) from None
            raise

    # -- batch operations: besides their own arguments, each takes the batch options
    # (:class:`~romakit.engine.BatchOptions`), checked before anything is sent --------------

    async def _batch(self, operation: str, keys: list[str], send: SendChunk, options: BatchOptions,
                     **extra: Any) -> BatchResult:
        """The batch pipeline (:func:`romakit.batch.run_operation`) with this gateway's defaults
        (``extra``: its snapshot or reconcile readers). The pace is the gateway's own (every
        message, adaptive), not the engine's."""
        self._check_usable()
        if not self._session.is_open:
            raise MqttError(f"gateway {self.device_id} is not connected: use `with gw:` or gw.connect() first")
        # knocked off mid-run: the rest ends skipped, with the reason
        with self._field.running(options.cancel or CancelToken()) as cancel:
            return await run_operation(self, operation, keys, send, dataclasses.replace(options, cancel=cancel),
                                       journal=self.journal, concurrency=self.max_in_flight, retry=MQTT_RETRY, **extra)

    async def delete_sub_devices(self, ids: Ids, *, keep_snapshot: bool = True,
                                 **options: Unpack[BatchKwargs]) -> BatchResult:
        """Delete child devices of this gateway; one outcome row per requested id.

        Ids are checked (IoTDA id syntax, duplicates collapsed) before anything is sent.
        Chunks of ``chunk_size`` (at most 50) go out ``concurrency`` at a time (default
        ``max_in_flight``), each with its own ``event_id``, each answered within
        ``timeout`` (default the gateway's). A chunk whose answer never comes ends
        ``unknown`` (``romakit.Timeout`` / ``romakit.ConnectionLost``) and is not re-sent
        (:data:`MQTT_RETRY`: had it reached the platform, a second delete would report the
        deleted children failed, "not found"); a late answer, if one comes, shows in
        :meth:`events` as ``match == "late"``. Pass ``retry=`` to choose otherwise.

        Each chunk's children are read just before it is sent (the inventory's ShowDevice,
        else the gateway's sub-device sync, once a run) and kept in the journal:
        ``rk.restore`` re-adds them from there (``keep_snapshot=False``: no read, nothing
        to restore from).

        Options: ``chunk_size``, ``concurrency``, ``timeout``, ``progress``, ``cancel``,
        ``retry``, and the engine's ``rollout``, ``names``, ``op_id``, ``parent_op_id``.
        """
        keys = iotda_ids(ids)
        opts = checks.batch_options("delete_sub_devices", options)
        return await self._batch("delete_sub_devices", keys, chunks.delete(self.request, opts.timeout), opts,
                                 snapshot=restore.reader(self) if keep_snapshot is not False else None)

    async def restore_sub_devices(self, ids: Ids, *, snapshot: Mapping[str, Mapping[str, Any]],
                                  **options: Unpack[BatchKwargs]) -> BatchResult:
        """Re-add deleted children of this gateway from their ``snapshot`` records
        (``rk.restore`` reads them from the deletion's journal) with their own device id,
        node id, product, name, description and extension info; chunks of at most 50, one
        row per child id. A child listed under the gateway already is not added again
        (``success``, settled by the read)."""
        records = restore.checked(iotda_ids(ids), snapshot, self.device_id)
        opts = checks.batch_options("restore_sub_devices", options).merged(
            names={k: str(r["name"]) for k, r in records.items() if r.get("name")})
        result = await self._batch("restore_sub_devices", list(records), restore.sender(self.request, records, opts.timeout),
                                   opts, done=restore.present(self, records))
        result.inputs = records
        return result

    async def add_sub_devices(self, devices: Any, **options: Unpack[BatchKwargs]) -> BatchResult:
        """Add child devices under this gateway; one row per device, keyed by ``node_id``.

        Each device is a dict with ``node_id`` and ``product_id`` (required) and optional
        ``device_id``, ``name``, ``description``, ``parent_device_id``, ``extension_info``;
        unknown keys are refused (a DataFrame of such columns works too). The ids the
        platform assigned are in :meth:`events` (the ``add_sub_device_response`` rows).
        """
        specs = checks.add_specs(devices)
        opts = checks.batch_options("add_sub_devices", options).merged(
            names={k: s["name"] for k, s in specs.items() if isinstance(s.get("name"), str)})

        result = await self._batch("add_sub_devices", list(specs), chunks.add(self.request, specs, opts.timeout), opts)
        result.inputs = specs
        return result

    async def update_sub_device_status(
        self, statuses: Mapping[str, str] | Sequence[Mapping[str, str]], **options: Unpack[BatchKwargs]
    ) -> BatchResult:
        """Report children ONLINE or OFFLINE (``{device_id: status}`` or a list of
        ``{"device_id", "status"}`` dicts, case-insensitive); chunks of at most 100; one
        row per device."""
        wanted = checks.statuses(statuses)
        opts = checks.batch_options("update_sub_device_status", options)
        send = chunks.status(self.request, wanted, opts.timeout)
        result = await self._batch("update_sub_device_status", list(wanted), send, opts)
        result.inputs = wanted
        return result

#: the settings an AsyncGateway shows read-only
SHOWN = tuple(n for n, v in vars(AsyncGateway).items() if isinstance(v, Shown))


@mirror(AsyncGateway, *SHOWN, "settings", "journal", "pace", "taken_over", "up_topic", "down_topic", "recorder",
        "connected", "stats", "closed", docs={"journal": "Where this gateway's operations are journaled.","settings": "The gateway's settings (GatewaySettings).", "up_topic": "The topic requests go to.",
              "pace": "The pace now (pace.current: messages/s after slow-downs).",
              "down_topic": "The topic answers and notifies come on.",
              "recorder": "Every downstream event seen (see events()).", "target": "This gateway's device id."})
class Gateway:
    """Synchronous IoTDA gateway (see :class:`AsyncGateway` for the arguments).

    Use it as a context manager (``with gw:`` connects, waits for CONNACK and the
    subscription, and disconnects on exit) or call :meth:`connect` / :meth:`close`. Works
    the same in scripts and in Jupyter: the async core (:attr:`aio`) runs on romakit's
    own background loop; every method and setting shown here is the core's.
    """

    kind = GATEWAY
    target = forward("target", "What the batch operations act on: this gateway's device id.")
    # the core's methods, run to their end on romakit's loop
    identity, events, check_takeover = twin(AsyncGateway.identity), twin(AsyncGateway.events), \
        twin(AsyncGateway.check_takeover)
    close, wait_connected, request = twin(AsyncGateway.close), twin(AsyncGateway.wait_connected), \
        twin(AsyncGateway.request)
    delete_sub_devices, add_sub_devices = twin(AsyncGateway.delete_sub_devices), twin(AsyncGateway.add_sub_devices)
    restore_sub_devices = twin(AsyncGateway.restore_sub_devices)
    update_sub_device_status = twin(AsyncGateway.update_sub_device_status)
    sync_sub_devices, children = twin(AsyncGateway.sync_sub_devices), twin(AsyncGateway.children)

    def __init__(self, host: str, port: int, device_id: str, secret: str | auth.Secret | None,
                 **options: Unpack[GatewayOptions]) -> None:
        self._async = AsyncGateway(host, port, device_id, secret, **options)

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncGateway", "Gateway", 1)

    @property
    def takeover(self) -> bool:
        """Whether connect() may take the place of an ONLINE gateway (settable)."""
        return self._async.takeover

    @takeover.setter
    def takeover(self, value: bool) -> None:
        self._async.takeover = bool(value)

    @property
    def aio(self) -> AsyncGateway:
        """The async gateway underneath (its operations are awaitable on any loop)."""
        return self._async

    def connect(self) -> Gateway:
        run(self._async.connect())
        return self

    connect.__doc__ = AsyncGateway.connect.__doc__

    def __enter__(self) -> Gateway:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()


AsyncGateway.__init__.__signature__ = Gateway.__init__.__signature__ = constructor_signature(  # type: ignore[attr-defined]
    [(n, REQUIRED) for n in ("host", "port", "device_id", "secret")], GatewaySettings)

__all__ = ["MQTT_RETRY", "SHOWN", "STATS", "AsyncGateway", "Gateway", "MalformedAnswer"]
