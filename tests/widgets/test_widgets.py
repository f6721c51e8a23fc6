"""Drive every widget from Python against a real sandbox (no browser, no sleeps)."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pandas as pd
import pytest
from support.fleets import big_fleet

import romakit as rk
from romakit import outcomes as oc
from romakit.engine import RetryPolicy
from romakit.widgets import ActionPanel, DevicePicker, ResultsView
from romakit.widgets.picker import NO_GATEWAY

WAIT = 60  # seconds: the upper bound of any background run here


SANDBOX = {"devices": 500, "seed": 21}  # the module's sandbox (conftest's sb fixture)
LINK = {"chunk_size": 25}  # the options of the client of conftest's link fixture


def _posts(sb, fragment: str) -> int:
    """How many requests whose path holds ``fragment`` the sandbox has seen."""
    return sum(1 for r in list(sb.link.requests) if fragment in r[2])


def _ids_once(res, ids) -> None:
    got = res.frame["device_id"].astype(str).tolist()
    assert len(got) == len(set(got)) == len(ids)
    assert sorted(got) == sorted(str(i) for i in ids)


# -- DevicePicker -------------------------------------------------------------------------
def test_picker_filters_select_all_and_clear(link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    assert p.count_label.value.endswith("of 500 shown (500 total)")
    assert "<b>0 selected</b>" in p.count_label.value

    p.text.value = "METER"  # case-insensitive, name/node id/client id
    hay = (fleet["device_name"] + " " + fleet["node_id"] + " " + fleet["client_id"]).str.lower()
    expected = fleet.loc[hay.str.contains("meter", regex=False), "id"].tolist()
    assert 0 < len(expected) < len(fleet)
    assert p.shown["id"].tolist() == expected

    p.status.value = "offline"
    expected = fleet.loc[hay.str.contains("meter") & (fleet["online_status"] == "offline"), "id"].tolist()
    assert p.shown["id"].tolist() == expected

    p.select_all_button.click()
    assert p.selected == expected and all(type(i) is int for i in p.selected)
    assert p.table.selected_rows == list(range(len(expected)))
    assert f"<b>{len(expected)} selected</b> of {len(expected)} shown (500 total)" in p.count_label.value

    p.reset_filters_button.click()  # the selection survives filter changes
    assert len(p.shown) == 500 and p.selected == expected
    assert sorted(p.table.selected_rows) == sorted(fleet.index[fleet["id"].isin(expected)].tolist())

    product = fleet["product_name"].value_counts().index[0]
    p.product.value = (product,)
    assert set(p.shown["product_name"]) == {product}
    assert "hidden by the filters" in p.count_label.value or set(expected) <= set(p.shown["id"])

    p.reset_filters_button.click()
    gw_name = fleet["parent_device_name"].dropna().value_counts().index[0]
    p.gateway.value = gw_name
    assert (p.shown["parent_device_name"] == gw_name).all()
    assert len(p.shown) == int((fleet["parent_device_name"] == gw_name).sum())
    p.gateway.value = NO_GATEWAY
    assert p.shown["parent_device_name"].isna().all() and len(p.shown) == int(fleet["parent_device_name"].isna().sum())
    p.gateway.value = "no-such-gateway"
    assert len(p.shown) == 500 and "no gateway named" in p.filter_note.value

    p.clear_button.click()
    assert p.selected == [] and p.table.selected_rows == []


def test_picker_rows_clicked_in_the_table(link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    p.status.value = "online"
    shown = p.shown["id"].tolist()
    p.table.selected_rows = [0, 2, 5]  # what the browser sends when rows are clicked
    assert p.selected == sorted([shown[0], shown[2], shown[5]], key=fleet["id"].tolist().index)
    p.table.selected_rows = [2]  # unselecting in the view unselects only what is shown
    assert p.selected == [shown[2]]
    changes = []
    p.on_selection_change(lambda picker: changes.append(len(picker.selected)))
    p.select_all_button.click()
    assert changes == [len(shown)]


def test_picker_sends_only_the_page(link):
    """The browser gets one page of text cells; paging, sort and clicks are Python's."""
    fleet = link.devices()
    p = DevicePicker(fleet, page_length=10)
    view = p.table.view
    assert view.columns[0] == "id" and len(view.rows) == 10 and view.selected == [False] * 10
    assert view.rows[0][0] == str(fleet["id"].iloc[0]) and p.table.info.value == "Showing 1 to 10 of 500 entries"
    p.table.next_button.click()
    assert view.rows[0][0] == str(fleet["id"].iloc[10]) and p.table.info.value == "Showing 11 to 20 of 500 entries"
    p.table.last_button.click()
    assert p.table.info.value == "Showing 491 to 500 of 500 entries" and p.table.next_button.disabled

    p.table.sort_by("device_name")  # sort: the whole view, back to page 1
    names = sorted(fleet["device_name"].tolist())
    assert [r[1] for r in view.rows] == names[:10] and view.sort_column == 1
    p.table.sort_by("device_name")  # again: descending
    assert [r[1] for r in view.rows] == names[::-1][:10]

    p.table.click(1)  # a plain click: that row alone
    first = fleet.loc[fleet["device_name"] == names[-2], "id"].item()
    assert p.selected == [first] and view.selected == [False, True] + [False] * 8
    p.table.click(3, ctrl=True)  # ctrl adds
    p.table.next_button.click()
    p.table.click(2, shift=True)  # shift: the range from the last click, across pages
    assert len(p.selected) == 1 + (12 - 3 + 1) and view.selected == [True] * 3 + [False] * 7
    p.table.click(0, ctrl=True)  # ctrl again: removes
    assert len(p.selected) == 10
    p.text.value = "no-such-device"
    assert view.rows == [] and p.table.info.value == "Showing 0 entries"
    p.select_all_button.click()  # nothing shown, nothing added
    assert len(p.selected) == 10


