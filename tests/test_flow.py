"""The panel's safety flow on its own, without ipywidgets: preview, confirm, the guard's
typed count, the canary gate, the end of a run, and a closed client refusing."""

from __future__ import annotations

import subprocess
import sys

import pytest

import romakit as rk
from romakit.engine import flow as fl
from romakit.engine.guard import Guard, hidden_note, typed_count, what
from romakit.engine.options import BatchOptions
from romakit.engine.plan import plan
from romakit.engine.rollout import CanaryReport

SANDBOX = {"devices": 50, "seed": 3, "mqtt": False}


@pytest.fixture
def link(sb):
    with sb.link_client(progress=False) as c:
        yield c


def staged(flow: fl.SafetyFlow, devices: int, name: str = "force_offline", **options) -> None:
    p = plan(name, list(range(1, devices + 1)), BatchOptions(**options))
    assert flow.stage(p, what(p, "inst-1")) is None and flow.state == fl.PREVIEWED


def test_the_flow_loads_no_widget_library():
    code = "import sys, romakit.engine.flow; print(sorted(m for m in sys.modules if 'widget' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_preview_then_confirm_then_run_then_done(link):
    flow = fl.SafetyFlow(link, Guard(1000))
    assert flow.state == fl.IDLE and flow.start() == "press Preview first: Run sends exactly what the preview showed"
    staged(flow, 5)
    assert flow.start() == "tick the confirm box first: this will force 5 devices offline"
    flow.confirm(True)
    assert flow.state == fl.CONFIRMED
    flow.confirm(False)
    assert flow.state == fl.PREVIEWED and flow.start().startswith("tick the confirm box")
    flow.confirm(True)
    assert flow.start() is None and flow.state == fl.RUNNING and flow.running
    assert flow.start() == "an operation is already running"
    assert flow.stage(flow.plan, "again") == "an operation is running; wait for it or cancel it first"
    assert flow.drop() is False and flow.plan is not None  # a run keeps the plan it started with
    flow.finish(stopped=False)
    assert flow.state == fl.DONE and flow.plan is None  # the next run needs a new preview
    assert flow.start().startswith("press Preview first")
    staged(flow, 5)
    flow.confirm(True)
    flow.start()
    flow.finish(stopped=True)
    assert flow.state == fl.STOPPED


def test_above_the_blast_radius_the_count_must_be_typed(link):
    flow = fl.SafetyFlow(link, Guard(10))
    staged(flow, 1200)
    flow.confirm(True)
    assert flow.wants_count and flow.start() == ("1,200 devices is above the blast radius of 10: "
                                                 "type 1200 in the box to confirm")
    flow.type_count("1201")
    assert flow.start().endswith("type 1200 in the box to confirm") and flow.state == fl.CONFIRMED
    flow.type_count(" 1,200 ")
    assert flow.start() is None and flow.state == fl.RUNNING
    assert typed_count("1_200") == "1200"


def test_a_stale_preview_is_dropped(link):
    flow = fl.SafetyFlow(link, Guard(1000))
    staged(flow, 3)
    flow.confirm(True)
    assert flow.start(stale=True) == "the selection changed since the preview: press Preview again"
    assert flow.state == fl.IDLE and flow.plan is None


def test_a_further_consent_is_asked_last(link):
    flow = fl.SafetyFlow(link, Guard(1000))
    staged(flow, 3)
    assert flow.start(unticked="tick takeover").startswith("tick the confirm box")
    flow.confirm(True)
    assert flow.start(unticked="tick takeover") == "tick takeover" and flow.state == fl.CONFIRMED


def test_a_closed_client_refuses_at_every_step(sb):
    link = sb.link_client(progress=False)
    flow = fl.SafetyFlow(link, Guard(1000))
    staged(flow, 3)
    flow.confirm(True)
    link.close()
    assert "was closed" in flow.start() and flow.state == fl.DISABLED and flow.plan is None
    p = plan("force_offline", [1], BatchOptions())
    assert "was closed" in flow.stage(p, "x") and flow.state == fl.DISABLED
    with sb.link_client(progress=False) as fresh:
        flow.set_client(fresh)
        assert flow.state == fl.IDLE and flow.disabled_reason is None and flow.stage(p, "x") is None


def test_an_unreachable_service_disables_the_flow_before_sending():
    sb = rk.sandbox(devices=10, seed=1, mqtt=False)
    c = sb.credentials  # a client of its own: the sandbox closes those it handed out with it
    link = rk.LinkClient(sb.link_endpoint, c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk), progress=False)
    try:
        flow = fl.SafetyFlow(link, Guard(1000))
        assert flow.probe() is None
        sb.close()
        assert "cannot reach" in flow.probe() and flow.state == fl.DISABLED
    finally:
        link.close()
        sb.close()


def test_the_gate_is_a_state_of_the_run(link):
    flow = fl.SafetyFlow(link, Guard(1000))
    seen: list[str] = []

    def person(report: CanaryReport) -> bool:
        seen.append(flow.state)
        return True

    staged(flow, 20, rollout=rk.Rollout(canary=5, gate=person))
    flow.confirm(True)
    flow.start()
    policy = flow.gated(flow.plan.policy)
    assert policy == flow.plan.policy and policy.gate is not person
    report = CanaryReport(devices=5, counts={"success": 5}, bad=0, share=0.0, threshold=0.1, abort_on="either")
    assert policy.gate(report) is True and seen == [fl.GATE] and flow.state == fl.RUNNING
    assert flow.gated(False) is False


def test_no_move_outside_the_machine(link):
    flow = fl.SafetyFlow(link, Guard(1000))
    with pytest.raises(AssertionError, match="idle -> done"):
        flow.finish(stopped=False)


def test_the_cli_asks_the_count_only_of_a_permanent_effect():
    guard = Guard(10, permanent_only=True)
    many = list(range(1, 12))
    assert not guard.wants_count(plan("force_offline", many))
    deletion = plan("delete_devices", many)
    assert guard.wants_count(deletion) and not guard.counted(deletion, "10") and guard.counted(deletion, "11")
    assert Guard(10).wants_count(plan("force_offline", many))  # the panel asks it of every operation
    with pytest.raises(rk.InputError, match="blast_radius"):
        Guard(-1)


def test_the_wording_of_a_fan_out_names_its_gateways():
    parent = {f"c{i}": f"gw-{i % 7}" for i in range(20)}
    p = plan("delete_sub_devices", list(parent), parents=parent)
    text = what(p, "7 gateways")
    assert text.startswith("permanently delete 20 child devices across 7 gateways (gw-0: 3, gw-1: 3")
    assert text.endswith(", and 2 more)")
    assert what(plan("delete_sub_devices", ["c1"]), "gw-9") == "permanently delete 1 child devices of gateway gw-9"


def test_selected_rows_hidden_by_filters_are_said_in_the_guards_words():
    p = plan("delete_sub_devices", ["a", "b", "c"])
    assert what(p, "gw-1", hidden=2) == ("permanently delete 3 child devices of gateway gw-1 "
                                         "(2 of them are hidden by the filters)")
    assert hidden_note(1) == "1 of them is hidden by the filters"
    assert hidden_note(0) == "" and what(p, "gw-1") == "permanently delete 3 child devices of gateway gw-1"
    assert Guard(1).ask(p) == "3 devices is above the blast radius of 1: type 3 in the box to confirm"
