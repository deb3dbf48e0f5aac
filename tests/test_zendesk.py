"""The Zendesk connector against a fake account speaking Zendesk's wire format (tests/fakes/zendesk.py).

Expected records are written out by hand from the fake's instants, not derived by the mapping code.
Time is one hand-moved clock shared by the fake (hold-back, rate limit) and the connector (its waits
advance it): nothing sleeps.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from itsm_exporter.connectors.base import AuthError, BadRequest, RateLimited
from itsm_exporter.connectors.zendesk.config import ZendeskSource
from itsm_exporter.connectors.zendesk.connector import ZendeskConnector
from itsm_exporter.connectors.zendesk.mapping import CSAT_QUESTION_TEXT
from itsm_exporter.records import Answer, Segment, SlaClock, SurveyResponse, Ticket
from itsm_exporter.store import Store
from tests.fakes.zendesk import (
    COMPLAINT_FIELD,
    EMAIL,
    OAUTH_TOKEN,
    TIER_FIELD,
    TOKEN,
    FakeRating,
    FakeTicket,
    FakeZendesk,
    at,
    fake_zendesk,
)
from tests.plans import run_plan, synced
from tests.storeread import stored_surveys, stored_tickets

pytestmark = pytest.mark.integration

FEB = datetime(2025, 2, 1, tzinfo=UTC)


class Clock:
    """The one clock of a test: the fake reads it, the connector's waits move it (and are recorded)."""

    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def settings(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "zd",
        "kind": "zendesk",
        "url": url,
        "email": EMAIL,
        "token": TOKEN,
        "complaints": {"tags": ["complaint"], str(COMPLAINT_FIELD): ["formal_complaint"]},
        "page_size": 3,
        "max_retries": 2,
    } | extra


def connector(fake: FakeZendesk, clock: Clock, **extra: Any) -> ZendeskConnector:
    source = ZendeskSource.model_validate(settings(fake.url, **extra))
    return ZendeskConnector(source, sleep=clock.sleep, jitter=lambda: 0.5, now=clock, clock=clock)


def ticket(id: int, opened: datetime, updated: datetime, **fields: Any) -> Ticket:
    return Ticket(source="zd", id=str(id), key=str(id), opened_at=opened, updated_at=updated, **fields)


def expected_tickets() -> list[Ticket]:
    """The standard account as tickets (tests/fakes/zendesk.py standard_tickets), ticket 7 deleted."""
    return [
        ticket(
            1, at(2, 9), at(3, 12), state="resolved", first_response_at=at(2, 9, 30), resolved_at=at(3, 12),
            priority="p1", group="Support", service="Acme", channel="email", reopens=1,
            sla_response="met", sla_resolution="met",
        ),
        ticket(
            2, at(2, 9), at(4, 8), state="resolved", first_response_at=at(2, 11), resolved_at=at(4, 8),
            priority="p2", group="Support", service="Acme", channel="web",
            sla_response="breached", sla_resolution="met",
        ),
        ticket(
            3, at(3, 9), at(5, 9), state="closed", first_response_at=at(3, 9, 10), resolved_at=at(4, 9),
            closed_at=at(5, 9), priority="p3", group="Billing", service="Acme", channel="web", reassignments=1,
            complaint=True,
        ),
        ticket(
            4, at(4, 9), at(6, 10), state="open", first_response_at=at(4, 10), priority="p4", group="Billing",
            service="Acme", channel="web", sla_response="met", sla_clocks=(SlaClock("resolution", at(9)),),
        ),
        ticket(
            5, at(5, 9), at(6, 12), state="on_hold", first_response_at=at(5, 9, 15), priority="p3", group="Support",
            service="Acme", channel="web", complaint=True, sla_clocks=(SlaClock("resolution", None, paused=True),),
        ),
        ticket(
            6, at(6, 9), at(6, 9), state="open", priority="p1", channel="api",
            sla_clocks=(SlaClock("response", at(7, 12)),),
        ),
        ticket(
            8, FEB.replace(hour=9), FEB.replace(day=2, hour=9), state="on_hold",
            first_response_at=FEB.replace(hour=9, minute=2), priority="p2", group="Support", service="Acme",
            channel="web",
        ),
        ticket(
            9, FEB.replace(day=3, hour=9), FEB.replace(day=10, hour=9), state="resolved",
            first_response_at=FEB.replace(day=3, hour=9, minute=1), resolved_at=FEB.replace(day=10, hour=9),
            priority="p3", group="Billing", service="Acme", channel="web",
        ),
    ]  # fmt: skip


