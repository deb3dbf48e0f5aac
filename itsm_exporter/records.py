"""Canonical records shared by connectors, the store and the collectors, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from itsm_exporter.tables import Column, Index, Parent, Table

TicketState = Literal["open", "on_hold", "resolved", "closed", "canceled"]
SlaOutcome = Literal["met", "breached", "unknown"]
RecordKind = Literal["ticket", "survey"]

TICKET_STATES: Final = ("open", "on_hold", "resolved", "closed", "canceled")
SLA_OUTCOMES: Final = ("met", "breached", "unknown")
PRIORITIES: Final = ("p1", "p2", "p3", "p4", "p5")
RECORD_KINDS: Final = ("ticket", "survey")

UNASSIGNED: Final = "unassigned"
"""Label value for a ticket without a group, service, priority or channel."""
UNKNOWN_TICKET: Final = "unknown"
"""Label value for a survey whose ticket is not in the store."""
OTHER: Final = "other"
"""Label value for everything beyond the `max_label_values` cap."""


def utc(moment: datetime) -> datetime:
    """Return `moment` in UTC; naive datetimes are refused because their zone is a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


SlaName = Literal["response", "resolution"]
SLA_NAMES: Final = ("response", "resolution")


@dataclass(frozen=True, slots=True)
class SlaClock:
    """A running SLA clock of a ticket, as the upstream reported it at the sync: enough to say at any
    later instant whether it is within its goal, at risk, breached or paused (collectors/live.py).

    Only running clocks are stored (ServiceNow task_sla in stage `in_progress` or `paused`, a JSM
    `ongoingCycle`); a completed one is an outcome (Ticket.sla_response, sla_resolution) instead.
    """

    sla: SlaName
    breach_at: datetime | None
    """When the clock breaches its goal: ServiceNow `planned_end_time`, JSM `ongoingCycle.breachTime`.
    None when the upstream gives none (a JSM cycle paused before it could be computed)."""
    paused: bool = False
    goal_seconds: float | None = None
    breached: bool = False
    """The upstream's own verdict at the sync (`has_breached`, `ongoingCycle.breached`): used when
    there is no breach time; otherwise the breach time decides, at whatever instant is evaluated."""

    def __post_init__(self) -> None:
        if self.sla not in SLA_NAMES:
            raise ValueError(f"SLA clock {self.sla!r} is not response or resolution")
        if self.breach_at is not None and self.breach_at.tzinfo is not UTC:
            object.__setattr__(self, "breach_at", utc(self.breach_at))
        if self.goal_seconds is not None and not self.goal_seconds >= 0:
            raise ValueError(f"SLA clock {self.sla}: goal {self.goal_seconds!r} is not a duration")


@dataclass(frozen=True, slots=True)
class Segment:
    """The value of one customer-side segment (`segments:` in the config) of a ticket or a survey response.

    `name` is the configured label name (`department`), `value` what the upstream field holds for the
    record (`Finance`); a record without a value has no Segment of that name (it counts as `unassigned`).
    """

    name: str
    value: str

    def __post_init__(self) -> None:
        if not self.name or not self.value:
            raise ValueError(f"segment {self.name!r}: a segment needs a name and a value")


