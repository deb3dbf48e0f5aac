"""Business-time families on small inline frames: exact values, calendars per source and group, the overdue edge.

The desk works 09:00-17:00 Monday to Friday in Berlin (summer time, UTC+2), with Germany's public holidays;
the network operations centre works around the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import Config, parse_config
from itsm_exporter.frames import Frames
from itsm_exporter.records import Segment, Ticket

BERLIN_SUMMER = timedelta(hours=2)
MINUTE = timedelta(minutes=1)
CALENDARS = {
    "desk": {"timezone": "Europe/Berlin", "hours": {"mon-fri": ["09:00-17:00"]}, "holidays": {"country": "DE"}},
    "noc": {"timezone": "UTC", "hours": {"mon-sun": ["00:00-24:00"]}},
}


def berlin(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 6) -> datetime:
    """A wall-clock time in Berlin in 2024 (summer time), as UTC."""
    return datetime(2024, month, day, hour, minute, second, tzinfo=UTC) - BERLIN_SUMMER


FRIDAY_1800 = berlin(7, 18)
MONDAY_0910 = berlin(10, 9, 10)


def config(*sources: dict[str, Any], **top: Any) -> Config:
    raw = {"windows": ["7d"], "buckets": [300, 900, 3600], "calendars": CALENDARS, "sources": list(sources), **top}
    return parse_config(raw, check_files=False)


DESK_SOURCE = {"name": "sn", "kind": "demo", "calendar": "desk", "calendar_by_group": {"Network Operations": "noc"}}


def ticket(ticket_id: str, opened: datetime, state: str = "open", source: str = "sn", **fields: Any) -> Ticket:
    fields.setdefault("group", "desk")
    return Ticket(source, ticket_id, f"K-{ticket_id}", opened, state, opened, **fields)  # type: ignore[arg-type]


def compute(tickets: list[Ticket], as_of: datetime, cfg: Config) -> list[Metric]:
    return compute_metrics(Frames.from_records(tickets, []), as_of, cfg)


def value(metrics: list[Metric], name: str, **labels: str) -> float | None:
    wanted = {"source": "sn", "group": "desk", **labels}
    found = [s.value for f in metrics for s in f.samples if s.name == name and s.labels == wanted]
    assert len(found) <= 1, f"{name}{labels}: {found}"
    return found[0] if found else None


def test_friday_evening_to_monday_morning_is_ten_business_minutes() -> None:
    """The issue's case: opened Friday 18:00, answered Monday 09:10, resolved Monday 11:00."""
    tickets = [
        ticket("t", FRIDAY_1800, "resolved", first_response_at=MONDAY_0910, resolved_at=berlin(10, 11), complaint=True)
    ]
    metrics = compute(tickets, berlin(10, 12), config(DESK_SOURCE))
    week = {"window": "7d"}
    assert value(metrics, "itsm_first_response_business_time_seconds_gsum", **week) == 600
    assert value(metrics, "itsm_first_response_business_time_seconds_bucket", le="900.0", **week) == 1
    assert value(metrics, "itsm_first_response_business_time_seconds_bucket", le="300.0", **week) == 0
    assert value(metrics, "itsm_resolution_business_time_seconds_gsum", **week) == 2 * 3600
    assert value(metrics, "itsm_complaint_resolution_business_time_seconds_gsum", **week) == 2 * 3600
    # The wall clock's families stay as they are: 63 h 10 min.
    assert value(metrics, "itsm_first_response_time_seconds_gsum", **week) == 63 * 3600 + 600


@pytest.mark.parametrize(
    ("as_of", "business_age", "overdue"),
    [
        (berlin(7, 23), 0, False),
        (berlin(8, 12), 0, False),
        (berlin(9, 23, 59), 0, False),
        (berlin(10, 9), 0, False),
        (berlin(10, 9, 4, 59), 299, False),
        (berlin(10, 9, 5), 300, False),  # exactly the 5-minute target: not over it yet
        (berlin(10, 9, 5, 1), 301, True),
    ],
    ids=["friday-night", "saturday", "sunday-night", "monday-0900", "monday-0904", "monday-0905", "monday-090501"],
)
def test_a_ticket_waiting_over_the_weekend_is_overdue_only_after_monday_0905(
    as_of: datetime, business_age: float, overdue: bool
) -> None:
    """What ITSMFirstResponseOverdue reads: the business age, and whether it is beyond the 300 s bucket bound."""
    metrics = compute([ticket("waiting", FRIDAY_1800)], as_of, config(DESK_SOURCE))
    assert value(metrics, "itsm_awaiting_first_response_business_age_seconds_gsum") == business_age
    within = value(metrics, "itsm_awaiting_first_response_business_age_seconds_bucket", le="300.0")
    assert within == (0 if overdue else 1)
    assert value(metrics, "itsm_awaiting_first_response_age_seconds_gsum") == (as_of - FRIDAY_1800).total_seconds()
    assert value(metrics, "itsm_backlog_business_age_seconds_gsum") == business_age


