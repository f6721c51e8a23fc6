"""romakit: act on Huawei Cloud IoT fleets from Jupyter, and read what happened.

``import romakit`` is light: the clients, the sandbox, pandas and the widgets load
when first touched (``rk.LinkClient``, ``rk.sandbox()``, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: every public name, once: name -> the module that defines it
_LAZY = {
    "AkSk": "romakit.link.auth",
    "AnswerTooLarge": "romakit.errors",
    "ApiError": "romakit.errors",
    "AsyncGateway": "romakit.iotda.gateway",
    "AsyncLinkClient": "romakit.link.client",
    "AuthRefused": "romakit.errors",
    "BatchOptions": "romakit.engine.options",
    "BatchResult": "romakit.results.result",
    "CancelToken": "romakit.engine.policy",
    "ConnectRefused": "romakit.errors",
    "DeadlineExceeded": "romakit.errors",
    "Gateway": "romakit.iotda.gateway",
    "GatewayGroup": "romakit.iotda.fanout",
    "InputError": "romakit.errors",
    "IotdaAkSk": "romakit.iotda.rest_auth",
    "IotdaClient": "romakit.iotda.rest",
    "LinkClient": "romakit.link.client",
    "ListingContradiction": "romakit.errors",
    "MalformedResponse": "romakit.errors",
    "MqttError": "romakit.errors",
    "RetryPolicy": "romakit.engine.policy",
    "Rollout": "romakit.engine.rollout",
    "RomakitError": "romakit.errors",
    "Sandbox": "romakit.sandboxes",
    "TakeoverRefused": "romakit.errors",
    "TargetNotFound": "romakit.errors",
    "Token": "romakit.link.auth",
    "TransportError": "romakit.errors",
    "connect": "romakit.config",
    "ClientClosed": "romakit.errors",
    "clean_up": "romakit.widgets.cleanup",
    "delete_children": "romakit.iotda.fanout",
    "console": "romakit.widgets.console",
    "journal": "romakit.replay",
    "restore": "romakit.restoring",
    "restore_children": "romakit.iotda.fanout",
    "resume": "romakit.replay",
    "sandbox": "romakit.sandboxes",
    "timeline": "romakit.timelines",
    "watch": "romakit.watching",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'romakit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
