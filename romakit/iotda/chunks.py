"""One chunk of each gateway batch operation: the request it sends, its answer as rows.

The batch engine is fed a "send one chunk" function (:data:`romakit.engine.SendChunk`);
these build them for the ``$sub_device_manager`` operations on top of a gateway's
``request`` coroutine. Pure translation, no MQTT: the devices an answer names become
success or failed rows, the engine ends those it does not name ``unknown``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from romakit.engine import Answer, SendChunk
from romakit.iotda import envelope as env

#: ``request(event_type, paras, timeout=...)``: one request, its matched answer
Request = Callable[..., Awaitable[env.DownEvent]]


def by_device_id(ev: env.DownEvent) -> Answer:
    """The answer of a delete or status update: devices named by ``device_id``."""
    return Answer(
        success=[(d["device_id"], None) for d in ev.successful if d.get("device_id")],
        failed=[(f.device_id, None, f.error_code, f.error_msg) for f in ev.failed if f.device_id],
        event_id=ev.event_id,
    )


def by_node_id(ev: env.DownEvent, specs: Mapping[str, Mapping[str, Any]], chunk: list[str]) -> Answer:
    """The answer of an add: devices keyed by ``node_id`` (or the ``device_id`` a spec
    asked for, when the platform names only that); named ones keep the name it gave."""
    by_dev = {specs[k]["device_id"]: k for k in chunk if specs[k].get("device_id")}
    success = []
    for d in ev.successful:
        key = d.get("node_id") or by_dev.get(d.get("device_id"))
        if key:
            success.append((key, d.get("name") if isinstance(d.get("name"), str) else None))
    failed = [(f.node_id or by_dev.get(f.device_id), None, f.error_code, f.error_msg)
              for f in ev.failed if f.node_id or by_dev.get(f.device_id)]
    return Answer(success=success, failed=failed, event_id=ev.event_id)


def delete(request: Request, timeout: float | None) -> SendChunk:
    """Send a chunk of child ids as one ``delete_sub_device_request``."""
    async def send(chunk: list, no: int, attempt: int) -> Answer:
        return by_device_id(await request(env.DELETE_REQUEST, env.delete_paras(chunk), timeout=timeout))

    return send


def add(request: Request, specs: Mapping[str, Mapping[str, Any]], timeout: float | None) -> SendChunk:
    """Send a chunk of node ids (their ``specs``) as one ``add_sub_device_request``."""
    async def send(chunk: list, no: int, attempt: int) -> Answer:
        ev = await request(env.ADD_REQUEST, env.add_paras(specs[k] for k in chunk), timeout=timeout)
        return by_node_id(ev, specs, chunk)

    return send


def status(request: Request, wanted: Mapping[str, str], timeout: float | None) -> SendChunk:
    """Send a chunk of child ids (their ``wanted`` status) as one ``sub_device_update_status``."""
    async def send(chunk: list, no: int, attempt: int) -> Answer:
        paras = env.status_paras((k, wanted[k]) for k in chunk)
        return by_device_id(await request(env.STATUS_REQUEST, paras, timeout=timeout))

    return send


__all__ = ["Request", "add", "by_device_id", "by_node_id", "delete", "status"]
