"""What can be set, and where it comes from: the settings table (profile field,
``ROMAKIT_*`` variable, ``romakit`` flag) and the sources a profile is resolved from.

:func:`chain` lists the sources in order, first wins; the credential chain (a named
profile, ``HUAWEICLOUD_SDK_*``, ``~/.huaweicloud/credentials``) adds its links there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


#: every setting, once: the profile fields, the ``ROMAKIT_*`` variables, the CLI flags
SETTINGS: tuple[Setting, ...] = (
    Setting("endpoint", "ROMAKIT_ENDPOINT", LINK, "LINK endpoint, e.g. https://roma.cn-north-4.myhuaweicloud.com",
            "--endpoint"),
    Setting("project_id", "ROMAKIT_PROJECT_ID", LINK, "project id", "--project-id"),
    Setting("instance_id", "ROMAKIT_INSTANCE_ID", LINK, "ROMA Connect instance id", "--instance-id"),
    Setting("ak", "ROMAKIT_AK", LINK, "access key (with ROMAKIT_SK)"),
    Setting("sk", "ROMAKIT_SK", LINK, "secret key", secret=True),
    Setting("token", "ROMAKIT_TOKEN", LINK, "IAM token, instead of AK/SK", secret=True),
    Setting("mqtt_host", "ROMAKIT_MQTT_HOST", GATEWAY, "MQTT host", "--host"),
    Setting("mqtt_port", "ROMAKIT_MQTT_PORT", GATEWAY, "MQTT port (default 8883, TLS)", "--port", int),
    Setting("gateway_id", "ROMAKIT_GATEWAY_ID", GATEWAY, "the gateway's device id", "--gateway",
            aliases=("ROMAKIT_GATEWAY",)),
    Setting("device_secret", "ROMAKIT_DEVICE_SECRET", GATEWAY, "the gateway's secret", secret=True),
    Setting("mqtt_rate", "ROMAKIT_MQTT_RATE", GATEWAY,
            "upstream messages/s per gateway (default 10, safe on IoTDA's smallest edition)", "--rate", float),
    Setting("mqtt_transport", "ROMAKIT_MQTT_TRANSPORT", GATEWAY, "tcp, or websockets (wss on port 443)", "--transport"),
    Setting("mqtt_proxy", "ROMAKIT_MQTT_PROXY", GATEWAY, "HTTP or SOCKS proxy for MQTT (http://host:3128, socks5://host:1080)",
            "--mqtt-proxy"),
    Setting("takeover", "ROMAKIT_TAKEOVER", GATEWAY,
            "log in even if the gateway is ONLINE in IoTDA (disconnects the field gateway)", "--takeover", bool),
    Setting("iotda_endpoint", "ROMAKIT_IOTDA_ENDPOINT", GATEWAY,
            "IoTDA REST endpoint: the gateway's status before login, its children", "--iotda-endpoint"),
    Setting("iotda_region", "ROMAKIT_IOTDA_REGION", GATEWAY,
            "region for IoTDA's derived AK/SK signing (standard/enterprise instances)", "--iotda-region"),
    Setting("ca_file", "ROMAKIT_CA_FILE", None, "CA file to verify TLS (--ca-bundle for LINK, --ca-file for MQTT)"),
)
_BY_FIELD = {s.field: s for s in SETTINGS}
#: environment variable -> profile field (aliases not included)
ENV_VARS = {s.env: s.field for s in SETTINGS}
#: deprecated environment variable -> the one to set instead
ENV_ALIASES = {a: s.env for s in SETTINGS for a in s.aliases}
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
        lines.append(f"  {s.env:<24} {s.help}{flag}{old}")
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
    def journal(cls, identity: Mapping[str, Any], kind: str) -> Source:
        """What the journal recorded of an operation of ``kind``: its client's
        ``identity()`` (endpoint, project, instance; host, port, gateway), else its target."""
        values = {_IDENTITY_FIELD.get(k, k): v for k, v in identity.items() if _IDENTITY_FIELD.get(k, k) in _BY_FIELD}
        if identity.get("target") is not None:
            values.setdefault(_TARGET_FIELD[kind], str(identity["target"]))
        return cls("journal", values)


def chain(*, flags: Mapping[str, Any] | None = None, recorded: Mapping[str, Any] | None = None,
          kind: str | None = None, environ: Mapping[str, str] | None = None) -> list[Source]:
    """The sources of settings, first wins: ``flags`` (explicit values), the environment,
    then ``recorded`` (a journal identity of an operation of ``kind``).

    The credential chain plugs in here: a named profile, ``HUAWEICLOUD_SDK_*``,
    ``~/.huaweicloud/credentials`` are further sources in this list."""
    out = [Source.flags(flags)] if flags else []
    out.append(Source.environment(environ))
    if recorded and kind:
        out.append(Source.journal(recorded, kind))
    return out


def collect(sources: Sequence[Source], part: str | None = None) -> dict[str, Any]:
    """``{field: value}`` for the settings of ``part``, each from the first source that has it."""
    merged: dict[str, Any] = {}
    for s in settings_for(part):
        for src in sources:
            if src.values.get(s.field) not in (None, ""):
                merged[s.field] = src.values[s.field]
                break
    return merged
