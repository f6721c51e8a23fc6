"""``romakit watch`` (record the fleet's status changes in the journal, for hours) and
``romakit timeline`` (what the journal holds, as a compact view: devices down over the
window with romakit's operations marked, the devices still down, the longest spells,
the flapping devices; ``--lines``: one line per spell and operation, in time order)."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from typing import Any

from romakit.cli import common
from romakit.cli.output import EXIT_OK
from romakit.errors import InputError


def safe(text: Any) -> str:
    """``text`` for a terminal: control and other unprintable characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _clock(t: Any) -> str:
    import pandas as pd

    return "-" if t is None or pd.isna(t) else pd.Timestamp(t).tz_convert(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _span(td: Any) -> str:
    s = int(td.total_seconds())
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def watch(args: argparse.Namespace) -> int:
    from romakit.cli.fleet import filters
    from romakit.watching import Watch

    if getattr(args, "parent", None):
        raise InputError("watch: --parent is read from a listing; use --node-type or a tag to narrow the watch")
    wanted = filters(args)
    client = _iotda_client(args, wanted) if args.iotda_endpoint or args.gateway_id else common.link_client(args)

    def said(w: Watch, rows: list[tuple]) -> None:
        now = datetime.now(UTC).strftime("%H:%M:%S")
        if args.json:
            for r in rows:
                print(json.dumps({"at": r[1], "service_time": r[2], "target": r[3], "device_id": r[4],
                                  "kind": r[5], "previous": r[6], "detail": r[7]}), flush=True)
            return
        kinds: dict[str, int] = {}
        for r in rows:
            kinds[r[5]] = kinds.get(r[5], 0) + 1
        what = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no change"
        note = f" [fleet changed while read: {w.unsettled} of {w.cycles} cycles]" if w.unsettled else ""
        print(f"{now} cycle {w.cycles}: {what}{note}", flush=True)
        for r in rows[:args.show]:
            print(f"    {safe(r[4])}: {safe(r[6] or '-')} -> {safe(r[5])}", flush=True)

    w = Watch(client, args.every, name=args.name, full_every=args.full_every, duration=getattr(args, "for"),
              on_cycle=said, **wanted)
    if not args.json:
        print(f"watching {safe(w.target)} as {safe(w.watch_id)} every {w.every:g}s into {w.journal.location}"
              " (Ctrl-C stops)", flush=True)
    w.start()
    try:
        while not w.join(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        try:
            w.stop()
        finally:
            client.close()
    if not args.json:
        unsettled = (f"; the fleet changed while it was read in {w.unsettled} of {w.cycles} cycles (a device "
                     "missing from such a read is kept, not called gone; a change may show a cycle late)"
                     if w.unsettled else "")
        print(f"stopped after {w.cycles} cycles, {w.recorded} events recorded{unsettled}", flush=True)
    return EXIT_OK


def _iotda_client(args: argparse.Namespace, wanted: dict[str, Any]) -> Any:
    """The IoTDA inventory at ``--iotda-endpoint`` (or ROMAKIT_IOTDA_ENDPOINT), signed with
    the chain's credentials; ``wanted`` becomes IoTDA's filters (``--gateway-id``: its children)."""
    import dataclasses
    import os

    from romakit.operations import LINK

    endpoint = args.iotda_endpoint or os.environ.get("ROMAKIT_IOTDA_ENDPOINT")
    if not endpoint:
        raise InputError("watch --gateway-id needs IoTDA's REST endpoint: --iotda-endpoint or ROMAKIT_IOTDA_ENDPOINT")
    profile = common.profile(args, LINK)
    profile = dataclasses.replace(profile, iotda_endpoint=endpoint,
                                  iotda_region=args.iotda_region or os.environ.get("ROMAKIT_IOTDA_REGION"))
    client = profile.iotda_client(allow_insecure=args.allow_insecure, timeout=args.timeout)
    if client is None:
        raise InputError("watch over IoTDA needs the chain's credentials and a project id")
    unknown = sorted(set(wanted) - {"product_id", "node_id", "device_name", "app_id"})
    if unknown:
        raise InputError(f"IoTDA's listing has no filter {', '.join(unknown)}")
    if args.gateway_id:
        wanted["gateway_id"] = args.gateway_id
    return client


def timeline(args: argparse.Namespace) -> int:
    """The compact view (what :func:`romakit.timelines.views.text` prints), or with
    ``--lines`` one line per spell and operation in time order; ``--json`` for scripts."""
    import shutil

    from romakit.timelines import timeline as read
    from romakit.timelines.views import digest, text

    ev = read(since=args.since, until=args.until, target=args.target, device=args.device, watch_id=args.name)
    d = digest(ev, top=args.top, per_hour=args.flapping)
    if args.lines or args.json:
        lines = _lines(d)
        if args.json:
            print(json.dumps({"events": d.events, "devices": d.devices, "spells": len(d.spells),
                              "still_down": len(d.still_down), "flapping": len(d.flapping),
                              "operations": len(d.operations), "peak": d.peak,
                              "lines": [t for _, t in lines]}), flush=True)
            return EXIT_OK
        window = "in the last " + args.since if re.fullmatch(r"\s*\d+(\.\d+)?\s*[smhdw]\s*", args.since) else \
            "since " + args.since
        print(f"{len(ev)} events {safe(window)}: {len(d.spells)} offline spells, {len(d.operations)} operations",
              flush=True)
        for _, line in lines[-args.limit:] if args.limit else lines:
            print(line, flush=True)
        return EXIT_OK
    width = shutil.get_terminal_size((100, 24)).columns
    print(text(ev, width=max(width, 60), rows=args.rows, top=args.top, per_hour=args.flapping, d=d), flush=True)
    return EXIT_OK


def _lines(d: Any) -> list[tuple[Any, str]]:
    """One line per spell and operation, in time order."""
    lines: list[tuple[Any, str]] = []
    for r in d.spells.itertuples():
        back = f"back {_clock(r.end)}" if r.end is not None and not _isna(r.end) else "not back"
        lines.append((r.start, f"{_clock(r.start)}  down  {safe(r.device_id):<24} {_span(r.duration):>8}  "
                               f"{safe(r.kind)}, {back}"))
    for r in d.operations.itertuples():
        took = "running" if _isna(r.finished) else f"{safe(r.state)} {_clock(r.finished)}"
        lines.append((r.started, f"{_clock(r.started)}  op    {safe(r.operation):<24} {safe(r.op_id)[:12]:>8}  "
                                 f"{r.requested} devices on {safe(r.target)}, {took}"))
    lines.sort(key=lambda x: x[0])
    return lines


def _isna(v: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(v))
