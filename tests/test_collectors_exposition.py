"""The exposition of the collectors: golden file, promtool's verdict, and every metric documented."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import parse_config
from itsm_exporter.frames import Frames
from itsm_exporter.records import Answer, Segment, SlaClock, SurveyResponse, Ticket
from tests.tools import tool

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "collectors.prom"
BUSINESS_GOLDEN = ROOT / "tests" / "golden" / "business_hours.prom"
SEGMENTS_GOLDEN = ROOT / "tests" / "golden" / "segments.prom"
DOCS = ROOT / "docs" / "metrics.md"
PROMTOOL = "/usr/bin/promtool"
HEALTH_METRICS = (
    "itsm_source_up",
    "itsm_source_last_success_timestamp_seconds",
    "itsm_source_sync_duration_seconds",
    "itsm_source_records_synced_total",
    "itsm_source_records_skipped_total",
    "itsm_source_api_requests_total",
    "itsm_build_info",
)

AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def fixture_metrics(group_by: tuple[str, ...] = ("group", "priority")) -> list[Metric]:
    """A small fixture touching every metric: two ticket sources, a csv survey source, two windows. The tickets of
    `sn` carry a department segment, which only a `group_by` naming it shows (segment_metrics)."""
    config = parse_config(
        {
            "windows": ["1d", "7d"],
            "group_by": list(group_by),
            "buckets": [3600, 86400],
            "min_responses": 2,
            "trends": {"year_over_year": True},
            "sources": [
                {
                    "name": "sn",
                    "kind": "demo",
                    "surveys": {
                        "overall": ["Overall"],
                        "dimensions": {"empathy": ["Care"], "reliability": ["Fixed"]},
                        "expectations": {"empathy": ["Expected care"]},
                    },
                    "segments": {"department": "caller_id.department.name"},
                },
                {"name": "jsm", "kind": "demo"},
                {
                    "name": "csat",
                    "kind": "csv",
                    "path": "csat.csv",
                    "ticket_source": "jsm",
                    "surveys": {"overall": ["CSAT"]},
                },
            ],
        },
        check_files=False,
    )

    def ticket(source: str, ticket_id: str, opened: datetime, state: str = "open", **fields: Any) -> Ticket:
        return Ticket(source, ticket_id, f"{source.upper()}-{ticket_id}", opened, state, opened, **fields)  # type: ignore[arg-type]

    def survey(source: str, survey_id: str, answers: dict[str, float], **fields: Any) -> SurveyResponse:
        answer_list = tuple(Answer(question, score) for question, score in answers.items())
        return SurveyResponse(source, survey_id, AS_OF - 2 * HOUR, answer_list, **fields)

    resolved: dict[str, Any] = {"state": "resolved", "resolved_at": AS_OF - 3 * HOUR}
    tickets = [
        ticket(
            "sn",
            "1",
            AS_OF - 5 * HOUR,
            group="desk",
            priority="p2",
            first_response_at=AS_OF - 4 * HOUR,
            sla_response="met",
            sla_resolution="met",
            segments=(Segment("department", "Finance"),),
            **resolved,
        ),
        ticket(
            "sn",
            "2",
            AS_OF - 3 * DAY,
            group="desk",
            priority="p2",
            reassignments=2,
            reopens=1,
            sla_resolution="breached",
            complaint=True,
            segments=(Segment("department", "Finance"),),
            **resolved,
        ),
        ticket(
            "sn",
            "3",
            AS_OF - 2 * DAY,
            "on_hold",
            group="network",
            priority="p1",
            sla_clocks=(SlaClock("response", AS_OF + 2 * HOUR), SlaClock("resolution", AS_OF + HOUR / 2)),
            segments=(Segment("department", "Sales"),),
        ),
        ticket(
            "sn",
            "5",
            AS_OF - HOUR,
            group="network",
            priority="p1",
            first_response_at=AS_OF - HOUR / 2,
            sla_clocks=(SlaClock("response", AS_OF - HOUR / 4, breached=True), SlaClock("resolution", None, True)),
        ),
        ticket("sn", "4", AS_OF - HOUR, "canceled", group="network", priority="p1"),
        ticket("jsm", "10", AS_OF - 2 * DAY, group="HELP", sla_resolution="met", **resolved),
        ticket("jsm", "11", AS_OF - 30 * HOUR, "closed", group="HELP", closed_at=AS_OF - 20 * HOUR),
        # The 7d window's previous period, (as_of - 14d, as_of - 7d]: seen only by the itsm_earlier_* families.
        *(
            ticket(
                "sn",
                number,
                AS_OF - 11 * DAY,
                "resolved",
                group="desk",
                priority="p2",
                first_response_at=AS_OF - 11 * DAY + HOUR,
                resolved_at=AS_OF - 10 * DAY,
                sla_response="met",
                sla_resolution=outcome,
            )
            for number, outcome in (("6", "met"), ("7", "breached"))
        ),
        # The 7d window a year earlier.
        ticket("sn", "8", AS_OF - 368 * DAY, "closed", group="desk", priority="p2", closed_at=AS_OF - 367 * DAY),
    ]
    surveys = [
        survey("sn", "s1", {"Overall": 5, "Care": 4, "Fixed": 5, "Expected care": 5}, ticket_id="1"),
        survey("sn", "s2", {"Overall": 2, "Care": 2}, ticket_id="2", commented=True),
        survey("sn", "s3", {"Overall": 1}, ticket_id="404"),
        survey("csat", "c1", {"CSAT": 4}, ticket_source="jsm", ticket_key="JSM-10", commented=True),
        *(
            SurveyResponse("sn", f"s{number}", AS_OF - 9 * DAY, tuple(Answer(q, a) for q, a in answers.items()), number)
            for number, answers in (("6", {"Overall": 5, "Care": 5, "Fixed": 4}), ("7", {"Overall": 2, "Care": 3}))
        ),
        SurveyResponse("sn", "s8", AS_OF - 366 * DAY, (Answer("Overall", 4),), "8"),
    ]
    return compute_metrics(Frames.from_records(tickets, surveys), AS_OF, config)


def segment_metrics() -> list[Metric]:
    """The fixture with its department segment in group_by: the team view as without it, and a department view."""
    return fixture_metrics(("group", "priority", "department"))


def business_hours_metrics() -> list[Metric]:
    """A desk on a 9-to-5 calendar, a 24x7 group beside it, and a source on the wall clock only."""
    config = parse_config(
        {
            "windows": ["1d", "7d"],
            "buckets": [3600, 86400],
            "calendars": {
                "desk": {"timezone": "Europe/Berlin", "hours": {"mon-fri": ["09:00-17:00"]}},
                "noc": {"timezone": "UTC", "hours": {"mon-sun": ["00:00-24:00"]}},
            },
            "sources": [
                {"name": "sn", "kind": "demo", "calendar": "desk", "calendar_by_group": {"network": "noc"}},
                {"name": "lab", "kind": "demo"},
            ],
        },
        check_files=False,
    )
    answered: dict[str, Any] = {"first_response_at": AS_OF - 4 * HOUR}
    resolved: dict[str, Any] = {"resolved_at": AS_OF - 3 * HOUR, **answered}
    tickets = [
        Ticket("sn", "1", "SN-1", AS_OF - 3 * DAY, "open", AS_OF, group="desk"),
        Ticket("sn", "2", "SN-2", AS_OF - 5 * DAY, "resolved", AS_OF, group="desk", complaint=True, **resolved),
        Ticket("sn", "3", "SN-3", AS_OF - 2 * DAY, "open", AS_OF, group="network", **answered),
        Ticket("sn", "4", "SN-4", AS_OF - 30 * HOUR, "resolved", AS_OF, group="network", **resolved),
        Ticket("lab", "5", "LAB-5", AS_OF - DAY, "resolved", AS_OF, group="bench", **resolved),
    ]
    return compute_metrics(Frames.from_records(tickets, []), AS_OF, config)


class _Fixed:
    """The tiny collector the exporter also uses: it returns families computed beforehand."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def exposition(metrics: Callable[[], list[Metric]] = fixture_metrics) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics()))
    return generate_latest(registry)


