"""``DevicePicker``: filter a fleet frame, select devices in a table, get their ids.

The selection lives in Python as a boolean mask over the whole fleet, so it
survives filter changes; the table (itables' ``ITable`` with ``maxBytes=0``, so
every filtered row is really there and selectable) only shows the filtered view
and mirrors the part of the selection that is in it. Filters, "select all
filtered" and pasted ids are vectorised pandas/numpy steps.

Redrawing the table is the one cost that grows with the view: itables formats
every cell through pandas' display formatter (about 2-4 s for 100,000 rows here).
:class:`_RowCache` encodes each fleet row once, in itables' own cell format, and
builds a view's data by joining the cached rows (milliseconds); it checks itself
against itables' formatter on sample rows when the fleet is set and steps aside
(plain ``ITable.update``) if they ever disagree, e.g. after an itables upgrade.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ipywidgets as w
import numpy as np
import pandas as pd

from romakit.errors import InputError

log = logging.getLogger("romakit.widgets")

#: columns shown in the table when present (after the id column), in this order
DISPLAY_COLUMNS = ("device_name", "node_id", "product_name", "online_status", "parent_device_name")
#: columns the text filter looks in
SEARCH_COLUMNS = ("device_name", "node_id", "client_id")
ANY = "(any)"
NO_GATEWAY = "(no gateway)"
_SPLIT = re.compile(r"[\s,;]+")


class DevicePicker:
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
        self._syncing = False
        from itables.widget import ITable

        # -- controls ------------------------------------------------------------------
        self.text = w.Text(
            placeholder="name, node id or client id contains…",
            description="Search",
            continuous_update=False,
            layout=w.Layout(width="340px"),
        )
        self.status = w.Dropdown(description="Status", layout=w.Layout(width="240px"))
        self.product = w.SelectMultiple(
            description="Product", rows=4, layout=w.Layout(width="420px"),
            tooltip="none selected = every product",
        )
        self.gateway = w.Combobox(
            placeholder="gateway name (empty = any)",
            description="Gateway",
            ensure_option=False,
            continuous_update=False,
            layout=w.Layout(width="340px"),
        )
        self.select_all_button = w.Button(description="Select all filtered", icon="check-square")
        self.clear_button = w.Button(description="Clear selection", icon="square")
        self.reset_filters_button = w.Button(description="Reset filters", icon="filter")
        self.count_label = w.HTML()
        self.paste = w.Textarea(
            placeholder="paste device ids: comma, space or newline separated",
            layout=w.Layout(width="520px", height="60px"),
        )
        self.paste_button = w.Button(description="Select pasted ids", icon="paste")
        self.paste_report = w.HTML()
        self.filter_note = w.HTML()
        self.table = ITable(None, select=True, maxBytes=0, showIndex=False)

        self.text.observe(self._on_filter, "value")
        self.status.observe(self._on_filter, "value")
        self.product.observe(self._on_filter, "value")
        self.gateway.observe(self._on_filter, "value")
        self.table.observe(self._on_table_selection, "selected_rows")
        self.select_all_button.on_click(lambda _b: self.select_all_filtered())
        self.clear_button.on_click(lambda _b: self.clear())
        self.reset_filters_button.on_click(lambda _b: self.reset_filters())
        self.paste_button.on_click(lambda _b: self._on_paste())

        paste_box = w.VBox([w.HBox([self.paste, self.paste_button]), self.paste_report])
        paste = w.Accordion(children=[paste_box], titles=("Paste ids",))
        self.widget = w.VBox(
            [
                w.HBox([self.text, self.status, self.gateway]),
                w.HBox([self.product, w.VBox([self.reset_filters_button, self.filter_note])]),
                w.HBox([self.select_all_button, self.clear_button, self.count_label]),
                paste,
                self.table,
            ]
        )
        self.set_fleet(fleet, id_column)

    # -- the fleet ---------------------------------------------------------------------
    def set_fleet(self, fleet: pd.DataFrame, id_column: str | None = None) -> None:
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
        self._search = _search_text(f)
        cols = self._columns_arg or [id_column, *(c for c in DISPLAY_COLUMNS if c in f.columns and c != id_column)]
        missing = [c for c in cols if c not in f.columns]
        if missing:
            raise InputError(f"columns not in the fleet: {', '.join(missing)}")
        self._display = f[list(cols)]
        self._rows = _RowCache.build(self._display)
        self._set_filter_options()
        self._show(self._pos, force=True)
        for cb in list(self._listeners):  # a new fleet is a new (empty) selection
            cb(self)

    def _set_filter_options(self) -> None:
        f = self.fleet
        self._syncing = True
        try:
            self.text.value = ""
            self.status.options = [(ANY, None)] + [
                (str(s), str(s)) for s in _values(f, "online_status")
            ]
            self.status.value = None
            counts = f["product_name"].value_counts() if "product_name" in f.columns else pd.Series(dtype=int)
            self.product.options = [(f"{name} ({n:,})", str(name)) for name, n in counts.items() if n]
            self.product.value = ()
            gws = _values(f, "parent_device_name")
            has_direct = "parent_device_name" in f.columns and bool(f["parent_device_name"].isna().any())
            self.gateway.options = ([NO_GATEWAY] if has_direct else []) + [str(g) for g in gws]
            self.gateway.value = ""
            self.gateway.disabled = not gws
            self.product.disabled = counts.empty
            self.status.disabled = "online_status" not in f.columns
        finally:
            self._syncing = False

    # -- filtering -----------------------------------------------------------------------
    def _on_filter(self, _change: Any = None) -> None:
        if not self._syncing:
            self.apply_filters()

    def filter_mask(self) -> np.ndarray:
        """Boolean mask over the fleet for the current filter values."""
        f = self.fleet
        m = np.ones(len(f), dtype=bool)
        notes = []
        text = self.text.value.strip().lower()
        if text:
            m &= self._search.str.contains(text, regex=False).to_numpy(dtype=bool)
        if self.status.value is not None:
            m &= (f["online_status"].astype("string") == self.status.value).fillna(False).to_numpy(dtype=bool)
        if self.product.value:
            m &= f["product_name"].astype("string").isin(list(self.product.value)).to_numpy(dtype=bool)
        gw = self.gateway.value.strip()
        if gw and "parent_device_name" in f.columns:
            if gw == NO_GATEWAY:
                m &= f["parent_device_name"].isna().to_numpy(dtype=bool)
            elif gw in self.gateway.options:
                m &= (f["parent_device_name"] == gw).fillna(False).to_numpy(dtype=bool)
            else:
                notes.append(f"no gateway named {html.escape(gw)!s}: gateway filter ignored")
        self.filter_note.value = "<br>".join(f"<i>{n}</i>" for n in notes)
        return m

    def apply_filters(self) -> None:
        """Recompute the filtered view from the filter controls and redraw the table."""
        self._show(np.flatnonzero(self.filter_mask()))

    def reset_filters(self) -> None:
        """Every filter back to "any" (the selection is kept)."""
        self._syncing = True
        try:
            self.text.value = ""
            self.status.value = None
            self.product.value = ()
            self.gateway.value = ""
        finally:
            self._syncing = False
        self.apply_filters()

    def _show(self, pos: np.ndarray, force: bool = False) -> None:
        same = not force and len(pos) == len(self._pos) and np.array_equal(pos, self._pos)
        self._pos = pos
        if not same:
            view = self._display.iloc[pos]
            self._syncing = True
            try:
                if self._rows is not None:
                    try:
                        self._rows.feed(self.table, view, pos, self.page_length)
                    except Exception:  # noqa: BLE001 - an itables change: fall back for good
                        log.warning("picker: fast table update failed; using ITable.update", exc_info=True)
                        self._rows = None
                if self._rows is None:
                    self.table.update(
                        view, maxBytes=0, select=True, pageLength=self.page_length, showIndex=False, selected_rows=[]
                    )
            finally:
                self._syncing = False
        self._mirror_selection()

    # -- selection ---------------------------------------------------------------------
    def _on_table_selection(self, change: dict) -> None:
        if self._syncing:
            return
        rows = np.asarray(change["new"] or [], dtype=np.int64)
        rows = rows[(rows >= 0) & (rows < len(self._pos))]
        self._mask[self._pos] = False
        self._mask[self._pos[rows]] = True
        self._changed(mirror=False)

    def _mirror_selection(self) -> None:
        rows = np.flatnonzero(self._mask[self._pos]).tolist()
        self._syncing = True
        try:
            if rows != list(self.table.selected_rows):
                self.table.selected_rows = rows
        finally:
            self._syncing = False
        self._update_label()

    def _changed(self, mirror: bool = True) -> None:
        if mirror:
            self._mirror_selection()
        else:
            self._update_label()
        for cb in list(self._listeners):
            cb(self)

    def _update_label(self) -> None:
        n = int(self._mask.sum())
        shown = len(self._pos)
        hidden = n - int(self._mask[self._pos].sum())
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
        tokens = _SPLIT.split(ids.strip()) if isinstance(ids, str) else [str(i).strip() for i in ids]
        tokens = [t for t in tokens if t]
        found = np.full(len(tokens), -1, dtype=np.int64)
        if self._int_ids:  # only plain digit strings can be LINK ids (and must fit int64)
            idx = [i for i, t in enumerate(tokens) if t.isdigit() and len(t) <= 18]
            if idx:
                found[idx] = self._index.get_indexer([int(tokens[i]) for i in idx])
        elif tokens:
            found[:] = self._index.get_indexer(tokens)
        unknown = [t for t, p in zip(tokens, found, strict=True) if p < 0]
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
        """The fleet rows the filters let through."""
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

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return _bundle(self.widget, repr(self), **kwargs)


class _RowCache:
    """Each display row encoded once as an itables data row; views are joins of them."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    @classmethod
    def build(cls, display: pd.DataFrame) -> _RowCache | None:
        """The cache, or None when a column type is not covered or the self-check fails."""
        try:
            cols = [_cells(display[c]) for c in display.columns]
            rows = np.empty(len(display), dtype=object)
            rows[:] = [json.dumps(list(r)) for r in zip(*cols, strict=True)] if cols else []
            cache = cls(rows)
            if cache._agrees_with_itables(display):
                return cache
            log.info("picker: itables formats cells differently than expected; using ITable.update")
        except _Unsupported as e:
            log.debug("picker: row cache not used: %s", e)
        except Exception:  # noqa: BLE001 - the plain path always works
            log.warning("picker: row cache failed; using ITable.update", exc_info=True)
        return None

    def _agrees_with_itables(self, display: pd.DataFrame) -> bool:
        from itables.javascript import get_itables_extension_arguments

        na = np.flatnonzero(display.isna().any(axis=1).to_numpy())[:50]
        sample = np.unique(np.concatenate([np.arange(min(len(display), 50)), na])).astype(np.int64)
        if not len(sample):
            return True
        args, _ = get_itables_extension_arguments(display.iloc[sample], maxBytes=0, select=True, showIndex=False)
        return json.loads(args["data_json"]) == json.loads(self.data_json(sample))

    def data_json(self, pos: np.ndarray) -> str:
        return "[" + ", ".join(self.rows[pos].tolist()) + "]"

    def feed(self, table: Any, view: pd.DataFrame, pos: np.ndarray, page_length: int) -> None:
        """Show ``view`` (display rows ``pos``) in ``table``, as ``table.update(view)`` would."""
        from itables.javascript import get_itables_extension_arguments

        # itables derives everything but the data from the columns and from whether the
        # view fits in one page: give it a few rows only, then put the real data in
        head = view.iloc[: min(len(view), page_length + 1)]
        args, other = get_itables_extension_arguments(head, maxBytes=0, select=True, pageLength=page_length, showIndex=False)
        args["data_json"] = self.data_json(pos)
        for k in ("downsampling_warning", "filtered_row_count", "filtered_column_count"):
            args.pop(k, None)
        table._df = view
        table.classes = other["classes"]
        table._style = other["style"]
        table.selected_rows = []
        table._dt_args = args


