"""Start and stop every part of the sandbox; describe it for foreign clients."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from romakit import wire
from romakit.sim.faults import Faults


@dataclass(frozen=True)
class SimCredentials:
    """What the sandbox accepts, made from the seed: the engineer's AK/SK pair, a fixed
    token, an IAM user with a password in account ``domain``, and an agency
    ``agency`` in the customer's account ``agency_domain`` that the engineer may assume."""

    project_id: str
    instance_id: str
    ak: str
    sk: str
    token: str
    domain: str = "romakit-support"
    domain_id: str = ""
    user: str = "engineer"
    password: str = ""
    agency_domain: str = "customer-acme"
    agency_domain_id: str = ""
    agency: str = "romakit_support"

    def __repr__(self) -> str:  # never show the secrets
        return (f"SimCredentials(project_id={self.project_id!r}, instance_id={self.instance_id!r}, ak={self.ak!r}, "
                f"sk='***', token='***', domain={self.domain!r}, user={self.user!r}, password='***', "
                f"agency_domain={self.agency_domain!r}, agency={self.agency!r})")

    @classmethod
    def from_seed(cls, seed: int) -> SimCredentials:
        rnd = random.Random(f"romakit-sandbox-credentials-{seed}")

        def hexs(n: int) -> str:
            return "".join(rnd.choice("0123456789abcdef") for _ in range(n))

        inst = hexs(32)
        return cls(
            project_id=hexs(32),
            # recognisable as a sandbox's by every client (wire.SANDBOX_INSTANCE_PREFIX)
            instance_id=f"{wire.SANDBOX_INSTANCE_PREFIX}{inst[8:12]}-{inst[12:16]}-{inst[16:20]}-{inst[20:32]}",
            ak="".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20)),
            sk=hashlib.sha256(hexs(64).encode()).hexdigest()[:40],
            token="MIIsandbox" + hexs(48),
            domain_id=hexs(32),
            password="Pw-" + hexs(16),
            agency_domain_id=hexs(32),
        )


