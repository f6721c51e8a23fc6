"""``FilterForm``: the picker's filter controls and the mask they make over a fleet.

Text search (name, node id, client id), online status, products and parent gateway;
every filter is a vectorised pandas/numpy step over the whole fleet. The controls are
public attributes (the picker shows them as its own: ``picker.text`` is
``picker.filters.text``), so the form is drivable from Python.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import numpy as np
import pandas as pd

#: columns the text filter looks in
SEARCH_COLUMNS = ("device_name", "node_id", "client_id")
ANY = "(any)"
NO_GATEWAY = "(no gateway)"


class FilterForm:
    """Filter controls over a fleet frame; :meth:`mask` gives the rows they let through.

    ``on_change(cb)`` calls ``cb()`` after the user changes a filter (not while
    :meth:`set_fleet` or :meth:`reset` set the controls: :meth:`reset` calls it once).
    """

    def __init__(self) -> None:
        self.fleet = pd.DataFrame()
        self._search: Any = None  # the lower-cased search text, built on the first search
        self._quiet = False
        self._callbacks: list[Callable[[], None]] = []
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
        self.reset_button = w.Button(description="Reset filters", icon="filter")
        self.note = w.HTML()
        for control in (self.text, self.status, self.product, self.gateway):
            control.observe(self._changed, "value")
        self.reset_button.on_click(lambda _b: self.reset())
        #: the form's rows, laid out by the picker among its own
        self.rows = [
            w.HBox([self.text, self.status, self.gateway]),
            w.HBox([self.product, w.VBox([self.reset_button, self.note])]),
        ]

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def _changed(self, _change: Any = None) -> None:
        if self._quiet:
            return
        for cb in list(self._callbacks):
            cb()

    def set_fleet(self, fleet: pd.DataFrame) -> None:
        """Filter ``fleet`` from now on: the options follow it, every filter back to "any"."""
        f = fleet
        self.fleet = f
        self._search = None
        self._quiet = True
        try:
            self.text.value = ""
            self.status.options = [(ANY, "")] + [(str(s), str(s)) for s in _values(f, "online_status")]
            self.status.value = ""  # not None: a Dropdown shows None as a blank box
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
            self._quiet = False

    def values(self) -> dict[str, Any]:
        """The filter values now (for :meth:`restore` after the fleet is listed again)."""
        return {"text": self.text.value, "status": self.status.value, "product": self.product.value,
                "gateway": self.gateway.value}

    def restore(self, values: dict[str, Any]) -> None:
        """Put back :meth:`values` (quietly), skipping what the new fleet no longer offers."""
        offered = {v for _, v in self.status.options}
        products = {v for _, v in self.product.options}
        self._quiet = True
        try:
            self.text.value = values.get("text", "")
            if values.get("status") in offered:
                self.status.value = values["status"]
            self.product.value = tuple(p for p in values.get("product", ()) if p in products)
            self.gateway.value = values.get("gateway", "")
        finally:
            self._quiet = False

    def reset(self) -> None:
        """Every filter back to "any"; ``on_change`` callbacks are called once."""
        self._quiet = True
        try:
            self.text.value = ""
            self.status.value = ""
            self.product.value = ()
            self.gateway.value = ""
        finally:
            self._quiet = False
        self._changed()

    def mask(self) -> np.ndarray:
        """Boolean mask over the fleet for the current filter values."""
        f = self.fleet
        m = np.ones(len(f), dtype=bool)
        notes = []
        text = self.text.value.strip().lower()
        if text:
            if self._search is None:
                self._search = _search_text(f)
            m &= _contains(self._search, text)
        if self.status.value:
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
        self.note.value = "<br>".join(f"<i>{n}</i>" for n in notes)
        return m

    def __repr__(self) -> str:
        on = [name for name, c in (("text", self.text), ("status", self.status), ("product", self.product),
                                   ("gateway", self.gateway)) if c.value not in ("", None, ())]
        return f"<FilterForm: {', '.join(on) if on else 'no filter'}>"


def _search_text(f: pd.DataFrame) -> Any:
    """The searched columns joined and lower-cased, as one Arrow string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = [c for c in SEARCH_COLUMNS if c in f.columns]
    if not cols:
        return pa.array([""] * len(f), type=pa.string())
    parts = [pc.fill_null(pa.array(f[c].astype(object).where(f[c].notna(), None).tolist()
                                   if not pd.api.types.is_string_dtype(f[c].dtype) else f[c], type=pa.string(),
                                   from_pandas=True), "") for c in cols]
    return pc.utf8_lower(pc.binary_join_element_wise(*parts, "\x1f"))


def _contains(search: Any, text: str) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.match_substring(search, text).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _values(f: pd.DataFrame, col: str) -> list:
    if col not in f.columns:
        return []
    s = f[col]
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        return [c for c in s.cat.categories if c in present]
    return sorted(s.dropna().astype(str).unique())
