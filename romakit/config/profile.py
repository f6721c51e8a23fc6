"""Profiles: where and how to connect, checked when made, and the clients made from them
(:meth:`Profile.link_client`, :meth:`Profile.gateway`); read from the profiles file,
the environment, or resolved from a chain of sources."""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from romakit.config.settings import SECRET_FIELDS, SETTINGS, Source, collect
from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK

if TYPE_CHECKING:  # pragma: no cover
    from romakit.iotda.gateway import Gateway
    from romakit.link.auth import AkSk, Token
    from romakit.link.client import LinkClient

log = logging.getLogger("romakit.config")
#: the settings that are not strings
_TYPES = {s.field: s.type for s in SETTINGS}
#: what each part needs before a client can be made (besides LINK's credentials)
_LINK_FIELDS = ("endpoint", "project_id", "instance_id")
_MQTT_FIELDS = ("mqtt_host", "gateway_id", "device_secret")


@dataclass(frozen=True, repr=False)
class Profile:
    """Where and how to connect; any of the LINK part and the MQTT part may be absent.

    ``needs`` (LINK or GATEWAY) makes that part required; ``how`` names, per field,
    where it could have been set (shown when one is missing). Neither is a setting."""

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
    mqtt_rate: float | None = None
    mqtt_transport: str | None = None
    mqtt_proxy: str | None = None
    takeover: bool | None = None
    iotda_endpoint: str | None = None
    iotda_region: str | None = None
    ca_file: str | None = None
    needs: str | None = field(default=None, compare=False)
    how: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        where = f"profile {self.name!r}"
        link = [f for f in _LINK_FIELDS if getattr(self, f)]
        if link or self.ak or self.sk or self.token or self.needs == LINK:
            missing = [f for f in _LINK_FIELDS if not getattr(self, f)]
            if missing:
                raise InputError(f"{where}: LINK settings incomplete, missing {', '.join(missing)}{self._hint(*missing)}")
            if self.token and (self.ak or self.sk):
                raise InputError(f"{where}: give either ak + sk or token, not both")
            if not self.token and not (self.ak and self.sk):
                raise InputError(f"{where}: LINK needs ak and sk, or token{self._hint('ak', 'sk', 'token')}")
        mqtt = [f for f in _MQTT_FIELDS if getattr(self, f)]
        if mqtt or self.mqtt_port is not None or self.needs == GATEWAY:
            missing = [f for f in _MQTT_FIELDS if not getattr(self, f)]
            if missing:
                raise InputError(f"{where}: MQTT settings incomplete, missing {', '.join(missing)}{self._hint(*missing)}")
        if self.mqtt_port is not None and not (isinstance(self.mqtt_port, int) and 0 < self.mqtt_port < 65536):
            raise InputError(f"{where}: mqtt_port must be an integer 1..65535, got {self.mqtt_port!r}")
        if not link and not mqtt:
            raise InputError(f"{where}: neither LINK (endpoint, ...) nor MQTT (mqtt_host, ...) settings given")
        if self.ca_file and not Path(self.ca_file).expanduser().is_file():
            raise InputError(f"{where}: ca_file {self.ca_file!r} does not exist")

    def _hint(self, *names: str) -> str:
        ways = [self.how[n] for n in names if self.how.get(n)]
        return f" (set {'; '.join(ways)})" if ways else ""

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
    def from_mapping(cls, name: str, values: Mapping[str, Any], source: str, **meta: Any) -> Profile:
        """A profile from ``{field: value}`` (a file section, merged sources); ``source``
        names where the values came from in error messages; ``meta``: ``needs``, ``how``."""
        known = {f.name for f in fields(cls)} - {"name", "needs", "how"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        clean: dict[str, Any] = {}
        for k, v in values.items():
            if v is None or v == "":
                continue
            kind = _TYPES.get(k, str)
            if kind is bool:
                if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    v = v.strip().lower() in ("1", "true", "yes", "on")
                elif not isinstance(v, bool):
                    raise InputError(f"{source}: {k} must be true or false, got {v!r}")
            elif kind in (int, float):
                try:
                    v = kind(v)
                except (TypeError, ValueError):
                    raise InputError(f"{source}: {k} must be a{'n integer' if kind is int else ' number'}, got {v!r}") from None
            elif not isinstance(v, str):
                shown = "(hidden)" if k in SECRET_FIELDS else repr(v)
                raise InputError(f"{source}: {k} must be a string, got {type(v).__name__} {shown}")
            clean[k] = v
        return cls(name=name, **clean, **meta)

    # -- clients: the one place they are made from settings ----------------------------
    def link_auth(self) -> AkSk | Token:
        """The LINK credentials: ``rk.Token`` or ``rk.AkSk``."""
        from romakit.link.auth import AkSk, Token

        return Token(self.token) if self.token else AkSk(self.ak, self.sk)

    def link_client(self, **options: Any) -> LinkClient:
        """A :class:`~romakit.LinkClient` from the LINK part; ``options`` go to it
        (``timeout``, ``allow_insecure``, ...); ``ca_file`` verifies the endpoint."""
        if not self.has_link:
            raise InputError(f"profile {self.name!r} has no LINK settings (endpoint, project_id, instance_id, auth)")
        from romakit.link.client import LinkClient

        if self.ca_file:
            options.setdefault("verify", str(Path(self.ca_file).expanduser()))
        return LinkClient(self.endpoint, self.project_id, self.instance_id, self.link_auth(), **options)

    def gateway(self, id: str | None = None, **options: Any) -> Gateway:  # noqa: A002 - the natural name
        """A :class:`~romakit.Gateway` from the MQTT part (port 8883 unless set); ``options``
        go to it (``tls``, ``timeout``, ...). ``id`` may only repeat the profile's gateway."""
        if not self.has_mqtt:
            raise InputError(f"profile {self.name!r} has no MQTT settings (mqtt_host, gateway_id, device_secret)")
        if id is not None and id != self.gateway_id:
            raise InputError(
                f"profile {self.name!r} holds the secret of gateway {self.gateway_id!r} only, not {id!r}; "
                "make another profile for that gateway"
            )
        from romakit.iotda.gateway import Gateway

        if self.ca_file:
            options.setdefault("ca_file", str(Path(self.ca_file).expanduser()))
        for name, value in (("rate", self.mqtt_rate), ("transport", self.mqtt_transport),
                            ("proxy", self.mqtt_proxy), ("takeover", self.takeover)):
            if value is not None:
                options.setdefault(name, value)
        if self.iotda_endpoint and self.ak and self.sk and self.project_id and "inventory" not in options:
            from romakit.iotda.rest import IotdaClient
            from romakit.iotda.rest_auth import IotdaAkSk

            options["inventory"] = IotdaClient(self.iotda_endpoint, self.project_id, IotdaAkSk(
                self.ak, self.sk, region=self.iotda_region), verify=options.get("ca_file") or True)
        return Gateway(self.mqtt_host, self.mqtt_port or 8883, self.gateway_id, self.device_secret, **options)


def resolve(name: str, sources: Sequence[Source], *, needs: str | None = None) -> Profile:
    """The profile the ``sources`` give; with ``needs`` (LINK or GATEWAY) only that part is
    read, it must be complete, and a missing value is named with where to set it."""
    how = {s.field: " or ".join(src.names[s.field] for src in sources if src.names.get(s.field)) for s in SETTINGS}
    label = " + ".join(src.label for src in sources if src.values) or "no settings"
    return Profile.from_mapping(name, collect(sources, needs), label, needs=needs, how=how)


def config_path() -> Path:
    """The profiles file: ``ROMAKIT_CONFIG`` or ``<user config dir>/romakit/profiles.toml``."""
    env = os.environ.get("ROMAKIT_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("romakit")) / "profiles.toml"


def env_profile(environ: Mapping[str, str] | None = None) -> Profile | None:
    """The profile given by ``ROMAKIT_*`` environment variables, or None when none is set."""
    env = Source.environment(environ)
    return resolve("env", [env]) if env.values else None


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
    section = dict(section)
    team_journal = section.pop("journal", None)
    if team_journal:  # a journal for this profile's work (ROMAKIT_JOURNAL still wins)
        from romakit.store.target import use

        use(team_journal, profile=True)
    return Profile.from_mapping(name, section, f"{path} [{name}]")


def _warn_if_readable(path: Path, section: dict) -> None:
    if not any(section.get(k) for k in SECRET_FIELDS) or os.name != "posix":
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds secrets and is readable by other users; chmod 600 it", path)