def csat(rating: int, ticket: int, score: float, submitted: datetime, *, commented: bool = False) -> SurveyResponse:
    answer = Answer("csat", score, 0.0, 1.0, name="Satisfaction", text=CSAT_QUESTION_TEXT)
    return SurveyResponse(
        "zd", str(rating), submitted, (answer,), ticket_id=str(ticket), ticket_key=str(ticket), commented=commented
    )


def expected_surveys() -> list[SurveyResponse]:
    """Rating 501 carries a comment (marked, its text not kept); 502 a reason only."""
    return [
        csat(501, 1, 1.0, at(3, 15), commented=True),
        csat(502, 2, 0.0, at(4, 20)),
        csat(503, 9, 1.0, at(2, 8)),
    ]


def sync(fake: FakeZendesk, clock: Clock, store: Store, **extra: Any) -> None:
    conn = connector(fake, clock, **extra)
    try:
        synced(conn, store)
    finally:
        conn.close()


def cursor_of(ticket: FakeTicket) -> str:
    return base64.b64encode(f"{ticket.generated_ts}.0||{ticket.id}|".encode()).decode().rstrip("=")


# -- the export ------------------------------------------------------------------------------------


def test_a_first_sync_stores_the_account_and_deletes_the_deleted(tmp_path: Path) -> None:
    clock = Clock(at(8))
    store = Store(tmp_path / "store.db")
    with fake_zendesk(now=clock) as fake:
        store.commit_batch("zd", _stored_first(7))  # stored before its deletion: the export's page removes it
        sync(fake, clock, store)
    assert stored_tickets(store, "zd") == expected_tickets()
    assert stored_surveys(store, "zd") == expected_surveys()


def _stored_first(ticket_id: int) -> Any:
    from itsm_exporter.records import Batch

    return Batch(kind="ticket", tickets=(ticket(ticket_id, at(5, 9), at(5, 9), state="open"),))


def test_pages_carry_the_cursor_as_token_and_the_newest_generated_timestamp_as_position() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        batches = run_plan(connector(fake, clock))
        tickets = sorted(fake.tickets.values(), key=lambda t: (t.generated_ts, t.id))
    ticket_batches = [b for b in batches if b.kind == "ticket"]
    assert [[t.id for t in b.tickets] for b in ticket_batches] == [["8", "9", "1"], ["2", "3", "6"], ["4", "5"]]
    assert ticket_batches[-1].deleted_ticket_ids == ("7",)
    assert [b.state.token for b in ticket_batches if b.state] == [cursor_of(tickets[i]) for i in (2, 5, 8)]
    assert [b.state.watermark for b in ticket_batches if b.state] == [at(3, 12), at(6, 9), at(6, 14)]
    # The ratings' position comes with their last page only: the list is in id order.
    survey_batches = [b for b in batches if b.kind == "survey"]
    assert [b.state.watermark for b in survey_batches if b.state] == [at(4, 20)]


