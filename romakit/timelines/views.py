"""What a person sees of a timeline: the digest every view shows, the chart and the
compact terminal view.

:func:`digest` reads a timeline frame once (spells, flapping devices, devices down over
time, romakit's operations) into a :class:`Digest`; the console's timeline tab, the
evidence report's section and ``romakit timeline`` show it. :func:`plot` draws it on
one figure (no pyplot state: safe in a widget and a report) with a time axis that reads
right at any span, from seconds to weeks; :func:`text` prints it for a terminal,
every text from the service escaped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from romakit.store.listing import when
from romakit.timelines import down_curve, flapping, operations, spells

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: colours: a spell, a flapping device's spell, an operation
DOWN, FLAP, OP = "#d62728", "#ff7f0e", "#1f77b4"


@dataclass
class Digest:
    """One timeline read once: the window, counts, and the frames a view shows."""

    since: pd.Timestamp | None
    until: pd.Timestamp | None
    events: int
    devices: int
    spells: pd.DataFrame
    #: spells not over by the window's end (``end`` NaT), longest first
    still_down: pd.DataFrame
    #: the longest spells that ended, longest first
    longest: pd.DataFrame
    flapping: pd.DataFrame
    operations: pd.DataFrame
    #: devices in an offline spell over time (a step series)
    curve: pd.Series
    peak: int
    peak_at: pd.Timestamp | None
    per_hour: float

    def headline(self) -> str:
        """One line: the window, the counts."""
        n_ops = len(self.operations)
        return (f"{self.events:,} events on {self.devices:,} devices{_window(self.since, self.until)}: "
                f"{len(self.spells):,} offline spells, {len(self.still_down):,} still down, "
                f"{len(self.flapping):,} flapping (> {self.per_hour:g} transitions an hour), "
                f"{n_ops:,} operation{'' if n_ops == 1 else 's'}"
                + (f"; peak {self.peak:,} down at {clock(self.peak_at, self.scale)}" if self.peak else ""))

    def tables(self, top: int = 10) -> list[tuple[str, pd.DataFrame]]:
        """The tables a view shows, titled, their first ``top`` rows as text a person reads
        (times to the second, UTC; durations short; nothing missing shown as NaN):
        romakit's operations, the devices still down, the flapping ones, the longest spells."""
        parts = [
            ("romakit's operations", self.operations,
             ["op_id", "operation", "target", "requested", "started", "finished", "state"]),
            (f"Still down ({len(self.still_down):,})", self.still_down, ["device_id", "start", "duration", "kind"]),
            (f"Flapping (> {self.per_hour:g} transitions an hour; {len(self.flapping):,})", self.flapping,
             ["device_id", "transitions", "per_hour", "first", "last"]),
            ("Longest spells that ended", self.longest, ["device_id", "start", "end", "duration", "kind"]),
        ]
        return [(title + (f", first {top}" if len(frame) > top else ""), _readable(frame[cols].head(top)))
                for title, frame, cols in parts]

    @property
    def scale(self) -> pd.Timedelta | None:
        """The window's span (None when not known)."""
        return None if self.since is None or self.until is None else self.until - self.since


def digest(events: pd.DataFrame, *, ops: pd.DataFrame | None = None, top: int = 10,
           per_hour: float = 4.0) -> Digest:
    """The frames every view of ``events`` shows (``top`` rows of the longest spells)."""
    sp = spells(events)
    lo, hi = events.attrs.get("since"), events.attrs.get("until")
    since = _stamp(lo) if lo is not None else (events["at"].min() if len(events) else None)
    # no end given: the window ends now (what "the last 2h" means), as open spells do
    until = _stamp(hi) if hi is not None else _stamp(time.time())
    if since is not None and until < since:
        until = since
    down = sp[sp["end"].isna()].sort_values("start", kind="stable")
    ended = sp[sp["end"].notna()]
    longest = ended.nlargest(top, "duration") if len(ended) else ended
    curve = down_curve(events)
    peak = int(curve.max()) if len(curve) else 0
    peak_at = curve.idxmax() if peak else None
    return Digest(
        since=since, until=until, events=len(events),
        devices=int(events["device_id"].nunique()) if len(events) else 0,
        spells=sp, still_down=down.reset_index(drop=True), longest=longest.reset_index(drop=True),
        flapping=flapping(events, per_hour=per_hour),
        operations=operations(events) if ops is None else ops,
        curve=curve, peak=peak, peak_at=peak_at, per_hour=per_hour,
    )


