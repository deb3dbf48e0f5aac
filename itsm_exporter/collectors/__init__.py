"""Domain metrics of docs/metrics.md as pure functions of (frames, as_of, config): no I/O, no reading of the time."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from prometheus_client.core import GaugeMetricFamily, Metric

from itsm_exporter.collectors.arrays import BoolArray, ratio
from itsm_exporter.collectors.durations import WALL_CLOCK, Clock, Durations
from itsm_exporter.collectors.facts import OUTCOMES, SLAS, ticket_facts
from itsm_exporter.collectors.families import FamilyBuilder, Part
from itsm_exporter.collectors.histograms import GroupHistograms
from itsm_exporter.collectors.labels import build_grouping, capped_label
from itsm_exporter.collectors.live import CLOCK_STATES, LiveStats, live_stats, with_bound
from itsm_exporter.collectors.surveys import (
    MAPPING_ROLES,
    PERCEPTION_DIMENSIONS,
    Responses,
    SurveyWindowStats,
    load_responses,
    survey_window_stats,
)
from itsm_exporter.collectors.tickets import TicketWindowStats, backlog_stats, ticket_window_stats
from itsm_exporter.collectors.watermelon import watermelon
from itsm_exporter.collectors.windows import Window, configured_windows, longest
from itsm_exporter.config import DIMENSIONS, Config, DemoSource, JiraSource
from itsm_exporter.frames import Frames
from itsm_exporter.records import utc

__all__ = ["compute_metrics", "refresh_note"]

TRUST_COST = 12
"""One bad experience costs twelve good ones (itsm_trust_balance)."""


def refresh_note(config: Config) -> str:
    """The sentence every HELP text ends with: values are a cached snapshot, not a live upstream read."""
    return (
        f"Cached: recomputed every {config.refresh_interval} (refresh_interval) from the local store, "
        "not fetched from the ITSM at scrape time."
    )


def compute_metrics(frames: Frames, as_of: datetime, config: Config, *, clock: Clock = WALL_CLOCK) -> list[Metric]:
    """Every domain metric of docs/metrics.md at `as_of` for the enabled sources (not the exporter-health ones);
    every duration is measured on `clock` (collectors/durations.py)."""
    now = utc(as_of).timestamp()
    names = tuple(source.name for source in config.enabled_sources)
    windows = configured_windows(config)
    bounds = np.asarray(config.buckets, dtype=np.float64)
    facts = ticket_facts(frames.tickets, names, now)
    volume = longest(windows).contains(facts.opened, now)
    labels = [
        capped_label(facts.frame[name], facts.source, len(names), volume, config.max_label_values)
        for name in config.group_by
    ]
    responses = load_responses(frames.surveys, frames.answers, frames.questions, facts, names, config)
    grouping = build_grouping(names, labels, facts.source, responses.source, responses.ticket_rows)
    size = grouping.size
    durations = Durations(facts, clock, now)
    tickets = [ticket_window_stats(facts, grouping.ticket_groups, size, w, now, durations, bounds) for w in windows]
    surveys = [survey_window_stats(responses, grouping.survey_groups, size, w, now) for w in windows]
    backlog = backlog_stats(facts, grouping.ticket_groups, size, durations, bounds)
    awaiting_bounds = with_bound(bounds, config.targets.first_response.seconds)
    breach_bounds = with_bound(bounds, config.targets.sla_warning.seconds)
    live = live_stats(
        facts,
        frames.sla_clocks,
        names,
        grouping.ticket_groups,
        size,
        now,
        durations,
        awaiting_bounds,
        breach_bounds,
        config.targets.sla_warning.seconds,
    )
    widest = windows.index(longest(windows))
    active = tickets[widest]
    ticket_present = (active.opened + active.resolved + active.first_responded + backlog.tickets) > 0
    survey_present = ticket_present | (surveys[widest].responses > 0)
    sources_surveyed = np.bincount(responses.source[responses.submitted <= now], minlength=len(names)) > 0
    build = FamilyBuilder(["source", *config.group_by], grouping.label_values, windows, refresh_note(config))
    families: list[Metric] = [
        *_ticket_families(build, tickets, ticket_present, bounds),
        build.unwindowed_gauge(
            "itsm_backlog_tickets",
            "Tickets neither resolved, closed nor canceled at evaluation time (no window).",
            backlog.tickets,
            ticket_present,
        ),
        build.histogram(
            "itsm_backlog_age_seconds",
            "Age (evaluation time - opened) of the backlog tickets (no window).",
            [backlog.age],
            bounds,
            windowed=False,
        ),
        *_live_families(
            build, live, ticket_present, _live_sources(names, config)[grouping.sources], awaiting_bounds, breach_bounds
        ),
        *_reliability_families(build, tickets, ticket_present),
        *_survey_families(build, tickets, surveys, survey_present, sources_surveyed[grouping.sources]),
        *_complaint_families(build, tickets, ticket_present, bounds),
        *_watermelon_families(build, tickets, surveys, config),
        _targets(
            "itsm_target_ratio",
            "Configured targets by objective (sla, satisfaction).",
            names,
            {"sla": config.targets.sla, "satisfaction": config.targets.satisfaction},
            build.note,
        ),
        _targets(
            "itsm_target_seconds",
            "Configured time targets by objective (first_response, sla_warning).",
            names,
            {
                "first_response": config.targets.first_response.seconds,
                "sla_warning": config.targets.sla_warning.seconds,
            },
            build.note,
        ),
        _mapping_answers(responses, names, longest(windows), now, build.note),
    ]
    return families


def _ticket_families(
    build: FamilyBuilder, tickets: list[TicketWindowStats], present: BoolArray, bounds: np.ndarray
) -> list[Metric]:
    shown = [present] * len(tickets)
    sla_parts = [
        Part((sla, outcome), [t.sla[(sla, outcome)] for t in tickets], shown) for sla in SLAS for outcome in OUTCOMES
    ]
    ratio_parts = []
    for sla in SLAS:
        judged = [t.sla[(sla, "met")] + t.sla[(sla, "breached")] for t in tickets]
        met = [ratio(t.sla[(sla, "met")], total) for t, total in zip(tickets, judged, strict=True)]
        ratio_parts.append(Part((sla,), met, [total > 0 for total in judged]))
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
        build.histogram(
            "itsm_resolution_time_seconds",
            "Resolved - opened of the tickets resolved in the window.",
            [t.resolution for t in tickets],
            bounds,
        ),
        build.histogram(
            "itsm_first_response_time_seconds",
            "First response - opened of the tickets first answered in the window.",
            [t.first_response for t in tickets],
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
    ]


def _live_sources(names: tuple[str, ...], config: Config) -> BoolArray:
    """Sources whose upstream tells first responses and running SLA clocks: Jira, the demo and ServiceNow
    with `sla_source: task_sla`. ServiceNow with `made_sla` has neither (no incident field holds the first
    response, and an outcome is no clock), so its live series are absent rather than a backlog that seems
    to wait for an answer; a csv source has no tickets."""
    has: list[bool] = []
    for name in names:
        source = config.source(name)
        has.append(isinstance(source, JiraSource | DemoSource) or getattr(source, "sla_source", "") == "task_sla")
    return np.array(has, dtype=bool)


def _live_families(
    build: FamilyBuilder,
    live: LiveStats,
    present: BoolArray,
    clocked: BoolArray,
    awaiting_bounds: np.ndarray,
    breach_bounds: np.ndarray,
) -> list[Metric]:
    shown = present & clocked
    state_parts = [Part((sla, state), [live.clocks[(sla, state)]], [shown]) for sla in SLAS for state in CLOCK_STATES]
    awaiting = GroupHistograms(
        cumulative=np.where(clocked[:, np.newaxis], live.awaiting.cumulative, 0),
        sums=np.where(clocked, live.awaiting.sums, 0.0),
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
            awaiting_bounds,
            windowed=False,
        ),
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
            breach_bounds,
            windowed=False,
            by=("sla", SLAS),
        ),
    ]


def _reliability_families(build: FamilyBuilder, tickets: list[TicketWindowStats], present: BoolArray) -> list[Metric]:
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


def _survey_families(
    build: FamilyBuilder,
    tickets: list[TicketWindowStats],
    surveys: list[SurveyWindowStats],
    present: BoolArray,
    surveyed: BoolArray,
) -> list[Metric]:
    """Survey families; `surveyed` marks label sets whose source has any response, so that a source
    without surveys gets no response ratio of 0."""
    shown = [present] * len(surveys)
    score_parts = [
        Part(
            (dimension,),
            [ratio(s.perception_sums[:, d], s.perception_counts[:, d]) for s in surveys],
            [s.perception_counts[:, d] > 0 for s in surveys],
        )
        for d, dimension in enumerate(PERCEPTION_DIMENSIONS)
    ]
    gap_parts = []
    for e, dimension in enumerate(DIMENSIONS):
        d = PERCEPTION_DIMENSIONS.index(dimension)
        gaps = [
            ratio(s.perception_sums[:, d], s.perception_counts[:, d])
            - ratio(s.expectation_sums[:, e], s.expectation_counts[:, e])
            for s in surveys
        ]
        both = [(s.perception_counts[:, d] > 0) & (s.expectation_counts[:, e] > 0) for s in surveys]
        gap_parts.append(Part((dimension,), gaps, both))
    return [
        build.gauge(
            "itsm_survey_responses",
            "Survey responses submitted in the window.",
            [Part((), [s.responses for s in surveys], shown)],
        ),
        build.gauge(
            "itsm_survey_satisfied_responses",
            "Responses of the window whose normalized overall score is >= 0.75.",
            [Part((), [s.satisfied for s in surveys], shown)],
        ),
        build.gauge(
            "itsm_survey_dissatisfied_responses",
            "Responses of the window whose normalized overall score is <= 0.25.",
            [Part((), [s.dissatisfied for s in surveys], shown)],
        ),
        build.gauge(
            "itsm_survey_satisfied_ratio",
            "Satisfied / responses with an overall answer, in the window.",
            [Part((), [s.satisfied_ratio for s in surveys], [s.rated > 0 for s in surveys])],
        ),
        build.gauge(
            "itsm_survey_score",
            "Mean normalized (0..1) score of the responses of the window, by dimension.",
            score_parts,
            ("dimension",),
        ),
        build.gauge(
            "itsm_servqual_gap",
            "SERVQUAL gap: mean perception - mean expectation score in the window (negative = below).",
            gap_parts,
            ("dimension",),
        ),
        build.gauge(
            "itsm_trust_balance",
            f"Satisfied - {TRUST_COST} x dissatisfied responses in the window.",
            [Part((), [s.satisfied - TRUST_COST * s.dissatisfied for s in surveys], shown)],
        ),
        build.gauge(
            "itsm_survey_response_ratio",
            "Survey responses / tickets resolved, same window and labels (sources with surveys only).",
            [
                Part(
                    (),
                    [ratio(s.responses, t.resolved) for s, t in zip(surveys, tickets, strict=True)],
                    [(t.resolved > 0) & surveyed for t in tickets],
                )
            ],
        ),
    ]


def _complaint_families(
    build: FamilyBuilder, tickets: list[TicketWindowStats], present: BoolArray, bounds: np.ndarray
) -> list[Metric]:
    return [
        build.gauge(
            "itsm_complaints_opened",
            "Complaints (tickets matching the source's complaints rule) opened in the window.",
            [Part((), [t.complaints_opened for t in tickets], [present] * len(tickets))],
        ),
        build.histogram(
            "itsm_complaint_resolution_time_seconds",
            "Resolved - opened of the complaints resolved in the window.",
            [t.complaint_resolution for t in tickets],
            bounds,
        ),
    ]


def _watermelon_families(
    build: FamilyBuilder, tickets: list[TicketWindowStats], surveys: list[SurveyWindowStats], config: Config
) -> list[Metric]:
    melons = [watermelon(t, s, config.targets, config.min_responses) for t, s in zip(tickets, surveys, strict=True)]
    enough = "where the resolution SLA has results and at least min_responses responses have an overall score."
    return [
        build.gauge(
            "itsm_watermelon_gap_ratio",
            f"Resolution SLA met ratio - satisfied ratio (positive = greener outside than inside), {enough}",
            [Part((), [m.gap for m in melons], [m.present for m in melons])],
        ),
        build.gauge(
            "itsm_watermelon",
            f"1 when the resolution SLA ratio >= targets.sla and the satisfied ratio < targets.satisfaction, else 0, "
            f"{enough}",
            [Part((), [m.flag for m in melons], [m.present for m in melons])],
        ),
    ]


def _mapping_answers(responses: Responses, names: tuple[str, ...], window: Window, now: float, note: str) -> Metric:
    """Answers in the longest window by the role of their question, per source whose mapping applies.

    Every source and role is present, zeros included: `overall` at 0 beside answers elsewhere is the
    signature of a misnamed question (alerts/itsm-exporter.alerts.yaml, ITSMSurveyOverallUnmapped).
    """
    counted = window.contains(responses.submitted, now)
    own = responses.own_source[counted]
    by_role = responses.answers_by_role[counted]
    totals = np.stack(
        [np.bincount(own, weights=by_role[:, column], minlength=len(names)) for column in range(len(MAPPING_ROLES))],
        axis=1,
    )
    family = GaugeMetricFamily(
        "itsm_survey_mapping_answers",
        f"Answers of the responses submitted in the longest window ({window.name}), by the role their question "
        f"plays in the source's survey mapping: overall, dimension, expectation or unmapped. {note}",
        labels=["source", "role"],
    )
    for index, name in enumerate(names):
        for column, role in enumerate(MAPPING_ROLES):
            family.add_metric([name, role], float(totals[index, column]))
    return family


def _targets(name: str, doc: str, names: tuple[str, ...], objectives: dict[str, float], note: str) -> GaugeMetricFamily:
    """A configured target per source and objective (the same for every source: `targets` is global)."""
    family = GaugeMetricFamily(name, f"{doc} {note}", labels=["source", "objective"])
    for source in names:
        for objective, value in objectives.items():
            family.add_metric([source, objective], value)
    return family
