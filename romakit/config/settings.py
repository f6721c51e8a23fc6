"""What can be set, and where it comes from: the settings table (profile field,
``ROMAKIT_*`` variable, ``romakit`` flag, the official SDK's name) and the sources a
profile is resolved from.

:func:`chain` is the credential chain, first wins, in the official SDK's order where it
has one: explicit values (arguments, flags), a romakit profile, ``ROMAKIT_*``,
``HUAWEICLOUD_SDK_*`` (``huaweicloudsdkcore``'s ``EnvCredentialProvider``), the
credentials file (``~/.huaweicloud/credentials`` or ``HUAWEICLOUD_SDK_CREDENTIALS_FILE``,
section ``[basic]``, its ``ProfileCredentialProvider``), then what the journal recorded.
The credentials themselves (:data:`CREDENTIALS`) are taken whole from the first source
that has any of them, as the SDK takes them from one provider: an AK from one place is
never paired with an SK or a security token from another. Other settings are taken one
by one. :func:`collect` also says where each value came from (never the value).
"""

from __future__ import annotations

import configparser
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK

log = logging.getLogger("romakit.config")


@dataclass(frozen=True)
class Setting:
    """One connection setting: its profile field, environment variable and CLI flag."""

    field: str
    env: str
    #: which client uses it: LINK, GATEWAY, or None for both
    part: str | None
    help: str
    #: the ``romakit`` flag; secrets have none (flags end up in shell history and ``ps``)
    flag: str | None = None
    type: type = str
    secret: bool = False
    #: older variable names still read (with a warning) when ``env`` is not set
    aliases: tuple[str, ...] = ()
    #: the official SDK's name: ``HUAWEICLOUD_SDK_{upper}`` and the credentials file's key
    sdk: str | None = None


#: every setting, once: the profile fields, the ``ROMAKIT_*`` variables, the CLI flags
SETTINGS: tuple[Setting, ...] = (
    Setting("region", "ROMAKIT_REGION", LINK, "region id, e.g. cn-north-4: gives the ROMA and IAM endpoints",
            "--region"),
    Setting("endpoint", "ROMAKIT_ENDPOINT", LINK, "LINK endpoint (default: the region's, https://roma.{region}.myhuaweicloud.com)",
            "--endpoint"),
    Setting("iam_endpoint", "ROMAKIT_IAM_ENDPOINT", LINK, "IAM endpoint (default: the region's)", "--iam-endpoint",
            sdk="iam_endpoint"),
    Setting("project_id", "ROMAKIT_PROJECT_ID", LINK, "project id (default: looked up in IAM by region)", "--project-id",
            sdk="project_id"),
    Setting("instance_id", "ROMAKIT_INSTANCE_ID", LINK, "ROMA Connect instance id", "--instance-id"),
    Setting("ak", "ROMAKIT_AK", LINK, "access key (with ROMAKIT_SK)", sdk="ak"),
    Setting("sk", "ROMAKIT_SK", LINK, "secret key", secret=True, sdk="sk"),
    Setting("security_token", "ROMAKIT_SECURITY_TOKEN", LINK, "security token of a temporary AK/SK", secret=True,
            sdk="security_token"),
    Setting("token", "ROMAKIT_TOKEN", LINK, "IAM token, instead of AK/SK", secret=True),
    Setting("domain", "ROMAKIT_DOMAIN", LINK, "IAM account (domain) name, for a password login", "--domain"),
    Setting("user", "ROMAKIT_USER", LINK, "IAM user name, for a password login", "--user"),
    Setting("password", "ROMAKIT_PASSWORD", LINK, "IAM user's password", secret=True),
    Setting("agency_domain", "ROMAKIT_AGENCY_DOMAIN", LINK, "the customer's account that delegated the agency",
            "--agency-domain"),
    Setting("agency", "ROMAKIT_AGENCY", LINK, "agency to assume: temporary AK/SK from IAM, renewed", "--agency"),
    Setting("agency_duration", "ROMAKIT_AGENCY_DURATION", LINK, "seconds each agency key lasts (900..86400, default 3600)",
            "--agency-duration", int),
    Setting("rest_ca_file", "ROMAKIT_REST_CA_FILE", LINK, "extra CA file(s) for LINK and IAM, on top of the OS store",
            "--ca-bundle", aliases=("ROMAKIT_CA_FILE",)),
    Setting("mqtt_host", "ROMAKIT_MQTT_HOST", GATEWAY, "MQTT host", "--host"),
    Setting("mqtt_port", "ROMAKIT_MQTT_PORT", GATEWAY, "MQTT port (default 8883, TLS)", "--port", int),
    Setting("gateway_id", "ROMAKIT_GATEWAY_ID", GATEWAY, "the gateway's device id", "--gateway",
            aliases=("ROMAKIT_GATEWAY",)),
    Setting("device_secret", "ROMAKIT_DEVICE_SECRET", GATEWAY, "the gateway's secret", secret=True),
    Setting("mqtt_ca_file", "ROMAKIT_MQTT_CA_FILE", GATEWAY, "extra CA file(s) for the MQTT broker, on top of the OS store",
            "--ca-file", aliases=("ROMAKIT_CA_FILE",)),
    Setting("mqtt_rate", "ROMAKIT_MQTT_RATE", GATEWAY,
            "upstream messages/s per gateway (default 10, safe on IoTDA's smallest edition)", "--rate", float),
    Setting("mqtt_transport", "ROMAKIT_MQTT_TRANSPORT", GATEWAY, "tcp, or websockets (wss on port 443)", "--transport"),
    Setting("mqtt_proxy", "ROMAKIT_MQTT_PROXY", GATEWAY, "HTTP or SOCKS proxy for MQTT (http://host:3128, socks5://host:1080)",
            "--mqtt-proxy"),
    Setting("takeover", "ROMAKIT_TAKEOVER", GATEWAY,
            "log in even if the gateway is ONLINE in IoTDA (disconnects the field gateway)", "--takeover", bool),
    Setting("iotda_endpoint", "ROMAKIT_IOTDA_ENDPOINT", GATEWAY,
            "IoTDA REST endpoint: the gateway's status before login, its children (signed with the LINK "
            "credentials above; CA: ROMAKIT_REST_CA_FILE)", "--iotda-endpoint"),
    Setting("iotda_region", "ROMAKIT_IOTDA_REGION", GATEWAY,
            "region for IoTDA's derived AK/SK signing (standard/enterprise instances)", "--iotda-region"),
)
#: the credentials: taken together from the first source that has any of them
CREDENTIALS = ("ak", "sk", "security_token", "token", "domain", "user", "password")
#: the official SDK's variables and the credentials file's keys, by profile field
SDK_NAMES = {s.sdk: s.field for s in SETTINGS if s.sdk}
SDK_ENV_PREFIX = "HUAWEICLOUD_SDK_"
#: what the SDK reads that romakit does not (federated identities): said, not silently ignored
_SDK_UNSUPPORTED = ("idp_id", "id_token_file")
_BY_FIELD = {s.field: s for s in SETTINGS}
#: environment variable -> profile field (aliases not included)
ENV_VARS = {s.env: s.field for s in SETTINGS}
#: deprecated environment variable -> the one to set instead
ENV_ALIASES = {a: " and ".join(s.env for s in SETTINGS if a in s.aliases) for s in SETTINGS for a in s.aliases}
#: the fields whose values are never shown
SECRET_FIELDS = frozenset(s.field for s in SETTINGS if s.secret)
#: what identifies the target of an operation of each kind (the journal's ``target``)
_TARGET_FIELD = {LINK: "instance_id", GATEWAY: "gateway_id"}
#: journal identity key -> profile field, where they differ
_IDENTITY_FIELD = {"host": "mqtt_host", "port": "mqtt_port"}


