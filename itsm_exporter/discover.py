"""`itsm-exporter discover`: a read-only look at what each source offers, and the config that maps it.

For every enabled source (or one): which tables or endpoints the API user can read, how many tickets
the longest window holds and how they spread over the grouping labels, every survey question with its
answers and whether the config maps it, the SLAs, the complaint values, and a paste-ready `surveys:` and
`complaints:` block. Requests are few and bounded whatever the instance's size: counts and group-bys
come from ServiceNow's Aggregate API and Jira's search totals, values from at most one page.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Final, Literal

from itsm_exporter.collectors.roles import Role, check_mapping
from itsm_exporter.config import Config, JiraSource, ServiceNowSource, question_key, redact_urls
from itsm_exporter.connectors import servicenow_wire as wire
from itsm_exporter.connectors.base import AccessDenied, AuthError, ConnectorError
from itsm_exporter.records import QuestionUse
from itsm_exporter.sync.plans import SourceConfig

TOP_SURVEY_QUESTIONS: Final = 100
"""Questions listed per source: ServiceNow instances hold every survey's questions, most never answered here."""
JIRA_SAMPLE: Final = 100
"""Issues read to show the values of Jira fields (Jira has no group-by): one page, Cloud's page size."""
SERVICENOW_LABEL_FIELDS: Final = {
    "group": "assignment_group",
    "service": "business_service",
    "priority": "priority",
    "channel": "contact_type",
}
"""The incident field behind each grouping label (connectors/servicenow.py reads the same ones)."""
SERVICENOW_ROLES: Final = {
    "incident": "itil (or sn_incident_read)",
    "asmt_assessment_instance": "survey_reader (or assessment_admin)",
    "asmt_metric_result": "survey_reader (or assessment_admin)",
    "asmt_metric": "survey_reader (or assessment_admin)",
    "task_sla": "itil, or a read ACL on task_sla",
    "contract_sla": "itil, or a read ACL on contract_sla",
    "sys_audit_delete": "a read ACL on sys_audit_delete (admin-only by default; optional)",
}
"""What to ask the ServiceNow admin for when a table is denied (docs/servicenow.md, "The API user")."""
OVERALL_HINTS: Final = ("overall", "satisf", "csat")
COMPLAINT_HINTS: Final = ("complain", "grievance", "escalat")

AccessState = Literal["readable", "denied", "failed", "skipped"]


@dataclass(frozen=True)
class Access:
    """One table or endpoint the exporter reads, and whether this user can."""

    what: str
    state: AccessState
    detail: str = ""
    required: bool = True
    """A denied optional read (sys_audit_delete) is reported but does not fail the report."""


@dataclass(frozen=True)
class ValueCount:
    value: str
    count: int
    mark: str = ""


@dataclass(frozen=True)
class Question:
    """An upstream survey question with its answers in the window and the role the config gives it."""

    question_id: str
    name: str
    text: str
    datatype: str
    scale: str
    answers: int
    role: str


@dataclass
class SourceReport:
    """What `discover` found for one source; rendered by `render_report`."""

    name: str
    kind: str
    window: str
    window_seconds: float
    surveys_path: str
    """Where the source's survey mapping sits in the config file: `sources[0].surveys`."""
    access: list[Access] = field(default_factory=list)
    tickets: int | None = None
    tickets_basis: str = ""
    first_sync: str = ""
    """What a first sync of this source will read (the bounded backfill), when it could be counted."""
    sample: int | None = None
    """Jira: the values below are counted over this many issues of the window, not all of them."""
    groupings: dict[str, list[ValueCount]] = field(default_factory=dict)
    unassigned: float | None = None
    questions: list[Question] = field(default_factory=list)
    survey_notes: list[str] = field(default_factory=list)
    slas: list[ValueCount] = field(default_factory=list)
    sla_notes: list[str] = field(default_factory=list)
    complaints: dict[str, list[ValueCount]] = field(default_factory=dict)
    complaint_notes: list[str] = field(default_factory=list)
    suggestion: list[str] = field(default_factory=list)
    requests: int = 0
    error: str | None = None
    failure: str = "unreachable"
    """What `error` was: `unreachable`, or `credentials refused` when the upstream answered and said no."""

    @property
    def ok(self) -> bool:
        return self.error is None and all(a.state in ("readable", "skipped") or not a.required for a in self.access)


