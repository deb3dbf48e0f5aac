"""The watermelon effect: resolution SLA green on the outside, customers red on the inside."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client.core import Metric

from itsm_exporter.collectors.arrays import BoolArray, FloatArray, ratio
from itsm_exporter.collectors.families import FamilyBuilder, Part
from itsm_exporter.collectors.surveys import SurveyWindowStats
from itsm_exporter.collectors.tickets import TicketWindowStats
from itsm_exporter.collectors.windows import Period
from itsm_exporter.config import Targets


@dataclass(frozen=True)
class Watermelon:
    """Per label set of one window; `present` marks where both sides exist with enough responses."""

    present: BoolArray
    gap: FloatArray
    flag: FloatArray


def watermelon(
    tickets: TicketWindowStats, surveys: SurveyWindowStats, targets: Targets, min_responses: int
) -> Watermelon:
    """gap = resolution SLA met ratio - satisfied ratio; flag when SLA meets its target but satisfaction does not."""
    met = tickets.sla[("resolution", "met")]
    sla_ratio = ratio(met, met + tickets.sla[("resolution", "breached")])
    satisfied_ratio = surveys.satisfied_ratio
    present = ~np.isnan(sla_ratio) & (surveys.rated >= min_responses)
    gap = np.where(present, sla_ratio - satisfied_ratio, np.nan)
    flag = np.where(
        present, ((sla_ratio >= targets.sla) & (satisfied_ratio < targets.satisfaction)).astype(np.float64), np.nan
    )
    return Watermelon(present=present, gap=gap, flag=flag)


def families(
    build: FamilyBuilder,
    tickets: list[TicketWindowStats],
    surveys: list[SurveyWindowStats],
    targets: Targets,
    min_responses: int,
) -> list[Metric]:
    """The verdict and its gap per window."""
    melons = [watermelon(t, s, targets, min_responses) for t, s in zip(tickets, surveys, strict=True)]
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


def earlier_families(
    build: FamilyBuilder,
    periods: Sequence[Period],
    tickets: Sequence[list[TicketWindowStats]],
    surveys: Sequence[list[SurveyWindowStats]],
    present: BoolArray,
    targets: Targets,
    min_responses: int,
) -> list[Metric]:
    """The watermelon gap of each window over each earlier period, for the label sets shown now."""
    if not periods:
        return []
    parts = []
    for period, period_tickets, period_surveys in zip(periods, tickets, surveys, strict=True):
        melons = [watermelon(t, s, targets, min_responses) for t, s in zip(period_tickets, period_surveys, strict=True)]
        parts.append(Part((period.name,), [m.gap for m in melons], [m.present & present for m in melons]))
    return [
        build.gauge(
            "itsm_earlier_watermelon_gap_ratio",
            "Resolution SLA met ratio - satisfied ratio in a period of the window's length ending earlier (period: "
            "previous = just before the window, year_ago = 365 days before it), where the SLA has results and at "
            "least min_responses responses have an overall score; from the store.",
            parts,
            ("period",),
        )
    ]