def settings_for(part: str | None) -> list[Setting]:
    """The settings a client of ``part`` (LINK, GATEWAY) reads; all of them for None."""
    return [s for s in SETTINGS if part is None or s.part in (part, None)]


def env_help() -> str:
    """The environment variables, one line each (the command's help, this module's docstring)."""
    lines = []
    for s in SETTINGS:
        flag = f" [{s.flag}]" if s.flag else " [environment only]" if s.part else ""
        old = "".join(f"; {a} (deprecated) still read" for a in s.aliases)
        sdk = f"; else {SDK_ENV_PREFIX}{s.sdk.upper()}" if s.sdk else ""
        lines.append(f"  {s.env:<24} {s.help}{flag}{old}{sdk}")
    lines.append(f"  then ~/.huaweicloud/credentials [basic] ({SDK_ENV_PREFIX}CREDENTIALS_FILE elsewhere): "
                 + ", ".join(SDK_NAMES))
    return "\n".join(lines)


@dataclass(frozen=True)
class Source:
    """One link of a settings chain: ``{field: value}`` from one place, and how that place
    names each field (for the message when one is missing)."""

    label: str
    values: Mapping[str, Any]
    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def flags(cls, values: Mapping[str, Any]) -> Source:
        """Values given as the command's flags (``{field: value}``, None when not given)."""
        given = {k: v for k, v in values.items() if v not in (None, "")}
        return cls("flags", given, {s.field: s.flag for s in SETTINGS if s.flag})

    @classmethod
    def environment(cls, environ: Mapping[str, str] | None = None) -> Source:
        """The ``ROMAKIT_*`` variables of :data:`SETTINGS` (a deprecated alias counts when
        the variable itself is not set)."""
        environ = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for s in SETTINGS:
            if environ.get(s.env):
                values[s.field] = environ[s.env]
                continue
            for alias in s.aliases:
                if environ.get(alias):
                    log.warning("%s is deprecated: set %s instead", alias, s.env)
                    values[s.field] = environ[alias]
                    break
        return cls("environment (ROMAKIT_*)", values, {s.field: s.env for s in SETTINGS})

    @classmethod
    def arguments(cls, values: Mapping[str, Any]) -> Source:
        """Values given as arguments (``rk.connect(region=..., agency=...)``)."""
        given = {k: v for k, v in values.items() if v not in (None, "")}
        return cls("arguments", given, {k: f"argument {k}=" for k in _BY_FIELD})

    @classmethod
    def profile(cls, name: str, section: Mapping[str, Any], path: Path) -> Source:
        """Section ``[name]`` of romakit's profiles file."""
        return cls(f"profile {name!r} in {path}", dict(section), {k: f"{k} in profile {name!r}" for k in _BY_FIELD})

    @classmethod
    def sdk_environment(cls, environ: Mapping[str, str] | None = None) -> Source:
        """The official SDK's ``HUAWEICLOUD_SDK_*`` variables."""
        environ = os.environ if environ is None else environ
        names = {f: SDK_ENV_PREFIX + k.upper() for k, f in SDK_NAMES.items()}
        values = {f: environ[n] for f, n in names.items() if environ.get(n)}
        _say_unsupported({k: environ.get(SDK_ENV_PREFIX + k.upper()) for k in _SDK_UNSUPPORTED}, "environment")
        return cls(f"environment ({SDK_ENV_PREFIX}*)", values, names)

    @classmethod
    def sdk_credentials_file(cls, environ: Mapping[str, str] | None = None) -> Source:
        """The SDK's credentials file, section ``[basic]`` (INI, as ``ProfileCredentialProvider``
        reads it); no file, no values."""
        path = sdk_credentials_path(environ)
        label = f"{path} [basic]"
        if path is None or not path.is_file():
            return cls(label, {})
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as e:
            raise InputError(f"{path} is not a valid credentials file: {type(e).__name__}") from None
        if not parser.has_section("basic"):
            return cls(label, {})
        section = dict(parser.items("basic"))
        _say_unsupported({k: section.get(k) for k in _SDK_UNSUPPORTED}, str(path))
        values = {f: section[k] for k, f in SDK_NAMES.items() if section.get(k)}
        return cls(label, values, {f: f"{k} in {label}" for k, f in SDK_NAMES.items()})

    @classmethod
    def journal(cls, identity: Mapping[str, Any], kind: str) -> Source:
        """What the journal recorded of an operation of ``kind``: its client's
        ``identity()`` (endpoint, project, instance; host, port, gateway), else its target."""
        values = {_IDENTITY_FIELD.get(k, k): v for k, v in identity.items() if _IDENTITY_FIELD.get(k, k) in _BY_FIELD}
        if identity.get("target") is not None:
            values.setdefault(_TARGET_FIELD[kind], str(identity["target"]))
        return cls("journal", values)


