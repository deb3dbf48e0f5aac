"""Collectors on small inline frames at a fixed as_of: exact values for every metric and the edges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.collectors.labels import segment_values
from itsm_exporter.config import Config, parse_config
from itsm_exporter.frames import Frames
from itsm_exporter.records import Answer, Segment, SurveyResponse, Ticket

AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SERVQUAL = {
    "overall": ["How satisfied are you?"],
    "dimensions": {"empathy": ["Did we care?"], "reliability": ["Was it fixed right?"]},
    "expectations": {"empathy": ["Should we care?"]},
}


def make_config(**overrides: Any) -> Config:
    raw: dict[str, Any] = {"sources": [{"name": "sn", "kind": "demo", "surveys": SERVQUAL}]}
    raw.update(overrides)
    return parse_config(raw, check_files=False)


def ticket(ticket_id: str, opened: datetime, state: str = "open", source: str = "sn", **fields: Any) -> Ticket:
    fields.setdefault("group", "desk")
    return Ticket(
        source=source,
        id=ticket_id,
        key=f"KEY-{ticket_id}",
        opened_at=opened,
        state=state,  # type: ignore[arg-type]
        updated_at=opened,
        **fields,
    )


def survey(
    survey_id: str, submitted: datetime, answers: dict[str, float], source: str = "sn", **fields: Any
) -> SurveyResponse:
    return SurveyResponse(
        source=source,
        id=survey_id,
        submitted_at=submitted,
        answers=tuple(Answer(question, value) for question, value in answers.items()),
        **fields,
    )


def compute(
    tickets: list[Ticket], surveys: Sequence[SurveyResponse] = (), config: Config | None = None
) -> list[Metric]:
    return compute_metrics(Frames.from_records(tickets, surveys), AS_OF, config or make_config())


def value(metrics: list[Metric], name: str, **labels: str) -> float | None:
    """The value of the sample with exactly these labels, None when there is none."""
    found = [s.value for f in metrics for s in f.samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, f"{name}{labels} appears {len(found)} times"
    return found[0] if found else None


def series(metrics: list[Metric], name: str) -> list[dict[str, str]]:
    return [s.labels for f in metrics for s in f.samples if s.name == name]


def desk(window: str | None = None, **extra: str) -> dict[str, str]:
    labels = {"source": "sn", "group": "desk", **extra}
    return {**labels, "window": window} if window else labels


# --- volume, windows, resolution ------------------------------------------------------------------


def test_window_boundaries_exclude_the_start_and_include_as_of() -> None:
    metrics = compute(
        [
            ticket("edge7", AS_OF - 7 * DAY),
            ticket("inside", AS_OF - 7 * DAY + timedelta(seconds=1)),
            ticket("now", AS_OF),
            ticket("future", AS_OF + timedelta(seconds=1)),
            ticket("edge30", AS_OF - 30 * DAY),
        ]
    )
    assert value(metrics, "itsm_tickets_opened", **desk("7d")) == 2
    assert value(metrics, "itsm_tickets_opened", **desk("30d")) == 3


def test_resolved_falls_back_to_closed_at_for_closed_tickets() -> None:
    metrics = compute(
        [
            ticket("closed", AS_OF - 3 * DAY, "closed", closed_at=AS_OF - DAY),
            ticket("resolved-no-time", AS_OF - 3 * DAY, "resolved"),
            ticket("both", AS_OF - 3 * DAY, "closed", resolved_at=AS_OF - 2 * DAY, closed_at=AS_OF - HOUR),
        ]
    )
    assert value(metrics, "itsm_tickets_resolved", **desk("7d")) == 2
    assert value(metrics, "itsm_resolution_time_seconds_gsum", **desk("7d")) == 2 * 86400 + 86400
    assert value(metrics, "itsm_resolution_time_seconds_gcount", **desk("7d")) == 2
    assert value(metrics, "itsm_backlog_tickets", **desk()) == 0


def test_canceled_tickets_count_as_opened_and_nowhere_else() -> None:
    canceled = ticket(
        "c",
        AS_OF - DAY,
        "canceled",
        first_response_at=AS_OF - DAY + HOUR,
        resolved_at=AS_OF - HOUR,
        closed_at=AS_OF - HOUR,
        reopens=2,
        reassignments=3,
        sla_response="met",
        sla_resolution="breached",
        complaint=True,
    )
    metrics = compute([canceled])
    assert value(metrics, "itsm_tickets_opened", **desk("7d")) == 1
    assert value(metrics, "itsm_complaints_opened", **desk("7d")) == 1
    for name in ("itsm_tickets_resolved", "itsm_tickets_reopened", "itsm_reassignments"):
        assert value(metrics, name, **desk("7d")) == 0, name
    assert value(metrics, "itsm_sla_tickets", **desk("7d", sla="resolution", outcome="breached")) == 0
    assert value(metrics, "itsm_sla_tickets", **desk("7d", sla="response", outcome="met")) == 0
    assert value(metrics, "itsm_backlog_tickets", **desk()) == 0
    assert series(metrics, "itsm_first_response_time_seconds_gcount") == []
    assert series(metrics, "itsm_resolution_time_seconds_gcount") == []
    assert series(metrics, "itsm_complaint_resolution_time_seconds_gcount") == []
    assert series(metrics, "itsm_sla_met_ratio") == []
    assert series(metrics, "itsm_reopened_ratio") == []


def test_backlog_is_the_state_at_as_of() -> None:
    metrics = compute(
        [
            ticket("open", AS_OF - 2 * HOUR),
            ticket("hold", AS_OF - 40 * DAY, "on_hold"),
            ticket("later", AS_OF - DAY, "resolved", resolved_at=AS_OF + HOUR),
            ticket("closed-later", AS_OF - DAY, "closed", closed_at=AS_OF + HOUR),
            ticket("done", AS_OF - DAY, "resolved", resolved_at=AS_OF),
            ticket("not-yet", AS_OF + HOUR),
            ticket("canceled", AS_OF - DAY, "canceled"),
        ],
        config=make_config(buckets=[3600, 86400]),
    )
    assert value(metrics, "itsm_backlog_tickets", **desk()) == 4
    assert value(metrics, "itsm_backlog_age_seconds_bucket", **desk(le="3600.0")) == 0
    assert value(metrics, "itsm_backlog_age_seconds_bucket", **desk(le="86400.0")) == 3
    assert value(metrics, "itsm_backlog_age_seconds_bucket", **desk(le="+Inf")) == 4
    assert value(metrics, "itsm_backlog_age_seconds_gcount", **desk()) == 4
    assert value(metrics, "itsm_backlog_age_seconds_gsum", **desk()) == 2 * 3600 + 40 * 86400 + 2 * 86400
    assert value(metrics, "itsm_tickets_resolved", **desk("7d")) == 1
    assert all("window" not in labels for labels in series(metrics, "itsm_backlog_tickets"))


def test_histogram_buckets_are_configurable_cumulative_and_clip_negative_durations() -> None:
    opened = AS_OF - DAY
    metrics = compute(
        [
            ticket("a", opened, "resolved", resolved_at=opened + timedelta(seconds=60)),
            ticket("b", opened, "resolved", resolved_at=opened + timedelta(seconds=61)),
            ticket("c", opened, "resolved", resolved_at=opened + 2 * HOUR),
            ticket("bad", opened, "resolved", resolved_at=opened - HOUR),
        ],
        config=make_config(buckets=[60, 3600]),
    )
    buckets = {
        labels["le"]: value(metrics, "itsm_resolution_time_seconds_bucket", **labels)
        for labels in series(metrics, "itsm_resolution_time_seconds_bucket")
        if labels["window"] == "7d"
    }
    assert buckets == {"60.0": 2, "3600.0": 3, "+Inf": 4}
    assert value(metrics, "itsm_resolution_time_seconds_gsum", **desk("7d")) == 60 + 61 + 7200 + 0
    assert value(metrics, "itsm_resolution_time_seconds_gcount", **desk("30d")) == 4


def test_first_response_counts_tickets_first_answered_in_the_window() -> None:
    metrics = compute(
        [
            ticket("old", AS_OF - 10 * DAY, first_response_at=AS_OF - 6 * DAY),
            ticket("fresh", AS_OF - HOUR, first_response_at=AS_OF - HOUR + timedelta(minutes=5)),
            ticket("answered-before", AS_OF - 9 * DAY, first_response_at=AS_OF - 8 * DAY),
            ticket("canceled", AS_OF - HOUR, "canceled", first_response_at=AS_OF - timedelta(minutes=30)),
        ],
        config=make_config(buckets=[600]),
    )
    assert value(metrics, "itsm_first_response_time_seconds_gcount", **desk("7d")) == 2
    assert value(metrics, "itsm_first_response_time_seconds_bucket", **desk("7d", le="600.0")) == 1
    assert value(metrics, "itsm_first_response_time_seconds_gsum", **desk("7d")) == 4 * 86400 + 300
    assert value(metrics, "itsm_first_response_time_seconds_gcount", **desk("30d")) == 3


def test_sla_counts_and_ratio_only_where_known() -> None:
    resolved: dict[str, Any] = {"state": "resolved", "resolved_at": AS_OF - HOUR}
    metrics = compute(
        [
            ticket("1", AS_OF - DAY, sla_resolution="met", sla_response="met", **resolved),
            ticket("2", AS_OF - DAY, sla_resolution="met", sla_response="unknown", **resolved),
            ticket("3", AS_OF - DAY, sla_resolution="breached", sla_response="unknown", **resolved),
            ticket("4", AS_OF - DAY, sla_resolution="met", sla_response="breached"),
            ticket("5", AS_OF - DAY, group="ops", **resolved),
        ]
    )
    assert value(metrics, "itsm_sla_tickets", **desk("7d", sla="resolution", outcome="met")) == 2
    assert value(metrics, "itsm_sla_tickets", **desk("7d", sla="resolution", outcome="breached")) == 1
    assert value(metrics, "itsm_sla_tickets", **desk("7d", sla="response", outcome="met")) == 1
    assert value(metrics, "itsm_sla_tickets", **desk("7d", sla="response", outcome="breached")) == 0
    assert value(metrics, "itsm_sla_met_ratio", **desk("7d", sla="resolution")) == pytest.approx(2 / 3)
    assert value(metrics, "itsm_sla_met_ratio", **desk("7d", sla="response")) == 1
    ops = {"source": "sn", "group": "ops", "window": "7d"}
    assert value(metrics, "itsm_sla_tickets", **ops, sla="resolution", outcome="met") == 0
    assert value(metrics, "itsm_sla_met_ratio", **ops, sla="resolution") is None


def test_reliability_counts_and_ratios() -> None:
    resolved: dict[str, Any] = {"state": "resolved", "resolved_at": AS_OF - HOUR}
    metrics = compute(
        [
            ticket("clean", AS_OF - DAY, **resolved),
            ticket("moved", AS_OF - DAY, reassignments=2, **resolved),
            ticket("bounced", AS_OF - DAY, reopens=1, reassignments=1, **resolved),
            ticket("still-open", AS_OF - DAY, reopens=3, reassignments=5),
            ticket("idle", AS_OF - DAY, group="ops"),
        ]
    )
    assert value(metrics, "itsm_tickets_reopened", **desk("7d")) == 1
    assert value(metrics, "itsm_tickets_first_contact_resolved", **desk("7d")) == 1
    assert value(metrics, "itsm_reassignments", **desk("7d")) == 3
    assert value(metrics, "itsm_reopened_ratio", **desk("7d")) == pytest.approx(1 / 3)
    assert value(metrics, "itsm_first_contact_resolution_ratio", **desk("7d")) == pytest.approx(1 / 3)
    ops = {"source": "sn", "group": "ops", "window": "7d"}
    assert value(metrics, "itsm_tickets_reopened", **ops) == 0
    assert value(metrics, "itsm_reopened_ratio", **ops) is None
    assert value(metrics, "itsm_first_contact_resolution_ratio", **ops) is None


def test_complaints_opened_and_their_resolution_time() -> None:
    metrics = compute(
        [
            ticket("c1", AS_OF - DAY, "resolved", resolved_at=AS_OF - DAY + 2 * HOUR, complaint=True),
            ticket("c2", AS_OF - 20 * DAY, "closed", closed_at=AS_OF - 2 * DAY, complaint=True),
            ticket("c3", AS_OF - 2 * DAY, complaint=True),
            ticket("plain", AS_OF - DAY, "resolved", resolved_at=AS_OF - HOUR),
        ],
        config=make_config(buckets=[7200]),
    )
    assert value(metrics, "itsm_complaints_opened", **desk("7d")) == 2
    assert value(metrics, "itsm_complaints_opened", **desk("30d")) == 3
    assert value(metrics, "itsm_complaint_resolution_time_seconds_gcount", **desk("7d")) == 2
    assert value(metrics, "itsm_complaint_resolution_time_seconds_bucket", **desk("7d", le="7200.0")) == 1
    assert value(metrics, "itsm_complaint_resolution_time_seconds_gsum", **desk("7d")) == 7200 + 18 * 86400


# --- series presence and labels -------------------------------------------------------------------


def test_label_sets_without_recent_activity_or_backlog_have_no_series() -> None:
    metrics = compute(
        [
            ticket("old", AS_OF - 60 * DAY, "resolved", resolved_at=AS_OF - 45 * DAY, group="archive"),
            ticket("waiting", AS_OF - 60 * DAY, group="backlog-only"),
            ticket("late", AS_OF - 60 * DAY, "resolved", resolved_at=AS_OF - 2 * DAY, group="late"),
        ]
    )
    groups = {labels["group"] for labels in series(metrics, "itsm_tickets_opened")}
    assert groups == {"backlog-only", "late"}
    assert value(metrics, "itsm_tickets_opened", source="sn", group="backlog-only", window="7d") == 0
    assert value(metrics, "itsm_tickets_resolved", source="sn", group="late", window="7d") == 1
    assert value(metrics, "itsm_survey_responses", source="sn", group="late", window="30d") == 0
    assert series(metrics, "itsm_survey_satisfied_ratio") == []


def test_several_grouping_labels_in_configured_order_with_unassigned() -> None:
    metrics = compute(
        [
            ticket("1", AS_OF - DAY, priority="p1", channel="email"),
            ticket("2", AS_OF - DAY, group=None, priority="p1"),
            ticket("3", AS_OF - DAY, priority="p1", channel="email"),
        ],
        config=make_config(group_by=["priority", "group", "channel"]),
    )
    family = next(f for f in metrics if f.name == "itsm_tickets_opened")
    assert list(family.samples[0].labels) == ["source", "priority", "group", "channel", "window"]
    both = {"source": "sn", "priority": "p1", "window": "7d"}
    assert value(metrics, "itsm_tickets_opened", **both, group="desk", channel="email") == 2
    assert value(metrics, "itsm_tickets_opened", **both, group="unassigned", channel="unassigned") == 1
    assert len(series(metrics, "itsm_tickets_opened")) == 4


def test_cap_keeps_the_busiest_values_per_source_and_folds_the_rest_into_other() -> None:
    tickets = [
        *(ticket(f"a{i}", AS_OF - DAY, group="alpha") for i in range(3)),
        *(ticket(f"b{i}", AS_OF - DAY, group="beta") for i in range(2)),
        *(ticket(f"c{i}", AS_OF - DAY, group="charlie") for i in range(2)),
        ticket("d", AS_OF - 40 * DAY, group="delta"),
        ticket("z", AS_OF - DAY, group="zulu", source="other-src"),
    ]
    metrics = compute(
        tickets,
        config=make_config(
            max_label_values=2,
            sources=[{"name": "sn", "kind": "demo"}, {"name": "other-src", "kind": "demo"}],
        ),
    )
    opened = {
        (s["source"], s["group"]): value(metrics, "itsm_tickets_opened", **s)
        for s in series(metrics, "itsm_tickets_opened")
        if s["window"] == "30d"
    }
    # beta and charlie tie on volume: beta wins by name; delta (backlog, no volume) ranks last.
    assert opened == {("sn", "alpha"): 3, ("sn", "beta"): 2, ("sn", "other"): 2, ("other-src", "zulu"): 1}
    assert value(metrics, "itsm_backlog_tickets", source="sn", group="other") == 3


def test_values_without_volume_are_kept_when_the_cap_allows() -> None:
    metrics = compute(
        [ticket("a", AS_OF - DAY, group="alpha"), ticket("d", AS_OF - 40 * DAY, group="delta")],
        config=make_config(max_label_values=2),
    )
    assert value(metrics, "itsm_backlog_tickets", source="sn", group="delta") == 1
    assert value(metrics, "itsm_tickets_opened", source="sn", group="delta", window="30d") == 0


def test_unconfigured_and_disabled_sources_are_ignored_but_targets_follow_enabled_sources() -> None:
    metrics = compute(
        [ticket("1", AS_OF - DAY), ticket("2", AS_OF - DAY, source="off"), ticket("3", AS_OF - DAY, source="gone")],
        config=make_config(
            sources=[{"name": "sn", "kind": "demo"}, {"name": "off", "kind": "demo", "enabled": False}],
            targets={"sla": 0.95, "satisfaction": 0.7},
        ),
    )
    assert {s["source"] for s in series(metrics, "itsm_tickets_opened")} == {"sn"}
    assert series(metrics, "itsm_target_ratio") == [
        {"source": "sn", "objective": "sla"},
        {"source": "sn", "objective": "satisfaction"},
    ]
    assert value(metrics, "itsm_target_ratio", source="sn", objective="sla") == 0.95
    assert value(metrics, "itsm_target_ratio", source="sn", objective="satisfaction") == 0.7


def test_empty_frames_give_only_targets_the_source_s_drill_down_facts_and_zero_mapping_counts() -> None:
    metrics = compute_metrics(Frames.empty(), AS_OF, make_config())
    samples = [(s.name, s.labels, s.value) for f in metrics for s in f.samples]
    assert samples == [
        ("itsm_target_ratio", {"source": "sn", "objective": "sla"}, 0.9),
        ("itsm_target_ratio", {"source": "sn", "objective": "satisfaction"}, 0.8),
        ("itsm_target_seconds", {"source": "sn", "objective": "first_response"}, 300.0),
        ("itsm_target_seconds", {"source": "sn", "objective": "sla_warning"}, 3600.0),
        ("itsm_target_improvement_ratio", {"source": "sn", "objective": "satisfaction"}, 0.03),
        ("itsm_source_info", {"source": "sn", "kind": "demo", "url": ""}, 1.0),
        ("itsm_source_label_info", {"source": "sn", "label": "group", "field": "assignment_group.name"}, 1.0),
        *(
            ("itsm_survey_mapping_answers", {"source": "sn", "role": role}, 0.0)
            for role in ("overall", "dimension", "expectation", "unmapped")
        ),
    ]


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        compute_metrics(Frames.empty(), datetime(2024, 6, 1), make_config())


def test_help_says_values_are_cached_and_when_they_refresh() -> None:
    metrics = compute([ticket("1", AS_OF - DAY)], config=make_config(refresh_interval="2m"))
    for family in metrics:
        assert "recomputed every 2m" in family.documentation, family.name
        assert "not fetched" in family.documentation, family.name


# --- surveys --------------------------------------------------------------------------------------


def resolved_desk_tickets(count: int, **fields: Any) -> list[Ticket]:
    return [ticket(f"t{i}", AS_OF - 2 * DAY, "resolved", resolved_at=AS_OF - DAY, **fields) for i in range(count)]


def test_survey_counts_scores_gap_trust_and_response_ratio() -> None:
    q = {"overall": "How satisfied are you?", "empathy": "Did we care?", "expect": "Should we care?"}
    surveys = [
        survey("s1", AS_OF - HOUR, {q["overall"]: 5, q["empathy"]: 4, q["expect"]: 5}, ticket_id="t0"),
        survey("s2", AS_OF - HOUR, {q["overall"]: 4, q["empathy"]: 2}, ticket_id="t1"),
        survey("s3", AS_OF - HOUR, {q["overall"]: 1, q["expect"]: 3}, ticket_id="t2"),
        survey("s4", AS_OF - HOUR, {q["overall"]: 3, "Unmapped question": 1}, ticket_id="t3"),
        survey("s5", AS_OF - HOUR, {q["empathy"]: 5}, ticket_id="t0"),
        survey("old", AS_OF - 8 * DAY, {q["overall"]: 1}, ticket_id="t0"),
        survey("future", AS_OF + HOUR, {q["overall"]: 1}, ticket_id="t0"),
    ]
    quiet = ticket("quiet", AS_OF - 2 * DAY, "resolved", resolved_at=AS_OF - DAY, group="quiet")
    metrics = compute([*resolved_desk_tickets(4), quiet], surveys)
    assert value(metrics, "itsm_survey_responses", **desk("7d")) == 5
    assert value(metrics, "itsm_survey_responses", **desk("30d")) == 6
    assert value(metrics, "itsm_survey_satisfied_responses", **desk("7d")) == 2
    assert value(metrics, "itsm_survey_dissatisfied_responses", **desk("7d")) == 1
    assert value(metrics, "itsm_survey_dissatisfied_responses", **desk("30d")) == 2
    # satisfied / responses with an overall answer: s5 has none.
    assert value(metrics, "itsm_survey_satisfied_ratio", **desk("7d")) == pytest.approx(2 / 4)
    assert value(metrics, "itsm_survey_score", **desk("7d", dimension="overall")) == pytest.approx(
        (1 + 0.75 + 0 + 0.5) / 4
    )
    assert value(metrics, "itsm_survey_score", **desk("7d", dimension="empathy")) == pytest.approx(
        (0.75 + 0.25 + 1) / 3
    )
    assert value(metrics, "itsm_survey_score", **desk("7d", dimension="reliability")) is None
    # perception mean (over s1, s2, s5) minus expectation mean (over s1, s3).
    assert value(metrics, "itsm_servqual_gap", **desk("7d", dimension="empathy")) == pytest.approx(2 / 3 - 0.75)
    assert {s["dimension"] for s in series(metrics, "itsm_servqual_gap")} == {"empathy"}
    assert value(metrics, "itsm_trust_balance", **desk("7d")) == 2 - 12 * 1
    assert value(metrics, "itsm_trust_balance", **desk("30d")) == 2 - 12 * 2
    assert value(metrics, "itsm_survey_response_ratio", **desk("7d")) == pytest.approx(5 / 4)
    quiet_7d = {"source": "sn", "group": "quiet", "window": "7d"}
    assert value(metrics, "itsm_survey_response_ratio", **quiet_7d) == 0
    assert value(metrics, "itsm_survey_responses", **quiet_7d) == 0
    assert value(metrics, "itsm_survey_satisfied_ratio", **quiet_7d) is None


def test_a_response_about_an_unknown_ticket_is_labelled_unknown() -> None:
    metrics = compute(
        [ticket("t0", AS_OF - DAY, priority="p2")],
        [survey("s1", AS_OF - HOUR, {"How satisfied are you?": 2}, ticket_id="missing", ticket_key="NOPE-1")],
        config=make_config(group_by=["group", "priority"]),
    )
    unknown = {"source": "sn", "group": "unknown", "priority": "unknown", "window": "7d"}
    assert value(metrics, "itsm_survey_responses", **unknown) == 1
    assert value(metrics, "itsm_survey_dissatisfied_responses", **unknown) == 1
    assert value(metrics, "itsm_survey_satisfied_ratio", **unknown) == 0
    assert value(metrics, "itsm_survey_score", **unknown, dimension="overall") == 0.25
    assert value(metrics, "itsm_survey_response_ratio", **unknown) is None
    assert value(metrics, "itsm_tickets_opened", **unknown) is None
    known = {"source": "sn", "group": "desk", "priority": "p2", "window": "7d"}
    assert value(metrics, "itsm_survey_responses", **known) == 0


def test_csv_survey_reports_under_its_ticket_source_joined_by_key_with_its_own_mapping() -> None:
    config = make_config(
        sources=[
            {"name": "sn", "kind": "demo", "surveys": SERVQUAL},
            {
                "name": "csv",
                "kind": "csv",
                "path": "surveys.csv",
                "ticket_source": "sn",
                "surveys": {"overall": ["Score"]},
            },
        ]
    )
    tickets = [ticket("t0", AS_OF - DAY, group="desk"), ticket("t1", AS_OF - DAY, group="field")]
    surveys = [
        survey("r1", AS_OF - HOUR, {"Score": 5}, source="csv", ticket_source="sn", ticket_key="KEY-t1"),
        # The csv mapping does not know sn's question: counted as a response without an overall answer.
        survey(
            "r2", AS_OF - HOUR, {"How satisfied are you?": 5}, source="csv", ticket_source="sn", ticket_key="KEY-t0"
        ),
    ]
    metrics = compute(tickets, surveys, config)
    field = {"source": "sn", "group": "field", "window": "7d"}
    assert value(metrics, "itsm_survey_satisfied_responses", **field) == 1
    assert value(metrics, "itsm_survey_score", **field, dimension="overall") == 1
    assert value(metrics, "itsm_survey_responses", **desk("7d")) == 1
    assert value(metrics, "itsm_survey_satisfied_ratio", **desk("7d")) is None
    per_source = (
        "itsm_target_ratio",
        "itsm_target_seconds",
        "itsm_target_improvement_ratio",
        "itsm_survey_mapping_answers",
        "itsm_source_info",
    )
    assert {s.labels["source"] for f in metrics for s in f.samples if f.name not in per_source} == {"sn"}
    # The mapping that judged the answers is csv's: one of its answers is overall, the other unmapped.
    mapping = {r: value(metrics, "itsm_survey_mapping_answers", source="csv", role=r) for r in ("overall", "unmapped")}
    assert mapping == {"overall": 1, "unmapped": 1}
    assert value(metrics, "itsm_survey_mapping_answers", source="sn", role="overall") == 0


def test_join_by_ticket_id_wins_over_ticket_key() -> None:
    tickets = [ticket("t0", AS_OF - DAY, group="by-id"), ticket("t1", AS_OF - DAY, group="by-key")]
    metrics = compute(
        tickets, [survey("s", AS_OF - HOUR, {"How satisfied are you?": 5}, ticket_id="t0", ticket_key="KEY-t1")]
    )
    assert value(metrics, "itsm_survey_responses", source="sn", group="by-id", window="7d") == 1
    assert value(metrics, "itsm_survey_responses", source="sn", group="by-key", window="7d") == 0


def test_join_stays_within_the_ticket_source_and_the_first_duplicate_key_wins() -> None:
    config = make_config(sources=[{"name": "sn", "kind": "demo", "surveys": SERVQUAL}, {"name": "jsm", "kind": "demo"}])
    tickets = [
        ticket("1", AS_OF - DAY, group="sn-team"),
        ticket("1", AS_OF - DAY, source="jsm", group="jsm-team"),
        Ticket("jsm", "2", "DUP-1", AS_OF - DAY, "open", AS_OF - DAY, group="first"),
        Ticket("jsm", "3", "DUP-1", AS_OF - DAY, "open", AS_OF - DAY, group="second"),
    ]
    surveys = [
        survey("s1", AS_OF - HOUR, {"How satisfied are you?": 5}, ticket_source="jsm", ticket_id="1"),
        survey("s2", AS_OF - HOUR, {"How satisfied are you?": 5}, ticket_source="jsm", ticket_key="DUP-1"),
    ]
    metrics = compute(tickets, surveys, config)
    responses = {
        (s["source"], s["group"]): value(metrics, "itsm_survey_responses", **s)
        for s in series(metrics, "itsm_survey_responses")
        if s["window"] == "7d"
    }
    assert responses == {("sn", "sn-team"): 0, ("jsm", "jsm-team"): 1, ("jsm", "first"): 1, ("jsm", "second"): 0}
    # The answers still use the mapping of the source the response came from (sn).
    assert value(metrics, "itsm_survey_satisfied_responses", source="jsm", group="first", window="7d") == 1


def test_answers_are_normalized_by_their_own_scale() -> None:
    response = SurveyResponse(
        source="sn",
        id="s",
        submitted_at=AS_OF - HOUR,
        answers=(Answer("How satisfied are you?", 8, 0, 10),),
        ticket_id="t0",
    )
    metrics = compute([ticket("t0", AS_OF - DAY)], [response])
    assert value(metrics, "itsm_survey_score", **desk("7d", dimension="overall")) == pytest.approx(0.8)
    assert value(metrics, "itsm_survey_satisfied_responses", **desk("7d")) == 1


def test_no_surveys_at_all_gives_zero_counts_and_no_survey_ratios() -> None:
    metrics = compute(resolved_desk_tickets(2))
    for name in (
        "itsm_survey_responses",
        "itsm_survey_satisfied_responses",
        "itsm_survey_dissatisfied_responses",
        "itsm_trust_balance",
    ):
        assert value(metrics, name, **desk("7d")) == 0, name
    for name in (
        "itsm_survey_satisfied_ratio",
        "itsm_survey_score",
        "itsm_servqual_gap",
        "itsm_survey_response_ratio",
        "itsm_watermelon_gap_ratio",
        "itsm_watermelon",
    ):
        assert series(metrics, name) == [], name


# --- watermelon -----------------------------------------------------------------------------------


def watermelon_case(satisfied: int, unhappy: int, met: int, breached: int, min_responses: int = 4) -> list[Metric]:
    def resolved(ticket_id: str, outcome: str) -> Ticket:
        return ticket(ticket_id, AS_OF - 2 * DAY, "resolved", resolved_at=AS_OF - DAY, sla_resolution=outcome)

    tickets = [
        resolved("anchor", "unknown"),
        *(resolved(f"m{i}", "met") for i in range(met)),
        *(resolved(f"b{i}", "breached") for i in range(breached)),
    ]
    scores = [5] * satisfied + [1] * unhappy
    surveys = [
        survey(f"s{i}", AS_OF - HOUR, {"How satisfied are you?": score}, ticket_id="anchor")
        for i, score in enumerate(scores)
    ]
    config = make_config(min_responses=min_responses, targets={"sla": 0.9, "satisfaction": 0.8})
    return compute(tickets, surveys, config)


def test_watermelon_flags_green_sla_with_unhappy_customers() -> None:
    metrics = watermelon_case(satisfied=2, unhappy=2, met=10, breached=0)
    assert value(metrics, "itsm_watermelon_gap_ratio", **desk("7d")) == pytest.approx(1 - 0.5)
    assert value(metrics, "itsm_watermelon", **desk("7d")) == 1


def test_watermelon_is_zero_when_customers_are_happy_or_sla_is_red() -> None:
    happy = watermelon_case(satisfied=4, unhappy=0, met=9, breached=1)
    assert value(happy, "itsm_watermelon_gap_ratio", **desk("7d")) == pytest.approx(0.9 - 1.0)
    assert value(happy, "itsm_watermelon", **desk("7d")) == 0
    red = watermelon_case(satisfied=0, unhappy=4, met=8, breached=2)
    assert value(red, "itsm_watermelon_gap_ratio", **desk("7d")) == pytest.approx(0.8)
    assert value(red, "itsm_watermelon", **desk("7d")) == 0


def test_watermelon_needs_min_responses_and_a_resolution_sla() -> None:
    assert series(watermelon_case(satisfied=2, unhappy=1, met=10, breached=0), "itsm_watermelon") == []
    assert series(watermelon_case(satisfied=4, unhappy=0, met=0, breached=0), "itsm_watermelon_gap_ratio") == []


# --- hygiene --------------------------------------------------------------------------------------


def test_no_nan_or_infinite_value_is_ever_emitted() -> None:
    tickets = [
        *resolved_desk_tickets(3),
        ticket("weird", AS_OF - DAY, "resolved", resolved_at=AS_OF - 2 * DAY, group=None),
        ticket("c", AS_OF - DAY, "canceled", group="ghost"),
        ticket("x", AS_OF - HOUR, source="sn", group="other"),
    ]
    surveys = [
        survey("s1", AS_OF - HOUR, {"Should we care?": 3}, ticket_id="t0"),
        survey("s2", AS_OF - HOUR, {}, ticket_id="nope"),
    ]
    metrics = compute(tickets, surveys, make_config(min_responses=1))
    for family in metrics:
        for sample in family.samples:
            assert math.isfinite(sample.value), (sample.name, sample.labels)


# Customer segments (issue 28): each segment of group_by is a view of its own, crossed with nothing but the source.


def segmented_config(**overrides: Any) -> Config:
    source = {"name": "sn", "kind": "demo", "surveys": SERVQUAL, "segments": {"department": "department"}}
    raw: dict[str, Any] = {"sources": [source], "group_by": ["group", "department"], "min_responses": 4}
    raw.update(overrides)
    return parse_config(raw, check_files=False)


def dept(name: str) -> tuple[Segment, ...]:
    return (Segment("department", name),)


def finance(window: str | None = None, **extra: str) -> dict[str, str]:
    labels = {"source": "sn", "segment": "department", "department": "Finance", **extra}
    return {**labels, "window": window} if window else labels


def test_a_segment_is_a_view_of_its_own_beside_the_team_view() -> None:
    tickets = [
        ticket("1", AS_OF - DAY, group="desk", segments=dept("Finance")),
        ticket("2", AS_OF - DAY, group="network", segments=dept("Finance")),
        ticket("3", AS_OF - DAY, group="network", segments=dept("Sales")),
        ticket("4", AS_OF - DAY, group="network"),
    ]
    metrics = compute(tickets, config=segmented_config())
    # The team view is as without segments: no `segment` or `department` label, each ticket once.
    assert value(metrics, "itsm_tickets_opened", **desk("7d")) == 1
    assert value(metrics, "itsm_tickets_opened", source="sn", group="network", window="7d") == 3
    assert value(metrics, "itsm_tickets_opened", **finance("7d")) == 2
    assert value(metrics, "itsm_tickets_opened", source="sn", segment="department", department="Sales",
                 window="7d") == 1  # fmt: skip
    assert value(metrics, "itsm_backlog_tickets", source="sn", segment="department", department="unassigned") == 1
    # Summed over the team view alone (segment=""), every ticket counts once.
    team = [s for f in metrics for s in f.samples if s.name == "itsm_tickets_opened" and "segment" not in s.labels]
    assert sum(s.value for s in team if s.labels["window"] == "7d") == 4


def test_a_department_spread_over_teams_is_a_watermelon_no_team_shows() -> None:
    """Finance's tickets meet their SLA in every team; its customers are unhappy, the teams' others are not."""
    tickets, surveys = [], []
    for n in range(12):
        group = ("desk", "network", "apps")[n % 3]
        tickets.append(ticket(f"f{n}", AS_OF - 2 * DAY, "resolved", group=group, resolved_at=AS_OF - DAY,
                              sla_resolution="met", segments=dept("Finance")))  # fmt: skip
        surveys.append(survey(f"sf{n}", AS_OF - HOUR, {"How satisfied are you?": 1 if n % 4 else 5}, ticket_id=f"f{n}"))
        for m in range(4):
            tickets.append(ticket(f"o{n}{m}", AS_OF - 2 * DAY, "resolved", group=group, resolved_at=AS_OF - DAY,
                                  sla_resolution="met", segments=dept("Sales")))  # fmt: skip
            surveys.append(survey(f"so{n}{m}", AS_OF - HOUR, {"How satisfied are you?": 5}, ticket_id=f"o{n}{m}"))
    metrics = compute(tickets, surveys, segmented_config())
    assert value(metrics, "itsm_watermelon", **finance("30d")) == 1
    assert value(metrics, "itsm_survey_dissatisfied_responses", **finance("30d")) == 9
    for group in ("desk", "network", "apps"):
        assert value(metrics, "itsm_watermelon", source="sn", group=group, window="30d") == 0
    assert value(metrics, "itsm_watermelon", source="sn", segment="department", department="Sales", window="30d") == 0


def test_a_response_that_carries_its_own_segment_counts_under_it() -> None:
    tickets = [ticket("1", AS_OF - DAY, "resolved", resolved_at=AS_OF - HOUR, segments=dept("Finance"))]
    surveys = [
        survey("a", AS_OF - HOUR, {"How satisfied are you?": 5}, ticket_id="1"),
        survey("b", AS_OF - HOUR, {"How satisfied are you?": 1}, ticket_id="1", segments=dept("Legal")),
        survey("c", AS_OF - HOUR, {"How satisfied are you?": 1}, ticket_id="nowhere"),
    ]
    metrics = compute(tickets, surveys, segmented_config())
    assert value(metrics, "itsm_survey_responses", **finance("7d")) == 1
    assert value(metrics, "itsm_survey_responses", **{**finance("7d"), "department": "Legal"}) == 1
    assert value(metrics, "itsm_survey_responses", **{**finance("7d"), "department": "unknown"}) == 1
    assert value(metrics, "itsm_survey_responses", **desk("7d")) == 2


def test_segments_are_capped_like_any_label_and_no_segment_series_exist_without_group_by() -> None:
    tickets = [ticket(str(n), AS_OF - DAY, segments=dept(f"D{n % 3}")) for n in range(3 + 2 + 1)]
    metrics = compute(tickets, config=segmented_config(max_label_values=2))
    departments = {s["department"] for s in series(metrics, "itsm_backlog_tickets") if "department" in s}
    assert departments == {"D0", "D1", "other"}
    assert value(metrics, "itsm_backlog_tickets", source="sn", segment="department", department="other") == 2
    plain = compute(tickets, config=segmented_config(group_by=["group"]))
    assert not [s for s in series(plain, "itsm_backlog_tickets") if "segment" in s]


def test_commented_responses_are_counted_by_satisfied_and_dissatisfied_without_their_text() -> None:
    tickets = [ticket("1", AS_OF - DAY, "resolved", resolved_at=AS_OF - HOUR, segments=dept("Finance"))]
    surveys = [
        survey("a", AS_OF - HOUR, {"How satisfied are you?": 1}, ticket_id="1", commented=True),
        survey("b", AS_OF - HOUR, {"How satisfied are you?": 2}, ticket_id="1", commented=True),
        survey("c", AS_OF - HOUR, {"How satisfied are you?": 1}, ticket_id="1"),
        survey("d", AS_OF - HOUR, {"How satisfied are you?": 5}, ticket_id="1", commented=True),
        survey("e", AS_OF - HOUR, {"How satisfied are you?": 3}, ticket_id="1", commented=True),
        survey("f", AS_OF - 8 * DAY, {"How satisfied are you?": 1}, ticket_id="1", commented=True),
    ]
    metrics = compute(tickets, surveys, segmented_config())
    assert value(metrics, "itsm_survey_dissatisfied_commented_responses", **desk("7d")) == 2
    assert value(metrics, "itsm_survey_dissatisfied_commented_responses", **desk("30d")) == 3
    assert value(metrics, "itsm_survey_satisfied_commented_responses", **desk("7d")) == 1
    assert value(metrics, "itsm_survey_dissatisfied_commented_responses", **finance("7d")) == 2


def test_segment_values_do_not_depend_on_the_order_of_the_rows() -> None:
    tickets = [
        ticket(str(n), AS_OF - DAY, segments=(Segment("a", f"A{n}"), Segment("b", f"B{n % 2}"))) for n in range(6)
    ]
    frame = Frames.from_records(tickets).tables["ticket_segments"]
    ids = Frames.from_records(tickets).tickets["id"].to_numpy(dtype=object)
    sources = np.zeros(len(ids), dtype=np.int64)
    listed = segment_values(frame, sources, ids, ("sn",), ["a", "b"])
    shuffled = segment_values(frame.sample(frac=1, random_state=3), sources, ids, ("sn",), ["a", "b"])
    assert {k: list(v.values()) for k, v in listed.items()} == {k: list(v.values()) for k, v in shuffled.items()}
    assert list(listed["a"].values()) == [f"A{n}" for n in range(6)]


def test_parent_rows_given_at_load_and_the_key_join_give_the_same_metrics() -> None:
    """Frames.parent_rows (the store's, from_records') or none (a join by key): the same exposition, a source the
    config leaves out included (its tickets are not among the facts' rows)."""
    tickets = [
        ticket(str(n), AS_OF - n * DAY, group=f"g{n % 3}", segments=(Segment("department", f"D{n % 4}"),))
        for n in range(12)
    ]
    tickets.append(replace(tickets[0], source="other", id="x", key="X"))
    surveys = [
        survey(f"s{n}", AS_OF - HOUR, {"How satisfied are you?": n % 5 + 1}, ticket_id=str(n)) for n in range(12)
    ]
    given = Frames.from_records(tickets, surveys)
    joined = Frames(**given.tables)
    assert given.parent_rows and not joined.parent_rows
    config = segmented_config()

    def samples(frames: Frames) -> list[tuple[str, dict[str, str], float]]:
        return [(s.name, s.labels, s.value) for f in compute_metrics(frames, AS_OF, config) for s in f.samples]

    assert samples(given) == samples(joined)
    assert any(s[1].get("segment") == "department" for s in samples(given))