# The golden file of a config without calendars is the wall clock's contract: business hours leave it unchanged;
# without a segment in group_by it is the team view's, which segments leave unchanged.
@pytest.mark.parametrize(
    ("golden", "metrics"),
    [(GOLDEN, fixture_metrics), (BUSINESS_GOLDEN, business_hours_metrics), (SEGMENTS_GOLDEN, segment_metrics)],
    ids=["wall-clock", "business-hours", "segments"],
)
def test_exposition_matches_the_golden_file(
    request: pytest.FixtureRequest, golden: Path, metrics: Callable[[], list[Metric]]
) -> None:
    text = exposition(metrics).decode()
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), "golden file missing: run pytest --update-golden"
    assert text == golden.read_text(encoding="utf-8"), "exposition changed: review, then pytest --update-golden"


def test_fixture_covers_every_family() -> None:
    """All but the impact analysis: a least-squares fit needs hundreds of responses, and its last digits would
    pin a golden file to one BLAS; tests/test_impact.py checks its exposition and values."""
    empty = [family.name for family in fixture_metrics() if not family.samples]
    assert empty == [name for name in empty if name.startswith("itsm_impact_")]
    assert len(empty) == 7


@pytest.mark.integration
def test_promtool_finds_the_exposition_clean() -> None:
    for metrics in (fixture_metrics, business_hours_metrics, segment_metrics):
        result = subprocess.run(
            [tool(PROMTOOL), "check", "metrics"],
            input=exposition(metrics),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert (result.returncode, result.stdout.decode() + result.stderr.decode()) == (0, ""), metrics.__name__


def test_every_emitted_metric_is_documented() -> None:
    documented = set(re.findall(r"`(itsm_[a-z_]+)", DOCS.read_text(encoding="utf-8")))
    emitted = {family.name for family in [*fixture_metrics(), *business_hours_metrics()]}
    assert emitted - documented == set()
    assert set(HEALTH_METRICS) - documented == set()
