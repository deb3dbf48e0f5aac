"""The daemon in-process, over real HTTP on 127.0.0.1: fake clocks, fake upstreams that fail and recover."""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from itsm_exporter.build import build_info
from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import Config, demo_config, parse_config
from itsm_exporter.connectors import UpstreamUnavailable
from itsm_exporter.connectors.base import Connector, RequestObserver, ScanPage
from itsm_exporter.daemon import HEARTBEAT_TIMEOUT, Daemon
from itsm_exporter.records import RecordKind, Ticket
from itsm_exporter.snapshot import snapshot_registry
from itsm_exporter.store import Store
from itsm_exporter.web import ExporterServer
from tests.fakes.faults import FakeClock

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TIMEOUT = 10.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class FakeUpstream:
    """One source's upstream: serves `tickets` tickets per batch, or fails with `error` after `fail_after` batches."""

    name: str
    clock: FakeClock
    tickets: int = 3
    batches: int = 1
    seconds_per_batch: float = 2.5
    total_expected: int | None = None
    error: Exception | None = None
    fail_after: int = 0
    during: Callable[[int], None] | None = None
    """Called before each batch with its index: lets a test look at the daemon mid-sync."""
    syncs: int = 0
    positions: list[dict[str, str | None]] = field(default_factory=list)
    """The stored token each scan started from, by phase."""


class FakeConnector:
    def __init__(self, upstream: FakeUpstream, observe: RequestObserver, now: Callable[[], datetime]) -> None:
        self.name = upstream.name
        self._upstream = upstream
        self._observe = observe
        self._now = now
        self.closed = False

    phases: tuple[RecordKind, ...] = ("ticket",)

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None) -> Iterator[ScanPage]:
        upstream = self._upstream
        upstream.syncs += 1
        upstream.positions.append({phase: token})
        opened = self._now() - timedelta(hours=1)
        for index in range(upstream.batches):
            if upstream.during is not None:
                upstream.during(index)
            upstream.clock.mono += upstream.seconds_per_batch
            if upstream.error is not None and index >= upstream.fail_after:
                self._observe("503")
                raise upstream.error
            self._observe("200")
            tickets = tuple(
                Ticket(
                    source=self.name,
                    id=f"{index}-{n}",
                    key=f"INC{index}{n}",
                    opened_at=opened,
                    state="open",
                    updated_at=opened,
                    group="Network",
                )
                for n in range(upstream.tickets)
            )
            yield ScanPage(
                tickets=tickets,
                token=str(index),
                fetched_so_far=(index + 1) * upstream.tickets,
                total_expected=upstream.total_expected,
            )

    def close(self) -> None:
        self.closed = True


class Upstreams(dict[str, FakeUpstream]):
    """The connector factory the daemon is given: each source name maps to its fake upstream."""

    def __call__(
        self, source: Any, *, observe_request: RequestObserver, now: Callable[[], datetime] | None
    ) -> Connector:
        assert now is not None
        return FakeConnector(self[source.name], observe_request, now)


def config_for(tmp_path: Path, *names: str, **extra: Any) -> Config:
    sources = [{"name": name, "kind": "demo"} for name in names]
    return parse_config(
        {"store": {"path": str(tmp_path / "store.db")}, "refresh_interval": "1m", "sources": sources, **extra}
    )


