"""Canonical records shared by connectors, the store and the collectors, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

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

# Frame columns. Times in frames are float epoch seconds (NaN when unset): cheap to load from
# SQLite and to subtract, and unambiguous (always UTC).
TICKET_TIME_COLUMNS: Final = (
    "opened_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "updated_at",
)
TICKET_LABEL_COLUMNS: Final = ("group", "service", "priority", "channel")
TICKET_COLUMNS: Final = (
    "source",
    "id",
    "key",
    *TICKET_TIME_COLUMNS,
    "state",
    *TICKET_LABEL_COLUMNS,
    "reassignments",
    "reopens",
    "sla_response",
    "sla_resolution",
    "complaint",
)
SURVEY_COLUMNS: Final = ("source", "id", "ticket_source", "ticket_id", "ticket_key", "submitted_at")
ANSWER_COLUMNS: Final = ("source", "survey_id", "question", "value", "scale_min", "scale_max")


def utc(moment: datetime) -> datetime:
    """Return `moment` in UTC; naive datetimes are refused because their zone is a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


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


@dataclass(frozen=True, slots=True)
class Answer:
    """One answered question of a survey, with the scale it was asked on."""

    question: str
    value: float
    scale_min: float = 1.0
    scale_max: float = 5.0

    def __post_init__(self) -> None:
        if not self.scale_max > self.scale_min:
            raise ValueError(f"question {self.question!r}: scale max must exceed min")
        if not self.scale_min <= self.value <= self.scale_max:
            raise ValueError(
                f"question {self.question!r}: value {self.value} outside its scale {self.scale_min}..{self.scale_max}"
            )


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "submitted_at", utc(self.submitted_at))


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """An upstream record that could not be normalized; counted by reason and logged once."""

    kind: RecordKind
    record_id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Batch:
    """A unit of sync: records plus the watermark that is valid once they are stored.

    The store commits records and watermark together, so a crash between batches resumes from
    the last committed watermark and a crash inside one loses nothing.
    """

    kind: RecordKind
    tickets: tuple[Ticket, ...] = ()
    surveys: tuple[SurveyResponse, ...] = ()
    watermark: str | None = None
    skipped: tuple[SkippedRecord, ...] = ()
    fetched_so_far: int = 0
    total_expected: int | None = None
