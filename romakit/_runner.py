"""Run romakit's async core from synchronous code, Jupyter included.

A notebook's kernel already runs an event loop, so ``asyncio.run`` cannot be used
there. Sync entry points hand their coroutine to one private loop running in a
daemon thread and wait for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The shared background loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            new = asyncio.new_event_loop()
            ready = threading.Event()

            def main() -> None:
                asyncio.set_event_loop(new)
                new.call_soon(ready.set)
                new.run_forever()

            threading.Thread(target=main, name="romakit-loop", daemon=True).start()
            if not ready.wait(10):
                raise RuntimeError("romakit's background event loop did not start")
            _loop = new
        return _loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and return its result (sync callers only)."""
    lp = loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is lp:
        coro.close()
        raise RuntimeError("romakit sync API called from its own event loop; use the async API")
    fut = asyncio.run_coroutine_threadsafe(coro, lp)
    try:
        return fut.result()
    except KeyboardInterrupt:
        fut.cancel()
        raise
