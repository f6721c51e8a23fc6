"""The subcommands that read the journal: ``journal`` (list or show), ``migrate-journal``,
``resume`` (finish an operation from what the journal says) and ``report``."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from romakit.cli import common
from romakit.cli.output import EXIT_BAD_INPUT, EXIT_OK, few, print_result, records
from romakit.cli.table import fit, width
from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK, check_chunk, operation
from romakit.textsafe import terminal_frame

if TYPE_CHECKING:  # pragma: no cover
    from romakit.store.reader import OperationRecord

#: ``romakit journal`` flags -> ``rk.journal()`` filters
JOURNAL_FILTERS = ("who", "since", "until", "target", "operation", "state", "outcome")
#: the journal table's columns left out first on a narrow terminal
JOURNAL_DROP = ("parent_op_id", "who", "requested", "skipped", "unknown", "target", "created_at")


def journal(args: argparse.Namespace) -> int:
    from romakit.replay import journal as read_journal
    from romakit.store.target import location

    if args.op_id:
        result = read_journal(args.op_id, step=args.step)
        steps = getattr(result, "steps", None)
        if steps is not None and not args.json:
            print(result.describe())
            print(steps.astype(object).where(steps.notna(), "").to_string(index=False) + "\n")
        print_result(result, args, extra=None if steps is None else {"chain": records(steps)})  # a query: exit 0
        return EXIT_OK
    table = read_journal(**{k: getattr(args, k) for k in JOURNAL_FILTERS if getattr(args, k, None)})
    if args.limit:
        table = table.tail(args.limit)
    if args.json:
        print(json.dumps(records(table)), flush=True)
    elif table.empty:
        print(f"no operations in {location()}")
    else:
        cols = ["op_id", "operation", "target", "requested", "success", "failed", "unknown", "skipped",
                "state", "who", "created_at", "parent_op_id"]
        t = table[cols].copy()
        t["created_at"] = t["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
        print(fit(terminal_frame(t), JOURNAL_DROP, width(), more="a wider terminal, or --json, shows them"))
    return EXIT_OK


def migrate_journal(args: argparse.Namespace) -> int:
    """Copy every operation of one journal into another (skipping those already there)."""
    from romakit.store.migrate import copy_journal
    from romakit.store.schema import path

    summary = copy_journal(args.source or path(), args.to)
    print(json.dumps(summary, default=str) if args.json else
          ", ".join(f"{k}: {v}" for k, v in summary.items()), flush=True)
    return EXIT_OK


def resume(args: argparse.Namespace) -> int:
    """Finish an operation from the journal: its pending devices, in its chunk size and
    under its rollout policy (the flags may override them), shown first by ``--dry-run``."""
    from romakit.replay import recorded_rollout
    from romakit.replay import resume as resume_op
    from romakit.store.reader import pending_ids

    rec, todo = pending_ids(args.op_id)
    name = rec.operation
    kind = operation(name).kind
    policy = recorded_rollout(rec)  # the resume keeps the operation's policy
    chunk = check_chunk(name, args.chunk_size or max(rec.chunk_size or 0, 1))
    if args.dry_run:
        return common.dry_run(args, common.make_plan(args, name, todo, chunk, policy=policy), rec.target)
    group = _recorded_group(args, rec, todo) if (rec.client or {}).get("gateways") else None
    parents = {str(i): group.parents[i] for i in todo} if group is not None else None
    planned = common.make_plan(args, name, todo, chunk, policy=policy, parents=parents)
    recorded = {"target": rec.target, **(rec.client or {})}
    login = common.login_for(args, kind, recorded, group) if todo else None  # checked before asking
    if todo and not common.confirmed(args, planned, rec.target, login=login):
        return EXIT_BAD_INPUT
    options: dict[str, Any] = {"progress": common.progress(args), "rollout": policy, "chunk_size": chunk}
    if args.concurrency:
        options["concurrency"] = args.concurrency
    args.op_id_run = rec.op_id
    if group is not None:
        try:
            res = resume_op(rec.op_id, group, force=args.force, **options)
        finally:
            for gw in group.gateways.values():
                gw.close()
    elif kind == LINK:
        client = common.link_client(args, recorded)
        try:
            res = resume_op(rec.op_id, client, force=args.force, **options)
        finally:
            client.close()
    else:
        with login or common.gateway(args, recorded) as gw:
            res = resume_op(rec.op_id, gw, force=args.force, **options)
    return print_result(res, args, extra={"resumed": len(todo)})


def _recorded_group(args: argparse.Namespace, rec: OperationRecord, todo: list) -> Any:
    """The gateways a fan-out operation ran on (the journal names them), with their secrets
    (``--secrets-file``) and each pending child's gateway from the LINK listing; all
    checked before any connection. A pending child no longer listed is gone from the
    instance: it is put under one of the gateways, whose read before the re-send (the
    reconcile) finds it gone, so it ends ``success`` and is not sent again."""
    from romakit.cli import fanout
    from romakit.iotda.fanout import GatewayGroup

    recorded = [str(g) for g in rec.client["gateways"]]
    sources = common.sources(args, GATEWAY)
    secrets = fanout.secrets(args, sources)
    missing = [g for g in recorded if g not in secrets]
    if missing:
        raise InputError(f"operation {rec.op_id} ran on {len(recorded)} gateways; no secret for "
                         f"{len(missing)}: {few(missing)}; give them in --secrets-file PATH; nothing sent")
    client = common.link_client(args)
    try:
        listing = client.devices()
    finally:
        client.close()
    parent, absent, foreign = fanout.parents_in(listing, [str(i) for i in todo])
    elsewhere = sorted({g for g in parent.values() if g not in recorded})
    if elsewhere or foreign:
        raise InputError(f"operation {rec.op_id}: some pending children are no longer under its gateways "
                         f"({few(elsewhere or foreign)}); nothing sent")
    parent.update({i: recorded[0] for i in absent})
    return GatewayGroup({g: fanout.gateway_for(args, sources, g, secrets[g]) for g in recorded}, parent)


def report(args: argparse.Namespace) -> int:
    from romakit.replay import journal as read_journal

    result = read_journal(args.op_id, step=args.step)
    out = args.output  # None: romakit-report-OP.html in romakit's exports folder (res.report's default)
    client = None
    if args.verify:
        recorded = {"target": result.target, **(_recorded_client(result.op_id) or {})}
        client = common.link_client(args, recorded if operation(result.operation).kind == LINK else None)
    around = None
    if not args.no_around:
        from romakit.timelines import around as events_around

        around = events_around(result.op_id, args.around, args.around, journal=result.journal)
    try:
        path = result.report(out, verify=client, around=around)
    finally:
        if client is not None:
            client.close()
    print(path)
    return EXIT_OK


def _recorded_client(op_id: str) -> dict[str, Any] | None:
    from romakit.store.reader import operation_record

    return operation_record(op_id).client
