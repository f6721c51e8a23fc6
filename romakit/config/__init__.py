"""Settings -> clients: the one place romakit turns where-and-how-to-connect into a
:class:`~romakit.LinkClient` or :class:`~romakit.Gateway` (``rk.connect()`` and the
``romakit`` command both come here).

The credential chain, the same for notebooks, ``rk.connect()`` and the ``romakit``
command (:func:`chain`; first wins, each setting on its own, the credentials as one):

1. explicit values: ``rk.connect(region="cn-north-4", instance_id=..., agency=...)``
   arguments, or the command's flags;
2. a romakit profile: ``rk.connect("name")`` or ``ROMAKIT_PROFILE=name``, the
   ``[name]`` section of the profiles file (``ROMAKIT_CONFIG``, else
   ``<user config dir>/romakit/profiles.toml``); ``"sandbox"`` always means the sandbox;
3. the ``ROMAKIT_*`` variables below;
4. the official SDK's ``HUAWEICLOUD_SDK_AK``, ``_SK``, ``_SECURITY_TOKEN``,
   ``_PROJECT_ID``, ``_IAM_ENDPOINT``;
5. the SDK's credentials file ``~/.huaweicloud/credentials`` (or
   ``HUAWEICLOUD_SDK_CREDENTIALS_FILE``), section ``[basic]``;
6. for ``romakit resume``, what the journal recorded of the operation.

When none of them says anything, ``rk.connect()`` is the sandbox, started once per
process and reused (``kind="sandbox"``). ``Connection.sources()`` says where each
setting came from (never its value); bad settings are refused, naming the setting and
where it came from, before anything is sent.

Secrets (SK, token, device secret) are held but never shown: reprs mask them, and
error messages name keys, never values.

The settings, one row each in :data:`SETTINGS`:
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from romakit.config.profile import (
    Profile,
    config_path,
    env_profile,
    file_profile,
    profile_source,
    resolve,
)
from romakit.config.settings import (
    CREDENTIALS,
    ENV_ALIASES,
    ENV_VARS,
    SETTINGS,
    Setting,
    Source,
    chain,
    collect,
    collect_with_origin,
    env_help,
    sdk_credentials_path,
    settings_for,
)
from romakit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from romakit.iotda.gateway import Gateway
    from romakit.link.client import LinkClient
    from romakit.sandboxes import Sandbox
    from romakit.store.journal import Journal

log = logging.getLogger("romakit.config")

__doc__ = f"{__doc__ or ''}\n{env_help()}\n"
SANDBOX = "sandbox"

_sandbox: Sandbox | None = None
_sandbox_lock = threading.Lock()


class Connection:
    """What ``rk.connect()`` returns: ``.link`` (a LinkClient), ``.gateway(id)``, ``.kind``,
    :meth:`sources` (where each setting came from) and ``.journal`` (where its clients journal).

    ``kind`` is ``"sandbox"``, ``"profile"`` (a profile was named) or ``"env"`` (the
    rest of the chain). Clients are made on first use.
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

    @property
    def journal(self) -> Journal:
        """Where this connection's clients journal (a profile's ``journal`` key, under
        ``ROMAKIT_JOURNAL``; the sandbox journal for a sandbox, started here or named by the
        settings); ``rk.journal(url=conn.journal)`` lists it."""
        if self.sandbox is not None:
            return self.sandbox.journal
        return self._profile().journal_of_clients()

    def _profile(self) -> Profile:
        assert self.profile is not None, "a Connection has a profile or a sandbox"
        return self.profile

    def sources(self) -> dict[str, str]:
        """``{setting: where its value came from}`` (``"HUAWEICLOUD_SDK_AK"``, ``"--region"``,
        ``"region in profile 'acme' in ..."``); never a value. The sandbox: ``{"*": "sandbox"}``."""
        if self.sandbox is not None:
            return {"*": "sandbox"}
        return self._profile().sources()

    def check(self) -> dict[str, Any]:
        """The LINK client's pre-flight read (one authenticated GET): ``{"total", "clock_skew_s"}``,
        or :class:`~romakit.errors.AuthRefused` naming a skewed clock when that is likely."""
        return self.link.preflight()

    def __repr__(self) -> str:
        if self.sandbox is not None:
            return f"Connection(kind='sandbox', {self.sandbox!r})"
        where = ", ".join(f"{k} <- {v}" for k, v in self.sources().items())
        return f"Connection(kind={self.kind!r}, {self.profile!r}, from: {where})"

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


def connect(profile: str | None = None, **options: Any) -> Connection:
    """Connect with the credential chain (see the module docstring), or the sandbox.

    ``options`` that name settings (``region=``, ``instance_id=``, ``agency=``, ``ak=``,
    ...) are the chain's explicit values; the rest (``devices=``, ``seed=``, faults) apply
    when a sandbox is started.
    """
    arguments = {k: v for k, v in options.items() if k in _FIELDS}
    sandbox_options = {k: v for k, v in options.items() if k not in _FIELDS}
    named = profile if profile is not None else os.environ.get("ROMAKIT_PROFILE") or None
    if named == SANDBOX:
        if arguments:
            raise InputError(f"the sandbox takes no connection settings ({', '.join(sorted(arguments))})")
        return Connection(SANDBOX, sandbox=_shared_sandbox(**sandbox_options))
    src = profile_source(named) if named else None
    sources = chain(arguments=arguments, profile=src)
    if not any(s.values for s in sources):
        return Connection(SANDBOX, sandbox=_shared_sandbox(**sandbox_options))
    if sandbox_options:
        raise InputError(f"unknown setting(s) {', '.join(sorted(sandbox_options))} (sandbox options apply only "
                         f"to the sandbox); settings: {', '.join(sorted(_FIELDS))}")
    return Connection("profile" if named else "env", profile=resolve(named or "env", sources))


_FIELDS = frozenset(s.field for s in SETTINGS)


__all__ = ["CREDENTIALS", "Connection", "ENV_ALIASES", "ENV_VARS", "Profile", "SETTINGS", "Setting", "Source", "chain",
           "collect", "collect_with_origin", "config_path", "connect", "env_help", "env_profile", "file_profile",
           "profile_source", "resolve", "sdk_credentials_path", "settings_for"]
