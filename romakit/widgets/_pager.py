"""The picker's paged table: the browser holds only the page it shows.

Filtering, search, sort and selection stay in Python (pandas/numpy over the whole
fleet); :class:`Pager` keeps the view (positions into the fleet, in display order),
formats the current page's cells (a few dozen strings) and sends them to
:class:`PageTable`, a small anywidget that draws a plain HTML table and reports
clicks (row, Ctrl/Cmd, Shift) and header clicks (sort) back. Its cost does not grow
with the fleet: a page of 15 rows is the same few hundred bytes at 100 or 1,000,000
devices. Every control is drivable from Python (:meth:`Pager.click`,
:meth:`Pager.sort_by`, the page buttons' ``.click()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anywidget
import ipywidgets as w
import numpy as np
import pandas as pd
import traitlets as t

PAGE_LENGTHS = (10, 15, 25, 50, 100)

_ESM = r"""
function render({ model, el }) {
  const table = document.createElement("table");
  table.className = "dataTable rk-page";
  el.appendChild(table);
  const draw = () => {
    const cols = model.get("columns"), rows = model.get("rows"), sel = model.get("selected");
    const sc = model.get("sort_column"), asc = model.get("sort_ascending");
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    cols.forEach((c, j) => {
      const th = document.createElement("th");
      th.textContent = c + (j === sc ? (asc ? " \u25b2" : " \u25bc") : "");
      th.title = "sort by " + c;
      th.onclick = () => model.send({ kind: "sort", column: j });
      head.appendChild(th);
    });
    const body = table.createTBody();
    rows.forEach((r, i) => {
      const tr = body.insertRow();
      if (sel[i]) tr.className = "selected";
      r.forEach((v) => { tr.insertCell().textContent = v; });
      tr.onmousedown = (e) => { if (e.shiftKey) e.preventDefault(); };
      tr.onclick = (e) => model.send({ kind: "click", row: i, ctrl: e.ctrlKey || e.metaKey, shift: e.shiftKey });
    });
    if (!rows.length) {
      const td = body.insertRow().insertCell();
      td.colSpan = Math.max(cols.length, 1);
      td.className = "rk-empty";
      td.textContent = "No matching devices";
    }
  };
  ["columns", "rows", "selected", "sort_column", "sort_ascending"].forEach((k) => model.on("change:" + k, draw));
  draw();
}
export default { render };
"""

_CSS = """
.rk-page { border-collapse: collapse; font-size: 13px; width: 100%; user-select: none; }
.rk-page th { text-align: left; cursor: pointer; border-bottom: 2px solid #999; padding: 4px 8px; white-space: nowrap; }
.rk-page td { padding: 3px 8px; border-bottom: 1px solid #ddd; cursor: pointer; white-space: nowrap; }
.rk-page tbody tr:hover { background: #eef3fa; }
.rk-page tbody tr.selected { background: #2a6cb6; color: #fff; }
.rk-page td.rk-empty { color: #777; font-style: italic; cursor: default; }
"""


class PageTable(anywidget.AnyWidget):
    """One page of rows as text; the browser sends back ``click`` and ``sort`` messages."""

    _esm = _ESM
    _css = _CSS
    columns = t.List(t.Unicode()).tag(sync=True)
    rows = t.List(t.List(t.Unicode())).tag(sync=True)
    selected = t.List(t.Bool()).tag(sync=True)
    sort_column = t.Int(-1).tag(sync=True)
    sort_ascending = t.Bool(True).tag(sync=True)


class Pager:
    """The paged view of a frame over a shared selection mask.

    ``mask`` is the picker's boolean selection over the frame's rows (mutated in place
    by clicks); ``on_select()`` is called after a click changed it.
    """

    def __init__(self, on_select: Callable[[], None], page_length: int = 15) -> None:
        self._on_select = on_select
        self.page_length = int(page_length)
        self.page = 0
        self.frame = pd.DataFrame()
        self.mask = np.zeros(0, dtype=bool)
        #: positions into the frame of the rows in view, in display order
        self.order = np.arange(0, dtype=np.int64)
        self._keep = np.arange(0, dtype=np.int64)  # the filtered positions, frame order
        self._ranks: dict[str, np.ndarray] = {}
        self._anchor: int | None = None
        self.sort_column: str | None = None
        self.ascending = True

        self.view = PageTable()
        self.view.on_msg(self._on_msg)
        self.first_button = w.Button(icon="angle-double-left", tooltip="first page", layout=w.Layout(width="40px"))
        self.prev_button = w.Button(description="Previous", layout=w.Layout(width="90px"))
        self.next_button = w.Button(description="Next", layout=w.Layout(width="90px"))
        self.last_button = w.Button(icon="angle-double-right", tooltip="last page", layout=w.Layout(width="40px"))
        self.page_box = w.BoundedIntText(value=1, min=1, max=1, description="Page", layout=w.Layout(width="150px"))
        self.length = w.Dropdown(options=sorted({*PAGE_LENGTHS, self.page_length}), value=self.page_length,
                                 description="Rows", layout=w.Layout(width="140px"))
        self.length.add_class("rk-length")
        self.info = w.HTML()
        self.first_button.on_click(lambda _b: self.go(0))
        self.prev_button.on_click(lambda _b: self.go(self.page - 1))
        self.next_button.on_click(lambda _b: self.go(self.page + 1))
        self.last_button.on_click(lambda _b: self.go(self.pages - 1))
        self.page_box.observe(lambda c: self.go(int(c["new"]) - 1), "value")
        self.length.observe(self._on_length, "value")
        controls = w.HBox([self.info, self.first_button, self.prev_button, self.page_box, self.next_button,
                           self.last_button, self.length])
        self.widget = w.VBox([self.view, controls])

    # -- data ------------------------------------------------------------------------------
    def set_frame(self, frame: pd.DataFrame, mask: np.ndarray) -> None:
        """Show rows of ``frame`` (its columns are the table's), selection from ``mask``."""
        self.frame = frame
        self.mask = mask
        self._ranks = {}
        self.sort_column, self.ascending = None, True
        self.view.columns = [str(c) for c in frame.columns]
        self.set_view(np.arange(len(frame), dtype=np.int64))

    def set_view(self, keep: np.ndarray) -> None:
        """Show the rows at positions ``keep`` (frame order; sorted as the table is), page 1."""
        self._keep = np.asarray(keep, dtype=np.int64)
        self._anchor = None
        self._order()
        self.go(0, force=True)

    def _order(self) -> None:
        if self.sort_column is None:
            self.order = self._keep
            return
        rank = self._rank(self.sort_column)
        inview = np.zeros(len(self.frame), dtype=bool)
        inview[self._keep] = True
        order = rank[inview[rank]]
        self.order = order if self.ascending else order[::-1]

    def _rank(self, column: str) -> np.ndarray:
        """The frame's positions sorted by ``column`` (computed once per column, NA last)."""
        if column not in self._ranks:
            s = self.frame[column]
            if isinstance(s.dtype, pd.CategoricalDtype):
                codes = s.cat.codes.to_numpy().astype(np.int64)
                codes[codes < 0] = np.iinfo(np.int64).max
                self._ranks[column] = np.argsort(codes, kind="stable")
            else:
                srt = s.reset_index(drop=True).sort_values(kind="stable", na_position="last")
                self._ranks[column] = srt.index.to_numpy(dtype=np.int64)
        return self._ranks[column]

    def sort_by(self, column: int | str, ascending: bool | None = None) -> None:
        """Sort the view by a column (a second click on the same column reverses)."""
        name = self.view.columns[column] if isinstance(column, int) else str(column)
        if ascending is None:
            ascending = not self.ascending if name == self.sort_column else True
        self.sort_column, self.ascending = name, bool(ascending)
        self._anchor = None
        self._order()
        self.go(0, force=True)

    # -- pages -----------------------------------------------------------------------------
    @property
    def pages(self) -> int:
        return max(1, -(-len(self.order) // self.page_length))

    def go(self, page: int, force: bool = False) -> None:
        """Show page ``page`` (0-based, clipped)."""
        page = min(max(int(page), 0), self.pages - 1)
        if page == self.page and not force:
            return
        self.page = page
        self.redraw()

    def _on_length(self, change: dict) -> None:
        first = self.page * self.page_length
        self.page_length = int(change["new"])
        self.go(first // self.page_length, force=True)

    @property
    def page_positions(self) -> np.ndarray:
        """Positions into the frame of the rows on the current page."""
        a = self.page * self.page_length
        return self.order[a:a + self.page_length]

    def redraw(self) -> None:
        """Send the current page (its cells and selection) to the browser."""
        pos = self.page_positions
        rows = _cells(self.frame.iloc[pos]) if len(pos) else []
        n, a = len(self.order), self.page * self.page_length
        with self.view.hold_sync():
            self.view.rows = rows
            self.view.selected = self.mask[pos].tolist()
            self.view.sort_column = self.view.columns.index(self.sort_column) if self.sort_column else -1
            self.view.sort_ascending = self.ascending
        self.page_box.max = self.pages
        if self.page_box.value != self.page + 1:
            self.page_box.value = self.page + 1
        self.first_button.disabled = self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.last_button.disabled = self.page >= self.pages - 1
        self.info.value = (f"Showing {a + 1:,} to {a + len(pos):,} of {n:,} entries" if n else "Showing 0 entries")

    def refresh_selection(self) -> None:
        """Re-send only the page's selection flags (after a change made in Python)."""
        sel = self.mask[self.page_positions].tolist()
        if sel != self.view.selected:
            self.view.selected = sel

    # -- clicks ----------------------------------------------------------------------------
    def _on_msg(self, _widget: Any, content: dict, _buffers: Any) -> None:
        if content.get("kind") == "click":
            self.click(int(content.get("row", -1)), ctrl=bool(content.get("ctrl")), shift=bool(content.get("shift")))
        elif content.get("kind") == "sort":
            self.sort_by(int(content.get("column", 0)))

    def click(self, row: int, *, ctrl: bool = False, shift: bool = False) -> None:
        """A click on row ``row`` of the page, as in a file list.

        Plain: that row alone (of the view; rows hidden by the filters keep their state).
        Ctrl/Cmd: toggle it. Shift: add the range from the last clicked row (any page).
        """
        i = self.page * self.page_length + int(row)
        if not 0 <= row < self.page_length or i >= len(self.order):
            return
        if shift and self._anchor is not None:
            a, b = sorted((self._anchor, i))
            self.mask[self.order[a:b + 1]] = True
        elif ctrl:
            self.mask[self.order[i]] = not self.mask[self.order[i]]
            self._anchor = i
        else:
            self.mask[self.order] = False
            self.mask[self.order[i]] = True
            self._anchor = i
        self.refresh_selection()
        self._on_select()

    # -- the view's selection as row numbers (what a browser's clicks set) ----------------
    @property
    def selected_rows(self) -> list[int]:
        """Positions in the view (display order) of the selected rows."""
        return np.flatnonzero(self.mask[self.order]).tolist()

    @selected_rows.setter
    def selected_rows(self, rows: Sequence[int]) -> None:
        r = np.asarray(list(rows), dtype=np.int64)
        r = r[(r >= 0) & (r < len(self.order))]
        self.mask[self.order] = False
        self.mask[self.order[r]] = True
        self.refresh_selection()
        self._on_select()


def _cells(view: pd.DataFrame) -> list[list[str]]:
    """A page's cells as text ('' for missing values); the browser shows them as text."""
    cols = []
    for c in view.columns:
        s = view[c]
        vals = s.astype(object).where(s.notna(), None).tolist()
        cols.append(["" if v is None else str(v) for v in vals])
    return [list(r) for r in zip(*cols, strict=True)]
