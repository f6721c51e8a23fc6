"""BatchResult as a support engineer reads it: analysis joined with the fleet, verify()
against the sandbox, files that round-trip every dtype, retry and the figure."""

from __future__ import annotations

import io
import time

import pandas as pd
import pytest

from romakit.engine import CancelToken, RetryPolicy
from romakit.errors import InputError
from romakit.outcomes import OUTCOMES
from romakit.results import COLUMNS, BatchResult, ResultBuilder, conform_frame

pytestmark = pytest.mark.timeout(60)


SANDBOX = {"devices": 1200, "seed": 31}  # the module's sandbox (conftest's sb fixture)


@pytest.fixture(scope="module")
def mixed(sb):
    """A force-offline with every outcome: success, failed (reported and 500), a lie,
    unknown (answers cut short) and skipped (cancelled), and the fleet before it."""
    link = sb.link_client()
    fleet = link.devices()
    online = fleet.loc[(fleet.online_status == "online") & (fleet.node_type != "child"), "id"].astype(int).tolist()
    ids = online[:300]
    sb.set_fault(fail_ids=ids[:4], lie_ids=ids[10:13])
    try:
        token = CancelToken()
        first = link.force_offline(ids[:250], chunk_size=25, concurrency=1, cancel=token, rollout=False,
                                   progress=lambda d, t: token.cancel("enough") if d >= 200 else None)
        sb.set_fault(garbage_rate=1.0)
        second = link.force_offline(ids[250:], chunk_size=25, retry=RetryPolicy(attempts=1), rollout=False)
    finally:
        sb.clear_faults()
        link.close()
    return fleet, ids, first, second


def test_each_outcome_is_present(mixed):
    _, ids, first, second = mixed
    assert first.counts == {"success": 196, "failed": 4, "unknown": 0, "skipped": 50}
    assert second.counts["unknown"] == 50
    both = BatchResult.concat([first, second])
    assert len(both) == 300 and both.operation == "force_offline" and both.requested == 300
    assert both.frame["device_id"].tolist() == [str(i) for i in ids]
    assert list(both.frame.columns) == list(COLUMNS)


def test_by_fleet_column_joins_on_the_link_id(mixed):
    fleet, _, first, _ = mixed
    t = first.by("product_name", fleet)
    assert list(t.columns) == [*OUTCOMES, "devices", "success_share"]
    assert t["devices"].sum() == len(first) and t["success"].sum() == first.counts["success"]
    ids = first.frame["device_id"].astype(int)
    expected = fleet.set_index("id").loc[ids, "product_name"].astype(str).value_counts()
    assert t["devices"].to_dict() == expected.to_dict()
    by_tag = first.by("tags", fleet)  # a device counts under each of its tags
    assert by_tag["devices"].sum() >= len(first)
    by_outcome = first.by("error_code")  # a result column needs no fleet
    assert by_outcome.loc["(none)", "success"] == first.counts["success"]
    gone = first.by("product_name", fleet[fleet.id != ids.iloc[0]])
    assert gone.loc["(not in fleet)", "devices"] == 1
    with pytest.raises(InputError, match="not a result column"):
        first.by("product_name")
    with pytest.raises(InputError, match="no column 'nope'"):
        first.by("nope", fleet)


def test_latency_per_chunk_and_percentiles(mixed):
    _, _, first, second = mixed
    chunks = first.latency("chunk")
    assert len(chunks) == 10 and chunks["devices"].sum() == 250
    assert chunks["latency_ms"].notna().sum() == 8  # two chunks were never sent
    lat = BatchResult.concat([first, second]).latency()
    assert list(lat.index) == [first.op_id, second.op_id]
    row = lat.loc[first.op_id]
    assert row.chunks == 10 and row.answered == 8 and 0 < row.p50_ms <= row.p90_ms <= row.p99_ms <= row.max_ms
    assert lat.loc[second.op_id, "answered"] == 0  # garbage answers: sent, never properly answered
    with pytest.raises(InputError):
        first.latency("device_id")


def test_verify_catches_a_device_claimed_offline_but_left_online(mixed, link):
    _, ids, first, second = mixed
    v = BatchResult.concat([first, second]).verify(link)
    assert len(v) == 300
    liars = set(v.loc[v.verified.eq(False).fillna(False), "device_id"].astype(int))
    assert liars == set(ids[10:13])  # the service said success; the fleet says online
    assert v.loc[v.device_id.isin([str(i) for i in ids[10:13]]), "observed"].astype(str).eq("online").all()
    ok = v[v.outcome == "success"]
    assert ok.verified.sum() == len(ok) - 3
    assert v.loc[v.outcome != "success", "verified"].isna().all()  # no claim, nothing to verify
    # an unknown device whose answer was lost may still have gone offline: holds says so
    unknown = v[v.outcome == "unknown"]
    assert unknown["holds"].notna().all()


