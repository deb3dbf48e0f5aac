"""The role each stored survey question plays, resolved from the config at compute time.

Answers are stored under their question's upstream identity (records.Answer); which question
measures `overall`, a RATER dimension or an expectation is the config's business, so it is
decided here, in one place, every time the metrics are computed: editing the survey mapping
changes the numbers of answers already stored, without a re-sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pandas as pd

from itsm_exporter.config import JiraSource, SurveyMapping, question_key

Role = tuple[str, str]
"""(`perception` or `expectation`, `overall` or a RATER dimension)."""

JSM_CSAT_QUESTION: Final = "csat"
"""The id under which the JSM connector stores a request's CSAT rating (its only survey question)."""


def source_question_roles(
    questions: pd.DataFrame, source: str, mapping: SurveyMapping, *, jsm: bool = False
) -> dict[str, Role]:
    """Question id -> role for the questions of `source` in the questions frame.

    A configured string names a question by its text, its upstream name or its id, in that order
    of preference, compared by `question_key`. A JSM source's CSAT rating plays `overall` when the
    source maps an overall question or has no survey mapping at all: it is the only question JSM asks.
    """
    configured = {question_key(q): role for q, role in mapping.question_roles().items()}
    rows = questions[questions["source"] == source]
    roles: dict[str, Role] = {}
    for question_id, name, text in zip(rows["question_id"], rows["name"], rows["text"], strict=True):
        role = _match(configured, (text, name, question_id))
        if role is not None:
            roles[str(question_id)] = role
    for question_id, role in mapping.question_roles().items():
        # A question with no row in the frame (its answers came without one) is matched by its id as written.
        roles.setdefault(question_id, role)
    unmapped = not (mapping.overall or mapping.dimensions or mapping.expectations)
    if jsm and (mapping.overall or unmapped):
        roles.setdefault(JSM_CSAT_QUESTION, ("perception", "overall"))
    return roles


def question_roles_by_source(
    questions: pd.DataFrame,
    names: tuple[str, ...],
    sources: Mapping[str, object],
    mappings: Mapping[str, SurveyMapping],
) -> list[dict[str, Role]]:
    """One question-id -> role table per source in `names` order."""
    return [
        source_question_roles(questions, name, mappings[name], jsm=isinstance(sources[name], JiraSource))
        for name in names
    ]


def _match(configured: Mapping[str, Role], candidates: tuple[object, ...]) -> Role | None:
    for candidate in candidates:
        if isinstance(candidate, str) and question_key(candidate) in configured:
            return configured[question_key(candidate)]
    return None
