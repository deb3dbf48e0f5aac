"""ServiceNow: incidents, their SLA outcomes and satisfaction surveys, incrementally by keyset.

Incidents are scanned in (sys_updated_on, sys_id) order from `since`, one Table API page per
ScanPage; a page's position is its last row's sys_updated_on. Every row updated before it has
been read by then, and the incremental plan restarts at `>=` that second minus the source's
`overlap`, so nothing is lost while the boundary is read again (the store upserts): the overlap
catches rows committed late or stamped by an app node whose clock lags. Surveys follow the same
scheme on taken_on. `get` reads incidents by sys_id and `ids` sweeps sys_ids alone (RecordLookup).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from itsm_exporter.connectors.base import RequestObserver, ScanPage, SchemaError, SleepFn, ignore_request
from itsm_exporter.connectors.servicenow.client import Page, TableClient
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.wire import (
    PRIORITIES,
    and_terms,
    chunks,
    display,
    format_time,
    keyset_query,
    map_state,
    parse_count,
    parse_duration,
    parse_time,
    value,
    values,
)
from itsm_exporter.records import (
    SLA_NAMES,
    Answer,
    RecordKind,
    Segment,
    SkippedRecord,
    SlaClock,
    SlaOutcome,
    SurveyResponse,
    Ticket,
)

TICKET_FIELDS: Final = (
    "sys_id", "number", "state", "incident_state", "opened_at", "resolved_at", "closed_at", "sys_updated_on",
    "priority", "assignment_group", "business_service", "contact_type", "reassignment_count", "reopen_count",
    "made_sla",
)  # fmt: skip
SLA_FIELDS: Final = (
    "sys_id", "task", "sla.target", "sla.duration", "stage", "has_breached", "start_time", "end_time", "duration",
    "planned_end_time",
)  # fmt: skip
LABEL_FIELDS: Final = {
    "group": "assignment_group",
    "service": "business_service",
    "priority": "priority",
    "channel": "contact_type",
}
"""The incident field behind each grouping label (discover counts the same ones)."""
RUNNING_STAGES: Final = frozenset({"in_progress", "paused"})
_OPEN: Final = frozenset({"open", "on_hold"})
SURVEY_FIELDS: Final = ("sys_id", "trigger_id", "taken_on", "state")
RESULT_FIELDS: Final = ("sys_id", "instance", "metric", "actual_value", "string_value")
AUDIT_DELETE_TABLE: Final = "sys_audit_delete"
AUDIT_FIELDS: Final = ("sys_id", "documentkey", "sys_created_on")
METRIC_FIELDS: Final = ("sys_id", "name", "question", "datatype", "min", "max")
ID_CHUNK: Final = 100
"""sys_ids per `IN` list: 100 x 33 characters keeps a URL near 3.5 KB, under common 8 KB proxy limits."""
TEXT_DATATYPES: Final = frozenset({"string", "date", "datetime", "attachment", "reference"})
"""Metric types whose answers are text (their actual_value is -1): not scores."""
BINARY_DATATYPES: Final = frozenset({"boolean", "yesno"})
COMMENT_DATATYPES: Final = frozenset({"string"})
"""Metric types whose answer is free text: a non-empty `string_value` is a comment (only its presence is kept)."""
"""Check box and Yes/No metrics answer 0 or 1."""
DEFAULT_SCALE: Final = (1.0, 5.0)


class _Skip(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class _Metric:
    """An `asmt_metric` row: the question's identity (sys_id), name, text, data type and scale."""

    id: str
    name: str | None
    text: str | None
    datatype: str
    scale: tuple[float, float]


@dataclass
class _Sla:
    """SLA results of one incident from its task_sla rows."""

    response: SlaOutcome = "unknown"
    resolution: SlaOutcome = "unknown"
    first_response_at: datetime | None = None
    clocks: dict[str, SlaClock] = field(default_factory=dict)
    """The running clock of each target (task_sla in stage in_progress or paused), the soonest to breach."""


class ServiceNowConnector:
    """Incidents of one table (plus its filter) and, optionally, the surveys they triggered."""

    def __init__(
        self,
        source: ServiceNowSource,
        observe_request: RequestObserver = ignore_request,
        *,
        sleep: SleepFn = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = source.name
        self.source = source
        """The configuration this connector reads (the sync plans get theirs from its kind's capabilities)."""
        self._client = TableClient(source, observe_request, sleep=sleep, jitter=jitter, clock=clock)
        self._complaints = {field: {v.casefold() for v in values} for field, values in source.complaints.items()}
        # Segments are dot-walked references (`caller_id.department.name`): their values come with the incident, in
        # the same request (unknown names are ignored by the Table API and leave the segment unset).
        self._fields = list(dict.fromkeys([*TICKET_FIELDS, *source.complaints, *source.segments.values()]))
        self._metrics: dict[str, _Metric | None] = {}

    @property
    def phases(self) -> tuple[RecordKind, ...]:
        return ("ticket", "survey") if self.source.surveys_enabled else ("ticket",)

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None = None) -> Iterator[ScanPage]:
        if phase == "ticket":
            return self._ticket_pages(since)
        self._metrics.clear()  # questions and scales may have been edited since the last sync
        return self._survey_pages(since)

    def get(self, kind: RecordKind, ids: Sequence[str]) -> ScanPage:
        """Incidents by sys_id (chunked `sys_idIN` queries), those that still exist upstream."""
        if kind != "ticket":
            raise ValueError(f"source {self.name}: get() reads tickets, not {kind}")
        query_ids = [i for i in dict.fromkeys(ids) if i]
        records = self._rows(self.source.table, "sys_id", query_ids, self._fields)
        tickets, skipped = self._tickets(records)
        return ScanPage(tickets=tuple(tickets), skipped=tuple(skipped), fetched_so_far=len(records))

    def ids(self, kind: RecordKind, since: datetime | None) -> Iterator[list[str]]:
        """sys_ids of the incidents (or completed surveys) updated at or after `since`, keyset-paged, nothing else."""
        table, base, field = self._scope(kind)
        for page in self._scan(table, base, field, ("sys_id", field), _glide(since)):
            yield [value(r, "sys_id") for r in page.records if value(r, "sys_id")]

    def close(self) -> None:
        self._client.close()

    def _scan(self, table: str, base: str, field: str, fields: Sequence[str], since: str | None) -> Iterator[Page]:
        """Pages of `table` in (field, sys_id) order from `since`, each after the previous page's last row."""
        limit = self.source.page_size
        after: tuple[str, str] | None = None
        while True:
            page = self._client.get(table, keyset_query(base, field, since, after), fields, limit, count=after is None)
            # A server that ignored the cursor terms would send earlier rows again: never yield those twice.
            fresh = [r for r in page.records if after is None or (value(r, field), value(r, "sys_id")) > after]
            if fresh:
                yield Page(fresh, page.total)
            if len(page.records) < limit:
                return
            if not fresh:
                raise SchemaError(f"source {self.name}: paging {table} did not advance past {after}")
            after = (value(fresh[-1], field), value(fresh[-1], "sys_id"))

    def _rows(self, table: str, ids_field: str, ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, Any]]:
        """Every row of `table` whose `ids_field` is one of `ids`, in chunked `IN` queries paged by sys_id."""
        rows: list[dict[str, Any]] = []
        for chunk in chunks(ids, ID_CHUNK):
            base = f"{ids_field}IN{','.join(chunk)}"
            after = ""
            while True:
                query = and_terms(base, f"sys_id>{after}" if after else "", "ORDERBYsys_id")
                page = self._client.get(table, query, fields, self.source.page_size, count=False)
                rows.extend(page.records)
                if len(page.records) < self.source.page_size:
                    break
                cursor = value(page.records[-1], "sys_id")
                if cursor <= after:
                    raise SchemaError(f"source {self.name}: paging {table} by sys_id did not advance past {after!r}")
                after = cursor
        return rows

    def deletions(self, kind: RecordKind, since: datetime | None) -> Iterator[ScanPage]:
        """Incidents deleted at or after `since`, from sys_audit_delete (admin-readable by default: 403 elsewhere)."""
        if kind != "ticket":
            raise ValueError(f"source {self.name}: deletions() reads tickets, not {kind}")
        base = f"tablename={self.source.table}"
        fetched = 0
        for page in self._scan(AUDIT_DELETE_TABLE, base, "sys_created_on", AUDIT_FIELDS, _glide(since)):
            fetched += len(page.records)
            yield ScanPage(
                deleted_ids=tuple(value(r, "documentkey") for r in page.records if value(r, "documentkey")),
                position=_position(page.records, "sys_created_on"),
                fetched_so_far=fetched,
                total_expected=page.total,
            )

    def _scope(self, kind: RecordKind) -> tuple[str, str, str]:
        """(table, base filter, keyset time field) of the records of `kind`."""
        if kind == "ticket":
            return self.source.table, self.source.filter, "sys_updated_on"
        surveys = and_terms("state=complete", f"trigger_table={self.source.table}")
        return "asmt_assessment_instance", surveys, "taken_on"

    def open_tickets(self, updated_before: datetime, since: datetime | None) -> Iterator[ScanPage]:
        """Incidents still `active=true` and last updated before `updated_before` (the backlog older than a
        bounded first sync's horizon), by the same keyset scan as any other."""
        _table, base, _field = self._scope("ticket")
        before = updated_before.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        return self._ticket_pages(since, and_terms(base, "active=true", f"sys_updated_on<{before}"))

    def _ticket_pages(self, since: datetime | None, base: str | None = None) -> Iterator[ScanPage]:
        table, scope, field = self._scope("ticket")
        base = scope if base is None else base
        fetched, total = 0, None
        for page in self._scan(table, base, field, self._fields, _glide(since)):
            total = page.total if page.total is not None else total
            fetched += len(page.records)
            tickets, skipped = self._tickets(page.records)
            yield ScanPage(
                tickets=tuple(tickets),
                skipped=tuple(skipped),
                position=_position(page.records, field),
                fetched_so_far=fetched,
                total_expected=total,
            )

    def _tickets(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[Ticket], list[SkippedRecord]]:
        skipped: list[SkippedRecord] = []
        slas: dict[str, _Sla] = {}
        if self.source.sla_source == "task_sla":
            ids = [value(r, "sys_id") for r in records if value(r, "sys_id")]
            slas = self._task_slas(ids, skipped)
        tickets = []
        for record in records:
            try:
                tickets.append(self._ticket(record, slas.get(value(record, "sys_id"))))
            except _Skip as skip:
                record_id = value(record, "number") or value(record, "sys_id") or "(no sys_id)"
                skipped.append(SkippedRecord("ticket", record_id, skip.reason, str(skip)))
        return tickets, skipped

    def _ticket(self, record: Mapping[str, Any], sla: _Sla | None) -> Ticket:
        raw = values(record)  # every field read once: this runs per incident of every sync
        sys_id = raw.get("sys_id", "")
        if not sys_id:
            raise _Skip("missing_sys_id", "the record has no sys_id")
        state = map_state(raw.get("state", ""), raw.get("incident_state", ""))
        if state is None:
            raise _Skip(
                "unknown_state",
                f"state {raw.get('state', '')!r} / incident_state {raw.get('incident_state', '')!r} "
                "is in neither state model",
            )
        opened_at = _time(raw, "opened_at")
        updated_at = _time(raw, "sys_updated_on")
        if opened_at is None or updated_at is None:
            raise _Skip("missing_time", "opened_at and sys_updated_on are required")
        try:
            reassignments = parse_count(raw.get("reassignment_count", ""))
            reopens = parse_count(raw.get("reopen_count", ""))
        except ValueError as error:
            raise _Skip("bad_count", f"reassignment_count/reopen_count: {error}") from None
        if sla is None:
            sla = _made_sla(raw.get("made_sla", ""), state)
        return Ticket(
            source=self.name,
            id=sys_id,
            key=raw.get("number") or sys_id,
            opened_at=opened_at,
            state=state,
            updated_at=updated_at,
            first_response_at=sla.first_response_at,
            resolved_at=_time(raw, "resolved_at"),
            closed_at=_time(raw, "closed_at"),
            priority=PRIORITIES.get(raw.get("priority", "")),
            group=display(record, LABEL_FIELDS["group"]) or None,
            service=display(record, LABEL_FIELDS["service"]) or None,
            channel=raw.get(LABEL_FIELDS["channel"]) or None,
            reassignments=reassignments,
            reopens=reopens,
            sla_response=sla.response,
            sla_resolution=sla.resolution,
            complaint=any(raw.get(field, "").casefold() in wanted for field, wanted in self._complaints.items()),
            # A resolved incident has no running clock, whatever stage a task_sla row still shows.
            sla_clocks=tuple(sla.clocks[n] for n in SLA_NAMES if n in sla.clocks)
            if state in ("open", "on_hold")
            else (),
            segments=tuple(
                Segment(label, shown)
                for label, field in self.source.segments.items()
                if (shown := display(record, field).strip())
            ),
        )

    def _task_slas(self, ids: Sequence[str], skipped: list[SkippedRecord]) -> dict[str, _Sla]:
        """The SLA outcomes of a page's incidents from their task_sla rows."""
        return _fold_task_slas(ids, self._rows("task_sla", "task", ids, SLA_FIELDS), skipped)

    def _survey_pages(self, since: datetime | None) -> Iterator[ScanPage]:
        table, base, field = self._scope("survey")
        fetched, total = 0, None
        for page in self._scan(table, base, field, SURVEY_FIELDS, _glide(since)):
            total = page.total if page.total is not None else total
            fetched += len(page.records)
            skipped: list[SkippedRecord] = []
            ids = [value(r, "sys_id") for r in page.records if value(r, "sys_id")]
            results: dict[str, list[dict[str, Any]]] = {sys_id: [] for sys_id in ids}
            for row in self._rows("asmt_metric_result", "instance", ids, RESULT_FIELDS):
                results.setdefault(value(row, "instance"), []).append(row)
            self._load_metrics({value(r, "metric") for rows in results.values() for r in rows})
            surveys = []
            for record in page.records:
                sys_id = value(record, "sys_id")
                try:
                    surveys.append(self._survey(record, results.get(sys_id, []), self._metrics, skipped))
                except _Skip as skip:
                    skipped.append(SkippedRecord("survey", sys_id or "(no sys_id)", skip.reason, str(skip)))
            yield ScanPage(
                surveys=tuple(surveys),
                position=_position(page.records, field),
                skipped=tuple(skipped),
                fetched_so_far=fetched,
                total_expected=total,
            )

    def _load_metrics(self, ids: set[str]) -> None:
        """Fetch the questions not seen yet in this sync; an unreadable one is remembered as None."""
        missing = sorted(i for i in ids if i and i not in self._metrics)
        found = {value(row, "sys_id"): row for row in self._rows("asmt_metric", "sys_id", missing, METRIC_FIELDS)}
        for metric_id in missing:
            row = found.get(metric_id)
            self._metrics[metric_id] = _metric(row) if row is not None else None

    def _survey(
        self,
        record: Mapping[str, Any],
        results: Sequence[Mapping[str, Any]],
        metrics: Mapping[str, _Metric | None],
        skipped: list[SkippedRecord],
    ) -> SurveyResponse:
        sys_id = value(record, "sys_id")
        if not sys_id:
            raise _Skip("missing_sys_id", "the assessment instance has no sys_id")
        submitted_at = _time(values(record), "taken_on")
        if submitted_at is None:
            raise _Skip("missing_time", "taken_on is empty")
        answers: dict[str, Answer] = {}
        commented = False
        for result in results:
            metric = metrics.get(value(result, "metric"))
            result_id = f"{sys_id}/{value(result, 'sys_id')}"
            if metric is None:
                skipped.append(SkippedRecord("survey", result_id, "unknown_metric", value(result, "metric")))
                continue
            if metric.datatype in COMMENT_DATATYPES and value(result, "string_value").strip():
                commented = True
            if metric.datatype in TEXT_DATATYPES or metric.id in answers:
                continue
            try:
                number = float(value(result, "actual_value"))
            except ValueError:
                continue  # a text answer
            low, high = metric.scale
            if not low <= number <= high:
                detail = f"{metric.text or metric.name or metric.id!r}: {number:g} outside {low:g}..{high:g}"
                skipped.append(SkippedRecord("survey", result_id, "answer_out_of_scale", detail))
                continue
            answers[metric.id] = Answer(metric.id, number, low, high, name=metric.name, text=metric.text)
        if not answers:
            raise _Skip("no_answers", "no numeric answer")
        return SurveyResponse(
            source=self.name,
            id=sys_id,
            submitted_at=submitted_at,
            answers=tuple(sorted(answers.values(), key=lambda answer: answer.question_id)),
            ticket_id=value(record, "trigger_id") or None,
            ticket_key=display(record, "trigger_id") or None,
            commented=commented,
        )


