"""Survey responses: joined to their tickets, scored per dimension, counted per label set and window, and their
metric families."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from prometheus_client.core import GaugeMetricFamily, Metric

from itsm_exporter.collectors.arrays import (
    FEW,
    BoolArray,
    FloatArray,
    IntArray,
    KeyIndex,
    ObjectArray,
    count_by_group_and_category,
    lookup,
    positions_in,
    ratio,
)
from itsm_exporter.collectors.facts import TicketFacts
from itsm_exporter.collectors.families import FamilyBuilder, Part
from itsm_exporter.collectors.roles import question_roles_by_source
from itsm_exporter.collectors.tickets import TicketWindowStats
from itsm_exporter.collectors.windows import Period, Window
from itsm_exporter.config import DIMENSIONS, Config

PERCEPTION_DIMENSIONS = ("overall", *DIMENSIONS)
"""Dimensions of itsm_survey_score; columns of Responses.perception in this order."""
SATISFIED_AT_LEAST = 0.75
DISSATISFIED_AT_MOST = 0.25
TRUST_COST = 12
"""One bad experience costs twelve good ones (itsm_trust_balance)."""
ANSWER_CHUNK = 65_536
"""Answers scored per step: the dozen temporaries of a step stay a few MB however long the survey history."""
ROLES = (*(("perception", d) for d in PERCEPTION_DIMENSIONS), *(("expectation", d) for d in DIMENSIONS))
"""Columns of the per-response score table: the perception dimensions, then the expectation ones."""
ROLE_INDEX = {role: index for index, role in enumerate(ROLES)}
MAPPING_ROLES = ("overall", "dimension", "expectation", "unmapped")
"""Values of itsm_survey_mapping_answers' `role`: columns of Responses.answers_by_role in this order."""
_MAPPING_ROLE_OF = np.array(
    [MAPPING_ROLES.index("unmapped")]  # index -1 of ROLES: an answer whose question plays no role
    + [MAPPING_ROLES.index("overall" if d == "overall" else "dimension" if k == "perception" else k) for k, d in ROLES],
    dtype=np.int64,
)


@dataclass(frozen=True)
class Responses:
    """Per response: its reporting source (the ticket source), its ticket row or -1, and its scores."""

    submitted: FloatArray
    source: IntArray
    ticket_rows: IntArray
    perception: FloatArray
    """(responses, PERCEPTION_DIMENSIONS) mean normalized answer, NaN where the response has none."""
    expectation: FloatArray
    """(responses, DIMENSIONS) mean normalized SERVQUAL expectation answer, NaN where none."""
    own_source: IntArray
    """The source that stored the response, whose survey mapping applies to its answers."""
    answers_by_role: npt.NDArray[np.int32]
    """(responses, MAPPING_ROLES) answers of each response by the role their question plays."""
    commented: BoolArray
    """The respondent wrote a comment (only that it exists is stored; the text stays upstream)."""
    segments: dict[str, ObjectArray]
    """Segment values a response carries itself (a CSV export's columns), per wanted segment; None where none."""


def load_responses(
    frames_surveys: pd.DataFrame,
    answers: pd.DataFrame,
    questions: pd.DataFrame,
    tickets: TicketFacts,
    names: tuple[str, ...],
    config: Config,
    own_segments: pd.DataFrame | None = None,
    answer_rows: IntArray | None = None,
) -> Responses:
    """Responses of configured sources about tickets of configured sources, with their per-dimension scores and
    the values of the grouping segments they carry themselves (`own_segments`, the survey_segments frame).
    `answer_rows` (Frames.parent_rows of the answers) gives each answer its row in `frames_surveys`: no join by
    survey id."""
    own_source = positions_in(frames_surveys["source"], names)
    ticket_source = positions_in(frames_surveys["ticket_source"], names)
    keep = (own_source >= 0) & (ticket_source >= 0)
    surveys = frames_surveys.loc[keep] if not keep.all() else frames_surveys
    own_source, ticket_source = own_source[keep], ticket_source[keep]
    ticket_rows = _join_tickets(surveys, ticket_source, tickets)
    survey_ids = surveys["id"].to_numpy(dtype=object)
    surveys_by_id = KeyIndex(own_source, survey_ids)
    if answer_rows is not None and not keep.all():
        answer_rows = np.where(answer_rows >= 0, np.where(keep, np.cumsum(keep) - 1, -1)[answer_rows], -1)
    perception, expectation, by_role = _scores(
        answers, questions, surveys_by_id, len(surveys), names, config, answer_rows
    )
    wanted = [name for name in config.segment_labels if own_segments is not None and not own_segments.empty]
    segments = {name: np.full(len(surveys), None, dtype=object) for name in wanted}
    if wanted and own_segments is not None:
        named = own_segments["name"].to_numpy(dtype=object)
        found = surveys_by_id.find(
            positions_in(own_segments["source"], names), own_segments["survey_id"].to_numpy(dtype=object)
        )
        value = own_segments["value"].to_numpy(dtype=object)
        for name in wanted:
            mine = (named == name) & (found >= 0)
            segments[name][found[mine]] = value[mine]
    return Responses(
        submitted=surveys["submitted_at"].to_numpy(dtype=np.float64),
        source=ticket_source,
        ticket_rows=ticket_rows,
        perception=perception,
        expectation=expectation,
        own_source=own_source,
        answers_by_role=by_role,
        commented=surveys["commented"].to_numpy(dtype=bool),
        segments=segments,
    )


def _join_tickets(surveys: pd.DataFrame, ticket_source: IntArray, tickets: TicketFacts) -> IntArray:
    """Ticket row of each response: by ticket id first, then by ticket key; -1 when unknown."""
    rows = lookup(
        tickets.source,
        tickets.frame["id"].to_numpy(dtype=object),
        ticket_source,
        surveys["ticket_id"].to_numpy(dtype=object),
    )
    unmatched = rows < 0
    if unmatched.any():
        by_key = lookup(
            tickets.source,
            tickets.frame["key"].to_numpy(dtype=object),
            np.where(unmatched, ticket_source, -1),
            surveys["ticket_key"].to_numpy(dtype=object),
        )
        rows = np.where(unmatched, by_key, rows)
    return rows


def _scores(
    answers: pd.DataFrame,
    questions: pd.DataFrame,
    surveys_by_id: KeyIndex,
    n_responses: int,
    names: tuple[str, ...],
    config: Config,
    answer_rows: IntArray | None = None,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int32]]:
    """Mean normalized answer per response and role (see ROLES), with each source's own question mapping,
    and the count of answers per response and MAPPING_ROLES (every answer, scorable or not).

    Answers outnumber responses several times over; they are scored ANSWER_CHUNK at a time into running
    sums, so the temporaries do not grow with the history.
    """
    sources = {name: config.source(name) for name in names}
    roles_by_source = question_roles_by_source(questions, names, sources)
    size = n_responses * len(ROLES)
    sums = np.zeros(size, dtype=np.float64)
    counts = np.zeros(size, dtype=np.int32)  # answers per response and role: a handful
    by_role = np.zeros(n_responses * len(MAPPING_ROLES), dtype=np.int32)
    for start in range(0, len(answers), ANSWER_CHUNK):
        chunk = answers.iloc[start : start + ANSWER_CHUNK]
        answer_sources = positions_in(chunk["source"], names)
        if answer_rows is not None:
            chunk_rows = answer_rows[start : start + ANSWER_CHUNK]
        else:
            chunk_rows = surveys_by_id.find(answer_sources, chunk["survey_id"].to_numpy(dtype=object))
        role_of_answer = _roles(chunk["question_id"], answer_sources, roles_by_source)
        of_response = chunk_rows >= 0
        if of_response.any():
            mapping_role = _MAPPING_ROLE_OF[role_of_answer[of_response] + 1]
            _add_counts(by_role, chunk_rows[of_response] * len(MAPPING_ROLES) + mapping_role)
        rows = np.flatnonzero(of_response & (role_of_answer >= 0))
        low = chunk["scale_min"].to_numpy(dtype=np.float64)[rows]
        span = chunk["scale_max"].to_numpy(dtype=np.float64)[rows] - low
        normalized = chunk["value"].to_numpy(dtype=np.float64)[rows] - low
        np.divide(normalized, span, out=normalized, where=span > 0)
        normalized[~(span > 0)] = np.nan
        np.clip(normalized, 0.0, 1.0, out=normalized)
        valid = np.isfinite(normalized)
        cells = chunk_rows[rows[valid]] * len(ROLES) + role_of_answer[rows[valid]]
        if not len(cells):
            continue
        first = int(cells.min())
        chunk_sums = np.bincount(cells - first, weights=normalized[valid])
        sums[first : first + len(chunk_sums)] += chunk_sums
        _add_counts(counts, cells)
    means = sums.reshape(n_responses, len(ROLES))
    answered = counts.reshape(n_responses, len(ROLES))
    np.divide(means, answered, out=means, where=answered > 0)
    means[answered == 0] = np.nan
    split = len(PERCEPTION_DIMENSIONS)
    return means[:, :split], means[:, split:], by_role.reshape(n_responses, len(MAPPING_ROLES))


def _add_counts(totals: npt.NDArray[np.integer], cells: IntArray) -> None:
    """totals[cell] += 1 for each cell. Counted over the cells' own range: answers come grouped by
    survey, so the range of a chunk is narrow and bincount does not allocate the whole table."""
    first = int(cells.min())
    counted = np.bincount(cells - first)
    totals[first : first + len(counted)] += counted.astype(totals.dtype)


def _roles(
    questions: pd.Series, answer_sources: IntArray, roles_by_source: list[dict[str, tuple[str, str]]]
) -> IntArray:
    """Index into ROLES of each answer's question id under its source's roles, -1 when unmapped."""
    codes, distinct = pd.factorize(questions.to_numpy(dtype=object), size_hint=FEW)
    # One extra row answers source -1, one extra column question code -1: neither is ever mapped.
    mapping = np.full((len(roles_by_source) + 1, len(distinct) + 1), -1, dtype=np.int64)
    for source_index, question_roles in enumerate(roles_by_source):
        for column, question in enumerate(distinct):
            role = question_roles.get(str(question))
            if role is not None:
                mapping[source_index, column] = ROLE_INDEX[role]
    return mapping[answer_sources, codes]


@dataclass(frozen=True)
class SurveyWindowStats:
    """Per label set survey counts and score sums of one window."""

    responses: IntArray
    rated: IntArray
    """Responses with an overall answer: the denominator of the satisfied ratio."""
    satisfied: IntArray
    dissatisfied: IntArray
    satisfied_commented: IntArray
    """Satisfied responses that carry a comment: the ones to celebrate, read upstream."""
    dissatisfied_commented: IntArray
    """Dissatisfied responses that carry a comment: the unhappy customers who wrote, read upstream."""
    perception_sums: FloatArray
    perception_counts: IntArray
    expectation_sums: FloatArray
    expectation_counts: IntArray

    @property
    def satisfied_ratio(self) -> FloatArray:
        return ratio(self.satisfied, self.rated)


