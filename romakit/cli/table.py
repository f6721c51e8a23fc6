"""Tables the ``romakit`` command prints, fitted to the terminal's width: columns are
left out, least useful first, until every line fits, and the last line names them."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import Any


def width() -> int | None:
    """The terminal's columns when stdout is one (``COLUMNS`` wins); None when it is a
    pipe or a file (a script gets every column)."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns or None


def fit(frame: Any, drop: Sequence[str], columns: int | None = None, *, more: str = "") -> str:
    """``frame`` as text (no index) in ``columns`` (None: as wide as it is), leaving out the
    columns of ``drop`` in that order until every line fits; a last line names those left
    out and ``more`` (where to see them)."""
    text = frame.to_string(index=False)
    left_out: list[str] = []
    for col in drop:
        if columns is None or max(map(len, text.splitlines()), default=0) <= columns:
            break
        if col in frame.columns:
            frame = frame.drop(columns=col)
            left_out.append(col)
            text = frame.to_string(index=False)
    if left_out:
        text += f"\n(not shown, for the terminal's width: {', '.join(left_out)}{'; ' + more if more else ''})"
    return text
