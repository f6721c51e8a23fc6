"""Safe rollouts against the sandbox: canary gate, rate cap and ramp measured from the
sandbox's own request log, abort criteria, skipped rows accounted for."""

from __future__ import annotations

import pytest

import romakit as rk
from romakit import outcomes as oc

FORCE_OFFLINE = "/devices/force-offline"


def sent_requests(sb):
    """(time, devices) of every force-offline the sandbox answered, in order."""
    return [(t, n) for t, method, path, status, n in sb.link.requests if path.endswith(FORCE_OFFLINE)]


def product_split(sb):
    """A product's devices (to make always fail) and the others."""
    devs = sb.fleet.all()
    by_product: dict[int, list[int]] = {}
    for d in devs:
        by_product.setdefault(d["product"]["product_id"], []).append(d["id"])
    bad_product, bad_ids = max(by_product.items(), key=lambda kv: len(kv[1]))
    good = [d["id"] for d in devs if d["product"]["product_id"] != bad_product]
    return bad_product, bad_ids, good


def test_abort_triggers_on_a_failing_product_but_not_before_its_minimum(sb, link):
    bad_product, bad_ids, good = product_split(sb)
    sb.set_fault(fail_products={bad_product})
    ids = bad_ids[:100] + good[:900]  # the first 100 all fail: 100% failure from the first chunk on
    policy = rk.Rollout(abort_on="failed", abort_threshold=0.1, abort_min=200)
    res = link.force_offline(ids, chunk_size=50, concurrency=1, rollout=policy)
    c = res.counts
    assert len(res) == 1000 and res.frame["device_id"].is_unique
    assert c["success"] + c["failed"] == 200  # not a chunk before abort_min, not one after
    assert c["failed"] == 100 and c["skipped"] == 800
    assert res.stopped.startswith("50% failed after 200 devices")
    skipped = res.frame[res.frame.outcome == "skipped"]
    assert set(skipped["error_code"]) == {oc.ABORTED}
    assert skipped["error_msg"].iloc[0] == f"stopped: {res.stopped}"
    assert sum(n for _, n in sent_requests(sb)) == 200  # the sandbox saw no more than that


def test_a_healthy_run_is_not_stopped(sb, link):
    _, _, good = product_split(sb)
    res = link.force_offline(good[:600], chunk_size=50, rollout=rk.Rollout(canary=100, abort_min=100))
    assert res.ok and res.stopped is None


def test_canary_gate_stops_a_bad_run_before_the_rest_is_sent(sb, link):
    bad_product, bad_ids, good = product_split(sb)
    sb.set_fault(fail_products={bad_product})
    ids = bad_ids[:30] + good[:70] + good[70:900]
    res = link.force_offline(ids, chunk_size=40, concurrency=4, rollout=rk.Rollout(canary=100, abort_threshold=0.1))
    assert res.counts == {"success": 70, "failed": 30, "unknown": 0, "skipped": 830}
    assert res.stopped.startswith("canary refused: 30 of 100 devices failed or unknown (30%")
    assert set(res.frame.loc[res.frame.outcome == "skipped", "error_code"]) == {oc.CANARY_REFUSED}
    sizes = [n for _, n in sent_requests(sb)]  # canary only, in a slow-started window
    assert sum(sizes) == 100 and max(sizes) <= 40 and sizes[0] == 10


def test_a_gate_callable_decides_after_the_canary(sb, link):
    _, _, good = product_split(sb)
    reports = []

    def refuse(report):
        reports.append(report)
        return False

    res = link.force_offline(good[:300], chunk_size=25, rollout=rk.Rollout(canary=50, gate=refuse))
    assert reports and reports[0].passed and reports[0].devices == 50
    assert res.counts["success"] == 50 and res.counts["skipped"] == 250
    assert "refused at the gate" in res.stopped

    res = link.force_offline(good[300:600], chunk_size=25, rollout=rk.Rollout(canary=50, gate=lambda r: True))
    assert res.ok


def test_rate_cap_held_as_seen_by_the_sandbox(sb, link):
    _, _, good = product_split(sb)
    cap = 30_000  # devices per minute = 500 per second
    res = link.force_offline(good[:1000], chunk_size=50, concurrency=8, rollout=rk.Rollout(max_per_minute=cap))
    assert res.ok
    log = sent_requests(sb)
    assert sum(n for _, n in log) == 1000
    t0 = log[0][0]
    # every request after the first may only come once the cap allows the devices before it
    sent = 0
    for t, n in log[1:]:
        sent += n
        earliest = t0 + sent * 60.0 / cap - 50 * 60.0 / cap  # one chunk of slack: requests race to the server
        assert t >= earliest - 0.02, f"{sent} devices by {t - t0:.3f} s breaks {cap}/min"
    observed = sum(n for _, n in log[1:]) / (log[-1][0] - t0) * 60
    assert observed <= cap * 1.1