def test_the_export_asks_for_its_sideloads_and_goes_on_by_cursor_never_by_after_url() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        run_plan(connector(fake, clock))
        exports = fake.exports()
    assert [r.param("start_time") for r in exports] == ["0", None, None]
    assert [r.param("cursor") is not None for r in exports] == [False, True, True]
    assert {r.param("include") for r in exports} == {"metric_sets,slas,groups,brands"}
    assert {r.param("per_page") for r in exports} == {"3"}
    # Each page is asked for on the configured URL by the previous page's cursor; its after_url names the
    # public host (PUBLIC_URL), where a request would never reach this fake.
    order = sorted(fake.tickets.values(), key=lambda t: (t.generated_ts, t.id))
    assert [r.param("cursor") for r in exports[1:]] == [cursor_of(order[2]), cursor_of(order[5])]


def test_an_incremental_sync_goes_on_from_the_stored_cursor_and_reads_only_the_changes(tmp_path: Path) -> None:
    clock = Clock(at(8))
    store = Store(tmp_path / "store.db")
    with fake_zendesk(now=clock) as fake:
        sync(fake, clock, store)
        before = len(fake.requests)
        fake.tickets[4].status, fake.tickets[4].solved_at = "solved", at(8, 1)
        fake.tickets[4].touch(at(8, 1))
        fake.tickets[4].policy[1].stage = "achieved"
        clock.now = at(8, 2).timestamp()
        sync(fake, clock, store)
        second = fake.requests[before:]
    exports = [r for r in second if r.path.endswith("/cursor")]
    assert len(exports) == 1 and exports[0].param("cursor") is not None
    assert [r.path for r in second] == ["/api/v2/incremental/tickets/cursor", "/api/v2/satisfaction_ratings"]
    changed = {t.id: t for t in stored_tickets(store, "zd")}["4"]
    assert (changed.state, changed.resolved_at, changed.sla_resolution, changed.sla_clocks) == (
        "resolved", at(8, 1), "met", (),
    )  # fmt: skip


def test_the_last_minute_is_held_back_until_it_is_settled(tmp_path: Path) -> None:
    clock = Clock(at(8))
    store = Store(tmp_path / "store.db")
    with fake_zendesk(now=clock) as fake:
        fake.add(FakeTicket(10, at(7, 23, 59, 30), at(7, 23, 59, 30)))
        sync(fake, clock, store)
        assert "10" not in {t.id for t in stored_tickets(store, "zd")}
        clock.now += 60
        sync(fake, clock, store)
    assert "10" in {t.id for t in stored_tickets(store, "zd")}


def test_a_ticket_changed_during_the_export_is_read_again_in_its_newer_version(tmp_path: Path) -> None:
    clock = Clock(at(8))
    store = Store(tmp_path / "store.db")

    def change_ticket_8(fake: FakeZendesk, request: Any) -> None:
        if request.path.endswith("/cursor") and len(fake.exports()) == 2:
            fake.tickets[8].status = "open"
            fake.tickets[8].touch(at(7, 23, 0))

    with fake_zendesk(now=clock) as fake:
        fake.on_request = change_ticket_8
        sync(fake, clock, store)
    stored = {t.id: t for t in stored_tickets(store, "zd")}
    assert (stored["8"].state, stored["8"].updated_at) == ("open", at(7, 23))


