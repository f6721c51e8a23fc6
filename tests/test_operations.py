"""The operation registry is the one home of the operations' facts: every operation in it
can be retried through its client, and every client declares what it is."""

from __future__ import annotations

import pytest

import romakit as rk
from romakit.errors import InputError
from romakit.operations import GATEWAY, LINK, OPERATIONS, check_chunk, check_client, operation


@pytest.fixture(scope="module")
def clients(sb):
    link = sb.link_client()
    gw_id = max(sb.gateways(), key=lambda g: len(sb.children(g)))
    with sb.gateway(gw_id) as gw:
        yield link, gw
    link.close()


def _first_run(name, link, gw, sb):
    """One small run of ``name`` against the sandbox, and the ids to retry."""
    online = link.devices(online_status="online")
    plain = online[online["node_type"].astype(str) != "gateway"]["id"].astype(int).tolist()
    kids = sb.children(gw.device_id)
    if name == "force_offline":
        return link.force_offline(plain[:3]), plain[:3]
    if name == "delete_devices":
        return link.delete_devices(plain[-2:]), plain[-2:]
    if name == "delete_sub_devices":
        return gw.delete_sub_devices(kids[:2]), kids[:2]
    if name == "add_sub_devices":
        product = next(p["product_id"] for p in sb.fleet.products() if p["product_type"] == 0)
        specs = [{"node_id": f"{gw.device_id}-retry-{i}", "product_id": product} for i in range(2)]
        return gw.add_sub_devices(specs), [s["node_id"] for s in specs]
    if name == "update_sub_device_status":
        return gw.update_sub_device_status({kids[-1]: "ONLINE", kids[-2]: "OFFLINE"}), [kids[-1], kids[-2]]
    if name == "restore_devices":
        gone = link.delete_devices(plain[-4:-2])
        return rk.restore(gone.op_id, link), plain[-4:-2]
    if name == "restore_sub_devices":
        gone = gw.delete_sub_devices(kids[2:4])
        return rk.restore(gone.op_id, gw), kids[2:4]
    raise AssertionError(f"no test run for {name}: add one when an operation joins the registry")


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_every_registered_operation_can_be_retried(name, clients, sb):
    link, gw = clients
    first, ids = _first_run(name, link, gw, sb)
    assert first.operation == name and len(first) == len(ids)
    again = first.retry(link if OPERATIONS[name].kind == LINK else gw, ids=ids)
    assert isinstance(again, rk.BatchResult)
    assert again.operation == name and again.parent_op_id == first.op_id and again.op_id != first.op_id
    assert sorted(again.frame["device_id"]) == sorted(str(i) for i in ids)
    row = rk.journal().set_index("op_id").loc[again.op_id]
    assert row["parent_op_id"] == first.op_id and row["relation"] == "retry"


def test_clients_declare_kind_target_and_identity(clients, sb):
    link, gw = clients
    assert (link.kind, link.target) == (LINK, sb.credentials.instance_id)
    assert (gw.kind, gw.target) == (GATEWAY, gw.device_id)
    assert link.identity()["kind"] == LINK and gw.identity()["kind"] == GATEWAY
    check_client(link, "force_offline", link.target)
    with pytest.raises(InputError, match="runs over gateway MQTT"):
        check_client(link, "delete_sub_devices", link.target)
    with pytest.raises(InputError, match="ran on gateway"):
        check_client(gw, "delete_sub_devices", "someone-else")
    with pytest.raises(InputError, match="expected a LinkClient"):
        check_client(object(), "force_offline", "x")


def test_chunk_limits_come_from_the_registry():
    assert check_chunk("delete_sub_devices", 50) == 50
    with pytest.raises(InputError, match="1..50"):
        check_chunk("delete_sub_devices", 51)
    with pytest.raises(InputError, match="1..100"):
        check_chunk("update_sub_device_status", 101)
    with pytest.raises(InputError, match="unknown operation"):
        operation("reboot_everything")


def test_default_rollouts_follow_what_can_be_undone():
    """Deletions (permanent) get a canary and the abort criteria; force-offline the abort
    criteria; ``rollout=False`` is the explicit way to go without."""
    from romakit.engine.rollout import Rollout, default_rollout, resolve

    for name, op in OPERATIONS.items():
        policy = default_rollout(name)
        if op.permanent:
            assert policy is not None and policy.canary > 0 and policy.abort_min > 0, name
        elif name == "force_offline":
            assert policy == Rollout() and policy.canary == 0
    assert resolve(False, "delete_devices") is None and resolve(None, "delete_devices").canary == 50
    mine = Rollout(canary=5)
    assert resolve(mine, "force_offline") is mine
