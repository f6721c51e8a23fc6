"""The subcommands that act on devices: ``offline``, ``delete-children`` (one
gateway's children, or those of many gateways with ``--across-gateways``) and
``retry`` (an operation's transient failures). Each shows its plan with ``--dry-run``
and runs that same plan otherwise."""

from __future__ import annotations

import argparse

from romakit.cli import common
from romakit.cli.following import offline_then_follow
from romakit.cli.output import EXIT_BAD_INPUT, EXIT_NOT_ALL_OK, EXIT_OK, few, print_result
from romakit.cli.parser import rollout
from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK, check_chunk, operation


def offline(args: argparse.Namespace) -> int:
    from romakit.ids import link_ids

    name = "force_offline"
    ids = link_ids(common.read_ids(args))
    planned = common.make_plan(args, name, ids, common.chunk(args, name))  # bad rollout flags refused here
    if args.dry_run:
        return common.dry_run(args, planned, common.target(args, LINK),
                              common.listing_check(args, ids, column="id"))
    client = common.link_client(args)
    try:
        return offline_then_follow(args, client, planned)
    finally:
        client.close()


def delete_children(args: argparse.Namespace) -> int:
    from romakit.ids import iotda_ids

    name = "delete_sub_devices"
    ids = iotda_ids(common.read_ids(args))
    chunk = common.chunk(args, name)
    if args.across_gateways:
        return _delete_across(args, ids, chunk)
    target = common.target(args, GATEWAY)
    planned = common.make_plan(args, name, ids, chunk)  # bad rollout flags refused before asking or connecting
    if args.dry_run:
        return common.dry_run(args, planned, target,
                              common.listing_check(args, ids, column="client_id", parent=target))
    try:
        gw = common.logged_in(args)  # the settings and the login checked before asking
    except InputError as e:
        if target is None:
            raise InputError(f"{e}; or --across-gateways to send each child through its own gateway "
                             "(read from the LINK listing)") from None
        raise
    if not common.confirmed(args, planned, target, login=gw):
        return EXIT_BAD_INPUT
    with gw:
        return common.run(args, gw.delete_sub_devices, planned)


def _delete_across(args: argparse.Namespace, ids: list[str], chunk: int) -> int:
    """``delete-children --across-gateways``: every child through its own gateway, in one run.

    One LINK listing says each child's gateway; everything is checked (ids listed and
    children, a secret per gateway, the rollout flags, the confirmation) before the first
    MQTT connection."""
    from romakit.cli import fanout
    from romakit.iotda.fanout import delete_children as fan_out

    name = "delete_sub_devices"
    if args.gateway:
        raise InputError(f"--gateway {args.gateway} names one gateway; --across-gateways sends each child "
                         "through its own gateway (drop one of them)")
    policy = rollout(args, name)  # bad flags refused before reading or connecting
    sources = common.sources(args, GATEWAY)
    secrets = fanout.secrets(args, sources)
    client = common.link_client(args)
    try:
        listing = client.devices()
    finally:
        client.close()
    parent, absent, foreign = fanout.parents_in(listing, ids)
    planned = common.make_plan(args, name, [i for i in ids if i in parent], chunk, parents=parent)
    counts = planned.gateways
    no_secret = [g for g in counts if g not in secrets]
    if args.dry_run:
        checked = f"the device listing of instance {client.instance_id} ({len(listing):,} devices)"
        fanout.print_plan(args, planned, requested=len(ids), checked=checked, not_found=absent,
                          not_children=foreign, no_secret=no_secret)
        return EXIT_NOT_ALL_OK if absent or foreign or no_secret else EXIT_OK
    for bad, why in ((absent, "not in the device listing"), (foreign, "not children of any gateway")):
        if bad:
            raise InputError(f"{len(bad):,} id(s) are {why}: {few(bad)}; nothing sent (--dry-run shows the plan)")
    if no_secret:
        raise InputError(f"no secret for {len(no_secret):,} gateway(s): {few(no_secret)}; give them in "
                         "--secrets-file PATH (GATEWAY SECRET a line); nothing sent")
    gateways = {g: fanout.gateway_for(args, sources, g, secrets[g]) for g in counts}
    try:
        fanout.log_in(gateways)  # every login checked before asking
        if not common.confirmed(args, planned, f"{len(counts)} gateways"):
            return EXIT_BAD_INPUT
        res = fan_out(planned.ids, parents=parent, gateways=gateways, chunk_size=chunk, concurrency=args.concurrency,
                      progress=common.progress(args), rollout=policy, op_id=common.new_op(args),
                      **common.snapshot_option(args))
    finally:
        for gw in gateways.values():
            gw.close()
    return print_result(res, args, extra={"gateways": counts})


def retry(args: argparse.Namespace) -> int:
    """``romakit retry OP``: the transient failures of an operation (``retry_ids()``, as
    completed by its resumes) sent again as a new operation linked to OP (relation
    ``retry``), through the same dry run, confirmation and typed count as the other
    acting commands; a deletion first reads which are already gone (:mod:`romakit.reconcile`)."""
    from romakit.cli.records import _recorded_group
    from romakit.replay import journal as read_journal
    from romakit.store.reader import operation_record

    result = read_journal(args.op_id, with_resumes=True)
    rec = operation_record(result.op_id)
    name = result.operation
    op = operation(name)
    if op.takes == "snapshot":  # a restore reads what is back first: running it again is its retry
        deletion = rec.parent_op_id if rec.relation == "restore" else None
        raise InputError(f"a restore is retried by restoring again: romakit restore {deletion or 'DELETION_OP'} "
                         "reads which devices are back and creates only the others")
    if op.takes != "ids":
        raise InputError(f"{name} cannot be retried from the command line: the journal does not keep what each "
                         "device was sent")
    todo = result.retry_ids()
    chunk = check_chunk(name, args.chunk_size or max(rec.chunk_size or 0, 1))
    if not todo:
        print(f"nothing to retry: operation {result.op_id} has no failure with a transient cause "
              f"(romakit journal {result.op_id} shows its outcomes)")
        return EXIT_OK
    if args.dry_run:
        return common.dry_run(args, common.make_plan(args, name, todo, chunk), result.target)
    recorded = {"target": rec.target, **(rec.client or {})}
    group = _recorded_group(args, rec, todo) if (rec.client or {}).get("gateways") else None
    parents = {str(i): group.parents[i] for i in todo} if group is not None else None
    planned = common.make_plan(args, name, todo, chunk, parents=parents)
    login = common.login_for(args, op.kind, recorded, group)  # checked before asking
    client = group or login or common.link_client(args, recorded)
    try:
        if not common.confirmed(args, planned, result.target):
            return EXIT_BAD_INPUT
        res = result.retry(client, ids=planned.ids, chunk_size=chunk, concurrency=args.concurrency,
                           progress=common.progress(args), rollout=rollout(args, name), op_id=common.new_op(args))
    finally:
        (login or client).close()
    return print_result(res, args, extra={"retried": len(todo)})