def test_ramp_raises_the_rate(sb, link):
    _, _, good = product_split(sb)
    policy = rk.Rollout(ramp_start=1200, ramp_factor=2, ramp_every=20, max_per_minute=40_000)
    res = link.force_offline(good[:160], chunk_size=10, concurrency=1, rollout=policy)
    assert res.ok
    times = [t for t, _ in sent_requests(sb)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    early, late = sum(gaps[:2]) / 2, sum(gaps[-4:]) / 4
    assert early >= 0.4  # 10 devices at 20/s
    assert late < early / 4, (early, late)


def test_rollout_policy_checked():
    with pytest.raises(rk.InputError, match="abort_threshold"):
        rk.Rollout(abort_threshold=0)
    with pytest.raises(rk.InputError, match="abort_on"):
        rk.Rollout(abort_on="sometimes")
    with pytest.raises(rk.InputError, match="canary"):
        rk.Rollout(canary=-1)
    assert "canary of 100" in rk.Rollout(canary=100, max_per_minute=6000).describe()


def test_a_stopped_run_is_journaled_and_resumable(sb, link):
    bad_product, bad_ids, good = product_split(sb)
    sb.set_fault(fail_products={bad_product})
    ids = bad_ids[:60] + good[1000:1240]
    res = link.force_offline(ids, chunk_size=20, concurrency=1, rollout=rk.Rollout(abort_threshold=0.2, abort_min=40))
    assert res.counts["skipped"] > 0 and res.stopped
    ops = rk.journal()
    row = ops.set_index("op_id").loc[res.op_id]
    assert row["skipped"] == res.counts["skipped"] and res.stopped in str(row.to_dict())
    sb.clear_faults()  # the engineer fixed the cause and decides to go on
    done = rk.resume(res.op_id, link)
    f = done.frame
    assert len(f) == len(ids) and f["device_id"].is_unique and sorted(map(int, f["device_id"])) == sorted(ids)
    assert done.counts["skipped"] == 0
    assert done.counts["success"] == res.counts["success"] + res.counts["skipped"]


def test_cli_takes_the_rollout_as_flags(sb):
    import json
    import os
    import subprocess
    import sys

    bad_product, bad_ids, good = product_split(sb)
    sb.set_fault(fail_products={bad_product})
    c = sb.credentials
    env = {**os.environ, "ROMAKIT_AK": c.ak, "ROMAKIT_SK": c.sk}
    ids = [str(i) for i in bad_ids[:50] + good[:150]]
    out = subprocess.run(
        [sys.executable, "-m", "romakit", "offline", "--endpoint", sb.link_endpoint, "--project-id", c.project_id,
         "--instance-id", c.instance_id, "--chunk-size", "25", "--concurrency", "1", "--canary", "50",
         "--abort-threshold", "0.2", "--json", "-"],
        input="\n".join(ids), capture_output=True, text=True, env=env, timeout=120,
    )
    sb.clear_faults()
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["counts"]["skipped"] == 150, report
    assert report["stopped"].startswith("canary refused")


def test_child_deletion_over_mqtt_takes_the_same_rollout(sb):
    """The rollout lives in the shared engine: a gateway's child deletion stops the same way."""
    gws = [g for g in sb.fleet.gateways() if g["status"] == 0]
    gw_dev = max(gws, key=lambda g: len(sb.fleet.children_of(g["id"])))
    kids = sb.children(gw_dev["client_id"])
    assert len(kids) >= 60
    sb.set_fault(mqtt_fail_ids=set(kids[:20]))
    try:
        with sb.gateway(gw_dev["client_id"], timeout=10) as gw:
            res = gw.delete_sub_devices(kids[:60], chunk_size=10, progress=False,
                                        rollout=rk.Rollout(canary=30, abort_threshold=0.3))
    finally:
        sb.clear_faults()
    assert res.counts == {"success": 10, "failed": 20, "unknown": 0, "skipped": 30}
    assert res.stopped.startswith("canary refused: 20 of 30")
    assert sb.children(gw_dev["client_id"])[:1] == [kids[0]] and kids[30] in sb.children(gw_dev["client_id"])
