"""ServiceNow into the real store: full then incremental sync, a failed page, and `itsm-exporter once`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from itsm_exporter.cli import main
from itsm_exporter.config import parse_config
from itsm_exporter.connectors.base import SchemaError
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector
from itsm_exporter.records import Ticket
from itsm_exporter.store import Store
from tests.fakes.servicenow import FakeServiceNow, Reply, source_settings
from tests.plans import stored_glide, synced
from tests.storeread import stored_count, stored_tickets
from tests.test_servicenow import at

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

STATES = {"1": "open", "2": "open", "3": "on_hold", "6": "resolved", "7": "closed", "8": "canceled"}


def expected_tickets(fake: FakeServiceNow) -> list[Ticket]:
    """The tickets the store should hold, derived from the fake's raw records (made_sla mode)."""

    def name(table: str, sys_id: str) -> str | None:
        return fake.tables[table][sys_id]["name"] if sys_id else None

    def moment(text: str) -> Any:
        return at(text) if text else None

    tickets = []
    for r in fake.tables["incident"].values():
        state = STATES[r["state"]]
        made = {"true": "met" if state in ("resolved", "closed") else "unknown", "false": "breached"}
        tickets.append(
            Ticket(
                source="sn",
                id=r["sys_id"],
                key=r["number"],
                opened_at=at(r["opened_at"]),
                state=state,  # type: ignore[arg-type]
                updated_at=at(r["sys_updated_on"]),
                resolved_at=moment(r["resolved_at"]),
                closed_at=moment(r["closed_at"]),
                priority=f"p{r['priority']}" if r["priority"] else None,
                group=name("sys_user_group", r["assignment_group"]),
                service=name("cmn_service", r["business_service"]),
                channel=r["contact_type"] or None,
                reassignments=int(r["reassignment_count"] or 0),
                reopens=int(r["reopen_count"] or 0),
                sla_resolution=made.get(r["made_sla"], "unknown"),  # type: ignore[arg-type]
                complaint=r["category"].lower() == "complaint",
            )
        )
    return sorted(tickets, key=lambda t: t.id)


def seed(fake: FakeServiceNow, count: int) -> list[str]:
    groups = [fake.add("sys_user_group", name=n) for n in ("Service Desk", "Network Operations")]
    service = fake.add("cmn_service", name="Email")
    ids = []
    for n in range(count):
        resolved = n % 3 != 0
        ids.append(
            fake.add(
                "incident",
                number=f"INC{n:07d}",
                state="6" if resolved else "2",
                opened_at=f"2026-03-0{1 + n % 5} 08:00:00",
                resolved_at=f"2026-03-0{1 + n % 5} 1{n % 10}:00:00" if resolved else "",
                sys_updated_on=f"2026-03-06 10:{n // 2:02d}:00",
                priority=str(1 + n % 5),
                assignment_group=groups[n % 2],
                business_service=service if n % 4 else "",
                contact_type=("email", "phone", "self-service")[n % 3],
                category="complaint" if n == 4 else "software",
                reassignment_count=str(n % 3) if n % 2 else "",
                reopen_count="1" if n == 5 else "",
                made_sla="false" if n == 7 else "true",
            )
        )
    return ids


def connector(fake: FakeServiceNow, **settings: Any) -> ServiceNowConnector:
    config = parse_config({"sources": [source_settings(fake, **settings)]}, check_files=False)
    source = config.sources[0]
    assert isinstance(source, ServiceNowSource)
    return ServiceNowConnector(source, sleep=lambda _s: None, jitter=lambda: 0.5)


def test_full_then_incremental_sync_leaves_the_store_equal_to_the_instance(
    fake: FakeServiceNow, tmp_path: Path
) -> None:
    ids = seed(fake, 11)  # sys_updated_on pairs share a second; the last row is alone in its second
    store = Store(tmp_path / "sn.db")
    try:
        settings: dict[str, Any] = {"page_size": 3, "complaints": {"category": ["Complaint"]}, "overlap": "1s"}
        first = synced(connector(fake, **settings), store)
        # Four pages, then one commit per phase (tickets, surveys) that marks it completed.
        assert (first.batches, first.records["ticket"]) == (6, 11)
        assert stored_glide(store, "sn", "ticket") == "2026-03-06 10:05:00"
        assert stored_tickets(store, "sn") == expected_tickets(fake)

        fake.update(
            "incident", ids[0], state="6", resolved_at="2026-03-07 09:00:00", sys_updated_on="2026-03-07 09:00:00"
        )
        fake.update("incident", ids[3], reassignment_count="4", sys_updated_on="2026-03-07 09:30:00")
        fake.add(
            "incident",
            number="INC0000099",
            state="1",
            opened_at="2026-03-07 10:00:00",
            sys_updated_on="2026-03-07 10:00:00",
            made_sla="true",
            category="Complaint",
        )
        fake.requests.clear()
        second = synced(connector(fake, **settings), store)

        # Only the overlap (1 s here: the boundary row ids[10]) and the three changed rows were read again.
        assert (second.batches, second.records["ticket"]) == (4, 4)
        first_query = fake.table_requests("incident")[0].params["sysparm_query"]
        assert first_query == "sys_updated_on>=2026-03-06 10:04:59^ORDERBYsys_updated_on^ORDERBYsys_id"
        assert stored_count(store, "sn", "ticket") == 12
        assert stored_tickets(store, "sn") == expected_tickets(fake)
        assert stored_glide(store, "sn", "ticket") == "2026-03-07 10:00:00"
        by_key = {t.key: t for t in stored_tickets(store, "sn")}
        assert (by_key["INC0000000"].state, by_key["INC0000003"].reassignments) == ("resolved", 4)
        assert by_key["INC0000099"].complaint is True
    finally:
        store.close()


