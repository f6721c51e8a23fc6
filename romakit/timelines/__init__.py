"""The fleet's history as a tidy frame, and what an investigation asks of it.

``rk.timeline(since="2h")`` reads the events watches recorded (:mod:`romakit.watching`)
from the journal, SQLite or PostgreSQL alike: one row per device and change, ``at``
(observed, UTC), ``service_time`` (the service's own time of it, UTC, NaT when it gave
none), ``target``, ``device_id``, ``kind``, ``previous``, ``detail``, ``watch_id``;
categoricals for the repeated texts. The analyses are functions here and the frame's
``.timeline`` accessor:

* :func:`spells`: offline spells (device, start, end, duration; ``end`` NaT: still down)
* :func:`flapping`: devices changing more often than ``per_hour`` transitions an hour
* :func:`outages`: when a group (a column of a fleet frame: ``product_id``,
  ``parent_device_id``, or ``"tag:site-"`` for the site tag) went down and came back
* :func:`operations`: romakit's own operations in the same window, for overlays
* :func:`plot`: devices down over time with the operations shaded, and the spells
* :func:`around` (``timeline(around=op)``): the events around one of romakit's operations

What a view shows (the console's timeline tab, ``romakit timeline``, the report's
section) is :func:`romakit.timelines.views.digest`; the chart and the compact terminal
view are there too. The analyses work column-wise (numpy over category codes): ten
million events are summarised in about a second.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from romakit.store.events import KINDS, STATUSES, read
from romakit.store.events import operations as _operations
from romakit.store.journal import Journal
from romakit.store.listing import when

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from romakit.timelines.views import Digest

COLUMNS = ("at", "service_time", "target", "device_id", "kind", "previous", "detail", "watch_id")
_DOWN_KINDS = ("offline", "inactive", "abnormal", "frozen", "gone")


def _utc(seconds: Any) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(seconds, dtype=float), unit="s", utc=True)


def _ns(values: np.ndarray) -> pd.DatetimeIndex:
    """Epoch nanoseconds (int64; the minimum is NaT) -> UTC times (a view, no conversion)."""
    return pd.DatetimeIndex(np.asarray(values, np.int64), dtype="datetime64[ns, UTC]")


def frame(cols: dict[str, Any], since: float | None = None, until: float | None = None) -> pd.DataFrame:
    """Event columns (epoch seconds, texts) -> the timeline frame."""
    out = pd.DataFrame({
        "at": _utc(cols["at"]),
        "service_time": pd.to_datetime(np.round(np.array(cols["service_time"], dtype=float) * 1000), unit="ms",
                                       utc=True),  # the services keep milliseconds
        "target": pd.Categorical(cols["target"]),
        "device_id": pd.Categorical(cols["device_id"]),
        "kind": pd.Categorical(cols["kind"], categories=KINDS),
        "previous": pd.Categorical(cols["previous"], categories=STATUSES),
        "detail": pd.Series(cols["detail"], dtype=object),
        "watch_id": pd.Categorical(cols["watch_id"]),
    })
    out.attrs["since"], out.attrs["until"] = since, until
    return out


def timeline(since: Any = "2h", until: Any = None, target: str | None = None, device: Any = None,
             journal: Any = None, *, watch_id: str | None = None, kind: Any = None, around: Any = None,
             before: Any = "30m", after: Any = "30m") -> pd.DataFrame:
    """The events recorded between ``since`` and ``until`` (a datetime, an ISO string,
    epoch seconds, or an age like ``"2h"``; ``since=None``: from the start), on
    ``target`` (an instance id or an IoTDA project[/gateway]), of ``device`` (one id or
    several), of one ``watch_id``, of the ``kind``\\ s given; ``journal`` defaults to
    the one in effect. ``around`` (an op id or a result) reads the window around one of
    romakit's operations instead of ``since``/``until``: from ``before`` it started to
    ``after`` it finished (:func:`around`). Read the analyses from the frame's
    ``.timeline`` accessor."""
    if around is not None:
        return events_around(around, before, after, journal, target=target, device=device, watch_id=watch_id,
                             kind=kind)
    lo = None if since is None else when(since, "since")
    hi = None if until is None else when(until, "until")
    devices = None if device is None else [device] if isinstance(device, str | int) else list(device)
    conn = Journal.of(journal).reader()
    if conn is None:
        cols: dict[str, list] = {c: [] for c in COLUMNS}
    else:
        with conn:
            cols = read(conn, lo, hi, target, devices, watch_id)
    out = frame(cols, lo, hi)
    out.attrs["journal"] = journal
    if kind is not None:
        out = out[out["kind"].isin([kind] if isinstance(kind, str) else list(kind))].reset_index(drop=True)
    return out


def _grouped(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The events' order by device then time, and where each device's run starts in it
    (a bool per position). Events come from the journal in time order, so a stable
    counting sort by device code is enough: one pass (pandas' ``groupsort_indexer``, the
    sort behind its groupby), else numpy's radix sort, 16 bits a pass."""
    codes = events["device_id"].cat.codes.to_numpy()
    n = len(codes)
    at = events["at"].to_numpy("datetime64[ns]").view(np.int64)
    pre = None
    if n > 1 and not (at[1:] >= at[:-1]).all():
        pre = np.argsort(at, kind="stable")
        codes = codes[pre]
    ngroups = len(events["device_id"].cat.categories)
    counts: np.ndarray | None = None
    try:
        from pandas._libs.algos import groupsort_indexer

        order, counts = groupsort_indexer(codes.astype(np.intp, copy=False), ngroups)
    except (ImportError, TypeError, ValueError):  # pragma: no cover - a pandas without it
        order = _radix(codes)
    if pre is not None:
        order = pre[order]
    first = np.zeros(n, bool)
    if counts is not None and n:
        starts = np.cumsum(counts[:-1])  # counts[0]: missing codes (-1), first in the order
        first[starts[counts[1:] > 0]] = True
        if counts[0]:
            first[0] = True
    elif n:
        dev = codes[order] if pre is None else events["device_id"].cat.codes.to_numpy()[order]
        first[0] = True
        first[1:] = dev[1:] != dev[:-1]
    return order, first