class _Unsupported(Exception):
    pass


def _cells(s: pd.Series) -> list:
    """A column's cells as itables sends them: ints as ints, text HTML-escaped, categories by rank."""
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return (s.cat.codes.to_numpy(dtype=np.int64) + 1).tolist()
    if pd.api.types.is_bool_dtype(dt):
        raise _Unsupported(f"bool column {s.name!r}")
    if pd.api.types.is_integer_dtype(dt):
        return s.to_numpy(dtype=object, na_value="<NA>").tolist()
    if pd.api.types.is_string_dtype(dt):
        vals = s.to_numpy(dtype=object, na_value=None)
        if not all(v is None or isinstance(v, str) for v in vals):
            raise _Unsupported(f"non-text values in {s.name!r}")
        return [
            "&lt;NA&gt;" if v is None else v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            for v in vals
        ]
    raise _Unsupported(f"column {s.name!r} of dtype {dt}")


def _search_text(f: pd.DataFrame) -> pd.Series:
    cols = [c for c in SEARCH_COLUMNS if c in f.columns]
    if not cols:
        return pd.Series([""] * len(f), dtype="string")
    s = f[cols[0]].astype("string").fillna("")
    for c in cols[1:]:
        s = s + "\x1f" + f[c].astype("string").fillna("")
    return s.str.lower()


def _values(f: pd.DataFrame, col: str) -> list:
    if col not in f.columns:
        return []
    s = f[col]
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        return [c for c in s.cat.categories if c in present]
    return sorted(s.dropna().astype(str).unique())


def _bundle(widget: w.Widget, text: str, **kwargs: Any) -> dict:
    """The widget's display bundle with a short, stable ``text/plain`` (nbval compares it)."""
    make = getattr(widget, "_repr_mimebundle_", None)
    data = make(**kwargs) if callable(make) else {}  # a closed widget has none
    if isinstance(data, tuple):
        data = data[0]
    data = dict(data or {})
    data["text/plain"] = text
    return data
