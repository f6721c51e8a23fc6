"""The gateway's part of undo: the record a child deletion keeps of each child, and the
child's re-creation by its own gateway.

- :func:`record` is what a snapshot keeps of a child: its device id, node id, name,
  product, description, extension info and gateway, plus what the evidence shows
  (product name, status, app, versions); from IoTDA's ShowDevice or from the
  gateway's sub-device sync (``add_sub_device_notify``'s ``DeviceInfo``), an allow-list
  of fields, never ``auth_info``.
- :func:`reader` reads a chunk's records just before its deletion is sent: through the
  inventory (ShowDevice per child) when the gateway has one, else from the gateway's
  sub-device sync, read once per run (it lists every child).
- :func:`sender` re-adds a chunk of children in one ``add_sub_device_request`` with their
  recorded ``device_id``, ``node_id``, ``product_id``, ``name``, ``description``,
  ``extension_info`` and ``parent_device_id``: a child has no credentials of its own, so
  the one re-added is, for the customer, the same device.
- :func:`present` is the restore's reconcile: a child listed under the gateway already
  (its device id, or its node id) is not added again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from romakit.engine import Answer, SendChunk
from romakit.errors import ApiError, InputError
from romakit.iotda import envelope as env
from romakit.iotda.chunks import Request
from romakit.reconcile import child_pairs
from romakit.redact import scrub

if TYPE_CHECKING:  # pragma: no cover
    from romakit.iotda.gateway import AsyncGateway

#: ShowDevice reads of one chunk's snapshot at once (the inventory is synchronous: threads)
READS_AT_ONCE = 8
#: what a snapshot keeps of a child besides ``kind``, ``device_id`` and ``gateway_id``
KEEP = ("node_id", "name", "product_id", "product_name", "description", "extension_info", "status", "app_id",
        "fw_version", "sw_version", "manufacturer_id", "model")


def record(dev: Mapping[str, Any], gateway_id: str) -> dict[str, Any]:
    """What a snapshot keeps of a child, from ShowDevice or a sync's ``DeviceInfo``."""
    src = dict(dev)
    src.setdefault("name", src.get("device_name"))
    out: dict[str, Any] = {"kind": "child", "device_id": str(src.get("device_id")),
                           "gateway_id": str(src.get("gateway_id") or src.get("parent_device_id") or gateway_id)}
    out.update({k: src.get(k) for k in KEEP})
    out["product_id"] = None if out["product_id"] is None else str(out["product_id"])
    ext = out.get("extension_info")
    out["extension_info"] = scrub(dict(ext)) if isinstance(ext, Mapping) else {}
    return out


def reader(gateway: AsyncGateway) -> Callable[[list], Awaitable[dict[str, dict[str, Any]]]]:
    """The snapshot reader of ``gateway``'s children in one run (see the module docstring);
    an id not found (already gone, or not its child) is left out. Without ShowDevice (no
    inventory, or one that only lists), the gateway's whole child list is read once, for
    the run's first chunk, and again only for an id it did not hold."""
    listed: dict[str, dict[str, Any]] = {}
    once = asyncio.Lock()  # chunks in flight together read the list once

    async def read(ids: list) -> dict[str, dict[str, Any]]:
        inventory = gateway.inventory
        show = getattr(inventory, "device", None)
        wanted = {str(i) for i in ids}
        if inventory is None or show is None:
            async with once:
                if not listed or wanted - set(listed):
                    await fill(inventory)
            return {i: listed[i] for i in wanted if i in listed}
        sem = asyncio.Semaphore(READS_AT_ONCE)

        async def one(i: str) -> tuple[str, dict[str, Any] | None]:
            async with sem:
                try:
                    dev = await asyncio.to_thread(show, i)
                except ApiError as e:
                    if e.status == 404:
                        return i, None
                    raise
            gw = dev.get("gateway_id")
            return i, record(dev, gateway.device_id) if gw in (None, gateway.device_id) else None

        got = await asyncio.gather(*(one(str(i)) for i in ids))
        return {i: r for i, r in got if r is not None}

    async def fill(inventory: Any) -> None:
        if inventory is None:
            rows = await gateway.sync_sub_devices(wait=True)
        else:  # an inventory that only lists: the gateway's children, every page
            frame = await asyncio.to_thread(inventory.devices, gateway_id=gateway.device_id)
            rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        listed.update((str(r["device_id"]), record(r, gateway.device_id)) for r in rows if r.get("device_id"))

    return read


def spec(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The ``add_sub_device_request`` item that re-adds ``rec`` under its gateway."""
    out = {"node_id": rec["node_id"], "product_id": str(rec["product_id"]), "device_id": rec["device_id"],
           "name": rec.get("name"), "description": rec.get("description") or "",
           "extension_info": dict(rec.get("extension_info") or {}), "parent_device_id": rec["gateway_id"]}
    return {k: v for k, v in out.items() if v is not None}


def checked(ids: Sequence[str], snapshot: Mapping[str, Mapping[str, Any]], gateway_id: str | None = None
            ) -> dict[str, dict[str, Any]]:
    """The child records of ``ids`` from ``snapshot``; InputError, before anything is sent,
    naming ids without a usable record (or, with ``gateway_id``, under another gateway)."""
    out: dict[str, dict[str, Any]] = {}
    bad: list[str] = []
    for i in ids:
        rec = snapshot.get(str(i))
        if not isinstance(rec, Mapping) or rec.get("kind") != "child" or not rec.get("node_id") \
                or rec.get("product_id") is None or not rec.get("gateway_id"):
            bad.append(f"{i} (no child record)")
        elif gateway_id is not None and rec["gateway_id"] != gateway_id:
            bad.append(f"{i} (under gateway {rec['gateway_id']})")
        else:
            out[str(i)] = dict(rec)
    if bad:
        raise InputError(f"{len(bad)} child(ren) cannot be restored here: {', '.join(bad[:10])}; nothing sent")
    return out


def sender(request: Request, records: Mapping[str, Mapping[str, Any]], timeout: float | None) -> SendChunk:
    """The send of a child restore: a chunk of child ids as one ``add_sub_device_request``;
    the answer's devices matched back by device id, or by node id."""

    async def send(chunk: list, no: int, attempt: int) -> Answer:
        ev = await request(env.ADD_REQUEST, env.add_paras(spec(records[c]) for c in chunk), timeout=timeout)
        by_node = {str(records[c]["node_id"]): c for c in chunk}
        ok = []
        for d in ev.successful:
            key = d.get("device_id") if d.get("device_id") in records else by_node.get(str(d.get("node_id")))
            if key:
                ok.append((key, d.get("name") if isinstance(d.get("name"), str) else None))
        failed = [(f.device_id if f.device_id in records else by_node.get(str(f.node_id)), None, f.error_code,
                   f.error_msg) for f in ev.failed]
        return Answer(success=ok, failed=[f for f in failed if f[0]], event_id=ev.event_id)

    return send


def present(gateway: Any, records: Mapping[str, Mapping[str, Any]]) -> Callable[[Sequence[Hashable]], Awaitable[set]]:
    """The restore's reconcile for one gateway: the ids listed under it already (by device
    id or node id)."""

    async def read(ids: Sequence[Hashable]) -> set:
        pairs = await child_pairs(gateway)
        devs, nodes = {d for d, _ in pairs}, {n for _, n in pairs if n}
        return {i for i in ids if str(i) in devs or str(records[str(i)]["node_id"]) in nodes}

    return read


__all__ = ["KEEP", "checked", "present", "reader", "record", "sender", "spec"]
