"""romakit: act on Huawei Cloud IoT fleets from Jupyter, and read what happened.

``import romakit`` is light: the clients, the sandbox, pandas and the widgets load
when first touched (``rk.LinkClient``, ``rk.sandbox()``, ...).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "sandbox": "romakit.sandbox",
    "Sandbox": "romakit.sandbox",
    "LinkClient": "romakit.link.client",
    "AsyncLinkClient": "romakit.link.client",
    "AkSk": "romakit.link.auth",
    "Token": "romakit.link.auth",
    "Gateway": "romakit.iotda.gateway",
    "BatchResult": "romakit.results",
    "RetryPolicy": "romakit.batch",
    "CancelToken": "romakit.batch",
    "Rollout": "romakit.rollout",
    "journal": "romakit.journal",
    "resume": "romakit.journal",
    "console": "romakit.widgets",
    "connect": "romakit.config",
    "RomakitError": "romakit.errors",
    "InputError": "romakit.errors",
    "ApiError": "romakit.errors",
    "TransportError": "romakit.errors",
    "MalformedResponse": "romakit.errors",
    "MqttError": "romakit.errors",
    "ConnectRefused": "romakit.errors",
}

__all__ = [
    "AkSk",
    "ApiError",
    "AsyncLinkClient",
    "BatchResult",
    "CancelToken",
    "ConnectRefused",
    "Gateway",
    "InputError",
    "LinkClient",
    "MalformedResponse",
    "MqttError",
    "RetryPolicy",
    "Rollout",
    "RomakitError",
    "Sandbox",
    "Token",
    "TransportError",
    "connect",
    "console",
    "journal",
    "resume",
    "sandbox",
    "__version__",
]


class _Package(types.ModuleType):
    """``rk.journal`` and ``rk.sandbox`` are functions named like the modules that define
    them. Importing such a module makes the import system bind the module over the
    function; this package refuses that one binding, so ``rk.journal()`` always works.
    (Import from those modules with ``from romakit.journal import ...``.)"""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


_SHADOWED = frozenset({"journal", "sandbox"})
sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'romakit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from romakit.batch import CancelToken, RetryPolicy
    from romakit.errors import (
        ApiError,
        ConnectRefused,
        InputError,
        MalformedResponse,
        MqttError,
        RomakitError,
        TransportError,
    )
    from romakit.iotda.gateway import Gateway
    from romakit.link.auth import AkSk, Token
    from romakit.link.client import AsyncLinkClient, LinkClient
    from romakit.results import BatchResult
    from romakit.sandbox import Sandbox, sandbox
