"""Network facts with one rule each (no I/O, no DNS lookups)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``) and loopback addresses (127.0.0.0/8, ::1).

    The one rule for "this traffic never leaves the machine": plain HTTP and plain MQTT
    are allowed there without ``allow_insecure``.
    """
    h = host.strip().strip("[]").lower().rstrip(".")
    if h in ("localhost", "localhost.localdomain") or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def unreachable_hint(url: str, error: BaseException) -> str:
    """What to add to "could not reach URL": a TLS certificate not trusted, or the proxy
    the environment routes ``url`` through (its host only: a proxy URL may hold a password)."""
    import urllib.parse
    import urllib.request

    text = f"{error} {error.__cause__ or ''} {error.__context__ or ''}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (" (its TLS certificate is not trusted: add its CA with ca_files= or ROMAKIT_REST_CA_FILE "
                "(--ca-bundle), on top of the OS store)")
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        where = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return (f" (through the proxy {where.hostname}:{where.port or 'default port'} that "
                f"{parts.scheme.upper()}_PROXY names: check it answers, or exempt the host with NO_PROXY)")
    return ""
