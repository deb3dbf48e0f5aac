"""The Jira Service Management connector, driven through the real `jira` client against a fake site.

Both deployments: Cloud (enhanced search, token paging, truncated changelog, +0530) and Data
Center (startAt/total, bearer PAT, -0700). Expected records are written out by hand from the fake's
UTC instants, not derived by the connector's mapping code.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from itsm_exporter.cli import main
from itsm_exporter.connectors.base import AuthError, BadRequest, RateLimited, SchemaError, UpstreamUnavailable
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.jira.connector import JiraConnector
from itsm_exporter.connectors.jira.mapping import CSAT_QUESTION_TEXT
from itsm_exporter.records import Answer, Batch, Segment, SkippedRecord, SlaClock, SurveyResponse, Ticket
from itsm_exporter.store import Store
from tests.fakes.jira import (
    EMAIL,
    TOKEN,
    ChangelogOrder,
    FakeIssue,
    FakeJira,
    Fault,
    Mode,
    RecordedRequest,
    assignee_change,
    at,
    change_for_incremental,
    fake_jira,
    history,
    jira_time,
    status_change,
)
from tests.plans import iso, run_plan, stored_iso, synced
from tests.storeread import stored_surveys, stored_tickets

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

MODES: list[Mode] = ["cloud", "datacenter"]


def source_settings(url: str, mode: Mode, **extra: Any) -> dict[str, Any]:
    """The `sources[]` entry for the fake: Basic e-mail + API token on Cloud, a bearer PAT on Data Center."""
    settings: dict[str, Any] = {
        "name": "jsm",
        "kind": "jira",
        "url": url,
        "token": TOKEN,
        "group_field": "Team",
        "service_field": "components",
        "priority_map": {"Urgent": "p1"},
        "complaints": {"labels": ["complaint"]},
        "page_size": 2,
        "max_retries": 2,
    }
    if mode == "cloud":
        settings["username"] = EMAIL
    return settings | extra


def jira_source(url: str, mode: Mode, **extra: Any) -> JiraSource:
    return JiraSource.model_validate(source_settings(url, mode, **extra))


def ticket(id: str, key: str, opened: datetime, updated: datetime, **fields: Any) -> Ticket:
    return Ticket(source="jsm", id=id, key=key, opened_at=opened, updated_at=updated, **fields)


def expected_first_tickets() -> list[Ticket]:
    return [
        ticket(
            "10001", "HELP-1", at(3, 8), at(4, 10), state="resolved", first_response_at=at(3, 8, 30),
            resolved_at=at(3, 12), closed_at=at(3, 12), priority="p2", group="Network", service="Email",
            sla_response="met", sla_resolution="met",
        ),
        ticket(
            "10002", "HELP-2", at(4, 9), at(5, 11), state="open", first_response_at=at(4, 13), priority="p1",
            group="Apps", reassignments=2, sla_response="breached", sla_resolution="unknown",
            sla_clocks=(SlaClock("resolution", at(4, 17), goal_seconds=28_800.0, breached=True),),
        ),
        ticket(
            "10003", "HELP-3", at(5, 7), at(7, 18), state="closed", first_response_at=at(5, 7, 20),
            resolved_at=at(7, 16), closed_at=at(7, 16), priority="p4", service="VPN", reopens=1,
            sla_response="met", sla_resolution="breached",
        ),
        # A paused cycle comes without a breachTime; HELP-7's breachTime is in ISO form only.
        ticket(
            "10004", "HELP-4", at(6, 10), at(6, 15), state="on_hold", priority="p5", complaint=True,
            sla_clocks=(SlaClock("resolution", None, paused=True, goal_seconds=28_800.0),),
        ),
        # Canceled with its response cycle still running in JSM: a done issue has no running clock.
        ticket("10005", "HELP-5", at(6, 11), at(6, 12, 30), state="canceled", closed_at=at(6, 12, 30), priority="p3"),
        ticket(
            "10007", "HELP-7", at(7, 8), at(7, 8, 30), state="open", priority="p1",
            sla_clocks=(SlaClock("response", at(7, 9), goal_seconds=3_600.0),),
        ),
        ticket(
            "10008", "HELP-8", at(1, 9), at(2, 9), state="resolved", resolved_at=at(1, 17), closed_at=at(1, 17),
            priority="p3",
        ),
    ]  # fmt: skip


def expected_second_tickets() -> list[Ticket]:
    tickets = {t.id: t for t in expected_first_tickets()}
    tickets["10002"] = ticket(
        "10002", "HELP-2", at(4, 9), at(8, 10), state="resolved", first_response_at=at(4, 13), resolved_at=at(8, 10),
        closed_at=at(8, 10), priority="p1", group="Apps", reassignments=2, sla_response="breached",
        sla_resolution="breached",
    )  # fmt: skip
    tickets["10008"] = ticket(
        "10008", "HELP-8", at(1, 9), at(8, 12), state="resolved", resolved_at=at(1, 17), closed_at=at(1, 17),
        priority="p3",
    )  # fmt: skip
    tickets["10009"] = ticket("10009", "HELP-9", at(8, 13), at(8, 13), state="open", priority="p1", group="Network")
    return sorted(tickets.values(), key=lambda t: t.id)


def csat(issue_id: str, key: str, rating: float, submitted: datetime) -> SurveyResponse:
    return SurveyResponse(
        source="jsm",
        id=f"{issue_id}:csat",
        submitted_at=submitted,
        answers=(Answer("csat", rating, 1.0, 5.0, name="Satisfaction", text=CSAT_QUESTION_TEXT),),
        ticket_id=issue_id,
        ticket_key=key,
    )


def expected_first_surveys() -> list[SurveyResponse]:
    return [csat("10001", "HELP-1", 5.0, at(4, 10)), csat("10003", "HELP-3", 2.0, at(7, 18))]


def expected_second_surveys() -> list[SurveyResponse]:
    return [*expected_first_surveys(), csat("10008", "HELP-8", 1.0, at(8, 12))]


class Waits:
    """Records the back-off waits instead of sleeping."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def connector(fake: FakeJira, mode: Mode, waits: Waits | None = None, **extra: Any) -> JiraConnector:
    return JiraConnector(jira_source(fake.url, mode, **extra), sleep=waits or Waits(), jitter=lambda: 0.5)


