"""One outcome schema for every batch operation, and the :class:`BatchResult` around it.

Every requested device is one row: ``success``, ``failed``, ``unknown`` (sent, never
answered) or ``skipped`` (never sent because the run stopped). Rows are collected
column by column per chunk (:class:`ResultBuilder`) and turned into a tidy pandas
frame with categorical columns only once, at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from romakit.outcomes import FAILED, OUTCOMES, SKIPPED, SUCCESS, UNKNOWN, is_transient

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
    "chunk",
    "attempts",
    "request_id",
    "event_id",
    "sent_at",
    "answered_at",
    "latency_ms",
)
_CATEGORICAL = ("op_id", "operation", "target", "error_code", "error_msg", "request_id", "event_id")

#: operations whose device ids are LINK integers (the others use IoTDA string ids)
INT_ID_OPERATIONS = frozenset({"force_offline", "delete_devices"})


def new_op_id() -> str:
    """A short, sortable-enough, unique operation id."""
    return uuid.uuid4().hex[:12]


class ResultBuilder:
    """Collects outcome rows chunk by chunk; cheap per row, one frame at the end.

    Per-device values (id, name, outcome, code, message) are kept per row; per-chunk
    values (chunk number, attempts, request/event id, times) once per segment and
    repeated when the frame is built.
    """

    def __init__(self, operation: str, target: str, op_id: str | None = None) -> None:
        self.operation = operation
        self.target = target
        self.op_id = op_id or new_op_id()
        self._ids: list[Any] = []
        self._names: list[str | None] = []
        self._outcomes: list[str] = []
        self._codes: list[str | None] = []
        self._msgs: list[str | None] = []
        self._seg_len: list[int] = []
        self._seg: list[tuple] = []  # (chunk, attempts, request_id, event_id, sent_at, answered_at)

    def __len__(self) -> int:
        return len(self._ids)

    def add(
        self,
        ids: Sequence[Any],
        *,
        outcome: str | Sequence[str],
        chunk: int,
        attempts: int = 0,
        names: Sequence[str | None] | None = None,
        error_code: str | None | Sequence[str | None] = None,
        error_msg: str | None | Sequence[str | None] = None,
        request_id: str | None = None,
        event_id: str | None = None,
        sent_at: float | None = None,
        answered_at: float | None = None,
    ) -> None:
        """Add one segment of rows that share a chunk, its attempts, ids and times.

        ``sent_at``/``answered_at`` are epoch seconds (``time.time()``).
        """
        n = len(ids)
        if n == 0:
            return
        self._ids.extend(ids)
        self._names.extend(names if names is not None else [None] * n)
        self._outcomes.extend([outcome] * n if isinstance(outcome, str) else outcome)
        self._codes.extend(error_code if _is_seq(error_code) else [error_code] * n)
        self._msgs.extend(error_msg if _is_seq(error_msg) else [error_msg] * n)
        self._seg_len.append(n)
        self._seg.append((chunk, attempts, request_id, event_id, sent_at, answered_at))

    def build(self, **meta: Any) -> BatchResult:
        """The finished :class:`BatchResult` (``meta`` goes to its attributes)."""
        return BatchResult(self.frame(), operation=self.operation, target=self.target, op_id=self.op_id, **meta)

    def frame(self) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        reps = np.asarray(self._seg_len, dtype=np.int64)
        seg = list(zip(*self._seg, strict=True)) if self._seg else [()] * 6

        def per_row(values: Iterable, dtype: Any = object) -> np.ndarray:
            return np.repeat(np.asarray(list(values), dtype=dtype), reps)

        n = len(self._ids)
        sent = per_row(seg[4], dtype="float64") if n else np.empty(0)
        answered = per_row(seg[5], dtype="float64") if n else np.empty(0)
        data = {
            "op_id": pd.Categorical([self.op_id] * n),
            "operation": pd.Categorical([self.operation] * n),
            "target": pd.Categorical([self.target] * n),
            "device_id": pd.array([str(i) for i in self._ids], dtype="string"),
            "device_name": pd.array(self._names, dtype="string"),
            "outcome": pd.Categorical(self._outcomes, categories=OUTCOMES),
            "error_code": pd.Categorical(self._codes),
            "error_msg": pd.Categorical(self._msgs),
            "chunk": per_row(seg[0], dtype="int32") if n else np.empty(0, "int32"),
            "attempts": per_row(seg[1], dtype="int16") if n else np.empty(0, "int16"),
            "request_id": pd.Categorical(per_row(seg[2]) if n else []),
            "event_id": pd.Categorical(per_row(seg[3]) if n else []),
            "sent_at": pd.to_datetime(sent, unit="s", utc=True),
            "answered_at": pd.to_datetime(answered, unit="s", utc=True),
            "latency_ms": (answered - sent) * 1000.0,
        }
        return pd.DataFrame(data, columns=list(COLUMNS))


def _is_seq(v: Any) -> bool:
    return isinstance(v, (list, tuple))


def empty_frame() -> pd.DataFrame:
    return ResultBuilder("none", "none").frame()


class BatchResult:
    """What a batch operation did to each requested device, one row per device.

    ``frame`` follows the outcome schema; ``summary()``, ``failures()`` and
    ``retry_ids()`` are the usual ways in. Results of several operations concatenate
    with :meth:`concat`.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        operation: str,
        target: str,
        op_id: str,
        stopped: str | None = None,
        parent_op_id: str | None = None,
        requested: int | None = None,
    ) -> None:
        self.frame = frame
        self.operation = operation
        self.target = target
        self.op_id = op_id
        #: why the run stopped early (cancel, abort, canary), or None
        self.stopped = stopped
        #: the operation this one retried or resumed
        self.parent_op_id = parent_op_id
        self.requested = len(frame) if requested is None else requested

    # -- counts ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    @property
    def counts(self) -> dict[str, int]:
        """Devices per outcome, every outcome present (zeros included)."""
        vc = self.frame["outcome"].value_counts()
        return {o: int(vc.get(o, 0)) for o in OUTCOMES}

    @property
    def ok(self) -> bool:
        """True when every requested device succeeded."""
        return len(self.frame) > 0 and self.counts[SUCCESS] == len(self.frame)

    def summary(self) -> pd.DataFrame:
        """Devices and share by outcome and error code (success first)."""
        import pandas as pd

        f = self.frame
        if f.empty:
            return pd.DataFrame({"devices": pd.Series(dtype="int64"), "share": pd.Series(dtype="float64")})
        codes = f["error_code"].astype("object").where(f["error_code"].notna(), "")
        g = (
            pd.DataFrame({"outcome": f["outcome"], "error_code": codes})
            .groupby(["outcome", "error_code"], observed=True)
            .size()
            .rename("devices")
            .to_frame()
        )
        g["share"] = (g["devices"] / len(f)).round(4)
        return g

    # -- ids ---------------------------------------------------------------------------
    def _typed(self, ids: Iterable[str]) -> list:
        if self.operation in INT_ID_OPERATIONS:
            return [int(i) for i in ids]
        return list(ids)

    def ids(self, outcome: str | Iterable[str] | None = None) -> list:
        """Requested device ids, optionally only those with ``outcome``, in request order."""
        f = self.frame
        if outcome is not None:
            wanted = [outcome] if isinstance(outcome, str) else list(outcome)
            f = f[f["outcome"].isin(wanted)]
        return self._typed(f["device_id"])

    def failures(self) -> pd.DataFrame:
        """Rows that did not succeed (failed, unknown, skipped)."""
        return self.frame[self.frame["outcome"] != SUCCESS]

    def retry_ids(self) -> list:
        """Failed and unknown ids whose cause is transient (throttled, 5xx, timeout, lost).

        Permanent causes (not found, invalid, reported failed by the service) are left out;
        skipped devices are resumed, not retried (see ``rk.resume``).
        """
        f = self.frame
        mask = [is_transient(o, c) for o, c in zip(f["outcome"], f["error_code"].astype("object"), strict=True)]
        return self._typed(f.loc[mask, "device_id"])

    # -- combining ---------------------------------------------------------------------
    @classmethod
    def concat(cls, results: Sequence[BatchResult]) -> BatchResult:
        """One result over several operations (categoricals are unified)."""
        import pandas as pd
        from pandas.api.types import union_categoricals

        if not results:
            raise ValueError("concat needs at least one BatchResult")
        frames = [r.frame for r in results]
        cols = {}
        for c in COLUMNS:
            parts = [f[c] for f in frames]
            if isinstance(parts[0].dtype, pd.CategoricalDtype) and c != "outcome":
                cols[c] = pd.Series(union_categoricals(parts, ignore_order=True))
            else:
                cols[c] = pd.concat(parts, ignore_index=True)
        frame = pd.DataFrame(cols, columns=list(COLUMNS))
        ops = {r.operation for r in results}
        targets = {r.target for r in results}
        return cls(
            frame,
            operation=ops.pop() if len(ops) == 1 else "mixed",
            target=targets.pop() if len(targets) == 1 else "mixed",
            op_id="+".join(r.op_id for r in results),
        )

    # -- display ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        c = self.counts
        parts = ", ".join(f"{c[o]} {o}" for o in OUTCOMES if c[o])
        stop = f", stopped: {self.stopped}" if self.stopped else ""
        return f"<BatchResult {self.operation} on {self.target} op={self.op_id}: {len(self)} devices: {parts or 'none'}{stop}>"

    def _repr_html_(self) -> str:
        from html import escape

        return f"<p><code>{escape(repr(self))}</code></p>" + self.summary().to_html()


__all__ = ["BatchResult", "ResultBuilder", "COLUMNS", "OUTCOMES", "SUCCESS", "FAILED", "UNKNOWN", "SKIPPED"]
