"""The ActionPanel's dry run: :class:`Plan`, exactly what *Run* will send, and its HTML.

Nothing here sends anything: a plan is the engine's :func:`romakit.engine.plan.plan`
(the chunks the engine cuts, the canary, the worst case) with the picked devices
counted by product and by parent gateway.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from romakit.engine.guard import (
    PERMANENT,
    Guard,
    hidden_note,
    journal_note,
    plural,
    restorable,
    what,
)
from romakit.engine.options import BatchOptions
from romakit.engine.plan import BatchPlan
from romakit.engine.plan import plan as make_batch_plan

if TYPE_CHECKING:  # pragma: no cover
    from romakit.engine.rollout import Rollout
    from romakit.operations import Operation

#: rows of a count table before the rest is summed up as "others"
_TOP = 10


@dataclass
class Plan:
    """What a dry run found: exactly what *Run* will send (``batch``, the engine's
    :class:`~romakit.engine.plan.BatchPlan`), with the counts a person checks it by."""

    batch: BatchPlan
    target: str
    names: dict
    by_product: pd.Series
    by_parent: pd.Series
    what: str = ""  # "force 1,234 devices offline"
    #: "run" (the picked devices), "retry" (a result's transient failures), "resume"
    #: (an operation's devices that never got an answer) or "restore" (what a deletion removed)
    kind: str = "run"
    #: retry: the BatchResult retried; resume: the op_id resumed; restore: the deletion's op_id
    source: Any = None
    #: selected gateways that carry children in the listing: ``{gateway name: children}``
    parents: dict = field(default_factory=dict)
    #: devices sent that the picker's filters do not show
    hidden: int = 0

    operation = property(lambda self: self.batch.operation, doc="The operation's name.")
    ids = property(lambda self: self.batch.ids, doc="The ids sent, in sending order.")
    devices = property(lambda self: self.batch.devices, doc="How many devices are sent.")
    chunk_size = property(lambda self: self.batch.chunk_size, doc="Devices per chunk.")
    chunks = property(lambda self: self.batch.chunks, doc="How many chunks the engine cuts.")
    worst_case = property(lambda self: self.batch.worst_case,
                          doc="The most devices that can be hit before the first stop can act.")
    rollout = property(lambda self: self.batch.describe_rollout(), doc="The policy in one line, or None.")
    permanent = property(lambda self: self.batch.permanent, doc="True when the effect cannot be undone.")

    @property
    def policy(self) -> Rollout | bool:
        """What the run passes as ``rollout=``: the policy, or False for none."""
        return self.batch.policy or False


def chunk_size_of(client: Any, op: Operation) -> int:
    """The chunk size ``client`` will use for ``op``: its own default (``client.chunk_size``,
    a LinkClient's) or else the operation's (the registry's ``default_chunk``)."""
    size = getattr(client, "chunk_size", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    return op.default_chunk


def journaled(client: Any) -> bool:
    """Whether a run of ``client`` is recorded: journaling is on (``ROMAKIT_JOURNAL``)
    and the client was not made with ``journal=False``."""
    from romakit.store.schema import enabled

    return enabled() and not getattr(getattr(client, "journal", None), "off", False)


def plan_for(client: Any, op: Operation, ids: list, names: dict, frame: pd.DataFrame | None,
             rollout: Rollout | bool | None, *, kind: str = "run", source: Any = None,
             fleet: pd.DataFrame | None = None, chunk_size: int | None = None,
             parents: dict[str, str] | None = None, hidden: int = 0) -> Plan:
    """The plan of sending ``op`` to ``ids`` with ``client`` under ``rollout`` (None: the
    registry's default; False: none) in chunks of ``chunk_size`` (default the client's);
    ``parents`` (child -> gateway) for a fan-out; ``frame`` holds their fleet rows, if
    known, and ``fleet`` the whole listing (to count the children of selected gateways);
    ``hidden``: how many of ``ids`` the picker's filters do not show."""
    size = chunk_size or chunk_size_of(client, op)
    batch = make_batch_plan(op.name, ids, BatchOptions(chunk_size=size, rollout=rollout), parents=parents,
                            journaled=journaled(client))
    target = f"{len(batch.gateways)} gateways" if batch.gateways else str(client.target)
    frame = frame if frame is not None else pd.DataFrame()
    verb = what(batch, target, hidden=hidden)
    return Plan(
        batch=batch,
        target=target,
        names=names,
        by_product=_counts(frame, "product_name", "(unknown product)"),
        by_parent=_counts(frame, "parent_device_name", "(no gateway)"),
        what={"run": verb, "retry": f"retry: {verb}", "resume": f"resume {source}: {verb}",
              "restore": f"restore what {source} deleted: {verb}"}[kind],
        kind=kind,
        source=source,
        parents=_parents(fleet, frame),
        hidden=hidden,
    )


def plan_html(plan: Plan, op: Operation, guard_rules: Guard) -> str:
    """The preview shown before *Run*: counts, chunks, the rollout and the guard."""
    guard = ""
    if guard_rules.wants_count(plan.batch):
        guard = f"<p><b>{guard_rules.above(plan.batch)}</b>: tick the box and type {plan.devices} to confirm.</p>"
    rollout = f"<p>Rollout: {html.escape(plan.rollout)}</p>" if plan.rollout else ""
    if plan.policy:
        worst = (f"<p><b>Worst case: at most {plural(plan.worst_case, 'device')}</b> can be hit before the first "
                 "stop (the canary gate or the abort criteria) can act, whatever the chunk size and concurrency.</p>")
    else:
        worst = (f"<p><b>No rollout policy: all {plural(plan.devices, 'device')}</b> can be hit before anything "
                 "but Cancel can stop the run.</p>")
    kind = {"run": "", "retry": " <b>Retry</b> of the transient failures of op "
            f"<code>{html.escape(str(getattr(plan.source, 'op_id', '')))}</code>:",
            "resume": f" <b>Resume</b> of op <code>{html.escape(str(plan.source))}</code> (the devices that never "
            "got an answer; a deletion first reads which are already gone):",
            "restore": f" <b>Restore</b> of what op <code>{html.escape(str(plan.source))}</code> deleted, from the "
            "snapshot it kept (devices already back are read first and not created again):"}[plan.kind]
    undo = restorable(plan.batch)
    if undo:
        label = "What comes back" if op.expected == "restored" else "Undo"
        guard = f"<p><b>{label}:</b> {html.escape(undo)}.</p>" + guard
    if plan.permanent:
        guard = f"<p style='color:#b00'><b>Permanent:</b> {html.escape(PERMANENT)}</p>" + guard
    if plan.parents:
        kids = sum(plan.parents.values())
        names = ", ".join(f"{html.escape(str(k))} ({v:,})" for k, v in list(plan.parents.items())[:5])
        guard = (f"<p style='color:#b00'><b>{plural(len(plan.parents), 'selected gateway')} "
                 f"{'carries' if len(plan.parents) == 1 else 'carry'} {plural(kids, 'child device')}</b>: "
                 f"{names}. Their children lose their gateway.</p>") + guard
    hidden = (f" <b style='color:#b00'>{html.escape(hidden_note(plan.hidden))}</b>, and sent too "
              "(Clear, or select again, to leave them out)." if plan.hidden else "")
    note = journal_note(plan.batch)
    unrecorded = f"<p style='color:#b00'><b>{html.escape(note)}</b></p>" if note else ""
    return (
        f"<p><b>Dry run</b> (nothing sent):{kind} {html.escape(op.label)} on <code>{html.escape(plan.target)}</code>: "
        f"<b>{plural(plan.devices, 'device')}</b> in {plural(plan.chunks, 'chunk')} of up to {plan.chunk_size:,}."
        f"{hidden}</p>"
        f"{rollout}{worst}{guard}{unrecorded}"
        # two separate counts, one above the other: side by side they read as if paired row by row
        f"<p style='margin-bottom:2px'><b>By product</b></p>{_table_html(plan.by_product, 'product')}"
        f"<p style='margin-bottom:2px'><b>By parent gateway</b></p>{_table_html(plan.by_parent, 'gateway (parent)')}"
    )


def _counts(frame: pd.DataFrame, column: str, missing: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(dtype="int64", name="devices")
    s = frame[column].astype("object").where(frame[column].notna(), missing)
    return s.value_counts().rename("devices")


def _table_html(counts: pd.Series, title: str) -> str:
    rows = counts.head(_TOP)
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td style='text-align:right'>{v:,}</td></tr>" for k, v in rows.items())
    if len(counts) > _TOP:
        rest = counts.iloc[_TOP:]
        body += f"<tr><td><i>{len(rest):,} others</i></td><td style='text-align:right'>{int(rest.sum()):,}</td></tr>"
    return f"<table><thead><tr><th>{html.escape(title)}</th><th>devices</th></tr></thead><tbody>{body}</tbody></table>"


def _parents(fleet: pd.DataFrame | None, frame: pd.DataFrame) -> dict:
    """Selected gateways with children in the picker's fleet: ``{name: children}``."""
    if fleet is None or "node_type" not in frame.columns or "parent_device_id" not in fleet.columns:
        return {}
    gws = frame[frame["node_type"].astype(str) == "gateway"]
    if gws.empty:
        return {}
    kids = fleet["parent_device_id"].astype("string").value_counts()
    out = {}
    for gid, name in zip(gws["id"].astype(str), gws["device_name"], strict=True):
        if int(kids.get(gid, 0)):
            out[name] = int(kids[gid])
    return out