def test_a_refused_cursor_falls_back_to_the_watermark(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        conn = connector(fake, clock)
        pages = list(conn.scan("ticket", at(6, 10), "not-a-cursor"))
        exports = fake.exports()
    assert exports[0].param("cursor") == "not-a-cursor"
    assert exports[1].param("start_time") == str(int(at(6, 10).timestamp()))
    assert [t.id for p in pages for t in p.tickets] == ["4", "5"]
    assert "refused the stored export cursor" in caplog.text


def test_start_time_is_never_within_the_held_back_minute() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        list(connector(fake, clock).scan("ticket", at(8) - timedelta(seconds=10), None))
        assert fake.exports()[0].param("start_time") == str(int(at(8).timestamp()) - 61)


def test_the_export_is_paced_to_ten_requests_a_minute_without_a_429() -> None:
    clock = Clock(at(8))
    with FakeZendesk(now=clock) as fake:
        fake.add(*(FakeTicket(n, at(1), at(1) + timedelta(minutes=n)) for n in range(1, 26)))
        pages = list(connector(fake, clock, page_size=1).scan("ticket", None, None))
        exports = fake.exports()
    assert len(pages) == 25 and len(exports) == 25
    # Requests 11 and 21 wait for the first of their minute to leave it; the fake never answered 429.
    assert clock.waits == [60.0, 60.0]
    assert fake.requests == exports


def test_a_429_from_the_account_waits_its_retry_after() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        fake.fail(429, "/cursor", retry_after="37")
        list(connector(fake, clock).scan("ticket", None, None))
    assert clock.waits == [37.0]


def test_429_beyond_the_retries_is_rate_limited_naming_the_export() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        fake.fail(429, "/cursor", retry_after="5", times=3)
        with pytest.raises(RateLimited) as caught:
            list(connector(fake, clock).scan("ticket", None, None))
    assert str(caught.value) == (
        f"source zd: the incremental ticket export at {fake.url}: HTTP 429, still rate-limited after 2 retries"
    )


# -- credentials and errors ------------------------------------------------------------------------


def test_an_api_token_is_sent_as_basic_email_slash_token() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        list(connector(fake, clock).scan("survey", None, None))
        header = fake.requests[0].headers["authorization"]
    assert header == "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()


def test_an_oauth_token_from_its_file_is_sent_as_bearer(tmp_path: Path) -> None:
    clock = Clock(at(8))
    (tmp_path / "oauth").write_text(OAUTH_TOKEN + "\n")
    with fake_zendesk(now=clock) as fake:
        conn = connector(fake, clock, email=None, token=None, oauth_token_file=str(tmp_path / "oauth"))
        list(conn.scan("survey", None, None))
        assert fake.requests[0].headers["authorization"] == f"Bearer {OAUTH_TOKEN}"


def test_a_refused_token_names_its_agent_and_zendesks_words_never_the_token() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock, token="another-token") as fake, pytest.raises(AuthError) as caught:
        list(connector(fake, clock).scan("ticket", None, None))
    assert str(caught.value) == (
        f"source zd: the incremental ticket export at {fake.url}: HTTP 401, the API token of {EMAIL} was refused: "
        "Couldn't authenticate you"
    )
    assert TOKEN not in str(caught.value)


def test_an_agent_that_is_not_an_admin_is_told_what_zendesk_said() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        fake.admin = False
        with pytest.raises(AuthError) as caught:
            list(connector(fake, clock).scan("survey", None, None))
    assert str(caught.value) == (
        f"source zd: the satisfaction ratings at {fake.url}: HTTP 403, the API token of {EMAIL} may not read it: "
        "Forbidden: You do not have access to this page. Please contact the account owner."
    )


def test_a_404_asks_whether_url_is_the_account() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        fake.fail(404, "/cursor")
        with pytest.raises(BadRequest) as caught:
            list(connector(fake, clock).scan("ticket", None, None))
    assert str(caught.value) == (
        f"source zd: the incremental ticket export at {fake.url}: HTTP 404, the request was rejected: "
        "RecordNotFound: Not found. Is url the account's address (https://SUBDOMAIN.zendesk.com)?"
    )


# -- segments and comments ------------------------------------------------------------------------

SEGMENTS = {"customer": "organization", "line": "brand", "tier": str(TIER_FIELD)}


