"""Force-offline of 100,000 devices against the sandbox with 50 ms added latency:
romakit (chunked, 8 requests in flight) against a sequential loop of the official
SDK's ``batch_freeze_devices`` with the same chunk size, in one run.

    .venv/bin/python benchmarks/bench_force_offline.py [--devices 100000] [--chunk 500]

Prints, for both: wall time, the ratio, and client CPU per request (this process's CPU
over the requests sent: romakit's includes its id checks, pre-flight read, journal and
result; the sandbox runs in its own process and its CPU is shown apart). Then romakit's
time against the latency bound (rounds of ``concurrency`` requests x the added latency),
for the whole call and for its sending phase alone (first request out to last answer
in, from the result's own ``sent_at``/``answered_at``), and romakit under force-offline's
default rollout (slow start), and the HTTP client alone with nothing around it (the
ceiling of the stack: romakit's signed httpx client and the sandbox). Last, CPU per request of ``--cpu-chunk`` ids (250) for
both clients side by side, on the first ``--cpu-devices`` devices.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _sim_process import cpu_of, sim_process  # noqa: E402


def sdk_loop(link: dict, ids: list[int], chunk: int) -> tuple[float, float, int]:
    """The official SDK, one request after the other: (wall s, client CPU s, answered)."""
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
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(ids), chunk):
        req = BatchFreezeDevicesRequest(instance_id=link["instance_id"], body=BatchFreezeDevicesRequestBody(device_ids=ids[i : i + chunk]))
        resp = client.batch_freeze_devices(req)
        done += len(resp.success or []) + len(resp.failed or [])
    return time.perf_counter() - t0, time.process_time() - c0, done


def bare_httpx(link: dict, ids: list[int], chunk: int, concurrency: int) -> float:
    """The HTTP client alone: the same chunks, as many in flight, through romakit's signed
    httpx client, and nothing else (no id checks, pre-flight, rows, journal or result):
    what the HTTP stack and the sandbox allow (wall s)."""
    import asyncio

    import romakit as rk

    async def run() -> float:
        async with rk.AsyncLinkClient(link["endpoint"], link["project_id"], link["instance_id"],
                                      rk.AkSk(link["ak"], link["sk"]), progress=False) as a:
            await a.request("GET", "/devices", params={"offset": "0", "limit": "1"})  # connected, outside the timing
            chunks = iter(range(0, len(ids), chunk))

            async def lane() -> None:
                for i in chunks:  # a shared iterator: each chunk is sent once
                    (await a.request("POST", "/devices/force-offline", json={"device_ids": ids[i:i + chunk]})).json()

            t0 = time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(concurrency)))
            return time.perf_counter() - t0

    return asyncio.run(run())


def romakit_run(link: dict, ids: list[int], chunk: int, concurrency: int, *,
                rollout: object = False) -> tuple[float, float, object]:
    """romakit's force-offline, as users call it (journal included): (wall s, client CPU s,
    result). ``rollout=False`` is the raw engine (as the baseline, no policy), ``None`` the
    registry's default policy (slow start under abort criteria)."""
    import romakit as rk

    with rk.LinkClient(link["endpoint"], link["project_id"], link["instance_id"], rk.AkSk(link["ak"], link["sk"]), progress=False) as c:
        t0, c0 = time.perf_counter(), time.process_time()
        res = c.force_offline(ids, chunk_size=chunk, concurrency=concurrency, rollout=rollout)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(res) == len(ids), "romakit lost devices"
    return elapsed, cpu, res


def sending_phase(res: object) -> float:
    """Seconds from the first request out to the last answer in (the result's own times)."""
    frame = res.frame  # type: ignore[attr-defined]
    return (frame["answered_at"].max() - frame["sent_at"].min()).total_seconds()


