"""The role of each stored survey question of the frames, per source (survey_mapping.py decides roles)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from itsm_exporter.kinds import capabilities
from itsm_exporter.source_config import SourceBase
from itsm_exporter.survey_mapping import Role, question_roles


def source_question_roles(questions: pd.DataFrame, source: SourceBase) -> dict[str, Role]:
    """Question id -> role for the questions of `source` in the questions frame (survey_mapping.question_roles)."""
    rows = questions[questions["source"] == source.name]
    return question_roles(
        zip(rows["question_id"], rows["name"], rows["text"], strict=True),
        source.surveys,
        implicit_overall=capabilities(source).implicit_overall,
    )


def question_roles_by_source(
    questions: pd.DataFrame, names: tuple[str, ...], sources: Mapping[str, SourceBase]
) -> list[dict[str, Role]]:
    """One question-id -> role table per source in `names` order."""
    return [source_question_roles(questions, sources[name]) for name in names]
