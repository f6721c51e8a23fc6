"""Following a force-offline over real loopback: the reconnect curve, the stragglers, the
cost per cycle, verify by the service's timestamps, and a canary judged by who came back.

The sandbox's own reconnect behaviour (``sb.set_fault(reconnect_s=...)``) is tested when
it has it; the tests that drive the fleet themselves bring forced devices back from a
background thread, as a device's MQTT client would: online again, logged in now.
"""

from __future__ import annotations

import threading
import time

import pytest

import romakit as rk
from romakit.results.follow import follow as follow_result

SANDBOX = {"devices": 1500, "seed": 23}


def come_back(fleet, ids, *, online: bool = True) -> None:
    """Devices ``ids`` log in again now (wall clock, as the service stamps), then stay
    online or (``online=False``) drop again."""
    now = int(time.time() * 1000)
    with fleet.lock:
        rows = [r for r in fleet.columns.rows_of_ids(list(ids)) if r >= 0]
        fleet.columns.col("login")[rows] = now
        fleet.columns.col("active")[rows] = now
        fleet.columns.col("online")[rows] = 1 if online else 2
        fleet._rev += 1


def test_curve_and_stragglers_are_exactly_the_devices_that_never_came_back(sb, link, claim):
    ids = claim.online(60)
    res = link.force_offline(ids, rollout=False)
    assert res.counts["success"] == 60
    never = set(ids[::7])
    first, second = [i for i in ids[:30] if i not in never], [i for i in ids[30:] if i not in never]
    flapped = second[:3]  # came back, then dropped again: still back by its login time
    first_cycle, done = threading.Event(), threading.Event()

    def fleet_side() -> None:
        assert first_cycle.wait(20)
        come_back(sb.fleet, first)
        come_back(sb.fleet, second[3:])
        come_back(sb.fleet, flapped, online=False)
        done.set()

    t = threading.Thread(target=fleet_side, daemon=True)
    t.start()
    fol = follow_result(res, link, within="3s", every="0.2s", on_cycle=lambda s: first_cycle.set())
    t.join(10)
    assert done.is_set()
    assert set(fol.stragglers()["device_id"]) == never
    assert fol.back == 60 - len(never)
    assert set(fol.frame.loc[fol.frame["back_at"].notna(), "device_id"]) >= set(flapped)
    s = fol.summary()
    assert s["followed"] == 60 and s["not_back"] == len(never) and s["p50_s"] is not None
    c = fol.curve()
    assert c["share"].iloc[0] == 0.0 and c["share"].iloc[-1] == pytest.approx((60 - len(never)) / 60, abs=1e-4)
    assert c["share"].is_monotonic_increasing
    st = fol.stragglers()
    assert {"product_name", "gateway", "site", "status"} <= set(st.columns)
    assert st["product_name"].notna().all()
    assert "not back" in repr(fol) and "not back" in fol.text()
    # no cycle read the fleet: the offline set (one page), then the few pending one by one
    reads = fol.reads.frame()
    assert (reads["devices_read"] < len(sb.fleet) / 3).all() and (reads["requests"] <= reads["pending"]).all()
    late = reads[reads["how"] == "by id"]
    assert len(late) and (late["devices_read"] == late["pending"]).all()


def test_follow_stops_as_soon_as_all_are_back(sb, link, claim):
    ids = claim.online(10)
    res = link.force_offline(ids, rollout=False)
    come_back(sb.fleet, ids)
    t0 = time.monotonic()
    fol = res.follow(link, within="30s", every="5s")
    assert time.monotonic() - t0 < 5
    assert fol.back == 10 and fol.stragglers().empty and len(fol.reads.cycles) == 1


def test_many_pending_read_the_offline_set_not_the_fleet(sb, link, claim):
    ids = claim.online(300)
    res = link.force_offline(ids, rollout=False)
    come_back(sb.fleet, ids[:200])
    fol = follow_result(res, link, within="0.5s", every="0.2s")
    reads = fol.reads.frame()
    offline_now = len(link.devices(online_status="offline"))
    assert reads["how"].iloc[0].startswith("offline listing")
    assert reads["devices_read"].iloc[0] < len(sb.fleet)
    assert fol.back == 200 and set(fol.stragglers()["device_id"]) == set(ids[200:])
    assert offline_now < len(sb.fleet)


def test_follow_async_twin(sb, link, claim):
    from romakit import _runner

    ids = claim.online(5)
    aio = link.aio

    async def main():
        res = await aio.force_offline(ids, rollout=False)
        come_back(sb.fleet, ids)
        pending = res.follow(aio, within="5s", every="0.1s")
        assert hasattr(pending, "__await__")
        return await pending

    fol = _runner.run(main())
    assert fol.back == 5


def test_follow_refuses_other_operations_and_bad_durations(sb, link, claim):
    res = link.force_offline(claim.online(1), rollout=False)
    with pytest.raises(rk.InputError, match="within"):
        res.follow(link, within="soon")
    with pytest.raises(rk.InputError, match="LinkClient"):
        res.follow(object())