def fetch_all(conn: JiraConnector) -> list[Batch]:
    try:
        return run_plan(conn)
    finally:
        conn.close()


def sync(fake: FakeJira, mode: Mode, store: Store, **extra: Any) -> list[Batch]:
    batches: list[Batch] = []
    conn = connector(fake, mode, **extra)
    try:
        synced(conn, store, on_batch=lambda _name, batch, _elapsed: batches.append(batch))
    finally:
        conn.close()
    return batches


# -- sync --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_first_sync_then_incremental_sync_store_equals_the_site(mode: Mode, tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    with fake_jira(mode) as fake:
        first = sync(fake, mode, store)
        assert stored_tickets(store, "jsm") == expected_first_tickets()
        assert stored_surveys(store, "jsm") == expected_first_surveys()
        assert stored_iso(store, "jsm", "ticket") == "2025-03-07T18:00:00+00:00"
        # One phase: each issue's rating is committed with the issue, under the ticket phase's state.
        assert ("incremental", "survey") not in store.sync_state("jsm")
        skipped = [s for b in first for s in b.skipped]
        assert skipped == [
            SkippedRecord("ticket", "HELP-6", "bad_timestamp", "not a Jira timestamp: 'yesterday'"),
        ]

        change_for_incremental(fake)
        fake.requests.clear()
        second = sync(fake, mode, store)
        assert stored_tickets(store, "jsm") == expected_second_tickets()
        assert stored_surveys(store, "jsm") == expected_second_surveys()
        assert stored_iso(store, "jsm", "ticket") == "2025-03-08T13:00:00+00:00"

    # Watermark 18:00Z less the 5-minute overlap, as a minute in the API user's zone; each later page
    # searches from the minute of the last issue read (HELP-2 at 10:00Z, HELP-8 at 12:00Z).
    literals = {
        "cloud": ["2025-03-07 23:25", "2025-03-08 15:30", "2025-03-08 17:30"],
        "datacenter": ["2025-03-07 10:55", "2025-03-08 03:00", "2025-03-08 05:00"],
    }[mode]
    jqls = [r.query["jql"][0] for r in fake.searches()]
    assert jqls == [f'updated >= "{literal}" ORDER BY updated ASC, key ASC' for literal in literals]
    # HELP-3 (updated inside the overlap), HELP-2, HELP-8 and HELP-9, once each.
    keys = [t.key for b in second for t in b.tickets]
    assert keys == ["HELP-3", "HELP-2", "HELP-8", "HELP-9"]
    search_paths = {r.path for r in fake.searches()}
    assert search_paths == ({"/rest/api/3/search/jql"} if mode == "cloud" else {"/rest/api/2/search"})
    totals = [b.total_expected for b in second if b.tickets]  # pages, not the commit that ends the phase
    assert totals == ([None, None, None] if mode == "cloud" else [4, 4, 4])