@dataclass
class Running:
    daemon: Daemon
    clock: FakeClock
    upstreams: Upstreams
    url: str

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=TIMEOUT, **kwargs)

    def scrape(self) -> Samples:
        response = self.get("/metrics")
        assert response.status_code == 200
        return parse(response.text)

    def cycle(self, advance: float = 0.0) -> None:
        """One refresh interval: move the clocks, start every source's sync, wait for them."""
        self.clock.advance(advance)
        self.daemon.sync_all()
        assert self.daemon.wait_for_syncs(TIMEOUT)


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def sources_with(samples: Samples, name: str) -> set[str]:
    return {dict(labels)["source"] for metric, labels in samples if metric == name}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start a daemon and its HTTP server on 127.0.0.1:0; everything is stopped at teardown."""
    started: list[tuple[Daemon, ExporterServer]] = []

    def run(config: Config, upstreams: Upstreams, clock: FakeClock, **kwargs: Any) -> Running:
        daemon = Daemon(
            config, connector_factory=upstreams, clock=lambda: clock.wall, monotonic=lambda: clock.mono, **kwargs
        )
        server = ExporterServer(("127.0.0.1", 0), daemon)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append((daemon, server))
        return Running(daemon, clock, upstreams, f"http://127.0.0.1:{server.server_port}")

    yield run
    for daemon, server in started:
        server.shutdown()
        server.server_close()
        daemon.close(TIMEOUT)


def two_sources(tmp_path: Path, start: Callable[..., Running], **kwargs: Any) -> Running:
    clock = FakeClock(AS_OF.timestamp())
    upstreams = Upstreams(
        alpha=FakeUpstream("alpha", clock), beta=FakeUpstream("beta", clock, tickets=2, seconds_per_batch=0.0)
    )
    return start(config_for(tmp_path, "alpha", "beta"), upstreams, clock, **kwargs)


def test_health_series_exist_before_the_first_sync_and_readiness_follows_it(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    running = two_sources(tmp_path, start)
    before = running.scrape()
    assert value(before, "itsm_source_up", source="alpha") == 0.0
    assert value(before, "itsm_source_up", source="beta") == 0.0
    assert value(before, "itsm_source_records_synced_total", source="alpha", kind="ticket") == 0.0
    assert value(before, "itsm_source_last_success_timestamp_seconds", source="alpha") is None
    assert value(before, "itsm_config_reloads_total", result="failure") == 0.0
    assert value(before, "itsm_config_last_reload_successful") == 1.0
    info = build_info()
    build = {"version": "0.1.0", "revision": info.revision, "branch": info.branch, "pythonversion": info.python_version}
    assert value(before, "itsm_build_info", **build) == 1.0
    assert (value(before, "process_start_time_seconds") or 0) > 0  # the process collector, read on the scrape
    assert sources_with(before, "itsm_tickets_opened") == set()
    ready = running.get("/-/ready")
    assert (ready.status_code, ready.text) == (503, "Not ready: first sync pending for alpha, beta.\n")
    assert running.get("/-/healthy").status_code == 200

    running.cycle()

    after = running.scrape()
    assert value(after, "itsm_source_up", source="alpha") == 1.0
    assert value(after, "itsm_source_last_success_timestamp_seconds", source="alpha") == AS_OF.timestamp()
    assert value(after, "itsm_source_sync_duration_seconds", source="alpha") == 2.5
    assert value(after, "itsm_source_records_synced_total", source="beta", kind="ticket") == 2.0
    assert value(after, "itsm_source_api_requests_total", source="beta", code="200") == 1.0
    assert value(after, "itsm_tickets_opened", source="alpha", group="Network", window="7d") == 3.0
    assert value(after, "itsm_tickets_opened", source="beta", group="Network", window="30d") == 2.0
    assert (running.get("/-/ready").status_code, running.get("/-/ready").text) == (200, "itsm-exporter is Ready.\n")


def test_help_says_the_values_are_cached_and_how_often_they_refresh(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    running = two_sources(tmp_path, start)
    running.cycle()
    text = running.get("/metrics").text
    note = (
        "Cached: recomputed every 1m (refresh_interval) from the local store, not fetched from the ITSM at scrape time."
    )
    assert f"# HELP itsm_source_up 1 if the last sync of the source succeeded. {note}\n" in text
    assert f"# HELP itsm_tickets_opened Tickets opened in the window (canceled ones included). {note}\n" in text


def test_a_failing_source_goes_down_once_leaves_others_alone_and_comes_back(
    tmp_path: Path, start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="itsm_exporter")
    running = two_sources(tmp_path, start)
    running.cycle()
    beta = running.upstreams["beta"]
    beta.error = UpstreamUnavailable("source beta: upstream unavailable: HTTP 503 from /api/now/table/incident")
    for _ in range(3):
        running.cycle(advance=60)
    samples = running.scrape()
    assert value(samples, "itsm_source_up", source="beta") == 0.0
    assert value(samples, "itsm_source_up", source="alpha") == 1.0
    assert value(samples, "itsm_source_last_success_timestamp_seconds", source="beta") == AS_OF.timestamp()
    assert value(samples, "itsm_source_last_success_timestamp_seconds", source="alpha") == AS_OF.timestamp() + 180
    assert value(samples, "itsm_source_api_requests_total", source="beta", code="503") == 3.0
    assert running.upstreams["alpha"].syncs == 4
    downs = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [(r.getMessage(), r.__dict__["source"], r.__dict__["error"]) for r in downs] == [
        ("source down", "beta", "source beta: upstream unavailable: HTTP 503 from /api/now/table/incident")
    ]
    assert downs[0].exc_info is None

    beta.error = None
    running.cycle(advance=60)
    ups = [r for r in caplog.records if r.getMessage() == "source up again"]
    assert [(r.levelno, r.__dict__["source"], r.__dict__["records"]) for r in ups] == [(logging.INFO, "beta", 2)]
    assert value(running.scrape(), "itsm_source_up", source="beta") == 1.0
    assert beta.positions[-1] == {"ticket": "0"}


def test_an_unexpected_error_is_logged_with_its_traceback_once(
    tmp_path: Path, start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    running = two_sources(tmp_path, start)
    running.upstreams["alpha"].error = KeyError("sys_id")
    running.cycle()
    running.cycle(advance=60)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.getMessage(), r.__dict__["error"]) for r in warnings] == [("source down: unexpected error", "'sys_id'")]
    assert warnings[0].exc_info is not None and warnings[0].exc_info[0] is KeyError
    assert running.get("/-/ready").text == "Not ready: first sync pending for alpha.\n"


def test_a_down_source_keeps_its_values_for_max_staleness_then_only_its_health(
    tmp_path: Path, start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    running = two_sources(tmp_path, start)
    running.cycle()
    running.upstreams["beta"].error = UpstreamUnavailable("source beta: timed out")
    running.cycle(advance=170)
    kept = running.scrape()
    assert value(kept, "itsm_tickets_opened", source="beta", group="Network", window="7d") == 2.0
    assert value(kept, "itsm_source_up", source="beta") == 0.0

    running.cycle(advance=20)  # 190 s after beta's last success: past 3 x refresh_interval
    dropped = running.scrape()
    assert sources_with(dropped, "itsm_tickets_opened") == {"alpha"}
    assert sources_with(dropped, "itsm_target_ratio") == {"alpha"}
    assert value(dropped, "itsm_source_up", source="beta") == 0.0
    assert value(dropped, "itsm_source_last_success_timestamp_seconds", source="beta") == AS_OF.timestamp()
    stale = [r for r in caplog.records if r.getMessage().startswith("source stale")]
    assert [(r.__dict__["source"], r.__dict__["last_success_age_seconds"]) for r in stale] == [("beta", 190)]
    assert "stale</td>" in running.get("/").text

    running.upstreams["beta"].error = None
    running.cycle(advance=60)
    assert value(running.scrape(), "itsm_tickets_opened", source="beta", group="Network", window="7d") == 2.0


def test_max_staleness_from_config_overrides_the_default(tmp_path: Path, start: Callable[..., Running]) -> None:
    clock = FakeClock(AS_OF.timestamp())
    upstreams = Upstreams(alpha=FakeUpstream("alpha", clock))
    running = start(config_for(tmp_path, "alpha", max_staleness="90s"), upstreams, clock)
    running.cycle()
    upstreams["alpha"].error = UpstreamUnavailable("source alpha: refused")
    running.cycle(advance=89)
    assert sources_with(running.scrape(), "itsm_tickets_opened") == {"alpha"}
    running.cycle(advance=2)
    assert sources_with(running.scrape(), "itsm_tickets_opened") == set()


def test_a_long_backfill_logs_progress_and_is_not_ready_until_it_ends(
    tmp_path: Path, start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="itsm_exporter")
    clock = FakeClock(AS_OF.timestamp())
    statuses: list[int] = []
    upstream = FakeUpstream("big", clock, tickets=10, batches=5, seconds_per_batch=20, total_expected=50)
    running = start(config_for(tmp_path, "big"), Upstreams(big=upstream), clock, progress_interval=30)
    upstream.during = lambda index: statuses.append(running.get("/-/ready").status_code)
    running.cycle()
    progress = [r.__dict__ for r in caplog.records if r.getMessage() == "sync in progress"]
    assert [(p["records"], p["rate_per_second"], p["remaining"]) for p in progress] == [(20, 0.5, 30), (40, 0.5, 10)]
    assert statuses == [503] * 5
    assert running.get("/-/ready").status_code == 200
    assert value(running.scrape(), "itsm_source_sync_duration_seconds", source="big") == 100.0


def test_stop_interrupts_a_running_sync_between_batches(tmp_path: Path, start: Callable[..., Running]) -> None:
    clock = FakeClock(AS_OF.timestamp())
    upstream = FakeUpstream("big", clock, batches=4)
    running = start(config_for(tmp_path, "big"), Upstreams(big=upstream), clock)
    upstream.during = lambda index: running.daemon.stop() if index == 2 else None
    running.cycle()
    samples = running.scrape()
    assert value(samples, "itsm_source_records_synced_total", source="big", kind="ticket") == 6.0
    assert value(samples, "itsm_source_up", source="big") == 0.0
    assert running.get("/-/ready").status_code == 503
    assert running.get("/-/healthy").status_code == 503
    running.daemon.sync_all()
    assert running.daemon.wait_for_syncs(TIMEOUT)
    assert upstream.syncs == 1


def test_healthy_needs_a_recent_tick_of_the_loop(tmp_path: Path, start: Callable[..., Running]) -> None:
    running = two_sources(tmp_path, start)
    running.clock.advance(HEARTBEAT_TIMEOUT + 1)
    response = running.get("/-/healthy")
    assert (response.status_code, response.text) == (503, "The refresh loop is not running.\n")
    running.daemon.run_pending()
    response = running.get("/-/healthy")
    assert (response.status_code, response.text) == (200, "itsm-exporter is Healthy.\n")


def test_each_source_is_scheduled_every_refresh_interval_plus_up_to_ten_percent(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    running = two_sources(tmp_path, start)
    running.cycle()
    idle = running.daemon.idle_seconds()
    assert idle is not None and 59 < idle <= 66


def test_run_forever_syncs_at_once_and_returns_when_stopped(tmp_path: Path, start: Callable[..., Running]) -> None:
    running = two_sources(tmp_path, start)
    loop = threading.Thread(target=running.daemon.run_forever)
    loop.start()
    assert running.daemon.wait_for_syncs(TIMEOUT)
    ready = threading.Event()
    for _ in range(100):
        if running.get("/-/ready").status_code == 200:
            ready.set()
            break
        ready.wait(0.05)
    assert ready.is_set()
    running.daemon.request_stop()
    loop.join(TIMEOUT)
    assert not loop.is_alive()


def write_config(path: Path, store: Path, *names: str, satisfaction: float = 0.8) -> None:
    lines = [
        f"store: {{path: {store}}}",
        "refresh_interval: 1m",
        f"targets: {{satisfaction: {satisfaction}}}",
        "sources:",
    ]
    lines += [f"  - {{name: {name}, kind: demo}}" for name in names]
    path.write_text("\n".join(lines) + "\n")


def test_reload_applies_a_good_file_and_keeps_the_old_config_on_a_bad_one(
    tmp_path: Path, start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    store, file = tmp_path / "store.db", tmp_path / "config.yaml"
    write_config(file, store, "alpha")
    clock = FakeClock(AS_OF.timestamp())
    upstreams = Upstreams(alpha=FakeUpstream("alpha", clock), gamma=FakeUpstream("gamma", clock))
    config = config_for(tmp_path, "alpha")
    running = start(config, upstreams, clock, config_path=file)
    running.cycle()

    write_config(file, store, "alpha", "gamma", satisfaction=0.9)
    response = requests.post(running.url + "/-/reload", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (200, "Configuration reloaded.\n")
    assert running.daemon.wait_for_syncs(TIMEOUT)
    samples = running.scrape()
    assert value(samples, "itsm_source_up", source="gamma") == 1.0
    assert value(samples, "itsm_target_ratio", source="alpha", objective="satisfaction") == 0.9
    assert value(samples, "itsm_config_reloads_total", result="success") == 1.0

    file.write_text(file.read_text() + "surprise: 1\n")
    response = requests.post(running.url + "/-/reload", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (
        500,
        "Reload failed; the previous configuration stays in use:\n  surprise: unknown key\n",
    )
    running.daemon.request_reload()  # what SIGHUP does: the next tick reloads
    running.daemon.run_pending()
    samples = running.scrape()
    assert value(samples, "itsm_config_reloads_total", result="failure") == 2.0
    assert value(samples, "itsm_config_last_reload_successful") == 0.0
    assert value(samples, "itsm_target_ratio", source="gamma", objective="satisfaction") == 0.9
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.__dict__["problems"] for r in errors] == ["surprise: unknown key"] * 2

    write_config(file, store, "gamma")
    assert requests.post(running.url + "/-/reload", timeout=TIMEOUT).status_code == 200
    samples = running.scrape()
    assert sources_with(samples, "itsm_source_up") == {"gamma"}
    assert value(samples, "itsm_config_last_reload_successful") == 1.0
    # Every family the daemon serves, daemon-only ones included, is in the metric reference.
    reference = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()
    # The text format has no gauge-histogram type: its _gsum and _gcount parse as families of their own.
    families = {
        family.name.removesuffix("_gsum").removesuffix("_gcount")
        for family in text_string_to_metric_families(running.get("/metrics").text)
    }
    assert {"itsm_config_reloads", "itsm_source_up", "itsm_watermelon"} <= families
    undocumented = [f for f in families if f"`{f}`" not in reference and f"`{f}_total`" not in reference]
    assert undocumented == []


def test_reload_without_a_file_says_so(tmp_path: Path, start: Callable[..., Running]) -> None:
    running = two_sources(tmp_path, start)
    response = requests.post(running.url + "/-/reload", timeout=TIMEOUT)
    assert response.status_code == 500
    assert response.text.endswith("  no configuration file to reload (demo mode)\n")
    assert running.get("/-/reload").status_code == 405


def test_concurrent_scrapes_during_snapshot_swaps_all_succeed(tmp_path: Path, start: Callable[..., Running]) -> None:
    running = two_sources(tmp_path, start)
    running.cycle()
    results: list[tuple[int, float | None]] = []
    lock = threading.Lock()

    def scraper() -> None:
        with requests.Session() as session:
            for _ in range(25):
                response = session.get(running.url + "/metrics", timeout=TIMEOUT)
                up = value(parse(response.text), "itsm_source_up", source="alpha")
                with lock:
                    results.append((response.status_code, up))

    threads = [threading.Thread(target=scraper) for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(10):
        running.cycle(advance=60)
    for thread in threads:
        thread.join(TIMEOUT)
    assert results == [(200, 1.0)] * 200


def test_metrics_negotiate_openmetrics_and_gzip(tmp_path: Path, start: Callable[..., Running]) -> None:
    running = two_sources(tmp_path, start)
    running.cycle()
    response = running.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")
    assert 'itsm_source_up{source="alpha"} 1.0\n' in response.text
    response = running.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert value(parse(response.text), "itsm_source_up", source="beta") == 1.0
    assert running.get("/nope").status_code == 404


def test_secrets_stay_out_of_the_landing_page_metrics_and_logs(
    tmp_path: Path, start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-distinctive"
    config = parse_config(
        {
            "store": {"path": str(tmp_path / "store.db")},
            "sources": [
                {"name": "sn", "kind": "servicenow", "url": "http://127.0.0.1:9", "username": "bot", "password": secret}
            ],
        }
    )
    clock = FakeClock(AS_OF.timestamp())
    upstreams = Upstreams(sn=FakeUpstream("sn", clock, error=UpstreamUnavailable("source sn: connection refused")))
    running = start(config, upstreams, clock)
    running.cycle()
    page = running.get("/")
    assert page.status_code == 200
    assert (
        "<tr><td>sn</td><td>servicenow</td><td>down</td><td>never</td><td>source sn: connection refused</td></tr>"
        in page.text
    )
    for text in (page.text, running.get("/metrics").text, caplog.text, repr(running.daemon.config)):
        assert secret not in text


def test_the_demo_daemon_serves_what_a_full_computation_gives(tmp_path: Path) -> None:
    """The daemon loads only the longest window's records; the values must equal a computation on everything."""
    config = demo_config(tmp_path / "x.db")
    daemon = Daemon(config, clock=lambda: AS_OF.timestamp())
    try:
        daemon.sync_all()
        assert daemon.wait_for_syncs(60)
        served = parse(generate_latest(daemon.registry).decode())
    finally:
        daemon.close(TIMEOUT)
    store = Store(tmp_path / "x.db")
    try:
        full = parse(generate_latest(snapshot_registry(compute_metrics(store.load_frames(), AS_OF, config))).decode())
    finally:
        store.close()
    assert len(full) > 500
    assert {key: served[key] for key in full} == full
    assert value(served, "itsm_watermelon", source="demo", group="Network Operations", window="30d") == 1.0


