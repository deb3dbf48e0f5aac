"""`discover` for ServiceNow: counts and group-bys from the Aggregate API, a bounded number of requests.

Every count comes from `/api/now/stats` (TableClient.stats): one request whatever the instance's size.
Questions and SLA targets are read by id, one page each, and so are the schedules those SLAs use
(schedules.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any, Final

from itsm_exporter.connectors.probe import Probe, QuestionFacts, SegmentSuggestion, ValueCount
from itsm_exporter.connectors.servicenow import wire
from itsm_exporter.connectors.servicenow.client import TableClient
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import LABEL_FIELDS
from itsm_exporter.connectors.servicenow.schedules import schedule_notes
from itsm_exporter.records import QuestionUse

LIKELY_SEGMENTS: Final = {
    "department": "caller_id.department.name",
    "company": "company.name",
    "location": "location.name",
}
"""Customer fields every incident table has, suggested as segments when they hold values (one count each)."""
TOP_QUESTIONS: Final = 100
"""Questions listed: ServiceNow instances hold every survey's questions, most never answered here."""
ROLES: Final = {
    "incident": "itil (or sn_incident_read)",
    "asmt_assessment_instance": "survey_reader (or assessment_admin)",
    "asmt_metric_result": "survey_reader (or assessment_admin)",
    "asmt_metric": "survey_reader (or assessment_admin)",
    "task_sla": "itil, or a read ACL on task_sla",
    "contract_sla": "itil, or a read ACL on contract_sla",
    "sys_audit_delete": "a read ACL on sys_audit_delete (admin-only by default; optional)",
}
"""What to ask the ServiceNow admin for when a table is denied (docs/servicenow.md, "The API user")."""


def discover(source: ServiceNowSource, probe: Probe) -> None:
    """Access per table, the window's incidents by grouping field, SLAs, survey questions, complaint values."""
    settings, facts = probe.settings, probe.facts
    client = TableClient(source, probe.observe)
    table = source.table
    glide = settings.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    window = wire.and_terms(source.filter, f"opened_at>={glide}")
    try:
        counted = probe.read(f"table {table}", ROLES.get(table, ""), lambda: client.stats(table, window), first=True)
        if counted is None:
            return
        facts.tickets = counted[0][2] if counted else 0
        facts.tickets_basis = f"opened in the last {settings.window}"
        for label in settings.group_by:
            upstream = LABEL_FIELDS[label]
            groups = client.stats(table, window, upstream)
            facts.groupings[f"{label} ({upstream})"] = probe.top(
                (display or raw or "(empty)", count) for raw, display, count in groups
            )
            if label == "group" and facts.tickets:
                empty = sum(count for raw, _display, count in groups if not raw)
                facts.unassigned = empty / facts.tickets
        _segments(source, client, probe, window)
        for complaint_field, wanted in source.complaints.items():
            groups = client.stats(table, window, complaint_field)
            facts.complaints[complaint_field] = probe.complaint_values(groups, wanted)
        cut = (settings.as_of - settings.history).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        recent = client.stats(table, wire.and_terms(source.filter, f"sys_updated_on>={cut}"))
        old_open = client.stats(table, wire.and_terms(source.filter, "active=true", f"sys_updated_on<{cut}"))
        facts.first_sync = (
            f"{_count(recent)} incidents updated since {cut} UTC (history {settings.history_setting}) "
            f"+ {_count(old_open)} older open ones, of {_count(client.stats(table, source.filter))} in all"
        )
        _slas(source, client, probe, window)
        if source.surveys_enabled:
            _surveys(source, client, probe, glide)
        else:
            facts.survey_notes.append("surveys_enabled is false: no survey table is read")
        if source.reconcile_interval is not None and source.reconcile_interval.seconds > 0:
            probe.read(
                "table sys_audit_delete",
                ROLES["sys_audit_delete"],
                lambda: client.stats("sys_audit_delete", f"tablename={table}"),
                required=False,
            )
    finally:
        client.close()


