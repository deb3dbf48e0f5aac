"""The straightforward way: one Python loop over tickets and one over survey answers.

This is the baseline the vectorized collectors are measured against, and an independent second
implementation of docs/metrics.md that their output is checked against, sample by sample. It computes
every windowed ticket, survey, complaint and watermelon metric and the backlog, for group_by
[group] without a label cap (the benchmark keeps every group under `max_label_values`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

from itsm_exporter.config import DIMENSIONS, Config
from itsm_exporter.frames import Frames

Key = tuple[str, frozenset[tuple[str, str]]]
SATISFIED, DISSATISFIED, TRUST_COST = 0.75, 0.25, 12


def _nan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def reference_metrics(frames: Frames, as_of: datetime, config: Config) -> dict[Key, float]:
    """(sample name, labels) -> value, computed row by row."""
    now = as_of.timestamp()
    bounds = [*config.buckets, math.inf]
    out: dict[Key, float] = {}

    def put(name: str, value: float, **labels: str) -> None:
        out[(name, frozenset(labels.items()))] = value

    def histogram(name: str, values: list[float], **labels: str) -> None:
        if not values:
            return  # a gauge histogram series exists only with at least one observation
        for bound in bounds:
            le = "+Inf" if bound == math.inf else str(bound)
            put(f"{name}_bucket", sum(1 for v in values if v <= bound), le=le, **labels)
        put(f"{name}_gcount", len(values), **labels)
        put(f"{name}_gsum", sum(values), **labels)

    ticket_rows = frames.tickets.to_dict("records")
    group_of: dict[tuple[str, str], str] = {}
    backlog_ages: dict[tuple[str, str], list[float]] = defaultdict(list)
    for t in ticket_rows:
        group = t["group"] if isinstance(t["group"], str) else "unassigned"
        group_of[(t["source"], t["id"])] = group
        resolved = t["resolved_at"]
        if _nan(resolved) and t["state"] == "closed":
            resolved = t["closed_at"]
        open_state = t["state"] in ("open", "on_hold") or (not _nan(resolved) and resolved > now)
        if t["state"] != "canceled" and t["opened_at"] <= now and open_state:
            backlog_ages[(t["source"], group)].append(max(now - t["opened_at"], 0.0))

    roles = config.sources[0].surveys.question_roles()
    for window in config.windows:
        start = now - window.seconds
        w = str(window)
        stats: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        resolution: dict[tuple[str, str], list[float]] = defaultdict(list)
        first_response: dict[tuple[str, str], list[float]] = defaultdict(list)
        complaint_resolution: dict[tuple[str, str], list[float]] = defaultdict(list)
        for t in ticket_rows:
            key = (t["source"], group_of[(t["source"], t["id"])])
            canceled = t["state"] == "canceled"
            s = stats[key]
            if start < t["opened_at"] <= now:
                s["opened"] += 1
                if t["complaint"]:
                    s["complaints"] += 1
            if canceled:
                continue
            if not _nan(t["first_response_at"]) and start < t["first_response_at"] <= now:
                first_response[key].append(max(t["first_response_at"] - t["opened_at"], 0.0))
            resolved = t["resolved_at"]
            if _nan(resolved) and t["state"] == "closed":
                resolved = t["closed_at"]
            if _nan(resolved) or not start < resolved <= now:
                continue
            s["resolved"] += 1
            duration = max(resolved - t["opened_at"], 0.0)
            resolution[key].append(duration)
            if t["complaint"]:
                complaint_resolution[key].append(duration)
            s["reopened"] += t["reopens"] > 0
            s["first_contact"] += t["reopens"] == 0 and t["reassignments"] == 0
            s["reassignments"] += t["reassignments"]
            for sla in ("response", "resolution"):
                outcome = t[f"sla_{sla}"]
                if outcome in ("met", "breached"):
                    s[f"{sla}_{outcome}"] += 1

        survey_sums: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        survey_stats: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        submitted = {
            (r["source"], r["id"]): r for r in frames.surveys.to_dict("records") if start < r["submitted_at"] <= now
        }
        per_response: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for a in frames.answers.to_dict("records"):
            response = submitted.get((a["source"], a["survey_id"]))
            if response is None or a["question_id"] not in roles:
                continue
            role, dimension = roles[a["question_id"]]
            span = a["scale_max"] - a["scale_min"]
            score = min(max((a["value"] - a["scale_min"]) / span, 0.0), 1.0)
            per_response[(a["source"], a["survey_id"])][f"{role}:{dimension}"].append(score)
        for (source, survey_id), response in submitted.items():
            group = group_of.get((response["ticket_source"], response["ticket_id"]), "unknown")
            key = (response["ticket_source"], group)
            survey_stats[key]["responses"] += 1
            scores = per_response.get((source, survey_id), {})
            for role_dimension, values in scores.items():
                survey_sums[key][role_dimension].append(sum(values) / len(values))
            if "perception:overall" in scores:
                overall = sum(scores["perception:overall"]) / len(scores["perception:overall"])
                survey_stats[key]["rated"] += 1
                survey_stats[key]["satisfied"] += overall >= SATISFIED
                survey_stats[key]["dissatisfied"] += overall <= DISSATISFIED

        for (source, group), s in stats.items():
            labels = {"source": source, "group": group, "window": w}
            for name, field in (
                ("itsm_tickets_opened", "opened"),
                ("itsm_tickets_resolved", "resolved"),
                ("itsm_tickets_reopened", "reopened"),
                ("itsm_tickets_first_contact_resolved", "first_contact"),
                ("itsm_reassignments", "reassignments"),
                ("itsm_complaints_opened", "complaints"),
            ):
                put(name, s[field], **labels)
            for sla in ("response", "resolution"):
                met, breached = s[f"{sla}_met"], s[f"{sla}_breached"]
                put("itsm_sla_tickets", met, sla=sla, outcome="met", **labels)
                put("itsm_sla_tickets", breached, sla=sla, outcome="breached", **labels)
                if met + breached:
                    put("itsm_sla_met_ratio", met / (met + breached), sla=sla, **labels)
            if s["resolved"]:
                put("itsm_reopened_ratio", s["reopened"] / s["resolved"], **labels)
                put("itsm_first_contact_resolution_ratio", s["first_contact"] / s["resolved"], **labels)
            histogram("itsm_resolution_time_seconds", resolution[(source, group)], **labels)
            histogram("itsm_first_response_time_seconds", first_response[(source, group)], **labels)
            histogram("itsm_complaint_resolution_time_seconds", complaint_resolution[(source, group)], **labels)
            v = survey_stats[(source, group)]
            put("itsm_survey_responses", v["responses"], **labels)
            put("itsm_survey_satisfied_responses", v["satisfied"], **labels)
            put("itsm_survey_dissatisfied_responses", v["dissatisfied"], **labels)
            put("itsm_trust_balance", v["satisfied"] - TRUST_COST * v["dissatisfied"], **labels)
            if s["resolved"]:
                put("itsm_survey_response_ratio", v["responses"] / s["resolved"], **labels)
            sums = survey_sums[(source, group)]
            for dimension in ("overall", *DIMENSIONS):
                values = sums.get(f"perception:{dimension}", [])
                if values:
                    put("itsm_survey_score", sum(values) / len(values), dimension=dimension, **labels)
                expected = sums.get(f"expectation:{dimension}", [])
                if values and expected:
                    gap = sum(values) / len(values) - sum(expected) / len(expected)
                    put("itsm_servqual_gap", gap, dimension=dimension, **labels)
            if v["rated"]:
                satisfied_ratio = v["satisfied"] / v["rated"]
                put("itsm_survey_satisfied_ratio", satisfied_ratio, **labels)
                met, breached = s["resolution_met"], s["resolution_breached"]
                if met + breached and v["rated"] >= config.min_responses:
                    sla_ratio = met / (met + breached)
                    put("itsm_watermelon_gap_ratio", sla_ratio - satisfied_ratio, **labels)
                    melon = sla_ratio >= config.targets.sla and satisfied_ratio < config.targets.satisfaction
                    put("itsm_watermelon", float(melon), **labels)

    for (source, group), ages in backlog_ages.items():
        put("itsm_backlog_tickets", len(ages), source=source, group=group)
        histogram("itsm_backlog_age_seconds", ages, source=source, group=group)
    return out


def sample_map(families: list, names: set[str]) -> dict[Key, float]:
    """The vectorized output in the reference's shape, restricted to the metric families in `names`."""
    out: dict[Key, float] = {}
    for family in families:
        if family.name not in names:
            continue
        for sample in family.samples:
            labels = dict(sample.labels)
            if "le" in labels and labels["le"] != "+Inf":
                labels["le"] = str(float(labels["le"]))
            out[(sample.name, frozenset(labels.items()))] = sample.value
    return out


def differences(expected: dict[Key, float], actual: dict[Key, float], tolerance: float = 1e-9) -> list[str]:
    """Every sample missing, extra or unequal; empty when the two implementations agree."""
    problems = [f"missing {key}" for key in expected.keys() - actual.keys()]
    problems += [f"extra {key}" for key in actual.keys() - expected.keys()]
    for key in expected.keys() & actual.keys():
        want, got = expected[key], actual[key]
        if not (math.isclose(want, got, rel_tol=tolerance, abs_tol=1e-6) or (math.isnan(want) and math.isnan(got))):
            problems.append(f"{key}: reference {want} != vectorized {got}")
    return sorted(problems)
