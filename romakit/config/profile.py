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

from romakit.config.settings import SECRET_FIELDS, SETTINGS, Source, collect_with_origin
from romakit.errors import InputError
from romakit.link.iam import check_duration
from romakit.operations import GATEWAY, LINK
from romakit.regions import check_region
from romakit.tls import ca_paths

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from romakit.iotda.gateway import Gateway
    from romakit.iotda.rest import IotdaClient
    from romakit.link.auth import AkSk, Token
    from romakit.link.client import LinkClient
    from romakit.store.journal import Journal

log = logging.getLogger("romakit.config")
#: the settings that are not strings
_TYPES = {s.field: s.type for s in SETTINGS}
#: what each part needs before a client can be made (besides LINK's credentials)
_LINK_FIELDS = ("endpoint", "project_id", "instance_id")
_MQTT_FIELDS = ("mqtt_host", "gateway_id", "device_secret")
#: any of these makes the LINK part present
_LINK_ANY = ("endpoint", "project_id", "instance_id", "region", "iam_endpoint", "ak", "sk", "security_token",
             "token", "user", "password", "agency")


@dataclass(frozen=True, repr=False)
class Profile:
    """Where and how to connect; any of the LINK part and the MQTT part may be absent.

    LINK: ``instance_id``; ``endpoint`` or ``region``; ``project_id`` or ``region`` (looked
    up in IAM); credentials: ``ak`` + ``sk`` (+ ``security_token`` for temporary keys), or
    ``token``, or ``domain`` + ``user`` + ``password`` (a token from IAM); with ``agency``
    (+ ``agency_domain``) those credentials only ask IAM for the agency's temporary keys.
    ``needs`` (LINK or GATEWAY) makes that part required; ``how`` names, per field, where
    it could have been set; ``origin`` where each value came from. None is a setting."""

    name: str
    region: str | None = None
    endpoint: str | None = None
    iam_endpoint: str | None = None
    project_id: str | None = None
    instance_id: str | None = None
    ak: str | None = None
    sk: str | None = None
    security_token: str | None = None
    token: str | None = None
    domain: str | None = None
    user: str | None = None
    password: str | None = None
    agency_domain: str | None = None
    agency: str | None = None
    agency_duration: int | None = None
    rest_ca_file: str | None = None
    mqtt_host: str | None = None
    mqtt_port: int | None = None
    gateway_id: str | None = None
    device_secret: str | None = None
    mqtt_ca_file: str | None = None
    mqtt_rate: float | None = None
    mqtt_transport: str | None = None
    mqtt_proxy: str | None = None
    takeover: bool | None = None
    iotda_endpoint: str | None = None
    iotda_region: str | None = None
    #: where the clients made from this profile journal (``ROMAKIT_JOURNAL`` wins over it)
    journal: str | None = None
    needs: str | None = field(default=None, compare=False)
    how: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    origin: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        link = [f for f in _LINK_ANY if getattr(self, f)]
        if link or self.needs == LINK:
            self._check_link()
        mqtt = [f for f in _MQTT_FIELDS if getattr(self, f)]
        if mqtt or self.mqtt_port is not None or self.needs == GATEWAY:
            missing = [f for f in _MQTT_FIELDS if not getattr(self, f)]
            if missing:
                raise InputError(f"{self._where}: MQTT settings incomplete, missing {', '.join(missing)}{self._hint(*missing)}")
        if self.mqtt_port is not None and not (isinstance(self.mqtt_port, int) and 0 < self.mqtt_port < 65536):
            raise InputError(f"{self._where}: {self._named('mqtt_port')} must be an integer 1..65535, got {self.mqtt_port!r}")
        if not link and not mqtt:
            raise InputError(f"{self._where}: neither LINK (endpoint or region, ...) nor MQTT (mqtt_host, ...) settings given")
        for f in ("rest_ca_file", "mqtt_ca_file"):
            ca_paths(getattr(self, f), f"{self._where}: {self._named(f)}")
        if self.journal is not None:
            from romakit.store.target import check

            try:
                check(self.journal)
            except InputError as e:
                raise InputError(f"{self._where}: {e}") from None

    @property
    def _where(self) -> str:
        return f"profile {self.name!r}"

    def _named(self, f: str) -> str:
        """A setting's name, with where its value came from (never the value)."""
        return f"{f} (from {self.origin[f]})" if self.origin.get(f) else f

    def _check_link(self) -> None:
        where = self._where
        missing = [f for f in _LINK_FIELDS if not getattr(self, f) and not (self.region and f != "instance_id")]
        if missing:
            ways = " (or region)" if "endpoint" in missing or "project_id" in missing else ""
            raise InputError(f"{where}: LINK settings incomplete, missing {', '.join(missing)}{ways}"
                             f"{self._hint(*missing, *(['region'] if ways else []))}")
        if self.region:
            try:
                check_region(self.region, self._named("region"))
            except InputError as e:
                raise InputError(f"{where}: {e}") from None
        for f in ("endpoint", "iam_endpoint"):
            value = getattr(self, f)
            if value and (not isinstance(value, str) or not value.startswith(("https://", "http://"))):
                raise InputError(f"{where}: {self._named(f)} must be an http(s) URL like https://roma.cn-north-4.myhuaweicloud.com")
        aksk = bool(self.ak or self.sk or self.security_token)
        login = bool(self.user or self.password or self.domain)
        given = [name for name, on in (("ak + sk", aksk), ("token", bool(self.token)), ("user + password", login)) if on]
        if len(given) > 1:
            raise InputError(f"{where}: give one kind of credentials, not {' and '.join(given)}")
        if not given:
            raise InputError(f"{where}: LINK needs ak and sk, or token, or user and password"
                             f"{self._hint('ak', 'sk', 'token')}")
        if aksk and not (self.ak and self.sk):
            lack = [f for f in ("ak", "sk") if not getattr(self, f)]
            have = [self._named(f) for f in ("ak", "sk", "security_token") if getattr(self, f)]
            raise InputError(f"{where}: {', '.join(have)} given without {' and '.join(lack)}{self._hint(*lack)}")
        if login and not (self.user and self.password and self.domain):
            lack = [f for f in ("domain", "user", "password") if not getattr(self, f)]
            raise InputError(f"{where}: a password login needs domain, user and password; missing {', '.join(lack)}"
                             f"{self._hint(*lack)}")
        if bool(self.agency) != bool(self.agency_domain):
            lack = "agency_domain" if self.agency else "agency"
            raise InputError(f"{where}: an agency needs both agency and agency_domain; missing {lack}{self._hint(lack)}")
        if self.agency_duration is not None:
            try:
                check_duration(self.agency_duration)
            except InputError as e:
                raise InputError(f"{where}: {self._named('agency_duration')}: {e}") from None
        if login and not (self.region or self.iam_endpoint):
            raise InputError(f"{where}: a password login needs region (or iam_endpoint){self._hint('region')}")
        if self.agency and not (self.region or self.iam_endpoint):
            raise InputError(f"{where}: an agency needs region (or iam_endpoint){self._hint('region')}")

    def _hint(self, *names: str) -> str:
        ways = [self.how[n] for n in names if self.how.get(n)]
        return f" (set {'; '.join(ways)})" if ways else ""

    @property
    def has_link(self) -> bool:
        return bool(self.endpoint or self.region)

    @property
    def has_mqtt(self) -> bool:
        return bool(self.mqtt_host)

    def masked_auth(self) -> str:
        """The auth method with the secret hidden: ``AK ABCD… / SK ***``, ``token ***``, ..."""
        if self.token:
            base = "token ***"
        elif self.ak:
            base = f"AK {self.ak[:4]}… / SK ***" + (" + security token ***" if self.security_token else "")
        elif self.user:
            base = f"password of {self.user!r} in {self.domain!r} ***"
        else:
            return "none"
        return f"agency {self.agency!r} of {self.agency_domain!r} via {base}" if self.agency else base

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}"]
        if self.has_link:
            parts += [f"{f}={getattr(self, f)!r}" for f in ("region", "endpoint", "project_id") if getattr(self, f)]
            parts += [f"instance_id={self.instance_id!r}", f"auth={self.masked_auth()!r}"]
        if self.has_mqtt:
            parts += [f"mqtt={self.mqtt_host}:{self.mqtt_port or 8883}", f"gateway_id={self.gateway_id!r}",
                      "device_secret='***'"]
        for f in ("rest_ca_file", "mqtt_ca_file"):
            if getattr(self, f):
                parts.append(f"{f}={getattr(self, f)!r}")
        return f"Profile({', '.join(parts)})"

    def sources(self) -> dict[str, str]:
        """Where each setting came from (``{"ak": "HUAWEICLOUD_SDK_AK", ...}``), never a value."""
        return dict(self.origin)

    @classmethod
    def from_mapping(cls, name: str, values: Mapping[str, Any], source: str, **meta: Any) -> Profile:
        """A profile from ``{field: value}`` (a file section, merged sources); ``source``
        names where the values came from in error messages; ``meta``: ``needs``, ``how``, ``origin``."""
        values = dict(values)
        if "ca_file" in values:  # one CA for both (deprecated): each part's own wins
            both = values.pop("ca_file")
            log.warning("%s: ca_file is deprecated: set rest_ca_file and/or mqtt_ca_file", source)
            values.setdefault("rest_ca_file", both)
            values.setdefault("mqtt_ca_file", both)
        known = {f.name for f in fields(cls)} - {"name", "needs", "how", "origin"}
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
            elif k.endswith("ca_file") and isinstance(v, list):
                v = os.pathsep.join(str(x) for x in v)
            elif not isinstance(v, str):
                shown = "(hidden)" if k in SECRET_FIELDS else repr(v)
                raise InputError(f"{source}: {k} must be a string, got {type(v).__name__} {shown}")
            clean[k] = v
        return cls(name=name, **clean, **meta)

    # -- clients: the one place they are made from settings ----------------------------
    def link_auth(self, *, allow_insecure: bool = False, timeout: float = 30.0) -> AkSk | Token:
        """The LINK credentials: a token, AK/SK (temporary with a security token), a token
        from a password, or an agency's temporary AK/SK asked with any of those."""
        from romakit.link.auth import AkSk, Token

        iam = {"region": self.region, "iam_endpoint": self.iam_endpoint, "ca_files": self.rest_ca_file,
               "allow_insecure": allow_insecure, "timeout": timeout}
        if self.token:
            base: AkSk | Token = Token(self.token)
        elif self.ak:
            base = AkSk(self.ak, self.sk, security_token=self.security_token)
        else:
            base = Token.from_password(self.domain, self.user, self.password, project_id=None if self.agency else self.project_id, **iam)
        if not self.agency:
            return base
        return AkSk.from_agency(self.agency_domain, self.agency, auth=base, duration=self.agency_duration or 3600, **iam)

    def link_client(self, **options: Any) -> LinkClient:
        """A :class:`~romakit.LinkClient` from the LINK part; ``options`` go to it
        (``timeout``, ``allow_insecure``, ...); ``rest_ca_file`` is trusted on top of the OS store."""
        if not self.has_link:
            raise InputError(f"profile {self.name!r} has no LINK settings (endpoint or region, instance_id, auth)")
        from romakit.link.client import LinkClient

        auth = self.link_auth(allow_insecure=options.get("allow_insecure", False), timeout=options.get("timeout", 30.0))
        if self.rest_ca_file:
            options.setdefault("ca_files", self.rest_ca_file)
        options.setdefault("journal", self.journal_of_clients())
        return LinkClient(self.endpoint, self.project_id, self.instance_id, auth, region=self.region,
                          iam_endpoint=self.iam_endpoint, **options)

    def journal_of_clients(self) -> Journal:
        """The journal of this profile's clients: ``ROMAKIT_JOURNAL``, else its ``journal`` key,
        else the sandbox journal when its instance is a sandbox's, else the default file."""
        from romakit.store.journal import Journal

        return Journal(default=self.journal).for_instance(self.instance_id)

    def iotda_client(self, *, allow_insecure: bool = False, timeout: float = 15.0) -> IotdaClient | None:
        """The IoTDA inventory (REST) at ``iotda_endpoint``, signed with the chain's credentials
        (the same ones LINK uses: a fixed AK/SK, plain or derived with ``iotda_region``, with
        its security token; else the token, password login or agency of :meth:`link_auth`),
        trusting ``rest_ca_file`` on top of the OS store. None without an ``iotda_endpoint``,
        credentials or a ``project_id``."""
        if not self.iotda_endpoint or not self.project_id or not (self.ak or self.token or self.user):
            return None
        from romakit.iotda.rest import IotdaClient
        from romakit.tls import client_context

        auth: httpx.Auth
        if self.ak and not self.agency:
            from romakit.iotda.rest_auth import IotdaAkSk

            auth = IotdaAkSk(self.ak, self.sk or "", region=self.iotda_region, project_id=self.project_id,
                             security_token=self.security_token)
        else:
            if self.iotda_region:
                log.warning("%s: iotda_region (derived signing) applies to a fixed ak + sk only; the IoTDA "
                            "inventory is signed plainly", self._where)
            auth = self.link_auth(allow_insecure=allow_insecure, timeout=timeout)
        return IotdaClient(self.iotda_endpoint, self.project_id, auth, timeout=timeout,
                           verify=client_context(self.rest_ca_file), allow_insecure=allow_insecure)

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

        if self.mqtt_ca_file:
            options.setdefault("ca_file", self.mqtt_ca_file)
        for name, value in (("rate", self.mqtt_rate), ("transport", self.mqtt_transport),
                            ("proxy", self.mqtt_proxy), ("takeover", self.takeover)):
            if value is not None:
                options.setdefault(name, value)
        options.setdefault("journal", self.journal_of_clients())
        if "inventory" not in options:
            inventory = self.iotda_client(allow_insecure=options.get("allow_insecure", False))
            if inventory is not None:
                options["inventory"] = inventory
        return Gateway(self.mqtt_host, self.mqtt_port or 8883, self.gateway_id, self.device_secret, **options)


