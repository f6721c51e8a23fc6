"""What the ``romakit`` subcommands share: ids from the arguments, clients from the
credential chain, the dry run's plan and the confirmation before a permanent effect.

Clients come from :mod:`romakit.config` (a profile resolved from the flags, the
environment and what the journal recorded); the plan and its guard from
:mod:`romakit.engine.plan` and :mod:`romakit.engine.guard`, the ones the panel shows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from romakit import config
from romakit.cli.hints import for_terminal, no_rollout
from romakit.cli.output import EXIT_NOT_ALL_OK, EXIT_OK, few, print_result
from romakit.cli.parser import connection_flags, rollout
from romakit.engine.guard import PERMANENT, Guard, journal_note, restorable, what
from romakit.engine.options import BatchOptions
from romakit.engine.plan import BatchPlan, plan
from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK, OPERATIONS, check_chunk


def read_ids(args: argparse.Namespace) -> list[str]:
    """Ids from the arguments, ``--file`` and stdin (``-``): separated by whitespace or
    commas; ``#`` starts a comment."""
    chunks: list[str] = []
    sources = list(args.ids or [])
    if args.file:
        sources.append(f"@{args.file}")
    for src in sources:
        if src == "-" or src == "@-":
            chunks.append(sys.stdin.read())
        elif src.startswith("@"):
            try:
                with open(src[1:], encoding="utf-8") as fh:
                    chunks.append(fh.read())
            except OSError as e:
                raise InputError(f"cannot read ids from {src[1:]!r}: {e.strerror}") from None
        else:
            chunks.append(src)
    ids = [t for text in chunks for line in text.splitlines() for t in re.split(r"[\s,]+", line.split("#", 1)[0]) if t]
    if not ids:
        raise InputError("no device ids given: pass them as arguments, with --file PATH, or on stdin with '-'")
    return ids


def sources(args: argparse.Namespace, kind: str, recorded: dict[str, Any] | None = None) -> list[config.Source]:
    """The credential chain of a command: its flags, the romakit profile ``--profile``
    (where the command has one) or ``ROMAKIT_PROFILE`` names, the environment, the SDK's
    sources, then ``recorded``."""
    return config.chain(flags=connection_flags(args, kind), profile=profile_link(args), recorded=recorded, kind=kind)


def profile_link(args: argparse.Namespace) -> config.Source | None:
    """The profile the command is told to use: ``--profile``, else ``ROMAKIT_PROFILE``."""
    name = getattr(args, "profile", None) or os.environ.get("ROMAKIT_PROFILE") or None
    if name is None:
        return None
    if name == config.SANDBOX:
        raise InputError("the profile 'sandbox' is the in-process sandbox of rk.connect(), which this command does "
                         "not start: run romakit sim --env and source its lines (see the README's CLI quick start), "
                         "or unset ROMAKIT_PROFILE")
    return config.profile_source(name)


def profile(args: argparse.Namespace, kind: str, recorded: dict[str, Any] | None = None) -> config.Profile:
    """The settings for a client of ``kind``: flags, then the environment, then ``recorded``."""
    return config.resolve("cli", sources(args, kind, recorded), needs=kind)


def target(args: argparse.Namespace, kind: str) -> str | None:
    """The instance or gateway the flags or the environment name (for a dry run)."""
    field = "instance_id" if kind == LINK else "gateway_id"
    return config.collect(sources(args, kind), kind).get(field)


