"""Progress bars: ``tqdm.auto`` where a person is watching, nothing otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger("romakit.progress")


class _NullBar:
    def update(self, n: int = 1) -> None: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...

    def close(self) -> None: ...


def interactive() -> bool:
    """True inside a Jupyter kernel or when stderr is a terminal."""
    ipy = sys.modules.get("IPython")
    if ipy is not None:
        shell = ipy.get_ipython()
        if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
            return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _CallbackBar:
    """Feeds ``callback(done, total)`` so a widget can draw its own progress."""

    def __init__(self, total: int, callback: Callable[[int, int], None]) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def update(self, n: int = 1) -> None:
        self.done += n
        try:
            self.callback(self.done, self.total)
        except Exception:  # noqa: BLE001 - a display problem must never stop a batch
            log.debug("progress callback failed", exc_info=True)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...

    def close(self) -> None: ...


def progress_bar(total: int, desc: str, enabled: bool | None | Callable[[int, int], None]) -> Any:
    """A bar of ``total`` devices. ``enabled=None`` means "if someone is watching";
    a callable gets ``(done, total)`` after every chunk instead of a bar."""
    if callable(enabled):
        return _CallbackBar(total, enabled)
    if enabled is None:
        enabled = interactive()
    if not enabled or total == 0:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="dev", leave=True, mininterval=0.2, **_unsized_terminal())


def _unsized_terminal() -> dict[str, int]:
    """``ncols``/``nrows`` for a terminal that reports no size: a pseudo-terminal never
    given one (``script``, ``ssh -t``, ``docker exec -t``, CI) says 0 x 0, and tqdm then
    hides its bar (no room below row 0): the run looks silent. Empty (tqdm measures,
    and follows a resize) for a terminal with a size, or no terminal."""
    import os

    try:
        if not sys.stderr.isatty():
            return {}
        size = os.get_terminal_size(sys.stderr.fileno())
    except (AttributeError, ValueError, OSError):
        return {}
    out = {}
    for key, have, env, default in (("ncols", size.columns, "COLUMNS", 80), ("nrows", size.lines, "LINES", 24)):
        if have <= 0:
            val = os.environ.get(env, "")
            out[key] = int(val) if val.isdigit() and int(val) > 0 else default
    return out