@pytest.mark.parametrize("mode", MODES)
def test_each_page_is_one_batch_of_tickets_and_ratings_with_a_running_watermark(mode: Mode) -> None:
    with fake_jira(mode) as fake:
        batches = fetch_all(connector(fake, mode))
    # By updated: HELP-8, HELP-1 | HELP-1, HELP-2 | HELP-2, HELP-5 | HELP-5, HELP-4 | HELP-4, HELP-7 |
    # HELP-7, HELP-6 (skipped) | HELP-6, HELP-3: each page starts at the minute of the last issue read,
    # which comes again and is dropped.
    summary = [(b.kind, len(b.tickets), len(b.surveys), iso(b), b.fetched_so_far) for b in batches]
    assert summary == [
        ("ticket", 2, 1, "2025-03-04T10:00:00+00:00", 2),
        ("ticket", 1, 0, "2025-03-05T11:00:00+00:00", 3),
        ("ticket", 1, 0, "2025-03-06T12:30:00+00:00", 4),
        ("ticket", 1, 0, "2025-03-06T15:00:00+00:00", 5),
        ("ticket", 1, 0, "2025-03-07T08:30:00+00:00", 6),
        ("ticket", 0, 0, "2025-03-07T09:00:00+00:00", 7),
        ("ticket", 1, 1, "2025-03-07T18:00:00+00:00", 8),
    ]


def test_dates_are_served_in_the_user_offset_and_stored_in_utc() -> None:
    assert jira_time(at(3, 8), fake_jira("cloud").zone) == "2025-03-03T13:30:00.000+0530"
    assert jira_time(at(3, 8), fake_jira("datacenter").zone) == "2025-03-03T01:00:00.000-0700"


def test_truncated_cloud_changelog_is_paged_from_the_issue() -> None:
    with fake_jira("cloud") as fake:
        fetch_all(connector(fake, "cloud"))
    pages = [(r.path, r.query["startAt"][0]) for r in fake.requests if r.path.endswith("/changelog")]
    # HELP-2 (4 histories) and HELP-3 (5) exceed the 3 embedded; HELP-1's 3 fill the first embedded list the site
    # shows, which may have been cut. The endpoint serves 2 per page.
    assert pages == [
        ("/rest/api/3/issue/HELP-1/changelog", "0"),
        ("/rest/api/3/issue/HELP-1/changelog", "2"),
        ("/rest/api/3/issue/HELP-2/changelog", "0"),
        ("/rest/api/3/issue/HELP-2/changelog", "2"),
        ("/rest/api/3/issue/HELP-3/changelog", "0"),
        ("/rest/api/3/issue/HELP-3/changelog", "2"),
        ("/rest/api/3/issue/HELP-3/changelog", "4"),
    ]


def test_data_center_reads_a_truncated_changelog_from_the_issue() -> None:
    with fake_jira("datacenter") as fake:
        fake.embedded_changelog_limit = 3
        batches = fetch_all(connector(fake, "datacenter"))
    reads = [r.path for r in fake.requests if r.path.startswith("/rest/api/2/issue/")]
    assert reads == ["/rest/api/2/issue/HELP-1", "/rest/api/2/issue/HELP-2", "/rest/api/2/issue/HELP-3"]
    counts = {t.key: (t.reopens, t.reassignments) for b in batches for t in b.tickets}
    assert counts["HELP-2"] == (0, 2) and counts["HELP-3"] == (1, 0)


def long_history_issue() -> FakeIssue:
    """Reassigned and reopened early, then three entries that change no count: a cut to the 3 most recent
    hides both."""
    return FakeIssue(
        "10010", "HELP-10", at(8, 8), at(9, 17), status="3", priority="High",
        histories=[
            history(20, at(8, 8, 5), assignee_change(None, "alice")),
            history(21, at(8, 9), assignee_change("alice", "bob")),
            history(22, at(8, 10), status_change("3", "5")),
            history(23, at(8, 11), status_change("5", "3")),
            history(24, at(9, 9), status_change("3", "10001")),
            history(25, at(9, 12), status_change("10001", "3")),
            history(26, at(9, 17), status_change("3", "10001")),
        ],
    )  # fmt: skip


