"""The ``romakit`` command (also ``python -m romakit``): batch operations, the journal
and the sandbox, for terminals and schedulers.

Exit status: 0 every device succeeded; 1 some device failed, is unknown or was skipped;
2 bad input (ids, flags, missing credentials), nothing sent; 3 the service could not be
reached or refused the connection.

Credentials come from the environment only (flags end up in shell history and ``ps``):
``ROMAKIT_AK`` + ``ROMAKIT_SK`` or ``ROMAKIT_TOKEN`` for LINK, ``ROMAKIT_DEVICE_SECRET``
for a gateway. The rest may also come from ``ROMAKIT_ENDPOINT``, ``ROMAKIT_PROJECT_ID``,
``ROMAKIT_INSTANCE_ID``, ``ROMAKIT_MQTT_HOST``, ``ROMAKIT_MQTT_PORT``, ``ROMAKIT_GATEWAY``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_NOT_ALL_OK, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3


def _add_sim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the sandbox in the foreground and print how to reach it (one JSON line)")
    p.add_argument("--devices", type=int, default=2000, help="fleet size (default 2000)")
    p.add_argument("--seed", type=int, default=7, help="fleet seed: same seed, same fleet (default 7)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=0, help="LINK HTTP port (default: a free one)")
    p.add_argument("--mqtt-port", type=int, default=0, help="embedded MQTT broker port (default: a free one)")
    p.add_argument("--no-mqtt", action="store_true", help="LINK REST side only")
    p.add_argument("--mqtt-tls", action="store_true",
                   help="also serve MQTT over TLS, with a certificate made at start-up (its CA file is in the JSON)")
    p.add_argument("--mqtt-tls-port", type=int, default=0, help="MQTT-over-TLS port (default: a free one)")
    p.add_argument("--mqtt-broker", metavar="HOST:PORT", help="attach the IoTDA platform to this broker (e.g. Mosquitto) instead of the embedded one")
    p.add_argument("--gateways", type=int, default=3, help="how many gateways to describe (default 3)")
    f = p.add_argument_group("faults (also switchable at run time with sb.set_fault)")
    f.add_argument("--latency-ms", type=float, help="extra delay before every HTTP answer")
    f.add_argument("--error-rate", type=float, help="share of HTTP requests answered 500 APIG.9999")
    f.add_argument("--rate-limit", type=float, help="HTTP requests/s before 429 APIG.0308")
    f.add_argument("--retry-after", type=float, help="Retry-After seconds sent with a 429")
    f.add_argument("--reset-rate", type=float, help="share of HTTP connections reset without an answer")
    f.add_argument("--garbage-rate", type=float, help="share of HTTP answers that are not JSON")
    f.add_argument("--missing-fields-rate", type=float, help="share of HTTP answers that lack promised fields")
    f.add_argument("--fail-products", type=int, nargs="*", help="product ids whose devices always fail force-offline")
    f.add_argument("--mqtt-delay-ms", type=float, help="delay before the platform answers over MQTT")
    f.add_argument("--mqtt-drop-rate", type=float, help="share of MQTT requests never answered")
    f.add_argument("--mqtt-duplicate-rate", type=float, help="share of MQTT answers sent twice")
    f.add_argument("--mqtt-malformed-rate", type=float, help="share of MQTT answers that are malformed")
    p.set_defaults(func=_cmd_sim)


_FAULT_FLAGS = (
    "latency_ms", "error_rate", "rate_limit", "retry_after", "reset_rate", "garbage_rate", "missing_fields_rate", "fail_products",
    "mqtt_delay_ms", "mqtt_drop_rate", "mqtt_duplicate_rate", "mqtt_malformed_rate",
)


def _cmd_sim(args: argparse.Namespace) -> int:
    from romakit.sim.server import SimServer

    faults = {k: getattr(args, k) for k in _FAULT_FLAGS if getattr(args, k) is not None}
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
        mqtt=not args.no_mqtt,
        mqtt_port=args.mqtt_port,
        mqtt_broker=external,
        mqtt_tls=args.mqtt_tls,
        mqtt_tls_port=args.mqtt_tls_port,
        **faults,
    ) as sim:
        print(json.dumps(sim.describe(gateways=args.gateways)), flush=True)
        while not stop.wait(3600):
            pass
    return 0



# -- ids, connections, output ----------------------------------------------------------------
def _read_ids(args: argparse.Namespace) -> list[str]:
    """Ids from the arguments, ``--file`` and stdin (``-``): separated by whitespace or
    commas; ``#`` starts a comment."""
    from romakit.errors import InputError

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


