"""Child deletion across many gateways in one run (rk.delete_children), against the
sandbox's broker and IoTDA platform over real sockets; paces judged from the
platform's own log of handled requests."""

from __future__ import annotations

import pytest

import romakit as rk
from romakit.iotda.fanout import parents_of

SANDBOX = {"devices": 800, "seed": 11}  # the module's sandbox (conftest's sb fixture)


def test_parents_from_a_devices_frame_and_unknown_children_refused(sb):
    with sb.link_client(progress=False) as link:
        fleet = link.devices()
    gw = sb.gateways()[0]
    kids = sb.children(gw)[:3]
    assert parents_of(kids, fleet) == {k: gw for k in kids}
    with pytest.raises(rk.InputError, match="no gateway known for 1"):
        parents_of([*kids, "dev-999999"], fleet)


def test_every_child_once_across_gateways_each_within_its_pace(sb):
    with sb.link_client(progress=False) as link:
        fleet = link.devices()
    gws = [g for g in sb.gateways() if len(sb.children(g)) >= 12][:4]
    want = {g: sb.children(g) for g in gws}
    ids = [c for g in gws for c in want[g]]
    rate = 10.0  # each gateway's own pace, requests/s
    gateways = {g: sb.gateway(g, rate=rate, max_in_flight=2) for g in gws}
    platform = sb.platform
    before = len(platform.handled)
    res = rk.delete_children(ids, parents=fleet, gateways=gateways, chunk_size=5, progress=False)
    assert len(res) == len(ids) and res.counts["success"] == len(ids)
    f = res.frame
    assert sorted(f["device_id"].astype(str)) == sorted(ids)  # every id once
    assert dict(zip(f["device_id"].astype(str), f["target"].astype(str), strict=True)) == {
        c: g for g in gws for c in want[g]}
    assert all(sb.children(g) == [] for g in gws)
    log = [h for h in platform.handled[before:] if h[2] == "delete_sub_device_request"]
    assert sum(h[4] for h in log) == len(ids)
    for g in gws:  # no gateway faster than its pace: n requests span >= (n - 2) / rate
        times = sorted(h[0] for h in log if h[1] == g)  # (one pair may arrive bunched by jitter)
        assert len(times) >= 3
        assert times[-1] - times[0] >= (len(times) - 2) / rate, (g, times)
    spans = [(min(h[0] for h in log if h[1] == g), max(h[0] for h in log if h[1] == g)) for g in gws]
    assert max(a for a, _ in spans) < min(b for _, b in spans)  # the gateways worked at the same time
    assert {h[1] for h in log} == set(gws)
    journal = rk.journal()
    assert res.op_id in set(journal["op_id"])


def test_a_retry_reads_what_is_gone_per_gateway_and_sends_nothing_again(sb):
    """A re-sent fan-out deletion reconciles first (as one gateway's does): children already
    deleted end success, settled by the read, and no delete request goes out again."""
    from romakit.iotda.fanout import GatewayGroup

    with sb.link_client(progress=False) as link:
        fleet = link.devices()
    gws = [g for g in sb.gateways() if len(sb.children(g)) >= 4][4:7]
    ids = [c for g in gws for c in sb.children(g)[:3]]
    group = GatewayGroup({g: sb.gateway(g) for g in gws}, fleet)
    first = group.delete_sub_devices(ids, progress=False, rollout=False)
    assert first.counts["success"] == len(ids) and first.target == group.target == "3 gateways"
    before = len(sb.platform.handled)
    again = first.retry(group, ids=ids, progress=False, rollout=False)
    assert again.counts["success"] == len(ids) and again.parent_op_id == first.op_id
    assert set(again.frame["settled_by"].astype(str)) == {"read"}
    assert not [h for h in sb.platform.handled[before:] if h[2] == "delete_sub_device_request"]
    assert group.subset(gws[:2]).target == "2 gateways"
    with pytest.raises(rk.InputError, match="does not hold"):
        group.subset(["gw-nope"])


def test_a_gateway_that_cannot_log_in_stops_the_run_before_anything_is_sent(sb):
    with sb.link_client(progress=False) as link:
        fleet = link.devices()
    gws = [g for g in sb.gateways() if len(sb.children(g)) >= 2][8:10]
    ids = [c for g in gws for c in sb.children(g)[:2]]
    good = sb.gateway(gws[0])
    host, port = sb.mqtt_address
    bad = rk.Gateway(host, port, gws[1], "not-the-secret", tls=False, inventory=None)
    before = len(sb.platform.handled)
    with pytest.raises(rk.RomakitError):
        rk.delete_children(ids, parents=fleet, gateways={gws[0]: good, gws[1]: bad}, progress=False)
    assert not good.connected  # the session it opened is closed again
    assert len(sb.platform.handled) == before and set(ids) <= {c for g in gws for c in sb.children(g)}
