"""A hostile HTTP service on loopback that writes whatever bytes a test says, when it says
(real sockets, plain asyncio, its own thread): a lying ``total``, a body one byte at a
time, 200 MB, 200,000 brackets. Each request goes to the test's ``answer(req, writer)``
coroutine; every request is kept in :attr:`Hostile.requests`; :meth:`Hostile.client` is
a LINK client pointed at it (a fixed token: the service never checks it)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import romakit as rk


@dataclass
class Request:
    """One request as the service read it."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes = b""
    #: bytes of answer the service managed to write (the test's writer adds to it)
    sent: int = 0
    #: set when the client went away before the answer was written out
    aborted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


Answer = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


def head(status: int = 200, length: int | None = None, *, chunked: bool = False) -> bytes:
    """An HTTP/1.1 answer's head (JSON, keep-alive)."""
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json", "Connection: keep-alive"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def send_json(writer: asyncio.StreamWriter, body: Any, status: int = 200) -> None:
    """A whole JSON answer (``body`` as bytes, or a value to encode)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    writer.write(head(status, len(raw)) + raw)
    await writer.drain()


def devices(first: int, n: int) -> list[dict]:
    """``n`` listed devices with ids from ``first``."""
    return [{"id": first + i, "device_name": f"d{first + i}", "node_type": 2, "online_status": 1}
            for i in range(n)]


class Hostile:
    """The service; a context manager (started on enter, stopped on exit)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="hostile-http")
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Hostile:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for writer in self._writers:  # each answer still going ends on its lost connection
                writer.transport.abort()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.wait(handlers, timeout=5) if handlers else None

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def client(self, **options: Any) -> rk.LinkClient:
        """A LINK client on this service (no retries and no progress unless ``options`` say)."""
        options = {"progress": False, "retry": rk.RetryPolicy(attempts=1), **options}
        return rk.LinkClient(self.endpoint, "p" * 32, "i" * 36, rk.Token("t"), **options)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *headers = raw.decode("latin-1").split("\r\n")
                method, target, _ = line.split(" ", 2)
                length = next((int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:")), 0)
                body = await reader.readexactly(length) if length else b""
                url = urlsplit(target)
                req = Request(method, url.path, dict(parse_qsl(url.query)), body)
                self.requests.append(req)
                try:
                    await self.answer(req, writer)
                except ConnectionError:
                    req.aborted = True
                    return
        finally:
            self._writers.discard(writer)
            writer.close()
