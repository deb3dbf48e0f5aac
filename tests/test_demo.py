"""The demo source: deterministic, incremental like a real upstream, and exercising the whole contract."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics, surveys
from itsm_exporter.collectors.calendars import BusinessClock, working_time
from itsm_exporter.config import demo_config
from itsm_exporter.connectors.demo.connector import WATERMELON_DEPARTMENT, WATERMELON_GROUP, DemoConnector, desk_time
from itsm_exporter.frames import Frames
from itsm_exporter.records import Batch, SurveyResponse, Ticket
from itsm_exporter.store import Store
from tests.plans import iso, run_plan, synced
from tests.storeread import stored_count, stored_surveys, stored_tickets

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def connector(tmp_path: Path, now: datetime) -> DemoConnector:
    source = demo_config(tmp_path / "unused.db").sources[0]
    return DemoConnector(source, now=lambda: now)  # type: ignore[arg-type]


def everything(batches: list[Batch]) -> tuple[list[Ticket], list[SurveyResponse]]:
    return [t for b in batches for t in b.tickets], [s for b in batches for s in b.surveys]


def test_same_seed_and_time_give_the_same_service_desk(tmp_path: Path) -> None:
    first = everything(run_plan(connector(tmp_path, AS_OF)))
    again = everything(run_plan(connector(tmp_path, AS_OF)))
    assert first == again
    tickets, surveys = first
    assert 25_000 < len(tickets) < 40_000  # 400 days: the demo shows a year over year
    assert len(surveys) > 8000


def test_a_later_sync_brings_only_changes_and_ends_equal_to_a_fresh_sync(tmp_path: Path) -> None:
    later = AS_OF + timedelta(hours=6)
    incremental = Store(tmp_path / "incremental.db")
    synced(connector(tmp_path, AS_OF), incremental)
    second = synced(connector(tmp_path, later), incremental)
    fresh = Store(tmp_path / "fresh.db")
    synced(connector(tmp_path, later), fresh)
    assert 0 < second.records["ticket"] < stored_count(fresh, "demo", "ticket") / 10
    assert 0 < second.records["survey"] < stored_count(fresh, "demo", "survey") / 10
    # The fresh sync covers 400 days back from `later`; tickets that aged out of that range stay in
    # the incremental store (the store keeps history), so compare on the fresh sync's tickets.
    fresh_tickets = {t.id: t for t in stored_tickets(fresh, "demo")}
    kept = [t for t in stored_tickets(incremental, "demo") if t.id in fresh_tickets]
    assert kept == list(fresh_tickets.values())
    fresh_surveys = {s.id: s for s in stored_surveys(fresh, "demo")}
    assert [s for s in stored_surveys(incremental, "demo") if s.id in fresh_surveys] == list(fresh_surveys.values())


def test_only_the_last_batch_moves_the_watermark(tmp_path: Path) -> None:
    batches = [b for b in run_plan(connector(tmp_path, AS_OF)) if b.kind == "ticket"]
    assert len(batches) > 1
    assert [iso(b) for b in batches[:-1]] == [None] * (len(batches) - 1)
    assert iso(batches[-1]) == AS_OF.isoformat()
    assert batches[-1].fetched_so_far == batches[-1].total_expected


def test_the_planted_watermelon_group_exists_and_states_are_consistent_with_times(tmp_path: Path) -> None:
    tickets, _ = everything(run_plan(connector(tmp_path, AS_OF)))
    groups = {t.group for t in tickets}
    assert WATERMELON_GROUP in groups
    for t in tickets:
        assert t.updated_at <= AS_OF
        if t.state in ("resolved", "closed"):
            assert t.resolved_at is not None and t.resolved_at <= AS_OF
        if t.state in ("open", "on_hold"):
            assert t.resolved_at is None and t.sla_resolution == "unknown"


def test_answers_scored_in_small_chunks_give_the_same_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collectors score answers chunk by chunk; chunk edges (a survey split across two) change nothing."""
    store = Store(tmp_path / "store.db")
    synced(connector(tmp_path, AS_OF), store)
    frames = store.load_frames()
    config = demo_config(tmp_path / "unused.db")
    whole = sample_values(compute_metrics(frames, AS_OF, config))
    assert len(frames.answers) > 1000 * 7  # over a thousand chunks of 7
    monkeypatch.setattr(surveys, "ANSWER_CHUNK", 7)  # 7 does not divide any survey's answer count
    chunked = sample_values(compute_metrics(frames, AS_OF, config))
    assert chunked.keys() == whole.keys()
    assert any(name == "itsm_servqual_gap" for name, _ in whole)
    differing = [key for key, value in whole.items() if not math.isclose(chunked[key], value, rel_tol=1e-12)]
    assert not differing, differing[:5]


