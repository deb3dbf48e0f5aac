"""Tickets per label set and window (volume, responsiveness, SLA, reliability, complaints), the backlog, and
their metric families."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from prometheus_client.core import Metric

from itsm_exporter.collectors.arrays import (
    BoolArray,
    FloatArray,
    IntArray,
    count_by_group,
    count_by_group_and_category,
    ratio,
)
from itsm_exporter.collectors.calendars import BUSINESS_NOTE
from itsm_exporter.collectors.durations import Durations
from itsm_exporter.collectors.facts import OUTCOMES, SLAS, TicketFacts
from itsm_exporter.collectors.families import FamilyBuilder, Part
from itsm_exporter.collectors.histograms import GroupHistograms, histogram_by_group
from itsm_exporter.collectors.windows import Period, Window


@dataclass(frozen=True)
class TicketWindowStats:
    """Per label set counts of one window (arrays indexed by group id)."""

    opened: IntArray
    resolved: IntArray
    first_responded: IntArray
    reopened: IntArray
    first_contact: IntArray
    reassignments: FloatArray
    complaints_opened: IntArray
    sla: dict[tuple[str, str], IntArray]
    durations: WindowDurations
    """The duration histograms on the wall clock."""


@dataclass(frozen=True)
class WindowDurations:
    """Per label set histograms of the durations of one window's tickets, on one clock."""

    resolution: GroupHistograms
    first_response: GroupHistograms
    complaint_resolution: GroupHistograms


def window_durations(
    facts: TicketFacts,
    groups: IntArray,
    n_groups: int,
    window: Window,
    end: float,
    durations: Durations,
    bounds: FloatArray,
) -> WindowDurations:
    """The duration histograms of the window ending at `end`, on the clock of `durations` (a second clock's)."""
    resolved_in = window.contains(facts.resolved, end)
    answered_in = window.contains(facts.first_response, end)
    return _window_durations(facts, groups, n_groups, resolved_in, answered_in, durations, bounds)


def _window_durations(
    facts: TicketFacts,
    groups: IntArray,
    n_groups: int,
    resolved_in: BoolArray,
    answered_in: BoolArray,
    durations: Durations,
    bounds: FloatArray,
) -> WindowDurations:
    return WindowDurations(
        resolution=histogram_by_group(groups, durations.resolution(resolved_in), n_groups, bounds),
        first_response=histogram_by_group(groups, durations.first_response(answered_in), n_groups, bounds),
        complaint_resolution=histogram_by_group(
            groups, durations.resolution(resolved_in & facts.complaint), n_groups, bounds
        ),
    )


def ticket_window_stats(
    facts: TicketFacts,
    groups: IntArray,
    n_groups: int,
    window: Window,
    end: float,
    durations: Durations,
    bounds: FloatArray,
) -> TicketWindowStats:
    """Count per label set each ticket event of the window ending at `end` (as_of for the published windows)."""
    opened_in = window.contains(facts.opened, end)
    resolved_in = window.contains(facts.resolved, end)
    answered_in = window.contains(facts.first_response, end)
    # One pass per event: each ticket's category says which of the counts over the same tickets it adds to.
    opened, _ = count_by_group_and_category(groups, opened_in, n_groups, facts.complaint.astype(np.int64), 2)
    by_category, reassignments = count_by_group_and_category(
        groups, resolved_in, n_groups, _resolved_categories(facts), 36, facts.reassignments
    )
    assert reassignments is not None  # weights given: their sums come back
    # Reopened, first contact, response SLA outcome + 1, resolution SLA outcome + 1.
    resolved = by_category.reshape(n_groups, 2, 2, 3, 3)
    by_sla = {"response": resolved.sum(axis=(1, 2, 4)), "resolution": resolved.sum(axis=(1, 2, 3))}
    return TicketWindowStats(
        opened=opened.sum(axis=1),
        resolved=resolved.sum(axis=(1, 2, 3, 4)),
        first_responded=count_by_group(groups, answered_in, n_groups).astype(np.int64),
        reopened=resolved[:, 1].sum(axis=(1, 2, 3)),
        first_contact=resolved[:, :, 1].sum(axis=(1, 2, 3)),
        reassignments=reassignments,
        complaints_opened=opened[:, 1],
        sla={(sla, outcome): by_sla[sla][:, index + 1] for sla in SLAS for index, outcome in enumerate(OUTCOMES)},
        durations=_window_durations(facts, groups, n_groups, resolved_in, answered_in, durations, bounds),
    )


