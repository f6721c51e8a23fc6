"""Checks the widgets make before they send: is the client still open, can its service
still be reached? A closed client or a stopped sandbox must refuse with the reason,
never end in devices reported ``unknown`` that were in fact never sent."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from romakit.operations import LINK, client_kind

#: seconds a reachability probe may take
PROBE_TIMEOUT = 3.0


def closed_reason(client: Any) -> str | None:
    """Why ``client`` can no longer send (it was closed), or None."""
    if getattr(client, "closed", False) is True:
        return f"this {type(client).__name__} for {client.target} was closed: make a new client (and panel) to act again"
    return None


def unreachable_reason(client: Any) -> str | None:
    """Why ``client``'s service cannot be reached now (a TCP connect, no request), or None.

    Only LINK is probed here: a Gateway proves it can reach its broker by connecting."""
    reason = closed_reason(client)
    if reason or client_kind(client) != LINK:
        return reason
    url = urlsplit(str(client.endpoint))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT).close()
    except OSError as e:
        return (f"cannot reach {url.scheme}://{url.hostname}:{port} ({type(e).__name__}: {e.strerror or e}); "
                "is the sandbox (or the network) gone?")
    return None