def _radix(codes: np.ndarray) -> np.ndarray:
    """A stable argsort of small non-negative ints, 16 bits a pass (numpy's radix sort)."""
    order: np.ndarray | None = None
    shift, top = 0, int(codes.max()) if len(codes) else 0
    while True:
        digit = ((codes if order is None else codes[order]).astype(np.int64) >> shift).astype(np.uint16)
        step = np.argsort(digit, kind="stable")
        order = step if order is None else order[step]
        shift += 16
        if top >> shift == 0:
            return order


def _down(events: pd.DataFrame) -> np.ndarray:
    """Per event: does it take its device down (its kind one of the down kinds; an
    ``appeared`` device unless it appeared online). A lookup by category code."""
    kinds = events["kind"]
    table = np.isin(np.asarray(kinds.cat.categories, dtype=object), _DOWN_KINDS)
    down = table[kinds.cat.codes.to_numpy()] if len(table) else np.zeros(len(kinds), bool)
    appeared = list(kinds.cat.categories).index("appeared") if "appeared" in kinds.cat.categories else -1
    if appeared >= 0:
        hit = np.flatnonzero(kinds.cat.codes.to_numpy() == appeared)
        if len(hit):
            down[hit] = events["detail"].to_numpy()[hit] != "online"
    return down