@pytest.mark.parametrize("order", ["oldest-first", "most-recent-first"])
@pytest.mark.parametrize("mode", ["cloud", "datacenter"])
def test_a_cut_embedded_changelog_is_read_whole_however_the_site_cuts_it(mode: Mode, order: ChangelogOrder) -> None:
    """Cut to its 3 most recent entries, `total` and `maxResults` 3 (the spec read literally), HELP-10's
    embedded changelog looks whole: it is read from the issue, and the early reopen and reassignment count."""
    with fake_jira(mode, embedded_changelog_order=order) as fake:
        fake.embedded_changelog_limit = 3
        fake.add(long_history_issue())
        batches = fetch_all(connector(fake, mode))
    counts = {t.key: (t.reopens, t.reassignments) for b in batches for t in b.tickets}
    assert counts["HELP-10"] == (1, 1)
    assert (counts["HELP-1"], counts["HELP-2"], counts["HELP-3"]) == ((0, 0), (0, 2), (1, 0))
    read = "/rest/api/3/issue/HELP-10/changelog" if mode == "cloud" else "/rest/api/2/issue/HELP-10"
    assert read in {r.path for r in fake.requests}


def test_an_embedded_changelog_shorter_than_one_already_seen_is_taken_whole() -> None:
    """Data Center embeds every entry with `maxResults` equal to their number: only an issue whose changelog is
    the longest of the sync so far is read again; HELP-1 (3) after HELP-10 (7) is not."""
    with fake_jira("datacenter") as fake:
        fake.add(long_history_issue())
        fake.issues["10010"].updated = at(1, 8)  # read before every other issue
        batches = fetch_all(connector(fake, "datacenter"))
    reads = [r.path for r in fake.requests if r.path.startswith("/rest/api/2/issue/")]
    assert reads == ["/rest/api/2/issue/HELP-10"]
    counts = {t.key: (t.reopens, t.reassignments) for b in batches for t in b.tickets}
    assert (counts["HELP-10"], counts["HELP-2"], counts["HELP-3"]) == ((1, 1), (0, 2), (1, 0))


def test_base_jql_is_anded_in_parentheses() -> None:
    with fake_jira("cloud") as fake:
        batches = fetch_all(connector(fake, "cloud", jql="project = HELP"))
    assert fake.searches()[0].query["jql"] == [
        '(project = HELP) AND updated >= "1970-01-01 00:00" ORDER BY updated ASC, key ASC'
    ]
    assert len([t for b in batches for t in b.tickets]) == 7


def test_cloud_search_asks_for_explicit_fields_and_the_changelog() -> None:
    with fake_jira("cloud") as fake:
        fetch_all(connector(fake, "cloud"))
    query = fake.searches()[0].query
    assert query["fields"] == [
        "created", "updated", "resolutiondate", "status", "resolution", "priority", "project", "components",
        "customfield_10020", "customfield_10021", "customfield_10030", "customfield_10031", "customfield_10040",
        "labels",
    ]  # fmt: skip
    assert query["expand"] == ["changelog"]
    assert query["maxResults"] == ["2"]


def test_feedback_endpoint_when_the_satisfaction_field_is_not_visible() -> None:
    with fake_jira("cloud", satisfaction_field=False) as fake:
        fake.feedback = {"HELP-1": 4}
        batches = fetch_all(connector(fake, "cloud", csat_feedback_endpoint=True))
    surveys = [s for b in batches for s in b.surveys]
    # No date on the endpoint: the resolution date stands in for the submission time. Its comment counts, unread.
    assert surveys == [replace(csat("10001", "HELP-1", 4.0, at(3, 12)), commented=True)]
    asked = [r for r in fake.requests if r.path.startswith("/rest/servicedeskapi/")]
    assert [r.path for r in asked] == [  # resolved or closed ones only, by updated
        "/rest/servicedeskapi/request/HELP-8/feedback",
        "/rest/servicedeskapi/request/HELP-1/feedback",
        "/rest/servicedeskapi/request/HELP-3/feedback",
    ]
    assert {r.headers["x-experimentalapi"] for r in asked} == {"opt-in"}


def test_ratings_are_stored_under_the_csat_question_whatever_the_survey_mapping() -> None:
    # The role of the CSAT question is the config's business at compute time (collectors/roles.py):
    # a mapping edited later applies to the ratings already stored.
    with fake_jira("datacenter") as fake:
        batches = fetch_all(connector(fake, "datacenter", surveys={"overall": ["How satisfied were you?"]}))
    surveys = [s for b in batches for s in b.surveys]
    assert [s.answers for s in surveys] == [
        csat("10001", "HELP-1", 5.0, at(4, 10)).answers,
        csat("10003", "HELP-3", 2.0, at(7, 18)).answers,
    ]


