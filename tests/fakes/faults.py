"""A fault-injecting reverse proxy on 127.0.0.1 in front of a fake upstream (issue 8).

Every request is forwarded as it came (method, path, query, headers, body) unless a scripted
`Fault` takes it: a status with the upstream's error envelope or an HTML body (429 + Retry-After,
500, 502, 503), a connection reset (SO_LINGER 0, no answer), a stall held until the client's read
timeout makes it give up, the real body cut in half with a matching Content-Length, a 200 HTML
page (a hibernating instance), or a callback run before forwarding (to change the fake between
pages). A plan is a finite list; every request and what was done with it is recorded.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from prometheus_client.parser import text_string_to_metric_families

from itsm_exporter.config import Config
from itsm_exporter.daemon import ConnectorFactory, Daemon
from itsm_exporter.web import ExporterServer
from tests.fakes.loopback import LoopbackServer

Action = Literal["forward", "status", "reset", "slow", "truncate", "html"]

JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html;charset=UTF-8"
HIBERNATING_PAGE = (
    b"<!DOCTYPE html><html><head><title>Instance Hibernating page</title></head>"
    b"<body><p>Your instance is hibernating. Sign in to wake it up.</p></body></html>"
)
GATEWAY_PAGES = {
    502: b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>",
    503: b"<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>",
}
VIA = "1.0 fault-proxy"
"""Added to every forwarded request, as a proxy must (RFC 9110): tells proxied requests from direct ones."""
MAX_REQUESTS = 600
"""Past this many requests the proxy resets every connection: a connector paging in circles fails fast."""
MAX_HOLD_SECONDS = 10.0
"""A stalled request is released after this long even if the client never gives up: tests stay bounded."""
UPSTREAM_TIMEOUT_SECONDS = 10.0
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
    | {"content-length"}
)
"""Headers that describe one hop (or that http.client and the handler set themselves): never copied."""


@dataclass(frozen=True)
class Fault:
    """What to do with the requests whose path contains `path`: from the `nth` matching one, `times` in a row.

    When two faults with an action want the same request, the earlier one in the plan takes it and
    the later one fires on the next matching request. `before` runs before the request is handled.
    """

    action: Action
    path: str = ""
    nth: int = 1
    times: int = 1
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = JSON_TYPE
    before: Callable[[], None] | None = None


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy and what it was answered with."""

    number: int
    method: str
    path: str
    query: str
    action: Action
    code: str
    """The status the client got, or "error" when it got none (reset, stall): as the exporter counts it."""


def servicenow_envelope(message: str, detail: str | None = None) -> dict[str, Any]:
    """ServiceNow's error body."""
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


def jira_envelope(*messages: str, **by_field: str) -> dict[str, Any]:
    """Jira's error body."""
    return {"errorMessages": list(messages), "errors": by_field}


def status(
    code: int,
    body: Any = None,
    *,
    retry_after: str | None = None,
    headers: Mapping[str, str] | None = None,
    path: str = "",
    nth: int = 1,
    times: int = 1,
    before: Callable[[], None] | None = None,
) -> Fault:
    """An error status with a JSON body (an upstream's envelope), not forwarded upstream."""
    extra = dict(headers or {}) | ({"Retry-After": retry_after} if retry_after is not None else {})
    payload = b"" if body is None else json.dumps(body).encode()
    return Fault("status", path, nth, times, code, payload, tuple(extra.items()), JSON_TYPE, before)


def html_status(code: int, *, path: str = "", nth: int = 1, times: int = 1) -> Fault:
    """A 502/503 as a load balancer or gateway sends it: an HTML page, no envelope."""
    return Fault("status", path, nth, times, code, GATEWAY_PAGES[code], (), HTML_TYPE)


def reset(*, path: str = "", nth: int = 1, times: int = 1, before: Callable[[], None] | None = None) -> Fault:
    """Close the connection with an RST (SO_LINGER 0) without answering."""
    return Fault("reset", path, nth, times, before=before)


def slow(*, path: str = "", nth: int = 1, times: int = 1, before: Callable[[], None] | None = None) -> Fault:
    """Hold the request unanswered until the client gives up (its read timeout) and closes the connection."""
    return Fault("slow", path, nth, times, before=before)


def truncated(*, path: str = "", nth: int = 1, times: int = 1, before: Callable[[], None] | None = None) -> Fault:
    """Forward, then send the first half of the real body with a Content-Length that matches the half."""
    return Fault("truncate", path, nth, times, before=before)