def spells(events: pd.DataFrame, until: Any = None) -> pd.DataFrame:
    """Offline spells: ``device_id``, ``target``, ``start``, ``end`` (NaT: not back by
    the window's end), ``duration`` (to ``until`` — the window's end, else now — for
    those not back), ``kind`` (what took it down), ``back_at_service`` (the service's
    time of the return); by device (in the order of its category), then start."""
    order, new_dev = _grouped(events)
    down = _down(events)[order]
    n = len(order)
    prev_down = np.zeros(n, bool)
    prev_down[1:] = down[:-1]
    start = np.flatnonzero(down & (new_dev | ~prev_down))
    # each run of down events ends at its last one; the event after it (same device) is the return
    run_ends = np.ones(n, bool)
    run_ends[:-1] = ~down[1:] | new_dev[1:]
    after = np.flatnonzero(down & run_ends) + 1
    e = np.minimum(after, max(n - 1, 0))
    ended = (after < n) & ~new_dev[e] if len(start) else np.zeros(0, bool)
    rows, back_rows = order[start], order[e]
    at = events["at"].to_numpy("datetime64[ns]").view(np.int64)
    began = at[rows]
    nat = np.iinfo(np.int64).min
    end = np.where(ended, at[back_rows], nat)
    hi = until if until is not None else events.attrs.get("until")
    stop = int((when(hi, "until") if hi is not None else time.time()) * 1e9)
    dur = np.where(ended, end - began, np.maximum(stop - began, 0))
    service = events["service_time"].to_numpy("datetime64[ns]").view(np.int64)
    back = np.where(ended, service[back_rows], nat) if len(e) else np.zeros(0, np.int64)
    out = pd.DataFrame({
        "device_id": _take(events["device_id"], rows),
        "target": _take(events["target"], rows),
        "start": _ns(began),
        "end": _ns(end),
        "duration": pd.to_timedelta(dur),
        "kind": _take(events["kind"], rows),
        "back_at_service": _ns(back),
    }, copy=False)
    return out


def _take(col: pd.Series, rows: np.ndarray) -> pd.Categorical:
    """Rows of a categorical column, by code (no object arrays, no codes checked again)."""
    return pd.Categorical.from_codes(col.cat.codes.to_numpy()[rows], dtype=col.dtype, validate=False)


def flapping(events: pd.DataFrame, per_hour: float = 4.0, hours: float | None = None) -> pd.DataFrame:
    """Devices with more than ``per_hour`` status transitions an hour (over ``hours``,
    default the window, else the events' span, at least one hour): ``device_id``,
    ``transitions``, ``per_hour``, ``first``, ``last``; the busiest first."""
    codes = events["device_id"].cat.codes.to_numpy()
    cats = events["device_id"].cat.categories
    kinds = events["kind"]
    table = np.isin(np.asarray(kinds.cat.categories, dtype=object), (*_DOWN_KINDS, "online"))
    status = table[kinds.cat.codes.to_numpy()] if len(table) else np.zeros(len(kinds), bool)
    counts = np.bincount(codes[status], minlength=len(cats))
    if hours is None:
        lo, hi = events.attrs.get("since"), events.attrs.get("until")
        at = events["at"]
        a = when(lo) if lo is not None else (at.min().timestamp() if len(at) else 0.0)
        b = when(hi) if hi is not None else (at.max().timestamp() if len(at) else 0.0)
        hours = max((b - a) / 3600, 1.0)
    rate = counts / hours
    hit = np.flatnonzero(rate > per_hour)
    at_ns = events["at"].to_numpy("datetime64[ns]").view(np.int64)
    first = np.full(len(cats), np.iinfo(np.int64).max)
    last = np.full(len(cats), np.iinfo(np.int64).min)
    if len(hit):  # the first and last event of each device (of the named ones only, when they are few)
        sel: Any = slice(None)
        if len(hit) * 4 < len(cats):
            flag = np.zeros(len(cats), bool)
            flag[hit] = True
            sel = np.flatnonzero(flag[codes])
        np.minimum.at(first, codes[sel], at_ns[sel])
        np.maximum.at(last, codes[sel], at_ns[sel])
    out = pd.DataFrame({"device_id": pd.Categorical(cats[hit]), "transitions": counts[hit],
                        "per_hour": rate[hit], "first": _ns(first[hit]), "last": _ns(last[hit])})
    return out.sort_values("transitions", ascending=False, kind="stable", ignore_index=True)


