"""``romakit delete-children --across-gateways``: children of many gateways deleted in one
run (``rk.delete_children``), each through its own gateway.

Each child's gateway is read from the LINK device listing (one listing, before anything
is sent); each gateway's secret from ``--secrets-file`` (and the environment's one
gateway, ``ROMAKIT_GATEWAY_ID`` + ``ROMAKIT_DEVICE_SECRET``). Every refusal (ids not
listed, not children, gateways without a secret) happens before any MQTT connection.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
from typing import Any

from romakit import config
from romakit.cli.hints import no_rollout
from romakit.cli.output import few
from romakit.engine.guard import PERMANENT, journal_note, restorable
from romakit.engine.plan import BatchPlan
from romakit.errors import InputError
from romakit.operations import GATEWAY
from romakit.textsafe import terminal

NAME = "delete_sub_devices"


def read_secrets(path: str) -> dict[str, str]:
    """``{gateway id: secret}`` from a file: JSON (``{"gw": "secret"}``, a list of objects
    with ``device_id`` and ``secret``, or ``romakit sim``'s output), else one gateway a line
    (``GATEWAY SECRET`` or ``GATEWAY,SECRET``; ``#`` comments; a ``device_id,secret``
    header is skipped). Secrets are never printed; a file others can read is warned about."""
    try:
        text = open(path, encoding="utf-8").read()  # noqa: SIM115 - read whole, closed by refcount
        mode = os.stat(path).st_mode
    except OSError as e:
        raise InputError(f"--secrets-file {path!r}: {e.strerror}") from None
    if os.name == "posix" and mode & (stat.S_IRGRP | stat.S_IROTH):
        print(f"romakit: warning: {path} holds gateway secrets and is readable by other users; chmod 600 it",
              file=sys.stderr)
    if text.lstrip().startswith(("{", "[")):
        return _json_secrets(path, text)
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        parts = [p for p in re.split(r"[\s,]+", line.split("#", 1)[0].strip()) if p]
        if not parts or (n == 1 and parts[:2] == ["device_id", "secret"]):
            continue
        if len(parts) != 2:
            raise InputError(f"--secrets-file {path!r} line {n}: expected 'GATEWAY SECRET', got {len(parts)} field(s)")
        out[parts[0]] = parts[1]
    if not out:
        raise InputError(f"--secrets-file {path!r} names no gateway")
    return out


def _json_secrets(path: str, text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InputError(f"--secrets-file {path!r} is not valid JSON: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("mqtt"), dict):  # romakit sim's output
        data = data["mqtt"].get("gateways") or []
    if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        return {str(k): v for k, v in data.items()}
    if isinstance(data, list) and all(isinstance(r, dict) and isinstance(r.get("secret"), str)
                                      and (r.get("device_id") or r.get("gateway_id")) for r in data):
        return {str(r.get("device_id") or r.get("gateway_id")): r["secret"] for r in data}
    raise InputError(f"--secrets-file {path!r}: expected {{gateway: secret}} or a list of "
                     "{device_id, secret} objects")


def secrets(args: argparse.Namespace, sources: list[config.Source]) -> dict[str, str]:
    """The gateways' secrets: the file's, plus the environment's one gateway (the file wins)."""
    env = config.collect(sources, GATEWAY)
    out = {env["gateway_id"]: env["device_secret"]} if env.get("gateway_id") and env.get("device_secret") else {}
    if args.secrets_file:
        out.update(read_secrets(args.secrets_file))
    return out


def parents_in(listing: Any, ids: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """``(child -> its gateway's IoTDA id, ids not listed, ids listed but with no gateway)``."""
    from romakit.iotda.fanout import parents_of

    listed = set(listing["client_id"].astype(str))
    with_parent = set(listing.loc[listing["parent_device_id"].notna(), "client_id"].astype(str))
    absent = [i for i in ids if i not in listed]
    foreign = [i for i in ids if i in listed and i not in with_parent]
    return parents_of([i for i in ids if i in with_parent], listing), absent, foreign


def print_plan(args: argparse.Namespace, planned: BatchPlan, *, requested: int, checked: str,
               not_found: list[str], not_children: list[str], no_secret: list[str]) -> None:
    """The dry run of a fan-out: totals, rollout, what the listing said, a line per gateway."""
    n, counts = planned.devices, planned.gateways
    info: dict[str, Any] = {
        "dry_run": True, "operation": NAME, "target": f"{len(counts)} gateways", "devices": n,
        "requested": requested, "gateways": counts, "chunk_size": planned.chunk_size,
        "requests": planned.requests, "rollout": planned.describe_rollout(), "worst_case": planned.worst_case,
        "checked": checked, "not_found": not_found, "not_children": not_children, "no_secret": no_secret,
        "undo": restorable(planned, snapshot=not getattr(args, "no_snapshot", False))}
    if not planned.journaled:
        info["journal"] = "not journaled"
    if args.json:
        print(json.dumps(info), flush=True)
        return
    print(f"dry run: {NAME} of {n:,} child devices across {len(counts):,} gateways, "
          f"{planned.requests:,} request(s) of at most {planned.chunk_size} (each one gateway's children, "
          f"one MQTT session per gateway); nothing sent")
    print(f"rollout: {info['rollout']}" if planned.policy else no_rollout(n))
    print(f"permanent: {PERMANENT}")
    print(f"undo: {restorable(planned, snapshot=not getattr(args, 'no_snapshot', False))}")
    if note := journal_note(planned):
        print(note)
    print(f"checked against {checked}")
    for bad, label in ((not_found, "id(s) are not in the listing"),
                       (not_children, "id(s) are not children of any gateway")):
        if bad:
            print(f"{len(bad):,} {label}: {few(bad)}")
    if no_secret:
        print(f"{len(no_secret):,} gateway(s) have no secret (--secrets-file): {few(no_secret)}")
    missing = set(no_secret)
    width = max([len(terminal(g)) for g in counts] + [7])
    print(f"  {'gateway':<{width}}  children  secret")
    for g, c in list(counts.items())[:args.show]:  # gateway ids as the listing gave them, shown escaped
        print(f"  {terminal(g):<{width}}  {c:>8,}  {'missing' if g in missing else 'yes'}")
    if len(counts) > args.show:
        print(f"  ... and {len(counts) - args.show:,} more gateways (--show N, or --json for all)")


def gateway_for(args: argparse.Namespace, sources: list[config.Source], gateway_id: str, secret: str) -> Any:
    """A Gateway for ``gateway_id`` with the command's MQTT settings and that gateway's secret."""
    own = config.Source("--secrets-file", {"gateway_id": gateway_id, "device_secret": secret})
    profile = config.resolve("cli", [own, *sources], needs=GATEWAY)
    return profile.gateway(tls=args.tls, timeout=args.timeout, allow_insecure=args.allow_insecure)


def log_in(gateways: dict[str, Any]) -> None:
    """Connect every gateway (a few at a time), so that a refused login is said before a
    person is asked to confirm; the first refusal is raised, naming its gateway (the
    caller closes them all)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(gateways), 16) or 1, thread_name_prefix="romakit-login") as pool:
        for _ in pool.map(connect, gateways.values()):
            pass


def connect(gw: Any) -> Any:
    """``gw`` connected; a refusal (:class:`~romakit.errors.MqttError`) names the gateway
    and says that nothing was sent."""
    from romakit.errors import MqttError

    try:
        return gw.connect()
    except MqttError as e:
        raise MqttError(f"gateway {gw.target}: {e}; nothing sent") from e