def test_a_public_holiday_does_not_count() -> None:
    """3 October (German Unity Day) 2024 was a Thursday: opened then at 10:00, answered Friday 09:30."""
    opened, answered = berlin(3, 10, month=10), berlin(4, 9, 30, month=10)
    metrics = compute([ticket("t", opened, first_response_at=answered)], berlin(4, 12, month=10), config(DESK_SOURCE))
    assert value(metrics, "itsm_first_response_business_time_seconds_gsum", window="7d") == 30 * 60


def test_calendars_per_source_and_group_and_the_info_series() -> None:
    """The desk on its calendar, Network Operations on the 24x7 one (business time = wall time), and a source
    with no calendar: no business series and no info series for it."""
    cfg = config(DESK_SOURCE, {"name": "lab", "kind": "demo"})
    opened = FRIDAY_1800
    as_of = berlin(10, 12)
    tickets = [
        ticket("desk", opened),
        ticket("noc", opened, group="Network Operations"),
        ticket("lab", opened, source="lab", group="bench"),
    ]
    metrics = compute(tickets, as_of, cfg)
    wall = (as_of - opened).total_seconds()
    age = "itsm_backlog_business_age_seconds_gsum"
    assert value(metrics, age) == 3 * 3600
    assert value(metrics, age, group="Network Operations") == wall
    assert value(metrics, age, source="lab", group="bench") is None
    assert value(metrics, "itsm_backlog_age_seconds_gsum", source="lab", group="bench") == wall
    info = [(s.labels, s.value) for f in metrics for s in f.samples if s.name == "itsm_calendar_info"]
    assert info == [
        ({"source": "sn", "group": "Network Operations", "calendar": "noc"}, 1.0),
        ({"source": "sn", "group": "desk", "calendar": "desk"}, 1.0),
    ]


def test_the_top_level_calendar_applies_to_every_source_without_one() -> None:
    cfg = config({"name": "sn", "kind": "demo"}, {"name": "lab", "kind": "demo", "calendar": "noc"}, calendar="desk")
    tickets = [ticket("desk", FRIDAY_1800), ticket("lab", FRIDAY_1800, source="lab")]
    metrics = compute(tickets, berlin(10, 12), cfg)
    assert value(metrics, "itsm_backlog_business_age_seconds_gsum") == 3 * 3600
    assert value(metrics, "itsm_backlog_business_age_seconds_gsum", source="lab") == 66 * 3600


def test_without_calendars_no_business_family_is_published() -> None:
    cfg = parse_config({"sources": [{"name": "sn", "kind": "demo"}], "calendars": CALENDARS}, check_files=False)
    metrics = compute([ticket("t", FRIDAY_1800)], berlin(10, 12), cfg)
    assert [f.name for f in metrics if "business" in f.name or "calendar" in f.name] == []


def test_a_segment_view_gets_its_business_time_series_and_its_calendars() -> None:
    """A department whose tickets go to the desk and to the 24x7 centre: its business-time histograms hold the same
    durations as the teams' together (each on its own calendar), and itsm_calendar_info names both calendars."""
    segmented = config({**DESK_SOURCE, "segments": {"department": "department"}}, group_by=["group", "department"])
    answered = {"first_response_at": MONDAY_0910, "segments": (Segment("department", "Warehouse"),)}
    tickets = [
        ticket("1", FRIDAY_1800, **answered),
        ticket("2", FRIDAY_1800, group="Network Operations", **answered),
    ]
    metrics = compute(tickets, MONDAY_0910 + MINUTE, segmented)
    family = "itsm_first_response_business_time_seconds_gsum"
    warehouse = {"source": "sn", "segment": "department", "department": "Warehouse", "window": "7d"}
    teams = [value(metrics, family, group=g, window="7d") for g in ("desk", "Network Operations")]
    assert teams == [600.0, (MONDAY_0910 - FRIDAY_1800).total_seconds()]
    found = [s.value for f in metrics for s in f.samples if s.name == family and s.labels == warehouse]
    assert found == [sum(t for t in teams if t is not None)]
    calendars = {
        s.labels["calendar"]
        for f in metrics
        for s in f.samples
        if s.name == "itsm_calendar_info" and s.labels.get("department") == "Warehouse"
    }
    assert calendars == {"desk", "noc"}
