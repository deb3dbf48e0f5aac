"""The frames the collectors compute on: what the store loads and what tests build inline.

One frame per table declared `framed` in records.TABLES, with its columns and dtypes derived from the
declaration: a child table declared there has its frame here with no code of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from itsm_exporter.records import (
    ANSWERS,
    QUESTIONS,
    SLA_CLOCKS,
    SURVEYS,
    TABLES,
    TICKET_SEGMENTS,
    TICKETS,
    SurveyResponse,
    Ticket,
)
from itsm_exporter.tables import Table, compile_rows

_FRAME_DTYPE_OF_KIND: Final = {
    "time": "float64",
    "label": "object",
    "text": "object",
    "count": "int64",
    "flag": "bool",
    "real": "float64",
}
FRAME_TABLES: Final = tuple(t for t in TABLES if t.framed)


def frame_dtypes(table: Table) -> dict[str, str]:
    return {c.name: "category" if c.categorical else _FRAME_DTYPE_OF_KIND[c.kind] for c in table.columns}


TICKET_DTYPES: Final = frame_dtypes(TICKETS)
SURVEY_DTYPES: Final = frame_dtypes(SURVEYS)
ANSWER_DTYPES: Final = frame_dtypes(ANSWERS)
QUESTION_DTYPES: Final = frame_dtypes(QUESTIONS)
SLA_CLOCK_DTYPES: Final = frame_dtypes(SLA_CLOCKS)
SEGMENT_DTYPES: Final = frame_dtypes(TICKET_SEGMENTS)


@dataclass(frozen=True, init=False, eq=False)
class Frames:
    """One frame per table, by table name; times are float UTC epoch seconds, NaN if unset.

    tickets: one row per ticket, columns TICKET_COLUMNS; label columns hold None when unset.
    surveys: one row per response, columns SURVEYS.names; `ticket_source` is always filled.
    answers: one row per answered question, columns ANSWERS.names; `survey_id` joins surveys.id
    within the same `source`.
    questions: one row per question of a source, columns QUESTIONS.names; `question_id` joins
    answers.question_id within the same `source`. Roles come from the config at compute time.
    sla_clocks: one row per running SLA clock, columns SLA_CLOCKS.names; `ticket_id` joins tickets.id
    within the same `source`; `breach_at` NaN when the upstream gave no breach time.
    ticket_segments, survey_segments: one row per segment value of a ticket or response.
    Every child table's frame starts with its parent's key, as declared (`Parent.key`). The column lists are
    the tables' declarations in records.py.
    """

    tables: Mapping[str, pd.DataFrame]
    parent_rows: Mapping[str, npt.NDArray[np.int64]]
    """For a child table, its rows' parent rows: row i of the child's frame belongs to row parent_rows[i] of its
    parent's frame (-1: a parent not in it). Given by whoever builds the frames and knows it for free (the store
    from the rowids of its join, Frames.from_records by construction); a table without it is joined by key."""

    def __init__(self, parent_rows: Mapping[str, npt.NDArray[np.int64]] | None = None, **tables: pd.DataFrame) -> None:
        """Frames by table name; a table of FRAME_TABLES left out is empty."""
        frames = {table.name: empty_frame(table) for table in FRAME_TABLES if table.name not in tables}
        object.__setattr__(self, "tables", {**frames, **tables})
        object.__setattr__(self, "parent_rows", dict(parent_rows or {}))

    @property
    def tickets(self) -> pd.DataFrame:
        return self.tables["tickets"]

    @property
    def surveys(self) -> pd.DataFrame:
        return self.tables["surveys"]

    @property
    def answers(self) -> pd.DataFrame:
        return self.tables["answers"]

    @property
    def questions(self) -> pd.DataFrame:
        return self.tables["questions"]

    @property
    def sla_clocks(self) -> pd.DataFrame:
        return self.tables["sla_clocks"]

    @classmethod
    def empty(cls) -> Frames:
        return cls()

    @classmethod
    def from_records(
        cls,
        tickets: Iterable[Ticket],
        surveys: Iterable[SurveyResponse] = (),
        tables: Sequence[Table] = FRAME_TABLES,
    ) -> Frames:
        """Build the frames of `tables` from canonical records (tests, the demo, benchmarks)."""
        records: dict[str, list[Any]] = {"tickets": list(tickets), "surveys": list(surveys)}
        frames: dict[str, pd.DataFrame] = {}
        parent_rows: dict[str, npt.NDArray[np.int64]] = {}
        for table in tables:
            build = _frame_rows(table)
            if table.parent is None:
                rows = [build(record, None) for record in records[table.name]]
            else:
                per_parent = [build(parent, None) for parent in records[table.parent.table.name]]
                rows = [row for owned in per_parent for row in owned]
                if not table.parent.owned:
                    # One row per key, the last one given: what the store's upserts leave.
                    key = [table.names.index(name) for name in table.key]
                    rows = list({tuple(row[i] for i in key): row for row in rows}.values())
                else:
                    counts = np.fromiter(map(len, per_parent), dtype=np.int64, count=len(per_parent))
                    parent_rows[table.name] = np.repeat(np.arange(len(per_parent), dtype=np.int64), counts)
            frames[table.name] = _typed(pd.DataFrame(rows, columns=list(table.names)), table)
        return cls(parent_rows, **frames)


def empty_frame(table: Table) -> pd.DataFrame:
    return _typed(pd.DataFrame(columns=list(table.names)), table)


@cache
def _frame_rows(table: Table) -> Any:
    """A table's frame rows of one record, as compile_rows builds them: times as epoch seconds."""
    return compile_rows(table, {"time": "epoch({})"}, {"epoch": _epoch})


def _epoch(moment: object) -> float:
    return float(moment.timestamp()) if moment is not None else np.nan  # type: ignore[attr-defined]


def _typed(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    return frame.astype(frame_dtypes(table))
