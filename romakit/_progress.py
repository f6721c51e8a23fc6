"""Progress bars: ``tqdm.auto`` where a person is watching, nothing otherwise."""

from __future__ import annotations

import sys
from typing import Any


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


def progress_bar(total: int, desc: str, enabled: bool | None) -> Any:
    """A bar of ``total`` devices; ``enabled=None`` means "if someone is watching"."""
    if enabled is None:
        enabled = interactive()
    if not enabled or total == 0:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="dev", leave=True, mininterval=0.2)
