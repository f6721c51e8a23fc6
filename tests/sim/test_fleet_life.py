"""A sandbox that behaves like a fleet: forced devices reconnect by themselves (all but
the never-returning set), an instance that accepts connections at a limited rate, site
outages and flapping products; LINK's and IoTDA's time stamps and statuses tell what
happened on every read path. Over real loopback, through romakit's own clients."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

import romakit as rk
from romakit.sim.faults import Faults
from romakit.sim.fleet import Fleet
from romakit.sim.life import FleetLife

SEED = 13


@pytest.fixture(scope="module")
def fsb():
    with rk.sandbox(devices=3000, seed=SEED) as s:
        yield s


@pytest.fixture
def sb(fsb):
    """The module's sandbox with no fault and no scenario on, before and after a test."""
    fsb.clear_faults()
    yield fsb
    fsb.clear_faults()
    assert fsb.life.wait_idle(20)


def online_ids(sb, start: int, n: int) -> list[int]:
    """``n`` devices online now, from the ``start``-th on (each test takes its own)."""
    view = sb.fleet.snapshot()
    ids = view.column("id")[view.column("online_status") == 1]
    return ids[start:start + n].tolist()


def ms(ts: pd.Series) -> pd.Series:
    """Epoch ms of time stamps (-1 for none)."""
    return ts.map(lambda t: -1 if pd.isna(t) else round(t.timestamp() * 1000))


