"""The earlier periods (issue 27): each window over the period just before it and a year earlier, from the store."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.frames import Frames
from itsm_exporter.records import Answer, SurveyResponse, Ticket
from tests.test_collectors import AS_OF, DAY, HOUR, compute, desk, make_config, series, survey, ticket, value

SECOND = timedelta(seconds=1)


def rated(survey_id: str, submitted: Any, overall: float, ticket_id: str = "now") -> SurveyResponse:
    return survey(survey_id, submitted, {"How satisfied are you?": overall}, ticket_id=ticket_id)


def test_the_previous_period_is_the_window_just_before_with_the_same_boundaries() -> None:
    """(as_of - 14d, as_of - 7d] for the 7d window: the instant one window ago is in it, two windows ago is out."""
    metrics = compute(
        [ticket("now", AS_OF - HOUR)],
        [
            rated("edge7", AS_OF - 7 * DAY, 5),  # in the previous period, not in the window
            rated("inside", AS_OF - 14 * DAY + SECOND, 1),
            rated("edge14", AS_OF - 14 * DAY, 1),  # out of both
            rated("current", AS_OF - DAY, 1),
        ],
    )
    assert value(metrics, "itsm_survey_responses", **desk("7d")) == 1
    assert value(metrics, "itsm_earlier_survey_responses", **desk("7d", period="previous")) == 2
    assert value(metrics, "itsm_earlier_survey_satisfied_ratio", **desk("7d", period="previous")) == 0.5
    # The 30d window's previous period is (as_of - 60d, as_of - 30d]: nothing there.
    assert value(metrics, "itsm_earlier_survey_responses", **desk("30d", period="previous")) == 0
    assert value(metrics, "itsm_earlier_survey_satisfied_ratio", **desk("30d", period="previous")) is None
    assert value(metrics, "itsm_earlier_survey_score", **desk("7d", dimension="overall", period="previous")) == 0.5


def test_sla_and_watermelon_gap_of_the_previous_period_with_the_response_guard() -> None:
    resolved = {"state": "resolved", "resolved_at": AS_OF - 10 * DAY}
    tickets = [
        ticket("now", AS_OF - HOUR),
        *(ticket(f"m{n}", AS_OF - 12 * DAY, sla_resolution="met", **resolved) for n in range(3)),
        ticket("b", AS_OF - 12 * DAY, sla_resolution="breached", **resolved),
    ]
    surveys = [rated(f"s{n}", AS_OF - 9 * DAY, score, f"m{n}") for n, score in enumerate((5, 1, 1))]
    metrics = compute(tickets, surveys, make_config(min_responses=3))
    earlier = desk("7d", period="previous")
    assert value(metrics, "itsm_earlier_sla_met_ratio", **earlier, sla="resolution") == 0.75
    assert value(metrics, "itsm_earlier_sla_met_ratio", **earlier, sla="response") is None  # no response result
    assert value(metrics, "itsm_earlier_watermelon_gap_ratio", **earlier) == pytest.approx(0.75 - 1 / 3)
    # The current window has none of it.
    assert value(metrics, "itsm_sla_met_ratio", **desk("7d"), sla="resolution") is None
    fewer = compute(tickets, surveys, make_config(min_responses=4))
    assert value(fewer, "itsm_earlier_watermelon_gap_ratio", **earlier) is None


def test_year_over_year_is_the_same_window_365_days_earlier_and_off_by_default() -> None:
    tickets = [ticket("now", AS_OF - HOUR)]
    surveys = [rated("a", AS_OF - 365 * DAY - 6 * DAY, 5), rated("b", AS_OF - 365 * DAY + SECOND, 5)]
    on = compute(tickets, surveys, make_config(trends={"year_over_year": True}))
    assert value(on, "itsm_earlier_survey_responses", **desk("7d", period="year_ago")) == 1
    assert value(on, "itsm_earlier_survey_responses", **desk("30d", period="year_ago")) == 1
    assert value(on, "itsm_earlier_survey_satisfied_ratio", **desk("30d", period="year_ago")) == 1.0
    default = compute(tickets, surveys)
    assert {labels["period"] for labels in series(default, "itsm_earlier_survey_responses")} == {"previous"}
    off = compute(tickets, surveys, make_config(trends={"previous_period": False}))
    assert [f.name for f in off if f.name.startswith("itsm_earlier_")] == []


def test_earlier_series_only_for_the_label_sets_shown_now() -> None:
    """A group with history but nothing in the longest window and no backlog has no series, earlier ones included."""
    old = ticket("old", AS_OF - 50 * DAY, "resolved", resolved_at=AS_OF - 40 * DAY, group="gone")
    metrics = compute([ticket("now", AS_OF - HOUR), old], [rated("s", AS_OF - 35 * DAY, 5, "old")])
    assert {labels["group"] for labels in series(metrics, "itsm_earlier_survey_responses")} == {"desk"}


def test_the_previous_period_equals_the_window_computed_one_window_earlier() -> None:
    """Over 90 days of seeded tickets and surveys, itsm_earlier_*{period="previous"} at as_of is the current family
    computed at as_of - window, for every label set present at both instants."""
    rng = random.Random(27)
    tickets, surveys = [], []
    for n in range(600):
        opened = AS_OF - timedelta(seconds=rng.uniform(0, 90 * 86400))
        resolved = opened + timedelta(hours=rng.uniform(1, 200))
        done = resolved <= AS_OF
        tickets.append(
            Ticket(
                "sn", f"t{n}", f"K{n}", opened, "resolved" if done else "open", opened,
                resolved_at=resolved if done else None, group=rng.choice(("a", "b", "c")),
                sla_resolution=rng.choice(("met", "breached")) if done else "unknown",
            )
        )  # fmt: skip
        if done and rng.random() < 0.6:
            answers = {"How satisfied are you?": rng.randint(1, 5), "Did we care?": rng.randint(1, 5)}
            submitted = min(resolved + timedelta(hours=rng.uniform(1, 48)), AS_OF)
            surveys.append(
                SurveyResponse("sn", f"s{n}", submitted, tuple(Answer(q, a) for q, a in answers.items()), f"t{n}")
            )
    frames = Frames.from_records(tickets, surveys)
    config = make_config(min_responses=3)
    now = compute_metrics(frames, AS_OF, config)
    pairs = {
        "itsm_earlier_sla_met_ratio": "itsm_sla_met_ratio",
        "itsm_earlier_survey_responses": "itsm_survey_responses",
        "itsm_earlier_survey_satisfied_ratio": "itsm_survey_satisfied_ratio",
        "itsm_earlier_survey_score": "itsm_survey_score",
        "itsm_earlier_watermelon_gap_ratio": "itsm_watermelon_gap_ratio",
    }
    compared = 0
    for window, length in (("7d", 7 * DAY), ("30d", 30 * DAY)):
        then = samples(compute_metrics(frames, AS_OF - length, config), window)
        for (name, labels), earlier in samples(now, window, period="previous").items():
            current = then.get((pairs[name], labels))
            if current is not None:
                assert earlier == pytest.approx(current, abs=1e-12), (name, labels)
                compared += 1
    # 3 groups x 2 windows x (resolution SLA, responses, satisfied, 2 scores, gap): every one compared.
    assert compared == 36


def samples(metrics: list[Metric], window: str, **only: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of one window by (name, labels without window and period), where the labels include `only`."""
    found = {}
    for family in metrics:
        for s in family.samples:
            if s.labels.get("window") != window or any(s.labels.get(k) != v for k, v in only.items()):
                continue
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("window", "period")))
            found[(s.name, labels)] = s.value
    return found
