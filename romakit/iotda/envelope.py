"""IoTDA ``$sub_device_manager`` envelopes: build the upstream ones, read the downstream ones.

Both directions share one shape::

    {"object_device_id": "<gateway id>",
     "services": [{"service_id": "$sub_device_manager", "event_type": "...",
                   "event_time": "20151212T121212Z", "event_id": "<id>", "paras": {...}}]}

Reading is tolerant (the official SDK crashes when ``failed_devices`` is absent): a
message becomes a :class:`DownMessage` of typed :class:`DownEvent` records and never an
exception. What cannot be read is described in ``problem`` (the whole message or one
event) so the gateway can record it and move on; unreadable single items inside an
otherwise fine answer are skipped and counted in ``notes`` (their devices then end
``unknown``, "not in answer", which is the truth: nobody said what happened to them).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from romakit import wire
from romakit.jsondepth import MAX_DEPTH, too_deep

SERVICE_ID = "$sub_device_manager"

DELETE_REQUEST = "delete_sub_device_request"
DELETE_RESPONSE = "delete_sub_device_response"
ADD_REQUEST = "add_sub_device_request"
ADD_RESPONSE = "add_sub_device_response"
STATUS_REQUEST = "sub_device_update_status"
STATUS_RESPONSE = "sub_device_update_status_response"
SYNC_REQUEST = "sub_device_sync_request"
DELETE_NOTIFY = "delete_sub_device_notify"
ADD_NOTIFY = "add_sub_device_notify"

#: request event type -> the event type of its answer
RESPONSE_OF = {
    DELETE_REQUEST: DELETE_RESPONSE,
    ADD_REQUEST: ADD_RESPONSE,
    STATUS_REQUEST: STATUS_RESPONSE,
}
RESPONSES = frozenset(RESPONSE_OF.values())
NOTIFIES = frozenset({DELETE_NOTIFY, ADD_NOTIFY})

#: documented per-request limits (one home: :mod:`romakit.wire`)
MAX_DELETE = wire.IOTDA_MAX_DELETE
MAX_ADD = wire.IOTDA_MAX_ADD
MAX_STATUS = wire.IOTDA_MAX_STATUS

EVENT_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


def up_topic(gateway_id: str) -> str:
    return f"$oc/devices/{gateway_id}/sys/events/up"


def down_topic(gateway_id: str) -> str:
    return f"$oc/devices/{gateway_id}/sys/events/down"


def new_event_id() -> str:
    """A fresh 36-character event id (uuid4), the only link between request and answer."""
    return str(uuid.uuid4())


def format_event_time(when: datetime | None = None) -> str:
    """UTC ``yyyyMMddTHHmmssZ`` (the SDK's local time with dashes is wrong)."""
    when = when or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("format_event_time() needs an aware datetime; got a naive one")
    return when.astimezone(UTC).strftime(EVENT_TIME_FORMAT)


def parse_event_time(value: Any) -> datetime | None:
    """The UTC datetime of an ``event_time`` string, or None when absent or malformed."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, EVENT_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


# -- building ------------------------------------------------------------------------


def build(
    gateway_id: str,
    event_type: str,
    paras: Mapping[str, Any],
    *,
    event_id: str | None = None,
    event_time: datetime | None = None,
) -> bytes:
    """One upstream message carrying one ``$sub_device_manager`` event, as UTF-8 JSON."""
    service = {
        "service_id": SERVICE_ID,
        "event_type": event_type,
        "event_time": format_event_time(event_time),
        "event_id": event_id or new_event_id(),
        "paras": dict(paras),
    }
    body = {"object_device_id": gateway_id, "services": [service]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def delete_paras(device_ids: Iterable[str]) -> dict[str, Any]:
    ids = list(device_ids)
    if not 1 <= len(ids) <= MAX_DELETE:
        raise ValueError(f"a delete request carries 1..{MAX_DELETE} device ids, got {len(ids)}")
    return {"devices": ids}


def add_paras(devices: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    items = [dict(d) for d in devices]
    if not 1 <= len(items) <= MAX_ADD:
        raise ValueError(f"an add request carries 1..{MAX_ADD} devices, got {len(items)}")
    return {"devices": items}


def status_paras(statuses: Iterable[tuple[str, str]]) -> dict[str, Any]:
    items = [{"device_id": d, "status": s} for d, s in statuses]
    if not 1 <= len(items) <= MAX_STATUS:
        raise ValueError(f"a status update carries 1..{MAX_STATUS} devices, got {len(items)}")
    return {"device_statuses": items}


def sync_paras(version: int | None = None) -> dict[str, Any]:
    return {} if version is None else {"version": int(version)}


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One item of ``failed_devices``: who (device id, or node id for adds) and why."""

    device_id: str | None
    error_code: str | None
    error_msg: str | None
    node_id: str | None = None
    product_id: str | None = None

    @property
    def key(self) -> str | None:
        """The id a request named this device by (node id for adds, else device id)."""
        return self.node_id if self.node_id is not None else self.device_id


@dataclass(frozen=True)
class DownEvent:
    """One downstream event, read as far as it can be.

    ``successful`` holds dicts with at least ``device_id`` (for adds also ``node_id``,
    for status updates ``status``); ``devices`` the device dicts of a notify.
    ``problem`` is set when the event is not the documented shape; ``notes`` counts
    unreadable items that were skipped.
    """

    service_id: str | None
    event_type: str | None
    event_id: str | None
    event_time: str | None = None
    object_device_id: str | None = None
    paras: Mapping[str, Any] = field(default_factory=dict)
    successful: tuple[dict[str, Any], ...] = ()
    failed: tuple[Failure, ...] = ()
    devices: tuple[dict[str, Any], ...] = ()
    version: int | None = None
    problem: str | None = None
    notes: str | None = None

    @property
    def is_sub_device_event(self) -> bool:
        return self.service_id == SERVICE_ID

    @property
    def is_response(self) -> bool:
        return self.is_sub_device_event and self.event_type in RESPONSES

    @property
    def is_notify(self) -> bool:
        return self.is_sub_device_event and self.event_type in NOTIFIES

    @property
    def event_time_utc(self) -> datetime | None:
        return parse_event_time(self.event_time)

    @property
    def device_ids(self) -> list[str]:
        """Every device this event names (successful, failed, or the notify's devices)."""
        out: list[str] = []
        for d in self.successful:
            k = d.get("device_id") or d.get("node_id")
            if k is not None:
                out.append(str(k))
        out.extend(str(f.device_id or f.node_id) for f in self.failed if (f.device_id or f.node_id))
        for d in self.devices:
            k = d.get("device_id") or d.get("node_id")
            if k is not None:
                out.append(str(k))
        return out


@dataclass(frozen=True)
class DownMessage:
    """A downstream message: its events, or why it could not be read at all."""

    events: tuple[DownEvent, ...] = ()
    object_device_id: str | None = None
    problem: str | None = None


def parse_down(payload: bytes | bytearray | str) -> DownMessage:
    """Read a downstream message; never raises for anything the payload holds."""
    if too_deep(payload):
        return DownMessage(problem=f"JSON nested past {MAX_DEPTH} levels")
    try:
        text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else str(payload)
        body = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        return DownMessage(problem=f"not JSON ({type(e).__name__})")
    if not isinstance(body, dict):
        return DownMessage(problem=f"top level is a JSON {type(body).__name__}, not an object")
    obj = body.get("object_device_id")
    obj = obj if isinstance(obj, str) else None
    services = body.get("services")
    if not isinstance(services, list) or not services:
        return DownMessage(object_device_id=obj, problem="no 'services' list")
    return DownMessage(events=tuple(_parse_service(s, obj) for s in services), object_device_id=obj)


def _opt_str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return None


def _parse_service(s: Any, obj: str | None) -> DownEvent:
    if not isinstance(s, dict):
        return DownEvent(None, None, None, object_device_id=obj, problem="a service entry is not an object")
    service_id = s.get("service_id") if isinstance(s.get("service_id"), str) else None
    event_type = s.get("event_type") if isinstance(s.get("event_type"), str) else None
    event_id = s.get("event_id") if isinstance(s.get("event_id"), str) and s.get("event_id") else None
    event_time = s.get("event_time") if isinstance(s.get("event_time"), str) else None
    base: dict[str, Any] = {"object_device_id": obj, "event_time": event_time}
    if service_id is None or event_type is None:
        missing = [k for k, v in (("service_id", service_id), ("event_type", event_type)) if v is None]
        return DownEvent(service_id, event_type, event_id, **base, problem=f"missing or non-string {', '.join(missing)}")
    paras = s.get("paras")
    if service_id != SERVICE_ID:  # another system service (OTA, time sync...): not ours to judge
        return DownEvent(service_id, event_type, event_id, **base, paras=paras if isinstance(paras, dict) else {})
    if not isinstance(paras, dict):
        return DownEvent(service_id, event_type, event_id, **base, problem="'paras' is missing or not an object")
    ev = DownEvent(service_id, event_type, event_id, **base, paras=paras)
    if event_type in RESPONSES:
        return _parse_response(ev, paras)
    if event_type in NOTIFIES:
        return _parse_notify(ev, paras)
    return ev


def _parse_response(ev: DownEvent, paras: dict) -> DownEvent:
    if ev.event_id is None:
        return replace(ev, problem="a response without 'event_id' cannot be matched to its request")
    succ_raw, fail_raw = paras.get("successful_devices"), paras.get("failed_devices")
    if succ_raw is None and fail_raw is None:
        return replace(ev, problem="neither 'successful_devices' nor 'failed_devices' present")
    for name, val in (("successful_devices", succ_raw), ("failed_devices", fail_raw)):
        if val is not None and not isinstance(val, list):
            return replace(ev, problem=f"'{name}' is a {type(val).__name__}, not a list")
    skipped = 0
    successful: list[dict[str, Any]] = []
    for item in succ_raw or ():
        if isinstance(item, str) and item:
            successful.append({"device_id": item})
        elif isinstance(item, dict) and (_opt_str(item.get("device_id")) or _opt_str(item.get("node_id"))):
            d = dict(item)
            for k in ("device_id", "node_id"):
                if k in d:
                    d[k] = _opt_str(d[k])
            successful.append(d)
        else:
            skipped += 1
    failed: list[Failure] = []
    for item in fail_raw or ():
        if not isinstance(item, dict):
            skipped += 1
            continue
        f = Failure(
            device_id=_opt_str(item.get("device_id")),
            error_code=_opt_str(item.get("error_code")),
            error_msg=_opt_str(item.get("error_msg")),
            node_id=_opt_str(item.get("node_id")),
            product_id=_opt_str(item.get("product_id")),
        )
        if f.key is None:
            skipped += 1
        else:
            failed.append(f)
    notes = f"{skipped} unreadable item(s) skipped" if skipped else None
    return replace(ev, successful=tuple(successful), failed=tuple(failed), notes=notes)


def _parse_notify(ev: DownEvent, paras: dict) -> DownEvent:
    devs = paras.get("devices")
    if not isinstance(devs, list):
        return replace(ev, problem="'devices' is missing or not a list")
    version = paras.get("version")
    if isinstance(version, str) and version.isascii() and version.isdigit() and len(version) <= 18:
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool):
        version = None
    good = [dict(d) for d in devs if isinstance(d, dict)]
    skipped = len(devs) - len(good)
    return replace(
        ev, devices=tuple(good), version=version, notes=f"{skipped} unreadable item(s) skipped" if skipped else None
    )


__all__ = [
    "SERVICE_ID",
    "DownEvent",
    "DownMessage",
    "Failure",
    "build",
    "parse_down",
    "format_event_time",
    "parse_event_time",
    "new_event_id",
    "up_topic",
    "down_topic",
]
