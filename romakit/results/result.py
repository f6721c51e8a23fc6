"""The :class:`BatchResult` of every batch operation, and the :class:`ResultBuilder`
that collects its rows chunk by chunk (one frame, built once, at the end).

Every requested device is one row (:mod:`romakit.results.schema`): ``success``,
``failed``, ``unknown`` (sent, never answered) or ``skipped`` (never sent because the
run stopped). Files live in :mod:`~romakit.results.files`, analysis in
:mod:`~romakit.results.analysis`; both are called from the methods here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from romakit.errors import InputError
from romakit.operations import OPERATIONS, check_client
from romakit.outcomes import OUTCOMES, SUCCESS, is_transient
from romakit.results import files
from romakit.results.schema import (
    COLUMNS,
    SCHEMA_VERSION,
    TIME_DTYPE,
    categorical,
    conform_frame,
    new_op_id,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure


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
            "op_id": categorical([self.op_id] * n),
            "operation": categorical([self.operation] * n),
            "target": categorical([self.target] * n),
            "device_id": pd.array([str(i) for i in self._ids], dtype="string"),
            "device_name": pd.array(self._names, dtype="string"),
            "outcome": pd.Categorical(self._outcomes, categories=OUTCOMES),
            "error_code": categorical(self._codes),
            "error_msg": categorical(self._msgs),
            "chunk": per_row(seg[0], dtype="int32") if n else np.empty(0, "int32"),
            "attempts": per_row(seg[1], dtype="int16") if n else np.empty(0, "int16"),
            "request_id": categorical(per_row(seg[2]) if n else []),
            "event_id": categorical(per_row(seg[3]) if n else []),
            "sent_at": pd.to_datetime(sent, unit="s", utc=True).astype(TIME_DTYPE),
            "answered_at": pd.to_datetime(answered, unit="s", utc=True).astype(TIME_DTYPE),
            "latency_ms": (answered - sent) * 1000.0,
        }
        return pd.DataFrame(data, columns=list(COLUMNS))



def _is_seq(v: Any) -> bool:
    return isinstance(v, (list, tuple))


class BatchResult:
    """What a batch operation did to each requested device, one row per device.

    ``frame`` follows the outcome schema; ``summary()``, ``failures()`` and
    ``retry_ids()`` are the usual ways in; ``by()``, ``latency()``, ``verify()`` and
    ``plot()`` analyse it; ``retry()`` runs the transient failures again as a new,
    linked operation; ``to_parquet()``/``to_csv()`` keep it. Results of several
    operations concatenate with :meth:`concat`.
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
        #: what each device was sent, for operations that send more than an id (the
        #: spec of an added child, a status): ``{id: value}``; None when not known
        self.inputs: dict[str, Any] | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """The result's own facts beside the frame (what files keep next to the rows)."""
        return {
            "schema": SCHEMA_VERSION,
            "op_id": self.op_id,
            "operation": self.operation,
            "target": self.target,
            "stopped": self.stopped,
            "parent_op_id": self.parent_op_id,
            "requested": int(self.requested),
        }

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
        if self.operation in OPERATIONS and OPERATIONS[self.operation].int_ids:
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

    def retry(self, client: Any, *, ids: Iterable | None = None, **options: Any) -> Any:
        """Send :meth:`retry_ids` (or ``ids``) again as a NEW operation whose
        ``parent_op_id`` is this one; returns its :class:`BatchResult`.

        ``client`` must talk to this result's target: a LinkClient for force-offline and
        delete, the same Gateway for child operations (the operation registry says which).
        With an async client this returns a coroutine (``await res.retry(aclient)``).
        ``options`` go to the client's method (``chunk_size=``, ``concurrency=``, ...).
        Nothing to retry gives an empty result.
        """
        op = check_client(client, self.operation, self.target)
        todo = self.retry_ids() if ids is None else self._typed(str(i) for i in ids)
        if not todo:
            return BatchResult(
                ResultBuilder(self.operation, self.target).frame(), operation=self.operation,
                target=self.target, op_id=new_op_id(), parent_op_id=self.op_id, requested=0,
            )
        if op.int_ids and "names" not in options:
            f = self.frame[self.frame["device_name"].notna()]
            options["names"] = {int(i): str(n) for i, n in zip(f["device_id"], f["device_name"], strict=True)}
        what: Any = todo
        if op.takes != "ids":  # adds and status updates are sent again with what they carried
            if not self.inputs:
                raise InputError(f"this {op.name} result does not hold what each device was sent "
                                 "(read from a file or the journal?): call the gateway method again")
            what = ([self.inputs[k] for k in todo] if op.takes == "specs"
                    else {k: self.inputs[k] for k in todo})
        return getattr(client, op.name)(what, parent_op_id=self.op_id, relation="retry", **options)

    # -- analysis (romakit.results.analysis) -----------------------------------------------------
    def by(self, column: str, fleet: pd.DataFrame | None = None) -> pd.DataFrame:
        """Devices per outcome for each value of ``column``: a result column, or a
        column of ``fleet`` (``link.devices()``: product_name, parent_device_name,
        online_status, tags, ...) joined on the device id (LINK operations) or
        ``client_id`` (gateway child operations). Take the fleet frame BEFORE a
        deletion: deleted devices are no longer listed (they show as "(not in fleet)").
        """
        from romakit.results.analysis import by

        return by(self, column, fleet)

    def latency(self, by: str | None = None) -> pd.DataFrame:
        """Chunk latency (request sent -> answer), one sample per chunk.

        ``by=None``: p50/p90/p99/max/mean in ms per operation; ``by="chunk"``: one row
        per chunk (devices, attempts, times, latency_ms, devices not ok).
        """
        from romakit.results.analysis import latency

        return latency(self, by)

    def verify(self, source: Any) -> Any:
        """Re-read the devices and check, per device, that the claimed effect holds:
        offline after force-offline, gone after a deletion. The service's ``success``
        list is a claim; this is the proof.

        ``source`` is a LinkClient (one ``devices()`` listing, all pages) or a fleet
        frame already read (``await aclient.devices()`` in async code). Returns one row
        per device: ``expected``, ``observed`` (online status or ``gone``), ``holds``
        (the effect holds now; NA when it cannot tell) and ``verified`` (``holds`` for
        ``success`` rows, NA for the others).
        """
        from romakit.results.analysis import verify

        return verify(self, source)

    def plot(self, by: str | None = None, fleet: pd.DataFrame | None = None, *, top: int = 12) -> Figure:
        """A matplotlib Figure: devices by error code (coloured by outcome), and by
        ``by`` (a result or ``fleet`` column) beside it; at most ``top`` bars each."""
        from romakit.results.analysis import plot

        return plot(self, by=by, fleet=fleet, top=top)

    def report(self, path: str | os.PathLike, *, verify: Any = None, fleet: pd.DataFrame | None = None) -> Any:
        """Write one self-contained HTML evidence file (no network needed to open it):
        the request and its policy, a timeline of chunks, outcomes by code (and by product
        and gateway with ``fleet``), the failures with their request or event ids, what
        ``verify()`` found, and the chain of the operation (original, retries, resumes)
        from the journal. ``verify`` is a LinkClient (one listing read, also used as the
        fleet) or a fleet frame read after the run. No secret is written. Returns the
        path written (made absolute; its directory must exist)."""
        from romakit.results.report import write_report

        return write_report(self, path, verify=verify, fleet=fleet)

    # -- files -------------------------------------------------------------------------
    def to_parquet(self, path: str | os.PathLike) -> None:
        """Write the frame and the result's metadata to a Parquet file; read it back
        with :meth:`read_parquet` with identical dtypes (categories and their order
        included)."""
        files.write_parquet(self.frame, self.meta, path)

    @classmethod
    def read_parquet(cls, path: str | os.PathLike) -> BatchResult:
        """A result written by :meth:`to_parquet` (or any Parquet file with the schema's columns)."""
        frame, meta, cats = files.read_parquet(path)
        return cls.from_frame(frame, categories=cats, **files.meta_kwargs(meta))

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the frame as CSV, plus ``<path>.meta.json`` beside it holding the
        metadata and category lists, so :meth:`read_csv` restores every dtype.

        CSV cannot tell an empty string from a missing value: both read back missing.
        """
        files.write_csv(self.frame, self.meta, path)

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> BatchResult:
        """A result written by :meth:`to_csv`; without its ``.meta.json`` the dtypes
        still follow the schema, and the metadata is taken from the rows."""
        frame, meta, cats = files.read_csv(path)
        return cls.from_frame(frame, categories=cats, **files.meta_kwargs(meta))

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        categories: dict[str, Sequence[str]] | None = None,
        **meta: Any,
    ) -> BatchResult:
        """A result around ``frame`` with every column converted to the schema's dtype.

        ``meta`` (operation, target, op_id, ...) defaults to what the rows say.
        """
        f = conform_frame(frame, categories)

        def one(col: str) -> str:
            vals = f[col].dropna().unique()
            return str(vals[0]) if len(vals) == 1 else ("mixed" if len(vals) else "none")

        meta.setdefault("operation", one("operation"))
        meta.setdefault("target", one("target"))
        if "op_id" not in meta:
            ops = [str(x) for x in f["op_id"].dropna().unique()]
            meta["op_id"] = "+".join(ops) if ops else new_op_id()
        return cls(f, **meta)

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
            requested=sum(r.requested for r in results),
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


