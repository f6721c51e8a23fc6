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
