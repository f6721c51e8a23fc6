"""``DevicePicker``: filter a fleet frame, select devices in a table, get their ids.

The selection lives in Python as a boolean mask over the whole fleet, so it
survives filter changes. Filters and the one search box (:class:`FilterForm`, the
picker's own), sort, "select all filtered" (every row the filters and search let
through, on any page) and pasted ids are vectorised pandas/numpy steps; the browser
holds only the page it shows (:mod:`romakit.widgets._pager`), so the picker costs
the same in the page at 100 or 1,000,000 devices.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ipywidgets as w
import numpy as np
import pandas as pd

from romakit.errors import InputError
from romakit.ids import link_id
from romakit.widgets._base import Widget
from romakit.widgets._pager import Pager
from romakit.widgets.filters import ANY, NO_GATEWAY, SEARCH_COLUMNS, FilterForm

#: columns shown in the table when present (after the id column), in this order
DISPLAY_COLUMNS = ("device_name", "node_id", "product_name", "online_status", "parent_device_name")
_SPLIT = re.compile(r"[\s,;]+")

__all__ = ["ANY", "DISPLAY_COLUMNS", "NO_GATEWAY", "SEARCH_COLUMNS", "DevicePicker", "FilterForm"]


class DevicePicker(Widget):
    """A filterable, selectable table of devices; ``.selected`` gives the chosen ids.

    ``fleet`` is a device frame such as ``link.devices()``. ``id_column`` names the ids
    handed out: ``"id"`` (LINK integer ids, the default) or ``"client_id"`` (IoTDA
    device ids, for a gateway's children). Every control is a public attribute, so the
    picker can be driven from Python: set ``picker.text.value``, call
    ``picker.select_all_button.click()``, and so on.
    """

    def __init__(
        self,
        fleet: pd.DataFrame,
        id_column: str = "id",
        *,
        columns: Sequence[str] | None = None,
        page_length: int = 15,
    ) -> None:
        self.page_length = page_length
        self._columns_arg = columns
        self._listeners: list[Callable[[DevicePicker], None]] = []
        #: the pasted tokens that matched no device, from the last paste
        self.unknown_pasted: list[str] = []

        # -- controls ------------------------------------------------------------------
        self.filters = FilterForm()
        self.text = self.filters.text
        self.status = self.filters.status
        self.product = self.filters.product
        self.gateway = self.filters.gateway
        self.reset_filters_button = self.filters.reset_button
        self.filter_note = self.filters.note
        self.select_all_button = w.Button(description="Select all filtered", icon="check-square")
        self.clear_button = w.Button(description="Clear selection", icon="square")
        self.count_label = w.HTML()
        self.paste = w.Textarea(
            placeholder="paste device ids: comma, space or newline separated",
            layout=w.Layout(width="520px", height="60px"),
        )
        self.paste_button = w.Button(description="Select pasted ids", icon="paste")
        self.paste_report = w.HTML()
        #: the paged table (``table.click(row, ctrl=..., shift=...)``, ``table.sort_by(col)``,
        #: ``table.next_button.click()``, ``table.selected_rows``)
        self.table = Pager(lambda: self._changed(mirror=False), page_length)

        self.filters.on_change(self._on_filter)
        self.select_all_button.on_click(lambda _b: self.select_all_filtered())
        self.clear_button.on_click(lambda _b: self.clear())
        self.paste_button.on_click(lambda _b: self._on_paste())

        paste_box = w.VBox([w.HBox([self.paste, self.paste_button]), self.paste_report])
        paste = w.Accordion(children=[paste_box], titles=("Paste ids",))
        self.widget = w.VBox(
            [
                *self.filters.rows,
                w.HBox([self.select_all_button, self.clear_button, self.count_label]),
                w.HTML("<small>Click a row to select it alone; <b>Ctrl</b>-click (<b>&#8984;</b> on a Mac) adds or "
                       "removes a row, <b>Shift</b>-click a range; <i>Select all filtered</i> takes every row the filters "
                       "and search show, on every page; click a column title to sort.</small>"),
                paste,
                self.table.widget,
            ]
        )
        self.widget.add_class("rk-picker")
        self.set_fleet(fleet, id_column)

    # -- the fleet ---------------------------------------------------------------------
    def refresh(self, fleet: pd.DataFrame) -> None:
        """Show a new listing of the same fleet (after an operation): the filters and the
        selection of the devices still listed are kept; devices gone leave both."""
        keep = set(self.selected)
        values = self.filters.values()
        self.set_fleet(fleet, self.id_column, notify=False)
        self.filters.restore(values)
        self._mask[:] = self._index.isin(list(keep))
        self._show(np.flatnonzero(self.filter_mask()))
        self._changed()

    def drop(self, ids: Iterable[Any], *, gone: Iterable[Any] = ()) -> int:
        """Take ``ids`` out of the selection (what a run acted on) and ``gone`` out of the
        fleet (what it deleted); returns how many were selected. Filters are kept."""
        hit = self._index.isin(list(ids))
        dropped = int((self._mask & hit).sum())
        self._mask[hit] = False
        gone = list(gone)
        if gone:
            keep = ~self._index.isin(gone)
            self.refresh(self.fleet[keep])
        else:
            self._changed()
        return dropped

    def set_fleet(self, fleet: pd.DataFrame, id_column: str | None = None, *, notify: bool = True) -> None:
        """Show another fleet (e.g. a gateway's children); selection and filters reset."""
        id_column = id_column or self.id_column
        if not isinstance(fleet, pd.DataFrame):
            raise InputError(f"fleet must be a pandas DataFrame, got {type(fleet).__name__}")
        if id_column not in fleet.columns:
            raise InputError(f"id_column {id_column!r} is not a column of the fleet; columns: {', '.join(map(str, fleet.columns))}")
        f = fleet.reset_index(drop=True)
        ids = f[id_column]
        if ids.isna().any():
            raise InputError(f"{int(ids.isna().sum())} devices have no {id_column}")
        dup = ids[ids.duplicated()]
        if len(dup):
            raise InputError(f"{len(dup)} duplicated {id_column} values in the fleet, e.g. {dup.iloc[:5].tolist()}")
        self.id_column = id_column
        self.fleet = f
        self._int_ids = pd.api.types.is_integer_dtype(ids.dtype)
        self._ids = ids.astype("int64").to_numpy() if self._int_ids else ids.astype(str).to_numpy(dtype=object)
        self._index = pd.Index(self._ids)
        self._mask = np.zeros(len(f), dtype=bool)
        self._pos = np.arange(len(f))
        cols = self._columns_arg or [id_column, *(c for c in DISPLAY_COLUMNS if c in f.columns and c != id_column)]
        missing = [c for c in cols if c not in f.columns]
        if missing:
            raise InputError(f"columns not in the fleet: {', '.join(missing)}")
        self._display = f[list(cols)]
        self.filters.set_fleet(f)
        self.table.set_frame(self._display, self._mask)
        self._update_label()
        if notify:
            for cb in list(self._listeners):  # a new fleet is a new (empty) selection
                cb(self)

    @property
    def int_ids(self) -> bool:
        """True when the ids handed out are LINK integers, False for IoTDA device ids."""
        return self._int_ids

    # -- filtering -----------------------------------------------------------------------
    def _on_filter(self) -> None:
        self.apply_filters()

    def filter_mask(self) -> np.ndarray:
        """Boolean mask over the fleet for the current filter values."""
        return self.filters.mask()

    def apply_filters(self) -> None:
        """Recompute the filtered view from the filter controls and redraw the table."""
        self._show(np.flatnonzero(self.filter_mask()))

    def reset_filters(self) -> None:
        """Every filter back to "any" (the selection is kept)."""
        self.filters.reset()

    def _show(self, pos: np.ndarray) -> None:
        self._pos = pos
        self.table.set_view(pos)
        self._update_label()

    # -- selection ---------------------------------------------------------------------
    def _mirror_selection(self) -> None:
        self.table.refresh_selection()
        self._update_label()

    def _changed(self, mirror: bool = True) -> None:
        if mirror:
            self._mirror_selection()
        else:
            self._update_label()
        for cb in list(self._listeners):
            cb(self)

    @property
    def hidden(self) -> int:
        """Selected devices the filters do not show (an action sends them too)."""
        return int(self._mask.sum()) - int(self._mask[self._pos].sum())

    def _update_label(self) -> None:
        n = int(self._mask.sum())
        shown = len(self._pos)
        hidden = self.hidden
        extra = f", {hidden:,} of them hidden by the filters" if hidden else ""
        self.count_label.value = f"<b>{n:,} selected</b> of {shown:,} shown ({len(self.fleet):,} total){extra}"

    def select_all_filtered(self) -> None:
        """Add every device of the filtered view to the selection."""
        self._mask[self._pos] = True
        self._changed()

    def clear(self) -> None:
        """Unselect everything (hidden devices included)."""
        self._mask[:] = False
        self._changed()

    def select(self, ids: Iterable[Any] | str, *, replace: bool = False) -> list[str]:
        """Select devices by id (a list, or text with comma/space/newline separators).

        Returns the tokens that match no device of the fleet (they are reported, never
        silently dropped). ``replace=True`` clears the selection first.
        """
        raw = _SPLIT.split(ids.strip()) if isinstance(ids, str) else list(ids)
        tokens = [t for t in (v.strip() if isinstance(v, str) else v for v in raw) if t != ""]
        found = np.full(len(tokens), -1, dtype=np.int64)
        if self._int_ids:  # LINK ids read exactly, as link_ids reads them (a refused value matches nothing)
            parsed = [link_id(t) for t in tokens]
            idx = [i for i, n in enumerate(parsed) if isinstance(n, int)]
            if idx:
                found[idx] = self._index.get_indexer([parsed[i] for i in idx])
        elif tokens:
            found[:] = self._index.get_indexer([str(t) for t in tokens])
        unknown = [str(t) for t, p in zip(tokens, found, strict=True) if p < 0]
        if replace:
            self._mask[:] = False
        self._mask[found[found >= 0]] = True
        self._changed()
        return list(dict.fromkeys(unknown))

    def _on_paste(self) -> None:
        text = self.paste.value
        tokens = [t for t in _SPLIT.split(text.strip()) if t]
        if not tokens:
            self.paste_report.value = "<i>nothing pasted</i>"
            return
        unknown = self.select(text)
        known = len(set(tokens)) - len(unknown)
        msg = f"selected {known:,} pasted id{'s' if known != 1 else ''}"
        if unknown:
            shown = ", ".join(html.escape(u) for u in unknown[:20])
            more = f" and {len(unknown) - 20:,} more" if len(unknown) > 20 else ""
            msg += f"; <b style='color:#b00'>{len(unknown):,} not in this fleet</b>: {shown}{more}"
        self.paste_report.value = msg
        self.unknown_pasted = unknown

    def on_selection_change(self, callback: Callable[[DevicePicker], None]) -> None:
        """Call ``callback(picker)`` whenever the selection changes."""
        self._listeners.append(callback)

    # -- results -------------------------------------------------------------------------
    @property
    def selected(self) -> list:
        """The selected ids in fleet order: ints for ``id_column="id"``, strings otherwise."""
        return self._ids[self._mask].tolist()

    @property
    def selected_frame(self) -> pd.DataFrame:
        """The fleet rows of the selected devices."""
        return self.fleet[self._mask]

    @property
    def shown(self) -> pd.DataFrame:
        """The fleet rows the filters and search let through, in fleet order."""
        return self.fleet.iloc[self._pos]

    def names(self) -> dict:
        """id -> device_name of the selected devices (for nicer outcome rows)."""
        if "device_name" not in self.fleet.columns:
            return {}
        names = self.fleet.loc[self._mask, "device_name"].astype(object).where(lambda s: s.notna(), None)
        return dict(zip(self.selected, names.tolist(), strict=True))

    def __repr__(self) -> str:
        return (
            f"<DevicePicker: {int(self._mask.sum()):,} selected of {len(self._pos):,} shown "
            f"({len(self.fleet):,} total), ids from {self.id_column!r}>"
        )
