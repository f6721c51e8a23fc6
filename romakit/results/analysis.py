"""Reading a :class:`~romakit.results.result.BatchResult`: its summary, outcomes by a fleet
column, chunk latency, verification against the service, and a figure.

Kept apart from :mod:`romakit.results.result` so that module stays small; the
``BatchResult`` methods of the same names call in here. matplotlib loads only when a
figure is drawn.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from romakit.errors import InputError
from romakit.operations import OPERATIONS, int_id_operations
from romakit.outcomes import COLOURS, OUTCOMES, SUCCESS

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

    from romakit.results.result import BatchResult

NOT_IN_FLEET = "(not in fleet)"
NONE = "(none)"


def summary(result: BatchResult) -> pd.DataFrame:
    """Devices and share by outcome and error code (success first); the rows are counted
    per (outcome, code) pair on the categorical codes, then only the pairs are grouped."""
    import pandas as pd

    f = result.frame
    if f.empty:
        return pd.DataFrame({"devices": pd.Series(dtype="int64"), "share": pd.Series(dtype="float64")})
    outcome, code, devices = _pairs(f["outcome"], f["error_code"])
    code = code.astype("object").where(code.notna(), "")
    g = (
        pd.DataFrame({"outcome": outcome, "error_code": code, "devices": devices})
        .groupby(["outcome", "error_code"], observed=True)["devices"]
        .sum()
        .to_frame()
    )
    g["share"] = (g["devices"] / len(f)).round(4)
    return g


def _pairs(outcome: pd.Series, code: pd.Series) -> tuple[pd.Series, pd.Series, Any]:
    """The distinct (outcome, error code) pairs and their row counts, counted on the
    categorical codes (a million rows group as a handful); rows otherwise, count 1."""
    import numpy as np
    import pandas as pd

    if isinstance(outcome.dtype, pd.CategoricalDtype) and isinstance(code.dtype, pd.CategoricalDtype):
        oc = outcome.cat.codes.to_numpy()
        seen = oc >= 0  # rows without an outcome are not grouped, as groupby drops them
        if seen.any():
            k = len(code.cat.categories) + 1  # code -1 (missing) is slot 0 of each outcome's k
            counts = np.bincount(oc[seen].astype(np.int64) * k + code.cat.codes.to_numpy()[seen] + 1)
            pair = np.flatnonzero(counts)
            return (pd.Series(pd.Categorical.from_codes(pair // k, dtype=outcome.dtype)),
                    pd.Series(pd.Categorical.from_codes(pair % k - 1, dtype=code.dtype)), counts[pair])
    return outcome, code, np.ones(len(outcome), dtype=np.int64)


def fleet_positions(frame: pd.DataFrame, fleet: pd.DataFrame) -> np.ndarray:
    """Row position in ``fleet`` of each result row's device, -1 where it is not listed.

    LINK operations (integer ids) match the fleet's ``id``; gateway child operations
    (IoTDA ids) match its ``client_id``. The first listing of a key wins.
    """
    import numpy as np
    import pandas as pd

    pos = np.full(len(frame), -1, dtype=np.int64)
    if not len(frame) or not len(fleet):
        return pos
    int_rows = frame["operation"].astype(object).isin(int_id_operations()).to_numpy()
    for rows, col in ((int_rows, "id"), (~int_rows, "client_id")):
        if not rows.any():
            continue
        if col == "client_id" and col not in fleet.columns and "device_id" in fleet.columns:
            col = "device_id"  # an IoTDA inventory frame names children by device_id
        if col not in fleet.columns:
            raise InputError(f"the fleet frame has no {col!r} column: pass the frame of link.devices()")
        key = pd.Index(fleet[col].astype("string"))
        first = ~key.duplicated()
        uniq = key[first]
        where = np.flatnonzero(first)
        hit = uniq.get_indexer(pd.Index(frame["device_id"].to_numpy()[rows]).astype("string"))
        pos[rows] = np.where(hit >= 0, where[np.maximum(hit, 0)], -1)
    return pos


def _keys(result: BatchResult, column: str, fleet: pd.DataFrame | None) -> pd.Series:
    """The value of ``column`` for every result row (object dtype, labels for missing)."""
    import numpy as np
    import pandas as pd

    f = result.frame
    kept = _from_snapshot(result, column, fleet)
    if fleet is None and column not in f.columns and kept is not None:  # a deletion's own records
        s = pd.Series(kept, index=f.index, dtype=object)
        return s.map(lambda v: NONE if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)) else v)
    if fleet is None or (column in f.columns and column not in fleet.columns):
        if column not in f.columns:
            raise InputError(
                f"{column!r} is not a result column; pass fleet=link.devices() to group by a fleet "
                f"column (result columns: {', '.join(f.columns)})"
            )
        s = f[column].astype(object)
        return s.where(s.notna(), NONE)
    if column not in fleet.columns:
        raise InputError(f"the fleet frame has no column {column!r}; it has: {', '.join(map(str, fleet.columns))}")
    pos = fleet_positions(f, fleet)
    vals = fleet[column].astype(object).to_numpy()
    out = np.empty(len(f), dtype=object)
    hit = pos >= 0
    out[hit] = vals[pos[hit]]
    out[~hit] = NOT_IN_FLEET
    if kept is not None:  # deleted devices are named by what the deletion recorded of them
        gone = ~hit & np.array([v is not None for v in kept], dtype=bool)
        out[gone] = np.array(kept, dtype=object)[gone]
    s = pd.Series(out, index=f.index)
    return s.map(lambda v: NONE if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)) else v)


#: a fleet column -> the snapshot record field holding it (LINK record, child record)
_SNAPSHOT_FIELDS = {"device_name": ("device_name", "name"), "parent_device_name": ("parent_device_name", None)}


def _from_snapshot(result: BatchResult, column: str, fleet: pd.DataFrame | None) -> list | None:
    """Per result row, ``column`` as the deletion's snapshot recorded it (None for rows
    without a record); None when the result has no snapshot or its records lack it.
    A child's gateway (``parent_device_name``) is named from ``fleet`` when listed there."""
    snap = getattr(result, "snapshot", None)
    if not snap:
        return None
    link_key, child_key = _SNAPSHOT_FIELDS.get(column, (column, column))
    names: dict[str, Any] = {}
    if column == "parent_device_name":
        child_key = "gateway_id"
        if fleet is not None and {"client_id", "device_name"} <= set(fleet.columns):
            names = dict(zip(fleet["client_id"].astype(str), fleet["device_name"], strict=True))
    out: list = []
    found = False
    for dev in result.frame["device_id"].astype(str):
        rec = snap.get(dev)
        key = None if rec is None else (link_key if rec.get("kind") == "link" else child_key)
        value = None if rec is None or key is None else rec.get(key)
        if value is not None and key == "gateway_id":
            value = names.get(str(value), value)
        found = found or (rec is not None and key in rec)
        out.append(value)
    return out if found else None


