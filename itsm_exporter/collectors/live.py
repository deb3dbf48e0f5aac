"""What needs action at as_of: backlog tickets still waiting for a first response, and running SLA clocks;
which sources tell them, and their metric families.

No window: like the backlog, these are the state at the evaluation time. A clock is evaluated from
what the sync stored (records.SlaClock), so any as_of after the sync gives the state then: a clock
that was `within` at the sync is `at_risk` once as_of comes within `targets.sla_warning` of its breach
time, and `breached` from its breach time on. An as_of before the sync sees the clocks as stored at
the sync (a clock paused since, or started since, is shown as it is now): docs/metrics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from prometheus_client.core import Metric

from itsm_exporter.collectors.arrays import BoolArray, FloatArray, IntArray, count_by_group, lookup, positions_in
from itsm_exporter.collectors.calendars import BUSINESS_NOTE
from itsm_exporter.collectors.durations import Durations
from itsm_exporter.collectors.facts import SLAS, TicketFacts
from itsm_exporter.collectors.families import FamilyBuilder, Part
from itsm_exporter.collectors.histograms import GroupHistograms, histogram_by_group
from itsm_exporter.config import Config, Targets
from itsm_exporter.kinds import capabilities

CLOCK_STATES: Final = ("within", "at_risk", "breached", "paused")
"""Values of itsm_sla_running_tickets' `state`, in this order."""
_WITHIN, _AT_RISK, _BREACHED, _PAUSED = range(len(CLOCK_STATES))


@dataclass(frozen=True)
class LiveStats:
    """Per label set: tickets awaiting a first response with their ages, SLA clocks by state, time to breach."""

    awaiting: GroupHistograms
    clocks: dict[tuple[str, str], IntArray]
    """(sla, state) -> backlog tickets whose clock of that SLA is in that state."""
    time_to_breach: dict[str, GroupHistograms]
    awaiting_bounds: FloatArray
    """The histogram bounds and targets.first_response."""
    breach_bounds: FloatArray
    """The histogram bounds and targets.sla_warning."""


def with_bound(bounds: FloatArray, bound: float) -> FloatArray:
    """The histogram bounds with `bound` added (a target must be a bucket bound for its alert to be exact)."""
    merged: FloatArray = np.unique(np.append(bounds, bound))
    return merged


def clock_states(
    breach_at: FloatArray, paused: np.ndarray, upstream_breached: np.ndarray, as_of: float, warning: float
) -> IntArray:
    """Index into CLOCK_STATES of each clock at as_of, -1 when it cannot be told (running, no breach time).

    Paused wins: a paused clock's breach time is stale until it resumes (ServiceNow moves
    planned_end_time on resume). Exactly at the breach time a clock is breached; exactly
    `warning` before it, at risk.
    """
    known = np.isfinite(breach_at)
    left = breach_at - as_of
    breached = np.where(known, left <= 0, upstream_breached)
    states: IntArray = np.select(
        [paused, breached, known & (left <= warning), known],
        [_PAUSED, _BREACHED, _AT_RISK, _WITHIN],
        default=-1,
    ).astype(np.int64)
    return states


def live_stats(
    facts: TicketFacts,
    clocks: pd.DataFrame,
    names: tuple[str, ...],
    groups: IntArray,
    n_groups: int,
    as_of: float,
    durations: Durations,
    bounds: FloatArray,
    targets: Targets,
) -> LiveStats:
    warning = targets.sla_warning.seconds
    awaiting_bounds = with_bound(bounds, targets.first_response.seconds)
    breach_bounds = with_bound(bounds, warning)
    ages = awaiting_age(facts, groups, n_groups, as_of, durations, awaiting_bounds)
    # Clocks count for backlog tickets only, so only those are hashed: a tenth of a million ids, not all
    # of them (hashing every ticket id cost the 1M-ticket snapshot 0.2 s, bench/collectors.py).
    backlog_rows = np.flatnonzero(facts.backlog)
    found = lookup(
        facts.source[backlog_rows],
        facts.frame["id"].to_numpy(dtype=object)[backlog_rows],
        positions_in(clocks["source"], names),
        clocks["ticket_id"].to_numpy(dtype=object),
    )
    of_backlog = found >= 0
    rows = np.where(of_backlog, backlog_rows[np.maximum(found, 0)] if len(backlog_rows) else 0, -1)
    breach_at = clocks["breach_at"].to_numpy(dtype=np.float64)
    states = clock_states(
        breach_at,
        clocks["paused"].to_numpy(dtype=bool),
        clocks["breached"].to_numpy(dtype=bool),
        as_of,
        warning,
    )
    picked = groups[np.maximum(rows, 0)]
    clock_groups = np.where(of_backlog[:, np.newaxis] if picked.ndim > 1 else of_backlog, picked, 0)
    sla = clocks["sla"].to_numpy(dtype=object)
    counts: dict[tuple[str, str], IntArray] = {}
    to_breach: dict[str, GroupHistograms] = {}
    for name in SLAS:
        mine = of_backlog & (sla == name)
        for index, state in enumerate(CLOCK_STATES):
            selected = mine & (states == index)
            counts[(name, state)] = count_by_group(clock_groups, selected, n_groups).astype(np.int64)
        running = mine & ((states == _WITHIN) | (states == _AT_RISK))
        to_breach[name] = histogram_by_group(
            clock_groups, durations.time_to_breach(breach_at, rows, running), n_groups, breach_bounds
        )
    return LiveStats(
        awaiting=ages,
        clocks=counts,
        time_to_breach=to_breach,
        awaiting_bounds=awaiting_bounds,
        breach_bounds=breach_bounds,
    )


