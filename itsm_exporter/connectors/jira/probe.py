"""`discover` for Jira Service Management: the site's fields, one count, one sample page of the window's issues.

Jira has no group-by: counts come from Data Center's search `total` or Cloud's approximate count, and
field values from one page of issues (the report says so).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from itsm_exporter.connectors.jira.client import JiraClient
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.jira.connector import jql_since, search_jql
from itsm_exporter.connectors.jira.mapping import (
    CSAT_QUESTION_ID,
    CSAT_QUESTION_TEXT,
    DEFAULT_SURVEY_QUESTION,
    FieldCatalog,
    IssueMapper,
    StatusCatalog,
    render,
)
from itsm_exporter.connectors.probe import Probe, QuestionFacts, SegmentSuggestion, ValueCount
from itsm_exporter.records import QuestionUse

LIKELY_SEGMENTS: Final = {"organization": "organizations", "request_type": "requesttype"}
"""JSM's customer fields, suggested as segments when the sample holds values (read in the same sample page)."""
SAMPLE: Final = 100
"""Issues read to show the values of Jira fields (Jira has no group-by): one page, Cloud's page size."""


def discover(source: JiraSource, probe: Probe) -> None:
    """Access, the window's issue count, label and complaint values of a sample, SLA fields, CSAT."""
    settings, facts = probe.settings, probe.facts
    client = JiraClient(source, probe.observe)
    try:
        site = probe.read("fields, statuses and /myself", "Browse projects", client.site, first=True)
        if site is None:
            return
        catalog = FieldCatalog.from_fields(site.fields, source.sla_fields)
        mapper = IssueMapper(source, catalog, StatusCatalog.from_statuses(site.statuses))
        jql = search_jql(source.jql, jql_since(settings.since, site.zone))
        facts.tickets = probe.read("issue search", "Browse projects", lambda: _count(client, jql))
        facts.tickets_basis = f"updated in the last {settings.window}"
        likely = {label: catalog.resolve(spec) for label, spec in LIKELY_SEGMENTS.items()}
        fields = list(dict.fromkeys([*mapper.requested_fields(), *(f for f in likely.values() if f)]))
        page = client.search(jql, fields, start=0, token=None, expand="", limit=SAMPLE)
        issues = [issue.get("fields") or {} for issue in page["issues"]]
        facts.sample = len(issues)
        _labels(source, probe, mapper, issues)
        _segments(source, probe, mapper, issues)
        for spec, wanted in source.complaints.items():
            field_id = catalog.resolve(spec)
            seen = Counter(text for fields in issues for text in render(fields.get(field_id)) if field_id)
            if field_id is None:
                facts.complaint_notes.append(f"complaints field {spec!r} is not a field of this site")
            facts.complaints[spec] = probe.complaint_values(((v, v, n) for v, n in seen.items()), wanted)
        for goal, field_id in sorted(catalog.sla.items()):
            carrying = sum(1 for fields in issues if fields.get(field_id) is not None)
            name = next((str(f.get("name")) for f in site.fields if f.get("id") == field_id), field_id)
            facts.slas.append(ValueCount(f"{name} ({field_id}, read as {goal})", carrying))
        if not catalog.sla:
            facts.sla_notes.append(
                "no SLA field visible: the API user needs a JSM agent licence (docs/jira.md), or set sla_fields"
            )
        else:
            # No endpoint lists them (Atlassian's JSDCLOUD-15660, JSDSERVER-5623): the SLA fields carry
            # only elapsed and remaining working time.
            facts.calendar_notes.append(
                "JSM's REST API does not expose its SLA calendars: copy each SLA's working hours and holidays "
                "from Project settings > SLAs > Calendars"
            )
        _csat(source, catalog, issues, probe)
    finally:
        client.close()


def _count(client: JiraClient, jql: str) -> int | None:
    """Data Center's search `total`; Cloud's enhanced search has none, so its approximate count."""
    client.library()  # detects the deployment
    if client.cloud:
        return client.approximate_count(jql)
    page = client.search(jql, ["id"], start=0, token=None, expand="", limit=1)
    total = page.get("total")
    return int(total) if isinstance(total, int) else None


def _labels(source: JiraSource, probe: Probe, mapper: IssueMapper, issues: Sequence[Mapping[str, Any]]) -> None:
    facts = probe.facts
    for label in probe.settings.group_by:
        if label in ("group", "service"):
            spec = source.group_field if label == "group" else source.service_field
            values = [mapper.label(fields, spec) for fields in issues]
            upstream = spec
        elif label == "priority":
            values = [_priority(mapper, fields) for fields in issues]
            upstream = "priority, mapped"
        else:
            values = [None for _ in issues]
            upstream = "no channel on Jira"
        facts.groupings[f"{label} ({upstream})"] = probe.top(Counter(v or "(empty)" for v in values).items())
        if label == "group" and issues:
            facts.unassigned = sum(1 for v in values if not v) / len(issues)


def _segments(source: JiraSource, probe: Probe, mapper: IssueMapper, issues: Sequence[Mapping[str, Any]]) -> None:
    """Each configured segment's values in the sample, and JSM's customer fields not configured yet that hold some."""
    facts = probe.facts
    for label, spec in source.segments.items():
        values = [mapper.label(fields, spec) for fields in issues]
        facts.segments[f"{label} ({spec})"] = probe.top(Counter(v or "(empty)" for v in values).items())
    configured = {spec.casefold() for spec in source.segments.values()}
    for label, spec in LIKELY_SEGMENTS.items():
        if spec in configured or label in source.segments:
            continue
        distinct = {v for fields in issues if (v := mapper.label(fields, spec))}
        if distinct:
            facts.segment_suggestions.append(SegmentSuggestion(label, spec, len(distinct)))


def _priority(mapper: IssueMapper, fields: Mapping[str, Any]) -> str | None:
    """The priority label the connector gives an issue: Jira's name through priority_map, as mapping.py does."""
    names = render(fields.get("priority"))
    name = names[0] if names else None
    return mapper.priorities.get(name.casefold(), f"{name} (unmapped)") if name else None


def _csat(source: JiraSource, catalog: FieldCatalog, issues: Sequence[Mapping[str, Any]], probe: Probe) -> None:
    facts = probe.facts
    if catalog.satisfaction is None:
        hint = "the feedback endpoint" if source.csat_feedback_endpoint else "set csat_feedback_endpoint: true"
        facts.survey_notes.append(f"no Satisfaction field visible to the API user: CSAT only through {hint}")
        rated = 0
    else:
        rated = sum(1 for fields in issues if fields.get(catalog.satisfaction) is not None)
        facts.survey_notes.append(f"CSAT available (field {catalog.satisfaction})")
    facts.questions.append(
        QuestionFacts(
            QuestionUse(CSAT_QUESTION_ID, DEFAULT_SURVEY_QUESTION, CSAT_QUESTION_TEXT, rated),
            datatype="rating",
            scale="1..5",
            shown_text="",  # JSM shows no question text; the config names the rating by its field name
        )
    )
