"""Force-offline of 100,000 devices against the sandbox with 50 ms added latency:
romakit (chunked, 8 requests in flight) against a sequential loop of the official
SDK's ``batch_freeze_devices`` with the same chunk size, in one run.

    .venv/bin/python benchmarks/bench_force_offline.py [--devices 100000] [--chunk 500]

Prints both times and the ratio. The sandbox runs in its own process.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _sim_process import sim_process  # noqa: E402


def sdk_loop(link: dict, ids: list[int], chunk: int) -> tuple[float, int]:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkroma.v2 import BatchFreezeDevicesRequest, RomaClient
    from huaweicloudsdkroma.v2.model.batch_freeze_devices_request_body import (
        BatchFreezeDevicesRequestBody,
    )

    logging.getLogger("HuaweiCloud-SDK").setLevel(logging.ERROR)
    cfg = HttpConfig.get_default_config()
    cfg.ignore_ssl_verification = True
    client = (
        RomaClient.new_builder()
        .with_http_config(cfg)
        .with_credentials(BasicCredentials(link["ak"], link["sk"], link["project_id"]))
        .with_endpoints([link["endpoint"]])
        .build()
    )
    done = 0
    t0 = time.perf_counter()
    for i in range(0, len(ids), chunk):
        req = BatchFreezeDevicesRequest(instance_id=link["instance_id"], body=BatchFreezeDevicesRequestBody(device_ids=ids[i : i + chunk]))
        resp = client.batch_freeze_devices(req)
        done += len(resp.success or []) + len(resp.failed or [])
    return time.perf_counter() - t0, done


def romakit_run(link: dict, ids: list[int], chunk: int, concurrency: int, *, rollout: object = False) -> tuple[float, int]:
    """romakit's force-offline; ``rollout=False`` is the raw engine (as the baseline, no
    policy), ``None`` the registry's default policy (slow start under abort criteria)."""
    import romakit as rk

    with rk.LinkClient(link["endpoint"], link["project_id"], link["instance_id"], rk.AkSk(link["ak"], link["sk"]), progress=False) as c:
        t0 = time.perf_counter()
        res = c.force_offline(ids, chunk_size=chunk, concurrency=concurrency, rollout=rollout)
        elapsed = time.perf_counter() - t0
    assert len(res) == len(ids), "romakit lost devices"
    return elapsed, res.counts["success"] + res.counts["failed"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    args = ap.parse_args()
    import os
    import tempfile

    # romakit runs as users get it, journal included, but into a throwaway home
    os.environ.setdefault("ROMAKIT_HOME", tempfile.mkdtemp(prefix="romakit-bench-"))
    with sim_process("--devices", str(args.devices), "--latency-ms", str(args.latency_ms), "--no-mqtt", "--seed", "1") as sim:
        link = sim["link"]
        import romakit as rk

        with rk.LinkClient(link["endpoint"], link["project_id"], link["instance_id"], rk.AkSk(link["ak"], link["sk"]), progress=False) as c:
            ids = c.devices()["id"].astype(int).tolist()
        print(f"{len(ids)} devices, chunk {args.chunk}, {args.latency_ms:g} ms added latency per request")
        t_rk, n_rk = romakit_run(link, ids, args.chunk, args.concurrency)
        print(f"romakit force_offline, {args.concurrency} in flight: {t_rk:7.2f} s  ({n_rk} answered, {len(ids) / t_rk:,.0f} devices/s)")
        t_sdk, n_sdk = sdk_loop(link, ids, args.chunk)
        print(f"official SDK sequential loop:        {t_sdk:7.2f} s  ({n_sdk} answered, {len(ids) / t_sdk:,.0f} devices/s)")
        print(f"ratio (SDK time / romakit time): {t_sdk / t_rk:.1f}x")
        bound = -(-len(ids) // (args.chunk * args.concurrency)) * args.latency_ms / 1000
        print(f"latency bound at {args.concurrency} in flight: {bound:.2f} s; romakit reaches {bound / t_rk:.0%} of it")
        t_def, _ = romakit_run(link, ids, args.chunk, args.concurrency, rollout=None)
        print(f"romakit under force-offline's default rollout (slow start): {t_def:7.2f} s "
              f"({t_def / t_rk:.1f}x the raw engine: the price of a bounded exposure)")


if __name__ == "__main__":
    main()
