"""The `itsm-exporter` command: run, once, check-config, demo."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from itsm_exporter import __version__
from itsm_exporter.config import (
    Config,
    ConfigError,
    demo_config,
    load_config,
    parse_duration,
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
    parser.add_argument("--version", action="version", version=f"itsm-exporter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def web_config_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--web.config.file",
            dest="web_config",
            type=Path,
            metavar="FILE",
            help="exporter-toolkit web configuration: TLS, basic auth, response headers",
        )

    def logging_flags(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--log.level", dest="log_level", choices=["debug", "info", "warning", "error"])
        sub.add_argument("--log.format", dest="log_format", choices=["logfmt", "json"])

    run = commands.add_parser("run", help="run the daemon: sync on a schedule, serve /metrics")
    run.add_argument("--config", required=True, type=Path, metavar="FILE")
    run.add_argument("--web.listen-address", dest="listen", metavar="HOST:PORT", help="overrides `listen`")
    web_config_flag(run)
    _web_serving_flags(run)
    logging_flags(run)

    once = commands.add_parser("once", help="sync every source once and print the exposition to stdout")
    once.add_argument("--config", required=True, type=Path, metavar="FILE")
    once.add_argument("--as-of", dest="as_of", type=_parse_as_of, metavar="ISO8601", help="evaluation time")
    logging_flags(once)

    discover = commands.add_parser(
        "discover", help="read-only report of each source: access, fields, survey questions, SLAs, a config suggestion"
    )
    discover.add_argument("--config", required=True, type=Path, metavar="FILE")
    discover.add_argument("--source", metavar="NAME", help="only this source (default: every enabled one)")
    logging_flags(discover)

    check = commands.add_parser("check-config", help="validate a config file and print every problem")
    check.add_argument("--config", required=True, type=Path, metavar="FILE")
    web_config_flag(check)

    demo = commands.add_parser("demo", help="run the daemon on the built-in demo source, no config needed")
    demo.add_argument("--web.listen-address", dest="listen", metavar="HOST:PORT")
    demo.add_argument("--store", type=Path, default=Path("itsm-exporter-demo.db"), metavar="FILE")
    web_config_flag(demo)
    _web_serving_flags(demo)
    logging_flags(demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.config, args.web_config)
    try:
        config = demo_config(args.store) if args.command == "demo" else load_config(args.config)
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


def _describe(web: WebConfig) -> str:
    tls = f"TLS ({web.tls.client_auth_type})" if web.tls is not None else "plain HTTP"
    return f"{tls}, {len(web.users)} basic auth user(s), {len(web.headers)} extra header(s)"


def _configure_logging(config: Config, args: argparse.Namespace) -> None:
    from itsm_exporter.logsetup import configure_logging

    configure_logging(level=args.log_level or config.log.level, fmt=args.log_format or config.log.format)


def _once(config: Config, as_of: datetime | None) -> int:
    """Sync every enabled source once, then print the exposition computed at `as_of`."""
    from prometheus_client.exposition import generate_latest

    from itsm_exporter.collectors import compute_metrics
    from itsm_exporter.connectors import build_connector
    from itsm_exporter.health import SourceHealth, health_metrics
    from itsm_exporter.snapshot import snapshot_registry
    from itsm_exporter.store import Store, StoreError
    from itsm_exporter.sync.runner import SourceRunner

    evaluated_at = as_of or datetime.now(UTC)
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
            if not runner.run(source, config):
                failures.append(state.last_error or f"source {source.name}: sync failed")
        # What a computation at `as_of` can see, as the daemon loads it: memory follows the windows, not history.
        longest = max(window.seconds for window in config.windows)
        short = _short_history(store, config, evaluated_at - timedelta(seconds=longest))
        if short:
            for problem in short:
                print(f"error: {problem}", file=sys.stderr)
            return 1
        frames = store.load_frames(
            [s.name for s in config.enabled_sources], since=evaluated_at - timedelta(seconds=longest)
        )
    finally:
        store.close()
    families = [
        *compute_metrics(frames, evaluated_at, config),
        *health_metrics(health, "One-shot run: data synced once, computed at the evaluation time."),
    ]
    sys.stdout.write(generate_latest(snapshot_registry(families)).decode())
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0
