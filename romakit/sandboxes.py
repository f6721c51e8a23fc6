"""``rk.sandbox()``: the built-in sandbox plus ready-made clients for it.

The servers live in :mod:`romakit.sim` (which knows nothing of the clients); this
module is the convenience layer that hands out a :class:`~romakit.LinkClient` and
:class:`~romakit.Gateway` already pointed at them, journaling into the sandbox journal
(apart from the real one), and closes them with the sandbox: a client used after that
says so (:class:`~romakit.errors.ClientClosed`).
"""

from __future__ import annotations

import atexit
import logging
import weakref
from typing import TYPE_CHECKING, Any, Unpack

from romakit.errors import ClientClosed, InputError
from romakit.sim.server import SimServer
from romakit.store.journal import Journal

if TYPE_CHECKING:  # pragma: no cover
    from romakit.iotda.gateway import Gateway
    from romakit.iotda.rest import IotdaClient
    from romakit.iotda.settings import GatewayOptions
    from romakit.link.client import LinkClient
    from romakit.link.target import LinkOptions

_open: weakref.WeakSet = weakref.WeakSet()
log = logging.getLogger("romakit.sandbox")


#: what a client of a closed sandbox says when it is used again
CLOSED_WITH = "its sandbox was closed"


class Sandbox(SimServer):
    """A running sandbox: LINK HTTP simulator, embedded MQTT broker, IoTDA platform,
    one seeded fleet behind both. Close it (or use ``with``) to free its ports; the
    clients it handed out are closed with it.

    Its clients journal into :attr:`journal`: the sandbox journal
    (``<romakit home>/sandbox/journal.sqlite3``), not your real journal's default file, so
    practice and training never mix with real runs; a journal you name (``journal=`` here
    or to a client, ``ROMAKIT_JOURNAL``) is used as named. ``rk.journal(url=sb.journal)``
    lists the sandbox's runs; ``rk.resume(op, link)`` reads the client's journal."""

    def __init__(self, devices: int = 2000, seed: int = 7, *, journal: Journal | str | bool | None = None,
                 **options: Any) -> None:
        super().__init__(devices=devices, seed=seed, **options)
        #: where this sandbox's clients journal: the sandbox journal
        #: (``<romakit home>/sandbox/journal.sqlite3`` unless ROMAKIT_JOURNAL names one), or ``journal``
        self.journal = Journal.for_sandbox() if journal is None else Journal.of(journal)
        self._clients: weakref.WeakSet = weakref.WeakSet()
        _open.add(self)

    def _check_running(self) -> None:
        if not self.running:
            raise ClientClosed("this sandbox was closed: start a new one, e.g. sb = rk.sandbox(devices=..., "
                               "seed=...) (in a notebook, run the set-up cell again)")

    def _handed(self, client: Any) -> Any:
        """``client``, remembered so that :meth:`close` closes it too."""
        self._clients.add(client)
        return client

    def close(self) -> None:
        """Close the clients it handed out (used again, they say the sandbox was closed),
        then stop the servers and free the ports."""
        for client in list(self._clients):
            try:
                client.close(reason=CLOSED_WITH)
            except Exception:  # noqa: BLE001 - the servers must stop anyway
                log.warning("closing %r with its sandbox failed", client, exc_info=True)
        self._clients.clear()
        super().close()

    def __repr__(self) -> str:
        mqtt = f", mqtt={self.mqtt_address[0]}:{self.mqtt_address[1]}" if self.mqtt_address else ""
        if self.mqtt_tls_address:
            mqtt += f", mqtts={self.mqtt_tls_address[0]}:{self.mqtt_tls_address[1]}"
        state = "running" if self.running else "closed"
        return f"<Sandbox {state}: {len(self.fleet)} devices, seed={self.seed}, link={self.link_endpoint if self.running else '-'}{mqtt}>"

    def link_client(self, auth: str = "aksk", **options: Unpack[LinkOptions]) -> LinkClient:
        """A :class:`~romakit.LinkClient` for the sandbox, signing with AK/SK (or ``auth="token"``)."""
        from romakit.link.auth import AkSk, Token
        from romakit.link.client import LinkClient

        self._check_running()
        c = self.credentials
        if auth == "aksk":
            a: AkSk | Token = AkSk(c.ak, c.sk)
        elif auth == "token":
            a = Token(c.token)
        else:
            raise InputError(f"auth must be 'aksk' or 'token', got {auth!r}")
        if self.link_ca_file:  # link_tls=True: verify the sandbox's certificate, as a real endpoint's
            options.setdefault("ca_files", self.link_ca_file)
        options.setdefault("journal", self.journal)
        return self._handed(LinkClient(self.link_endpoint, c.project_id, c.instance_id, a, **options))

    def iotda_client(self, signing: str = "derived", **options: Any) -> IotdaClient:
        """An :class:`~romakit.IotdaClient` for the sandbox's IoTDA inventory, signing with
        the derived AK/SK of standard instances (``signing="plain"``: SDK-HMAC-SHA256)."""
        from romakit.iotda.rest import IotdaClient
        from romakit.iotda.rest_auth import IotdaAkSk

        if signing not in ("derived", "plain"):
            raise InputError(f"signing must be 'derived' or 'plain', got {signing!r}")
        self._check_running()
        c = self.credentials
        auth = IotdaAkSk(c.ak, c.sk, region="cn-north-4", derived=signing == "derived")
        return self._handed(IotdaClient(self.iotda_endpoint, c.project_id, auth, **options))

    def gateways(self) -> list[str]:
        """The IoTDA device ids of the fleet's gateways."""
        return [g["client_id"] for g in self.fleet.gateways()]

    def children(self, gateway_id: str) -> list[str]:
        """The IoTDA device ids of a gateway's children, as the fleet has them now."""
        gw = self.fleet.by_client_id(gateway_id)
        if gw is None:
            raise KeyError(f"no gateway {gateway_id!r} in the sandbox fleet")
        return [ch["client_id"] for ch in self.fleet.children_of(gw["id"])]

    def gateway(self, device_id: str, **options: Unpack[GatewayOptions]) -> Gateway:
        """A :class:`~romakit.Gateway` logged in as ``device_id`` on the embedded broker.

        On a sandbox started with ``mqtt_tls=True`` the gateway uses the TLS listener and
        verifies it against the sandbox's CA (``ca_file``), unless ``tls=False`` is passed.
        ``transport="websockets"`` uses the WebSocket listener (wss with TLS). The gateway
        reads the sandbox's IoTDA inventory before it logs in (``inventory=None``: it
        does not); a device with a registered certificate logs in with it.
        """
        from romakit.iotda.gateway import Gateway

        self._check_running()
        if self.mqtt_address is None:
            raise RuntimeError("this sandbox was started without MQTT (mqtt=False)")
        if self.fleet.by_client_id(device_id) is None:
            raise KeyError(f"no device {device_id!r} in the sandbox fleet; try sb.gateways()")
        tls = options.get("tls")
        if tls is None:
            tls = options["tls"] = self.mqtt_tls_address is not None
        ws = options.get("transport") == "websockets"
        if tls:
            address = self.mqtt_wss_address if ws else self.mqtt_tls_address
            if address is None:
                raise RuntimeError("this sandbox has no TLS listener: start it with rk.sandbox(mqtt_tls=True)")
            options.setdefault("ca_file", self.mqtt_ca_file)
        else:
            address = self.mqtt_ws_address if ws else self.mqtt_address
        if address is None:
            raise RuntimeError("this sandbox has no WebSocket listener (mqtt_ws=False)")
        if "inventory" not in options:
            options["inventory"] = self.iotda_client()
        options.setdefault("journal", self.journal)
        secret: str | None = self.fleet.secret_of(device_id)
        if self.certificates is not None and self.certificates.fingerprint_of(device_id) and "certfile" in options:
            secret = None
        return self._handed(Gateway(address[0], address[1], device_id, secret, **options))


def sandbox(devices: int = 2000, seed: int = 7, **options: Any) -> Sandbox:
    """Start the built-in sandbox (same seed, same fleet) and return its handle.

    Fault switches may be given at start (``latency_ms=50``) or later with
    ``sb.set_fault(...)``. Its clients journal into the sandbox journal
    (``<romakit home>/sandbox/journal.sqlite3``; ``sb.journal``), not into your real
    one, unless ``journal=`` (or ``ROMAKIT_JOURNAL``) names another;
    ``rk.journal(url=sb.journal)`` lists their runs. ``mqtt_tls=True`` adds an MQTT-over-TLS listener whose
    certificate ``sb.mqtt_ca_file`` verifies; ``sb.gateway(id)`` then uses it.
    """
    return Sandbox(devices=devices, seed=seed, **options)


@atexit.register
def _close_all() -> None:
    for sb in list(_open):
        try:
            sb.close()
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass
