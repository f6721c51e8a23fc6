"""The event_id correlator on its own: no broker, no paho, no sockets.

Payloads are built with the envelope module exactly as the platform would send them and
fed to :meth:`Correlator.receive`, from the test's thread or from another one (as paho's
network thread does).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from romakit import outcomes as oc
from romakit.errors import TransportError
from romakit.iotda import envelope as env
from romakit.iotda.correlator import COUNTERS, Correlator, MalformedAnswer, call_on
from romakit.iotda.recorder import (
    DUPLICATE,
    LATE,
    MALFORMED,
    MATCHED,
    NOTIFY,
    OTHER,
    UNMATCHED,
    EventRecorder,
)

pytestmark = pytest.mark.timeout(30)

GW = "gw-1"


def answer(eid: str, ok: list[str], failed: tuple[str, ...] = (), event_type: str = env.DELETE_RESPONSE) -> bytes:
    paras = {"successful_devices": ok,
             "failed_devices": [{"device_id": d, "error_code": "IOTDA.014016", "error_msg": "no"} for d in failed]}
    return env.build(GW, event_type, paras, event_id=eid)


def make() -> Correlator:
    c = Correlator(EventRecorder(), name=GW)
    c.link_up()
    return c


def matches(c: Correlator) -> list[str]:
    return [r.match for r in c.recorder.records()]


def test_an_answer_resolves_its_request_and_counts_once() -> None:
    async def main() -> None:
        c = make()
        fut = c.expect("e1", env.DELETE_REQUEST, env.DELETE_RESPONSE)
        assert fut is not None and c.pending == 1
        c.receive(answer("e1", ["a", "b"], failed=("c",)))
        ev = await c.answer("e1", fut, 1.0, env.DELETE_REQUEST)
        assert ev.event_id == "e1" and [d["device_id"] for d in ev.successful] == ["a", "b"]
        assert [(f.device_id, f.error_code) for f in ev.failed] == [("c", "IOTDA.014016")]
        # the same answer again: a duplicate, never a second resolution
        c.receive(answer("e1", ["a", "b"]))
        stats = c.stats()
        assert stats["answered"] == 1 and stats["duplicates"] == 1 and stats["pending"] == 0
        assert stats["peak_pending"] == 1
        assert matches(c) == [MATCHED, DUPLICATE]

    asyncio.run(main())


def test_each_of_many_pending_requests_gets_its_own_answer() -> None:
    async def main() -> None:
        c = make()
        futs = {f"e{i}": c.expect(f"e{i}", env.DELETE_REQUEST, env.DELETE_RESPONSE) for i in range(5)}
        for i in reversed(range(5)):  # answers out of order
            c.receive(answer(f"e{i}", [f"dev-{i}"]))
        for eid, fut in futs.items():
            ev = await c.answer(eid, fut, 1.0, env.DELETE_REQUEST)
            assert ev.successful[0]["device_id"] == f"dev-{eid[1:]}"
        assert c.stats()["peak_pending"] == 5 and c.stats()["answered"] == 5

    asyncio.run(main())


def test_timeout_then_a_late_answer() -> None:
    async def main() -> None:
        c = make()
        fut = c.expect("e1", env.DELETE_REQUEST, env.DELETE_RESPONSE)
        with pytest.raises(TransportError) as info:
            await c.answer("e1", fut, 0.05, env.DELETE_REQUEST)
        err = info.value
        assert err.sent and err.code == oc.TIMEOUT and err.event_id == "e1"
        assert env.DELETE_RESPONSE in str(err)
        c.receive(answer("e1", ["a"]))
        stats = c.stats()
        assert stats["timeouts"] == 1 and stats["late"] == 1 and stats["answered"] == 0 and stats["pending"] == 0
        assert matches(c) == [LATE]

    asyncio.run(main())


def test_unknown_event_ids_and_other_events_are_recorded_not_matched() -> None:
    c = make()
    c.receive(answer("nobody-asked", ["a"]))
    c.receive(env.build(GW, env.DELETE_NOTIFY, {"devices": [{"device_id": "a"}], "version": 3}))
    c.receive(env.build(GW, "something_new", {}))
    ota = b'{"object_device_id": "gw-1", "services": [{"service_id": "$ota", "event_type": "version_query", "paras": {}}]}'
    c.receive(ota)
    stats = c.stats()
    assert stats["unmatched"] == 1 and stats["notifies"] == 1 and stats["other"] == 2
    assert matches(c) == [UNMATCHED, NOTIFY, OTHER, OTHER]


def test_malformed_answers_end_their_request_at_once() -> None:
    async def main() -> None:
        c = make()
        # unreadable as a whole, but it still names the waiting request
        f1 = c.expect("e1", env.DELETE_REQUEST, env.DELETE_RESPONSE)
        c.receive(b'{"services": [{"event_id": "e1", "paras": {"successful_devices": [')
        with pytest.raises(MalformedAnswer) as info:
            await c.answer("e1", f1, 5.0, env.DELETE_REQUEST)
        assert info.value.event_id == "e1" and info.value.code == oc.MALFORMED and info.value.sent
        # readable, but the wrong kind of answer
        f2 = c.expect("e2", env.DELETE_REQUEST, env.DELETE_RESPONSE)
        c.receive(answer("e2", ["a"], event_type=env.ADD_RESPONSE))
        with pytest.raises(MalformedAnswer, match="expected delete_sub_device_response"):
            await c.answer("e2", f2, 5.0, env.DELETE_REQUEST)
        # a response with neither list
        f3 = c.expect("e3", env.DELETE_REQUEST, env.DELETE_RESPONSE)
        c.receive(env.build(GW, env.DELETE_RESPONSE, {}, event_id="e3"))
        with pytest.raises(MalformedAnswer):
            await c.answer("e3", f3, 5.0, env.DELETE_REQUEST)
        # garbage that names nobody
        c.receive(b"\x00\xffgarbage")
        c.receive(b"[1, 2]")
        stats = c.stats()
        assert stats["malformed"] == 5 and stats["answered"] == 0 and stats["timeouts"] == 0
        assert matches(c) == [MALFORMED] * 5
        assert all(r.problem for r in c.recorder.records())
        # an answered-as-malformed id that comes again, readable now, is a duplicate
        c.receive(answer("e1", ["a"]))
        assert c.stats()["duplicates"] == 1

    asyncio.run(main())


def test_link_down_fails_every_waiting_request_and_refuses_new_ones() -> None:
    async def main() -> None:
        c = make()
        futs = [c.expect(f"e{i}", env.DELETE_REQUEST, env.DELETE_RESPONSE) for i in range(3)]
        assert c.link_down("the MQTT link dropped (test)") == 3
        for i, fut in enumerate(futs):
            with pytest.raises(TransportError) as info:
                await c.answer(f"e{i}", fut, 5.0, env.DELETE_REQUEST)
            assert info.value.code == oc.CONNECTION_LOST and info.value.sent
            assert "link dropped (test)" in str(info.value) and info.value.event_id == f"e{i}"
        assert c.expect("e9", env.DELETE_REQUEST, env.DELETE_RESPONSE) is None  # down: not registered
        c.receive(answer("e0", ["a"]))  # paho re-sent it after reconnecting: the answer is late
        stats = c.stats()
        assert stats["link_lost"] == 3 and stats["late"] == 1 and stats["pending"] == 0
        c.link_up()
        assert c.expect("e9", env.DELETE_REQUEST, env.DELETE_RESPONSE) is not None

    asyncio.run(main())


def test_withdrawn_and_cancelled_requests() -> None:
    async def main() -> None:
        c = make()
        c.expect("never-sent", env.DELETE_REQUEST, env.DELETE_RESPONSE)
        c.withdraw("never-sent")
        c.receive(answer("never-sent", ["a"]))  # forgotten, not remembered as given up
        fut = c.expect("e1", env.DELETE_REQUEST, env.DELETE_RESPONSE)
        task = asyncio.ensure_future(c.answer("e1", fut, 5.0, env.DELETE_REQUEST))
        await asyncio.sleep(0)  # one turn of the loop: the task runs until it waits for its answer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        c.receive(answer("e1", ["a"]))
        assert matches(c) == [UNMATCHED, LATE] and c.stats()["pending"] == 0

    asyncio.run(main())


def test_answers_from_another_thread_resolve_on_the_awaiting_loop() -> None:
    """paho delivers on its own thread; each future must be settled on its own loop's thread."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    runner.start()
    c = make()
    settled_on: list[str] = []

    async def wait_for(eid: str) -> env.DownEvent:
        fut = c.expect(eid, env.DELETE_REQUEST, env.DELETE_RESPONSE)
        assert fut is not None
        fut.add_done_callback(lambda _f: settled_on.append(threading.current_thread().name))
        return await c.answer(eid, fut, 5.0, env.DELETE_REQUEST)

    try:
        waiting = [asyncio.run_coroutine_threadsafe(wait_for(f"e{i}"), loop) for i in range(20)]
        deadline = 100
        while c.pending < 20 and deadline:  # every request registered before its answer comes
            threading.Event().wait(0.01)
            deadline -= 1
        feeders = [threading.Thread(target=c.receive, args=(answer(f"e{i}", [f"d{i}"]),), name=f"feeder-{i}")
                   for i in range(20)]
        for t in feeders:
            t.start()
        for t in feeders:
            t.join()
        results = [w.result(timeout=5) for w in waiting]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()
    assert [r.successful[0]["device_id"] for r in results] == [f"d{i}" for i in range(20)]
    assert settled_on == ["test-loop"] * 20
    assert c.stats()["answered"] == 20


def test_a_closed_loop_is_no_error_and_counters_are_complete() -> None:
    loop = asyncio.new_event_loop()
    fut = loop.create_future()
    loop.close()
    call_on(loop, fut, "late")  # nobody waits any more: quietly nothing
    assert not fut.done()
    assert set(make().stats()) == {*COUNTERS, "pending"}


def test_correlation_loads_without_paho() -> None:
    code = ("import sys, romakit.iotda.correlator, romakit.iotda.checks, romakit.iotda.chunks\n"
            "assert not [m for m in sys.modules if m.startswith('paho')], 'paho was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
