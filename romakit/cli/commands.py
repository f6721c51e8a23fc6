"""The ``romakit`` subcommands: each takes the parsed arguments and returns an exit status.

Clients come from :mod:`romakit.config` (a profile resolved from the flags, the
environment and what the journal recorded); chunk limits from
:mod:`romakit.operations`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from romakit import config
from romakit.cli.output import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_NOT_ALL_OK,
    EXIT_OK,
    EXIT_UNREACHABLE,
    few,
    print_result,
    records,
)
from romakit.cli.parser import FAULT_FLAGS, connection_flags, rollout
from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK, OPERATIONS, check_chunk, operation

__all__ = ["COMMANDS", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_NOT_ALL_OK", "EXIT_OK", "EXIT_UNREACHABLE"]


# -- ids, settings, output -------------------------------------------------------------------
def _read_ids(args: argparse.Namespace) -> list[str]:
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


def _sources(args: argparse.Namespace, kind: str, recorded: dict[str, Any] | None = None) -> list[config.Source]:
    return config.chain(flags=connection_flags(args, kind), recorded=recorded, kind=kind)


def _profile(args: argparse.Namespace, kind: str, recorded: dict[str, Any] | None = None) -> config.Profile:
    """The settings for a client of ``kind``: flags, then the environment, then ``recorded``."""
    return config.resolve("cli", _sources(args, kind, recorded), needs=kind)


def _target(args: argparse.Namespace, kind: str) -> str | None:
    """The instance or gateway the flags or the environment name (for a dry run)."""
    field = "instance_id" if kind == LINK else "gateway_id"
    return config.collect(_sources(args, kind), kind).get(field)


def _link_client(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> Any:
    return _profile(args, LINK, recorded).link_client(allow_insecure=args.allow_insecure, timeout=args.timeout)


def _gateway(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> Any:
    tls = args.tls if args.tls is not None else (recorded or {}).get("tls")
    return _profile(args, GATEWAY, recorded).gateway(tls=tls, timeout=args.timeout, allow_insecure=args.allow_insecure)


def _chunk(args: argparse.Namespace, name: str) -> int:
    return check_chunk(name, args.chunk_size or OPERATIONS[name].default_chunk)


def _progress(args: argparse.Namespace) -> bool:
    if args.no_progress:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _new_op(args: argparse.Namespace) -> str:
    """A fresh op id, kept on ``args`` so that Ctrl-C can name the operation to resume."""
    from romakit.results import new_op_id

    args.op_id_run = new_op_id()
    return args.op_id_run


def _dry_run(args: argparse.Namespace, name: str, ids: list, chunk_size: int, target: str | None,
             check: Callable[[], tuple[list, list, str]] | None = None, *, policy: Any = None) -> int:
    """Say what would be sent, under which rollout (``policy``: the recorded one for a
    resume; else the flags over the registry's default) and the most devices it can hit
    before the first stop can act; with ``check`` (one device listing), which ids do not
    exist."""
    from romakit.engine.rollout import resolve

    n_chunks = -(-len(ids) // chunk_size)
    policy = resolve(rollout(args, name) if policy is None else policy, name)
    worst = policy.worst_case(len(ids)) if policy else len(ids)
    info: dict[str, Any] = {"dry_run": True, "operation": name, "target": target, "devices": len(ids),
                            "chunk_size": chunk_size, "chunks": n_chunks,
                            "rollout": policy.describe(len(ids)) if policy else None, "worst_case": worst}
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
            info["not_checked"] = _for_terminal(str(e))
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"dry run: {name} of {len(ids):,} devices on {target or '(target not given)'} "
              f"in {n_chunks} chunk(s) of at most {chunk_size}; nothing sent")
        print(f"rollout: {policy.describe(len(ids))}" if policy else
              f"rollout: none (--no-rollout): all {len(ids):,} devices can be hit before anything can stop the run")
        if info.get("checked"):
            print(f"checked against {info['checked']}: "
                  + (f"{len(absent):,} id(s) do not exist: {few(absent)}" if absent else "every id exists"))
            if foreign:
                print(f"{len(foreign):,} id(s) are not children of {target}: {few(foreign)}")
        elif "not_checked" in info:
            print(f"ids not checked against the service ({info['not_checked']})")
    return EXIT_NOT_ALL_OK if absent or foreign else EXIT_OK


def _for_terminal(message: str) -> str:
    from romakit.cli.hints import for_terminal

    return for_terminal(message)


def _listing_check(args: argparse.Namespace, ids: list, *, column: str, parent: str | None = None
                   ) -> Callable[[], tuple[list, list, str]]:
    def check() -> tuple[list, list, str]:
        from romakit.cli.fleet import missing_ids

        client = _link_client(args)
        try:
            listing = client.devices()
        finally:
            client.close()
        absent, foreign = missing_ids(listing, ids, column=column, parent=parent)
        return absent, foreign, f"the device listing of instance {client.instance_id} ({len(listing):,} devices)"

    return check


def _confirmed(args: argparse.Namespace, name: str, devices: int, target: str, what: str | None = None) -> bool:
    """True when a permanent operation may go ahead: few devices, ``--yes``, or a person
    typed the count on the terminal. Without a terminal to ask on, the answer is no.
    ``what`` says what will be done (default: the operation's verb on ``target``)."""
    op = operation(name)
    if not op.permanent or args.yes or devices <= args.confirm_above:
        return True
    what = what or op.verb.format(n=f"{devices:,}", target=target)
    try:
        with open(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY), "r+b", buffering=0) as tty:
            tty.write(f"romakit: this will {what}. Type {devices} to go ahead: ".encode())
            answer = tty.readline().decode(errors="replace").strip().replace(",", "")
    except OSError:
        answer = None
    if answer == str(devices):
        return True
    why = "not confirmed" if answer is not None else "no terminal to ask on"
    print(f"romakit: {why}; nothing sent. To {what} without asking, pass --yes", file=sys.stderr)
    return False


def _run(args: argparse.Namespace, call: Callable[..., Any], name: str, ids: list, chunk: int) -> int:
    """``call(ids, ...)`` with this command's batch options (the op id kept on ``args``:
    Ctrl-C names the operation and how to resume it, :func:`romakit.cli.main`)."""
    res = call(ids, chunk_size=chunk, concurrency=args.concurrency, progress=_progress(args),
               rollout=rollout(args, name), op_id=_new_op(args))
    return print_result(res, args)


# -- commands ----------------------------------------------------------------------------------
def offline(args: argparse.Namespace) -> int:
    from romakit.ids import link_ids

    ids = link_ids(_read_ids(args))
    chunk = _chunk(args, "force_offline")
    if args.dry_run:
        return _dry_run(args, "force_offline", ids, chunk, _target(args, LINK),
                        _listing_check(args, ids, column="id"))
    rollout(args, "force_offline")  # bad flags refused before connecting
    client = _link_client(args)
    try:
        return _run(args, client.force_offline, "force_offline", ids, chunk)
    finally:
        client.close()


def delete_children(args: argparse.Namespace) -> int:
    from romakit.ids import iotda_ids

    ids = iotda_ids(_read_ids(args))
    chunk = _chunk(args, "delete_sub_devices")
    if args.across_gateways:
        return _delete_across(args, ids, chunk)
    if args.secrets_file:
        raise InputError("--secrets-file gives the secrets of many gateways: use it with --across-gateways")
    target = _target(args, GATEWAY)
    if args.dry_run:
        return _dry_run(args, "delete_sub_devices", ids, chunk, target,
                        _listing_check(args, ids, column="client_id", parent=target))
    rollout(args, "delete_sub_devices")  # bad flags refused before asking or connecting
    try:
        _profile(args, GATEWAY)  # the settings checked before asking or connecting
    except InputError as e:
        if target is None:
            raise InputError(f"{e}; or --across-gateways to send each child through its own gateway "
                             "(read from the LINK listing)") from None
        raise
    if not _confirmed(args, "delete_sub_devices", len(ids), target):
        return EXIT_BAD_INPUT
    with _gateway(args) as gw:
        return _run(args, gw.delete_sub_devices, "delete_sub_devices", ids, chunk)


def _delete_across(args: argparse.Namespace, ids: list[str], chunk: int) -> int:
    """``delete-children --across-gateways``: every child through its own gateway, in one run.

    One LINK listing says each child's gateway; everything is checked (ids listed and
    children, a secret per gateway, the rollout flags, the confirmation) before the first
    MQTT connection."""
    from romakit.cli import fanout
    from romakit.engine.rollout import resolve
    from romakit.iotda.fanout import across, per_gateway
    from romakit.iotda.fanout import delete_children as fan_out

    name = "delete_sub_devices"
    if args.gateway:
        raise InputError(f"--gateway {args.gateway} names one gateway; --across-gateways sends each child "
                         "through its own gateway (drop one of them)")
    policy = rollout(args, name)  # bad flags refused before reading or connecting
    sources = _sources(args, GATEWAY)
    secrets = fanout.secrets(args, sources)
    client = _link_client(args)
    try:
        listing = client.devices()
    finally:
        client.close()
    parent, absent, foreign = fanout.parents_in(listing, ids)
    counts = per_gateway(parent)
    no_secret = [g for g in counts if g not in secrets]
    if args.dry_run:
        shown = resolve(policy, name)
        info: dict[str, Any] = {
            "dry_run": True, "operation": name, "target": f"{len(counts)} gateways", "devices": len(parent),
            "requested": len(ids), "gateways": counts, "chunk_size": chunk,
            "requests": fanout.requests(counts, chunk),
            "rollout": shown.describe(len(parent)) if shown else None,
            "worst_case": shown.worst_case(len(parent)) if shown else len(parent),
            "checked": f"the device listing of instance {client.instance_id} ({len(listing):,} devices)",
            "not_found": absent, "not_children": foreign, "no_secret": no_secret}
        fanout.print_plan(args, info, counts, shown)
        return EXIT_NOT_ALL_OK if absent or foreign or no_secret else EXIT_OK
    for bad, why in ((absent, "not in the device listing"), (foreign, "not children of any gateway")):
        if bad:
            raise InputError(f"{len(bad):,} id(s) are {why}: {few(bad)}; nothing sent (--dry-run shows the plan)")
    if no_secret:
        raise InputError(f"no secret for {len(no_secret):,} gateway(s): {few(no_secret)}; give them in "
                         "--secrets-file PATH (GATEWAY SECRET a line); nothing sent")
    if not _confirmed(args, name, len(ids), f"{len(counts)} gateways", across(len(ids), counts)):
        return EXIT_BAD_INPUT
    gateways = {g: fanout.gateway_for(args, sources, g, secrets[g]) for g in counts}
    try:
        res = fan_out(ids, parents=parent, gateways=gateways, chunk_size=chunk, concurrency=args.concurrency,
                      progress=_progress(args), rollout=policy, op_id=_new_op(args))
    finally:
        for gw in gateways.values():
            gw.close()
    return print_result(res, args, extra={"gateways": counts})


#: ``romakit journal`` flags -> ``rk.journal()`` filters
JOURNAL_FILTERS = ("who", "since", "until", "target", "operation", "state", "outcome")


def journal(args: argparse.Namespace) -> int:
    from romakit.replay import journal as read_journal
    from romakit.store.target import location

    if args.op_id:
        print_result(read_journal(args.op_id), args)  # a query: its status is not the operation's
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
        from romakit.textsafe import terminal_frame

        print(terminal_frame(t).to_string(index=False))
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
    from romakit.replay import recorded_rollout
    from romakit.replay import resume as resume_op
    from romakit.store.reader import pending_ids

    rec, todo = pending_ids(args.op_id)
    kind = operation(rec["operation"]).kind
    policy = recorded_rollout(rec)  # the resume keeps the operation's policy
    if args.dry_run:
        return _dry_run(args, rec["operation"], todo, max(rec["chunk_size"], 1), rec["target"], policy=policy)
    group = _recorded_group(args, rec, todo) if (rec["client"] or {}).get("gateways") else None
    what = None
    if group is not None:
        from romakit.iotda.fanout import across, per_gateway

        what = across(len(todo), per_gateway({i: group.parents[i] for i in todo}))
    if todo and not _confirmed(args, rec["operation"], len(todo), rec["target"], what):
        return EXIT_BAD_INPUT
    options: dict[str, Any] = {"progress": _progress(args), "rollout": policy}
    if args.chunk_size:
        options["chunk_size"] = args.chunk_size
    if args.concurrency:
        options["concurrency"] = args.concurrency
    recorded = {"target": rec["target"], **(rec["client"] or {})}
    args.op_id_run = rec["op_id"]
    if group is not None:
        try:
            res = resume_op(rec["op_id"], group, force=args.force, **options)
        finally:
            for gw in group.gateways.values():
                gw.close()
    elif kind == LINK:
        client = _link_client(args, recorded)
        try:
            res = resume_op(rec["op_id"], client, force=args.force, **options)
        finally:
            client.close()
    else:
        with _gateway(args, recorded) as gw:
            res = resume_op(rec["op_id"], gw, force=args.force, **options)
    return print_result(res, args, extra={"resumed": len(todo)})


def _recorded_group(args: argparse.Namespace, rec: dict[str, Any], todo: list) -> Any:
    """The gateways a fan-out operation ran on (the journal names them), with their secrets
    (``--secrets-file``) and each pending child's gateway from the LINK listing; all
    checked before any connection. A pending child no longer listed is gone from the
    instance: it is put under one of the gateways, whose read before the re-send (the
    reconcile) finds it gone, so it ends ``success`` and is not sent again."""
    from romakit.cli import fanout
    from romakit.iotda.fanout import GatewayGroup

    recorded = [str(g) for g in rec["client"]["gateways"]]
    sources = _sources(args, GATEWAY)
    secrets = fanout.secrets(args, sources)
    missing = [g for g in recorded if g not in secrets]
    if missing:
        raise InputError(f"operation {rec['op_id']} ran on {len(recorded)} gateways; no secret for "
                         f"{len(missing)}: {few(missing)}; give them in --secrets-file PATH; nothing sent")
    client = _link_client(args)
    try:
        listing = client.devices()
    finally:
        client.close()
    parent, absent, foreign = fanout.parents_in(listing, [str(i) for i in todo])
    elsewhere = sorted({g for g in parent.values() if g not in recorded})
    if elsewhere or foreign:
        raise InputError(f"operation {rec['op_id']}: some pending children are no longer under its gateways "
                         f"({few(elsewhere or foreign)}); nothing sent")
    parent.update({i: recorded[0] for i in absent})
    return GatewayGroup({g: fanout.gateway_for(args, sources, g, secrets[g]) for g in recorded}, parent)


def check(args: argparse.Namespace) -> int:
    """The chain's settings (where each came from, never a value) and one authenticated read."""
    profile = _profile(args, LINK)
    client = profile.link_client(allow_insecure=args.allow_insecure, timeout=args.timeout)
    try:
        facts = client.preflight()
        info = {"ok": True, "endpoint": client.endpoint, "project_id": client.project_id,
                "instance_id": client.instance_id, "auth": profile.masked_auth(), "devices": facts["total"],
                "clock_skew_s": facts["clock_skew_s"], "sources": profile.sources()}
    finally:
        client.close()
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        skew = facts["clock_skew_s"]
        print(f"ok: {info['auth']} may read instance {client.instance_id} of project {client.project_id} "
              f"at {client.endpoint} ({facts['total']} devices; clock skew "
              f"{'unknown' if skew is None else f'{skew:+.0f} s'})")
        for name, where in info["sources"].items():
            print(f"  {name:<16} from {where}")
    return EXIT_OK


def sim(args: argparse.Namespace) -> int:
    from romakit.sim.server import SimServer

    faults = {k: getattr(args, k) for k in FAULT_FLAGS if getattr(args, k) is not None}
    external = None
    if args.mqtt_broker:
        host, _, port = args.mqtt_broker.rpartition(":")
        external = (host or "127.0.0.1", int(port))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SimServer(
        devices=args.devices,
        seed=args.seed,
        host=args.host,
        http_port=args.http_port,
        iam_port=args.iam_port,
        link_tls=args.link_tls,
        mqtt=not args.no_mqtt,
        mqtt_port=args.mqtt_port,
        mqtt_broker=external,
        mqtt_tls=args.mqtt_tls,
        mqtt_tls_port=args.mqtt_tls_port,
        **faults,
    ) as server:
        # this process only serves the sandbox: its fleet lives as long as the process, so
        # it goes out of the collector's way for good (else every gen-2 pass walks millions
        # of device dicts, 100+ ms a page at 100,000). Never done inside a user's kernel.
        import gc

        gc.freeze()
        described = server.describe(gateways=args.gateways)
        print(_env_lines(described) if args.env else json.dumps(described), flush=True)
        while not stop.wait(3600):
            pass
    return EXIT_OK


def _env_lines(d: dict[str, Any]) -> str:
    """``export`` lines for a POSIX shell: the LINK settings, and the first gateway's."""
    import shlex

    link, mqtt = d["link"], d.get("mqtt") or {}
    values = {"ROMAKIT_ENDPOINT": link["endpoint"], "ROMAKIT_PROJECT_ID": link["project_id"],
              "ROMAKIT_INSTANCE_ID": link["instance_id"], "ROMAKIT_AK": link["ak"], "ROMAKIT_SK": link["sk"]}
    gws = mqtt.get("gateways") or []
    if mqtt:
        values.update(ROMAKIT_MQTT_HOST=mqtt["host"], ROMAKIT_MQTT_PORT=mqtt["port"])
    if gws:
        values.update(ROMAKIT_GATEWAY_ID=gws[0]["device_id"], ROMAKIT_DEVICE_SECRET=gws[0]["secret"])
    lines = ["# romakit sandbox: these secrets protect only this loopback sandbox"]
    lines += [f"export {k}={shlex.quote(str(v))}" for k, v in values.items()]
    for g in gws[1:]:
        lines.append(f"# gateway {g['device_id']}: ROMAKIT_GATEWAY_ID={g['device_id']} "
                     f"ROMAKIT_DEVICE_SECRET={shlex.quote(g['secret'])}")
    return "\n".join(lines)


def devices(args: argparse.Namespace) -> int:
    from romakit.cli.fleet import children_of, filters, print_devices

    client = _link_client(args)
    try:
        wanted = filters(args)
        frame = client.devices(**wanted)
        if args.parent:  # the gateway itself may not match the filters: find it in the whole listing
            kids = children_of(client.devices() if wanted else frame, args.parent)
            frame = frame[frame["id"].isin(kids["id"])]
    finally:
        client.close()
    print_devices(frame, args)
    return EXIT_OK


def report(args: argparse.Namespace) -> int:
    from romakit.replay import journal as read_journal

    result = read_journal(args.op_id, with_resumes=args.with_resumes)
    out = args.output or f"romakit-report-{result.op_id}.html"
    client = None
    if args.verify:
        recorded = {"target": result.target, **(_recorded_client(result.op_id) or {})}
        client = _link_client(args, recorded if operation(result.operation).kind == LINK else None)
    try:
        path = result.report(out, verify=client)
    finally:
        if client is not None:
            client.close()
    print(path)
    return EXIT_OK


def _recorded_client(op_id: str) -> dict[str, Any] | None:
    from romakit.store.reader import operation_record

    return operation_record(op_id).get("client")


#: subcommand -> what runs it
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "offline": offline, "delete-children": delete_children, "devices": devices, "check": check, "journal": journal,
    "migrate-journal": migrate_journal, "resume": resume, "report": report, "sim": sim,
}