def iotda_time(epoch_ms: int) -> str:
    """ShowDevice's ``connection_status_update_time`` as the SDK's model documents it."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_forced_devices_come_back_all_but_the_never_returning_and_every_read_path_says_when(sb) -> None:
    ids = online_ids(sb, 0, 400)
    cid = {d["id"]: d["client_id"] for d in sb.fleet.all() if d["id"] in set(ids)}
    sb.set_fault(reconnect_s=5, reconnect_never=0.1, time_scale=1000)
    never = sb.never_returning(ids)
    assert 0 < len(never) < 100
    assert sb.never_returning([cid[i] for i in ids]) == {cid[i] for i in never}  # IoTDA ids: the same devices
    with sb.link_client(progress=False) as link:
        forced_at = time.time() * 1000
        res = link.force_offline(ids)
        assert res.ok and sb.never_returning(ids) == never  # the same set after the force
        assert sb.life.wait_idle(10)
        done_at = time.time() * 1000
        df = link.devices().set_index("id").loc[ids]
        back = df[df.online_status == "online"]
        assert set(df.index[df.online_status != "online"]) == never
        login = ms(back.last_login_datetime)
        assert login.between(forced_at - 5, done_at + 5).all() and login.nunique() > 10
        assert (login == ms(back.last_active_time)).all()
        gone = df.loc[sorted(never)]
        assert ms(gone.last_active_time).between(forced_at - 5, done_at + 5).all()  # cut at the force
        assert (ms(gone.last_login_datetime) < forced_at).all()
        some = int(back.index[0])
        shown = link.device(some)
        assert shown["online_status"] == 1 and shown["last_login_datetime"] == login[some]
    iot = sb.iotda_client()
    inventory = iot.devices().set_index("device_id")
    status = inventory.loc[[cid[i] for i in ids], "status"].astype(str)
    assert set(status[[cid[i] for i in back.index]]) == {"ONLINE"}
    assert set(status[[cid[i] for i in never]]) <= {"OFFLINE", "FROZEN"}
    for did in (some, next(iter(never))):
        one = iot.device(cid[did])
        row = df.loc[did]
        changed = row.last_login_datetime if did == some else row.last_active_time
        assert one["connection_status_update_time"] == iotda_time(round(changed.timestamp() * 1000))


def test_off_by_default_forced_devices_stay_offline(sb) -> None:
    ids = online_ids(sb, 400, 50)
    with sb.link_client(progress=False) as link:
        assert link.force_offline(ids).ok
        assert sb.life.settle(5)
        df = link.devices().set_index("id").loc[ids]
    assert (df.online_status == "offline").all()
    assert sb.never_returning(ids) == set(ids)


def test_a_storm_of_reconnects_drains_no_faster_than_the_connection_rate(sb) -> None:
    ids = online_ids(sb, 500, 120)
    # 0.2 connections per sandbox second at 1000 sandbox s per s: one each 5 ms of real time
    sb.set_fault(reconnect_s=1, time_scale=1000, connect_rate=0.2)
    returning = [i for i in ids if i not in sb.never_returning(ids)]
    with sb.link_client(progress=False) as link:
        assert link.force_offline(ids).ok
        assert sb.life.wait_idle(20)
        df = link.devices().set_index("id").loc[returning]
    assert (df.online_status == "online").all()
    login = np.sort(ms(df.last_login_datetime).to_numpy())
    assert np.diff(login).min() >= 4  # 5 ms apart, to the millisecond
    assert login[-1] - login[0] >= 5 * (len(login) - 1) - 2


def test_a_site_outage_takes_the_site_down_and_its_end_brings_it_back(sb) -> None:
    sb.set_fault(time_scale=1000)
    site = sb.fleet.snapshot()
    tagged = site.where(site.has_tag("site-gz"))
    was_online = set(tagged.column("id")[tagged.column("online_status") == 1].tolist())
    before = time.time() * 1000
    info = sb.scenario("site_outage", site="gz", at=0, duration=3_600_000)
    assert info["name"] == "site_outage" and info["devices"] >= len(tagged)
    assert sb.life.settle(5)
    with sb.link_client(progress=False) as link:
        df = link.devices(tag="site-gz").set_index("id")
        assert (df.online_status != "online").all()
        cut = df.loc[sorted(was_online)]
        assert ms(cut.last_active_time).between(before - 5, time.time() * 1000 + 5).all()
        iot = sb.iotda_client()
        some = next(d for d in tagged if d["id"] in was_online and d["node_type"] == 0 and d["status"] == 0)
        assert iot.device(some["client_id"])["status"] == "OFFLINE"
        ended = time.time() * 1000
        sb.scenario(None)  # the network is back: the site reconnects with the usual back-off
        assert sb.life.wait_idle(10)
        df = link.devices(tag="site-gz").set_index("id")
    disabled = {i for i in was_online if sb.fleet.get(i)["status"] == 1}  # they cannot log in again
    assert (df.loc[sorted(disabled), "online_status"] == "offline").all()
    back = df.loc[sorted(was_online - disabled)]
    assert (back.online_status == "online").all() and (ms(back.last_login_datetime) >= ended - 5).all()
    assert iot.device(some["client_id"])["status"] == "ONLINE"


def test_an_outage_ends_by_itself_and_holds_back_reconnects_until_then(sb) -> None:
    sb.set_fault(reconnect_s=1, time_scale=1000)
    gw = max(sb.gateways(), key=lambda g: len(sb.children(g)) if sb.fleet.by_client_id(g)["online_status"] == 1 else 0)
    kids = [sb.fleet.by_client_id(c) for c in sb.children(gw)]
    on = [k["id"] for k in kids if k["online_status"] == 1 and k["status"] == 0]
    info = sb.scenario("site_outage", gateway=gw, at=0, duration=300)  # 0.3 s of real time
    assert info["devices"] == len(kids) + 1
    with sb.link_client(progress=False) as link:
        link.force_offline(on[:3])  # forced inside the outage: no way back before its end
        assert sb.life.wait_idle(10)
        df = link.devices().set_index("id").loc[on]
    assert (df.online_status == "online").all()
    assert (ms(df.last_login_datetime) >= info["ends_at"] - 5).all()


def test_a_flapping_product_goes_down_and_up_again_and_again(sb) -> None:
    product = sb.fleet.products()[0]["product_id"]
    sb.set_fault(time_scale=1000)
    start = time.time() * 1000
    info = sb.scenario("flapping", product_id=product, period=200, down=20)  # 0.2 s period, 20 ms down
    assert info["devices"] > 100
    seen_down: set[int] = set()
    seen_back: set[int] = set()
    deadline = time.monotonic() + 10
    with sb.link_client(progress=False) as link:
        while time.monotonic() < deadline and len(seen_back) < 20:
            assert sb.life.settle(5)
            df = link.devices(product_id=product).set_index("id")
            seen_down |= set(df.index[(df.online_status == "offline") & (ms(df.last_active_time) > start)])
            seen_back |= set(df.index[(df.online_status == "online") & (ms(df.last_login_datetime) > start)]) & seen_down
    assert len(seen_back) >= 20
    sb.scenario(None)
    assert sb.life.wait_idle(10)


def test_never_returning_is_a_draw_per_seed_and_device() -> None:
    def never(seed: int) -> set:
        faults = Faults(seed=seed)
        faults.update(reconnect_s=5, reconnect_never=0.3)
        life = FleetLife(Fleet(600, seed=3), faults)
        try:
            ids = life.fleet.snapshot().column("id").tolist()
            return life.never_returning(ids) - life.never_returning([])  # stable, whatever else is asked
        finally:
            life.stop()

    assert never(1) == never(1) != never(2)
    assert 0.2 < len(never(1)) / 600 < 0.6  # the drawn share, the offline and disabled ones


def test_scenarios_refuse_what_they_cannot_do(sb) -> None:
    with pytest.raises(ValueError, match="scenario must be one of"):
        sb.scenario("earthquake")
    with pytest.raises(ValueError, match="exactly one of"):
        sb.scenario("site_outage", duration=10)
    with pytest.raises(ValueError, match="no device matches"):
        sb.scenario("site_outage", site="atlantis", duration=10)
    with pytest.raises(ValueError, match="no product"):
        sb.scenario("flapping", product_id=1, period=10)
    with pytest.raises(ValueError, match="time_scale"):
        sb.set_fault(time_scale=0)
    with pytest.raises(ValueError, match="reconnect_never"):
        sb.set_fault(reconnect_never=1.5)


def test_the_sim_command_starts_a_fleet_that_behaves_like_one() -> None:
    from romakit.cli.parser import FAULT_FLAGS, build_parser

    args = build_parser().parse_args(["sim"])
    given = {k: getattr(args, k) for k in FAULT_FLAGS if getattr(args, k) is not None}
    assert given == {"reconnect_s": 5.0, "reconnect_never": 0.02, "connect_rate": 100.0}
    off = build_parser().parse_args(["sim", "--reconnect-s", "0", "--time-scale", "60"])
    assert off.reconnect_s == 0 and off.time_scale == 60


def test_a_force_offline_of_100000_devices_costs_the_sandbox_little() -> None:
    faults = Faults(seed=1)
    faults.update(reconnect_s=5, time_scale=10_000, connect_rate=3000)
    fleet = Fleet(100_000, seed=1)
    life = FleetLife(fleet, faults)
    try:
        ids = fleet.snapshot().column("id").tolist()
        cpu, wall = time.process_time(), time.perf_counter()
        fleet.force_offline(ids)
        forced_s = time.perf_counter() - wall
        assert life.wait_idle(30)
        cpu_s = time.process_time() - cpu
    finally:
        life.stop()
    back = int((fleet.snapshot().column("online_status") == 1).sum())
    assert back == len(life.fleet.snapshot()) - len(life.never_returning(ids))
    assert forced_s < 1.0 and cpu_s < 3.0, (forced_s, cpu_s)
