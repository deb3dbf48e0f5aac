"""Tickets per label set and window: volume, responsiveness, SLA, reliability, complaints; and the backlog."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from itsm_exporter.collectors.arrays import BoolArray, FloatArray, IntArray
from itsm_exporter.collectors.durations import Durations
from itsm_exporter.collectors.facts import OUTCOMES, SLAS, TicketFacts
from itsm_exporter.collectors.histograms import GroupHistograms, histogram_by_group
from itsm_exporter.collectors.windows import Window


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
    resolution: GroupHistograms
    first_response: GroupHistograms
    complaint_resolution: GroupHistograms


def ticket_window_stats(
    facts: TicketFacts,
    groups: IntArray,
    n_groups: int,
    window: Window,
    as_of: float,
    durations: Durations,
    bounds: FloatArray,
) -> TicketWindowStats:
    """Count each ticket event of the window per label set."""
    opened_in = window.contains(facts.opened, as_of)
    resolved_in = window.contains(facts.resolved, as_of)
    answered_in = window.contains(facts.first_response, as_of)

    def count(mask: BoolArray) -> IntArray:
        return np.bincount(groups[mask], minlength=n_groups).astype(np.int64)

    return TicketWindowStats(
        opened=count(opened_in),
        resolved=count(resolved_in),
        first_responded=count(answered_in),
        reopened=count(resolved_in & facts.reopened),
        first_contact=count(resolved_in & facts.first_contact),
        reassignments=np.bincount(
            groups[resolved_in], weights=facts.reassignments[resolved_in], minlength=n_groups
        ).astype(np.float64),
        complaints_opened=count(opened_in & facts.complaint),
        sla={
            (sla, outcome): count(resolved_in & (facts.sla[sla] == index))
            for sla in SLAS
            for index, outcome in enumerate(OUTCOMES)
        },
        resolution=histogram_by_group(groups, durations.resolution(resolved_in), n_groups, bounds),
        first_response=histogram_by_group(groups, durations.first_response(answered_in), n_groups, bounds),
        complaint_resolution=histogram_by_group(
            groups, durations.resolution(resolved_in & facts.complaint), n_groups, bounds
        ),
    )


@dataclass(frozen=True)
class BacklogStats:
    """Backlog at as_of per label set: count and age histogram."""

    tickets: IntArray
    age: GroupHistograms


def backlog_stats(
    facts: TicketFacts, groups: IntArray, n_groups: int, durations: Durations, bounds: FloatArray
) -> BacklogStats:
    """The backlog has no window: it is the state at as_of."""
    age = histogram_by_group(groups, durations.age(facts.backlog), n_groups, bounds)
    return BacklogStats(tickets=age.counts, age=age)
