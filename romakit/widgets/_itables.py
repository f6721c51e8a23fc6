"""The one adapter to itables: every use of itables in romakit goes through this module.

Written against itables 2.9 (``itables.widget.ITable``, an anywidget). Public API is
used wherever it exists: ``ITable(df, **options)``, ``ITable.update``, the ``df``,
``selected_rows``, ``classes`` and ``style`` attributes, and
``itables.javascript.get_itables_extension_arguments`` (the function ``ITable``
itself turns a frame into the browser's arguments with).

Two private attributes are still touched, both only here and both for one reason:
:class:`ViewTable`'s fast path. Redrawing a view through ``ITable.update`` formats
every cell through pandas' display formatter (about 2-4 s for 100,000 rows here).
:class:`RowCache` encodes each row once, in itables' own cell format, and a view's
data is a join of cached rows (milliseconds). ITable has no public way to hand it
data that is already encoded, so :func:`_put` writes ``_dt_args`` (the synced
DataTable arguments) and ``_df`` (what ``ITable.df`` returns and ``update`` starts
from). :func:`sent_arguments` reads ``_dt_args``: ITable has no public reader of
what it sends. The cache checks itself against itables' formatter on sample rows
when it is built and the fast path steps aside for good (plain ``ITable.update``) if
they disagree or a write fails, e.g. after an itables upgrade.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from itables.widget import ITable

log = logging.getLogger("romakit.widgets")

#: DataTable arguments derived from a view's data, recomputed with every view
_PER_VIEW = ("downsampling_warning", "filtered_row_count", "filtered_column_count")


def new_table(df: pd.DataFrame | None = None, **options: Any) -> ITable:
    """An ``ITable`` widget showing ``df`` (None: empty) with itables ``options``."""
    from itables.widget import ITable

    return ITable(df, **options)


def show(table: ITable, df: pd.DataFrame, **options: Any) -> None:
    """Show ``df`` in ``table`` (itables formats every cell)."""
    table.update(df, **options)


def arguments(df: pd.DataFrame, **options: Any) -> tuple[dict, dict]:
    """What ``ITable(df, **options)`` would send: (DataTable arguments, other attributes)."""
    from itables.javascript import get_itables_extension_arguments

    return get_itables_extension_arguments(df, **options)


def sent_arguments(table: ITable) -> dict:
    """A copy of the DataTable arguments ``table`` sends to the browser."""
    return dict(table._dt_args)  # private: ITable 2.9 has no public reader of them


def _put(table: ITable, df: pd.DataFrame, dt_args: dict, other: dict) -> None:
    """Show ``df`` with arguments already made (the fast path; see the module docstring)."""
    table._df = df  # private: what table.df returns and table.update starts from
    table.classes = other["classes"]
    table.style = other["style"]
    table.selected_rows = []
    table._dt_args = dt_args  # private: ITable 2.9 takes data only through update(df), which re-formats it


class ViewTable:
    """An ``ITable`` showing row subsets ("views") of one frame, fast when it can be.

    ``table`` is the ITable widget (public: observe its ``selected_rows``). Call
    :meth:`set_frame` with the frame whose rows are shown, then :meth:`show` with
    the positions of the rows to show and the page length.
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.table = new_table(None, **options)
        self.frame: pd.DataFrame = pd.DataFrame()
        #: the encoded rows, or None when the plain ``ITable.update`` path is used
        self.rows: RowCache | None = None

    def set_frame(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.rows = RowCache.build(frame, self.options)

    def show(self, pos: np.ndarray, page_length: int) -> None:
        """Show the frame's rows at ``pos`` (in that order), none of them selected."""
        view = self.frame.iloc[pos]
        if self.rows is not None:
            try:
                self.rows.feed(self.table, view, pos, page_length)
                return
            except Exception:  # noqa: BLE001 - an itables change: fall back for good
                log.warning("picker: fast table update failed; using ITable.update", exc_info=True)
                self.rows = None
        show(self.table, view, **self.options, pageLength=page_length, lengthMenu=length_menu(page_length), selected_rows=[])


class RowCache:
    """Each row of a frame encoded once as an itables data row; views are joins of them."""

    def __init__(self, rows: np.ndarray, options: dict) -> None:
        self.rows = rows
        self.options = options

    @classmethod
    def build(cls, frame: pd.DataFrame, options: dict) -> RowCache | None:
        """The cache, or None when a column type is not covered or the self-check fails."""
        try:
            cols = [_cells(frame[c]) for c in frame.columns]
            rows = np.empty(len(frame), dtype=object)
            rows[:] = [json.dumps(list(r)) for r in zip(*cols, strict=True)] if cols else []
            cache = cls(rows, options)
            if cache._agrees_with_itables(frame):
                return cache
            log.info("picker: itables formats cells differently than expected; using ITable.update")
        except _Unsupported as e:
            log.debug("picker: row cache not used: %s", e)
        except Exception:  # noqa: BLE001 - the plain path always works
            log.warning("picker: row cache failed; using ITable.update", exc_info=True)
        return None

    def _agrees_with_itables(self, frame: pd.DataFrame) -> bool:
        na = np.flatnonzero(frame.isna().any(axis=1).to_numpy())[:50]
        sample = np.unique(np.concatenate([np.arange(min(len(frame), 50)), na])).astype(np.int64)
        if not len(sample):
            return True
        args, _ = arguments(frame.iloc[sample], **self.options)
        return json.loads(args["data_json"]) == json.loads(self.data_json(sample))

    def data_json(self, pos: np.ndarray) -> str:
        return "[" + ", ".join(self.rows[pos].tolist()) + "]"

    def feed(self, table: ITable, view: pd.DataFrame, pos: np.ndarray, page_length: int) -> None:
        """Show ``view`` (rows ``pos``) in ``table``, as ``table.update(view)`` would."""
        # itables derives everything but the data from the columns and from whether the
        # view fits in one page: give it a few rows only, then put the real data in
        head = view.iloc[: min(len(view), page_length + 1)]
        args, other = arguments(head, **self.options, pageLength=page_length, lengthMenu=length_menu(page_length))
        args["data_json"] = self.data_json(pos)
        for k in _PER_VIEW:
            args.pop(k, None)
        _put(table, view, args, other)


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


def length_menu(page_length: int) -> list[int]:
    """The table's page-length choices, the current one among them (else its select is blank)."""
    return sorted({10, 25, 50, 100, int(page_length)})
