"""The stop reason names what failed: a service that cannot be reached is said to be
unreachable, not counted as devices that failed."""

from __future__ import annotations

import socket

import pytest

import romakit as rk
from romakit import outcomes as oc
from romakit.engine.rollout import RolloutState

pytestmark = pytest.mark.timeout(120)

SANDBOX = {"devices": 300, "seed": 19}  # the module's sandbox (conftest's sb fixture)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_a_run_against_a_closed_port_stops_as_service_unreachable(sb):
    ids = [d["id"] for d in sb.fleet.all()][:200]
    c = sb.credentials
    link = rk.LinkClient(f"http://127.0.0.1:{closed_port()}", c.project_id, c.instance_id, rk.AkSk(c.ak, c.sk),
                         retry=rk.RetryPolicy(attempts=1), progress=False)
    with link:
        res = link.force_offline(ids, chunk_size=20, concurrency=1, rollout=rk.Rollout(abort_min=40))
    assert res.counts["failed"] == 40 and res.counts["skipped"] == 160
    assert set(res.frame.loc[res.frame.outcome == "failed", "error_code"]) == {oc.CONNECT_ERROR}
    assert res.stopped.startswith("service unreachable: 40 of 40 devices got no connection or no answer")
    assert f"{oc.CONNECT_ERROR} 40" in res.stopped and "% failed" not in res.stopped


def test_devices_the_service_refused_still_stop_as_failed(sb):
    """Answers that say no (a failing product) are failures of devices, worded as such."""
    state = RolloutState(rk.Rollout(abort_on="failed", abort_min=10, abort_threshold=0.5))
    state.record([oc.FAILED] * 6 + [oc.SUCCESS] * 4, ["ROMA.00110006"] * 6 + [None] * 4)
    assert state.abort_reason() == "60% failed after 10 devices (threshold 50%)"
    state.record([oc.FAILED] * 10, [oc.CONNECT_ERROR] * 10)  # now most failures never reached it
    assert state.abort_reason().startswith("service unreachable: 10 of 20 devices")