class _Probe:
    """Runs the reads of one source: records each one's access, counts requests, keeps going after a 403."""

    def __init__(self, report: SourceReport) -> None:
        self.report = report

    def observe(self, _code: str) -> None:
        self.report.requests += 1

    def read(
        self, what: str, hint: str, request: Callable[[], Any], *, required: bool = True, first: bool = False
    ) -> Any:
        """`request()`, or None when it was denied or failed (recorded). A refused login, or any failure
        but a 403 on the `first` read, ends the source: it is unreachable and the other reads would fail alike."""
        try:
            result = request()
        except AccessDenied:
            detail = f"ask for: {hint}" if hint else "permission missing"
            self.report.access.append(Access(what, "denied", detail, required))
            return None
        except AuthError:
            raise
        except ConnectorError as error:
            if first:
                raise
            self.report.access.append(Access(what, "failed", str(error), required))
            return None
        self.report.access.append(Access(what, "readable", "", required))
        return result


def discover(config: Config, source_name: str | None = None, *, now: datetime | None = None) -> list[SourceReport]:
    """A report per enabled source (or the one named). Never writes upstream or to the store."""
    as_of = now or datetime.now(UTC)
    longest = max(config.windows, key=lambda window: window.seconds)
    since = as_of - timedelta(seconds=longest.seconds)
    sources = [s for s in config.enabled_sources if source_name is None or s.name == source_name]
    reports = []
    for source in sources:
        index = config.sources.index(source)
        report = SourceReport(source.name, source.kind, str(longest), longest.seconds, f"sources[{index}].surveys")
        try:
            if isinstance(source, ServiceNowSource):
                _servicenow(source, config, since, report)
            elif isinstance(source, JiraSource):
                _jira(source, config, since, report)
            else:
                report.survey_notes.append(f"a {source.kind} source reads local data: nothing to discover upstream")
        except ConnectorError as error:
            report.error = str(error)
            if isinstance(error, AuthError):
                report.failure = "credentials refused"
        report.suggestion = _suggestion(source, report)
        reports.append(report)
    return reports


# -- ServiceNow --------------------------------------------------------------------------------------


def _servicenow(source: ServiceNowSource, config: Config, since: datetime, report: SourceReport) -> None:
    from itsm_exporter.connectors.servicenow_client import TableClient

    probe = _Probe(report)
    client = TableClient(source, probe.observe)
    table = source.table
    glide = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    window = wire.and_terms(source.filter, f"opened_at>={glide}")
    try:
        counted = probe.read(
            f"table {table}", SERVICENOW_ROLES.get(table, ""), lambda: client.stats(table, window), first=True
        )
        if counted is None:
            return
        report.tickets = counted[0][2] if counted else 0
        report.tickets_basis = f"opened in the last {report.window}"
        for label in config.group_by:
            upstream = SERVICENOW_LABEL_FIELDS[label]
            groups = client.stats(table, window, upstream)
            report.groupings[f"{label} ({upstream})"] = _top(
                ((display or raw or "(empty)", count) for raw, display, count in groups), config.max_label_values
            )
            if label == "group" and report.tickets:
                empty = sum(count for raw, _display, count in groups if not raw)
                report.unassigned = empty / report.tickets
        for complaint_field, wanted in source.complaints.items():
            groups = client.stats(table, window, complaint_field)
            report.complaints[complaint_field] = _complaint_values(
                ((raw, display, count) for raw, display, count in groups), wanted, config.max_label_values
            )
        horizon = (since + timedelta(seconds=report.window_seconds) - config.history_for(source)).astimezone(UTC)
        cut = horizon.strftime("%Y-%m-%d %H:%M:%S")
        recent = client.stats(table, wire.and_terms(source.filter, f"sys_updated_on>={cut}"))
        old_open = client.stats(table, wire.and_terms(source.filter, "active=true", f"sys_updated_on<{cut}"))
        report.first_sync = (
            f"{_count(recent)} incidents updated since {cut} UTC (history {_history_text(config, source)}) "
            f"+ {_count(old_open)} older open ones, of {_count(client.stats(table, source.filter))} in all"
        )
        _servicenow_slas(source, client, probe, window, report)
        if source.surveys_enabled:
            _servicenow_surveys(source, client, probe, glide, report)
        else:
            report.survey_notes.append("surveys_enabled is false: no survey table is read")
        if source.reconcile_interval is not None and source.reconcile_interval.seconds > 0:
            probe.read(
                "table sys_audit_delete",
                SERVICENOW_ROLES["sys_audit_delete"],
                lambda: client.stats("sys_audit_delete", f"tablename={table}"),
                required=False,
            )
    finally:
        client.close()


