"""Following forced devices: what each cycle of ``res.follow()`` costs the service, against
the devices still offline, side by side in one run with the previous follow (before the
devices that left the offline set counted as back: it read them, by the online listing
once they were many) and a naive follow that lists the whole fleet every cycle; the same
fleet, the same return schedule.

    .venv/bin/python benchmarks/bench_follow.py [--fleet 300000] [--forced 100000] [--never 0.01]
                                                [--product NAME]

The sandbox runs in this process so the benchmark can play the devices' MQTT clients:
after every cycle half of the forced devices still offline log in again (a share
``--never`` never does), so the pending set shrinks 100,000 -> 50,000 -> ... -> the
never-returning devices. ``--product`` forces only that product's devices (the offline
set is then listed for that product alone). Per cycle it prints the forced devices still
offline, the fleet's offline set, and for each follow the requests and the devices the
sandbox served (every listed item and every ShowDevice, counted by the sandbox), then
the totals, the largest ratio of devices served to devices still offline, and wall time.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

import romakit as rk
from romakit.results.follow import Follow, forced_times
from romakit.results.polling import PAGE, Poll, _ms, _status


def come_back(fleet, ids) -> None:
    now = int(time.time() * 1000)
    with fleet.lock:
        rows = [r for r in fleet.columns.rows_of_ids(list(ids)) if r >= 0]
        fleet.columns.col("login")[rows] = now
        fleet.columns.col("online")[rows] = 1
        fleet._rev += 1


def offline_now(fleet) -> int:
    with fleet.lock:
        return int((fleet.columns.col("online")[: len(fleet)] == 2).sum())


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


class Previous(Poll):
    """The follow's cycle before this change (commit aebe2f2), kept as the baseline: the
    devices that left the offline set were read (one by one, or the whole online
    listing when they were many) to learn their login time."""

    _online_total: int | None = None

    async def _listing(self, status: str, wanted: set[Any]) -> tuple[dict[Any, tuple[str, int | None]], int, int]:
        frame = await self._call("devices", online_status=status)
        n = len(frame)
        found: dict[Any, tuple[str, int | None]] = {}
        if n:
            ids = frame["id"].tolist()
            st = frame["online_status"].astype(object).tolist()
            logins = frame["last_login_datetime"].tolist()
            for k, i in enumerate(ids):
                if i in wanted:
                    found[i] = (_status(st[k]), _ms(logins[k]))
        if status == "offline":
            self._offline_total = n
        else:
            self._online_total = n
        return found, -(-max(n, 1) // PAGE), n

    async def cycle(self, no: int) -> None:
        if not self.pending:
            return
        now_ms = int(time.time() * 1000)
        pending = list(self.pending)
        at = len(pending)
        requests = devices_read = 0
        offline_pages = -(-(self._offline_total if self._offline_total is not None else at) // PAGE)
        if at * self.show_cost <= max(offline_pages, 1) * PAGE:
            requests += await self._show(pending, now_ms)
            devices_read += at
            how = "by id"
        else:
            found, req, n = await self._listing("offline", set(pending))
            requests += req
            devices_read += n
            left = []
            for did in pending:
                if did in found:
                    self._judge(did, *found[did], now_ms)
                else:
                    left.append(did)
            how = "offline listing"
            if left:
                if self._online_total is None:
                    probe = await self._call("device_page", 0, 1, online_status="online")
                    self._online_total = int(probe.get("total") or 0) if isinstance(probe, Mapping) else None
                    requests += 1
                    devices_read += 1
                online_pages = -(-(self._online_total if self._online_total is not None else 10**9) // PAGE)
                if len(left) * self.show_cost <= online_pages * PAGE:
                    requests += await self._show(left, now_ms)
                    devices_read += len(left)
                    how += " + by id"
                else:
                    on, req, n = await self._listing("online", set(left))
                    requests += req
                    devices_read += n
                    how += " + online listing"
                    for did in left:
                        if did in on:
                            self._judge(did, *on[did], now_ms)
                    rest = [d for d in left if d in self.pending]
                    if rest:
                        requests += await self._show(rest, now_ms)
                        devices_read += len(rest)
        self.reads.cycles.append({"cycle": no, "at": now_ms / 1000, "pending": at, "requests": requests,
                                  "devices_read": devices_read, "how": how})


async def naive(forced: dict, reader, schedule: Schedule, sb, cycles: int) -> list[dict]:
    """Lists the whole fleet each cycle and judges the same way."""
    rows = []
    pending = set(forced)
    for no in range(cycles):
        if not pending:
            break
        before, served = len(sb.link.requests), sb.link.devices_served
        offline = offline_now(sb.fleet)
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
        rows.append({"cycle": no, "pending": at, "offline": offline, "requests": len(sb.link.requests) - before,
                     "served": sb.link.devices_served - served, "how": "whole fleet"})
        schedule.step()
    return rows


def follow_with(kind: type[Poll], forced: dict, link, sb, schedule: Schedule, cycles: int) -> tuple[list[dict], Poll]:
    """Run a follow with ``kind``'s cycle; per cycle, what the sandbox served."""
    marks: list[tuple[int, int, int]] = [(len(sb.link.requests), sb.link.devices_served, offline_now(sb.fleet))]

    async def go() -> Poll:  # run_follow's loop, with ``kind``'s cycle and no wait between cycles
        state = kind(forced, link.aio)
        for no in range(cycles):
            if not state.pending:
                break
            await state.cycle(no)
            schedule.step()
            marks.append((len(sb.link.requests), sb.link.devices_served, offline_now(sb.fleet)))
        return state

    state = rk._runner.run(go())
    rows = []
    for k, r in enumerate(state.reads.cycles):
        (q0, s0, off), (q1, s1, _) = marks[k], marks[k + 1]
        rows.append({**r, "offline": off, "requests": q1 - q0, "served": s1 - s0})
    return rows, state


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fleet", type=int, default=300_000)
    ap.add_argument("--forced", type=int, default=100_000)
    ap.add_argument("--never", type=float, default=0.01)
    ap.add_argument("--product", default=None, help="force only the online devices of this product")
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    with rk.sandbox(devices=a.fleet, seed=a.seed) as sb:
        link = sb.link_client(progress=False, concurrency=8)
        filters = {"online_status": "online"} | ({"product_name": a.product} if a.product else {})
        online = link.devices(**filters)["id"].astype(int).to_numpy()
        forced_n = min(a.forced, len(online))
        print(f"fleet {len(sb.fleet):,} devices, {offline_now(sb.fleet):,} offline, {len(online):,} online"
              f"{' of ' + a.product if a.product else ''}; forcing {forced_n:,} of them in each run")
        results = {}
        cycles = math.ceil(math.log2(max(forced_n, 2))) + 3
        for name in ("romakit", "previous", "naive"):
            ids = [int(i) for i in rng.choice(online, forced_n, replace=False)]
            never = {int(i) for i in rng.choice(ids, int(forced_n * a.never), replace=False)}
            res = link.force_offline(ids, rollout=False, chunk_size=1000)
            assert res.counts["success"] == forced_n, res.counts
            schedule = Schedule(sb.fleet, ids, never)
            forced = forced_times(res)
            t0 = time.perf_counter()
            if name == "naive":
                rows = rk._runner.run(naive(forced, link.aio, schedule, sb, cycles))
            else:
                rows, state = follow_with(Poll if name == "romakit" else Previous, forced, link, sb, schedule, cycles)
                fol = Follow.from_state(state, res, 3600)
                assert set(fol.stragglers()["device_id"]) == never, name
            results[name] = (rows, time.perf_counter() - t0)
            come_back(sb.fleet, ids)  # the next run starts from the same fleet
    show(results)


