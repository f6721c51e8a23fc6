"""Huawei Cloud API signing, pure: canonical request, string to sign, signature.

Two signings, byte for byte as ``huaweicloudsdkcore``'s signers compute them (tests
compare on many generated requests):

* ``SDK-HMAC-SHA256`` (``Signer``): ROMA Connect LINK, IoTDA's basic edition;
* ``V11-HMAC-SHA256`` (``DerivationAKSKSigner``): the *derived* AK/SK of IoTDA's standard
  and enterprise instances. The key is HKDF-SHA256 of the SK (salt: the AK, info:
  ``{YYYYMMDD}/{region}/{service}``), IoTDA's service name is ``iotdm``.

No HTTP library here: the ``httpx.Auth`` classes (``romakit.link.auth.AkSk``,
``romakit.iotda.rest_auth.IotdaAkSk``) pick the headers and call :func:`authorization`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import parse_qsl, quote, unquote

from romakit.errors import InputError

ALGORITHM = "SDK-HMAC-SHA256"
DERIVED_ALGORITHM = "V11-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_HASH = hashlib.sha256(b"").hexdigest()
CONTENT_SHA256 = "X-Sdk-Content-Sha256"
#: IoTDA's derived-signing service name (``huaweicloudsdkiotda``'s client builder sets it)
IOTDA_SERVICE = "iotdm"

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


@lru_cache(maxsize=512)
def canonical_uri(raw_path: str) -> str:
    """Each path segment percent-encoded (safe ``~``), always ending in ``/`` (signing only).

    Cached: a batch sends thousands of requests to one path."""
    uri = "/".join(quote(segment, safe="~") for segment in unquote(raw_path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(raw_query: str) -> str:
    """Parameters as a server reads them (``+`` is a space, blanks kept), sorted, re-encoded.

    Sorting is on the decoded (name, value) pairs, as the SDK does, not on their encodings.
    """
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


def canonical_request(method: str, raw_path: str, raw_query: str, values: Mapping[str, str],
                      payload_hash: str) -> tuple[str, list[str]]:
    """The canonical request and the signed header names (sorted) of ``values``
    (``{lower-case name: stripped value}``, the headers to sign)."""
    signed = sorted(values)
    canonical = "\n".join([
        method.upper(),
        canonical_uri(raw_path),
        canonical_query(raw_query),
        "\n".join(f"{name}:{values[name]}" for name in signed) + "\n",
        ";".join(signed),
        payload_hash,
    ])
    return canonical, signed


def signed_values(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers to sign, ``{lower-case name: value}``: values as the SDK canonicalises them
    (text, UTF-8 on the wire, ``str.strip()``ped; surrogateescape keeps any non-UTF-8 byte),
    names with ``_`` and :data:`UNSIGNED_HEADERS` left out. A repeated header is refused."""
    values: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1").lower()
        if "_" in name or name in UNSIGNED_HEADERS:
            continue
        if name in values:
            raise InputError(f"header {name!r} appears more than once; it cannot be signed")
        values[name] = raw_value.decode("utf-8", "surrogateescape").strip()
    return values


def payload_hash(body: bytes, values: Mapping[str, str]) -> str:
    """The body's SHA-256 (hex), or the ``X-Sdk-Content-Sha256`` override (``UNSIGNED-PAYLOAD``)."""
    if not body:
        return EMPTY_HASH
    # The SDK reads this override back after rewriting the header to latin-1 text.
    override = values.get(CONTENT_SHA256.lower(), "")
    if override:
        return override.encode("utf-8", "surrogateescape").decode("latin-1")
    return hashlib.sha256(body).hexdigest()


def _digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def derived_scope(date: str, region: str, service: str = IOTDA_SERVICE) -> str:
    """``{YYYYMMDD}/{region}/{service}`` for an ``X-Sdk-Date`` of ``date``."""
    return f"{date[:8]}/{region}/{service}"


def derived_key(ak: str, sk: bytes, scope: str) -> bytes:
    """The derived signing key: HKDF-SHA256 (salt ``ak``, key ``sk``, info ``scope``, 32
    bytes), hex-encoded as the SDK keys its HMAC with. Not cached: a process-wide cache
    would keep the secret key as its key after the credentials are gone, to save two HMACs."""
    prk = hmac.new(ak.encode("utf-8"), sk, hashlib.sha256).digest()
    okm = hmac.new(prk, scope.encode("utf-8") + b"\x01", hashlib.sha256).digest()
    return okm.hex().encode("ascii")


def authorization(ak: str, sk: bytes, date: str, canonical: str, signed: list[str], *,
                  region: str | None = None, service: str = IOTDA_SERVICE) -> str:
    """The ``Authorization`` header value: plain ``SDK-HMAC-SHA256``, or with ``region`` the
    derived ``V11-HMAC-SHA256`` of ``service``."""
    headers = ";".join(signed)
    if region is None:
        signature = _hmac_hex(sk, f"{ALGORITHM}\n{date}\n{_digest(canonical)}")
        return f"{ALGORITHM} Access={ak}, SignedHeaders={headers}, Signature={signature}"
    scope = derived_scope(date, region, service)
    signature = _hmac_hex(derived_key(ak, sk, scope), f"{DERIVED_ALGORITHM}\n{date}\n{scope}\n{_digest(canonical)}")
    return f"{DERIVED_ALGORITHM} Credential={ak}/{scope}, SignedHeaders={headers}, Signature={signature}"


__all__ = ["ALGORITHM", "CONTENT_SHA256", "DATE_FORMAT", "DERIVED_ALGORITHM", "EMPTY_HASH", "IOTDA_SERVICE",
           "UNSIGNED_HEADERS", "authorization", "canonical_query", "canonical_request", "canonical_uri",
           "derived_key", "derived_scope", "payload_hash", "signed_values"]
