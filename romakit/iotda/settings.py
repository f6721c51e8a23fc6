"""A gateway's settings, checked once: :class:`GatewaySettings` (where and how it logs in,
its patience and pace), built from the keywords of ``rk.Gateway`` (:class:`GatewayOptions`)
and handed whole to the gateway and its MQTT :class:`~romakit.iotda.session.Session`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypedDict, TypeVar, overload

from romakit import wire
from romakit.iotda import checks

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.store.journal import Journal

T = TypeVar("T")


class Inventory(Protocol):
    """What a gateway reads of IoTDA's inventory (``rk.IotdaClient``)."""

    def status(self, device_id: str) -> str | None:
        """The device's status (``"ONLINE"``, ``"OFFLINE"``...), None when not listed."""
        ...

    def devices(self, **filters: Any) -> pd.DataFrame:
        """The devices matching ``filters`` (``gateway_id=``: a gateway's children)."""
        ...


class GatewayOptions(TypedDict, total=False):
    """The keywords of ``rk.Gateway(host, port, device_id, secret, ...)`` (see :class:`GatewaySettings`)."""

    tls: bool | None
    ca_file: str | None
    keepalive: int
    timeout: float
    max_in_flight: int
    rate: float | None
    adaptive_pace: bool
    sig: int
    allow_insecure: bool
    connect_timeout: float
    transport: Literal["tcp", "websockets"]
    ws_path: str
    proxy: str | None
    certfile: str | None
    keyfile: str | None
    takeover: bool
    inventory: Inventory | None
    journal: Journal | str | None


@dataclass(frozen=True)
class GatewaySettings:
    """Where a gateway logs in and how (checked on construction; InputError names a bad value).

    - ``host``, ``port``, ``device_id``: the broker and the gateway's IoTDA id.
    - ``tls``: None = on for ports 8883 and 443; ``ca_file`` trusted on top of the system
      store; ``allow_insecure``: plain MQTT off loopback. ``certfile``/``keyfile``: X.509 login.
    - ``transport``: ``"tcp"`` or ``"websockets"`` (``ws_path``); ``proxy``: HTTP or SOCKS URL.
    - ``keepalive``, ``connect_timeout``, ``sig``: the MQTT login.
    - ``timeout``: seconds to wait for each answer; ``max_in_flight``: requests awaiting answers.
    - ``rate``: upstream messages per second (None: no pace); ``adaptive_pace``: halved on
      timeouts, won back with answers.
    - ``takeover``, ``inventory``: the takeover check (:mod:`romakit.iotda.field`).
    - ``journal``: where its operations are journaled (a Journal, URL or file; None:
      ``ROMAKIT_JOURNAL``, else the default file).
    """

    host: str
    port: int
    device_id: str
    tls: bool | None = None
    ca_file: str | None = None
    keepalive: int = 120
    timeout: float = 30.0
    max_in_flight: int = 8
    rate: float | None = wire.IOTDA_DEFAULT_RATE
    adaptive_pace: bool = True
    sig: int = wire.IOTDA_DEFAULT_SIG
    allow_insecure: bool = False
    connect_timeout: float = 10.0
    transport: Literal["tcp", "websockets"] = "tcp"
    ws_path: str = "/mqtt"
    proxy: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    takeover: bool = False
    inventory: Inventory | None = None
    journal: Journal | str | None = None

    def __post_init__(self) -> None:
        fix: dict[str, Any] = {"host": checks.address(self.host, self.port, self.device_id)}
        checks.limits(self)
        checks.transport(self.transport, self.proxy, self.certfile, self.keyfile)
        fix["tls"] = checks.tls(self, fix["host"])
        fix.update(timeout=float(self.timeout), connect_timeout=float(self.connect_timeout),
                   takeover=bool(self.takeover))
        for name, value in fix.items():
            object.__setattr__(self, name, value)

    @property
    def mqtt_inflight(self) -> int:
        """paho's window of QoS 1 messages awaiting PUBACK: room for every request in flight."""
        return max(20, 2 * self.max_in_flight)


class Shown(Generic[T]):
    """A read-only attribute showing the field of the same name of its owner's ``settings``."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Shown[T]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object, owner: type) -> T | Shown[T]:
        if obj is None:
            return self
        return getattr(obj.settings, self.name)  # type: ignore[attr-defined]

    def __set__(self, obj: object, value: T) -> None:
        raise AttributeError(f"{self.name} is read-only: give it when building the gateway")


__all__ = ["GatewayOptions", "GatewaySettings", "Inventory", "Shown"]
