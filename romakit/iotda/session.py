"""One gateway's MQTT connection on paho-mqtt 2: login, TLS, handshake, reconnects.

:class:`Session` owns the paho client. :meth:`Session.connect` connects, starts paho's
network thread and waits (with a timeout) for CONNACK and the SUBACK of the down topic,
on events set by paho's callbacks. A refused first login disconnects inside
``on_connect`` (paho then never retries it) and raises :class:`ConnectRefused` with the
MQTT 3.1.1 code.

Reconnects are romakit's own, not paho's (``reconnect_on_failure=False``): IoTDA keeps
one connection per device, so a drop may mean another client logged in as this gateway
(the field gateway itself, say), and reconnecting would knock it off in turn, forever.
After a drop the session asks ``is_taken()`` (the inventory: is the device ONLINE
while we are not?); without an inventory, a second drop within :data:`FLAP_S` of
reconnecting counts as the same. Either way it gives up, names it ("another client
logged in as gw-0042") and stays down; otherwise it reconnects with back-off.

Transports: TCP (1883, TLS on 8883) or WebSocket (``transport="websockets"``, wss on
443 for networks that open only 443), either through an HTTP or SOCKS proxy
(``proxy="http://host:3128"``, ``"socks5://host:1080"``; PySocks).

What the session hears it hands on through its :class:`Hooks`, all on paho's thread:
``on_message(payload, topic)`` for the down topic, ``on_up()`` when the link is up,
``on_down(why)`` when it drops or is closed. Nothing in a paho callback blocks or raises.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from romakit.errors import ConnectRefused, MqttError
from romakit.iotda import auth
from romakit.iotda import envelope as env
from romakit.iotda.correlator import call_on
from romakit.iotda.settings import GatewaySettings

log = logging.getLogger("romakit.iotda")

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
_UNTRUSTED_HINT = (" (the broker's certificate is not trusted: pass ca_file= with the CA it chains to."
                   " For a real IoTDA instance that is the CA certificate Huawei Cloud publishes for device"
                   " access in your region (IoTDA console > Access Details, or the device SDK's bundled"
                   " root.pem); ca_file is trusted on top of the system store. For the sandbox it is"
                   " sb.describe()['mqtt']['ca_file'])")
#: a link that drops again within this many seconds of reconnecting was most likely taken
#: over by another client logged in as the same device (used when there is no inventory)
FLAP_S = 30.0


class _PahoNoise(logging.Filter):
    """Drops paho 2.2's ERROR "Client is not connected" that its loop logs once after
    every deliberate disconnect; real link losses are reported by ``on_disconnect``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_paho_log = logging.getLogger("romakit.iotda.paho")
_paho_log.addFilter(_PahoNoise())


def refusal(reason: Any) -> ConnectRefused:
    """The :class:`ConnectRefused` of a failed CONNACK reason code (3.1.1 code 1..5)."""
    name = reason.getName() if hasattr(reason, "getName") else str(reason)
    code = _CONNACK_CODES.get(name, int(getattr(reason, "value", 0) or 0))
    return ConnectRefused(code, f"{name}: {_CONNACK_MEANING.get(code, 'refused')}")


