"""Ctrl-C on a sync call: the coroutine on romakit's background loop is cancelled and
given the time to unwind (record what its chunks in flight became) before the
KeyboardInterrupt reaches the caller, who may then close the client under it."""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest

from romakit._runner import loop, run

pytestmark = pytest.mark.timeout(30)


def test_ctrl_c_waits_for_the_cancelled_coroutine_to_unwind():
    running, unwound = threading.Event(), threading.Event()

    async def work() -> None:
        running.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # its clean-up takes a while, on the loop
            unwound.set()
            raise

    main = threading.main_thread().ident

    def press_ctrl_c() -> None:
        assert running.wait(10)
        signal.pthread_kill(main, signal.SIGINT)

    helper = threading.Thread(target=press_ctrl_c)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        run(work())
    helper.join()
    assert unwound.is_set()  # not only asked to stop: stopped, before the caller went on
    assert loop().is_running()  # the loop serves the next call
    assert run(asyncio.sleep(0, result=7)) == 7