def by(result: BatchResult, column: str, fleet: pd.DataFrame | None = None) -> pd.DataFrame:
    """Devices per outcome for each value of ``column`` (see ``BatchResult.by``).

    List values (``tags``) count a device once under each of its items. Columns: the
    four outcomes, ``devices`` and ``success_share``; most devices first.
    """
    import pandas as pd

    key = _keys(result, column, fleet)
    data = pd.DataFrame({column: key, "outcome": result.frame["outcome"].astype(object)})
    if key.map(lambda v: isinstance(v, (list, tuple))).any():
        data[column] = data[column].map(lambda v: list(v) if isinstance(v, (list, tuple)) and v else (NONE if isinstance(v, (list, tuple)) else v))
        data = data.explode(column)
    table = (
        data.groupby([column, "outcome"], sort=False).size().unstack("outcome", fill_value=0)
        .reindex(columns=list(OUTCOMES), fill_value=0)
    )
    table.columns = list(OUTCOMES)
    table = table.astype("int64")
    table["devices"] = table[list(OUTCOMES)].sum(axis=1)
    table["success_share"] = (table[SUCCESS] / table["devices"]).round(4)
    table.index.name = column
    return table.sort_values(["devices", SUCCESS], ascending=[False, False], kind="stable")


def chunks(result: BatchResult) -> pd.DataFrame:
    """One row per chunk (per operation): devices, attempts, times, latency, devices not ok."""
    f = result.frame
    not_ok = (f["outcome"] != SUCCESS).astype("int64")
    g = f.assign(not_ok=not_ok).groupby(["op_id", "chunk"], observed=True, sort=True)
    return g.agg(
        devices=("device_id", "size"),
        attempts=("attempts", "max"),
        sent_at=("sent_at", "first"),
        answered_at=("answered_at", "first"),
        latency_ms=("latency_ms", "first"),
        not_ok=("not_ok", "sum"),
    )


