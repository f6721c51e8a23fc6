"""A LINK endpoint that answers what a test tells it to: a real HTTP server on loopback
(its own thread), for answers the sandbox never gives (malformed ids, escapes in
messages). ``answer(method, path, body) -> (status, json_body)`` decides each answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[str, str, Any], tuple[int, Any]]
PROJECT, INSTANCE = "0123456789abcdef0123456789abcdef", "b6b9a5f0-9e4c-4e6e-8b1d-00000000beef"


class HostileLink:
    """``with HostileLink(answer) as h:`` serves on ``h.endpoint`` until the block ends;
    ``h.requests`` lists ``(method, path, body)`` of what it was sent."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[tuple[str, str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(size) if size else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?", 1)[0]
                outer.requests.append((self.command, path, body))
                status, data = outer.answer(self.command, path, body)
                out = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("X-Request-Id", f"hostile-{len(outer.requests)}")
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_DELETE = do_PUT = _serve  # noqa: N815 - http.server's names

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def env(self) -> dict[str, str]:
        """``ROMAKIT_*`` variables for the command against this server."""
        return {"ROMAKIT_ENDPOINT": self.endpoint, "ROMAKIT_PROJECT_ID": PROJECT, "ROMAKIT_INSTANCE_ID": INSTANCE,
                "ROMAKIT_AK": "hostile-ak", "ROMAKIT_SK": "hostile-sk"}

    def client(self, **options: Any) -> Any:
        """A LinkClient on this server (one try per chunk, no progress bar)."""
        import romakit as rk

        options.setdefault("retry", rk.RetryPolicy(attempts=1))
        options.setdefault("progress", False)
        return rk.LinkClient(self.endpoint, PROJECT, INSTANCE, rk.AkSk("hostile-ak", "hostile-sk"), **options)

    def __enter__(self) -> HostileLink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
