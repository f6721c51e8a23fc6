"""``romakit restore OP``: re-create what a deletion removed, from the snapshot it kept in
the journal (``rk.restore``), with the dry run, confirmation and typed count of the
other acting commands.

The deletion's devices (or those named, or those whose records match ``--where``) are
re-created: LINK devices over LINK (a new id, client id and secret each: the field
device needs its secret reset), children through the gateway they were under (each
gateway's secret from the environment or ``--secrets-file``). What is back already is
not created again, so running it twice creates nothing the second time.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from romakit.cli import common
from romakit.cli.hints import no_rollout
from romakit.cli.output import EXIT_BAD_INPUT, EXIT_OK, few, print_result
from romakit.cli.parser import rollout
from romakit.engine.guard import restorable
from romakit.engine.plan import BatchPlan
from romakit.errors import InputError
from romakit.operations import LINK, check_chunk, operation


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    """``--where FIELD=VALUE[,VALUE...]`` as record filters."""
    out: dict[str, Any] = {}
    for item in args.where or []:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise InputError(f"--where {item!r}: expected FIELD=VALUE (e.g. product_id=784701, gateway_id=gw-0003)")
        out[field.strip()] = [v.strip() for v in value.split(",") if v.strip()]
    return out


def _dry_run(args: argparse.Namespace, rest: Any, planned: BatchPlan, target: str) -> int:
    info: dict[str, Any] = {"dry_run": True, **planned.to_dict(), "target": target, "restores": rest.deletion.op_id,
                            "deleted_by": rest.deletion.operation, "comes_back": restorable(planned),
                            "gateways": planned.gateways or None, "left_out": rest.left_out}
    if args.json:
        print(json.dumps(info), flush=True)
        return EXIT_OK
    print(f"dry run: {planned.operation} of {planned.devices:,} devices deleted by {rest.deletion.operation} "
          f"{rest.deletion.op_id}, on {target} in {planned.chunks} chunk(s) of at most {planned.chunk_size}; "
          "nothing sent")
    print(f"rollout: {info['rollout']}" if planned.policy else no_rollout(planned.devices))
    print(f"comes back: {info['comes_back']}")
    for g, n in list(planned.gateways.items())[:args.show]:
        print(f"  {g}: {n:,} children")
    if rest.left_out:
        reasons: dict[str, list[str]] = {}
        for i, why in rest.left_out.items():
            reasons.setdefault(why, []).append(i)
        for why, ids in reasons.items():
            print(f"left out, {why}: {len(ids):,} ({few(ids)})")
    return EXIT_OK


def _client(args: argparse.Namespace, rest: Any) -> tuple[Any, Any]:
    """``(client, what to close)`` that carries ``rest``, every login checked before asking."""
    from romakit.cli import fanout
    from romakit.iotda.fanout import GatewayGroup

    recorded = {"target": rest.deletion.target, **(rest.deletion.client or {})}
    if rest.operation == "restore_devices":
        client = common.link_client(args, recorded)
        return client, client
    gws = rest.gateways
    if len(gws) == 1 and not rest.parents:
        gw = common.logged_in(args, {**recorded, "target": gws[0]})
        return gw, gw
    sources = common.sources(args, "gateway")
    secrets = fanout.secrets(args, sources)
    missing = [g for g in gws if g not in secrets]
    if missing:
        raise InputError(f"the children were under {len(gws)} gateways; no secret for {len(missing)}: {few(missing)}; "
                         "give them in --secrets-file PATH; nothing sent")
    group = GatewayGroup({g: fanout.gateway_for(args, sources, g, secrets[g]) for g in gws}, rest.parents)
    login = common.login_for(args, "gateway", recorded, group)
    return group, login


def restore(args: argparse.Namespace) -> int:
    """``romakit restore OP``: see the module docstring."""
    from romakit.restoring import restoration
    from romakit.restoring import restore as restore_op

    rest = restoration(args.op_id, ids=args.ids or None, **_filters(args))
    name = rest.operation
    chunk = check_chunk(name, args.chunk_size or operation(name).default_chunk)
    planned = common.make_plan(args, name, rest.ids, chunk, parents=rest.parents or None)
    target = planned.gateways and f"{len(planned.gateways)} gateways" or (
        rest.gateways[0] if rest.gateways else rest.deletion.target)
    if args.dry_run:
        return _dry_run(args, rest, planned, str(target))
    if not rest.ids:
        print(f"nothing to restore: operation {rest.deletion.op_id} has no deleted device with a snapshot record"
              + (f" ({len(rest.left_out):,} left out: romakit restore {rest.deletion.op_id} --dry-run says why)"
                 if rest.left_out else ""))
        return EXIT_OK
    client, closer = _client(args, rest)
    try:
        if not common.confirmed(args, planned, str(target)):
            return EXIT_BAD_INPUT
        options: dict[str, Any] = {"chunk_size": chunk, "progress": common.progress(args),
                                   "rollout": rollout(args, name), "op_id": common.new_op(args)}
        if args.concurrency:
            options["concurrency"] = args.concurrency
        res = restore_op(rest.deletion.op_id, client, ids=rest.ids, **options)
    finally:
        (closer or client).close()
    if operation(name).kind == LINK and res.counts["success"]:
        print("note: restored LINK devices have new ids, client ids and secrets: reset each field device's secret",
              flush=True)
    return print_result(res, args, extra={"restores": rest.deletion.op_id})


__all__ = ["restore"]
