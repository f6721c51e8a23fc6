"""The widgets' one safety path, driven from Python against a real sandbox: one search,
retry and resume through preview + confirm + guard, acted-on devices leave the selection,
a closed client or sandbox refused before sending, the canary gate's safe default."""

from __future__ import annotations

import pytest

import romakit as rk
from romakit.engine import RetryPolicy
from romakit.widgets import ActionPanel, DevicePicker, ResultsView

WAIT = 60


SANDBOX = {"devices": 600, "seed": 23}  # the module's sandbox (conftest's sb fixture)
LINK = {"chunk_size": 25}  # the options of the client of conftest's link fixture


def posts(sb, fragment: str = "force-offline") -> int:
    return sum(n for _, _, path, _, n in list(sb.link.requests) if path.endswith(fragment))


def test_one_search_and_select_all_acts_on_exactly_the_rows_shown(link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    # the table is a paged view of the picker's own: no search box of its own to disagree with
    assert not hasattr(p.table, "search") and p.table.widget is not None
    p.text.value = "water"
    shown = p.shown["id"].tolist()
    assert 0 < len(shown) < len(fleet)
    p.select_all_button.click()
    assert p.selected == shown  # no door controller, no HVAC unit the table did not show
    hay = (fleet["device_name"] + " " + fleet["node_id"] + " " + fleet["client_id"]).str.lower()
    assert set(p.selected) == set(fleet.loc[hay.str.contains("water"), "id"])


def test_retry_goes_through_preview_confirm_and_the_guard(sb, link):
    fleet = link.devices()
    ids = fleet.loc[fleet["online_status"] == "online", "id"].tolist()[:100]
    with sb.link_client(chunk_size=25, retry=RetryPolicy(attempts=1), progress=False) as impatient:
        sb.set_fault(error_rate=1.0)
        first = impatient.force_offline(ids, rollout=False)
        sb.clear_faults()
    assert len(first.retry_ids()) == 100
    p = DevicePicker(fleet)
    view = ResultsView(target=link, fleet=fleet)
    panel = ActionPanel(link, p, results=view, blast_radius=50)
    view.show(first)
    before = posts(sb)
    view.retry_button.click()  # one click sends nothing: it stages a preview
    assert posts(sb) == before and panel.plan.kind == "retry" and panel.plan.devices == 100
    assert "blast radius of 50" in panel.preview.value
    assert panel.run() is False and "confirm" in panel.message
    panel.confirm.value = True
    assert panel.run() is False and "type 100" in panel.message
    assert posts(sb) == before
    panel.blast.value = "100"
    assert panel.run() and panel.wait(WAIT)
    new = view.result
    assert new.parent_op_id == first.op_id and new.counts["success"] == 100


def test_after_a_run_the_acted_on_devices_leave_the_selection(sb, link):
    fleet = link.devices()
    p = DevicePicker(fleet)
    ids = fleet.loc[fleet["node_type"] == "direct", "id"].tolist()[:6]
    p.select(ids)
    panel = ActionPanel(link, p)
    panel.operation.value = "delete_devices"
    assert "canary of 50" in panel.rollout_info.value  # a deletion's default: canary + abort criteria
    panel.rollout_form.wait_for_me.value = False
    panel.make_preview()
    panel.confirm.value = True
    assert panel.run() and panel.wait(WAIT)
    assert panel.result.counts["success"] == 6
    assert p.selected == [] and not set(ids) & set(p.fleet["id"])  # dropped, and gone from the list
    assert "6 acted-on devices left the selection" in panel.message
    p.select(ids)  # not in the list any more: nothing to select, nothing to re-send
    assert p.selected == []


def test_console_refreshes_after_a_child_deletion(sb, link):
    gid = max(sb.gateways(), key=lambda g: len(sb.children(g)))
    kids = sb.children(gid)[:3]
    con = rk.console(link, gateways=[sb.gateway(gid)])
    try:
        con.select_tab(gid)
        con.picker.select(kids)
        con.panel.rollout_form.wait_for_me.value = False
        con.panel.make_preview()
        con.panel.confirm.value = True
        assert con.panel.run() and con.panel.wait(WAIT)
        assert con.panel.result.counts["success"] == 3
        assert con.picker.selected == [] and not set(kids) & set(con.picker.fleet["client_id"])  # relisted
        assert con.panel.make_preview() is None  # nothing selected: nothing re-sent
    finally:
        con.close()


def armed_panel(link) -> tuple[ActionPanel, object]:
    """A panel with five devices picked, previewed and confirmed: one press from sending."""
    fleet = link.devices()
    p = DevicePicker(fleet)
    p.select(fleet["id"].tolist()[:5])
    panel = ActionPanel(link, p)
    panel.make_preview()
    panel.confirm.value = True
    return panel, fleet


def test_a_closed_client_is_refused_before_sending_never_unknown(sb):
    link = sb.link_client(progress=False)
    panel, fleet = armed_panel(link)
    link.close()
    before = len(sb.link.requests)
    assert panel.run() is False and panel.result is None
    assert "was closed" in panel.message and panel.preview_button.disabled and panel.run_button.disabled
    assert len(sb.link.requests) == before
    with pytest.raises(rk.InputError, match="was closed"):
        link.force_offline(fleet["id"].tolist()[:5])  # the client itself refuses too


def test_a_closed_sandbox_is_refused_with_the_reason():
    sb = rk.sandbox(devices=50, seed=3, mqtt=False)
    c = sb.credentials
    own = sb.link_client(progress=False)  # closed with its sandbox
    stranger = rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk), progress=False)
    try:
        panel, _ = armed_panel(stranger)
        closed, _ = armed_panel(own)
        sb.close()
        assert panel.run() and panel.wait(WAIT)  # the service is gone: found before anything is sent
        assert panel.result is None and "cannot reach" in panel.message and panel.disabled_reason
        assert panel.run_button.disabled
        assert not closed.run()  # the sandbox's own client was closed with it: refused at once
        assert closed.result is None and "was closed" in closed.message and closed.disabled_reason
        assert closed.run_button.disabled
    finally:
        stranger.close()
        sb.close()


