"""A result's frame and metadata to and from Parquet and CSV, dtypes kept exactly."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from romakit.results.atomic import replacing
from romakit.results.schema import CATEGORICAL, COLUMNS
from romakit.textsafe import csv_frame, csv_values

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_META_KEY = b"romakit"
#: the result facts a file keeps beside its rows
META_FIELDS = ("op_id", "operation", "target", "stopped", "parent_op_id", "requested")


def meta_kwargs(meta: dict[str, Any]) -> dict[str, Any]:
    """The result's constructor keywords found in ``meta`` (missing ones left out)."""
    return {k: meta[k] for k in META_FIELDS if meta.get(k) is not None}


def _sidecar(path: str | os.PathLike) -> str:
    return os.fspath(path) + ".meta.json"


def write_parquet(frame: pd.DataFrame, meta: dict[str, Any], path: str | os.PathLike) -> None:
    """``frame`` as Parquet with ``meta`` in the schema's metadata (written whole or not
    at all: :func:`romakit.results.atomic.replacing`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[_META_KEY] = json.dumps(meta).encode()
    with replacing(path, "the Parquet file") as tmp:
        pq.write_table(table.replace_schema_metadata(md), tmp)


def read_parquet(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any], None]:
    """``(frame, meta, categories)`` of a file written by :func:`write_parquet`."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(_META_KEY)
    return table.to_pandas(), (json.loads(raw) if raw else {}), None


def write_csv(frame: pd.DataFrame, meta: dict[str, Any], path: str | os.PathLike) -> None:
    """``frame`` as CSV, plus ``<path>.meta.json`` with ``meta`` and the category lists.

    A text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR
    first) is written with a leading ``'``, and so is one that starts with ``'``
    (:func:`romakit.textsafe.csv_cell`); numbers and times never are. :func:`read_csv`
    drops that one ``'`` from every text cell, so the values come back exactly. Both
    files are written whole or not at all (:func:`romakit.results.atomic.replacing`)."""
    cats = {c: [str(x) for x in frame[c].cat.categories] for c in CATEGORICAL}
    with replacing(path, "the CSV file") as tmp, replacing(_sidecar(path), "the CSV's metadata") as side:
        csv_frame(frame).to_csv(tmp, index=False, lineterminator="\r\n")  # RFC 4180: a CR in a cell is quoted
        side.write_text(json.dumps({"romakit": meta, "categories": cats}), encoding="utf-8")


def read_csv(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any], dict[str, list[str]] | None]:
    """``(frame, meta, categories)`` of a file written by :func:`write_csv` (the sidecar
    is optional: without it the metadata comes from the rows)."""
    import pandas as pd

    side: dict[str, Any] = {}
    if os.path.exists(_sidecar(path)):
        with open(_sidecar(path), encoding="utf-8") as fh:
            side = json.load(fh)
    text = {c: "string" for c in COLUMNS if c not in ("chunk", "attempts", "latency_ms", "http_status")}
    frame = pd.read_csv(
        path,
        dtype={**text, "chunk": "int32", "attempts": "int16", "latency_ms": "float64", "http_status": "Int16"},
        keep_default_na=False,
        na_values={c: [""] for c in COLUMNS},
    )
    for c in text:  # the cells write_csv neutralised, as they were
        if c in frame.columns:
            frame[c] = csv_values(frame[c])
    return frame, side.get("romakit") or {}, side.get("categories")
