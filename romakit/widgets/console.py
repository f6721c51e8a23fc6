"""``rk.console(link, gateways=[...])``: picker, action panel and results in one widget.

One tab per target: the LINK instance (the whole fleet, LINK ids), each gateway
(its children, IoTDA ids) and, with two gateways or more, *All gateways*: the children
of all of them, deleted in one run, each through its own gateway (``rk.delete_children``;
:mod:`.fanout_tab`). Choosing a tab points the shared picker and panel at that target;
results keep the client they ran on, so *Retry* always goes back to the right one.
The last tab, *Timeline*, shows what the fleet did around an operation or in a time
range (:class:`~romakit.widgets.timeline_view.TimelineView`, from the journal's events);
while it is open the picker, panel and results step aside, and the target stays.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from romakit.errors import InputError, RomakitError
from romakit.operations import GATEWAY, LINK, client_kind
from romakit.widgets._base import CLOSED_NOTE, Widget
from romakit.widgets.action import DEFAULT_BLAST_RADIUS
from romakit.widgets.fanout_tab import TITLE, FanOutPanel, all_children
from romakit.widgets.picker import DevicePicker
from romakit.widgets.results_view import ResultsView
from romakit.widgets.timeline_view import TimelineView

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class Console(Widget):
    """The three widgets together, with a tab per target (see :func:`console`)."""

    def __init__(
        self,
        link: Any,
        gateways: Iterable[Any] = (),
        *,
        fleet: pd.DataFrame | None = None,
        blast_radius: int = DEFAULT_BLAST_RADIUS,
    ) -> None:
        if client_kind(link) != LINK:
            raise InputError(f"link must be a LinkClient, got {type(link).__name__}")
        self.link = link
        self.gateways = list(gateways)
        for gw in self.gateways:
            if client_kind(gw) != GATEWAY:
                raise InputError(f"gateways must be romakit Gateway objects, got {type(gw).__name__}")
        self.fleet = link.devices() if fleet is None else fleet
        self._children: dict[str, pd.DataFrame] = {}
        self._all: pd.DataFrame | None = None  # all_children(), joined once per listing
        #: every child -> gateway seen in a listing (kept across relists: a retry or resume
        #: names children already deleted, and their gateway must still be known)
        self._parents: dict[str, str] = {}
        #: the *All gateways* tab's client (None with fewer than two gateways)
        self.group = None
        if len(self.gateways) >= 2:
            from romakit.iotda.fanout import GatewayGroup

            self.group = GatewayGroup({str(gw.target): gw for gw in self.gateways}, self._parents)
        self.picker = DevicePicker(self.fleet, "id")
        self.results = ResultsView(target=link, fleet=self.fleet)
        self.panel = FanOutPanel(link, self.picker, results=self.results, blast_radius=blast_radius,
                                 refresh=self.relist)
        self.refresh_button = w.Button(description="Refresh fleet", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.note = w.HTML()
        self._descriptions = [w.HTML() for _ in range(1 + len(self.gateways) + (self.group is not None))]
        #: the *Timeline* tab: the journal's events around an operation or in a time range
        self.timeline = TimelineView(journal=getattr(link, "journal", None))
        self.tabs = w.Tab(
            children=[*self._descriptions, self.timeline.widget],
            titles=["LINK", *(str(gw.target) for gw in self.gateways), *([TITLE] if self.group else []),
                    "Timeline"],
        )
        self._index = 0
        self._describe()
        self.tabs.observe(self._on_tab, "selected_index")
        self._acting = w.VBox([w.HBox([self.refresh_button, self.note]), self.picker.widget, self.panel.widget,
                               self.results.widget])
        self.widget = w.VBox([self.tabs, self._acting])
        self.widget.add_class("rk-console")

    # -- targets --------------------------------------------------------------------------
    @property
    def target(self) -> Any:
        """The client the current tab acts on."""
        if self._index == 0:
            return self.link
        return self.group if self._index > len(self.gateways) else self.gateways[self._index - 1]

    def all_children(self) -> pd.DataFrame:
        """The children of every gateway, with ``gateway_id`` (the *All gateways* tab):
        joined once per listing (a relist, the refresh, lists them again)."""
        if self._all is None:
            frame = all_children({str(gw.target): self.children_frame(gw) for gw in self.gateways})
            self._parents.update(zip(frame["client_id"].astype(str), frame["gateway_id"].astype(str), strict=True))
            self._all = frame
        return self._all

    def _frame(self) -> pd.DataFrame:
        """What the current tab's picker shows."""
        if self._index == 0:
            return self.fleet
        if self._index > len(self.gateways):
            return self.all_children()
        return self.children_frame(self.gateways[self._index - 1])

    def children_frame(self, gateway: Any) -> pd.DataFrame:
        """The gateway's children: from IoTDA's inventory when the gateway has one, else from
        its own sync (``gw.children()``); a gateway object without ``children`` falls back
        on the LINK listing (matched on ``client_id``). A ``client_id`` column names them."""
        import pandas as pd

        gid = str(gateway.target)
        if gid not in self._children:
            kids = None
            if callable(getattr(gateway, "children", None)):
                try:
                    kids = gateway.children()
                except Exception as e:  # noqa: BLE001 - shown in the tab, never raised into the widget
                    self.note.value = f"<i>could not list the children of {html.escape(gid)}: {html.escape(str(e))[:300]}</i>"
                    kids = pd.DataFrame({"client_id": pd.Series(dtype="object")})
                else:  # the preview groups by parent name: the gateway's, from LINK when it lists it
                    row = self.fleet[self.fleet["client_id"] == gid] if "client_id" in self.fleet else None
                    name = row["device_name"].iloc[0] if row is not None and not row.empty else gid
                    kids = kids.assign(client_id=kids["device_id"], parent_device_name=name)
            if kids is None:
                f = self.fleet
                row = f[f["client_id"] == gid]
                kids = f.iloc[0:0] if row.empty else f[(f["parent_device_id"] == row["id"].iloc[0]).fillna(False)]
            self._children[gid] = kids
        return self._children[gid]

    def select_tab(self, key: int | str) -> None:
        """Choose a tab by index or by title ("LINK" or a gateway id)."""
        titles = list(self.tabs.titles)
        if isinstance(key, str):
            if key not in titles:
                raise InputError(f"no tab {key!r}; tabs: {', '.join(titles)}")
            key = titles.index(key)
        self.tabs.selected_index = key

    def _on_tab(self, change: dict) -> None:
        new = change["new"]
        on_timeline = new == len(self._descriptions)
        self._acting.layout.display = "none" if on_timeline else ""
        if on_timeline:  # a view, not a target: the target and a running operation stay as they are
            self.timeline.refresh_operations()
            if self.results.result is not None and not self.timeline.operation.value:
                self.timeline.choose(self.results.result)
            return
        if new is None or new == self._index:
            return
        if self.panel.running:
            self.note.value = "<span style='color:#b00'>an operation is running: wait for it or cancel it first</span>"
            self.tabs.selected_index = self._index
            return
        self._index = new
        self._point()

    def _point(self) -> None:
        if self._index == 0:
            self.picker.set_fleet(self.fleet, "id")
            self.note.value = ""
        elif self._index > len(self.gateways):
            kids = self.all_children()
            self.picker.set_fleet(kids, "client_id")
            self.note.value = "" if len(kids) else "<i>none of these gateways has children listed</i>"
        else:
            gw = self.gateways[self._index - 1]
            kids = self.children_frame(gw)
            self.picker.set_fleet(kids, "client_id")
            self.note.value = (
                "" if len(kids) else
                f"<i>no children of {html.escape(str(gw.target))} listed (IoTDA inventory or the gateway's sync); paste child ids instead</i>"
            )
        self.panel.set_target(self.target)

    def refresh(self) -> None:
        """List the fleet again (after an operation, devices are offline or gone)."""
        if self.panel.running:
            self.note.value = "<span style='color:#b00'>an operation is running: refresh when it is over</span>"
            return
        try:
            self.relist()
        except RomakitError as e:  # a closed client, an unreachable service: said here, never a traceback
            self.note.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"

    def relist(self) -> None:
        """List the fleet again and show it in the picker, keeping its filters and the
        selection of the devices still listed (the panel calls this after every run)."""
        self.fleet = self.link.devices()
        self._children.clear()
        self._all = None
        self.results.fleet = self.fleet
        self._describe()
        self.picker.refresh(self._frame())

    def _describe(self) -> None:
        link = self.link
        self._descriptions[0].value = (
            f"ROMA Connect LINK instance <code>{html.escape(str(link.target))}</code>: "
            f"{len(self.fleet):,} devices. Operations: force offline, delete devices (REST)."
        )
        for i, gw in enumerate(self.gateways, start=1):
            self._descriptions[i].value = (
                f"Gateway <code>{html.escape(str(gw.target))}</code> over MQTT "
                f"{html.escape(str(getattr(gw, 'host', '?')))}:{getattr(gw, 'port', '?')}: "
                f"{len(self.children_frame(gw)):,} children (IoTDA inventory, or the gateway's own sync). "
                "Operation: delete child devices ($sub_device_manager, as this gateway)."
            )
        if self.group is not None:
            kids = self.all_children()
            self._descriptions[-1].value = (
                f"The children of all {len(self.gateways):,} gateways: {len(kids):,} children. Operation: delete "
                "child devices in one run, each through its own gateway (one MQTT session per gateway, all at "
                "once, each at its own pace; one op id, one rollout, one result)."
            )

    def close(self, note: str = CLOSED_NOTE) -> None:
        """Disconnect the gateways (the panel connects them on first use) and leave the
        console visibly closed (``note`` instead of its controls)."""
        for gw in self.gateways:
            close = getattr(gw, "close", None)
            if callable(close):
                close()
        super().close(note)

    def __repr__(self) -> str:
        n = len(self._descriptions)
        return f"<Console: {n} target{'' if n == 1 else 's'}; {self.picker!r}>"


def console(
    link: Any,
    gateways: Iterable[Any] = (),
    *,
    fleet: pd.DataFrame | None = None,
    blast_radius: int = DEFAULT_BLAST_RADIUS,
) -> Console:
    """Picker + action panel + results for ``link`` and ``gateways``, in one widget.

    ``fleet`` skips the initial ``link.devices()`` listing when you already have it.
    """
    return Console(link, gateways, fleet=fleet, blast_radius=blast_radius)