def link_client(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> Any:
    return profile(args, LINK, recorded).link_client(**link_options(args))


def link_options(args: argparse.Namespace) -> dict[str, Any]:
    """The LinkClient keywords the flags set (``--deadline``/``--max-answer-bytes`` only when given)."""
    options = {"allow_insecure": args.allow_insecure, "timeout": args.timeout}
    bounds = {"deadline": getattr(args, "deadline", None), "max_answer_bytes": getattr(args, "max_answer_bytes", None)}
    return options | {k: v for k, v in bounds.items() if v is not None}


def gateway_sources(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> list[config.Source]:
    """The settings chain of the one gateway a command acts as: the flags, the environment,
    then ``recorded`` (a resumed or retried operation's gateway, which the flags and the
    environment may not contradict); its secret from ``--secrets-file`` when given (the
    file of ``--across-gateways``: the line of this gateway)."""
    from romakit.cli.fanout import read_secrets

    chain = sources(args, GATEWAY, recorded)
    gid = config.collect(chain, GATEWAY).get("gateway_id")
    ran = str(recorded["target"]) if recorded and recorded.get("target") else None
    if ran is not None and gid != ran:
        if getattr(args, "gateway", None):
            raise InputError(f"the operation ran as gateway {ran}, not {args.gateway}: drop --gateway")
        if not getattr(args, "secrets_file", None):
            raise InputError(f"the operation ran as gateway {ran}, but the environment names gateway {gid} (its "
                             f"secret is that gateway's): give {ran}'s secret with --secrets-file PATH "
                             f"('GATEWAY SECRET' a line), or set ROMAKIT_GATEWAY_ID={ran} and its "
                             "ROMAKIT_DEVICE_SECRET")
        chain = [config.Source("journal", {"gateway_id": ran}), *chain]
        gid = ran
    if getattr(args, "secrets_file", None):
        if not gid:
            raise InputError("--secrets-file holds the secrets of gateways: name the gateway with --gateway ID "
                             "(or --across-gateways to send each child through its own)")
        secrets = read_secrets(args.secrets_file)
        if gid not in secrets:
            raise InputError(f"--secrets-file {args.secrets_file!r} has no secret for gateway {gid}; nothing sent")
        chain = [config.Source("--secrets-file", {"gateway_id": gid, "device_secret": secrets[gid]}), *chain]
    return chain


def gateway(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> Any:
    """The Gateway the command acts as (not connected yet): see :func:`gateway_sources`."""
    tls = args.tls if args.tls is not None else (recorded or {}).get("tls")
    settings = config.resolve("cli", gateway_sources(args, recorded), needs=GATEWAY)
    return settings.gateway(tls=tls, timeout=args.timeout, allow_insecure=args.allow_insecure)


def logged_in(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> Any:
    """:func:`gateway`, connected: its login is checked (and refused with the broker's
    reason) before a person is asked to confirm anything."""
    from romakit.cli.fanout import connect

    gw = gateway(args, recorded)
    try:
        return connect(gw)
    except BaseException:
        gw.close()
        raise


class Logins:
    """Gateways logged in together (:func:`login_for`); :meth:`close` closes them all."""

    def __init__(self, gateways: Mapping[str, Any]) -> None:
        self.gateways = gateways

    def close(self) -> None:
        for gw in self.gateways.values():
            gw.close()


def login_for(args: argparse.Namespace, kind: str, recorded: dict[str, Any], group: Any = None) -> Any:
    """The logins a send of a recorded operation needs, checked before anyone is asked:
    a fan-out's ``group`` of gateways (:class:`Logins`), the gateway it ran as
    (:func:`logged_in`), or None for LINK (its client reads before sending)."""
    if group is not None:
        from romakit.cli.fanout import log_in

        try:
            log_in(group.gateways)
        except BaseException:
            Logins(group.gateways).close()
            raise
        return Logins(group.gateways)
    return logged_in(args, recorded) if kind == GATEWAY else None


def chunk(args: argparse.Namespace, name: str) -> int:
    return check_chunk(name, args.chunk_size or OPERATIONS[name].default_chunk)


def progress(args: argparse.Namespace) -> bool:
    if args.no_progress:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def new_op(args: argparse.Namespace) -> str:
    """A fresh op id, kept on ``args`` so that Ctrl-C can name the operation to resume."""
    from romakit.results import new_op_id

    args.op_id_run = new_op_id()
    return args.op_id_run


def listing_check(args: argparse.Namespace, ids: list, *, column: str, parent: str | None = None
                   ) -> Callable[[], tuple[list, list, str]]:
    def check() -> tuple[list, list, str]:
        from romakit.cli.fleet import missing_ids

        client = link_client(args)
        try:
            listing = client.devices()
        finally:
            client.close()
        absent, foreign = missing_ids(listing, ids, column=column, parent=parent)
        return absent, foreign, f"the device listing of instance {client.instance_id} ({len(listing):,} devices)"

    return check


def make_plan(args: argparse.Namespace, name: str, ids: list, chunk_size: int, *, policy: Any = None,
              parents: Mapping[str, str] | None = None) -> BatchPlan:
    """The plan the command runs: ``policy`` (a resume's recorded one), else the rollout
    flags over the registry's default; ``parents`` (child -> gateway) for a fan-out."""
    from romakit.store.schema import enabled

    return plan(name, ids, BatchOptions(chunk_size=chunk_size, rollout=rollout(args, name) if policy is None else policy),
                parents=parents, journaled=enabled())


def dry_run(args: argparse.Namespace, planned: BatchPlan, target: str | None,
            check: Callable[[], tuple[list, list, str]] | None = None) -> int:
    """Say what ``planned`` sends and the most devices it can hit before the first stop
    can act; with ``check`` (one device listing), which ids do not exist."""
    n = planned.devices
    info: dict[str, Any] = {"dry_run": True, "operation": planned.operation, "target": target, "devices": n,
                            "chunk_size": planned.chunk_size, "chunks": planned.chunks,
                            "rollout": planned.describe_rollout(), "worst_case": planned.worst_case}
    if not planned.journaled:
        info["journal"] = "not journaled"
    if undo := restorable(planned, snapshot=not getattr(args, "no_snapshot", False)):
        info["undo"] = undo
    absent: list = []
    foreign: list = []
    if check is not None:
        try:
            absent, foreign, where = check()
            info.update(checked=where, not_found=[str(i) for i in absent])
            if foreign:
                info["not_children"] = [str(i) for i in foreign]
        except InputError as e:  # no credentials or endpoint: the dry run still says what it can
            info["checked"] = None
            info["not_checked"] = for_terminal(str(e))
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"dry run: {planned.operation} of {n:,} devices on {target or '(target not given)'} "
              f"in {planned.chunks} chunk(s) of at most {planned.chunk_size}; nothing sent")
        print(f"rollout: {info['rollout']}" if planned.policy else no_rollout(n))
        if planned.permanent:
            print(f"permanent: {PERMANENT}")
        if undo := restorable(planned, snapshot=not getattr(args, "no_snapshot", False)):
            print(f"{'comes back' if planned.operation.startswith('restore_') else 'undo'}: {undo}")
        if note := journal_note(planned):
            print(note)
        if info.get("checked"):
            print(f"checked against {info['checked']}: "
                  + (f"{len(absent):,} id(s) do not exist: {few(absent)}" if absent else "every id exists"))
            if foreign:
                print(f"{len(foreign):,} id(s) are not children of {target}: {few(foreign)}")
        elif "not_checked" in info:
            print(f"ids not checked against the service ({info['not_checked']})")
    return EXIT_NOT_ALL_OK if absent or foreign else EXIT_OK


def confirmed(args: argparse.Namespace, planned: BatchPlan, target: str, *, login: Any = None) -> bool:
    """True when ``planned`` may go ahead: ``--yes``, an effect that can be undone, few
    devices (``--confirm-above``), or a person typed the count on the terminal. Without
    a terminal to ask on, the answer is no. ``login``: a client connected beforehand
    (:func:`logged_in`), closed when the answer is no."""
    if _asked(args, planned, target):
        return True
    if login is not None:
        login.close()
    return False


def _asked(args: argparse.Namespace, planned: BatchPlan, target: str) -> bool:
    guard = Guard(args.confirm_above, permanent_only=True)
    if args.yes or not guard.wants_count(planned):
        return True
    said = what(planned, target)
    undo = restorable(planned, snapshot=not getattr(args, "no_snapshot", False))
    try:
        with open(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY), "r+b", buffering=0) as tty:
            tty.write(f"romakit: this will {said}.{f' Undo: {undo}.' if undo else ''} "
                      f"Type {planned.devices} to go ahead: ".encode())
            answer = tty.readline().decode(errors="replace")
    except OSError:
        answer = None
    if answer is not None and guard.counted(planned, answer):
        return True
    why = "not confirmed" if answer is not None else "no terminal to ask on"
    print(f"romakit: {why}; nothing sent. To {said} without asking, pass --yes", file=sys.stderr)
    return False


def run(args: argparse.Namespace, call: Callable[..., Any], planned: BatchPlan) -> int:
    """``call(ids, ...)`` with the plan's chunk size and this command's batch options
    (the op id kept on ``args``: Ctrl-C names the operation and how to resume it)."""
    res = call(planned.ids, chunk_size=planned.chunk_size, concurrency=args.concurrency, progress=progress(args),
               rollout=rollout(args, planned.operation), op_id=new_op(args), **snapshot_option(args))
    return print_result(res, args)


def snapshot_option(args: argparse.Namespace) -> dict[str, Any]:
    """``{"keep_snapshot": False}`` with ``--no-snapshot`` (a deletion without a snapshot), else nothing."""
    return {"keep_snapshot": False} if getattr(args, "no_snapshot", False) else {}