def survey_window_stats(
    responses: Responses, groups: IntArray, n_groups: int, window: Window, end: float
) -> SurveyWindowStats:
    """Count per label set the responses submitted in the window ending at `end` (as_of for the published
    windows), and sum their per-dimension scores."""
    in_window = window.contains(responses.submitted, end)
    overall = responses.perception[:, 0]
    # One pass for the counts: each response's category is its overall answer (none, satisfied, dissatisfied, in
    # between) and whether it carries a comment.
    answer = np.where(
        np.isnan(overall),
        0,
        np.where(overall >= SATISFIED_AT_LEAST, 1, np.where(overall <= DISSATISFIED_AT_MOST, 2, 3)),
    )
    categories = answer * 2 + responses.commented
    by_category, _ = count_by_group_and_category(groups, in_window, n_groups, categories, 8)
    counts = by_category.reshape(n_groups, 4, 2)
    by_answer = counts.sum(axis=2)
    rows = np.flatnonzero(in_window)
    selected = groups[rows]

    def per_dimension(scores: FloatArray) -> tuple[FloatArray, IntArray]:
        """Sums and counts per label set and dimension, over the window's label sets gathered once."""
        mine = scores[rows]
        sums, found = [], []
        for column in mine.T:
            has = np.flatnonzero(~np.isnan(column))
            keys = selected[has]
            weights = column[has]
            if keys.ndim > 1:  # one column per view: the score counts in each
                weights = np.repeat(weights, keys.shape[1])
            sums.append(np.bincount(keys.ravel(), weights=weights, minlength=n_groups))
            found.append(np.bincount(keys.ravel(), minlength=n_groups))
        shape = (n_groups, mine.shape[1])
        if not sums:
            return np.zeros(shape), np.zeros(shape, dtype=np.int64)
        return np.stack(sums, axis=1).astype(np.float64), np.stack(found, axis=1).astype(np.int64)

    perception_sums, perception_counts = per_dimension(responses.perception)
    expectation_sums, expectation_counts = per_dimension(responses.expectation)
    return SurveyWindowStats(
        responses=by_answer.sum(axis=1),
        rated=by_answer[:, 1:].sum(axis=1),
        satisfied=by_answer[:, 1],
        dissatisfied=by_answer[:, 2],
        satisfied_commented=counts[:, 1, 1],
        dissatisfied_commented=counts[:, 2, 1],
        perception_sums=perception_sums,
        perception_counts=perception_counts,
        expectation_sums=expectation_sums,
        expectation_counts=expectation_counts,
    )


def families(
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
            "itsm_survey_satisfied_commented_responses",
            "Satisfied responses of the window that carry a comment (the text stays in the ITSM tool).",
            [Part((), [s.satisfied_commented for s in surveys], shown)],
        ),
        build.gauge(
            "itsm_survey_dissatisfied_commented_responses",
            "Dissatisfied responses of the window that carry a comment (the text stays in the ITSM tool).",
            [Part((), [s.dissatisfied_commented for s in surveys], shown)],
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


EARLIER = "in a period of the window's length ending earlier (period: previous = just before the window, year_ago = \
365 days before it); from the store"


def earlier_families(
    build: FamilyBuilder, periods: Sequence[Period], earlier: Sequence[list[SurveyWindowStats]], present: BoolArray
) -> list[Metric]:
    """Responses, the satisfied ratio and the scores of each window over each earlier period, for the label sets
    shown now."""
    if not periods:
        return []
    names = [period.name for period in periods]
    return [
        build.gauge(
            "itsm_earlier_survey_responses",
            f"Survey responses submitted {EARLIER}.",
            [
                Part((name,), [s.responses for s in surveys], [present] * len(surveys))
                for name, surveys in zip(names, earlier, strict=True)
            ],
            ("period",),
        ),
        build.gauge(
            "itsm_earlier_survey_satisfied_ratio",
            f"Satisfied / responses with an overall answer, {EARLIER}.",
            [
                Part((name,), [s.satisfied_ratio for s in surveys], [(s.rated > 0) & present for s in surveys])
                for name, surveys in zip(names, earlier, strict=True)
            ],
            ("period",),
        ),
        build.gauge(
            "itsm_earlier_survey_score",
            f"Mean normalized (0..1) score of the responses, by dimension, {EARLIER}.",
            [
                Part(
                    (dimension, name),
                    [ratio(s.perception_sums[:, d], s.perception_counts[:, d]) for s in surveys],
                    [(s.perception_counts[:, d] > 0) & present for s in surveys],
                )
                for d, dimension in enumerate(PERCEPTION_DIMENSIONS)
                for name, surveys in zip(names, earlier, strict=True)
            ],
            ("dimension", "period"),
        ),
    ]


def mapping_family(responses: Responses, names: tuple[str, ...], window: Window, as_of: float, note: str) -> Metric:
    """Answers in the longest window by the role of their question, per source whose mapping applies.

    Every source and role is present, zeros included: `overall` at 0 beside answers elsewhere is the
    signature of a misnamed question (alerts/itsm-exporter.alerts.yaml, ITSMSurveyOverallUnmapped).
    """
    counted = window.contains(responses.submitted, as_of)
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
