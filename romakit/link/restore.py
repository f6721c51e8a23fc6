"""LINK's part of undo: the record a deletion keeps of each device, and the re-creation
of a device from it.

- :func:`record` is what a snapshot keeps of a LINK ``Device`` (an allow-list of its
  fields; never ``authentication``, its password, or the staff names);
  :func:`reader` reads a chunk's records (ShowDevice, ``concurrency`` at a time) just
  before its deletion is sent, or, for a deletion big against the fleet, the whole
  listing once at its first chunk.
- :func:`sender` re-creates one device per request (CreateDevice, as the official SDK's
  ``CreateDeviceRequestBody``: ``product.product_id``, ``device_name``, ``node_id``,
  ``app_id``, ``parent_device_id``, ``status``, ``description``, ``tags``). LINK gives it a
  new id, client id and secret: the field device needs its credentials set again. A
  child whose gateway was deleted in the same operation waits for the gateway's own
  re-creation and goes under its new id. A second try first looks the node id up: a
  device its lost first try created is not created twice.
- :func:`present` reads which recorded devices are listed already (by node id): the
  restore's reconcile, so that a device already back is never sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from romakit.engine import Answer, SendChunk
from romakit.errors import ApiError, InputError
from romakit.reconcile import NOT_FOUND, SHOW_AT_MOST
from romakit.wire import LINK_PAGE_LIMIT as PAGE_LIMIT

if TYPE_CHECKING:  # pragma: no cover
    from romakit.link.client import AsyncLinkClient

#: a LINK Device's fields a snapshot keeps (the product's are flattened beside them)
KEEP = ("id", "device_name", "client_id", "node_id", "node_type", "device_type", "status", "online_status",
        "parent_device_id", "parent_device_name", "app_id", "app_name", "tags", "description", "created_datetime",
        "last_login_datetime", "keep_alive", "version")
PRODUCT = ("product_id", "product_name", "manufacturer_id", "model", "protocol_type", "product_type")
#: seconds a child waits for its gateway's re-creation in the same restore
PARENT_WAIT = 120.0
#: a deletion's snapshot reads the whole listing once when its devices outnumber the
#: listing's pages this many times to one (a page of 999 costs a few single reads)
LISTING_WORTH = 5
_encode = msgspec.json.Encoder().encode


def record(dev: Mapping[str, Any]) -> dict[str, Any]:
    """What a snapshot keeps of a LINK device (``kind: "link"``; ``device_id`` its id as text)."""
    raw = dev.get("product")
    product: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    out: dict[str, Any] = {"kind": "link", "device_id": str(dev.get("id"))}
    out.update({k: dev.get(k) for k in KEEP})
    out.update({k: product.get(k) for k in PRODUCT})
    out["tags"] = [str(t) for t in (dev.get("tags") or [])]
    return out


def reader(client: AsyncLinkClient, planned: int) -> Callable[[list], Awaitable[dict[int, dict[str, Any]]]]:
    """The snapshot reader of one deletion of ``planned`` devices by ``client``: each
    chunk's records read one by one (ShowDevice, ``concurrency`` at a time) just before it
    is sent, unless the run's devices outnumber the listing's pages :data:`LISTING_WORTH`
    to one: then the whole listing is read once, at the first chunk (pages in parallel),
    and only a device it misses is read alone. An id LINK says does not exist is left
    out (already gone)."""
    listed: dict[int, dict[str, Any]] = {}
    decided = asyncio.Event()
    once = asyncio.Lock()

    async def read(ids: list) -> dict[int, dict[str, Any]]:
        async with once:
            if not decided.is_set():
                if planned > SHOW_AT_MOST:  # worth asking how big the listing is
                    total = int((await client.device_page(0, 1)).get("total") or 0)
                    if planned > LISTING_WORTH * -(-total // PAGE_LIMIT):
                        listed.update(await _listing(client, total))
                decided.set()
        got = {i: listed[i] for i in ids if i in listed}
        got.update(await _shown(client, [i for i in ids if i not in got]))
        return got

    return read


async def _shown(client: AsyncLinkClient, ids: list) -> dict[int, dict[str, Any]]:
    """The records of ``ids``, one ShowDevice each (``concurrency`` at a time); gone ones left out."""
    sem = asyncio.Semaphore(max(client.concurrency, 1))

    async def one(i: int) -> tuple[int, dict[str, Any] | None]:
        async with sem:
            try:
                return i, record(await client.device(i))
            except ApiError as e:
                if e.status == 404 or e.error_code == NOT_FOUND:
                    return i, None
                raise

    got = await asyncio.gather(*(one(i) for i in ids))
    return {i: r for i, r in got if r is not None}


async def _listing(client: AsyncLinkClient, total: int) -> dict[int, dict[str, Any]]:
    """Every listed device's record, from ListDevices pages read ``concurrency`` at a time
    (a device the pages miss while the fleet changes is read alone afterwards)."""
    sem = asyncio.Semaphore(max(client.concurrency, 1))

    async def page(offset: int) -> list:
        async with sem:
            return list((await client.device_page(offset, PAGE_LIMIT)).get("items") or [])

    pages = await asyncio.gather(*(page(k) for k in range(0, total, PAGE_LIMIT)))
    return {int(d["id"]): record(d) for items in pages for d in items if isinstance(d, Mapping) and d.get("id")}


def body(rec: Mapping[str, Any], parent: int | None) -> dict[str, Any]:
    """The CreateDevice body that re-creates ``rec`` (under gateway ``parent``, or none)."""
    out: dict[str, Any] = {"device_name": rec["device_name"], "node_id": rec["node_id"],
                           "product": {"product_id": int(rec["product_id"])}, "status": int(rec.get("status") or 0),
                           "description": rec.get("description") or "", "tags": list(rec.get("tags") or [])}
    if rec.get("app_id"):
        out["app_id"] = rec["app_id"]
    if parent is not None:
        out["parent_device_id"] = int(parent)
    return out


def checked(ids: Sequence[int], snapshot: Mapping[Any, Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """The LINK records of ``ids`` from ``snapshot`` (keyed by id or its text), gateways
    first; InputError, before anything is sent, naming ids it has no usable record of."""
    out: dict[int, dict[str, Any]] = {}
    bad: list[str] = []
    for i in ids:
        rec = snapshot.get(str(i), snapshot.get(i))
        if not isinstance(rec, Mapping) or rec.get("kind") != "link" or not rec.get("node_id") \
                or not rec.get("device_name") or rec.get("product_id") is None:
            bad.append(str(i))
        else:
            out[i] = dict(rec)
    if bad:
        raise InputError(f"no LINK snapshot record of {len(bad)} device(s): {', '.join(bad[:10])}; nothing sent")
    return dict(sorted(out.items(), key=lambda kv: kv[1].get("node_type") != 1))  # gateways first


async def node_ids(client: AsyncLinkClient, nodes: Sequence[str]) -> dict[str, int]:
    """``{node_id: id}`` of the ``nodes`` LINK lists now: each looked up alone
    (ListDevices ``node_id=``) up to :data:`~romakit.reconcile.SHOW_AT_MOST`, else one listing."""
    wanted = set(nodes)
    if len(wanted) > SHOW_AT_MOST:
        fleet = await client.devices()
        return {str(n): int(i) for n, i in zip(fleet["node_id"], fleet["id"], strict=True) if str(n) in wanted}
    sem = asyncio.Semaphore(max(client.concurrency, 1))

    async def one(node: str) -> tuple[str, int | None]:
        async with sem:
            page = await client.device_page(0, 1, node_id=node)
            items = [d for d in page.get("items") or [] if isinstance(d, Mapping) and d.get("node_id") == node]
            return node, (int(items[0]["id"]) if items else None)

    found = await asyncio.gather(*(one(n) for n in wanted))
    return {n: i for n, i in found if i is not None}


def present(client: AsyncLinkClient, records: Mapping[int, Mapping[str, Any]]
            ) -> Callable[[Sequence[Hashable]], Awaitable[set]]:
    """The restore's reconcile: the ids whose recorded node id LINK lists already."""

    async def read(ids: Sequence[Hashable]) -> set:
        listed = await node_ids(client, [str(records[i]["node_id"]) for i in ids])  # type: ignore[index]
        return {i for i in ids if str(records[i]["node_id"]) in listed}  # type: ignore[index]

    return read