def test_bad_rating_is_skipped_as_a_survey_and_keeps_the_ticket() -> None:
    with fake_jira("cloud") as fake:
        fake.issues["10001"].rating = 9
        batches = fetch_all(connector(fake, "cloud"))
    assert [s for b in batches for s in b.skipped if s.kind == "survey"] == [
        SkippedRecord("survey", "HELP-1", "bad_rating", "question 'csat': value 9.0 outside its scale 1.0..5.0")
    ]
    assert "HELP-1" in [t.key for b in batches for t in b.tickets]


# -- auth, observer ----------------------------------------------------------------------------


def test_cloud_sends_basic_email_and_api_token() -> None:
    with fake_jira("cloud") as fake:
        fetch_all(connector(fake, "cloud"))
    expected = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
    assert {r.headers["authorization"] for r in fake.requests} == {expected}
    assert {r.headers["user-agent"].split("/")[0] for r in fake.requests} == {"itsm-exporter"}


def test_data_center_sends_the_personal_access_token_as_bearer() -> None:
    with fake_jira("datacenter") as fake:
        fetch_all(connector(fake, "datacenter"))
    assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {TOKEN}"}


def test_token_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    with fake_jira("datacenter") as fake:
        settings = source_settings(fake.url, "datacenter")
        del settings["token"]
        source = JiraSource.model_validate(settings | {"token_file": str(secret)})
        batches = fetch_all(JiraConnector(source, sleep=Waits()))
    assert len([t for b in batches for t in b.tickets]) == 7


def test_every_request_goes_through_the_observer() -> None:
    codes: list[str] = []
    with fake_jira("cloud") as fake:
        fake.fail(503, "/search/jql", retry_after="0")
        fetch_all(JiraConnector(jira_source(fake.url, "cloud"), codes.append, sleep=Waits()))
    assert len(codes) == len(fake.requests)
    assert codes.count("503") == 1 and set(codes) == {"200", "503"}


# -- errors ------------------------------------------------------------------------------------


def test_401_is_an_auth_error_naming_url_and_user_but_not_the_token() -> None:
    with fake_jira("cloud") as fake:
        bad = connector(fake, "cloud", token="wrong-token")
        with pytest.raises(AuthError) as raised:
            fetch_all(bad)
    message = str(raised.value)
    assert message == (
        f"source jsm: serverInfo at {fake.url}: HTTP 401, user {EMAIL} was refused: "
        "Client must be authenticated to access this resource."
    )
    assert "wrong-token" not in message


def test_403_on_data_center_names_the_token_kind() -> None:
    with fake_jira("datacenter") as fake:
        fake.fail(403, "/search", body={"errorMessages": ["You do not have permission to browse HELP."], "errors": {}})
        with pytest.raises(AuthError) as raised:
            fetch_all(connector(fake, "datacenter"))
    assert str(raised.value) == (
        f"source jsm: search at {fake.url}: HTTP 403, the personal access token may not read it: "
        "You do not have permission to browse HELP."
    )


def test_400_joins_error_messages_and_field_errors() -> None:
    with fake_jira("cloud") as fake:
        with pytest.raises(BadRequest) as raised:
            fetch_all(connector(fake, "cloud", jql="project = NOPE"))
        fake.fail(400, "/search/jql", body={"errorMessages": ["Bad query."], "errors": {"jql": "not allowed"}})
        with pytest.raises(BadRequest) as both:
            fetch_all(connector(fake, "cloud"))
    assert str(raised.value) == (
        f"source jsm: search at {fake.url}: HTTP 400, the request was rejected: "
        "The value 'NOPE' does not exist for the field 'project'."
    )
    assert str(both.value).endswith("HTTP 400, the request was rejected: Bad query.; jql: not allowed")


def test_order_by_in_the_configured_jql_is_refused() -> None:
    source = JiraSource.model_validate(
        source_settings("http://127.0.0.1:9", "cloud", jql="project = HELP order by key")
    )
    with pytest.raises(BadRequest, match="jql must not contain ORDER BY"):
        run_plan(JiraConnector(source))


