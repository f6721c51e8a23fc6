"""Force-offline against a sandbox limited to R requests/s (429 APIG.0308 past it):
romakit with its adaptive rate (the default) against the same run with it off, in one
run, the sandbox in its own process; the 429s are counted from the client's side of
each try (the journal's attempts) and the rate is accepted requests per second.

    .venv/bin/python benchmarks/bench_rate_limit.py [--limit 20] [--requests 300] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _sim_process import sim_process  # noqa: E402


def run(link: dict, ids: list[int], chunk: int, adaptive: bool) -> tuple[float, int, int]:
    import romakit as rk

    with rk.LinkClient(link["endpoint"], link["project_id"], link["instance_id"], rk.AkSk(link["ak"], link["sk"]),
                       progress=False, concurrency=8) as c:
        t0 = time.perf_counter()
        res = c.force_offline(ids, chunk_size=chunk, adaptive=adaptive,
                              retry=rk.RetryPolicy(attempts=50, max_retry_after=2.0))
        wall = time.perf_counter() - t0
    tries = int(res.frame.groupby("chunk", observed=True)["attempts"].first().sum())
    assert res.counts["success"] == len(ids), res.summary()
    return wall, tries, tries - res.frame["chunk"].nunique()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=20.0)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--chunk", type=int, default=5)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    args = ap.parse_args()
    os.environ.setdefault("ROMAKIT_HOME", tempfile.mkdtemp(prefix="romakit-bench-"))
    n = args.requests * args.chunk
    with sim_process("--devices", str(2 * n + 100), "--no-mqtt", "--seed", "1", "--latency-ms", str(args.latency_ms),
                     "--rate-limit", str(args.limit), "--retry-after", "1") as sim:
        import romakit as rk

        link = sim["link"]
        with rk.LinkClient(link["endpoint"], link["project_id"], link["instance_id"], rk.AkSk(link["ak"], link["sk"]),
                           progress=False) as c:
            ids = c.devices()["id"].astype(int).tolist()
        time.sleep(1.5)  # let the sandbox's bucket fill again after the listing
        print(f"sandbox limit {args.limit:g} requests/s, {args.requests} requests of {args.chunk}, "
              f"{args.latency_ms:g} ms latency, 8 in flight at most")
        for adaptive, part in ((True, ids[:n]), (False, ids[n:2 * n])):
            wall, tries, throttled = run(link, part, args.chunk, adaptive)
            rate = args.requests / wall
            print(f"adaptive={'on ' if adaptive else 'off'}: {wall:6.2f} s, {rate:5.1f} accepted requests/s "
                  f"({rate / args.limit:.0%} of the limit), {throttled} of {tries} tries answered 429 "
                  f"({throttled / tries:.1%})")
            time.sleep(1.5)


if __name__ == "__main__":
    main()
