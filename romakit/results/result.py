"""The :class:`BatchResult` of every batch operation, and the :class:`ResultBuilder`
that collects its rows chunk by chunk (one frame, built once, at the end).

Every requested device is one row (:mod:`romakit.results.schema`): ``success``,
``failed``, ``unknown`` (sent, never answered) or ``skipped`` (never sent because the
run stopped). Files live in :mod:`~romakit.results.files`, analysis in
:mod:`~romakit.results.analysis`, the evidence report in :mod:`~romakit.results.report`:
functions that take a result, which the methods here call (they import this module
only to name its type).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from romakit.errors import InputError
from romakit.operations import OPERATIONS, check_client
from romakit.outcomes import FAILED, OUTCOMES, SUCCESS, is_transient
from romakit.results import analysis, files
from romakit.results.columns import constant, flatten, from_codes, id_strings, segmented, strings
from romakit.results.report import JournalReader, write_report
from romakit.results.schema import (
    COLUMNS,
    SCHEMA_VERSION,
    SETTLED,
    SETTLED_ANSWER,
    STATUS_DTYPE,
    TIME_DTYPE,
    conform_frame,
    new_op_id,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure


class ResultBuilder:
    """Collects outcome rows chunk by chunk; cheap per row, one frame at the end.

    Each :meth:`add` keeps the sequences it is given as one segment (no copy: do not
    change them before the frame is built); per-chunk values (chunk number, attempts,
    request/event id, times, status) are kept once per segment. :meth:`frame` turns
    them into columns in pyarrow and numpy (:mod:`romakit.results.columns`), repeating
    per-chunk values as codes, so a million rows make no Python object per row.
    """

    def __init__(self, operation: str, target: str, op_id: str | None = None) -> None:
        self.operation = operation
        self.target = target
        self.op_id = op_id or new_op_id()
        self._n = 0
        self._ids: list[Sequence[Any]] = []
        self._names: list[Sequence[str | None] | None] = []
        self._outcomes: list[str | Sequence[str]] = []
        self._codes: list[str | None | Sequence[str | None]] = []
        self._msgs: list[str | None | Sequence[str | None]] = []
        self._seg_len: list[int] = []
        self._seg: list[tuple] = []  # (chunk, attempts, request_id, event_id, sent_at, answered_at, http_status)
        self._settled: list[str | None] = []  # per segment; None: derived from each row's outcome

    def __len__(self) -> int:
        return self._n

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
        http_status: int | None = None,
        settled_by: str | None = None,
    ) -> None:
        """Add one segment of rows that share a chunk, its attempts, ids, times and HTTP status.

        ``outcome``, ``error_code`` and ``error_msg`` are one value for every row or a
        list/tuple of one per id (as ``names``); ``sent_at``/``answered_at`` are epoch
        seconds (``time.time()``); ``settled_by`` is ``"read"`` for rows settled by
        reading the devices (else derived per row from its outcome).
        """
        n = len(ids)
        if n == 0:
            return
        if not isinstance(ids, (list, tuple)):
            ids = list(ids)
        if names is not None and not isinstance(names, (list, tuple)):
            names = list(names)
        if not isinstance(outcome, (str, list, tuple)):
            outcome = list(outcome)
        per_row = {"names": names, "outcome": outcome, "error_code": error_code, "error_msg": error_msg}
        for what, v in per_row.items():
            if isinstance(v, (list, tuple)) and len(v) != n:
                raise ValueError(f"{what} has {len(v)} values for {n} ids")
        self._n += n
        self._ids.append(ids)
        self._names.append(names)
        self._outcomes.append(outcome)
        self._codes.append(error_code)
        self._msgs.append(error_msg)
        self._seg_len.append(n)
        self._seg.append((chunk, attempts, request_id, event_id, sent_at, answered_at, http_status))
        self._settled.append(settled_by or None)

    def build(self, **meta: Any) -> BatchResult:
        """The finished :class:`BatchResult` (``meta`` goes to its attributes)."""
        return BatchResult(self.frame(), operation=self.operation, target=self.target, op_id=self.op_id, **meta)

    def frame(self) -> pd.DataFrame:
        """The rows so far as a frame of the outcome schema."""
        import numpy as np
        import pandas as pd

        lens = np.asarray(self._seg_len, dtype=np.intp)
        n = self._n
        seg = list(zip(*self._seg, strict=True)) if self._seg else [()] * 7

        def per_row(values: Sequence, dtype: Any) -> Any:  # per-segment values, repeated
            return np.asarray(values, dtype=dtype).repeat(lens)

        def times(epoch_s: np.ndarray) -> Any:
            return pd.to_datetime(epoch_s, unit="s", utc=True).astype(TIME_DTYPE).array.repeat(lens)

        status = pd.array(list(seg[6]), dtype=STATUS_DTYPE)
        sent = np.asarray(seg[4], dtype="float64")
        answered = np.asarray(seg[5], dtype="float64")
        outcome = segmented(self._outcomes, lens, OUTCOMES)
        data = {
            "op_id": constant(self.op_id, n),
            "operation": constant(self.operation, n),
            "target": constant(self.target, n),
            "device_id": id_strings(flatten(self._ids, lens)),
            "device_name": strings(flatten(self._names, lens)),
            "outcome": outcome,
            "error_code": segmented(self._codes, lens),
            "error_msg": segmented(self._msgs, lens),
            "http_status": pd.arrays.IntegerArray(status.to_numpy("int16", na_value=0).repeat(lens),
                                                  status.isna().repeat(lens)),
            "chunk": per_row(seg[0], "int32"),
            "attempts": per_row(seg[1], "int16"),
            "request_id": segmented(seg[2], lens),
            "event_id": segmented(seg[3], lens),
            "sent_at": times(sent),
            "answered_at": times(answered),
            "latency_ms": ((answered - sent) * 1000.0).repeat(lens),
            "settled_by": self._settled_by(outcome, lens),
        }
        return pd.DataFrame(data, columns=list(COLUMNS), copy=False)

    def _settled_by(self, outcome: pd.Categorical, lens: np.ndarray) -> pd.Categorical:
        """``settled_by``: a segment's own value, else ``answer`` for success and failed rows."""
        import numpy as np

        codes = np.array([-2 if s is None else (SETTLED.index(s) if s in SETTLED else -1) for s in self._settled],
                         dtype=np.int8).repeat(lens)  # -2: derive from the row's outcome
        derive = codes == -2
        answered = np.isin(outcome.codes, [OUTCOMES.index(SUCCESS), OUTCOMES.index(FAILED)])
        codes[derive & answered] = SETTLED.index(SETTLED_ANSWER)
        codes[derive & ~answered] = -1
        return from_codes(codes, SETTLED)


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
        #: the journal that recorded or rebuilt this result (a :class:`romakit.store.journal.Journal`):
        #: its report reads the chain of retries and resumes there; None when read from a file
        self.journal: JournalReader | None = None
        #: the most requests the engine had in flight at once in this run; None when not run here
        self.peak_in_flight: int | None = None
        #: a deletion's snapshot: what each deleted device was just before its chunk was
        #: sent (``{device id: record}``, no secret; what ``rk.restore`` re-creates it from)
        self.snapshot: dict[str, dict[str, Any]] | None = None

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
        return analysis.summary(self)

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
        """Failed and unknown ids whose cause is transient (any 429 or 5xx answer whatever its
        code, throttling codes, timeout, lost).

        Permanent causes (not found, invalid, reported failed by the service) are left out;
        skipped devices are resumed, not retried (see ``rk.resume``).
        """
        f = self.frame
        status = f["http_status"].astype("object").where(f["http_status"].notna(), None)
        mask = [is_transient(o, c, s) for o, c, s in
                zip(f["outcome"], f["error_code"].astype("object"), status, strict=True)]
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
        if op.takes != "ids":  # adds, status updates and restores are sent again with what they carried
            if not self.inputs:
                raise InputError(f"this {op.name} result does not hold what each device was sent "
                                 "(read from a file or the journal?): call the client's method again")
            if op.takes == "snapshot":
                options["snapshot"] = {str(k): self.inputs[str(k)] for k in todo}
            else:
                what = ([self.inputs[k] for k in todo] if op.takes == "specs"
                        else {k: self.inputs[k] for k in todo})
        return getattr(client, op.name)(what, parent_op_id=self.op_id, relation="retry", **options)

    # -- analysis (romakit.results.analysis) -----------------------------------------------------
    def by(self, column: str, fleet: pd.DataFrame | None = None) -> pd.DataFrame:
        """Devices per outcome for each value of ``column``: a result column, or a
        column of ``fleet`` (``link.devices()``: product_name, parent_device_name,
        online_status, tags, ...) joined on the device id (LINK operations) or
        ``client_id`` (gateway child operations). Devices a deletion removed are no
        longer listed: they are named from its snapshot (:attr:`snapshot`), which also
        answers without a fleet (``res.by("product_name")``); devices listed nowhere show
        as "(not in fleet)".
        """
        return analysis.by(self, column, fleet)

    def latency(self, by: str | None = None) -> pd.DataFrame:
        """Chunk latency (request sent -> answer), one sample per chunk.

        ``by=None``: p50/p90/p99/max/mean in ms per operation; ``by="chunk"``: one row
        per chunk (devices, attempts, times, latency_ms, devices not ok).
        """
        return analysis.latency(self, by)

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
        return analysis.verify(self, source)

    def follow(self, client: Any, *, within: float | str = "10m", every: float | str = "5s") -> Any:
        """After a force-offline: poll ``client`` until the forced devices are back (online
        again, or logged in after they were forced) or ``within`` passed; a
        :class:`~romakit.results.follow.Follow` (a coroutine for an async client) with the
        reconnect curve, the stragglers and time-to-return percentiles."""
        from romakit.results.follow import follow

        return follow(self, client, within=within, every=every)

    def plot(self, by: str | None = None, fleet: pd.DataFrame | None = None, *, top: int = 12) -> Figure:
        """A matplotlib Figure: devices by error code (coloured by outcome), and by
        ``by`` (a result or ``fleet`` column) beside it; at most ``top`` bars each."""
        return analysis.plot(self, by=by, fleet=fleet, top=top)

    def report(self, path: str | os.PathLike | None = None, *, verify: Any = None, fleet: pd.DataFrame | None = None,
               journal: JournalReader | None = None, follow: Any = None, around: pd.DataFrame | None = None) -> Any:
        """Write one self-contained HTML evidence file (no network needed to open it):
        the request and its policy, a timeline of chunks, outcomes by code (and by product
        and gateway with ``fleet``), the failures with their request or event ids, what
        ``verify()`` found, and the chain of the operation (original, retries, resumes)
        from ``journal`` (default: :attr:`journal`, the one this result ran in or was
        rebuilt from). ``verify`` is a LinkClient (one listing read, also used as the
        fleet) or a fleet frame read after the run; ``follow`` a :meth:`follow` of it (its
        reconnect curve and the devices not back); ``around`` the watches' events around
        it (``rk.timeline(around=res)``: the chart, who is still down, who flaps). No
        secret is written. Returns the path written (made absolute; its directory must
        exist). Without ``path``: ``romakit-report-<op_id>.html`` in romakit's exports folder
        (:func:`romakit.paths.exports`, ``<ROMAKIT_HOME>/exports``), never beside the notebook."""
        if path is None:
            from romakit.paths import export_path

            path = export_path(f"romakit-report-{self.op_id}.html")
        return write_report(self, path, verify=verify, fleet=fleet, journal=journal, follow=follow, around=around)

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

        A text cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``,
        tab or CR first), or that starts with ``'``, is written with a leading ``'``;
        numbers and times never are. :meth:`read_csv` drops it again: the values come back
        exactly. Both files are written whole or not at all (the previous ones survive a
        failure). CSV cannot tell an empty string from a missing value: both read back missing.
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
        categories: Mapping[str, Sequence[str]] | None = None,
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
        out = cls(
            frame,
            operation=ops.pop() if len(ops) == 1 else "mixed",
            target=targets.pop() if len(targets) == 1 else "mixed",
            op_id="+".join(r.op_id for r in results),
            requested=sum(r.requested for r in results),
        )
        out.journal = next((r.journal for r in results if r.journal is not None), None)
        return out

    # -- display ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        c = self.counts
        parts = ", ".join(f"{c[o]} {o}" for o in OUTCOMES if c[o])
        stop = f", stopped: {self.stopped}" if self.stopped else ""
        return f"<BatchResult {self.operation} on {self.target} op={self.op_id}: {len(self)} devices: {parts or 'none'}{stop}>"

    def _repr_html_(self) -> str:
        from html import escape

        return f"<p><code>{escape(repr(self))}</code></p>" + self.summary().to_html()