def tls_context(ca_file: str | None, certfile: str | None = None, keyfile: str | None = None) -> ssl.SSLContext:
    """A client context that verifies chain and host name: the OS trust store
    (:func:`romakit.tls.client_context`), plus ``ca_file`` (IoTDA's CA; several joined by
    ``os.pathsep``) on top, never replacing it; ``certfile``/``keyfile``: the device's X.509 login."""
    from romakit.tls import client_context

    ctx = client_context(ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def proxy_args(proxy: str) -> dict[str, Any]:
    """paho's ``proxy_set`` arguments for ``http://[user:pw@]host:port`` or ``socks5://...``."""
    import socks  # PySocks, which paho's proxy_set runs on

    parts = urlsplit(proxy)
    kinds = {"http": socks.HTTP, "socks5": socks.SOCKS5, "socks5h": socks.SOCKS5, "socks4": socks.SOCKS4}
    if parts.scheme not in kinds or not parts.hostname or not parts.port:
        raise ValueError(f"proxy must be http://host:port or socks5://host:port, got {parts.scheme}://{parts.hostname}")
    out: dict[str, Any] = {"proxy_type": kinds[parts.scheme], "proxy_addr": parts.hostname,
                           "proxy_port": parts.port, "proxy_rdns": parts.scheme != "socks5"}
    if parts.username:
        out["proxy_username"], out["proxy_password"] = unquote(parts.username), unquote(parts.password or "")
    return out


@dataclass(frozen=True)
class Hooks:
    """What a :class:`Session` tells its gateway, all on paho's thread: ``on_message(payload,
    topic)`` for the down topic, ``on_up()``, ``on_down(why)``; after a drop it asks
    ``is_taken()`` (None: no inventory to ask) and says ``on_taken(why)`` when it gives up."""

    on_message: Callable[[bytes | bytearray, str], None]
    on_up: Callable[[], None]
    on_down: Callable[[str], object]
    is_taken: Callable[[], bool | None] | None = None
    on_taken: Callable[[str], None] | None = None


class Session:
    """The MQTT link of one gateway device (see the module's docstring)."""

    def __init__(self, settings: GatewaySettings, secret: auth.Secret | None, hooks: Hooks) -> None:
        self.settings = s = settings
        self.host, self.port, self.device_id = s.host, s.port, s.device_id
        self._secret = secret
        self.down_topic = env.down_topic(s.device_id)
        self._on_message_cb, self._on_up, self._on_down = hooks.on_message, hooks.on_up, hooks.on_down
        self._is_taken, self._on_taken = hooks.is_taken, hooks.on_taken
        #: why the session gave up after being knocked off (None while it has not)
        self.taken_over: str | None = None
        #: when this session was last closed by romakit (monotonic), or None
        self.closed_at: float | None = None
        self._up_since: float | None = None
        self._reconnected_at: float | None = None
        self._backoff = 0.5
        self._stop = threading.Event()
        self._gave_up = threading.Event()

        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None  # set while connecting and while open
        self._handshake = False  # True from connect() until its CONNACK (or failure)
        self._handshake_failure: Exception | None = None
        self._connack = threading.Event()
        self._suback = threading.Event()
        self._sub_mid: int | None = None
        self._connected = False
        self._ever_connected = False
        self._conn_event = threading.Event()
        self._conn_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._counts: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"Session({self.host}:{self.port}, device_id={self.device_id!r}, connected={self._connected})"

    # -- state ------------------------------------------------------------------------------
    @property
    def client(self) -> mqtt.Client | None:
        """The paho client while the session is open (None before connect and after close)."""
        return self._client

    @property
    def is_open(self) -> bool:
        """True between a successful :meth:`connect` and :meth:`close` (reconnects included)."""
        return self._client is not None and not self._handshake

    @property
    def connected(self) -> bool:
        """True while the MQTT link is up (False during paho's reconnects)."""
        return self._connected

    @property
    def counts(self) -> dict[str, int]:
        """``reconnects`` and ``refused`` (reconnects the broker refused)."""
        with self._lock:
            return {k: int(self._counts.get(k, 0)) for k in ("reconnects", "refused")}

    def wait_taken_over(self, timeout: float) -> bool:
        """Block until the session gave up its link to another client; False after ``timeout``."""
        return self._gave_up.wait(timeout)

    def wait_connected(self, timeout: float) -> bool:
        """Block until the link is up (after a reconnect, say); False after ``timeout`` s."""
        return self._conn_event.wait(timeout)

    async def wait_up(self, timeout: float) -> bool:
        """Wait on the running loop until the link is up; False after ``timeout`` s or on close."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            if self._connected:
                return True
            if self._client is None:
                return False
            self._conn_waiters.append((loop, fut))
        try:
            done, _ = await asyncio.wait({fut}, timeout=max(timeout, 0.0))
        finally:
            if not fut.done():
                with self._lock:
                    self._conn_waiters = [(lp, f) for lp, f in self._conn_waiters if f is not fut]
        return bool(done) and fut.result() is True

    def _wake_waiters(self, up: bool) -> None:
        with self._lock:
            waiters, self._conn_waiters = self._conn_waiters, []
        for loop, fut in waiters:
            call_on(loop, fut, up)

    # -- life -------------------------------------------------------------------------------
    def _new_client(self) -> mqtt.Client:
        s = self.settings
        login = auth.login(self.device_id, self._secret or auth.Secret("x509"), sig=s.sig)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=login.client_id,
                             protocol=mqtt.MQTTv311, clean_session=True, transport=s.transport,
                             reconnect_on_failure=False)
        client.username_pw_set(login.username, login.password if self._secret is not None else None)
        del login
        if s.transport == "websockets":
            client.ws_set_options(path=s.ws_path)
        if s.proxy:
            client.proxy_set(**proxy_args(s.proxy))
        if s.tls:
            client.tls_set_context(tls_context(s.ca_file, s.certfile, s.keyfile))
        client.max_inflight_messages_set(s.mqtt_inflight)
        client.connect_timeout = s.connect_timeout
        client.enable_logger(_paho_log)  # paho logs no passwords or payloads
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_subscribe = self._paho_subscribe
        client.on_message = self._paho_message
        return client

    def connect(self) -> None:
        """Connect, wait for CONNACK and the SUBACK of the down topic; raise on refusal.

        Raises :class:`ConnectRefused` (with the MQTT 3.1.1 CONNACK code 1..5) when the
        broker refuses the login, :class:`MqttError` when it cannot be reached in time.
        Does nothing when already open.
        """
        with self._lock:
            if self._client is not None:
                return
            client = self._new_client()
            self._client, self._handshake, self._handshake_failure = client, True, None
            self.taken_over, self._reconnected_at, self._backoff = None, None, 0.5
            self._stop.clear()
            self._gave_up.clear()
            self._connack.clear()
            self._suback.clear()
        try:
            client.connect(self.host, self.port, keepalive=self.settings.keepalive)  # TCP and TLS, then CONNECT
        except (OSError, ValueError) as e:  # refused, unreachable, TLS verification...
            hint = _UNTRUSTED_HINT if isinstance(e, ssl.SSLCertVerificationError) else ""
            err = MqttError(f"could not connect to {self.host}:{self.port}: {type(e).__name__}: {e}{hint}")
            self._end_handshake(client, err)
            raise err from None
        wait = self.settings.connect_timeout
        deadline = time.monotonic() + wait
        client.loop_start()
        self._connack.wait(wait)
        self._end_handshake(client, MqttError(f"no CONNACK from {self.host}:{self.port} within {wait} s"))
        failure = self._handshake_failure
        if failure is not None:
            if not isinstance(failure, ConnectRefused):  # a refusal disconnected in on_connect
                client.disconnect()  # paho's thread ends instead of reconnecting
            client.loop_stop()
            self._link_closed("the gateway could not connect")  # if a CONNACK raced the timeout
            raise failure
        if not self._suback.wait(max(deadline - time.monotonic(), 1.0)):
            log.warning("no SUBACK for %s within %s s; relying on the broker's implicit delivery",
                        self.down_topic, wait)

    def _end_handshake(self, client: mqtt.Client, failure: Exception) -> bool:
        """End ``client``'s handshake with ``failure`` if it is still on (the session is
        closed again and ``connect()`` raises it); False if it had already ended."""
        with self._lock:
            if not (self._handshake and client is self._client):
                return False
            self._handshake, self._handshake_failure, self._client = False, failure, None
        self._connack.set()
        return True

    def close(self) -> None:
        """Disconnect and stop paho's thread; ``on_down`` fails whatever still waits."""
        self._stop.set()
        self.closed_at = time.monotonic()  # the platform sees a disconnect a moment later
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception:  # already gone: nothing to say goodbye to
                log.debug("disconnect of %s failed", self.device_id, exc_info=True)
            client.loop_stop()
        self._link_closed("the gateway was closed")

    def _link_closed(self, why: str) -> None:
        self._on_down(why)
        with self._lock:
            self._connected = False
            self._conn_event.clear()
        self._wake_waiters(False)

    def publish(self, topic: str, payload: bytes) -> str | None:
        """Publish at QoS 1; None when paho took it, else why not.

        ``MQTT_ERR_NO_CONN`` counts as taken: the link dropped under us, paho queued the
        message and sends it after reconnecting (``on_down`` ends the wait for its answer).
        """
        client = self._client
        if client is None:
            return "not connected"
        try:
            rc = client.publish(topic, payload, qos=1).rc
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        if rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return None
        return mqtt.error_string(rc)

    # -- paho callbacks: network thread, never block, never raise ------------------------
    def _paho_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            if reason_code.is_failure:
                self._refused(client, reason_code)
                return
            if client is not self._client:  # given up or closed meanwhile
                return
            result, mid = client.subscribe(self.down_topic, qos=1)  # here: again after every reconnect
            self._sub_mid = mid
            if result != mqtt.MQTT_ERR_SUCCESS:
                log.warning("subscribe to %s failed: %s", self.down_topic, mqtt.error_string(result))
            self._on_up()  # before `connected`: whoever sees the link up may send at once
            with self._lock:
                self._handshake = False
                self._up_since, self._backoff = time.monotonic(), 0.5
                if self._ever_connected:
                    self._counts["reconnects"] += 1
                    self._reconnected_at = self._up_since
                    log.info("gateway %s reconnected to %s:%s", self.device_id, self.host, self.port)
                self._ever_connected = True
                self._connected = True
                self._conn_event.set()
            self._wake_waiters(True)
            self._connack.set()
        except Exception:
            log.exception("romakit gateway %s: error in on_connect (ignored)", self.device_id)

    def _refused(self, client: mqtt.Client, reason_code: Any) -> None:
        if self._end_handshake(client, refusal(reason_code)):
            client.disconnect()  # paho does not retry a login that was just refused
            return
        with self._lock:
            if client is not self._client:
                return
            self._counts["refused"] += 1
        # on_disconnect follows and tries again with back-off; close() stops it
        log.warning("broker %s:%s refused the reconnect of %s: %s", self.host, self.port, self.device_id, reason_code)

    def _paho_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if mid != self._sub_mid:
            return
        if any(getattr(rc, "is_failure", False) for rc in reason_codes):
            log.warning("broker refused the subscription to %s; relying on its implicit delivery", self.down_topic)
        self._suback.set()

    def _paho_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            if self._end_handshake(client, MqttError(
                    f"{self.host}:{self.port} closed the connection before CONNACK: {reason_code}")):
                return
            with self._lock:
                if client is not self._client:  # closing, or given up inside connect()
                    return
                was_up, self._connected, self._up_since = self._connected, False, None
                self._conn_event.clear()
            if was_up:
                self._on_down(f"the MQTT link dropped ({reason_code})")
                log.warning("gateway %s lost the link to %s:%s (%s)", self.device_id, self.host, self.port, reason_code)
            threading.Thread(target=self._after_drop, args=(client, was_up), daemon=True,
                             name=f"romakit-reconnect-{self.device_id}").start()
        except Exception:
            log.exception("romakit gateway %s: error in on_disconnect (ignored)", self.device_id)

    # -- after a drop: give up if taken over, else reconnect (own thread) ------------------
    def _taken(self, was_up: bool) -> str | None:
        """Why this drop looks like another client logged in as this device, or None."""
        who = f"another client logged in as {self.device_id}"
        if was_up and self._is_taken is not None:
            try:
                taken = self._is_taken()
            except Exception as e:  # the inventory is unreachable: fall back on the timing
                log.warning("could not read %s's status from the inventory: %s", self.device_id, e)
                taken = None
            if taken:
                return f"{who} (IoTDA shows it ONLINE while this connection is closed; one connection per device)"
            if taken is False:
                return None
        since = self._reconnected_at
        if was_up and since is not None and time.monotonic() - since < FLAP_S:
            return (f"{who}, most likely: the link dropped again {time.monotonic() - since:.0f} s after "
                    "reconnecting (IoTDA keeps one connection per device)")
        return None

    def _after_drop(self, client: mqtt.Client, was_up: bool) -> None:
        client.loop_stop()
        why = self._taken(was_up)
        if why is not None:
            with self._lock:
                if client is not self._client:
                    return
                self.taken_over, self._client = why, None
            self._stop.set()
            log.warning("gateway %s gives up the link: %s; not reconnecting (connect() again to take over)",
                        self.device_id, why)
            self._link_closed(why)
            if self._on_taken is not None:
                self._on_taken(why)
            self._gave_up.set()
            return
        while not self._stop.wait(self._backoff):
            self._backoff = min(self._backoff * 2, 30.0)
            if client is not self._client:
                return
            try:
                client.reconnect()
            except (OSError, ValueError) as e:
                log.info("reconnect of %s to %s:%s failed: %s", self.device_id, self.host, self.port, e)
                continue
            client.loop_start()
            return

    def _paho_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic != self.down_topic:
                log.debug("message on %s ignored (not %s)", msg.topic, self.down_topic)
                return
            self._on_message_cb(msg.payload, msg.topic)
        except Exception:  # a bad message must never kill the network thread
            log.exception("romakit gateway %s: error handling a message on %s (ignored)", self.device_id, msg.topic)


__all__ = ["Hooks", "Session", "refusal", "tls_context"]
