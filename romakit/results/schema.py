"""The outcome schema: the columns and dtypes of every result frame, and the helpers
that make a frame follow it (no pandas at import)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from romakit.errors import InputError
from romakit.outcomes import OUTCOMES
from romakit.results.columns import categorical

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: the outcome schema, in column order
COLUMNS = (
    "op_id",
    "operation",
    "target",
    "device_id",
    "device_name",
    "outcome",
    "error_code",
    "error_msg",
    "http_status",
    "chunk",
    "attempts",
    "request_id",
    "event_id",
    "sent_at",
    "answered_at",
    "latency_ms",
    "settled_by",
)
#: ``settled_by``: how a row's outcome was had: the service's answer to the request, or
#: a read of the device's state before re-sending (reconcile); NA for unknown/skipped
SETTLED_ANSWER, SETTLED_READ = "answer", "read"
SETTLED = (SETTLED_ANSWER, SETTLED_READ)
#: sent_at / answered_at: nanoseconds, UTC (whatever resolution pandas would infer)
TIME_DTYPE: Final = "datetime64[ns, UTC]"
CATEGORICAL = ("op_id", "operation", "target", "error_code", "error_msg", "request_id", "event_id", "settled_by")

#: the HTTP status of each row's answer (REST; nullable: MQTT, never sent, never answered)
STATUS_DTYPE: Final = "Int16"
#: columns a frame of an older schema may lack, filled with missing values
OPTIONAL = ("http_status",)

#: bumped when the file form of a result changes (2: ``http_status``; 3: ``settled_by``)
SCHEMA_VERSION = 3


def new_op_id() -> str:
    """A short, sortable-enough, unique operation id."""
    return uuid.uuid4().hex[:12]


#: the dtype of each column that is not categorical
DTYPES: dict[str, Any] = {"device_id": "string", "device_name": "string", "http_status": STATUS_DTYPE, "chunk": "int32",
          "attempts": "int16", "sent_at": TIME_DTYPE, "answered_at": TIME_DTYPE, "latency_ms": "float64"}


def conform_frame(frame: pd.DataFrame, categories: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """``frame`` with exactly the schema's columns, in order, each in the schema's dtype.

    Categorical columns keep ``categories[col]`` (then any extra values) in that order;
    ``outcome`` always has the four outcomes in their fixed order. Refuses a frame that
    misses a column, naming it.
    """
    import pandas as pd

    if "settled_by" not in frame.columns and "outcome" in frame.columns:  # a schema-2 frame has none
        frame = frame.assign(settled_by=settled_by_default(frame["outcome"].astype(object)))
    missing = [c for c in COLUMNS if c not in frame.columns and c not in OPTIONAL]
    if missing:
        raise InputError(f"not a romakit result frame: missing column(s) {', '.join(missing)}")
    categories = categories or {}
    out: dict[str, Any] = {}
    for c in COLUMNS:
        if c not in frame.columns:  # an older schema's frame: the status was not kept
            out[c] = pd.array([None] * len(frame), dtype=STATUS_DTYPE)
            continue
        col = frame[c]
        if _in_schema(c, col, categories.get(c)):  # as it would come out (a file read back): kept
            out[c] = col
        elif c == "settled_by":
            vals = col.astype(object).where(col.notna(), None)
            out[c] = categorical(vals.to_numpy(dtype=object), SETTLED)
        elif c == "http_status":
            out[c] = pd.array(col.astype(object).where(col.notna(), None).to_numpy(dtype=object), dtype=STATUS_DTYPE)
        elif c == "outcome":
            vals = col.astype(object).where(col.notna(), None)
            bad = sorted({str(v) for v in vals.dropna()} - set(OUTCOMES))
            if bad:
                raise InputError(f"unknown outcome value(s) {bad}; expected {list(OUTCOMES)}")
            out[c] = pd.Categorical(vals, categories=OUTCOMES)
        elif c in CATEGORICAL:
            given = col.astype(object).where(col.notna(), None).to_numpy(dtype=object)
            known = categories.get(c)
            if known is None and isinstance(col.dtype, pd.CategoricalDtype):
                known = [str(x) for x in col.cat.categories]
            if known is not None:
                extra = [v for v in pd.unique(given[pd.notna(given)]) if v not in set(known)]
                out[c] = categorical(given, [*known, *map(str, extra)])
            else:
                out[c] = categorical(given)
        elif c in ("device_id", "device_name"):
            out[c] = col.astype(object).where(col.notna(), None).map(lambda v: v if v is None else str(v)).astype("string")
        elif c in ("chunk", "attempts"):
            out[c] = col.astype(DTYPES[c])
        elif c in ("sent_at", "answered_at"):
            if pd.api.types.is_datetime64_any_dtype(col.dtype):
                t = pd.to_datetime(col, utc=True)
            else:
                t = pd.to_datetime(col.astype(object).where(col.notna(), None), utc=True, format="ISO8601")
            out[c] = t.astype(DTYPES[c])
        else:  # latency_ms
            out[c] = col.astype(DTYPES[c])
    return pd.DataFrame(out, columns=list(COLUMNS)).reset_index(drop=True)



def _in_schema(column: str, col: pd.Series, known: Sequence[str] | None) -> bool:
    """Whether ``col`` already is what :func:`conform_frame` would make of it: the
    schema's dtype, or a categorical over str categories in the order it would keep."""
    import pandas as pd

    if column not in CATEGORICAL and column != "outcome":
        return col.dtype == pd.api.types.pandas_dtype(DTYPES[column])
    dtype = col.dtype
    if not isinstance(dtype, pd.CategoricalDtype) or dtype.ordered or dtype.categories.dtype != pd.Index([], dtype="str").dtype:
        return False
    fixed = {"outcome": OUTCOMES, "settled_by": SETTLED}.get(column, known)
    return fixed is None or list(dtype.categories) == list(fixed)


def settled_by_default(outcomes: Any) -> list[Any]:
    """``answer`` for answered rows (success, failed), None for unknown and skipped."""
    return [SETTLED_ANSWER if o in ("success", "failed") else None for o in outcomes]
