"""Jira (Cloud and Data Center) behind a fault-injecting proxy: each fault alone, then the daemon through faulty syncs.

The expected store is a clean sync of the same fake, without the proxy, into a fresh store (the
connector's mapping is tested against hand-written records in tests/test_jira.py); on top of it
every issue of the fake but HELP-6 (unmappable on purpose) must be there in its current version.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from itsm_exporter.config import parse_config
from itsm_exporter.connectors.base import (
    BadRequest,
    Connector,
    RateLimited,
    RequestObserver,
    SchemaError,
    UpstreamUnavailable,
)
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.jira.connector import JiraConnector
from itsm_exporter.records import Batch, SurveyResponse, Ticket
from itsm_exporter.store import Store
from tests.fakes.faults import (
    HTML_TYPE,
    WAIT_SECONDS,
    FakeClock,
    Fault,
    FaultProxy,
    Waits,
    assert_metrics,
    hibernating,
    hook,
    html_status,
    jira_envelope,
    reset,
    running_daemon,
    sample,
    slow,
    status,
    truncated,
)
from tests.fakes.jira import EMAIL, TOKEN, FakeIssue, FakeJira, Mode, at, change_for_incremental, fake_jira
from tests.plans import run_plan, stored_iso, synced
from tests.storeread import stored_surveys, stored_tickets
from tests.test_jira import MODES, source_settings

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

SEARCH = "/search"
READ_TIMEOUT = "300ms"
SCENARIO_READ_TIMEOUT = "1s"
"""The daemon scenario scrapes /metrics during a stall: a second leaves that scrape ample time."""
UNMAPPABLE = "10006"
"""HELP-6: its `created` is "yesterday", so it is skipped, never stored."""
RATE_LIMITED = jira_envelope("Rate limit exceeded.")
UNAVAILABLE = jira_envelope("Service Unavailable")
INTERNAL = jira_envelope("Internal server error")


def jira_settings(url: str, mode: Mode, timeout: str = READ_TIMEOUT) -> dict[str, Any]:
    return source_settings(url, mode, timeout=timeout)


def connector(url: str, mode: Mode, waits: Waits, codes: list[str] | None = None) -> JiraConnector:
    source = JiraSource.model_validate(jira_settings(url, mode))
    observe = codes.append if codes is not None else lambda _code: None
    return JiraConnector(source, observe, sleep=waits, jitter=lambda: 0.5)


_clean_stores = itertools.count()


def clean_sync(fake: FakeJira, mode: Mode, tmp_path: Path) -> tuple[list[Ticket], list[SurveyResponse]]:
    """What a fresh store holds after one sync of the fake as it is now, straight, without faults."""
    store = Store(tmp_path / f"clean-{next(_clean_stores)}.db")
    conn = connector(fake.url, mode, Waits())
    try:
        synced(conn, store)
        return stored_tickets(store, "jsm"), stored_surveys(store, "jsm")
    finally:
        conn.close()
        store.close()


def assert_store_equals_site(store: Store, fake: FakeJira, mode: Mode, tmp_path: Path) -> None:
    tickets, surveys = clean_sync(fake, mode, tmp_path)
    assert stored_tickets(store, "jsm") == tickets
    assert stored_surveys(store, "jsm") == surveys
    versions = {i.id: i.updated for i in fake.issues.values() if i.id != UNMAPPABLE}
    assert {t.id: t.updated_at for t in tickets} == versions
    assert {s.ticket_id for s in surveys} == {i.id for i in fake.issues.values() if i.rating is not None}


def assert_watermark_covers_only_what_is_stored(store: Store, fake: FakeJira, mode: Mode, tmp_path: Path) -> None:
    """The watermark is the update time of a stored ticket, and every ticket updated before it is stored as it is."""
    stored = {t.id: t for t in stored_tickets(store, "jsm")}
    mark = datetime.fromisoformat(stored_iso(store, "jsm", "ticket") or "")
    assert mark in {t.updated_at for t in stored.values()}
    behind = [t for t in clean_sync(fake, mode, tmp_path)[0] if t.updated_at < mark]
    assert behind and [stored.get(t.id) for t in behind] == behind


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Mode:
    return request.param


# -- the proxy itself ------------------------------------------------------------------------------


def test_the_proxy_forwards_a_post_with_its_query_headers_and_body() -> None:
    body = b'{"jql": "updated >= \\"2025-03-01 00:00\\" ORDER BY updated ASC, key ASC", "fields": ["id"]}'
    with fake_jira("cloud") as fake, FaultProxy(fake.url) as proxy:
        target = "/rest/api/3/search/jql?validation=strict"
        headers = {"Content-Type": "application/json", "X-Atlassian-Token": "no-check"}
        auth = (EMAIL, TOKEN)
        answer = requests.post(proxy.url + target, data=body, headers=headers, auth=auth, timeout=5)
        direct = requests.post(fake.url + target, data=body, headers=headers, auth=auth, timeout=5)
    through, straight = fake.requests
    assert (through.method, through.path, through.query, through.body) == (
        "POST",
        "/rest/api/3/search/jql",
        {"validation": ["strict"]},
        body,
    )
    assert through.headers.pop("via") == "1.0 fault-proxy"
    hop = ("host", "connection")  # one hop's own: the proxy's connection to the fake has its own
    assert {k: v for k, v in through.headers.items() if k not in hop} == {
        k: v for k, v in straight.headers.items() if k not in hop
    }
    assert through.headers["content-length"] == str(len(body))
    assert (answer.status_code, answer.json()) == (direct.status_code, direct.json())
    assert [len(answer.json()["issues"]), answer.json()["isLast"]] == [8, True]
    assert [(e.method, e.action, e.code) for e in proxy.exchanges] == [("POST", "forward", "200")]


# -- each fault against the connector --------------------------------------------------------------


def fetch(url: str, mode: Mode, waits: Waits, codes: list[str]) -> list[Batch]:
    conn = connector(url, mode, waits, codes)
    try:
        return run_plan(conn)
    finally:
        conn.close()


GATEWAY_TIMEOUT_PAGE = (
    b"<html><head><title>504 Gateway Time-out</title></head><body><h1>504 Gateway Time-out</h1></body></html>"
)


def html_504(*, path: str = "", times: int = 1) -> Fault:
    """A 504 as a load balancer sends it when the site behind it does not answer in time."""
    return Fault("status", path, 1, times, 504, GATEWAY_TIMEOUT_PAGE, (), HTML_TYPE)


BACKOFF = [5.0, 10.0]
"""Two retries (max_retries: 2) without Retry-After: 5 s doubling, x (0.7 + 0.6 x 0.5)."""
FAILED = "source jsm: search at {url}: HTTP "

PERSISTENT: list[tuple[Fault, type[Exception], str, list[float]]] = [
    (
        status(429, RATE_LIMITED, retry_after="3", path=SEARCH, times=3),
        RateLimited,
        "source jsm: search at {url}: HTTP 429, still rate-limited after 2 retries",
        [3.0, 3.0],
    ),
    (
        status(503, UNAVAILABLE, path=SEARCH, times=3),
        UpstreamUnavailable,
        FAILED + "503 Service Unavailable after 2 retries: Service Unavailable",
        BACKOFF,
    ),
    (
        status(503, UNAVAILABLE, retry_after="2", path=SEARCH, times=3),
        UpstreamUnavailable,
        FAILED + "503 Service Unavailable after 2 retries: Service Unavailable",
        [2.0, 2.0],
    ),
    (
        html_status(503, path=SEARCH, times=3),
        UpstreamUnavailable,
        FAILED + "503 Service Unavailable after 2 retries: non-JSON body (text/html)",
        BACKOFF,
    ),
    (
        status(500, INTERNAL, path=SEARCH, times=3),
        UpstreamUnavailable,
        FAILED + "500 Internal Server Error after 2 retries: Internal server error",
        BACKOFF,
    ),
    (  # Retry-After means something on 429 and 503 only
        status(500, INTERNAL, retry_after="60", path=SEARCH, times=3),
        UpstreamUnavailable,
        FAILED + "500 Internal Server Error after 2 retries: Internal server error",
        BACKOFF,
    ),
    (
        status(500, path=SEARCH, times=3),
        UpstreamUnavailable,
        FAILED + "500 Internal Server Error after 2 retries: empty body",
        BACKOFF,
    ),
    (
        html_status(502, path=SEARCH, times=3),
        UpstreamUnavailable,
        FAILED + "502 Bad Gateway after 2 retries: non-JSON body (text/html)",
        BACKOFF,
    ),
    (
        html_504(path=SEARCH, times=3),
        UpstreamUnavailable,
        FAILED + "504 Gateway Timeout after 2 retries: non-JSON body (text/html)",
        BACKOFF,
    ),
    (
        reset(path=SEARCH, times=3),
        UpstreamUnavailable,
        "source jsm: search at {url}: connection reset by {host} after 2 retries",
        BACKOFF,
    ),
    (
        slow(path=SEARCH, times=3),
        UpstreamUnavailable,
        "source jsm: search at {url}: no answer within timeout after 2 retries",
        BACKOFF,
    ),
    (
        status(404, jira_envelope("Not found."), path=SEARCH),
        BadRequest,
        "source jsm: search at {url}: HTTP 404, the request was rejected: Not found.",
        [],
    ),
    (
        truncated(path=SEARCH, times=3),
        SchemaError,
        "source jsm: search at {url}: the answer is not valid JSON after 2 retries",
        BACKOFF,
    ),
    (
        status(408, path=SEARCH, times=3),
        UpstreamUnavailable,
        FAILED + "408 Request Timeout after 2 retries: empty body",
        BACKOFF,
    ),
    (
        hibernating(path=SEARCH),
        UpstreamUnavailable,
        "source jsm: search at {url}: answered with an HTML page, not JSON "
        "(hibernating, in maintenance, or a login page?)",
        [],
    ),
]


@pytest.mark.parametrize(
    ("fault", "error", "message", "waited"),
    PERSISTENT,
    ids=[
        "429", "503-envelope", "503-retry-after", "503-html", "500-envelope", "500-retry-after", "500-empty",
        "502-html", "504-html", "reset", "slow", "404", "truncated", "408", "html-200",
    ],
)  # fmt: skip
def test_a_persistent_fault_is_a_typed_error_naming_the_source(
    mode: Mode, fault: Fault, error: type[Exception], message: str, waited: list[float]
) -> None:
    waits, codes = Waits(), list[str]()
    with fake_jira(mode) as fake, FaultProxy(fake.url) as proxy:
        proxy.plan(fault)
        with pytest.raises(error) as caught:
            fetch(proxy.url, mode, waits, codes)
    text = str(caught.value)
    assert text == message.format(url=proxy.url, host=proxy.url.removeprefix("http://"))
    assert fake.token not in text and "<" not in text
    assert waits.seconds == waited
    assert codes == [e.code for e in proxy.exchanges]
    assert proxy.actions(SEARCH) == [fault.action] * fault.times


def sync_through(proxy: FaultProxy, mode: Mode, store: Store, waits: Waits, codes: list[str]) -> None:
    conn = connector(proxy.url, mode, waits, codes)
    try:
        synced(conn, store)
    finally:
        conn.close()


RECOVERING: list[tuple[Fault, list[float], list[str]]] = [
    (status(429, RATE_LIMITED, retry_after="7", path=SEARCH), [7.0], ["429", "200"]),
    (status(503, UNAVAILABLE, retry_after="2", path=SEARCH), [2.0], ["503", "200"]),
    (status(503, UNAVAILABLE, path=SEARCH, times=2), BACKOFF, ["503", "503", "200"]),
    (html_status(503, path=SEARCH, times=2), BACKOFF, ["503", "503", "200"]),
    (status(500, INTERNAL, path=SEARCH, times=2), BACKOFF, ["500", "500", "200"]),
    (html_status(502, path=SEARCH), [5.0], ["502", "200"]),
    (html_504(path=SEARCH, times=2), BACKOFF, ["504", "504", "200"]),
    (reset(path=SEARCH, times=2), BACKOFF, ["error", "error", "200"]),
    (slow(path=SEARCH), [5.0], ["error", "200"]),
    (truncated(path=SEARCH), [5.0], ["200", "200"]),  # a page cut short: read again, like a dropped connection
    (status(408, path=SEARCH), [5.0], ["408", "200"]),
]


@pytest.mark.parametrize(
    ("fault", "waited", "seen"),
    RECOVERING,
    ids=[
        "429", "503-retry-after", "503-envelope", "503-html", "500-envelope", "502-html", "504-html", "reset", "slow",
        "truncated", "408",
    ],
)  # fmt: skip
def test_a_fault_that_stops_within_the_retries_costs_only_its_waits(
    mode: Mode, fault: Fault, waited: list[float], seen: list[str], tmp_path: Path
) -> None:
    waits, codes = Waits(), list[str]()
    with closing(Store(tmp_path / "store.db")) as store, fake_jira(mode) as fake, FaultProxy(fake.url) as proxy:
        proxy.plan(fault)
        sync_through(proxy, mode, store, waits, codes)
        assert proxy.unfired() == []
        assert_store_equals_site(store, fake, mode, tmp_path)
    assert waits.seconds == waited
    assert [e.code for e in proxy.exchanges if SEARCH in e.path][: len(seen)] == seen
    assert codes == [e.code for e in proxy.exchanges]


@pytest.mark.parametrize("path", ["/serverInfo", "/field", "/status", "/myself", "/issue/"])
def test_every_request_of_a_sync_is_retried(mode: Mode, path: str, tmp_path: Path) -> None:
    """Discovery, search and changelog requests are all GETs: each is retried, wherever the fault hits."""
    waits = Waits()
    with closing(Store(tmp_path / "store.db")) as store, fake_jira(mode) as fake, FaultProxy(fake.url) as proxy:
        fake.embedded_changelog_limit = 3  # HELP-2's and HELP-3's changelogs are then read from the issue
        proxy.plan(reset(path=path), html_status(503, path=path, nth=2))
        sync_through(proxy, mode, store, waits, [])
        assert proxy.unfired() == []
        assert_store_equals_site(store, fake, mode, tmp_path)
    assert waits.seconds == BACKOFF
    assert [(e.action, e.code) for e in proxy.exchanges if path in e.path][:3] == [
        ("reset", "error"),
        ("status", "503"),
        ("forward", "200"),
    ]
    assert {e.method for e in proxy.exchanges} == {"GET"}


def test_the_feedback_endpoint_is_retried(tmp_path: Path) -> None:
    waits = Waits()
    with fake_jira("cloud", satisfaction_field=False) as fake, FaultProxy(fake.url) as proxy:
        fake.feedback = {"HELP-1": 4}
        proxy.plan(status(503, UNAVAILABLE, path="/feedback", nth=2, times=2))
        source = JiraSource.model_validate(jira_settings(proxy.url, "cloud") | {"csat_feedback_endpoint": True})
        conn = JiraConnector(source, sleep=waits, jitter=lambda: 0.5)
        try:
            batches = run_plan(conn)
        finally:
            conn.close()
        assert proxy.unfired() == []
    assert [(s.ticket_key, s.answers[0].value) for b in batches for s in b.surveys] == [("HELP-1", 4.0)]
    assert waits.seconds == BACKOFF
    # HELP-8, then HELP-1 twice refused and once answered, then HELP-3 (not rated: 404).
    assert [e.code for e in proxy.exchanges if "/feedback" in e.path] == ["404", "503", "503", "200", "404"]


def test_a_failed_changelog_page_fails_the_sync_after_the_pages_before_it(tmp_path: Path) -> None:
    with closing(Store(tmp_path / "store.db")) as store, fake_jira("cloud") as fake, FaultProxy(fake.url) as proxy:
        proxy.plan(reset(path="/HELP-2/changelog", times=3))  # HELP-2's, on the second page, is truncated: paged
        waits = Waits()
        conn = connector(proxy.url, "cloud", waits)
        try:
            with pytest.raises(UpstreamUnavailable) as caught:
                synced(conn, store)
        finally:
            conn.close()
        host = proxy.url.removeprefix("http://")
        assert str(caught.value) == f"source jsm: changelog at {proxy.url}: connection reset by {host} after 2 retries"
        assert waits.seconds == BACKOFF
        assert [t.key for t in stored_tickets(store, "jsm")] == ["HELP-1", "HELP-8"]
        assert stored_iso(store, "jsm", "ticket") == "2025-03-04T10:00:00+00:00"


# -- the daemon through a run of faulty syncs ------------------------------------------------------


class Connectors:
    """The daemon's connector factory: real Jira connectors whose back-off waits are recorded."""

    def __init__(self, clock: FakeClock) -> None:
        self.waits = Waits()
        self._clock = clock

    def __call__(
        self, source: Any, *, observe_request: RequestObserver, now: Callable[[], datetime] | None
    ) -> Connector:
        assert isinstance(source, JiraSource)
        clock = self._clock
        return JiraConnector(source, observe_request, sleep=self.waits, jitter=lambda: 0.5, now=lambda: clock.wall)


