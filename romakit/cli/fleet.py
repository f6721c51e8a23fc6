"""``romakit devices`` (the device listing, for people and for pipes) and the dry run's
check of ids against one listing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from romakit.cli.output import records
from romakit.textsafe import csv_frame, terminal, terminal_frame

#: the table's columns (``--columns`` picks others)
TABLE_COLUMNS = ("id", "device_name", "client_id", "node_type", "online_status", "product_name", "parent_device_name")
#: ListDevices filters that take an enum, and their choices
ENUM_CHOICES = {"node_type": ("direct", "gateway", "child"), "online_status": ("online", "offline", "never_connected")}


def filter_flags(p: argparse.ArgumentParser) -> None:
    """One flag per filter of ``link.devices()`` (ListDevices), plus ``--parent``."""
    from romakit.link.models import FILTERS

    g = p.add_argument_group("filters (those of link.devices(); the service applies them)")
    for name in sorted(FILTERS):
        flag = "--" + name.replace("_", "-")
        if name == "online_status":
            g.add_argument(flag, metavar="STATUS[,STATUS]", help="online, offline, never_connected (comma separated)")
        elif name in ENUM_CHOICES:
            g.add_argument(flag, choices=ENUM_CHOICES[name], help=f"one of {', '.join(ENUM_CHOICES[name])}")
        elif name.startswith("created_date"):
            g.add_argument(flag, metavar="WHEN", help="epoch milliseconds or an ISO date/time")
        else:
            g.add_argument(flag, metavar=name.split("_")[-1].upper(), help=f"{name.replace('_', ' ')} to match")
    g.add_argument("--parent", metavar="GATEWAY",
                   help="only the children of this gateway (its client id or LINK id); read from the listing")


def filters(args: argparse.Namespace) -> dict[str, Any]:
    """``{filter: value}`` for ``link.devices()`` from the flags."""
    from romakit.link.models import FILTERS

    out: dict[str, Any] = {}
    for name in FILTERS:
        v = getattr(args, name, None)
        if v in (None, ""):
            continue
        if name == "online_status":
            v = [s.strip() for s in str(v).split(",") if s.strip()]
        elif name.startswith("created_date") and not str(v).isdigit():
            import pandas as pd

            v = pd.Timestamp(v).to_pydatetime()
        elif name.startswith("created_date"):
            v = int(v)
        out[name] = v
    return out


def children_of(frame: Any, parent: str) -> Any:
    """The rows whose parent is ``parent`` (a client id, device name or LINK id)."""
    from romakit.errors import InputError

    key = str(parent)
    hit = frame[(frame["client_id"].astype(str) == key) | (frame["id"].astype(str) == key)
                | (frame["device_name"].astype(str) == key)]
    if hit.empty:
        raise InputError(f"--parent {parent!r}: no such gateway in the listing")
    return frame[frame["parent_device_id"].astype("string") == str(hit["id"].iloc[0])]


def print_devices(frame: Any, args: argparse.Namespace) -> None:
    """The listing as a table, CSV, JSON, or one id per line (``--ids``, ``--client-ids``).

    What the service named is shown escaped on a terminal (never obeyed); CSV cells that
    a spreadsheet would run as formulas are neutralised (:mod:`romakit.textsafe`)."""
    if args.ids or args.client_ids:
        col = "id" if args.ids else "client_id"
        sys.stdout.write("".join(f"{terminal(v)}\n" for v in frame[col].astype(str)))
        return
    cols = [c.strip() for c in args.columns.split(",")] if args.columns else list(TABLE_COLUMNS)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        from romakit.errors import InputError

        raise InputError(f"--columns: no column {', '.join(map(repr, missing))}; the listing has: "
                         f"{', '.join(frame.columns)}")
    if args.json:
        print(json.dumps(records(frame[cols] if args.columns else frame)))
    elif args.csv:
        out = csv_frame(frame[cols] if args.columns else frame)
        (terminal_frame(out) if sys.stdout.isatty() else out).to_csv(sys.stdout, index=False)
    elif frame.empty:
        print("no device matches", file=sys.stderr)
    else:
        shown = terminal_frame(frame[cols].astype(object).where(frame[cols].notna(), ""))
        print(shown.to_string(index=False))
        print(f"{len(frame):,} devices", file=sys.stderr)


def missing_ids(listing: Any, ids: list, *, column: str, parent: str | None = None) -> tuple[list, list]:
    """``(ids not in the listing, ids listed but not children of parent)`` for a dry run."""
    keys = listing[column].astype(str)
    known = set(keys)
    absent = [i for i in ids if str(i) not in known]
    foreign: list = []
    if parent is not None:
        try:
            kids = set(children_of(listing, parent)[column].astype(str))
        except Exception:  # noqa: BLE001 - the gateway itself is not listed: every id is foreign
            kids = set()
        foreign = [i for i in ids if str(i) in known and str(i) not in kids]
    return absent, foreign
