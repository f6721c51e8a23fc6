"""IoTDA's MQTT login and topic rights, decided against a fleet, and the amqtt plugins
that apply them.

A device logs in with client id ``{device_id}_0_{0|1}_{YYYYMMDDHH}``, its device id as
username and ``iotda_password(secret, timestamp)`` as password (or its X.509
certificate, when it has one registered); it may publish, subscribe and receive only
under ``$oc/devices/{its id}/``. The platform account may do anything.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from amqtt.contexts import Action
from amqtt.mqtt.connack import (
    BAD_USERNAME_PASSWORD,
    CONNECTION_ACCEPTED,
    IDENTIFIER_REJECTED,
    NOT_AUTHORIZED,
)
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from romakit import wire

#: username of the account the IoTDA platform simulator logs in with
PLATFORM_USERNAME = "romakit-platform"
#: how far (in hours) a ``sig 1`` client id timestamp may be from the broker's hour
TIMESTAMP_TOLERANCE_HOURS = 1
#: the keepalive (seconds) IoTDA accepts from devices
KEEPALIVE_RANGE = (30, 1200)

_CLIENT_ID = re.compile(r"^(?P<device_id>.+)_0_(?P<sig>[01])_(?P<ts>\d{10})$")


def iotda_password(secret: str, timestamp: str) -> str:
    """IoTDA's MQTT password: lower-case hex HMAC-SHA256 keyed with the timestamp over the secret."""
    return hmac.new(timestamp.encode(), secret.encode(), hashlib.sha256).hexdigest()