def test_verify_counts_a_device_that_logged_in_again_as_done(sb, link, claim):
    ids = claim.online(4)
    res = link.force_offline(ids, rollout=False)
    come_back(sb.fleet, ids[:2])
    v = res.verify(link).set_index("device_id")
    assert v.loc[[str(i) for i in ids], "verified"].tolist() == [True] * 4
    assert v.loc[str(ids[0]), "observed"] == "back"


def test_a_canary_whose_devices_do_not_come_back_stops_the_run(sb, link, claim):
    ids = claim.online(40)
    policy = rk.Rollout(canary=10, come_back=0.95, within="1s", abort_min=1000)
    res = link.force_offline(ids, rollout=policy, chunk_size=10)
    assert res.counts["success"] == 10 and res.counts["skipped"] == 30
    reason = res.frame.loc[res.frame["outcome"] == "skipped", "error_msg"].iloc[0]
    assert "canary did not come back: 0 of 10 back within 1s, needed 95%" in reason


def test_a_canary_whose_devices_come_back_lets_the_rest_go(sb, link, claim):
    ids = claim.online(30)
    forced = threading.Event()
    stop = threading.Event()

    def fleet_side() -> None:  # plays the devices' MQTT clients: a forced device logs in again
        while not stop.is_set():
            off = [i for i in ids if (d := sb.fleet.get(i)) and d["online_status"] == 2]
            if off:
                come_back(sb.fleet, off)
                forced.set()
            stop.wait(0.05)

    t = threading.Thread(target=fleet_side, daemon=True)
    t.start()
    try:
        res = link.force_offline(ids, rollout=rk.Rollout(canary=10, come_back=0.9, within="5s", abort_min=1000),
                                 chunk_size=10)
    finally:
        stop.set()
        t.join(5)
    assert forced.is_set()
    assert res.counts["success"] == 30


@pytest.mark.slow
def test_later_chunks_whose_devices_do_not_come_back_stop_the_run(sb, link, claim):
    """The canary comes back, the next chunk does not: the come-back criterion stops the run
    before the rest is sent (paced at 2 reconnects/s: a chunk of 10 every 5 s, judged 1 s
    after it was forced), the rest ``skipped`` with the reason."""
    ids = claim.online(40)
    policy = rk.Rollout(canary=10, come_back=0.9, within="1s", abort_min=1000, max_reconnects_per_second=2)
    with Returning(sb, ids[:10]) as r:  # only the canary's devices reconnect
        res = link.force_offline(ids, rollout=policy, chunk_size=10)
    assert r.forced.is_set()
    f = res.frame
    assert set(f.loc[f["outcome"] == "success", "device_id"].astype(int)) >= set(ids[:20])
    skipped = f[f["outcome"] == "skipped"]
    assert len(skipped) >= 10 and len(skipped) + res.counts["success"] == 40
    assert res.stopped.startswith("forced devices did not come back: 10 of 10 judged are not back within 1s")
    assert (skipped["error_code"] == "romakit.Aborted").all()
    assert skipped["error_msg"].str.contains("0% back, needed 90%").all()


@pytest.mark.slow
def test_later_chunks_whose_devices_come_back_run_to_the_end(sb, link, claim):
    ids = claim.online(30)
    policy = rk.Rollout(canary=10, come_back=0.9, within="1s", abort_min=1000, max_reconnects_per_second=5)
    assert "later chunks stop the run when under 90% of their forced devices come back within 1s" in policy.describe(30)
    with Returning(sb, ids):
        res = link.force_offline(ids, rollout=policy, chunk_size=10)
    assert res.counts["success"] == 30 and not res.stopped


def test_sandbox_reconnects_and_never_returning_set_are_the_stragglers(sb, link, claim):
    if not hasattr(sb, "never_returning"):
        pytest.skip("the sandbox has no reconnect behaviour yet (sb.set_fault(reconnect_s=...), sb.never_returning)")
    ids = claim.online(200)
    # the keep-alive tail (x 1.5 of up to 300 s) passes in seconds at this scale
    sb.set_fault(reconnect_s=0.5, reconnect_never=0.1, connect_rate=1000.0, time_scale=500.0)
    res = link.force_offline(ids, rollout=False)
    fol = res.follow(link, within="6s", every="0.3s")  # the tail is ~1 s at this scale
    assert sb.life.wait_idle(10)  # every device that will come back is back
    never = set(sb.never_returning(ids))
    assert 0 < len(never) < len(ids)
    assert set(fol.stragglers()["device_id"]) == never
    assert fol.summary()["back"] == len(ids) - len(never)