def latency(result: BatchResult, by: str | None = None) -> pd.DataFrame:
    """Chunk latency percentiles per operation (``by=None``) or the chunk table (``by="chunk"``)."""
    import pandas as pd

    table = chunks(result)
    if by == "chunk":
        return table
    if by is not None:
        raise InputError(f"latency(by=...) takes None or 'chunk', got {by!r}")
    rows = []
    for op, part in table.groupby(level="op_id", observed=True, sort=False):
        lat = part["latency_ms"].dropna()
        q = lat.quantile([0.5, 0.9, 0.99]) if len(lat) else pd.Series([float("nan")] * 3, index=[0.5, 0.9, 0.99])
        rows.append({
            "op_id": op, "chunks": len(part), "answered": len(lat),
            "p50_ms": q[0.5], "p90_ms": q[0.9], "p99_ms": q[0.99],
            "max_ms": lat.max() if len(lat) else float("nan"), "mean_ms": lat.mean() if len(lat) else float("nan"),
        })
    cols = ["op_id", "chunks", "answered", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"]
    return pd.DataFrame(rows, columns=cols).set_index("op_id")


def verify(result: BatchResult, source: Any) -> Any:
    """See ``BatchResult.verify``: a frame, or a coroutine for an async client."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return verify_frame(result, source)
    devices = getattr(source, "devices", None)
    if devices is None:
        raise InputError(
            f"verify() needs a LinkClient or the frame of link.devices(), got {type(source).__name__}; "
            "a Gateway cannot list devices"
        )
    from romakit.results.follow import service_skew

    skew = service_skew(source)
    if inspect.iscoroutinefunction(devices):
        async def _verify() -> pd.DataFrame:
            return verify_frame(result, await devices(), skew)

        return _verify()
    return verify_frame(result, devices(), skew)


def _back(f: pd.DataFrame, fleet: pd.DataFrame, pos: np.ndarray, skew_s: float) -> np.ndarray:
    """Per result row: the listed device logged in after its row was answered (else
    sent), on the service's clock (``skew_s``: its clock minus ours)."""
    import numpy as np
    import pandas as pd

    back = np.zeros(len(f), dtype=bool)
    if "last_login_datetime" not in fleet.columns:
        return back
    present = pos >= 0
    login = pd.to_datetime(fleet["last_login_datetime"], utc=True).to_numpy()[pos[present]]
    shifted = f["answered_at"].where(f["answered_at"].notna(), f["sent_at"]) + pd.Timedelta(seconds=skew_s)
    forced = pd.to_datetime(shifted, utc=True).to_numpy()[present]
    back[present] = ~pd.isna(login) & ~pd.isna(forced) & (login > forced)
    return back


def verify_frame(result: BatchResult, fleet: pd.DataFrame, skew_s: float = 0.0) -> pd.DataFrame:
    """Per device: what the operation claims, what the fleet listing shows, whether it holds.

    A forced device holds when it is offline, or ``back``: logged in again after it was
    forced (``last_login_datetime`` after its row's answer), as a forced device's MQTT
    client does by itself."""
    import numpy as np
    import pandas as pd

    f = result.frame
    pos = fleet_positions(f, fleet)
    present = pos >= 0
    status = fleet["online_status"].astype(object).to_numpy() if "online_status" in fleet.columns else None
    observed = np.full(len(f), "gone", dtype=object)
    if status is not None:
        observed[present] = [NONE if s is None or pd.isna(s) else str(s) for s in status[pos[present]]]
    else:
        observed[present] = "present"
    ops = f["operation"].astype(object).to_numpy()
    expected = np.array([(OPERATIONS[o].expected if o in OPERATIONS else None) for o in ops], dtype=object)
    holds = pd.array([pd.NA] * len(f), dtype="boolean")
    is_off = expected == "offline"
    is_gone = expected == "gone"
    off_known = is_off & present
    back = is_off & _back(f, fleet, pos, skew_s)
    observed[back] = "back"
    holds[off_known] = (observed[off_known] == "offline") | back[off_known]
    holds[is_gone] = ~present[is_gone]
    is_back = expected == "restored"
    if is_back.any():
        records = result.inputs or {}
        seen, same = _restored(f, fleet, records)
        observed[is_back] = np.where(same[is_back], "restored", np.where(seen[is_back], "differs", "gone"))
        holds[is_back] = same[is_back]
        blind = is_back & ~f["device_id"].astype(str).isin(list(records)).to_numpy()
        observed[blind] = NONE  # no record of what it should look like: cannot tell
        holds[blind] = pd.NA
    verified = holds.copy()
    verified[(f["outcome"] != SUCCESS).to_numpy()] = pd.NA
    return pd.DataFrame({
        "op_id": f["op_id"],
        "operation": f["operation"],
        "device_id": f["device_id"],
        "device_name": f["device_name"],
        "outcome": f["outcome"],
        "expected": pd.Categorical(expected),
        "observed": pd.Categorical(observed),
        "holds": holds,
        "verified": verified,
    }, index=f.index)


#: what a restored device must show again, by (record field, listing column)
_RESTORED = {"link": (("device_name", "device_name"), ("product_id", "product_id"), ("description", "description"),
                      ("parent_device_name", "parent_device_name")),
             "child": (("name", "device_name"), ("product_id", "product_id"), ("node_id", "node_id"))}


def _text(v: Any) -> str:
    import pandas as pd

    return "" if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)) else str(v)