def test_data_center_mode_against_cloud_explains_the_removed_search() -> None:
    with fake_jira("cloud") as fake:
        source = JiraSource.model_validate(source_settings(fake.url, "cloud", deployment="datacenter"))
        with pytest.raises(BadRequest) as raised:
            fetch_all(JiraConnector(source, sleep=Waits()))
    message = str(raised.value)
    assert message.startswith(f"source jsm: search at {fake.url}: HTTP 410, the request was rejected: The requested")
    assert message.endswith(". The API was removed: on Jira Cloud set deployment: cloud (or auto) so that the "
                            "connector uses the enhanced search /rest/api/3/search/jql")  # fmt: skip
    assert fake.searches()[0].path == "/rest/api/2/search"


def test_429_waits_retry_after_then_succeeds() -> None:
    waits = Waits()
    with fake_jira("cloud") as fake:
        fake.fail(429, "/search/jql", retry_after="7")
        batches = fetch_all(connector(fake, "cloud", waits))
    assert waits.seconds == [7.0]
    assert len([t for b in batches for t in b.tickets]) == 7


def test_429_after_the_allowed_retries_is_rate_limited() -> None:
    waits = Waits()
    with fake_jira("cloud") as fake:
        fake.fail(429, "/search/jql", retry_after="3", times=3)
        with pytest.raises(RateLimited) as raised:
            fetch_all(connector(fake, "cloud", waits))
    assert waits.seconds == [3.0, 3.0]
    assert raised.value.retry_after == 3.0
    assert str(raised.value) == f"source jsm: search at {fake.url}: HTTP 429, still rate-limited after 2 retries"


def test_503_without_retry_after_backs_off_with_jitter() -> None:
    waits = Waits()
    with fake_jira("datacenter") as fake:
        fake.fail(503, "/rest/api/2/search", times=2)
        fetch_all(connector(fake, "datacenter", waits))
    # 5 s doubling, x (0.7 + 0.6 x 0.5).
    assert waits.seconds == [5.0, 10.0]


def test_503_after_the_allowed_retries_is_unavailable() -> None:
    waits = Waits()
    with fake_jira("datacenter") as fake:
        fake.fail(503, "/serverInfo", times=3)
        with pytest.raises(UpstreamUnavailable) as raised:
            fetch_all(connector(fake, "datacenter", waits))
    assert str(raised.value) == (
        f"source jsm: serverInfo at {fake.url}: HTTP 503 Service Unavailable after 2 retries: Service Unavailable"
    )
    assert waits.seconds == [5.0, 10.0]
    assert [r.path for r in fake.requests] == ["/rest/api/2/serverInfo"] * 3


def test_500_is_retried_with_the_same_back_off() -> None:
    waits = Waits()
    with fake_jira("cloud") as fake:
        fake.fail(500, "/field", times=2)
        batches = fetch_all(connector(fake, "cloud", waits))
    assert waits.seconds == [5.0, 10.0]
    assert len([t for b in batches for t in b.tickets]) == 7
    assert [r.path for r in fake.requests[1:6]] == [
        "/rest/api/3/serverInfo", *["/rest/api/3/field"] * 3, "/rest/api/3/status",
    ]  # fmt: skip


def test_no_retries_when_max_retries_is_zero() -> None:
    waits = Waits()
    with fake_jira("cloud") as fake:
        fake.fail(502, "/search/jql", body="<html><body>Bad Gateway</body></html>")
        fake.faults[-1].content_type = "text/html"
        with pytest.raises(UpstreamUnavailable) as raised:
            fetch_all(connector(fake, "cloud", waits, max_retries=0))
    assert str(raised.value) == (f"source jsm: search at {fake.url}: HTTP 502 Bad Gateway: non-JSON body (text/html)")
    assert waits.seconds == []


def test_connection_refused_is_unavailable_after_the_retries() -> None:
    waits = Waits()
    with fake_jira("cloud") as fake:
        url = fake.url
    with pytest.raises(UpstreamUnavailable) as raised:
        fetch_all(JiraConnector(jira_source(url, "cloud"), sleep=waits, jitter=lambda: 0.5))
    host = url.removeprefix("http://")
    assert str(raised.value) == (
        f"source jsm: serverInfo at {url}: connection refused by {host} after 2 retries: check the source's url "
        "(host and port), and that the instance is up and reachable from here"
    )
    assert waits.seconds == [5.0, 10.0]


def test_an_html_page_instead_of_json_is_unavailable_and_not_retried() -> None:
    waits = Waits()
    with fake_jira("cloud") as fake:
        page = "<html><body>Maintenance</body></html>"
        fake.faults.append(Fault(200, page, "/search/jql", content_type="text/html; charset=utf-8"))
        with pytest.raises(UpstreamUnavailable) as raised:
            fetch_all(connector(fake, "cloud", waits))
    assert str(raised.value) == (
        f"source jsm: search at {fake.url}: answered with an HTML page, not JSON "
        "(hibernating, in maintenance, or a login page?)"
    )
    assert waits.seconds == [] and len(fake.searches()) == 1


