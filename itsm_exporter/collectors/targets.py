"""The configured targets, published beside the metrics they judge so that rules and panels read them."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from itsm_exporter.config import Targets


def families(names: tuple[str, ...], targets: Targets, note: str) -> list[Metric]:
    """The ratio and the time targets per source, and the yearly improvement target."""
    return [
        _targets(
            "itsm_target_ratio",
            "Configured targets by objective (sla, satisfaction).",
            names,
            {"sla": targets.sla, "satisfaction": targets.satisfaction},
            note,
        ),
        _targets(
            "itsm_target_seconds",
            "Configured time targets by objective (first_response, sla_warning).",
            names,
            {"first_response": targets.first_response.seconds, "sla_warning": targets.sla_warning.seconds},
            note,
        ),
        _targets(
            "itsm_target_improvement_ratio",
            "Configured rise a year by objective (satisfaction: targets.satisfaction_improvement), over the baseline "
            'of the same window a year earlier (itsm_earlier_survey_satisfied_ratio{period="year_ago"}).',
            names,
            {"satisfaction": targets.satisfaction_improvement},
            note,
        ),
    ]


def _targets(name: str, doc: str, names: tuple[str, ...], objectives: dict[str, float], note: str) -> GaugeMetricFamily:
    """A configured target per source and objective (the same for every source: `targets` is global)."""
    family = GaugeMetricFamily(name, f"{doc} {note}", labels=["source", "objective"])
    for source in names:
        for objective, value in objectives.items():
            family.add_metric([source, objective], value)
    return family
