"""Serve an ASGI app with uvicorn in a background thread, on a socket bound up front.

``HttpServer(app).start()`` binds the socket itself (port 0 picks a free port, read
it back from ``.port``), starts uvicorn on it in a daemon thread and returns once
uvicorn is serving. ``stop()`` asks uvicorn to exit and joins the thread.

Besides serving, the server offers apps one extension in the ASGI scope:
``scope["extensions"]["romakit.abort"]``, an ``async () -> bool`` that resets the
client's TCP connection (RST, no answer at all) and returns once uvicorn has seen
the loss; the app then simply returns. The LINK simulator uses it for its
``reset_rate`` fault. It returns False where the connection cannot be found.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

ABORT_EXTENSION = "romakit.abort"

Scope = dict[str, Any]


class _Server(uvicorn.Server):
    """uvicorn's server, with an Event set once startup is over (served or failed)."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self._ready.set()


class HttpServer:
    """An ASGI app served by uvicorn (h11, asyncio loop) on ``host:port`` in a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *,
                 tls: tuple[str, str] | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        #: (certificate file, key file) to serve HTTPS; None for plain HTTP
        self.tls = tls
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        #: live connections by client address, for the abort extension (event-loop thread only)
        self._transports: dict[tuple[str, int], asyncio.Transport] = {}

    # -- life ------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> HttpServer:
        """Bind, start serving, and return once uvicorn accepts connections."""
        if self._thread is not None:
            raise RuntimeError("HttpServer already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only then
        # (without it, Nagle + delayed ACK cost ~40 ms per keep-alive request)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            http=self._protocol_class(),
            loop="asyncio",
            interface="asgi3",
            proxy_headers=False,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            date_header=False,  # the apps send their own Date (the sandbox's clock may be shifted)
            ssl_certfile=self.tls[0] if self.tls else None,
            ssl_keyfile=self.tls[1] if self.tls else None,
        )
        ready = threading.Event()
        self._server = _Server(config, ready)
        self._thread = threading.Thread(
            target=self._run, name=f"romakit-http-{self.port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout) or not self._server.started:
            self.stop()
            raise RuntimeError(f"HTTP server on {self.host}:{self.port} did not start: {self._error!r}")
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as e:  # SystemExit from a failed startup included
            self._error = e
        finally:
            self._server._ready.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit, join its thread (forcing exit after ``timeout``), close the socket."""
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    # -- plumbing --------------------------------------------------------------------
    def _protocol_class(self) -> type[H11Protocol]:
        transports = self._transports

        class _Protocol(H11Protocol):
            """uvicorn's h11 protocol, remembering its transport by client address."""

            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                peer = transport.get_extra_info("peername")
                if peer:
                    self._romakit_peer = (peer[0], peer[1])
                    transports[self._romakit_peer] = transport

            def connection_lost(self, exc: Exception | None) -> None:
                peer = getattr(self, "_romakit_peer", None)
                if peer is not None and transports.get(peer) is self.transport:
                    del transports[peer]
                super().connection_lost(exc)

        return _Protocol

    async def _asgi(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            client = scope.get("client")

            async def abort() -> bool:
                transport = self._transports.get(tuple(client)) if client else None
                if transport is None:
                    return False
                sock = transport.get_extra_info("socket")
                if sock is not None:  # linger 0: close() sends RST instead of FIN
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                # let uvicorn see the loss, so it neither logs nor writes a 500
                with contextlib.suppress(asyncio.TimeoutError):
                    async with asyncio.timeout(2.0):
                        while (await receive())["type"] != "http.disconnect":
                            pass
                return True

            scope = dict(scope)
            scope["extensions"] = {**(scope.get("extensions") or {}), ABORT_EXTENSION: abort}
        await self.app(scope, receive, send)
