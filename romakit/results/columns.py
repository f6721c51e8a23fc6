"""Column builders for result frames at a million rows: per-row Python values go
straight into pyarrow strings and categorical codes, per-segment values are repeated
as numpy codes; no per-row Python object is made on the way (no pandas at import).

Every builder gives exactly what the slower pandas spelling gives (``pd.array(...,
dtype="string")``, ``pd.Categorical``, :func:`~romakit.results.schema.categorical`),
and falls back to it for values pyarrow does not take as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    import pyarrow as pa

#: what pyarrow raises for values it will not convert as asked (mixed types, huge ints)
_REFUSED: tuple[type[Exception], ...] = (TypeError, ValueError, OverflowError)


def flatten(parts: Sequence[Any], lens: Iterable[int]) -> list:
    """One list of ``sum(lens)`` values: each part is a list/tuple of its segment's
    values, or one value (a str, None, ...) standing for all of them."""
    lens = list(lens)
    out: list = [None] * sum(lens)  # filled in place: no regrowth while a million values go in
    at = 0
    for part, n in zip(parts, lens, strict=True):
        if isinstance(part, (list, tuple)):
            out[at:at + n] = part
        elif part is not None:
            out[at:at + n] = [part] * n
        at += n
    return out


def segmented(parts: Sequence[Any], lens: Iterable[int], categories: Sequence[str] | None = None) -> pd.Categorical:
    """:func:`categorical` of ``flatten(parts, lens)``, hashing each uniform segment (one
    value, or a list of one str or None repeated: most chunks of most runs) once."""
    import numpy as np

    values: list = []
    at: list[int] = []  # where a uniform segment's one value is in ``values``
    times: list[int] = []  # and how many rows it stands for
    for part, n in zip(parts, lens, strict=True):
        if isinstance(part, (list, tuple)):
            first = part[0]
            if not ((first is None or type(first) is str) and part.count(first) == n):
                values.extend(part)
                continue
            part = first
        at.append(len(values))
        times.append(n)
        values.append(part)
    counts = np.ones(len(values), dtype=np.intp)
    counts[at] = times
    return categorical(values, categories).repeat(counts)


def _pandas_strings(arr: pa.Array) -> Any:
    """``arr`` (pyarrow strings) as pandas' ``"string"`` dtype, without a copy where
    pandas keeps its strings in pyarrow."""
    import pandas as pd
    import pyarrow as pa

    target = pd.api.types.pandas_dtype("string")
    if getattr(target, "storage", None) == "pyarrow":
        out = pd.arrays.ArrowStringArray(arr.cast(pa.large_string()))
        return out if out.dtype == target else out.astype(target)
    return pd.array(arr.to_numpy(zero_copy_only=False), dtype=target)


def strings(values: list) -> Any:
    """``pd.array(values, dtype="string")`` (None and NaN missing), built in pyarrow."""
    import pandas as pd
    import pyarrow as pa

    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except _REFUSED:  # not all str: pandas' own conversion decides
        return pd.array(values, dtype="string")
    return _pandas_strings(arr)


def id_strings(ids: list) -> Any:
    """``[str(i) for i in ids]`` as pandas' ``"string"`` dtype: integer and str ids are
    converted inside pyarrow; any other mix goes through ``str()``."""
    import pyarrow as pa

    try:
        arr = pa.array(ids)
    except _REFUSED:
        arr = None
    if arr is None or arr.null_count or not (pa.types.is_integer(arr.type) or pa.types.is_string(arr.type)):
        arr = pa.array([str(i) for i in ids], type=pa.large_string())
    return _pandas_strings(arr)


def _arrow_codes(values: Any) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 missing) and uniques of str ``values`` in first-appearance order, by
    pyarrow's dictionary encoding; raises what pyarrow raises for other values."""
    import pyarrow as pa

    enc = pa.array(values, type=pa.string(), from_pandas=True).dictionary_encode()
    return enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), enc.dictionary.to_pylist()


def categorical(values: Any, categories: Sequence[str] | None = None) -> pd.Categorical:
    """A categorical of strings: categories in first-appearance order (those of
    ``pd.factorize``, as str), or ``categories`` (values outside them missing)."""
    import numpy as np
    import pandas as pd

    try:
        codes, uniques = _arrow_codes(values)
    except _REFUSED:  # not all str: pandas' own spelling decides
        if categories is not None:
            return pd.Categorical(values, categories=pd.Index(list(categories), dtype="str"))
        arr = values if isinstance(values, np.ndarray) and values.dtype == object else np.asarray(list(values), dtype=object)
        codes, found = pd.factorize(arr, use_na_sentinel=True)
        return from_codes(codes, [str(u) for u in found])
    if categories is None:
        return from_codes(codes, uniques)
    categories = list(categories)
    where = {c: i for i, c in enumerate(categories)}
    remap = np.array([where.get(u, -1) for u in uniques] + [-1], dtype=code_dtype(len(categories)))
    return from_codes(remap[codes], categories)  # -1 (missing) picks the last entry, itself -1


def code_dtype(n_categories: int) -> np.dtype:
    """The integer dtype pandas keeps the codes of ``n_categories`` categories in."""
    import numpy as np

    for dtype in (np.int8, np.int16, np.int32):
        if n_categories < np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def from_codes(codes: np.ndarray, categories: Sequence[str]) -> pd.Categorical:
    """A categorical from ``codes`` over str ``categories`` (pandas' string dtype)."""
    import pandas as pd

    return pd.Categorical.from_codes(codes, categories=pd.Index(list(categories), dtype="str"))


def constant(value: str, n: int) -> pd.Categorical:
    """``n`` times ``value`` as a categorical (no categories when ``n`` is 0)."""
    import numpy as np

    return from_codes(np.zeros(n, dtype=np.int8), [str(value)] if n else [])
