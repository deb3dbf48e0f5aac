"""`itsm-exporter discover` for Zendesk against the fake account: the exact report, and a request budget
that does not grow with the account (the export allows 10 requests a minute)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from itsm_exporter.config import Config, parse_config
from itsm_exporter.discover import discover, render_report
from tests.fakes.zendesk import COMPLAINT_FIELD, EMAIL, TIER_FIELD, TOKEN, FakeTicket, FakeZendesk, at, fake_zendesk

pytestmark = pytest.mark.integration

AS_OF = at(8)


def config(fake: FakeZendesk, **extra: Any) -> Config:
    source = {
        "name": "zd",
        "kind": "zendesk",
        "url": fake.url,
        "email": EMAIL,
        "token": TOKEN,
        "complaints": {"tags": ["complaint"], str(COMPLAINT_FIELD): ["formal_complaint"]},
        "max_retries": 0,
    } | extra
    return parse_config(
        {"sources": [source], "windows": ["7d"], "group_by": ["group", "priority", "channel"]}, check_files=False
    )


def test_the_zendesk_report_is_exact() -> None:
    with fake_zendesk(now=lambda: AS_OF.timestamp()) as fake:
        fake.metric_events += [
            {"id": 1, "ticket_id": 1, "metric": "reply_time", "instance_id": 1, "type": "apply_sla",
             "time": "2025-03-02T09:00:00Z", "sla": {"target": 60, "business_hours": True}},
            {"id": 2, "ticket_id": 2, "metric": "reply_time", "instance_id": 1, "type": "breach",
             "time": "2025-03-02T10:00:00Z", "deleted": False},
            {"id": 3, "ticket_id": 1, "metric": "reply_time", "instance_id": 1, "type": "fulfill",
             "time": "2025-03-02T09:30:00Z"},
        ]  # fmt: skip
        reports = discover(config(fake), now=AS_OF)
        served = len(fake.requests)
    text = render_report(reports)
    assert (
        text
        == f"""\
source zd (zendesk)
  access
    /api/v2/users/me                             readable
    /api/v2/search/count                         readable
    /api/v2/incremental/tickets/cursor           readable
    /api/v2/ticket_fields                        readable
    /api/v2/slas/policies                        readable
    /api/v2/incremental/ticket_metric_events     readable
    /api/v2/satisfaction_ratings                 readable
    /api/v2/business_hours/schedules             readable
    /api/v2/business_hours/schedules/1/holidays  readable
  tickets updated since 2025-03-01 (search, to the day): 6
  a first sync reads: 6 tickets updated since 2025-02-21 (history 14d + overlap 1m) + 1 older open ones, of 8 in \
all (and the tickets of recent surveys by id)
  values below counted over a sample of 6 of those issues (one page)
  group (group_id)
    Support  3
    Billing  2
    (empty)  1
  priority (priority)
    p1  2
    p3  2
    p2  1
    p4  1
  channel (via.channel)
    web    4
    api    1
    email  1
  unassigned share: 16.7%
  surveys
    CSAT ratings received in the window: 2 good, 1 bad
    name          question                                      datatype  scale  answers  mapped as
    Satisfaction  How would you rate the support you received?  good/bad  0..1         3  overall
  SLAs (with the number of tickets)
    first_reply_time (read as response)       4
    requester_wait_time (read as resolution)  4
    policy 'Standard' (business hours): first_reply_time, requester_wait_time
    SLA events from the window's start (first page of the metric events export): 1 apply_sla reply_time, 1 breach \
reply_time, 1 fulfill reply_time
  complaints field tags
    billing    1
    complaint  1  matches
  complaints field {COMPLAINT_FIELD}
    formal_complaint  1  matches
  complaints field {COMPLAINT_FIELD} is the ticket field 'Complaint type'
  business hours (for calendars:)
    EMEA desk (Europe/Paris): Mon 09:00-18:00, Tue 09:00-18:00, Wed 09:00-18:00, Thu 09:00-18:00, Fri \
09:00-18:00; holidays: Christmas 2025-12-25..2025-12-26
  12 requests; ok

# Suggested mapping: merge into the matching entries of `sources:`.
sources:
  - name: zd
    surveys:
      overall: ["How would you rate the support you received?"]
    segments:   # customer-side labels: add the ones to group by to group_by
      organization: organization   # 2 values in the window
    complaints:
      tags: ["complaint"]
      {COMPLAINT_FIELD}: ["formal_complaint"]
"""
    )
    # The suggestion pastes as it is: the bare field id is a number in YAML, read as the field's id.
    pasted = yaml.safe_load(text[text.index("\nsources:") :])["sources"][0]
    assert config(fake, complaints=pasted["complaints"]).sources[0].complaints == {
        "tags": ["complaint"],
        str(COMPLAINT_FIELD): ["formal_complaint"],
    }
    assert reports[0].requests == served == 12
    assert TOKEN not in text


def test_configured_segments_are_counted_from_the_sample_in_its_own_request() -> None:
    """Organization names come as a sideload of the one sample page, a custom field on its tickets: no request more.
    The brand is the service label already, so it is not suggested."""
    segments = {"customer": "organization", "tier": str(TIER_FIELD)}
    with fake_zendesk(now=lambda: AS_OF.timestamp()) as fake:
        (report,) = discover(config(fake, segments=segments), now=AS_OF)
        served = len(fake.requests)
        includes = {r.param("include") for r in fake.exports()}
    text = render_report([report])
    assert "  segment customer (organization)\n    (empty)    3\n    Warehouse  2\n    Finance    1\n" in text
    assert f"  segment tier (custom field {TIER_FIELD})\n    (empty)  5\n    gold     1\n" in text
    assert "segments:" not in text  # nothing left to suggest
    assert includes == {"metric_sets,slas,groups,brands,organizations"}
    assert report.requests == served == 12


def test_the_request_budget_does_not_grow_with_the_account() -> None:
    counts = []
    for extra in (0, 3000):
        with fake_zendesk(now=lambda: AS_OF.timestamp()) as fake:
            fake.add(*(FakeTicket(100 + n, at(3), at(3) + timedelta(seconds=n)) for n in range(extra)))
            (report,) = discover(config(fake), now=AS_OF)
            assert report.ok and report.tickets == 6 + extra
            counts.append((report.requests, len(fake.requests), len(fake.exports())))
    assert counts[0] == counts[1] == (12, 12, 1)


def test_an_agent_without_admin_rights_is_told_what_to_ask_for() -> None:
    with fake_zendesk(now=lambda: datetime.now(UTC).timestamp()) as fake:
        fake.admin = False
        (report,) = discover(config(fake), now=AS_OF)
    assert not report.ok
    denied = {a.what: a.detail for a in report.access if a.state == "denied"}
    assert denied["/api/v2/incremental/tickets/cursor"] == (
        "ask for: an admin role (the incremental exports, ratings and SLA policies are for admins)"
    )