def iotda_timestamp(when: datetime | None = None) -> str:
    """The ``YYYYMMDDHH`` UTC timestamp used in client ids and as the HMAC key."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H")


def iotda_client_id(device_id: str, timestamp: str, sig: int = wire.IOTDA_DEFAULT_SIG) -> str:
    """``{device_id}_0_{sig}_{timestamp}``: the client id IoTDA expects."""
    return f"{device_id}_0_{sig}_{timestamp}"


class FleetLike(Protocol):
    """What logins read of a fleet."""

    def by_client_id(self, cid: str) -> dict | None: ...

    def secret_of(self, client_id: str) -> str: ...


@dataclass(frozen=True)
class LoginDecision:
    """The answer to one CONNECT: a CONNACK return code and, when refused, why."""

    code: int
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.code == CONNECTION_ACCEPTED


class IotdaAuthenticator:
    """Decides IoTDA logins and topic rights against a fleet.

    Devices log in with client id ``{device_id}_0_{0|1}_{YYYYMMDDHH}``, their device id
    as username and ``iotda_password(secret, timestamp)`` as password. One extra
    account (``platform_username``; random password unless given) is for the platform
    simulator and may use every topic.
    """

    def __init__(
        self,
        fleet: FleetLike,
        *,
        platform_username: str = PLATFORM_USERNAME,
        platform_password: str | None = None,
        clock: Any = time.time,
        certificates: Any = None,
    ) -> None:
        self.fleet = fleet
        #: :class:`romakit.sim.certs.DeviceCertificates` (fingerprints per device), or None
        self.certificates = certificates
        self.platform_username = platform_username
        self.platform_password = platform_password or secrets.token_hex(16)
        self._clock = clock

    def __repr__(self) -> str:  # never show the platform password
        return f"IotdaAuthenticator(platform_username={self.platform_username!r}, platform_password='***')"

    def check_login(
        self,
        client_id: str | None,
        username: str | None,
        password: str | bytes | None,
        keepalive: int | None = None,
        peer_cert: bytes | None = None,
    ) -> LoginDecision:
        """Judge a CONNECT; codes: 2 bad client id or keepalive, 4 bad username or password, 5 not authorised.

        ``peer_cert`` is the client's TLS certificate (DER), for devices that log in with one."""
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        if not username:
            return LoginDecision(BAD_USERNAME_PASSWORD, "no username")
        if username == self.platform_username:
            if password is not None and hmac.compare_digest(password, self.platform_password):
                return LoginDecision(CONNECTION_ACCEPTED)
            return LoginDecision(BAD_USERNAME_PASSWORD, "bad platform password")
        m = _CLIENT_ID.match(client_id or "")
        if m is None:
            return LoginDecision(IDENTIFIER_REJECTED, "client id is not {device_id}_0_{0|1}_{YYYYMMDDHH}")
        try:
            stamp = datetime.strptime(m["ts"], "%Y%m%d%H").replace(tzinfo=UTC)
        except ValueError:
            return LoginDecision(IDENTIFIER_REJECTED, "client id timestamp is not a valid YYYYMMDDHH")
        if m["device_id"] != username:
            return LoginDecision(IDENTIFIER_REJECTED, "client id names another device than the username")
        low, high = KEEPALIVE_RANGE
        if keepalive is not None and not low <= keepalive <= high:
            return LoginDecision(IDENTIFIER_REJECTED, f"keepalive {keepalive} s is outside {low}..{high} s")
        device = self.fleet.by_client_id(username)
        if device is None:
            return LoginDecision(BAD_USERNAME_PASSWORD, "unknown device")
        if not self._may_connect(device):
            return LoginDecision(NOT_AUTHORIZED, "device may not connect")
        certs = self.certificates
        if certs is not None and certs.fingerprint_of(username):
            if peer_cert is None:
                return LoginDecision(BAD_USERNAME_PASSWORD, "this device logs in with its X.509 certificate")
            if not certs.matches(username, peer_cert):
                return LoginDecision(BAD_USERNAME_PASSWORD, "certificate fingerprint does not match the device's")
        else:
            expected = iotda_password(self.fleet.secret_of(username), m["ts"])
            if password is None or not hmac.compare_digest(password.lower(), expected):
                return LoginDecision(BAD_USERNAME_PASSWORD, "bad password")
        if m["sig"] == "1":
            now_hour = int(self._clock() // 3600)
            if abs(int(stamp.timestamp() // 3600) - now_hour) > TIMESTAMP_TOLERANCE_HOURS:
                return LoginDecision(BAD_USERNAME_PASSWORD, "timestamp too far from the platform clock")
        return LoginDecision(CONNECTION_ACCEPTED)

    @staticmethod
    def _may_connect(device: dict) -> bool:
        """A device disabled on the LINK side (``status`` 1, frozen) is refused with 5."""
        return device.get("status", 0) != 1

    def is_platform(self, username: str | None) -> bool:
        return username == self.platform_username

    def may_use(self, username: str | None, topic: str | None) -> bool:
        """Whether ``username`` may publish to, subscribe to or receive ``topic``."""
        if not username or not topic:
            return False
        if self.is_platform(username):
            return True
        return topic.startswith(f"$oc/devices/{username}/")


def _authenticator_of(plugin: Any) -> IotdaAuthenticator:
    auth = plugin.config.authenticator
    if not isinstance(auth, IotdaAuthenticator):
        raise TypeError("romakit broker plugins need Config.authenticator (an IotdaAuthenticator)")
    return auth


class IotdaAuthPlugin(BaseAuthPlugin):
    """amqtt auth plugin: IoTDA login rules; no anonymous clients."""

    @dataclass
    class Config:
        authenticator: Any = None

    async def authenticate(self, *, session: Session) -> bool:
        decision = _authenticator_of(self).check_login(
            session.client_id, session.username, session.password, session.keep_alive,
            getattr(session, "iotda_peer_cert", None),
        )
        return decision.accepted


class IotdaTopicPlugin(BaseTopicPlugin):
    """amqtt topic plugin: devices stay under ``$oc/devices/{own id}/``."""

    @dataclass
    class Config:
        authenticator: Any = None

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        return _authenticator_of(self).may_use(getattr(session, "iotda_login", None), topic)