def hibernating(*, path: str = "", nth: int = 1, times: int = 1) -> Fault:
    """200 with an HTML page instead of JSON, as a hibernating ServiceNow developer instance answers."""
    return Fault("html", path, nth, times, 200, HIBERNATING_PAGE, (), HTML_TYPE)


def hook(before: Callable[[], None], *, path: str = "", nth: int = 1, times: int = 1) -> Fault:
    """Run `before`, then forward the request: changes the fake between two page requests."""
    return Fault("forward", path, nth, times, before=before)


class FaultProxy:
    """The proxy; use as a context manager, point the connector at `url`, script it with `plan()`."""

    def __init__(self, upstream_url: str, *, max_requests: int = MAX_REQUESTS) -> None:
        parts = urlsplit(upstream_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream {upstream_url!r} needs a host and a port")
        self._upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self._plan: list[Fault] = []
        self._seen: list[int] = []
        self._fired: list[int] = []
        self._number = 0
        self._max_requests = max_requests
        self.overrun = False
        """True once a request beyond `max_requests` came: the client looped instead of finishing."""
        self._exchanges: list[Exchange] = []
        self.stalled = threading.Event()
        """Set when a `slow` fault starts holding a request: a test can look at the exporter mid-stall."""
        self.released = threading.Event()
        """Set when the client of a stalled request gave up and closed its connection."""
        self._server: LoopbackServer | None = None
        self.url = ""

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_PUT(self) -> None:
                proxy._handle(self)

            def do_DELETE(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read `exchanges` instead."""

        self._server = LoopbackServer(Handler)
        self.url = self._server.url()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.stop()

    # -- script and record ----------------------------------------------------------------------

    def plan(self, *faults: Fault) -> None:
        """Replace the plan; `nth` counts matching requests from now on. No fault: forward everything."""
        with self._lock:
            self._plan = list(faults)
            self._seen = [0] * len(faults)
            self._fired = [0] * len(faults)
            self.stalled.clear()
            self.released.clear()

    def unfired(self) -> list[Fault]:
        """Faults of the plan that have not fired `times` times: a scenario that missed its target."""
        with self._lock:
            return [f for f, fired in zip(self._plan, self._fired, strict=True) if fired < f.times]

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return sorted(self._exchanges, key=lambda e: e.number)

    def codes(self) -> Counter[str]:
        """Requests by the code the client saw, as `itsm_source_api_requests_total{code}` counts them."""
        return Counter(e.code for e in self.exchanges)

    def actions(self, path: str = "") -> list[Action]:
        """What was done with each request whose path contains `path`, in order."""
        return [e.action for e in self.exchanges if path in e.path]

    def forwarded(self) -> int:
        """Requests that reached the upstream."""
        return sum(e.action in ("forward", "truncate") for e in self.exchanges)

    # -- serving --------------------------------------------------------------------------------

    def _select(self, path: str) -> tuple[Fault | None, list[Callable[[], None]]]:
        chosen: Fault | None = None
        hooks: list[Callable[[], None]] = []
        for index, fault in enumerate(self._plan):
            if fault.path not in path:
                continue
            self._seen[index] += 1
            if self._seen[index] < fault.nth or self._fired[index] >= fault.times:
                continue
            if fault.action != "forward" and chosen is not None:
                self._seen[index] -= 1  # taken by an earlier fault: this one fires on the next match
                continue
            self._fired[index] += 1
            if fault.before is not None:
                hooks.append(fault.before)
            if fault.action != "forward":
                chosen = fault
        return chosen, hooks

    def _record(self, number: int, handler: BaseHTTPRequestHandler, action: Action, code: str) -> None:
        parts = urlsplit(handler.path)
        with self._lock:
            self._exchanges.append(Exchange(number, handler.command, parts.path, parts.query, action, code))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        fault: Fault | None = Fault("reset")
        hooks: list[Callable[[], None]] = []
        with self._lock:
            self._number += 1
            number = self._number
            if number > self._max_requests:
                self.overrun = True
            else:
                fault, hooks = self._select(urlsplit(handler.path).path)
        for before in hooks:
            before()
        action: Action = "forward" if fault is None else fault.action
        # Each exchange is recorded before the client can see its outcome, so a test that waited for
        # the client never reads a log that lacks it.
        if fault is None or action in ("forward", "truncate"):
            code, headers, payload = self._forward(handler, body)
            if action == "truncate":
                payload = payload[: len(payload) // 2]
            self._record(number, handler, action, str(code))
            self._send(handler, code, headers, payload)
        elif action == "reset":
            self._record(number, handler, action, "error")
            self._reset(handler)
        elif action == "slow":
            self._record(number, handler, action, "error")
            self._hold(handler)
        else:
            assert fault is not None
            self._record(number, handler, action, str(fault.status))
            headers = [*fault.headers, ("Content-Type", fault.content_type)]
            self._send(handler, fault.status, headers, fault.body)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=UPSTREAM_TIMEOUT_SECONDS)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Via"] = VIA
            connection.request(handler.command, handler.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP | {"server", "date"}]
            return response.status, kept, payload
        finally:
            connection.close()

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        handler.send_response(code)
        for name, text in headers:
            handler.send_header(name, text)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    @staticmethod
    def _reset(handler: BaseHTTPRequestHandler) -> None:
        connection = handler.connection
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile holds a reference that would keep the descriptor open: close it first so the RST goes now.
        handler.rfile.close()
        connection.close()
        handler.close_connection = True

    def _hold(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer nothing until the client closes its end (it timed out), then close ours."""
        self.stalled.set()
        connection = handler.connection
        readable, _, _ = select.select([connection], [], [], MAX_HOLD_SECONDS)
        if readable:
            with contextlib.suppress(OSError):  # a reset from the client is giving up too
                connection.recv(1, socket.MSG_PEEK)
        self.released.set()
        handler.close_connection = True


# -- the exporter under test ----------------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
WAIT_SECONDS = 10.0
"""Upper bound on any wait of a scenario (a sync, a scrape): reached only when something hangs."""


class Waits:
    """The connector's back-off waits, recorded instead of slept."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@dataclass
class FakeClock:
    """The daemon's wall and monotonic time: they move only when the scenario says so."""

    wall: float
    mono: float = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@dataclass
class RunningExporter:
    """A Daemon and its HTTP server on 127.0.0.1:0."""

    daemon: Daemon
    clock: FakeClock
    url: str

    def scrape(self) -> Samples:
        """GET /metrics, which must answer 200, parsed into samples."""
        response = requests.get(f"{self.url}/metrics", timeout=WAIT_SECONDS)
        assert response.status_code == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }

    def start_sync(self, advance: float = 60.0) -> None:
        """One refresh interval later: every source starts its sync in its own thread."""
        self.clock.advance(advance)
        self.daemon.sync_all()

    def finish_sync(self) -> None:
        assert self.daemon.wait_for_syncs(WAIT_SECONDS)

    def sync(self, advance: float = 60.0) -> None:
        self.start_sync(advance)
        self.finish_sync()

    def last_error(self, source: str) -> str | None:
        return next(s.last_error for s in self.daemon.statuses() if s.name == source)


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def requests_by_code(samples: Samples, source: str) -> dict[str, float]:
    """`itsm_source_api_requests_total` of one source, by code."""
    found = {}
    for (name, labels), number in samples.items():
        label = dict(labels)
        if name == "itsm_source_api_requests_total" and label["source"] == source:
            found[label["code"]] = number
    return found


@contextmanager
def running_daemon(config: Config, factory: ConnectorFactory, clock: FakeClock) -> Iterator[RunningExporter]:
    """The daemon with injected clocks and connectors, publishing after every batch; stopped on exit."""
    daemon = Daemon(
        config,
        connector_factory=factory,
        clock=lambda: clock.wall,
        monotonic=lambda: clock.mono,
        progress_interval=0.0,
    )
    server = ExporterServer(("127.0.0.1", 0), daemon)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield RunningExporter(daemon, clock, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        daemon.close(WAIT_SECONDS)
        thread.join(WAIT_SECONDS)


def assert_metrics(running: RunningExporter, proxy: FaultProxy, source: str, up: float) -> None:
    """/metrics answers, shows the source's state, and counts exactly the requests the proxy saw."""
    assert not proxy.overrun, "the connector kept requesting: it pages in circles"
    samples = running.scrape()
    assert sample(samples, "itsm_source_up", source=source) == up
    assert requests_by_code(samples, source) == dict(proxy.codes())
