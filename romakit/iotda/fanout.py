"""Child deletion across many gateways in one run: ``rk.delete_children(ids, ...)``.

Each child's gateway comes from the fleet (``parents``: LINK's ``devices()`` frame,
whose ``parent_device_id`` names the gateway's LINK id and ``client_id`` its IoTDA id; a
frame with a ``gateway_id`` column, as an IoTDA inventory gives; or a plain mapping
child -> gateway). One MQTT session per gateway, all open at once; each gateway keeps
its own pace (IoTDA allows a device 50 upstream messages/s) and its own window of
requests in flight, so the run goes as fast as the gateways together allow.

It is ONE batch run of the shared engine: one op_id, one journal entry, one rollout
policy (canary, caps, abort criteria) over all gateways, one :class:`BatchResult`
whose ``target`` column says which gateway each child went through. Chunks hold the
children of one gateway (at most 50); the engine sees them interleaved across
gateways, so every gateway has work from the start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

from romakit import _runner
from romakit.batch import run_operation
from romakit.engine import Answer, BatchKwargs, SendChunk
from romakit.engine.client import Ids
from romakit.engine.limit import Slots, held
from romakit.engine.plan import plan
from romakit.errors import InputError
from romakit.ids import iotda_ids
from romakit.iotda import checks, chunks, restore
from romakit.iotda.gateway import MQTT_RETRY, AsyncGateway, Gateway
from romakit.operations import GATEWAY
from romakit.reconcile import gone, settle

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.results import BatchResult

#: what ``gateways=`` may be: a factory ``gateway_id -> Gateway`` (e.g. ``sb.gateway``) or a mapping
Gateways = Callable[[str], Gateway | AsyncGateway] | Mapping[str, Gateway | AsyncGateway]


def parents_of(children: list[str], parents: Any) -> dict[str, str]:
    """child IoTDA id -> its gateway's IoTDA id, from a fleet frame or a mapping.

    Refuses, naming them, children whose gateway is not known.
    """
    import pandas as pd

    if isinstance(parents, pd.DataFrame):
        f = parents
        if "gateway_id" in f.columns:  # an IoTDA inventory: the gateway's IoTDA id itself
            ref = dict(zip(f["client_id" if "client_id" in f.columns else "device_id"].astype(str),
                           f["gateway_id"], strict=True))
        elif {"client_id", "parent_device_id", "id"} <= set(f.columns):  # LINK's devices()
            cid_of = dict(zip(f["id"].astype("Int64"), f["client_id"].astype(str), strict=True))
            ref = {c: cid_of.get(p) for c, p in zip(f["client_id"].astype(str), f["parent_device_id"], strict=True)
                   if not pd.isna(p)}
        else:
            raise InputError("parents must be a devices() frame (client_id, parent_device_id, id), a frame "
                             "with client_id and gateway_id, or a mapping child -> gateway")
    elif isinstance(parents, Mapping):
        ref = {str(k): v for k, v in parents.items()}
    else:
        raise InputError(f"parents must be a DataFrame or a mapping, got {type(parents).__name__}")
    out, unknown = {}, []
    for c in children:
        g = ref.get(c)
        if g is None or (isinstance(g, float) and g != g):
            unknown.append(c)
        else:
            out[c] = str(g)
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise InputError(f"no gateway known for {len(unknown)} child(ren): {', '.join(unknown[:10])}{more}")
    return out


class _FanOut:
    """The gateways of one run (a :class:`~romakit.engine.client.BatchClient` of its own):
    their sessions and windows, and the send. Each message keeps its gateway's pace
    (``AsyncGateway.request``); the fan-out adds a window of ``max_in_flight`` per gateway."""

    kind = GATEWAY

    def __init__(self, gateways: dict[str, AsyncGateway], parent: Mapping[str, str], timeout: float | None,
                 make: Callable[[AsyncGateway], SendChunk] | None = None) -> None:
        self.gateways = gateways
        self.parent = parent
        self.timeout = timeout
        self.windows = {g: Slots(gw.max_in_flight) for g, gw in gateways.items()}
        #: each gateway's send of one chunk (a deletion's unless told), and its snapshot reader
        self.sends = {g: (make or (lambda gw: chunks.delete(gw.request, timeout)))(gw) for g, gw in gateways.items()}
        self.readers = {g: restore.reader(gw) for g, gw in gateways.items()}

    @property
    def target(self) -> str:
        return f"{len(self.gateways)} gateways"

    def identity(self) -> dict[str, Any]:
        ids = sorted(self.gateways)
        hosts = sorted({f"{gw.host}:{gw.port}" for gw in self.gateways.values()})
        return {"kind": GATEWAY, "target": self.target, "gateways": ids, "brokers": hosts}

    async def gone(self, kids: Sequence[Hashable]) -> set:
        """The children already gone, each read from its own gateway (:mod:`romakit.reconcile`)."""
        done = await asyncio.gather(*(gone(self.gateways[g], cs) for g, cs in self.by_gateway(kids).items()))
        return set().union(*done)

    def back(self, records: Mapping[str, Mapping[str, Any]]) -> Callable[[Sequence[Hashable]], Any]:
        """The children already back (a restore's reconcile), each read from its own gateway."""

        async def read(kids: Sequence[Hashable]) -> set:
            found = await asyncio.gather(*(restore.present(self.gateways[g], records)(cs)
                                           for g, cs in self.by_gateway(kids).items()))
            return set().union(*found)

        return read

    def by_gateway(self, kids: Sequence[Hashable]) -> dict[str, list[str]]:
        by_gw: dict[str, list[str]] = {}
        for c in kids:
            by_gw.setdefault(self.parent[str(c)], []).append(str(c))
        return by_gw

    async def records(self, kids: list) -> dict[str, dict[str, Any]]:
        """A chunk's snapshot records, each child read through its own gateway."""
        got = await asyncio.gather(*(self.readers[g](cs) for g, cs in self.by_gateway(kids).items()))
        return {k: v for part in got for k, v in part.items()}

    async def one(self, gw_id: str, ids: list[str]) -> Answer:
        async with held(self.windows[gw_id]):
            return await self.sends[gw_id](ids, 0, 0)

    async def send(self, ids: list, no: int, attempt: int) -> Answer:
        parts: dict[str, list[str]] = {}
        for c in ids:
            parts.setdefault(self.parent[c], []).append(c)
        if len(parts) == 1:
            ((g, kids),) = parts.items()
            return await self.one(g, kids)
        answers = await asyncio.gather(*(self.one(g, kids) for g, kids in parts.items()), return_exceptions=True)
        for ans in answers:
            if isinstance(ans, BaseException):
                raise ans  # the engine makes it the chunk's outcome (and retries per policy)
        got = [a for a in answers if isinstance(a, Answer)]
        return Answer(success=[s for a in got for s in a.success], failed=[f for a in got for f in a.failed],
                      event_id=",".join(a.event_id or "" for a in got))


def _async_gateway(g: object) -> AsyncGateway:
    if isinstance(g, Gateway):
        return g.aio
    if isinstance(g, AsyncGateway):
        return g
    raise InputError(f"gateways must give romakit Gateway objects, got {type(g).__name__}")


async def adelete_children(ids: Ids, *, parents: Any, gateways: Gateways, keep_snapshot: bool = True,
                           **options: Unpack[BatchKwargs]) -> BatchResult:
    """Async twin of :func:`delete_children`."""
    from romakit.results.schema import categorical

    kids = iotda_ids(ids)
    opts = checks.batch_options("delete_sub_devices", options)
    size = opts.chunk_size or 50
    parent = parents_of(kids, parents)
    gw_ids = sorted(set(parent.values()))
    get = gateways.__getitem__ if isinstance(gateways, Mapping) else gateways
    sessions = {g: _async_gateway(get(g)) for g in gw_ids}
    opened = [gw for gw in sessions.values() if not gw.session.is_open]
    try:  # a gateway that cannot log in stops the run before anything is sent; the others are closed
        logins = await asyncio.gather(*(gw.connect() for gw in opened), return_exceptions=True)
        refused = [e for e in logins if isinstance(e, BaseException)]
        if refused:  # every login is over (none left connecting behind our back): close and say why
            raise refused[0]
        fan = _FanOut(sessions, parent, opts.timeout)
        # what is already gone first, read gateway by gateway: the plan orders only what is left
        opts = await settle(fan, "delete_sub_devices", kids, opts, read=fan.gone)
        per_gw = min(gw.max_in_flight for gw in sessions.values())
        opts = opts.merged(chunk_size=size, concurrency=per_gw * len(sessions), retry=MQTT_RETRY)
        planned = plan("delete_sub_devices", kids, opts, parents=parent)  # what a dry run showed
        res = await run_operation(fan, "delete_sub_devices", [*planned.settled, *planned.ids], fan.send, opts,
                                  journal=sessions[gw_ids[0]].journal,  # the first gateway's journal
                                  snapshot=fan.records if keep_snapshot is not False else None)
    finally:
        await asyncio.gather(*(gw.close() for gw in opened), return_exceptions=True)
    res.frame["target"] = categorical(res.frame["device_id"].astype(str).map(parent).to_numpy(dtype=object))
    return res


async def arestore_children(ids: Ids, *, snapshot: Mapping[str, Mapping[str, Any]], gateways: Gateways,
                            **options: Unpack[BatchKwargs]) -> BatchResult:
    """Async twin of :func:`restore_children`."""
    from romakit.results.schema import categorical

    kids = iotda_ids(ids)
    records = restore.checked(kids, snapshot)
    parent = {k: str(r["gateway_id"]) for k, r in records.items()}
    opts = checks.batch_options("restore_sub_devices", options).merged(
        names={k: str(r["name"]) for k, r in records.items() if r.get("name")})
    size = opts.chunk_size or 50
    gw_ids = sorted(set(parent.values()))
    get = gateways.__getitem__ if isinstance(gateways, Mapping) else gateways
    sessions = {g: _async_gateway(get(g)) for g in gw_ids}
    opened = [gw for gw in sessions.values() if not gw.session.is_open]
    try:
        logins = await asyncio.gather(*(gw.connect() for gw in opened), return_exceptions=True)
        refused = [e for e in logins if isinstance(e, BaseException)]
        if refused:
            raise refused[0]
        fan = _FanOut(sessions, parent, opts.timeout, make=lambda gw: restore.sender(gw.request, records, opts.timeout))
        opts = await settle(fan, "restore_sub_devices", kids, opts, read=fan.back(records))
        per_gw = min(gw.max_in_flight for gw in sessions.values())
        opts = opts.merged(chunk_size=size, concurrency=per_gw * len(sessions), retry=MQTT_RETRY)
        planned = plan("restore_sub_devices", kids, opts, parents=parent)
        res = await run_operation(fan, "restore_sub_devices", [*planned.settled, *planned.ids], fan.send, opts,
                                  journal=sessions[gw_ids[0]].journal)
    finally:
        await asyncio.gather(*(gw.close() for gw in opened), return_exceptions=True)
    res.frame["target"] = categorical(res.frame["device_id"].astype(str).map(parent).to_numpy(dtype=object))
    res.inputs = records
    return res


def restore_children(ids: Ids, *, snapshot: Mapping[str, Mapping[str, Any]], gateways: Gateways,
                     **options: Unpack[BatchKwargs]) -> BatchResult:
    """Re-add deleted children across their gateways in one run, each through the gateway
    its ``snapshot`` record names (``rk.restore`` reads it from the deletion's journal);
    one row per child. ``gateways`` as for :func:`delete_children`; children listed under
    their gateway already are not added again."""
    return _runner.run(arestore_children(ids, snapshot=snapshot, gateways=gateways, **options))


def delete_children(ids: Ids, *, parents: Any, gateways: Gateways, keep_snapshot: bool = True,
                    **options: Unpack[BatchKwargs]) -> BatchResult:
    """Delete child devices across their gateways in one run; one row per child.

    ``parents`` says each child's gateway (``link.devices()``, an IoTDA inventory frame
    with ``gateway_id``, or a mapping); ``gateways`` gives a :class:`~romakit.Gateway`
    per gateway id (``sb.gateway`` in the sandbox, or a mapping of your own, each with
    its secret). Sessions not yet open are opened together and closed at the end. The
    batch options (``chunk_size`` <= 50, ``timeout``, ``rollout``, ``progress``, ``cancel``
    ...) apply to the whole run; ``concurrency`` defaults to every gateway's window.
    Each chunk's children are read through their gateway just before it is sent and kept
    in the journal for ``rk.restore`` (``keep_snapshot=False``: not read, not restorable).
    """
    return _runner.run(adelete_children(ids, parents=parents, gateways=gateways, keep_snapshot=keep_snapshot,
                                        **options))


def children_frame(fleet: pd.DataFrame) -> pd.DataFrame:
    """The child devices of a LINK fleet frame (those with a gateway)."""
    return fleet[fleet["parent_device_id"].notna()]


class GatewayGroup:
    """Many gateways as one client of child deletion: what the console's *All gateways*
    tab, ``res.retry(group)`` and ``rk.resume(op, group)`` act on. ``delete_sub_devices``
    is :func:`delete_children` over these gateways; ``target`` reads like a fan-out
    result's (``"3 gateways"``), and :meth:`subset` gives the group a result ran on."""

    kind = GATEWAY

    def __init__(self, gateways: Mapping[str, Gateway | AsyncGateway], parents: Any) -> None:
        if not gateways:
            raise InputError("a GatewayGroup needs at least one gateway")
        self.gateways = dict(gateways)
        self.parents = parents

    @property
    def target(self) -> str:
        return f"{len(self.gateways)} gateways"

    @property
    def closed(self) -> bool:
        """True once any of its gateways was closed for good."""
        return any(getattr(gw, "closed", False) is True for gw in self.gateways.values())

    def identity(self) -> dict[str, Any]:
        return _FanOut({g: _async_gateway(gw) for g, gw in self.gateways.items()}, {}, None).identity()

    def subset(self, gateway_ids: Ids) -> GatewayGroup:
        """The group of ``gateway_ids`` (all of them held here), with the same parents."""
        ids = sorted({str(g) for g in gateway_ids})
        missing = [g for g in ids if g not in self.gateways]
        if missing:
            raise InputError(f"this group does not hold gateway(s) {', '.join(missing[:10])}")
        return GatewayGroup({g: self.gateways[g] for g in ids}, self.parents)

    def delete_sub_devices(self, ids: Ids, *, keep_snapshot: bool = True, **options: Unpack[BatchKwargs]) -> BatchResult:
        """Delete children of these gateways, each through its own (:func:`delete_children`)."""
        return delete_children(ids, parents=self.parents, gateways=self.gateways, keep_snapshot=keep_snapshot,
                               **options)

    def restore_sub_devices(self, ids: Ids, *, snapshot: Mapping[str, Mapping[str, Any]],
                            **options: Unpack[BatchKwargs]) -> BatchResult:
        """Re-add deleted children, each through its recorded gateway (:func:`restore_children`)."""
        return restore_children(ids, snapshot=snapshot, gateways=self.gateways, **options)

    def __repr__(self) -> str:
        return f"<GatewayGroup of {self.target}: {', '.join(list(self.gateways)[:5])}{' ...' if len(self.gateways) > 5 else ''}>"
