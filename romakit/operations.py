"""Every batch operation romakit runs, one row each: the single home of their facts.

Clients, the journal, replay (retry/resume), analysis (verify) and the widgets all
read this table instead of keeping their own: which kind of client carries an
operation, what its device ids look like, what effect ``verify()`` checks, the most
devices one request may carry, and how the widgets name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from romakit import wire
from romakit.errors import InputError

#: client kinds: every client carries one as ``client.kind``
LINK, GATEWAY = "link", "gateway"


@dataclass(frozen=True)
class Operation:
    """One batch operation: what it is called, what carries it, what it does."""

    #: the client method (and the journal's operation name)
    name: str
    #: which client carries it: :data:`LINK` or :data:`GATEWAY`
    kind: str
    #: ``int`` for LINK device ids, ``str`` for IoTDA device ids (or node ids)
    id_type: type
    #: what ``BatchResult.verify`` checks per device: "offline", "gone", "restored"
    #: (listed again with its recorded attributes) or None
    expected: str | None
    #: the most devices one request may carry (the service's limit)
    max_chunk: int
    #: the chunk size used when none is given
    default_chunk: int
    #: button label in the widgets
    label: str
    #: what a preview says it will do ("{n}" and "{target}" are filled in)
    verb: str
    #: True when the effect cannot be undone (the widgets and CLI warn)
    permanent: bool = False
    #: True when the widgets offer it on picked device ids
    pickable: bool = True
    #: what the method takes: "ids" (a list of ids), "specs" (a list of dicts keyed
    #: by ``node_id``), "statuses" (``{device_id: status}``) or "snapshot" (the ids of
    #: deleted devices and ``snapshot=`` their records, which the journal keeps with the
    #: deletion: a restore); retry and resume rebuild it
    takes: str = "ids"
    #: the rollout policy (``rk.Rollout`` keywords) a run gets unless the caller passes
    #: one, or ``rollout=False`` to go without: by what can be undone
    default_rollout: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def int_ids(self) -> bool:
        return self.id_type is int


#: permanent effects: a canary (judged by the abort threshold unless a gate is given)
#: and the abort criteria; reversible ones (force-offline): the abort criteria
_GUARDED = MappingProxyType({"canary": 50})
_ABORTS: MappingProxyType[str, int] = MappingProxyType({})

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("force_offline", LINK, int, "offline", wire.LINK_MAX_IDS, 500, "Force offline",
                  "force {n} devices offline", default_rollout=_ABORTS),
        Operation("delete_devices", LINK, int, "gone", wire.LINK_MAX_IDS, 500, "Delete devices",
                  "permanently delete {n} devices from LINK instance {target}", permanent=True,
                  default_rollout=_GUARDED),
        Operation("delete_sub_devices", GATEWAY, str, "gone", wire.IOTDA_MAX_DELETE, wire.IOTDA_MAX_DELETE, "Delete child devices",
                  "permanently delete {n} child devices of gateway {target}", permanent=True,
                  default_rollout=_GUARDED),
        Operation("add_sub_devices", GATEWAY, str, None, wire.IOTDA_MAX_ADD, wire.IOTDA_MAX_ADD, "Add child devices",
                  "add {n} child devices under gateway {target}", pickable=False, takes="specs"),
        Operation("update_sub_device_status", GATEWAY, str, None, wire.IOTDA_MAX_STATUS, wire.IOTDA_MAX_STATUS, "Update child status",
                  "report the status of {n} child devices of gateway {target}", pickable=False,
                  takes="statuses"),
        # undo of the two deletions, from the snapshot the deletion kept (rk.restore)
        Operation("restore_devices", LINK, int, "restored", 1, 1, "Restore devices",
                  "re-create {n} deleted devices in LINK instance {target} from their snapshot", pickable=False,
                  takes="snapshot", default_rollout=_ABORTS),
        Operation("restore_sub_devices", GATEWAY, str, "restored", wire.IOTDA_MAX_ADD, wire.IOTDA_MAX_ADD,
                  "Restore child devices", "re-create {n} deleted child devices under gateway {target} from their "
                  "snapshot", pickable=False, takes="snapshot", default_rollout=_ABORTS),
    )
}

#: each deletion's undo: the operation that re-creates what it deleted
RESTORES = MappingProxyType({"delete_devices": "restore_devices", "delete_sub_devices": "restore_sub_devices"})


def operation(name: str) -> Operation:
    """The registry row of ``name``; refuses an operation romakit does not know."""
    try:
        return OPERATIONS[name]
    except KeyError:
        raise InputError(f"unknown operation {name!r}; romakit knows {', '.join(OPERATIONS)}") from None


def for_kind(kind: str, *, pickable: bool | None = None) -> list[Operation]:
    """The operations a client of ``kind`` carries, in registry order."""
    return [op for op in OPERATIONS.values() if op.kind == kind and (pickable is None or op.pickable == pickable)]


def int_id_operations() -> frozenset[str]:
    """Names of the operations whose device ids are LINK integers."""
    return frozenset(op.name for op in OPERATIONS.values() if op.int_ids)


def check_chunk(name: str, chunk_size: int) -> int:
    """``chunk_size`` if the operation's service takes that many per request, else InputError."""
    op = operation(name)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1 <= chunk_size <= op.max_chunk:
        raise InputError(f"chunk_size must be 1..{op.max_chunk} for {name} (the service's limit per request), got {chunk_size!r}")
    return chunk_size


def client_kind(client: object) -> str:
    """The kind a romakit client declares (``client.kind``); refuses anything else."""
    kind = getattr(client, "kind", None)
    if kind not in (LINK, GATEWAY):
        raise InputError(f"expected a LinkClient, AsyncLinkClient or Gateway, got {type(client).__name__}")
    return kind


def check_client(client: object, name: str, target: str, recorded: dict | None = None) -> Operation:
    """The registry row of ``name`` after checking that ``client`` can carry it against
    ``target`` (and, for LINK, the recorded project when there is one); InputError
    naming the mismatch otherwise. Clients declare ``kind``, ``target`` and
    ``identity()``: nothing is guessed from their methods."""
    op = operation(name)
    kind = client_kind(client)
    if kind != op.kind:
        want = "a LinkClient" if op.kind == LINK else "a Gateway"
        over = "LINK REST" if op.kind == LINK else "gateway MQTT"
        raise InputError(f"{name} runs over {over}: pass {want}, not {type(client).__name__}")
    have = str(client.target)  # type: ignore[attr-defined]
    if have != str(target):
        what = "instance" if op.kind == LINK else "gateway"
        raise InputError(f"this {name} ran on {what} {target!r}, but the client is for {what} {have!r}")
    if recorded and op.kind == LINK and recorded.get("project_id"):
        project = client.identity().get("project_id")  # type: ignore[attr-defined]
        if recorded["project_id"] != project:
            raise InputError(f"this {name} ran in project {recorded['project_id']!r}, but the client is for project {project!r}")
    return op


__all__ = ["GATEWAY", "LINK", "OPERATIONS", "RESTORES", "Operation", "check_chunk", "check_client", "client_kind", "for_kind", "operation"]
