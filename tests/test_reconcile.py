"""Reconcile before re-send: retried or resumed deletions read what is already gone first
(LINK listing; for a gateway, the IoTDA inventory or else its sub-device sync), against
the sandbox over real sockets."""

from __future__ import annotations

import pytest

import romakit as rk
from romakit import reconcile
from romakit.engine import CancelToken, RetryPolicy
from romakit.sim.fleet import ERR_NOT_CHILD

ONCE = RetryPolicy(attempts=1)


SANDBOX = {"devices": 1200, "seed": 33}  # the module's sandbox (conftest's sb fixture)


@pytest.fixture(scope="module")
def gateways(sb):
    """Gateway ids, the ones with the most children first."""
    return sorted(sb.gateways(), key=lambda g: -len(sb.children(g)))


def deletions(sb) -> int:
    return sum(n for _, _, path, _, n in sb.link.requests if path.endswith("/devices") and n)


def test_retried_link_deletions_read_the_gone_ones_and_send_only_the_rest(sb):
    ids = [d["id"] for d in sb.fleet.all() if d["node_type"] == 0][:120]
    with sb.link_client(chunk_size=10, concurrency=2, retry=ONCE, progress=False) as link:
        sb.set_fault(reset_rate=1.0)  # every answer lost: half before the deletion ran, half after
        try:  # (no snapshot: its reads would be lost too, and nothing would be deleted unseen)
            first = link.delete_devices(ids, rollout=False, keep_snapshot=False)
        finally:
            sb.clear_faults()
        assert first.counts["unknown"] == 120
        really_gone = {i for i in ids if sb.fleet.get(i) is None}
        assert 0 < len(really_gone) < 120  # some did go, some did not
        sb.link.clear_log()
        again = first.retry(link)
    f = again.frame
    assert again.ok and f["device_id"].is_unique and len(f) == 120  # no "not found" for a deleted device
    read = set(f.loc[f.settled_by == "read", "device_id"].astype(int))
    assert read == really_gone
    assert set(f.loc[f.settled_by == "answer", "device_id"].astype(int)) == set(ids) - really_gone
    assert deletions(sb) == 120 - len(really_gone)  # only the rest was sent again
    reads = [path.rsplit("/", 1)[1] for _, method, path, _, _ in sb.link.requests if method == "GET"]
    # a retry of 120 reads those 120 (ShowDevice), not a listing of the whole fleet (the one
    # listing is the preflight's limit=1 read of the credentials); the rest are read once
    # more, each just before its chunk is sent: the snapshot of what it deletes
    rest = [str(i) for i in ids if i not in really_gone]
    assert sorted(reads) == sorted([*map(str, ids), *rest, "devices"])
    assert all(sb.fleet.get(i) is None for i in ids)
    back = rk.journal(again.op_id, step=True)  # the journal keeps how each row was settled
    assert back.frame["settled_by"].astype(str).tolist() == f["settled_by"].astype(str).tolist()


def test_retried_child_deletions_whose_answers_were_lost_are_read_as_gone(sb, gateways):
    gid = gateways[0]
    kids = sb.children(gid)[:30]
    with sb.gateway(gid, timeout=1.0) as gw:
        sb.set_fault(mqtt_drop_rate=1.0)  # the platform deletes, the answer never comes
        try:
            first = gw.delete_sub_devices(kids, progress=False, rollout=False)
        finally:
            sb.clear_faults()
        assert first.counts["unknown"] == 30 and not set(kids) & set(sb.children(gid))
        handled = len(sb.platform.handled)
        again = first.retry(gw)  # the sandbox's gateway has the IoTDA inventory: read there
        sent = [h[2] for h in sb.platform.handled[handled:]]
    f = again.frame
    assert again.ok and (f["settled_by"] == "read").all() and not sent  # read (REST), nothing sent over MQTT
    assert ERR_NOT_CHILD not in set(f["error_code"].astype(str))


def test_a_resumed_child_deletion_reads_first(sb, gateways):
    gid = gateways[1]
    kids = sb.children(gid)[:40]
    assert len(kids) == 40
    with sb.gateway(gid, timeout=1.0, inventory=None) as gw:  # no inventory: the gateway's own sync
        token = CancelToken()
        sb.set_fault(mqtt_drop_rate=1.0)
        try:
            first = gw.delete_sub_devices(kids, chunk_size=10, concurrency=1, rollout=False, cancel=token,
                                          progress=lambda done, total: token.cancel("test") if done >= 20 else None,
                                          keep_snapshot=False)  # the sync that reads it is dropped too
        finally:
            sb.clear_faults()
        assert first.counts["unknown"] == 20 and first.counts["skipped"] == 20
        res = rk.resume(first.op_id, gw)  # the skipped ones: read (still there), then sent
        assert res.counts == {"success": 20, "failed": 0, "unknown": 20, "skipped": 0}
        assert (res.frame.loc[res.frame.outcome == "success", "settled_by"] == "answer").all()
        done = res.retry(gw)  # the unknown ones (answers lost): read as gone, not sent
    f = done.frame
    assert done.ok and sorted(f["device_id"]) == sorted(kids[:20]) and (f["settled_by"] == "read").all()


def test_when_the_state_cannot_be_read_nothing_is_sent(sb, gateways):
    gid = gateways[2]
    kids = sb.children(gid)[:5]
    with sb.gateway(gid, timeout=0.5, inventory=None) as gw:  # only the sync could tell, and it is dropped
        sb.set_fault(mqtt_drop_rate=1.0)
        try:
            first = gw.delete_sub_devices(kids, progress=False, rollout=False, keep_snapshot=False)
            handled = len(sb.platform.handled)
            with pytest.raises(reconcile.ReconcileError, match="nothing sent"):
                first.retry(gw)  # the sync is not answered either
            assert [h[2] for h in sb.platform.handled[handled:]] == ["sub_device_sync_request"]
        finally:
            sb.clear_faults()


def test_only_resent_deletions_and_restores_reconcile():
    assert reconcile.needed("delete_sub_devices", "retry") and reconcile.needed("delete_devices", "resume")
    assert not reconcile.needed("delete_devices", None) and not reconcile.needed("force_offline", "retry")
    assert reconcile.needed("restore_devices", "restore") and reconcile.needed("restore_sub_devices", None)
