"""IoTDA device login: client id, username and password, and a secret that never prints.

IoTDA's MQTT login (device-side API reference, "Device Connection Authentication"):
client id ``{device_id}_0_{sig}_{YYYYMMDDHH}`` (UTC hour; ``sig`` 0 = the platform does
not check the timestamp, 1 = it checks it against its clock), username = the device id,
password = lower-case hex HMAC-SHA256 **keyed with the timestamp** over the secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from romakit.errors import InputError


class Secret:
    """A device secret that shows as ``***`` in reprs, tracebacks' locals and logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str) or not value:
            raise InputError("the device secret must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for computing the password."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self):  # never pickled along with an object that holds it
        raise TypeError("a romakit Secret cannot be pickled")


def timestamp(when: datetime | None = None) -> str:
    """The ``YYYYMMDDHH`` UTC hour used in the client id and as the HMAC key."""
    when = when or datetime.now(UTC)
    if when.tzinfo is None:
        raise InputError("timestamp() needs an aware datetime (UTC); got a naive one")
    return when.astimezone(UTC).strftime("%Y%m%d%H")


def client_id(device_id: str, ts: str, sig: int = 0) -> str:
    """``{device_id}_0_{sig}_{ts}``: the client id IoTDA expects."""
    if sig not in (0, 1):
        raise InputError(f"sig must be 0 (timestamp not checked) or 1 (checked), got {sig!r}")
    return f"{device_id}_0_{sig}_{ts}"


def password(secret: str | Secret, ts: str) -> str:
    """Lower-case hex HMAC-SHA256 keyed with ``ts`` over the secret."""
    raw = secret.reveal() if isinstance(secret, Secret) else secret
    return hmac.new(ts.encode("utf-8"), raw.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Login:
    """What one CONNECT carries. ``password`` is hidden from the repr."""

    client_id: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Login(client_id={self.client_id!r}, username={self.username!r}, password='***')"


def login(device_id: str, secret: str | Secret, *, sig: int = 0, when: datetime | None = None) -> Login:
    """The client id, username and password of ``device_id`` for the hour of ``when`` (now)."""
    ts = timestamp(when)
    return Login(client_id(device_id, ts, sig), device_id, password(secret, ts))


__all__ = ["Secret", "Login", "login", "timestamp", "client_id", "password"]
