"""Client-side authentication for ROMA Connect LINK, as ``httpx.Auth`` classes.

:class:`AkSk` signs each request with ``SDK-HMAC-SHA256`` exactly as Huawei's
``huaweicloudsdkcore.signer.signer.Signer`` does (tests compare the two byte for byte);
:class:`Token` sends an IAM token. Both work with ``httpx.Client`` and ``httpx.AsyncClient``.
Neither ever shows its secret in a repr or an error message.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import UTC, datetime

import httpx

from romakit.errors import InputError
from romakit.signing import CONTENT_SHA256 as _CONTENT_SHA256
from romakit.signing import DATE_FORMAT as _DATE_FORMAT
from romakit.signing import (
    UNSIGNED_HEADERS,  # noqa: F401 - re-exported (tests, callers)
    authorization,
    canonical_request,
    payload_hash,
    signed_values,
)

__all__ = ["AkSk", "Token"]

def _is_header_token(value: str) -> bool:
    """True for printable ASCII without whitespace: safe as a header value, one token."""
    return value.isascii() and value.isprintable() and not any(c.isspace() for c in value)


def _check_secret(name: str, value: object) -> str:
    """Refuse an empty or non-string secret without ever echoing it."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{name} must be a non-empty string")
    return value


def _check_header_token(name: str, value: object, *, secret: bool) -> str:
    """Refuse a value that cannot travel as a single header token; secrets are not echoed."""
    text = _check_secret(name, value)
    if not _is_header_token(text):
        shown = "" if secret else f" (got {text!r})"
        raise InputError(f"{name} must be printable ASCII without whitespace{shown}")
    return text


def _mask(value: str) -> str:
    """First four characters and an ellipsis: enough to tell keys apart in a log."""
    return value[:4] + "…"


class AkSk(httpx.Auth):
    """Signs requests with an access key / secret key pair (``SDK-HMAC-SHA256``).

    Adds ``X-Sdk-Date`` (now, UTC), ``Host`` if missing, ``X-Project-Id`` and
    ``X-Security-Token`` when given, ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` for a
    Content-Type other than JSON/BSON (as the SDK does), then ``Authorization``. Signed
    headers are all headers except names containing ``_`` and :data:`UNSIGNED_HEADERS`.
    ``now`` replaces the clock (tests); a naive datetime is taken as UTC.
    """

    requires_request_body = True

    def __init__(
        self,
        ak: str,
        sk: str,
        *,
        project_id: str | None = None,
        security_token: str | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._ak = _check_header_token("ak", ak, secret=True)  # may be a pasted SK
        self._sk = _check_secret("sk", sk).encode("utf-8")
        self._project_id = (
            None
            if project_id is None
            else _check_header_token("project_id", project_id, secret=False)
        )
        self._security_token = (
            None
            if security_token is None
            else _check_header_token("security_token", security_token, secret=True)
        )
        self._now = now or (lambda: datetime.now(UTC))

    @property
    def ak(self) -> str:
        """The access key id (not a secret; it travels in every Authorization header)."""
        return self._ak

    @property
    def project_id(self) -> str | None:
        """The project id sent as ``X-Project-Id``, if any."""
        return self._project_id

    def __repr__(self) -> str:
        parts = [f"ak={_mask(self._ak)!r}", "sk='***'"]
        if self._project_id is not None:
            parts.append(f"project_id={self._project_id!r}")
        if self._security_token is not None:
            parts.append("security_token='***'")
        return f"AkSk({', '.join(parts)})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign ``request`` in place and send it once (sync and async clients alike)."""
        self.sign(request)
        yield request

    def _date(self) -> str:
        moment = self._now()
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return moment.strftime(_DATE_FORMAT)

    def sign(self, request: httpx.Request) -> None:
        """Add the date, scope and ``Authorization`` headers to ``request`` (body must be read)."""
        headers = request.headers
        headers.pop("Authorization", None)
        date = self._date()
        headers["X-Sdk-Date"] = date
        if self._project_id is not None:
            headers["X-Project-Id"] = self._project_id
        if self._security_token is not None:
            headers["X-Security-Token"] = self._security_token
        if "Host" not in headers:
            headers["Host"] = request.url.netloc.decode("ascii")
        content_type = next(
            (
                v.decode("utf-8", "surrogateescape")
                for k, v in headers.raw
                if k.lower() == b"content-type"
            ),
            None,
        )
        if content_type and not content_type.startswith(("application/json", "application/bson")):
            headers[_CONTENT_SHA256] = "UNSIGNED-PAYLOAD"

        values = signed_values(headers.raw)
        raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        canonical, signed = canonical_request(request.method, raw_path, request.url.query.decode("ascii"),
                                              values, payload_hash(request.content, values))
        headers["Authorization"] = authorization(self._ak, self._sk, date, canonical, signed)


class Token(httpx.Auth):
    """Sends an IAM token as ``X-Auth-Token``."""

    def __init__(self, token: str) -> None:
        self._token = _check_header_token("token", token, secret=True)

    def __repr__(self) -> str:
        return "Token(token='***')"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the token header and send the request once."""
        request.headers["X-Auth-Token"] = self._token
        yield request
