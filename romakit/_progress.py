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

    return tqdm(total=total, desc=desc, unit="dev", leave=True, mininterval=0.2, ncols=_columns())


def _columns() -> int | None:
    """The terminal's width, or 80 when it reports none: a pseudo-terminal that was never
    given a size (``script``, ``ssh -t``, ``docker exec -t``, CI) says 0 columns, and tqdm
    then draws an empty bar: the run looks silent. None (tqdm decides) outside a terminal."""
    import os

    try:
        if not sys.stderr.isatty():
            return None
        cols = os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return None
    if cols > 0:
        return None  # tqdm measures it itself (and follows a resize)
    env = os.environ.get("COLUMNS", "")
    return int(env) if env.isdigit() and int(env) > 0 else 80
