"""`itsm-exporter discover` against the fakes: the exact report, denied tables, an unreachable source,
no secret in the output, and a request budget that does not grow with the instance (issue 16 §1)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from itsm_exporter.cli import main
from itsm_exporter.config import Config, parse_config
from itsm_exporter.discover import discover, render_report, run
from tests.fakes.jira import EMAIL, TOKEN, fake_jira
from tests.fakes.loopback import closed_port
from tests.fakes.servicenow import FakeServiceNow, source_settings

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
"""The 30-day window starts 2026-02-08 12:00."""


def seed(fake: FakeServiceNow, incidents: int = 4) -> None:
    """Incidents in the window (one older), two survey questions answered three times, one never."""
    desk = fake.add("sys_user_group", name="Service Desk")
    network = fake.add("sys_user_group", name="Network")
    groups = [desk, desk, network, ""]
    categories = ["inquiry", "complaint", "network", "inquiry"]
    ids = []
    for n in range(incidents):
        ids.append(
            fake.add(
                "incident",
                number=f"INC{n:07d}",
                state="6",
                assignment_group=groups[n % 4],
                category=categories[n % 4],
                contact_type="email",
                priority="3",
                made_sla="true" if n % 4 else "false",
                opened_at="2026-03-01 08:00:00",
                resolved_at="2026-03-01 10:00:00",
                sys_updated_on="2026-03-01 10:00:00",
            )
        )
    fake.add("incident", number="INC9999999", state="7", opened_at="2025-12-01 08:00:00", category="complaint")
    overall = fake.add(
        "asmt_metric", name="overall", question="Overall satisfaction", datatype="scale", min="1", max="5"
    )
    speed = fake.add(
        "asmt_metric", name="speed", question="How quickly did we respond?", datatype="scale", min="1", max="5"
    )
    fake.add("asmt_metric", name="legacy", question="Old question", datatype="scale", min="1", max="5")
    for incident in ids[:3]:
        survey = fake.add(
            "asmt_assessment_instance", state="complete", taken_on="2026-03-02 12:00:00", trigger_table="incident",
            trigger_id=incident,
        )  # fmt: skip
        fake.add("asmt_metric_result", instance=survey, metric=overall, actual_value="4")
        fake.add("asmt_metric_result", instance=survey, metric=speed, actual_value="5")


@pytest.fixture
def fake() -> Iterator[FakeServiceNow]:
    with FakeServiceNow() as instance:
        seed(instance)
        yield instance


def servicenow_config(fake: FakeServiceNow, **settings: Any) -> Config:
    settings.setdefault("surveys", {"overall": ["Overal satisfaction"]})
    settings.setdefault("complaints", {"category": ["Complaint"]})
    settings.setdefault("max_retries", 0)
    return parse_config({"sources": [source_settings(fake, **settings)]}, check_files=False)


def test_the_servicenow_report_is_exact(fake: FakeServiceNow) -> None:
    reports = discover(servicenow_config(fake), now=NOW)
    assert (
        render_report(reports)
        == """\
source sn (servicenow)
  access
    table incident                  readable
    table task_sla                  readable
    table asmt_assessment_instance  readable
    table asmt_metric_result        readable
    table asmt_metric               readable
    table sys_audit_delete          readable
  tickets opened in the last 30d: 4
  a first sync reads: 4 incidents updated since 2026-01-09 11:55:00 UTC (history 60d + overlap 5m) + 0 older \
open ones, of 5 in all (and the tickets of recent surveys by id)
  group (assignment_group)
    Service Desk  2
    (empty)       1
    Network       1
  unassigned share: 25.0%
  surveys
    3 completed survey instances in the window
    configured sources[0].surveys.overall[0] 'Overal satisfaction' matches no question; closest upstream: \
'Overall satisfaction'
    name     question                     datatype  scale  answers  mapped as
    speed    How quickly did we respond?  scale     1..5         3  unmapped
    overall  Overall satisfaction         scale     1..5         3  unmapped
  SLAs (with the number of tickets)
    made_sla=false  1
    made_sla=true   3
    sla_source is made_sla: one resolution outcome per incident, no response SLA. Set sla_source: task_sla to \
