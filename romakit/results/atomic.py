"""Export files written whole or not at all: each is written to a temporary file in the
target's directory and renamed over it, so a failure (a full disk, a killed process)
leaves the previous file as it was. Directories, device nodes, pipes and sockets are
refused as targets."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from romakit.errors import InputError


def export_target(path: str | os.PathLike, what: str) -> Path:
    """``path`` as the regular file an export may replace (a symlink's target); InputError
    naming ``what`` for a directory, a device node or pipe, or a missing directory."""
    given = Path(path).expanduser()
    real = Path(os.path.realpath(given))
    if real.is_dir():
        raise InputError(f"cannot write {what} to {given}: it is a directory; give a file name in it")
    if real.exists() and not real.is_file():
        raise InputError(f"cannot write {what} to {given}: it is not a regular file (a device, pipe or socket)")
    if not real.parent.is_dir():
        raise InputError(f"cannot write {what} to {given}: the directory {real.parent} does not exist")
    return real


@contextlib.contextmanager
def replacing(path: str | os.PathLike, what: str = "the export") -> Iterator[Path]:
    """Yield a new temporary path beside ``path``; when the block ends without an error,
    the file written there (flushed to disk) replaces ``path``; otherwise it is removed
    and ``path`` is untouched. A new file gets the mode the umask gives; a replaced one
    keeps its mode."""
    real = export_target(path, what)
    tmp = real.with_name(f".{real.name}.{secrets.token_hex(4)}.tmp")
    mode = real.stat().st_mode & 0o7777 if real.exists() else None
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
