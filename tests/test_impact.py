"""What to fix first (issue 27 §4): penalty-reward contrast analysis against an independent OLS (statsmodels), the
impact-asymmetry classification of planted asymmetries, the guards, and the demo's planted basic need and delighter."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import Config, ConfigError, demo_config, parse_config
from itsm_exporter.connectors.demo.connector import BASIC_NEED, DELIGHTER, DemoConnector
from itsm_exporter.frames import Frames
from itsm_exporter.records import Answer, Segment, SurveyResponse, Ticket
from tests.plans import run_plan

AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
RATER = ("reliability", "assurance", "tangibles", "empathy", "responsiveness")
QUESTIONS = {"overall": "Overall", **{d: d.capitalize() for d in RATER}}
# Effect of a low (1-2 of 5) and a high (4-5) dimension rating on the overall rating (asked 0..10), against a middle
# one (3): reliability a basic need, empathy a delighter, the rest performance factors. From 5 they stay within
# 0..10 but for the noise's tails.
EFFECTS = {
    "reliability": (-2.5, 0.2),
    "assurance": (-0.7, 0.7),
    "tangibles": (-0.6, 0.6),
    "empathy": (-0.2, 2.5),
    "responsiveness": (-0.8, 0.8),
}
GROUPS = {"desk": 700, "network": 500, "small": 60}


def config(**impact: Any) -> Config:
    surveys = {"overall": [QUESTIONS["overall"]], "dimensions": {d: [QUESTIONS[d]] for d in RATER}}
    return parse_config(
        {"sources": [{"name": "sn", "kind": "demo", "surveys": surveys}], "impact": impact}, check_files=False
    )


def planted(seed: int = 1987, groups: dict[str, int] = GROUPS) -> tuple[list[Ticket], list[SurveyResponse]]:
    """Responses whose overall rating follows EFFECTS plus noise, kept within its 0..10 scale."""
    rng = np.random.default_rng(seed)
    tickets, surveys = [], []
    for group, count in groups.items():
        ratings = rng.choice(5, size=(count, len(RATER)), p=[0.1, 0.15, 0.3, 0.25, 0.2]) + 1
        overall = 5.0 + rng.normal(0, 0.3, count)
        for d, dimension in enumerate(RATER):
            low, high = EFFECTS[dimension]
            overall += np.where(ratings[:, d] <= 2, low, np.where(ratings[:, d] >= 4, high, 0.0))
        overall = np.clip(overall, 0, 10)
        for n in range(count):
            key = f"{group}-{n}"
            opened = AS_OF - timedelta(days=float(rng.uniform(2, 20)))
            tickets.append(Ticket("sn", key, key, opened, "open", opened, group=group))
            overall_answer = Answer(QUESTIONS["overall"], float(overall[n]), scale_min=0, scale_max=10)
            answers = (overall_answer, *(Answer(QUESTIONS[d], float(ratings[n, i])) for i, d in enumerate(RATER)))
            surveys.append(SurveyResponse("sn", f"s-{key}", opened + timedelta(hours=1), answers, key))
    return tickets, surveys


def independent_ols(surveys: list[SurveyResponse], group: str | None) -> dict[str, tuple[float, float]]:
    """statsmodels OLS of the normalized overall score on the low (1-2) and high (4-5) dummies of each dimension,
    built here from the raw ratings: (penalty, reward) per dimension."""
    rows = [s for s in surveys if group is None or s.ticket_id.startswith(f"{group}-")]  # type: ignore[union-attr]
    ratings = np.array(
        [[next(a.value for a in s.answers if a.question_id == QUESTIONS[d]) for d in RATER] for s in rows]
    )
    y = np.array([s.answers[0].value / 10 for s in rows])
    dummies = np.column_stack(
        [column for d in range(len(RATER)) for column in (ratings[:, d] <= 2, ratings[:, d] >= 4)]
    )
    params = sm.OLS(y, sm.add_constant(dummies.astype(float))).fit().params
    return {d: (float(params[1 + 2 * i]), float(params[2 + 2 * i])) for i, d in enumerate(RATER)}


def impact(metrics: list[Metric], name: str, group: str = "", **labels: str) -> dict[str, float]:
    """A family's values by dimension for one regression (group "" is the source's)."""
    return {
        s.labels["dimension"]: s.value
        for f in metrics
        for s in f.samples
        if s.name == name
        and s.labels.get("group") == group
        and "segment" not in s.labels
        and all(s.labels.get(k) == v for k, v in labels.items())
    }


def categories(metrics: list[Metric], group: str = "") -> dict[str, str]:
    return {
        s.labels["dimension"]: s.labels["category"]
        for f in metrics
        for s in f.samples
        # The team view's label sets and the source's regression (no `segment` label): the demo has departments too.
        if s.name == "itsm_impact_category"
        and s.labels.get("group") == group
        and "segment" not in s.labels
        and s.value == 1
    }


@pytest.mark.parametrize("group", ["desk", "network", None])
def test_coefficients_equal_an_independent_ols_and_the_planted_asymmetries_are_classified(group: str | None) -> None:
    tickets, surveys = planted()
    metrics = compute_metrics(Frames.from_records(tickets, surveys), AS_OF, config())
    label = group or ""
    expected = independent_ols(surveys, group)
    penalty, reward = impact(metrics, "itsm_impact_penalty", label), impact(metrics, "itsm_impact_reward", label)
    assert set(penalty) == set(reward) == set(RATER)
    for dimension, (expected_penalty, expected_reward) in expected.items():
        assert penalty[dimension] == pytest.approx(expected_penalty, abs=1e-9, rel=0), dimension
        assert reward[dimension] == pytest.approx(expected_reward, abs=1e-9, rel=0), dimension
    assert categories(metrics, label) == {
        "reliability": "basic_need",
        "assurance": "performance_factor",
        "tangibles": "performance_factor",
        "empathy": "delighter",
        "responsiveness": "performance_factor",
    }
    asymmetry = impact(metrics, "itsm_impact_asymmetry", label)
    for dimension, (p, r) in expected.items():
        assert asymmetry[dimension] == pytest.approx((abs(r) - abs(p)) / (abs(r) + abs(p)), abs=1e-9)
    responses = {s.labels["group"]: s.value for f in metrics for s in f.samples if s.name == "itsm_impact_responses"}
    assert responses == {"desk": 700, "network": 500, "": 1260}  # "small" has fewer than min_responses


def test_cost_is_the_penalty_times_the_low_share_and_ranks_what_to_fix_first() -> None:
    tickets, surveys = planted()
    metrics = compute_metrics(Frames.from_records(tickets, surveys), AS_OF, config())
    penalty, cost, rank = (impact(metrics, f"itsm_impact_{name}") for name in ("penalty", "cost", "rank"))
    for i, dimension in enumerate(RATER):
        low = sum(1 for s in surveys if s.answers[1 + i].value <= 2) / len(surveys)
        assert cost[dimension] == pytest.approx(max(-penalty[dimension], 0) * low, abs=1e-12)
    assert sorted(rank, key=rank.__getitem__) == sorted(RATER, key=lambda d: -cost[d])
    assert rank["reliability"] == 1  # the basic need costs most; the delighter hardly anything
    assert rank["empathy"] == 5


def test_too_few_responses_publish_nothing_and_the_thresholds_are_config() -> None:
    tickets, surveys = planted(groups={"desk": 150})
    frames = Frames.from_records(tickets, surveys)
    assert not [
        f for f in compute_metrics(frames, AS_OF, config(min_responses=151)) if f.samples and "impact" in f.name
    ]
    assert impact(compute_metrics(frames, AS_OF, config(min_responses=150)), "itsm_impact_penalty", "desk")
    # Every dimension needs min_per_level low and high ratings to be published.
    lows = min(sum(1 for s in surveys if s.answers[1 + i].value <= 2) for i in range(len(RATER)))
    assert impact(compute_metrics(frames, AS_OF, config(min_per_level=lows + 1)), "itsm_impact_penalty", "desk") != (
        impact(compute_metrics(frames, AS_OF, config(min_per_level=lows)), "itsm_impact_penalty", "desk")
    )
    # Cut-offs: a wide performance band makes every dimension a performance factor.
    wide = compute_metrics(frames, AS_OF, config(basic_below=-0.99, delighter_above=0.99))
    assert set(categories(wide)) == set(RATER) and set(categories(wide).values()) == {"performance_factor"}
    assert not [f for f in compute_metrics(frames, AS_OF, config(enabled=False)) if "impact" in f.name]


def test_only_the_longest_window_counts_and_a_design_without_middle_ratings_publishes_nothing() -> None:
    tickets, surveys = planted(groups={"desk": 200})
    old = [SurveyResponse(s.source, s.id, AS_OF - timedelta(days=31), s.answers, s.ticket_id) for s in surveys[:50]]
    metrics = compute_metrics(Frames.from_records(tickets, [*old, *surveys[50:]]), AS_OF, config())
    assert {s.value for f in metrics for s in f.samples if s.name == "itsm_impact_responses"} == {150}
    # Without a middle rating, low + high = the intercept: nothing is identified, nothing is published.
    polar = [
        SurveyResponse(s.source, s.id, s.submitted_at, tuple(
            Answer(a.question_id, 1.0 if a.value < 3 else 5.0) if a.question_id != "Overall" else a for a in s.answers
        ), s.ticket_id)
        for s in surveys
    ]  # fmt: skip
    assert not impact(compute_metrics(Frames.from_records(tickets, polar), AS_OF, config()), "itsm_impact_penalty")


def test_a_source_that_asks_fewer_dimensions_regresses_on_those_it_asks() -> None:
    tickets, surveys = planted(groups={"desk": 400})
    asked = ("reliability", "empathy")
    kept = {QUESTIONS["overall"], *(QUESTIONS[d] for d in asked)}
    fewer = [
        SurveyResponse(
            s.source, s.id, s.submitted_at, tuple(a for a in s.answers if a.question_id in kept), s.ticket_id
        )
        for s in surveys
    ]
    metrics = compute_metrics(Frames.from_records(tickets, fewer), AS_OF, config())
    penalty = impact(metrics, "itsm_impact_penalty", "desk")
    assert set(penalty) == set(asked)
    ratings = np.array([[a.value for a in s.answers[1:]] for s in fewer])
    dummies = np.column_stack([c for d in range(2) for c in (ratings[:, d] <= 2, ratings[:, d] >= 4)]).astype(float)
    y = np.array([s.answers[0].value / 10 for s in fewer])
    params = sm.OLS(y, sm.add_constant(dummies)).fit().params
    assert penalty == pytest.approx({"reliability": params[1], "empathy": params[3]}, abs=1e-9, rel=0)


@pytest.mark.parametrize("as_of", [datetime(2026, 11, 20, 12, tzinfo=UTC), datetime(2027, 3, 1, 8, tzinfo=UTC)])
def test_the_demo_plants_a_basic_need_and_a_delighter(tmp_path: Path, as_of: datetime) -> None:
    """The planted dimensions are classified right over the source; the others are whatever their noise says."""
    demo = demo_config(tmp_path / "demo.db")
    batches = run_plan(DemoConnector(demo.sources[0], now=lambda: as_of))  # type: ignore[arg-type]
    frames = Frames.from_records([t for b in batches for t in b.tickets], [s for b in batches for s in b.surveys])
    metrics = compute_metrics(frames, as_of, demo)
    found = categories(metrics)
    assert (found[BASIC_NEED], found[DELIGHTER]) == ("basic_need", "delighter")
    asymmetry = impact(metrics, "itsm_impact_asymmetry")
    assert asymmetry[BASIC_NEED] < -0.5 and asymmetry[DELIGHTER] > 0.5  # far from the cut-offs, not by a hair


@pytest.mark.parametrize(
    ("impact", "problem"),
    [
        ({"low_at_most": 0.8}, "impact: low_at_most must be below high_at_least (the middle rating is the reference)"),
        ({"basic_below": 0.5}, "impact: basic_below must be below delighter_above"),
        ({"min_responses": 5}, "impact.min_responses: Input should be greater than or equal to 20"),
        ({"delighter_above": 2}, "impact.delighter_above: Input should be less than or equal to 1"),
        ({"min_respones": 50}, "impact.min_respones: unknown key; did you mean min_responses?"),
    ],
)
def test_bad_impact_settings_are_refused_by_path(impact: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config(**impact)
    assert raised.value.problems == [problem]


def test_each_segment_value_gets_its_own_regression_and_the_team_view_is_unchanged() -> None:
    """A department spans teams: its regression runs over its own responses, whatever team served them (its
    stakeholders' priorities); the teams' and the source's regressions count each response once, as without it."""
    tickets, surveys = planted()
    north = {t.id for t in tickets if t.group == "desk" or (t.group == "network" and int(t.id.split("-")[1]) < 250)}
    with_department = [
        replace(t, segments=(Segment("department", "north" if t.id in north else "south"),)) for t in tickets
    ]
    segmented = parse_config(
        {
            "sources": [{**config().sources[0].model_dump(mode="json"), "segments": {"department": "department"}}],
            "group_by": ["group", "department"],
        },
        check_files=False,
    )
    metrics = compute_metrics(Frames.from_records(with_department, surveys), AS_OF, segmented)
    plain = compute_metrics(Frames.from_records(tickets, surveys), AS_OF, config())
    for name in ("itsm_impact_penalty", "itsm_impact_reward", "itsm_impact_cost"):
        for group in ("desk", "network", ""):
            assert impact(metrics, name, group) == impact(plain, name, group), (name, group)
    of_north = {
        s.labels["dimension"]: s.value
        for f in metrics
        for s in f.samples
        if s.name == "itsm_impact_penalty" and s.labels.get("department") == "north"
    }
    expected = independent_ols([s for s in surveys if s.ticket_id in north], None)
    assert of_north == pytest.approx({d: p for d, (p, _r) in expected.items()}, abs=1e-9, rel=0)
    responses = {
        (s.labels.get("group"), s.labels.get("department")): s.value
        for f in metrics
        for s in f.samples
        if s.name == "itsm_impact_responses"
    }
    assert responses == {("desk", None): 700, ("network", None): 500, ("", None): 1260, (None, "north"): 950,
                         (None, "south"): 310}  # fmt: skip