def _history_text(config: Config, source: ServiceNowSource | JiraSource) -> str:
    if config.history is not None:
        return str(config.history)
    return f"{max(config.windows, key=lambda w: w.seconds)} + overlap {source.overlap}"


def _count(counts: Sequence[tuple[str, str, int]]) -> int:
    return counts[0][2] if counts else 0


def _servicenow_slas(source: ServiceNowSource, client: Any, probe: _Probe, window: str, report: SourceReport) -> None:
    table = source.table
    if source.sla_source == "made_sla":
        made = client.stats(table, window, "made_sla")
        report.slas = [ValueCount(f"made_sla={display or raw or '(empty)'}", count) for raw, display, count in made]
        report.sla_notes.append(
            "sla_source is made_sla: one resolution outcome per incident, no response SLA. "
            "Set sla_source: task_sla to read the SLA definitions below."
        )
    # The task_sla rows of the window's incidents (the source filter is on the incident, not dot-walked here).
    task_window = "task." + window.rsplit("^", 1)[-1]
    slas = probe.read(
        "table task_sla",
        SERVICENOW_ROLES["task_sla"],
        lambda: client.stats("task_sla", task_window, "sla"),
        required=source.sla_source == "task_sla",
    )
    if slas is None:
        return
    targets = {}
    ids = [raw for raw, _display, _count in slas if raw][:TOP_SURVEY_QUESTIONS]
    if ids:
        page = probe.read(
            "table contract_sla",
            SERVICENOW_ROLES["contract_sla"],
            lambda: client.get("contract_sla", f"sys_idIN{','.join(ids)}", ("sys_id", "name", "target"), len(ids)),
            required=source.sla_source == "task_sla",
        )
        for row in page.records if page is not None else []:
            targets[_raw(row, "sys_id")] = _shown(row, "target") or "?"
    for raw, display, count in sorted(slas, key=lambda s: -s[2]):
        report.slas.append(ValueCount(f"{display or raw} (target: {targets.get(raw, '?')})", count))
    if not slas:
        report.sla_notes.append("no task_sla row for the window's incidents: only made_sla is available")


