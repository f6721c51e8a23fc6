"""TLS for romakit's clients: the operating system's trust store, plus extra CA files.

:func:`client_context` starts from the OS trust store (``truststore``: the platform's
verifier on Windows and macOS, the system CA bundle on Linux) and loads any extra CA
files *on top*: a corporate inspection CA and the service's public CA are then both
trusted. An extra CA never replaces the store. Hostname checks and TLS >= 1.2 always.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable
from pathlib import Path

from romakit.errors import InputError


def ca_paths(value: str | os.PathLike | Iterable[str | os.PathLike] | None, setting: str = "ca_file") -> list[str]:
    """CA files from one path, a list, or a string of paths joined by ``os.pathsep``;
    each must exist (an InputError names ``setting`` and the path otherwise)."""
    if value is None or value == "":
        return []
    if isinstance(value, str | os.PathLike):
        items = [p for p in str(value).split(os.pathsep) if p.strip()]
    else:
        items = [str(p) for p in value]
    out = []
    for item in items:
        path = Path(item).expanduser()
        if not path.is_file():
            raise InputError(f"{setting}: CA file {str(path)!r} does not exist")
        out.append(str(path))
    return out


def client_context(ca_files: str | os.PathLike | Iterable[str | os.PathLike] | None = None) -> ssl.SSLContext:
    """A client context that trusts the OS store plus ``ca_files`` (PEM), verifying host names."""
    try:
        import truststore

        ctx: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    except ImportError:  # pragma: no cover - truststore is a dependency; the stdlib store is the fallback
        ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in ca_paths(ca_files):
        try:
            ctx.load_verify_locations(cafile=path)
        except ssl.SSLError as e:
            raise InputError(f"CA file {path!r} is not a PEM certificate file: {e.reason}") from None
    return ctx
