"""The messages of IoTDA's ``$sub_device_manager`` service, as the platform writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

SERVICE_ID = "$sub_device_manager"
_STATUS_NAMES = {0: "INACTIVE", 1: "ONLINE", 2: "OFFLINE"}


def event_time(now: datetime | None = None) -> str:
    """IoTDA's ``event_time``: UTC ``yyyyMMddTHHmmssZ``."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def envelope(gateway_id: str, event_type: str, event_id: str, paras: dict[str, Any]) -> dict[str, Any]:
    """A one-service ``$sub_device_manager`` message."""
    return {
        "object_device_id": gateway_id,
        "services": [
            {
                "service_id": SERVICE_ID,
                "event_type": event_type,
                "event_time": event_time(),
                "event_id": event_id,
                "paras": paras,
            }
        ],
    }


def device_info(dev: dict[str, Any], gateway_id: str, extension: dict[str, Any] | None = None) -> dict[str, Any]:
    """IoTDA's child ``DeviceInfo`` (as in ``add_sub_device_notify``) from a fleet device
    (``extension``: its ``extension_info``)."""
    product = dev.get("product") or {}
    status = "FROZEN" if dev.get("status") == 1 else _STATUS_NAMES.get(dev.get("online_status"), "OFFLINE")
    return {
        "parent_device_id": gateway_id,
        "node_id": dev.get("node_id"),
        "device_id": dev.get("client_id"),
        "name": dev.get("device_name"),
        "description": dev.get("description") or "",
        "manufacturer_id": product.get("manufacturer_id"),
        "model": product.get("model"),
        "product_id": str(product.get("product_id")),
        "fw_version": dev.get("version"),
        "sw_version": dev.get("version"),
        "status": status,
        "extension_info": dict(extension or {}),
    }


def failure(device_id: Any, code: str, msg: str) -> dict[str, Any]:
    """One item of ``failed_devices``."""
    return {"device_id": device_id, "error_code": code, "error_msg": msg}


def too_many(n: int, limit: int) -> str:
    """The error message of a request over the limit."""
    return f"request carries {n} devices; at most {limit} are allowed"
