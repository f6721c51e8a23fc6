"""The ResultBuilder's column-wise frame (and conform_frame) against pandas' own per-row spelling.

The builder makes its columns in pyarrow and numpy (strings, categorical codes, per-chunk
values repeated) so that a million rows make no Python object per row. A property checks
that, for any mix of segments (int, str and odd ids; per-row and uniform outcomes, codes
and messages; missing names, times and statuses; given and derived ``settled_by``), the
frame and ``summary()`` are exactly what plain pandas constructors give over one value per
row: same values, dtypes, category lists and their order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from romakit.outcomes import OUTCOMES
from romakit.results import COLUMNS, BatchResult, ResultBuilder, conform_frame

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)  # UTF-8 encodable
ident = st.one_of(
    st.integers(1, 10**15), st.integers(-(2**70), 2**70), text, st.booleans(), st.floats(allow_nan=False),
    st.integers(0, 9).map(np.int64),
)
word = st.one_of(st.none(), st.sampled_from(["ROMA.00110006", "romakit.NotInAnswer", ""]), text)
outcome = st.sampled_from(OUTCOMES)


@st.composite
def segment(draw: Any, no: int) -> dict[str, Any]:
    n = draw(st.integers(0, 6))
    uniform_ids = draw(st.sampled_from([st.integers(1, 10**12), text, ident]))
    one = draw(st.booleans())

    def per_row(values: Any) -> Any:
        return draw(values) if draw(st.booleans()) else draw(st.lists(values, min_size=n, max_size=n))

    seg = {
        "ids": draw(st.lists(uniform_ids if one else ident, min_size=n, max_size=n)),
        "outcome": per_row(outcome),
        "error_code": per_row(word),
        "error_msg": per_row(word),
        "chunk": no,
        "attempts": draw(st.integers(0, 5)),
        "request_id": draw(word),
        "event_id": draw(word),
        "sent_at": draw(st.one_of(st.none(), st.floats(1.7e9, 1.8e9))),
        "answered_at": draw(st.one_of(st.none(), st.floats(1.7e9, 1.8e9))),
        "http_status": draw(st.one_of(st.none(), st.sampled_from([200, 429, 500]))),
        "settled_by": draw(st.sampled_from([None, "", "read", "answer"])),
    }
    if draw(st.booleans()):
        seg["names"] = draw(st.lists(st.one_of(st.none(), text), min_size=n, max_size=n))
    return seg


segments = st.integers(0, 8).flatmap(lambda k: st.tuples(*(segment(no) for no in range(k))))


def oracle(segs: tuple[dict[str, Any], ...]) -> pd.DataFrame:
    """The frame built row by row with pandas' constructors (what the schema promises)."""
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    for s in segs:
        n = len(s["ids"])

        def each(v: Any, n: int = n) -> list:
            return list(v) if isinstance(v, (list, tuple)) else [v] * n

        outs = each(s["outcome"])
        rows["device_id"] += [str(i) for i in s["ids"]]
        rows["device_name"] += each(s.get("names"))
        rows["outcome"] += outs
        rows["error_code"] += each(s["error_code"])
        rows["error_msg"] += each(s["error_msg"])
        for c in ("chunk", "attempts", "request_id", "event_id", "sent_at", "answered_at", "http_status"):
            rows[c] += [s[c]] * n
        rows["settled_by"] += [s["settled_by"] or ("answer" if o in ("success", "failed") else None) for o in outs]
    n = len(rows["device_id"])

    def cat(values: list, categories: list | None = None) -> pd.Categorical:
        seen = list(dict.fromkeys(v for v in values if v is not None)) if categories is None else categories
        return pd.Categorical(values, categories=pd.Index(seen, dtype="str"))

    def when(values: list) -> Any:
        secs = np.array([np.nan if v is None else v for v in values], dtype="float64")
        return pd.to_datetime(secs, unit="s", utc=True).astype("datetime64[ns, UTC]")

    sent, answered = when(rows["sent_at"]), when(rows["answered_at"])
    latency = [(a - s) * 1000.0 if a is not None and s is not None else np.nan
               for s, a in zip(rows["sent_at"], rows["answered_at"], strict=True)]
    return pd.DataFrame({
        "op_id": cat(["op1"] * n), "operation": cat(["force_offline"] * n), "target": cat(["inst-1"] * n),
        "device_id": pd.array(rows["device_id"], dtype="string"),
        "device_name": pd.array(rows["device_name"], dtype="string"),
        "outcome": pd.Categorical(rows["outcome"], categories=OUTCOMES),
        "error_code": cat(rows["error_code"]), "error_msg": cat(rows["error_msg"]),
        "http_status": pd.array(rows["http_status"], dtype="Int16"),
        "chunk": np.array(rows["chunk"], dtype="int32"), "attempts": np.array(rows["attempts"], dtype="int16"),
        "request_id": cat(rows["request_id"]), "event_id": cat(rows["event_id"]),
        "sent_at": sent, "answered_at": answered, "latency_ms": np.array(latency, dtype="float64"),
        "settled_by": cat(rows["settled_by"], ["answer", "read"]),
    })