def sdk_credentials_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``HUAWEICLOUD_SDK_CREDENTIALS_FILE``, else ``~/.huaweicloud/credentials`` (the SDK's rule)."""
    environ = os.environ if environ is None else environ
    given = environ.get(SDK_ENV_PREFIX + "CREDENTIALS_FILE")
    if given:
        return Path(given).expanduser()
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".huaweicloud" / "credentials" if home and home != "~" else None


def _say_unsupported(found: Mapping[str, str | None], where: str) -> None:
    given = sorted(k for k, v in found.items() if v)
    if given:
        log.warning("%s: %s (a federated identity) is not supported by romakit and is ignored; "
                    "use AK/SK, a token, a password or an agency", where, ", ".join(given))


def chain(*, flags: Mapping[str, Any] | None = None, arguments: Mapping[str, Any] | None = None,
          profile: Source | None = None, recorded: Mapping[str, Any] | None = None, kind: str | None = None,
          environ: Mapping[str, str] | None = None) -> list[Source]:
    """The sources of settings, first wins: explicit ``arguments`` or ``flags``, a romakit
    ``profile``, ``ROMAKIT_*``, ``HUAWEICLOUD_SDK_*``, the SDK's credentials file, then
    ``recorded`` (a journal identity of an operation of ``kind``)."""
    out = [Source.arguments(arguments)] if arguments else []
    if flags:
        out.append(Source.flags(flags))
    if profile is not None:
        out.append(profile)
    out += [Source.environment(environ), Source.sdk_environment(environ), Source.sdk_credentials_file(environ)]
    if recorded and kind:
        out.append(Source.journal(recorded, kind))
    return out


def collect(sources: Sequence[Source], part: str | None = None) -> dict[str, Any]:
    """``{field: value}`` for the settings of ``part``, each from the first source that has it
    (the credentials all from one source)."""
    return collect_with_origin(sources, part)[0]


def collect_with_origin(sources: Sequence[Source], part: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """``({field: value}, {field: where it came from})``; see :func:`collect`."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    wanted = {s.field for s in settings_for(part)}
    creds = next((src for src in sources if any(src.values.get(f) not in (None, "") for f in CREDENTIALS)), None)
    for s in settings_for(part):
        pool = [creds] if s.field in CREDENTIALS else sources
        for src in pool:
            if src is not None and src.values.get(s.field) not in (None, ""):
                merged[s.field] = src.values[s.field]
                origin[s.field] = src.names.get(s.field) or src.label
                break
    extra = {k: v for src in sources for k, v in src.values.items() if k not in _BY_FIELD and k not in merged}
    merged.update({k: v for k, v in extra.items() if part is None or k not in wanted})
    return merged, origin
