"""Client-side authentication for ROMA Connect LINK, as ``httpx.Auth`` classes.

:class:`AkSk` signs each request with ``SDK-HMAC-SHA256`` exactly as Huawei's
``huaweicloudsdkcore.signer.signer.Signer`` does (tests compare the two byte for byte),
with ``X-Project-Id`` and ``X-Security-Token`` (temporary keys) as the SDK sends them;
:class:`Token` sends an IAM token. Both come fixed (pasted) or from IAM
(``Token.from_password``, ``Token.from_agency``, ``AkSk.from_agency``,
``AkSk.from_token``), and then renew themselves before they expire (see
:mod:`romakit.link.lease`). Both work with ``httpx.Client`` and ``httpx.AsyncClient``.
Neither ever shows its secret in a repr or an error message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack

import httpx

from romakit.errors import ApiError, InputError
from romakit.link.iam import IamClient, Issued, check_duration
from romakit.link.lease import Lease, Renewing
from romakit.signing import CONTENT_SHA256 as _CONTENT_SHA256
from romakit.signing import DATE_FORMAT as _DATE_FORMAT
from romakit.signing import (
    UNSIGNED_HEADERS,  # noqa: F401 - re-exported (tests, callers)
    authorization,
    canonical_request,
    payload_hash,
    signed_values,
)

__all__ = ["AkSk", "IamKwargs", "IamOptions", "Token"]


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


def _epoch(value: datetime | float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InputError(f"{name} must be a datetime or epoch seconds, got {type(value).__name__}")


class IamKwargs(TypedDict, total=False):
    """How a renewing credential reaches IAM: the keywords its factories share (:class:`IamOptions`)."""

    region: str | None
    iam_endpoint: str | None
    project_id: str | None
    ca_files: Any
    allow_insecure: bool
    timeout: float
    refresh_margin: float | None
    now: Callable[[], datetime] | None


@dataclass(frozen=True)
class IamOptions:
    """How a renewing credential reaches IAM, once for its four factories.

    ``region`` gives IAM's endpoint (``iam_endpoint`` overrides it); ``project_id`` scopes
    what is issued; TLS is the OS store plus ``ca_files``; ``timeout`` bounds each call;
    ``refresh_margin`` says how long before expiry to renew (None: the lease's rule);
    ``now`` replaces the clock (tests; a naive datetime is UTC).
    """

    region: str | None = None
    iam_endpoint: str | None = None
    project_id: str | None = None
    ca_files: Any = None
    allow_insecure: bool = False
    timeout: float = 30.0
    refresh_margin: float | None = None
    now: Callable[[], datetime] | None = None

    def client(self) -> IamClient:
        """The IAM client of the region (or at ``iam_endpoint``), over romakit's TLS (OS store + CAs)."""
        from romakit.regions import endpoints
        from romakit.tls import client_context

        endpoint = self.iam_endpoint
        if endpoint is None:
            if self.region is None:
                raise InputError("IAM needs a region (e.g. region='cn-north-4') or iam_endpoint")
            endpoint = endpoints(self.region).iam
        return IamClient(endpoint, verify=client_context(self.ca_files), allow_insecure=self.allow_insecure,
                         timeout=self.timeout)

    def lease(self, issue: Callable[[], Issued], what: str) -> Lease:
        """A lease renewing what ``issue`` asks IAM for, on this clock and margin."""
        return Lease(issue, what=what, margin=self.refresh_margin, clock=_clock(self.now))


def _clock(now: Callable[[], datetime] | None) -> Callable[[], float]:
    if now is None:
        import time

        return time.time
    return lambda: _epoch(now(), "now()") or 0.0


class AkSk(Renewing):
    """Signs requests with an access key / secret key pair (``SDK-HMAC-SHA256``).

    Adds ``X-Sdk-Date`` (now, UTC), ``Host`` if missing, ``X-Project-Id`` and
    ``X-Security-Token`` when given, ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` for a
    Content-Type other than JSON/BSON (as the SDK does), then ``Authorization``. Signed
    headers are all headers except names containing ``_`` and :data:`UNSIGNED_HEADERS`.
    ``now`` replaces the clock (tests); a naive datetime is taken as UTC.

    Temporary keys (an agency, STS) carry ``security_token`` and may say ``expires_at``;
    :meth:`from_agency` and :meth:`from_token` get them from IAM and renew them.
    """

    requires_request_body = True

    def __init__(
        self,
        ak: str,
        sk: str,
        *,
        project_id: str | None = None,
        security_token: str | None = None,
        expires_at: datetime | float | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        ak = _check_header_token("ak", ak, secret=True)  # may be a pasted SK
        sk = _check_secret("sk", sk)
        self._project_id = (
            None
            if project_id is None
            else _check_header_token("project_id", project_id, secret=False)
        )
        if security_token is not None:
            _check_header_token("security_token", security_token, secret=True)
        self._fixed = Issued(sk, _epoch(expires_at, "expires_at"), access=ak, security_token=security_token)
        self._now = now or (lambda: datetime.now(UTC))

    @classmethod
    def _leased(cls, lease: Lease, project_id: str | None, now: Callable[[], datetime] | None) -> AkSk:
        self = cls.__new__(cls)
        self._project_id = project_id
        self._fixed = None
        self._lease = lease
        self._now = now or (lambda: datetime.now(UTC))
        return self

    @classmethod
    def from_agency(cls, domain: str, agency: str, *, auth: httpx.Auth, duration: int = 3600,
                    **iam: Unpack[IamKwargs]) -> AkSk:
        """Temporary AK/SK of agency ``agency`` in the customer's account ``domain``, asked
        from IAM with ``auth`` (your own AK/SK or token); renewed before they expire.
        ``iam``: how IAM is reached (:class:`IamOptions`)."""
        _check_names(domain=domain, agency=agency)
        duration = check_duration(duration)
        o = IamOptions(**iam)
        client = o.client()
        lease = o.lease(lambda: client.security_token(domain=domain, agency=agency, auth=auth, duration=duration),
                        f"temporary key of agency {agency!r} in {domain!r}")
        return cls._leased(lease, o.project_id, o.now)

    @classmethod
    def from_token(cls, token: Token | str, *, duration: int = 3600, **iam: Unpack[IamKwargs]) -> AkSk:
        """Temporary AK/SK made from an IAM token (``POST /v3.0/OS-CREDENTIAL/securitytokens``);
        a renewing :class:`Token` keeps them renewable. ``iam``: :class:`IamOptions`."""
        duration = check_duration(duration)
        o = IamOptions(**iam)
        client = o.client()
        tok = token if isinstance(token, Token) else Token(token)

        def issue() -> Issued:
            cred = tok._credential()
            try:
                return client.security_token(token=cred.secret, duration=duration)
            except ApiError as e:  # the token itself expired early: renew it once
                if e.status != 401 or tok._lease is None:
                    raise
                return client.security_token(token=tok._lease.renew(cred).secret, duration=duration)

        return cls._leased(o.lease(issue, "temporary key from a token"), o.project_id or tok.project_id, o.now)

    @property
    def ak(self) -> str:
        """The access key id (not a secret; it travels in every Authorization header)."""
        return self._credential_peek().access or ""

    def _credential_peek(self) -> Issued:
        return self._lease.peek() if self._lease is not None else self._fixed  # type: ignore[return-value]

    @property
    def project_id(self) -> str | None:
        """The project id sent as ``X-Project-Id``, if any."""
        return self._project_id

    @property
    def temporary(self) -> bool:
        """True for a key with a security token (an agency's, STS)."""
        return self._credential_peek().security_token is not None

    def __repr__(self) -> str:
        cred = self._credential_peek()
        parts = [f"ak={_mask(cred.access or '')!r}", "sk='***'"]
        if self._project_id is not None:
            parts.append(f"project_id={self._project_id!r}")
        if cred.security_token is not None:
            parts.append("security_token='***'")
        if self._lease is not None:
            parts.append(f"renews={self._lease.what!r}")
        return f"AkSk({', '.join(parts)})"

    def _date(self) -> str:
        moment = self._now()
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return moment.strftime(_DATE_FORMAT)

    def sign(self, request: httpx.Request) -> None:
        """Add the date, scope and ``Authorization`` headers to ``request`` (body must be read)."""
        self._apply(request, self._credential_peek())

    def _apply(self, request: httpx.Request, cred: Issued) -> None:
        headers = request.headers
        headers.pop("Authorization", None)
        date = self._date()
        headers["X-Sdk-Date"] = date
        if self._project_id is not None:
            headers["X-Project-Id"] = self._project_id
        if cred.security_token is not None:
            headers["X-Security-Token"] = cred.security_token
        else:
            headers.pop("X-Security-Token", None)
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
        headers["Authorization"] = authorization(cred.access or "", cred.secret.encode("utf-8"), date,
                                                 canonical, signed)


class Token(Renewing):
    """Sends an IAM token as ``X-Auth-Token``: a pasted one (``Token(t)``, optionally
    with its ``expires_at``), or one from IAM that renews itself
    (:meth:`from_password`, :meth:`from_agency`)."""

    def __init__(self, token: str, *, expires_at: datetime | float | None = None,
                 project_id: str | None = None) -> None:
        self._fixed = Issued(_check_header_token("token", token, secret=True), _epoch(expires_at, "expires_at"),
                             project_id=project_id)

    @classmethod
    def _leased(cls, lease: Lease) -> Token:
        self = cls.__new__(cls)
        self._fixed = None
        self._lease = lease
        return self

    @classmethod
    def from_password(cls, domain: str, user: str, password: str, **iam: Unpack[IamKwargs]) -> Token:
        """A token for IAM user ``user`` of account ``domain``, scoped to ``region``'s project
        (asked at once: a wrong password is said here); renewed before it expires (24 h).
        ``iam``: how IAM is reached (:class:`IamOptions`)."""
        _check_names(domain=domain, user=user)
        _check_secret("password", password)
        o = IamOptions(**iam)
        client = o.client()
        return cls._leased(o.lease(lambda: client.password_token(domain, user, password, region=o.region,
                                                                  project_id=o.project_id),
                                   f"token of {user!r} in {domain!r}"))

    @classmethod
    def from_agency(cls, domain: str, agency: str, *, auth: httpx.Auth, **iam: Unpack[IamKwargs]) -> Token:
        """A token of agency ``agency`` in the customer's account ``domain`` (assume role),
        asked with ``auth`` (your own credentials); renewed before it expires.
        ``iam``: :class:`IamOptions`."""
        _check_names(domain=domain, agency=agency)
        o = IamOptions(**iam)
        client = o.client()
        return cls._leased(o.lease(lambda: client.agency_token(domain, agency, auth=auth, region=o.region,
                                                                project_id=o.project_id),
                                   f"token of agency {agency!r} in {domain!r}"))

    @property
    def project_id(self) -> str | None:
        """The project the token is scoped to, when IAM said (or it was given)."""
        cred = self._lease.peek() if self._lease is not None else self._fixed
        return cred.project_id if cred is not None else None

    def __repr__(self) -> str:
        renews = f", renews={self._lease.what!r}" if self._lease is not None else ""
        return f"Token(token='***'{renews})"

    def _apply(self, request: httpx.Request, cred: Issued) -> None:
        request.headers["X-Auth-Token"] = cred.secret


def _check_names(**names: object) -> None:
    """Account, user and agency names: non-empty printable strings (named when not)."""
    for name, value in names.items():
        if not isinstance(value, str) or not value.strip() or not value.isprintable():
            raise InputError(f"{name} must be a non-empty printable string")

