"""The role each survey question plays under a source's mapping, and what the mapping misses.

Answers are stored under their question's upstream identity (records.Answer); which question
measures `overall`, a RATER dimension or an expectation is the config's business, so it is
decided here, in one place, every time it is needed: the collectors at each computation, `discover`
in its report, and the check after each sync (pipeline.py). Editing the survey mapping changes the
numbers of answers already stored, without a re-sync.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from itsm_exporter.records import QuestionUse
from itsm_exporter.source_config import SurveyMapping, question_key

Role = tuple[str, str]
"""(`perception` or `expectation`, `overall` or a RATER dimension)."""


def question_roles(
    questions: Iterable[tuple[object, object, object]], mapping: SurveyMapping, *, implicit_overall: str | None = None
) -> dict[str, Role]:
    """Question id -> role for upstream questions given as (id, name, text).

    A configured string names a question by its text, its upstream name or its id, in that order
    of preference, compared by `question_key`. `implicit_overall` (a kind's capability: JSM's one
    CSAT question) plays `overall` when the source maps an overall question or has no survey mapping
    at all: it is the only question that upstream asks.
    """
    configured = {question_key(q): role for q, role in mapping.question_roles().items()}
    roles: dict[str, Role] = {}
    for question_id, name, text in questions:
        role = _match(configured, (text, name, question_id))
        if role is not None:
            roles[str(question_id)] = role
    for question_id, role in mapping.question_roles().items():
        # A question with no row in the frame (its answers came without one) is matched by its id as written.
        roles.setdefault(question_id, role)
    if implicit_overall is not None and (mapping.overall or mapping.empty):
        roles.setdefault(implicit_overall, ("perception", "overall"))
    return roles


@dataclass(frozen=True)
class UnmatchedQuestion:
    """A configured question that names no question seen upstream."""

    path: str
    """Where it is configured: `sources[0].surveys.overall[0]`."""
    configured: str
    closest: QuestionUse | None
    """The upstream question whose text or name is nearest to what was written, if any is stored."""


@dataclass(frozen=True)
class MappingCheck:
    """A source's survey mapping held against the questions seen upstream."""

    roles: dict[str, Role]
    unmatched: list[UnmatchedQuestion]
    unmapped: list[QuestionUse]
    """Upstream questions with answers in the span checked that play no role."""


def check_mapping(
    questions: Sequence[QuestionUse], mapping: SurveyMapping, *, implicit_overall: str | None, path: str
) -> MappingCheck:
    """What `discover` and each sync report: configured questions that match nothing, and answered
    questions that no configured one names. `path` is the source's surveys block, `sources[0].surveys`."""
    roles = question_roles(
        ((q.question_id, q.name, q.text) for q in questions), mapping, implicit_overall=implicit_overall
    )
    upstream_keys = {question_key(k) for q in questions for k in (q.question_id, q.name, q.text) if k}
    unmatched = [
        UnmatchedQuestion(f"{path}.{place}", written, _closest(written, questions))
        for place, written in mapping.placed_questions()
        if question_key(written) not in upstream_keys
    ]
    unmapped = [q for q in questions if q.answers > 0 and q.question_id not in roles]
    return MappingCheck(roles=roles, unmatched=unmatched, unmapped=unmapped)


def _closest(written: str, questions: Sequence[QuestionUse]) -> QuestionUse | None:
    """The question whose text or name reads most like `written`; the most answered one on a tie."""
    key = question_key(written)

    def likeness(question: QuestionUse) -> tuple[float, int]:
        names = [question_key(n) for n in (question.text, question.name) if n]
        best = max((difflib.SequenceMatcher(None, key, n).ratio() for n in names), default=0.0)
        return best, question.answers

    return max(questions, key=likeness, default=None)


def _match(configured: Mapping[str, Role], candidates: tuple[object, ...]) -> Role | None:
    for candidate in candidates:
        if isinstance(candidate, str) and question_key(candidate) in configured:
            return configured[question_key(candidate)]
    return None
