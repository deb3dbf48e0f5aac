"""HTTP endpoints of the daemon: landing page, /metrics from the snapshot, health, readiness, reload."""

from __future__ import annotations

import gzip
import html
import logging
import socket
import socketserver
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from itsm_exporter import __version__
from itsm_exporter.daemon import Daemon

log = logging.getLogger(__name__)


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

    def __init__(self, address: tuple[str, int], exporter: Daemon) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.exporter = exporter
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    server_version = f"itsm-exporter/{__version__}"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, a keep-alive client's delayed ACK
    # stalls every scrape by ~40 ms (found by bench/scrape.py).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
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
        if urlsplit(self.path).path != "/-/reload":
            self._text(HTTPStatus.NOT_FOUND, "Not found.\n")
            return
        problems = self.server.exporter.reload()
        if problems:
            text = "Reload failed; the previous configuration stays in use:\n" + "".join(f"  {p}\n" for p in problems)
            self._text(HTTPStatus.INTERNAL_SERVER_ERROR, text)
        else:
            self._text(HTTPStatus.OK, "Configuration reloaded.\n")

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
            html.escape(status.last_error or ""),
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