def groups(fleet: pd.DataFrame, by: str, key: str | None = None) -> pd.Series:
    """device id (text) -> group, from a fleet frame: column ``by``, or ``"tag:PREFIX"``
    (the first tag starting with PREFIX, up to its ``=``)."""
    key = key or ("id" if "id" in fleet.columns else "device_id")
    ids = fleet[key].astype(str).to_numpy()
    if by.startswith("tag:"):
        prefix = by[4:]
        vals = [next((t.split("=", 1)[0] for t in (tags if isinstance(tags, list | tuple | np.ndarray) else [])
                      if str(t).startswith(prefix)), None) for tags in fleet["tags"]]
    else:
        vals = fleet[by].astype(str).tolist()
    return pd.Series(vals, index=ids, dtype=object).dropna()


def outages(events: pd.DataFrame, fleet: pd.DataFrame, by: str, share: float = 0.5,
            key: str | None = None) -> pd.DataFrame:
    """When each group of ``fleet`` (see :func:`groups`) went down — at least ``share``
    of its devices in an offline spell — and came back (below it again; NaT: not yet):
    ``group``, ``devices``, ``went_down``, ``came_back``, ``duration``, ``peak_down``."""
    of = groups(fleet, by, key)
    size = of.value_counts()
    sp = spells(events)
    sp = sp.assign(group=of.reindex(sp["device_id"].astype(str)).to_numpy()).dropna(subset=["group"])
    rows = []
    for g, part in sp.groupby("group", sort=True):
        t = np.concatenate([part["start"].to_numpy("datetime64[ns]"), part["end"].dropna().to_numpy("datetime64[ns]")])
        step = np.concatenate([np.ones(len(part), np.int64), -np.ones(part["end"].notna().sum(), np.int64)])
        o = np.lexsort((-step, t))  # a return and a drop at the same moment: the drop first
        t, level = t[o], np.cumsum(step[o])
        need = share * size.get(g, 0)
        above = level >= max(need, 1)
        edges = np.flatnonzero(np.diff(np.concatenate([[False], above]).astype(np.int8)) == 1)
        for s in edges:
            after = np.flatnonzero(~above[s:])
            back = t[s + after[0]] if len(after) else np.datetime64("NaT")
            peak = int(level[s:s + (after[0] if len(after) else len(level) - s)].max())
            rows.append((g, int(size.get(g, 0)), t[s], back, peak))
    out = pd.DataFrame(rows, columns=["group", "devices", "went_down", "came_back", "peak_down"])
    for c in ("went_down", "came_back"):
        out[c] = pd.to_datetime(out[c], utc=True)
    out.insert(4, "duration", out["came_back"] - out["went_down"])
    return out


def operations(events: pd.DataFrame | None = None, *, since: Any = None, until: Any = None,
               journal: Any = None) -> pd.DataFrame:
    """romakit's own operations overlapping the window (the events' window by default):
    ``op_id``, ``operation``, ``target``, ``requested``, ``started``, ``finished``, ``state``."""
    attrs = events.attrs if events is not None else {}
    lo = since if since is not None else attrs.get("since")
    hi = until if until is not None else attrs.get("until")
    conn = Journal.of(journal if journal is not None else attrs.get("journal")).reader()
    rows = [] if conn is None else _read_ops(conn, lo, hi)
    out = pd.DataFrame(rows, columns=["op_id", "operation", "target", "requested", "started", "finished", "state"])
    for c in ("started", "finished"):
        out[c] = pd.to_datetime(pd.to_numeric(out[c]), unit="s", utc=True)
    return out