def requests(n: int, chunk: int) -> int:
    return -(-n // chunk)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--cpu-chunk", type=int, default=250, help="ids per request for the CPU comparison (0: skip it)")
    ap.add_argument("--cpu-devices", type=int, default=20_000)
    args = ap.parse_args()
    import tempfile

    # romakit runs as users get it, journal included, but into a throwaway home
    os.environ.setdefault("ROMAKIT_HOME", tempfile.mkdtemp(prefix="romakit-bench-"))
    with sim_process("--devices", str(args.devices), "--latency-ms", str(args.latency_ms), "--no-mqtt", "--seed", "1") as sim:
        link = sim["link"]
        import romakit as rk

        with rk.LinkClient(link["endpoint"], link["project_id"], link["instance_id"], rk.AkSk(link["ak"], link["sk"]), progress=False) as c:
            ids = c.devices()["id"].astype(int).tolist()
        n_req = requests(len(ids), args.chunk)
        print(f"{len(ids)} devices, chunk {args.chunk} ({n_req} requests), {args.latency_ms:g} ms added latency per request; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        warm = ids[: args.chunk * args.concurrency]  # both clients warmed alike: imports, first connections
        romakit_run(link, warm, args.chunk, args.concurrency)
        sdk_loop(link, warm, args.chunk)
        s0 = cpu_of(sim["pid"])
        t_rk, c_rk, res = romakit_run(link, ids, args.chunk, args.concurrency)
        s_rk = cpu_of(sim["pid"]) - s0
        n_rk = res.counts["success"] + res.counts["failed"]
        print(f"romakit force_offline, {args.concurrency} in flight: {t_rk:7.2f} s  ({n_rk} answered, {len(ids) / t_rk:,.0f} devices/s; "
              f"client CPU {1000 * c_rk / n_req:.2f} ms/request, sandbox {1000 * s_rk / n_req:.2f} ms/request)")
        s0 = cpu_of(sim["pid"])
        t_sdk, c_sdk, n_sdk = sdk_loop(link, ids, args.chunk)
        s_sdk = cpu_of(sim["pid"]) - s0
        print(f"official SDK sequential loop:        {t_sdk:7.2f} s  ({n_sdk} answered, {len(ids) / t_sdk:,.0f} devices/s; "
              f"client CPU {1000 * c_sdk / n_req:.2f} ms/request, sandbox {1000 * s_sdk / n_req:.2f} ms/request)")
        print(f"ratio (SDK time / romakit time): {t_sdk / t_rk:.1f}x")
        bound = requests(len(ids), args.chunk * args.concurrency) * args.latency_ms / 1000
        phase = sending_phase(res)
        print(f"latency bound at {args.concurrency} in flight: {bound:.2f} s; romakit reaches {bound / t_rk:.0%} of it for the "
              f"whole call, {bound / phase:.0%} in its sending phase ({phase:.2f} s)")
        t_bare = bare_httpx(link, ids, args.chunk, args.concurrency)
        print(f"the HTTP client alone (same chunks, {args.concurrency} in flight, nothing else): {t_bare:.2f} s, "
              f"{bound / t_bare:.0%} of the bound, {t_sdk / t_bare:.1f}x the SDK: this HTTP stack's ceiling here")
        t_def, _, _ = romakit_run(link, ids, args.chunk, args.concurrency, rollout=None)
        print(f"romakit under force-offline's default rollout (slow start): {t_def:7.2f} s "
              f"({t_def / t_rk:.1f}x the raw engine: the price of a bounded exposure)")
        if args.cpu_chunk:
            few = ids[: args.cpu_devices]
            n = requests(len(few), args.cpu_chunk)
            _, c_rk, _ = romakit_run(link, few, args.cpu_chunk, args.concurrency)
            _, c_sdk, _ = sdk_loop(link, few, args.cpu_chunk)
            print(f"client CPU per request of {args.cpu_chunk} ids ({n} requests): romakit {1000 * c_rk / n:.2f} ms, "
                  f"official SDK {1000 * c_sdk / n:.2f} ms (ratio SDK / romakit {c_sdk / c_rk:.2f})")


if __name__ == "__main__":
    main()