def _readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as text cells: UTC times to the second, short durations, rates to one
    place, a missing value empty."""
    out = {}
    for c in frame.columns:
        col = frame[c]
        if isinstance(col.dtype, pd.DatetimeTZDtype) or str(col.dtype).startswith("datetime"):
            text = col.dt.strftime("%Y-%m-%d %H:%M:%S")
        elif str(col.dtype).startswith("timedelta"):
            text = col.map(span)
        elif pd.api.types.is_float_dtype(col):
            text = col.round(1).astype(str)
        else:
            text = col.astype(object).map(str)
        out[c] = text.where(col.notna(), "").astype(object)
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def _stamp(value: Any) -> pd.Timestamp:
    return pd.Timestamp(when(value, "until"), unit="s", tz="UTC")


def _window(since: pd.Timestamp | None, until: pd.Timestamp | None) -> str:
    if since is None or until is None or pd.isna(since) or pd.isna(until):
        return ""
    return f" from {clock(since, until - since)} to {clock(until, until - since)} UTC ({span(until - since)})"


def clock(t: Any, scale: pd.Timedelta | None = None) -> str:
    """A UTC time as a person reads it at this span: the date only when it spans days."""
    if t is None or pd.isna(t):
        return "-"
    t = pd.Timestamp(t)
    t = t.tz_convert("UTC") if t.tzinfo is not None else t.tz_localize("UTC")
    if scale is not None and scale >= pd.Timedelta(days=1):
        return t.strftime("%Y-%m-%d %H:%M")
    return t.strftime("%H:%M:%S")


def span(td: Any) -> str:
    """A duration, short: ``45s``, ``12m05s``, ``3h07m``, ``2d04h``."""
    if td is None or pd.isna(td):
        return "-"
    s = int(pd.Timedelta(td).total_seconds())
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


# -- the chart ---------------------------------------------------------------------------------
def plot(events: pd.DataFrame, top: int = 25, ops: pd.DataFrame | None = None, *,
         per_hour: float = 4.0, d: Digest | None = None) -> Figure:
    """Devices down over time with romakit's operations shaded and named, and below it
    the offline spells of ``top`` devices: the flapping ones (orange) first, then those
    down longest. A Figure without pyplot state; the time axis is UTC, spans where
    something happened (within the window) and ticks as concisely as that span allows
    (seconds to weeks)."""
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    d = d if d is not None else digest(events, ops=ops, per_hour=per_hour)
    fig = Figure(figsize=(11, 6), layout="constrained")
    ax, bx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    if len(d.curve):
        ax.step(d.curve.index, d.curve.to_numpy(), where="post", color=DOWN)
    ax.set_ylabel("devices down")
    ax.set_ylim(bottom=0)
    for r in d.operations.itertuples():
        end = r.finished if pd.notna(r.finished) else d.until if d.until is not None else r.started
        ax.axvline(r.started, color=OP, alpha=0.6, linewidth=1)
        if end > r.started:
            ax.axvspan(r.started, end, color=OP, alpha=0.2)
        ax.annotate(f"{r.operation} {str(r.op_id)[:8]}", (r.started, 1), xycoords=("data", "axes fraction"),
                    fontsize=8, va="bottom")
    ax.set_title(d.headline().replace(": ", ":\n", 1), fontsize=9, loc="left", pad=14 if len(d.operations) else 6)
    sp = d.spells
    flappy = [str(x) for x in d.flapping["device_id"].head(max(top // 3, 1 if top else 0))]
    total = sp.groupby("device_id", observed=True)["duration"].sum().sort_values(ascending=False, kind="stable")
    rest = [str(x) for x in total.index if str(x) not in set(flappy)][: max(top - len(flappy), 0)]
    shown = flappy + rest
    ids = sp["device_id"].astype(str)
    stop = d.until if d.until is not None else pd.Timestamp(time.time(), unit="s", tz="UTC")
    for y, dev in enumerate(shown):
        mine = sp[ids == dev]
        ends = mine["end"].fillna(pd.Series(stop, index=mine.index)).clip(lower=mine["start"])
        starts = mdates.date2num(mine["start"])
        widths = mdates.date2num(ends) - starts
        bx.broken_barh(list(zip(starts, widths, strict=True)), (y - 0.4, 0.8),
                       color=FLAP if dev in flappy else DOWN)
    bx.set_yticks(range(len(shown)), [_short(x) for x in shown], fontsize=7)
    bx.set_ylim(len(shown) - 0.5 if shown else 0.5, -0.5)
    bx.set_ylabel(f"offline spells ({len(shown)} devices)")
    bx.legend(handles=[Patch(color=DOWN, label="offline spell"), Patch(color=FLAP, label="flapping device"),
                       Patch(color=OP, alpha=0.3, label="romakit operation")],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    locator = mdates.AutoDateLocator(tz="UTC")
    bx.xaxis.set_major_locator(locator)
    bx.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC", show_offset=True))
    bx.set_xlabel("time (UTC)")
    lo, hi = _extent(events, d)
    if lo is not None and hi is not None:
        bx.set_xlim(lo, hi)
    for a in (ax, bx):
        a.spines[["top", "right"]].set_visible(False)
    return fig


def _extent(events: pd.DataFrame, d: Digest) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The time axis: where something happened (the events, the operations), padded by a
    twentieth of it (at least a second) and kept within the window, so seconds of
    activity in an hour's window are readable; the whole window when nothing happened."""
    times = [events["at"].min(), events["at"].max()] if len(events) else []
    ops = d.operations
    if len(ops):
        times += [ops["started"].min(), ops["finished"].max()]
    times = [t for t in times if t is not None and not pd.isna(t)]
    if not times:
        ok = d.since is not None and d.until is not None and d.until > d.since
        return (d.since, d.until) if ok else (None, None)
    lo, hi = min(times), max(times)
    pad = max((hi - lo) / 20, pd.Timedelta(seconds=1))
    lo, hi = lo - pad, hi + pad
    if d.since is not None:
        lo = max(lo, d.since)
    if d.until is not None:
        hi = min(hi, d.until)
    return (lo, hi) if hi > lo else (lo - pad, hi + pad)


