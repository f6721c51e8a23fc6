"""The adaptive limiter (romakit.engine.adaptive): its rules on their own (no clock
needed beyond ordering), the engine never exceeding its window, and a run against a
rate-limited sandbox over real sockets, judged from the sandbox's request log."""

from __future__ import annotations

import asyncio

import pytest

import romakit as rk
from romakit.engine import Answer, BatchObserver, run_batch
from romakit.engine import adaptive as ad
from romakit.errors import ApiError


def test_off_until_throttled_then_the_accepted_rate_backed_off():
    async def go() -> ad.AdaptiveLimiter:
        lim = ad.AdaptiveLimiter(8, window=1000.0)  # a long window: every answer counts
        tickets = [await lim.acquire() for _ in range(8)]
        assert lim.rate is None and lim.in_flight == 8
        for t in tickets[:6]:
            lim.release(t, ad.OK)
        lim.release(tickets[6], ad.THROTTLED)
        lim.release(tickets[7], ad.THROTTLED)  # sent before the cut: no second cut
        return lim
    lim = asyncio.run(go())
    assert lim.rate == pytest.approx(0.95 * 6 / 1000.0) or lim.rate == lim.min_rate
    assert lim.throttles == 2 and lim.in_flight == 0 and lim.window == 8


def test_window_halves_on_overload_and_grows_back_to_the_ceiling():
    async def go() -> list[float]:
        lim = ad.AdaptiveLimiter(8)
        seen = []
        lim.release(await lim.acquire(), ad.OVERLOADED)
        seen.append(lim.window)
        lim.release(await lim.acquire(), ad.OVERLOADED)
        seen.append(lim.window)
        for _ in range(200):
            lim.release(await lim.acquire(), ad.OK)
        seen.append(lim.window)
        lim.release(await lim.acquire(), ad.NEUTRAL)  # a timeout: no change
        seen.append(lim.window)
        return seen
    assert asyncio.run(go()) == [4, 2, 8, 8]


def test_bad_arguments_refused():
    with pytest.raises(rk.InputError):
        ad.AdaptiveLimiter(0)
    with pytest.raises(rk.InputError, match="adaptive"):
        rk.BatchOptions(adaptive="yes")


def test_the_engine_keeps_inside_the_window():
    """5xx answers halve the window: the engine never has more in flight than it allows."""
    peak = {"now": 0, "max_after": 0}
    calls = {"n": 0}

    async def send(ids: list, no: int, attempt: int) -> Answer:
        calls["n"] += 1
        peak["now"] += 1
        try:
            if calls["n"] > 4:
                peak["max_after"] = max(peak["max_after"], peak["now"])
            await asyncio.sleep(0)
            if calls["n"] <= 2:
                raise ApiError(503, "APIG.9999", "busy")
            return Answer(success=[(i, None) for i in ids])
        finally:
            peak["now"] -= 1

    res = asyncio.run(run_batch(list(range(1, 201)), operation="force_offline", target="t", send=send,
                                chunk_size=5, concurrency=8, progress=False, observer=BatchObserver(),
                                retry=rk.RetryPolicy(attempts=3, backoff=0.001)))
    assert res.counts["success"] == 200
    assert peak["max_after"] <= 8


def test_adaptive_rate_under_a_sandbox_limit():
    """Every device done, and few 429s: after the first throttle the client sends at
    what the sandbox accepts (the count is bounded by the first burst plus probes)."""
    with rk.sandbox(devices=400, seed=3, mqtt=False, rate_limit=40, retry_after=0.2) as sb:
        ids = [d["id"] for d in sb.fleet.snapshot()]
        with sb.link_client(progress=False, chunk_size=4, concurrency=8) as link:
            sb.link.clear_log()
            res = link.force_offline(ids)
        log = [r for r in list(sb.link.requests) if r[2].endswith("/force-offline")]
    assert res.counts["success"] == len(ids)
    throttled = sum(1 for r in log if r[3] == 429)
    assert len(log) - throttled == 100  # each chunk accepted once
    assert throttled <= 8 + 0.1 * len(log), f"{throttled} of {len(log)} requests answered 429"


# -- the one limiter interface (romakit.engine.limit) ------------------------------------------
def test_limits_take_in_order_and_give_every_permit_back_with_the_signal():
    """A pace and an adaptive window as one limiter: an overloaded answer reaches the
    window, a lost one the pace; a permit whose wait is cancelled gives back what it took."""
    from romakit.engine import limit

    async def go() -> tuple:
        pace = limit.Pace(1000.0)
        window = ad.AdaptiveLimiter(2)
        both = limit.Limits(pace, window)
        t1, t2 = await both.acquire(), await both.acquire()
        assert window.in_flight == 2
        third = asyncio.ensure_future(both.acquire())  # the window is full: it waits
        for _ in range(5):
            await asyncio.sleep(0)
        assert not third.done()
        third.cancel()
        with pytest.raises(asyncio.CancelledError):
            await third
        both.release(t1, limit.OVERLOADED)
        both.release(t2, limit.LOST)
        return pace, window

    pace, window = asyncio.run(go())
    assert window.in_flight == 0 and window.window == 1  # halved by the overload; the lost answer left it
    assert pace.current == 500.0 and pace.slowdowns == 1
    with pytest.raises(rk.InputError, match="signal"):
        limit.Limits().release(1, "fine")


def test_slots_hold_a_gateways_window():
    from romakit.engine import limit

    async def go() -> list[bool]:
        slots = limit.Slots(1)
        seen = []
        async with limit.held(slots):
            waiting = asyncio.ensure_future(slots.acquire())
            for _ in range(5):
                await asyncio.sleep(0)
            seen.append(waiting.done())
        seen.append(await asyncio.wait_for(waiting, 5) == 0)
        return seen

    assert asyncio.run(go()) == [False, True]
    with pytest.raises(rk.InputError):
        limit.Slots(0)
    with pytest.raises(rk.InputError, match="rate"):
        limit.Pace(0)
