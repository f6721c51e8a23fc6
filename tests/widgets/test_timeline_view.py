"""TimelineView and the console's Timeline tab, driven from Python as a person would
(choose, click), over a real watch of the sandbox on loopback and the journal it wrote."""

from __future__ import annotations

import time

import pytest
from support.watching import forced_while_watched

import romakit as rk
from romakit.store.events import record
from romakit.store.journal import Journal
from romakit.widgets import TimelineView

pytestmark = pytest.mark.timeout(120)
SANDBOX = {"devices": 300, "seed": 41}


def flap(device: str, times: int = 12) -> None:
    """A device that dropped and came back ``times`` times in the last minute."""
    now = time.time() - 60
    rows = [("flaps", now + k, None, "inst", device, "offline" if k % 2 == 0 else "online",
             "online" if k % 2 == 0 else "offline", None) for k in range(times)]
    with Journal().connect() as conn:
        record(conn, rows)


@pytest.fixture()
def incident(sb, link, claim):
    """A watch sees four devices forced offline; another device flaps (its name hostile)."""
    ids = claim.online(4)
    res = forced_while_watched(link, ids, "t-view")
    flap("flappy<b>x</b>")
    return ids, res


def test_the_view_shows_the_events_around_an_operation(incident):
    ids, res = incident
    view = TimelineView()
    assert res.op_id in [v for _, v in view.operation.options]
    view.operation.value = res.op_id
    assert view._around.layout.display == "" and view._range.layout.display == "none"
    view.before.value, view.after.value = "5m", "5m"
    view.show_button.click()
    assert "events around operation" in view.message, view.message
    d = view.digest
    assert d is not None and len(d.operations) >= 1 and res.op_id in set(d.operations["op_id"])
    assert {int(i) for i in d.still_down["device_id"].astype(str) if i.isdigit()} >= set(ids)
    assert "flappy<b>x</b>" in set(d.flapping["device_id"].astype(str))
    assert "still down" in view.headline.value and "1 flapping" in view.headline.value
    assert view.chart.layout.display == "" and view.chart.value[:4] == b"\x89PNG"
    assert all(f"<td>{i}</td>" in view.still_down.value for i in ids)
    assert "flappy&lt;b&gt;x&lt;/b&gt;" in view.flapping.value and "<b>x</b>" not in view.flapping.value
    assert res.op_id in view.operations_table.value
    assert "TimelineView" in repr(view) and "still down" in repr(view)


def test_the_view_over_a_time_range_and_a_bad_one(incident):
    ids, _ = incident
    view = TimelineView()
    view.operation.value = ""
    assert view._range.layout.display == "" and view._around.layout.display == "none"
    view.since.value = "10m"
    view.show_button.click()
    assert view.message.startswith(f"{len(view.events):,} events since 10m") and len(view.events) >= 4 + 12
    view.since.value = "soon"
    assert view.show() is False and "could not read the timeline" in view.message
    assert "since='soon'" in view.message or "soon" in view.message


def test_an_empty_journal_says_where_to_start(tmp_path):
    view = TimelineView(journal=tmp_path / "none.sqlite3")
    assert view.operation.options == ((("(none: the time range)", "")),)
    view.show_button.click()
    assert "no event recorded there" in view.message and view.chart.layout.display == "none"


def test_the_console_timeline_tab_steps_the_actions_aside_and_keeps_the_target(sb, link, incident, tmp_path):
    ids, res = incident
    c = rk.console(link)
    assert c.tabs.titles[-1] == "Timeline" and repr(c).startswith("<Console: 1 target;")
    c.results.show(res, target=link)
    c.select_tab("Timeline")
    assert c._acting.layout.display == "none" and c.target is link
    assert c.timeline.operation.value == res.op_id  # the result shown is the one looked around
    c.timeline.show_button.click()
    assert res.op_id in c.timeline.operations_table.value
    c.select_tab("LINK")
    assert c._acting.layout.display == "" and c.target is link
    report = c.results.export("html", tmp_path / "case").read_text()  # the evidence button's report
    around = report.split("<section id='around'>")[1].split("</section>")[0]
    assert all(f"<td>{i}</td>" in around for i in ids)