def _short(device: str, width: int = 24) -> str:
    return device if len(device) <= width else device[: width - 1] + "…"


# -- the terminal ------------------------------------------------------------------------------
def text(events: pd.DataFrame, *, width: int = 80, rows: int = 12, top: int = 10, per_hour: float = 4.0,
         ops: pd.DataFrame | None = None, d: Digest | None = None) -> str:
    """The compact terminal view: the headline, devices down over the window in ``rows``
    bars (the most down in each slice, operations marked where they started), the
    operations, the devices still down, the longest spells and the flapping devices
    (``top`` of each). Every text from the service or the journal is escaped."""
    from romakit.textsafe import terminal

    d = d if d is not None else digest(events, ops=ops, top=top, per_hour=per_hour)
    out = [terminal(d.headline())]
    scale = d.scale
    if len(d.curve) and scale is not None and scale > pd.Timedelta(0):
        out.append("devices down (the most in each slice)")
        edges = pd.date_range(d.since, d.until, periods=rows + 1)
        t = d.curve.index.to_numpy("datetime64[ns]").view(np.int64)
        v = d.curve.to_numpy()
        e = edges.to_numpy("datetime64[ns]").view(np.int64)
        level_before = np.concatenate([[0], v])[np.searchsorted(t, e[:-1], side="right")]
        bar = max(width - 40, 10)
        top_v = max(int(v.max()), 1)
        started = d.operations["started"].to_numpy("datetime64[ns]").view(np.int64) if len(d.operations) else []
        for k in range(rows):
            inside = v[(t >= e[k]) & (t < e[k + 1])]
            most = int(max(level_before[k], inside.max() if len(inside) else 0))
            mark = ""
            if len(d.operations):
                hit = np.flatnonzero((started >= e[k]) & (started < e[k + 1]))
                mark = "  < " + ", ".join(terminal(f"{d.operations['operation'].iloc[i]} "
                                                   f"{str(d.operations['op_id'].iloc[i])[:8]}") for i in hit[:2])
                mark = mark if len(hit) else ""
            out.append(f"  {clock(edges[k], scale):>16} {'#' * round(most / top_v * bar):<{bar}} {most:>6,}{mark}")
    if len(d.operations):
        out.append("operations")
        for r in d.operations.itertuples():
            took = "running" if pd.isna(r.finished) else f"{terminal(r.state)} {clock(r.finished, scale)}"
            out.append(f"  {clock(r.started, scale):>16}  {terminal(r.operation):<14} {terminal(str(r.op_id)[:8]):<8} "
                       f"{int(r.requested or 0):>7,} devices on {terminal(r.target)}, {took}")
    if len(d.still_down):
        out.append(f"still down ({len(d.still_down):,})")
        out += _spell_lines(d.still_down.head(top), scale, terminal)
        if len(d.still_down) > top:
            out.append(f"  ... and {len(d.still_down) - top:,} more")
    if len(d.longest):
        out.append(f"longest spells that ended (top {len(d.longest)})")
        out += _spell_lines(d.longest, scale, terminal)
    if len(d.flapping):
        out.append(f"flapping (> {d.per_hour:g} transitions an hour): {len(d.flapping):,}")
        for r in d.flapping.head(top).itertuples():
            out.append(f"  {terminal(r.device_id):<24} {int(r.transitions):>5} transitions, {r.per_hour:.1f} an hour")
    return "\n".join(out)


def _spell_lines(sp: pd.DataFrame, scale: Any, terminal: Any) -> list[str]:
    lines = []
    for r in sp.itertuples():
        back = f"back {clock(r.end, scale)}" if pd.notna(r.end) else "not back"
        lines.append(f"  {terminal(r.device_id):<24} {clock(r.start, scale):>16} {span(r.duration):>8}  "
                     f"{terminal(r.kind)}, {back}")
    return lines