def test_segments_come_from_the_same_requests_as_the_tickets(tmp_path: Path) -> None:
    """Organization and brand names are sideloads of the export (and of show_many), a custom field is on the ticket:
    a sync with segments sends the same requests as one without, the export asking for one more sideload."""
    sent: dict[bool, list[tuple[str, str, str | None]]] = {}
    stored: dict[bool, list[Ticket]] = {}
    for segmented in (False, True):
        clock = Clock(at(8))
        store = Store(tmp_path / f"store-{segmented}.db")
        extra = {"segments": SEGMENTS} if segmented else {}
        with fake_zendesk(now=clock) as fake:
            sync(fake, clock, store, **extra)
            connector(fake, clock, **extra).get("ticket", ["1", "3"])
            sent[segmented] = [(r.method, r.path, r.param("cursor")) for r in fake.requests]
            includes = {r.param("include") for r in [*fake.exports(), *fake.served("/api/v2/tickets/show_many")]}
        stored[segmented] = stored_tickets(store, "zd")
        store.close()
    assert sent[True] == sent[False]
    assert includes == {"metric_sets,slas,groups,brands,organizations"}
    segments = {t.id: t.segments for t in stored[True]}
    assert segments["1"] == (Segment("customer", "Warehouse"), Segment("line", "Acme"), Segment("tier", "gold"))
    assert segments["3"] == (Segment("customer", "Finance"), Segment("line", "Acme"))
    assert segments["6"] == ()  # no organization, no brand, no tier
    assert [replace(t, segments=()) for t in stored[True]] == stored[False] == expected_tickets()


def test_a_rating_s_comment_marks_the_response_and_its_text_stays_in_zendesk(tmp_path: Path) -> None:
    clock = Clock(at(8))
    path = tmp_path / "store.db"
    store = Store(path)
    with fake_zendesk(now=clock) as fake:
        fake.ratings[502].comment = "   "  # blank: no comment
        sync(fake, clock, store)
    assert {s.id: s.commented for s in stored_surveys(store, "zd")} == {"501": True, "502": False, "503": False}
    store.close()
    assert not [p for p in tmp_path.iterdir() if b"Quick!" in p.read_bytes()]


# -- lookups of a bounded first sync ---------------------------------------------------------------


def test_get_reads_tickets_by_id_through_show_many_a_hundred_at_a_time() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        page = connector(fake, clock).get("ticket", ["9", "7", "1", "x", "404", *map(str, range(1000, 1150))])
        shows = fake.served("/api/v2/tickets/show_many")
    by_id = {t.id: t for t in expected_tickets()}
    assert page.tickets == (by_id["9"], by_id["1"])  # in the order asked; deleted 7 and unknown ones absent
    assert [len((r.param("ids") or "").split(",")) for r in shows] == [100, 54]
    assert {r.param("include") for r in shows} == {"metric_sets,slas,groups,brands"}


def test_open_tickets_come_from_the_search_export_whatever_their_age() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        pages = list(connector(fake, clock).open_tickets(at(1), None))
        search = fake.served("/api/v2/search/export")
    assert [t.id for p in pages for t in p.tickets] == ["8"]
    assert [(r.param("query"), r.param("filter[type]")) for r in search] == [
        ("status<solved updated<2025-03-02", "ticket")
    ]
    assert all(p.position is None for p in pages)


def test_ids_sweeps_the_export_for_tickets_that_exist() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        ids = [i for page in connector(fake, clock).ids("ticket", at(5)) for i in page]
    assert sorted(ids) == ["3", "4", "5", "6"]


# -- ratings ---------------------------------------------------------------------------------------


def test_ratings_are_read_from_the_watermark_and_page_by_cursor() -> None:
    clock = Clock(at(8))
    with FakeZendesk(now=clock) as fake:
        fake.rate(*(FakeRating(n, n, "good", at(1), at(2) + timedelta(minutes=n)) for n in range(1, 151)))
        pages = list(connector(fake, clock).scan("survey", at(2), None))
        listed = fake.served("/api/v2/satisfaction_ratings")
    assert [len(p.surveys) for p in pages] == [100, 50]
    assert [p.position for p in pages] == [None, at(2, 2, 30)]
    assert [(r.param("start_time"), r.param("page[after]") is not None) for r in listed] == [
        (str(int(at(2).timestamp())), False),
        (str(int(at(2).timestamp())), True),
    ]


def test_satisfaction_false_reads_no_ratings() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        assert connector(fake, clock, satisfaction=False).phases == ("ticket",)