def test_a_failed_canary_makes_stop_the_main_action_and_the_status_says_it_waits(sb, link):
    fleet = link.devices()
    by_product = fleet.groupby("product_id")["id"].apply(list)
    bad = by_product.map(len).idxmax()
    ids = by_product[bad][:20] + fleet.loc[fleet["product_id"] != bad, "id"].tolist()[:40]
    sb.set_fault(fail_products={int(bad)})
    p = DevicePicker(fleet.set_index("id").loc[ids].reset_index())
    p.select(ids)
    panel = ActionPanel(link, p)
    panel.rollout = rk.Rollout(canary=20, abort_min=1000)
    panel.make_preview()
    panel.confirm.value = True
    assert panel.run() and panel.gate.asked.wait(WAIT)
    gate = panel.gate
    assert gate.stop_button.button_style == "primary" and gate.continue_button.button_style == ""
    assert "waiting at the canary gate" in panel.message and "Stop is recommended" in panel.message
    gate.stop_button.click()
    assert panel.wait(WAIT) and panel.result.counts["skipped"] == 40


def test_resume_button_previews_and_runs_through_the_guard(sb, link):
    fleet = link.devices()
    ids = fleet.loc[fleet["online_status"] == "online", "id"].tolist()[:40]
    token = rk.CancelToken()
    first = link.force_offline(ids, chunk_size=10, concurrency=1, rollout=False, cancel=token,
                               progress=lambda d, t: token.cancel("paused") if d >= 10 else None)
    assert first.counts["skipped"] == 30
    p = DevicePicker(fleet)
    view = ResultsView(first, target=link)
    panel = ActionPanel(link, p, results=view, blast_radius=20)
    assert not view.resume_button.disabled and "30 without an answer" in view.resume_button.description
    before = posts(sb)
    view.resume_button.click()
    assert panel.plan.kind == "resume" and panel.plan.devices == 30 and posts(sb) == before
    assert "Resume" in panel.preview.value and "No rollout policy" in panel.preview.value  # it ran with none
    panel.confirm.value = True
    panel.blast.value = "30"
    assert panel.run() and panel.wait(WAIT)
    done = panel.result
    assert done.op_id == first.op_id and done.ok and done.frame["device_id"].tolist() == [str(i) for i in ids]
