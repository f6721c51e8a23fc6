"""The ``romakit`` command's arguments: one parser, flags that turn into settings
(:func:`connection_flags`) and a rollout policy (:func:`rollout`).

The connection flags are made from :data:`romakit.config.SETTINGS`, the same table the
environment variables come from, so a flag, its variable and its help cannot drift.
"""

from __future__ import annotations

import argparse
from typing import Any

from romakit import config
from romakit.operations import GATEWAY, LINK

#: the sandbox's fault switches (``sb.set_fault``), each a ``sim`` flag
FAULT_FLAGS = (
    "latency_ms", "error_rate", "error_status", "error_code", "rate_limit", "retry_after", "reset_rate", "garbage_rate",
    "missing_fields_rate", "fail_products", "clock_offset_s", "list_churn",
    "mqtt_delay_ms", "mqtt_drop_rate", "mqtt_duplicate_rate", "mqtt_malformed_rate", "mqtt_rate_limit",
    "reconnect_s", "reconnect_never", "connect_rate", "time_scale",
)
_ROLLOUT_FLAGS = ("canary", "max_per_minute", "ramp_start", "ramp_factor", "ramp_every", "abort_on",
                  "abort_threshold", "abort_min", "come_back", "within", "max_reconnects_per_second")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def connection_flags(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """``{profile field: value}`` of the connection flags for a client of ``kind``."""
    return {s.field: getattr(args, _dest(s.flag), None) for s in config.settings_for(kind) if s.flag}


def rollout(args: argparse.Namespace, operation: str) -> Any:
    """The rollout policy the flags ask for: ``False`` with ``--no-rollout``; else the
    operation registry's default with the flags given laid over it (None: no flag, the
    engine takes the default itself)."""
    given = {k: getattr(args, k, None) for k in _ROLLOUT_FLAGS}
    given = {k: v for k, v in given.items() if v is not None}
    if getattr(args, "no_rollout", False):
        if given:
            from romakit.errors import InputError

            raise InputError(f"--no-rollout cannot be combined with --{next(iter(given)).replace('_', '-')}")
        return False
    if not given:
        return None
    from romakit.engine.rollout import Rollout, default_rollout

    base = default_rollout(operation)
    return Rollout(**{**(base.to_dict() if base else {}), "gate": None, **given})


def _add_sim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the sandbox in the foreground and print how to reach it (one JSON line)",
                       description="Run the sandbox in the foreground (Ctrl-C stops it) and print how to reach it: "
                                   "one JSON line, or with --env export lines for a shell, e.g.\n"
                                   "  romakit sim --env > /tmp/sim.env &   then   . /tmp/sim.env\n"
                                   "After that line it writes nothing more to the terminal: its log goes to a file "
                                   "(--log). Commands pointed at a sandbox (its instance id starts 5a4db0c5-) "
                                   "read and write the sandbox journal, never your real one.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", action="store_true",
                   help="print export lines (ROMAKIT_ENDPOINT, ..., the first gateway's) instead of JSON")
    p.add_argument("--devices", type=int, default=2000, help="fleet size (default 2000)")
    p.add_argument("--seed", type=int, default=7, help="fleet seed: same seed, same fleet (default 7)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=0, help="LINK HTTP port (default: a free one)")
    p.add_argument("--iam-port", type=int, default=0, help="IAM HTTP port (default: a free one)")
    p.add_argument("--link-tls", action="store_true", help="serve LINK and IAM over HTTPS (a throwaway CA; its file is in the JSON)")
    p.add_argument("--mqtt-port", type=int, default=0, help="embedded MQTT broker port (default: a free one)")
    p.add_argument("--no-mqtt", action="store_true", help="LINK REST side only")
    p.add_argument("--mqtt-tls", action="store_true",
                   help="also serve MQTT over TLS, with a certificate made at start-up (its CA file is in the JSON)")
    p.add_argument("--mqtt-tls-port", type=int, default=0, help="MQTT-over-TLS port (default: a free one)")
    p.add_argument("--mqtt-broker", metavar="HOST:PORT", help="attach the IoTDA platform to this broker (e.g. Mosquitto) instead of the embedded one")
    p.add_argument("--gateways", type=int, default=3, help="how many gateways to describe (default 3)")
    p.add_argument("--log", metavar="PATH",
                   help="where the sandbox's own log goes (default: romakit-sim-PID.log in the temp dir, named "
                        "in the JSON, so that a sim started with & stays quiet in your shell; '-': stderr)")
    f = p.add_argument_group("faults (also switchable at run time with sb.set_fault)")
    f.add_argument("--latency-ms", type=float, help="extra delay before every HTTP answer")
    f.add_argument("--error-rate", type=float, help="share of HTTP requests answered 500 APIG.9999 (or the next two)")
    f.add_argument("--error-status", type=int, help="the status of those answers (e.g. 502)")
    f.add_argument("--error-code", help="the code of those answers (e.g. APIG.0202)")
    f.add_argument("--clock-offset-s", type=float, help="the sandbox's clock runs this many seconds ahead (negative: behind)")
    f.add_argument("--list-churn", type=int, help="ListDevices pages past the first that each delete a device first")
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
    f.add_argument("--mqtt-rate-limit", type=float,
                   help="upstream MQTT messages/s the instance accepts; the rest are dropped, as IoTDA does")
    b = p.add_argument_group("the fleet's behaviour (a fleet's by default; also switchable with sb.set_fault)")
    b.add_argument("--reconnect-s", type=float, default=5.0,
                   help="median seconds before a forced device reconnects by itself (default 5; 0: never)")
    b.add_argument("--reconnect-never", type=float, default=0.02,
                   help="share of devices that never reconnect once dropped (default 0.02)")
    b.add_argument("--connect-rate", type=float, default=100.0,
                   help="new connections/s the instance accepts; the rest queue (default 100; 0: no limit)")
    b.add_argument("--time-scale", type=float, help="sandbox seconds per real second (e.g. 60 for a classroom)")


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
    g.add_argument("--come-back", type=float, metavar="SHARE", help="force-offline: go on after the canary only "
                   "if this share of its devices came back (logged in again) within --within")
    g.add_argument("--within", metavar="D", help="with --come-back: how long to wait for them (default 2m)")
    g.add_argument("--max-reconnects-per-second", type=float, metavar="R", help="force-offline: the instance's "
                   "new-connection limit; the run is paced so its reconnects stay under it")
    g.add_argument("--no-rollout", action="store_true",
                   help="no policy at all: no canary, no abort criteria, no slow start (deletions and "
                        "force-offline have one by default)")


#: devices above which a permanent operation asks before it sends (unless --yes)
CONFIRM_ABOVE = 10


def _confirm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts, schedulers)")
    p.add_argument("--confirm-above", type=int, default=CONFIRM_ABOVE, metavar="N",
                   help=f"ask on the terminal before deleting more than N devices (default {CONFIRM_ABOVE})")