def _servicenow_surveys(source: ServiceNowSource, client: Any, probe: _Probe, glide: str, report: SourceReport) -> None:
    instances = wire.and_terms(f"taken_on>={glide}", "state=complete", f"trigger_table={source.table}")
    counted = probe.read(
        "table asmt_assessment_instance",
        SERVICENOW_ROLES["asmt_assessment_instance"],
        lambda: client.stats("asmt_assessment_instance", instances),
    )
    if counted is not None:
        report.survey_notes.append(f"{counted[0][2] if counted else 0} completed survey instances in the window")
    results = wire.and_terms(*(f"instance.{term}" for term in instances.split("^")))
    answered = probe.read(
        "table asmt_metric_result",
        SERVICENOW_ROLES["asmt_metric_result"],
        lambda: client.stats("asmt_metric_result", results, "metric"),
    )
    if not answered:
        return
    answered = sorted((a for a in answered if a[0]), key=lambda a: -a[2])[:TOP_SURVEY_QUESTIONS]
    fields = ("sys_id", "name", "question", "datatype", "min", "max")
    ids = ",".join(raw for raw, _display, _count in answered)
    page = probe.read(
        "table asmt_metric",
        SERVICENOW_ROLES["asmt_metric"],
        lambda: client.get("asmt_metric", f"sys_idIN{ids}", fields, len(answered)),
    )
    metrics = {_raw(row, "sys_id"): row for row in (page.records if page is not None else [])}
    uses = []
    for raw, display, count in answered:
        row = metrics.get(raw, {})
        uses.append(QuestionUse(raw, _raw(row, "name") or display or None, _raw(row, "question") or None, count))
    check = check_mapping(uses, source.surveys, jsm=False, path=report.surveys_path)
    for use in uses:
        row = metrics.get(use.question_id, {})
        low, high = _raw(row, "min"), _raw(row, "max")
        report.questions.append(
            Question(
                use.question_id,
                use.name or "",
                use.text or "",
                _raw(row, "datatype") or "?",
                f"{low}..{high}" if low and high else "1..5 (assumed)" if row else "?",
                use.answers,
                _role_name(check.roles.get(use.question_id)),
            )
        )
    _unmatched_notes(check.unmatched, report)


def _raw(row: Mapping[str, Any], name: str) -> str:
    return wire.value(row, name) if row else ""


def _shown(row: Mapping[str, Any], name: str) -> str:
    return wire.display(row, name) if row else ""


# -- Jira Service Management ------------------------------------------------------------------------


def _jira(source: JiraSource, config: Config, since: datetime, report: SourceReport) -> None:
    from itsm_exporter.connectors.jira_client import JiraClient
    from itsm_exporter.connectors.jira_mapping import FieldCatalog, IssueMapper, StatusCatalog, render
    from itsm_exporter.connectors.jira_sm import jql_since, search_jql

    probe = _Probe(report)
    client = JiraClient(source, probe.observe)
    try:
        site = probe.read("fields, statuses and /myself", "Browse projects", client.site, first=True)
        if site is None:
            return
        catalog = FieldCatalog.from_fields(site.fields, source.sla_fields)
        mapper = IssueMapper(source, catalog, StatusCatalog.from_statuses(site.statuses))
        jql = search_jql(source.jql, jql_since(since, site.zone))
        report.tickets = probe.read("issue search", "Browse projects", lambda: _jira_count(client, jql))
        report.tickets_basis = f"updated in the last {report.window}"
        page = client.search(jql, mapper.requested_fields(), start=0, token=None, expand="", limit=JIRA_SAMPLE)
        issues = [issue.get("fields") or {} for issue in page["issues"]]
        report.sample = len(issues)
        _jira_labels(source, config, mapper, issues, report)
        for spec, wanted in source.complaints.items():
            field_id = catalog.resolve(spec)
            seen = Counter(text for fields in issues for text in render(fields.get(field_id)) if field_id)
            if field_id is None:
                report.complaint_notes.append(f"complaints field {spec!r} is not a field of this site")
            report.complaints[spec] = _complaint_values(
                ((v, v, n) for v, n in seen.items()), wanted, config.max_label_values
            )
        for goal, field_id in sorted(catalog.sla.items()):
            carrying = sum(1 for fields in issues if fields.get(field_id) is not None)
            name = next((str(f.get("name")) for f in site.fields if f.get("id") == field_id), field_id)
            report.slas.append(ValueCount(f"{name} ({field_id}, read as {goal})", carrying))
        if not catalog.sla:
            report.sla_notes.append(
                "no SLA field visible: the API user needs a JSM agent licence (docs/jira.md), or set sla_fields"
            )
        _jira_csat(source, catalog, issues, report)
    finally:
        client.close()


