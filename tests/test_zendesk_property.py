"""Property tests of the Zendesk normalizer (connectors/zendesk/mapping.py).

Two properties. Any ticket the fake can serve (tests/fakes/zendesk.py renders it as the export does)
normalizes to the Ticket its model says, field by field. And any mutation of a served ticket (keys
dropped, values nulled or swapped for other JSON types, impossible times, negative counts, broken
SLA entries) gives a Ticket or a MappingError with a reason: never another exception, so a broken
ticket is skipped and never stops a sync. Derandomized in CI (tests/conftest.py profiles).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from itsm_exporter.connectors.zendesk.config import ZendeskSource
from itsm_exporter.connectors.zendesk.mapping import STATES, MappingError, TicketMapper, survey
from itsm_exporter.records import Ticket
from tests.fakes.zendesk import FakeRating, FakeTicket, FakeZendesk, PolicyMetric, zd_time

BASE = datetime(2025, 3, 1, tzinfo=UTC)
SOURCE = ZendeskSource.model_validate(
    {"name": "zd", "kind": "zendesk", "url": "https://acme.zendesk.com", "email": "a@b.c", "token": "t",
     "complaints": {"tags": ["complaint"], "type": ["problem"], "42": ["yes"]}, "service_field": "brand"}
)  # fmt: skip
GROUPS = {"1": "Support", "2": "Billing"}
BRANDS = {"7": "Acme"}
PRIORITIES = {"urgent": "p1", "high": "p2", "normal": "p3", "low": "p4", None: None}

seconds = st.integers(min_value=0, max_value=60 * 86400)
instants = seconds.map(lambda s: BASE + timedelta(seconds=s))
metrics = st.builds(
    PolicyMetric,
    metric=st.sampled_from(["first_reply_time", "requester_wait_time", "agent_work_time", "next_reply_time"]),
    stage=st.sampled_from(["active", "paused", "achieved"]),
    breach_at=st.none() | instants,
)


@st.composite
def tickets(draw: st.DrawFn) -> FakeTicket:
    created = draw(instants)
    status = draw(st.sampled_from(sorted(STATES)))
    solved = created + timedelta(seconds=draw(seconds)) if status in ("solved", "closed") else None
    return FakeTicket(
        id=draw(st.integers(min_value=1, max_value=10**12)),
        created=created,
        updated=created + timedelta(seconds=draw(seconds)),
        status=status,
        priority=draw(st.sampled_from(["urgent", "high", "normal", "low", None])),
        group_id=draw(st.sampled_from([1, 2, 3, None])),
        brand_id=draw(st.sampled_from([7, None])),
        channel=draw(st.sampled_from(["web", "email", "api", "voice"])),
        tags=draw(st.lists(st.sampled_from(["complaint", "vip", "Complaint"]), max_size=3)),
        type=draw(st.sampled_from(["incident", "problem", "question", None])),
        custom_fields=draw(st.dictionaries(st.sampled_from([42, 43]), st.sampled_from(["yes", "no", None]))),
        reply_seconds=draw(st.none() | seconds),
        solved_at=solved,
        reopens=draw(st.integers(min_value=0, max_value=5)),
        group_stations=draw(st.integers(min_value=0, max_value=5)),
        assignee_stations=draw(st.integers(min_value=0, max_value=5)),
        policy=draw(st.lists(metrics, max_size=4)),
    )


def served(ticket: FakeTicket) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ticket and its metric set as the fake's export serves them."""
    fake = FakeZendesk(now=lambda: BASE.timestamp())
    return fake.render(ticket, slas=True), fake.metric_set(ticket)


def first(policy: list[PolicyMetric], names: list[str]) -> PolicyMetric | None:
    return next((m for name in names for m in policy if m.metric == name), None)