def _settings_group(p: argparse.ArgumentParser, kind: str, title: str) -> argparse._ArgumentGroup:
    rows = config.settings_for(kind)
    env_only = ", ".join(s.env for s in rows if s.part == kind and not s.flag)
    g = p.add_argument_group(f"{title} (environment only: {env_only})")
    for s in rows:
        if s.flag and s.type is bool:
            g.add_argument(s.flag, action="store_true", default=None, help=f"{s.help} [{s.env}]")
        elif s.flag:
            g.add_argument(s.flag, type=s.type, help=f"{s.help} [{s.env}]")
    return g


def _link_flags(p: argparse.ArgumentParser) -> None:
    g = _settings_group(p, LINK, "ROMA Connect LINK (and IAM)")
    g.add_argument("--deadline", type=float, metavar="S",
                   help="seconds one LINK request may take to its answer's last byte (default 60)")
    g.add_argument("--max-answer-bytes", type=int, metavar="N",
                   help="the largest LINK answer read, in bytes (default 64 MiB)")


def _reader_flags(p: argparse.ArgumentParser, waits_for: str) -> None:
    """What a command reading LINK takes: the answer's timeout, the plain-HTTP switch and
    the LINK settings."""
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help=f"seconds to wait for {waits_for} (default 30)")
    p.add_argument("--allow-insecure", action="store_true", help="allow plain HTTP to a host that is not loopback")
    _link_flags(p)


