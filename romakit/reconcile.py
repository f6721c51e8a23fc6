"""Reconcile before re-send: read what a deletion already did before sending it again
(and what a restore finds back already before it creates anything).

A deletion is not idempotent in its *outcome*: a request whose answer was lost may well
have worked, and sent again it comes back "not found" / "not a child", so the devices
it deleted would be reported ``failed``. So before a retry or a resume of a deletion
(any operation whose expected effect is ``gone``), the clients read the devices' current
state, and those already gone end ``success`` with ``settled_by == "read"``; only the
rest are sent again (the engine's ``settled=`` option).

How the state is read:

- LINK (``delete_devices``): one ``ListDevices`` listing, every page; an id not listed
  is gone.
- IoTDA gateway (``delete_sub_devices``): the IoTDA inventory (``rk.IotdaClient``, when
  the gateway was given one as ``inventory=``), else ``sub_device_sync_request``: the
  platform answers with ``add_sub_device_notify`` listing the gateway's current
  children (the sandbox answers with one notify carrying the request's ``event_id``;
  the public docs say no more). A child not listed is gone from this gateway.

When the state cannot be read, nothing is sent (:class:`ReconcileError`): a blind
re-send is exactly what this module exists to prevent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import TYPE_CHECKING, cast

from romakit.errors import ApiError, RomakitError
from romakit.operations import LINK, OPERATIONS, client_kind

if TYPE_CHECKING:  # pragma: no cover
    from romakit.engine import BatchOptions
    from romakit.engine.client import BatchClient, GatewayReader, LinkReader

log = logging.getLogger("romakit.reconcile")

#: the relations of a run that sends devices again
RESEND = frozenset({"retry", "resume"})
#: seconds to wait for the platform's answer to a sync request
SYNC_TIMEOUT = 30.0
#: up to this many LINK devices are read one by one (ShowDevice); more, by one listing
SHOW_AT_MOST = 200
#: LINK's "the resource does not exist" (ShowDevice of a deleted device)
NOT_FOUND = "ROMA.00110006"


class ReconcileError(RomakitError):
    """The devices' current state could not be read, so nothing was sent again."""


def needed(operation: str, relation: str | None) -> bool:
    """True when a run of ``operation`` with ``relation`` must read before it sends: a
    re-sent deletion, and every restore (a device already back is never created twice)."""
    op = OPERATIONS.get(operation)
    if op is not None and op.expected == "restored":
        return True
    return relation in RESEND and op is not None and op.expected == "gone"


async def gone(client: BatchClient, ids: Sequence[Hashable], *, timeout: float | None = None) -> set:
    """The ``ids`` that ``client``'s service no longer lists (LINK instance: a
    :class:`~romakit.engine.client.LinkReader`; gateway: a ``GatewayReader``)."""
    if client_kind(client) != LINK:
        kids = await children(cast("GatewayReader", client), timeout=timeout)
        return {i for i in ids if i not in kids}
    link = cast("LinkReader", client)
    if len(ids) <= SHOW_AT_MOST and inspect.iscoroutinefunction(link.device):
        return await _shown_gone(link, ids)  # a retry of a few: no need to list a whole fleet
    fleet = link.devices()
    if inspect.isawaitable(fleet):
        fleet = await fleet
    present = set(fleet["id"].astype("int64").tolist()) if len(fleet) else set()
    return {i for i in ids if i not in present}


async def _shown_gone(client: LinkReader, ids: Sequence[Hashable]) -> set:
    """The ``ids`` that LINK's ShowDevice answers "does not exist" for, read
    ``client.concurrency`` at a time; any other failure to read is a ReconcileError."""
    sem = asyncio.Semaphore(getattr(client, "concurrency", 8))

    async def one(i: Hashable) -> bool:
        async with sem:
            try:
                await client.device(i)
                return False
            except RomakitError as e:
                if isinstance(e, ApiError) and (e.status == 404 or e.error_code == NOT_FOUND):
                    return True
                raise ReconcileError(f"device {i}: could not read whether it is already gone ({e}); nothing sent") from e

    flags = await asyncio.gather(*(one(i) for i in ids))
    return {i for i, g in zip(ids, flags, strict=True) if g}


async def children(gateway: GatewayReader, *, timeout: float | None = None) -> set[str]:
    """The gateway's current children: from the IoTDA inventory when the gateway has one
    (``inventory=``), else as the platform answers its sub-device sync (waited for as
    long as the gateway waits for any answer, else :data:`SYNC_TIMEOUT`). Either way
    :class:`ReconcileError` when they cannot be read."""
    return {d for d, _ in await child_pairs(gateway, timeout=timeout)}


async def child_pairs(gateway: GatewayReader, *, timeout: float | None = None) -> list[tuple[str, str | None]]:
    """``(device_id, node_id)`` of each of the gateway's current children (see :func:`children`)."""
    try:
        if getattr(gateway, "inventory", None) is not None:
            frame = gateway.children()
            if inspect.isawaitable(frame):
                frame = await frame
            if not len(frame):
                return []
            nodes = frame["node_id"] if "node_id" in frame.columns else [None] * len(frame)
            return [(str(d), None if n is None else str(n)) for d, n in zip(frame["device_id"], nodes, strict=True)]
        timeout = timeout or getattr(gateway, "timeout", None) or SYNC_TIMEOUT
        rows = gateway.sync_sub_devices(wait=True, timeout=timeout)
        if inspect.isawaitable(rows):
            rows = await rows
    except RomakitError as e:
        raise ReconcileError(f"gateway {gateway.target}: could not read its children ({e}); nothing sent") from e
    return [(str(r["device_id"]), r.get("node_id")) for r in rows if r.get("device_id")]


async def settle(client: BatchClient, operation: str, ids: Sequence[Hashable], options: BatchOptions, *,
                 read: Callable[[Sequence[Hashable]], Awaitable[set]] | None = None) -> BatchOptions:
    """``options`` with ``settled`` filled in when this run re-sends a deletion
    (:func:`needed`); unchanged otherwise, or when the caller gave ``settled`` itself.
    ``read`` reads what is gone instead of :func:`gone` (the fan-out: gateway by gateway)."""
    if options.settled is not None or not needed(operation, options.relation):
        return options
    if read is None and OPERATIONS[operation].expected != "gone":
        raise ReconcileError(f"{operation}: no way to read what is already done was given; nothing sent")
    done = await (read(ids) if read is not None else gone(client, ids))
    log.info("%s %s: %d of %d devices already done when read; %d to send", operation, options.relation,
             len(done), len(ids), len(ids) - len(done))
    return dataclasses.replace(options, settled=frozenset(done))


__all__ = ["NOT_FOUND", "RESEND", "SHOW_AT_MOST", "SYNC_TIMEOUT", "ReconcileError", "child_pairs", "children", "gone",
           "needed", "settle"]
