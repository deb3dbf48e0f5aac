"""The `itsm-exporter` command: run, once, check-config, demo."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from itsm_exporter.config import (
    DEFAULT_LISTEN,
    DEFAULT_PORT,
    Config,
    ConfigError,
    StoreConfig,
    check_listen,
    demo_config,
    load_config,
    parse_duration,
    redact_urls,
    warn_insecure_sources,
)
from itsm_exporter.httpserver import Limits
from itsm_exporter.webconfig import PLAIN_HTTP, WebConfig, WebConfigError, load_web_config

log = logging.getLogger("itsm_exporter")


def _parse_as_of(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-24T12:00:00Z") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z or an offset such as +01:00")
    return moment.astimezone(UTC)


class _VersionAction(argparse.Action):
    """`--version` as the Prometheus tools print it; the build is looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version, Git revision and branch, and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> None:
        from itsm_exporter.build import build_info

        print(build_info().describe())
        parser.exit()


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def _duration_text(seconds: float) -> str:
    """A default in --help as it would be typed: 120.0 -> 2m."""
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:g}s"


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _telemetry_path(text: str) -> str:
    from itsm_exporter.web import RESERVED_PATHS

    if not text.startswith("/") or any(c.isspace() or c in "?#" for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a path such as /metrics")
    if text in RESERVED_PATHS:
        raise argparse.ArgumentTypeError(f"{text} is taken by another endpoint")
    return text


def _web_serving_flags(sub: argparse.ArgumentParser) -> None:
    """`run` and `demo`: where the metrics are served and the limits of the HTTP server (docs/operations.md)."""
    sub.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        type=_telemetry_path,
        default="/metrics",
        metavar="PATH",
        help="path under which the metrics are served (default: %(default)s)",
    )
    sub.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=_positive_int,
        default=Limits.max_connections,
        metavar="N",
        help="open connections at most; at the cap the oldest one without a request in progress is closed "
        "(default: %(default)s)",
    )
    sub.add_argument(
        "--web.read-timeout",
        dest="read_timeout",
        type=_duration,
        default=_duration_text(Limits.read_timeout),
        metavar="DURATION",
        help="time a client has to send a whole request, TLS handshake included (default: %(default)s)",
    )
    sub.add_argument(
        "--web.idle-timeout",
        dest="idle_timeout",
        type=_duration,
        default=_duration_text(Limits.idle_timeout),
        metavar="DURATION",
        help="time a keep-alive connection may wait for its next request (default: %(default)s)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="itsm-exporter",
        description="Service-quality indicators (SLA, responsiveness, reliability, satisfaction) "
        "from ServiceNow and Jira Service Management, for Prometheus.",
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_flag(sub: argparse.ArgumentParser) -> None:
        # --config.file is the Prometheus tools' spelling; --config stays for the scripts that use it.
        sub.add_argument(
            "--config.file",
            "--config",
            dest="config",
            required=True,
            type=Path,
            metavar="FILE",
            help="the YAML configuration (required; no default)",
        )

    def web_config_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--web.config.file",
            dest="web_config",
            type=Path,
            metavar="FILE",
            help="exporter-toolkit web configuration: TLS, basic auth, response headers (default: none, plain HTTP)",
        )

    def logging_flags(sub: argparse.ArgumentParser, default: str = "the config's `log` block, else ") -> None:
        sub.add_argument(
            "--log.level",
            dest="log_level",
            choices=["debug", "info", "warning", "error"],
            help=f"least severe level logged (default: {default}info)",
        )
        sub.add_argument(
            "--log.format",
            dest="log_format",
            choices=["logfmt", "json"],
            help=f"log line format (default: {default}logfmt)",
        )

    run = commands.add_parser("run", help="run the daemon: sync on a schedule, serve /metrics")
    config_flag(run)
    run.add_argument(
        "--web.listen-address",
        dest="listen",
        metavar="HOST:PORT",
        help=f"where to serve the endpoints (default: the config's `listen`, else {DEFAULT_LISTEN})",
    )
    web_config_flag(run)
    _web_serving_flags(run)
    logging_flags(run)

    once = commands.add_parser("once", help="sync every source once and print the exposition to stdout")
    config_flag(once)
    once.add_argument(
        "--as-of", dest="as_of", type=_parse_as_of, metavar="ISO8601", help="evaluation time (default: now)"
    )
    logging_flags(once)

    discover = commands.add_parser(
        "discover", help="read-only report of each source: access, fields, survey questions, SLAs, a config suggestion"
    )
    config_flag(discover)
    discover.add_argument("--source", metavar="NAME", help="only this source (default: every enabled one)")
    logging_flags(discover)

    check = commands.add_parser("check-config", help="validate a config file and print every problem")
    config_flag(check)
    web_config_flag(check)

    health = commands.add_parser(
        "healthcheck",
        help="probe a running exporter's /-/healthy over HTTP or HTTPS (the Docker HEALTHCHECK); exit 0 when healthy",
    )
    health.add_argument(
        "--web.listen-address",
        dest="listen",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        metavar="HOST:PORT",
        help="where the exporter listens (default: %(default)s)",
    )

    demo = commands.add_parser("demo", help="run the daemon on the built-in demo source, no config needed")
    demo.add_argument(
        "--web.listen-address",
        dest="listen",
        metavar="HOST:PORT",
        help=f"where to serve the endpoints (default: {DEFAULT_LISTEN})",
    )
    demo.add_argument(
        "--store",
        type=Path,
        metavar="FILE",
        help="the SQLite store, kept after exit (default: a temporary one, removed at exit)",
    )
    web_config_flag(demo)
    _web_serving_flags(demo)
    logging_flags(demo, "")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = _parser().parse_args(argv)
    if getattr(args, "listen", None) is not None:
        try:
            check_listen(args.listen)
        except ValueError as error:
            print(f"error: --web.listen-address: {error}", file=sys.stderr)
            return 2
    if args.command == "check-config":
        return _check_config(args.config, args.web_config)
    if args.command == "healthcheck":
        return _healthcheck(args.listen)
    with contextlib.ExitStack() as cleanup:
        return _command(args, cleanup)


