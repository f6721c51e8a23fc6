"""IoTDA gateway client: child-device management over MQTT (``$sub_device_manager``).

``auth`` (login), ``envelope`` (messages), ``recorder`` (down events) load without
paho; ``Gateway`` (paho-mqtt 2) loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Gateway": "romakit.iotda.gateway",
    "MalformedAnswer": "romakit.iotda.gateway",
    "MQTT_RETRY": "romakit.iotda.gateway",
    "EventRecorder": "romakit.iotda.recorder",
}

__all__ = ["EventRecorder", "Gateway", "MQTT_RETRY", "MalformedAnswer"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'romakit.iotda' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from romakit.iotda.gateway import MQTT_RETRY, Gateway, MalformedAnswer
    from romakit.iotda.recorder import EventRecorder
