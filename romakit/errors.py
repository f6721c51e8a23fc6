"""Typed exceptions: everything romakit raises derives from :class:`RomakitError`."""

from __future__ import annotations


class RomakitError(Exception):
    """Base class of every romakit error."""


class InputError(RomakitError, ValueError):
    """Bad input, refused before anything was sent. The message names the offending values."""


class ClientClosed(InputError):
    """A closed client was used (``close()``, its sandbox's ``close()`` or a notebook's
    clean-up): refused before anything was sent. Make a new one; in a notebook, run its
    set-up cell again. IPython shows the message alone, not a stack: nothing is broken."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook: the one line a reader needs
        return [f"{type(self).__name__}: {self}"]


def closed_message(what: str, why: str | None = None) -> str:
    """What a closed client says: ``what`` (e.g. ``"LinkClient for instance X"``) was
    closed (``why``: by what), nothing sent, and what to do."""
    by = f" ({why})" if why else ""
    return (f"this {what} was closed{by}: nothing was sent. Make a new one; in a notebook, run the set-up "
            "cell again (the sandbox and its clients)")


class ApiError(RomakitError):
    """An error answer from ROMA Connect LINK (or the sandbox playing it)."""

    def __init__(
        self,
        status: int,
        error_code: str | None,
        error_msg: str | None,
        request_id: str | None = None,
        retry_after: float | None = None,
        clock_skew: float | None = None,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.retry_after = retry_after
        #: seconds the server's clock (its ``Date`` header) is ahead of ours; None if unknown
        self.clock_skew = clock_skew
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"HTTP {self.status} {self.error_code or '-'}: {self.error_msg or ''} (request_id={self.request_id})"
        hint = skew_hint(self.clock_skew) if self.auth_refused else None
        return f"{text}; {hint}" if hint else text

    @property
    def auth_refused(self) -> bool:
        """The credentials were refused (401/403, or an auth code): trying again with the
        same key only counts towards its lock-out (five failures lock it for five minutes)."""
        from romakit.outcomes import AUTH_CODES

        return self.status in (401, 403) or (self.error_code or "") in AUTH_CODES

    @property
    def throttled(self) -> bool:
        """429, or a throttling code under another status."""
        from romakit.outcomes import THROTTLE_CODES

        return self.status == 429 or (self.error_code or "") in THROTTLE_CODES

    @property
    def retryable(self) -> bool:
        """429 and 5xx (and throttling codes) are worth another try; refused credentials never."""
        from romakit.outcomes import transient_status

        return not self.auth_refused and (transient_status(self.status) or self.throttled)


#: a clock further off than this is named as the likely cause of a refused signature
SKEW_HINT_S = 5 * 60


def skew_hint(skew: float | None) -> str | None:
    """What to say about a clock ``skew`` seconds behind the server (negative: ahead)."""
    if skew is None or abs(skew) < SKEW_HINT_S:
        return None
    way = "behind" if skew > 0 else "ahead of"
    return (f"likely cause: this machine's clock is {abs(skew) / 60:.0f} min {way} the server's "
            "(its Date header); AK/SK signatures more than 15 min off are refused: fix the clock (NTP)")


class AuthRefused(ApiError):
    """The pre-flight read was refused (401/403): nothing of the batch was sent."""


class TargetNotFound(ApiError):
    """The pre-flight read says the instance or project does not exist (a mistyped id):
    nothing of the batch was sent."""

    def _message(self) -> str:
        return (f"{super()._message()}; the instance or project does not exist: check the instance id and "
                "project id (the console shows both)")


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


class DeadlineExceeded(TransportError):
    """An answer did not arrive whole within the client's ``deadline`` (a service sending
    it byte by byte, or not at all); its request may have reached the service."""


class AnswerTooLarge(MalformedResponse):
    """An answer grew past the client's ``max_answer_bytes``: reading stopped there."""


class ListingContradiction(MalformedResponse):
    """The pages of a listing contradict each other or their own ``total`` (an empty page
    before the total is reached, more devices than the total, a total that keeps growing)."""


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
