"""The IoTDA platform's side of ``$sub_device_manager``, played over any MQTT broker.

:class:`IotdaPlatform` is a paho-mqtt client that subscribes to every gateway's
``$oc/devices/{gateway}/sys/events/up`` and answers child-device requests on
``$oc/devices/{gateway}/sys/events/down`` with the request's ``event_id``, changing
the shared :class:`~romakit.sim.fleet.Fleet` as IoTDA would:

============================  =================================================
request ``event_type``        answer
============================  =================================================
``delete_sub_device_request``  ``delete_sub_device_response``, then ``delete_sub_device_notify``
``add_sub_device_request``     ``add_sub_device_response``, then ``add_sub_device_notify``
``sub_device_update_status``   ``sub_device_update_status_response``
``sub_device_sync_request``    ``add_sub_device_notify`` listing every current child
============================  =================================================

Choices where IoTDA's public documentation is silent (see the IoTDA reference):

* A request over the limit (more than 50 devices to add or delete, more than 100
  statuses) is answered, not ignored: every device in it fails with
  :data:`ERR_TOO_MANY`, and nothing changes. A clear refusal beats a 30 s timeout.
* Requests from a device the fleet does not know are ignored without a word, so that
  several sandboxes can share one external broker (Mosquitto) as long as their device
  ids (or ``topic_root``) differ. Malformed requests are logged and skipped.
* ``sub_device_sync_request`` always answers with the full child list and the current
  version, whatever version the gateway sent.
* The fault ``mqtt_drop_rate`` loses the platform's *answer*, not the request: the
  change is made, the gateway hears nothing (neither response nor notify). That is
  the case a client must report as ``unknown``.
* ``mqtt_duplicate_rate`` sends the response twice; ``mqtt_malformed_rate`` replaces
  it by a payload that is not JSON, or JSON missing ``successful_devices`` /
  ``failed_devices``, keeping the ``event_id`` where the payload has one. Notifies are
  never duplicated or malformed. ``mqtt_fail_ids`` apply to deletion only.
* ``mqtt_rate_limit`` plays the instance's message spec: a token bucket over every
  upstream message (one second's worth of burst, at least one message); a message over
  it is dropped before it is read: no answer, no change (``dropped`` counts them).
* The fault dice (:class:`~romakit.sim.faults.Dice`) roll three times per request
  (drop, duplicate, malformed) whatever the rates, so a run replays with the same seed.

Answers wait ``mqtt_delay_ms`` on a timer thread, never on paho's network thread, so
requests from many gateways are answered concurrently.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from romakit import wire
from romakit.sim import faults as trouble
from romakit.sim.faults import Dice, Faults, TokenBucket
from romakit.sim.iotda_messages import SERVICE_ID, device_info, envelope, failure, too_many
from romakit.sim.timer import Timer

log = logging.getLogger(__name__)

#: IoTDA's topic root for device topics (overridable per platform for shared brokers)
TOPIC_ROOT = "$oc/devices"
#: most devices one add/delete request may carry
MAX_DEVICES = wire.IOTDA_MAX_DELETE
#: most statuses one ``sub_device_update_status`` may carry
MAX_STATUSES = wire.IOTDA_MAX_STATUS
#: the sandbox's error code for a request over the limit (IoTDA's real one is undocumented)
ERR_TOO_MANY = "IOTDA.014050"
#: error message given to children in ``faults.mqtt_fail_ids``
FAIL_IDS_MSG = "deletion refused by the platform (sandbox fault mqtt_fail_ids)"

#: one handled request: (monotonic time, gateway id, event_type, event_id, number of devices)
Handled = tuple[float, str, str, str, int]


class IotdaPlatform:
    """Plays IoTDA's ``$sub_device_manager`` for ``fleet`` on the broker at ``host:port``.

    ``username``/``password`` are the broker login (the embedded broker's platform
    account; None for an anonymous broker such as the local Mosquitto). Faults are read
    from ``faults`` at every request. ``handled`` lists every request answered (or
    deliberately not answered), for tests; ``wait_handled(n)`` waits for the n-th.
    """

    def __init__(
        self,
        fleet: Any,
        faults: Faults,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        *,
        topic_root: str = TOPIC_ROOT,
        keepalive: int = 60,
    ) -> None:
        self.fleet = fleet
        self.faults = faults
        self.host = host
        self.port = port
        self.topic_root = topic_root.rstrip("/")
        self.keepalive = keepalive
        self.handled: list[Handled] = []
        self._handled_cv = threading.Condition()
        self._username = username
        self._password = password
        self._dice = Dice(faults)
        self._ready = threading.Event()
        #: how many times the platform got connected and subscribed
        self.sessions = 0
        self._sub_mid: int | None = None
        self._timer: Timer | None = None
        self._client: mqtt.Client | None = None
        self.client_id = f"romakit-platform-{secrets.token_hex(4)}"
        #: upstream messages dropped by ``mqtt_rate_limit``
        self.dropped = 0
        self._bucket = TokenBucket()

    def __repr__(self) -> str:  # never show the password
        return f"IotdaPlatform(host={self.host!r}, port={self.port!r}, username={self._username!r}, topic_root={self.topic_root!r})"

    @property
    def up_topic_filter(self) -> str:
        return f"{self.topic_root}/+/sys/events/up"

    def down_topic(self, gateway_id: str) -> str:
        return f"{self.topic_root}/{gateway_id}/sys/events/down"

    @property
    def ready(self) -> bool:
        """Connected and subscribed (False while paho reconnects)."""
        return self._ready.is_set()

    # -- life -------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; return once the subscription is acknowledged."""
        if self._client is not None:
            raise RuntimeError("platform already started")
        self._timer = Timer("romakit-iotda-platform-timer")
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        client.reconnect_delay_set(min_delay=1, max_delay=8)
        client.max_inflight_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(self.host, self.port, keepalive=self.keepalive)
        client.loop_start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(
                f"IoTDA platform simulator could not connect and subscribe to {self.host}:{self.port} within {timeout} s"
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect and stop the network and timer threads (pending delayed answers are lost)."""
        client, self._client = self._client, None
        if self._timer is not None:
            self._timer.stop(timeout)
            self._timer = None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._ready.clear()

    def __enter__(self) -> IotdaPlatform:
        if self._client is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 10.0, sessions: int = 1) -> bool:
        """Wait until connected and subscribed for the ``sessions``-th time; False on timeout.

        ``sessions`` counts successful (re)connections: after a broker restart, wait for
        ``platform.sessions + 1`` read before the restart.
        """
        with self._handled_cv:
            return self._handled_cv.wait_for(lambda: self._ready.is_set() and self.sessions >= sessions, timeout)

    def wait_handled(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` requests were handled; False on timeout."""
        with self._handled_cv:
            return self._handled_cv.wait_for(lambda: len(self.handled) >= count, timeout)

    # -- paho callbacks (network thread: never block) -----------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("IoTDA platform simulator refused by %s:%s: %s", self.host, self.port, reason_code)
            return
        result, mid = client.subscribe(self.up_topic_filter, qos=1)
        self._sub_mid = mid
        if result != mqtt.MQTT_ERR_SUCCESS:
            log.warning("IoTDA platform simulator could not subscribe: %s", mqtt.error_string(result))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if mid != self._sub_mid:
            return
        if any(rc.is_failure for rc in reason_codes):
            log.warning("IoTDA platform simulator subscription to %s refused", self.up_topic_filter)
            return
        with self._handled_cv:
            self.sessions += 1
            self._ready.set()
            self._handled_cv.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._ready.clear()
        if self._client is not None:
            log.info("IoTDA platform simulator lost the broker (%s); paho reconnects", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handle_message(msg.topic, msg.payload)
        except Exception:  # a bad request must never kill the network thread
            log.exception("IoTDA platform simulator failed on a message to %s", msg.topic)

    # -- requests ---------------------------------------------------------------------
    def _gateway_of(self, topic: str) -> str | None:
        prefix, suffix = f"{self.topic_root}/", "/sys/events/up"
        if not topic.startswith(prefix) or not topic.endswith(suffix):
            return None
        gw = topic[len(prefix) : -len(suffix)]
        return gw if gw and "/" not in gw else None

    def _handle_message(self, topic: str, payload: bytes) -> None:
        gw = self._gateway_of(topic)
        if gw is None:
            return
        if self.fleet.by_client_id(gw) is None:
            log.debug("request from %s, not in this fleet: ignored", gw)
            return
        if not self._admit():
            log.debug("message from %s over the instance's rate limit: dropped", gw)
            return
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            log.warning("malformed request from %s: not JSON; skipped", gw)
            return
        services = body.get("services") if isinstance(body, dict) else None
        if not isinstance(services, list):
            log.warning("malformed request from %s: no services list; skipped", gw)
            return
        for svc in services:
            try:
                self._handle_service(gw, svc)
            except Exception:
                log.exception("request from %s failed; skipped", gw)

    def _handle_service(self, gw: str, svc: Any) -> None:
        if not isinstance(svc, dict) or svc.get("service_id") != SERVICE_ID:
            return
        event_type = svc.get("event_type")
        handler = {
            "delete_sub_device_request": self._delete,
            "add_sub_device_request": self._add,
            "sub_device_update_status": self._update_status,
            "sub_device_sync_request": self._sync,
        }.get(event_type) if isinstance(event_type, str) else None
        if handler is None:
            log.debug("event_type %r from %s not handled", event_type, gw)
            return
        event_id = svc.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            event_id = str(uuid.uuid4())  # IoTDA makes one when the request has none
        paras = svc.get("paras")
        if paras is None and event_type == "sub_device_sync_request":
            paras = {}
        if not isinstance(paras, dict):
            log.warning("%s from %s (event_id %s) has no paras object; skipped", event_type, gw, event_id)
            return
        handler(gw, event_id, paras)

    def _list_para(self, gw: str, event_id: str, paras: dict[str, Any], key: str) -> list | None:
        items = paras.get(key)
        if not isinstance(items, list):
            log.warning("request %s from %s: paras.%s is not a list; skipped", event_id, gw, key)
            return None
        return items

    def _delete(self, gw: str, event_id: str, paras: dict[str, Any]) -> None:
        ids = self._list_para(gw, event_id, paras, "devices")
        if ids is None:
            return
        if len(ids) > MAX_DEVICES:
            failed = [failure(i, ERR_TOO_MANY, too_many(len(ids), MAX_DEVICES)) for i in ids]
            self._answer(gw, "delete_sub_device_request", event_id, len(ids), "delete_sub_device_response",
                         {"successful_devices": [], "failed_devices": failed})
            return
        refused = self.faults.mqtt_fail_ids
        code = self.faults.mqtt_fail_code
        to_delete = [i for i in ids if not (isinstance(i, str) and i in refused)]
        with self.fleet.lock:
            before = {i: self.fleet.by_client_id(i) for i in to_delete if isinstance(i, str)}
            deleted, fleet_failed = self.fleet.delete_children(gw, to_delete)
            version = self.fleet.version_of(gw)
        failures = {str(c): failure(c, ec, em) for c, ec, em in fleet_failed}
        deleted_set = set(deleted)
        failed = []
        for i in ids:  # request order; items may be anything a gateway sent
            if isinstance(i, str) and i in refused:
                failed.append(failure(i, code, FAIL_IDS_MSG))
            elif not (isinstance(i, str) and i in deleted_set) and str(i) in failures:
                failed.append(failures.pop(str(i)))
        notify = None
        if deleted:
            notify = ("delete_sub_device_notify", {
                "devices": [
                    {"parent_device_id": gw, "device_id": c, "node_id": (before.get(c) or {}).get("node_id")}
                    for c in deleted
                ],
                "version": version,
            })
        self._answer(gw, "delete_sub_device_request", event_id, len(ids), "delete_sub_device_response",
                     {"successful_devices": list(deleted), "failed_devices": failed}, notify)

    def _add(self, gw: str, event_id: str, paras: dict[str, Any]) -> None:
        specs = self._list_para(gw, event_id, paras, "devices")
        if specs is None:
            return
        if len(specs) > MAX_DEVICES:
            msg = too_many(len(specs), MAX_DEVICES)
            failed = [
                {"node_id": s.get("node_id") if isinstance(s, dict) else None,
                 "product_id": s.get("product_id") if isinstance(s, dict) else None,
                 "error_code": ERR_TOO_MANY, "error_msg": msg}
                for s in specs
            ]
            self._answer(gw, "add_sub_device_request", event_id, len(specs), "add_sub_device_response",
                         {"successful_devices": [], "failed_devices": failed})
            return
        with self.fleet.lock:
            ok, failed = self.fleet.add_children(gw, specs)
            version = self.fleet.version_of(gw)
            infos = [device_info(d, gw, self.fleet.extension_of(d["client_id"]))
                     for d in (self.fleet.by_client_id(s["device_id"]) for s in ok) if d]
        notify = ("add_sub_device_notify", {"devices": infos, "version": version}) if ok else None
        self._answer(gw, "add_sub_device_request", event_id, len(specs), "add_sub_device_response",
                     {"successful_devices": ok, "failed_devices": failed}, notify)

    def _update_status(self, gw: str, event_id: str, paras: dict[str, Any]) -> None:
        items = self._list_para(gw, event_id, paras, "device_statuses")
        if items is None:
            return
        if len(items) > MAX_STATUSES:
            msg = too_many(len(items), MAX_STATUSES)
            failed = [failure(s.get("device_id") if isinstance(s, dict) else None, ERR_TOO_MANY, msg) for s in items]
            ok: list = []
        else:
            ok, failed = self.fleet.set_child_status(gw, items)
        self._answer(gw, "sub_device_update_status", event_id, len(items), "sub_device_update_status_response",
                     {"successful_devices": ok, "failed_devices": failed})

    def _sync(self, gw: str, event_id: str, paras: dict[str, Any]) -> None:
        with self.fleet.lock:
            dev = self.fleet.by_client_id(gw)
            if dev is None or dev.get("node_type") != 1:
                log.info("sync request from %s, not a gateway: ignored", gw)
                return
            infos = [device_info(ch, gw, self.fleet.extension_of(ch["client_id"])) for ch in self.fleet.children_of(dev["id"])]
            version = self.fleet.version_of(gw)
        # the sync answer is a notify: it carries the request's event_id so it can be matched
        self._answer(gw, "sub_device_sync_request", event_id, 0, "add_sub_device_notify",
                     {"devices": infos, "version": version})

    def _admit(self) -> bool:
        """Take a token from the instance's bucket (``mqtt_rate_limit``); False: drop it."""
        rate = self.faults.mqtt_rate_limit
        if not rate or self._bucket.take(rate, time.monotonic()):
            return True
        with self._handled_cv:
            self.dropped += 1
        return False

    # -- answers ----------------------------------------------------------------------
    def _answer(
        self,
        gw: str,
        request_type: str,
        event_id: str,
        n_devices: int,
        response_type: str,
        paras: dict[str, Any],
        notify: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        f = self.faults
        drop, duplicate, malformed = (roll < rate for roll, rate in zip(
            self._dice.rolls(3), (f.mqtt_drop_rate, f.mqtt_duplicate_rate, f.mqtt_malformed_rate), strict=True))
        delay_s = max(0.0, float(self.faults.mqtt_delay_ms or 0.0)) / 1000.0
        payloads: list[bytes] = []
        if not drop:
            response = envelope(gw, response_type, event_id, paras)
            body = trouble.malformed(response, self._dice) if malformed else json.dumps(response).encode()
            payloads.append(body)
            if duplicate:
                payloads.append(body)
            if notify is not None:
                payloads.append(json.dumps(envelope(gw, notify[0], str(uuid.uuid4()), notify[1])).encode())
        with self._handled_cv:
            self.handled.append((time.monotonic(), gw, request_type, event_id, n_devices))
            self._handled_cv.notify_all()
        if not payloads:
            log.debug("answer to %s %s dropped (fault)", request_type, event_id)
            return
        topic = self.down_topic(gw)
        if delay_s <= 0:
            self._publish(topic, payloads)
        elif self._timer is not None:
            self._timer.call_later(delay_s, lambda: self._publish(topic, payloads))

    def _publish(self, topic: str, payloads: list[bytes]) -> None:
        client = self._client
        if client is None:
            return
        for body in payloads:
            info = client.publish(topic, body, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning("platform answer to %s not sent: %s", topic, mqtt.error_string(info.rc))
