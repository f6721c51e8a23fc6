"""rk.timeline: the journal's events as a tidy frame, the analyses an investigation asks
for (spells, flapping, a group's outage, romakit's own operations on the same axis),
the plot, and ``romakit watch`` / ``romakit timeline`` in a terminal."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest
from support.cli import Terminal, link_args, link_env, romakit
from support.watching import forced_while_watched

import romakit as rk
from romakit.store.events import record
from romakit.store.journal import Journal
from romakit.timelines import flapping, outages, spells

pytestmark = pytest.mark.timeout(120)
SANDBOX = {"devices": 400, "seed": 29}
T0 = 1_800_000_000.0


def put(rows: list[tuple], journal: Journal | None = None) -> None:
    """Events ``(seconds after T0, device, kind, previous[, service seconds after T0])``."""
    full = [("w", T0 + r[0], None if len(r) < 5 else T0 + r[4], "inst", r[1], r[2], r[3], None) for r in rows]
    with (journal or Journal()).connect() as conn:
        record(conn, full)


def test_the_frame_is_tidy_and_spells_are_exact():
    put([(0, "a", "offline", "online", -5), (60, "a", "online", "offline", 59), (100, "b", "offline", "online"),
         (200, "a", "gone", "online"), (300, "c", "appeared", None)])
    ev = rk.timeline(since=T0 - 10, until=T0 + 400)
    assert list(ev.columns) == ["at", "service_time", "target", "device_id", "kind", "previous", "detail", "watch_id"]
    for c in ("target", "device_id", "kind", "previous", "watch_id"):
        assert isinstance(ev[c].dtype, pd.CategoricalDtype), c
    assert str(ev["at"].dt.tz) == "UTC" and ev["service_time"].iloc[0] == pd.Timestamp(T0 - 5, unit="s", tz="UTC")
    assert ev["service_time"].isna().sum() == 3
    sp = ev.timeline.spells()
    assert list(sp["device_id"].astype(str)) == ["a", "a", "b", "c"]  # by device, then start
    assert sp["start"].tolist() == [pd.Timestamp(T0 + s, unit="s", tz="UTC") for s in (0, 200, 100, 300)]
    assert sp["duration"].tolist()[:3] == [pd.Timedelta("60s"), pd.Timedelta("200s"), pd.Timedelta("300s")]
    assert sp["end"].notna().tolist() == [True, False, False, False]
    assert sp["back_at_service"].iloc[0] == pd.Timestamp(T0 + 59, unit="s", tz="UTC")
    assert list(sp["kind"].astype(str)) == ["offline", "gone", "offline", "appeared"]  # appeared, not online: down
    assert len(rk.timeline(since=T0 - 10, until=T0 + 400, device="b")) == 1
    assert len(rk.timeline(since=T0 + 50, until=T0 + 150)) == 2
    assert rk.timeline(since=T0 - 10, kind="gone")["device_id"].astype(str).tolist() == ["a"]


def test_flapping_counts_transitions_per_hour():
    rows = [(i * 60, "flappy", "offline" if i % 2 == 0 else "online", None) for i in range(12)]
    put(rows + [(0, "calm", "offline", "online"), (1800, "calm", "online", "offline")])
    ev = rk.timeline(since=T0, until=T0 + 3600)
    f = flapping(ev, per_hour=4)
    assert f["device_id"].astype(str).tolist() == ["flappy"] and f["transitions"].tolist() == [12]
    assert f["per_hour"].tolist() == [12.0]
    assert set(flapping(ev, per_hour=1)["device_id"].astype(str)) == {"flappy", "calm"}


def test_a_group_went_down_and_came_back():
    fleet = pd.DataFrame({"id": [1, 2, 3, 4, 5], "tags": [["site-sz="], ["site-sz="], ["site-sz="], ["site-bj="],
                                                          ["x"]]})
    put([(10, "1", "offline", "online"), (20, "2", "offline", "online"), (25, "4", "offline", "online"),
         (80, "1", "online", "offline"), (90, "2", "online", "offline"), (95, "3", "offline", "online")])
    ev = rk.timeline(since=T0, until=T0 + 200)
    out = outages(ev, fleet, by="tag:site-", share=0.5).set_index("group")
    assert out.loc["site-sz", "went_down"] == pd.Timestamp(T0 + 20, unit="s", tz="UTC")
    assert out.loc["site-sz", "came_back"] == pd.Timestamp(T0 + 80, unit="s", tz="UTC")
    assert out.loc["site-sz", "devices"] == 3 and out.loc["site-sz", "peak_down"] == 2
    assert pd.isna(out.loc["site-bj", "came_back"])  # its one device is still down
    by_column = ev.timeline.outages(fleet.assign(site=["sz", "sz", "sz", "bj", "bj"]), by="site")
    assert set(by_column["group"]) == {"sz", "bj"}


def test_operations_share_the_axis_and_the_plot_draws_both(sb, link, claim):
    import matplotlib

    matplotlib.use("Agg")
    ids = claim.online(3)
    res = forced_while_watched(link, ids, "t-overlay")
    ev = rk.timeline(since="10m", watch_id="t-overlay")
    ops = ev.timeline.operations()
    assert res.op_id in set(ops["op_id"])
    op = ops.set_index("op_id").loc[res.op_id]
    first = ev["at"].min()
    assert op["started"] <= first and op["operation"] == "force_offline" and op["state"] == "finished"
    fig = ev.timeline.plot()
    top, bottom = fig.axes
    assert len(top.patches) >= 1 and len(bottom.collections) == 3  # the operation shaded; three spells drawn


def test_romakit_watch_runs_until_ctrl_c_and_timeline_prints_escaped_lines(sb, claim, tmp_path):
    ids = claim.online(2)
    term = Terminal(["watch", "--every", "0.2", "--name", "t-cli", *link_args(sb)], link_env(sb))
    term.expect(b"cycle 1: no change", timeout=60)
    with sb.link_client(progress=False) as c:
        c.force_offline(ids)
    term.expect(re.compile(rb"cycle \d+: 2 offline"), timeout=60)
    term.ctrl_c()
    term.expect(re.compile(rb"stopped after \d+ cycles, 2 events recorded"), timeout=60)
    assert term.wait(60) == 0
    put([(time.time() - T0, "evil\x1b[2J", "offline", "online")])
    out = romakit("timeline", "--since", "1h", "--lines")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "evil\\x1b[2J" in out.stdout
    assert sum(f"down  {i}" in out.stdout for i in ids) == 2
    assert re.search(r"op    force_offline", out.stdout)
    done = romakit("watch", "--every", "0.1", "--for", "0.5", "--name", "t-for", "--json", *link_args(sb),
                   env=link_env(sb))
    assert done.returncode == 0, done.stderr


def test_romakit_timeline_compact_view_in_a_terminal(sb, claim):
    """The compact view on a pty: the headline, the devices-down bars with the operation
    marked where it started, the devices still down, the flapping ones, all escaped."""
    ids = claim.online(4)
    with sb.link_client(progress=False) as c:
        res = forced_while_watched(c, ids, "t-compact")
    now = time.time() - T0
    put([(now + k * 0.01, "flappy\x1b]0;x\x07", "offline" if k % 2 == 0 else "online", None) for k in range(12)])
    term = Terminal(["timeline", "--since", "10m", "--rows", "6", "--flapping", "4"], {}, columns=100)
    assert term.wait(60) == 0
    text = term.text
    head = re.search(r"(\d+) events on (\d+) devices from \S+ to \S+ UTC \(10m0\ds\): (\d+) offline spells, "
                     r"(\d+) still down, 1 flapping \(> 4 transitions an hour\), 1 operation; peak (\d+) down", text)
    assert head, text
    assert int(head.group(4)) >= 4 and int(head.group(5)) >= 4
    bars = re.findall(r"^ +\d\d:\d\d:\d\d (#*) +(\d+)( +< force_offline [0-9a-f]{8})?\r?$", text, re.M)
    assert len(bars) == 6 and sum(1 for b in bars if b[2]) == 1, text
    assert int(bars[-1][1]) >= 4 and len(bars[-1][0]) > 0  # the forced devices, still down at the end
    assert f"force_offline  {res.op_id[:8]}" in text and "4 devices on" in text
    still = text.split("still down (", 1)[1]
    assert all(re.search(rf"^  {i} +\d\d:\d\d:\d\d +\S+  offline, not back", still, re.M) for i in ids), text
    assert "flappy\\x1b]0;x\\x07" in text and "\x1b]0;x" not in text and "12 transitions" in text


def test_the_report_holds_the_fleet_around_the_operation(sb, claim, tmp_path):
    """res.report(around=rk.timeline(around=res)) and romakit report OP: the headline, the
    chart and the devices still down, from the watch's events around the operation."""
    ids = claim.online(3)
    with sb.link_client(progress=False) as c:
        res = forced_while_watched(c, ids, "t-report")
    ev = rk.timeline(around=res, before="5m", after="5m")
    assert ev.attrs["op"]["op_id"] == res.op_id and len(ev) >= 3
    assert ev.attrs["since"] <= ev.attrs["op"]["started"] - 299
    text = res.report(tmp_path / "case.html", around=ev).read_text()
    section = text.split("<section id='around'>")[1].split("</section>")[0]
    assert "still down" in section and "1 operation" in section and "data:image/png;base64," in section
    still = section.split("Still down (")[1]
    assert all(f"<td>{i}</td>" in still for i in ids)
    plain = res.report(tmp_path / "plain.html").read_text()
    assert "rk.timeline(around=res)" in plain.split("<section id='around'>")[1].split("</section>")[0]
    out = romakit("report", res.op_id, "-o", str(tmp_path / "cli.html"), "--around", "5m")
    assert out.returncode == 0, out.stderr
    cli = (tmp_path / "cli.html").read_text().split("<section id='around'>")[1].split("</section>")[0]
    assert all(f"<td>{i}</td>" in cli for i in ids)
    with pytest.raises(rk.InputError, match="no operation"):
        rk.timeline(around="feedbeef")


