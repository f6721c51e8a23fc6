"""The fleet's own behaviour: devices that reconnect by themselves, an instance that
accepts new connections at a limited rate, and the scenarios a trainer switches on.

A dropped device (forced offline, cut by a site outage, or flapping) tries to
reconnect after a seeded delay: a log-normal back-off around ``faults.reconnect_s``
for most, and for a tail (``TAIL_SHARE``) that only notices the lost connection at
its keep-alive × 1.5, that much more. A share ``faults.reconnect_never`` of the
devices (drawn per device from ``faults.seed``) never reconnects, nor does a disabled
one. Attempts queue for the instance, which accepts ``faults.connect_rate`` new
connections per second: a storm of reconnects drains no faster than that.
Every delay, period and rate is in sandbox seconds, ``faults.time_scale`` of which
pass per real second; the time stamps are the real moments things happen.

One thread does it all, from a heap of scenario steps and two arrays sorted by due
time (drops, reconnect attempts): no timer per device, and a force-offline of 100,000
devices costs a few vectorised passes.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from romakit.sim.faults import Faults

log = logging.getLogger(__name__)

#: share of dropped devices that notice only at keep-alive × 1.5 (a half-open connection)
TAIL_SHARE = 0.1
#: spread (sigma of the log) of the back-off around its median
SPREAD = 0.6
#: median reconnect (sandbox s) after an outage or a flap while ``reconnect_s`` is off
SCENARIO_RECONNECT_S = 5.0
#: real seconds between two passes over a backlog the connection rate holds back
_TICK = 0.02
SCENARIOS = ("site_outage", "flapping")


@dataclass
class _Outage:
    rows: np.ndarray
    start: float
    end: float
    active: bool = True


@dataclass
class _Flap:
    rows: np.ndarray
    period: float
    down_s: float
    active: bool = True
    cycles: int = 0


def _or_none(row: int | None) -> int:
    return -1 if row is None else row


def _unit(ids: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """A uniform draw in [0, 1) per id, the same for the same seed, id and salt (splitmix64)."""
    mix = np.uint64((hash((seed, salt)) * 0x9E3779B97F4A7C15) & 0xFFFF_FFFF_FFFF_FFFF)
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) ^ mix
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


class FleetLife:
    """The behaviour of ``fleet`` under ``faults``; see the module docstring. Started at
    once; :meth:`stop` ends its thread."""

    def __init__(self, fleet: Any, faults: Faults) -> None:
        self.fleet, self.faults = fleet, faults
        self._cv = threading.Condition()
        self._att = (np.zeros(0, np.int64), np.zeros(0))  # reconnect attempts (rows, due), by due
        self._drops = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0))  # (rows, due, back after)
        self._free_at = 0.0  # when the instance accepts its next connection
        self._steps: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()
        self._waves = itertools.count()
        self._outages: list[_Outage] = []
        self._flaps: list[_Flap] = []
        self._next: float | None = None
        self._held_back = False  # the last pass left attempts the connection rate holds back
        self._caught_up = 0.0  # the time of the last pass that left nothing due undone
        self._kicked = False
        self._stopped = False
        fleet.on_forced = self._forced
        self._thread = threading.Thread(target=self._run, name="romakit-sim-life", daemon=True)
        self._thread.start()

    # -- what the sandbox asks -----------------------------------------------------------
    def never_returning(self, ids: Iterable[int | str]) -> set[int | str]:
        """Of ``ids`` (LINK ids as ints, IoTDA ids as strings), those that will not come
        back after a force-offline: unknown, disabled, not online now (no client to
        reconnect) unless a reconnect is under way, drawn never to return, or all of them
        while ``reconnect_s`` is off."""
        ids = list(ids)
        fleet, c = self.fleet, self.fleet.columns
        with fleet.lock:
            ints = [i for i in ids if not isinstance(i, str)]
            of_int = dict(zip(ints, c.rows_of_ids(ints), strict=True))
            rows = np.array([of_int[i] if not isinstance(i, str) else _or_none(c.row_of("client_id", i))
                             for i in ids], dtype=np.int64)
            known = rows >= 0
            r = rows[known]
            back = c.col("back_at")[r] > 0
            if self.faults.reconnect_s:
                back |= (c.col("online")[r] == 1) & (c.col("status")[r] == 0) & ~self._never(r)
            returns = np.zeros(len(ids), dtype=bool)
            returns[known] = back
        return {i for i, ok in zip(ids, returns.tolist(), strict=True) if not ok}

    def scenario(self, name: str | None, **params: Any) -> dict[str, Any]:
        """Switch a scenario on (``None``: end every one); see ``SimServer.scenario``."""
        fleet = self.fleet
        with fleet.lock, self._cv:
            now = time.monotonic()
            if name is None:
                self._clear(now)
                return {"name": None}
            if name not in SCENARIOS:
                raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)} or None, got {name!r}")
            out = self._outage(now, **params) if name == "site_outage" else self._flapping(now, **params)
            self._kick()
            return out

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no drop or reconnect is queued (every dropped device that will come
        back is back); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: not len(self._att[0]) and not len(self._drops[0]), timeout)

    def settle(self, timeout: float) -> bool:
        """Wait until everything due by now has happened (scenario steps, drops, and the
        reconnects due, those the connection rate holds back included); False on timeout."""
        t = time.monotonic()
        with self._cv:
            self._kick()
            return self._cv.wait_for(lambda: self._caught_up >= t, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._thread.join(timeout)
        if self.fleet.on_forced == self._forced:
            self.fleet.on_forced = None

    # -- scenarios (under the fleet's lock and ours) ----------------------------------------
    def _scale(self) -> float:
        return float(self.faults.time_scale or 1.0)

    def _outage(self, now: float, *, site: str | None = None, tag: str | None = None, prefix: str | None = None,
                gateway: str | None = None, at: float = 0.0, duration: float) -> dict[str, Any]:
        c = self.fleet.columns
        given = [k for k, v in (("site", site), ("tag", tag), ("prefix", prefix), ("gateway", gateway)) if v]
        if len(given) != 1:
            raise ValueError("site_outage takes exactly one of site=, tag=, prefix=, gateway=")
        if not (isinstance(duration, (int, float)) and duration > 0) or not (isinstance(at, (int, float)) and at >= 0):
            raise ValueError(f"site_outage needs duration > 0 and at >= 0 (sandbox seconds), got {duration!r}, {at!r}")
        alive = np.flatnonzero(c.col("alive"))
        if site or tag:
            wanted = tag or (site if str(site).startswith("site-") else f"site-{site}")
            rows = alive[c.tag_mask(str(wanted), alive)]
        elif prefix:
            rows = alive[np.strings.startswith(c.col("name")[alive], str(prefix))]
        else:
            gw = c.row_of("client_id", gateway)
            if gw is None:
                raise ValueError(f"no gateway {gateway!r} in the fleet")
            rows = np.array([gw], dtype=np.int64)
        gws = rows[c.col("role")[rows] == 1]  # a gateway down takes its children with it
        kids = alive[np.isin(c.col("parent")[alive], gws)]
        rows = np.union1d(rows, kids)
        if not len(rows):
            raise ValueError(f"no device matches {given[0]}={site or tag or prefix or gateway!r}")
        scale = self._scale()
        out = _Outage(rows, now + at / scale, now + (at + duration) / scale)
        self._outages.append(out)
        self._step(out.start, lambda t: self._outage_starts(out, t))
        self._step(out.end, lambda _t: self._outages.remove(out) if out in self._outages else None)
        return {"name": "site_outage", "devices": len(rows), "starts_at": self._stamp(out.start),
                "ends_at": self._stamp(out.end)}

    def _outage_starts(self, out: _Outage, t: float) -> None:
        if not out.active:
            return
        c = self.fleet.columns
        rows = out.rows[c.col("alive")[out.rows]]
        pending = rows[(c.col("back_at")[rows] > 0) & (c.col("back_at")[rows] < out.end)]
        if len(pending):  # reconnects under way wait for the network to be back
            c.col("back_at")[pending] = 0.0
            self._attempt(pending, np.full(len(pending), out.end), self._median())
        self._drop(rows[c.col("online")[rows] == 1], t, None)

    def _flapping(self, now: float, *, product_id: int | str, period: float, down: float | None = None,
                  share: float = 1.0) -> dict[str, Any]:
        c = self.fleet.columns
        pid = int(product_id)
        index = [k for k, p in enumerate(c.products) if p["product_id"] == pid]
        if not index:
            raise ValueError(f"no product {product_id!r} in the fleet")
        if not (isinstance(period, (int, float)) and period > 0) or not 0 < share <= 1:
            raise ValueError(f"flapping needs period > 0 (sandbox seconds) and 0 < share <= 1, got {period!r}, {share!r}")
        down_s = float(down) if down is not None else min(SCENARIO_RECONNECT_S, period / 2)
        alive = np.flatnonzero(c.col("alive"))
        rows = alive[c.col("product")[alive] == index[0]]
        rows = rows[_unit(c.col("id")[rows], self.faults.seed, 2) < share]
        flap = _Flap(rows, period, down_s)
        self._flaps.append(flap)
        self._step(now, lambda t: self._flap_cycle(flap, t))
        return {"name": "flapping", "devices": len(rows), "period_s": float(period), "down_s": down_s}

    def _flap_cycle(self, flap: _Flap, t: float) -> None:
        if not flap.active:
            return
        c = self.fleet.columns
        period = flap.period / self._scale()
        rows = flap.rows[c.col("alive")[flap.rows]]
        phase = _unit(c.col("id")[rows] + flap.cycles, self.faults.seed, 3)
        rng = np.random.default_rng([self.faults.seed & 0xFFFF_FFFF, next(self._waves)])
        back = flap.down_s * rng.uniform(0.5, 1.5, len(rows)) / self._scale()
        self._queue_drops(rows, t + phase * period, back)
        flap.cycles += 1
        self._step(t + period, lambda t2: self._flap_cycle(flap, t2))

    def _clear(self, now: float) -> None:
        c = self.fleet.columns
        for flap in self._flaps:
            flap.active = False
        self._flaps.clear()
        self._drops = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
        outages, self._outages = self._outages, []
        for out in outages:
            out.active = False
            rows = out.rows[c.col("alive")[out.rows] & (c.col("back_at")[out.rows] > now)]
            if len(rows):  # the network is back now: their reconnects start now
                c.col("back_at")[rows] = 0.0
                self._attempt(rows, np.full(len(rows), now), self._median())
        self._kick()

    # -- drops and reconnects (under the fleet's lock and ours) ------------------------------
    def _median(self) -> float:
        return float(self.faults.reconnect_s or SCENARIO_RECONNECT_S)

    def _never(self, rows: np.ndarray) -> np.ndarray:
        share = float(self.faults.reconnect_never or 0.0)
        return _unit(self.fleet.columns.col("id")[rows], self.faults.seed, 1) < share

    def _forced(self, rows: np.ndarray) -> None:
        """The rows a force-offline cut (called under the fleet's lock)."""
        if not self.faults.reconnect_s or not len(rows):
            return
        with self._cv:
            rows = rows[self.fleet.columns.col("back_at")[rows] <= 0]
            self._attempt(rows, np.full(len(rows), time.monotonic()), float(self.faults.reconnect_s))
            self._kick()

    def _attempt(self, rows: np.ndarray, since: np.ndarray, median_s: float) -> None:
        """Schedule the reconnects of ``rows``, dropped at ``since``: a back-off each, none
        for the never-returning and disabled ones, none inside an outage."""
        c = self.fleet.columns
        keep = ~self._never(rows) & (c.col("status")[rows] == 0)
        rows, since = rows[keep], since[keep]
        if not len(rows):
            self._enqueue(rows, since)  # still drops the attempts no longer meant
            return
        rng = np.random.default_rng([self.faults.seed & 0xFFFF_FFFF, next(self._waves)])
        alive_s = np.array([float(v) for v in c.tables["keep_alive"].values])[c.col("keep_alive")[rows]]
        delay = median_s * np.exp(SPREAD * rng.standard_normal(len(rows)))
        delay += np.where(rng.random(len(rows)) < TAIL_SHARE, 1.5 * alive_s, 0.0)
        delay /= self._scale()
        due = since + delay
        for out in self._outages:  # no way back while the network is down
            inside = np.isin(rows, out.rows) & (due >= out.start) & (due < out.end)
            due[inside] = out.end + delay[inside]
        self._enqueue(rows, due)

    def _enqueue(self, rows: np.ndarray, due: np.ndarray) -> None:
        """Reconnects of ``rows`` due at ``due``; the queue keeps only the attempts still
        meant (a row's ``back_at`` is its one due attempt)."""
        c = self.fleet.columns
        c.col("back_at")[rows] = due
        rows_all, due_all = np.concatenate([self._att[0], rows]), np.concatenate([self._att[1], due])
        meant = c.col("back_at")[rows_all] == due_all
        rows_all, due_all = rows_all[meant], due_all[meant]
        order = np.argsort(due_all, kind="stable")
        self._att = (rows_all[order], due_all[order])

    def _queue_drops(self, rows: np.ndarray, due: np.ndarray, back: np.ndarray) -> None:
        r, d, b = (np.concatenate(p) for p in zip(self._drops, (rows, due, back), strict=True))
        order = np.argsort(d, kind="stable")
        self._drops = (r[order], d[order], b[order])

    def _drop(self, rows: np.ndarray, when: float | np.ndarray, back: np.ndarray | None) -> None:
        """Cut the connections of ``rows`` (online ones) at ``when``; they try to reconnect
        ``back`` seconds later (None: with the usual back-off)."""
        c = self.fleet.columns
        when = np.broadcast_to(np.asarray(when, dtype=np.float64), rows.shape)
        ms = self._stamps(when)
        c.col("online")[rows] = 2
        c.col("held")[rows] = False
        for name in ("updated", "active", "conn"):
            c.col(name)[rows] = ms
        if back is None:
            self._attempt(rows, when.copy(), self._median())
        else:
            self._attempt_after(rows, when + back)
        self.fleet.changed()

    def _attempt_after(self, rows: np.ndarray, due: np.ndarray) -> None:
        """Reconnects of ``rows`` due at ``due`` (a flap's short down time)."""
        c = self.fleet.columns
        keep = ~self._never(rows) & (c.col("status")[rows] == 0)
        rows, due = rows[keep], due[keep]
        self._enqueue(rows, due)

    def _admit(self, now: float) -> float | None:
        """Connect the attempts due by ``now`` the connection rate lets through; the time
        the next one is due (None: none queued)."""
        rows, due = self._att
        k = int(np.searchsorted(due, now, side="right"))
        if not k:
            return float(due[0]) if len(due) else None
        c = self.fleet.columns
        cand, cdue = rows[:k], due[:k]
        ok = (c.col("back_at")[cand] == cdue) & c.col("alive")[cand]
        cand, cdue = cand[ok], cdue[ok]
        self._held_back = False
        rate = self.faults.connect_rate
        if rate and len(cand):
            space = 1.0 / (float(rate) * self._scale())
            i = np.arange(len(cand)) * space
            at = i + np.maximum(self._free_at, np.maximum.accumulate(cdue - i))
            m = int(np.searchsorted(at, now, side="right"))
            if m:
                self._free_at = float(at[m - 1]) + space
        else:
            at, m = cdue, len(cand)
        done = cand[:m]
        ms = self._stamps(at[:m])
        c.col("online")[done] = 1
        c.col("held")[done] = True
        c.col("back_at")[done] = 0.0
        for name in ("login", "active", "updated", "conn"):
            c.col(name)[done] = ms
        if m:
            self.fleet.changed()
        self._att = (np.concatenate([cand[m:], rows[k:]]), np.concatenate([cdue[m:], due[k:]]))
        if m < len(cand):
            self._held_back = True
            return max(float(at[m]), now + _TICK)
        return float(due[k]) if k < len(due) else None

    def _stamps(self, when: np.ndarray) -> np.ndarray:
        """Fleet-clock milliseconds of monotonic times ``when``: the two clocks are read
        together here (a moment read earlier would shift every stamp by the time since)."""
        wall, mono = self.fleet.now_ms(), time.monotonic()
        return wall - np.round((mono - when) * 1000).astype(np.int64)

    def _stamp(self, when: float) -> int:
        return int(self._stamps(np.array([when]))[0])

    # -- the thread ------------------------------------------------------------------------
    def _step(self, at: float, fn: Callable[[float], None]) -> None:
        heapq.heappush(self._steps, (at, next(self._seq), fn))
        self._kick()

    def _kick(self) -> None:
        self._kicked = True
        self._cv.notify_all()

    def _pass(self, now: float) -> float | None:
        while self._steps and self._steps[0][0] <= now:
            at, _, fn = heapq.heappop(self._steps)
            fn(at)
        rows, due, back = self._drops
        k = int(np.searchsorted(due, now, side="right"))
        if k:
            c = self.fleet.columns
            r, d, b = rows[:k], due[:k], back[:k]
            ok = c.col("alive")[r] & (c.col("online")[r] == 1) & (c.col("back_at")[r] <= 0)
            self._drops = (rows[k:], due[k:], back[k:])
            self._drop(r[ok], d[ok], b[ok])
        self._held_back = False
        wakes = [self._admit(now)]
        if not self._held_back:
            self._caught_up = now
        if self._steps:
            wakes.append(self._steps[0][0])
        if len(self._drops[1]):
            wakes.append(float(self._drops[1][0]))
        known = [w for w in wakes if w is not None]
        return min(known) if known else None

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and not self._kicked:
                    wait = None if self._next is None else self._next - time.monotonic()
                    if wait is not None and wait <= 0:
                        break
                    self._cv.wait(wait)
                if self._stopped:
                    return
                self._kicked = False
            with self.fleet.lock, self._cv:
                try:
                    self._next = self._pass(time.monotonic())
                except Exception:  # one bad pass must not stop the fleet's life
                    log.exception("sandbox fleet behaviour: a pass failed")
                    self._next = time.monotonic() + 1.0
                self._cv.notify_all()