read the SLA definitions below.
    no task_sla row for the window's incidents: only made_sla is available
  complaints field category
    inquiry    2
    complaint  1  matches
    network    1
  15 requests; ok

# Suggested mapping: merge into the matching entries of `sources:`.
sources:
  - name: sn
    surveys:
      overall: ["Overall satisfaction"]
      # unmapped, 3 answers: "How quickly did we respond?" (add it under a RATER dimension or an expectation, \
or leave it out)
    complaints:
      category: ["complaint"]
"""
    )
    # Counted by the exporter and by the instance alike.
    assert reports[0].requests == len(fake.requests) == 15  # 12, and one count per likely segment (3)


def test_a_pasted_suggestion_maps_every_answer_and_the_report_says_so(fake: FakeServiceNow) -> None:
    suggested = yaml.safe_load("\n".join(render_report(discover(servicenow_config(fake), now=NOW)).split("\n")[-8:]))
    block = suggested["sources"][0]
    block["surveys"]["dimensions"] = {"responsiveness": ["How quickly did we respond?"]}
    (report,) = discover(servicenow_config(fake, **{k: v for k, v in block.items() if k != "name"}), now=NOW)
    assert [(q.name, q.role) for q in report.questions] == [
        ("speed", "dimensions.responsiveness"),
        ("overall", "overall"),
    ]
    assert not [note for note in report.survey_notes if "matches no question" in note]


def test_a_denied_table_names_the_role_to_ask_for_and_fails_the_report(fake: FakeServiceNow) -> None:
    fake.denied = {"asmt_metric_result"}
    out = io.StringIO()
    assert run(servicenow_config(fake), None, out, now=NOW) == 1
    text = out.getvalue()
    assert "    table asmt_metric_result        denied    ask for: survey_reader (or assessment_admin)\n" in text
    # The other reads went on: the tickets and the complaint values are still reported.
    assert "  tickets opened in the last 30d: 4\n" in text
    assert "    complaint  1  matches\n" in text
    assert text.rstrip().endswith('category: ["complaint"]')
    assert "; NOT READY\n" in text


def test_a_denied_optional_table_is_reported_but_does_not_fail(fake: FakeServiceNow) -> None:
    fake.denied = {"sys_audit_delete"}
    out = io.StringIO()
    assert run(servicenow_config(fake), None, out, now=NOW) == 0
    assert "table sys_audit_delete          denied    ask for: a read ACL on sys_audit_delete" in out.getvalue()


def test_an_unreachable_source_fails_alone_and_the_cli_exits_1(
    fake: FakeServiceNow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = source_settings(fake, name="dead", url=f"http://127.0.0.1:{closed_port()}", max_retries=0)
    alive = source_settings(fake, max_retries=0, surveys={"overall": ["overall"]})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"sources": [dead, alive]}), encoding="utf-8")
    assert main(["discover", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "source dead (servicenow)\n  unreachable: source dead: stats of table incident at http://127.0.0.1:" in out
    assert ": connection refused by 127.0.0.1:" in out
    assert "source sn (servicenow)\n  access\n" in out  # the reachable source is still reported
    assert "  - name: dead" not in out  # nothing read, nothing to suggest
    assert out.endswith("# No mapping to suggest: no survey question, complaint value or customer field was found.\n")
    assert main(["discover", "--config", str(config), "--source", "sn"]) == 0
    assert main(["discover", "--config", str(config), "--source", "nope"]) == 2
    assert "error: --source nope: no enabled source of that name (enabled: dead, sn)" in capsys.readouterr().err


def test_refused_credentials_are_not_called_unreachable_and_a_failure_suggests_nothing(
    fake: FakeServiceNow,
) -> None:
    refused = source_settings(fake, password="Wr0ng-pass!", max_retries=0)
    dead = source_settings(fake, name="dead", url=f"http://127.0.0.1:{closed_port()}", max_retries=0)
    out = io.StringIO()
    assert run(parse_config({"sources": [refused, dead]}), None, out, now=NOW) == 1
    text = out.getvalue()
    assert (
        "source sn (servicenow)\n  credentials refused: source sn: stats of table incident at http://127.0.0.1:" in text
    )
    assert "HTTP 401, user itsm-exporter was refused" in text
    assert "source dead (servicenow)\n  unreachable: source dead: stats of table incident at http://127.0.0.1:" in text
    assert "Suggested mapping" not in text and "sources:" not in text
    assert text.endswith("NOT READY\n\n# No mapping to suggest: no source could be read.\n")


def test_no_secret_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServiceNow(client_id="client-42", client_secret="Cl13nt-s3cret!") as oauth:
        seed(oauth)
        wrong = source_settings(oauth, name="wrong", password="Wr0ng-pass!", max_retries=0)
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({"sources": [source_settings(oauth), wrong]}), encoding="utf-8")
        code = main(["discover", "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == 1  # `wrong` is refused
    assert "the OAuth password grant for user" in out
    for secret in ("Sn0w-pass!", "Wr0ng-pass!", "Cl13nt-s3cret!"):
        assert secret not in out + err


def test_the_request_budget_does_not_grow_with_the_instance() -> None:
    counts = []
    for incidents in (4, 3000):
        with FakeServiceNow() as instance:
            seed(instance, incidents)
            settings = {"surveys": {}, "complaints": {"category": ["complaint"], "contact_type": ["phone"]}}
            raw = source_settings(instance, max_retries=0, page_size=100, **settings)
            config = parse_config({"sources": [raw], "group_by": ["group", "service", "priority", "channel"]})
            (report,) = discover(config, now=NOW)
            assert report.tickets == incidents
            counts.append((report.requests, len(instance.requests)))
    # Four label group-bys, two complaint fields, SLA and survey reads: the same few requests for 4 or 3000
    # incidents, however small the page size.
    assert counts[0] == counts[1] == (19, 19)


@pytest.mark.parametrize("mode", ["cloud", "datacenter"])
def test_jira_report_with_no_surveys_block_counts_csat_as_overall(mode: str) -> None:
    with fake_jira(mode) as fake:
        source = {
            "name": "jsm", "kind": "jira", "url": fake.url, "token": TOKEN, "group_field": "Team",
            "priority_map": {"Urgent": "p1"}, "complaints": {"labels": ["complaint"]}, "max_retries": 0,
        }  # fmt: skip
        if mode == "cloud":
            source["username"] = EMAIL
        config = parse_config({"sources": [source], "group_by": ["group", "priority"]}, check_files=False)
        (report,) = discover(config, now=datetime(2025, 3, 10, tzinfo=UTC))
        served = len(fake.requests)
    text = render_report([report])
    assert report.ok and report.tickets == 8 and report.sample == 8
    assert "    Satisfaction  csat      rating    1..5         2  overall\n" in text
    assert "    Time to first response (customfield_10020, read as response)  5\n" in text
    assert "    complaint  1  matches\n" in text
    assert '      overall: ["Satisfaction"]\n' in text
    assert (
        "  business hours (for calendars:)\n    JSM's REST API does not expose its SLA calendars: copy each SLA's "
        "working hours and holidays from Project settings > SLAs > Calendars\n" in text
    )
    assert TOKEN not in text
    # serverInfo (twice on Cloud: detection, then v3), field, status, myself, the count, one sample page.
    assert report.requests == served == {"cloud": 8, "datacenter": 7}[mode]


def test_colour_only_when_asked() -> None:
    config = parse_config({"sources": [{"name": "d", "kind": "demo"}]})
    plain, coloured = (render_report(discover(config, now=NOW), colour=c) for c in (False, True))
    assert "\033[" not in plain
    assert "\033[32mok\033[0m" in coloured
    out = io.StringIO()  # not a TTY
    assert run(config, None, out) == 0 and "\033[" not in out.getvalue()


def test_configured_segments_are_counted_and_likely_ones_suggested(fake: FakeServiceNow) -> None:
    finance = fake.add("cmn_department", name="Finance")
    acme = fake.add("core_company", name="ACME")
    ann = fake.add("sys_user", name="Ann", department=finance)
    for number, record in enumerate(list(fake.tables["incident"])[:3]):
        fake.update("incident", record, caller_id=ann if number < 2 else "", company=acme)
    config = servicenow_config(fake, segments={"department": "caller_id.department.name"})
    text = render_report(discover(config, now=NOW))
    assert "  segment department (caller_id.department.name)\n    (empty)  2\n    Finance  2\n" in text
    # Company has values, location none: only company is suggested, with its count of values.
    assert "    segments:   # customer-side labels: add the ones to group by to group_by\n" in text
    assert "      company: company.name   # 1 value in the window\n" in text
    assert "location" not in text


def seed_schedules(fake: FakeServiceNow) -> None:
    """Two SLA definitions of the window's incidents: one on an 8-to-5 schedule with a lunch break, a shorter
    Friday and two holidays, one without a schedule."""
    schedule = fake.add("cmn_schedule", name="8-5 weekdays excluding holidays", time_zone="Europe/Berlin")
    for name, days, start, end in [
        ("Mornings", "12345", "20250106T080000", "20250106T120000"),
        ("Afternoons", "1234", "20250106T130000", "20250106T170000"),
        ("Friday afternoon", "5", "20250110T130000", "20250110T150000"),
    ]:
        fake.add(
            "cmn_schedule_span", schedule=schedule, name=name, repeat_type="weekly", days_of_week=days,
            start_date_time=start, end_date_time=end, all_day="false",
        )  # fmt: skip
    for name, day in [("Christmas Day", "20251225"), ("New Year's Day", "20260101")]:
        fake.add(
            "cmn_schedule_span", schedule=schedule, name=name, type="exclude", repeat_type="yearly",
            start_date_time=f"{day}T000000", end_date_time=f"{day}T235959", all_day="true",
        )  # fmt: skip
    office = fake.add("contract_sla", name="P3 resolution (8-5)", target="resolution", schedule=schedule)
    around = fake.add("contract_sla", name="P1 response (24x7)", target="response")
    for incident, sla in zip(list(fake.tables["incident"])[:2], (office, around), strict=True):
        fake.add("task_sla", task=incident, sla=sla, stage="completed", has_breached="false")


def test_the_servicenow_report_lists_the_schedules_of_its_slas(fake: FakeServiceNow) -> None:
    """What a user mirrors in `calendars:`: the schedule each SLA definition uses, its hours in the config's
    shape, its excluded days; an SLA without a schedule counts around the clock."""
    seed_schedules(fake)
    text = render_report(discover(servicenow_config(fake, sla_source="task_sla"), now=NOW))
    assert "    table cmn_schedule              readable\n    table cmn_schedule_span         readable\n" in text
    assert (
        """\
  business hours (for calendars:)
    SLA 'P1 response (24x7)': no schedule (it counts around the clock)
    schedule '8-5 weekdays excluding holidays' (time zone Europe/Berlin), used by SLA 'P3 resolution (8-5)':
      hours: {mon-thu: ['08:00-12:00', '13:00-17:00'], fri: ['08:00-12:00', '13:00-15:00']}
      excluded: 2025-12-25 (Christmas Day), 2026-01-01 (New Year's Day) (holidays: dates, or a country and \
subdivision)
"""
        in text
    )


def test_denied_schedules_are_reported_but_do_not_fail(fake: FakeServiceNow) -> None:
    seed_schedules(fake)
    fake.denied = {"cmn_schedule", "cmn_schedule_span"}
    out = io.StringIO()
    assert run(servicenow_config(fake, sla_source="task_sla"), None, out, now=NOW) == 0
    assert "    table cmn_schedule              denied    ask for: read on cmn_schedule and cmn_schedule_span" in (
        out.getvalue()
    )