def _segments(owner: str, segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
    """Segments sorted by name, as the store lists them; a name twice is refused."""
    ordered = tuple(sorted(segments, key=lambda segment: segment.name))
    if len({segment.name for segment in ordered}) < len(ordered):
        raise ValueError(f"{owner}: a segment is given twice")
    return ordered


@dataclass(frozen=True, slots=True)
class Ticket:
    """One incident or request, normalized from any upstream."""

    source: str
    id: str
    key: str
    opened_at: datetime
    state: TicketState
    updated_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    priority: str | None = None
    group: str | None = None
    service: str | None = None
    channel: str | None = None
    reassignments: int = 0
    reopens: int = 0
    sla_response: SlaOutcome = "unknown"
    sla_resolution: SlaOutcome = "unknown"
    complaint: bool = False
    sla_clocks: tuple[SlaClock, ...] = ()
    """Running SLA clocks at the sync, at most one per SLA, in SLA_NAMES order (a child table in the store)."""
    segments: tuple[Segment, ...] = ()
    """The values of the source's configured segments that the ticket has, by name (a child table in the store)."""

    def __post_init__(self) -> None:
        for name in TICKET_TIME_COLUMNS:
            value = getattr(self, name)
            # Connectors already hand over UTC: skip the conversion then (this runs per record per sync).
            if value is not None and value.tzinfo is not UTC:
                object.__setattr__(self, name, utc(value))
        if self.state not in TICKET_STATES:
            raise ValueError(f"ticket {self.key}: unknown state {self.state!r}")
        if self.priority is not None and self.priority not in PRIORITIES:
            raise ValueError(f"ticket {self.key}: priority {self.priority!r} is not one of p1..p5")
        for name in ("sla_response", "sla_resolution"):
            if getattr(self, name) not in SLA_OUTCOMES:
                raise ValueError(f"ticket {self.key}: {name} {getattr(self, name)!r} is not met|breached|unknown")
        if self.reassignments < 0 or self.reopens < 0:
            raise ValueError(f"ticket {self.key}: negative reassignment or reopen count")
        if len(self.segments) > 1:
            object.__setattr__(self, "segments", _segments(f"ticket {self.key}", self.segments))


@dataclass(frozen=True, slots=True)
class Answer:
    """One answered question of a survey, with the scale it was asked on.

    `question_id` is the question's upstream identity (ServiceNow `asmt_metric.sys_id`, JSM `csat`,
    a CSV column header), so a renamed question or an edited config never orphans stored answers.
    `name` and `text` are what the upstream calls and asks it; the config's survey mapping matches
    them at compute time (collectors/roles.py).
    """

    question_id: str
    value: float
    scale_min: float = 1.0
    scale_max: float = 5.0
    name: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if not self.scale_max > self.scale_min:
            raise ValueError(f"question {self.question_id!r}: scale max must exceed min")
        if not self.scale_min <= self.value <= self.scale_max:
            scale = f"{self.scale_min}..{self.scale_max}"
            raise ValueError(f"question {self.question_id!r}: value {self.value} outside its scale {scale}")


@dataclass(frozen=True, slots=True)
class SurveyResponse:
    """One submitted survey. `ticket_id` or `ticket_key` links it to a ticket of `ticket_source`."""

    source: str
    id: str
    submitted_at: datetime
    answers: tuple[Answer, ...]
    ticket_id: str | None = None
    ticket_key: str | None = None
    ticket_source: str | None = None
    """Source whose tickets this survey is about; None means `source` itself (csv imports differ)."""
    commented: bool = False
    """The respondent wrote a comment (a text answer, JSM's CSAT comment, a CSV comment cell). Only that it
    exists is kept: the text stays upstream, where the drill-down links read it."""
    segments: tuple[Segment, ...] = ()
    """Segment values the response itself carries (a CSV export's columns); they win over its ticket's."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "submitted_at", utc(self.submitted_at))
        if len(self.segments) > 1:
            object.__setattr__(self, "segments", _segments(f"survey {self.id}", self.segments))


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """An upstream record that could not be normalized; counted by reason and logged once."""

    kind: RecordKind
    record_id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PhaseState:
    """Where one phase of one sync plan of a source stands; committed with the records it covers.

    `watermark`: every upstream record updated before it is stored (UTC). `token`: a position that
    is not a time (a CSV export's content digest). `done` and `total`: records committed in the
    current run of the phase, and what the upstream announced for it. `completed_at`: the end of
    the last run that read the phase to its end.
    """

    plan: str
    phase: str
    watermark: datetime | None = None
    token: str | None = None
    done: int = 0
    total: int | None = None
    completed_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("watermark", "completed_at"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, utc(value))


@dataclass(frozen=True, slots=True)
class Batch:
    """A unit of sync: records, deletions and the sync state that is valid once they are stored.

    The store commits all of it in one transaction, so a crash between batches resumes from the
    last committed state and a crash inside one loses nothing.
    """

    kind: RecordKind
    tickets: tuple[Ticket, ...] = ()
    surveys: tuple[SurveyResponse, ...] = ()
    state: PhaseState | None = None
    skipped: tuple[SkippedRecord, ...] = ()
    deleted_ticket_ids: tuple[str, ...] = ()
    fetched_so_far: int = 0
    total_expected: int | None = None


@dataclass(frozen=True)
class QuestionUse:
    """A survey question as stored for one source, with its answers in some span (Store.question_use)."""

    question_id: str
    name: str | None
    text: str | None
    answers: int


# The tables, declared once (itsm_exporter/tables.py): the store's DDL, upserts and loaders, the frames'
# columns and dtypes, and the column tuples below all derive from these declarations.

# Tickets and surveys are rowid tables with a unique (source, id) index: upstream ids are random
# (ServiceNow sys_ids), and a random insert dirties one page per record in the B-tree it lands in.
# In a WITHOUT ROWID table that page holds ~25 whole rows; in the index it holds ~80 keys, while
# the rows themselves are appended. Measured in bench/store.py: about twice the upsert rate.
# Ticket labels are codes of the labels table (store/schema.py, LABELS_TABLE says why).
TICKETS: Final = Table(
    "tickets",
    columns=(
        Column("source", "label"),
        Column("id", "text"),
        Column("key", "text"),
        Column("opened_at", "time"),
        Column("first_response_at", "time", nullable=True),
        Column("resolved_at", "time", nullable=True),
        Column("closed_at", "time", nullable=True),
        Column("updated_at", "time"),
        Column("state", "label"),
        Column("group", "label", nullable=True, sql="grp"),
        Column("service", "label", nullable=True),
        Column("priority", "label", nullable=True),
        Column("channel", "label", nullable=True),
        Column("reassignments", "count"),
        Column("reopens", "count"),
        Column("sla_response", "label"),
        Column("sla_resolution", "label"),
        Column("complaint", "flag"),
    ),
    key=("source", "id"),
    record=Ticket,
    rowid=True,
    coded_labels=True,
)
SLA_CLOCKS: Final = Table(
    "sla_clocks",
    columns=(
        Column("source", "label"),
        Column("ticket_id", "text"),
        Column("sla", "label"),
        Column("breach_at", "time", nullable=True),
        Column("paused", "flag"),
        Column("goal_seconds", "real", nullable=True),
        Column("breached", "flag"),
    ),
    key=("source", "ticket_id", "sla"),
    record=SlaClock,
    # Every stored clock is loaded: only running clocks are stored, a few per open ticket. Listed
    # response first (SLA_NAMES), the reverse of the alphabet.
    parent=Parent(TICKETS, "sla_clocks", key=("source", "ticket_id"), window="all", order="sla DESC"),
)
SURVEYS: Final = Table(
    "surveys",
    columns=(
        Column("source", "label"),
        Column("id", "text", shared=True),
        Column("ticket_source", "label", fallback="source"),
        Column("ticket_id", "text", nullable=True),
        Column("ticket_key", "text", nullable=True),
        Column("submitted_at", "time"),
        # Added by schema 6 to the existing rows (ALTER TABLE ADD COLUMN needs a default): a response stored
        # before it has no comment counted until it is read again.
        Column("commented", "flag", default=0),
    ),
    key=("source", "id"),
    record=SurveyResponse,
    rowid=True,
    indexes=(Index("surveys_submitted", ("submitted_at",)),),
)
ANSWERS: Final = Table(
    "answers",
    columns=(
        Column("source", "label"),
        # A survey's id is repeated on each of its answers: loaded once, referenced by all (1.3 million
        # answers of 200,000 surveys would otherwise hold 1.1 million extra copies, about 65 MB).
        Column("survey_id", "text", shared=True),
        Column("question_id", "label"),
        Column("value", "real"),
        Column("scale_min", "real"),
        Column("scale_max", "real"),
    ),
    key=("source", "survey_id", "question_id"),
    record=Answer,
    parent=Parent(SURVEYS, "answers", key=("source", "survey_id")),
)
TICKET_SEGMENTS: Final = Table(
    "ticket_segments",
    columns=(
        Column("source", "label"),
        # A ticket's id is repeated on each of its segments: loaded once, referenced by all (5 segments of a
        # million tickets would otherwise hold 4 million extra copies, about 320 MB).
        Column("ticket_id", "text", shared=True),
        Column("name", "label", categorical=True),
        Column("value", "label", categorical=True),
    ),
    key=("source", "ticket_id", "name"),
    record=Segment,
    parent=Parent(TICKETS, "segments", key=("source", "ticket_id")),
)
SURVEY_SEGMENTS: Final = Table(
    "survey_segments",
    columns=(
        Column("source", "label"),
        Column("survey_id", "text", shared=True),
        Column("name", "label", categorical=True),
        Column("value", "label", categorical=True),
    ),
    key=("source", "survey_id", "name"),
    record=Segment,
    parent=Parent(SURVEYS, "segments", key=("source", "survey_id")),
)
QUESTIONS: Final = Table(
    "questions",
    columns=(
        Column("source", "label"),
        Column("question_id", "label"),
        Column("name", "label", nullable=True),
        Column("text", "label", nullable=True),
    ),
    key=("source", "question_id"),
    record=Answer,
    # Each source's catalogue of questions, from the answers that name them: kept when a response goes.
    parent=Parent(SURVEYS, "answers", key=("source",), owned=False, window="all"),
)
SYNC_STATE: Final = Table(
    "sync_state",
    columns=(
        Column("source", "label"),
        Column("plan", "text"),
        Column("phase", "text"),
        Column("watermark", "time", nullable=True),
        Column("token", "text", nullable=True),
        Column("done", "count", default=0),
        Column("total", "count", nullable=True),
        Column("completed_at", "time", nullable=True),
    ),
    key=("source", "plan", "phase"),
    record=PhaseState,
    scope=("source",),
    framed=False,
)
TABLES: Final = (TICKETS, SURVEYS, ANSWERS, SLA_CLOCKS, TICKET_SEGMENTS, SURVEY_SEGMENTS, QUESTIONS, SYNC_STATE)
"""Every table of the store (labels aside: store/schema.py), parents before their children."""

TICKET_COLUMNS: Final = TICKETS.names
TICKET_TIME_COLUMNS: Final = TICKETS.kind_names("time")
