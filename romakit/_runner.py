"""Run romakit's async core from synchronous code, Jupyter included.

A notebook's kernel already runs an event loop, so ``asyncio.run`` cannot be used
there. Sync entry points hand their coroutine to one private loop running in a
daemon thread and wait for it. :func:`twin` makes such an entry point of an async
client's method; :func:`forward` and :func:`mirror` show its settings on the sync client.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

T = TypeVar("T")
C = TypeVar("C")
P = ParamSpec("P")

#: seconds a Ctrl-C waits for the cancelled coroutine to unwind
UNWIND = 5.0

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
    tasks: list[asyncio.Task] = []
    abandoned, ended = threading.Event(), threading.Event()

    async def tracked() -> T:
        tasks.append(asyncio.current_task())  # type: ignore[arg-type]  # always in a task here
        try:
            if abandoned.is_set():  # Ctrl-C came before it started: it never runs
                coro.close()
                raise asyncio.CancelledError
            return await coro
        finally:
            ended.set()

    fut = None
    try:
        fut = asyncio.run_coroutine_threadsafe(tracked(), lp)
        return fut.result()
    except KeyboardInterrupt:
        # Ctrl-C (even while the call was being handed to the loop): cancel the coroutine
        # and let it unwind before the caller goes on (and, say, closes the client under
        # it): a run records its chunks in flight as sent, not as refused by a closed
        # client. A second Ctrl-C stops the wait.
        abandoned.set()
        if fut is not None:
            fut.cancel()  # cancels the task (once: a second cancel would cut its clean-up short)
        elif tasks:  # the Ctrl-C came inside run_coroutine_threadsafe, after the task started
            lp.call_soon_threadsafe(tasks[0].cancel)
        if tasks:
            ended.wait(UNWIND)
        raise


@overload
def twin(method: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]) -> Callable[Concatenate[Any, P], T]: ...


@overload
def twin(method: Callable[Concatenate[Any, P], T]) -> Callable[Concatenate[Any, P], T]: ...


def twin(method: Callable[..., Any]) -> Callable[..., Any]:
    """The sync twin of an async client's ``method``: the same call on the wrapped client
    (``self._async``), a coroutine run to its end on the background loop; with the
    method's name, docstring and signature."""
    name = method.__name__
    is_async = inspect.iscoroutinefunction(method)

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = getattr(self._async, name)(*args, **kwargs)
        return run(out) if is_async else out

    return call


def forward(name: str, doc: str | None = None, *, holder: str = "_async") -> property:
    """A read-only property showing ``self.<holder>.<name>`` (a twin's settings and state)."""
    def get(self: Any) -> Any:
        return getattr(getattr(self, holder), name)

    return property(get, doc=doc)


def mirror(core: type, *names: str, docs: Mapping[str, str] | None = None) -> Callable[[type[C]], type[C]]:
    """Class decorator: the sync twin of ``core`` shows each of ``names`` read-only
    (:func:`forward`, documented by ``docs[name]`` or by ``core``'s own attribute)."""
    def decorate(cls: type[C]) -> type[C]:
        for name in names:
            doc = (docs or {}).get(name) or getattr(inspect.getattr_static(core, name, None), "__doc__", None)
            setattr(cls, name, forward(name, doc))
        return cls

    return decorate


#: a required parameter of :func:`constructor_signature`
REQUIRED = inspect.Parameter.empty


def constructor_signature(positional: Sequence[tuple[str, Any]], settings: Any) -> inspect.Signature:
    """``(self, <positional>, *, <each field of the settings dataclass with its default>)``:
    what ``help()`` shows of a client whose keywords are its settings' fields.
    ``positional``: ``(name, default)`` pairs (``inspect.Parameter.empty``: required)."""
    import dataclasses

    P = inspect.Parameter
    names = {n for n, _ in positional}
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    params += [P(n, P.POSITIONAL_OR_KEYWORD, default=d) for n, d in positional]
    params += [P(f.name, P.KEYWORD_ONLY, default=f.default) for f in dataclasses.fields(settings) if f.name not in names]
    return inspect.Signature(params, return_annotation=None)
