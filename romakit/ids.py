"""Validate device ids before anything is sent; every refusal names the offending values."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import Decimal
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


#: floats hold every integer exactly only below this; past it a float may stand for another id
FLOAT_EXACT_MAX = 2**53
_INT_RE = re.compile(r"[+]?[0-9]+")
_ZERO_FRACTION_RE = re.compile(r"[+]?([0-9]+)\.0*")


_INEXACT = "a float past 2**53 is not exact (read the column as Int64 or str)"


def _digits(s: str) -> int:
    """The int of an ASCII digit string; LINK_ID_MAX + 1 for one too long to be an id."""
    d = s.lstrip("+").lstrip("0") or "0"
    return int(d) if len(d) <= 20 else LINK_ID_MAX + 1


def _in_range(n: int) -> int | str:
    if n < LINK_ID_MIN:
        return "must be >= 1"
    if n > LINK_ID_MAX:
        return f"must be <= {LINK_ID_MAX}"
    return n


def _from_float(f: float) -> int | str:
    """A float is an id only when it is a whole number below 2**53 (every float past it
    is a rounding of several integers: ``12345678901234567`` reads as ``...568.0``)."""
    if math.isnan(f) or math.isinf(f):
        return "not a number"
    if not f.is_integer():
        return "not a whole number"
    if abs(f) >= FLOAT_EXACT_MAX:
        return _INEXACT
    return _in_range(int(f))


def link_id(v: Any) -> int | str:
    """``v`` as an exact LINK device id (int), or the reason it is refused.

    Taken: ints (numpy ints included), strings of ASCII digits (``"8"``, ``" 8 "``,
    ``"8.0"`` below 2**53), Decimals and Fractions that are whole numbers, floats that are
    whole numbers below 2**53. Refused: booleans, missing values (None, NaN, ``pd.NA``),
    fractions, exponent notation, floats past 2**53, anything out of ``[1, LINK_ID_MAX]``.
    """
    if isinstance(v, bool) or type(v).__name__ in ("bool_", "bool"):
        return "a boolean is not an id"
    if isinstance(v, Integral):
        return _in_range(int(v))
    if isinstance(v, Decimal):
        if not v.is_finite():
            return "not a number"
        if v.adjusted() > 18:  # refuse before making a huge int
            return f"must be <= {LINK_ID_MAX}" if v > 0 else "must be >= 1"
        return _in_range(int(v)) if v == v.to_integral_value() else "not a whole number"
    if isinstance(v, Fraction):
        return _in_range(int(v)) if v.denominator == 1 else "not a whole number"
    if isinstance(v, Real):  # float, numpy floats
        return _from_float(float(v))
    if isinstance(v, str):
        s = v.strip()
        if _INT_RE.fullmatch(s):
            return _in_range(_digits(s))
        m = _ZERO_FRACTION_RE.fullmatch(s)
        if m:  # "8.0": what a float column prints; past 2**53 it may be another id
            n = _digits(m.group(1))
            return _in_range(n) if n < FLOAT_EXACT_MAX else _INEXACT
        if s.lower() in ("nan", "inf", "-inf", "+inf", "infinity", "<na>"):
            return "not a number"
        if _NUMERIC_RE.fullmatch(s):
            return "must be >= 1" if s.startswith("-") else "not plain digits"
        return "not numeric"
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return "missing"
    return f"not an id ({type(v).__name__})"


def link_ids(values: Any) -> list[int]:
    """LINK device ids as exact ints, duplicates collapsed (first occurrence kept).

    Every entry point (``force_offline``, ``delete_devices``, the CLI, the picker's paste
    box) reads ids here. Refuses (naming them) booleans, missing values, fractional
    values, floats past 2**53 (a float64 column cannot hold every id exactly),
    out-of-range and non-numeric values; see :func:`link_id`."""
    items = _as_list(values, "device ids")
    if not items:
        raise InputError("no device ids given")
    out: list[int] = []
    bad: list[tuple[Any, str]] = []
    if set(map(type, items)) == {int} and min(items) >= LINK_ID_MIN and max(items) <= LINK_ID_MAX:
        return list(dict.fromkeys(items))  # the common case (plain ints in range), checked at C speed
    for v in items:
        r = link_id(v)
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
