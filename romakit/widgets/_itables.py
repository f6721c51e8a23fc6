"""The one adapter to itables: every use of itables in romakit goes through this module.

Written against itables 2.9 (``itables.widget.ITable``, an anywidget), public API only.
Only the results view's failure table uses itables: the device picker holds a
million rows, so it shows one page at a time through its own paged table
(:mod:`romakit.widgets._pager`) and keeps filtering, sorting and selection in pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from itables.widget import ITable


def new_table(df: pd.DataFrame | None = None, **options: Any) -> ITable:
    """An ``ITable`` widget showing ``df`` (None: empty) with itables ``options``."""
    from itables.widget import ITable

    return ITable(df, **options)


def show(table: ITable, df: pd.DataFrame, **options: Any) -> None:
    """Show ``df`` in ``table`` (itables formats every cell)."""
    table.update(df, **options)
