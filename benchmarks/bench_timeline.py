"""Summarising a timeline of 10,000,000 events: offline spells and flapping devices,
column-wise over category codes (the issue asks for under 2 s), side by side in one run
with the previous code (commit aebe2f2: a 16-bit radix sort in two passes, the events
gathered whole in device order, ``Categorical.from_codes`` checking codes again,
``ufunc.at`` over every event), kept below as the baseline.

    .venv/bin/python benchmarks/bench_timeline.py [--events 10000000] [--devices 200000] [--repeat 5]

The events are synthetic (a seeded fleet of ``--devices`` alternating offline/online at
random moments over a day, a few gone and appeared), built as the frame
:func:`romakit.timeline` returns. Prints the time of each summary (best and median of
``--repeat``, the two codes alternated; wall and this process's CPU, which a busy machine
does not inflate) and the ratio of the medians, checks that both found the same spells
and flapping devices, and prints the frame's memory and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

from romakit.store.listing import when
from romakit.timelines import _DOWN_KINDS


# -- the previous code (aebe2f2), the baseline ------------------------------------------
def _ns(values: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(values, np.int64).view("datetime64[ns]")).tz_localize("UTC")


def _sorted(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The order by device then time; the device codes and the times (ns) in that order.
    Events come from the journal in time order, so a stable sort by device code is
    enough: a radix sort, 16 bits a pass."""
    codes = events["device_id"].cat.codes.to_numpy().astype(np.int64)
    at = events["at"].to_numpy("datetime64[ns]").view(np.int64)
    order = None
    if len(at) > 1 and not (at[1:] >= at[:-1]).all():
        order = np.argsort(at, kind="stable")
    shift, top = 0, int(codes.max()) if len(codes) else 0
    while True:
        digit = ((codes if order is None else codes[order]) >> shift).astype(np.uint16)  # the low 16 bits
        step = np.argsort(digit, kind="stable")
        order = step if order is None else order[step]
        shift += 16
        if top >> shift == 0:
            break
    return order, codes[order], at[order]


def _down(events: pd.DataFrame) -> np.ndarray:
    kinds = events["kind"]
    down = kinds.isin(_DOWN_KINDS).to_numpy().copy()
    appeared = (kinds == "appeared").to_numpy()
    if appeared.any():
        down[appeared] = events["detail"].to_numpy()[appeared] != "online"
    return down


def previous_spells(events: pd.DataFrame, until: Any = None) -> pd.DataFrame:
    """Offline spells: ``device_id``, ``target``, ``start``, ``end`` (NaT: not back by
    the window's end), ``duration`` (to ``until`` — the window's end, else now — for
    those not back), ``kind`` (what took it down), ``back_at_service`` (the service's
    time of the return); by device (in the order of its category), then start."""
    order, dev, at = _sorted(events)
    down = _down(events)[order]
    n = len(order)
    new_dev = np.ones(n, bool)
    new_dev[1:] = dev[1:] != dev[:-1]
    prev_down = np.zeros(n, bool)
    prev_down[1:] = down[:-1]
    start = np.flatnonzero(down & (new_dev | ~prev_down))
    # each run of down events ends at its last one; the event after it (same device) is the return
    run_ends = np.ones(n, bool)
    run_ends[:-1] = ~down[1:] | new_dev[1:]
    after = np.flatnonzero(down & run_ends) + 1
    e = np.minimum(after, max(n - 1, 0))
    ended = (after < n) & ~new_dev[e] if len(start) else np.zeros(0, bool)
    end = np.where(ended, at[e], np.iinfo(np.int64).min)
    hi = until if until is not None else events.attrs.get("until")
    stop = int((when(hi, "until") if hi is not None else time.time()) * 1e9)
    dur = np.where(ended, end - at[start], np.maximum(stop - at[start], 0))
    rows = order[start]
    back = events["service_time"].to_numpy("datetime64[ns]")[order[e]] if len(e) else np.array([], "datetime64[ns]")
    out = pd.DataFrame({
        "device_id": _take(events["device_id"], rows),
        "target": _take(events["target"], rows),
        "start": _ns(at[start]),
        "end": _ns(end),
        "duration": pd.to_timedelta(dur),
        "kind": _take(events["kind"], rows),
        "back_at_service": _ns(np.where(ended, back.view(np.int64), np.iinfo(np.int64).min)),
    }, copy=False)
    return out