def test_picker_plain_columns(link):
    """Columns of any type (lists) are shown as text."""
    fleet = link.devices()
    p = DevicePicker(fleet, columns=["id", "device_name", "tags"])
    p.text.value = "sz"
    p.select_all_button.click()
    assert len(p.shown) == len(p.selected) > 0 and p.table.selected_rows == list(range(len(p.shown)))
    assert len(p.table.view.rows[0]) == 3


def test_picker_pasted_ids_report_unknown(link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    ids = fleet["id"].tolist()
    p.paste.value = f"{ids[3]}, {ids[7]}\n{ids[11]}  999999999 not-an-id\n{ids[3]}"
    p.paste_button.click()
    assert p.selected == [ids[3], ids[7], ids[11]]
    assert p.unknown_pasted == ["999999999", "not-an-id"]
    assert "2 not in this fleet" in p.paste_report.value and "999999999" in p.paste_report.value

    kids = fleet[fleet["node_type"] == "child"]
    q = DevicePicker(kids, id_column="client_id")
    cids = kids["client_id"].tolist()
    assert q.select(f"{cids[0]} {cids[1]} gw-9999_c0001") == ["gw-9999_c0001"]
    assert q.selected == cids[:2]


def test_picker_refuses_bad_frames(link):
    fleet = link.devices()
    with pytest.raises(rk.InputError, match="id_column 'nope'"):
        DevicePicker(fleet, id_column="nope")
    with pytest.raises(rk.InputError, match="duplicated"):
        DevicePicker(pd.concat([fleet, fleet.iloc[:2]]))


def test_picker_100k_devices(record_property):
    """Build and filter a 100,000-device picker; the times are recorded, not asserted."""
    fleet = big_fleet(100_000)
    t0 = time.perf_counter()
    p = DevicePicker(fleet)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    p.text.value = "sz"
    narrow = time.perf_counter() - t0
    assert len(p.shown) == 20_000
    t0 = time.perf_counter()
    p.product.value = ("SmartMeter EM300",)
    p.status.value = "offline"
    both = time.perf_counter() - t0
    t0 = time.perf_counter()
    p.reset_filters_button.click()
    full = time.perf_counter() - t0
    t0 = time.perf_counter()
    p.select_all_button.click()
    select_all = time.perf_counter() - t0
    assert len(p.selected) == 100_000 and len(p.table.selected_rows) == 100_000
    assert len(p.table.view.rows) == p.page_length  # the browser holds one page
    times = {"build": build, "filter_text": narrow, "filter_product_status": both, "filter_reset_100k": full,
             "select_all_100k": select_all}
    for k, v in times.items():
        record_property(k, round(v, 3))
    print("100k picker seconds:", {k: round(v, 3) for k, v in times.items()})


# -- ActionPanel -----------------------------------------------------------------------------
def test_action_preview_and_confirm_guard(sb, link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    product = fleet["product_name"].value_counts().index[1]
    p.product.value = (product,)
    p.status.value = "online"
    p.select_all_button.click()
    ids = p.selected
    panel = ActionPanel(link, p)
    assert [v for _, v in panel.operation.options] == ["force_offline", "delete_devices"]

    before = _posts(sb, "force-offline")
    assert panel.run() is False and "Preview first" in panel.message
    panel.preview_button.click()
    plan = panel.plan
    assert plan.devices == len(ids) and plan.chunk_size == 25 and plan.chunks == math.ceil(len(ids) / 25)
    assert plan.by_product.to_dict() == {product: len(ids)}
    sel = fleet[fleet["id"].isin(ids)]
    expected_parents = sel["parent_device_name"].astype(object).where(sel["parent_device_name"].notna(), "(no gateway)")
    assert plan.by_parent.to_dict() == expected_parents.value_counts().to_dict()
    assert f"{len(ids)} devices" in panel.preview.value and "nothing sent" in panel.preview.value.replace("Dry run", "")

    panel.run_button.click()  # no confirmation: refused, nothing sent
    assert "confirm" in panel.message and panel.result is None and not panel.running
    assert _posts(sb, "force-offline") == before

    panel.confirm.value = True
    p.table.selected_rows = p.table.selected_rows[1:]  # the selection changes after the preview
    assert panel.plan is None and panel.confirm.value is False
    panel.run_button.click()
    assert "Preview first" in panel.message
    assert _posts(sb, "force-offline") == before

    p.select_all_button.click()
    panel.preview_button.click()
    panel.confirm.value = True
    panel.run_button.click()
    assert panel.wait(WAIT)
    res = panel.result
    assert res is not None and panel.error is None and res.counts["success"] == len(ids)
    # force-offline has the registry's abort criteria: the window starts slow, so the run
    # sends more (smaller) requests than the plan's chunks of 25
    assert res.frame["chunk"].nunique() >= plan.chunks and f"at most {min(len(ids), 200)} devices" in panel.preview.value
    _ids_once(res, ids)
    assert panel.progress.value == len(ids) and str(plan.chunks) in panel.progress_label.value
    assert panel.plan is None and panel.run_button.disabled  # the next run needs a new preview
    after = link.devices()
    assert (after.loc[after["id"].isin(ids), "online_status"] == "offline").all()


def test_action_blast_radius_guard(sb, link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    ids = fleet.loc[fleet["online_status"] == "online", "id"].tolist()[:30]
    p.select(ids)
    panel = ActionPanel(link, p, blast_radius=10)
    panel.preview_button.click()
    assert panel.blast.layout.display != "none" and "blast radius of 10" in panel.preview.value
    panel.confirm.value = True
    before = _posts(sb, "force-offline")
    panel.run_button.click()
    assert "blast radius" in panel.message and "type 30" in panel.message
    panel.blast.value = "29"
    assert panel.run() is False and panel.result is None
    assert _posts(sb, "force-offline") == before
    panel.blast.value = "30"
    assert panel.run() is True
    assert panel.wait(WAIT) and panel.result.counts["success"] == 30
    _ids_once(panel.result, ids)


def test_action_cancel_mid_run(sb):
    """Cancel pressed from the progress callback after 50 devices: sent chunks finish,
    the rest end skipped, every id appears once."""
    sb.clear_faults()
    sb.set_fault(latency_ms=20)
    link = sb.link_client(chunk_size=10, concurrency=1)
    try:
        fleet = link.devices()
        p = DevicePicker(fleet)
        ids = fleet["id"].tolist()[:200]
        p.select(ids)
        panel = ActionPanel(link, p)
        seen = []

        def press(done: int, total: int) -> None:
            seen.append(done)
            if done >= 50:
                panel.cancel_button.click()

        panel.on_progress(press)
        panel.preview_button.click()
        panel.confirm.value = True
        assert panel.run()
        assert panel.wait(WAIT)
        res = panel.result
        _ids_once(res, ids)
        c = res.counts
        assert res.stopped and c["skipped"] > 0 and c["success"] >= 50
        assert c["success"] + c["skipped"] == 200
        skipped = res.frame[res.frame["outcome"] == "skipped"]
        assert set(skipped["error_code"].astype(str)) == {oc.CANCELLED}
        assert seen[-1] == c["success"] and panel.progress.value == c["success"]
        assert "stopped" in panel.message
    finally:
        sb.clear_faults()
        link.close()


def test_action_passes_the_rollout_policy(sb, link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    ids = fleet["id"].tolist()[200:240]
    p.select(ids)
    panel = ActionPanel(link, p)
    assert "abort when 10% failed or unknown after 200 devices" in panel.rollout_info.value  # the registry's
    panel.rollout = rk.Rollout(canary=10, abort_min=1000)
    assert "canary of 10" in panel.rollout_info.value
    panel.preview_button.click()
    plan = panel.plan
    assert plan.chunks == 1 + math.ceil(30 / 25) and "canary of 10" in panel.preview.value
    panel.confirm.value = True
    assert panel.run()
    assert panel.gate.asked.wait(WAIT)  # the canary is done: the panel waits for a person
    assert "Canary done" in panel.gate.info.value and "10 success" in panel.gate.info.value
    assert not panel.wait(0.05)  # still waiting at the gate: nothing more sent
    panel.gate.continue_button.click()
    assert panel.wait(WAIT)
    assert panel.error is None and panel.result.counts["success"] == 40
    assert panel.result.frame["chunk"].nunique() >= plan.chunks
    _ids_once(panel.result, ids)


def test_action_canary_gate_stop_and_policy_form(sb, link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    ids = fleet["id"].tolist()[240:300]
    p.select(ids)
    panel = ActionPanel(link, p)
    form = panel.rollout_form
    form.enabled.value = True  # the defaults appear, editable
    assert panel.rollout == rk.Rollout()
    form.canary.value = 20
    form.abort_min.value = 500
    assert panel.rollout.canary == 20 and panel.rollout.gate is not None
    assert "canary of 20" in panel.rollout_info.value
    panel.preview_button.click()
    panel.confirm.value = True
    assert panel.run() and panel.gate.asked.wait(WAIT)
    sent_before = len(sb.link.requests)
    panel.gate.stop_button.click()
    assert panel.wait(WAIT)
    res = panel.result
    assert res.counts["success"] == 20 and res.counts["skipped"] == 40
    assert "refused at the gate" in res.stopped and len(sb.link.requests) == sent_before
    _ids_once(res, ids)
    form.enabled.value = False
    assert panel.rollout is None


def test_action_refuses_wrong_id_kind(sb, link):
    fleet = link.devices()
    p = DevicePicker(fleet, id_column="client_id")
    p.select(fleet["client_id"].tolist()[:3])
    panel = ActionPanel(link, p)
    panel.preview_button.click()
    assert panel.plan is None and "id_column='id'" in panel.message


def test_action_offers_the_registry_operations(sb, link):
    """The panel's choices, labels and chunk sizes come from romakit.operations, and the
    client's kind is what the client declares (nothing guessed from method names)."""
    from romakit import operations as ops
    from romakit.widgets.action import GATEWAY, LINK

    p = DevicePicker(link.devices())
    panel = ActionPanel(link, p)
    assert panel.operation.options == tuple((op.label, op.name) for op in ops.for_kind(ops.LINK, pickable=True))
    assert ops.client_kind(link) == LINK == ops.LINK and GATEWAY == ops.GATEWAY
    gw = sb.gateway(sb.gateways()[0])
    assert ops.client_kind(gw) == GATEWAY
    with pytest.raises(rk.InputError, match="expected a LinkClient"):
        ops.client_kind(object())

    from romakit.widgets.preview import chunk_size_of

    assert chunk_size_of(link, ops.operation("force_offline")) == 25  # the client's own default
    assert chunk_size_of(gw, ops.operation("delete_sub_devices")) == ops.operation("delete_sub_devices").default_chunk


def test_results_view_uses_the_one_colour_map(link):
    from romakit.widgets import results_view

    res = link.force_offline(link.devices()["id"].tolist()[410:412], progress=False)
    view = ResultsView(res)
    assert f"color:{oc.COLOURS['success']}" in view.header.value
    assert not hasattr(results_view, "_OUTCOME_COLOURS")


def test_itables_is_reached_only_through_the_adapter():
    import pathlib
    import re

    import romakit.widgets as pkg

    uses = re.compile(r"^\s*(from|import) itables\b|\._dt_args\b|\._df\b", re.M)
    users = sorted(f.name for f in pathlib.Path(pkg.__file__).parent.glob("*.py")
                   if f.name != "_itables.py" and uses.search(f.read_text()))
    assert users == [], f"modules using itables directly: {users}"


# -- ResultsView ----------------------------------------------------------------------------
def test_results_view_retry_and_export(sb, tmp_path):
    sb.clear_faults()
    impatient = sb.link_client(chunk_size=25, retry=RetryPolicy(attempts=1))
    link = sb.link_client(chunk_size=25)
    try:
        ids = link.devices()["id"].tolist()[300:360]
        sb.set_fault(error_rate=1.0)  # every request answered 500 APIG.9999: transient
        first = impatient.force_offline(ids, progress=False)
        assert first.counts["failed"] == 60 and sorted(first.retry_ids()) == sorted(ids)
        sb.clear_faults()

        view = ResultsView(first, target=link)
        assert "60 failed" in view.header.value and "APIG.9999" in view.summary.value
        assert view.chart.value[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(view.failures.df) == 60
        assert view.retry_button.description == "Retry transient failures (60)" and not view.retry_button.disabled

        view.retry_button.click()  # staged, not sent: the view's own panel previews it
        panel = view.panel
        assert panel.plan.kind == "retry" and panel.plan.devices == 60 and "previewed" in view.message
        assert "Retry" in panel.preview.value and "at most 60 devices" in panel.preview.value
        panel.confirm.value = True
        panel.run_button.click()
        assert view.wait(WAIT)
        new = view.result
        assert view.error is None and new is not first
        assert new.parent_op_id == first.op_id and new.counts["success"] == 60
        _ids_once(new, ids)
        assert [r.op_id for r in view.results] == [first.op_id, new.op_id]
        assert f"retry of <code>{first.op_id}</code>" in view.header.value
        assert view.retry_button.disabled  # nothing transient left

        view.path.value = str(tmp_path / "out" / "retried")
        view.csv_button.click()  # a missing directory is refused, not created: it may be a typo
        assert view.last_export is None and "does not exist" in view.message and not (tmp_path / "out").exists()
        (tmp_path / "out").mkdir()
        view.csv_button.click()
        assert view.last_export == tmp_path / "out" / "retried.csv"
        assert str(tmp_path / "out" / "retried.csv") in view.message  # the absolute path, shown
        view.parquet_button.click()
        assert view.last_export == tmp_path / "out" / "retried.parquet"
        assert "wrote 60 rows" in view.message
        back_csv = pd.read_csv(tmp_path / "out" / "retried.csv")
        back_pq = pd.read_parquet(tmp_path / "out" / "retried.parquet")
        assert sorted(back_csv["device_id"].astype(str)) == sorted(map(str, ids))
        assert back_pq["outcome"].astype(str).eq("success").all() and len(back_pq) == 60
        view.report_button.click()  # the evidence report, offered as a download link
        assert view.last_export == tmp_path / "out" / "retried.html" and "evidence report" in view.message
        assert "download='retried.html'" in view.download.value and "data:text/html;base64," in view.download.value
        assert "id='chain'" in view.last_export.read_text()
    finally:
        sb.clear_faults()
        impatient.close()
        link.close()


def test_results_view_refusals(sb, link):
    res = link.force_offline(link.devices()["id"].tolist()[400:405], progress=False)
    view = ResultsView(res)
    assert view.retry() is False and "nothing to retry" in view.message
    frame = res.frame.copy()
    frame["outcome"] = "failed"
    frame["error_code"] = "APIG.9999"
    failed = rk.BatchResult.from_frame(frame, operation=res.operation, target=res.target, op_id="f00")
    view.show(failed)
    assert not view.retry_button.disabled
    assert view.retry() is False and "no client" in view.message
    view.path.value = ""
    view.csv_button.click()
    assert "export failed" in view.message
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"].startswith("<ResultsView: <BatchResult force_offline")
    assert "application/vnd.jupyter.widget-view+json" in bundle


# -- console --------------------------------------------------------------------------------------
def test_console_link_and_gateway_tabs(sb, link):
    gid = sb.gateways()[1]
    kids = sb.children(gid)
    assert len(kids) >= 2
    gw = sb.gateway(gid)
    con = rk.console(link, gateways=[gw])
    try:
        assert con.picker.id_column == "id" and len(con.picker.fleet) == len(sb.fleet)
        assert list(con.tabs.titles) == ["LINK", gid, "Timeline"]

        con.select_tab(gid)
        p, panel = con.picker, con.panel
        assert p.id_column == "client_id" and sorted(p.fleet["client_id"]) == sorted(kids)
        assert [v for _, v in panel.operation.options] == ["delete_sub_devices"]
        doomed = kids[:2]
        p.select(doomed)
        panel.preview_button.click()
        assert panel.plan.devices == 2 and panel.plan.chunk_size == 50 and panel.plan.chunks == 1
        assert panel.plan.by_parent.index.tolist() == [con.fleet.loc[con.fleet["client_id"] == gid, "device_name"].iloc[0]]
        panel.confirm.value = True
        panel.run_button.click()
        assert panel.wait(WAIT), panel.message
        res = con.results.result
        assert res is panel.result and res.counts["success"] == 2 and res.target == gid
        assert con.results.target is gw
        assert not set(doomed) & set(sb.children(gid))

        con.select_tab("LINK")
        assert con.picker.id_column == "id" and con.panel.target is link
        assert con.results.target is gw  # a result keeps the client it ran on
        assert repr(con).startswith("<Console: 2 targets;")
    finally:
        con.close()


def test_widgets_are_imported_lazily():
    code = (
        "import sys, romakit as rk\n"
        "import romakit.link.client, romakit.iotda.gateway, romakit.engine, romakit.results\n"
        "assert not any(m.split('.')[0] in ('ipywidgets', 'itables', 'matplotlib') for m in sys.modules), "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'itables', 'matplotlib'))\n"
        "from romakit.widgets import console\n"
        "assert rk.console is console and 'ipywidgets' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_console_gateway_tab_lists_children_from_the_gateways_sync_and_asks_before_a_takeover(sb, link):
    """Without an inventory the tab lists the children the gateway's own sync returns; with
    one, an ONLINE gateway is taken over only after the confirm that says what it does."""
    gid, other = [g["client_id"] for g in sb.fleet.gateways() if g["status"] == 0 and len(sb.children(g["client_id"])) >= 3][-2:]
    gw = sb.gateway(gid, inventory=None)
    con = rk.console(link, gateways=[gw])
    try:
        con.select_tab(gid)
        assert sorted(con.picker.fleet["client_id"]) == sorted(sb.children(gid))
    finally:
        con.close()
    field = sb.field_gateway(other)
    gw2 = sb.gateway(other)
    con = rk.console(link, gateways=[gw2])
    try:
        con.select_tab(other)
        p, panel = con.picker, con.panel
        assert sorted(p.fleet["client_id"]) == sorted(sb.children(other))  # from the inventory
        p.select(sb.children(other)[:1])
        panel.preview_button.click()
        assert "is ONLINE in IoTDA" in panel.preview.value and panel.takeover.layout.display == ""
        assert "disconnect the field gateway" in panel.takeover.description
        panel.confirm.value = True
        assert not panel.run() and "tick" in panel.message
        panel.takeover.value = True
        assert panel.run()
        assert panel.wait(WAIT), panel.message
        assert panel.result is not None and len(panel.result.frame) == 1
    finally:
        con.close()
        field.stop()


def test_defects_seen_in_the_browser_are_gone(sb, link):
    """(any) in Status, the page length among its choices, a delete preview that says it is
    permanent and names selected gateways with children, a ResultsView without a broken
    image or a stale error, and widgets that close visibly."""
    fleet = link.devices()
    p = DevicePicker(fleet)
    assert p.status.value == "" and p.status.label == "(any)"  # a None value draws a blank box
    assert p.page_length in p.table.length.options  # else its select is blank
    gw = fleet[fleet["node_type"] == "gateway"].iloc[0]
    kids = int((fleet["parent_device_id"].astype("string") == str(gw["id"])).sum())
    p.select([int(gw["id"])])
    panel = ActionPanel(link, p)
    panel.operation.value = "delete_devices"
    panel.preview_button.click()
    assert "Permanent:" in panel.preview.value and f"carries {kids:,} child device" in panel.preview.value
    assert panel.preview.value.index("By product") < panel.preview.value.index("By parent gateway")
    panel.operation.value = "force_offline"
    panel.preview_button.click()
    assert "Permanent:" not in panel.preview.value
    view = ResultsView()
    assert view.chart.layout.display == "none"  # no broken-image icon before the first result
    view._export_clicked("csv")
    assert "export failed" in view.message
    view.show(link.force_offline(fleet["id"].tolist()[-3:], progress=False))
    assert view.status.value == "" and view.chart.layout.display == ""  # the old error is gone
    for widget in (p, panel, view):
        widget.close()
        assert widget.closed and len(widget.widget.children) == 1
        assert "Closed" in widget.widget.children[0].value
