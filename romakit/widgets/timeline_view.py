"""``TimelineView``: what the fleet did around one of romakit's operations, or in a time
range, from the events the watches recorded in the journal.

Choose an operation (the journal's, newest first) and how far before and after it to
look, or no operation and a range (``since``/``until``: an age like ``"2h"``, an ISO
time); *Show* reads the events (:func:`romakit.timelines.around` /
:func:`romakit.timeline`) and shows their digest (:mod:`romakit.timelines.views`): a
headline, the chart (devices down over time with the operations shaded, the spells of
the flapping and the longest-down devices), the operations, the devices still down, the
flapping devices and the longest spells. Driven from Python like the other widgets:
``view.operation.value = op_id; view.show_button.click()``. The console shows it in
its *Timeline* tab.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from romakit.widgets._base import Widget
from romakit.widgets.results_view import _png

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from romakit.timelines.views import Digest

#: what the operation box shows when the view is over a time range
NO_OPERATION = "(none: the time range)"
#: operations listed in the box, newest first
MAX_OPERATIONS = 200


class TimelineView(Widget):
    """The journal's events around an operation or in a time range (see the module).

    ``journal``: a :class:`~romakit.store.journal.Journal`, a path or URL (default: the
    one in effect); ``target``: only events of this instance or IoTDA project[/gateway]
    (default: all); ``top``: rows in each table and devices in the chart.
    """

    def __init__(self, journal: Any = None, *, target: str | None = None, since: str = "2h",
                 top: int = 15, per_hour: float = 4.0) -> None:
        self.journal = journal
        self.target = target
        self.top = top
        #: the events and the digest last shown
        self.events: pd.DataFrame | None = None
        self.digest: Digest | None = None
        self.message = ""

        wide = w.Layout(width="520px")
        self.operation = w.Dropdown(description="operation", options=[(NO_OPERATION, "")], value="", layout=wide)
        self.before = w.Text(value="30m", description="before", layout=w.Layout(width="160px"))
        self.after = w.Text(value="30m", description="after", layout=w.Layout(width="160px"))
        self.since = w.Text(value=since, description="since", layout=w.Layout(width="220px"),
                            tooltip="an age (2h, 7d) or an ISO time")
        self.until = w.Text(value="", description="until", placeholder="now", layout=w.Layout(width="220px"))
        self.flapping_rate = w.BoundedFloatText(value=per_hour, min=0.0, max=1e6, step=1.0,
                                                description="flapping >", layout=w.Layout(width="180px"),
                                                tooltip="status transitions an hour that make a device flapping")
        self.refresh_button = w.Button(description="Operations", icon="refresh", layout=w.Layout(width="auto"),
                                       tooltip="list the journal's operations again")
        self.show_button = w.Button(description="Show", icon="line-chart", button_style="primary",
                                    layout=w.Layout(width="auto"))
        self.status = w.HTML()
        self.headline = w.HTML()
        self.chart = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto", display="none"))
        self.operations_table = w.HTML()
        self.still_down = w.HTML()
        self.flapping = w.HTML()
        self.longest = w.HTML()
        self.refresh_button.on_click(lambda _b: self.refresh_operations())
        self.show_button.on_click(lambda _b: self.show())
        self.operation.observe(lambda _c: self._modes(), "value")
        self._range = w.HBox([self.since, self.until])
        self._around = w.HBox([self.before, self.after])
        self.widget = w.VBox([
            w.HBox([self.operation, self.refresh_button]),
            self._around, self._range,
            w.HBox([self.flapping_rate, self.show_button]),
            self.status, self.headline, self.chart,
            self.operations_table, self.still_down, self.flapping, self.longest,
        ])
        self.widget.add_class("rk-timeline")
        self.refresh_operations()

    # -- choosing ------------------------------------------------------------------------------
    def refresh_operations(self) -> int:
        """List the journal's operations in the box again (newest first, the choice kept
        while it is still listed); returns how many."""
        from romakit.timelines import operations

        try:
            ops = operations(since=None, until=None, journal=self.journal)
        except Exception as e:  # noqa: BLE001 - said in the status line
            self._say(f"could not read the journal's operations: {e}", error=True)
            return 0
        ops = ops.sort_values("started", ascending=False, kind="stable").head(MAX_OPERATIONS)
        options = [(NO_OPERATION, "")] + [(_label(r), str(r.op_id)) for r in ops.itertuples()]
        keep = self.operation.value if any(v == self.operation.value for _, v in options) else ""
        self.operation.options = options
        self.operation.value = keep
        self._modes()
        return len(ops)

    def _modes(self) -> None:
        around = bool(self.operation.value)
        self._around.layout.display = "" if around else "none"
        self._range.layout.display = "none" if around else ""

    def choose(self, op: Any) -> None:
        """Look around ``op`` (an op id or a result) next: listed and chosen in the box."""
        op_id = str(getattr(op, "op_id", op))
        if op_id not in [v for _, v in self.operation.options]:
            self.refresh_operations()
        self.operation.value = op_id

    # -- showing ---------------------------------------------------------------------------------
    def show(self) -> bool:
        """Read the events of the chosen window and show them; False (and why) when it cannot."""
        from romakit.timelines import around, timeline
        from romakit.timelines.views import digest, plot

        try:
            if self.operation.value:
                ev = around(self.operation.value, self.before.value.strip() or "30m",
                            self.after.value.strip() or "30m", journal=self.journal, target=self.target)
                where = f"around operation {self.operation.value}"
            else:
                ev = timeline(since=self.since.value.strip() or None, until=self.until.value.strip() or None,
                              target=self.target, journal=self.journal)
                where = f"since {self.since.value.strip() or 'the start'}" + (
                    f" until {self.until.value.strip()}" if self.until.value.strip() else "")
            d = digest(ev, top=self.top, per_hour=float(self.flapping_rate.value))
        except Exception as e:  # noqa: BLE001 - said in the status line
            return self._say(f"could not read the timeline: {e}", error=True)
        self.events, self.digest = ev, d
        self.headline.value = f"<b>{html.escape(d.headline())}</b>"
        if len(ev):
            self.chart.value = _png(plot(ev, top=self.top, d=d))
            self.chart.layout.display = ""
        else:
            self.chart.layout.display = "none"
        boxes = (self.operations_table, self.still_down, self.flapping, self.longest)
        for box, (title, frame) in zip(boxes, d.tables(self.top), strict=True):
            box.value = f"<b>{html.escape(title)}</b>" + frame.to_html(index=False, escape=True) if len(frame) else ""
        empty = "" if len(ev) else ": no event recorded there (is a watch running? rk.watch(link))"
        return self._say(f"{len(ev):,} events {where}{empty}")

    def __repr__(self) -> str:
        d = self.digest
        return "<TimelineView: nothing shown yet>" if d is None else f"<TimelineView: {d.headline()}>"


def _label(r: Any) -> str:
    started = r.started.strftime("%Y-%m-%d %H:%M:%S") if r.started is not None else "?"
    return f"{started} UTC  {r.operation}  {str(r.op_id)[:12]}  ({int(r.requested or 0):,} devices, {r.state or 'running'})"
