"""Listing a whole fleet: romakit's ``devices()`` (pages in flight at once, each decoded
from its bytes straight into columns) against the official SDK's paging loop
(``list_devices`` with limit 999, one page after another, model objects), in one run,
the sandbox in its own process with added latency.

    .venv/bin/python benchmarks/bench_listing.py [--devices 100000] [--latency-ms 50] [--concurrency 8]
    .venv/bin/python benchmarks/bench_listing.py --devices 1000000 --no-sdk   # peak memory at 1M

Prints wall time, client CPU (this process's, so the sandbox's is not counted) and
client CPU per device for both, the ratio, and romakit's peak memory (RSS growth); and
what reading the same pages' bytes costs alone (the HTTP client's share of the CPU); and
warm, alternating runs of the lanes as they are (asking for the next page before decoding
the last) against each page decoded before its lane asks for the next (their order before).
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _sim_process import cpu_of, sim_process  # noqa: E402


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def sdk_loop(link: dict) -> tuple[float, float, int]:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkroma.v2 import ListDevicesRequest, RomaClient

    logging.getLogger("HuaweiCloud-SDK").setLevel(logging.ERROR)
    cfg = HttpConfig.get_default_config()
    cfg.ignore_ssl_verification = True
    client = (
        RomaClient.new_builder().with_http_config(cfg)
        .with_credentials(BasicCredentials(link["ak"], link["sk"], link["project_id"]))
        .with_endpoints([link["endpoint"]]).build()
    )
    devices: list = []
    t0, c0 = time.perf_counter(), time.process_time()
    offset, total = 0, None
    while total is None or offset < total:
        resp = client.list_devices(ListDevicesRequest(instance_id=link["instance_id"], offset=offset, limit=999))
        total = resp.total
        devices.extend(resp.items or [])
        offset += 999
    return time.perf_counter() - t0, time.process_time() - c0, len(devices)


def romakit_run(link: dict, concurrency: int) -> tuple[float, float, int, float]:
    import romakit as rk

    with rk.LinkClient(link["endpoint"], link["project_id"], link["instance_id"], rk.AkSk(link["ak"], link["sk"]),
                       concurrency=concurrency, progress=False) as c:
        c.device_page(0, 1)  # connect outside the timing
        import pandas  # noqa: F401  - warm, as in a notebook that has read a frame before
        import pyarrow  # noqa: F401
        before = _rss_mib()
        t0, c0 = time.perf_counter(), time.process_time()
        frame = c.devices()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    assert frame["id"].is_unique
    return wall, cpu, len(frame), max(peak, frame.memory_usage(deep=True).sum() / 2**20)


def pages_only_run(link: dict, concurrency: int, total: int) -> tuple[float, float]:
    """The same pages read with the same client and as many in flight, their bodies not
    decoded: what reading the bytes costs on its own (httpx, signing, the event loop)."""
    import asyncio

    import romakit as rk

    async def run() -> tuple[float, float]:
        async with rk.AsyncLinkClient(link["endpoint"], link["project_id"], link["instance_id"],
                                      rk.AkSk(link["ak"], link["sk"]), progress=False) as a:
            await a.request("GET", "/devices", params={"offset": "0", "limit": "1"})
            sem = asyncio.Semaphore(concurrency)

            async def page(offset: int) -> int:
                async with sem:
                    resp = await a.request("GET", "/devices", params={"offset": str(offset), "limit": "999"})
                    return len(resp.content)

            t0, c0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(page(o) for o in range(0, total, 999)))
            return time.perf_counter() - t0, time.process_time() - c0

    return asyncio.run(run())


def decode_first_run(link: dict, concurrency: int) -> float:
    """The same listing with each page decoded before its lane asks for the next (what
    ``devices()`` did before its lanes asked ahead): wall seconds."""
    import asyncio

    import romakit as rk
    from romakit.link import listing

    async def run() -> float:
        async with rk.AsyncLinkClient(link["endpoint"], link["project_id"], link["instance_id"],
                                      rk.AkSk(link["ak"], link["sk"]), concurrency=concurrency, progress=False) as a:
            await a.request("GET", "/devices", params={"offset": "0", "limit": "1"})

            async def page(offset: int) -> listing.Page:
                return await a._read("/devices", {"offset": str(offset), "limit": "999"}, listing.decode_page, raw=True)

            t0 = time.perf_counter()
            frame = await listing.read_all(page, 999, concurrency)
            assert frame["id"].is_unique
            return time.perf_counter() - t0

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--ab", type=int, default=3, help="warm alternating runs: asking ahead vs decoding first (0: skip)")
    ap.add_argument("--no-sdk", action="store_true", help="romakit only (e.g. for 1,000,000 devices)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with sim_process("--devices", str(args.devices), "--latency-ms", str(args.latency_ms), "--no-mqtt",
                     "--seed", "1", timeout=600) as sim:
        print(f"sandbox of {args.devices:,} devices up in {time.perf_counter() - t0:.1f} s "
              f"(its own process), {args.latency_ms:g} ms added latency")
        s0 = cpu_of(sim["pid"])
        w, c, n, mem = romakit_run(sim["link"], args.concurrency)
        print(f"  (the sandbox spent {cpu_of(sim['pid']) - s0:.2f} s CPU serving it)")
        print(f"romakit devices(), {args.concurrency} pages in flight: {w:6.2f} s wall, {c:6.2f} s client CPU "
              f"({c / n * 1e6:.1f} us/device), {n:,} devices, peak memory +{mem:,.0f} MiB")
        wb, cb = pages_only_run(sim["link"], args.concurrency, n)
        print(f"  of which reading the bytes (the same pages, not decoded): {wb:.2f} s wall, {cb:.2f} s CPU "
              f"({cb / n * 1e6:.1f} us/device)")
        ahead, first = [], []  # warm, alternating: the lanes' order against the one before it
        for _ in range(args.ab):
            ahead.append(romakit_run(sim["link"], args.concurrency)[0])
            first.append(decode_first_run(sim["link"], args.concurrency))
        if ahead:
            print(f"  warm, {args.ab} alternating runs each (medians): lanes asking ahead {statistics.median(ahead):.2f} s, "
                  f"each page decoded before its lane asks for the next {statistics.median(first):.2f} s "
                  f"({statistics.median(first) / statistics.median(ahead):.2f}x)")
        if not args.no_sdk:
            ws, cs, ns = sdk_loop(sim["link"])
            print(f"official SDK paging loop:          {ws:6.2f} s wall, {cs:6.2f} s client CPU "
                  f"({cs / ns * 1e6:.1f} us/device), {ns:,} devices")
            print(f"ratio (SDK / romakit): {ws / w:.1f}x wall, {cs / c:.1f}x client CPU")


if __name__ == "__main__":
    main()