def _mqtt_flags(p: argparse.ArgumentParser, *, secrets: str | None = None) -> argparse._ArgumentGroup:
    """The gateway's settings group; ``secrets``: the rest of ``--secrets-file``'s help,
    for the commands that take one."""
    g = _settings_group(p, GATEWAY, "IoTDA gateway over MQTT")
    if secrets:
        g.add_argument("--secrets-file", metavar="PATH", help=f"the gateways' secrets, 'GATEWAY SECRET' a line {secrets}")
    g.add_argument("--tls", dest="tls", action="store_true", default=None, help="use TLS (default: on for port 8883)")
    g.add_argument("--no-tls", dest="tls", action="store_false", help="plain MQTT (loopback only unless --allow-insecure)")
    return g


def _add_operations(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("offline", help="force devices offline over ROMA Connect LINK (BatchFreezeDevices)")
    _common(p)
    p.add_argument("--follow", metavar="D", help="then follow the forced devices for D (10m, 90s): the reconnect "
                   "curve and the devices not back")
    _follow_every(p)
    _link_flags(p)

    p = sub.add_parser("follow", help="follow a force-offline: which forced devices came back, and when")
    p.add_argument("op_id", help="the operation (see romakit journal; a unique prefix will do)")
    p.add_argument("--within", default="10m", metavar="D", help="how long to follow (default 10m)")
    _follow_every(p)
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("--show", type=int, default=20, metavar="N", help="devices not back to print (default 20)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for each answer (default 30)")
    p.add_argument("--allow-insecure", action="store_true", help="allow plain HTTP to a host that is not loopback")
    _link_flags(p)

    p = sub.add_parser("delete-children", help="delete child devices over IoTDA MQTT: one gateway's, or "
                                               "those of many gateways in one run (--across-gateways)",
                       description="Delete child devices over IoTDA MQTT, as their gateway.\n"
                                   "  romakit delete-children --gateway gw-0006 ID...         one gateway's children\n"
                                   "      its secret: ROMAKIT_DEVICE_SECRET, or its line of --secrets-file gws.txt\n"
                                   "  romakit delete-children --across-gateways --secrets-file gws.txt ID...\n"
                                   "      children of many gateways in one run: each child's gateway is read from "
                                   "the\n      LINK listing, one MQTT session per gateway, one op id, one rollout",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    _confirm_flags(p)
    g = _mqtt_flags(p, secrets="(or JSON {gateway: secret}, or romakit sim's output): each gateway's with "
                               "--across-gateways, else the line of --gateway; keep it chmod 600")
    g.add_argument("--across-gateways", action="store_true",
                   help="send each child through its own gateway, read from the LINK device listing (needs the "
                        "LINK settings), all gateways at once, each at its own pace")
    p.add_argument("--no-snapshot", action="store_true",
                   help="delete without reading each chunk's records first: half the requests, but romakit restore "
                        "cannot re-create them")
    _link_flags(p)

    p = sub.add_parser("check", help="resolve the credential chain, say where each setting came from, and make "
                                     "one authenticated read (nothing is changed)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    _reader_flags(p, "the answer")

    p = sub.add_parser("devices", help="list devices (the filters of link.devices()): a table, CSV, JSON or ids for a pipe",
                       description="List devices over ROMA Connect LINK (ListDevices, every page).\n"
                                   "  romakit devices --online-status online --ids | romakit offline -\n"
                                   "  romakit devices --parent gw-0006 --client-ids | romakit delete-children --gateway gw-0006 "
                                   "--secrets-file gws.txt -",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    from romakit.cli.fleet import filter_flags

    filter_flags(p)
    out = p.add_argument_group("output (default: a table)").add_mutually_exclusive_group()
    out.add_argument("--ids", action="store_true", help="one LINK id per line (for romakit offline -)")
    out.add_argument("--client-ids", action="store_true", help="one client id per line (for romakit delete-children -)")
    out.add_argument("--csv", action="store_true", help="CSV with a header")
    out.add_argument("--json", action="store_true", help="a JSON list of objects")
    p.add_argument("--columns", metavar="A,B,...", help="columns to show (default: id, name, client id, type, status, product, parent)")
    _reader_flags(p, "each answer")

    p = sub.add_parser("report", help="write an operation's evidence report (one self-contained HTML file)")
    p.add_argument("op_id", help="the operation (see romakit journal; a unique prefix will do)")
    p.add_argument("-o", "--output", metavar="PATH", help="where to write it (default: romakit-report-OP.html in romakit's exports folder, "
                   "$ROMAKIT_HOME/exports or the user data dir's; the path is printed)")
    p.add_argument("--with-resumes", action="store_true", help="(the default) the net state of the operation's "
                   "chain: it, its retries and resumes")
    p.add_argument("--step", action="store_true", help="this one operation's own rows, not its chain's net state")
    p.add_argument("--verify", action="store_true",
                   help="re-read the fleet over LINK (one listing) to verify the claimed effect; needs LINK credentials")
    p.add_argument("--around", default="30m", metavar="DURATION",
                   help="the fleet around it: the watches' events from this long before it started to this long "
                        "after it finished (default 30m)")
    p.add_argument("--no-around", action="store_true", help="leave the fleet around it out")
    _reader_flags(p, "the listing")

    p = sub.add_parser("journal", help="list past operations, or show one (romakit journal OP_ID)")
    p.add_argument("op_id", nargs="?", help="an operation id (a unique prefix will do)")
    p.add_argument("--limit", type=int, metavar="N", help="only the N most recent operations")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("--all-rows", action="store_true", help="with OP_ID and --json: every row, not only the failures")
    p.add_argument("--step", action="store_true", help="with OP_ID: this one operation's own rows, not its chain's "
                   "net state (it, its retries and resumes)")
    p.add_argument("--show", type=int, default=20, metavar="N", help="failures listed in text output (default 20)")
    f = p.add_argument_group("filters (listing only)")
    f.add_argument("--who", metavar="USER[@HOST]", help="operations started by this OS user (or @host)")
    f.add_argument("--since", metavar="WHEN", help="started at or after WHEN: ISO time, epoch seconds, or an age like 2h, 7d")
    f.add_argument("--until", metavar="WHEN", help="started before WHEN (same forms as --since)")
    f.add_argument("--target", metavar="ID", help="on this LINK instance or gateway")
    f.add_argument("--operation", metavar="NAME", help="this operation (force_offline, delete_sub_devices, ...)")
    f.add_argument("--state", metavar="STATE", help="finished, stopped, running or interrupted")
    f.add_argument("--outcome", metavar="OUTCOME", help="with at least one device in this outcome (failed, unknown, ...)")

    p = sub.add_parser("migrate-journal", help="copy a journal (default: this user's SQLite file) into another, "
                                                 "e.g. a team's PostgreSQL")
    p.add_argument("--to", required=True, metavar="URL", help="where to copy: postgresql://... or a SQLite path")
    p.add_argument("--from", dest="source", metavar="URL", help="what to copy (default: the local SQLite journal)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("resume", help="finish an interrupted operation: send only what never got an answer")
    p.add_argument("op_id", help="the operation to resume (see romakit journal)")
    p.add_argument("--dry-run", action="store_true", help="show what would be sent; send nothing")
    p.add_argument("--force", action="store_true", help="resume even if the journal says the operation still runs")
    _common(p, ids=False)
    _resend_flags(p)

    p = sub.add_parser("retry", help="send an operation's transient failures again (timeouts, 5xx, throttling, "
                                     "service unreachable) as a new operation linked to it",
                       description="Send the transient failures of operation OP again (what res.retry_ids() "
                                   "gives: timeouts, 5xx, throttling, connection errors; not 'not found' or "
                                   "invalid ids), as a new operation linked to OP, with the same dry run and "
                                   "confirmation as the other commands. A deletion first reads which devices are "
                                   "already gone; those end success and are not sent again. Devices never sent "
                                   "(skipped) are finished by romakit resume OP.")
    p.add_argument("op_id", help="the operation whose failures to retry (see romakit journal)")
    p.add_argument("--dry-run", action="store_true", help="show what would be sent; send nothing")
    _common(p, ids=False)
    _rollout_flags(p)
    _resend_flags(p)


def _add_restore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore", help="re-create what a deletion removed, from the snapshot it kept in the journal",
                       description="Re-create the devices deletion OP removed, from the record of each that it "
                                   "read just before sending its chunk (the journal keeps it, never a secret): "
                                   "children through the gateway they were under, with their own device id; LINK "
                                   "devices over LINK, with a new id, client id and secret (reset the field "
                                   "device's secret). Devices already back are not created again. Their data "
                                   "history, shadow and messages are not restored.\n"
                                   "  romakit restore OP --dry-run\n"
                                   "  romakit restore OP --where product_id=784701 --secrets-file gws.txt",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("op_id", help="the deletion to undo (see romakit journal; a unique prefix will do)")
    p.add_argument("ids", nargs="*", metavar="ID", help="only these deleted devices (default: all of them)")
    p.add_argument("--where", action="append", metavar="FIELD=VALUE", help="only devices whose record has this "
                   "value (several: comma-separated); e.g. product_id=784701, gateway_id=gw-0003, node_type=1")
    p.add_argument("--dry-run", action="store_true", help="show what would be re-created; send nothing")
    _common(p, ids=False)
    _rollout_flags(p)
    _resend_flags(p)


def _resend_flags(p: argparse.ArgumentParser) -> None:
    """What a command sending a recorded operation's devices again takes: confirmation,
    LINK and gateway settings, the gateways' secrets."""
    _confirm_flags(p)
    _link_flags(p)
    _mqtt_flags(p, secrets="(see delete-children): every gateway of an operation across gateways, or the one "
                           "gateway it ran as")


def _add_watch(sub: argparse._SubParsersAction) -> None:
    """The ``watch`` and ``timeline`` subcommands."""
    from romakit.cli.fleet import filter_flags

    p = sub.add_parser("watch", help="record the fleet's status changes (online, offline, gone, appeared) in the "
                                     "journal, cycle after cycle, until Ctrl-C or --for")
    filter_flags(p)
    p.add_argument("--every", default="30s", metavar="DURATION", help="between cycles (default 30s)")
    p.add_argument("--for", metavar="DURATION", help="stop by itself after this long (e.g. 2h)")
    p.add_argument("--name", metavar="NAME", help="the watch's name (default: from the target and filters; "
                                                 "the same name resumes from its last snapshot)")
    p.add_argument("--full-every", type=int, default=10, metavar="N",
                   help="a full listing every N cycles; the others list only devices not online (default 10)")
    p.add_argument("--show", type=int, default=10, metavar="N", help="changes printed per cycle (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per change")
    g = p.add_argument_group("IoTDA instead of LINK (the inventory's status; the same credentials)")
    g.add_argument("--iotda-endpoint", metavar="URL", help="IoTDA's REST endpoint [ROMAKIT_IOTDA_ENDPOINT]")
    g.add_argument("--iotda-region", metavar="REGION", help="region for derived AK/SK signing [ROMAKIT_IOTDA_REGION]")
    g.add_argument("--gateway-id", metavar="GW", help="watch this gateway's children (every level below it)")
    _reader_flags(p, "each answer")

    p = sub.add_parser("timeline", help="what the watches recorded, at a glance: devices down over the window "
                                        "with romakit's operations marked, who is still down, the longest "
                                        "spells, the flapping devices (--lines: one line per spell and operation)")
    p.add_argument("--since", default="2h", metavar="WHEN", help="ISO time, epoch seconds or an age (default 2h)")
    p.add_argument("--until", metavar="WHEN", help="same forms as --since")
    p.add_argument("--device", metavar="ID", help="only this device")
    p.add_argument("--target", metavar="ID", help="only this LINK instance or IoTDA project[/gateway]")
    p.add_argument("--name", metavar="NAME", help="only this watch")
    p.add_argument("--flapping", type=float, default=4.0, metavar="R",
                   help="name devices with more than R transitions an hour (default 4)")
    p.add_argument("--rows", type=int, default=12, metavar="N", help="bars of the devices-down chart (default 12)")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="devices listed still down, longest spells and flapping (default 10 each)")
    p.add_argument("--lines", action="store_true", help="one line per spell and operation, in time order")
    p.add_argument("--limit", type=int, metavar="N", help="with --lines: only the last N lines")
    p.add_argument("--json", action="store_true", help="one JSON object (counts and the --lines lines)")


def _add_console(sub: argparse._SubParsersAction) -> None:
    """The ``console`` subcommand: rk.console as a web page (Voila), no code cells."""
    p = sub.add_parser("console", help="the console (pick, preview, confirm, run, results) as a web page with no "
                                       "code, served by Voila on 127.0.0.1; the sandbox unless told otherwise",
                       description="Serve rk.console as a web page with no code cells (Voila, on 127.0.0.1, with\n"
                                   "a random token), for people who do not write Python: the same widgets, and the\n"
                                   "same preview, confirmation and guard, as in JupyterLab. Ctrl-C stops it.\n"
                                   "  romakit console                            the built-in sandbox (default)\n"
                                   "  romakit console --profile acme             profile [acme] of profiles.toml\n"
                                   "  romakit console --chain --region cn-north-4 --instance-id ID\n"
                                   "      the credential chain: flags, ROMAKIT_PROFILE, ROMAKIT_*, HUAWEICLOUD_SDK_*,\n"
                                   "      ~/.huaweicloud/credentials (secrets from the environment only)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--sandbox", action="store_true", help="the built-in sandbox (the default when no "
                        "connection flag is given; ROMAKIT_* credentials in the environment are then ignored)")
    target.add_argument("--chain", action="store_true", help="connect with the credential chain instead (any "
                        "connection flag implies it)")
    target.add_argument("--profile", metavar="NAME", help="connect with this romakit profile (implies --chain)")
    p.add_argument("--devices", type=int, default=2000, help="sandbox: fleet size (default 2000)")
    p.add_argument("--seed", type=int, default=7, help="sandbox: fleet seed (default 7)")
    p.add_argument("--gateways", type=int, default=2, metavar="N",
                   help="sandbox: a tab for each of the first N gateways, and one for all of them (default 2)")
    p.add_argument("--page-port", type=int, default=0, metavar="PORT", help="the page's port on 127.0.0.1 "
                   "(default: a free one)")
    p.add_argument("--open", action="store_true", help="also open the page in the default browser")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for each answer (default 30)")
    p.add_argument("--allow-insecure", action="store_true", help="allow plain HTTP/MQTT to a host that is not loopback")
    _link_flags(p)
    _mqtt_flags(p, secrets="(see delete-children): a tab for each gateway in the file, or for --gateway's only")


def _follow_every(p: argparse.ArgumentParser) -> None:
    p.add_argument("--every", default="5s", metavar="D", help="while following: read every D (default 5s)")


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``args.command`` names the subcommand (``offline``, ``sim``, ...)."""
    parser = argparse.ArgumentParser(prog="romakit", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--journal", metavar="URL", help="journal into URL (postgresql://... for a team, or a "
                        "SQLite path); overrides ROMAKIT_JOURNAL")
    parser.add_argument("--no-journal", action="store_true", help="run without a journal, by choice: nothing is "
                        "recorded (no journal, report or resume of the run afterwards); as ROMAKIT_JOURNAL=0")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_operations(sub)
    _add_restore(sub)
    _add_watch(sub)
    _add_sim(sub)
    _add_console(sub)
    return parser
