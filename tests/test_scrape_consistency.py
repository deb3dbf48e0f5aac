"""Concurrent scrapes while snapshots are swapped: every response is whole and comes from exactly one snapshot.

The daemon runs the demo source on an injected clock; one thread moves the clock and re-syncs (each
sync recomputes and swaps a snapshot, recorded here as soon as it is published) while a bounded pool
scrapes /metrics in text, OpenMetrics and gzip. Each response is checked on its own: ratios equal
their parts, histograms are cumulative, the last-success timestamp appears once, and its samples are
exactly those of the snapshot that timestamp names.

What a torn read would look like: a response whose ticket families come from one snapshot and whose
survey or SLA families come from the next (a collector that yields from two references, or a cache
entry rendered for one snapshot and stored under another). `itsm_reopened_ratio` would then disagree
with `itsm_tickets_reopened / itsm_tickets_resolved`, and the samples would match neither recorded
snapshot; test_a_torn_response_is_caught builds such a response and shows the checks reject it.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pytest
import requests
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from itsm_exporter.config import demo_config
from itsm_exporter.daemon import Daemon
from itsm_exporter.web import ExporterServer
from tests.fakes.faults import FakeClock

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

AS_OF: Final = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STEP_SECONDS: Final = 6 * 3600.0
"""Clock advance per swap: enough for new, resolved and surveyed demo tickets, so snapshots differ."""
SWAPS: Final = 8
WORKERS: Final = 8
MIN_SCRAPES: Final = 40
PER_ROUND: Final = 10
"""Scrapes per worker and snapshot at most (plus what it takes to reach MIN_SCRAPES at the end)."""
TIMEOUT: Final = 30.0
OPENMETRICS: Final = "application/openmetrics-text; version=1.0.0"
LAST_SUCCESS: Final = "itsm_source_last_success_timestamp_seconds"

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


@dataclass
class Snapshots:
    """Every published snapshot as its samples, keyed by its last-success timestamp."""

    by_stamp: dict[float, Samples] = field(default_factory=dict)

    def record(self, daemon: Daemon) -> None:
        samples = parse_text(generate_latest(daemon.registry).decode())
        stamp = samples[(LAST_SUCCESS, (("source", "demo"),))]
        assert stamp not in self.by_stamp
        self.by_stamp[stamp] = samples


def parse_text(text: str) -> Samples:
    return to_samples(list(text_string_to_metric_families(text)))


def to_samples(families: list[object]) -> Samples:
    """The snapshot's samples; process_* are read live on every scrape, outside any snapshot."""
    samples: Samples = {}
    for family in families:
        if family.name.startswith("process_"):  # type: ignore[attr-defined]
            continue
        for sample in family.samples:  # type: ignore[attr-defined]
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"series {key} appears twice in one response"
            samples[key] = sample.value
    return samples


def parse_response(text: str, openmetrics: bool) -> Samples:
    if openmetrics:
        assert text.endswith("# EOF\n")
        return to_samples(list(parse_openmetrics_families(text)))
    return parse_text(text)


def without(labels: Labels, *names: str) -> Labels:
    return tuple((k, v) for k, v in labels if k not in names)


def series(samples: Samples, name: str) -> dict[Labels, float]:
    return {labels: value for (metric, labels), value in samples.items() if metric == name}


def close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


