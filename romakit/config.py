"""``rk.connect()``: one call that gives a notebook its LINK client and gateways.

Where the connection comes from, in order:

1. ``rk.connect("name")``: the ``[name]`` section of the profiles file
   (``ROMAKIT_CONFIG``, else ``<user config dir>/romakit/profiles.toml``);
   ``rk.connect("sandbox")`` always means the built-in sandbox.
2. ``rk.connect()`` with ``ROMAKIT_ENDPOINT``/``ROMAKIT_MQTT_HOST``... set: a profile
   read from those environment variables (``kind="env"``).
3. ``rk.connect()`` with ``ROMAKIT_PROFILE=name`` set: that file profile.
4. Otherwise the sandbox, started once per process and reused (``kind="sandbox"``).

Secrets (SK, token, device secret) are held but never shown: reprs mask them, and
error messages name keys, never values.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from romakit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from romakit.iotda.gateway import Gateway
    from romakit.link.client import LinkClient
    from romakit.sandboxes import Sandbox

log = logging.getLogger("romakit.config")

#: environment variable -> profile field
ENV_VARS = {
    "ROMAKIT_ENDPOINT": "endpoint",
    "ROMAKIT_PROJECT_ID": "project_id",
    "ROMAKIT_INSTANCE_ID": "instance_id",
    "ROMAKIT_AK": "ak",
    "ROMAKIT_SK": "sk",
    "ROMAKIT_TOKEN": "token",
    "ROMAKIT_MQTT_HOST": "mqtt_host",
    "ROMAKIT_MQTT_PORT": "mqtt_port",
    "ROMAKIT_GATEWAY_ID": "gateway_id",
    "ROMAKIT_DEVICE_SECRET": "device_secret",
    "ROMAKIT_CA_FILE": "ca_file",
}
_SECRETS = frozenset({"sk", "token", "device_secret"})
_LINK_FIELDS = ("endpoint", "project_id", "instance_id")
_MQTT_FIELDS = ("mqtt_host", "gateway_id", "device_secret")
SANDBOX = "sandbox"

_sandbox: Sandbox | None = None
_sandbox_lock = threading.Lock()


@dataclass(frozen=True, repr=False)
class Profile:
    """Where and how to connect; any of the LINK part and the MQTT part may be absent."""

    name: str
    endpoint: str | None = None
    project_id: str | None = None
    instance_id: str | None = None
    ak: str | None = None
    sk: str | None = None
    token: str | None = None
    mqtt_host: str | None = None
    mqtt_port: int | None = None
    gateway_id: str | None = None
    device_secret: str | None = None
    ca_file: str | None = None

    def __post_init__(self) -> None:
        where = f"profile {self.name!r}"
        link = [f for f in _LINK_FIELDS if getattr(self, f)]
        if link or self.ak or self.sk or self.token:
            missing = [f for f in _LINK_FIELDS if not getattr(self, f)]
            if missing:
                raise InputError(f"{where}: LINK settings incomplete, missing {', '.join(missing)}")
            if self.token and (self.ak or self.sk):
                raise InputError(f"{where}: give either ak + sk or token, not both")
            if not self.token and not (self.ak and self.sk):
                raise InputError(f"{where}: LINK needs ak and sk, or token")
        mqtt = [f for f in _MQTT_FIELDS if getattr(self, f)]
        if mqtt or self.mqtt_port is not None:
            missing = [f for f in _MQTT_FIELDS if not getattr(self, f)]
            if missing:
                raise InputError(f"{where}: MQTT settings incomplete, missing {', '.join(missing)}")
        if self.mqtt_port is not None and not (isinstance(self.mqtt_port, int) and 0 < self.mqtt_port < 65536):
            raise InputError(f"{where}: mqtt_port must be an integer 1..65535, got {self.mqtt_port!r}")
        if not link and not mqtt:
            raise InputError(f"{where}: neither LINK (endpoint, ...) nor MQTT (mqtt_host, ...) settings given")
        if self.ca_file and not Path(self.ca_file).expanduser().is_file():
            raise InputError(f"{where}: ca_file {self.ca_file!r} does not exist")

    @property
    def has_link(self) -> bool:
        return bool(self.endpoint)

    @property
    def has_mqtt(self) -> bool:
        return bool(self.mqtt_host)

    def masked_auth(self) -> str:
        """The auth method with the secret hidden: ``AK ABCD… / SK ***`` or ``token ***``."""
        if self.token:
            return "token ***"
        if self.ak:
            return f"AK {self.ak[:4]}… / SK ***"
        return "none"

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}"]
        if self.has_link:
            parts += [f"endpoint={self.endpoint!r}", f"project_id={self.project_id!r}",
                      f"instance_id={self.instance_id!r}", f"auth={self.masked_auth()!r}"]
        if self.has_mqtt:
            parts += [f"mqtt={self.mqtt_host}:{self.mqtt_port or 8883}", f"gateway_id={self.gateway_id!r}",
                      "device_secret='***'"]
        if self.ca_file:
            parts.append(f"ca_file={self.ca_file!r}")
        return f"Profile({', '.join(parts)})"

    @classmethod
    def from_mapping(cls, name: str, values: dict[str, Any], source: str) -> Profile:
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        clean: dict[str, Any] = {}
        for k, v in values.items():
            if v is None or v == "":
                continue
            if k == "mqtt_port":
                try:
                    v = int(v)
                except (TypeError, ValueError):
                    raise InputError(f"{source}: mqtt_port must be an integer, got {v!r}") from None
            elif not isinstance(v, str):
                shown = "(hidden)" if k in _SECRETS else repr(v)
                raise InputError(f"{source}: {k} must be a string, got {type(v).__name__} {shown}")
            clean[k] = v
        return cls(name=name, **clean)


def config_path() -> Path:
    """The profiles file: ``ROMAKIT_CONFIG`` or ``<user config dir>/romakit/profiles.toml``."""
    env = os.environ.get("ROMAKIT_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("romakit")) / "profiles.toml"


def env_profile(environ: dict[str, str] | None = None) -> Profile | None:
    """The profile given by ``ROMAKIT_*`` environment variables, or None when none is set."""
    environ = os.environ if environ is None else environ
    values = {f: environ[v] for v, f in ENV_VARS.items() if environ.get(v)}
    if not values:
        return None
    return Profile.from_mapping("env", values, "environment (ROMAKIT_*)")


def file_profile(name: str, path: Path | None = None) -> Profile:
    """Section ``[name]`` of the profiles file."""
    path = path or config_path()
    if not path.is_file():
        raise InputError(f"profile {name!r}: no profiles file at {path} (set ROMAKIT_CONFIG to use another)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path} is not valid TOML: {e}") from None
    section = data.get(name)
    if not isinstance(section, dict):
        have = ", ".join(sorted(k for k, v in data.items() if isinstance(v, dict))) or "none"
        raise InputError(f"profile {name!r} not found in {path}; profiles there: {have}")
    _warn_if_readable(path, section)
    return Profile.from_mapping(name, section, f"{path} [{name}]")


def _warn_if_readable(path: Path, section: dict) -> None:
    if not any(section.get(k) for k in _SECRETS) or os.name != "posix":
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds secrets and is readable by other users; chmod 600 it", path)


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
                self._link = self._make_link()
            return self._link

    def _make_link(self) -> LinkClient:
        if self.sandbox is not None:
            return self.sandbox.link_client()
        p = self.profile
        assert p is not None
        if not p.has_link:
            raise InputError(f"profile {p.name!r} has no LINK settings (endpoint, project_id, instance_id, auth)")
        from romakit.link.auth import AkSk, Token
        from romakit.link.client import LinkClient

        auth = Token(p.token) if p.token else AkSk(p.ak, p.sk)
        verify: Any = str(Path(p.ca_file).expanduser()) if p.ca_file else True
        return LinkClient(p.endpoint, p.project_id, p.instance_id, auth, verify=verify)

    def gateway(self, id: str | None = None, **options: Any) -> Gateway:  # noqa: A002 - the natural name
        """A :class:`~romakit.Gateway` for ``id`` (default: the profile's or the sandbox's first)."""
        if self.sandbox is not None:
            return self.sandbox.gateway(id or self.sandbox.gateways()[0], **options)
        p = self.profile
        assert p is not None
        if not p.has_mqtt:
            raise InputError(f"profile {p.name!r} has no MQTT settings (mqtt_host, gateway_id, device_secret)")
        if id is not None and id != p.gateway_id:
            raise InputError(
                f"profile {p.name!r} holds the secret of gateway {p.gateway_id!r} only, not {id!r}; "
                "make another profile for that gateway"
            )
        from romakit.iotda.gateway import Gateway

        if p.ca_file:
            options.setdefault("ca_file", str(Path(p.ca_file).expanduser()))
        return Gateway(p.mqtt_host, p.mqtt_port or 8883, p.gateway_id, p.device_secret, **options)

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


__all__ = ["Connection", "Profile", "connect", "config_path", "env_profile", "file_profile", "ENV_VARS"]