class SimServer:
    """The sandbox's servers, running in background threads on loopback.

    ``SimServer(devices=2000, seed=7)`` builds the fleet, starts the LINK HTTP
    simulator on a free port and (with ``mqtt=True``) an embedded MQTT broker with the
    IoTDA platform simulator attached. ``mqtt_broker=("127.0.0.1", 1883)`` attaches
    the platform simulator to an external broker (Mosquitto) instead. ``mqtt_tls=True``
    makes the embedded broker also serve MQTT over TLS (``mqtt_tls_address``), with a
    certificate made at start-up by a throwaway CA (``mqtt_ca_file``, deleted on close).

    IAM (:mod:`romakit.sim.iam_app`) runs on its own port (``iam_endpoint``) and shares
    its record of issued tokens and keys with LINK's gateway (``sb.iam``,
    ``sb.gate``). ``link_tls=True`` serves LINK and IAM over HTTPS with a certificate of
    another throwaway CA (``link_ca_file``): clients then verify it as a real endpoint.

    ``sb.life`` (:class:`~romakit.sim.life.FleetLife`) plays the fleet's own behaviour
    (:meth:`set_fault`, :meth:`scenario`): ``sb.life.wait_idle(timeout)`` waits until every
    dropped device that will come back is back, ``sb.life.settle(timeout)`` until all
    that is due by now has happened.
    """

    def __init__(
        self,
        devices: int = 2000,
        seed: int = 7,
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        mqtt: bool = True,
        mqtt_port: int = 0,
        mqtt_broker: tuple[str, int] | None = None,
        mqtt_tls: bool = False,
        mqtt_tls_port: int = 0,
        link_tls: bool = False,
        iam_port: int = 0,
        mqtt_ws: bool = True,
        iotda_port: int = 0,
        **faults: Any,
    ) -> None:
        from romakit.sim.fleet import Fleet
        from romakit.sim.life import FleetLife

        self.seed = seed
        self.host = host
        self.credentials = SimCredentials.from_seed(seed)
        self.faults = Faults(seed=seed)
        if faults:
            self.faults.update(**faults)
        self.fleet = Fleet(devices=devices, seed=seed, clock=self.clock)
        #: the fleet's own behaviour: reconnects, the connection rate, scenarios
        self.life = FleetLife(self.fleet, self.faults)
        if mqtt_tls and mqtt_broker:
            raise ValueError("mqtt_tls=True needs the embedded broker, not mqtt_broker=...")
        if mqtt_tls and not mqtt:
            raise ValueError("mqtt_tls=True needs MQTT (mqtt=True)")
        self._http = None
        self._iam_http = None
        self._mqtt = None
        self._link_tls = None
        self._iotda = None
        self.certificates = None
        self._field: list[Any] = []
        try:
            if link_tls:
                from romakit.sim.tls import SandboxTls

                self._link_tls = SandboxTls([host])
            self._start_http(http_port, iam_port)
            if mqtt or mqtt_broker:
                if mqtt_tls:
                    from romakit.sim.certs import DeviceCertificates

                    self.certificates = DeviceCertificates()
                self._start_mqtt(mqtt_port, mqtt_broker, mqtt_tls, mqtt_tls_port, mqtt_ws)
            self._start_iotda(iotda_port)
        except BaseException:
            self.close()
            raise

    # -- parts -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True from start until :meth:`close` (the LINK HTTP side is up)."""
        return self._http is not None

    def clock(self) -> float:
        """The sandbox's clock: this machine's plus ``faults.clock_offset_s``."""
        import time

        return time.time() + (self.faults.clock_offset_s or 0.0)

    def _start_http(self, port: int, iam_port: int) -> None:
        from romakit.sim.gatekeeper import Gatekeeper
        from romakit.sim.http import HttpServer
        from romakit.sim.iam_app import IamSimulator, IamState
        from romakit.sim.link_app import LinkSimulator

        tls = (str(self._link_tls.cert_file), str(self._link_tls.key_file)) if self._link_tls else None
        #: what IAM issued (``sb.iam.expire_all()`` expires it at once)
        self.iam = IamState(self.credentials, self.clock)
        #: LINK's API Gateway checks (``sb.gate.locked(ak)``)
        self.gate = Gatekeeper(self.credentials, self.iam, self.clock)
        self.link = LinkSimulator(self.fleet, self.faults, self.credentials, gate=self.gate)
        self.iam_sim = IamSimulator(self.credentials, self.faults, self.iam)
        self._http = HttpServer(self.link.app, host=self.host, port=port, tls=tls)
        self._http.start()
        self._iam_http = HttpServer(self.iam_sim.app, host=self.host, port=iam_port, tls=tls)
        self._iam_http.start()

    def _start_iotda(self, port: int) -> None:
        from romakit.sim.http import HttpServer
        from romakit.sim.iotda_rest import IotdaRest

        certs = self.certificates
        self.iotda = IotdaRest(self.fleet, self.credentials,
                               connected=lambda d: self.broker is not None and self.broker.is_online(d),
                               connection=self.fleet.connection,
                               fingerprint=certs.fingerprint_of if certs is not None else None)
        self._iotda = HttpServer(self.iotda.app, host=self.host, port=port)
        self._iotda.start()

    def _start_mqtt(self, port: int, external: tuple[str, int] | None, tls: bool = False, tls_port: int = 0,
                    ws: bool = True) -> None:
        from romakit.sim.mqtt import MqttSide

        self._mqtt = MqttSide(self.fleet, self.faults, host=self.host, port=port, external=external,
                              tls=tls, tls_port=tls_port, ws=ws and external is None, certificates=self.certificates)
        self._mqtt.start()
        # ListDevices tells devices where to connect: point it at this sandbox's broker
        self.link.devices.connect_address = f"{self._mqtt.host}:{self._mqtt.port}"
        if self._mqtt.tls_port:
            self.link.devices.ssl_connect_address = f"{self._mqtt.host}:{self._mqtt.tls_port}"

    # -- facts -----------------------------------------------------------------------
    @property
    def link_endpoint(self) -> str:
        return self._http.url

    @property
    def iam_endpoint(self) -> str:
        """The sandbox IAM's base URL (it stands in for ``https://iam.{region}.myhuaweicloud.com``)."""
        return self._iam_http.url

    @property
    def region(self) -> str:
        """The region the sandbox's project is named after (IAM lists it under this name)."""
        from romakit.sim.iam_app import REGION

        return REGION

    @property
    def link_ca_file(self) -> str | None:
        """The CA certificate (PEM) of the LINK and IAM HTTPS listeners (``link_tls=True``)."""
        return str(self._link_tls.ca_file) if self._link_tls is not None else None

    @property
    def iotda_endpoint(self) -> str:
        """The IoTDA application REST endpoint (ListDevices, ShowDevice)."""
        return self._iotda.url

    @property
    def mqtt_ws_address(self) -> tuple[str, int] | None:
        """(host, port) of the MQTT-over-WebSocket listener (path ``/mqtt``); None without."""
        b = self.broker
        return (self._mqtt.host, b.ws_port) if b is not None and b.ws_port else None

    @property
    def mqtt_wss_address(self) -> tuple[str, int] | None:
        """(host, port) of the MQTT-over-secure-WebSocket listener (``mqtt_tls=True``)."""
        b = self.broker
        return (self._mqtt.host, b.wss_port) if b is not None and b.wss_port else None

    def field_gateway(self, device_id: str, **options: Any) -> Any:
        """Start a :class:`~romakit.sim.field.FieldGateway` logged in as ``device_id`` (the
        real device, which reconnects when dropped); stopped on close."""
        from romakit.sim.field import FieldGateway

        if self.mqtt_address is None:
            raise RuntimeError("this sandbox has no MQTT side")
        host, port = self.mqtt_address
        fg = FieldGateway(host, port, device_id, self.fleet.secret_of(device_id), **options).start()
        self._field.append(fg)
        return fg

    def device_certificate(self, device_id: str, *, register: bool = True) -> tuple[str, str]:
        """``(certfile, keyfile)`` of an X.509 certificate for ``device_id``; registered
        (the device then logs in with it only) unless ``register=False``. Needs ``mqtt_tls=True``."""
        if self.certificates is None:
            raise RuntimeError("X.509 logins need TLS: start the sandbox with mqtt_tls=True")
        return self.certificates.issue(device_id, register=register)

    @property
    def mqtt_address(self) -> tuple[str, int] | None:
        return (self._mqtt.host, self._mqtt.port) if self._mqtt else None

    @property
    def broker(self) -> Any:
        """The embedded :class:`~romakit.sim.broker.EmbeddedBroker` (``sb.broker.restart()``
        drops every MQTT connection, as a broker failover would); None without one."""
        return self._mqtt.broker if self._mqtt is not None else None

    @property
    def platform(self) -> Any:
        """The :class:`~romakit.sim.iotda_platform.IotdaPlatform` (its ``handled`` list
        records every request it got); None without MQTT."""
        return self._mqtt.platform if self._mqtt is not None else None

    @property
    def mqtt_tls_address(self) -> tuple[str, int] | None:
        """(host, port) of the MQTT-over-TLS listener; None unless started with ``mqtt_tls=True``."""
        if self._mqtt is None or not self._mqtt.tls_port:
            return None
        return (self._mqtt.host, self._mqtt.tls_port)

    @property
    def mqtt_ca_file(self) -> str | None:
        """Path of the CA certificate (PEM) that verifies the TLS listener (never a key)."""
        return self._mqtt.ca_file if self._mqtt is not None else None

    def describe(self, gateways: int = 3) -> dict:
        """Everything a foreign client needs, as printed by ``python -m romakit sim``.

        This includes the AK/SK and gateway secrets of the sandbox (they protect
        nothing but this loopback sandbox); do not store it in notebook outputs.
        """
        c = self.credentials
        out: dict[str, Any] = {
            "link": {
                "endpoint": self.link_endpoint,
                **({"ca_file": self.link_ca_file} if self.link_ca_file else {}),
                "project_id": c.project_id,
                "instance_id": c.instance_id,
                "ak": c.ak,
                "sk": c.sk,
                "token": c.token,
            },
            "iam": {
                "endpoint": self.iam_endpoint,
                "region": self.region,
                "domain": c.domain,
                "user": c.user,
                "password": c.password,
                "agency_domain": c.agency_domain,
                "agency": c.agency,
            },
            "iotda": {"endpoint": self.iotda_endpoint, "project_id": c.project_id, "region": self.region,
                      "signing": "SDK-HMAC-SHA256 or derived V11-HMAC-SHA256 (service iotdm), same AK/SK"},
            "fleet": {"devices": len(self.fleet), "seed": self.seed},
            "faults": self.faults.as_dict(),
        }
        if self._mqtt:
            gws = []
            for gw in self.fleet.gateways()[:gateways]:
                cid = gw["client_id"]
                gws.append(
                    {
                        "device_id": cid,
                        "secret": self.fleet.secret_of(cid),
                        "children": [ch["client_id"] for ch in self.fleet.children_of(gw["id"])],
                    }
                )
            out["mqtt"] = {"host": self._mqtt.host, "port": self._mqtt.port}
            if self.mqtt_ws_address:
                out["mqtt"]["ws_port"] = self.mqtt_ws_address[1]
            if self._mqtt.tls_port:
                out["mqtt"]["tls_port"] = self._mqtt.tls_port
                out["mqtt"]["ca_file"] = self._mqtt.ca_file
            if self.mqtt_wss_address:
                out["mqtt"]["wss_port"] = self.mqtt_wss_address[1]
            out["mqtt"]["gateways"] = gws
        return out

    def set_fault(self, **switches: Any) -> None:
        """Switch faults at run time, e.g. ``set_fault(latency_ms=50, error_rate=0.1)``;
        the switches are the fields of :class:`~romakit.sim.faults.Faults`.

        The fleet's own behaviour is switched here too:

        - ``reconnect_s``: median seconds (sandbox time) before a forced device reconnects
          by itself; most come back within seconds of it, a tail of about one in ten at
          its keep-alive × 1.5. 0 or None: forced devices stay offline. Off by default in
          ``rk.sandbox()`` and ``SimServer`` (so a force-offline's effect stays to be
          read); ``python -m romakit sim`` starts with 5 s, ``reconnect_never`` 0.02 and
          ``connect_rate`` 100, as a fleet behaves.
        - ``reconnect_never``: share (0..1) of devices that never come back once dropped
          (a stale certificate), drawn per device from the seed; :meth:`never_returning`
          names them. Disabled devices never come back either.
        - ``connect_rate``: new connections the instance accepts per second (None: no
          limit); a storm of reconnects queues behind it.
        - ``time_scale``: sandbox seconds per real second (60: a 2-minute tail in 2 s);
          it scales what is scheduled after it is set. Time stamps stay real moments.
        """
        self.faults.update(**switches)

    def clear_faults(self) -> None:
        """Switch every fault off and end every scenario (devices down come back)."""
        self.faults.clear()
        self.life.scenario(None)

    def never_returning(self, ids: Any) -> set:
        """Of ``ids`` (LINK ids as ints, IoTDA device ids as strings), those the sandbox
        will never bring back after a force-offline: unknown or disabled devices, those
        not online (nothing left to reconnect) unless their reconnect is under way, those
        drawn never to return (``reconnect_never``), every one while ``reconnect_s`` is off.
        Stable for a seed and device; ask before or after the force-offline alike."""
        return self.life.never_returning(ids)

    def scenario(self, name: str | None, **params: Any) -> dict:
        """Switch a scenario on for the trainer; ``scenario(None)`` ends every one (their
        devices come back as after any drop). Times are sandbox seconds (``time_scale``).

        ``scenario("site_outage", site="sz", at=0, duration=300)``: from ``at`` seconds
        from now, for ``duration``, the devices of one site lose their network: those
        online drop, and none reconnects before the end; then they come back with the
        usual back-off (``reconnect_s``, else 5 s) and connection rate. The site is
        ``site=`` (``"sz"`` or its tag ``"site-sz"``), or ``tag=`` any tag, ``prefix=``
        a device_name prefix (``"meter-sz-"``), or ``gateway=`` a gateway's IoTDA id; a
        gateway down takes its children with it.

        ``scenario("flapping", product_id=..., period=60, down=None, share=1.0)``: the
        devices of a product (``share`` of them, drawn per device) drop once every
        ``period`` seconds each, at a phase of their own, and reconnect ``down`` seconds
        later (default min(5, period / 2), ± half).

        Returns what was switched on: ``name``, ``devices`` (how many) and for an outage
        ``starts_at``/``ends_at`` (epoch ms, the fleet's clock).
        """
        return self.life.scenario(name, **params)

    # -- life ------------------------------------------------------------------------
    def close(self) -> None:
        self.life.stop()
        for fg in self._field:
            fg.stop()
        self._field.clear()
        for name in ("_iotda", "_mqtt", "_http", "_iam_http"):  # in this order: the platform first
            part = getattr(self, name)
            if part is not None:
                part.stop()
                setattr(self, name, None)
        if self._link_tls is not None:
            self._link_tls.close()
            self._link_tls = None
        if self.certificates is not None:
            self.certificates.close()

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
