"""Pure normalization of Jira / JSM issues: fields catalog, times, states, SLAs, changelog, CSAT."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.records import (
    SLA_NAMES as CLOCK_ORDER,
)
from itsm_exporter.records import (
    Answer,
    RecordKind,
    Segment,
    SkippedRecord,
    SlaClock,
    SlaName,
    SlaOutcome,
    SurveyResponse,
    Ticket,
    TicketState,
)

JIRA_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%f%z"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_PRIORITIES: Final = {
    "highest": "p1", "blocker": "p1", "critical": "p1",
    "high": "p2", "major": "p2",
    "medium": "p3",
    "low": "p4", "minor": "p4",
    "lowest": "p5", "trivial": "p5",
}  # fmt: skip
CANCELED_RESOLUTIONS: Final = frozenset(
    {"won't do", "won't fix", "cancelled", "canceled", "duplicate", "declined", "cannot reproduce", "rejected"}
)
"""Resolutions (case-insensitive) that mean the work was never done: the ticket is `canceled`."""
ON_HOLD_STATUS: Final = re.compile(r"\b(waiting for (?!support\b)|pending\b|on hold\b|paused\b)", re.IGNORECASE)
"""Status names that put a ticket on hold; JSM's "Waiting for support" is the agent's turn, so open."""
DEFAULT_SURVEY_QUESTION: Final = "Satisfaction"
CSAT_QUESTION_ID: Final = "csat"
"""JSM asks one satisfaction question per request; its answers are stored under this id."""
CSAT_QUESTION_TEXT: Final = "How satisfied are you with this request?"
CSAT_SCALE: Final = (1.0, 5.0)

SLA_SCHEMA_CUSTOM: Final = "com.atlassian.servicedesk:sd-sla-field"
SLA_SCHEMA_TYPE: Final = "sd-servicelevelagreement"
FEEDBACK_SCHEMA_CUSTOM: Final = "com.atlassian.servicedesk:sd-request-feedback"
FEEDBACK_SCHEMA_TYPE: Final = "sd-feedback"
FEEDBACK_DATE_SCHEMA_CUSTOM: Final = "com.atlassian.servicedesk:sd-request-feedback-date"
REQUEST_TYPE_SCHEMA_CUSTOM: Final = "com.atlassian.servicedesk:vp-origin"
SLA_NAMES: Final = {"response": "time to first response", "resolution": "time to resolution"}
BASE_FIELDS: Final = (
    "created",
    "updated",
    "resolutiondate",
    "status",
    "resolution",
    "priority",
    "project",
    "components",
)


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _text(text: str) -> str:
    """`text` without lone surrogates (a UTF-16 field cut mid-emoji), which no UTF-8 store can hold."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


