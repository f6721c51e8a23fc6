"""Server-side verification of Huawei Cloud AK/SK request signatures (SDK-HMAC-SHA256).

Rebuilds the canonical request from the request *as received* (method, raw path,
raw query string, the signed headers' wire values, the raw body) the way
``huaweicloudsdkcore.signer.signer.Signer`` builds it on the client, and compares
HMAC-SHA256(SK, string-to-sign) with the ``Signature`` of the Authorization header:

- canonical URI: the path percent-decoded, split on ``/``, each segment
  percent-encoded again with only ``~`` safe, always ending in ``/``;
- canonical query: ``name=value`` pairs (decoded, then encoded with ``~`` safe)
  sorted by (name, value), joined by ``&``;
- canonical headers: ``name:value\\n`` for every name in ``SignedHeaders``, value
  stripped; then the ``;``-joined list; then hex SHA-256 of the body (the empty-body
  hash for no body; ``UNSIGNED-PAYLOAD`` when the request says so in
  ``X-Sdk-Content-Sha256``);
- string to sign: ``SDK-HMAC-SHA256\\n{X-Sdk-Date}\\n{hex sha256(canonical request)}``.

Rules of this verifier: ``X-Sdk-Date`` (``YYYYMMDDTHHMMSSZ``, UTC) must be present,
signed, and within 15 minutes of now. Written independently of romakit's client signer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW_S = 15 * 60
EMPTY_HASH = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTH_RE = re.compile(
    r"^\s*SDK-HMAC-SHA256\s+Access=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$"
)


class SignatureError(Exception):
    """The request's AK/SK authentication is refused.

    ``unknown_key`` is True when the signature is well formed but names an AK the
    server does not know (callers may answer that differently from a bad signature).
    """

    def __init__(self, message: str, *, unknown_key: bool = False) -> None:
        super().__init__(message)
        self.unknown_key = unknown_key


def _enc(s: str) -> str:
    return quote(s, safe="~")


def canonical_uri(raw_path: str | bytes) -> str:
    """The signer's canonical URI for a path as sent on the wire (query excluded)."""
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    # the client encodes str -> utf-8 bytes -> %XX; decode the same way round
    url_path = "/".join(_enc(seg) for seg in unquote(path, encoding="utf-8", errors="surrogateescape").split("/"))
    return url_path if url_path.endswith("/") else url_path + "/"


def canonical_query(raw_query: str | bytes) -> str:
    """The signer's canonical query string for a raw (wire) query string."""
    q = raw_query.decode("latin-1") if isinstance(raw_query, bytes) else raw_query
    pairs = sorted(parse_qsl(q, keep_blank_values=True, encoding="utf-8", errors="surrogateescape"))
    return "&".join(f"{_enc(k)}={_enc(v)}" for k, v in pairs)


def canonical_request(
    method: str,
    raw_path: str | bytes,
    raw_query: str | bytes,
    headers: Mapping[str, str],
    signed_headers: list[str],
    body_hash: str,
) -> str:
    """The canonical request text; ``headers`` maps lower-case names to wire values."""
    canon_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed_headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            canon_headers,
            ";".join(signed_headers),
            body_hash,
        ]
    )


def signature_for(sk: str, x_sdk_date: str, canon_request: str) -> str:
    """Hex HMAC-SHA256, keyed with the SK, of the string to sign for ``canon_request``."""
    digest = hashlib.sha256(canon_request.encode("utf-8", "surrogateescape")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{x_sdk_date}\n{digest}"
    return hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def header_map(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs -> {lower-case name: value} (UTF-8; repeated names joined by ``,``)."""
    out: dict[str, str] = {}
    for k, v in raw_headers:
        name = k.decode("latin-1").lower()
        val = v.decode("utf-8", "surrogateescape")
        out[name] = f"{out[name]},{val}" if name in out else val
    return out


def verify(
    method: str,
    raw_path: str | bytes,
    raw_query: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    *,
    now: datetime | None = None,
    max_skew_s: float = MAX_SKEW_S,
) -> str:
    """Check an SDK-HMAC-SHA256 signed request; return its AK, or raise SignatureError.

    ``headers`` maps lower-case names to wire values (see :func:`header_map`);
    ``secret_for(ak)`` returns the SK for a known AK, else None.
    """
    auth = headers.get("authorization")
    if not auth:
        raise SignatureError("no Authorization header")
    m = _AUTH_RE.match(auth)
    if not m:
        raise SignatureError("Authorization header is not 'SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...'")
    ak, signed, sig = m.group(1), m.group(2), m.group(3).lower()
    signed_headers = signed.split(";")
    if signed_headers != sorted(signed_headers) or any(h != h.lower() or not h for h in signed_headers):
        raise SignatureError("SignedHeaders must be lower-case names, sorted")
    missing = [h for h in signed_headers if h not in headers]
    if missing:
        raise SignatureError(f"signed header(s) not in the request: {', '.join(missing)}")
    if "x-sdk-date" not in signed_headers:
        raise SignatureError("X-Sdk-Date must be present and signed")
    x_date = headers["x-sdk-date"].strip()
    try:
        when = datetime.strptime(x_date, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(f"X-Sdk-Date {x_date!r} is not YYYYMMDDTHHMMSSZ") from None
    now = now or datetime.now(UTC)
    if abs((now - when).total_seconds()) > max_skew_s:
        raise SignatureError(f"X-Sdk-Date {x_date} is more than {max_skew_s:.0f} s away from the server clock")
    if not body:
        body_hash = EMPTY_HASH
    else:
        body_hash = hashlib.sha256(body).hexdigest()
        declared = headers.get("x-sdk-content-sha256", "").strip()
        if declared == UNSIGNED_PAYLOAD:
            body_hash = UNSIGNED_PAYLOAD
        elif declared and declared.lower() != body_hash:
            raise SignatureError("X-Sdk-Content-Sha256 does not match the body")
    sk = secret_for(ak)
    if sk is None:
        raise SignatureError("unknown access key", unknown_key=True)
    expected = signature_for(sk, x_date, canonical_request(method, raw_path, raw_query, headers, signed_headers, body_hash))
    if not hmac.compare_digest(expected, sig):
        raise SignatureError("signature does not match")
    return ak
