"""LINK wire shapes <-> readable values: enum codes, filters, the device frame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
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
_PRODUCT = PRODUCT_COLUMNS = ("product_id", "product_name", "manufacturer_id", "model", "protocol_type", "product_type")
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


def dict_columns(items: Iterable[Mapping[str, Any]]) -> dict[str, list]:
    """Device objects (dicts) -> the frame's columns, product fields flattened."""
    cols: dict[str, list] = {c: [] for c in DEVICE_COLUMNS}
    own = [c for c in DEVICE_COLUMNS if c not in _PRODUCT]
    for d in items:
        for c in own:
            cols[c].append(d.get(c))
        if cols["id"][-1] is None:
            cols["id"][-1] = d.get("device_id")
        product = d.get("product") or {}
        for c in _PRODUCT:
            cols[c].append(product.get(c, d.get(c)))
    return cols


def devices_frame(items: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Device objects -> one tidy row each: product flattened, enums readable, times UTC."""
    return columns_frame(dict_columns(items))


def columns_frame(cols: Mapping[str, Any]) -> pd.DataFrame:
    """The device frame from its columns, one per :data:`DEVICE_COLUMNS`: each the raw
    wire values (a list), or already one pyarrow array of the column's wire type
    (:func:`wire_array`). Each column is converted once, in C where it can be, with a
    general path for odd values."""
    import pandas as pd

    out = {col: column(col, cols[col]) for col in DEVICE_COLUMNS}
    return pd.DataFrame(out, columns=list(DEVICE_COLUMNS), copy=False)


_INTS = ("id", "parent_device_id", "product_id", "keep_alive")
_CATEGORIES = ("product_name", "app_name", "app_id", "manufacturer_id", "model")
_STRINGS = ("device_name", "client_id", "node_id", "parent_device_name", "description", "client_ip", "version")
#: the pyarrow type a column's wire values take on the fast path ("int": int64, "str": large_string)
WIRE_TYPES: dict[str, str] = {
    **dict.fromkeys((*ENUMS, *_TIMES, *_INTS), "int"), **dict.fromkeys((*_CATEGORIES, *_STRINGS), "str"),
}


def column(col: str, vals: Any) -> Any:
    """One column of the device frame from its wire values: a list, or a pyarrow array
    of ``WIRE_TYPES[col]`` (what :func:`wire_array` gives)."""
    if col in ENUMS:
        return _enum(col, vals)
    if col in _TIMES:
        return _times(vals)
    if col in _INTS:
        return _int_array(vals)
    if col in _CATEGORIES:
        return _category(vals)
    if col in _STRINGS:
        return _strings(vals)
    import numpy as np  # tags: lists, as sent (fromiter: each value as it is, never broadcast)

    return np.fromiter(vals, dtype=object, count=len(vals))


def wire_array(col: str, vals: Sequence[Any]) -> Any:
    """A column's wire values as one pyarrow array of ``WIRE_TYPES[col]``, converting each
    value as :func:`column` would (digit strings in a number column, numbers in a text
    column); None when only :func:`column`'s general path can take them (or for tags).

    Pages are converted so as they arrive, the frame then built from compact arrays
    rather than from a million Python objects held until the end: low-cardinality text
    as a dictionary array (codes and the page's few distinct values), enum codes as int8."""
    kind = WIRE_TYPES.get(col)
    if kind is None:
        return None
    if col in _CATEGORIES or col in ENUMS:
        arr = _arrow(vals, "dict" if col in _CATEGORIES else "int8")
        if arr is not None:
            return arr
    arr = _arrow(vals, kind)
    if arr is None and kind == "str":
        arr = _arrow(_texts(vals), "str")
    if arr is not None:
        return arr.dictionary_encode() if col in _CATEGORIES else arr
    if col in _INTS:  # e.g. keep_alive as text
        import pyarrow as pa
        import pyarrow.compute as pc

        text = _arrow(vals, "str")
        if text is not None:
            try:  # digit strings: what the general path makes of them, in C
                return pc.cast(text, pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        return pa.array(_int_array(vals), type=pa.int64())  # the general path, one value at a time
    return None


def _texts(vals: Sequence[Any]) -> list:
    """Text values as str (numbers too), None kept."""
    return [v if v is None or isinstance(v, str) else str(v) for v in vals]


def _arrow(vals: Any, kind: str) -> Any:
    """``vals`` as a pyarrow array of ``kind`` ("int", "str"; "int8", "dict": dictionary
    of text), or None when they are not."""
    import pyarrow as pa

    want = _arrow_type(kind)
    if isinstance(vals, pa.Array):
        return vals if vals.type == want else None
    try:
        return pa.array(vals, type=want)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
        return None


@cache
def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    if kind == "dict":
        return pa.dictionary(pa.int32(), pa.large_string())
    return {"int": pa.int64, "str": pa.large_string, "int8": pa.int8}[kind]()


def _pylist(vals: Any) -> Sequence[Any]:
    """Wire values as a Python sequence (a pyarrow array's as a list)."""
    return vals.to_pylist() if hasattr(vals, "to_pylist") else vals


def _strings(vals: Any) -> Any:
    import pandas as pd

    arr = _arrow(vals, "str")
    if arr is None:
        arr = _arrow(_texts(_pylist(vals)), "str")
    if pd.StringDtype().storage == "pyarrow" and arr is not None:
        return pd.arrays.ArrowStringArray(arr)
    return pd.array(_texts(_pylist(vals)), dtype="string")


def _category(vals: Any) -> Any:
    """Low-cardinality text -> a categorical (categories sorted, of the string dtype)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(vals, pa.DictionaryArray) and pa.types.is_large_string(vals.dictionary.type):
        enc = vals  # wire_array's: the distinct values are all used ones
    else:
        arr = _arrow(vals, "str")
        if arr is None:
            return pd.Categorical(pd.array(_texts(_pylist(vals)), dtype="string"))
        enc = arr.dictionary_encode()
    texts = enc.dictionary.to_pylist()
    order = np.argsort(np.array(texts, dtype=object)) if texts else np.empty(0, dtype=np.int64)
    rank = np.empty(len(texts), dtype=np.int64)
    rank[order] = np.arange(len(texts))
    idx = enc.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    codes = rank[idx] if len(texts) else idx
    codes[enc.indices.is_null().to_numpy(zero_copy_only=False)] = -1
    return pd.Categorical.from_codes(codes, categories=pd.Index(pd.array([texts[i] for i in order], dtype="string")))


def _int_array(vals: Any) -> Any:
    """Whole numbers (ints or digit strings) -> Int64, anything else missing."""
    import numpy as np
    import pandas as pd

    arr = _arrow(vals, "int")
    if arr is not None:
        mask = arr.is_null().to_numpy(zero_copy_only=False)
        return pd.arrays.IntegerArray(arr.fill_null(0).to_numpy(), mask)
    # e.g. keep_alive sent as text: convert each distinct value once
    obj = np.empty(len(vals), dtype=object)
    obj[:] = _pylist(vals)
    codes, uniques = pd.factorize(obj, use_na_sentinel=True)
    conv = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").astype("Int64").array
    return conv.take(codes, allow_fill=True)


def _times(vals: Any) -> Any:
    """Epoch milliseconds -> UTC times (microseconds; what ``to_datetime(unit="ms")`` gives)."""
    import numpy as np
    import pandas as pd

    arr = _arrow(vals, "int")
    if arr is None:
        ms = pd.to_numeric(pd.Series(_pylist(vals), dtype=object), errors="coerce").to_numpy(dtype="float64")
        return pd.to_datetime(ms, unit="ms", utc=True)
    us = arr.fill_null(0).to_numpy() * 1000
    us[arr.is_null().to_numpy(zero_copy_only=False)] = np.iinfo(np.int64).min  # NaT
    return pd.to_datetime(us.view("datetime64[us]"), utc=True)


def _enum(col: str, vals: Any) -> Any:
    """Integer codes -> the readable categorical (unknown values kept as text categories)."""
    import numpy as np
    import pandas as pd

    names = ENUMS[col]
    cats = list(names.values())
    import pyarrow as pa

    arr = vals if isinstance(vals, pa.Array) and pa.types.is_integer(vals.type) else _arrow(vals, "int")
    if arr is not None:  # the documented codes are 0..k-1: a code is its category's position
        raw = arr.fill_null(0).to_numpy()
        if not len(raw) or (raw.min() >= 0 and raw.max() < len(cats)):
            codes = np.where(arr.is_null().to_numpy(zero_copy_only=False), -1, raw)
            return pd.Categorical.from_codes(codes, categories=cats)  # type: ignore[call-overload]
    vals = _pylist(vals)
    decoded = [None if v is None else names.get(v, str(v)) for v in vals]
    extra = sorted({x for x in decoded if x is not None and x not in cats})
    return pd.Categorical(decoded, categories=cats + extra)
