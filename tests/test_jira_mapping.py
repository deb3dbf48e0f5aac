"""Pure parts of the Jira connector: JQL time literals, SLA cycles, changelog counts, fields, states."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.jira.connector import jql_since, search_jql
from itsm_exporter.connectors.jira.mapping import (
    FieldCatalog,
    IssueMapper,
    MappingError,
    StatusCatalog,
    count_changes,
    embedded_histories,
    embedded_length,
    parse_jira_time,
    sla_outcome,
    sla_stop_time,
)

DONE = StatusCatalog(frozenset({"5", "6"}), frozenset({"resolved", "closed"}))


def test_jira_times_with_any_offset_become_utc() -> None:
    assert parse_jira_time("2024-11-13T20:27:56.526+0530") == datetime(2024, 11, 13, 14, 57, 56, 526000, tzinfo=UTC)
    assert parse_jira_time("2024-11-13T20:27:56.526-0700") == datetime(2024, 11, 14, 3, 27, 56, 526000, tzinfo=UTC)
    assert parse_jira_time("2024-11-13T20:27:56+00:00") == datetime(2024, 11, 13, 20, 27, 56, tzinfo=UTC)
    with pytest.raises(MappingError, match="timestamp without offset"):
        parse_jira_time("2024-11-13T20:27:56")


def test_jql_literal_is_the_minute_in_the_user_zone() -> None:
    moment = datetime(2025, 3, 7, 17, 55, 30, tzinfo=UTC)
    assert jql_since(moment, ZoneInfo("Asia/Kolkata")) == "2025-03-07 23:25"
    assert jql_since(moment, ZoneInfo("America/Phoenix")) == "2025-03-07 10:55"
    assert jql_since(moment, None) == "2025-03-07 03:55"  # zone unknown: 14 hours earlier, in UTC


def test_jql_literal_in_a_repeated_hour_steps_back_so_either_reading_is_early_enough() -> None:
    # 2024-11-03 01:30 happens twice in New York; 06:30Z is the second (EST) one.
    second = datetime(2024, 11, 3, 6, 30, tzinfo=UTC)
    assert jql_since(second, ZoneInfo("America/New_York")) == "2024-11-03 01:30"
    first = datetime(2024, 11, 3, 5, 30, tzinfo=UTC)  # the first (EDT) 01:30: the EST reading would be late
    assert jql_since(first, ZoneInfo("America/New_York")) == "2024-11-03 00:30"


def test_search_jql_shapes() -> None:
    assert search_jql("", "2025-03-07 10:55") == 'updated >= "2025-03-07 10:55" ORDER BY updated ASC, key ASC'
    assert search_jql("project = HELP OR project = OPS", "2025-03-07 10:55") == (
        '(project = HELP OR project = OPS) AND updated >= "2025-03-07 10:55" ORDER BY updated ASC, key ASC'
    )


def cycle(breached: bool, stop_ms: int | None = None, remaining: int = 0) -> dict[str, Any]:
    shape: dict[str, Any] = {"breached": breached, "remainingTime": {"millis": remaining, "friendly": ""}}
    if stop_ms is not None:
        shape["stopTime"] = {"epochMillis": stop_ms, "iso8601": "", "jira": "", "friendly": ""}
    return shape


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        (None, "unknown"),
        ({"completedCycles": []}, "unknown"),
        ({"completedCycles": [], "ongoingCycle": cycle(True, remaining=-7_200_000)}, "unknown"),
        ({"completedCycles": [cycle(False, 0)]}, "met"),
        ({"completedCycles": [cycle(False, 0, remaining=-1)]}, "met"),  # negative remaining is not a breach flag
        ({"completedCycles": [cycle(True, 0)]}, "breached"),
        ({"completedCycles": [cycle(True, 0), cycle(False, 0)]}, "met"),  # the last cycle decides
        ({"completedCycles": [cycle(False, 0), cycle(True, 0)], "ongoingCycle": cycle(False)}, "breached"),
    ],
)
def test_sla_outcome_from_the_last_completed_cycle(value: Any, outcome: str) -> None:
    assert sla_outcome(value) == outcome


def test_first_response_is_the_stop_of_the_last_completed_cycle() -> None:
    value = {"completedCycles": [cycle(False, 1_741_000_000_000), cycle(False, 1_741_000_060_000)]}
    assert sla_stop_time(value) == datetime(2025, 3, 3, 11, 7, 40, tzinfo=UTC)
    assert sla_stop_time({"completedCycles": [], "ongoingCycle": cycle(False)}) is None
    with pytest.raises(MappingError, match="without stopTime"):
        sla_stop_time({"name": "Time to first response", "completedCycles": [cycle(False)]})


def history(created: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"id": created, "created": created, "items": list(items)}


def assignee(before: str | None, after: str | None) -> dict[str, Any]:
    return {"field": "assignee", "fieldId": "assignee", "from": before, "to": after}


def status(before: str, after: str, before_name: str = "", after_name: str = "") -> dict[str, Any]:
    return {"field": "status", "fieldId": "status", "from": before, "fromString": before_name, "to": after,
            "toString": after_name}  # fmt: skip


def test_reassignments_count_changes_after_the_first_assignment() -> None:
    histories = [
        history("2025-03-01T10:00:00.000+0000", assignee(None, "a")),  # first assignment
        history("2025-03-01T11:00:00.000+0000", assignee("a", "b")),  # 1
        history("2025-03-01T12:00:00.000+0000", assignee("b", None)),  # unassigned: not counted
        history("2025-03-01T13:00:00.000+0000", assignee(None, "c")),  # 2
    ]
    assert count_changes(list(reversed(histories)), DONE) == (0, 2)  # sorted by time before counting
    assert count_changes([history("2025-03-01T11:00:00.000+0000", assignee("creator", "b"))], DONE) == (0, 1)


def test_reopens_are_transitions_out_of_a_done_status() -> None:
    histories = [
        history("1", status("1", "3")),
        history("2", status("3", "5")),
        history("3", status("5", "6")),  # done to done: not a reopen
        history("4", status("6", "3")),  # 1
        history("5", status("3", "5")),
        history("6", status("99", "3", "Resolved", "In Progress")),  # unknown id, done name: 2
    ]
    assert count_changes(histories, DONE) == (2, 0)


FIELDS = [
    {"id": "project", "name": "Project", "schema": {"type": "project", "system": "project"}},
    {"id": "components", "name": "Component/s", "schema": {"type": "array", "system": "components"}},
    {"id": "customfield_1", "name": "Time to resolution",
     "schema": {"type": "sd-servicelevelagreement", "custom": "com.atlassian.servicedesk:sd-sla-field"}},
    {"id": "customfield_2", "name": "Time to first response",
     "schema": {"type": "sd-servicelevelagreement", "custom": "com.atlassian.servicedesk:sd-sla-field"}},
    {"id": "customfield_3", "name": "Time to close after resolution",
     "schema": {"type": "sd-servicelevelagreement", "custom": "com.atlassian.servicedesk:sd-sla-field"}},
    {"id": "customfield_4", "name": "Customer Request Type",
     "schema": {"type": "sd-customerrequesttype", "custom": "com.atlassian.servicedesk:vp-origin"}},
    {"id": "customfield_5", "name": "Satisfaction",
     "schema": {"type": "sd-feedback", "custom": "com.atlassian.servicedesk:sd-request-feedback"}},
    {"id": "customfield_6", "name": "Satisfaction date",
     "schema": {"type": "datetime", "custom": "com.atlassian.servicedesk:sd-request-feedback-date"}},
    {"id": "customfield_7", "name": "Team", "schema": {"type": "team", "custom": "com.atlassian.teams:rm-teams"}},
]  # fmt: skip


def test_field_catalog_finds_jsm_fields_by_schema_and_name() -> None:
    catalog = FieldCatalog.from_fields(FIELDS, {})
    assert catalog.sla == {"response": "customfield_2", "resolution": "customfield_1"}
    assert (catalog.satisfaction, catalog.satisfaction_date, catalog.request_type) == (
        "customfield_5", "customfield_6", "customfield_4",
    )  # fmt: skip
    assert catalog.resolve("team") == "customfield_7"
    assert catalog.resolve("RequestType") == "customfield_4"
    assert catalog.resolve("labels") == "labels"
    assert catalog.resolve("No Such Field") is None


def test_configured_sla_fields_win_by_name_or_id() -> None:
    catalog = FieldCatalog.from_fields(
        FIELDS, {"resolution": "Time to close after resolution", "response": "customfield_1"}
    )
    assert catalog.sla == {"response": "customfield_1", "resolution": "customfield_3"}


def mapper(**settings: Any) -> IssueMapper:
    source = JiraSource.model_validate(
        {"name": "jsm", "kind": "jira", "url": "https://x.atlassian.net", "token": "t"} | settings
    )
    return IssueMapper(source, FieldCatalog.from_fields(FIELDS, {}), DONE)


def issue(**fields: Any) -> dict[str, Any]:
    base = {"created": "2025-03-01T10:00:00.000+0000", "updated": "2025-03-01T11:00:00.000+0000",
            "status": {"id": "1", "name": "Open", "statusCategory": {"key": "new"}}}  # fmt: skip
    return {"id": "1", "key": "HELP-1", "fields": base | fields}


def test_group_and_service_from_project_components_request_type_and_team() -> None:
    fields = {
        "project": {"key": "HELP", "name": "Help Desk"},
        "components": [{"name": "VPN"}, {"name": "Email"}],
        "customfield_4": {"requestType": {"id": "12", "name": "Get IT help"}, "currentStatus": {}},
        "customfield_7": {"id": "t-1", "name": "Network Ops"},
    }
    assert (mapper().ticket(issue(**fields), []).group, mapper().ticket(issue(**fields), []).service) == (
        "Help Desk", "VPN",
    )  # fmt: skip
    other = mapper(group_field="Team", service_field="requesttype").ticket(issue(**fields), [])
    assert (other.group, other.service) == ("Network Ops", "Get IT help")


@pytest.mark.parametrize(
    ("name", "category", "resolution", "state"),
    [
        ("Open", "new", None, "open"),
        ("Waiting for support", "indeterminate", None, "open"),
        ("Waiting for customer", "indeterminate", None, "on_hold"),
        ("Pending", "indeterminate", None, "on_hold"),
        ("On Hold", "indeterminate", None, "on_hold"),
        ("Resolved", "done", "Done", "resolved"),
        ("Closed", "done", "Fixed", "closed"),
        ("Closed", "done", "Duplicate", "canceled"),
        ("Done", "done", "Won't Do", "canceled"),
        ("Canceled", "done", "Cancelled", "canceled"),
    ],
)
def test_states(name: str, category: str, resolution: str | None, state: str) -> None:
    fields: dict[str, Any] = {"status": {"id": "9", "name": name, "statusCategory": {"key": category}}}
    fields["resolution"] = {"name": resolution} if resolution else None
    fields["resolutiondate"] = "2025-03-01T12:00:00.000+0000" if category == "done" else None
    assert mapper().ticket(issue(**fields), []).state == state


def test_priorities_default_and_configured() -> None:
    m = mapper(priority_map={"Urgent": "p1", "Medium": "p2"})
    names = ["Blocker", "Critical", "Major", "Medium", "Minor", "Trivial", "Urgent", "Unheard of"]
    got = [m.ticket(issue(priority={"name": n}), []).priority for n in names]
    assert got == ["p1", "p1", "p2", "p2", "p4", "p5", "p1", None]


def test_complaint_matches_any_value_of_the_configured_field() -> None:
    m = mapper(complaints={"labels": ["complaint"], "RequestType": ["Raise a complaint"]})
    assert m.ticket(issue(labels=["vip", "Complaint"]), []).complaint is True
    assert m.ticket(issue(customfield_4={"requestType": {"name": "Raise a complaint"}}), []).complaint is True
    assert m.ticket(issue(labels=["vip"]), []).complaint is False


def test_missing_status_and_created_are_mapping_errors() -> None:
    with pytest.raises(MappingError) as raised:
        mapper().ticket({"id": "1", "key": "HELP-1", "fields": {"created": "2025-03-01T10:00:00.000+0000"}}, [])
    assert raised.value.reason == "missing_status"
    with pytest.raises(MappingError) as missing:
        mapper().ticket(issue(created=None), [])
    assert missing.value.reason == "missing_created"


def changelog(shown: int, **page: Any) -> dict[str, Any]:
    return {"changelog": {"startAt": 0, **page, "histories": [{"id": str(n)} for n in range(shown)]}}


@pytest.mark.parametrize(
    ("issue", "cap", "complete"),
    [
        (changelog(3, maxResults=100, total=3), 0, True),  # shorter than the page it could fill
        (changelog(100, maxResults=100, total=100), 0, False),  # a full page: cut, as the spec reads
        (changelog(3, maxResults=3, total=10), 100, False),  # a total above what is shown is believed
        (changelog(3, maxResults=3, total=3), 0, False),  # Data Center's shape, nothing seen yet: cannot tell
        (changelog(3, maxResults=3, total=3), 7, True),  # ... shorter than a list the site already showed
        (changelog(7, maxResults=7, total=7), 7, False),  # ... as long as the longest: may be cut
        (changelog(2, total=2), 0, False),  # no maxResults and nothing seen
        (changelog(0, maxResults=0, total=0), 0, True),  # nothing to cut
        ({"changelog": {"histories": "x"}}, 50, False),
        ({}, 50, False),
    ],
)
def test_an_embedded_changelog_is_complete_only_when_shorter_than_its_page(
    issue: dict[str, Any], cap: int, complete: bool
) -> None:
    """The platform spec's embedded changelog starts from the most recent and its total counts the page only."""
    histories = embedded_histories(issue, cap)
    assert (histories is not None) == complete
    if complete:
        assert histories == issue["changelog"]["histories"]


def test_the_embedded_length_is_what_the_site_showed_it_can_serve() -> None:
    assert embedded_length(changelog(3, maxResults=100, total=3)) == 100
    assert embedded_length(changelog(7, maxResults=7, total=7)) == 7
    assert embedded_length(changelog(4, total=9)) == 4
    assert embedded_length({}) == 0
