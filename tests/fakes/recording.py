"""What the JSON API fakes (Jira, Zendesk) share: the requests they record, the canned answers a test queues,
and one dispatch (record, then a queued fault or the fake's own answer, written as JSON)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

JSON_TYPE = "application/json;charset=UTF-8"

Answer = tuple[int, Any, dict[str, str], str]
"""(status, payload: JSON-able or a str sent as is, extra headers, content type)."""


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes = b""

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Fault:
    """A canned answer for the next `times` requests whose path contains `path`."""

    status: int
    body: Any
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    content_type: str | None = None
    """None: the fake's own JSON content type."""


class JsonApiFake:
    """Use as a context manager, then point the client at `url`. Subclasses answer in `_answer`; a queued fault
    whose path matches answers first (before authentication, as an upstream's proxy would)."""

    methods: tuple[str, ...] = ("GET",)
    json_type: str = JSON_TYPE
    """The Content-Type of this upstream's JSON answers, as it writes it."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.on_request: Callable[[Self, RecordedRequest], None] | None = None
        """Called with each request, under the fake's lock, before it is answered."""
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read `requests` instead."""

        for method in self.methods:
            setattr(Handler, f"do_{method}", lambda handler, method=method: fake._handle(handler, method))
        self._server = LoopbackServer(Handler)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url()

    def _path(self, path: str) -> str:
        """The path requests are recorded and routed by."""
        return path

    def _received(self, request: RecordedRequest) -> None:
        if self.on_request is not None:
            self.on_request(self, request)

    def _answer(self, request: RecordedRequest) -> Answer:
        raise NotImplementedError

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = RecordedRequest(method, self._path(split.path), parse_qs(split.query), headers, body)
        with self._lock:
            self.requests.append(request)
            self._received(request)
            fault = next((f for f in self.faults if f.path in request.path and f.times > 0), None)
            if fault is not None:
                fault.times -= 1
                status, payload, extra = fault.status, fault.body, fault.headers
                content_type = fault.content_type or self.json_type
            else:
                status, payload, extra, content_type = self._answer(request)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
