"""The ActionPanel's dry run: :class:`Plan`, exactly what *Run* will send, and its HTML.

Nothing here sends anything: a plan counts the picked devices (by product and by
parent gateway) and the chunks the client will cut them into, from the operation's
row in :mod:`romakit.operations`.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from romakit.engine.rollout import Rollout
    from romakit.operations import Operation
    from romakit.widgets.picker import DevicePicker

#: rows of a count table before the rest is summed up as "others"
_TOP = 10


@dataclass
class Plan:
    """What a dry run found: exactly what *Run* will send."""

    operation: str
    target: str
    ids: list
    names: dict
    chunk_size: int
    chunks: int
    by_product: pd.Series
    by_parent: pd.Series
    what: str = ""  # "force 1,234 devices offline"
    rollout: str | None = None
    #: True when the operation cannot be undone (a deletion)
    permanent: bool = False
    #: selected gateways that carry children in the listing: ``{gateway name: children}``
    parents: dict = field(default_factory=dict)

    @property
    def devices(self) -> int:
        return len(self.ids)


def chunk_size_of(client: Any, op: Operation) -> int:
    """The chunk size ``client`` will use for ``op``: its own default (``client.chunk_size``,
    a LinkClient's) or else the operation's (the registry's ``default_chunk``)."""
    size = getattr(client, "chunk_size", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    return op.default_chunk


def make_plan(client: Any, op: Operation, picker: DevicePicker, rollout: Rollout | None) -> Plan:
    """The plan of running ``op`` with ``client`` on the picker's selection (not empty)."""
    ids = picker.selected
    frame = picker.selected_frame
    size = chunk_size_of(client, op)
    canary = min(getattr(rollout, "canary", 0) or 0, len(ids))
    chunks = math.ceil(canary / size) + math.ceil((len(ids) - canary) / size)
    describe = getattr(rollout, "describe", None)
    plan = Plan(
        operation=op.name,
        target=str(client.target),
        ids=ids,
        names=picker.names(),
        chunk_size=size,
        chunks=chunks,
        by_product=_counts(frame, "product_name", "(unknown product)"),
        by_parent=_counts(frame, "parent_device_name", "(no gateway)"),
        rollout=describe() if callable(describe) else None,
        permanent=op.permanent,
        parents=_parents(picker, frame),
    )
    plan.what = op.verb.format(n=f"{plan.devices:,}", target=plan.target)
    return plan


def plan_html(plan: Plan, op: Operation, blast_radius: int) -> str:
    """The preview shown before *Run*: counts, chunks, the rollout and the blast-radius guard."""
    guard = ""
    if plan.devices > blast_radius:
        guard = (f"<p><b>{plan.devices:,} devices is above the blast radius of {blast_radius:,}</b>: "
                 f"tick the box and type {plan.devices} to confirm.</p>")
    rollout = f"<p>Rollout: {html.escape(plan.rollout)}</p>" if plan.rollout else ""
    if plan.permanent:
        guard = ("<p style='color:#b00'><b>Permanent:</b> deleted devices cannot be restored; they must be "
                 "registered again, with new secrets.</p>") + guard
    if plan.parents:
        kids = sum(plan.parents.values())
        names = ", ".join(f"{html.escape(str(k))} ({v:,})" for k, v in list(plan.parents.items())[:5])
        guard = (f"<p style='color:#b00'><b>{plural(len(plan.parents), 'selected gateway')} "
                 f"{'carries' if len(plan.parents) == 1 else 'carry'} {plural(kids, 'child device')}</b>: "
                 f"{names}. Their children lose their gateway.</p>") + guard
    return (
        f"<p><b>Dry run</b> (nothing sent): {html.escape(op.label)} on <code>{html.escape(plan.target)}</code>: "
        f"<b>{plural(plan.devices, 'device')}</b> in {plural(plan.chunks, 'chunk')} of up to {plan.chunk_size:,}.</p>"
        f"{rollout}{guard}"
        # two separate counts, one above the other: side by side they read as if paired row by row
        f"<p style='margin-bottom:2px'><b>By product</b></p>{_table_html(plan.by_product, 'product')}"
        f"<p style='margin-bottom:2px'><b>By parent gateway</b></p>{_table_html(plan.by_parent, 'gateway (parent)')}"
    )


def plural(count: int, word: str) -> str:
    """``"1 device"``, ``"1,234 devices"``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


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


def _parents(picker: Any, frame: pd.DataFrame) -> dict:
    """Selected gateways with children in the picker's fleet: ``{name: children}``."""
    fleet = getattr(picker, "fleet", None)
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
