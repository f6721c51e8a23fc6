"""The sandbox itself: how long ``romakit sim --devices N`` takes to start serving, its
resident memory, and how many ListDevices pages it serves (``GET /devices?limit=999``)
per second of its own CPU, so the other benchmarks can show it is not their bottleneck;
against the sandbox of another git revision (``--baseline-rev``, by default the last
one whose fleet was one dict per device; exported to a temporary directory), in the
same run (``--no-baseline`` to measure this tree alone).

    .venv/bin/python benchmarks/bench_sandbox.py [--sizes 100000,1000000] [--pages 200]

Each sandbox runs in its own process (MQTT on, as ``romakit sim`` starts it). Pages are
read one after another by a plain httpx client with the sandbox token, at offsets spread
over the whole fleet; "pages per sandbox CPU second" counts only the sandbox's CPU, so
it is its serving capacity whatever the client costs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _sim_process import cpu_of, memory_of, sim_process  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: the last commit whose sandbox fleet was one dict per device
BASELINE_REV = "20d913e"


def export(rev: str, into: str) -> str:
    """The ``romakit`` package of commit ``rev``, written under ``into``; returns the tree."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "romakit"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into


def pages(link: dict, n_devices: int, n_pages: int, pid: int) -> tuple[float, float, int]:
    """``(wall s, sandbox CPU s, devices)`` of ``n_pages`` pages of 999 read one by one."""
    base = f"{link['endpoint']}/v2/{link['project_id']}/link/instances/{link['instance_id']}/devices"
    step = max(999, (n_devices - 999) // max(n_pages - 1, 1))
    offsets = [(k * step) % max(n_devices - 999, 1) for k in range(n_pages)]
    with httpx.Client(headers={"X-Auth-Token": link["token"]}, timeout=60) as http:
        http.get(base, params={"limit": 1}).raise_for_status()  # connected, first view built
        got = 0
        c0, t0 = cpu_of(pid), time.perf_counter()
        for off in offsets:
            r = http.get(base, params={"offset": off, "limit": 999})
            r.raise_for_status()
            got += len(r.json()["items"])
        return time.perf_counter() - t0, cpu_of(pid) - c0, got


def measure(label: str, tree: str | None, sizes: list[int], n_pages: int) -> dict[int, tuple]:
    out = {}
    for n in sizes:
        t0 = time.perf_counter()
        with sim_process("--devices", str(n), "--seed", "1", timeout=900, tree=tree) as sim:
            start = time.perf_counter() - t0
            rss, peak = memory_of(sim["pid"])
            wall, cpu, got = pages(sim["link"], n, n_pages, sim["pid"])
            rss_after, _ = memory_of(sim["pid"])
        out[n] = (start, rss, peak, wall, cpu, got)
        print(f"{label:>8} {n:>9,} devices: up in {start:5.1f} s, {rss:6,.0f} MiB resident ({peak:,.0f} peak), "
              f"{n_pages} pages of 999: {n_pages / wall:5.0f} pages/s wall, {n_pages / cpu:5.0f} pages per "
              f"sandbox CPU s ({cpu / got * 1e6:.1f} us/device), {rss_after:,.0f} MiB after", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="fleet sizes, comma separated")
    ap.add_argument("--pages", type=int, default=200, help="pages of 999 read per sandbox")
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the baseline sandbox")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    now = measure("now", str(ROOT), sizes, args.pages)
    if args.no_baseline:
        return
    with tempfile.TemporaryDirectory(prefix="romakit-baseline-") as tmp:
        before = measure(f"{args.baseline_rev}", export(args.baseline_rev, tmp), sizes, args.pages)
    for n in sizes:
        (s1, r1, _, _, c1, _), (s0, r0, _, _, c0, _) = now[n], before[n]
        print(f"ratio at {n:,}: start {s0 / s1:.1f}x sooner, {r0 / r1:.1f}x less resident memory, "
              f"{c1 / c0:.2f}x the sandbox CPU per page ({c0 / c1:.2f}x the pages per CPU second)")


if __name__ == "__main__":
    main()
