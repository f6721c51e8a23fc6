"""AK/SK signing for IoTDA's application-side REST API, plain or derived (``httpx.Auth``).

IoTDA's basic edition takes the plain ``SDK-HMAC-SHA256`` signature (as ROMA Connect
does); standard and enterprise instances take the *derived* AK/SK signature
(``V11-HMAC-SHA256``, service ``iotdm``, scoped to a region), the one
``huaweicloudsdkcore``'s ``DerivationAKSKSigner`` makes when
``BasicCredentials.with_derived_predicate(...)`` is set. Both are computed by
:mod:`romakit.signing` and match the SDK byte for byte (tests compare them).

``derived=None`` decides per request the way the SDK's default derived predicate does:
derived unless the host is a default Huawei Cloud endpoint
(``{service}[.{region}].myhuaweicloud.com``), i.e. derived for an instance's own
access address.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from datetime import UTC, datetime

import httpx

from romakit import signing
from romakit.errors import InputError

#: the SDK's ``_DEFAULT_ENDPOINT_REG``: hosts where its default predicate signs plainly
DEFAULT_ENDPOINT = re.compile(r"^[a-z][a-z0-9-]+(\.[a-z]{2,}-[a-z]+-\d{1,2})?\.(my)?(huaweicloud|myhwclouds).(com|cn)")
_REGION = re.compile(r"^[a-z]{2,}-[a-z0-9-]+$")


def _token(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{name} must be a non-empty string")
    if not (value.isascii() and value.isprintable()) or any(c.isspace() for c in value):
        raise InputError(f"{name} must be printable ASCII without whitespace")
    return value


class IotdaAkSk(httpx.Auth):
    """Signs IoTDA REST requests with an AK/SK pair: plain, derived, or chosen per host.

    ``derived=True`` needs ``region`` (e.g. ``"cn-north-4"``); ``derived=None`` (default)
    signs derived for an instance's own address when ``region`` is given, as the SDK's
    default predicate does. Adds ``X-Sdk-Date``, ``Host``, ``X-Project-Id`` and
    ``X-Security-Token`` when given, ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` for a
    non-JSON body, then ``Authorization``. Never shows the SK or token.
    """

    requires_request_body = True

    def __init__(self, ak: str, sk: str, *, region: str | None = None, derived: bool | None = None,
                 project_id: str | None = None, security_token: str | None = None,
                 service: str = signing.IOTDA_SERVICE, now: Callable[[], datetime] | None = None) -> None:
        self._ak = _token("ak", ak)
        if not isinstance(sk, str) or not sk:
            raise InputError("sk must be a non-empty string")
        self._sk = sk.encode("utf-8")
        if region is not None and (not isinstance(region, str) or not _REGION.match(region)):
            raise InputError(f"region must look like 'cn-north-4', got {region!r}")
        if derived and region is None:
            raise InputError("derived signing needs region= (the instance's region, e.g. 'cn-north-4')")
        self.region, self.derived, self.service = region, derived, service
        self._project_id = None if project_id is None else _token("project_id", project_id)
        self._security_token = None if security_token is None else _token("security_token", security_token)
        self._now = now or (lambda: datetime.now(UTC))

    @property
    def ak(self) -> str:
        """The access key id (not a secret)."""
        return self._ak

    def __repr__(self) -> str:
        mode = {True: "derived", False: "plain", None: "auto"}[self.derived]
        token = ", security_token='***'" if self._security_token else ""
        return f"IotdaAkSk(ak={self._ak[:4] + '…'!r}, sk='***', region={self.region!r}, signing={mode!r}{token})"

    def derives_for(self, host: str) -> bool:
        """Whether a request to ``host`` is signed derived."""
        if self.derived is not None:
            return self.derived
        return self.region is not None and not DEFAULT_ENDPOINT.match(host)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Add the date, scope and ``Authorization`` headers to ``request`` (body read)."""
        headers = request.headers
        headers.pop("Authorization", None)
        moment = self._now()
        date = (moment.astimezone(UTC) if moment.tzinfo else moment).strftime(signing.DATE_FORMAT)
        headers["X-Sdk-Date"] = date
        if self._project_id is not None:
            headers["X-Project-Id"] = self._project_id
        if self._security_token is not None:
            headers["X-Security-Token"] = self._security_token
        if "Host" not in headers:
            headers["Host"] = request.url.netloc.decode("ascii")
        ctype = headers.get("Content-Type")
        if ctype and not ctype.startswith(("application/json", "application/bson")):
            headers[signing.CONTENT_SHA256] = "UNSIGNED-PAYLOAD"
        values = signing.signed_values(headers.raw)
        raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        canonical, signed = signing.canonical_request(request.method, raw_path, request.url.query.decode("ascii"),
                                                      values, signing.payload_hash(request.content, values))
        region = self.region if self.derives_for(request.url.host) else None
        headers["Authorization"] = signing.authorization(self._ak, self._sk, date, canonical, signed,
                                                         region=region, service=self.service)


__all__ = ["DEFAULT_ENDPOINT", "IotdaAkSk"]
