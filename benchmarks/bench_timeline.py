"""Summarising a timeline of 10,000,000 events: offline spells and flapping devices,
column-wise over category codes (the issue asks for under 2 s).

    .venv/bin/python benchmarks/bench_timeline.py [--events 10000000] [--devices 200000] [--repeat 3]

The events are synthetic (a seeded fleet of ``--devices`` alternating offline/online at
random moments over a day, a few gone and appeared), built as the frame
:func:`romakit.timeline` returns. Prints the time of each summary (best and median of
``--repeat``; wall and this process's CPU, which a busy machine does not inflate), the spells and flapping devices found, the frame's memory and the
process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import pandas as pd


def synthetic(n: int, devices: int, seed: int = 7) -> pd.DataFrame:
    from romakit.store.events import KINDS, STATUSES

    rng = np.random.default_rng(seed)
    at = np.sort(rng.integers(0, 86_400 * 10**9, n)) + 1_800_000_000 * 10**9
    dev = rng.integers(0, devices, n).astype(np.int32)
    # each device alternates: its k-th event is offline when k is even (a per-device counter)
    order = np.argsort(dev, kind="stable")
    first = np.r_[0, np.flatnonzero(np.diff(dev[order])) + 1]
    counter = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
    k = np.empty(n, np.int64)
    k[order] = counter
    kind = np.where(k % 2 == 0, KINDS.index("offline"), KINDS.index("online")).astype(np.int8)
    kind[rng.random(n) < 0.001] = KINDS.index("gone")
    prev = np.where(kind == KINDS.index("online"), STATUSES.index("offline"), STATUSES.index("online")).astype(np.int8)
    cats = pd.Index([f"dev-{i:07d}" for i in range(devices)])
    ev = pd.DataFrame({
        "at": pd.DatetimeIndex(at.view("datetime64[ns]")).tz_localize("UTC"),
        "service_time": pd.DatetimeIndex((at - 10**9).view("datetime64[ns]")).tz_localize("UTC"),
        "target": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=["instance-1"]),
        "device_id": pd.Categorical.from_codes(dev, categories=cats),
        "kind": pd.Categorical.from_codes(kind, categories=KINDS),
        "previous": pd.Categorical.from_codes(prev, categories=STATUSES),
        "detail": pd.Series([None] * n, dtype=object),
        "watch_id": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=["bench"]),
    })
    ev.attrs["since"], ev.attrs["until"] = 1_800_000_000.0, 1_800_000_000.0 + 86_400
    return ev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--devices", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from romakit.timelines import flapping, spells

    t0 = time.perf_counter()
    ev = synthetic(args.events, args.devices)
    print(f"built {len(ev):,} events over {args.devices:,} devices in {time.perf_counter() - t0:.1f} s; "
          f"frame {ev.memory_usage(deep=False).sum() / 2**20:.0f} MiB (detail column as pointers)")
    runs: dict[str, list[float]] = {"spells": [], "flapping": [], "both": [], "both, CPU": []}
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        sp = spells(ev)
        a = time.perf_counter()
        fl = flapping(ev, per_hour=2.0)
        b = time.perf_counter()
        runs["spells"].append(a - t)
        runs["flapping"].append(b - a)
        runs["both"].append(b - t)
        runs["both, CPU"].append(time.process_time() - c)
    for name, ts in runs.items():
        print(f"{name:<9} best {min(ts):6.2f} s   median {statistics.median(ts):6.2f} s")
    print(f"found {len(sp):,} spells ({sp['end'].isna().sum():,} not back) and {len(fl):,} flapping devices "
          f"(> 2 transitions an hour); spells frame {sp.memory_usage(deep=False).sum() / 2**20:.0f} MiB")
    print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    verdict = "under" if statistics.median(runs["both"]) < 2.0 else "OVER"
    print(f"spells + flapping of {len(ev):,} events: median {statistics.median(runs['both']):.2f} s ({verdict} 2 s)")


if __name__ == "__main__":
    main()
