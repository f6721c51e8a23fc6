"""Following forced devices: romakit's ``res.follow()`` (each cycle reads only what answers
the question for the devices still offline: the offline set, or the pending ids one by one,
then the ones that left it) against a naive follow that lists the whole fleet every cycle,
in one run, on the same fleet and the same return schedule.

    .venv/bin/python benchmarks/bench_follow.py [--fleet 300000] [--forced 100000] [--never 0.01]

The sandbox runs in this process so the benchmark can play the devices' MQTT clients:
after every cycle half of the forced devices still offline log in again (a share
``--never`` never does), so the pending set shrinks 100,000 -> 50,000 -> ... -> the
never-returning devices. Per cycle it prints the devices pending, the requests the
sandbox served and the devices read, for both, and the totals and wall time.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import romakit as rk
from romakit.results.follow import Follow, _ms, _Run, _status, forced_times, run_follow


def come_back(fleet, ids) -> None:
    now = int(time.time() * 1000)
    with fleet.lock:
        rows = [r for r in fleet.columns.rows_of_ids(list(ids)) if r >= 0]
        fleet.columns.col("login")[rows] = now
        fleet.columns.col("online")[rows] = 1
        fleet._rev += 1


class Schedule:
    """After each cycle, half of the still-offline forced devices (never the ``never`` set)
    come back, until only the never-returning ones are left."""

    def __init__(self, fleet, forced: list[int], never: set[int]) -> None:
        self.fleet, self.never = fleet, never
        self.left = [i for i in forced if i not in never]

    def step(self) -> None:
        half = self.left[: max(len(self.left) // 2, 1)] if self.left else []
        come_back(self.fleet, half)
        self.left = self.left[len(half):]


async def naive(forced: dict, reader, schedule: Schedule, sb, cycles: int) -> list[dict]:
    """Lists the whole fleet each cycle and judges the same way."""
    rows = []
    pending = set(forced)
    for no in range(cycles):
        if not pending:
            break
        before = len(sb.link.requests)
        frame = await reader.devices()
        ids = frame["id"].tolist()
        st = frame["online_status"].astype(object).tolist()
        login = frame["last_login_datetime"].tolist()
        at = len(pending)
        for k, did in enumerate(ids):
            if did in pending:
                ms = _ms(login[k])
                if _status(st[k]) == "online" or (ms is not None and ms > forced[did]):
                    pending.discard(did)
        rows.append({"cycle": no, "pending": at, "requests": len(sb.link.requests) - before,
                     "devices_read": len(frame)})
        schedule.step()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fleet", type=int, default=300_000)
    ap.add_argument("--forced", type=int, default=100_000)
    ap.add_argument("--never", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    with rk.sandbox(devices=a.fleet, seed=a.seed) as sb:
        link = sb.link_client(progress=False, concurrency=8)
        online = link.devices(online_status="online")["id"].astype(int).to_numpy()
        print(f"fleet {len(sb.fleet):,} devices, {len(online):,} online; forcing {a.forced:,} of them")
        results = {}
        for name in ("romakit", "naive"):
            ids = [int(i) for i in rng.choice(online, a.forced, replace=False)]
            never = {int(i) for i in rng.choice(ids, int(a.forced * a.never), replace=False)}
            t0 = time.perf_counter()
            res = link.force_offline(ids, rollout=False, chunk_size=1000)
            print(f"{name}: forced {res.counts['success']:,} in {time.perf_counter() - t0:.1f} s")
            schedule = Schedule(sb.fleet, ids, never)
            forced = forced_times(res)
            cycles = math.ceil(math.log2(a.forced)) + 3
            t0 = time.perf_counter()
            if name == "romakit":
                served: list[int] = []

                def on_cycle(state: _Run, served=served, schedule=schedule) -> None:
                    served.append(len(sb.link.requests))
                    schedule.step()

                sb.link.clear_log()
                state = rk._runner.run(run_follow(forced, link.aio, within=3600, every=0.0, on_cycle=on_cycle,
                                                  cycles=cycles))
                rows = state.reads.cycles
                for k, r in enumerate(rows):
                    r["served"] = served[k] - (served[k - 1] if k else 0)
                fol = Follow.from_state(state, res, 3600)
                assert set(fol.stragglers()["device_id"]) == never
            else:
                sb.link.clear_log()
                rows = rk._runner.run(naive(forced, link.aio, schedule, sb, cycles))
            results[name] = (rows, time.perf_counter() - t0)
            come_back(sb.fleet, ids)  # the next run starts from the same fleet
        (ours, t_ours), (theirs, t_theirs) = results["romakit"], results["naive"]
        print(f"\n{'cycle':>5} {'pending':>9} | {'romakit req':>11} {'dev read':>9} {'how':<28} | "
              f"{'naive req':>9} {'dev read':>9}")
        for k in range(max(len(ours), len(theirs))):
            o = ours[k] if k < len(ours) else None
            t = theirs[k] if k < len(theirs) else None
            pend = (o or t)["pending"]
            print(f"{k:>5} {pend:>9,} | "
                  + (f"{o['served']:>11,} {o['devices_read']:>9,} {o['how']:<28}" if o else " " * 51)
                  + " | " + (f"{t['requests']:>9,} {t['devices_read']:>9,}" if t else ""))
        so = sum(r["devices_read"] for r in ours)
        st = sum(r["devices_read"] for r in theirs)
        print(f"\ntotal: romakit {sum(r['served'] for r in ours):,} requests, {so:,} devices read, {t_ours:.1f} s; "
              f"naive {sum(r['requests'] for r in theirs):,} requests, {st:,} devices read, {t_theirs:.1f} s "
              f"({st / max(so, 1):.1f}x the devices read)")


if __name__ == "__main__":
    main()
