"""Validate device ids before anything is sent; every refusal names the offending values."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from numbers import Integral, Real
from typing import Any

from romakit import wire
from romakit.errors import InputError

#: DeviceInfoSimple.id range documented for LINK
LINK_ID_MIN, LINK_ID_MAX = wire.LINK_ID_MIN, wire.LINK_ID_MAX
#: IoTDA device ids: letters, digits, '_' and '-', 1..128 characters
IOTDA_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SHOW = 10
_NUMERIC_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _as_list(values: Any, what: str) -> list:
    if values is None:
        raise InputError(f"no {what} given (got None)")
    if isinstance(values, (str, bytes, int, float, Decimal)):
        return [values]
    if hasattr(values, "tolist") and not isinstance(values, dict):  # numpy arrays, pandas Series/Index
        return list(values.tolist())
    if isinstance(values, Iterable) and not isinstance(values, dict):
        return list(values)
    raise InputError(f"{what} must be a list of ids, got {type(values).__name__}")


def _shown(v: Any) -> str:
    """repr(v), or a short stand-in when it cannot be made (ints past 4,300 digits)."""
    try:
        r = repr(v)
        return r if len(r) <= 60 else r[:50] + f"... ({len(r)} characters)"
    except ValueError:
        return f"<{type(v).__name__} of about {v.bit_length() * 30103 // 100000 + 1} digits>"


def _refuse(bad: list[tuple[Any, str]], total: int, what: str) -> None:
    shown = "; ".join(f"{_shown(v)} ({why})" for v, why in bad[:_SHOW])
    more = f"; and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
    raise InputError(f"{len(bad)} of {total} {what} refused, nothing was sent: {shown}{more}")


def _out_of_range(d: Decimal) -> str:
    """Why a value of more than 19 digits is refused: too small or too large."""
    return "must be >= 1" if d < 0 else f"must be <= {LINK_ID_MAX}"


def _link_id(v: Any) -> int | str:
    """The id as int, or the reason it is refused."""
    if isinstance(v, bool) or type(v).__name__ in ("bool_", "bool"):
        return "a boolean is not an id"
    if isinstance(v, Integral):
        n = int(v)
    elif isinstance(v, (Real, Decimal)):
        if isinstance(v, Decimal) and not v.is_finite():  # float(sNaN) raises
            return "not a number"
        f = float(v)
        if math.isnan(f) or math.isinf(f):
            return "not a number"
        if isinstance(v, Decimal) and v.adjusted() > 18:
            return _out_of_range(v)
        n = math.floor(v if isinstance(v, Decimal | Fraction) else f)  # the service rounds down
    elif isinstance(v, str):
        s = v.strip()
        if not _NUMERIC_RE.fullmatch(s):  # plain ASCII numbers only: no "1_000", no other scripts
            return "not numeric" if s.lower() not in ("nan", "inf", "-inf", "+inf", "infinity") else "not a number"
        try:
            d = Decimal(s)
        except InvalidOperation:
            return "not numeric"
        if not d.is_finite():
            return "not a number"
        if d.adjusted() > 18:  # "1e999999999": refuse before making a billion-digit int
            return _out_of_range(d)
        n = math.floor(d)
    else:
        return f"not an id ({type(v).__name__})"
    if n < LINK_ID_MIN:
        return "must be >= 1"
    if n > LINK_ID_MAX:
        return f"must be <= {LINK_ID_MAX}"
    return n


def link_ids(values: Any) -> list[int]:
    """LINK device ids as ints, fractional values rounded down as the service does,
    duplicates collapsed (first occurrence kept). Refuses bool, NaN, zero, negatives,
    out-of-range and non-numeric values, naming them."""
    items = _as_list(values, "device ids")
    if not items:
        raise InputError("no device ids given")
    out: list[int] = []
    bad: list[tuple[Any, str]] = []
    if set(map(type, items)) == {int} and min(items) >= LINK_ID_MIN and max(items) <= LINK_ID_MAX:
        return list(dict.fromkeys(items))  # the common case (plain ints in range), checked at C speed
    for v in items:
        r = _link_id(v)
        if isinstance(r, str):
            bad.append((v, r))
        else:
            out.append(r)
    if bad:
        _refuse(bad, len(items), "device ids")
    return list(dict.fromkeys(out))


def iotda_ids(values: Any, what: str = "child device ids") -> list[str]:
    """IoTDA device ids as strings (letters, digits, '_' and '-', at most 128), duplicates collapsed."""
    items = _as_list(values, what)
    if not items:
        raise InputError(f"no {what} given")
    bad: list[tuple[Any, str]] = []
    for v in items:
        if not isinstance(v, str):
            bad.append((v, f"must be a string, not {type(v).__name__}"))
        elif not v:
            bad.append((v, "empty"))
        elif len(v) > 128:
            bad.append((v[:20] + "...", f"{len(v)} characters, at most 128"))
        elif not IOTDA_ID_RE.fullmatch(v):
            bad.append((v, "only letters, digits, '_' and '-' are allowed"))
    if bad:
        _refuse(bad, len(items), what)
    return list(dict.fromkeys(items))


def check_path_param(name: str, value: str, max_len: int) -> str:
    """project_id / instance_id: a non-empty string of at most ``max_len`` URL-safe characters."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise InputError(f"{name} is {len(value)} characters, at most {max_len}: {value!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise InputError(f"{name} has characters outside letters, digits, '-', '_' and '.': {value!r}")
    return value
