"""Typed exceptions: everything romakit raises derives from :class:`RomakitError`."""

from __future__ import annotations


class RomakitError(Exception):
    """Base class of every romakit error."""


class InputError(RomakitError, ValueError):
    """Bad input, refused before anything was sent. The message names the offending values."""


class ApiError(RomakitError):
    """An error answer from ROMA Connect LINK (or the sandbox playing it)."""

    def __init__(
        self,
        status: int,
        error_code: str | None,
        error_msg: str | None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(f"HTTP {status} {error_code or '-'}: {error_msg or ''} (request_id={request_id})")

    @property
    def retryable(self) -> bool:
        """429 and 5xx are worth another try; force-offline is idempotent."""
        return self.status == 429 or self.status >= 500


class TransportError(RomakitError):
    """The request could not be completed on the wire (connect, read, timeout)."""

    def __init__(
        self,
        message: str,
        *,
        sent: bool,
        code: str | None = None,
        request_id: str | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        #: True when the request may have reached the service (its effect is unknown).
        self.sent = sent
        #: the romakit error code for the outcome rows (see ``romakit.outcomes``)
        self.code = code
        self.request_id = request_id
        self.event_id = event_id


class MalformedResponse(RomakitError):
    """The far side answered with something that is not the documented shape."""


class MqttError(RomakitError):
    """An MQTT-level failure (connection refused, lost, not connected)."""


class ConnectRefused(MqttError):
    """The broker refused the CONNECT; ``code`` is the CONNACK reason."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"broker refused the connection: {code} {reason}")


class TakeoverRefused(MqttError):
    """The gateway is ONLINE in IoTDA's inventory: logging in as it would knock the field
    gateway off (IoTDA allows one connection per device). ``takeover=True`` allows it."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        super().__init__(
            f"gateway {device_id} is ONLINE in IoTDA: the field gateway is connected, and IoTDA allows one "
            f"connection per device, so logging in as {device_id} would disconnect it (its own reconnects "
            "would then knock this session off in turn). Pass takeover=True to log in anyway, when the "
            "field gateway may be offline for the run")