def _segments(source: ServiceNowSource, client: TableClient, probe: Probe, window: str) -> None:
    """Each configured segment's values in the window, and the likely ones not configured: one count per field,
    grouped by the dot-walked field as the Aggregate API allows."""
    facts = probe.facts
    for label, upstream in source.segments.items():
        groups = client.stats(source.table, window, upstream)
        facts.segments[f"{label} ({upstream})"] = probe.top(
            (display or raw or "(empty)", count) for raw, display, count in groups
        )
    configured = set(source.segments.values())
    for label, upstream in LIKELY_SEGMENTS.items():
        if upstream in configured or label in source.segments:
            continue
        values = [raw for raw, _display, _count in client.stats(source.table, window, upstream) if raw]
        if values:
            facts.segment_suggestions.append(SegmentSuggestion(label, upstream, len(values)))


def _count(counts: Sequence[tuple[str, str, int]]) -> int:
    return counts[0][2] if counts else 0


def _slas(source: ServiceNowSource, client: TableClient, probe: Probe, window: str) -> None:
    facts = probe.facts
    table = source.table
    if source.sla_source == "made_sla":
        made = client.stats(table, window, "made_sla")
        facts.slas = [ValueCount(f"made_sla={display or raw or '(empty)'}", count) for raw, display, count in made]
        facts.sla_notes.append(
            "sla_source is made_sla: one resolution outcome per incident, no response SLA. "
            "Set sla_source: task_sla to read the SLA definitions below."
        )
    # The task_sla rows of the window's incidents (the source filter is on the incident, not dot-walked here).
    task_window = "task." + window.rsplit("^", 1)[-1]
    slas = probe.read(
        "table task_sla",
        ROLES["task_sla"],
        lambda: client.stats("task_sla", task_window, "sla"),
        required=source.sla_source == "task_sla",
    )
    if slas is None:
        return
    targets = {}
    ids = [raw for raw, _display, _count in slas if raw][:TOP_QUESTIONS]
    if ids:
        fields = ("sys_id", "name", "target", "schedule")
        page = probe.read(
            "table contract_sla",
            ROLES["contract_sla"],
            lambda: client.get("contract_sla", f"sys_idIN{','.join(ids)}", fields, len(ids)),
            required=source.sla_source == "task_sla",
        )
        for row in page.records if page is not None else []:
            targets[_raw(row, "sys_id")] = _shown(row, "target") or "?"
        if page is not None:
            schedule_notes(client, probe, page.records)
    for raw, display, count in sorted(slas, key=lambda s: -s[2]):
        facts.slas.append(ValueCount(f"{display or raw} (target: {targets.get(raw, '?')})", count))
    if not slas:
        facts.sla_notes.append("no task_sla row for the window's incidents: only made_sla is available")


def _surveys(source: ServiceNowSource, client: TableClient, probe: Probe, glide: str) -> None:
    facts = probe.facts
    instances = wire.and_terms(f"taken_on>={glide}", "state=complete", f"trigger_table={source.table}")
    counted = probe.read(
        "table asmt_assessment_instance",
        ROLES["asmt_assessment_instance"],
        lambda: client.stats("asmt_assessment_instance", instances),
    )
    if counted is not None:
        facts.survey_notes.append(f"{counted[0][2] if counted else 0} completed survey instances in the window")
    results = wire.and_terms(*(f"instance.{term}" for term in instances.split("^")))
    answered = probe.read(
        "table asmt_metric_result",
        ROLES["asmt_metric_result"],
        lambda: client.stats("asmt_metric_result", results, "metric"),
    )
    if not answered:
        return
    answered = sorted((a for a in answered if a[0]), key=lambda a: -a[2])[:TOP_QUESTIONS]
    fields = ("sys_id", "name", "question", "datatype", "min", "max")
    ids = ",".join(raw for raw, _display, _count in answered)
    page = probe.read(
        "table asmt_metric",
        ROLES["asmt_metric"],
        lambda: client.get("asmt_metric", f"sys_idIN{ids}", fields, len(answered)),
    )
    metrics = {_raw(row, "sys_id"): row for row in (page.records if page is not None else [])}
    for raw, display, count in answered:
        row = metrics.get(raw, {})
        low, high = _raw(row, "min"), _raw(row, "max")
        facts.questions.append(
            QuestionFacts(
                QuestionUse(raw, _raw(row, "name") or display or None, _raw(row, "question") or None, count),
                datatype=_raw(row, "datatype") or "?",
                scale=f"{low}..{high}" if low and high else "1..5 (assumed)" if row else "?",
            )
        )


def _raw(row: Mapping[str, Any], name: str) -> str:
    return wire.value(row, name) if row else ""


def _shown(row: Mapping[str, Any], name: str) -> str:
    return wire.display(row, name) if row else ""
