"""Cardinality: ten thousand distinct groups upstream become at most max_label_values + 1 label values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import parse_config
from itsm_exporter.frames import Frames
from itsm_exporter.records import Answer, SurveyResponse, Ticket

AS_OF = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_ten_thousand_groups_are_capped_with_other() -> None:
    config = parse_config(
        {
            "max_label_values": 50,
            "group_by": ["group", "service"],
            "sources": [{"name": "sn", "kind": "demo", "surveys": {"overall": ["Overall"]}}],
        },
        check_files=False,
    )
    tickets = [
        Ticket(
            source="sn",
            id=f"t{i}",
            key=f"INC{i}",
            opened_at=AS_OF - timedelta(hours=1 + i % 500),
            updated_at=AS_OF - timedelta(minutes=30),
            state="resolved",
            resolved_at=AS_OF - timedelta(minutes=30),
            sla_resolution="met",
            group=f"group-{i % 10_000:05d}",
            service=f"service-{i % 3}",
        )
        for i in range(12_000)
    ]
    surveys = [
        SurveyResponse("sn", f"s{i}", AS_OF - timedelta(minutes=5), (Answer("Overall", 5.0),), ticket_id=f"t{i}")
        for i in range(0, 12_000, 7)
    ]
    families = compute_metrics(Frames.from_records(tickets, surveys), AS_OF, config)
    # An empty label is no label in Prometheus: the source-wide impact series (itsm_impact_*) have no group.
    groups = {s.labels["group"] for f in families for s in f.samples if s.labels.get("group")}
    services = {s.labels["service"] for f in families for s in f.samples if s.labels.get("service")}
    assert len(groups) == 51
    assert "other" in groups
    # The 2,000 groups with two tickets each outrank the 8,000 with one: the kept 50 are among them.
    assert all(g == "other" or int(g.split("-")[1]) < 2000 for g in groups)
    assert services == {"service-0", "service-1", "service-2"}
    opened = {
        s.labels["group"]: s.value
        for f in families
        if f.name == "itsm_tickets_opened"
        for s in f.samples
        if s.labels["window"] == "30d" and s.labels["service"] == "service-0"
    }
    total = sum(
        s.value for f in families if f.name == "itsm_tickets_opened" for s in f.samples if s.labels["window"] == "30d"
    )
    assert total == 12_000  # nothing is lost to the cap: the rest is counted under "other"
    assert opened["other"] > 0
