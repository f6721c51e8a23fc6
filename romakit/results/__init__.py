"""Results of batch operations: one outcome schema for every operation, in pandas.

- :mod:`~romakit.results.schema`: columns, dtypes, :func:`conform_frame`
- :mod:`~romakit.results.result`: :class:`BatchResult` and :class:`ResultBuilder`
- :mod:`~romakit.results.files`: Parquet and CSV, dtypes kept
- :mod:`~romakit.results.analysis`: ``by``, ``latency``, ``verify``, ``plot``
"""

from romakit.outcomes import FAILED, OUTCOMES, SKIPPED, SUCCESS, UNKNOWN
from romakit.results.result import BatchResult, ResultBuilder
from romakit.results.schema import COLUMNS, SCHEMA_VERSION, conform_frame, new_op_id


def empty_frame():  # noqa: ANN201 - a pandas DataFrame; pandas is not imported here
    """A result frame with no rows, every column in the schema's dtype."""
    return ResultBuilder("none", "none").frame()


__all__ = [
    "COLUMNS", "FAILED", "OUTCOMES", "SCHEMA_VERSION", "SKIPPED", "SUCCESS", "UNKNOWN", "BatchResult",
    "ResultBuilder", "conform_frame", "empty_frame", "new_op_id",
]
