"""Domain metrics of docs/metrics.md as pure functions of (frames, as_of, config): no I/O, no reading of the time.

`compute_metrics` only orchestrates: ticket facts and responses, the grouping step, the window loop, the
state at as_of, then each concern's families (in the order of the exposition). A concern module owns
the families it computes: their names, HELP texts and how they are built.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from prometheus_client.core import Metric

from itsm_exporter.collectors import calendars, drilldown, impact, live, surveys, targets, tickets, watermelon
from itsm_exporter.collectors.arrays import BoolArray, FloatArray, IntArray
from itsm_exporter.collectors.durations import WALL_CLOCK, Clock, Durations
from itsm_exporter.collectors.facts import TicketFacts, ticket_facts
from itsm_exporter.collectors.families import FamilyBuilder
from itsm_exporter.collectors.labels import Grouping, grouping, segment_values
from itsm_exporter.collectors.surveys import Responses, SurveyWindowStats, load_responses, survey_window_stats
from itsm_exporter.collectors.tickets import (
    BusinessDurations,
    TicketWindowStats,
    backlog_age,
    backlog_stats,
    ticket_window_stats,
    window_durations,
)
from itsm_exporter.collectors.windows import Window, configured_windows, earlier_periods, longest
from itsm_exporter.config import Config
from itsm_exporter.frames import Frames
from itsm_exporter.records import utc

__all__ = ["compute_metrics", "refresh_note"]


def refresh_note(config: Config) -> str:
    """The sentence every HELP text ends with: values are a cached snapshot, not a live upstream read."""
    return (
        f"Cached: recomputed every {config.refresh_interval} (refresh_interval) from the local store, "
        "not fetched from the ITSM at scrape time."
    )


def compute_metrics(frames: Frames, as_of: datetime, config: Config, *, clock: Clock = WALL_CLOCK) -> list[Metric]:
    """Every domain metric of docs/metrics.md at `as_of` for the enabled sources (not the exporter-health ones);
    every duration is measured on `clock` (collectors/durations.py), and where a calendar applies (calendars:)
    the durations of the business-time families on its business clock too."""
    now = utc(as_of).timestamp()
    names = tuple(source.name for source in config.enabled_sources)
    windows = configured_windows(config)
    widest = longest(windows)
    bounds = np.asarray(config.buckets, dtype=np.float64)
    facts = ticket_facts(frames.tickets, names, now)
    responses = load_responses(
        frames.surveys, frames.answers, frames.questions, facts, names, config, frames.tables["survey_segments"],
        frames.parent_rows.get("answers"),
    )  # fmt: skip
    segments = segment_values(
        frames.tables["ticket_segments"], facts.source, facts.frame["id"].to_numpy(dtype=object), names,
        config.segment_labels, _on_facts(frames.parent_rows.get("ticket_segments"), facts),
    )  # fmt: skip
    groups = grouping(
        facts, responses, names, config.group_by, widest.contains(facts.opened, now), config.max_label_values,
        segments, _segment_sources(config, names),
    )  # fmt: skip
    durations = Durations(facts, clock, now)
    periods = earlier_periods(config.trends)
    # The published windows first, then each window over each earlier period (the same length, ending earlier).
    pairs = [(w, now) for w in windows] + [(w, period.end(w, now)) for period in periods for w in windows]
    ticket_stats, survey_stats = _window_loop(facts, responses, groups, durations, pairs, bounds)
    n = len(windows)
    ticket_windows, survey_windows = ticket_stats[:n], survey_stats[:n]
    earlier_tickets = [ticket_stats[n * (i + 1) : n * (i + 2)] for i in range(len(periods))]
    earlier_surveys = [survey_stats[n * (i + 1) : n * (i + 2)] for i in range(len(periods))]
    # What to fix first, over the longest window's responses (collectors/impact.py).
    priorities = (
        impact.impact_stats(responses, groups, names, widest, now, config.impact) if config.impact.enabled else None
    )
    backlog = backlog_stats(facts, groups.ticket_groups, groups.size, durations, bounds)
    state = live.live_stats(
        facts, frames.sla_clocks, names, groups.ticket_groups, groups.size, now, durations, bounds, config.targets
    )
    on_calendars = calendars.ticket_calendars(facts, names, config)
    business, business_awaiting = None, None
    if on_calendars.any:
        business_durations = Durations(facts, calendars.business_clock(facts, on_calendars, config, now), now)
        business = BusinessDurations(
            windows=[
                window_durations(facts, groups.ticket_groups, groups.size, w, now, business_durations, bounds)
                for w in windows
            ],
            backlog_age=backlog_age(facts, groups.ticket_groups, groups.size, business_durations, bounds),
        )
        business_awaiting = live.awaiting_age(
            facts, groups.ticket_groups, groups.size, now, business_durations, state.awaiting_bounds
        )
    # A label set is shown where the longest window or the backlog has something about it.
    active = ticket_windows[windows.index(widest)]
    ticket_present = (active.opened + active.resolved + active.first_responded + backlog.tickets) > 0
    survey_present = ticket_present | (survey_windows[windows.index(widest)].responses > 0)
    sources_surveyed = np.bincount(responses.source[responses.submitted <= now], minlength=len(names)) > 0
    build = FamilyBuilder(
        groups.label_names, groups.label_values, windows, refresh_note(config), groups.set_names, groups.visible
    )
    return [
        *tickets.families(build, ticket_windows, backlog, ticket_present, bounds, business),
        *live.families(
            build, state, ticket_present, live.live_sources(names, config)[groups.sources], business_awaiting
        ),
        *tickets.reliability_families(build, ticket_windows, ticket_present),
        *surveys.families(build, ticket_windows, survey_windows, survey_present, sources_surveyed[groups.sources]),
        *tickets.complaint_families(build, ticket_windows, ticket_present, bounds, business),
        *watermelon.families(build, ticket_windows, survey_windows, config.targets, config.min_responses),
        *targets.families(names, config.targets, build.note),
        *([calendars.calendar_family(build, on_calendars, groups.ticket_groups, ticket_present)] if business else []),
        *drilldown.families(config, names, build.note),
        surveys.mapping_family(responses, names, widest, now, build.note),
        *tickets.earlier_families(build, periods, earlier_tickets, ticket_present),
        *surveys.earlier_families(build, periods, earlier_surveys, survey_present),
        *watermelon.earlier_families(
            build, periods, earlier_tickets, earlier_surveys, survey_present, config.targets, config.min_responses
        ),
        *(impact.families(priorities, groups.label_names, widest, build.note) if priorities is not None else []),
    ]


def _on_facts(parent_rows: IntArray | None, facts: TicketFacts) -> IntArray | None:
    """Child rows' parent rows in the tickets frame, as rows of the facts (which leave out unconfigured sources)."""
    if parent_rows is None or facts.row_of_frame is None:
        return parent_rows
    on_facts: IntArray = np.where(parent_rows >= 0, facts.row_of_frame[parent_rows], -1)
    return on_facts