def test_a_body_that_is_neither_json_nor_html_is_a_schema_error() -> None:
    with fake_jira("cloud") as fake:
        for _ in range(3):  # the first try and the 2 retries
            fake.faults.append(Fault(200, "issues: none", "/search/jql", content_type="text/plain"))
        with pytest.raises(SchemaError) as raised:
            fetch_all(connector(fake, "cloud"))
        assert len(fake.searches()) == 3
    assert str(raised.value) == (f"source jsm: search at {fake.url}: the answer is not valid JSON after 2 retries")


def test_a_401_html_login_page_names_its_type_not_its_text() -> None:
    with fake_jira("datacenter") as fake:
        fake.fail(401, "/serverInfo", body="<html><title>Sign in</title><p>secret-ish banner</p></html>")
        fake.faults[-1].content_type = "text/html"
        with pytest.raises(AuthError) as raised:
            fetch_all(connector(fake, "datacenter"))
    assert str(raised.value) == (
        f"source jsm: serverInfo at {fake.url}: HTTP 401, the personal access token was refused: "
        "non-JSON body (text/html)"
    )


def test_search_page_without_issues_list_is_a_schema_error() -> None:
    with fake_jira("datacenter") as fake:
        fake.faults.append(Fault(200, {"startAt": 0, "total": 3}, "/rest/api/2/search"))
        with pytest.raises(SchemaError, match="answered without an issues list"):
            fetch_all(connector(fake, "datacenter"))


def test_auto_detects_cloud_from_server_info_and_searches_v3() -> None:
    with fake_jira("cloud") as fake:
        fetch_all(connector(fake, "cloud"))
    paths = [r.path for r in fake.requests[:3]]
    assert paths == ["/rest/api/2/serverInfo", "/rest/api/3/serverInfo", "/rest/api/3/field"]


# -- the command line --------------------------------------------------------------------------


def test_once_against_the_fake_prints_hand_checked_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_jira("datacenter") as fake:
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
store: {{path: {tmp_path / "store.db"}}}
windows: [7d]
group_by: [priority]
sources:
  - name: jsm
    kind: jira
    url: {fake.url}
    token: {TOKEN}
    priority_map: {{Urgent: p1}}
    complaints: {{labels: [complaint]}}
