"""What a deletion's snapshot costs, and what a restore takes: the same deletion run
with its snapshot (each chunk's records read just before it is sent) and without it
(``keep_snapshot=False``), side by side in one run on the same fleet, then the restore.

    .venv/bin/python benchmarks/bench_snapshot.py [--link 2000] [--children 200] [--repeat 3]

LINK: ``--link`` direct devices deleted in chunks of 500 (the snapshot reads each with
ShowDevice), best of ``--repeat`` each way, then restored (one CreateDevice a device).
Gateways: ``--children`` children of the three biggest gateways deleted with
``rk.delete_children`` (the snapshot reads each through the IoTDA inventory), then
restored through a GatewayGroup. Prints wall seconds, requests the sandbox served, and
the ratios with/without.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import romakit as rk


def link_case(n: int, repeat: int) -> None:
    timings: dict[bool, list[float]] = {True: [], False: []}
    served: dict[bool, int] = {}
    restore_s = 0.0
    for _ in range(repeat):
        for keep in (True, False):
            with rk.sandbox(devices=max(3 * n, 1000), seed=5, mqtt=False) as sb, sb.link_client(progress=False) as link:
                ids = link.devices(node_type="direct")["id"].astype(int).tolist()[:n]
                before = len(sb.link.requests)
                t0 = time.perf_counter()
                res = link.delete_devices(ids, rollout=False, keep_snapshot=keep)
                timings[keep].append(time.perf_counter() - t0)
                served[keep] = len(sb.link.requests) - before
                assert res.ok
                if keep:
                    t0 = time.perf_counter()
                    assert rk.restore(res.op_id, link, rollout=False).ok
                    restore_s = time.perf_counter() - t0
    w, wo = min(timings[True]), min(timings[False])
    print(f"LINK delete of {n:,} devices: with snapshot {w:.2f} s ({served[True]:,} requests), without "
          f"{wo:.2f} s ({served[False]:,} requests): {w / wo:.2f}x the time, {served[True] / served[False]:.0f}x "
          f"the requests; restore {restore_s:.2f} s ({n / restore_s:,.0f} devices/s)")


def child_case(n: int, repeat: int) -> None:
    timings: dict[bool, list[float]] = {True: [], False: []}
    restore_s = 0.0
    for _ in range(repeat):
        for keep in (True, False):
            with rk.sandbox(devices=800, seed=19) as sb, sb.link_client(progress=False) as link:
                gws = sorted(sb.gateways(), key=lambda g: -len(sb.children(g)))[:3]
                ids = [c for g in gws for c in sb.children(g)][:n]
                group = rk.GatewayGroup({g: sb.gateway(g) for g in gws}, link.devices())
                t0 = time.perf_counter()
                res = group.delete_sub_devices(ids, rollout=False, progress=False, keep_snapshot=keep)
                timings[keep].append(time.perf_counter() - t0)
                assert res.ok
                if keep:
                    t0 = time.perf_counter()
                    assert rk.restore(res.op_id, group, rollout=False, progress=False).ok
                    restore_s = time.perf_counter() - t0
    w, wo = min(timings[True]), min(timings[False])
    print(f"children: delete of {n} across 3 gateways: with snapshot {w:.2f} s, without {wo:.2f} s: "
          f"{w / wo:.2f}x the time; restore {restore_s:.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--link", type=int, default=2000)
    p.add_argument("--children", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    import os

    os.environ.setdefault("ROMAKIT_HOME", tempfile.mkdtemp(prefix="romakit-bench-"))
    link_case(a.link, a.repeat)
    child_case(a.children, a.repeat)


if __name__ == "__main__":
    main()
