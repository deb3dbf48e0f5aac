"""An HTTP server on 127.0.0.1 (a free port), served from a daemon thread: the lifecycle every fake shares."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

POLL_SECONDS = 0.05
"""How often serve_forever looks for shutdown: stopping a fake takes at most this long."""


class LoopbackServer:
    """Started on construction; `stop()` shuts it down, closes its socket and joins its thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, args=(POLL_SECONDS,), daemon=True)
        self._thread.start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port nobody listens on: a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


JsonAnswer = Callable[[str, dict[str, str]], tuple[bytes, Mapping[str, str]]]
"""(last path segment, query parameters) -> (JSON body, extra headers)."""


def json_get_handler(answer: JsonAnswer) -> type[BaseHTTPRequestHandler]:
    """A handler answering every GET with `answer`'s JSON body: what a read-only API stand-in needs (bench/)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            body, headers = answer(parts.path.rsplit("/", 1)[-1], dict(parse_qsl(parts.query, keep_blank_values=True)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler
