"""The watermelon effect: resolution SLA green on the outside, customers red on the inside."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from itsm_exporter.collectors.arrays import BoolArray, FloatArray, ratio
from itsm_exporter.collectors.surveys import SurveyWindowStats
from itsm_exporter.collectors.tickets import TicketWindowStats
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