def events_around(op: Any, before: Any = "30m", after: Any = "30m", journal: Any = None, *,
                  target: str | None = None, **filters: Any) -> pd.DataFrame:
    """The events around one of romakit's operations (an op id, or a result, whose
    journal is then the default): from ``before`` its start to ``after`` it finished
    (durations: ``"30m"``, seconds; a running one: to now), of ``target`` (default: every
    target, as a watch may name the instance or the gateway otherwise than the
    operation does; ``filters``: :func:`timeline`'s ``device``, ``watch_id``, ``kind``).
    The frame's ``attrs["op"]`` holds the operation's row."""
    from romakit.errors import InputError
    from romakit.store.events import seconds

    op_id = str(getattr(op, "op_id", op) or "")
    if not op_id:
        raise InputError("around() needs an op id or a result")
    journal = journal if journal is not None else getattr(op, "journal", None)
    conn = Journal.of(journal).reader()
    rows = [] if conn is None else [r for r in _read_ops(conn, None, None) if r["op_id"] == op_id.split("+")[0]]
    if not rows:
        raise InputError(f"no operation {op_id!r} in the journal")
    row = rows[0]
    lo = float(row["started"]) - seconds(before, "before")
    hi = max(float(row["finished"] or time.time()), float(row["started"])) + seconds(after, "after")
    hi = max(min(hi, time.time()), float(row["started"]))  # nothing is recorded after now
    out = timeline(since=lo, until=hi, target=target, journal=journal, **filters)
    out.attrs["op"] = row
    return out


#: the short name: ``around(op)`` is ``timeline(around=op)``
around = events_around


def _read_ops(conn: Any, lo: Any, hi: Any) -> list[dict[str, Any]]:
    with conn:
        return _operations(conn, None if lo is None else when(lo), None if hi is None else when(hi, "until"))


def down_curve(events: pd.DataFrame) -> pd.Series:
    """Devices in an offline spell over time (a step series indexed by time)."""
    sp = spells(events)
    t = np.concatenate([sp["start"].to_numpy("datetime64[ns]"), sp["end"].dropna().to_numpy("datetime64[ns]")])
    step = np.concatenate([np.ones(len(sp), np.int64), -np.ones(sp["end"].notna().sum(), np.int64)])
    o = np.argsort(t, kind="stable")
    return pd.Series(np.cumsum(step[o]), index=pd.to_datetime(t[o], utc=True), name="devices_down")


def plot(events: pd.DataFrame, top: int = 25, ops: pd.DataFrame | None = None) -> Figure:
    """One figure a person reads at a glance (:func:`romakit.timelines.views.plot`)."""
    from romakit.timelines.views import plot as draw

    return draw(events, top=top, ops=ops)


@pd.api.extensions.register_dataframe_accessor("timeline")
class TimelineAccessor:
    """``frame.timeline.spells()``, ``.flapping()``, ``.outages(fleet, by=)``,
    ``.operations()``, ``.down_curve()``, ``.plot()``, ``.digest()`` (what a view shows)
    and ``.text()`` (the compact terminal view) on a timeline frame."""

    def __init__(self, events: pd.DataFrame) -> None:
        self._e = events

    def spells(self, until: Any = None) -> pd.DataFrame:
        return spells(self._e, until)

    def flapping(self, per_hour: float = 4.0, hours: float | None = None) -> pd.DataFrame:
        return flapping(self._e, per_hour, hours)

    def outages(self, fleet: pd.DataFrame, by: str, share: float = 0.5, key: str | None = None) -> pd.DataFrame:
        return outages(self._e, fleet, by, share, key)

    def operations(self, **kw: Any) -> pd.DataFrame:
        return operations(self._e, **kw)

    def down_curve(self) -> pd.Series:
        return down_curve(self._e)

    def plot(self, top: int = 25, ops: pd.DataFrame | None = None) -> Figure:
        return plot(self._e, top, ops)

    def digest(self, **kw: Any) -> Digest:
        from romakit.timelines.views import digest

        return digest(self._e, **kw)

    def text(self, **kw: Any) -> str:
        from romakit.timelines.views import text

        return text(self._e, **kw)
