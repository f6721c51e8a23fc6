"""The ``romakit`` command (also ``python -m romakit``): batch operations, the journal
and the sandbox, for terminals and schedulers.

Exit status: 0 every device succeeded; 1 some device failed, is unknown or was skipped;
2 bad input (ids, flags, missing credentials), nothing sent; 3 the service could not be
reached or refused the connection.

Credentials come from the environment only (flags end up in shell history and ``ps``);
the rest from flags, else the environment, else (for ``resume``) the journal. The
variables, from :data:`romakit.config.SETTINGS` (the same table ``rk.connect()`` reads):
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from romakit import config
from romakit.cli.commands import (
    COMMANDS,
    EXIT_BAD_INPUT,
    EXIT_NOT_ALL_OK,
    EXIT_OK,
    EXIT_UNREACHABLE,
)
from romakit.cli.parser import build_parser as _build_parser

__doc__ = f"{__doc__ or ''}\n{config.env_help()}\n"

#: what the clients tell notebook users -> what the command's users type instead
_FLAG_FOR = {"pass allow_insecure=True": "pass --allow-insecure"}


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    return _build_parser(description=__doc__)


def _for_terminal(message: str) -> str:
    for said, flag in _FLAG_FOR.items():
        message = message.replace(said, flag)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.journal:
            from romakit.store.target import use

            use(args.journal)
        return int(COMMANDS[args.command](args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a clean one-line error for terminals; details with -X dev
        from romakit.errors import InputError, RomakitError

        if isinstance(e, InputError):
            print(f"romakit: {_for_terminal(str(e))}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(e, RomakitError):
            print(f"romakit: {_for_terminal(str(e))}", file=sys.stderr)
            return EXIT_UNREACHABLE
        raise


__all__ = ["EXIT_BAD_INPUT", "EXIT_NOT_ALL_OK", "EXIT_OK", "EXIT_UNREACHABLE", "build_parser", "main"]