def _time(raw: Mapping[str, str], field: str) -> datetime | None:
    text = raw.get(field, "")
    try:
        return parse_time(text)
    except ValueError:
        raise _Skip("bad_time", f"{field} {text!r} is not YYYY-MM-DD HH:MM:SS") from None


def _glide(since: datetime | None) -> str | None:
    return None if since is None else format_time(since)


def _position(records: Sequence[Mapping[str, Any]], field: str) -> datetime | None:
    """The last well-formed `field` time of a page in keyset order: the page's maximum."""
    for record in reversed(records):
        try:
            moment = parse_time(value(record, field))
        except ValueError:
            continue
        if moment is not None:
            return moment
    return None


def _made_sla(made_sla: str, state: str) -> _Sla:
    """`made_sla` turns false on a breach; true only means met once the incident is resolved or closed."""
    if made_sla == "false":
        return _Sla(resolution="breached")
    if made_sla == "true" and state in ("resolved", "closed"):
        return _Sla(resolution="met")
    return _Sla()


def _fold_task_slas(
    ids: Sequence[str], rows: Iterable[Mapping[str, Any]], skipped: list[SkippedRecord]
) -> dict[str, _Sla]:
    """Response and resolution outcomes per incident: a breach anywhere wins, else a completed SLA is met.

    Cancelled task_sla rows no longer apply; in-progress or paused ones that have not breached
    are unknown. The first response is the earliest end of a completed response SLA.
    """
    slas = {sys_id: _Sla() for sys_id in ids}
    for row in rows:
        sla = slas.get(value(row, "task"))
        target, stage = value(row, "sla.target"), value(row, "stage")
        if sla is None or target not in ("response", "resolution") or stage == "cancelled":
            continue
        if stage in RUNNING_STAGES:
            try:
                clock = _clock(target, stage, row)
            except ValueError as error:
                skipped.append(SkippedRecord("ticket", value(row, "sys_id"), "bad_sla_time", str(error)))
            else:
                sla.clocks[target] = _sooner(sla.clocks.get(target), clock)
        outcome: SlaOutcome = "unknown"
        if value(row, "has_breached") == "true":
            outcome = "breached"
        elif stage == "completed":
            outcome = "met"
        current = sla.response if target == "response" else sla.resolution
        merged = _worst(current, outcome)
        if target == "response":
            sla.response = merged
            if stage == "completed":
                try:
                    ended = _sla_end(row)
                except ValueError as error:
                    skipped.append(SkippedRecord("ticket", value(row, "sys_id"), "bad_sla_time", str(error)))
                    continue
                if ended is not None and (sla.first_response_at is None or ended < sla.first_response_at):
                    sla.first_response_at = ended
        else:
            sla.resolution = merged
    return slas


def _clock(target: str, stage: str, row: Mapping[str, Any]) -> SlaClock:
    """A running task_sla as a clock: planned_end_time (UTC as stored; displayed in the user's zone) is its breach."""
    goal = parse_duration(value(row, "sla.duration"))
    return SlaClock(
        sla="response" if target == "response" else "resolution",
        breach_at=parse_time(value(row, "planned_end_time")),
        paused=stage == "paused",
        goal_seconds=goal.total_seconds() if goal is not None else None,
        breached=value(row, "has_breached") == "true",
    )


def _sooner(current: SlaClock | None, new: SlaClock) -> SlaClock:
    """Of two running task_sla rows of one target (two SLA definitions apply), the one that breaches first."""
    if current is None:
        return new
    if new.breach_at is None:
        return current
    return new if current.breach_at is None or new.breach_at < current.breach_at else current


def _worst(current: SlaOutcome, new: SlaOutcome) -> SlaOutcome:
    """Combine two task_sla rows of one target: breached beats met beats unknown."""
    order: dict[SlaOutcome, int] = {"unknown": 0, "met": 1, "breached": 2}
    return current if order[current] >= order[new] else new


def _sla_end(row: Mapping[str, Any]) -> datetime | None:
    """When a completed task_sla stopped: end_time, else start_time plus the elapsed duration."""
    ended = parse_time(value(row, "end_time"))
    if ended is not None:
        return ended
    started, elapsed = parse_time(value(row, "start_time")), parse_duration(value(row, "duration"))
    if started is None or elapsed is None:
        return None
    try:
        return started + elapsed
    except OverflowError:
        raise ValueError(f"start_time {started:%Y-%m-%d %H:%M:%S} plus duration {elapsed} is past year 9999") from None


def _metric(row: Mapping[str, Any]) -> _Metric:
    """A question's identity, name, text and scale (`min`/`max`, else by data type)."""
    datatype = value(row, "datatype")
    scale = (0.0, 1.0) if datatype in BINARY_DATATYPES else DEFAULT_SCALE
    try:
        low, high = float(value(row, "min")), float(value(row, "max"))
    except ValueError:
        pass
    else:
        if high > low and math.isfinite(low) and math.isfinite(high):
            scale = (low, high)
    return _Metric(
        id=value(row, "sys_id"),
        name=value(row, "name") or None,
        text=value(row, "question") or None,
        datatype=datatype,
        scale=scale,
    )
