"""The HTTP/1.1 server under the endpoints, bounded against hostile and broken clients (issue 29).

One event loop thread holds every connection: an idle or half-sent one costs a few kilobytes, never a
thread. h11 frames the requests; a complete request goes to a small fixed pool of handler threads, so
neither a slow client nor a slow handler (bcrypt) blocks the loop. What is ours is the connection policy
(docs/operations.md): a deadline for the whole request (TLS handshake included), an idle timeout between
keep-alive requests, caps on the request line, the head and the body, and a cap on open connections.
TLS runs on `ssl.MemoryBIO`s with the context in force when the connection arrived: asyncio's own TLS
transport allocates a 256 KiB read buffer per connection (sslproto.py), and 9,000 idle clients held
1.5 GB in a trial; here a TLS connection costs its OpenSSL state, and nothing before its first byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final

import h11

log = logging.getLogger(__name__)

MAX_REQUEST_LINE: Final = 8 * 1024
"""Bytes of a request line (method, target, version): 414 beyond, as Go's and nginx's default of 8 KiB."""
MAX_HEAD_BYTES: Final = 16 * 1024
"""Bytes of a request line and headers together: 431 beyond (h11 caps a head still arriving, `_accept_head`
one that came in a single read)."""
MAX_HEADERS: Final = 100
"""Header fields in one request: 431 beyond (Go's net/textproto and nginx have no count, Apache 100)."""
HANDLER_THREADS: Final = 4
"""Handlers read a cached snapshot (a scrape is a dictionary lookup once rendered); bcrypt is serialized
in BasicAuth anyway. Four threads keep a scrape answered while others render or check a password."""
FD_RESERVE: Final = 64
"""File descriptors left to the store, the upstream connections and the logs when capping connections."""
TLS_READ_SIZE: Final = 64 * 1024
ACCEPT_BATCH: Final = 100
"""Connections accepted per turn of the loop (asyncio's default), at most a sixteenth of the cap. Each turn
then reads what the accepted ones sent: with 4,096 accepts per turn, a flood stalled the loop 0.7 s and
evicted a scraper's connection at the cap before its request, sent at once, was read (bench/hostile.py).
A sixteenth leaves a new connection sixteen turns (a TLS handshake and a request take a few) before it is
the oldest."""


@dataclass(frozen=True)
class Limits:
    """The limits users tune, from the `--web.*` flags (defaults in docs/operations.md)."""

    max_connections: int = 4096
    """Open connections at most; at the cap, the oldest connection that has no request being answered is
    closed to make room (a flood of idle clients evicts itself, not the scraper)."""
    read_timeout: float = 10.0
    """Seconds for a whole request, from its first byte (or the connection's start, TLS handshake
    included) to the end of its body: a client that trickles its headers is cut off (slowloris)."""
    idle_timeout: float = 120.0
    """Seconds a keep-alive connection may wait for its next request: above the usual scrape intervals
    (15 s to 1 m), so Prometheus keeps its connection, below what lets idle clients pile up."""


DEFAULT_LIMITS: Final = Limits()


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    """Lower-case names, in the order received."""
    body: bytes = b""
    client: str = "unknown"

    def header(self, name: str) -> str | None:
        """The field's values joined by commas (RFC 9110, 5.3), or None when absent."""
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    """Close the connection after this answer."""


def text_response(status: int, text: str, headers: tuple[tuple[str, str], ...] = (), close: bool = False) -> Response:
    return Response(status, text.encode(), (("Content-Type", "text/plain; charset=utf-8"), *headers), close)


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as Go's runtime does) and return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.debug("cannot raise the open file limit", extra={"soft": soft, "hard": hard, "error": str(error)})
    return soft


class HTTPServer:
    """Binds at construction (an unusable address raises OSError); `serve_forever` runs the loop in the calling
    thread until `shutdown`. Subclasses answer requests (`handle`) and may set TLS and extra headers."""

    request_queue_size = 4096
    """The listen backlog, as Go's listeners take it (net.core.somaxconn, which caps it: 4096 on current
    kernels). A SYN that finds the queue full waits out the kernel's 1 s retry: socketserver's 5 gave 16
    concurrent scrapes a p99 of 1 s (bench/burst.py), and 128 still overflowed while a client opened
    thousands of connections (bench/hostile.py, BENCHMARKS.md). Accepting is cheap here, so a deep queue
    only absorbs bursts."""

    server_version = "itsm-exporter"

    def __init__(self, address: tuple[str, int], limits: Limits = DEFAULT_LIMITS) -> None:
        # Not socket.create_server: its OSError rewrites strerror, and "cannot listen" logs the kernel's words.
        self.socket = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(self.request_queue_size)
        except OSError:
            self.socket.close()
            raise
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self.server_port = int(self.server_address[1])
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        fd_cap = soft - FD_RESERVE if soft != resource.RLIM_INFINITY else limits.max_connections
        if limits.max_connections > fd_cap:
            log.warning(
                "connection cap lowered to the open file limit",
                extra={"max_connections": limits.max_connections, "lowered_to": fd_cap, "nofile": soft},
            )
            limits = Limits(max(fd_cap, 1), limits.read_timeout, limits.idle_timeout)
        self.limits = limits
        self.executor = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="http-handler")
        self._connections: dict[_Connection, None] = {}
        self._waiting: dict[_Connection, None] = {}
        """Connections with no request being answered, oldest first: the ones evicted at the cap."""
        self._at_cap = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._shutdown_requested = threading.Event()
        self._serving = threading.Event()
        self._stopped = threading.Event()

    # What subclasses provide.

    def handle(self, request: Request) -> Response:
        """Answer one complete request; runs on a handler thread."""
        raise NotImplementedError

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for a connection arriving now; None serves plain HTTP."""
        return None

    def extra_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers added to every answer, the server's own error answers included."""
        return ()

    def body_limit(self, method: str, target: str) -> int:
        """Bytes of body this request may carry: 413 beyond. No body by default."""
        return 0

    # Life cycle.

    def serve_forever(self) -> None:
        """Serve until `shutdown` is called from another thread."""
        self._serving.set()
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_log_loop_error)
        try:
            stop = asyncio.Event()
            with self._lock:
                self._loop, self._stop = loop, stop
            if self._shutdown_requested.is_set():
                stop.set()
            # asyncio takes `backlog` both as listen()'s queue and as the accepts per turn: the batch for the
            # latter, then the deep queue again for the kernel.
            listener = loop.run_until_complete(
                loop.create_server(
                    lambda: _Connection(self),
                    sock=self.socket,
                    backlog=min(ACCEPT_BATCH, max(1, self.limits.max_connections // 16)),
                )
            )
            self.socket.listen(self.request_queue_size)
            loop.run_until_complete(stop.wait())
            listener.close()
            for connection in list(self._connections):
                connection.close()
            loop.run_until_complete(asyncio.sleep(0))  # let the transports run their close callbacks
        finally:
            with self._lock:
                self._loop = None
            loop.close()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop `serve_forever` and wait until it has returned."""
        self._shutdown_requested.set()
        with self._lock:
            loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        if self._serving.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # Connection bookkeeping, on the loop thread.

    def _admit(self, connection: _Connection) -> bool:
        """Make room for a new connection by closing the oldest waiting one; False when there is none."""
        if len(self._connections) >= self.limits.max_connections:
            if not self._at_cap:
                self._at_cap = True
                log.warning("connection cap reached", extra={"max_connections": self.limits.max_connections})
            if not self._waiting:
                return False
            oldest = next(iter(self._waiting))
            log.debug("connection evicted at the cap", extra={"client": oldest.client})
            oldest.close()
            self._forget(oldest)
        elif self._at_cap and len(self._connections) < self.limits.max_connections // 2:
            self._at_cap = False
            log.info("connections back under the cap", extra={"open": len(self._connections)})
        self._connections[connection] = None
        self._waiting[connection] = None
        return True

    def _forget(self, connection: _Connection) -> None:
        self._connections.pop(connection, None)
        self._waiting.pop(connection, None)

    def _busy(self, connection: _Connection) -> None:
        self._waiting.pop(connection, None)

    def _idle(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._waiting[connection] = None


def _log_loop_error(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's own errors (an accept that hit the file limit, a bug in a callback) as one structured line."""
    error = context.get("exception")
    if isinstance(error, OSError):
        log.warning("socket error", extra={"detail": context.get("message"), "error": str(error)})
    else:
        log.error("event loop error", extra={"detail": context.get("message")}, exc_info=error)


class _TLSSession:
    """The TLS side of one connection on memory BIOs: ciphertext in from the socket, plaintext out, and back."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.established = False

    def receive(self, data: bytes) -> Iterator[bytes]:
        """The plaintext that `data` completes; ssl.SSLError when the peer breaks TLS (ZeroReturn: it closed)."""
        self._incoming.write(data)
        try:
            if not self.established:
                self._tls.do_handshake()
                self.established = True
            while chunk := self._tls.read(TLS_READ_SIZE):
                yield chunk
        except ssl.SSLWantReadError:
            return  # all that arrived is read

    def send(self, data: bytes) -> None:
        self._tls.write(data)

    def close(self) -> None:
        """Queue our close_notify; the peer's is not awaited."""
        if self.established:
            with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: the peer's close_notify is not here
                self._tls.unwrap()

    def pending(self) -> bytes:
        """Ciphertext to write to the socket (handshake messages, records, alerts)."""
        return self._outgoing.read()


class _Connection(asyncio.Protocol):
    """One client connection: TLS on memory BIOs, h11 framing, deadlines, one request answered at a time."""

    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._context: ssl.SSLContext | None = None
        self._tls: _TLSSession | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head: h11.Request | None = None
        self._limit = 0
        self._body = bytearray()
        self._started = False
        """A byte of the current request has arrived (the read deadline runs, a timeout answers 408)."""
        self._answering = False
        self._write_paused = False
        self._peer_done = False
        self.client = "unknown"

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "unknown"
        if not self._server._admit(self):
            log.debug("connection refused at the cap", extra={"client": self.client})
            transport.abort()
            return
        # The context in force now serves this connection; its TLS state waits for the first byte, so a client
        # that never says hello costs what a plain one does.
        self._context = self._server.tls_context()
        self._arm(self._server.limits.read_timeout)

    def data_received(self, data: bytes) -> None:
        if self._context is None:
            self._receive(data)
            return
        if self._tls is None:
            self._tls = _TLSSession(self._context)
        try:
            for chunk in self._tls.receive(data):
                self._receive(chunk)
        except ssl.SSLZeroReturnError:
            self.eof_received()
        except ssl.SSLError as error:
            # Routine: scanners, plain HTTP on the TLS port, a client without the required certificate.
            log.debug("TLS failed", extra={"client": self.client, "error": str(error)})
            self._flush_tls()  # the alert, so the client hears why
            self._abort()
            return
        self._flush_tls()

    def eof_received(self) -> bool:
        # A client may half-close after its request (`nc -N`): its answer still goes out, then we close.
        if self._answering:
            self._peer_done = True
            return True
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("client went away", extra={"client": self.client, "error": type(exc).__name__})
        self._disarm()
        self._server._forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self._answering:
            self._next()

    # Reading requests.

    def _receive(self, data: bytes) -> None:
        if not data or self._transport is None or self._transport.is_closing():
            return
        if not self._started:
            self._started = True
            self._arm(self._server.limits.read_timeout)
        self._h11.receive_data(data)
        if not self._answering and not self._write_paused:
            self._next()

    def _next(self) -> None:
        """Advance through buffered events until a request is complete, more data is needed, or it fails."""
        while True:
            # Before h11 parses: a line over 8 KiB would reach its 16 KiB head cap and be called a 431.
            if self._h11.their_state is h11.IDLE and _line_too_long(self._h11.trailing_data[0]):
                self._refuse(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
                return
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                self._refuse(error.error_status_hint, str(error))
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                if not self._accept_head(event):
                    return
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self._limit:
                    self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    def _accept_head(self, head: h11.Request) -> bool:
        if len(head.method) + len(head.target) + len(b"  HTTP/1.1") > MAX_REQUEST_LINE:
            self._refuse(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
            return False
        if len(head.headers) > MAX_HEADERS:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header fields")
            return False
        # h11 caps a head only while it is incomplete: one arriving in a single read is measured here.
        if sum(len(name) + len(value) + len(b": \r\n") for name, value in head.headers) > MAX_HEAD_BYTES:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header fields too large")
            return False
        self._head = head
        self._body.clear()
        self._limit = self._server.body_limit(head.method.decode("ascii"), head.target.decode("latin-1"))
        fields = dict(head.headers)
        declared = fields.get(b"content-length")
        if declared is not None and b"transfer-encoding" in fields:
            # RFC 9112 6.1 lets a server reject both; h11 would let chunked win. A proxy in front that reads
            # the length instead is how requests get smuggled: refused.
            self._refuse(HTTPStatus.BAD_REQUEST, "both Content-Length and Transfer-Encoding")
            return False
        if declared is not None and int(declared) > self._limit:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
            return False
        if self._h11.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[]))
        return True

    def _dispatch(self) -> None:
        head = self._head
        assert head is not None and self._transport is not None
        request = Request(
            method=head.method.decode("ascii"),
            target=head.target.decode("latin-1"),
            headers=tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers),
            body=bytes(self._body),
            client=self.client,
        )
        self._answering = True
        self._disarm()
        self._server._busy(self)
        self._transport.pause_reading()
        future: Future[Response] = self._server.executor.submit(self._server.handle, request)
        future.add_done_callback(lambda done: self._answer_soon(request, done))

    def _answer_soon(self, request: Request, done: Future[Response]) -> None:
        """From the handler thread to the loop; a loop closed by a shutdown meanwhile drops the answer."""
        try:
            self._loop.call_soon_threadsafe(self._answer, request, done)
        except RuntimeError:
            log.debug("answer dropped at shutdown", extra={"client": self.client})

    # Writing answers.

    def _answer(self, request: Request, done: Future[Response]) -> None:
        self._answering = False
        if self._transport is None or self._transport.is_closing():
            return
        try:
            response = done.result()
        except Exception:
            log.warning("request failed", extra={"client": self.client, "path": request.target}, exc_info=True)
            response = text_response(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error.\n", close=True)
        self._respond(response, head_only=request.method == "HEAD")
        if self._peer_done or self._h11.our_state is h11.MUST_CLOSE:
            self.close()
            return
        self._h11.start_next_cycle()
        self._started = False
        self._head = None
        self._body.clear()
        self._server._idle(self)
        self._arm(self._server.limits.idle_timeout)
        self._transport.resume_reading()
        if self._h11.trailing_data[0]:  # a pipelined request is already here
            self._started = True
            self._arm(self._server.limits.read_timeout)
        if not self._write_paused:
            self._next()

    def _respond(self, response: Response, head_only: bool = False) -> None:
        headers = [
            ("Server", self._server.server_version),
            ("Date", formatdate(usegmt=True)),
            ("Content-Length", str(len(response.body))),
            *response.headers,
            *self._server.extra_headers(),
        ]
        if response.close:
            headers.append(("Connection", "close"))
        self._send(
            h11.Response(status_code=response.status, headers=headers, reason=HTTPStatus(response.status).phrase)
        )
        if not head_only and response.body:
            self._send(h11.Data(data=response.body))
        self._send(h11.EndOfMessage())

    def _refuse(self, status: int, reason: str) -> None:
        """Answer a request the server will not take (when h11 still lets us), then close."""
        log.debug("request refused", extra={"client": self.client, "status": int(status), "reason": reason})
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._respond(text_response(status, f"{HTTPStatus(status).phrase}.\n", close=True))
        self.close()

    def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if not data or self._transport is None or self._transport.is_closing():
            return
        if self._context is None:
            self._transport.write(data)
            return
        if self._tls is None:
            return  # an answer needs a request, and a request on this port comes over TLS: never in clear
        try:
            self._tls.send(data)
        except ssl.SSLError as error:
            log.debug("TLS failed", extra={"client": self.client, "error": str(error)})
            self._abort()
            return
        self._flush_tls()

    def _flush_tls(self) -> None:
        pending = self._tls.pending() if self._tls is not None else b""
        if pending and self._transport is not None and not self._transport.is_closing():
            self._transport.write(pending)

    # Deadlines and closing.

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self._loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._started:
            self._refuse(HTTPStatus.REQUEST_TIMEOUT, "request not complete within the read timeout")
        else:
            log.debug("idle connection closed", extra={"client": self.client})
            self.close()

    def close(self) -> None:
        """Close after what is already written (a TLS close_notify included)."""
        self._disarm()
        if self._transport is None or self._transport.is_closing():
            return
        if self._tls is not None:
            self._tls.close()
            self._flush_tls()
        self._transport.close()

    def _abort(self) -> None:
        self._disarm()
        if self._transport is not None:
            self._transport.close()


def _line_too_long(buffered: bytes) -> bool:
    """True when no line break came within the request line's cap (leading empty lines allowed, as in h11)."""
    start = len(buffered) - len(buffered.lstrip(b"\r\n"))
    return len(buffered) - start > MAX_REQUEST_LINE and b"\n" not in buffered[start : start + MAX_REQUEST_LINE + 1]