def _jira_count(client: Any, jql: str) -> int | None:
    """Data Center's search `total`; Cloud's enhanced search has none, so its approximate count."""
    client.library()  # detects the deployment
    if client.cloud:
        return client.approximate_count(jql)
    page = client.search(jql, ["id"], start=0, token=None, expand="", limit=1)
    total = page.get("total")
    return int(total) if isinstance(total, int) else None


def _jira_labels(
    source: JiraSource, config: Config, mapper: Any, issues: Sequence[Mapping[str, Any]], report: SourceReport
) -> None:
    for label in config.group_by:
        if label in ("group", "service"):
            spec = source.group_field if label == "group" else source.service_field
            values = [mapper.label(fields, spec) for fields in issues]
            upstream = spec
        elif label == "priority":
            values = [_jira_priority(mapper, fields) for fields in issues]
            upstream = "priority, mapped"
        else:
            values = [None for _ in issues]
            upstream = "no channel on Jira"
        report.groupings[f"{label} ({upstream})"] = _top(
            Counter(v or "(empty)" for v in values).items(), config.max_label_values
        )
        if label == "group" and issues:
            report.unassigned = sum(1 for v in values if not v) / len(issues)


def _jira_priority(mapper: Any, fields: Mapping[str, Any]) -> str | None:
    """The priority label the connector gives an issue: Jira's name through priority_map, as jira_mapping does."""
    from itsm_exporter.connectors.jira_mapping import render

    names = render(fields.get("priority"))
    name = names[0] if names else None
    return mapper.priorities.get(name.casefold(), f"{name} (unmapped)") if name else None


def _jira_csat(source: JiraSource, catalog: Any, issues: Sequence[Mapping[str, Any]], report: SourceReport) -> None:
    from itsm_exporter.connectors.jira_mapping import CSAT_QUESTION_ID, CSAT_QUESTION_TEXT, DEFAULT_SURVEY_QUESTION

    if catalog.satisfaction is None:
        hint = "the feedback endpoint" if source.csat_feedback_endpoint else "set csat_feedback_endpoint: true"
        report.survey_notes.append(f"no Satisfaction field visible to the API user: CSAT only through {hint}")
        rated = 0
    else:
        rated = sum(1 for fields in issues if fields.get(catalog.satisfaction) is not None)
        report.survey_notes.append(f"CSAT available (field {catalog.satisfaction})")
    use = QuestionUse(CSAT_QUESTION_ID, DEFAULT_SURVEY_QUESTION, CSAT_QUESTION_TEXT, rated)
    check = check_mapping([use], source.surveys, jsm=True, path=report.surveys_path)
    report.questions.append(
        Question(
            CSAT_QUESTION_ID,
            DEFAULT_SURVEY_QUESTION,
            "",  # JSM shows no question text; the config names the rating by its field name
            "rating",
            "1..5",
            rated,
            _role_name(check.roles.get(CSAT_QUESTION_ID)),
        )
    )
    _unmatched_notes(check.unmatched, report)


# -- shared ------------------------------------------------------------------------------------------


def _top(counts: Iterable[tuple[str, int]], limit: int) -> list[ValueCount]:
    ordered = sorted(counts, key=lambda vc: (-vc[1], vc[0]))
    shown = [ValueCount(v, n) for v, n in ordered[:limit]]
    rest = ordered[limit:]
    if rest:
        shown.append(ValueCount(f"({len(rest)} more: grouped as 'other')", sum(n for _v, n in rest)))
    return shown


def _complaint_values(groups: Iterable[tuple[str, str, int]], wanted: Sequence[str], limit: int) -> list[ValueCount]:
    """The field's values, those the configured complaint values match marked (compared as the connectors do)."""
    keys = {w.casefold() for w in wanted}
    counts = sorted(groups, key=lambda g: (-g[2], g[0]))[:limit]
    return [
        ValueCount(
            raw if display in ("", raw) else f"{raw} ({display})", count, "matches" if raw.casefold() in keys else ""
        )
        for raw, display, count in counts
    ]


def _role_name(role: Role | None) -> str:
    if role is None:
        return "unmapped"
    kind, dimension = role
    if dimension == "overall":
        return "overall"
    return f"{'dimensions' if kind == 'perception' else 'expectations'}.{dimension}"


def _unmatched_notes(unmatched: Sequence[Any], report: SourceReport) -> None:
    for item in unmatched:
        closest = item.closest
        hint = f"; closest upstream: {closest.text or closest.name!r}" if closest else ""
        report.survey_notes.append(f"configured {item.path} {item.configured!r} matches no question{hint}")


def _suggestion(source: SourceConfig, report: SourceReport) -> list[str]:
    """The `surveys:` and `complaints:` of this source as YAML lines, mapped questions kept as configured."""
    lines = [f"  - name: {source.name}"]
    mapped: dict[str, list[str]] = {}
    for question in report.questions:
        if question.role != "unmapped":
            mapped.setdefault(question.role, []).append(_label(question))
    unmapped = [q for q in report.questions if q.role == "unmapped" and q.answers > 0]
    if "overall" not in mapped:
        candidates = [q for q in unmapped if any(h in question_key(q.text + " " + q.name) for h in OVERALL_HINTS)]
        if candidates:
            best = max(candidates, key=lambda q: q.answers)
            mapped["overall"] = [_label(best)]
            unmapped.remove(best)
    if mapped or unmapped:
        lines.append("    surveys:")
        if "overall" in mapped:
            lines.append(f"      overall: [{', '.join(_quoted(q) for q in mapped['overall'])}]")
        for kind in ("dimensions", "expectations"):
            entries = sorted((role.split(".", 1)[1], qs) for role, qs in mapped.items() if role.startswith(kind))
            if entries:
                lines.append(f"      {kind}:")
                lines += [f"        {dim}: [{', '.join(_quoted(q) for q in qs)}]" for dim, qs in entries]
        for question in unmapped:
            lines.append(
                f"      # unmapped, {question.answers} answers: {_quoted(_label(question))}"
                " (add it under a RATER dimension or an expectation, or leave it out)"
            )
    complaints = _complaint_suggestion(report)
    if complaints:
        lines.append("    complaints:")
        lines += [f"      {name}: [{', '.join(_quoted(v) for v in values)}]" for name, values in complaints.items()]
    return lines


def _complaint_suggestion(report: SourceReport) -> dict[str, list[str]]:
    suggested: dict[str, list[str]] = {}
    for name, values in report.complaints.items():
        matching = [v.value.split(" (")[0] for v in values if v.mark]
        hinted = [v.value.split(" (")[0] for v in values if any(h in v.value.casefold() for h in COMPLAINT_HINTS)]
        chosen = matching or hinted
        if chosen:
            suggested[name] = list(dict.fromkeys(chosen))
    return suggested


def _label(question: Question) -> str:
    """How a question is best written in the config: its text, else its name, else its id."""
    return question.text or question.name or question.question_id


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# -- rendering ----------------------------------------------------------------------------------------

_COLOURS: Final = {"green": "\033[32m", "red": "\033[31m", "yellow": "\033[33m", "bold": "\033[1m"}
_RESET: Final = "\033[0m"


