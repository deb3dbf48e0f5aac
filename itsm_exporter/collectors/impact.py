"""What to fix first: the asymmetric impact of each RATER dimension on overall satisfaction, and its families.

Penalty-reward contrast analysis (Brandt 1987; Matzler and Sauerwein 2002): the overall score of each response is
regressed by ordinary least squares on two dummies per dimension, a low and a high rating, the middle being the
reference. The low dummy's coefficient is the penalty (what a low rating costs against a middle one), the high
dummy's the reward (what a high one adds). The impact-asymmetry index (Mikulić and Prebežac 2008),
(|reward| - |penalty|) / (|reward| + |penalty|), runs from -1 (only dissatisfies when it fails: a basic need) to +1
(only satisfies when it excels: a delighter); in between are performance factors. A dimension costs the overall
score its penalty times the share of responses that rate it low: the ranking of what to fix first.

One regression per label set with enough responses, and one per source over all of them; each is one
numpy.linalg.lstsq call on the rating patterns of its responses (impact_stats says why that is the same fit). A
segment's view (collectors/labels.py) has a regression per value, as the team view has per group: each
stakeholder group values different things, and a department's basic needs need not be a team's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
from prometheus_client.core import Metric

from itsm_exporter.collectors.arrays import BoolArray, FloatArray, IntArray
from itsm_exporter.collectors.families import FamilyBuilder, Part
from itsm_exporter.collectors.labels import Grouping
from itsm_exporter.collectors.surveys import Responses
from itsm_exporter.collectors.windows import Window
from itsm_exporter.config import DIMENSIONS, Impact

CATEGORIES: Final = ("basic_need", "performance_factor", "delighter")
"""Values of itsm_impact_category's `category`, from the lowest impact-asymmetry index to the highest."""
LOW, HIGH = 0, 1
"""Offsets of a dimension's two dummies in the design, after the intercept: column 1 + 2 x dimension + offset."""


@dataclass(frozen=True)
class ImpactStats:
    """Per regression (label sets first, then one per source) and dimension; NaN where nothing is published."""

    label_values: tuple[tuple[str, ...], ...]
    """A label set's values, or a source's name with every grouping label empty."""
    responses: IntArray
    """Responses each regression used; 0 where there was none."""
    penalty: FloatArray
    reward: FloatArray
    asymmetry: FloatArray
    category: IntArray
    """Index into CATEGORIES, -1 where not published."""
    cost: FloatArray
    rank: FloatArray
    set_names: tuple[tuple[str, ...], ...] = ()
    """Each regression's label names where views differ in them (labels.Grouping.set_names); empty: all alike."""
    visible: BoolArray | None = None
    """Regressions that may have series (a segment's view shows only the sources that define it); None: all."""

    @property
    def published(self) -> BoolArray:
        published: BoolArray = ~np.isnan(self.penalty)
        return published


PATTERNS: Final = 3 ** len(DIMENSIONS)
"""Distinct rating patterns: each dimension low, middle (or not rated) or high."""
_LEVEL_WEIGHTS: Final = 3 ** np.arange(len(DIMENSIONS))


