"""Undo where the platform allows: ``rk.restore(op_id, client)`` re-creates what a
deletion removed, from the snapshot the deletion kept in the journal.

Every deletion (``link.delete_devices``, ``gw.delete_sub_devices``, ``rk.delete_children``)
reads the record of each device of a chunk just before sending it and keeps it with the
operation (:mod:`romakit.store.snapshot`). A restore is a batch operation like any
other (``restore_devices`` over LINK, ``restore_sub_devices`` through the gateways): one
op id linked to the deletion (relation ``restore``), the rollout, the journal, one row
per deleted id, ``verify()`` (listed again with the recorded attributes), a read before
anything is created (a device already back is not created twice; a second restore
creates nothing), ``rk.resume`` after an interruption.

- IoTDA children come back through their own gateway with their own device id, node
  id, product, name, description and extension info: for the customer, the same device.
- LINK devices come back with their product, name, node id, parent, tags and
  description, but LINK gives them a new id, client id and secret: each field device
  needs its secret reset (the preview of the deletion says so before it runs).
- Never restored: a device's data history, shadow, messages, or a LINK secret.

:func:`restoration` says what a restore would send (the CLI's ``romakit restore OP
--dry-run`` and the *Restore* button's preview show it); :func:`restore` sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from romakit.engine.options import BatchOptions
from romakit.engine.plan import BatchPlan, plan
from romakit.errors import InputError
from romakit.operations import GATEWAY, RESTORES, check_client, client_kind, operation
from romakit.outcomes import SUCCESS, UNKNOWN
from romakit.store import reader as rd
from romakit.store.chain import net_state
from romakit.store.journal import Journal
from romakit.store.snapshot import of_deletion

if TYPE_CHECKING:  # pragma: no cover
    from romakit.store.reader import OperationRecord

#: the batch options a restore takes (the other keywords filter the records)
OPTIONS = frozenset(f.name for f in fields(BatchOptions))


@dataclass
class Restoration:
    """What restoring a deletion sends: ``ids`` (the deleted ids to re-create, in order),
    their ``records``, the ``operation`` that re-creates them, and for children across
    several gateways each one's gateway (``parents``). ``left_out`` says, by id, why a
    requested or deleted device is not restored."""

    deletion: OperationRecord
    operation: str
    ids: list
    records: dict[str, dict[str, Any]]
    parents: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The records of :attr:`ids`, as the client's restore method takes them."""
        return {str(i): self.records[str(i)] for i in self.ids}

    @property
    def gateways(self) -> list[str]:
        """The gateways the children go through (empty for LINK)."""
        return sorted({str(r["gateway_id"]) for r in self.snapshot.values() if r.get("gateway_id")})

    def plan(self, options: BatchOptions | None = None, *, journaled: bool = True) -> BatchPlan:
        """The engine's plan of this restore (what a preview shows, what runs)."""
        return plan(self.operation, self.ids, options, parents=self.parents or None, journaled=journaled)

    def frame(self) -> Any:
        """The records to restore as a DataFrame (``device_id`` first)."""
        from romakit.store.snapshot import frame

        return frame(self.records, [str(i) for i in self.ids])

    def __repr__(self) -> str:
        left = f", {len(self.left_out)} left out" if self.left_out else ""
        return (f"<Restoration of {self.deletion.operation} {self.deletion.op_id}: {self.operation} of "
                f"{len(self.ids)} devices{left}>")


