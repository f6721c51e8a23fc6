"""Text the service sends (device names, error codes and messages) made safe to show:
on a terminal, control characters and bidi overrides are shown escaped (``\\x1b``,
``\\u202e``), never obeyed; in a CSV file, a cell a spreadsheet would run as a formula
is neutralised with a leading ``'`` (OWASP's CSV-injection advice), reversibly.

No third-party import: the pandas helpers take frames and series as given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

#: C0 controls (tab and newline included), DEL, C1 controls, the bidi marks, embeddings,
#: overrides and isolates, and the Unicode line and paragraph separators
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

#: a CSV cell starting with one of these is a formula to Excel, LibreOffice and Sheets
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: the prefix that neutralises one (and that is itself escaped when a value starts with it)
CSV_QUOTE = "'"
_CSV_HIT = "[=+@\t\r'-]"


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def terminal(text: Any, *, keep_newlines: bool = False) -> str:
    """``str(text)`` with every control character and bidi override shown escaped, so a
    terminal prints it instead of obeying it (``"\\x1b]0;t\\x07"`` retitles no window).
    ``keep_newlines=True`` leaves ``\\n`` alone (for text romakit laid out in lines)."""
    s = str(text)
    rx = _UNSAFE_KEEP_NL if keep_newlines else _UNSAFE
    return rx.sub(_escape, s) if rx.search(s) else s


def csv_cell(value: Any) -> Any:
    """A text value as a CSV cell no spreadsheet runs: ``=1+1`` -> ``'=1+1``; a value
    starting with ``'`` gets one more, so :func:`csv_value` gives every value back.
    Anything that is not a str is returned as it is."""
    if isinstance(value, str) and value and (value[0] in FORMULA_START or value[0] == CSV_QUOTE):
        return CSV_QUOTE + value
    return value


def csv_value(cell: Any) -> Any:
    """The value :func:`csv_cell` made ``cell`` from (one leading ``'`` dropped)."""
    if isinstance(cell, str) and cell.startswith(CSV_QUOTE):
        return cell[1:]
    return cell


def _each_text_column(frame: Any, change: Callable[[Any], Any]) -> Any:
    """A copy of ``frame`` with ``change`` applied to each column holding text (object,
    string, categorical of text); numbers, times and booleans are never touched."""
    import pandas as pd

    out = None
    for c in frame.columns:
        dt = frame[c].dtype
        if isinstance(dt, pd.CategoricalDtype):
            dt = dt.categories.dtype
        if pd.api.types.is_object_dtype(dt) or pd.api.types.is_string_dtype(dt):
            out = frame.copy() if out is None else out
            out[c] = change(out[c])
    return frame if out is None else out


def _csv_column(col: Any) -> Any:
    import pandas as pd

    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.rename_categories([csv_cell(v) for v in col.cat.categories])
    if isinstance(col.dtype, pd.StringDtype):  # vectorised: a result has a million of them
        hit = col.str.match(_CSV_HIT).fillna(False).astype(bool)
        return col.where(~hit, CSV_QUOTE + col)
    return col.map(csv_cell, na_action="ignore")


def csv_frame(frame: Any) -> Any:
    """A copy of ``frame`` whose text cells are :func:`csv_cell` (numeric columns as they are)."""
    return _each_text_column(frame, _csv_column)


def csv_values(col: Any) -> Any:
    """A text column read back from a CSV written with :func:`csv_frame`: the values it
    was made from (a str column; anything else as it is)."""
    import pandas as pd

    if not isinstance(col.dtype, pd.StringDtype):
        return col
    hit = col.str.startswith(CSV_QUOTE).fillna(False).astype(bool)
    return col.where(~hit, col.str.slice(1)) if hit.any() else col


def terminal_frame(frame: Any) -> Any:
    """A copy of ``frame`` whose text cells are :func:`terminal` (for a table on screen)."""
    return _each_text_column(frame, lambda col: col.astype(object).map(
        lambda v: terminal(v) if isinstance(v, str) else v))
