"""The ``romakit`` subcommands: each takes the parsed arguments and returns an exit status.

The acting ones are in :mod:`romakit.cli.acting`, those that read the journal in
:mod:`romakit.cli.records`; here are ``check``, ``devices`` and ``sim``, and the table
of them all (:data:`COMMANDS`).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Callable
from typing import Any

from romakit.cli import acting, common, console, following, records, restoring, watching
from romakit.cli.output import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_NOT_ALL_OK,
    EXIT_OK,
    EXIT_UNREACHABLE,
)
from romakit.cli.parser import FAULT_FLAGS
from romakit.operations import LINK

__all__ = ["COMMANDS", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_NOT_ALL_OK", "EXIT_OK", "EXIT_UNREACHABLE"]


def check(args: argparse.Namespace) -> int:
    """The chain's settings (where each came from, never a value) and one authenticated read."""
    profile = common.profile(args, LINK)
    client = profile.link_client(**common.link_options(args))
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
    log_to = _quiet_log(args.log)  # before anything starts: not a line of it on the terminal
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
        from romakit.store.schema import sandbox_path

        described["journal"] = str(sandbox_path())  # where commands pointed at it journal
        described["log"] = log_to
        print(_env_lines(described) if args.env else json.dumps(described), flush=True)
        while not stop.wait(3600):
            pass
    return EXIT_OK


def _quiet_log(where: str | None) -> str:
    """Send the sandbox's log (its servers', amqtt's, warnings, a thread's uncaught error)
    to a file, so that a sim started with ``&`` never writes over the shell; ``"-"``: to
    stderr. Returns where it goes."""
    import logging
    import sys
    from pathlib import Path

    if where == "-":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        said = "stderr"
    else:  # a throwaway sandbox's log is no record: the temp dir, one file per process
        import os
        import tempfile

        path = Path(where).expanduser() if where else Path(tempfile.gettempdir()) / f"romakit-sim-{os.getpid()}.log"
        handler = logging.FileHandler(path, encoding="utf-8")
        said = str(path.resolve())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    log = logging.getLogger("romakit.sim")
    threading.excepthook = lambda a: log.error("uncaught in thread %s", a.thread.name if a.thread else "?",
                                              exc_info=(a.exc_type, a.exc_value, a.exc_traceback))
    log.info("romakit sim started")
    return said


def _env_lines(d: dict[str, Any]) -> str:
    """``export`` lines for a POSIX shell: the LINK settings, and the first gateway's."""
    import shlex

    link, mqtt = d["link"], d.get("mqtt") or {}
    values = {"ROMAKIT_ENDPOINT": link["endpoint"], "ROMAKIT_PROJECT_ID": link["project_id"],
              "ROMAKIT_INSTANCE_ID": link["instance_id"], "ROMAKIT_AK": link["ak"], "ROMAKIT_SK": link["sk"]}
    if link.get("ca_file"):  # --link-tls: the sandbox's throwaway CA, on top of the OS store
        values["ROMAKIT_REST_CA_FILE"] = link["ca_file"]
    gws = mqtt.get("gateways") or []
    if mqtt:
        values.update(ROMAKIT_MQTT_HOST=mqtt["host"], ROMAKIT_MQTT_PORT=mqtt["port"])
    if gws:
        values.update(ROMAKIT_GATEWAY_ID=gws[0]["device_id"], ROMAKIT_DEVICE_SECRET=gws[0]["secret"])
    lines = ["# romakit sandbox: these secrets protect only this loopback sandbox",
             f"# its log: {d.get('log', '-')}; commands pointed at it journal into {d.get('journal', '-')}"]
    lines += [f"export {k}={shlex.quote(str(v))}" for k, v in values.items()]
    for g in gws[1:]:
        lines.append(f"# gateway {g['device_id']}: ROMAKIT_GATEWAY_ID={g['device_id']} "
                     f"ROMAKIT_DEVICE_SECRET={shlex.quote(g['secret'])}")
    return "\n".join(lines)


def devices(args: argparse.Namespace) -> int:
    from romakit.cli.fleet import children_of, filters, print_devices

    client = common.link_client(args)
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



#: subcommand -> what runs it
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "offline": acting.offline, "delete-children": acting.delete_children, "devices": devices, "check": check,
    "journal": records.journal, "migrate-journal": records.migrate_journal, "resume": records.resume,
    "report": records.report, "sim": sim, "retry": acting.retry, "follow": following.follow,
    "watch": watching.watch, "timeline": watching.timeline, "console": console.console,
    "restore": restoring.restore,
}