def _selected(rec: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    for k, want in filters.items():
        values = {str(v) for v in want} if isinstance(want, Iterable) and not isinstance(want, str) else {str(want)}
        if str(rec.get(k)) not in values:
            return False
    return True


def restoration(op_id: str, *, ids: Iterable[Any] | None = None, journal: Any = None,
                **filters: Any) -> Restoration:
    """What restoring deletion ``op_id`` (a unique prefix will do) sends: the devices its
    chain (retries, resumes) deleted or may have (``success``, ``unknown``), that have a
    snapshot record, narrowed to ``ids`` and to the records matching ``filters``
    (``product_id=``, ``gateway_id=``, ``node_type=``, ...: a value or a list). Reads the
    journal ``journal`` (default: the one in effect); sends nothing."""
    store = Journal.of(journal).resolved()
    with rd.existing(op_id, store.where) as db:
        op = rd.load(db, op_id)
        rec = rd.record_of(op)
        if rec.operation not in RESTORES:
            raise InputError(f"operation {rec.op_id} is a {rec.operation}: only deletions are restored "
                             f"({', '.join(RESTORES)})")
        state = net_state(db, rec.op_id).frame
        records = of_deletion(db, rec.op_id)
    outcome = dict(zip(state["device_id"].astype(str), state["outcome"].astype(str), strict=True))
    known = {k for r in records.values() for k in r}
    unknown = sorted(set(filters) - known)
    if unknown:
        raise InputError(f"unknown option or record field(s) {', '.join(unknown)}; batch options: "
                         f"{', '.join(sorted(OPTIONS))}; record fields: {', '.join(sorted(known)) or 'none'}")
    wanted = [str(i) for i in ids] if ids is not None else list(outcome)
    left: dict[str, str] = {}
    chosen: list[str] = []
    for i in dict.fromkeys(wanted):
        if i not in outcome:
            left[i] = f"not a device of operation {rec.op_id}"
        elif outcome[i] not in (SUCCESS, UNKNOWN):
            left[i] = f"not deleted by it ({outcome[i]})"
        elif i not in records:
            left[i] = "no snapshot record (deleted without a journal, or by a romakit before snapshots)"
        elif _selected(records[i], filters):
            chosen.append(i)
    name = RESTORES[rec.operation]
    typed: list = [int(i) for i in chosen] if operation(name).int_ids else chosen
    parents = {i: str(records[i]["gateway_id"]) for i in chosen} if operation(name).kind == GATEWAY else {}
    if len(set(parents.values())) < 2 and not (rec.client or {}).get("gateways"):
        parents = {}  # one gateway carries them all
    return Restoration(rec, name, typed, {i: records[i] for i in chosen}, parents, left)


def journal_of(client: Any) -> Journal:
    """Where ``client``'s operations are journaled (a group of gateways: its first one's)."""
    found = getattr(client, "journal", None)
    if found is None and isinstance(getattr(client, "gateways", None), Mapping) and client.gateways:
        found = getattr(next(iter(client.gateways.values())), "journal", None)
    return Journal.of(found)


def check_restorer(client: Any, rest: Restoration) -> None:
    """InputError unless ``client`` can carry ``rest``: a LinkClient for the deletion's
    instance; for children, the gateway they were under, or a group holding each of
    their gateways."""
    if rest.operation == "restore_devices":
        check_client(client, rest.operation, rest.deletion.target, rest.deletion.client)
        return
    if client_kind(client) != GATEWAY:
        raise InputError(f"{rest.operation} runs over gateway MQTT: pass a Gateway or a GatewayGroup, "
                         f"not {type(client).__name__}")
    needed = rest.gateways
    group = getattr(client, "gateways", None)
    if isinstance(group, Mapping):
        missing = [g for g in needed if g not in group]
        if missing:
            raise InputError(f"the children were under gateway(s) {', '.join(missing[:10])}, which this group does "
                             "not hold; nothing sent")
    elif needed and needed != [str(client.target)]:
        raise InputError(f"the children were under {len(needed)} gateway(s) ({', '.join(needed[:5])}): pass a "
                         "GatewayGroup holding them, or restore one gateway's with gateway_id=...; nothing sent")


def restore(op_id: str, client: Any, /, *, ids: Iterable[Any] | None = None, **options: Any) -> Any:
    """Re-create what deletion ``op_id`` removed (see the module docstring); returns the
    restore's :class:`~romakit.BatchResult` (a coroutine with an async client).

    ``client``: a LinkClient for the LINK instance, the Gateway the children were under,
    or a :class:`~romakit.GatewayGroup` of their gateways. ``ids`` and keyword filters on
    the records (``product_id=``, ``gateway_id=``, ...) choose a subset; the other
    keywords are batch options (``rollout=``, ``chunk_size=``, ``cancel=``, ...). The
    snapshot is read from the client's journal. Devices already back are not created
    again: a second restore creates nothing."""
    filters = {k: options.pop(k) for k in list(options) if k not in OPTIONS}
    rest = restoration(op_id, ids=ids, journal=journal_of(client), **filters)
    check_restorer(client, rest)
    if not rest.ids:
        from romakit.results import BatchResult, ResultBuilder, new_op_id

        empty = ResultBuilder(rest.operation, str(client.target)).frame()
        return BatchResult(empty, operation=rest.operation, target=str(client.target), op_id=new_op_id(),
                           parent_op_id=rest.deletion.op_id, requested=0)
    return getattr(client, rest.operation)(rest.ids, snapshot=rest.snapshot, parent_op_id=rest.deletion.op_id,
                                           relation="restore", **options)


__all__ = ["OPTIONS", "Restoration", "check_restorer", "journal_of", "restoration", "restore"]