def show(results: dict[str, tuple[list[dict], float]]) -> None:
    names = list(results)
    n = max(len(r) for r, _ in results.values())
    print(f"\n{'cycle':>5} {'pending':>9} {'offline':>9} | "
          + " | ".join(f"{nm + ' req':>12} {'served':>9}" for nm in names) + " | romakit read")
    for k in range(n):
        first = next(r[k] for r, _ in results.values() if k < len(r))
        cells = []
        for nm in names:
            r = results[nm][0]
            cells.append(f"{r[k]['requests']:>12,} {r[k]['served']:>9,}" if k < len(r) else " " * 22)
        ours = results["romakit"][0]
        how = ours[k]["how"] if k < len(ours) else ""
        print(f"{k:>5} {first['pending']:>9,} {first['offline']:>9,} | " + " | ".join(cells) + f" | {how}")
    print()
    base = sum(r["served"] for r in results["romakit"][0])
    for nm in names:
        rows, t = results[nm]
        served = sum(r["served"] for r in rows)
        worst = max(r["served"] / max(r["pending"], 1) for r in rows)
        over = max(r["served"] / max(r["offline"], 1) for r in rows)
        print(f"{nm:<9} {sum(r['requests'] for r in rows):>7,} requests, {served:>10,} devices served "
              f"({served / max(base, 1):5.1f}x romakit's), at most {worst:6.1f} served per device still offline "
              f"and {over:4.2f} per device in the offline set in a cycle; {t:5.1f} s")


if __name__ == "__main__":
    main()