def check_consistent(samples: Samples, snapshots: Snapshots) -> float:
    """Assert one response is internally consistent and equal to one snapshot; return that snapshot's stamp."""
    stamps = [value for (name, labels), value in samples.items() if name == LAST_SUCCESS]
    assert len(stamps) == 1, f"{len(stamps)} last-success samples in one response"
    met_ratio = series(samples, "itsm_sla_met_ratio")
    sla_tickets = series(samples, "itsm_sla_tickets")
    assert met_ratio, "no SLA ratio at all: the checks below would be vacuous"
    for labels, ratio in met_ratio.items():
        met = sla_tickets[outcome(labels, "met")]
        breached = sla_tickets[outcome(labels, "breached")]
        assert close(ratio, met / (met + breached)), f"itsm_sla_met_ratio{dict(labels)}"
    resolved = series(samples, "itsm_tickets_resolved")
    parts = {
        "itsm_reopened_ratio": series(samples, "itsm_tickets_reopened"),
        "itsm_first_contact_resolution_ratio": series(samples, "itsm_tickets_first_contact_resolved"),
        "itsm_survey_response_ratio": series(samples, "itsm_survey_responses"),
    }
    for name, numerators in parts.items():
        ratios = series(samples, name)
        assert ratios, f"no {name} at all"
        for labels, ratio in ratios.items():
            assert close(ratio, numerators[labels] / resolved[labels]), f"{name}{dict(labels)}"
    responses = series(samples, "itsm_survey_responses")
    satisfied = series(samples, "itsm_survey_satisfied_responses")
    dissatisfied = series(samples, "itsm_survey_dissatisfied_responses")
    satisfied_ratio = series(samples, "itsm_survey_satisfied_ratio")
    assert satisfied_ratio, "no satisfied ratio at all"
    for labels, ratio in satisfied_ratio.items():
        # Every demo response answers the overall question, so rated responses are all responses.
        assert close(ratio, satisfied[labels] / responses[labels]), f"itsm_survey_satisfied_ratio{dict(labels)}"
    for labels, balance in series(samples, "itsm_trust_balance").items():
        assert balance == satisfied[labels] - 12 * dissatisfied[labels], f"itsm_trust_balance{dict(labels)}"
    gaps = series(samples, "itsm_watermelon_gap_ratio")
    assert gaps, "no watermelon gap at all"
    for labels, gap in gaps.items():
        resolution = met_ratio[tuple(sorted((*labels, ("sla", "resolution"))))]
        assert close(gap, resolution - satisfied_ratio[labels]), f"itsm_watermelon_gap_ratio{dict(labels)}"
    for name in ("itsm_resolution_time_seconds", "itsm_first_response_time_seconds", "itsm_backlog_age_seconds"):
        check_histogram(samples, name)
    stamp = stamps[0]
    assert stamp in snapshots.by_stamp, "the response names no published snapshot"
    expected = snapshots.by_stamp[stamp]
    assert samples.keys() == expected.keys(), "the response's series are not its snapshot's series"
    differing = [key for key, value in samples.items() if value != expected[key]]
    assert not differing, f"values of another snapshot: {differing[:3]}"
    return stamp


def outcome(labels: Labels, value: str) -> Labels:
    return tuple(sorted((*labels, ("outcome", value))))


def check_histogram(samples: Samples, name: str) -> None:
    """Buckets are cumulative and the +Inf bucket is the count, per series."""
    counts = series(samples, f"{name}_gcount")
    assert counts, f"no {name} at all"
    buckets: dict[Labels, list[tuple[float, float]]] = {}
    for labels, value in series(samples, f"{name}_bucket").items():
        bound = dict(labels)["le"]
        buckets.setdefault(without(labels, "le"), []).append((float(bound), value))
    assert buckets.keys() == counts.keys(), f"{name}: bucket and count series differ"
    for labels, observed in buckets.items():
        cumulative = [value for _bound, value in sorted(observed)]
        assert cumulative == sorted(cumulative), f"{name}{dict(labels)} buckets are not cumulative"
        assert cumulative[-1] == counts[labels], f"{name}{dict(labels)}: +Inf bucket is not the count"


@dataclass
class Running:
    daemon: Daemon
    clock: FakeClock
    url: str
    snapshots: Snapshots

    def swap(self) -> None:
        """One refresh: move the clock, sync, wait, and record the snapshot that the sync published."""
        self.clock.advance(STEP_SECONDS)
        self.daemon.sync_all()
        assert self.daemon.wait_for_syncs(TIMEOUT)
        self.snapshots.record(self.daemon)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    clock = FakeClock(AS_OF.timestamp())
    daemon = Daemon(demo_config(tmp_path / "store.db"), clock=lambda: clock.wall, monotonic=lambda: clock.mono)
    server = ExporterServer(("127.0.0.1", 0), daemon)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        daemon.sync_all()
        assert daemon.wait_for_syncs(TIMEOUT)
        snapshots = Snapshots()
        snapshots.record(daemon)
        yield Running(daemon, clock, f"http://127.0.0.1:{server.server_port}", snapshots)
    finally:
        server.shutdown()
        server.server_close()
        daemon.close(TIMEOUT)


@dataclass(frozen=True)
class Scrape:
    status: int
    text: str
    openmetrics: bool


def scrape(session: requests.Session, url: str, number: int) -> Scrape:
    """Every third scrape asks for OpenMetrics, every fourth for gzip (requests decompresses it)."""
    openmetrics = number % 3 == 0
    headers = {"Accept": OPENMETRICS if openmetrics else "text/plain"}
    headers["Accept-Encoding"] = "gzip" if number % 4 == 0 else "identity"
    response = session.get(url, headers=headers, timeout=TIMEOUT)
    if openmetrics:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    return Scrape(response.status_code, response.text, openmetrics)