class _Parents:
    """Where each re-created child goes: its recorded gateway's id, or, when that gateway
    was deleted too and is being re-created in this run, its new id once it exists."""

    def __init__(self, client: AsyncLinkClient, records: Mapping[int, Mapping[str, Any]]) -> None:
        self.client, self.records = client, records
        self.made: dict[int, asyncio.Event] = {i: asyncio.Event() for i, r in records.items() if r.get("node_type") == 1}

    async def of(self, rec: Mapping[str, Any]) -> int | None:
        pid = rec.get("parent_device_id")
        if pid is None:
            return None
        pid = int(pid)
        gw = self.records.get(pid)
        if gw is None:
            return pid  # not deleted by this operation: still there (else LINK says so)
        if pid in self.made:
            await asyncio.wait_for(self.made[pid].wait(), PARENT_WAIT)
        new = (await node_ids(self.client, [str(gw["node_id"])])).get(str(gw["node_id"]))
        if new is None:
            raise InputError(f"its gateway {gw['device_name']} (node {gw['node_id']}) is not back: restore it too")
        return new

    def done(self, old: int) -> None:
        if old in self.made:
            self.made[old].set()


def sender(client: AsyncLinkClient, records: Mapping[int, Mapping[str, Any]]) -> SendChunk:
    """The send of a LINK restore: one CreateDevice per chunk (of one device)."""
    parents = _Parents(client, records)

    async def send(chunk: list, no: int, attempt: int) -> Answer:
        (old,) = chunk
        rec = records[old]
        over = True  # its children may go on: it is back, or no try of it is left
        try:
            if attempt > 1:  # the first try may have created it, its answer lost
                made = (await node_ids(client, [str(rec["node_id"])])).get(str(rec["node_id"]))
                if made is not None:
                    return Answer(success=[(old, rec["device_name"])])
            try:
                parent = await parents.of(rec)
            except (InputError, TimeoutError) as e:
                return Answer(failed=[(old, rec["device_name"], "romakit.ParentNotRestored", str(e)[:200])])
            try:
                resp = await client._call("POST", "/devices", {"content": _encode(body(rec, parent))})
            except ApiError as e:
                over = not e.retryable or attempt >= client.retry.attempts
                raise
            except Exception:
                over = attempt >= client.retry.attempts
                raise
            dev = client._json(resp)
            name = dev.get("device_name") if isinstance(dev, Mapping) else None
            return Answer(success=[(old, name or rec["device_name"])], request_id=resp.headers.get("X-Request-Id"),
                          http_status=resp.status_code)
        finally:
            if over:
                parents.done(old)

    return send


__all__ = ["KEEP", "PRODUCT", "body", "checked", "node_ids", "present", "reader", "record", "sender"]