def _env(name: str) -> str | None:
    v = os.environ.get(name)
    return v if v else None


def _need(value: Any, flag: str, env: str) -> Any:
    from romakit.errors import InputError

    if value in (None, ""):
        raise InputError(f"missing {flag} (or the {env} environment variable)")
    return value


def _link_client(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> Any:
    from romakit.errors import InputError
    from romakit.link.auth import AkSk, Token
    from romakit.link.client import LinkClient

    rec = recorded or {}
    endpoint = _need(args.endpoint or _env("ROMAKIT_ENDPOINT") or rec.get("endpoint"), "--endpoint", "ROMAKIT_ENDPOINT")
    project = _need(args.project_id or _env("ROMAKIT_PROJECT_ID") or rec.get("project_id"), "--project-id", "ROMAKIT_PROJECT_ID")
    instance = _need(args.instance_id or _env("ROMAKIT_INSTANCE_ID") or rec.get("instance_id"), "--instance-id", "ROMAKIT_INSTANCE_ID")
    ak, sk, token = _env("ROMAKIT_AK"), _env("ROMAKIT_SK"), _env("ROMAKIT_TOKEN")
    if ak and sk:
        auth: Any = AkSk(ak, sk)
    elif token:
        auth = Token(token)
    else:
        raise InputError("no LINK credentials: set ROMAKIT_AK and ROMAKIT_SK, or ROMAKIT_TOKEN, in the environment")
    options: dict[str, Any] = {"allow_insecure": args.allow_insecure, "timeout": args.timeout}
    if args.ca_bundle:
        options["verify"] = args.ca_bundle
    return LinkClient(endpoint, project, instance, auth, **options)


def _gateway(args: argparse.Namespace, recorded: dict[str, Any] | None = None) -> Any:
    from romakit.errors import InputError
    from romakit.iotda.gateway import Gateway

    rec = recorded or {}
    host = _need(args.host or _env("ROMAKIT_MQTT_HOST") or rec.get("host"), "--host", "ROMAKIT_MQTT_HOST")
    port = _need(args.port or _env("ROMAKIT_MQTT_PORT") or rec.get("port"), "--port", "ROMAKIT_MQTT_PORT")
    gateway = _need(args.gateway or _env("ROMAKIT_GATEWAY") or rec.get("gateway_id"), "--gateway", "ROMAKIT_GATEWAY")
    secret = _env("ROMAKIT_DEVICE_SECRET")
    if not secret:
        raise InputError("no gateway secret: set ROMAKIT_DEVICE_SECRET in the environment")
    try:
        port = int(port)
    except ValueError:
        raise InputError(f"--port must be a number, got {port!r}") from None
    tls = args.tls if args.tls is not None else rec.get("tls")
    return Gateway(host, port, gateway, secret, tls=tls, ca_file=args.ca_file, timeout=args.timeout,
                   allow_insecure=args.allow_insecure)


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


def _dry_run(args: argparse.Namespace, operation: str, ids: list, chunk_size: int, target: str | None) -> int:
    n_chunks = -(-len(ids) // chunk_size)
    policy = _rollout(args)
    info = {"dry_run": True, "operation": operation, "target": target, "devices": len(ids),
            "chunk_size": chunk_size, "chunks": n_chunks, "rollout": policy.describe() if policy else None}
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"dry run: {operation} of {len(ids)} devices on {target or '(target not given)'} "
              f"in {n_chunks} chunk(s) of at most {chunk_size}; nothing sent")
        if policy:
            print(f"rollout: {policy.describe()}")
    return EXIT_OK


# -- commands ----------------------------------------------------------------------------------
def _cmd_offline(args: argparse.Namespace) -> int:
    from romakit.ids import link_ids
    from romakit.link.client import DEFAULT_CHUNK

    ids = link_ids(_read_ids(args))
    chunk = args.chunk_size or DEFAULT_CHUNK
    if args.dry_run:
        return _dry_run(args, "force_offline", ids, chunk, args.instance_id or _env("ROMAKIT_INSTANCE_ID"))
    client = _link_client(args)
    try:
        res = client.force_offline(ids, chunk_size=chunk, concurrency=args.concurrency, progress=_progress(args),
                                   rollout=_rollout(args))
    finally:
        client.close()
    return _report(res, args)


def _cmd_delete_children(args: argparse.Namespace) -> int:
    from romakit.ids import iotda_ids

    ids = iotda_ids(_read_ids(args))
    chunk = args.chunk_size or 50
    if args.dry_run:
        if not 1 <= chunk <= 50:
            from romakit.errors import InputError

            raise InputError(f"--chunk-size must be 1..50 (IoTDA's limit per request), got {chunk}")
        return _dry_run(args, "delete_sub_devices", ids, chunk, args.gateway or _env("ROMAKIT_GATEWAY"))
    gw = _gateway(args)
    with gw:
        res = gw.delete_sub_devices(ids, chunk_size=chunk, concurrency=args.concurrency, progress=_progress(args),
                                    rollout=_rollout(args))
    return _report(res, args)


def _cmd_journal(args: argparse.Namespace) -> int:
    from romakit.replay import journal
    from romakit.store.schema import path

    if args.op_id:
        _report(journal(args.op_id), args)  # a query: its status is not the operation's
        return EXIT_OK
    table = journal()
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


def _cmd_resume(args: argparse.Namespace) -> int:
    from romakit.operations import LINK, operation
    from romakit.replay import resume
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
    recorded = rec["client"] or {}
    if kind == LINK:
        recorded = recorded or {"instance_id": rec["target"]}
        client = _link_client(args, recorded)
        try:
            res = resume(rec["op_id"], client, force=args.force, **options)
        finally:
            client.close()
    else:
        gw = _gateway(args, recorded or {"gateway_id": rec["target"]})
        with gw:
            res = resume(rec["op_id"], gw, force=args.force, **options)
    return _report(res, args, extra={"resumed": len(todo)})


# -- parser --------------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser, *, ids: bool = True) -> None:
    if ids:
        p.add_argument("ids", nargs="*", metavar="ID", help="device ids; '-' reads them from stdin")
        p.add_argument("--file", metavar="PATH", help="read ids from a file ('-' for stdin), whitespace or comma separated")
        p.add_argument("--dry-run", action="store_true", help="check the ids and show the chunks; send nothing")
    p.add_argument("--chunk-size", type=int, metavar="N", help="devices per request")
    p.add_argument("--concurrency", type=int, metavar="N", help="requests in flight at once")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for each answer (default 30)")
    p.add_argument("--json", action="store_true", help="print one JSON object (op_id, counts, stopped, failures)")
    p.add_argument("--all-rows", action="store_true", help="with --json: every row, not only the failures")
    p.add_argument("--show", type=int, default=20, metavar="N", help="failures listed in text output (default 20)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none unless stderr is a terminal)")
    p.add_argument("--allow-insecure", action="store_true", help="allow plain HTTP/MQTT to a host that is not loopback")
    if ids:
        _rollout_flags(p)


def _rollout_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rollout (any of these turns a rollout policy on; see rk.Rollout)")
    g.add_argument("--canary", type=int, metavar="N", help="send the first N devices alone; go on only if they pass")
    g.add_argument("--max-per-minute", type=float, metavar="R", help="at most R devices per minute")
    g.add_argument("--ramp-start", type=float, metavar="R", help="start at R devices per minute and ramp up")
    g.add_argument("--ramp-factor", type=float, metavar="F", help="multiply the rate by F at each ramp step (default 2)")
    g.add_argument("--ramp-every", type=int, metavar="K", help="ramp step after every K successes (default 100)")
    g.add_argument("--abort-on", choices=["failed", "unknown", "either"], help="what counts for the abort (default either)")
    g.add_argument("--abort-threshold", type=float, metavar="SHARE", help="stop when this share fails (default 0.1)")
    g.add_argument("--abort-min", type=int, metavar="N", help="only after N devices finished (default 200)")


_ROLLOUT_FLAGS = ("canary", "max_per_minute", "ramp_start", "ramp_factor", "ramp_every", "abort_on",
                  "abort_threshold", "abort_min")


def _rollout(args: argparse.Namespace) -> Any:
    """The rollout policy the flags ask for, or None when no rollout flag was given."""
    given = {k: getattr(args, k, None) for k in _ROLLOUT_FLAGS}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return None
    from romakit.engine.rollout import Rollout

    return Rollout(**given)


def _link_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ROMA Connect LINK (credentials: ROMAKIT_AK + ROMAKIT_SK, or ROMAKIT_TOKEN)")
    g.add_argument("--endpoint", help="e.g. https://roma.cn-north-4.myhuaweicloud.com [ROMAKIT_ENDPOINT]")
    g.add_argument("--project-id", help="[ROMAKIT_PROJECT_ID]")
    g.add_argument("--instance-id", help="[ROMAKIT_INSTANCE_ID]")
    g.add_argument("--ca-bundle", metavar="PATH", help="CA bundle to verify the endpoint's TLS certificate")


def _mqtt_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("IoTDA gateway over MQTT (secret: ROMAKIT_DEVICE_SECRET)")
    g.add_argument("--host", help="MQTT host [ROMAKIT_MQTT_HOST]")
    g.add_argument("--port", type=int, help="MQTT port, 8883 for TLS [ROMAKIT_MQTT_PORT]")
    g.add_argument("--gateway", help="the gateway's device id [ROMAKIT_GATEWAY]")
    g.add_argument("--tls", dest="tls", action="store_true", default=None, help="use TLS (default: on for port 8883)")
    g.add_argument("--no-tls", dest="tls", action="store_false", help="plain MQTT (loopback only unless --allow-insecure)")
    g.add_argument("--ca-file", metavar="PATH", help="CA file to verify the broker's TLS certificate")


def _add_operations(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("offline", help="force devices offline over ROMA Connect LINK (BatchFreezeDevices)")
    _common(p)
    _link_flags(p)
    p.set_defaults(func=_cmd_offline)

    p = sub.add_parser("delete-children", help="delete a gateway's child devices over IoTDA MQTT")
    _common(p)
    _mqtt_flags(p)
    p.set_defaults(func=_cmd_delete_children)

    p = sub.add_parser("journal", help="list past operations, or show one (romakit journal OP_ID)")
    p.add_argument("op_id", nargs="?", help="an operation id (a unique prefix will do)")
    p.add_argument("--limit", type=int, metavar="N", help="only the N most recent operations")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("--all-rows", action="store_true", help="with OP_ID and --json: every row, not only the failures")
    p.add_argument("--show", type=int, default=20, metavar="N", help="failures listed in text output (default 20)")
    p.set_defaults(func=_cmd_journal)

    p = sub.add_parser("resume", help="finish an interrupted operation: send only what never got an answer")
    p.add_argument("op_id", help="the operation to resume (see romakit journal)")
    p.add_argument("--dry-run", action="store_true", help="show what would be sent; send nothing")
    p.add_argument("--force", action="store_true", help="resume even if the journal says the operation still runs")
    _common(p, ids=False)
    _link_flags(p)
    _mqtt_flags(p)
    p.set_defaults(func=_cmd_resume)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="romakit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_operations(sub)
    _add_sim(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a clean one-line error for terminals; details with -X dev
        from romakit.errors import InputError, RomakitError

        if isinstance(e, InputError):
            print(f"romakit: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(e, RomakitError):
            print(f"romakit: {e}", file=sys.stderr)
            return EXIT_UNREACHABLE
        raise


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
