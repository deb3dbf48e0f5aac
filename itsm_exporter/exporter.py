"""`itsm-exporter run` and `demo`: the daemon, its HTTP server and its signals, wired together."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Final

from itsm_exporter import __version__
from itsm_exporter.config import Config
from itsm_exporter.daemon import Daemon
from itsm_exporter.httpserver import DEFAULT_LIMITS, Limits, raise_fd_limit
from itsm_exporter.store import StoreError
from itsm_exporter.web import DEFAULT_TELEMETRY_PATH, ExporterServer, parse_listen
from itsm_exporter.webconfig import PLAIN_HTTP, WebConfig

log = logging.getLogger(__name__)

STOP_TIMEOUT: Final = 5.0
"""How long a stopping daemon waits for a running sync to finish its current batch."""

RestoreFn = Callable[[], None]


def serve(
    config: Config,
    *,
    config_path: Path | None,
    listen: str | None,
    web: WebConfig = PLAIN_HTTP,
    limits: Limits = DEFAULT_LIMITS,
    telemetry_path: str = DEFAULT_TELEMETRY_PATH,
) -> int:
    """Run until SIGTERM or SIGINT; return the process exit code (1 when the store or address is unusable).

    `web` is the loaded `--web.config.file`; SIGHUP and POST /-/reload re-read it with the config file.
    `limits` and `telemetry_path` come from the `--web.*` flags.
    """
    address = listen or config.listen
    try:
        daemon = Daemon(config, config_path=config_path)
    except StoreError as error:
        log.error("cannot open the store", extra={"error": str(error)})
        return 1
    raise_fd_limit()  # every held connection is a file descriptor: the cap, not the soft limit, should bind
    try:
        server = ExporterServer(parse_listen(address), daemon, web, limits, telemetry_path)
    except OSError as error:
        log.error("cannot listen", extra={"address": address, "error": error.strerror or str(error)})
        daemon.close()
        return 1
    if web.path is not None:
        daemon.add_reload_hook(server.reload_web_config)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    restore = _handle_signals(daemon)
    log.info(
        "listening",
        extra={
            "address": f"{address.rpartition(':')[0]}:{server.server_port}",  # the real port when given :0
            "version": __version__,
            "sources": ",".join(s.name for s in config.enabled_sources),
            "refresh_interval": str(config.refresh_interval),
            "tls": web.tls is not None,
            "basic_auth": web.auth_required,
            "max_connections": server.limits.max_connections,
        },
    )
    try:
        daemon.run_forever()
    finally:
        server.shutdown()
        server.server_close()
        daemon.close(STOP_TIMEOUT)
        restore()
    log.info("stopped")
    return 0


def _handle_signals(daemon: Daemon) -> RestoreFn:
    """SIGTERM/SIGINT stop, SIGHUP reloads; the handlers only set flags that the loop reads each tick."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        daemon.request_stop()

    def reload(_signum: int, _frame: FrameType | None) -> None:
        daemon.request_reload()

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, stop),
        signal.SIGINT: signal.signal(signal.SIGINT, stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, reload),
    }

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore
