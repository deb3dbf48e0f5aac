"""ServiceNow behind a fault-injecting proxy: each fault alone, then the daemon through a run of faulty syncs.

Expected records are derived from the fake's raw rows: tickets with `expected_tickets` of
tests/test_servicenow_sync.py (made_sla mode), surveys with `expected_surveys` below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from itsm_exporter.config import Config, parse_config
from itsm_exporter.connectors.base import Connector, RateLimited, RequestObserver, SchemaError, UpstreamUnavailable
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector
from itsm_exporter.records import Answer, Batch, SurveyResponse
from itsm_exporter.store import Store
from tests.fakes.faults import (
    WAIT_SECONDS,
    FakeClock,
    Fault,
    FaultProxy,
    Waits,
    assert_metrics,
    hibernating,
    hook,
    html_status,
    reset,
    running_daemon,
    sample,
    servicenow_envelope,
    slow,
    status,
    truncated,
)
from tests.fakes.servicenow import FakeServiceNow, source_settings
from tests.plans import iter_plan, run_plan, stored_glide, synced
from tests.storeread import stored_count, stored_surveys, stored_tickets
from tests.test_servicenow import at
from tests.test_servicenow_sync import expected_tickets

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

INCIDENTS = "/table/incident"
SURVEYS = "/table/asmt_assessment_instance"
READ_TIMEOUT = "300ms"
"""Small, so a stalled page times out at once; the proxy releases it when the client gives up."""
SCENARIO_READ_TIMEOUT = "1s"
"""The daemon scenario scrapes /metrics during a stall: a second leaves that scrape ample time."""
AS_OF = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
RATE_LIMITED = servicenow_envelope("Rate limit exceeded")
CANCELLED = servicenow_envelope("Transaction cancelled: maximum execution time exceeded")


def sn_source(fake: FakeServiceNow, proxy: FaultProxy, **settings: Any) -> ServiceNowSource:
    config = parse_config({"sources": [sn_settings(fake, proxy, **settings)]}, check_files=False)
    source = config.sources[0]
    assert isinstance(source, ServiceNowSource)
    return source


def sn_settings(fake: FakeServiceNow, proxy: FaultProxy, **settings: Any) -> dict[str, Any]:
    base = {
        "url": proxy.url,
        "page_size": 3,
        "timeout": READ_TIMEOUT,
        "max_retries": 2,
        "complaints": {"category": ["Complaint"]},
    }
    return source_settings(fake, **(base | settings))


def varied_incident(fake: FakeServiceNow, number: int, updated: str, **fields: str) -> str:
    resolved = number % 3 != 0
    row = {
        "number": f"INC{number:07d}",
        "state": "6" if resolved else "2",
        "opened_at": f"2026-03-0{1 + number % 5} 08:00:00",
        "resolved_at": f"2026-03-0{1 + number % 5} 1{number % 10}:00:00" if resolved else "",
        "sys_updated_on": updated,
        "priority": str(1 + number % 5),
        "contact_type": ("email", "phone", "self-service")[number % 3],
        "category": "complaint" if number % 4 == 0 else "software",
        "reassignment_count": str(number % 3),
        "made_sla": "false" if number % 7 == 0 else "true",
    }
    return fake.add("incident", **(row | fields))


def survey(fake: FakeServiceNow, ticket: str, taken_on: str, overall: str, reliability: str) -> str:
    metrics = {m["name"]: sys_id for sys_id, m in fake.tables["asmt_metric"].items()}
    instance = fake.add(
        "asmt_assessment_instance",
        number=f"AINST{len(fake.tables['asmt_assessment_instance']):04d}",
        state="complete",
        taken_on=taken_on,
        trigger_table="incident",
        trigger_id=ticket,
    )
    for name, actual in (("overall", overall), ("reliability", reliability)):
        fake.add("asmt_metric_result", instance=instance, metric=metrics[name], actual_value=actual)
    return instance


def seed(fake: FakeServiceNow) -> list[str]:
    """Ten incidents, two per sys_updated_on second; five surveys about the first five."""
    group = fake.add("sys_user_group", name="Service Desk")
    ids = [varied_incident(fake, n, f"2026-03-06 10:{n // 2:02d}:00", assignment_group=group) for n in range(10)]
    fake.add("asmt_metric", name="overall", question="Overall satisfaction", datatype="scale", min="1", max="5")
    fake.add("asmt_metric", name="reliability", question="Fixed first time", datatype="scale", min="1", max="5")
    for n in range(5):
        survey(fake, ids[n], f"2026-03-06 11:0{n}:00", str(1 + n), str(5 - n))
    return ids


def expected_surveys(fake: FakeServiceNow) -> list[SurveyResponse]:
    """The surveys the store should hold: completed incident surveys with their numeric answers."""
    metrics = fake.tables["asmt_metric"]
    expected = []
    for instance in fake.tables["asmt_assessment_instance"].values():
        if instance["state"] != "complete" or instance["trigger_table"] != "incident":
            continue
        answers = [
            Answer(
                r["metric"],
                float(r["actual_value"]),
                float(metrics[r["metric"]]["min"]),
                float(metrics[r["metric"]]["max"]),
                name=metrics[r["metric"]]["name"] or None,
                text=metrics[r["metric"]]["question"] or None,
            )
            for r in fake.tables["asmt_metric_result"].values()
            if r["instance"] == instance["sys_id"]
        ]
        expected.append(
            SurveyResponse(
                source="sn",
                id=instance["sys_id"],
                submitted_at=at(instance["taken_on"]),
                answers=tuple(sorted(answers, key=lambda a: a.question_id)),
                ticket_id=instance["trigger_id"],
                ticket_key=fake.tables["incident"][instance["trigger_id"]]["number"],
            )
        )
    return sorted(expected, key=lambda s: s.id)


@pytest.fixture
def proxy(fake: FakeServiceNow) -> Iterator[FaultProxy]:
    with FaultProxy(fake.url) as instance:
        yield instance


# -- the proxy itself ------------------------------------------------------------------------------


def test_the_proxy_forwards_unchanged_and_truncates_with_a_matching_length(
    fake: FakeServiceNow, proxy: FaultProxy
) -> None:
    fake.add("incident", number="INC1", sys_updated_on="2026-03-06 10:00:00")
    target = "/api/now/table/incident?sysparm_fields=number&sysparm_query=numberSTARTSWITHINC"
    auth = (fake.user, fake.password)
    direct = requests.get(fake.url + target, auth=auth, headers={"X-Trace": "t1"}, timeout=5)
    proxy.plan(truncated(path=INCIDENTS, nth=2))
    through = requests.get(proxy.url + target, auth=auth, headers={"X-Trace": "t1"}, timeout=5)
    cut = requests.get(proxy.url + target, auth=auth, timeout=5)

    assert (through.status_code, through.content) == (200, b'{"result": [{"number": "INC1"}]}')
    assert through.content == direct.content
    assert through.headers["X-Total-Count"] == "1"
    forwarded = fake.requests[-2]
    assert (forwarded.method, forwarded.path, forwarded.params["sysparm_query"]) == (
        "GET",
        "/api/now/table/incident",
        "numberSTARTSWITHINC",
    )
    assert forwarded.headers["X-Trace"] == "t1"
    assert (cut.content, cut.headers["Content-Length"]) == (b'{"result": [{"nu', "16")
    assert [(e.number, e.action, e.code, e.query) for e in proxy.exchanges] == [
        (1, "forward", "200", "sysparm_fields=number&sysparm_query=numberSTARTSWITHINC"),
        (2, "truncate", "200", "sysparm_fields=number&sysparm_query=numberSTARTSWITHINC"),
    ]


def test_a_reset_is_an_rst_and_a_stall_lasts_until_the_client_gives_up(proxy: FaultProxy) -> None:
    proxy.plan(reset(), slow(nth=2))
    with pytest.raises(requests.ConnectionError) as reset_error:
        requests.get(proxy.url + "/api/now/table/incident", timeout=5)
    with pytest.raises(requests.ReadTimeout):
        requests.get(proxy.url + "/api/now/table/incident", timeout=(5, 0.2))
    assert proxy.released.wait(5)
    reason = reset_error.value.args[0].args[1]
    assert isinstance(reason, ConnectionResetError)
    assert [(e.action, e.code) for e in proxy.exchanges] == [("reset", "error"), ("slow", "error")]
    assert proxy.forwarded() == 0


def test_faults_fire_from_their_nth_match_and_an_earlier_fault_takes_precedence(
    fake: FakeServiceNow, proxy: FaultProxy
) -> None:
    changes: list[int] = []
    proxy.plan(
        status(500, CANCELLED, path=INCIDENTS, nth=2, times=2),
        status(503, path=INCIDENTS, nth=2),
        hook(lambda: changes.append(len(fake.requests)), path="/table/", nth=3),
    )
    for table in ("incident", "incident", "sys_user", "incident", "incident", "incident"):
        requests.get(f"{proxy.url}/api/now/table/{table}", auth=(fake.user, fake.password), timeout=5)
    assert [(e.path.rsplit("/", 1)[1], e.code) for e in proxy.exchanges] == [
        ("incident", "200"),
        ("incident", "500"),
        ("sys_user", "200"),
        ("incident", "500"),
        ("incident", "503"),
        ("incident", "200"),
    ]
    assert changes == [1]  # ran before the third /table/ request, the sys_user one, was forwarded
    assert proxy.unfired() == []


# -- each fault against the connector --------------------------------------------------------------


def fetch(fake: FakeServiceNow, proxy: FaultProxy, waits: Waits, codes: list[str]) -> list[Batch]:
    connector = ServiceNowConnector(
        sn_source(fake, proxy, surveys_enabled=False), codes.append, sleep=waits, jitter=lambda: 0.5
    )
    try:
        return run_plan(connector)
    finally:
        connector.close()


PERSISTENT: list[tuple[Fault, type[Exception], str, list[float]]] = [
    (
        status(429, RATE_LIMITED, retry_after="3", times=3),
        RateLimited,
        "source sn: table incident at {url}: HTTP 429, still rate-limited after 2 retries",
        [3.0, 3.0],
    ),
    (
        status(500, CANCELLED, times=3),
        UpstreamUnavailable,
        "source sn: table incident at {url}: HTTP 500 Internal Server Error after 2 retries: "
        "Transaction cancelled: maximum execution time exceeded",
        [1.0, 2.0],
    ),
    (
        html_status(502, times=3),
        UpstreamUnavailable,
        "source sn: table incident at {url}: HTTP 502 Bad Gateway after 2 retries",
        [1.0, 2.0],
    ),
    (
        html_status(503, times=3),
        UpstreamUnavailable,
        "source sn: table incident at {url}: HTTP 503 Service Unavailable after 2 retries",
        [1.0, 2.0],
    ),
    (
        reset(times=3),
        UpstreamUnavailable,
        "source sn: table incident at {url}: connection reset by {host} after 2 retries",
        [1.0, 2.0],
    ),
    (
        slow(times=3),
        UpstreamUnavailable,
        "source sn: table incident at {url}: no answer within timeout after 2 retries",
        [1.0, 2.0],
    ),
    (
        truncated(times=3),
        SchemaError,
        "source sn: table incident at {url}: the answer is not valid JSON after 2 retries",
        [1.0, 2.0],
    ),
    (
        status(408, times=3),
        UpstreamUnavailable,
        "source sn: table incident at {url}: HTTP 408 Request Timeout after 2 retries",
        [1.0, 2.0],
    ),
    (
        hibernating(),
        UpstreamUnavailable,
        "source sn: table incident at {url}: answered with an HTML page, not JSON (hibernating, in maintenance, or a "
        "login page?)",
        [],
    ),
]


@pytest.mark.parametrize(
    ("fault", "error", "message", "waited"),
    PERSISTENT,
    ids=["429", "500-envelope", "502-html", "503-html", "reset", "slow", "truncated", "408", "hibernating"],
)
def test_a_persistent_fault_is_a_typed_error_naming_the_source(
    fake: FakeServiceNow, proxy: FaultProxy, fault: Fault, error: type[Exception], message: str, waited: list[float]
) -> None:
    varied_incident(fake, 1, "2026-03-06 10:00:00")
    proxy.plan(fault)
    waits, codes = Waits(), list[str]()
    with pytest.raises(error) as caught:
        fetch(fake, proxy, waits, codes)
    assert str(caught.value) == message.format(url=proxy.url, host=proxy.url.removeprefix("http://"))
    assert fake.password not in str(caught.value)
    assert waits.seconds == waited
    assert codes == [e.code for e in proxy.exchanges]
    assert proxy.actions() == [fault.action] * fault.times


TRANSIENT: list[tuple[Fault, list[float], list[str]]] = [
    (status(429, RATE_LIMITED, retry_after="7"), [7.0], ["429", "200"]),
    (status(500, CANCELLED, times=2), [1.0, 2.0], ["500", "500", "200"]),
    (html_status(502), [1.0], ["502", "200"]),
    (html_status(503, times=2), [1.0, 2.0], ["503", "503", "200"]),
    (reset(), [1.0], ["error", "200"]),
    (slow(), [1.0], ["error", "200"]),
    (truncated(), [1.0], ["200", "200"]),  # a page cut short: read again, like a dropped connection
    (status(408), [1.0], ["408", "200"]),
    (status(503, CANCELLED, retry_after="4"), [4.0], ["503", "200"]),  # Retry-After on 503 as on 429
]


@pytest.mark.parametrize(
    ("fault", "waited", "seen"),
    TRANSIENT,
    ids=["429", "500-envelope", "502-html", "503-html", "reset", "slow", "truncated", "408", "503-retry-after"],
)
def test_a_transient_fault_is_retried_and_the_page_read_once(
    fake: FakeServiceNow, proxy: FaultProxy, fault: Fault, waited: list[float], seen: list[str]
) -> None:
    varied_incident(fake, 1, "2026-03-06 10:00:00")
    proxy.plan(fault)
    waits, codes = Waits(), list[str]()
    (batch,) = fetch(fake, proxy, waits, codes)
    assert [t.key for t in batch.tickets] == ["INC0000001"]
    assert waits.seconds == waited
    assert codes == seen == [e.code for e in proxy.exchanges]


TOKEN = "/oauth_token.do"
GRANT: list[tuple[Fault, list[float], list[str]]] = [
    (truncated(path=TOKEN), [1.0], ["200", "200", "200"]),  # a token cut short: asked again, like a page
    (status(503, CANCELLED, retry_after="6", path=TOKEN), [6.0], ["503", "200", "200"]),
    (status(408, path=TOKEN), [1.0], ["408", "200", "200"]),
    (reset(path=TOKEN), [1.0], ["error", "200", "200"]),
]


@pytest.mark.parametrize(("fault", "waited", "seen"), GRANT, ids=["truncated", "503-retry-after", "408", "reset"])
def test_the_oauth_grant_is_retried_like_a_page(fault: Fault, waited: list[float], seen: list[str]) -> None:
    with FakeServiceNow(client_id="exporter-app", client_secret="Cl1ent-Secret") as fake, FaultProxy(fake.url) as proxy:
        varied_incident(fake, 1, "2026-03-06 10:00:00")
        proxy.plan(fault)
        waits, codes = Waits(), list[str]()
        (batch,) = fetch(fake, proxy, waits, codes)
    assert [t.key for t in batch.tickets] == ["INC0000001"]
    assert waits.seconds == waited
    assert codes == seen == [e.code for e in proxy.exchanges]
    assert [e.path for e in proxy.exchanges] == [TOKEN] * (len(seen) - 1) + ["/api/now/table/incident"]


@pytest.mark.parametrize(
    ("fault", "error", "message", "waited"),
    [
        (truncated(path=TOKEN, times=3), SchemaError, "the answer is not valid JSON after 2 retries", [1.0, 2.0]),
        (  # a page that lasts: not retried
            hibernating(path=TOKEN),
            UpstreamUnavailable,
            "answered with an HTML page, not JSON (hibernating, in maintenance, or a login page?)",
            [],
        ),
    ],
    ids=["truncated", "hibernating"],
)
def test_an_oauth_grant_that_never_answers_json_is_a_typed_error(
    fault: Fault, error: type[Exception], message: str, waited: list[float]
) -> None:
    with FakeServiceNow(client_id="exporter-app", client_secret="Cl1ent-Secret") as fake, FaultProxy(fake.url) as proxy:
        proxy.plan(fault)
        waits = Waits()
        with pytest.raises(error) as caught:
            fetch(fake, proxy, waits, [])
    assert str(caught.value) == f"source sn: the OAuth token at {proxy.url}: {message}"
    assert waits.seconds == waited
    assert proxy.actions() == [fault.action] * fault.times


def test_a_truncated_survey_page_is_a_schema_error_after_the_tickets_were_read(
    fake: FakeServiceNow, proxy: FaultProxy
) -> None:
    seed(fake)
    proxy.plan(truncated(path=SURVEYS, nth=2, times=3))  # the first try and both retries
    connector = ServiceNowConnector(sn_source(fake, proxy), sleep=Waits(), jitter=lambda: 0.5)
    batches: list[Batch] = []
    try:
        with pytest.raises(SchemaError) as caught:
            batches.extend(iter_plan(connector))
    finally:
        connector.close()
    assert str(caught.value) == (
        f"source sn: table asmt_assessment_instance at {proxy.url}: the answer is not valid JSON after 2 retries"
    )
    assert [(b.kind, len(b.tickets) + len(b.surveys)) for b in batches] == [
        ("ticket", 3),
        ("ticket", 3),
        ("ticket", 3),
        ("ticket", 1),
        ("survey", 3),
    ]


# -- the daemon through a run of faulty syncs ------------------------------------------------------


class Connectors:
    """The daemon's connector factory: real ServiceNow connectors whose back-off waits are recorded."""

    def __init__(self) -> None:
        self.waits = Waits()

    def __call__(
        self, source: Any, *, observe_request: RequestObserver, now: Callable[[], datetime] | None
    ) -> Connector:
        assert isinstance(source, ServiceNowSource)
        return ServiceNowConnector(source, observe_request, sleep=self.waits, jitter=lambda: 0.5)


def daemon_config(fake: FakeServiceNow, proxy: FaultProxy, store: Path) -> Config:
    return parse_config(
        {
            "store": {"path": str(store)},
            "refresh_interval": "1m",
            "sources": [sn_settings(fake, proxy, timeout=SCENARIO_READ_TIMEOUT)],
        },
        check_files=False,
    )


def assert_store_equals_instance(store: Store, fake: FakeServiceNow) -> None:
    assert stored_tickets(store, "sn") == expected_tickets(fake)
    assert stored_surveys(store, "sn") == expected_surveys(fake)
    assert stored_count(store, "sn", "ticket") == len(fake.tables["incident"])


def assert_watermarks_cover_only_what_is_stored(store: Store, fake: FakeServiceNow) -> None:
    """Each watermark is the time of a stored record, and every record updated before it is stored as it is now."""
    tickets = {t.id: t for t in stored_tickets(store, "sn")}
    mark = at(stored_glide(store, "sn", "ticket") or "")
    assert mark in {t.updated_at for t in tickets.values()}
    behind = [t for t in expected_tickets(fake) if t.updated_at < mark]
    assert [tickets.get(t.id) for t in behind] == behind
    surveys = {s.id: s for s in stored_surveys(store, "sn")}
    survey_mark = at(stored_glide(store, "sn", "survey") or "")
    assert survey_mark in {s.submitted_at for s in surveys.values()}
    answered = [s for s in expected_surveys(fake) if s.submitted_at < survey_mark]
    assert [surveys.get(s.id) for s in answered] == answered


def test_servicenow_through_faults_then_a_clean_sync_stores_exactly_the_instance(
    fake: FakeServiceNow, proxy: FaultProxy, tmp_path: Path
) -> None:
    ids = seed(fake)
    connectors = Connectors()
    waits = connectors.waits.seconds
    clock = FakeClock(AS_OF.timestamp())
    config = daemon_config(fake, proxy, tmp_path / "store.db")
    # A second connection to the daemon's store: what a restart would read.
    with closing(Store(tmp_path / "store.db")) as store, running_daemon(config, connectors, clock) as running:
        assert_metrics(running, proxy, "sn", up=0.0)

        # 1. The first sync survives a 429, a 500 + 503 burst, a reset and a stalled survey page, while
        #    a ticket already read is updated, a ticket is inserted, and a survey arrives between pages.
        def churn() -> None:
            fake.update(
                "incident", ids[0], state="6", resolved_at="2026-03-06 11:29:00", sys_updated_on="2026-03-06 11:30:00"
            )
            varied_incident(fake, 100, "2026-03-06 11:31:00")

        def survey_arrives() -> None:
            survey(fake, ids[5], "2026-03-06 11:40:00", "5", "4")

        proxy.plan(
            status(429, RATE_LIMITED, retry_after="7", path=INCIDENTS, nth=1),
            status(500, CANCELLED, path=INCIDENTS, nth=3, before=churn),
            html_status(503, path=INCIDENTS, nth=4),
            reset(path=INCIDENTS, nth=6),
            slow(path=SURVEYS, nth=1),
            hook(survey_arrives, path=SURVEYS, nth=3),
        )
        running.start_sync()
        assert proxy.stalled.wait(WAIT_SECONDS)
        during = running.scrape()  # from this thread while the sync thread waits on the stalled page
        assert sample(during, "itsm_source_up", source="sn") == 0.0
        # Every ticket batch was committed before the surveys: ids[0] twice, before and after its update.
        assert sample(during, "itsm_source_records_synced_total", source="sn", kind="ticket") == 12.0
        assert sample(during, "itsm_source_records_synced_total", source="sn", kind="survey") == 0.0
        running.finish_sync()
        assert proxy.unfired() == []
        assert waits == [7.0, 1.0, 2.0, 1.0, 1.0]
        assert_metrics(running, proxy, "sn", up=1.0)
        assert_store_equals_instance(store, fake)
        assert stored_glide(store, "sn", "ticket") == "2026-03-06 11:31:00"
        assert stored_glide(store, "sn", "survey") == "2026-03-06 11:40:00"

        # 2. A second page truncated on every try: the first page is stored with its watermark, nothing after it.
        fake.update("incident", ids[2], sys_updated_on="2026-03-06 11:50:00", reopen_count="1")
        fake.update("incident", ids[4], sys_updated_on="2026-03-06 11:51:00", state="7")
        late = [varied_incident(fake, 101 + n, f"2026-03-06 11:5{2 + n}:00") for n in range(3)]
        proxy.plan(truncated(path=INCIDENTS, nth=2, times=3))
        running.sync()
        assert proxy.unfired() == []
        assert running.last_error("sn") == (
            f"source sn: table incident at {proxy.url}: the answer is not valid JSON after 2 retries"
        )
        assert_metrics(running, proxy, "sn", up=0.0)
        # The scan starts 5 minutes (the overlap) behind 11:31: page 1 is 11:30, 11:31 again, and 11:50.
        assert stored_glide(store, "sn", "ticket") == "2026-03-06 11:50:00"
        assert {t.id for t in stored_tickets(store, "sn")}.isdisjoint(late)
        assert_watermarks_cover_only_what_is_stored(store, fake)

        # 3. A hibernating instance: no retry, nothing stored, nothing moved.
        proxy.plan(hibernating(path=INCIDENTS))
        running.sync()
        assert running.last_error("sn") == (
            f"source sn: table incident at {proxy.url}: answered with an HTML page, not JSON (hibernating, in "
            "maintenance, or a login page?)"
        )
        assert_metrics(running, proxy, "sn", up=0.0)
        assert stored_glide(store, "sn", "ticket") == "2026-03-06 11:50:00"
        assert waits == [7.0, 1.0, 2.0, 1.0, 1.0, 1.0, 2.0]  # step 2 retried the cut-short page twice; no wait here

        # 4. The tickets get through; the second survey page fails beyond the retries.
        for n in range(4):
            survey(fake, ids[6 + n], f"2026-03-06 11:4{1 + n}:00", "2", "3")
        proxy.plan(status(500, CANCELLED, path=SURVEYS, nth=2, times=3))
        running.sync()
        assert proxy.unfired() == []
        assert running.last_error("sn") == (
            f"source sn: table asmt_assessment_instance at {proxy.url}: HTTP 500 Internal Server Error after 2 "
            "retries: Transaction cancelled: maximum execution time exceeded"
        )
        assert waits[-2:] == [1.0, 2.0]
        assert_metrics(running, proxy, "sn", up=0.0)
        assert stored_tickets(store, "sn") == expected_tickets(fake)
        assert stored_glide(store, "sn", "survey") == "2026-03-06 11:42:00"
        assert_watermarks_cover_only_what_is_stored(store, fake)

        # 5. The upstream clock runs 4 minutes ahead of the exporter's (12:05 here), then falls behind it.
        proxy.plan()
        varied_incident(fake, 200, "2026-03-06 12:09:10")
        fake.update("incident", ids[6], sys_updated_on="2026-03-06 12:09:20", state="7")
        running.sync()
        assert datetime.fromtimestamp(clock.wall, UTC) == datetime(2026, 3, 6, 12, 5, tzinfo=UTC)
        assert stored_glide(store, "sn", "ticket") == "2026-03-06 12:09:20"
        assert_metrics(running, proxy, "sn", up=1.0)
        same_second = varied_incident(fake, 201, "2026-03-06 12:09:20")
        fake.update("incident", ids[7], sys_updated_on="2026-03-06 12:10:00")
        running.sync()
        assert same_second in {t.id for t in stored_tickets(store, "sn")}
        assert_store_equals_instance(store, fake)
        running.sync(advance=14 * 60)  # the exporter at 12:20, the upstream at 12:11: 9 minutes behind
        varied_incident(fake, 202, "2026-03-06 12:11:00")
        survey(fake, ids[8], "2026-03-06 12:11:30", "4", "4")

        # 6. The faults stop: one more sync and the store is the instance, record by record.
        running.sync()
        assert_metrics(running, proxy, "sn", up=1.0)
        assert_store_equals_instance(store, fake)
        assert stored_glide(store, "sn", "ticket") == max(r["sys_updated_on"] for r in fake.tables["incident"].values())
        assert stored_glide(store, "sn", "survey") == "2026-03-06 12:11:30"
        assert len(fake.requests) == proxy.forwarded()
        assert proxy.codes()["429"] == 1 and proxy.codes()["500"] == 4 and proxy.codes()["error"] == 2


@pytest.mark.parametrize(("overlap", "fetched"), [("5m", True), ("2m", False)])
def test_a_row_stamped_minutes_behind_the_watermark_by_a_lagging_node_is_fetched_within_the_overlap(
    fake: FakeServiceNow, proxy: FaultProxy, tmp_path: Path, overlap: str, fetched: bool
) -> None:
    varied_incident(fake, 1, "2026-03-06 12:00:00")
    store = Store(tmp_path / "store.db")
    connector = ServiceNowConnector(sn_source(fake, proxy, surveys_enabled=False, overlap=overlap), sleep=Waits())
    try:
        synced(connector, store)
        assert stored_glide(store, "sn", "ticket") == "2026-03-06 12:00:00"
        lagging = varied_incident(fake, 2, "2026-03-06 11:57:00")
        synced(connector, store)
        assert (lagging in {t.id for t in stored_tickets(store, "sn")}) is fetched
        # The re-read lies behind the watermark, which never goes back.
        assert stored_glide(store, "sn", "ticket") == "2026-03-06 12:00:00"
    finally:
        connector.close()
        store.close()
