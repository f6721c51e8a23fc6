"""``romakit follow OP`` and ``romakit offline --follow 10m``: who of a force-offline's
devices came back, as a compact curve and the devices not back (escaped text), or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from romakit.cli import common
from romakit.cli.output import EXIT_NOT_ALL_OK, EXIT_OK, records
from romakit.operations import LINK, operation
from romakit.textsafe import terminal


def show(fol: Any, args: argparse.Namespace) -> int:
    """Print ``fol`` (a Follow) and return EXIT_OK when every followed device came back."""
    if getattr(args, "json", False):
        st = fol.stragglers()
        st["forced_at"] = st["forced_at"].astype(str)
        print(json.dumps({"follow": fol.summary(), "curve": fol.curve(10).to_dict(orient="list"),
                          "stragglers": records(st)}, default=str), flush=True)
    else:
        print(terminal(fol.text(top=getattr(args, "show", 20)), keep_newlines=True), flush=True)
    return EXIT_OK if fol.back == len(fol) else EXIT_NOT_ALL_OK


def follow(args: argparse.Namespace) -> int:
    """``romakit follow OP``: follow a journaled force-offline's forced devices."""
    from romakit.cli.records import _recorded_client
    from romakit.errors import InputError
    from romakit.replay import journal as read_journal

    result = read_journal(args.op_id, with_resumes=True)
    if result.operation != "force_offline":
        raise InputError(f"operation {result.op_id} is a {result.operation}: romakit follow follows a force-offline")
    recorded = {"target": result.target, **(_recorded_client(result.op_id) or {})}
    client = common.link_client(args, recorded if operation(result.operation).kind == LINK else None)
    try:
        fol = result.follow(client, within=args.within, every=args.every)
    finally:
        client.close()
    return show(fol, args)


def offline_then_follow(args: argparse.Namespace, client: Any, planned: Any) -> int:
    """Run the plan's force-offline, then (``--follow D``) follow what it forced for D."""
    done: list[Any] = []

    def call(ids: list, **options: Any) -> Any:
        res = client.force_offline(ids, **options)
        done.append(res)
        return res

    status = common.run(args, call, planned)
    if not getattr(args, "follow", None) or not done:
        return status
    followed = show(done[0].follow(client, within=args.follow, every=args.every), args)
    return status if status != EXIT_OK else followed
