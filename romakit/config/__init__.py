"""Settings -> clients: the one place romakit turns where-and-how-to-connect into a
:class:`~romakit.LinkClient` or :class:`~romakit.Gateway` (``rk.connect()`` and the
``romakit`` command both come here).

Where ``rk.connect()`` takes its connection from, in order:

1. ``rk.connect("name")``: the ``[name]`` section of the profiles file
   (``ROMAKIT_CONFIG``, else ``<user config dir>/romakit/profiles.toml``);
   ``rk.connect("sandbox")`` always means the built-in sandbox.
2. ``rk.connect()`` with any of the variables below set: a profile read from the
   environment (``kind="env"``).
3. ``rk.connect()`` with ``ROMAKIT_PROFILE=name`` set: that file profile.
4. Otherwise the sandbox, started once per process and reused (``kind="sandbox"``).

The ``romakit`` command resolves a profile from a :func:`chain` of sources instead
(first wins: its flags, the environment, what the journal recorded of the operation)
and asks it for a client (:meth:`Profile.link_client`, :meth:`Profile.gateway`).

Secrets (SK, token, device secret) are held but never shown: reprs mask them, and
error messages name keys, never values.

The settings, one row each in :data:`SETTINGS`:
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from romakit.config.profile import Profile, config_path, env_profile, file_profile, resolve
from romakit.config.settings import (
    ENV_ALIASES,
    ENV_VARS,
    SETTINGS,
    Setting,
    Source,
    chain,
    collect,
    env_help,
    settings_for,
)

if TYPE_CHECKING:  # pragma: no cover
    from romakit.iotda.gateway import Gateway
    from romakit.link.client import LinkClient
    from romakit.sandboxes import Sandbox

log = logging.getLogger("romakit.config")

__doc__ = f"{__doc__ or ''}\n{env_help()}\n"
SANDBOX = "sandbox"

_sandbox: Sandbox | None = None
_sandbox_lock = threading.Lock()


class Connection:
    """What ``rk.connect()`` returns: ``.link`` (a LinkClient), ``.gateway(id)`` and ``.kind``.

    ``kind`` is ``"sandbox"``, ``"env"`` or ``"profile"``. Clients are made on first use.
    """

    def __init__(self, kind: str, profile: Profile | None = None, sandbox: Sandbox | None = None) -> None:
        self.kind = kind
        self.profile = profile
        self.sandbox = sandbox
        self._link: LinkClient | None = None
        self._lock = threading.Lock()

    @property
    def link(self) -> LinkClient:
        """The LINK client (made once, then reused)."""
        with self._lock:
            if self._link is None:
                self._link = self.sandbox.link_client() if self.sandbox is not None else self._profile().link_client()
            return self._link

    def gateway(self, id: str | None = None, **options: Any) -> Gateway:  # noqa: A002 - the natural name
        """A :class:`~romakit.Gateway` for ``id`` (default: the profile's or the sandbox's first)."""
        if self.sandbox is not None:
            return self.sandbox.gateway(id or self.sandbox.gateways()[0], **options)
        return self._profile().gateway(id, **options)

    def _profile(self) -> Profile:
        assert self.profile is not None, "a Connection has a profile or a sandbox"
        return self.profile

    def __repr__(self) -> str:
        if self.sandbox is not None:
            return f"Connection(kind='sandbox', {self.sandbox!r})"
        return f"Connection(kind={self.kind!r}, {self.profile!r})"

    def close(self) -> None:
        """Close the LINK client (the shared sandbox keeps running for the next connect)."""
        with self._lock:
            if self._link is not None:
                self._link.close()
                self._link = None


def _shared_sandbox(**options: Any) -> Sandbox:
    global _sandbox
    with _sandbox_lock:
        if _sandbox is None or not _sandbox.running:  # never started, or closed since
            from romakit.sandboxes import sandbox

            _sandbox = sandbox(**options)
        elif options:
            log.info("reusing the running sandbox; options %s ignored (close it to start afresh)", sorted(options))
        return _sandbox


def connect(profile: str | None = None, **sandbox_options: Any) -> Connection:
    """Connect to a profile, the environment, or (by default) the built-in sandbox.

    ``sandbox_options`` (``devices=``, ``seed=``, faults) apply when a sandbox is started.
    """
    if profile == SANDBOX:
        return Connection(SANDBOX, sandbox=_shared_sandbox(**sandbox_options))
    if profile is not None:
        return Connection("profile", profile=file_profile(profile))
    env = env_profile()
    if env is not None:
        return Connection("env", profile=env)
    named = os.environ.get("ROMAKIT_PROFILE")
    if named:
        if named == SANDBOX:
            return Connection(SANDBOX, sandbox=_shared_sandbox(**sandbox_options))
        return Connection("profile", profile=file_profile(named))
    return Connection(SANDBOX, sandbox=_shared_sandbox(**sandbox_options))


__all__ = ["Connection", "ENV_ALIASES", "ENV_VARS", "Profile", "SETTINGS", "Setting", "Source", "chain", "collect",
           "config_path", "connect", "env_help", "env_profile", "file_profile", "resolve", "settings_for"]
