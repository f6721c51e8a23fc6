"""The romakit command (also python -m romakit): batch operations, the device listing,
the journal, evidence reports and the sandbox, for terminals and schedulers.

Exit status:
  0  every device succeeded (a dry run: every id exists)
  1  some device failed, is unknown or was skipped (a dry run: some id does not exist);
     romakit retry OP sends the transient failures again, romakit resume OP the rest
  2  bad input (ids, flags, missing credentials): nothing was sent
  3  the service could not be reached, refused the connection or the credentials, said
     the instance does not exist, or answered out of bounds (past the deadline or the
     size cap, a listing contradicting itself); refused credentials and a missing
     instance stop at the pre-flight read, before the batch: nothing was done
  130  interrupted (Ctrl-C): what was sent is in the journal; romakit resume OP finishes it

A progress bar is drawn on stderr when it is a terminal (--no-progress: none); output
is a summary for people, or one JSON object with --json. Pipe ids between commands:
  romakit devices --online-status online --product-name "SmartMeter EM300" --ids | romakit offline -

Credentials come from the environment only (flags end up in shell history and ps);
the rest from flags, else the romakit profile ROMAKIT_PROFILE names (console: --profile),
else the environment, else (for resume) the journal. The variables (the same table
rk.connect() reads):
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from romakit import config
from romakit.cli.commands import (
    COMMANDS,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_NOT_ALL_OK,
    EXIT_OK,
    EXIT_UNREACHABLE,
)
from romakit.cli.hints import for_terminal as _for_terminal
from romakit.cli.parser import build_parser as _build_parser

__doc__ = f"{__doc__ or ''}\n{config.env_help()}\n"

def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    return _build_parser(description=__doc__)


def _on_sandbox(args: argparse.Namespace) -> bool:
    """True when the LINK instance the flags or the environment name is a sandbox's
    (``romakit sim --env``): unless ``--journal`` or ``ROMAKIT_JOURNAL`` names a journal,
    the command then reads and writes the sandbox journal, as ``rk.sandbox()`` clients do."""
    from romakit.cli.common import target
    from romakit.operations import LINK
    from romakit.wire import is_sandbox_instance

    try:
        return is_sandbox_instance(target(args, LINK))
    except Exception:  # noqa: BLE001 - no readable settings: not a sandbox; the command says what is wrong
        return False


def _in_sandbox_journal(args: argparse.Namespace) -> bool:
    """True when the operation the command names (``OP``) is in the sandbox journal and not
    in the default one: ``romakit report OP`` of a notebook's sandbox run, from any shell."""
    op_id = getattr(args, "op_id", None)
    if not isinstance(op_id, str) or not op_id:
        return False
    from romakit.store import reader as rd
    from romakit.store.schema import path, sandbox_path

    def holds(where: Any) -> bool:
        try:
            db = rd.reader(where)
            if db is None:
                return False
            with db:
                rd.load(db, op_id)
            return True
        except Exception:  # noqa: BLE001 - a journal that cannot be read does not hold it; the command says why
            return False

    found = holds(sandbox_path()) and not holds(path())
    if found:
        print(f"romakit: {op_id} is a sandbox run: reading the sandbox journal {sandbox_path()}", file=sys.stderr)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    import os

    from romakit.store.schema import ENV_SWITCH

    before = os.environ.get(ENV_SWITCH)
    try:
        return _main(argv)
    finally:  # the journal a command chose is its own (and its children's): a caller in-process keeps its own
        if before is None:
            os.environ.pop(ENV_SWITCH, None)
        else:
            os.environ[ENV_SWITCH] = before


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from romakit.store.target import named_by_env, use

        if args.journal or args.no_journal:
            use(args.journal or False)
        elif not named_by_env() and (_on_sandbox(args) or _in_sandbox_journal(args)):
            from romakit.store.schema import sandbox_path

            use(sandbox_path())  # practice never fills the real journal, and is found in its own
        return int(COMMANDS[args.command](args) or 0)
    except KeyboardInterrupt:
        op = getattr(args, "op_id_run", None)
        from romakit.cli.output import resume_command

        then = f"romakit journal {op} shows what was sent; {resume_command(op, args)} finishes it" if op else \
            "romakit journal lists what was sent"
        print(f"\nromakit: interrupted; {then}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (| head): quietly, like any command
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as e:  # a clean one-line error for terminals; details with -X dev
        from romakit.errors import AuthRefused, InputError, RomakitError, TargetNotFound

        if isinstance(e, (AuthRefused, TargetNotFound)):  # the pre-flight read: before anything was sent
            print(f"romakit: nothing was done: the pre-flight read was refused: {_for_terminal(str(e))}",
                  file=sys.stderr)
            return EXIT_UNREACHABLE
        if isinstance(e, InputError):
            print(f"romakit: {_for_terminal(str(e))}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(e, RomakitError):
            print(f"romakit: {_for_terminal(str(e))}", file=sys.stderr)
            return EXIT_UNREACHABLE
        raise


__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_NOT_ALL_OK", "EXIT_OK", "EXIT_UNREACHABLE", "build_parser", "main"]
