"""A field gateway for the sandbox: the real device, logged in as itself and staying so.

``sb.field_gateway("gw-0042")`` connects as that gateway and, like a device SDK,
reconnects whenever it is dropped (after ``reconnect_s``). With it running, IoTDA's
inventory shows the gateway ONLINE, and a client that logs in as gw-0042 knocks it off
(one connection per device), then gets knocked off by its reconnect in turn: the fight
romakit's takeover check and knock-off detection are there to avoid.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt

from romakit.sim.mqtt_login import iotda_client_id, iotda_password, iotda_timestamp


class FieldGateway:
    """A paho client logged in as ``device_id`` that reconnects by itself."""

    def __init__(self, host: str, port: int, device_id: str, secret: str, *, reconnect_s: float = 1.0) -> None:
        self.host, self.port, self.device_id = host, port, device_id
        ts = iotda_timestamp()
        # sig 1: a client id other than romakit's, as a device SDK of another make would send
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=iotda_client_id(device_id, ts, 1),
                                   protocol=mqtt.MQTTv311, clean_session=True)
        self._client.username_pw_set(device_id, iotda_password(secret, ts))
        self._client.reconnect_delay_set(min_delay=max(1, int(reconnect_s)), max_delay=max(1, int(reconnect_s)))
        self._up = threading.Condition()
        #: how many times it got connected (the first login included)
        self.logins = 0
        self.drops = 0
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    def __repr__(self) -> str:
        return f"FieldGateway({self.device_id!r}, logins={self.logins}, drops={self.drops})"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._up:
            if not rc.is_failure:
                self.logins += 1
            self._up.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._up:
            self.drops += 1
            self._up.notify_all()

    def start(self, timeout: float = 10.0) -> FieldGateway:
        """Connect; return once logged in."""
        self._client.connect_async(self.host, self.port, keepalive=60)
        self._client.loop_start()
        if not self.wait_logins(1, timeout):
            self.stop()
            raise TimeoutError(f"field gateway {self.device_id} could not log in within {timeout} s")
        return self

    def wait_logins(self, n: int, timeout: float) -> bool:
        """Wait until it logged in ``n`` times (reconnects count); False on timeout."""
        with self._up:
            return self._up.wait_for(lambda: self.logins >= n, timeout)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> FieldGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["FieldGateway"]