def test_a_broken_page_stores_nothing_of_itself_and_keeps_the_last_good_watermark(
    fake: FakeServiceNow, tmp_path: Path
) -> None:
    seed(fake, 7)
    calls = {"n": 0}

    def break_second_page(request: Any) -> None:
        if request.table == "incident":
            calls["n"] += 1
            if calls["n"] == 2:  # cut short on the first try and on the one retry allowed
                fake.fail("incident", Reply("truncate"), Reply("truncate"))

    fake.on_request = break_second_page
    store = Store(tmp_path / "sn.db")
    try:
        with pytest.raises(SchemaError):
            synced(connector(fake, page_size=3, surveys_enabled=False, max_retries=1), store)
        assert stored_count(store, "sn", "ticket") == 3
        assert stored_glide(store, "sn", "ticket") == "2026-03-06 10:01:00"
    finally:
        store.close()


def samples(text: str, name: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def test_once_prints_hand_checked_values_from_servicenow(
    fake: FakeServiceNow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desk = fake.add("sys_user_group", name="Service Desk")
    common = {"assignment_group": desk, "priority": "3", "contact_type": "email"}
    a = fake.add(
        "incident",
        number="INC1",
        state="6",
        opened_at="2026-03-09 08:00:00",
        made_sla="true",
        resolved_at="2026-03-09 10:00:00",
        sys_updated_on="2026-03-09 10:00:00",
        **common,
    )
    b = fake.add(
        "incident",
        number="INC2",
        state="7",
        opened_at="2026-03-08 08:00:00",
        made_sla="false",
        resolved_at="2026-03-08 20:00:00",
        closed_at="2026-03-09 20:00:00",
        sys_updated_on="2026-03-09 20:00:00",
        **common,
    )
    fake.add(
        "incident",
        number="INC3",
        state="6",
        opened_at="2026-03-05 08:00:00",
        made_sla="true",
        resolved_at="2026-03-05 09:00:00",
        sys_updated_on="2026-03-05 09:00:00",
        **common,
    )
    fake.add(
        "incident",
        number="INC4",
        state="2",
        opened_at="2026-03-09 08:00:00",
        made_sla="true",
        sys_updated_on="2026-03-09 08:00:00",
        **common,
    )
    overall = fake.add("asmt_metric", name="overall", question="Overall satisfaction", datatype="scale")
    for incident, score, taken in ((a, "5", "2026-03-09 12:00:00"), (b, "2", "2026-03-10 09:00:00")):
        instance = fake.add(
            "asmt_assessment_instance", state="complete", taken_on=taken, trigger_table="incident", trigger_id=incident
        )
        fake.add("asmt_metric_result", instance=instance, metric=overall, actual_value=score)
    config = {
        "store": {"path": str(tmp_path / "once.db")},
        "windows": ["7d"],
        "sources": [source_settings(fake, page_size=2, surveys={"overall": ["Overall satisfaction"]})],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    code = main(["once", "--config", str(tmp_path / "config.yaml"), "--as-of", "2026-03-10T12:00:00Z"])
    out, err = capsys.readouterr()
    assert code == 0, err
    labels = 'group="Service Desk",source="sn",window="7d"'
    assert samples(out, "itsm_tickets_opened") == {labels: 4.0}
    assert samples(out, "itsm_tickets_resolved") == {labels: 3.0}
    assert samples(out, "itsm_sla_met_ratio") == {
        'group="Service Desk",sla="resolution",source="sn",window="7d"': 2 / 3
    }
    assert samples(out, "itsm_survey_responses") == {labels: 2.0}
    assert samples(out, "itsm_survey_satisfied_responses") == {labels: 1.0}
    assert samples(out, "itsm_survey_dissatisfied_responses") == {labels: 1.0}
    assert samples(out, "itsm_backlog_tickets") == {'group="Service Desk",source="sn"': 1.0}
    assert samples(out, "itsm_source_records_synced_total") == {
        'kind="survey",source="sn"': 2.0,
        'kind="ticket",source="sn"': 4.0,
    }
