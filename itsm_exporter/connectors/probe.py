"""What a kind's discover probe reports: neutral facts about one source, and the recorder that keeps them.

A probe (`SourceKind.probe`, beside each connector) reads what the exporter would read, through the
connector's own client, and records facts here: which tables or endpoints are readable, how many
tickets the window holds and how they spread over the grouping labels, the survey questions with
their answers, the SLAs and the complaint values. `discover.py` holds them against the config (the
survey mapping), suggests a config block and renders the report. Probes never write upstream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from itsm_exporter.connectors.base import AccessDenied, AuthError, ConnectorError
from itsm_exporter.records import QuestionUse

T = TypeVar("T")

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
class QuestionFacts:
    """An upstream survey question with its answers in the window, as the survey mapping sees it (`use`)."""

    use: QuestionUse
    datatype: str
    scale: str
    shown_text: str | None = None
    """The text the report shows when it differs from the one the mapping matches (JSM shows none)."""


@dataclass(frozen=True)
class SegmentSuggestion:
    """A likely segment (department, company, location, organization): its label, its field, its distinct values."""

    label: str
    field: str
    values: int


@dataclass
class SourceFacts:
    """Everything a probe found about one source."""

    access: list[Access] = field(default_factory=list)
    tickets: int | None = None
    tickets_basis: str = ""
    first_sync: str = ""
    """What a first sync of this source will read (the bounded backfill), when it could be counted."""
    sample: int | None = None
    """The values below are counted over this many tickets of the window (one page), not all of them."""
    groupings: dict[str, list[ValueCount]] = field(default_factory=dict)
    unassigned: float | None = None
    segments: dict[str, list[ValueCount]] = field(default_factory=dict)
    """The values of each configured segment, by `label (upstream field)`."""
    segment_suggestions: list[SegmentSuggestion] = field(default_factory=list)
    """Customer fields of the upstream that are not configured segments yet and hold values in the window."""
    questions: list[QuestionFacts] = field(default_factory=list)
    survey_notes: list[str] = field(default_factory=list)
    slas: list[ValueCount] = field(default_factory=list)
    sla_notes: list[str] = field(default_factory=list)
    complaints: dict[str, list[ValueCount]] = field(default_factory=dict)
    complaint_notes: list[str] = field(default_factory=list)
    calendar_notes: list[str] = field(default_factory=list)
    """The working hours and holidays the upstream knows (its schedules, and which SLA uses which), so a
    user can mirror them in `calendars:`."""
    requests: int = 0


@dataclass(frozen=True)
class ProbeSettings:
    """What a probe needs of the whole configuration."""

    as_of: datetime
    window: str
    """The longest window, as written: the span the report counts over."""
    window_seconds: float
    history: timedelta
    """How far back a first sync of this source reads (Config.history_for)."""
    history_setting: str
    """`history` as written in the config, or what its default is made of: `60d + overlap 5m`."""
    group_by: tuple[str, ...]
    max_label_values: int

    @property
    def since(self) -> datetime:
        return self.as_of - timedelta(seconds=self.window_seconds)


class Probe:
    """Given to a kind's probe: the settings, the facts it fills, a request counter, and `read`."""

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.facts = SourceFacts()

    def observe(self, _code: str) -> None:
        """The client's request observer: every request the report costs is counted."""
        self.facts.requests += 1

    def read(
        self, what: str, hint: str, request: Callable[[], T], *, required: bool = True, first: bool = False
    ) -> T | None:
        """`request()`, or None when it was denied or failed (recorded). A refused login, or any failure
        but a 403 on the `first` read, ends the source: it is unreachable and the other reads would fail alike."""
        try:
            result = request()
        except AccessDenied:
            detail = f"ask for: {hint}" if hint else "permission missing"
            self.facts.access.append(Access(what, "denied", detail, required))
            return None
        except AuthError:
            raise
        except ConnectorError as error:
            if first:
                raise
            self.facts.access.append(Access(what, "failed", str(error), required))
            return None
        self.facts.access.append(Access(what, "readable", "", required))
        return result

    def top(self, counts: Iterable[tuple[str, int]]) -> list[ValueCount]:
        """The most frequent values up to `max_label_values`, the rest summed as the collectors' `other`."""
        ordered = sorted(counts, key=lambda vc: (-vc[1], vc[0]))
        limit = self.settings.max_label_values
        shown = [ValueCount(v, n) for v, n in ordered[:limit]]
        rest = ordered[limit:]
        if rest:
            shown.append(ValueCount(f"({len(rest)} more: grouped as 'other')", sum(n for _v, n in rest)))
        return shown

    def complaint_values(self, groups: Iterable[tuple[str, str, int]], wanted: Sequence[str]) -> list[ValueCount]:
        """(raw, display, count) of a complaint field, the values the config names marked (compared without
        regard to case, as the connectors match them)."""
        keys = {w.casefold() for w in wanted}
        counts = sorted(groups, key=lambda g: (-g[2], g[0]))[: self.settings.max_label_values]
        return [
            ValueCount(
                raw if display in ("", raw) else f"{raw} ({display})",
                count,
                "matches" if raw.casefold() in keys else "",
            )
            for raw, display, count in counts
        ]