@dataclass
class Pacing:
    """Rounds of scrapes and swaps, paced by events, not time.

    Round n serves snapshot n. The swapper starts the next swap only once every worker could scrape:
    WORKERS scrapes that started in round n have finished. A worker scrapes at most PER_ROUND times a
    round, so nobody runs ahead; scrapes of round n keep going while swap n + 1 computes and publishes.
    """

    condition: threading.Condition = field(default_factory=threading.Condition)
    round: int = 0
    finished_in_round: int = 0
    done: bool = False

    def start(self, per_worker: Counter[int], enough: bool) -> int | None:
        """The round a worker's next scrape belongs to; None when the worker is finished."""
        with self.condition:
            ready = self.condition.wait_for(lambda: self.done or per_worker[self.round] < PER_ROUND, TIMEOUT)
            assert ready, "the swapper stalled"
            if self.done and enough:
                return None
            per_worker[self.round] += 1
            return self.round

    def finish(self, started: int) -> None:
        with self.condition:
            if started == self.round:
                self.finished_in_round += 1
                self.condition.notify_all()

    def await_scrapes(self) -> None:
        with self.condition:
            assert self.condition.wait_for(lambda: self.finished_in_round >= WORKERS, TIMEOUT), "the scrapers stalled"

    def next_round(self) -> None:
        with self.condition:
            self.round += 1
            self.finished_in_round = 0
            self.condition.notify_all()

    def stop(self) -> None:
        with self.condition:
            self.done = True
            self.condition.notify_all()


def test_concurrent_scrapes_during_swaps_each_see_one_whole_snapshot(running: Running) -> None:
    pacing = Pacing()

    def swapper() -> None:
        try:
            pacing.await_scrapes()
            for _ in range(SWAPS):
                running.swap()
                pacing.next_round()
                pacing.await_scrapes()
        finally:
            pacing.stop()

    def worker(offset: int) -> list[Scrape]:
        results: list[Scrape] = []
        per_round: Counter[int] = Counter()
        with requests.Session() as session:
            while (started := pacing.start(per_round, len(results) >= MIN_SCRAPES)) is not None:
                results.append(scrape(session, running.url + "/metrics", offset + len(results)))
                pacing.finish(started)
        return results

    thread = threading.Thread(target=swapper, name="swapper")
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(worker, n) for n in range(WORKERS)]
        thread.start()
        scrapes = [result for future in futures for result in future.result(TIMEOUT * (SWAPS + 1))]
    thread.join(TIMEOUT)
    assert not thread.is_alive()

    assert len(running.snapshots.by_stamp) == SWAPS + 1
    assert WORKERS * MIN_SCRAPES <= len(scrapes) <= WORKERS * (PER_ROUND * (SWAPS + 1) + MIN_SCRAPES)
    assert Counter(s.status for s in scrapes) == Counter({200: len(scrapes)})
    # Equal bodies check equally: each distinct body (one per snapshot, format) is parsed and checked once.
    stamps = {
        (s.text, s.openmetrics): check_consistent(parse_response(s.text, s.openmetrics), running.snapshots)
        for s in {(s.text, s.openmetrics): s for s in scrapes}.values()
    }
    seen = Counter(stamps[(s.text, s.openmetrics)] for s in scrapes)
    # Every snapshot was scraped: the scrapes ran through all the swaps, not just before or after them.
    assert set(seen) == set(running.snapshots.by_stamp), seen
    assert sum(s.openmetrics for s in scrapes) >= WORKERS * MIN_SCRAPES // 3


def test_a_torn_response_is_caught(running: Running) -> None:
    """Ticket families of one snapshot with the rest of the next: the checks must reject the response."""
    before = generate_latest(running.daemon.registry).decode()
    running.swap()
    after = generate_latest(running.daemon.registry).decode()
    assert check_consistent(parse_text(before), running.snapshots) != check_consistent(
        parse_text(after), running.snapshots
    )
    torn = splice(after, before, "itsm_tickets_resolved")
    with pytest.raises(AssertionError, match=r"itsm_reopened_ratio|itsm_first_contact|itsm_survey_response_ratio"):
        check_consistent(parse_text(torn), running.snapshots)
    # Even a torn family whose ratios happen to agree is caught by the identity with one snapshot.
    torn = splice(after, before, "itsm_backlog_tickets")
    with pytest.raises(AssertionError, match="values of another snapshot"):
        check_consistent(parse_text(torn), running.snapshots)


def splice(text: str, other: str, family: str) -> str:
    """`text` with the sample lines of one family taken from `other`, in place."""

    def of_family(line: str) -> bool:
        return line.split("{")[0].split(" ")[0] == family

    replacement = [line for line in other.splitlines() if of_family(line)]
    original = [line for line in text.splitlines() if of_family(line)]
    assert replacement and replacement != original, f"{family} is the same in both snapshots"
    spliced: list[str] = []
    for line in text.splitlines():
        if not of_family(line):
            spliced.append(line)
        elif line == original[0]:
            spliced.extend(replacement)
    return "\n".join(spliced) + "\n"
