"""The tables of the current schema version, derived from the one ticket definition (records.TICKET_FIELDS).

Adding a ticket column: add a TicketField in records.py and a migration in migrations.py that adds
the column to stores of the previous version; the table, the upsert, the row builder and the
loaders follow from the definition. Adding a per-ticket or per-survey list (SLA clocks next): add a
ChildTable to CHILD_TABLES with its migration; the store replaces its rows per parent in the upsert
transaction and deletes them with the parent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from itsm_exporter.records import TICKET_FIELDS, SurveyResponse, Ticket, TicketField

APPLICATION_ID: Final = 0x49544D58
"""'ITMX' in SQLite's header: tells our store apart from any other SQLite file."""
SCHEMA_VERSION: Final = 5
"""Bumped with a migration in migrations.MIGRATIONS whenever the tables change."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def micros(moment: datetime | None) -> int | None:
    """Integer microseconds since the epoch (UTC), the store's time representation."""
    if moment is None:
        return None
    return (moment - _EPOCH) // _MICROSECOND  # a constant divisor: building the timedelta per call was 2/3 of it


def moment(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def sql_name(field: TicketField) -> str:
    """`group` is an SQL keyword: its column is named `grp` and renamed at the boundary."""
    return "grp" if field.name == "group" else field.name


_SQL_TYPES: Final = {"time": "INTEGER", "label": "INTEGER", "text": "TEXT", "count": "INTEGER", "flag": "INTEGER"}


def tickets_table(fields: Iterable[TicketField]) -> str:
    """CREATE TABLE for `fields`: label fields are codes of the `labels` table (see LABELS_TABLE)."""
    columns = ", ".join(f"{sql_name(f)} {_SQL_TYPES[f.kind]}{'' if f.nullable else ' NOT NULL'}" for f in fields)
    return f"CREATE TABLE tickets ({columns});\nCREATE UNIQUE INDEX tickets_key ON tickets (source, id);\n"


# Tickets and surveys are rowid tables with a unique (source, id) index: upstream ids are random
# (ServiceNow sys_ids), and a random insert dirties one page per record in the B-tree it lands in.
# In a WITHOUT ROWID table that page holds ~25 whole rows; in the index it holds ~80 keys, while
# the rows themselves are appended. Measured in bench/store.py: about twice the upsert rate.
LABELS_TABLE: Final = "CREATE TABLE labels (code INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);\n"
"""One row per distinct label text ever stored; a code is never reused or changed once committed.

A window load reads half a million tickets; sqlite3 makes a new str object for every text cell, and
the label columns were most of them. Small integers cost nothing to make, and each code is turned
back into one shared string per value: bench/store.py loaded the 30-day window (550k of 1M tickets)
in 3.3-3.6 s with text labels and in 2.35 s with codes (BENCHMARKS.md, Store).
"""
SURVEYS_TABLE: Final = """
CREATE TABLE surveys (
    source TEXT NOT NULL, id TEXT NOT NULL, ticket_source TEXT NOT NULL,
    ticket_id TEXT, ticket_key TEXT, submitted_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX surveys_key ON surveys (source, id);
CREATE INDEX surveys_submitted ON surveys (submitted_at);
"""
QUESTIONS_TABLE: Final = """
CREATE TABLE questions (
    source TEXT NOT NULL, question_id TEXT NOT NULL, name TEXT, text TEXT,
    PRIMARY KEY (source, question_id)
) WITHOUT ROWID;
"""
SYNC_STATE_TABLE: Final = """
CREATE TABLE sync_state (
    source TEXT NOT NULL, plan TEXT NOT NULL, phase TEXT NOT NULL,
    watermark INTEGER, token TEXT, done INTEGER NOT NULL DEFAULT 0, total INTEGER, completed_at INTEGER,
    PRIMARY KEY (source, plan, phase)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class ChildTable:
    """Rows that belong to one ticket or survey, replaced whole whenever their parent is stored.

    `rows(parent)` gives the child rows of a parent record in `columns` order, starting with
    (source, parent id): an upstream edit that removes a child row (an answer, an SLA clock) must
    not leave the old one behind, so the parent's rows are deleted and inserted again.
    """

    name: str
    parent: Literal["tickets", "surveys"]
    parent_column: str
    columns: tuple[str, ...]
    ddl: str
    rows: Callable[[Any], Iterable[tuple[object, ...]]]

    @property
    def insert_sql(self) -> str:
        placeholders = ", ".join("?" * len(self.columns))
        return f"INSERT OR REPLACE INTO {self.name} ({', '.join(self.columns)}) VALUES ({placeholders})"

    @property
    def delete_sql(self) -> str:
        return f"DELETE FROM {self.name} WHERE source = ? AND {self.parent_column} = ?"


def _answer_rows(survey: SurveyResponse) -> Iterable[tuple[object, ...]]:
    return ((survey.source, survey.id, a.question_id, a.value, a.scale_min, a.scale_max) for a in survey.answers)


ANSWERS: Final = ChildTable(
    name="answers",
    parent="surveys",
    parent_column="survey_id",
    columns=("source", "survey_id", "question_id", "value", "scale_min", "scale_max"),
    ddl="""
CREATE TABLE answers (
    source TEXT NOT NULL, survey_id TEXT NOT NULL, question_id TEXT NOT NULL,
    value REAL NOT NULL, scale_min REAL NOT NULL, scale_max REAL NOT NULL,
    PRIMARY KEY (source, survey_id, question_id)
) WITHOUT ROWID;
""",
    rows=_answer_rows,
)


def _sla_clock_rows(ticket: Ticket) -> Iterable[tuple[object, ...]]:
    return (
        (ticket.source, ticket.id, c.sla, micros(c.breach_at), int(c.paused), c.goal_seconds, int(c.breached))
        for c in ticket.sla_clocks
    )


SLA_CLOCKS: Final = ChildTable(
    name="sla_clocks",
    parent="tickets",
    parent_column="ticket_id",
    columns=("source", "ticket_id", "sla", "breach_at", "paused", "goal_seconds", "breached"),
    ddl="""
CREATE TABLE sla_clocks (
    source TEXT NOT NULL, ticket_id TEXT NOT NULL, sla TEXT NOT NULL,
    breach_at INTEGER, paused INTEGER NOT NULL, goal_seconds REAL, breached INTEGER NOT NULL,
    PRIMARY KEY (source, ticket_id, sla)
) WITHOUT ROWID;
""",
    rows=_sla_clock_rows,
)
"""Running SLA clocks (records.SlaClock): a few per open ticket, replaced whenever the ticket is re-read."""
CHILD_TABLES: Final[tuple[ChildTable, ...]] = (ANSWERS, SLA_CLOCKS)


@dataclass(frozen=True)
class TicketSchema:
    """Everything the store needs about the tickets table, derived from one tuple of fields."""

    fields: tuple[TicketField, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def sql_columns(self) -> tuple[str, ...]:
        return tuple(sql_name(f) for f in self.fields)

    @property
    def coded(self) -> frozenset[str]:
        """Field names stored as label codes."""
        return frozenset(f.name for f in self.fields if f.kind == "label")

    @property
    def times(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.kind == "time")

    @property
    def table(self) -> str:
        return tickets_table(self.fields)

    @property
    def upsert_sql(self) -> str:
        columns = self.sql_columns
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("source", "id"))
        return (
            f"INSERT INTO tickets ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT (source, id) DO UPDATE SET {updates}"
        )

    def row_builder(self) -> Callable[[Ticket, Mapping[str | None, int | None]], tuple[object, ...]]:
        """A function giving a ticket's row in column order, labels as codes.

        It runs once per synced ticket, so it is compiled from the definition as straight-line code
        (as dataclasses builds __init__): a loop over the fields cost ~2x in bench/ingest.py.
        """
        convert = {"time": "micros(t.{})", "label": "code[t.{}]", "flag": "int(t.{})", "text": "t.{}", "count": "t.{}"}
        cells = ", ".join(convert[f.kind].format(f.name) for f in self.fields)
        namespace: dict[str, Any] = {"micros": micros}
        exec(f"def ticket_row(t, code):\n    return ({cells},)\n", namespace)
        builder: Callable[[Ticket, Mapping[str | None, int | None]], tuple[object, ...]] = namespace["ticket_row"]
        return builder

    def ddl(self) -> str:
        """The whole schema of a new store."""
        children = "".join(child.ddl for child in CHILD_TABLES)
        return f"{LABELS_TABLE}{self.table}{SURVEYS_TABLE}{children}{QUESTIONS_TABLE}{SYNC_STATE_TABLE}"


TICKETS: Final = TicketSchema(TICKET_FIELDS)
