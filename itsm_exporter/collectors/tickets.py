"""Ticket facts at as_of and their per-window counts: volume, responsiveness, SLA, reliability, complaints."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from itsm_exporter.collectors.arrays import BoolArray, FloatArray, IntArray, SmallIntArray, source_codes
from itsm_exporter.collectors.histograms import GroupHistograms, histogram_by_group
from itsm_exporter.collectors.windows import Window

SLAS = ("response", "resolution")
OUTCOMES = ("met", "breached")


@dataclass(frozen=True)
class TicketFacts:
    """Per-ticket arrays of configured sources; times are epoch seconds with NaN for never."""

    frame: pd.DataFrame
    source: IntArray
    opened: FloatArray
    first_response: FloatArray
    resolved: FloatArray
    backlog: BoolArray
    complaint: BoolArray
    reopened: BoolArray
    first_contact: BoolArray
    reassignments: IntArray
    sla: dict[str, SmallIntArray]
    """SLA name -> index into OUTCOMES per ticket, -1 when unknown (int8: a million tickets, two SLAs)."""


def ticket_facts(tickets: pd.DataFrame, names: tuple[str, ...], as_of: float) -> TicketFacts:
    """Derive what each ticket contributes; canceled tickets keep only their opening."""
    codes = source_codes(tickets["source"], names)
    if (codes < 0).any():
        tickets = tickets.loc[codes >= 0].reset_index(drop=True)
        codes = codes[codes >= 0]
    state = tickets["state"].to_numpy(dtype=object)
    canceled = state == "canceled"
    opened = tickets["opened_at"].to_numpy(dtype=np.float64)
    resolved = tickets["resolved_at"].to_numpy(dtype=np.float64)
    closed = tickets["closed_at"].to_numpy(dtype=np.float64)
    resolved = np.where(np.isnan(resolved) & (state == "closed"), closed, resolved)
    resolved[canceled] = np.nan
    first_response = tickets["first_response_at"].to_numpy(dtype=np.float64).copy()
    first_response[canceled] = np.nan
    # State open/on_hold is backlog; so is a ticket resolved only after as_of (a past --as-of).
    still_open = ((state == "open") | (state == "on_hold")) | (resolved > as_of)
    backlog = (opened <= as_of) & still_open & ~canceled
    reopens = tickets["reopens"].to_numpy(dtype=np.int64)
    reassignments = tickets["reassignments"].to_numpy(dtype=np.int64)
    return TicketFacts(
        frame=tickets,
        source=codes,
        opened=opened,
        first_response=first_response,
        resolved=resolved,
        backlog=backlog,
        complaint=tickets["complaint"].to_numpy(dtype=bool),
        reopened=reopens > 0,
        first_contact=(reopens == 0) & (reassignments == 0),
        reassignments=reassignments,
        sla={sla: _outcome_codes(tickets[f"sla_{sla}"]) for sla in SLAS},
    )


def _outcome_codes(column: pd.Series) -> SmallIntArray:
    values = column.to_numpy(dtype=object)
    codes = np.full(len(values), -1, dtype=np.int8)
    for index, outcome in enumerate(OUTCOMES):
        codes[values == outcome] = index
    return codes


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
    facts: TicketFacts, groups: IntArray, n_groups: int, window: Window, as_of: float, bounds: FloatArray
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
        resolution=histogram_by_group(groups, facts.opened, facts.resolved, resolved_in, n_groups, bounds),
        first_response=histogram_by_group(groups, facts.opened, facts.first_response, answered_in, n_groups, bounds),
        complaint_resolution=histogram_by_group(
            groups, facts.opened, facts.resolved, resolved_in & facts.complaint, n_groups, bounds
        ),
    )


@dataclass(frozen=True)
class BacklogStats:
    """Backlog at as_of per label set: count and age histogram."""

    tickets: IntArray
    age: GroupHistograms


def backlog_stats(
    facts: TicketFacts, groups: IntArray, n_groups: int, as_of: float, bounds: FloatArray
) -> BacklogStats:
    """The backlog has no window: it is the state at as_of."""
    age = histogram_by_group(groups, facts.opened, as_of, facts.backlog, n_groups, bounds)
    return BacklogStats(tickets=age.counts, age=age)