def _pattern_design() -> FloatArray:
    """The regressors of each rating pattern: an intercept, then a low and a high dummy per dimension."""
    levels = (np.arange(PATTERNS)[:, np.newaxis] // _LEVEL_WEIGHTS) % 3
    x = np.zeros((PATTERNS, 1 + 2 * len(DIMENSIONS)), dtype=np.float64)
    x[:, 0] = 1.0
    x[:, 1 + LOW :: 2] = levels == 0
    x[:, 1 + HIGH :: 2] = levels == 2
    return x


PATTERN_DESIGN: Final = _pattern_design()


def rating_patterns(scores: FloatArray, settings: Impact) -> IntArray:
    """Each response's rating pattern (row of PATTERN_DESIGN): per dimension 0 low, 1 middle or not rated, 2 high."""
    levels = np.where(scores <= settings.low_at_most, 0, np.where(scores >= settings.high_at_least, 2, 1))
    patterns: IntArray = (levels * _LEVEL_WEIGHTS).sum(axis=1).astype(np.int64)
    return patterns


def impact_stats(
    responses: Responses, groups: Grouping, names: Sequence[str], window: Window, as_of: float, settings: Impact
) -> ImpactStats:
    """Penalties, rewards, categories and costs of the responses submitted in `window`, per label set that has
    `settings.min_responses` complete responses, and per source.

    The responses that share a rating pattern share their row of the design, so each regression is solved on
    its patterns (at most 3^5) weighted by their counts, with the pattern's mean overall score: the same
    least-squares problem, up to a constant, hence the same coefficients, at a few hundred rows however many
    responses there are.
    """
    overall, scores = responses.perception[:, 0], responses.perception[:, 1:]
    in_window = window.contains(responses.submitted, as_of) & ~np.isnan(overall)
    # With segment views (labels.py) a response has a label set in each view (a column each): it is in the
    # regression of each, so a department gets its own priorities. Every view's first column is the team view.
    by_view = groups.survey_groups if groups.survey_groups.ndim > 1 else groups.survey_groups[:, np.newaxis]
    sources = groups.sources[by_view[:, 0]]
    # A dimension a source asks (some response of its window rates it) must be rated by each response it uses.
    asked = np.stack(
        [np.bincount(sources[in_window], weights=~np.isnan(scores[in_window, d]), minlength=len(names)) > 0
         for d in range(len(DIMENSIONS))],
        axis=1,
    )  # fmt: skip
    complete = in_window & ~(asked[sources] & np.isnan(scores)).any(axis=1)
    rows = np.flatnonzero(complete)
    patterns, y = rating_patterns(scores[rows], settings), overall[rows]
    n_groups = groups.size
    # Label sets first, then sources (numbered after them): one regression unit each.
    n_units = n_groups + len(names)
    views = by_view.shape[1]
    cells = np.concatenate([by_view[rows].ravel(), n_groups + sources[rows]]) * PATTERNS
    cells += np.concatenate([np.repeat(patterns, views), patterns])
    n = np.bincount(cells, minlength=n_units * PATTERNS).reshape(n_units, PATTERNS)
    weights = np.concatenate([np.repeat(y, views), y])
    sums = np.bincount(cells, weights=weights, minlength=n_units * PATTERNS).reshape(n.shape)
    used = n.sum(axis=1)
    unit_asked = asked[np.concatenate([groups.sources, np.arange(len(names))])]
    empty = ("",) * (len(groups.label_names) - 1)
    label_values = (*groups.label_values, *((name, *empty) for name in names))
    # A source's regression carries the team view's label names, every grouping label empty.
    set_names = (*groups.set_names, *((groups.label_names,) * len(names))) if groups.set_names else ()
    visible = None if groups.visible is None else np.concatenate([groups.visible, np.ones(len(names), dtype=bool)])
    coefficients = np.full((n_units, PATTERN_DESIGN.shape[1]), np.nan)
    counts = n @ PATTERN_DESIGN  # responses per unit with each dummy set (the intercept: all of them)
    for unit in np.flatnonzero(used >= settings.min_responses):
        present = np.flatnonzero(n[unit])
        columns = np.concatenate(
            [[0], 1 + 2 * np.flatnonzero(unit_asked[unit])[:, np.newaxis] + [LOW, HIGH]], axis=None
        )
        weight = np.sqrt(n[unit, present])
        fitted = _ols(PATTERN_DESIGN[np.ix_(present, columns)] * weight[:, np.newaxis], sums[unit, present] / weight)
        if fitted is not None:
            coefficients[unit, columns] = fitted
    used = np.where(np.isnan(coefficients[:, 0]), 0, used)
    stats = _classify(label_values, used, coefficients, counts.astype(np.int64), settings)
    return replace(stats, set_names=set_names, visible=visible)


def _ols(x: FloatArray, y: FloatArray) -> FloatArray | None:
    """Least-squares coefficients, None when the design is rank-deficient (a dimension never rated in the middle,
    or a dummy that never or always applies): no coefficient of such a design is identified."""
    coefficients, _residuals, rank, _singular = np.linalg.lstsq(x, y, rcond=None)
    return coefficients.astype(np.float64, copy=False) if rank == x.shape[1] else None


def _classify(
    label_values: tuple[tuple[str, ...], ...],
    used: IntArray,
    coefficients: FloatArray,
    counts: IntArray,
    settings: Impact,
) -> ImpactStats:
    """Published where a dimension has min_per_level low and high ratings; index, category, cost and rank."""
    penalty, reward = coefficients[:, 1 + LOW :: 2], coefficients[:, 1 + HIGH :: 2]
    low, high = counts[:, 1 + LOW :: 2], counts[:, 1 + HIGH :: 2]
    shown = ~np.isnan(penalty) & (low >= settings.min_per_level) & (high >= settings.min_per_level)
    penalty, reward = np.where(shown, penalty, np.nan), np.where(shown, reward, np.nan)
    span = np.abs(penalty) + np.abs(reward)
    asymmetry = np.divide(
        np.abs(reward) - np.abs(penalty), span, out=np.full(span.shape, np.nan), where=shown & (span > 0)
    )
    category = np.where(
        np.isnan(asymmetry),
        -1,
        np.where(asymmetry < settings.basic_below, 0, np.where(asymmetry > settings.delighter_above, 2, 1)),
    ).astype(np.int64)
    # Overall score lost per response: a low rating's penalty (a penalty that raises the score costs nothing)
    # times the share of responses rating the dimension low.
    share = np.divide(low, used[:, np.newaxis], out=np.zeros(low.shape), where=used[:, np.newaxis] > 0)
    cost = np.where(shown, np.maximum(-penalty, 0.0) * share, np.nan)
    # Rank 1 costs most; ties keep the RATER order. NaN sorts last, so unpublished dimensions rank after the rest.
    order = np.argsort(-np.nan_to_num(cost, nan=-np.inf), axis=1, kind="stable")
    rank = np.empty(cost.shape)
    np.put_along_axis(rank, order, np.arange(1, cost.shape[1] + 1, dtype=np.float64)[np.newaxis, :], axis=1)
    return ImpactStats(
        label_values=label_values,
        responses=used,
        penalty=penalty,
        reward=reward,
        asymmetry=asymmetry,
        category=category,
        cost=cost,
        rank=np.where(shown, rank, np.nan),
    )


def families(stats: ImpactStats, label_names: Sequence[str], window: Window, note: str) -> list[Metric]:
    """Per regression and dimension: penalty, reward, index, category, cost and rank; and the responses used."""
    build = FamilyBuilder(label_names, stats.label_values, (), note, stats.set_names, stats.visible)
    shown = stats.published
    scope = (
        f"Over the responses of the longest window ({window.name}) with an overall score: one regression per label "
        "set with impact.min_responses of them, one per source (its grouping labels empty)."
    )
    where = f"{scope} Shown for a dimension that impact.min_per_level of them rate low, and as many high."

    def per_dimension(values: FloatArray) -> list[Part]:
        return [Part((d,), [values[:, i]], [shown[:, i]]) for i, d in enumerate(DIMENSIONS)]

    return [
        build.unwindowed_gauge(
            "itsm_impact_responses",
            f"Responses in the penalty-reward regression. {scope}",
            stats.responses,
            stats.responses > 0,
        ),
        build.state_gauge(
            "itsm_impact_penalty",
            "Penalty-reward contrast analysis (Brandt 1987): OLS coefficient of the dimension's low-rating dummy "
            f"on the normalized overall score, the middle rating as reference (negative = a low rating costs). {where}",
            per_dimension(stats.penalty),
            ("dimension",),
        ),
        build.state_gauge(
            "itsm_impact_reward",
            f"OLS coefficient of the dimension's high-rating dummy (positive = a high rating adds). {where}",
            per_dimension(stats.reward),
            ("dimension",),
        ),
        build.state_gauge(
            "itsm_impact_asymmetry",
            "Impact-asymmetry index (Mikulic and Prebezac 2008): (|reward| - |penalty|) / (|reward| + |penalty|), "
            f"-1 = basic need only, +1 = delighter only. {where}",
            per_dimension(stats.asymmetry),
            ("dimension",),
        ),
        build.state_gauge(
            "itsm_impact_category",
            "1 for the dimension's category by its impact-asymmetry index (below impact.basic_below: basic_need, "
            f"above impact.delighter_above: delighter, else performance_factor), 0 for the others. {where}",
            [
                Part((d, name), [(stats.category[:, i] == c).astype(np.float64)], [shown[:, i]])
                for i, d in enumerate(DIMENSIONS)
                for c, name in enumerate(CATEGORIES)
            ],
            ("dimension", "category"),
        ),
        build.state_gauge(
            "itsm_impact_cost",
            "Overall score (0..1) lost per response to the dimension's low ratings: -penalty x the share rating it "
            f"low. {where}",
            per_dimension(stats.cost),
            ("dimension",),
        ),
        build.state_gauge(
            "itsm_impact_rank",
            f"What to fix first: the dimension's rank by itsm_impact_cost, 1 = costs most. {where}",
            per_dimension(stats.rank),
            ("dimension",),
        ),
    ]
