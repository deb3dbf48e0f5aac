"""Drill-down links: each kind's list URLs against the documented forms, and nothing secret in a published label."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import parse_config
from itsm_exporter.connectors.demo.links import DemoLinks
from itsm_exporter.connectors.jira.links import JiraLinks, jql_field
from itsm_exporter.connectors.links import Placeholder
from itsm_exporter.connectors.servicenow.links import ServiceNowLinks
from itsm_exporter.connectors.zendesk.config import ZendeskSource
from itsm_exporter.connectors.zendesk.links import ZendeskLinks
from itsm_exporter.frames import Frames
from itsm_exporter.records import Segment, Ticket
from itsm_exporter.source_config import public_url

SN = "https://acme.service-now.com"
JIRA = "https://acme.atlassian.net"
ZENDESK = "https://acme.zendesk.com"


def test_servicenow_lists_are_encoded_queries_on_the_list_view() -> None:
    """<table>_list.do?sysparm_query=<encoded query> (docs/api-notes.md, "List views")."""
    links = ServiceNowLinks()
    assert links.breached(SN, "assignment_group.name", "Service Desk", "30") == (
        f"{SN}/incident_list.do?sysparm_query=assignment_group.name=Service%20Desk"
        "^resolved_at>=javascript:gs.daysAgoStart(30)^made_sla=false"
    )
    assert links.dissatisfied_comments(f"{SN}/", "caller_id.department.name", "R&D", "7") == (
        f"{SN}/asmt_metric_result_list.do?sysparm_query=instance.task_id.caller_id.department.name=R%26D"
        "^instance.taken_on>=javascript:gs.daysAgoStart(7)^string_valueISNOTEMPTY"
    )


def test_jira_lists_are_the_issue_navigator_with_the_equivalent_jql() -> None:
    links = JiraLinks()
    assert links.breached(JIRA, "project", "HELP", "30") == (
        f"{JIRA}/issues/?jql=project%20%3D%20%22HELP%22%20AND%20resolved%20%3E%3D%20-30d%20AND%20"
        "%22Time%20to%20resolution%22%20%3D%20breached%28%29"
    )
    assert links.dissatisfied_comments(JIRA, "Organizations", "Acme", "7") == (
        f"{JIRA}/issues/?jql=Organizations%20%3D%20%22Acme%22%20AND%20%22Satisfaction%20date%22%20%3E%3D%20-7d"
        "%20AND%20Satisfaction%20%3C%3D%202"
    )


def test_zendesk_lists_are_the_agent_search_with_the_support_search_syntax() -> None:
    """/agent/search/1?type=ticket&q=<search> (docs/api-notes.md, "Agent search"): the unhappy customers who wrote are
    `satisfaction:badwithcomment`; no search keyword selects a breached SLA, so that list has no link."""
    links = ZendeskLinks()
    assert links.dissatisfied_comments(ZENDESK, "organization", "Acme Corp", "7") == (
        f"{ZENDESK}/agent/search/1?type=ticket&q=organization%3A%22Acme%20Corp%22%20satisfaction%3Abadwithcomment"
        "%20updated%3E7days"
    )
    assert links.breached(ZENDESK, "group", "Support", "30") is None
    source = ZendeskSource.model_validate(
        {"name": "zd", "kind": "zendesk", "url": ZENDESK, "email": "a@acme.example", "token": "t",
         "segments": {"org": "organization", "tier": 360088, "line": "brand"}, "service_field": "360099"}
    )  # fmt: skip
    fields = {label: links.label_field(source, label) for label in ("group", "service", "priority", "channel")}
    assert fields == {"group": "group", "service": "custom_field_360099", "priority": None, "channel": "via"}
    assert [links.label_field(source, s) for s in ("org", "tier", "line")] == [
        "organization", "custom_field_360088", "brand",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("configured", "jql"),
    [
        ("project", "project"),
        ("components", "component"),
        ("requesttype", '"Customer Request Type"'),
        ("Organizations", "Organizations"),
        ("customfield_10040", "cf[10040]"),
        ("Team", '"Team"'),
        ('Cost "centre"', '"Cost \\"centre\\""'),
    ],
)
def test_a_configured_jira_field_is_named_as_jql_names_it(configured: str, jql: str) -> None:
    assert jql_field(configured) == jql


def test_placeholders_are_written_as_they_are_for_the_dashboard_to_fill() -> None:
    url = ServiceNowLinks().breached(
        Placeholder("${__data.fields.url}"),
        Placeholder("${__data.fields.field:percentencode}"),
        Placeholder("${__data.fields.value:percentencode}"),
        Placeholder("${window_days}"),
    )
    assert url == (
        "${__data.fields.url}/incident_list.do?sysparm_query=${__data.fields.field:percentencode}="
        "${__data.fields.value:percentencode}^resolved_at>=javascript:gs.daysAgoStart(${window_days})^made_sla=false"
    )


def test_the_demo_desk_links_to_the_lists_of_the_servicenow_instance_it_stands_for() -> None:
    args = (SN, "caller_id.department.name", "Warehouse", "30")
    assert DemoLinks().breached(*args) == ServiceNowLinks().breached(*args)
    assert DemoLinks().dissatisfied_comments(*args) == ServiceNowLinks().dissatisfied_comments(*args)


@pytest.mark.parametrize(
    ("url", "published"),
    [
        ("https://acme.service-now.com/", "https://acme.service-now.com"),
        ("https://u:pw@acme.service-now.com:8443/sn/?sysparm_token=s3cr3t#x", "https://acme.service-now.com:8443/sn"),
        ("http://[::1]:8080/jira", "http://[::1]:8080/jira"),
    ],
)
def test_a_published_url_has_no_credential_query_or_fragment(url: str, published: str) -> None:
    assert public_url(url) == published


SECRETS = ("Sn0w-Pa55-distinct", "jira-T0ken-distinct", "client-S3cret-distinct", "qs-T0ken-distinct")


def test_no_secret_reaches_any_published_label() -> None:
    config = parse_config(
        {
            "group_by": ["group", "department", "organization"],
            "sources": [
                {
                    "name": "sn", "kind": "servicenow", "url": f"{SN}/?sysparm_token={SECRETS[3]}",
                    "username": "bot", "password": SECRETS[0], "client_id": "id", "client_secret": SECRETS[2],
                    "segments": {"department": "caller_id.department.name"},
                },
                {
                    "name": "jsm", "kind": "jira", "url": JIRA, "username": "bot@acme.com", "token": SECRETS[1],
                    "segments": {"organization": "Organizations"},
                },
                {"name": "demo", "kind": "demo", "url": "https://demo.service-now.example/"},
            ],
        },
        check_files=False,
    )  # fmt: skip
    at = datetime(2026, 11, 20, 12, tzinfo=UTC)
    ticket = Ticket("sn", "1", "INC1", at, "open", at, group="Desk", segments=(Segment("department", "Finance"),))
    text = exposition(compute_metrics(Frames.from_records([ticket]), at, config))
    for secret in SECRETS:
        assert secret not in text
    assert 'itsm_source_info{kind="servicenow",source="sn",url="https://acme.service-now.com"} 1.0' in text
    assert 'itsm_source_info{kind="demo",source="demo",url="https://demo.service-now.example"} 1.0' in text
    assert 'itsm_source_label_info{field="Organizations",label="organization",source="jsm"} 1.0' in text
    assert 'itsm_source_label_info{field="caller_id.department.name",label="department",source="sn"} 1.0' in text
    assert 'label="department",source="jsm"' not in text  # a source without the segment has no field for it


def exposition(metrics: list[Metric]) -> str:
    class Fixed:
        def collect(self) -> Any:
            return metrics

    registry = CollectorRegistry()
    registry.register(Fixed())  # type: ignore[arg-type]
    return generate_latest(registry).decode()