def built(segs: tuple[dict[str, Any], ...]) -> BatchResult:
    b = ResultBuilder("force_offline", "inst-1", "op1")
    for s in segs:
        b.add(**s)
    return b.build()


@settings(max_examples=200, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@pytest.mark.slow
@given(segments)
def test_the_frame_is_what_pandas_builds_row_by_row(segs: tuple[dict[str, Any], ...]) -> None:
    got, want = built(segs).frame, oracle(segs)
    exactly(got, want)
    assert list(got.columns) == list(COLUMNS) and got.attrs == {}
    # conform_frame keeps a frame already in the schema as it is, and makes it again from objects
    exactly(conform_frame(got), want)
    exactly(conform_frame(got.astype(object)), want)


def exactly(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    for c in COLUMNS:
        assert got[c].dtype == want[c].dtype, c
        if isinstance(want[c].dtype, pd.CategoricalDtype):  # dtype equality ignores category order
            assert list(got[c].cat.categories) == list(want[c].cat.categories), c
            assert got[c].cat.categories.dtype == want[c].cat.categories.dtype, c


def plain_summary(f: pd.DataFrame) -> pd.DataFrame:
    """summary() as a groupby over every row."""
    codes = f["error_code"].astype("object").where(f["error_code"].notna(), "")
    want = (pd.DataFrame({"outcome": f["outcome"], "error_code": codes})
            .groupby(["outcome", "error_code"], observed=True).size().rename("devices").to_frame())
    want["share"] = (want["devices"] / len(f)).round(4)
    return want


@settings(max_examples=100, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@pytest.mark.slow
@given(segments, st.booleans())
def test_summary_is_the_groupby_over_every_row(segs: tuple[dict[str, Any], ...], drop_outcomes: bool) -> None:
    res = built(segs)
    if drop_outcomes and len(res):  # frames read from elsewhere may have rows without an outcome
        res.frame.loc[res.frame.index[::2], "outcome"] = None
    f = res.frame
    if f.empty:
        assert res.summary().empty
        return
    pd.testing.assert_frame_equal(res.summary(), plain_summary(f), check_exact=True)
    plain = f.astype(object)  # not categorical at all: counted row by row
    pd.testing.assert_frame_equal(BatchResult(plain, operation="x", target="y", op_id="z").summary(),
                                  plain_summary(plain), check_exact=True)


def test_a_per_row_value_of_the_wrong_length_is_refused_when_added() -> None:
    b = ResultBuilder("force_offline", "inst-1")
    with pytest.raises(ValueError, match="outcome has 2 values for 3 ids"):
        b.add([1, 2, 3], outcome=["success", "failed"], chunk=0)
    with pytest.raises(ValueError, match="names has 1 values for 2 ids"):
        b.add([1, 2], outcome="success", names=["a"], chunk=0)
    assert len(b) == 0 and len(b.frame()) == 0


def test_ids_of_any_sequence_make_one_row_each() -> None:
    b = ResultBuilder("delete_sub_devices", "gw-1")
    b.add(range(3), outcome="success", chunk=0)
    b.add(np.array([7, 8]), outcome=("failed", "unknown"), chunk=1)
    assert b.build().frame["device_id"].tolist() == ["0", "1", "2", "7", "8"]


def test_conform_frame_puts_categories_in_the_order_asked() -> None:
    b = ResultBuilder("force_offline", "inst-1")
    b.add([1, 2, 3], outcome=["failed", "success", "failed"], error_code=["B", None, "A"], chunk=0)
    f = b.build().frame
    assert list(f["error_code"].cat.categories) == ["B", "A"]
    again = conform_frame(f, {"error_code": ["A", "C", "B"]})
    assert list(again["error_code"].cat.categories) == ["A", "C", "B"]
    assert again["error_code"].tolist() == f["error_code"].tolist()
    shuffled = f.assign(outcome=f["outcome"].cat.reorder_categories(list(reversed(OUTCOMES))),
                        settled_by=f["settled_by"].cat.reorder_categories(["read", "answer"]))
    fixed = conform_frame(shuffled)
    assert list(fixed["outcome"].cat.categories) == list(OUTCOMES)
    assert list(fixed["settled_by"].cat.categories) == ["answer", "read"]
    assert fixed["outcome"].tolist() == ["failed", "success", "failed"]
    ordered = conform_frame(f.assign(error_code=f["error_code"].cat.as_ordered()))
    assert not ordered["error_code"].cat.ordered