def issue(number: int, updated: datetime, **fields: Any) -> FakeIssue:
    return FakeIssue(str(10000 + number), f"HELP-{number}", updated - timedelta(hours=1), updated, **fields)


def test_jira_through_faults_then_a_clean_sync_stores_exactly_the_site(mode: Mode, tmp_path: Path) -> None:
    clock = FakeClock(at(8, 14).timestamp())
    connectors = Connectors(clock)
    waits = connectors.waits.seconds
    # A second connection to the daemon's store: what a restart would read.
    with closing(Store(tmp_path / "store.db")) as store, fake_jira(mode) as fake, FaultProxy(fake.url) as proxy:
        config = parse_config(
            {
                "store": {"path": str(tmp_path / "store.db")},
                "refresh_interval": "1m",
                "sources": [jira_settings(proxy.url, mode, timeout=SCENARIO_READ_TIMEOUT)],
            },
            check_files=False,
        )
        with running_daemon(config, connectors, clock) as running:
            assert_metrics(running, proxy, "jsm", up=0.0)

            # 1. The first sync waits out a 429 and a 503 burst (envelope, then a gateway's HTML page),
            #    while an issue not read yet is updated and a new one is created between two pages.
            def churn() -> None:
                fake.issues["10004"].updated, fake.issues["10004"].priority = at(8, 9), "Highest"
                fake.add(issue(10, at(8, 9, 30), status="3", team="Apps"))

            proxy.plan(
                status(429, RATE_LIMITED, retry_after="7", path=SEARCH),
                status(503, UNAVAILABLE, path=SEARCH, nth=3, before=churn),
                html_status(503, path=SEARCH, nth=4),
            )
            running.sync()
            assert proxy.unfired() == []
            assert running.last_error("jsm") is None
            assert waits == [7.0, 5.0, 10.0]
            assert_metrics(running, proxy, "jsm", up=1.0)
            assert_store_equals_site(store, fake, mode, tmp_path)
            assert stored_iso(store, "jsm", "ticket") == "2025-03-08T09:30:00+00:00"

            # 2. Resets on the second page beyond the retries: the first page is stored with its watermark,
            #    nothing after it.
            change_for_incremental(fake)
            proxy.plan(reset(path=SEARCH, nth=2, times=3))
            running.sync()
            assert proxy.unfired() == []
            assert running.last_error("jsm") == (
                f"source jsm: search at {proxy.url}: connection reset by {proxy.url.removeprefix('http://')} after "
                "2 retries"
            )
            assert waits[3:] == [5.0, 10.0]
            assert_metrics(running, proxy, "jsm", up=0.0)
            assert stored_iso(store, "jsm", "ticket") == "2025-03-08T10:00:00+00:00"
            assert "10009" not in {t.id for t in stored_tickets(store, "jsm")}
            assert_watermark_covers_only_what_is_stored(store, fake, mode, tmp_path)

            # 3. A search slower than the read timeout, three times; /metrics answers while the sync waits on it.
            proxy.plan(slow(path=SEARCH, times=3))
            running.start_sync()
            assert proxy.stalled.wait(WAIT_SECONDS)
            during = running.scrape()
            assert sample(during, "itsm_source_up", source="jsm") == 0.0
            running.finish_sync()
            assert proxy.unfired() == []
            assert running.last_error("jsm") == (
                f"source jsm: search at {proxy.url}: no answer within timeout after 2 retries"
            )
            assert_metrics(running, proxy, "jsm", up=0.0)

            # 4. A search page cut short on every try, then a maintenance page instead of serverInfo (not
            #    retried), then 500s on the fields beyond the retries.
            for fault, error in (
                (truncated(path=SEARCH, times=3), "search at {url}: the answer is not valid JSON after 2 retries"),
                (
                    hibernating(path="/serverInfo"),
                    "serverInfo at {url}: answered with an HTML page, not JSON "
                    "(hibernating, in maintenance, or a login page?)",
                ),
                (status(500, INTERNAL, path="/field", times=3), "field at {url}: HTTP 500 Internal Server Error after "
                 "2 retries: Internal server error"),
            ):  # fmt: skip
                proxy.plan(fault)
                running.sync()
                assert proxy.unfired() == []
                assert_metrics(running, proxy, "jsm", up=0.0)
                expected, last_error = "source jsm: " + error.format(url=proxy.url), running.last_error("jsm") or ""
                # A JSON decoder's position in a cut page depends on the page: only the start is fixed.
                assert last_error.startswith(expected) if fault.action == "truncate" else last_error == expected
            assert stored_iso(store, "jsm", "ticket") == "2025-03-08T10:00:00+00:00"
            assert waits == [7.0, 5.0, 10.0] + 4 * [5.0, 10.0]

            # 5. The site's clock runs 4 minutes ahead of the exporter's: the watermark lies in the future.
            proxy.plan()
            exporter_now = datetime.fromtimestamp(clock.wall + 60, UTC)
            fake.add(issue(20, exporter_now + timedelta(minutes=4), status="3", team="Network"))
            running.sync()
            assert_metrics(running, proxy, "jsm", up=1.0)
            assert datetime.fromisoformat(stored_iso(store, "jsm", "ticket") or "") == exporter_now + timedelta(
                minutes=4
            )
            #    An issue stamped 3 minutes behind that watermark (a lagging node, a late index) and one in
            #    the same minute appear after the sync; then the exporter's clock jumps 10 minutes past the site's.
            fake.add(issue(21, exporter_now + timedelta(minutes=1), status="3"))
            fake.add(issue(22, exporter_now + timedelta(minutes=4, seconds=20), status="3"))
            running.sync()
            assert {"10021", "10022"} <= {t.id for t in stored_tickets(store, "jsm")}
            running.sync(advance=10 * 60)
            fake.add(issue(23, exporter_now + timedelta(minutes=6), status="3"))
            fake.issues["10001"].updated, fake.issues["10001"].priority = exporter_now + timedelta(minutes=7), "Low"

            # 6. The faults stop: one more sync and the store is the site, record by record.
            running.sync()
            assert_metrics(running, proxy, "jsm", up=1.0)
            assert_store_equals_site(store, fake, mode, tmp_path)
            assert datetime.fromisoformat(stored_iso(store, "jsm", "ticket") or "") == exporter_now + timedelta(
                minutes=7
            )
            assert sum("via" in r.headers for r in fake.requests) == proxy.forwarded()  # the clean syncs go direct
            codes = proxy.codes()
            assert (codes["429"], codes["503"], codes["500"], codes["error"]) == (1, 2, 3, 6)


def test_an_issue_updated_after_its_page_was_read_does_not_hide_another(mode: Mode, tmp_path: Path) -> None:
    """Mid-sync, HELP-8 (first page) is updated: it moves to the end and every later issue moves one place up."""

    def update_read_issue() -> None:
        fake.issues["10008"].updated, fake.issues["10008"].priority = at(8, 9), "Highest"

    with closing(Store(tmp_path / "store.db")) as store, fake_jira(mode) as fake, FaultProxy(fake.url) as proxy:
        proxy.plan(hook(update_read_issue, path=SEARCH, nth=2))
        for _ in range(2):  # the first sync, then an incremental one: neither may lose HELP-2
            conn = connector(proxy.url, mode, Waits())
            try:
                synced(conn, store)
            finally:
                conn.close()
        assert proxy.unfired() == []
        assert_store_equals_site(store, fake, mode, tmp_path)
