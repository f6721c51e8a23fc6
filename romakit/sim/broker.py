"""An embedded MQTT broker that logs devices in the way Huawei Cloud IoTDA does.

Built on amqtt 0.12.1 (pinned), running its own asyncio loop in a background thread
on a loopback port. These things differ from amqtt as shipped; each is small, lives
in this file (the login and topic rules themselves in :mod:`romakit.sim.mqtt_login`)
and is guarded by ``tests/sim/test_sim_mqtt.py``:

* **``$oc/`` publishes.** amqtt refuses any client PUBLISH to a topic starting with
  ``$`` and drops the client (``[MQTT-4.7.2-1]`` in ``Broker._handle_message_delivery``).
  IoTDA's device topics all start with ``$oc/devices/``. :class:`IotdaBroker` lets
  ``$oc/`` topics through by running amqtt's own delivery steps without that one check;
  every other topic still goes through amqtt's method unchanged.
* **CONNACK codes.** amqtt answers every refusal by an auth plugin with 5 (not
  authorised). IoTDA distinguishes 2 (bad client id), 4 (bad username or password)
  and 5. :class:`IotdaBroker` decides the login right after the CONNECT packet, and
  refuses with the exact code the same way amqtt refuses a bad protocol level (write
  CONNACK, close, raise ``MQTTError``). The auth plugin makes the same decision again,
  so a login can never slip through if the override stops applying.
* **Refused logins stay harmless.** amqtt deletes the existing session of a
  clean-session client id *before* authenticating, so a refused CONNECT reusing a live
  device's client id would wipe that device's subscriptions. The deletion waits until
  the login is accepted; if the older connection is still open it is closed (amqtt would
  leave it open without subscriptions; IoTDA keeps one connection per device).
* **Implicit system topics.** IoTDA delivers ``$oc/devices/{id}/sys/events/down`` to a
  device without any SUBSCRIBE. The broker subscribes each device to exactly that topic
  filter on connect. A client that also subscribes to that exact filter gets one copy
  (amqtt keeps one subscription per client and filter); a client that subscribes to an
  overlapping wildcard such as ``$oc/devices/{id}/sys/#`` gets two.
* **One connection per device.** IoTDA allows a device one connection: a login as a
  device closes that device's older connection whatever its client id (amqtt only
  replaces a session with the same client id). :meth:`EmbeddedBroker.is_online` says
  whether a device holds a connection now (the sandbox's IoTDA REST ``status``).
* **X.509 logins.** A device with a registered certificate fingerprint
  (:class:`romakit.sim.certs.DeviceCertificates`) logs in over TLS with that client
  certificate; its password is not checked, a secret alone is refused, another
  certificate is refused with CONNACK 4.
* **WebSocket.** ``ws=True`` adds an MQTT-over-WebSocket listener (amqtt's ``ws``
  listener, ``ws_port``) and, with TLS, a ``wss`` one (``wss_port``).
* **TLS.** ``EmbeddedBroker(..., tls=True)`` adds a second listener that speaks MQTT over
  TLS (amqtt's own ``ssl`` listener) with a certificate for loopback made at start-up
  by a throwaway CA (:class:`romakit.sim.tls.SandboxTls`); its files are deleted on
  ``stop()`` and kept across ``restart()``, so clients holding ``ca_file`` reconnect.
  The plain listener stays (the platform simulator and loopback clients use it).
* **Stopping.** amqtt's ``shutdown()`` closes the listener last and can hang for good
  when a PUBACK arrives while it stops a client's handler (seen in tests: the reader
  task never reports stopping). :meth:`IotdaBroker.close` frees the port first, gives
  ``shutdown()`` a short grace and then aborts the connections left, so ``restart()``
  can bind the same port again.

The ACL (an amqtt topic plugin): a device may publish, subscribe and receive only
under ``$oc/devices/{its id}/``; the platform account may do anything. It uses the
identity accepted at login (``session.iotda_login``), not ``session.username``, which
amqtt overwrites from any later CONNECT that reuses a persistent session's client id. A refused
publish is dropped (and logged) without closing the connection, as amqtt does; a refused
subscription gets return code 0x80 in its SUBACK.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import MQTTError
from amqtt.events import BrokerEvents
from amqtt.mqtt.connack import (
    ConnackPacket,
)
from amqtt.session import Session

from romakit.sim import mqtt_login
from romakit.sim.mqtt_login import FleetLike, IotdaAuthenticator
from romakit.sim.tls import SandboxTls

log = logging.getLogger(__name__)

#: the amqtt version whose private methods :class:`IotdaBroker` overrides
AMQTT_VERSION = "0.12.1"
#: topics under this prefix may be published by clients (amqtt refuses other ``$`` topics)
IOTDA_TOPIC_PREFIX = "$oc/"
#: set while IotdaBroker._initialize_client_session runs: session deletions wait for the login check
_DEFERRED_DELETES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("deferred_deletes", default=None)

class IotdaBroker(Broker):
    """amqtt's broker with IoTDA's ``$oc/`` topics, exact CONNACK codes and implicit sys topics.

    Overrides three private methods of amqtt 0.12.1 (``_initialize_client_session``,
    ``_delete_session`` and ``_handle_message_delivery``) and calls a few more;
    ``tests/sim/test_sim_mqtt.py`` checks their signatures.
    """

    def __init__(self, config: dict[str, Any], authenticator: IotdaAuthenticator, *, implicit_sys_topics: bool = True) -> None:
        super().__init__(config)
        self.authenticator = authenticator
        self.implicit_sys_topics = implicit_sys_topics
        self._transports: set[asyncio.BaseTransport] = set()
        #: device id -> the session that holds its one connection (change it under ``presence``)
        self.online: dict[str, Session] = {}
        #: notified whenever ``online`` changes (for waiters in other threads)
        self.presence = threading.Condition()

    async def _handle_client_session(self, reader: Any, writer: Any, client_session: Session, *args: Any) -> None:
        try:
            await super()._handle_client_session(reader, writer, client_session, *args)
        finally:
            login = getattr(client_session, "iotda_login", None)
            with self.presence:
                if login is not None and self.online.get(login) is client_session:
                    del self.online[login]
                self.presence.notify_all()

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str) -> None:
        # remember every client connection, so close() can cut them even if amqtt's shutdown hangs
        self._transports.add(writer.transport)
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            self._transports.discard(writer.transport)

    async def close(self, timeout: float) -> None:
        """Release the port at once, give amqtt's shutdown ``timeout`` s, then cut what is left.

        amqtt's own ``shutdown()`` closes the listener last and can hang on a client
        connection with messages in flight; the port must be free for a restart anyway.
        """
        with self.presence:  # going down: no device holds a connection to this broker any more
            self.online.clear()
            self.presence.notify_all()
        for server in self._servers.values():
            if server.instance is not None:
                server.instance.close()
        try:
            await asyncio.wait_for(self.shutdown(), timeout)
        except Exception as exc:  # TimeoutError included: a stuck shutdown must not keep the port
            log.warning("amqtt shutdown did not finish cleanly (%s); cutting the remaining connections", type(exc).__name__)
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _initialize_client_session(self, reader: Any, writer: Any, remote_address: str, remote_port: int) -> Any:
        # amqtt deletes the old session of a clean-session client id before any login check;
        # hold that deletion back, so a refused CONNECT cannot wipe a live device's session
        token = _DEFERRED_DELETES.set([])
        try:
            handler, session = await super()._initialize_client_session(reader, writer, remote_address, remote_port)
            deferred = _DEFERRED_DELETES.get() or []
        finally:
            _DEFERRED_DELETES.reset(token)
        ssl_object = writer.get_ssl_info()
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        session.iotda_peer_cert = peer
        decision = self.authenticator.check_login(
            session.client_id, session.username, session.password, session.keep_alive, peer
        )
        if not decision.accepted:
            # the way amqtt refuses a bad protocol level in init_from_connect
            log.info("refused MQTT login of %r: %s (CONNACK %d)", session.username, decision.reason, decision.code)
            await ConnackPacket.build(0, decision.code).to_stream(writer)
            await writer.close()
            raise MQTTError(f"login refused: {decision.reason}")
        session.iotda_login = session.username  # the identity the ACL trusts
        if not self.authenticator.is_platform(session.username):
            # one connection per device: the newer login wins, whatever its client id
            with self.presence:
                self.online[session.username] = session
                self.presence.notify_all()
            for cid, (old, _h) in list(self._sessions.items()):
                if (old is not session and getattr(old, "iotda_login", None) == session.username
                        and old.transitions.is_connected()):
                    log.info("device %s logged in again: closing its older connection", session.username)
                    await self._cleanup_session(cid)
                    if cid in deferred:
                        deferred.remove(cid)
        for client_id in deferred:
            old = self._sessions.get(client_id, (None, None))[0]
            if old is not None and old is not session and old.transitions.is_connected():
                # IoTDA keeps one connection per client id: the newer login wins
                log.info("client id %s logged in again: closing its older connection", client_id)
                await self._cleanup_session(client_id)
            else:
                await super()._delete_session(client_id)
        if self.implicit_sys_topics and not self.authenticator.is_platform(session.username):
            await self.add_subscription((f"$oc/devices/{session.username}/sys/events/down", 1), session)
        return handler, session

    async def _delete_session(self, client_id: str) -> None:
        deferred = _DEFERRED_DELETES.get()
        if deferred is not None:
            deferred.append(client_id)
            return
        await super()._delete_session(client_id)

    async def _handle_message_delivery(self, client_session: Session, handler: Any, wait_deliver: asyncio.Future[Any]) -> bool:
        app_message = wait_deliver.result()
        topic = getattr(app_message, "topic", None) or ""
        if not topic.startswith(IOTDA_TOPIC_PREFIX) or "#" in topic or "+" in topic:
            return await super()._handle_message_delivery(client_session, handler, wait_deliver)
        # amqtt's own steps, without the [MQTT-4.7.2-1] refusal of '$' topics
        await self.plugins_manager.fire_event(
            BrokerEvents.MESSAGE_RECEIVED, client_id=client_session.client_id, message=app_message
        )
        if not await self._topic_filtering(client_session, topic=topic, action=Action.PUBLISH):
            log.info("%s may not publish to %s; message dropped", client_session.username, topic)
            return True
        await self.plugins_manager.fire_event(
            BrokerEvents.MESSAGE_BROADCAST, client_id=client_session.client_id, message=app_message
        )
        # IoTDA keeps no retained messages: the retain flag is ignored on $oc/ topics
        await self._broadcast_message(client_session, topic, app_message.data)
        return True


class EmbeddedBroker:
    """An :class:`IotdaBroker` on a loopback port, run by its own event loop in a thread.

    ``EmbeddedBroker(fleet)`` makes an :class:`IotdaAuthenticator` with a random platform
    password; pass an authenticator instead to choose it. ``start()`` returns once the
    port accepts connections; ``port`` is the bound port (a free one when 0 was asked).
    With ``tls=True`` a second listener speaks MQTT over TLS on ``tls_port``, with a
    certificate that ``ca_file`` (made at start, deleted at stop) verifies.
    """

    def __init__(
        self,
        fleet_or_authenticator: FleetLike | IotdaAuthenticator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        implicit_sys_topics: bool = True,
        tls: bool = False,
        tls_port: int = 0,
        ws: bool = False,
        ws_port: int = 0,
        wss_port: int = 0,
        certificates: Any = None,
    ) -> None:
        if isinstance(fleet_or_authenticator, IotdaAuthenticator):
            self.authenticator = fleet_or_authenticator
        else:
            self.authenticator = IotdaAuthenticator(fleet_or_authenticator, certificates=certificates)
        if certificates is not None:
            self.authenticator.certificates = certificates
        self.ws = bool(ws)
        self._asked_ws = (ws_port, wss_port)
        self._ws_ports: dict[str, int] = {}
        self.host = host
        self._asked_port = port
        self._port: int | None = None
        self.tls = bool(tls)
        self._asked_tls_port = tls_port
        self._tls_port: int | None = None
        self._tls_files: SandboxTls | None = None
        self.implicit_sys_topics = implicit_sys_topics
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: IotdaBroker | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    def __repr__(self) -> str:
        tls = f", tls_port={self._tls_port!r}" if self.tls else ""
        return f"EmbeddedBroker(host={self.host!r}, port={self._port!r}{tls}, running={self.running})"

    # -- facts ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("broker not started")
        return self._port

    @property
    def tls_port(self) -> int | None:
        """The MQTT-over-TLS port (None without ``tls=True``)."""
        if not self.tls:
            return None
        if self._tls_port is None:
            raise RuntimeError("broker not started")
        return self._tls_port

    @property
    def ws_port(self) -> int | None:
        """The MQTT-over-WebSocket port (None without ``ws=True``)."""
        return self._ws_ports.get("ws")

    @property
    def wss_port(self) -> int | None:
        """The MQTT-over-secure-WebSocket port (``ws=True`` and ``tls=True``), else None."""
        return self._ws_ports.get("wss")

    def is_online(self, device_id: str) -> bool:
        """Whether ``device_id`` holds a connection now (IoTDA allows it one)."""
        broker = self._broker
        return broker is not None and device_id in broker.online

    def wait_offline(self, device_id: str, timeout: float = 5.0) -> bool:
        """Wait until ``device_id`` holds no connection (a closed one is let go asynchronously)."""
        broker = self._broker
        if broker is None:
            return True
        with broker.presence:
            return broker.presence.wait_for(lambda: device_id not in broker.online, timeout)

    @property
    def ca_file(self) -> str | None:
        """Path of the CA certificate (PEM) that verifies the TLS listener; None without TLS
        or once stopped. A public certificate: no key is ever handed out."""
        if self._tls_files is None or self._tls_files.closed:
            return None
        return str(self._tls_files.ca_file)

    @property
    def platform_username(self) -> str:
        return self.authenticator.platform_username

    @property
    def platform_password(self) -> str:
        return self.authenticator.platform_password

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- life -------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Start the broker thread; return when the listener accepts connections."""
        if self.running:
            raise RuntimeError("broker already running")
        if self.tls and self._tls_files is None:
            self._tls_files = SandboxTls([self.host])
        try:
            self._launch(
                self._port if self._port is not None else self._asked_port,
                self._tls_port if self._tls_port is not None else self._asked_tls_port,
                timeout, retry_s=0.0,
            )
        except BaseException:
            self._drop_tls_files()
            raise

    def _launch(self, port: int, tls_port: int, timeout: float, retry_s: float) -> None:
        self._started.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, args=(port, tls_port, retry_s),
                                        name="romakit-mqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            self._halt(timeout)
            raise TimeoutError(f"embedded MQTT broker did not start within {timeout} s")
        if self._start_error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise RuntimeError(f"embedded MQTT broker failed to start: {self._start_error}") from self._start_error

    def _drop_tls_files(self) -> None:
        files, self._tls_files = self._tls_files, None
        if files is not None:
            files.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the broker down (clients are disconnected), join its thread, delete the TLS files."""
        try:
            self._halt(timeout)
        finally:
            self._drop_tls_files()

    def _halt(self, timeout: float) -> None:
        loop, thread = self._loop, self._thread
        if thread is None or loop is None:
            return
        if self._broker is not None and loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._broker.close(max(0.1, min(1.0, timeout / 2))), loop)
            try:
                fut.result(timeout)
            except Exception:  # a failed shutdown must not keep the thread alive
                log.exception("embedded MQTT broker shutdown failed")
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("embedded MQTT broker thread did not end within %s s", timeout)
        self._thread = None
        self._broker = None

    def restart(self, timeout: float = 10.0) -> None:
        """Stop, then start again on the same port(s) (clients see the connection drop).

        The TLS certificate and its ``ca_file`` stay the same across a restart."""
        self._halt(timeout)
        if self._port is None:
            raise RuntimeError("broker was never started")
        if self.tls and self._tls_files is None:  # restarted after a stop(): new files
            self._tls_files = SandboxTls([self.host])
        # the old listener may hold the port for a moment: retry binding briefly
        self._launch(self._port, self._tls_port or 0, timeout, retry_s=min(timeout, 3.0))

    def __enter__(self) -> EmbeddedBroker:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- thread -----------------------------------------------------------------------
    def _run(self, port: int, tls_port: int, retry_s: float) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            try:
                self._broker = loop.run_until_complete(self._start_broker(port, tls_port, retry_s))
            except BaseException as exc:  # reported to start()
                self._start_error = exc
                self._started.set()
                return
            loop.call_soon(self._started.set)  # set once run_forever runs: stop() can then reach the loop
            loop.run_forever()
        finally:
            self._cancel_leftovers(loop)
            loop.close()

    async def _start_broker(self, port: int, tls_port: int, retry_s: float) -> IotdaBroker:
        plugin_cfg = {"authenticator": self.authenticator}
        listeners: dict[str, dict[str, Any]] = {"default": {"type": "tcp", "bind": f"{self.host}:{port}"}}
        ws_port, wss_port = (self._ws_ports.get("ws", self._asked_ws[0]), self._ws_ports.get("wss", self._asked_ws[1]))
        if self.ws:
            listeners["ws"] = {"type": "ws", "bind": f"{self.host}:{ws_port}"}
        if self.tls:
            if self._tls_files is None:
                raise RuntimeError("TLS listener asked for without its certificate files")
            tls_cfg: dict[str, Any] = {"ssl": True, "certfile": str(self._tls_files.cert_file),
                                       "keyfile": str(self._tls_files.key_file)}
            certs = self.authenticator.certificates
            if certs is not None:  # ask for client certificates (X.509 devices), from the device CA
                tls_cfg["cafile"] = str(certs.ca_file)
            listeners["tls"] = {"type": "tcp", "bind": f"{self.host}:{tls_port}", **tls_cfg}
            if self.ws:
                listeners["wss"] = {"type": "ws", "bind": f"{self.host}:{wss_port}", **tls_cfg}
        config = {
            "listeners": listeners,
            "plugins": {
                f"{mqtt_login.__name__}.IotdaAuthPlugin": plugin_cfg,
                f"{mqtt_login.__name__}.IotdaTopicPlugin": plugin_cfg,
            },
        }
        deadline = time.monotonic() + retry_s
        while True:
            broker = IotdaBroker(config, self.authenticator, implicit_sys_topics=self.implicit_sys_topics)
            try:
                await broker.start()
                break
            except Exception as exc:
                # a listener bound before another failed must not keep its port
                for server in broker._servers.values():
                    if server.instance is not None:
                        server.instance.close()
                if (port == 0 and tls_port == 0 and not self._ws_ports) or time.monotonic() > deadline or "in use" not in str(exc).lower():
                    raise
                await asyncio.sleep(0.05)
        # amqtt only exposes the bound sockets through its private _servers mapping
        self._port = broker._servers["default"].instance.sockets[0].getsockname()[1]
        if self.tls:
            self._tls_port = broker._servers["tls"].instance.sockets[0].getsockname()[1]
        for name in ("ws", "wss"):
            if name in broker._servers:
                self._ws_ports[name] = list(broker._servers[name].instance.sockets)[0].getsockname()[1]
        return broker

    @staticmethod
    def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