def _segment_sources(config: Config, names: tuple[str, ...]) -> dict[str, BoolArray]:
    """For each segment of group_by, the sources (by index) that define it, or whose responses a source that
    defines it reports (a CSV export's `ticket_source`): the others have no series in its view."""
    defined: dict[str, BoolArray] = {}
    for segment in config.segment_labels:
        mine = {s.name for s in config.enabled_sources if segment in s.segments}
        mine |= {other for s in config.enabled_sources if s.name in mine for other in s.referenced_sources().values()}
        defined[segment] = np.array([name in mine for name in names], dtype=bool)
    return defined


def _window_loop(
    facts: TicketFacts,
    responses: Responses,
    groups: Grouping,
    durations: Durations,
    periods: Sequence[tuple[Window, float]],
    bounds: FloatArray,
) -> tuple[list[TicketWindowStats], list[SurveyWindowStats]]:
    """Every windowed count, per (window, end) period: the events in (end - window, end]. The published windows
    end at as_of; a previous period of the same length is the same window ending `window` earlier."""
    ticket_windows = [
        ticket_window_stats(facts, groups.ticket_groups, groups.size, window, end, durations, bounds)
        for window, end in periods
    ]
    survey_windows = [
        survey_window_stats(responses, groups.survey_groups, groups.size, window, end) for window, end in periods
    ]
    return ticket_windows, survey_windows
