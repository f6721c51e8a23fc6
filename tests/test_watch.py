"""rk.watch over real loopback against the sandbox: status changes become journal events
with the service's own times, cheap cycles list only what is not online, a watch killed
between snapshots and started again loses no event, IoTDA children are watched too, and
the same timeline comes back from SQLite and PostgreSQL."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import romakit as rk
from romakit.errors import InputError
from romakit.store.events import State
from romakit.store.journal import Journal
from romakit.watching import Watch

pytestmark = pytest.mark.timeout(120)
SANDBOX = {"devices": 600, "seed": 23}
WAIT = 30.0


def come_back(sb, ids: list[int]) -> int:
    """The devices log in again, as the sandbox's fleet records a device's own login
    (status online, login and activity times now); returns that time (fleet clock, ms)."""
    fleet = sb.fleet
    with fleet.lock:
        rows = fleet.columns.rows_of_ids(ids)
        now = fleet.now_ms()
        c = fleet.columns
        c.col("online")[rows] = 1
        c.col("login")[rows] = now
        c.col("active")[rows] = now
        fleet._rev += 1
    return now


def ms(value) -> int:
    return int(pd.Timestamp(value).timestamp() * 1000 + 0.5)


def test_a_watch_records_offline_and_online_with_the_services_times(sb, link, claim):
    ids = claim.online(6)
    w = rk.watch(link, every=0.1, full_every=4, name="t-times")
    try:
        assert w.wait(1, WAIT), w
        assert w.recorded == 0  # the first cycle is the baseline
        assert link.force_offline(ids).counts["success"] == 6
        assert w.wait(w.cycles + 2, WAIT)
        back = come_back(sb, ids[:2])
        assert w.wait(w.cycles + 2, WAIT)
    finally:
        w.stop()
    ev = w.events()
    mine = ev[ev["device_id"].isin([str(i) for i in ids])]
    offline = mine[mine["kind"] == "offline"]
    online = mine[mine["kind"] == "online"]
    assert sorted(offline["device_id"].astype(int)) == sorted(ids)
    assert (offline["previous"] == "online").all()
    assert sorted(online["device_id"].astype(int)) == sorted(ids[:2])
    assert (online["previous"] == "offline").all()
    listing = link.devices().set_index("id")
    assert [ms(t) for t in online["service_time"]] == [back, back]
    assert all(ms(t) == ms(listing.loc[int(d), "last_login_datetime"]) for d, t in
               zip(online["device_id"], online["service_time"], strict=True))
    for d, t in zip(offline["device_id"], offline["service_time"], strict=True):  # its last activity
        if int(d) not in ids[:2]:
            assert ms(t) == ms(listing.loc[int(d), "last_active_time"])
    assert set(ev["kind"].cat.categories) >= {"online", "offline", "gone", "appeared"}
    assert "t-times" in repr(w) and "stopped" in repr(w) and "every 0.1s" in repr(w)


def test_cycles_between_full_ones_list_only_the_devices_not_online(sb, link):
    w = Watch(link, every=1, full_every=5, name="t-cheap")
    with w.journal.connect() as conn:
        w.load(conn)
        seen: list[dict] = []
        real = link.devices

        def counting(**filters):
            frame = real(**filters)
            seen.append({"filters": filters, "rows": len(frame)})
            return frame

        link.devices = counting
        try:
            for _ in range(5):
                w.cycle(conn)
        finally:
            del link.devices
    assert [s["filters"] for s in seen] == [{}] + [{"online_status": ["never_connected", "offline"]}] * 4
    assert all(s["rows"] < len(sb.fleet) for s in seen[1:]) and seen[0]["rows"] == len(sb.fleet)


def test_a_watch_killed_and_started_again_loses_no_event(sb, link, claim):
    ids = claim.online(8)
    a = Watch(link, every=0.1, full_every=3, name="t-restart")
    with a.journal.connect() as conn:  # a watch that dies without stopping: no snapshot at the end
        a.load(conn)
        a.cycle(conn)
        link.force_offline(ids[:3])
        a.cycle(conn)
    assert a.recorded == 3
    # while nothing watches: three more go offline, two come back, one is deleted
    link.force_offline(ids[3:6])
    come_back(sb, ids[:2])
    link.delete_devices([ids[7]])
    b = rk.watch(link, every=0.1, full_every=3, name="t-restart")
    try:
        assert b.wait(2, WAIT), b
    finally:
        b.stop()
    ev = b.events()
    got = sorted((int(d), k) for d, k in zip(ev["device_id"], ev["kind"].astype(str), strict=True)
                 if int(d) in ids)
    want = sorted([(i, "offline") for i in ids[:6]] + [(i, "online") for i in ids[:2]] + [(ids[7], "gone")])
    assert got == want  # each change once: none lost while it was down, none recorded twice


def test_an_iotda_watch_follows_a_gateways_children_with_their_update_time(sb, claim):
    gw = claim.gateway(children=3)
    kids = sb.children(gw)[:3]
    iot = sb.iotda_client()
    w = Watch(iot, every=1, name="t-iotda", gateway_id=gw)
    assert w.target.endswith(f"/{gw}") and w.kind == "iotda"
    with w.journal.connect() as conn:
        w.load(conn)
        w.cycle(conn)
        before = {k: str(v) for k, v in iot.devices(gateway_id=gw).set_index("device_id")["status"].items()}
        flip = {k: "OFFLINE" if before[k] == "ONLINE" else "ONLINE" for k in kids}
        ok, failed = sb.fleet.set_child_status(gw, [{"device_id": k, "status": s} for k, s in flip.items()])
        assert not failed
        w.cycle(conn)
    ev = w.events()
    assert sorted(zip(ev["device_id"].astype(str), ev["kind"].astype(str), strict=True)) == \
        sorted((k, s.lower()) for k, s in flip.items())
    for r in ev.itertuples():
        shown = iot.device(r.device_id)["connection_status_update_time"]
        assert r.service_time == pd.Timestamp(shown)


def test_a_watch_refuses_what_it_cannot_follow(link, monkeypatch, tmp_path):
    with pytest.raises(InputError, match="online_status"):
        rk.watch(link, online_status="online")
    with pytest.raises(InputError, match="every"):
        rk.watch(link, every="soon")
    with pytest.raises(InputError, match="synchronous"):
        Watch(link._async)
    monkeypatch.setenv("ROMAKIT_JOURNAL", "0")
    with pytest.raises(InputError, match="journal="):
        Watch(link, name="t-off")
    assert Watch(link, name="t-off", journal=tmp_path / "j.sqlite3").journal.url.endswith("j.sqlite3")


def test_a_snapshot_round_trips():
    keys = np.array([5, 3, 9], np.int64)
    s = State(keys, np.array([1, 2, 0], np.int8), np.array([10, -1, 30]), np.array([11, 12, -1]))
    t = State.decode(s.encode())
    assert t.keys.tolist() == [3, 5, 9] and t.status.tolist() == [2, 1, 0] and t.login.tolist() == [-1, 10, 30]
    u = State.decode(State(np.array(["b", "a"], dtype=object), np.array([1, 2], np.int8),
                           np.array([-1, -1]), np.array([-1, -1])).encode())
    assert u.keys.tolist() == ["a", "b"] and u.status.tolist() == [2, 1]


def test_the_same_timeline_from_sqlite_and_postgresql(sb, link, claim, tmp_path, pg_schema):
    ids = claim.online(5)
    watches = [Watch(link, every=1, full_every=2, name="t-both", journal=j) for j in (tmp_path / "j.sqlite3", pg_schema.url)]
    conns = [w.journal.connect() for w in watches]
    try:
        def cycle() -> None:
            for w, c in zip(watches, conns, strict=True):
                w.cycle(c)

        for w, c in zip(watches, conns, strict=True):
            w.load(c)
        cycle()
        link.force_offline(ids)
        cycle()
        come_back(sb, ids[:3])
        cycle()
        link.force_offline(ids[:1])
        cycle()
    finally:
        for c in conns:
            c.close()
    lite, team = (rk.timeline(since=None, journal=Journal.of(j), watch_id="t-both")
                  for j in (tmp_path / "j.sqlite3", pg_schema.url))
    assert len(lite) == 5 + 3 + 1
    cols = ["service_time", "target", "device_id", "kind", "previous", "detail", "watch_id"]
    pd.testing.assert_frame_equal(lite[cols], team[cols])
    assert (lite["at"] - team["at"]).abs().max() < pd.Timedelta("5s")
    for a, b in zip((lite, team), (team, lite), strict=True):
        sa, sb_ = a.timeline.spells(), b.timeline.spells()
        assert sa[["device_id", "end"]].notna().sum().tolist() == sb_[["device_id", "end"]].notna().sum().tolist()
    spells = lite.timeline.spells()
    assert sorted(spells["device_id"].astype(int)) == sorted(ids + ids[:1])
    assert spells["end"].notna().sum() == 3


def test_a_watch_process_killed_with_sigkill_and_started_again_loses_no_event(sb, link, claim):
    import os
    import re
    import signal

    from support.cli import Terminal, link_args, link_env, romakit

    ids = claim.online(6)
    term = Terminal(["watch", "--every", "0.2", "--full-every", "3", "--name", "t-kill", *link_args(sb)],
                    link_env(sb))
    term.expect(b"cycle 1: no change", timeout=60)
    link.force_offline(ids[:2])
    term.expect(re.compile(rb"cycle \d+: 2 offline"), timeout=60)
    os.kill(term.pid, signal.SIGKILL)  # no clean stop, no last snapshot
    term.wait(60)
    link.force_offline(ids[2:5])  # while nothing watches
    come_back(sb, ids[:1])
    again = romakit("watch", "--every", "0.2", "--for", "0.3", "--name", "t-kill", *link_args(sb), env=link_env(sb))
    assert again.returncode == 0, again.stderr
    ev = rk.timeline(since=None, watch_id="t-kill")
    got = sorted((int(d), k) for d, k in zip(ev["device_id"], ev["kind"].astype(str), strict=True))
    assert got == sorted([(i, "offline") for i in ids[:5]] + [(ids[0], "online")])


def test_a_schema_4_journal_gains_the_watch_tables_in_place(link):
    from romakit.store.target import connect

    with connect() as db:
        with db.transaction(lock="romakit.schema"):
            db.script("DROP TABLE events;\nDROP TABLE watch_snapshots;\n")
            db.execute("UPDATE schema_version SET version = 4 WHERE version = 6")
            db.execute("PRAGMA user_version = 4")
        assert "events" not in db.tables()
    w = Watch(link, every=1, name="t-schema")
    with w.journal.connect() as db:  # opening it migrates it
        assert db.stored_version() == 6 and {"events", "watch_snapshots"} <= set(db.tables())
        w.load(db)
        w.cycle(db)
        assert db.scalar("SELECT COUNT(*) AS n FROM watch_snapshots WHERE watch_id = 't-schema'") == 1


def test_romakit_watch_follows_a_gateways_children_over_iotda(sb, claim):
    from support.cli import link_args, link_env, romakit

    gw = claim.gateway(children=2)
    kids = sb.iotda_client().devices(gateway_id=gw)
    kid = kids.loc[kids["status"].isin(["ONLINE", "OFFLINE"]), "device_id"].iloc[0]  # not a frozen one
    iot = ["--iotda-endpoint", sb.iotda_endpoint, "--iotda-region", "cn-north-4", "--gateway-id", gw]
    run = ("watch", "--every", "0.1", "--for", "0.3", "--name", "t-cli-iotda", *iot, *link_args(sb))
    first = romakit(*run, env=link_env(sb))
    assert first.returncode == 0, first.stderr
    was = sb.iotda_client().device(kid)["status"]
    _, failed = sb.fleet.set_child_status(gw, [{"device_id": kid, "status": "OFFLINE" if was == "ONLINE" else "ONLINE"}])
    assert not failed
    second = romakit(*run, "--json", env=link_env(sb))
    assert second.returncode == 0, second.stderr
    changes = [json.loads(line) for line in second.stdout.splitlines()]
    assert [(c["device_id"], c["kind"], c["target"]) for c in changes] == \
        [(kid, "offline" if was == "ONLINE" else "online", f"{sb.credentials.project_id}/{gw}")]
