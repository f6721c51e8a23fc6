"""The sandbox's MQTT side: a broker plus the IoTDA platform simulator attached to it.

Either the embedded amqtt broker (:mod:`romakit.sim.broker`, IoTDA logins enforced)
with the platform logged in on its platform account, or an external broker such as
the local Mosquitto (anonymous) with only the platform simulator attached.

With ``tls=True`` the embedded broker also listens for MQTT over TLS (``tls_port``),
with a certificate made at start-up that ``ca_file`` verifies; the platform simulator
stays on the plain loopback listener.
"""

from __future__ import annotations

from typing import Any

from romakit.sim.broker import EmbeddedBroker
from romakit.sim.faults import Faults
from romakit.sim.iotda_platform import TOPIC_ROOT, IotdaPlatform


class MqttSide:
    """Start/stop the broker (unless ``external`` names one) and the IoTDA platform.

    ``external=(host, port)`` attaches the platform to that broker anonymously and
    ignores ``host``/``port``. ``host``, ``port`` are where clients connect once
    started; ``broker`` is the :class:`EmbeddedBroker` or None; ``platform`` the
    :class:`IotdaPlatform`. ``tls=True`` (embedded broker only) adds the TLS listener:
    ``tls_port`` and ``ca_file`` once started.
    """

    def __init__(
        self,
        fleet: Any,
        faults: Faults,
        host: str = "127.0.0.1",
        port: int = 0,
        external: tuple[str, int] | None = None,
        *,
        topic_root: str = TOPIC_ROOT,
        tls: bool = False,
        tls_port: int = 0,
        ws: bool = True,
        certificates: Any = None,
    ) -> None:
        if tls and external is not None:
            raise ValueError("tls=True needs the embedded broker; an external broker brings its own TLS set-up")
        self.fleet = fleet
        self.faults = faults
        self.host = host
        self.port = port
        self.external = external
        self.topic_root = topic_root
        self.tls = bool(tls)
        self.tls_port: int | None = tls_port if tls else None
        self.ws, self.certificates = ws, certificates
        self.broker: EmbeddedBroker | None = None
        self.platform: IotdaPlatform | None = None

    def __repr__(self) -> str:
        kind = "external" if self.external else "embedded"
        tls = f", tls_port={self.tls_port!r}" if self.tls else ""
        return f"MqttSide({kind}, host={self.host!r}, port={self.port!r}{tls})"

    @property
    def ca_file(self) -> str | None:
        """The CA certificate (PEM path) that verifies the TLS listener, while it runs."""
        return self.broker.ca_file if self.broker is not None else None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker (if embedded), then the platform; undo both on failure."""
        try:
            if self.external is None:
                self.broker = EmbeddedBroker(self.fleet, self.host, self.port, tls=self.tls,
                                             tls_port=self.tls_port or 0, ws=self.ws,
                                             certificates=self.certificates)
                self.broker.start(timeout)
                self.port = self.broker.port
                self.tls_port = self.broker.tls_port
                self.platform = IotdaPlatform(
                    self.fleet, self.faults, self.host, self.port,
                    self.broker.platform_username, self.broker.platform_password,
                    topic_root=self.topic_root,
                )
            else:
                self.host, self.port = self.external
                self.platform = IotdaPlatform(self.fleet, self.faults, self.host, self.port, topic_root=self.topic_root)
            self.platform.start(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the platform, then the broker. Safe to call twice."""
        if self.platform is not None:
            self.platform.stop()
            self.platform = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> MqttSide:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
