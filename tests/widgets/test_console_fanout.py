"""The console's *All gateways* tab, driven from Python against a real sandbox (its
broker and IoTDA platform over loopback sockets): children of many gateways picked in
one picker, previewed, confirmed and deleted in one run, each through its own gateway;
its retry aimed at the gateways it ran on. No sleeps: every wait is on the panel."""

from __future__ import annotations

import romakit as rk
from romakit.widgets.fanout_tab import TITLE

WAIT = 60  # seconds: the upper bound of any background run here


SANDBOX = {"devices": 700, "seed": 29}  # the module's sandbox (conftest's sb fixture)


def busy(sb, n: int, skip: int = 0, at_least: int = 5) -> list[str]:
    found = [g for g in sb.gateways() if len(sb.children(g)) >= at_least][skip:skip + n]
    assert len(found) == n, "the fleet has too few gateways with children for this test"
    return found


def deletes(sb, since: int) -> list[tuple]:
    return [h for h in sb.platform.handled[since:] if h[2] == "delete_sub_device_request"]


def test_all_gateways_tab_previews_confirms_and_deletes_each_child_through_its_gateway(sb, link):
    gws = busy(sb, 3)
    con = rk.console(link, gateways=[sb.gateway(g) for g in gws], blast_radius=8)
    try:
        assert list(con.tabs.titles) == ["LINK", *gws, TITLE, "Timeline"]
        con.select_tab(TITLE)
        p, panel = con.picker, con.panel
        assert p.id_column == "client_id"
        assert sorted(p.fleet["client_id"]) == sorted(c for g in gws for c in sb.children(g))
        assert [v for _, v in panel.operation.options] == ["delete_sub_devices"]
        kids = {g: sb.children(g)[:3] for g in gws}
        ids = [c for g in gws for c in kids[g]]
        p.select(ids)
        panel.rollout_form.wait_for_me.value = False
        plan = panel.make_preview()
        assert plan.devices == 9 and plan.target == "3 gateways"
        assert plan.what.startswith("permanently delete 9 child devices across 3 gateways (")
        assert all(f"{g}: 3" in plan.what for g in gws)
        names = con.fleet.set_index("client_id").loc[gws, "device_name"]
        assert sorted(plan.by_parent.index) == sorted(names) and set(plan.by_parent) == {3}
        assert "Permanent" in panel.preview.value and "3 gateways" in panel.preview.value

        before = len(sb.platform.handled)
        assert not panel.run() and "tick the confirm box" in panel.message  # nothing sent unconfirmed
        panel.confirm.value = True
        assert not panel.run() and "type 9" in panel.message  # above the blast radius of 8
        assert len(sb.platform.handled) == before
        panel.blast.value = "9"
        assert panel.run() and panel.wait(WAIT), panel.message
        res = panel.result
        assert res.counts["success"] == 9 and res.target == "3 gateways" and con.results.result is res
        assert dict(zip(res.frame["device_id"].astype(str), res.frame["target"].astype(str), strict=True)) == {
            c: g for g in gws for c in kids[g]}
        log = deletes(sb, before)
        assert sum(h[4] for h in log) == 9 and {h[1] for h in log} == set(gws)  # each gateway its own
        assert all(not set(kids[g]) & set(sb.children(g)) for g in gws)
        assert p.selected == [] and not set(ids) & set(p.fleet["client_id"])  # relisted
    finally:
        con.close()


def test_a_retry_goes_to_the_gateways_the_run_went_through_and_reads_first(sb, link):
    """Answers lost (the children deleted, the answers dropped): the run ends unknown; the
    retry from the results view aims at the two gateways it ran on (of three), reads what
    is gone, and sends no delete again."""
    gws = busy(sb, 3, skip=3, at_least=2)
    con = rk.console(link, gateways=[sb.gateway(g, timeout=1.0) for g in gws])
    try:
        con.select_tab(TITLE)
        panel = con.panel
        panel.rollout_form.enabled.value = False
        ids = [c for g in gws[:2] for c in sb.children(g)[:2]]
        con.picker.select(ids)
        sb.set_fault(mqtt_drop_rate=1.0)
        panel.make_preview()
        panel.confirm.value = True
        assert panel.run() and panel.wait(WAIT), panel.message
        sb.clear_faults()
        first = panel.result
        assert first.counts["unknown"] == 4 and first.target == "2 gateways"
        con.results.retry_button.click()
        plan = panel.plan
        assert plan is not None and plan.kind == "retry" and plan.target == "2 gateways", panel.message
        assert panel.target.target == "2 gateways" and sorted(panel.target.gateways) == sorted(gws[:2])
        before = len(sb.platform.handled)
        panel.confirm.value = True
        assert panel.run() and panel.wait(WAIT), panel.message
        again = panel.result
        assert again.counts["success"] == 4 and again.parent_op_id == first.op_id
        assert set(again.frame["settled_by"].astype(str)) == {"read"} and not deletes(sb, before)
        con.picker.select(sb.children(gws[2])[:1])  # the next preview is over all three again
        assert panel.make_preview() is not None and panel.target is con.group
    finally:
        sb.clear_faults()
        con.close()


def test_the_children_of_all_gateways_are_joined_once_per_listing(sb, link, monkeypatch):
    import importlib

    from romakit.widgets import fanout_tab

    console = importlib.import_module("romakit.widgets.console")  # the module, not rk.console
    joins = []
    monkeypatch.setattr(console, "all_children", lambda frames: (joins.append(1), fanout_tab.all_children(frames))[1])
    gws = busy(sb, 2)
    con = rk.console(link, gateways=[sb.gateway(g) for g in gws])
    try:
        assert len(joins) == 1  # the tab's description
        con.select_tab(TITLE)
        con.select_tab(gws[0])
        con.select_tab(TITLE)
        assert len(joins) == 1
        con.refresh()
        assert len(joins) == 2  # listed again: joined again, once
        assert sorted(con.picker.fleet["client_id"]) == sorted(c for g in gws for c in sb.children(g))
    finally:
        con.close()