def render_report(reports: Sequence[SourceReport], *, colour: bool = False) -> str:
    """The report for a terminal: aligned columns, colour only when asked (a TTY), then the YAML block."""

    def paint(text: str, name: str) -> str:
        return f"{_COLOURS[name]}{text}{_RESET}" if colour else text

    out: list[str] = []
    for report in reports:
        out.append(paint(f"source {report.name} ({report.kind})", "bold"))
        if report.error is not None:
            out.append(f"  {paint(report.failure, 'red')}: {report.error}")
        if report.access:
            out.append("  access")
            rows = [
                (
                    a.what,
                    paint(a.state, "green" if a.state == "readable" else "red" if a.required else "yellow"),
                    a.detail,
                )
                for a in report.access
            ]
            out += _table(rows, indent=4)
        if report.tickets is not None:
            out.append(f"  tickets {report.tickets_basis}: {report.tickets}")
        if report.first_sync:
            out.append(f"  a first sync reads: {report.first_sync} (and the tickets of recent surveys by id)")
        if report.sample is not None:
            out.append(f"  values below counted over a sample of {report.sample} of those issues (one page)")
        for name, values in report.groupings.items():
            out.append(f"  {name}")
            out += _table([(v.value, str(v.count)) for v in values], indent=4, right=frozenset({1})) or ["    (none)"]
        if report.unassigned is not None:
            out.append(f"  unassigned share: {report.unassigned:.1%}")
        if report.questions or report.survey_notes:
            out.append("  surveys")
            out += [f"    {note}" for note in report.survey_notes]
        if report.questions:
            header = ("name", "question", "datatype", "scale", "answers", "mapped as")
            question_rows: list[tuple[str, ...]] = [
                (
                    q.name or "-",
                    q.text or q.question_id,
                    q.datatype,
                    q.scale,
                    str(q.answers),
                    paint(q.role, "yellow" if q.role == "unmapped" else "green"),
                )
                for q in report.questions
            ]
            out += _table([header, *question_rows], indent=4, right=frozenset({4}))
        if report.slas or report.sla_notes:
            out.append("  SLAs (with the number of tickets)")
            out += _table([(v.value, str(v.count)) for v in report.slas], indent=4, right=frozenset({1}))
            out += [f"    {note}" for note in report.sla_notes]
        for name, values in report.complaints.items():
            out.append(f"  complaints field {name}")
            out += _table([(v.value, str(v.count), v.mark) for v in values], indent=4, right=frozenset({1}))
        out += [f"  {note}" for note in report.complaint_notes]
        verdict = paint("ok", "green") if report.ok else paint("NOT READY", "red")
        out.append(f"  {report.requests} request{'' if report.requests == 1 else 's'}; {verdict}")
        out.append("")
    # A source that could not be read, or has nothing to map, would only add its bare name.
    suggestions = [line for r in reports if r.error is None and len(r.suggestion) > 1 for line in r.suggestion]
    if suggestions:
        out.append("# Suggested mapping: merge into the matching entries of `sources:`.")
        out.append("sources:")
        out += suggestions
    elif reports and all(r.error is not None for r in reports):
        out.append("# No mapping to suggest: no source could be read.")
    else:
        out.append("# No mapping to suggest: no survey question or complaint value was found.")
    return "\n".join(out) + "\n"


def _table(rows: Sequence[Sequence[str]], *, indent: int, right: frozenset[int] = frozenset()) -> list[str]:
    """Rows as left-aligned columns (right-aligned where asked), widths measured without colour codes."""
    if not rows:
        return []
    widths = [max(_visible(column, row) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for column, cell in enumerate(row):
            pad = widths[column] - _visible(column, row)
            cells.append(" " * pad + cell if column in right else cell + " " * pad)
        lines.append((" " * indent + "  ".join(cells)).rstrip())
    return lines


def _visible(column: int, row: Sequence[str]) -> int:
    text = row[column]
    for code in (*_COLOURS.values(), _RESET):
        text = text.replace(code, "")
    return len(text)


def run(config: Config, source_name: str | None, out: IO[str] | None = None, *, now: datetime | None = None) -> int:
    """The `discover` command: 0 when every source was reachable and every needed read allowed, else 1."""
    out = out or sys.stdout  # looked up at call time: tests and wrappers replace sys.stdout
    reports = discover(config, source_name, now=now)
    colour = out.isatty() and os.environ.get("NO_COLOR") is None
    out.write(redact_urls(render_report(reports, colour=colour)))
    return 0 if all(r.ok for r in reports) else 1