def _restored(f: pd.DataFrame, fleet: pd.DataFrame, inputs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per result row: whether the recorded device is listed again (LINK: by its node id,
    its id being new; a child: by its device id), and whether with its recorded attributes."""
    import numpy as np

    ids = f["device_id"].astype(str).tolist()
    by_col: dict[str, dict[str, int]] = {}

    def where(col: str) -> dict[str, int]:
        if col not in by_col:
            by_col[col] = {} if col not in fleet.columns else \
                {str(v): k for k, v in reversed(list(enumerate(fleet[col].astype(object))))}
        return by_col[col]

    seen = np.zeros(len(f), dtype=bool)
    same = np.zeros(len(f), dtype=bool)
    child_col = "client_id" if "client_id" in fleet.columns else "device_id"
    for n, dev in enumerate(ids):
        rec = inputs.get(dev)
        if not isinstance(rec, dict):
            continue
        kind = rec.get("kind", "child")
        k = where("node_id").get(str(rec.get("node_id"))) if kind == "link" else where(child_col).get(dev)
        if k is None:
            continue
        seen[n] = True
        row = fleet.iloc[k]
        pairs = [(a, b) for a, b in _RESTORED.get(kind, ()) if b in fleet.columns]
        same[n] = all(_text(rec.get(a)) == _text(row[b]) for a, b in pairs)
        if kind == "link" and "tags" in fleet.columns:
            listed = row["tags"] if isinstance(row["tags"], (list, tuple, np.ndarray)) else []
            same[n] = same[n] and sorted(map(str, rec.get("tags") or [])) == sorted(map(str, listed))
    return seen, same


def _crosstab(labels: pd.Series, outcome: pd.Series, top: int) -> pd.DataFrame:
    import pandas as pd

    t = (
        pd.DataFrame({"k": labels.to_numpy(), "o": outcome.astype(object).to_numpy()})
        .groupby(["k", "o"]).size().unstack("o", fill_value=0)
        .reindex(columns=list(OUTCOMES), fill_value=0)
    )
    t = t.loc[t.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    if len(t) > top:
        rest = t.iloc[top - 1 :].sum()
        t = pd.concat([t.iloc[: top - 1], rest.to_frame(f"other ({len(t) - top + 1})").T])
    return t


def _bars(ax: Any, table: pd.DataFrame, title: str) -> None:
    import numpy as np

    labels = [str(x) for x in table.index][::-1]
    y = np.arange(len(labels))
    left = np.zeros(len(labels))
    for o in OUTCOMES:
        vals = table[o].to_numpy()[::-1].astype(float)
        if vals.any():
            ax.barh(y, vals, left=left, color=COLOURS[o], label=o, height=0.7)
        left += vals
    for yi, total in zip(y, left, strict=True):
        ax.text(total, yi, f" {int(total)}", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("devices")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, max(left.max(initial=0) * 1.15, 1))
    ax.spines[["top", "right"]].set_visible(False)


def plot(result: BatchResult, by: str | None = None, fleet: pd.DataFrame | None = None, *, top: int = 12) -> Figure:
    """A Figure (no pyplot state): devices by error code, and by ``by`` when given."""
    from matplotlib.figure import Figure

    if top < 2:
        raise InputError(f"top must be >= 2, got {top!r}")
    f = result.frame
    code = f["error_code"].astype(object)
    labels = code.where(code.notna(), f["outcome"].astype(object).map(lambda o: "ok" if o == SUCCESS else NONE))
    panels = [(_crosstab(labels, f["outcome"], top), "Devices by error code")]
    if by is not None:
        t = by_table = _by_for_plot(result, by, fleet)
        if len(t) > top:
            rest = t.iloc[top - 1 :].sum()
            t = by_table.iloc[: top - 1].copy()
            t.loc[f"other ({len(by_table) - top + 1})"] = rest
        panels.append((t, f"Outcomes by {by}"))
    rows = max(len(t) for t, _ in panels)
    fig = Figure(figsize=(6.0 * len(panels), 1.4 + 0.32 * rows), layout="constrained")
    for i, (table, title) in enumerate(panels, start=1):
        _bars(fig.add_subplot(1, len(panels), i), table, title)
    c = result.counts
    counts = ", ".join(f"{c[o]} {o}" for o in OUTCOMES if c[o]) or "no devices"
    fig.suptitle(f"{result.operation} on {result.target} (op {result.op_id}): {counts}", fontsize=11)
    handles, names = [], []
    for ax in fig.axes:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    order = [names.index(o) for o in OUTCOMES if o in names]
    fig.legend([handles[i] for i in order], [names[i] for i in order], loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return fig


def _by_for_plot(result: BatchResult, column: str, fleet: pd.DataFrame | None) -> pd.DataFrame:
    return by(result, column, fleet)[list(OUTCOMES)]
