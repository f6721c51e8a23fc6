"""LINK wire shapes <-> readable values: enum codes, filters, the device frame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from romakit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: integer codes of the Device object, decoded to readable categories
ENUMS: dict[str, dict[int, str]] = {
    "online_status": {0: "never_connected", 1: "online", 2: "offline"},
    "status": {0: "enabled", 1: "disabled"},
    "node_type": {0: "direct", 1: "gateway", 2: "child"},
    "device_type": {0: "plain", 1: "gateway", 2: "child"},
    "protocol_type": {0: "mqtt", 1: "coap", 2: "modbus", 3: "http", 4: "opcua"},
    "product_type": {0: "normal", 1: "gateway"},
}
_TIMES = ("created_datetime", "last_updated_datetime", "last_login_datetime", "last_active_time")
_PRODUCT = ("product_id", "product_name", "manufacturer_id", "model", "protocol_type", "product_type")
#: columns of ``LinkClient.devices()``, in order
DEVICE_COLUMNS = (
    "id", "device_name", "client_id", "node_id", "node_type", "device_type", "online_status", "status",
    "parent_device_id", "parent_device_name", *_PRODUCT, "app_id", "app_name", "tags", "description",
    *_TIMES, "client_ip", "keep_alive", "version",
)

#: query filters of ListDevices and how their values are checked
FILTERS = {
    "app_id", "product_id", "product_name", "device_name", "client_id", "node_id", "node_type",
    "online_status", "created_date_start", "created_date_end", "tag",
}


def _code(field: str, value: Any) -> int:
    """A readable enum value or its integer code -> the integer code."""
    names = ENUMS[field]
    if isinstance(value, bool):
        raise InputError(f"{field}={value!r}: expected one of {sorted(names.values())} or {sorted(names)}")
    if isinstance(value, int) and value in names:
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        for k, name in names.items():
            if v in (name, str(k)):
                return k
    raise InputError(f"{field}={value!r}: expected one of {sorted(names.values())} or {sorted(names)}")


def query_params(filters: Mapping[str, Any]) -> dict[str, str]:
    """Check ListDevices filters and turn them into query parameters.

    Accepts readable enum names (``online_status="online"`` or ``["online", "offline"]``),
    epoch ms or datetimes for the ``created_date_*`` bounds. Unknown names are refused.
    """
    unknown = sorted(set(filters) - FILTERS)
    if unknown:
        raise InputError(f"unknown device filter(s): {', '.join(unknown)}; known: {', '.join(sorted(FILTERS))}")
    out: dict[str, str] = {}
    for k, v in filters.items():
        if v is None:
            continue
        if k == "online_status":
            vals = [v] if isinstance(v, (str, int)) else list(v)
            out[k] = ",".join(str(_code(k, x)) for x in vals)
        elif k == "node_type":
            out[k] = str(_code(k, v))
        elif k == "product_id":
            if isinstance(v, bool) or not str(v).strip().isdigit():
                raise InputError(f"product_id={v!r}: expected an integer")
            out[k] = str(int(v))
        elif k in ("created_date_start", "created_date_end"):
            out[k] = str(_epoch_ms(k, v))
        elif k in ("device_name", "node_id"):
            s = str(v)
            if not 2 <= len(s) <= 64:
                raise InputError(f"{k}={v!r}: must be 2 to 64 characters")
            out[k] = s
        else:
            out[k] = str(v)
    return out


def _epoch_ms(name: str, v: Any) -> int:
    if isinstance(v, bool):
        raise InputError(f"{name}={v!r}: expected epoch milliseconds or a datetime")
    if isinstance(v, int):
        return v
    if hasattr(v, "timestamp"):
        return int(v.timestamp() * 1000)
    raise InputError(f"{name}={v!r}: expected epoch milliseconds or a datetime")


def devices_frame(items: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Device objects -> one tidy row each: product flattened, enums readable, times UTC."""
    import pandas as pd

    rows = []
    for d in items:
        row = {k: d.get(k) for k in DEVICE_COLUMNS if k not in _PRODUCT}
        if row["id"] is None:
            row["id"] = d.get("device_id")
        product = d.get("product") or {}
        for k in _PRODUCT:
            row[k] = product.get(k, d.get(k))
        rows.append(row)
    f = pd.DataFrame(rows, columns=list(DEVICE_COLUMNS))
    for col, names in ENUMS.items():
        cats = list(names.values())
        decoded = f[col].map(lambda x, names=names: names.get(x, None if x is None else str(x)))
        extra = sorted({x for x in decoded.dropna() if x not in cats})
        f[col] = pd.Categorical(decoded, categories=cats + extra)
    for col in _TIMES:
        f[col] = pd.to_datetime(pd.to_numeric(f[col], errors="coerce"), unit="ms", utc=True)
    for col in ("id", "parent_device_id", "product_id", "keep_alive"):
        f[col] = pd.to_numeric(f[col], errors="coerce").astype("Int64")
    for col in ("device_name", "client_id", "node_id", "parent_device_name", "product_name",
                "manufacturer_id", "model", "app_id", "app_name", "description", "client_ip", "version"):
        f[col] = f[col].astype("string")
    for col in ("product_name", "app_name", "app_id", "manufacturer_id", "model"):
        f[col] = f[col].astype("category")
    return f
