"""Where romakit keeps its own files: one folder, ``ROMAKIT_HOME`` or the user data dir.

- ``journal.sqlite3``: the journal of real runs (unless ``ROMAKIT_JOURNAL`` names another);
- ``sandbox/journal.sqlite3``: the sandbox's runs, apart from the real ones;
- ``exports/``: CSV, Parquet and evidence reports written without a folder of their own
  (the ResultsView's buttons, ``res.report()``, ``romakit report OP``).

One place to find, back up or move (``ROMAKIT_HOME=...``), never inside a notebook
folder or a git checkout. Read each time: a changed ``ROMAKIT_HOME`` is followed.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "ROMAKIT_HOME"


def home() -> Path:
    """The directory of romakit's own files: ``$ROMAKIT_HOME`` or the user data dir
    (``~/.local/share/romakit`` on Linux, ``~/Library/Application Support/romakit`` on a
    Mac, ``%LOCALAPPDATA%\\romakit`` on Windows)."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("romakit", appauthor=False))


def exports() -> Path:
    """The folder exports and evidence reports go to when given no folder: ``<home>/exports``."""
    return home() / "exports"


def export_path(name: str | os.PathLike[str]) -> Path:
    """``name`` as an absolute path: a bare or relative name under :func:`exports` (the
    folder made when missing), an absolute one or ``~/...`` as given."""
    p = Path(name).expanduser()
    if p.is_absolute():
        return p
    out = (exports() / p).resolve()
    if out.parent == exports().resolve():
        out.parent.mkdir(parents=True, exist_ok=True)
    return out
