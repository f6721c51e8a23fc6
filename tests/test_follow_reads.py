"""What following a force-offline costs the service, counted by the sandbox (every listed
item and every ShowDevice it answered), over real loopback: each cycle's reads follow the
forced devices still offline, never the fleet; what it claims of the devices it did not
read one by one holds against the sandbox's own login times; a deleted device is gone,
not back."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from romakit import _runner
from romakit.results.follow import Follow, forced_times
from romakit.results.polling import SHOW_COST, run_follow

SANDBOX = {"devices": 4000, "seed": 29}


def come_back(fleet, ids) -> None:
    """Devices ``ids`` log in again now, as their MQTT clients would."""
    now = int(time.time() * 1000)
    with fleet.lock:
        rows = [r for r in fleet.columns.rows_of_ids(list(ids)) if r >= 0]
        fleet.columns.col("login")[rows] = now
        fleet.columns.col("active")[rows] = now
        fleet.columns.col("online")[rows] = 1
        fleet._rev += 1


def offline_now(fleet) -> int:
    with fleet.lock:
        return int((fleet.columns.col("online")[: len(fleet)] == 2).sum())


def login_ms(fleet, ids) -> dict[int, int]:
    with fleet.lock:
        rows = fleet.columns.rows_of_ids(list(ids))
        return {i: int(fleet.columns.col("login")[r]) for i, r in zip(ids, rows, strict=True)}


class Halving:
    """After each cycle half of the forced devices still offline come back (never ``never``);
    what the sandbox served in each cycle, and its offline set when the cycle began."""

    def __init__(self, sb, ids, never) -> None:
        self.sb, self.left = sb, [i for i in ids if i not in set(never)]
        self.served = [sb.link.devices_served]
        self.offline = [offline_now(sb.fleet)]

    def __call__(self, state) -> None:
        self.served.append(self.sb.link.devices_served)
        half = self.left[: max(len(self.left) // 2, 1)] if self.left else []
        come_back(self.sb.fleet, half)
        self.left = self.left[len(half):]
        self.offline.append(offline_now(self.sb.fleet))

    def per_cycle(self) -> list[int]:
        return list(np.diff(self.served))


def follow_cycles(res, link, on_cycle, cycles: int):
    state = _runner.run(run_follow(forced_times(res), link.aio, within=600, every=0.0, on_cycle=on_cycle,
                                   cycles=cycles))
    return state, Follow.from_state(state, res, 600)


def test_each_cycle_reads_in_proportion_to_the_devices_still_offline_not_the_fleet(sb, link, claim):
    ids = claim.online(800)
    res = link.force_offline(ids, rollout=False)
    assert res.counts["success"] == 800
    never = set(ids[::80])
    schedule = Halving(sb, ids, never)
    state, fol = follow_cycles(res, link, schedule, cycles=14)

    assert set(fol.stragglers()["device_id"]) == never
    reads = fol.reads.frame()
    served = schedule.per_cycle()
    assert len(served) == len(reads)
    fleet = len(sb.fleet)
    for k, (n, pending) in enumerate(zip(served, reads["pending"], strict=True)):
        # what the sandbox served: never more than reading the pending ones by id would
        # cost (twice: the listing, then the records of those that left it), never the fleet
        assert n <= 2 * (SHOW_COST + 1) * pending + 2, (k, n, pending)
        assert n <= 2 * schedule.offline[k] + 2, (k, n, schedule.offline[k])
        assert n < fleet / 2, (k, n)
    # the first cycles, when most forced devices are still offline, list the offline set once
    # and count those that left it as back: no read of the online devices
    listing = reads[reads["how"].str.startswith("offline listing")]
    assert len(listing) >= 3 and (listing["left"] > 0).sum() >= 2
    assert any(h.endswith("left = back") for h in listing["how"])
    # the tail reads exactly the devices still pending
    late = reads[reads["how"] == "by id"]
    assert len(late) and (np.array(served)[late.index] == late["pending"]).all()


def test_what_follow_says_of_devices_it_did_not_read_holds_against_their_login_times(sb, link, claim):
    ids = claim.online(400)
    res = link.force_offline(ids, rollout=False)
    schedule = Halving(sb, ids, never=())
    state, fol = follow_cycles(res, link, schedule, cycles=12)
    assert fol.back == 400 and fol.stragglers().empty
    truth = login_ms(sb.fleet, ids)
    f = fol.frame.set_index("device_id")
    back_ms = f["back_at"].dt.as_unit("ms").astype("int64")
    by = f["timed_by"].astype(str)
    assert {"left", "login"} <= set(by)
    exact = by == "login"
    assert all(back_ms[i] == truth[i] for i in f.index[exact])
    # counted back when they left the offline set: at the read that saw it, after the login
    cycle_times = pd.Series({c["cycle"]: int(c["at"] * 1000) for c in fol.reads.cycles})
    for i in f.index[by == "left"]:
        assert back_ms[i] >= truth[i]
        later = cycle_times[cycle_times >= truth[i]]
        assert len(later) and back_ms[i] == later.iloc[0]


def test_only_the_forced_products_offline_set_is_listed(sb, link, claim):
    fleet = link.devices()
    online = fleet[(fleet["online_status"] == "online") & ~fleet["id"].astype(int).isin(claim.taken)]
    product = online["product_id"].value_counts().index[0]
    ids = online.loc[online["product_id"] == product, "id"].astype(int).tolist()[:120]
    claim.taken.update(ids)
    res = link.force_offline(ids, rollout=False)
    schedule = Halving(sb, ids, never=ids[:3])
    state, fol = follow_cycles(res, link, schedule, cycles=4)
    reads = fol.reads.frame()
    assert reads["how"].iloc[0] == "offline listing"  # the products are not known before the first read
    narrowed = reads[reads["how"].str.startswith("offline listing of 1 products")]
    assert len(narrowed)
    product_offline = int(((fleet["product_id"] == product) & (fleet["online_status"] == "offline")).sum()) + len(ids)
    served = np.array(schedule.per_cycle())
    assert (served[narrowed.index] <= 2 * product_offline + 2).all()
    assert (served[narrowed.index] < schedule.offline[0] / 2).all()


def test_a_device_deleted_while_followed_is_gone_not_back(sb, link, claim):
    ids = claim.online(600)
    res = link.force_offline(ids, rollout=False)
    deleted = ids[:5]
    calls = {"n": 0}

    def on_cycle(state) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # many leave the offline set at once, five of them deleted
            come_back(sb.fleet, ids[5:400])
            assert sb.fleet.delete(deleted) == deleted

    state, fol = follow_cycles(res, link, on_cycle, cycles=3)
    f = fol.frame.set_index("device_id")
    assert set(f.index[f["status"] == "gone"]) == set(deleted)
    assert f.loc[deleted, "back_at"].isna().all()
    assert fol.summary()["gone"] == 5 and fol.back == 395
    assert "online listing" in fol.reads.frame()["how"].iloc[1]


@pytest.mark.parametrize("n", [3])
def test_a_few_forced_devices_are_read_one_by_one_from_the_start(sb, link, claim, n):
    ids = claim.online(n)
    res = link.force_offline(ids, rollout=False)
    before = sb.link.devices_served
    state, fol = follow_cycles(res, link, lambda s: None, cycles=2)
    assert (fol.reads.frame()["how"] == "by id").all()
    assert sb.link.devices_served - before == 2 * n


def test_a_device_back_before_the_answer_to_its_force_is_timed_by_its_login(sb, link, claim):
    """A fast reconnect logs in while the force's request is still being answered: its
    login is after the request went out, before the answer came; it is back at its login,
    not at the moment the follow read it."""
    ids = claim.online(5)
    sb.set_fault(latency_ms=60)  # the answer comes 60 ms after the request went out
    res = link.force_offline(ids, rollout=False)
    sb.clear_faults()
    f = res.frame.set_index("device_id")
    sent = int(f["sent_at"].iloc[0].timestamp() * 1000)
    answered = int(f["answered_at"].iloc[0].timestamp() * 1000)
    assert answered - sent >= 50
    login = (sent + answered) // 2
    with sb.fleet.lock:
        rows = sb.fleet.columns.rows_of_ids(ids)
        sb.fleet.columns.col("login")[rows] = login
        sb.fleet.columns.col("online")[rows] = 1
        sb.fleet._rev += 1
    fol = res.follow(link, within="2s", every="0.1s")
    g = fol.frame.set_index("device_id")
    assert fol.back == 5 and (g["timed_by"] == "login").all()
    assert (g["back_at"].dt.as_unit("ms").astype("int64") == login).all()


def test_a_follow_begun_after_the_devices_came_back_reads_their_login_times_once(sb, link, claim):
    """Every forced device is back before the first read: the first cycle reads their login
    times (here the online listing, cheaper than 500 ShowDevice), so the curve says when
    each came back, not when the follow happened to look."""
    ids = claim.online(500)
    res = link.force_offline(ids, rollout=False)
    come_back(sb.fleet, ids[:250])
    come_back(sb.fleet, ids[250:])
    truth = login_ms(sb.fleet, ids)
    fol = res.follow(link, within="5s", every="0.1s")
    reads = fol.reads.frame()
    assert len(reads) == 1 and reads["how"].iloc[0] == "offline listing + online listing"
    f = fol.frame.set_index("device_id")
    assert fol.back == 500 and (f["timed_by"] == "login").all()
    assert all(int(f.loc[i, "back_at"].value // 1_000_000) == truth[i] for i in ids)
