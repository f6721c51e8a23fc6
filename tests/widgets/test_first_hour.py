"""What a new user of the panel stumbles on, driven from Python against a real sandbox:
the canary gate's buttons where the status line asks for them, the typed-count refusal
taken back once the count is typed, selected rows hidden by the filters said in the
preview's headline and the confirmation, progress counted in the running plan's own
chunks, tables without ``NaN`` or raw float latencies."""

from __future__ import annotations

import threading

import pytest

import romakit as rk
from romakit.engine import RetryPolicy
from romakit.widgets import ActionPanel, DevicePicker, ResultsView
from romakit.widgets.results_view import shown
from romakit.widgets.staging import progress_text

pytestmark = pytest.mark.timeout(180)

WAIT = 60

SANDBOX = {"devices": 500, "seed": 37}  # the module's sandbox (conftest's sb fixture)
LINK = {"chunk_size": 10}  # the options of the client of conftest's link fixture


def walk(widget):
    """Every widget under ``widget`` whose box is shown (a collapsed Accordion hides its children)."""
    yield widget
    if type(widget).__name__ == "Accordion":
        return  # what is inside stays folded until opened
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def test_the_gate_asks_under_the_status_line_with_stop_primary_when_the_canary_failed(sb, link):
    fleet = link.devices()
    by_product = fleet.groupby("product_id")["id"].apply(list)
    bad = by_product.map(len).idxmax()
    ids = by_product[bad][:10] + fleet.loc[fleet["product_id"] != bad, "id"].tolist()[:30]
    p = DevicePicker(fleet)
    p.select(ids)
    panel = ActionPanel(link, p)
    panel.rollout = rk.Rollout(canary=10, abort_min=1000)
    assert panel.rollout_section.selected_index is None  # the rollout section is folded
    visible = list(walk(panel.widget))
    assert panel.gate.continue_button in visible and panel.gate.stop_button in visible
    kids = list(panel.widget.children)
    assert kids.index(panel.gate.widget) == kids.index(panel.status) + 1
    sb.set_fault(fail_products={int(bad)})
    panel.make_preview()
    panel.confirm.value = True
    assert panel.run() and panel.gate.asked.wait(WAIT)
    assert panel.gate.widget.layout.display == ""
    assert panel.gate.stop_button.button_style == "primary" and panel.gate.continue_button.button_style == ""
    assert panel.gate.stop_button.description == "Stop here (recommended)"
    assert "waiting at the canary gate for your decision below" in panel.message
    panel.gate.stop_button.click()
    assert panel.wait(WAIT) and panel.result.counts["skipped"] == 30


def test_the_typed_count_refusal_is_taken_back_once_it_is_typed(link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    p.select(fleet["id"].tolist()[:30])
    panel = ActionPanel(link, p, blast_radius=20)
    panel.make_preview()
    panel.confirm.value = True
    assert panel.run() is False and panel.message == "30 devices is above the blast radius of 20: type 30 in the box to confirm"
    assert "color:#b00" in panel.status.value
    panel.blast.value = "3"  # not yet: the refusal stays
    assert "type 30 in the box" in panel.message
    panel.blast.value = "30"
    assert panel.message == "30 typed: press Run" and "color:#b00" not in panel.status.value


def test_selected_rows_hidden_by_the_filters_are_said_in_the_headline_and_the_confirmation(link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    p.text.value = "water"
    outside = fleet.loc[~fleet["id"].isin(p.shown["id"]), "id"].iloc[0]
    p.select([outside])  # pasted before filtering
    p.select_all_button.click()
    n = len(p.shown)
    assert p.hidden == 1 and f"{n + 1:,} selected</b> of {n:,} shown" in p.count_label.value
    panel = ActionPanel(link, p)
    plan = panel.make_preview()
    assert plan.devices == n + 1 and plan.hidden == 1
    headline = panel.preview.value.split("</p>")[0]
    assert "1 of them is hidden by the filters" in headline
    assert panel.confirm.description == f"I confirm: force {n + 1} devices offline (1 of them is hidden by the filters)"
    p.clear()
    p.select_all_button.click()
    assert panel.make_preview().hidden == 0 and "hidden" not in panel.confirm.description


def test_progress_counts_the_running_retrys_own_chunks(sb, link):
    fleet = link.devices()
    ids = fleet.loc[fleet["online_status"] == "online", "id"].tolist()[:30]
    sb.set_fault(error_rate=1.0)
    try:  # one try each: every device fails with a transient cause
        first = link.force_offline(ids, chunk_size=25, rollout=False, retry=RetryPolicy(attempts=1))
    finally:
        sb.clear_faults()
    view = ResultsView(target=link, fleet=fleet)
    panel = ActionPanel(link, DevicePicker(fleet), results=view)
    panel.chunk_size = 25
    view.show(first)
    view.retry_button.click()  # under the registry's policy: its slow start cuts the first chunk
    assert panel.plan.kind == "retry" and panel.plan.chunks == 2 and panel.plan.policy
    labels: list[str] = []
    done = threading.Event()
    panel.on_progress(lambda d, t: labels.append(panel.progress_label.value))
    panel.on_done(lambda _r: done.set())
    panel.confirm.value = True
    assert panel.run() and done.wait(WAIT)
    assert view.result.counts["success"] == 30
    assert len(labels) > 2  # more requests than planned chunks
    assert labels[-1] == "30/30 devices, 2/2 chunks", labels


def test_progress_text_counts_whole_chunks_in_sending_order(link):
    from romakit.operations import operation
    from romakit.widgets.preview import plan_for

    ids = list(range(1, 51))
    p5 = plan_for(link, operation("force_offline"), ids, {}, None, False, chunk_size=10)
    assert [progress_text(p5, d, 50) for d in (0, 9, 10, 35, 50)] == [
        "0/50 devices, 0/5 chunks", "9/50 devices, 0/5 chunks", "10/50 devices, 1/5 chunks",
        "35/50 devices, 3/5 chunks", "50/50 devices, 5/5 chunks"]


def test_tables_show_no_nan_and_round_latencies(sb, link):
    ids = link.devices()["id"].tolist()[:30]
    sb.set_fault(error_rate=0.5)
    try:
        res = link.force_offline(ids, rollout=False)
    finally:
        sb.clear_faults()
    view = ResultsView(res)
    assert "NaN" not in view.summary.value and "nan" not in view.summary.value
    frame = shown(res.frame)
    success = frame[frame["outcome"] == "success"]
    assert (success["error_code"] == "").all() and (success["error_msg"] == "").all()
    lat = [v for v in frame["latency_ms"] if v != ""]
    assert lat and all(round(v, 1) == v for v in lat)
    assert res.frame["error_code"].isna().any()  # the result keeps its own values


def test_the_preview_says_when_a_run_will_not_be_journaled(sb, link):
    """A client made with ``journal=False`` runs unrecorded by choice: the panel's preview
    says so in the plan's own words, before anything is sent."""
    from romakit.engine.guard import NOT_JOURNALED

    fleet = link.devices()
    p = DevicePicker(fleet)
    p.select(fleet["id"].tolist()[:5])
    recorded = ActionPanel(link, p)
    assert recorded.make_preview().batch.journaled and "not journaled" not in recorded.preview.value
    with sb.link_client(progress=False, journal=False) as bare:
        panel = ActionPanel(bare, p)
        plan = panel.make_preview()
        assert not plan.batch.journaled and NOT_JOURNALED.split(":")[0] in panel.preview.value