def _command(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> int:
    """run, once, discover, demo; `cleanup` removes a temporary store when the command ends."""
    temporary: Path | None = None
    try:
        if args.command == "demo":
            store = args.store
            if store is None:
                temporary = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="itsm-exporter-")))
                store = temporary / "demo.db"
            config = demo_config(store)
        else:
            config = load_config(args.config)
            if args.command == "once" and "path" not in config.store.model_fields_set:
                # A one-shot run keeps nothing unless asked: a store in the working directory would be litter.
                temporary = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="itsm-exporter-")))
                config = config.model_copy(update={"store": StoreConfig(path=temporary / "once.db")})
    except ConfigError as error:
        _print_problems(getattr(args, "config", "demo"), error)
        return 1
    web = PLAIN_HTTP
    if getattr(args, "web_config", None) is not None:
        try:
            web = load_web_config(args.web_config)
        except WebConfigError as error:
            _print_problems(args.web_config, error, "invalid web configuration")
            return 1
    _configure_logging(config, args)
    if temporary is not None:
        keep = "--store FILE" if args.command == "demo" else "set store.path in the config"
        log.info(
            "the store is temporary and removed at exit", extra={"path": str(config.store.path), "to_keep_it": keep}
        )
    warn_insecure_sources(config, log)
    if args.command == "once":
        return _once(config, args.as_of)
    if args.command == "discover":
        return _discover(config, args.source)
    from itsm_exporter.exporter import serve

    limits = Limits(args.max_connections, args.read_timeout, args.idle_timeout)
    return serve(
        config,
        config_path=getattr(args, "config", None),
        listen=args.listen,
        web=web,
        limits=limits,
        telemetry_path=args.telemetry_path,
    )


def _short_history(store: Any, config: Config, needed_from: datetime) -> list[str]:
    """Sources whose store holds records only from a horizon later than `needed_from` (a bounded first sync
    whose widening did not complete): their numbers at that --as-of would be wrong, so none are printed."""
    from itsm_exporter.sync.plans import BACKFILL, HORIZON

    problems = []
    for source in config.enabled_sources:
        horizon = store.sync_state(source.name).get((BACKFILL, HORIZON))
        if horizon is not None and horizon.watermark is not None and horizon.watermark > needed_from:
            problems.append(
                f"source {source.name}: the store holds its records from {horizon.watermark.isoformat()} on, "
                f"and this --as-of needs them from {needed_from.isoformat()}: raise `history` (now "
                f"{config.history_for(source)}) so that a sync reads the missing span, and run again"
            )
    return problems


def _discover(config: Config, source: str | None) -> int:
    from itsm_exporter.discover import run

    enabled = [s.name for s in config.enabled_sources]
    if source is not None and source not in enabled:
        known = ", ".join(enabled) or "none"
        print(f"error: --source {source}: no enabled source of that name (enabled: {known})", file=sys.stderr)
        return 2
    return run(config, source)


def _print_problems(path: object, error: ConfigError | WebConfigError, what: str = "invalid configuration") -> None:
    print(f"{path}: {what}", file=sys.stderr)
    for problem in error.problems:
        print(f"  {problem}", file=sys.stderr)


