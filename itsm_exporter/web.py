"""HTTP endpoints of the daemon: landing page, /metrics from the snapshot, health, readiness, reload.

With `--web.config.file` every endpoint is behind the same TLS, basic auth and extra headers
(`webconfig.py`); without it, plain HTTP as always.
"""

from __future__ import annotations

import gzip
import html
import logging
import socket
import socketserver
import ssl
import sys
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from itsm_exporter import __version__
from itsm_exporter.config import redact_urls
from itsm_exporter.daemon import Daemon
from itsm_exporter.webconfig import (
    PLAIN_HTTP,
    UNAUTHORIZED_HEADERS,
    BasicAuth,
    WebConfig,
    WebConfigError,
    load_web_config,
)

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT: Final = 10.0
"""How long a connection's TLS handshake may take, in its own thread: a client that stalls it loses only that."""


@dataclass(frozen=True)
class WebState:
    """The web configuration in force and its authenticator, swapped as one on reload."""

    config: WebConfig
    auth: BasicAuth | None

    @classmethod
    def of(cls, config: WebConfig) -> WebState:
        return cls(config, BasicAuth(config.users) if config.auth_required else None)


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `[::1]:PORT` to a bindable (host, port)."""
    host, _sep, port = listen.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


class ExporterServer(ThreadingHTTPServer):
    """One thread per connection: a slow scrape never blocks another, and none touches the upstream."""

    daemon_threads = True
    request_queue_size = 128
    """The listen backlog. socketserver's default of 5 overflowed when a handful of Prometheus
    replicas, probes and dashboards connected at once: each refused SYN waits out the kernel's 1 s
    retry, so 16 concurrent scrapes had a p99 of 1 s (bench/burst.py, BENCHMARKS.md). Linux caps it
    at net.core.somaxconn (4096 on current kernels)."""

    def __init__(self, address: tuple[str, int], exporter: Daemon, web: WebConfig = PLAIN_HTTP) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.exporter = exporter
        self.state = WebState.of(web)
        super().__init__(address, _Handler)

    def reload_web_config(self) -> list[str]:
        """Re-read the web configuration and its certificates; a bad file keeps the one in force."""
        path = self.state.config.path
        if path is None:
            return []
        try:
            new = load_web_config(path)
            if (new.tls is None) != (self.state.config.tls is None):
                raise WebConfigError(["tls_server_config: turning TLS on or off needs a restart"])
        except WebConfigError as error:
            log.warning(
                "web configuration reload failed; keeping the previous one",
                extra={"path": str(path), "problems": "; ".join(error.problems)},
            )
            return [f"{path}: {problem}" for problem in error.problems]
        self.state = WebState.of(new)
        log.info("web configuration reloaded", extra={"path": str(path), "tls": new.tls is not None})
        return []

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's own thread (ThreadingMixIn): the TLS handshake happens here, with the
        # context in force when the connection arrived, so a slow client never blocks the accept loop.
        context = self.state.config.ssl_context
        if context is None:
            super().finish_request(request, client_address)
            return
        tls = _handshake(request, context, client_address)
        if tls is None:
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            self.shutdown_request(tls)  # the accepted socket was detached by wrap_socket: close this one

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a client that hung up mid-answer (a scraper's
        # timeout) is routine, anything else is logged once with its traceback.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("client went away", extra={"client": str(client_address[0]), "error": type(error).__name__})
        else:
            log.warning("request failed", extra={"client": str(client_address[0])}, exc_info=error)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall start-up where DNS is slow.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def _handshake(sock: socket.socket, context: ssl.SSLContext, client_address: Any) -> ssl.SSLSocket | None:
    """The TLS side of an accepted connection, or None (connection closed) when the handshake fails."""
    timeout = sock.gettimeout()
    tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    try:
        tls.settimeout(HANDSHAKE_TIMEOUT)
        tls.do_handshake()
        tls.settimeout(timeout)
    except (ssl.SSLError, OSError) as error:
        # Routine: scanners, plain HTTP on the TLS port, a client without the required certificate.
        log.debug("TLS handshake failed", extra={"client": str(client_address[0]), "error": str(error)})
        tls.close()
        return None
    return tls


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    server_version = f"itsm-exporter/{__version__}"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, a keep-alive client's delayed ACK
    # stalls every scrape by ~40 ms (found by bench/scrape.py).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if not self._authorized():
            return
        daemon = self.server.exporter
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._metrics(daemon)
        elif path == "/":
            self._send(HTTPStatus.OK, _landing_page(daemon), "text/html; charset=utf-8")
        elif path == "/-/healthy":
            healthy = daemon.healthy
            self._text(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, _health_text(healthy))
        elif path == "/-/ready":
            pending = daemon.pending_sources()
            if pending:
                self._text(HTTPStatus.SERVICE_UNAVAILABLE, f"Not ready: first sync pending for {', '.join(pending)}.\n")
            else:
                self._text(HTTPStatus.OK, "itsm-exporter is Ready.\n")
        elif path == "/-/reload":
            self._text(HTTPStatus.METHOD_NOT_ALLOWED, "Use POST to reload the configuration.\n", {"Allow": "POST"})
        else:
            self._text(HTTPStatus.NOT_FOUND, "Not found.\n")

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if urlsplit(self.path).path != "/-/reload":
            self._text(HTTPStatus.NOT_FOUND, "Not found.\n")
            return
        problems = self.server.exporter.reload()
        if problems:
            text = "Reload failed; the previous configuration stays in use:\n" + "".join(f"  {p}\n" for p in problems)
            self._text(HTTPStatus.INTERNAL_SERVER_ERROR, text)
        else:
            self._text(HTTPStatus.OK, "Configuration reloaded.\n")

    def _authorized(self) -> bool:
        """Every endpoint is behind the same basic auth when users are configured; 401 otherwise."""
        auth = self.server.state.auth
        if auth is None or auth.check(self.headers.get("Authorization")):
            return True
        self._text(HTTPStatus.UNAUTHORIZED, "Unauthorized.\n", UNAUTHORIZED_HEADERS)
        return False

    def end_headers(self) -> None:
        # Here rather than in _send: error pages of http.server (400, 501) get the configured headers too.
        for name, value in self.server.state.config.headers:
            self.send_header(name, value)
        super().end_headers()

    def _metrics(self, daemon: Daemon) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        zipped = "gzip" in self.headers.get("Accept-Encoding", "")

        def render(registry: CollectorRegistry) -> bytes:
            body = encoder(registry)
            return gzip.compress(body) if zipped else body

        body = daemon.collector.exposition(f"{content_type};gzip={zipped}", render)
        self._send(HTTPStatus.OK, body, content_type, {"Content-Encoding": "gzip"} if zipped else None)

    def _text(self, status: HTTPStatus, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", headers)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http request", extra={"client": self.address_string(), "request": format % args})


def _health_text(healthy: bool) -> str:
    return "itsm-exporter is Healthy.\n" if healthy else "The refresh loop is not running.\n"


def _landing_page(daemon: Daemon) -> bytes:
    """Name, version, links and each source's state; nothing from the config beyond names and kinds."""
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(status.name),
            html.escape(status.kind),
            html.escape(status.state),
            status.last_success.isoformat(timespec="seconds") if status.last_success else "never",
            html.escape(redact_urls(status.last_error or "")),
        )
        for status in daemon.statuses()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>itsm-exporter</title></head>
<body>
<h1>itsm-exporter {html.escape(__version__)}</h1>
<p>Service-quality indicators from ITSM tickets and surveys. Metrics are cached: recomputed every
{html.escape(str(daemon.config.refresh_interval))}, never fetched from the ITSM at scrape time.</p>
<ul>
<li><a href="metrics">metrics</a></li>
<li><a href="-/healthy">health</a></li>
<li><a href="-/ready">readiness</a></li>
</ul>
<table>
<tr><th>source</th><th>kind</th><th>state</th><th>last success</th><th>last error</th></tr>
{rows}
</table>
</body></html>
"""
    return page.encode()
