"""Live state (issue 19) end to end: running SLA clocks read from the fakes in their wire format, stored,
and evaluated at chosen instants, boundaries included; and no live series where the upstream has none."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import Config, parse_config
from itsm_exporter.store import Store
from tests.fakes.jira import at as jira_at
from tests.fakes.jira import fake_jira
from tests.fakes.servicenow import FakeServiceNow, source_settings
from tests.plans import synced
from tests.test_jira import connector as jira_connector
from tests.test_jira import source_settings as jira_settings
from tests.test_servicenow import at
from tests.test_servicenow_sync import connector as servicenow_connector

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback


def samples(metrics: list[Metric], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("source", "group"))): s.value
        for family in metrics
        for s in family.samples
        if s.name == name
    }


def states(metrics: list[Metric], sla: str) -> dict[str, float]:
    """Tickets per clock state of one SLA, summed over the label sets."""
    found: dict[str, float] = {}
    for family in metrics:
        for s in family.samples:
            if s.name == "itsm_sla_running_tickets" and s.labels["sla"] == sla:
                found[s.labels["state"]] = found.get(s.labels["state"], 0) + s.value
    return found


@pytest.fixture
def servicenow() -> Iterator[FakeServiceNow]:
    """Open incidents with running task_sla rows, planned_end_time as ServiceNow stores it (UTC)."""
    with FakeServiceNow() as fake:
        desk = fake.add("sys_user_group", name="Service Desk")
        response = fake.add("contract_sla", name="P2 response 30m", target="response", duration="1970-01-01 00:30:00")
        resolution = fake.add(
            "contract_sla", name="P2 resolution 8h", target="resolution", duration="1970-01-01 08:00:00"
        )

        def incident(number: str, opened: str, state: str = "2") -> str:
            return fake.add(
                "incident", number=number, state=state, assignment_group=desk, opened_at=opened,
                sys_updated_on=opened, priority="2",
            )  # fmt: skip

        def clock(task: str, definition: str, stage: str, planned_end: str) -> None:
            fake.add("task_sla", task=task, sla=definition, stage=stage, has_breached="false",
                     start_time="2026-03-10 08:00:00", planned_end_time=planned_end)  # fmt: skip

        a = incident("INC1", "2026-03-10 08:00:00")
        clock(a, response, "in_progress", "2026-03-10 08:30:00")
        clock(a, resolution, "in_progress", "2026-03-10 16:00:00")
        b = incident("INC2", "2026-03-10 09:00:00")
        clock(b, resolution, "in_progress", "2026-03-10 11:00:00")
        c = incident("INC3", "2026-03-10 07:00:00", state="3")  # on hold
        clock(c, resolution, "paused", "2026-03-10 12:00:00")
        yield fake


def servicenow_config(fake: FakeServiceNow, **settings: Any) -> Config:
    return parse_config({"sources": [source_settings(fake, **settings)], "windows": ["7d"]}, check_files=False)


def test_servicenow_clocks_are_evaluated_at_any_instant_after_the_sync(
    servicenow: FakeServiceNow, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store.db")
    synced(servicenow_connector(servicenow, sla_source="task_sla"), store)
    frames = store.load_frames()
    config = servicenow_config(servicenow, sla_source="task_sla")

    def at_(text: str) -> list[Metric]:
        return compute_metrics(frames, at(text), config)

    # 08:10: INC1's response is due in 20 min (at risk), its resolution in 7 h 50; INC2 is not open yet.
    early = at_("2026-03-10 08:10:00")
    assert states(early, "response") == {"within": 0, "at_risk": 1, "breached": 0, "paused": 0}
    assert states(early, "resolution") == {"within": 1, "at_risk": 0, "breached": 0, "paused": 1}
    # 10:00 exactly one hour before INC2's breach: at risk (the bound is included); INC1's response breached.
    ten = at_("2026-03-10 10:00:00")
    assert states(ten, "response") == {"within": 0, "at_risk": 0, "breached": 1, "paused": 0}
    assert states(ten, "resolution") == {"within": 1, "at_risk": 1, "breached": 0, "paused": 1}
    # 11:00 exactly at INC2's breach time: breached. The paused clock stays paused whatever the time.
    eleven = at_("2026-03-10 11:00:00")
    assert states(eleven, "resolution") == {"within": 1, "at_risk": 0, "breached": 1, "paused": 1}
    # Time to breach of the running, unpaused, unbreached clocks: INC1's resolution, 5 h left.
    to_breach = samples(eleven, "itsm_sla_time_to_breach_seconds_gsum")
    assert to_breach == {(("sla", "resolution"),): 5 * 3600.0}
    # Awaiting a first response: none of the three has a completed response SLA, so all three wait.
    assert samples(eleven, "itsm_awaiting_first_response_tickets") == {(): 3.0}
    assert samples(eleven, "itsm_target_seconds") == {
        (("objective", "first_response"),): 300.0,
        (("objective", "sla_warning"),): 3600.0,
    }
    store.close()


def test_servicenow_with_made_sla_has_no_live_series(servicenow: FakeServiceNow, tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    synced(servicenow_connector(servicenow), store)
    metrics = compute_metrics(store.load_frames(), at("2026-03-10 11:00:00"), servicenow_config(servicenow))
    store.close()
    names = {s.name for family in metrics for s in family.samples}
    assert "itsm_backlog_tickets" in names
    # No clock and no first-response time upstream: absent, not a backlog that seems to wait for an answer.
    live = {
        "itsm_sla_running_tickets",
        "itsm_awaiting_first_response_tickets",
        "itsm_awaiting_first_response_age_seconds_bucket",
        "itsm_sla_time_to_breach_seconds_bucket",
    }
    assert not live & names


@pytest.mark.parametrize("mode", ["cloud", "datacenter"])
def test_jsm_ongoing_cycles_give_exact_states_at_the_boundaries(mode: str, tmp_path: Path) -> None:
    """HELP-2: resolution breached at 4 Mar 17:00; HELP-4: resolution paused (no breachTime); HELP-7 (opened
    7 Mar 08:00): response due 09:00, its breachTime sent in ISO form only."""
    store = Store(tmp_path / "store.db")
    with fake_jira(mode) as fake:
        synced(jira_connector(fake, mode), store)
        config = parse_config({"sources": [jira_settings(fake.url, mode)], "group_by": ["priority"]}, check_files=False)
    frames = store.load_frames()
    store.close()

    def response_at(moment: datetime) -> dict[str, float]:
        return states(compute_metrics(frames, moment, config), "response")

    assert response_at(jira_at(7, 8)) == {"within": 0, "at_risk": 1, "breached": 0, "paused": 0}  # 60 min = warning
    assert response_at(jira_at(7, 8) - timedelta(seconds=1)) == {"within": 0, "at_risk": 0, "breached": 0, "paused": 0}
    assert response_at(jira_at(7, 9) - timedelta(seconds=1)) == {"within": 0, "at_risk": 1, "breached": 0, "paused": 0}
    assert response_at(jira_at(7, 9)) == {"within": 0, "at_risk": 0, "breached": 1, "paused": 0}
    resolution = states(compute_metrics(frames, jira_at(7, 9), config), "resolution")
    assert resolution == {"within": 0, "at_risk": 0, "breached": 1, "paused": 1}