class Returning:
    """Plays the forced devices' MQTT clients from a thread: each of ``ids`` found offline
    logs in again, except ``never``; ``forced`` is set once one came back."""

    def __init__(self, sb, ids, never=()) -> None:
        self.sb, self.ids, self.never = sb, [i for i in ids if i not in set(never)], set(never)
        self.forced, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            off = [i for i in self.ids if (d := self.sb.fleet.get(i)) and d["online_status"] == 2]
            if off:
                come_back(self.sb.fleet, off)
                self.forced.set()
            self.stop.wait(0.05)

    def __enter__(self) -> Returning:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


def test_cli_offline_follow_and_follow_op_print_the_curve_and_the_stragglers(sb, claim):
    import json

    from support.cli import link_args, link_env, romakit

    ids = claim.online(12)
    never = ids[:2]
    with Returning(sb, ids, never) as r:
        p = romakit("offline", *link_args(sb), "--no-rollout", "--follow", "3s", "--every", "0.2s", "--json",
                    *map(str, ids), env=link_env(sb))
    assert r.forced.is_set()
    assert p.returncode == 1, p.stderr  # two devices did not come back
    ran, followed = (json.loads(line) for line in p.stdout.strip().splitlines())
    assert ran["counts"]["success"] == 12
    assert {int(s["device_id"]) for s in followed["stragglers"]} == set(never)
    assert followed["follow"]["back"] == 10 and followed["curve"]["share"][-1] == pytest.approx(10 / 12, abs=1e-3)
    q = romakit("follow", ran["op_id"], "--within", "1s", "--every", "0.2s", *link_args(sb), env=link_env(sb))
    assert q.returncode == 1, q.stderr
    assert "10 back (83%), 2 not back" in q.stdout
    tail = q.stdout.split("not back (2):", 1)[1]
    assert {int(line.split()[0]) for line in tail.strip().splitlines()} == set(never)


def test_preview_states_the_reconnect_load_and_the_pace_that_keeps_it_under_the_limit():
    from romakit.engine import BatchOptions
    from romakit.engine.plan import plan
    from romakit.engine.rollout import RolloutState

    policy = rk.Rollout(canary=100, come_back=0.95, within="2m", max_reconnects_per_second=50)
    text = plan("force_offline", list(range(1, 5001)), BatchOptions(rollout=policy, chunk_size=500)).describe_rollout()
    assert "the canary must come back (95% within 2m)" in text
    assert "reconnect load about 50.0 devices/s" in text and "kept under the limit of 50/s by pacing at 3,000 devices/min" in text
    assert RolloutState(policy).per_minute() == 3000
    unpaced = plan("force_offline", list(range(1, 5001)), BatchOptions(chunk_size=500)).describe_rollout()
    assert "unpaced: all 5,000 reconnect at once" in unpaced and "max_reconnects_per_second=100" in unpaced
    with pytest.raises(rk.InputError, match="do not reconnect"):
        plan("delete_devices", [1, 2], BatchOptions(rollout=policy))
    with pytest.raises(rk.InputError, match="come_back"):
        rk.Rollout(come_back=1.5)


def test_report_holds_the_reconnect_curve_and_the_devices_not_back(sb, link, claim, tmp_path):
    ids = claim.online(8)
    res = link.force_offline(ids, rollout=False)
    come_back(sb.fleet, ids[1:])
    fol = res.follow(link, within="0.5s", every="0.1s")
    text = res.report(tmp_path / "case.html", follow=fol).read_text()
    section = text.split("<section id='follow'>")[1].split("</section>")[0]
    assert "<b>7 of 8 back</b>" in section and "data:image/png;base64," in section
    assert f"<td>{ids[0]}</td>" in section and f"<td>{ids[1]}</td>" not in section
    plain = res.report(tmp_path / "plain.html").read_text()
    assert "Not followed" in plain.split("<section id='follow'>")[1]


def test_follow_button_shows_the_curve_and_the_devices_not_back(sb, link, claim, tmp_path):
    from romakit.widgets.results_view import ResultsView

    ids = claim.online(9)
    never = ids[-2:]
    res = link.force_offline(ids, rollout=False)
    view = ResultsView(res, target=link)
    assert not view.follow_button.disabled
    view.follow_within.value, view.follow_every.value = "1.5s", "0.1s"
    with Returning(sb, ids, never) as r:
        view.follow_button.click()
        assert view.wait_follow(20)
    assert r.forced.is_set()
    assert "<b>7 of 9 back</b>" in view.follow_status.value
    assert view.follow_chart.layout.display == "" and view.follow_chart.value[:4] == b"\x89PNG"
    shown_ids = {int(i) for i in view.followed.stragglers()["device_id"]}
    assert shown_ids == set(never)
    assert all(f"<td>{i}</td>" in view.stragglers.value for i in never)
    assert f"<td>{ids[0]}</td>" not in view.stragglers.value
    report = view.export("html", tmp_path / "case").read_text()
    assert "<b>7 of 9 back</b>" in report
    view.follow_within.value = "soon"
    assert view.start_follow() is False and "within" in view.message
    other = ResultsView(link.delete_devices([ids[0]], rollout=False), target=link)
    assert other.follow_button.disabled