def test_syncs_that_end_within_one_tick_make_one_recompute(tmp_path: Path, start: Callable[..., Running]) -> None:
    clock = FakeClock(AS_OF.timestamp())
    names = ("alpha", "beta", "gamma", "delta")
    upstreams = Upstreams({name: FakeUpstream(name, clock) for name in names})
    running = start(config_for(tmp_path, *names), upstreams, clock)
    assert running.daemon.recomputes == 0
    running.cycle()
    # Four sources synced: their data is served after one computation, not four.
    assert running.daemon.recomputes == 1
    assert sources_with(running.scrape(), "itsm_tickets_opened") == set(names)
    # A tick with no sync since the last computation computes nothing.
    running.daemon.run_pending()
    assert running.daemon.recomputes == 1
    running.cycle(advance=60)
    assert running.daemon.recomputes == 2


def test_the_http_server_listens_with_a_backlog_for_bursts_of_connections(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    # A backlog of 5 (socketserver's default) overflowed when 16 scrapers connected at once, and each
    # dropped SYN cost the 1 s kernel retry. The kernel's own view of the listening socket: ss prints
    # the backlog of a listener as its Send-Q.
    running = two_sources(tmp_path, start)
    port = running.url.rsplit(":", 1)[1]
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True, timeout=TIMEOUT
    ).stdout.split()
    assert listing[0] == "LISTEN" and listing[3].endswith(f":{port}"), listing
    assert int(listing[2]) == 128