def sample_values(families: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


@pytest.mark.parametrize(
    "as_of",
    [
        AS_OF,  # a Friday noon
        datetime(2026, 11, 22, 3, 30, tzinfo=UTC),  # a Sunday night: few tickets
        datetime(2026, 11, 23, 7, 59, 59, tzinfo=UTC),  # Monday, a second before the hour
    ],
)
def test_the_demo_shows_every_live_state_at_any_hour(tmp_path: Path, as_of: datetime) -> None:
    metrics = compute_metrics(
        Frames.from_records(*everything(run_plan(connector(tmp_path, as_of)))), as_of, demo_config(tmp_path / "x.db")
    )
    totals: dict[tuple[str, ...], float] = {}
    for family in metrics:
        for s in family.samples:
            if s.name == "itsm_sla_running_tickets":
                key = (s.labels["sla"], s.labels["state"])
                totals[key] = totals.get(key, 0.0) + s.value
            elif s.name == "itsm_awaiting_first_response_tickets":
                totals[("awaiting",)] = totals.get(("awaiting",), 0.0) + s.value
    # The hourly monitoring alerts keep one resolution clock within the warning at any instant.
    for key in (("resolution", "within"), ("resolution", "at_risk"), ("resolution", "breached"),
                ("resolution", "paused"), ("awaiting",)):  # fmt: skip
        assert totals.get(key, 0) > 0, key


def test_the_warehouse_is_a_watermelon_that_no_team_view_shows(tmp_path: Path) -> None:
    """Issue 28's demo: the department's tickets spread over teams that are not flagged, and it is."""
    config = demo_config(tmp_path / "unused.db")
    tickets = [t for page in connector(tmp_path, AS_OF).scan("ticket", None) for t in page.tickets]
    responses = [s for page in connector(tmp_path, AS_OF).scan("survey", None) for s in page.surveys]
    metrics = compute_metrics(Frames.from_records(tickets, responses), AS_OF, config)
    flags = {
        tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("source", "window"))): s.value
        for family in metrics
        for s in family.samples
        if s.name == "itsm_watermelon" and s.labels["window"] == "30d"
    }
    warehouse = [t for t in tickets if t.segments and t.segments[0].value == WATERMELON_DEPARTMENT]
    teams = {t.group for t in warehouse}
    assert len(teams) >= 3 and WATERMELON_GROUP not in teams
    assert flags[(("department", WATERMELON_DEPARTMENT), ("segment", "department"))] == 1
    assert all(flags[(("group", team),)] == 0 for team in teams)
    assert sum(flags.values()) == 2  # the team watermelon and the planted department, nothing else
    commented = [s for s in responses if s.commented]
    assert 0 < len(commented) < len(responses)


@given(st.floats(0, 3 * 365 * 86400.0), st.floats(0, 90 * 86400.0))
def test_the_desk_s_working_time_is_what_its_calendar_measures(start: float, seconds: float) -> None:
    """The generator's desk hours and the calendar the demo config gives them agree: a delay of `seconds` of
    desk time, measured by the business clock, is `seconds` again (to float rounding over years of epoch)."""
    begin = datetime(2025, 1, 1, tzinfo=UTC).timestamp() + start
    end = desk_time(begin, seconds)
    desk = demo_config(Path("unused.db")).calendars["desk"]
    clock = BusinessClock(calendars=(working_time(desk, begin, end),), calendar_of=np.zeros(1, dtype=np.int64))
    assert clock.elapsed(np.array([begin]), np.array([end]), np.zeros(1, dtype=np.int64))[0] == pytest.approx(
        seconds, abs=1e-3
    )


def test_the_demo_shows_both_clocks(tmp_path: Path) -> None:
    """The desk's groups get business-time series apart from the wall clock's; the 24x7 group's are the same."""
    config = demo_config(tmp_path / "x.db")
    metrics = compute_metrics(Frames.from_records(*everything(run_plan(connector(tmp_path, AS_OF)))), AS_OF, config)
    values = sample_values(metrics)
    info = {
        dict(labels)["group"]: dict(labels)["calendar"]
        for (name, labels) in values
        if name == "itsm_calendar_info" and "segment" not in dict(labels)  # the team view
    }
    assert info[WATERMELON_GROUP] == "around-the-clock"
    assert set(info.values()) == {"desk", "around-the-clock"}

    def gsum(name: str, group: str) -> float:
        return values[(f"{name}_gsum", (("group", group), ("source", "demo"), ("window", "30d")))]

    wall, business = "itsm_resolution_time_seconds", "itsm_resolution_business_time_seconds"
    assert gsum(business, WATERMELON_GROUP) == gsum(wall, WATERMELON_GROUP)
    assert gsum(business, "Service Desk") < gsum(wall, "Service Desk") / 2