@given(tickets())
def test_a_served_ticket_normalizes_to_its_model(model: FakeTicket) -> None:
    raw, metric_set = served(model)
    ticket = TicketMapper(SOURCE, GROUPS, BRANDS).ticket(raw, metric_set)
    first_response = model.created + timedelta(seconds=model.reply_seconds) if model.reply_seconds is not None else None
    state = STATES[model.status]
    assert (ticket.id, ticket.key, ticket.state, ticket.opened_at, ticket.updated_at) == (
        str(model.id), str(model.id), state, model.created, model.updated,
    )  # fmt: skip
    assert ticket.first_response_at == first_response
    assert ticket.resolved_at == (model.solved_at if state in ("resolved", "closed") else None)
    assert ticket.priority == PRIORITIES[model.priority]
    assert ticket.group == ({1: "Support", 2: "Billing", 3: "3", None: None}[model.group_id])
    assert ticket.service == ("Acme" if model.brand_id == 7 else None)
    assert ticket.reassignments == max(model.group_stations - 1, model.assignee_stations - 1, 0)
    assert ticket.reopens == model.reopens
    assert ticket.complaint == (
        "complaint" in {t.casefold() for t in model.tags}
        or model.type == "problem"
        or model.custom_fields.get(42) == "yes"
    )
    fulfilled = {"response": first_response, "resolution": model.solved_at}
    for goal, names in SOURCE.sla_metrics.items():
        metric = first(model.policy, list(names))
        outcome = ticket.sla_response if goal == "response" else ticket.sla_resolution
        done = fulfilled[goal]
        if metric is None or metric.stage != "achieved":
            assert outcome == "unknown"
        elif done is not None and metric.breach_at is not None and done > metric.breach_at:
            assert outcome == "breached"
        else:
            assert outcome == "met"
        clock = next((c for c in ticket.sla_clocks if c.sla == goal), None)
        running = state in ("open", "on_hold") and metric is not None and metric.stage in ("active", "paused")
        assert (clock is not None) == running
        if clock is not None and metric is not None:
            assert (clock.breach_at, clock.paused) == (metric.breach_at, metric.stage == "paused")


JSON_VALUES = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=8)
JSON_VALUES |= st.sampled_from(["2025-13-45T99:00:00Z", "2025-03-01T00:00:00", "9999-12-31T23:59:59+00:00", "\ud800"])
JSON_VALUES |= st.lists(st.integers(), max_size=2) | st.dictionaries(st.sampled_from(["calendar", "id"]), st.integers())

TICKET_KEYS = ["id", "created_at", "updated_at", "status", "priority", "group_id", "brand_id", "via", "tags",
               "type", "custom_fields", "slas"]  # fmt: skip
METRIC_KEYS = ["reply_time_in_seconds", "reply_time_in_minutes", "solved_at", "status_updated_at", "reopens",
               "group_stations", "assignee_stations"]  # fmt: skip


@given(
    tickets(), st.lists(st.tuples(st.booleans(), st.sampled_from(TICKET_KEYS + METRIC_KEYS), JSON_VALUES), max_size=4)
)
@example(  # found by the thorough profile: a reply time past any datetime, from the last second of year 9999
    FakeTicket(1, BASE, BASE, reply_seconds=1),
    [(False, "reply_time_in_seconds", {"calendar": 2**70}), (False, "created_at", "9999-12-31T23:59:59+00:00")],
)
@example(FakeTicket(1, BASE, BASE, reply_seconds=1), [(False, "created_at", "9999-12-31T23:59:59+00:00")])
def test_a_broken_ticket_is_a_mapping_error_never_a_crash(model: FakeTicket, mutations: list[Any]) -> None:
    raw, metric_set = served(model)
    raw, metric_set = copy.deepcopy(raw), copy.deepcopy(metric_set)
    for drop, key, value in mutations:
        target = metric_set if key in METRIC_KEYS else raw
        if drop:
            target.pop(key, None)
        else:
            target[key] = value
    try:
        ticket = TicketMapper(SOURCE, GROUPS, BRANDS).ticket(raw, metric_set)
    except MappingError as error:
        assert error.reason and str(error)
    else:
        assert isinstance(ticket, Ticket)
        assert all(c.sla in ("response", "resolution") for c in ticket.sla_clocks)


@given(st.sampled_from(["good", "bad", "offered", "unoffered"]), instants, instants)
def test_a_rating_is_an_answer_on_zero_to_one_only_once_received(
    score: str, created: datetime, updated: datetime
) -> None:
    rating = FakeZendesk._rating(FakeRating(5, 9, score, created, updated))
    response = survey("zd", rating)
    if score in ("offered", "unoffered"):
        assert response is None
        return
    assert response is not None
    assert (response.id, response.ticket_id, response.submitted_at) == ("5", "9", updated)
    assert [(a.question_id, a.value, a.scale_min, a.scale_max) for a in response.answers] == [
        ("csat", 1.0 if score == "good" else 0.0, 0.0, 1.0)
    ]


def test_zd_time_is_what_the_mapper_parses() -> None:
    assert zd_time(BASE + timedelta(seconds=1)) == "2025-03-01T00:00:01Z"