def _take(col: pd.Series, rows: np.ndarray) -> pd.Categorical:
    """Rows of a categorical column, by code (no object arrays)."""
    return pd.Categorical.from_codes(col.cat.codes.to_numpy()[rows], dtype=col.dtype)


def previous_flapping(events: pd.DataFrame, per_hour: float = 4.0, hours: float | None = None) -> pd.DataFrame:
    """Devices with more than ``per_hour`` status transitions an hour (over ``hours``,
    default the window, else the events' span, at least one hour): ``device_id``,
    ``transitions``, ``per_hour``, ``first``, ``last``; the busiest first."""
    codes = events["device_id"].cat.codes.to_numpy()
    cats = events["device_id"].cat.categories
    status = events["kind"].isin((*_DOWN_KINDS, "online")).to_numpy()
    counts = np.bincount(codes[status], minlength=len(cats))
    if hours is None:
        lo, hi = events.attrs.get("since"), events.attrs.get("until")
        at = events["at"]
        a = when(lo) if lo is not None else (at.min().timestamp() if len(at) else 0.0)
        b = when(hi) if hi is not None else (at.max().timestamp() if len(at) else 0.0)
        hours = max((b - a) / 3600, 1.0)
    rate = counts / hours
    hit = np.flatnonzero(rate > per_hour)
    at_ns = events["at"].to_numpy("datetime64[ns]").view(np.int64)
    first = np.full(len(cats), np.iinfo(np.int64).max)
    last = np.full(len(cats), np.iinfo(np.int64).min)
    np.minimum.at(first, codes, at_ns) if len(hit) else None
    np.maximum.at(last, codes, at_ns) if len(hit) else None
    out = pd.DataFrame({"device_id": pd.Categorical(cats[hit]), "transitions": counts[hit],
                        "per_hour": rate[hit], "first": _ns(first[hit]), "last": _ns(last[hit])})
    return out.sort_values("transitions", ascending=False, kind="stable", ignore_index=True)


# -- the benchmark -----------------------------------------------------------------------


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
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from romakit.timelines import flapping, spells

    t0 = time.perf_counter()
    ev = synthetic(args.events, args.devices)
    print(f"built {len(ev):,} events over {args.devices:,} devices in {time.perf_counter() - t0:.1f} s; "
          f"frame {ev.memory_usage(deep=False).sum() / 2**20:.0f} MiB (detail column as pointers)")
    codes = {"now": (spells, flapping), "previous": (previous_spells, previous_flapping)}
    runs: dict[str, dict[str, list[float]]] = {k: {"spells": [], "flapping": [], "both": [], "both, CPU": []}
                                                for k in codes}
    found = {}
    for _ in range(args.repeat):  # alternated, so a busy moment of the machine hits both
        for name, (sp_f, fl_f) in codes.items():
            t, c = time.perf_counter(), time.process_time()
            sp = sp_f(ev)
            a = time.perf_counter()
            fl = fl_f(ev, per_hour=2.0)
            b = time.perf_counter()
            r = runs[name]
            r["spells"].append(a - t)
            r["flapping"].append(b - a)
            r["both"].append(b - t)
            r["both, CPU"].append(time.process_time() - c)
            found[name] = (sp, fl)
    (sp, fl), (old_sp, old_fl) = found["now"], found["previous"]
    pd.testing.assert_frame_equal(sp.drop(columns="duration").iloc[::997], old_sp.drop(columns="duration").iloc[::997],
                                  check_categorical=False)
    assert len(sp) == len(old_sp) and fl["device_id"].astype(str).equals(old_fl["device_id"].astype(str))
    print(f"{'':<11}{'now: best':>10} {'median':>8} | {'previous: best':>14} {'median':>8} | {'median ratio':>12}")
    for what in runs["now"]:
        n, p = runs["now"][what], runs["previous"][what]
        print(f"{what:<11}{min(n):>9.2f}s {statistics.median(n):>7.2f}s | {min(p):>13.2f}s "
              f"{statistics.median(p):>7.2f}s | {statistics.median(p) / statistics.median(n):>11.1f}x")
    print(f"found {len(sp):,} spells ({sp['end'].isna().sum():,} not back) and {len(fl):,} flapping devices "
          f"(> 2 transitions an hour), the same as the previous code; "
          f"spells frame {sp.memory_usage(deep=False).sum() / 2**20:.0f} MiB")
    print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    med = statistics.median(runs["now"]["both"])
    print(f"spells + flapping of {len(ev):,} events: median {med:.2f} s ({'under' if med < 2.0 else 'OVER'} 2 s)")


if __name__ == "__main__":
    main()
