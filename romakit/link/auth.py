"""Client-side authentication for ROMA Connect LINK, as ``httpx.Auth`` classes.

:class:`AkSk` signs each request with ``SDK-HMAC-SHA256`` exactly as Huawei's
``huaweicloudsdkcore.signer.signer.Signer`` does (tests compare the two byte for byte);
:class:`Token` sends an IAM token. Both work with ``httpx.Client`` and ``httpx.AsyncClient``.
Neither ever shows its secret in a repr or an error message.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote

import httpx

from romakit.errors import InputError

__all__ = ["AkSk", "Token"]

_ALGORITHM = "SDK-HMAC-SHA256"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_EMPTY_HASH = hashlib.sha256(b"").hexdigest()
_CONTENT_SHA256 = "X-Sdk-Content-Sha256"

#: Headers present on an httpx request that are left out of the signature. The official SDK
#: never signs them either: its HTTP library (requests) adds them after signing. They are
#: also the ones intermediaries may legitimately drop or rewrite (hop-by-hop headers,
#: message framing, compression negotiation), which would break a signature covering them.
#: ``authorization`` is the signature itself (a stale one from an earlier send is replaced).
UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "accept-encoding",
        "connection",
        "content-length",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


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


def _canonical_uri(raw_path: str) -> str:
    """Each path segment percent-encoded (safe ``~``), always ending in ``/`` (signing only)."""
    uri = "/".join(quote(segment, safe="~") for segment in unquote(raw_path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def _canonical_query(raw_query: str) -> str:
    """Parameters as a server reads them (``+`` is a space, blanks kept), sorted, re-encoded.

    Sorting is on the decoded (name, value) pairs, as the SDK does, not on their encodings.
    """
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


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

        # Values as the SDK canonicalises them: text (UTF-8 on the wire), str.strip()ped.
        # surrogateescape keeps any non-UTF-8 byte exactly as it was sent.
        values: dict[str, str] = {}
        for raw_name, raw_value in headers.raw:
            name = raw_name.decode("latin-1").lower()
            if "_" in name or name in UNSIGNED_HEADERS:
                continue
            if name in values:
                raise InputError(f"header {name!r} appears more than once; it cannot be signed")
            values[name] = raw_value.decode("utf-8", "surrogateescape").strip()
        signed = sorted(values)

        body = request.content
        payload_hash = _EMPTY_HASH
        if body:
            # The SDK reads this override back after rewriting the header to latin-1 text.
            override = values.get(_CONTENT_SHA256.lower(), "")
            if override:
                payload_hash = override.encode("utf-8", "surrogateescape").decode("latin-1")
            else:
                payload_hash = hashlib.sha256(body).hexdigest()

        raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        canonical = "\n".join(
            [
                request.method.upper(),
                _canonical_uri(raw_path),
                _canonical_query(request.url.query.decode("ascii")),
                "\n".join(f"{name}:{values[name]}" for name in signed) + "\n",
                ";".join(signed),
                payload_hash,
            ]
        )
        digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
        string_to_sign = f"{_ALGORITHM}\n{date}\n{digest}"
        signature = hmac.new(self._sk, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"{_ALGORITHM} Access={self._ak}, SignedHeaders={';'.join(signed)}, Signature={signature}"
        )


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
