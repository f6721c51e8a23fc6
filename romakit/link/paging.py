"""Reading every page of ListDevices, checked against the ``total`` the pages report.

Offset paging over a fleet that changes while it is read can skip devices (a device
deleted before the offset shifts the rest under the reader) or count one twice; the
answer's ``total`` tells. :func:`checked_read` reads every page, keeps each device once,
and reads the whole list again when the rows disagree with the totals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("romakit.link")
#: how often the whole list is read again when it disagrees with the reported total
REREADS = 2


async def read_pass(page: Callable[[int], Awaitable[dict]], limit: int, concurrency: int) -> tuple[list[dict], set[int]]:
    """One read of every page (``page(offset)``): the devices, each once, and the totals reported."""
    first = await page(0)
    totals = {first["total"]}
    items = list(first.get("items") or [])
    sem = asyncio.Semaphore(concurrency)

    async def one(off: int) -> dict:
        async with sem:
            return await page(off)

    for p in await asyncio.gather(*(one(o) for o in range(limit, first["total"], limit))):
        totals.add(p["total"])
        items.extend(p.get("items") or [])
    seen: set = set()
    unique = []
    for d in items:  # the fleet may change between pages: keep each device once
        key = d.get("id", d.get("device_id"))
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique, totals


async def checked_read(page: Callable[[int], Awaitable[dict]], limit: int, concurrency: int) -> tuple[list[dict], dict[str, Any]]:
    """``(devices, attrs)``: the last read, and ``{"romakit_total_mismatch": ...}`` when even
    after :data:`REREADS` more reads the rows disagree with the totals (a warning says so)."""
    reads = 0
    while True:
        reads += 1
        unique, totals = await read_pass(page, limit, concurrency)
        if totals == {len(unique)} or reads > REREADS:
            break
        log.info("devices(): read %d devices, pages reported total(s) %s; reading again", len(unique), sorted(totals))
    if totals == {len(unique)}:
        return unique, {}
    log.warning("devices(): the fleet changed while it was read: %d devices read, the service reported total(s) %s "
                "after %d reads; some devices may be missing or gone", len(unique), sorted(totals), reads)
    return unique, {"romakit_total_mismatch": {"read": len(unique), "totals": sorted(totals)}}