def awaiting_age(
    facts: TicketFacts, groups: IntArray, n_groups: int, as_of: float, durations: Durations, bounds: FloatArray
) -> GroupHistograms:
    """The age of the backlog tickets still waiting for a first response at as_of, on the clock of `durations`."""
    awaiting = facts.backlog & ~(facts.first_response <= as_of)  # NaN (no response yet) compares False
    return histogram_by_group(groups, durations.age(awaiting), n_groups, bounds)


def live_sources(names: tuple[str, ...], config: Config) -> BoolArray:
    """Sources whose upstream tells first responses and running SLA clocks (their kind's `live_state`
    capability): the others' live series are absent rather than a backlog that seems to wait for an answer."""
    return np.array([capabilities(config.source(name)).live_state for name in names], dtype=bool)


def families(
    build: FamilyBuilder,
    live: LiveStats,
    present: BoolArray,
    clocked: BoolArray,
    business_awaiting: GroupHistograms | None,
) -> list[Metric]:
    """The live families; `clocked` marks the label sets of live sources (the others have none). Where a calendar
    applies, the awaiting tickets' age in business time (`business_awaiting`) comes right after the wall clock's."""
    shown = present & clocked
    state_parts = [Part((sla, state), [live.clocks[(sla, state)]], [shown]) for sla in SLAS for state in CLOCK_STATES]
    awaiting = _of_live_sources(live.awaiting, clocked)
    business = (
        []
        if business_awaiting is None
        else [
            build.histogram(
                "itsm_awaiting_first_response_business_age_seconds",
                "Age (evaluation time - opened) of the backlog tickets still waiting for a first response (no "
                f"window); targets.first_response is always a bucket bound. {BUSINESS_NOTE}",
                [_of_live_sources(business_awaiting, clocked)],
                live.awaiting_bounds,
                windowed=False,
            )
        ]
    )
    return [
        build.unwindowed_gauge(
            "itsm_awaiting_first_response_tickets",
            "Backlog tickets with no first response at evaluation time (no window).",
            awaiting.counts,
            shown,
        ),
        build.histogram(
            "itsm_awaiting_first_response_age_seconds",
            "Age (evaluation time - opened) of the backlog tickets still waiting for a first response (no "
            "window); targets.first_response is always a bucket bound.",
            [awaiting],
            live.awaiting_bounds,
            windowed=False,
        ),
        *business,
        build.state_gauge(
            "itsm_sla_running_tickets",
            "Backlog tickets by the state of their running response or resolution SLA clock at evaluation time: "
            "within, at_risk (breach within targets.sla_warning), breached (past its breach time), paused.",
            state_parts,
            ("sla", "state"),
        ),
        build.histogram(
            "itsm_sla_time_to_breach_seconds",
            "Time left before the breach of the running, unpaused, unbreached SLA clocks of the backlog, by SLA "
            "(no window); targets.sla_warning is always a bucket bound.",
            [live.time_to_breach[sla] for sla in SLAS],
            live.breach_bounds,
            windowed=False,
            by=("sla", SLAS),
        ),
    ]


def _of_live_sources(histograms: GroupHistograms, clocked: BoolArray) -> GroupHistograms:
    """The histograms of live sources' label sets only: the others' are emptied, so they get no series."""
    return GroupHistograms(
        cumulative=np.where(clocked[:, np.newaxis], histograms.cumulative, 0),
        sums=np.where(clocked, histograms.sums, 0.0),
    )
