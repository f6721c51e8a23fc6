"""The ``romakit`` subcommands: each takes the parsed arguments and returns an exit status.

Clients come from :mod:`romakit.config` (a profile resolved from the flags, the
environment and what the journal recorded); chunk limits from
:mod:`romakit.operations`.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from romakit import config
from romakit.cli.parser import FAULT_FLAGS, connection_flags, rollout
from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK, OPERATIONS, check_chunk, operation

EXIT_OK, EXIT_NOT_ALL_OK, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3


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


def _records(frame: Any) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="ms"))


def _report(result: Any, args: argparse.Namespace, *, extra: dict[str, Any] | None = None) -> int:
    """Print the result (text or ``--json``) and return the exit status it deserves."""
    from romakit.outcomes import SUCCESS

    if args.json:
        out: dict[str, Any] = {
            "op_id": result.op_id, "operation": result.operation, "target": result.target,
            "requested": int(result.requested), "counts": result.counts, "stopped": result.stopped,
            "parent_op_id": result.parent_op_id, **(extra or {}),
        }
        if getattr(args, "all_rows", False):
            out["rows"] = _records(result.frame)
        else:
            out["failures"] = _records(result.failures())
        print(json.dumps(out), flush=True)
    else:
        print(repr(result))
        if len(result):
            print(result.summary().to_string())
        bad = result.failures()
        if len(bad):
            cols = ["device_id", "outcome", "error_code", "error_msg"]
            print(f"\nnot successful ({len(bad)}):")
            print(bad[cols].head(args.show).to_string(index=False))
            if len(bad) > args.show:
                print(f"... and {len(bad) - args.show} more (use --json for all)")
        hint = f"    resume: romakit resume {result.op_id}" if result.counts["unknown"] + result.counts["skipped"] else ""
        print(f"\njournal: romakit journal {result.op_id}{hint}")
    return EXIT_OK if len(result) and result.counts[SUCCESS] == len(result) else EXIT_NOT_ALL_OK


def _dry_run(args: argparse.Namespace, name: str, ids: list, chunk_size: int, target: str | None) -> int:
    n_chunks = -(-len(ids) // chunk_size)
    policy = rollout(args)
    info = {"dry_run": True, "operation": name, "target": target, "devices": len(ids),
            "chunk_size": chunk_size, "chunks": n_chunks, "rollout": policy.describe() if policy else None}
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"dry run: {name} of {len(ids)} devices on {target or '(target not given)'} "
              f"in {n_chunks} chunk(s) of at most {chunk_size}; nothing sent")
        if policy:
            print(f"rollout: {policy.describe()}")
    return EXIT_OK


# -- commands ----------------------------------------------------------------------------------
def offline(args: argparse.Namespace) -> int:
    from romakit.ids import link_ids

    ids = link_ids(_read_ids(args))
    chunk = _chunk(args, "force_offline")
    if args.dry_run:
        return _dry_run(args, "force_offline", ids, chunk, _target(args, LINK))
    client = _link_client(args)
    try:
        res = client.force_offline(ids, chunk_size=chunk, concurrency=args.concurrency, progress=_progress(args),
                                   rollout=rollout(args))
    finally:
        client.close()
    return _report(res, args)


def delete_children(args: argparse.Namespace) -> int:
    from romakit.ids import iotda_ids

    ids = iotda_ids(_read_ids(args))
    chunk = _chunk(args, "delete_sub_devices")
    if args.dry_run:
        return _dry_run(args, "delete_sub_devices", ids, chunk, _target(args, GATEWAY))
    with _gateway(args) as gw:
        res = gw.delete_sub_devices(ids, chunk_size=chunk, concurrency=args.concurrency, progress=_progress(args),
                                    rollout=rollout(args))
    return _report(res, args)


def journal(args: argparse.Namespace) -> int:
    from romakit.replay import journal as read_journal
    from romakit.store.schema import path

    if args.op_id:
        _report(read_journal(args.op_id), args)  # a query: its status is not the operation's
        return EXIT_OK
    table = read_journal()
    if args.limit:
        table = table.tail(args.limit)
    if args.json:
        print(json.dumps(_records(table)), flush=True)
    elif table.empty:
        print(f"no operations in {path()}")
    else:
        cols = ["op_id", "operation", "target", "requested", "success", "failed", "unknown", "skipped",
                "state", "created_at", "parent_op_id"]
        t = table[cols].copy()
        t["created_at"] = t["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
        print(t.to_string(index=False))
    return EXIT_OK


def resume(args: argparse.Namespace) -> int:
    from romakit.replay import resume as resume_op
    from romakit.store.reader import pending_ids

    rec, todo = pending_ids(args.op_id)
    kind = operation(rec["operation"]).kind
    if args.dry_run:
        return _dry_run(args, rec["operation"], todo, max(rec["chunk_size"], 1), rec["target"])
    options: dict[str, Any] = {"progress": _progress(args)}
    if args.chunk_size:
        options["chunk_size"] = args.chunk_size
    if args.concurrency:
        options["concurrency"] = args.concurrency
    recorded = {"target": rec["target"], **(rec["client"] or {})}
    if kind == LINK:
        client = _link_client(args, recorded)
        try:
            res = resume_op(rec["op_id"], client, force=args.force, **options)
        finally:
            client.close()
    else:
        with _gateway(args, recorded) as gw:
            res = resume_op(rec["op_id"], gw, force=args.force, **options)
    return _report(res, args, extra={"resumed": len(todo)})


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
        print(json.dumps(server.describe(gateways=args.gateways)), flush=True)
        while not stop.wait(3600):
            pass
    return EXIT_OK


#: subcommand -> what runs it
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "offline": offline, "delete-children": delete_children, "check": check, "journal": journal, "resume": resume,
    "sim": sim,
}