def test_the_timeline_of_a_journal_never_written_is_empty(tmp_path):
    ev = rk.timeline(journal=tmp_path / "none.sqlite3")
    assert ev.empty and list(ev.timeline.spells().columns)[:4] == ["device_id", "target", "start", "end"]
    assert spells(ev).empty and flapping(ev).empty


def test_spells_agree_with_walking_each_devices_events():
    import numpy as np

    rng = np.random.default_rng(3)
    kinds = ["offline", "online", "gone", "appeared", "inactive"]
    rows = [(float(t), f"d{rng.integers(0, 12)}", kinds[rng.integers(0, 5)], None) for t in range(400)]
    put(rows)
    ev = rk.timeline(since=T0 - 1, until=T0 + 1000)
    want = []
    for dev in sorted({r[1] for r in rows}):
        down_since = None
        for t, d, kind, _ in rows:
            if d != dev:
                continue
            is_down = kind != "online"  # appeared without a detail is not online either
            if is_down and down_since is None:
                down_since = t
            elif not is_down and down_since is not None:
                want.append((dev, down_since, t))
                down_since = None
        if down_since is not None:
            want.append((dev, down_since, None))
    sp = spells(ev)
    got = [(str(r.device_id), r.start.timestamp() - T0, None if pd.isna(r.end) else r.end.timestamp() - T0)
           for r in sp.itertuples()]
    assert sorted(got, key=str) == sorted(want, key=str)
