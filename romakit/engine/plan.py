"""What a batch run will send, computed once: :func:`plan`.

A :class:`BatchPlan` holds the chunks exactly as the engine cuts them (the canary's
first, then the rest; :func:`cut` is the engine's own cutter), the rollout policy in
force, the most devices that can be hit before the first stop can act, and for a
fan-out (``parents``: child -> gateway) the order the children go in and how they
split over the gateways. The CLI's ``--dry-run`` and the panel's preview show a plan;
a fan-out hands the engine the plan's order, so what is shown is what runs.

Under a rollout policy the engine may carry a planned chunk in several smaller
requests while its window opens (:mod:`romakit.engine.window`); a request never
crosses a planned chunk's boundary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from romakit.engine.options import BatchOptions
from romakit.engine.rollout import Rollout, resolve
from romakit.errors import InputError
from romakit.operations import check_chunk
from romakit.operations import operation as registry_row


def cut(devices: int, size: int, policy: Rollout | None) -> list[tuple[int, int, bool]]:
    """``(start, stop, is_canary)`` of each chunk of ``devices`` ids in chunks of at most
    ``size``: the canary's chunks first (``policy.canary`` devices), then the rest's."""
    canary = min(policy.canary, devices) if policy is not None else 0
    return [(k, min(k + size, hi), is_canary)
            for lo, hi, is_canary in ((0, canary, True), (canary, devices, False))
            for k in range(lo, hi, size)]


def _by_gateway(children: Sequence[str], parent: Mapping[str, str], size: int) -> list[str]:
    """``children`` so that chunks of ``size`` cut from the start hold one gateway's
    children each: every gateway's full chunks interleaved round-robin (each gateway has
    work from the start), then every gateway's last partial chunk. Gateways go in the
    order of their ids, so ordering an order again leaves it as it is."""
    by_gw: dict[str, list[str]] = {}
    for c in children:
        by_gw.setdefault(parent[c], []).append(c)
    by_gw = dict(sorted(by_gw.items()))
    full = {g: len(kids) - len(kids) % size for g, kids in by_gw.items()}
    order: list[str] = []
    for r in range(0, max(full.values(), default=0), size):
        for g, kids in by_gw.items():
            if r < full[g]:
                order.extend(kids[r:r + size])
    for g, kids in by_gw.items():
        order.extend(kids[full[g]:])
    return order


def gateway_order(children: Sequence[str], parent: Mapping[str, str], size: int,
                  policy: Rollout | None) -> list[str]:
    """The order a fan-out sends ``children`` in: the canary's and the rest's each
    arranged by gateway (:func:`_by_gateway`), so that the canary's boundary does not
    shift the rest's chunks across gateways."""
    order = _by_gateway(children, parent, size)
    canary = min(policy.canary, len(order)) if policy is not None else 0
    if not canary:
        return order
    return _by_gateway(order[:canary], parent, size) + _by_gateway(order[canary:], parent, size)


@dataclass(frozen=True)
class BatchPlan:
    """What a run of ``operation`` sends: its chunks in sending order and its policy."""

    operation: str
    #: the ids sent, in the order the engine is given them (settled ones excluded)
    ids: list[Hashable]
    chunk_size: int
    #: each chunk's ids, in sending order; the first :attr:`canary_chunks` are the canary
    chunk_ids: list[list[Hashable]]
    #: devices in the canary (0: none)
    canary: int
    #: the rollout policy in force (None: none)
    policy: Rollout | None
    #: ids read as already done before the run: never sent
    settled: list[Hashable] = field(default_factory=list)
    #: fan-out: child -> gateway of every id sent (empty for one client)
    parents: Mapping[str, str] = field(default_factory=dict)
    #: the run is recorded in a journal (False: run without one, by choice)
    journaled: bool = True

    @property
    def devices(self) -> int:
        return len(self.ids)

    @property
    def chunks(self) -> int:
        return len(self.chunk_ids)

    @property
    def canary_chunks(self) -> int:
        return -(-self.canary // self.chunk_size) if self.canary else 0

    @property
    def worst_case(self) -> int:
        """The most devices that can be hit before the first stop can act (all of them
        without a policy)."""
        return self.policy.worst_case(self.devices) if self.policy else self.devices

    @property
    def permanent(self) -> bool:
        return registry_row(self.operation).permanent

    @property
    def gateways(self) -> dict[str, int]:
        """Fan-out: children per gateway, most first (empty for one client)."""
        counts = Counter(self.parents[str(i)] for i in self.ids) if self.parents else Counter()
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def requests(self) -> int:
        """Requests the chunks make at least: one per chunk, one per gateway a fan-out
        chunk spans (a rollout's opening window may cut a chunk into more)."""
        if not self.parents:
            return self.chunks
        return sum(len({self.parents[str(i)] for i in ch}) for ch in self.chunk_ids)

    def describe_rollout(self) -> str | None:
        """The policy in one line for this many devices (None: no policy)."""
        if self.policy is None:
            return None
        return self.policy.describe(self.devices, operation=self.operation, chunk_size=self.chunk_size)

    def to_dict(self) -> dict[str, Any]:
        """The plan's figures as JSON-ready data (what ``--dry-run --json`` prints)."""
        return {"operation": self.operation, "devices": self.devices, "chunk_size": self.chunk_size,
                "chunks": self.chunks, "rollout": self.describe_rollout(), "worst_case": self.worst_case}


def plan(operation: str, ids: Sequence[Hashable], options: BatchOptions | None = None, *,
         parents: Mapping[str, str] | None = None, journaled: bool = True) -> BatchPlan:
    """The plan of running ``operation`` on ``ids`` with ``options`` (``chunk_size``,
    default the registry's; ``rollout``: None the registry's default, False none;
    ``settled``: ids never sent). ``parents`` (child -> gateway) makes it a fan-out:
    the children are ordered by gateway (:func:`gateway_order`); ``journaled=False``:
    the run goes unrecorded (what the preview says)."""
    opts = options or BatchOptions()
    size = check_chunk(operation, opts.chunk_size or registry_row(operation).default_chunk)
    policy = resolve(opts.rollout, operation)
    settled = set(opts.settled or ())
    todo = [i for i in ids if i not in settled] if settled else list(ids)
    done = [i for i in ids if i in settled] if settled else []
    mapping: dict[str, str] = {}
    if parents is not None:
        unknown = [str(i) for i in todo if str(i) not in parents]
        if unknown:
            raise InputError(f"no gateway known for {len(unknown)} child(ren): {', '.join(unknown[:10])}")
        mapping = {str(i): parents[str(i)] for i in todo}
        todo = list(gateway_order([str(i) for i in todo], mapping, size, policy))
    chunks = [todo[lo:hi] for lo, hi, _ in cut(len(todo), size, policy)]
    return BatchPlan(operation, todo, size, chunks, min(policy.canary, len(todo)) if policy else 0, policy,
                     done, mapping, journaled)


__all__ = ["BatchPlan", "cut", "gateway_order", "plan"]
