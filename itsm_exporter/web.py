"""HTTP endpoints of the daemon: landing page, /metrics from the snapshot, health, readiness, reload.

With `--web.config.file` every endpoint is behind the same TLS, basic auth and extra headers
(`webconfig.py`); without it, plain HTTP as always. Connections, deadlines and limits are the business of
`httpserver.py`; this module only answers complete requests.
"""

from __future__ import annotations

import gzip
import html
import logging
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from itsm_exporter import __version__
from itsm_exporter.config import redact_urls
from itsm_exporter.daemon import Daemon
from itsm_exporter.httpserver import DEFAULT_LIMITS, HTTPServer, Limits, Request, Response, text_response
from itsm_exporter.webconfig import (
    PLAIN_HTTP,
    UNAUTHORIZED_HEADERS,
    BasicAuth,
    WebConfig,
    WebConfigError,
    load_web_config,
)

log = logging.getLogger(__name__)

DEFAULT_TELEMETRY_PATH: Final = "/metrics"
RELOAD_PATH: Final = "/-/reload"
MAX_RELOAD_BODY: Final = 64 * 1024
"""POST /-/reload is the one request that may carry a body (curl -d, some tools send one); it is ignored."""
RESERVED_PATHS: Final = ("/", "/-/healthy", "/-/ready", RELOAD_PATH)


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


class ExporterServer(HTTPServer):
    """The endpoints on the bounded server; no answer touches the upstream, the store or pandas."""

    server_version = f"itsm-exporter/{__version__}"

    def __init__(
        self,
        address: tuple[str, int],
        exporter: Daemon,
        web: WebConfig = PLAIN_HTTP,
        limits: Limits = DEFAULT_LIMITS,
        telemetry_path: str = DEFAULT_TELEMETRY_PATH,
    ) -> None:
        super().__init__(address, limits)
        self.exporter = exporter
        self.state = WebState.of(web)
        self.telemetry_path = telemetry_path

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

    def tls_context(self) -> ssl.SSLContext | None:
        # Read per connection: a reload serves its certificate and client CA to every connection after it.
        return self.state.config.ssl_context

    def extra_headers(self) -> tuple[tuple[str, str], ...]:
        return self.state.config.headers

    def body_limit(self, method: str, target: str) -> int:
        return MAX_RELOAD_BODY if method == "POST" and urlsplit(target).path == RELOAD_PATH else 0

    def handle(self, request: Request) -> Response:
        log.debug("http request", extra={"client": request.client, "method": request.method, "path": request.target})
        if request.method not in ("GET", "HEAD", "POST"):
            return text_response(HTTPStatus.NOT_IMPLEMENTED, "Not implemented.\n")
        auth = self.state.auth
        if auth is not None and not auth.check(request.header("authorization")):
            # Every endpoint is behind the same basic auth when users are configured.
            return text_response(HTTPStatus.UNAUTHORIZED, "Unauthorized.\n", tuple(UNAUTHORIZED_HEADERS.items()))
        path = urlsplit(request.target).path
        if request.method == "POST":
            return self._reload() if path == RELOAD_PATH else text_response(HTTPStatus.NOT_FOUND, "Not found.\n")
        daemon = self.exporter
        if path == self.telemetry_path:
            return self._metrics(daemon, request)
        if path == "/":
            body = _landing_page(daemon, self.telemetry_path)
            return Response(HTTPStatus.OK, body, (("Content-Type", "text/html; charset=utf-8"),))
        if path == "/-/healthy":
            healthy = daemon.healthy
            return text_response(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, _health_text(healthy))
        if path == "/-/ready":
            pending = daemon.pending_sources()
            if pending:
                text = f"Not ready: first sync pending for {', '.join(pending)}.\n"
                return text_response(HTTPStatus.SERVICE_UNAVAILABLE, text)
            return text_response(HTTPStatus.OK, "itsm-exporter is Ready.\n")
        if path == RELOAD_PATH:
            text = "Use POST to reload the configuration.\n"
            return text_response(HTTPStatus.METHOD_NOT_ALLOWED, text, (("Allow", "POST"),))
        return text_response(HTTPStatus.NOT_FOUND, "Not found.\n")

    def _reload(self) -> Response:
        problems = self.exporter.reload()
        if problems:
            text = "Reload failed; the previous configuration stays in use:\n" + "".join(f"  {p}\n" for p in problems)
            return text_response(HTTPStatus.INTERNAL_SERVER_ERROR, text)
        return text_response(HTTPStatus.OK, "Configuration reloaded.\n")

    def _metrics(self, daemon: Daemon, request: Request) -> Response:
        encoder, content_type = choose_encoder(request.header("accept") or "")
        zipped = "gzip" in (request.header("accept-encoding") or "")

        def render(registry: CollectorRegistry) -> bytes:
            body = encoder(registry)
            return gzip.compress(body) if zipped else body

        body = daemon.collector.exposition(f"{content_type};gzip={zipped}", render)
        headers = (("Content-Type", content_type), *((("Content-Encoding", "gzip"),) if zipped else ()))
        return Response(HTTPStatus.OK, body, headers)


def _health_text(healthy: bool) -> str:
    return "itsm-exporter is Healthy.\n" if healthy else "The refresh loop is not running.\n"


def _landing_page(daemon: Daemon, telemetry_path: str) -> bytes:
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
<li><a href="{html.escape(telemetry_path.lstrip("/"), quote=True)}">metrics</a></li>
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