class MappingError(ValueError):
    """An issue that cannot be normalized; `reason` is the snake_case SkippedRecord reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def parse_jira_time(value: object) -> datetime:
    """A Jira timestamp (`2024-11-13T20:27:56.526+0530`, the API user's offset) as UTC."""
    if not isinstance(value, str):
        raise MappingError("bad_timestamp", f"not a timestamp: {value!r}")
    try:
        moment = datetime.strptime(value, JIRA_TIME_FORMAT)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise MappingError("bad_timestamp", f"not a Jira timestamp: {value!r}") from None
        if moment.tzinfo is None:
            raise MappingError("bad_timestamp", f"timestamp without offset: {value!r}") from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
        raise MappingError("bad_timestamp", f"timestamp out of range: {value!r}") from None


def _schema(entry: Mapping[str, Any]) -> tuple[str, str]:
    schema = entry.get("schema") or {}
    return str(schema.get("custom") or ""), str(schema.get("type") or "")


@dataclass(frozen=True)
class FieldCatalog:
    """Field ids of one site, resolved from `/rest/api/2/field` (custom field ids differ per site)."""

    ids_by_name: Mapping[str, str]
    sla: Mapping[str, str]
    satisfaction: str | None = None
    satisfaction_date: str | None = None
    request_type: str | None = None

    @classmethod
    def from_fields(cls, entries: Sequence[Mapping[str, Any]], sla_fields: Mapping[Any, str]) -> FieldCatalog:
        """Find the JSM fields by schema first, then by their default English names."""
        ids: dict[str, str] = {}
        by_schema: dict[str, list[Mapping[str, Any]]] = {}
        for entry in entries:
            field_id, name = str(entry.get("id", "")), str(entry.get("name", ""))
            if not field_id:
                continue
            ids.setdefault(field_id.casefold(), field_id)
            ids.setdefault(name.casefold(), field_id)
            custom, kind = _schema(entry)
            by_schema.setdefault(custom, []).append(entry)
            if kind and kind != custom:
                by_schema.setdefault(kind, []).append(entry)

        def pick(keys: Iterable[str], name: str | None = None) -> str | None:
            candidates = [e for k in keys for e in by_schema.get(k, [])]
            named = [e for e in candidates if name is None or str(e.get("name", "")).casefold() == name]
            chosen = named or (candidates if name is None else [])
            return str(chosen[0]["id"]) if chosen else None

        sla: dict[str, str] = {}
        for goal, default_name in SLA_NAMES.items():
            configured = sla_fields.get(goal)
            found = (
                ids.get(configured.casefold())
                if configured
                else pick((SLA_SCHEMA_CUSTOM, SLA_SCHEMA_TYPE), default_name)
            )
            if found is not None:
                sla[goal] = found
        return cls(
            ids_by_name=ids,
            sla=sla,
            satisfaction=pick((FEEDBACK_SCHEMA_CUSTOM, FEEDBACK_SCHEMA_TYPE)) or ids.get("satisfaction"),
            satisfaction_date=pick((FEEDBACK_DATE_SCHEMA_CUSTOM,)) or ids.get("satisfaction date"),
            request_type=pick((REQUEST_TYPE_SCHEMA_CUSTOM,)),
        )

    def resolve(self, name: str) -> str | None:
        """The field id for a configured name or id (`project`, `Team`, `customfield_10040`)."""
        if name.casefold() == "requesttype":
            return self.request_type
        # A system field id such as `labels` works even when /field does not list it.
        return self.ids_by_name.get(name.casefold(), None if " " in name else name)


@dataclass(frozen=True)
class StatusCatalog:
    """Status ids and names in the `done` category: a transition out of one is a reopen."""

    done_ids: frozenset[str] = frozenset()
    done_names: frozenset[str] = frozenset()

    @classmethod
    def from_statuses(cls, entries: Sequence[Mapping[str, Any]]) -> StatusCatalog:
        done = [e for e in entries if ((e.get("statusCategory") or {}).get("key")) == "done"]
        return cls(
            frozenset(str(e.get("id")) for e in done),
            frozenset(str(e.get("name", "")).casefold() for e in done),
        )

    def is_done(self, status_id: object, status_name: object) -> bool:
        if status_id is not None and str(status_id) in self.done_ids:
            return True
        return isinstance(status_name, str) and status_name.casefold() in self.done_names


def render(value: object) -> list[str]:
    """The display values of a field value: names of objects, each element of lists."""
    if value is None:
        return []
    if isinstance(value, list):
        return [text for item in value for text in render(item)]
    if isinstance(value, dict):
        if isinstance(value.get("requestType"), dict):
            return render(value["requestType"])
        for key in ("name", "value", "title", "displayName", "key"):
            if isinstance(value.get(key), str) and value[key]:
                return [_text(value[key])]
        return []
    text = _text(str(value).strip())
    return [text] if text else []


def _first(value: object) -> str | None:
    texts = render(value)
    return texts[0] if texts else None


def sla_outcome(value: object) -> SlaOutcome:
    """met or breached from the last completed cycle; an ongoing or absent SLA is unknown."""
    if not isinstance(value, dict):
        return "unknown"
    cycles = value.get("completedCycles") or []
    if not isinstance(cycles, list) or not cycles or not isinstance(cycles[-1], dict):
        return "unknown"
    return "breached" if cycles[-1].get("breached") is True else "met"


def sla_clock(name: SlaName, value: object) -> SlaClock | None:
    """The running clock of an SLA field: its `ongoingCycle` (absent until the SLA starts and once it stops).

    `breachTime` is `{"epochMillis", "iso8601", ...}` on current sites; the millis are read first, then
    the ISO form, so a site that sends only one of them (or the bare value) is read too.
    """
    if not isinstance(value, dict) or not isinstance(value.get("ongoingCycle"), dict):
        return None
    cycle = value["ongoingCycle"]
    goal = cycle.get("goalDuration")
    goal_millis = goal.get("millis") if isinstance(goal, dict) else None
    try:
        return SlaClock(
            sla=name,
            breach_at=_sla_instant(cycle.get("breachTime")),
            paused=cycle.get("paused") is True,
            goal_seconds=float(goal_millis) / 1000
            if isinstance(goal_millis, int | float) and not isinstance(goal_millis, bool)
            else None,
            breached=cycle.get("breached") is True,
        )
    except ValueError as error:
        raise MappingError("bad_sla", f"{value.get('name')!r}: ongoing cycle: {error}") from None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sla_instant(value: object) -> datetime | None:
    """A JSM SLA time: `{"epochMillis": ...}`, `{"iso8601": ...}`, or either bare; None when absent."""
    if value is None:
        return None
    if isinstance(value, dict):
        millis, iso = value.get("epochMillis"), value.get("iso8601")
    else:
        millis, iso = (value, None) if _is_number(value) else (None, value)
    if _is_number(millis):
        try:
            # Exact to the millisecond: fromtimestamp(millis / 1000) goes through a binary float and can land
            # a microsecond early (found by tests/test_parsers_property.py).
            return _EPOCH + timedelta(milliseconds=millis)  # type: ignore[arg-type]
        except (OverflowError, ValueError):
            raise ValueError(f"breachTime {millis!r} is not a time") from None
    if isinstance(iso, str):
        try:
            moment = datetime.fromisoformat(iso)
        except ValueError:
            raise ValueError(f"breachTime {iso!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise ValueError(f"breachTime {iso!r} has no offset")
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # year 1 with a positive offset (found by tests/test_parsers_property.py)
            raise ValueError(f"breachTime {iso!r} is out of range") from None
    raise ValueError(f"breachTime {value!r} has neither epochMillis nor iso8601")


def sla_stop_time(value: object) -> datetime | None:
    """When the last completed cycle stopped (first response given), from its epoch millis."""
    if sla_outcome(value) == "unknown":
        return None
    assert isinstance(value, dict)
    stop = value["completedCycles"][-1].get("stopTime") or {}
    millis = stop.get("epochMillis") if isinstance(stop, dict) else None
    if not isinstance(millis, int | float) or isinstance(millis, bool):
        raise MappingError("bad_sla", f"completed SLA cycle without stopTime.epochMillis in {value.get('name')!r}")
    try:
        return _EPOCH + timedelta(milliseconds=millis)  # exact, unlike fromtimestamp(millis / 1000)
    except (OverflowError, ValueError):
        raise MappingError("bad_sla", f"stopTime.epochMillis {millis!r} is not a time") from None


def count_changes(histories: Sequence[Mapping[str, Any]], statuses: StatusCatalog) -> tuple[int, int]:
    """(reopens, reassignments) from changelog histories.

    A reopen is a status change from a done-category status to one outside it. A reassignment is a
    change to a new assignee once somebody had been assigned: the first assignment is not one,
    unassigning is not one, and assigning again after an unassignment is one.
    """
    reopens = reassignments = 0
    had_assignee = False
    # An entry that is not an object cannot be a status or assignee change: it changes no count.
    readable = [h for h in histories if isinstance(h, dict)]
    for history in sorted(readable, key=lambda h: (str(h.get("created", "")), str(h.get("id", "")))):
        items = history.get("items")
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            name = item.get("fieldId") or item.get("field")
            if name == "status":
                if statuses.is_done(item.get("from"), item.get("fromString")) and not statuses.is_done(
                    item.get("to"), item.get("toString")
                ):
                    reopens += 1
            elif name == "assignee":
                if item.get("from") is not None:
                    had_assignee = True
                if item.get("to") is not None:
                    reassignments += had_assignee
                    had_assignee = True
    return reopens, reassignments


def embedded_histories(issue: Mapping[str, Any], cap: int = 0) -> list[dict[str, Any]] | None:
    """The search's embedded changelog when it is surely complete, else None: read it from the issue.

    The platform spec has the embedded list "starting from the most recent" and its `total` as "the number
    of results on the page", so a cut list can look whole (docs/api-notes.md, Changelog). A list is taken
    as complete only when it is empty, or shorter than its `maxResults` or than `cap`, the longest list
    this site has already shown in the sync (Data Center sends `maxResults` equal to the length); a
    `total` above the length is believed.
    """
    changelog = issue.get("changelog")
    if not isinstance(changelog, dict) or not isinstance(changelog.get("histories"), list):
        return None
    histories = changelog["histories"]
    total, page = changelog.get("total"), changelog.get("maxResults")
    if isinstance(total, int) and total > len(histories):
        return None
    limit = max(page if isinstance(page, int) else 0, cap)
    return histories if not histories or len(histories) < limit else None


def embedded_length(issue: Mapping[str, Any]) -> int:
    """How long a list this issue's embedded changelog shows the site can serve: its length or `maxResults`."""
    changelog = issue.get("changelog")
    if not isinstance(changelog, dict) or not isinstance(changelog.get("histories"), list):
        return 0
    page = changelog.get("maxResults")
    return max(len(changelog["histories"]), page if isinstance(page, int) else 0)


@dataclass
class IssueMapper:
    """Turns one issue's raw JSON into a Ticket and maybe a SurveyResponse; knows the site's field ids."""

    source: JiraSource
    fields: FieldCatalog
    statuses: StatusCatalog
    priorities: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.priorities = dict(DEFAULT_PRIORITIES) | {k.casefold(): v for k, v in self.source.priority_map.items()}

    def requested_fields(self) -> list[str]:
        """Every field id the mapping reads: the search returns only `id` unless told."""
        wanted = list(BASE_FIELDS)
        wanted += list(self.fields.sla.values())
        wanted += [f for f in (self.fields.satisfaction, self.fields.satisfaction_date) if f]
        # Segments (organizations, request type, any custom field) come with the issue in the same search.
        names = (
            self.source.group_field,
            self.source.service_field,
            *self.source.complaints,
            *self.source.segments.values(),
        )
        for name in names:
            resolved = self.fields.resolve(name)
            if resolved:
                wanted.append(resolved)
        return list(dict.fromkeys(wanted))

    def label(self, issue_fields: Mapping[str, Any], spec: str) -> str | None:
        """A group or service label value: the first value of the configured field."""
        field_id = self.fields.resolve(spec)
        return _first(issue_fields.get(field_id)) if field_id else None

    def segments(self, issue_fields: Mapping[str, Any]) -> tuple[Segment, ...]:
        """The configured segments' values: the first value of each field (an issue's first organization)."""
        found = ((label, self.label(issue_fields, spec)) for label, spec in self.source.segments.items())
        return tuple(Segment(label, value) for label, value in found if value)

    def is_complaint(self, issue_fields: Mapping[str, Any]) -> bool:
        for spec, values in self.source.complaints.items():
            field_id = self.fields.resolve(spec)
            wanted = {v.casefold() for v in values}
            if field_id and any(text.casefold() in wanted for text in render(issue_fields.get(field_id))):
                return True
        return False

    def state(self, issue_fields: Mapping[str, Any]) -> TicketState:
        status = issue_fields.get("status")
        if not isinstance(status, dict):
            raise MappingError("missing_status", "issue has no status")
        category = status.get("statusCategory")
        category = category.get("key") if isinstance(category, dict) else None
        name = str(status.get("name") or "")
        if category == "done":
            resolution = (_first(issue_fields.get("resolution")) or "").casefold()
            if resolution in CANCELED_RESOLUTIONS:
                return "canceled"
            return "closed" if name.casefold() == "closed" else "resolved"
        return "on_hold" if ON_HOLD_STATUS.search(name) else "open"

    def ticket(self, issue: Mapping[str, Any], histories: Sequence[Mapping[str, Any]]) -> Ticket:
        """The canonical ticket; raises MappingError when a required part is missing or malformed."""
        issue_id, key = _ids(issue)
        issue_fields = issue.get("fields")
        if not isinstance(issue_fields, dict):
            raise MappingError("missing_fields", "issue has no fields object")
        if not issue_fields.get("created"):
            raise MappingError("missing_created", "issue has no created time")
        opened = parse_jira_time(issue_fields["created"])
        updated = parse_jira_time(issue_fields.get("updated") or issue_fields["created"])
        state = self.state(issue_fields)
        done_at = None
        if state in ("resolved", "closed", "canceled"):
            done_at = parse_jira_time(issue_fields.get("resolutiondate") or issue_fields.get("updated"))
        priority_name = _first(issue_fields.get("priority"))
        response_sla = issue_fields.get(self.fields.sla.get("response", ""))
        reopens, reassignments = count_changes(histories, self.statuses)
        try:
            return Ticket(
                source=self.source.name,
                id=issue_id,
                key=key,
                opened_at=opened,
                state=state,
                updated_at=updated,
                first_response_at=sla_stop_time(response_sla),
                resolved_at=done_at if state != "canceled" else None,
                closed_at=done_at,
                priority=self.priorities.get(priority_name.casefold()) if priority_name else None,
                group=self.label(issue_fields, self.source.group_field),
                service=self.label(issue_fields, self.source.service_field),
                reassignments=reassignments,
                reopens=reopens,
                sla_response=sla_outcome(response_sla),
                sla_resolution=sla_outcome(issue_fields.get(self.fields.sla.get("resolution", ""))),
                complaint=self.is_complaint(issue_fields),
                # A done issue has no running clock, whatever cycle JSM left open on it.
                sla_clocks=self.clocks(issue_fields) if state in ("open", "on_hold") else (),
                segments=self.segments(issue_fields),
            )
        except ValueError as error:
            raise MappingError("invalid_ticket", str(error)) from error

    def clocks(self, issue_fields: Mapping[str, Any]) -> tuple[SlaClock, ...]:
        """The running response and resolution clocks of an issue, in SLA_NAMES order."""
        found = (sla_clock(name, issue_fields.get(self.fields.sla.get(name, ""))) for name in CLOCK_ORDER)
        return tuple(clock for clock in found if clock is not None)

    def survey_from_field(self, issue: Mapping[str, Any]) -> SurveyResponse | None:
        """The CSAT response from the Satisfaction field, or None when the issue is not rated."""
        issue_fields = issue.get("fields") or {}
        rating = issue_fields.get(self.fields.satisfaction) if self.fields.satisfaction else None
        if rating is None:
            return None
        value = rating.get("rating") if isinstance(rating, dict) else rating
        submitted = issue_fields.get(self.fields.satisfaction_date) if self.fields.satisfaction_date else None
        when = submitted or issue_fields.get("resolutiondate") or issue_fields.get("updated")
        return self.survey(issue, value, when, commented=isinstance(rating, dict) and has_comment(rating))

    def survey(
        self, issue: Mapping[str, Any], rating: object, submitted: object, *, commented: bool = False
    ) -> SurveyResponse:
        """A CSAT response: one answer on the 1..5 scale under the CSAT question's fixed id (collectors/roles.py)."""
        if not isinstance(rating, int | float) or isinstance(rating, bool):
            raise MappingError("bad_rating", f"rating {rating!r} is not a number")
        try:
            answer = Answer(
                question_id=CSAT_QUESTION_ID,
                value=float(rating),
                scale_min=CSAT_SCALE[0],
                scale_max=CSAT_SCALE[1],
                name=DEFAULT_SURVEY_QUESTION,
                text=CSAT_QUESTION_TEXT,
            )
        except (ValueError, OverflowError) as error:  # OverflowError: an integer beyond any float
            raise MappingError("bad_rating", str(error)) from error
        issue_id, key = _ids(issue)
        return SurveyResponse(
            source=self.source.name,
            id=f"{issue_id}:csat",
            submitted_at=parse_jira_time(submitted),
            answers=(answer,),
            ticket_id=issue_id,
            ticket_key=key,
            commented=commented,
        )


def has_comment(feedback: Mapping[str, Any]) -> bool:
    """Whether a CSAT rating carries the customer's comment: `comment.body` as the feedback endpoint gives it, or a
    bare string. Only that it exists is kept; the text stays in JSM."""
    comment = feedback.get("comment")
    text = comment.get("body") if isinstance(comment, dict) else comment
    return isinstance(text, str) and bool(text.strip())


def _ids(issue: Mapping[str, Any]) -> tuple[str, str]:
    """The issue's id and key (the id when the key is missing): an issue without an id cannot be stored."""
    raw_id = issue.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
        raise MappingError("invalid_ticket", f"issue has no id: {raw_id!r}")
    issue_id, key = _text(str(raw_id)), issue.get("key")
    return issue_id, _text(key) if isinstance(key, str) and key else issue_id


def skipped(kind: RecordKind, issue: Mapping[str, Any], error: MappingError) -> SkippedRecord:
    """The SkippedRecord for an issue that failed to normalize."""
    record_id = str(issue.get("key") or issue.get("id") or "?")
    return SkippedRecord(kind=kind, record_id=record_id, reason=error.reason, detail=str(error))