def test_verify_deletions_over_mqtt(sb, link):
    gw_id = max(sb.gateways(), key=lambda g: len(sb.children(g)))
    kids = sb.children(gw_id)[:30]
    fleet = link.devices()
    with sb.gateway(gw_id) as gw:
        res = gw.delete_sub_devices(kids + ["no-such-child"], chunk_size=10)
    assert res.counts["success"] == 30 and res.counts["failed"] == 1
    v = res.verify(link)
    assert v.loc[v.outcome == "success", "verified"].all()
    assert v.set_index("device_id").loc["no-such-child", "observed"] == "gone"
    by_parent = res.by("parent_device_name", fleet)  # joined on client_id, fleet taken before
    assert by_parent.loc[fleet.set_index("client_id").loc[gw_id, "device_name"], "success"] == 30


def test_parquet_round_trip_keeps_dtypes_and_metadata(mixed, tmp_path):
    _, _, first, second = mixed
    second.parent_op_id = first.op_id
    for res in (first, second, BatchResult.concat([first, second])):
        p = tmp_path / f"{res.op_id}.parquet"
        res.to_parquet(p)
        back = BatchResult.read_parquet(p)
        pd.testing.assert_frame_equal(back.frame, res.frame, check_exact=True)
        assert back.meta == res.meta
        assert list(back.frame["outcome"].cat.categories) == list(OUTCOMES)
        assert str(back.frame["sent_at"].dtype) == "datetime64[ns, UTC]"
        assert back.frame["chunk"].dtype == "int32" and back.frame["attempts"].dtype == "int16"
        assert str(back.frame["device_id"].dtype) == "string"
    assert BatchResult.read_parquet(tmp_path / f"{first.op_id}.parquet").stopped == "enough"


def test_csv_round_trip_keeps_dtypes_and_metadata(mixed, tmp_path):
    _, _, first, _ = mixed
    p = tmp_path / "r.csv"
    first.to_csv(p)
    back = BatchResult.read_csv(p)
    pd.testing.assert_frame_equal(back.frame, first.frame, check_exact=True)
    assert back.meta == first.meta
    (tmp_path / "r.csv.meta.json").unlink()  # without the sidecar: dtypes from the schema
    bare = BatchResult.read_csv(p)
    assert bare.op_id == first.op_id and bare.operation == "force_offline"
    assert [str(t) for t in bare.frame.dtypes] == [str(t) for t in first.frame.dtypes]


def test_empty_and_all_missing_columns_have_stable_dtypes(tmp_path):
    b = ResultBuilder("delete_sub_devices", "gw-1")
    b.add(["a", "b"], outcome="success", chunk=0, attempts=1, event_id="e0", sent_at=time.time(), answered_at=time.time())
    res = b.build()
    for c in ("error_code", "error_msg", "request_id"):  # all missing: still str categories
        assert res.frame[c].cat.categories.dtype == pd.Index([], dtype="str").dtype
    res.to_parquet(tmp_path / "e.parquet")
    pd.testing.assert_frame_equal(BatchResult.read_parquet(tmp_path / "e.parquet").frame, res.frame)
    empty = ResultBuilder("force_offline", "i").build()
    empty.to_parquet(tmp_path / "z.parquet")
    assert len(BatchResult.read_parquet(tmp_path / "z.parquet")) == 0
    with pytest.raises(InputError, match="missing column"):
        conform_frame(res.frame.drop(columns=["outcome"]))


def test_plot_is_a_figure_by_error_code_and_fleet_column(mixed):
    fleet, _, first, second = mixed
    from matplotlib.figure import Figure

    both = BatchResult.concat([first, second])
    fig = both.plot(by="product_name", fleet=fleet)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_title() == "Devices by error code"
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "ok" in labels and "romakit.Malformed" in labels and "romakit.Cancelled" in labels
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"
    assert len(first.plot().axes) == 1


def test_retry_through_the_wrong_client_is_refused(mixed, sb):
    _, _, _, second = mixed
    gw = sb.gateway(sb.gateways()[0])
    with pytest.raises(InputError, match="pass a LinkClient"):
        second.retry(gw)
    assert second.retry_ids() == second.ids("unknown")