""",
            encoding="utf-8",
        )
        code = main(["once", "--config", str(config), "--as-of", "2025-03-08T00:00:00Z"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "survey question" not in err  # no surveys block: the CSAT rating is the overall question, no warning
    lines = set(out.splitlines())
    # Window (Mar 1 00:00, Mar 8 00:00]: opened HELP-1..8 except the skipped HELP-6.
    for line in (
        'itsm_tickets_opened{priority="p1",source="jsm",window="7d"} 2.0',  # HELP-2 Highest, HELP-7 Urgent
        'itsm_tickets_opened{priority="p3",source="jsm",window="7d"} 2.0',  # HELP-5 (canceled), HELP-8
        'itsm_tickets_resolved{priority="p4",source="jsm",window="7d"} 1.0',  # HELP-3, closed
        'itsm_tickets_reopened{priority="p4",source="jsm",window="7d"} 1.0',
        'itsm_sla_tickets{outcome="breached",priority="p4",sla="resolution",source="jsm",window="7d"} 1.0',
        'itsm_sla_tickets{outcome="met",priority="p2",sla="resolution",source="jsm",window="7d"} 1.0',
        'itsm_backlog_tickets{priority="p1",source="jsm"} 2.0',
        'itsm_backlog_tickets{priority="p5",source="jsm"} 1.0',
        'itsm_complaints_opened{priority="p5",source="jsm",window="7d"} 1.0',
        'itsm_survey_responses{priority="p2",source="jsm",window="7d"} 1.0',
        'itsm_survey_mapping_answers{role="overall",source="jsm"} 2.0',  # HELP-1 and HELP-3's ratings
        'itsm_survey_mapping_answers{role="unmapped",source="jsm"} 0.0',
        'itsm_source_up{source="jsm"} 1.0',
        'itsm_source_records_synced_total{kind="ticket",source="jsm"} 7.0',
        'itsm_source_records_synced_total{kind="survey",source="jsm"} 2.0',
    ):
        assert line in lines, line


@pytest.mark.parametrize("mode", MODES)
def test_issue_updated_between_pages_is_stored_in_its_newer_version(mode: Mode, tmp_path: Path) -> None:
    def update_help5_after_first_page(fake: FakeJira, request: RecordedRequest) -> None:
        if request.path in ("/rest/api/3/search/jql", "/rest/api/2/search") and len(fake.searches()) == 2:
            fake.issues["10005"].priority, fake.issues["10005"].updated = "Blocker", at(8, 9)

    store = Store(tmp_path / "store.db")
    with fake_jira(mode) as fake:
        fake.on_request = update_help5_after_first_page
        sync(fake, mode, store)
    help5 = ticket("10005", "HELP-5", at(6, 11), at(8, 9), state="canceled", closed_at=at(6, 12, 30), priority="p1")
    expected = [help5 if t.id == "10005" else t for t in expected_first_tickets()]
    assert stored_tickets(store, "jsm") == expected
    assert stored_iso(store, "jsm", "ticket") == "2025-03-08T09:00:00+00:00"


def test_an_overlap_repeat_is_read_once_per_version() -> None:
    with fake_jira("cloud") as fake:
        conn = connector(fake, "cloud")
        try:
            batches = run_plan(conn, {"ticket": "2025-03-07T18:00:00+00:00"}, overlap=timedelta(minutes=5))
        finally:
            conn.close()
    assert [t.key for b in batches for t in b.tickets] == ["HELP-3"]


# -- lookups: get by id, id-only sweeps (the primitives of the backfill and reconcile plans) -------


@pytest.mark.parametrize("mode", MODES)
def test_get_reads_issues_by_id_with_their_ratings(mode: Mode) -> None:
    with fake_jira(mode) as fake:
        conn = connector(fake, mode)
        try:
            page = conn.get("ticket", ["10003", "10001", "99999", "10001", "not-an-id"])
        finally:
            conn.close()
        jqls = [r.query["jql"][0] for r in fake.searches()]
    by_id = {t.id: t for t in expected_first_tickets()}
    assert sorted(page.tickets, key=lambda t: t.id) == [by_id["10001"], by_id["10003"]]
    assert sorted(page.surveys, key=lambda s: s.id) == [
        s for s in expected_first_surveys() if s.ticket_id in ("10001", "10003")
    ]
    assert jqls == ["id in (10003, 10001, 99999) ORDER BY key ASC"]


@pytest.mark.parametrize("mode", MODES)
def test_ids_sweeps_issue_ids_without_fields_or_changelogs(mode: Mode) -> None:
    with fake_jira(mode) as fake:
        conn = connector(fake, mode)
        try:
            pages = list(conn.ids("ticket", None))
        finally:
            conn.close()
        searches = fake.searches()
    assert sorted(i for p in pages for i in p) == sorted(fake.issues)
    assert all("changelog" not in ",".join(r.query.get("expand", [])) for r in searches)
    assert {",".join(r.query.get("fields", [])) for r in searches} == {"updated"}


def test_organizations_request_type_and_custom_fields_are_segments_from_the_same_search() -> None:
    segments = {"organization": "Organizations", "request_type": "requesttype", "team": "customfield_10040"}
    with fake_jira("cloud") as fake:
        help1 = fake.issues["10001"]
        help1.organizations, help1.team, help1.comment = ["Warehouse", "ACME"], "Blue", "Nobody called back"
        plain = fetch_all(connector(fake, "cloud"))
        asked = len(fake.requests)
        fake.requests.clear()
        batches = fetch_all(connector(fake, "cloud", segments=segments))
    # The same requests with segments configured: their fields ride along in each search.
    assert len(fake.requests) == asked
    searches = [r for r in fake.requests if r.path.endswith("/search/jql")]
    assert all({"customfield_10002", "customfield_10010", "customfield_10040"} <= set(r.query["fields"])
               for r in searches)  # fmt: skip
    tickets = {t.key: t.segments for b in batches for t in b.tickets}
    assert tickets["HELP-1"] == (
        Segment("organization", "Warehouse"), Segment("request_type", "Get IT help"), Segment("team", "Blue"),
    )  # fmt: skip
    assert all(not t.segments for b in plain for t in b.tickets)
    rated = {s.ticket_key: s.commented for b in batches for s in b.surveys}
    assert rated["HELP-1"] is True and not any(v for k, v in rated.items() if k != "HELP-1")