def _resolved_categories(facts: TicketFacts) -> IntArray:
    """Per ticket, what it adds to the counts of the resolved: reopened, first contact and each SLA's outcome
    (unknown, met, breached), as one number in 0..35 (a C-ordered index into 2 x 2 x 3 x 3)."""
    response, resolution = (facts.sla[sla].astype(np.int64) + 1 for sla in SLAS)
    categories: IntArray = facts.reopened.astype(np.int64) * 18
    categories += facts.first_contact * 9
    categories += response * 3
    categories += resolution
    return categories


@dataclass(frozen=True)
class BacklogStats:
    """Backlog at as_of per label set: count and age histogram."""

    tickets: IntArray
    age: GroupHistograms


def backlog_stats(
    facts: TicketFacts, groups: IntArray, n_groups: int, durations: Durations, bounds: FloatArray
) -> BacklogStats:
    """The backlog has no window: it is the state at as_of."""
    age = backlog_age(facts, groups, n_groups, durations, bounds)
    return BacklogStats(tickets=age.counts, age=age)


def backlog_age(
    facts: TicketFacts, groups: IntArray, n_groups: int, durations: Durations, bounds: FloatArray
) -> GroupHistograms:
    """The age of the backlog at as_of per label set, on the clock of `durations`."""
    return histogram_by_group(groups, durations.age(facts.backlog), n_groups, bounds)


@dataclass(frozen=True)
class BusinessDurations:
    """The tickets' durations on the business clock (collectors/calendars.py): per window and the backlog's age."""

    windows: list[WindowDurations]
    backlog_age: GroupHistograms


def business_histogram(
    build: FamilyBuilder,
    name: str,
    doc: str,
    windows: list[WindowDurations] | None,
    duration: Literal["resolution", "first_response", "complaint_resolution"],
    bounds: FloatArray,
) -> list[Metric]:
    """The business-time family of one windowed duration, or nothing where no calendar applies (`windows` None)."""
    if windows is None:
        return []
    return [build.histogram(name, f"{doc} {BUSINESS_NOTE}", [getattr(w, duration) for w in windows], bounds)]


def families(
    build: FamilyBuilder,
    tickets: list[TicketWindowStats],
    backlog: BacklogStats,
    present: BoolArray,
    bounds: FloatArray,
    business: BusinessDurations | None,
) -> list[Metric]:
    """Volume, responsiveness and SLA outcomes per window, and the backlog; where a calendar applies, each
    duration in business time too, right after its wall-clock family."""
    shown = [present] * len(tickets)
    sla_parts = [
        Part((sla, outcome), [t.sla[(sla, outcome)] for t in tickets], shown) for sla in SLAS for outcome in OUTCOMES
    ]
    ratio_parts = []
    for sla in SLAS:
        judged = [t.sla[(sla, "met")] + t.sla[(sla, "breached")] for t in tickets]
        met = [ratio(t.sla[(sla, "met")], total) for t, total in zip(tickets, judged, strict=True)]
        ratio_parts.append(Part((sla,), met, [total > 0 for total in judged]))
    resolution = "Resolved - opened of the tickets resolved in the window."
    first_response = "First response - opened of the tickets first answered in the window."
    age = "Age (evaluation time - opened) of the backlog tickets (no window)."
    business_windows = business.windows if business else None
    return [
        build.gauge(
            "itsm_tickets_opened",
            "Tickets opened in the window (canceled ones included).",
            [Part((), [t.opened for t in tickets], shown)],
        ),
        build.gauge(
            "itsm_tickets_resolved",
            "Tickets resolved (or closed without a resolution time) in the window.",
            [Part((), [t.resolved for t in tickets], shown)],
        ),
        build.histogram("itsm_resolution_time_seconds", resolution, [t.durations.resolution for t in tickets], bounds),
        *business_histogram(
            build, "itsm_resolution_business_time_seconds", resolution, business_windows, "resolution", bounds
        ),
        build.histogram(
            "itsm_first_response_time_seconds", first_response, [t.durations.first_response for t in tickets], bounds
        ),
        *business_histogram(
            build,
            "itsm_first_response_business_time_seconds",
            first_response,
            business_windows,
            "first_response",
            bounds,
        ),
        build.gauge(
            "itsm_sla_tickets",
            "Tickets resolved in the window with a known SLA result, by SLA and outcome.",
            sla_parts,
            ("sla", "outcome"),
        ),
        build.gauge(
            "itsm_sla_met_ratio",
            "Met / (met + breached) of the tickets resolved in the window, by SLA.",
            ratio_parts,
            ("sla",),
        ),
        build.unwindowed_gauge(
            "itsm_backlog_tickets",
            "Tickets neither resolved, closed nor canceled at evaluation time (no window).",
            backlog.tickets,
            present,
        ),
        build.histogram("itsm_backlog_age_seconds", age, [backlog.age], bounds, windowed=False),
        *(
            [
                build.histogram(
                    "itsm_backlog_business_age_seconds",
                    f"{age} {BUSINESS_NOTE}",
                    [business.backlog_age],
                    bounds,
                    windowed=False,
                )
            ]
            if business
            else []
        ),
    ]


