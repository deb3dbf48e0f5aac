"""The frames the collectors compute on: what the store loads and what tests build inline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from itsm_exporter.records import (
    ANSWER_COLUMNS,
    QUESTION_COLUMNS,
    SLA_CLOCK_COLUMNS,
    SURVEY_COLUMNS,
    TICKET_COLUMNS,
    TICKET_FIELDS,
    TICKET_TIME_COLUMNS,
    SurveyResponse,
    Ticket,
)

_FRAME_DTYPE_OF_KIND: dict[str, str] = {
    "time": "float64",
    "label": "object",
    "text": "object",
    "count": "int64",
    "flag": "bool",
}
TICKET_DTYPES: dict[str, str] = {f.name: _FRAME_DTYPE_OF_KIND[f.kind] for f in TICKET_FIELDS}
SURVEY_DTYPES: dict[str, str] = {**{column: "object" for column in SURVEY_COLUMNS}, "submitted_at": "float64"}
ANSWER_DTYPES: dict[str, str] = {
    **{column: "object" for column in ANSWER_COLUMNS},
    "value": "float64",
    "scale_min": "float64",
    "scale_max": "float64",
}
QUESTION_DTYPES: dict[str, str] = {column: "object" for column in QUESTION_COLUMNS}
SLA_CLOCK_DTYPES: dict[str, str] = {
    "source": "object",
    "ticket_id": "object",
    "sla": "object",
    "breach_at": "float64",
    "paused": "bool",
    "goal_seconds": "float64",
    "breached": "bool",
}


@dataclass(frozen=True)
class Frames:
    """Tickets, survey responses, their answers and the questions; times are float UTC epoch seconds, NaN if unset.

    tickets: one row per ticket, columns TICKET_COLUMNS; label columns hold None when unset.
    surveys: one row per response, columns SURVEY_COLUMNS; `ticket_source` is always filled.
    answers: one row per answered question, columns ANSWER_COLUMNS; `survey_id` joins surveys.id
    within the same `source`.
    questions: one row per question of a source, columns QUESTION_COLUMNS; `question_id` joins
    answers.question_id within the same `source`. Roles come from the config at compute time.
    sla_clocks: one row per running SLA clock, columns SLA_CLOCK_COLUMNS; `ticket_id` joins tickets.id
    within the same `source`; `breach_at` NaN when the upstream gave no breach time.
    """

    tickets: pd.DataFrame
    surveys: pd.DataFrame
    answers: pd.DataFrame
    questions: pd.DataFrame
    sla_clocks: pd.DataFrame = field(default_factory=lambda: empty_sla_clocks())

    @classmethod
    def empty(cls) -> Frames:
        return cls(
            tickets=_typed(pd.DataFrame(columns=list(TICKET_COLUMNS)), TICKET_DTYPES),
            surveys=_typed(pd.DataFrame(columns=list(SURVEY_COLUMNS)), SURVEY_DTYPES),
            answers=_typed(pd.DataFrame(columns=list(ANSWER_COLUMNS)), ANSWER_DTYPES),
            questions=_typed(pd.DataFrame(columns=list(QUESTION_COLUMNS)), QUESTION_DTYPES),
        )

    @classmethod
    def from_records(cls, tickets: Iterable[Ticket], surveys: Iterable[SurveyResponse] = ()) -> Frames:
        """Build frames from canonical records (tests, the demo, benchmarks)."""
        tickets = list(tickets)
        ticket_rows = [
            {
                column: (_epoch(getattr(t, column)) if column in TICKET_TIME_COLUMNS else getattr(t, column))
                for column in TICKET_COLUMNS
            }
            for t in tickets
        ]
        survey_rows: list[dict[str, object]] = []
        answer_rows: list[dict[str, object]] = []
        questions: dict[tuple[str, str], dict[str, object]] = {}
        for s in surveys:
            survey_rows.append(
                {
                    "source": s.source,
                    "id": s.id,
                    "ticket_source": s.ticket_source or s.source,
                    "ticket_id": s.ticket_id,
                    "ticket_key": s.ticket_key,
                    "submitted_at": _epoch(s.submitted_at),
                }
            )
            answer_rows.extend(
                {
                    "source": s.source,
                    "survey_id": s.id,
                    "question_id": a.question_id,
                    "value": a.value,
                    "scale_min": a.scale_min,
                    "scale_max": a.scale_max,
                }
                for a in s.answers
            )
            for a in s.answers:
                questions[(s.source, a.question_id)] = {
                    "source": s.source,
                    "question_id": a.question_id,
                    "name": a.name,
                    "text": a.text,
                }
        clock_rows = [
            (t.source, t.id, c.sla, _epoch(c.breach_at), c.paused, c.goal_seconds, c.breached)
            for t in tickets
            for c in t.sla_clocks
        ]
        clocks = pd.DataFrame(clock_rows, columns=list(SLA_CLOCK_COLUMNS))
        clocks["goal_seconds"] = clocks["goal_seconds"].astype("float64")
        return cls(
            sla_clocks=_typed(clocks, SLA_CLOCK_DTYPES),
            tickets=_typed(pd.DataFrame(ticket_rows, columns=list(TICKET_COLUMNS)), TICKET_DTYPES),
            surveys=_typed(pd.DataFrame(survey_rows, columns=list(SURVEY_COLUMNS)), SURVEY_DTYPES),
            answers=_typed(pd.DataFrame(answer_rows, columns=list(ANSWER_COLUMNS)), ANSWER_DTYPES),
            questions=_typed(pd.DataFrame(list(questions.values()), columns=list(QUESTION_COLUMNS)), QUESTION_DTYPES),
        )


def empty_sla_clocks() -> pd.DataFrame:
    return _typed(pd.DataFrame(columns=list(SLA_CLOCK_COLUMNS)), SLA_CLOCK_DTYPES)


def _epoch(moment: object) -> float:
    return float(moment.timestamp()) if moment is not None else np.nan  # type: ignore[attr-defined]


def _typed(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    return frame.astype(dtypes)