def _check_config(path: Path, web_path: Path | None) -> int:
    """Both files are checked, so one run shows every problem of each."""
    valid = True
    try:
        config = load_config(path)
    except ConfigError as error:
        _print_problems(path, error)
        valid = False
    else:
        sources = ", ".join(f"{s.name} ({s.kind}{'' if s.enabled else ', disabled'})" for s in config.sources)
        print(f"{path}: valid; sources: {sources}")
    if web_path is not None:
        try:
            web = load_web_config(web_path)
        except WebConfigError as error:
            _print_problems(web_path, error, "invalid web configuration")
            valid = False
        else:
            print(f"{web_path}: valid; {_describe(web)}")
    return 0 if valid else 1


def _healthcheck(listen: str) -> int:
    """GET /-/healthy of the exporter at `listen`, over plain HTTP, else TLS; one line on stdout, exit 0 or 1.

    The probe knows nothing of the web configuration: plain HTTP sent to the TLS port gets the connection
    closed, so TLS is tried next, without checking the certificate (this is the exporter on this machine).
    Behind basic auth a 401 is taken as healthy: the server answers, but the refresh loop's state is
    only visible to a user with a password, which a health check has no business holding.
    """
    import http.client
    import ssl

    host, _sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{listen}/-/healthy"
    try:
        status = _status(http.client.HTTPConnection(host, int(port), timeout=4))
    except ConnectionRefusedError:
        print(f"unhealthy: {url}: connection refused (is the exporter running, on this address?)")
        return 1
    except (http.client.HTTPException, ConnectionError):
        # A TLS port closes a plain HTTP connection: the same request over TLS.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        url = f"https://{listen}/-/healthy"
        try:
            status = _status(http.client.HTTPSConnection(host, int(port), timeout=4, context=context))
        except (OSError, http.client.HTTPException) as error:
            print(f"unhealthy: {url}: {error}")
            return 1
    except OSError as error:
        print(f"unhealthy: {url}: {error}")
        return 1
    if status == 200:
        print(f"healthy: {url} answered 200")
        return 0
    if status == 401:
        print(f"healthy: {url} answered 401 (basic auth): the server is up; its refresh loop is not visible")
        return 0
    print(f"unhealthy: {url} answered {status}")
    return 1


def _status(connection: Any) -> int:
    try:
        connection.request("GET", "/-/healthy")
        return int(connection.getresponse().status)
    finally:
        connection.close()


def _describe(web: WebConfig) -> str:
    tls = f"TLS ({web.tls.client_auth_type})" if web.tls is not None else "plain HTTP"
    return f"{tls}, {len(web.users)} basic auth user(s), {len(web.headers)} extra header(s)"


def _configure_logging(config: Config, args: argparse.Namespace) -> None:
    from itsm_exporter.logsetup import configure_logging

    configure_logging(level=args.log_level or config.log.level, fmt=args.log_format or config.log.format)


def _once(config: Config, as_of: datetime | None) -> int:
    """Sync every enabled source once, then print the exposition computed at `as_of`."""
    from prometheus_client.exposition import generate_latest

    from itsm_exporter.connectors import build_connector
    from itsm_exporter.health import SourceHealth, health_metrics
    from itsm_exporter.pipeline import compute, sync_one
    from itsm_exporter.snapshot import snapshot_registry
    from itsm_exporter.store import Store, StoreError
    from itsm_exporter.sync.runner import SourceRunner

    evaluated_at = as_of or datetime.now(UTC)
    now = (lambda: evaluated_at) if as_of else (lambda: datetime.now(UTC))
    try:
        store = Store(config.store.path)
    except StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    failures: list[str] = []
    health: dict[str, SourceHealth] = {}
    try:
        # Disabled sources get no health series: an `up` of 0 for a source nobody polls would page someone.
        for source in config.enabled_sources:
            state = health[source.name] = SourceHealth()
            runner = SourceRunner(
                source.name,
                store,
                state,
                connector_factory=build_connector,
                now=(lambda: evaluated_at) if as_of else None,
            )
            if not sync_one(runner, source, config, store, now):
                failures.append(state.last_error or f"source {source.name}: sync failed")
        short = _short_history(store, config, evaluated_at - config.lookback)
        if short:
            for problem in short:
                print(f"error: {problem}", file=sys.stderr)
            return 1
        domain = compute(store, config, [s.name for s in config.enabled_sources], evaluated_at)
    finally:
        store.close()
    families = [*domain, *health_metrics(health, "One-shot run: data synced once, computed at the evaluation time.")]
    sys.stdout.write(generate_latest(snapshot_registry(families)).decode())
    for failure in failures:
        print(f"error: {redact_urls(failure)}", file=sys.stderr)
    return 1 if failures else 0
