"""`itsm-exporter once` on a Zendesk source against the fake account: every contract series hand-checked, and
the requests a bounded first sync and an incremental sync cost (O(changes), within the export's limit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from itsm_exporter.cli import main
from tests.fakes.zendesk import COMPLAINT_FIELD, EMAIL, TOKEN, FakeZendesk, at, fake_zendesk

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, fake: FakeZendesk) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
store: {{path: {tmp_path / "store.db"}}}
windows: [7d]
group_by: [priority]
sources:
  - name: zd
    kind: zendesk
    url: {fake.url}
    email: {EMAIL}
    token: {TOKEN}
    complaints: {{tags: [complaint], {COMPLAINT_FIELD}: [formal_complaint]}}
""",
        encoding="utf-8",
    )
    return config


def once(config: Path, as_of: str, capsys: pytest.CaptureFixture[str]) -> set[str]:
    assert main(["once", "--config", str(config), "--as-of", as_of]) == 0
    out, err = capsys.readouterr()
    assert "survey question" not in err  # no surveys block: the CSAT rating plays overall, no warning
    return set(out.splitlines())


def test_once_prints_hand_checked_metrics_from_a_bounded_first_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_zendesk() as fake:
        lines = once(write_config(tmp_path, fake), "2025-03-08T00:00:00Z", capsys)
        paths = [r.path for r in fake.requests]
    # Window (Mar 1, Mar 8]: tickets 1-6 opened (7 was deleted); 8 is older and open; 9 older, its rating recent.
    for line in (
        'itsm_tickets_opened{priority="p1",source="zd",window="7d"} 2.0',  # 1 and 6, urgent
        'itsm_tickets_opened{priority="p3",source="zd",window="7d"} 2.0',  # 3 and 5, normal
        'itsm_tickets_resolved{priority="p3",source="zd",window="7d"} 1.0',  # 3, closed, solved Mar 4 09:00
        'itsm_resolution_time_seconds_gsum{priority="p1",source="zd",window="7d"} 97200.0',  # 1: Mar 2 09 to Mar 3 12
        'itsm_first_response_time_seconds_gsum{priority="p3",source="zd",window="7d"} 1500.0',  # 3 and 5: 10 + 15 min
        'itsm_sla_tickets{outcome="met",priority="p1",sla="response",source="zd",window="7d"} 1.0',
        'itsm_sla_tickets{outcome="breached",priority="p2",sla="response",source="zd",window="7d"} 1.0',  # replied late
        'itsm_sla_tickets{outcome="met",priority="p2",sla="resolution",source="zd",window="7d"} 1.0',
        'itsm_backlog_tickets{priority="p2",source="zd"} 1.0',  # 8, on hold since February: the open backlog read
        'itsm_backlog_age_seconds_gsum{priority="p2",source="zd"} 2.9916e+06',  # Feb 1 09:00 to Mar 8
        'itsm_awaiting_first_response_tickets{priority="p1",source="zd"} 1.0',  # 6, new, no reply
        'itsm_sla_running_tickets{priority="p1",sla="response",source="zd",state="breached"} 1.0',  # 6, since Mar 7
        'itsm_sla_running_tickets{priority="p3",sla="resolution",source="zd",state="paused"} 1.0',  # 5, pending
        'itsm_sla_running_tickets{priority="p4",sla="resolution",source="zd",state="within"} 1.0',  # 4
        'itsm_sla_time_to_breach_seconds_gsum{priority="p4",sla="resolution",source="zd"} 86400.0',  # 4: Mar 9
        'itsm_tickets_reopened{priority="p1",source="zd",window="7d"} 1.0',  # 1: metric set reopens 1
        'itsm_reassignments{priority="p3",source="zd",window="7d"} 1.0',  # 3: two groups, two assignees
        'itsm_complaints_opened{priority="p3",source="zd",window="7d"} 2.0',  # 3 by tag, 5 by custom field
        'itsm_survey_satisfied_responses{priority="p3",source="zd",window="7d"} 1.0',  # 503 about 9, read by id
        'itsm_survey_dissatisfied_responses{priority="p2",source="zd",window="7d"} 1.0',  # 502 bad
        'itsm_survey_mapping_answers{role="overall",source="zd"} 3.0',
        'itsm_source_up{source="zd"} 1.0',
        'itsm_source_records_synced_total{kind="ticket",source="zd"} 8.0',
        'itsm_source_records_synced_total{kind="survey",source="zd"} 3.0',
        'itsm_source_api_requests_total{code="200",source="zd"} 5.0',
    ):
        assert line in lines, line
    # One export page, the ratings, the open backlog (search export, show_many) and ticket 9 by id.
    assert paths == [
        "/api/v2/incremental/tickets/cursor",
        "/api/v2/satisfaction_ratings",
        "/api/v2/search/export",
        "/api/v2/tickets/show_many",
        "/api/v2/tickets/show_many",
    ]


def test_an_incremental_once_reads_the_changes_from_the_stored_cursor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_zendesk() as fake:
        config = write_config(tmp_path, fake)
        once(config, "2025-03-08T00:00:00Z", capsys)
        first = len(fake.requests)
        fake.tickets[4].status, fake.tickets[4].solved_at = "solved", at(8, 0, 1)
        fake.tickets[4].policy[1].stage = "achieved"
        fake.tickets[4].touch(at(8, 0, 1))
        fake.tickets[5].status = "deleted"
        fake.tickets[5].touch(at(8, 0, 2))
        lines = once(config, "2025-03-08T00:10:00Z", capsys)
        second = fake.requests[first:]
        third_from = len(fake.requests)
        once(config, "2025-03-08T00:20:00Z", capsys)
        third = fake.requests[third_from:]
    # The bounded first sync hands its export cursor on with its watermark (sync/plans.py): every later sync
    # goes on from the cursor the last one stored.
    assert [(r.path, r.param("start_time"), r.param("cursor") is not None) for r in second] == [
        ("/api/v2/incremental/tickets/cursor", None, True),
        ("/api/v2/satisfaction_ratings", str(int(at(4, 19, 59).timestamp())), False),
    ]
    assert [(r.path, r.param("start_time"), r.param("cursor") is not None) for r in third] == [
        ("/api/v2/incremental/tickets/cursor", None, True),
        ("/api/v2/satisfaction_ratings", str(int(at(4, 19, 59).timestamp())), False),
    ]
    for line in (
        'itsm_tickets_resolved{priority="p4",source="zd",window="7d"} 1.0',  # 4, solved at 00:01
        'itsm_sla_tickets{outcome="met",priority="p4",sla="resolution",source="zd",window="7d"} 1.0',
        'itsm_backlog_tickets{priority="p4",source="zd"} 0.0',
        'itsm_complaints_opened{priority="p3",source="zd",window="7d"} 1.0',  # 5 deleted: only 3 is left
        'itsm_sla_running_tickets{priority="p3",sla="resolution",source="zd",state="paused"} 0.0',
        'itsm_source_records_synced_total{kind="ticket",source="zd"} 1.0',  # this process synced ticket 4 only
    ):
        assert line in lines, line