def _sla_met_ratio(tickets: TicketWindowStats, sla: str) -> tuple[FloatArray, BoolArray]:
    """Met / (met + breached) of one SLA per label set, and where that sum is positive."""
    judged = tickets.sla[(sla, "met")] + tickets.sla[(sla, "breached")]
    return ratio(tickets.sla[(sla, "met")], judged), judged > 0


def earlier_families(
    build: FamilyBuilder, periods: Sequence[Period], earlier: Sequence[list[TicketWindowStats]], present: BoolArray
) -> list[Metric]:
    """The SLA met ratio of each window over each earlier period, for the label sets shown now."""
    if not periods:
        return []
    parts = []
    for period, tickets in zip(periods, earlier, strict=True):
        for sla in SLAS:
            met = [_sla_met_ratio(t, sla) for t in tickets]
            parts.append(Part((sla, period.name), [m for m, _ in met], [judged & present for _, judged in met]))
    return [
        build.gauge(
            "itsm_earlier_sla_met_ratio",
            "Met / (met + breached) of the tickets resolved in a period of the window's length ending earlier "
            "(period: previous = just before the window, year_ago = 365 days before it), by SLA; from the store.",
            parts,
            ("sla", "period"),
        )
    ]


def reliability_families(build: FamilyBuilder, tickets: list[TicketWindowStats], present: BoolArray) -> list[Metric]:
    """Reopens, reassignments and first-contact resolution of the tickets resolved in each window."""
    shown = [present] * len(tickets)
    any_resolved = [t.resolved > 0 for t in tickets]
    return [
        build.gauge(
            "itsm_tickets_reopened",
            "Tickets resolved in the window that were reopened at least once.",
            [Part((), [t.reopened for t in tickets], shown)],
        ),
        build.gauge(
            "itsm_tickets_first_contact_resolved",
            "Tickets resolved in the window with no reassignment and no reopen.",
            [Part((), [t.first_contact for t in tickets], shown)],
        ),
        build.gauge(
            "itsm_reassignments",
            "Sum of reassignments over the tickets resolved in the window.",
            [Part((), [t.reassignments for t in tickets], shown)],
        ),
        build.gauge(
            "itsm_reopened_ratio",
            "Reopened / resolved tickets in the window.",
            [Part((), [ratio(t.reopened, t.resolved) for t in tickets], any_resolved)],
        ),
        build.gauge(
            "itsm_first_contact_resolution_ratio",
            "First-contact resolved / resolved tickets in the window.",
            [Part((), [ratio(t.first_contact, t.resolved) for t in tickets], any_resolved)],
        ),
    ]


def complaint_families(
    build: FamilyBuilder,
    tickets: list[TicketWindowStats],
    present: BoolArray,
    bounds: FloatArray,
    business: BusinessDurations | None,
) -> list[Metric]:
    """Complaints opened in each window and the resolution time of those resolved in it (in business time too
    where a calendar applies)."""
    resolution = "Resolved - opened of the complaints resolved in the window."
    return [
        build.gauge(
            "itsm_complaints_opened",
            "Complaints (tickets matching the source's complaints rule) opened in the window.",
            [Part((), [t.complaints_opened for t in tickets], [present] * len(tickets))],
        ),
        build.histogram(
            "itsm_complaint_resolution_time_seconds",
            resolution,
            [t.durations.complaint_resolution for t in tickets],
            bounds,
        ),
        *business_histogram(
            build,
            "itsm_complaint_resolution_business_time_seconds",
            resolution,
            business.windows if business else None,
            "complaint_resolution",
            bounds,
        ),
    ]
