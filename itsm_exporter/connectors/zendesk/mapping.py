"""Pure normalization of Zendesk tickets and CSAT ratings (docs/zendesk.md; wire facts in docs/api-notes.md).

A ticket comes from the incremental export (or show_many) with its `metric_set` (the `metric_sets`
sideload: first reply, solve, reopens, stations) and its `slas.policy_metrics` (the `slas` sideload:
each SLA metric of the applied policy with its stage and breach time). Everything a ticket row holds is
read from that one ticket's payload, so every upsert of a ticket is whole (docs/architecture.md,
"Decisions taken").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from itsm_exporter.connectors.zendesk.config import SlaGoal, ZendeskSource
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
    TicketState,
)

STATES: Final[dict[str, TicketState]] = {
    "new": "open",
    "open": "open",
    "pending": "on_hold",  # waiting for the requester
    "hold": "on_hold",  # waiting for a third party
    "solved": "resolved",
    "closed": "closed",
}
DELETED: Final = "deleted"
"""The status the export gives a deleted ticket (it lists them unless `exclude_deleted`)."""
DEFAULT_PRIORITIES: Final = {"urgent": "p1", "high": "p2", "normal": "p3", "low": "p4"}
CSAT_QUESTION_ID: Final = "csat"
"""Zendesk's CSAT asks one question; its good/bad answers are stored under this id (as JSM's `csat`)."""
CSAT_QUESTION_NAME: Final = "Satisfaction"
CSAT_QUESTION_TEXT: Final = "How would you rate the support you received?"
CSAT_SCORES: Final = {"good": 1.0, "bad": 0.0}
"""A received rating on the 0..1 scale; `offered` and `unoffered` are no answer."""
MAX_COUNT: Final = 2**31 - 1
"""A count beyond a 32-bit integer is corrupt (and would overflow SQLite)."""
MAX_DURATION_SECONDS: Final = 100 * 366 * 86400
"""A reply time beyond a century is corrupt (and would overflow a datetime)."""
RUNNING_STAGES: Final = frozenset({"active", "paused"})
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class MappingError(ValueError):
    """A record that cannot be normalized; `reason` is the snake_case SkippedRecord reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _text(text: str) -> str:
    """`text` without lone surrogates, which no UTF-8 store can hold."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def parse_time(value: object) -> datetime:
    """A Zendesk time (`2011-05-05T10:38:52Z`, ISO 8601 UTC) as an aware UTC datetime."""
    if not isinstance(value, str):
        raise MappingError("bad_time", f"not a time: {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MappingError("bad_time", f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise MappingError("bad_time", f"time without offset: {value!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise MappingError("bad_time", f"time out of range: {value!r}") from None


def optional_time(value: object) -> datetime | None:
    return None if value is None else parse_time(value)


def epoch(value: object) -> datetime | None:
    """`generated_timestamp` (integer epoch seconds) as UTC; None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def ticket_id(ticket: Mapping[str, Any]) -> str:
    raw = ticket.get("id")
    if isinstance(raw, bool) or not isinstance(raw, int | str) or raw == "":
        raise MappingError("missing_id", f"ticket has no id: {raw!r}")
    return _text(str(raw))


def is_deleted(ticket: Mapping[str, Any]) -> bool:
    return ticket.get("status") == DELETED


def _after(start: datetime, metric_set: Mapping[str, Any], name: str) -> datetime | None:
    """`start` plus the calendar time of a duration metric: `<name>_in_seconds.calendar`, else
    `<name>_in_minutes.calendar` x 60 (older accounts); None while the metric has no value."""
    seconds = metric_set.get(f"{name}_in_seconds")
    minutes = metric_set.get(f"{name}_in_minutes")
    if isinstance(seconds, dict) and seconds.get("calendar") is not None:
        value, scale = seconds["calendar"], 1
    elif isinstance(minutes, dict) and minutes.get("calendar") is not None:
        value, scale = minutes["calendar"], 60
    else:
        return None
    if not _number(value) or not 0 <= value <= MAX_DURATION_SECONDS / scale:
        raise MappingError("bad_duration", f"{name} {value!r} is not a duration")
    try:
        return start + timedelta(seconds=value * scale)
    except OverflowError:  # a start near year 9999 (found by tests/test_zendesk_property.py)
        raise MappingError("bad_duration", f"{name} {value!r} runs past year 9999") from None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(metric_set: Mapping[str, Any], name: str) -> int:
    value = metric_set.get(name)
    if value is None:
        return 0
    if not _number(value) or not 0 <= value <= MAX_COUNT or value != int(value):
        raise MappingError("bad_count", f"{name} {value!r} is not a count")
    return int(value)


@dataclass(frozen=True)
class PolicyMetric:
    """One SLA metric of the policy applied to a ticket, as the `slas` sideload gives it."""

    metric: str
    stage: str
    breach_at: datetime | None


def policy_metrics(ticket: Mapping[str, Any]) -> list[PolicyMetric]:
    slas = ticket.get("slas")
    entries = slas.get("policy_metrics") if isinstance(slas, dict) else None
    found: list[PolicyMetric] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("metric"), str):
            continue
        try:
            breach_at = optional_time(entry.get("breach_at"))
        except MappingError as error:
            raise MappingError("bad_sla", f"{entry['metric']}: breach_at: {error}") from None
        found.append(PolicyMetric(entry["metric"], str(entry.get("stage") or ""), breach_at))
    return found


@dataclass
class TicketMapper:
    """Turns a ticket of the export (with its metric set) into a Ticket; knows the account's group, brand and
    organization names (the sideloads of the same request)."""

    source: ZendeskSource
    groups: Mapping[str, str] = field(default_factory=dict)
    brands: Mapping[str, str] = field(default_factory=dict)
    organizations: Mapping[str, str] = field(default_factory=dict)
    priorities: dict[str, str] = field(init=False)
    complaints: dict[str, frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.priorities = DEFAULT_PRIORITIES | {k.casefold(): v for k, v in self.source.priority_map.items()}
        self.complaints = {k: frozenset(v.casefold() for v in vs) for k, vs in self.source.complaints.items()}

    def ticket(self, ticket: Mapping[str, Any], metric_set: Mapping[str, Any] | None) -> Ticket:
        """The canonical ticket; raises MappingError when a required part is missing or malformed."""
        key = ticket_id(ticket)
        status = ticket.get("status")
        state = STATES.get(status) if isinstance(status, str) else None
        if state is None:
            raise MappingError("unknown_status", f"status {status!r} is not a Zendesk ticket status")
        opened = parse_time(ticket.get("created_at"))
        updated = parse_time(ticket.get("updated_at") or ticket.get("created_at"))
        metrics = metric_set or {}
        first_response = _after(opened, metrics, "reply_time")
        solved = optional_time(metrics.get("solved_at"))
        done = state in ("resolved", "closed")
        resolved_at = (solved or updated) if done else None
        closed_at = (optional_time(metrics.get("status_updated_at")) or updated) if state == "closed" else None
        stations = max(_count(metrics, "group_stations"), _count(metrics, "assignee_stations"))
        slas = policy_metrics(ticket)
        fulfilled = {"response": first_response, "resolution": solved if done else None}
        try:
            return Ticket(
                source=self.source.name,
                id=key,
                key=key,
                opened_at=opened,
                state=state,
                updated_at=updated,
                first_response_at=first_response,
                resolved_at=resolved_at,
                closed_at=closed_at,
                priority=self._priority(ticket.get("priority")),
                group=self._named(ticket.get("group_id"), self.groups),
                service=self._service(ticket),
                channel=self._channel(ticket),
                reassignments=max(stations - 1, 0),
                reopens=_count(metrics, "reopens"),
                sla_response=self._outcome("response", slas, fulfilled["response"]),
                sla_resolution=self._outcome("resolution", slas, fulfilled["resolution"]),
                complaint=self.is_complaint(ticket),
                # A solved ticket has no running clock, whatever stage a metric still shows.
                sla_clocks=self._clocks(slas) if state in ("open", "on_hold") else (),
                segments=self.segments(ticket),
            )
        except ValueError as error:
            raise MappingError("invalid_ticket", str(error)) from error

    def segments(self, ticket: Mapping[str, Any]) -> tuple[Segment, ...]:
        """The configured segments' values: the organization's or brand's name (its id while the account has not
        named it), or a custom field's first value."""
        found = ((label, self.segment_value(ticket, spec)) for label, spec in self.source.segments.items())
        return tuple(Segment(label, value) for label, value in found if value)

    def segment_value(self, ticket: Mapping[str, Any], spec: str) -> str | None:
        if spec == "organization":
            return self._named(ticket.get("organization_id"), self.organizations)
        if spec == "brand":
            return self._named(ticket.get("brand_id"), self.brands)
        values = custom_field_values(ticket, spec)
        return values[0] if values else None

    def _priority(self, value: object) -> str | None:
        return self.priorities.get(value.casefold()) if isinstance(value, str) else None

    @staticmethod
    def _named(raw_id: object, names: Mapping[str, str]) -> str | None:
        """The name of a group or brand by id; its id when the account did not name it (deleted meanwhile)."""
        if raw_id is None or isinstance(raw_id, bool):
            return None
        return names.get(str(raw_id)) or _text(str(raw_id))

    def _service(self, ticket: Mapping[str, Any]) -> str | None:
        spec = self.source.service_field
        if spec == "brand":
            return self._named(ticket.get("brand_id"), self.brands)
        if spec == "none":
            return None
        values = custom_field_values(ticket, spec)
        return values[0] if values else None

    @staticmethod
    def _channel(ticket: Mapping[str, Any]) -> str | None:
        via = ticket.get("via")
        channel = via.get("channel") if isinstance(via, dict) else None
        return _text(channel) if isinstance(channel, str) and channel else None

    def is_complaint(self, ticket: Mapping[str, Any]) -> bool:
        for spec, wanted in self.complaints.items():
            if spec == "tags":
                tags = ticket.get("tags")
                found = [str(t) for t in tags] if isinstance(tags, list) else []
            elif spec == "type":
                found = [str(ticket["type"])] if isinstance(ticket.get("type"), str) else []
            else:
                found = custom_field_values(ticket, spec)
            if any(value.casefold() in wanted for value in found):
                return True
        return False

    def _pick(self, goal: SlaGoal, slas: Sequence[PolicyMetric]) -> PolicyMetric | None:
        """The metric read as `goal`: the first of the configured ones the applied policy has."""
        for name in self.source.sla_metrics.get(goal, []):
            for metric in slas:
                if metric.metric == name:
                    return metric
        return None

    def _outcome(self, goal: SlaGoal, slas: Sequence[PolicyMetric], fulfilled_at: datetime | None) -> SlaOutcome:
        """met or breached once the metric is achieved; unknown while it runs or when no policy applies.

        An achieved metric is breached when it was fulfilled (the first reply, the solve) after its breach
        time: Zendesk keeps the breach time it had, and a late reply achieves the metric too.
        """
        metric = self._pick(goal, slas)
        if metric is None or metric.stage != "achieved":
            return "unknown"
        if fulfilled_at is not None and metric.breach_at is not None and fulfilled_at > metric.breach_at:
            return "breached"
        return "met"

    def _clocks(self, slas: Sequence[PolicyMetric]) -> tuple[SlaClock, ...]:
        clocks: list[SlaClock] = []
        for goal in SLA_NAMES:
            metric = self._pick(goal, slas)
            if metric is not None and metric.stage in RUNNING_STAGES:
                clocks.append(SlaClock(sla=goal, breach_at=metric.breach_at, paused=metric.stage == "paused"))
        return tuple(clocks)


def custom_field_values(ticket: Mapping[str, Any], field_id: str) -> list[str]:
    """The values of a custom field (`custom_fields: [{"id", "value"}]`): a multiselect gives several."""
    entries = ticket.get("custom_fields")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("id")) == field_id:
            value = entry.get("value")
            items = value if isinstance(value, list) else [value]
            return [_text(str(v)) for v in items if v is not None and v != "" and not isinstance(v, dict | list)]
    return []


def survey(source: str, rating: Mapping[str, Any]) -> SurveyResponse | None:
    """A received CSAT rating as a response about its ticket; None for a rating offered and not (yet) given.

    `updated_at` is when the requester gave (or last changed) the rating: the record is created when the
    survey is offered.
    """
    score = rating.get("score")
    if score not in CSAT_SCORES:
        return None
    raw_id, raw_ticket = rating.get("id"), rating.get("ticket_id")
    if raw_id is None or isinstance(raw_id, bool):
        raise MappingError("missing_id", "rating has no id")
    if raw_ticket is None or isinstance(raw_ticket, bool):
        raise MappingError("missing_ticket", f"rating {raw_id} names no ticket")
    ticket = _text(str(raw_ticket))
    comment = rating.get("comment")
    return SurveyResponse(
        source=source,
        id=_text(str(raw_id)),
        submitted_at=parse_time(rating.get("updated_at") or rating.get("created_at")),
        answers=(
            Answer(
                question_id=CSAT_QUESTION_ID,
                value=CSAT_SCORES[str(score)],
                scale_min=0.0,
                scale_max=1.0,
                name=CSAT_QUESTION_NAME,
                text=CSAT_QUESTION_TEXT,
            ),
        ),
        ticket_id=ticket,
        ticket_key=ticket,
        # Whether the requester wrote a comment, never what: the text stays in Zendesk (the dashboard links to it).
        commented=isinstance(comment, str) and bool(comment.strip()),
    )


def skipped(kind: RecordKind, record: Mapping[str, Any], error: MappingError) -> SkippedRecord:
    """The SkippedRecord of a ticket or rating that failed to normalize."""
    return SkippedRecord(kind=kind, record_id=str(record.get("id") or "?"), reason=error.reason, detail=str(error))