def resolve(name: str, sources: Sequence[Source], *, needs: str | None = None) -> Profile:
    """The profile the ``sources`` give; with ``needs`` (LINK or GATEWAY) only that part is
    read, it must be complete, and a missing value is named with where to set it."""
    how = {s.field: " or ".join(src.names[s.field] for src in sources
                                if src.names.get(s.field) and not src.names[s.field].startswith(("argument", s.field + " in")))
           for s in SETTINGS}
    label = " + ".join(src.label for src in sources if src.values) or "no settings"
    values, origin = collect_with_origin(sources, needs)
    return Profile.from_mapping(name, values, label, needs=needs, how=how, origin=origin)


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


def profile_source(name: str, path: Path | None = None) -> Source:
    """Section ``[name]`` of the profiles file, as a link of the chain."""
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
    return Source.profile(name, section, path)


def file_profile(name: str, path: Path | None = None) -> Profile:
    """Section ``[name]`` of the profiles file, alone."""
    src = profile_source(name, path)
    return Profile.from_mapping(name, src.values, src.label,
                                origin={k: src.names.get(k, src.label) for k in src.values})


def _warn_if_readable(path: Path, section: dict) -> None:
    if not any(section.get(k) for k in SECRET_FIELDS) or os.name != "posix":
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds secrets and is readable by other users; chmod 600 it", path)
