"""The local store: tickets, survey responses and sync watermarks in one SQLite file (WAL).

A sync commits a batch of records and its watermark in one transaction, so a crash or a kill at
any point resumes from the last committed watermark with nothing lost and nothing counted twice.
Times are stored as integer microseconds since the epoch (UTC): exact to round-trip, cheap to load.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from itsm_exporter.frames import ANSWER_DTYPES, SURVEY_DTYPES, TICKET_DTYPES, Frames
from itsm_exporter.records import (
    ANSWER_COLUMNS,
    SURVEY_COLUMNS,
    TICKET_COLUMNS,
    TICKET_TIME_COLUMNS,
    Answer,
    Batch,
    RecordKind,
    SurveyResponse,
    Ticket,
)

APPLICATION_ID: Final = 0x49544D58
"""'ITMX' in SQLite's header: tells our store apart from any other SQLite file."""
SCHEMA_VERSION: Final = 2
"""Bumped with a migration in MIGRATIONS whenever the tables change."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TERMINAL_STATES: Final = ("resolved", "closed", "canceled")

# `group` is an SQL keyword: the column is named `grp` and renamed at the boundary.
_TICKET_SQL_COLUMNS: Final = tuple("grp" if c == "group" else c for c in TICKET_COLUMNS)

_TICKETS_TABLE: Final = """
CREATE TABLE tickets (
    source TEXT NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL,
    opened_at INTEGER NOT NULL, first_response_at INTEGER, resolved_at INTEGER, closed_at INTEGER,
    updated_at INTEGER NOT NULL,
    state TEXT NOT NULL, grp TEXT, service TEXT, priority TEXT, channel TEXT,
    reassignments INTEGER NOT NULL, reopens INTEGER NOT NULL,
    sla_response TEXT NOT NULL, sla_resolution TEXT NOT NULL, complaint INTEGER NOT NULL
);
CREATE UNIQUE INDEX tickets_key ON tickets (source, id);
"""
_SURVEYS_TABLE: Final = """
CREATE TABLE surveys (
    source TEXT NOT NULL, id TEXT NOT NULL, ticket_source TEXT NOT NULL,
    ticket_id TEXT, ticket_key TEXT, submitted_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX surveys_key ON surveys (source, id);
CREATE INDEX surveys_submitted ON surveys (submitted_at);
"""
# Tickets and surveys are rowid tables with a unique (source, id) index: upstream ids are random
# (ServiceNow sys_ids), and a random insert dirties one page per record in the B-tree it lands in.
# In a WITHOUT ROWID table that page holds ~25 whole rows; in the index it holds ~80 keys, while
# the rows themselves are appended. Measured in bench/store.py: about twice the upsert rate.
_SCHEMA: Final = f"""
{_TICKETS_TABLE}
{_SURVEYS_TABLE}
CREATE TABLE answers (
    source TEXT NOT NULL, survey_id TEXT NOT NULL, question TEXT NOT NULL,
    value REAL NOT NULL, scale_min REAL NOT NULL, scale_max REAL NOT NULL,
    PRIMARY KEY (source, survey_id, question)
) WITHOUT ROWID;
CREATE TABLE watermarks (
    source TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (source, kind)
);
"""

MIGRATIONS: Final[dict[int, str]] = {
    # 1 -> 2: tickets and surveys from WITHOUT ROWID tables to rowid tables with a unique key index.
    1: f"""
ALTER TABLE tickets RENAME TO tickets_v1;
DROP INDEX surveys_submitted;
ALTER TABLE surveys RENAME TO surveys_v1;
{_TICKETS_TABLE}
{_SURVEYS_TABLE}
INSERT INTO tickets SELECT * FROM tickets_v1;
INSERT INTO surveys SELECT * FROM surveys_v1;
DROP TABLE tickets_v1;
DROP TABLE surveys_v1;
""",
}
"""SQL that upgrades a store from version N to N + 1, run in one transaction per step."""

WAL_AUTOCHECKPOINT_PAGES: Final = 16384
"""Checkpoint when the WAL reaches 64 MiB instead of SQLite's 4 MiB.

Each checkpoint copies the WAL into the database and fsyncs it; with random keys a batch of 1000
records dirties about 1000 pages, so the default checkpointed after nearly every batch.
"""


class StoreError(Exception):
    """The store file cannot be used; the message names the file and what is wrong with it."""


def _micros(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


class Store:
    """One SQLite file shared by the sync threads and the snapshot builder (one connection, one lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"store {self.path}: cannot open: {error}") from error
        try:
            self._prepare()
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise StoreError(f"store {self.path}: not a usable itsm-exporter store: {error}") from error
        except StoreError:
            self._db.close()
            raise

    def _prepare(self) -> None:
        db = self._db
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if application_id == 0 and tables == 0:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(
                f"BEGIN; {_SCHEMA} PRAGMA application_id={APPLICATION_ID}; "
                f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
            )
        elif application_id != APPLICATION_ID:
            raise StoreError(f"store {self.path}: a SQLite file of another application; refusing to touch it")
        elif version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path}: schema version {version} is newer than this release understands "
                f"({SCHEMA_VERSION}); upgrade itsm-exporter or point store.path elsewhere"
            )
        else:
            db.execute("PRAGMA journal_mode=WAL")
            for step in range(version, SCHEMA_VERSION):
                db.executescript(f"BEGIN; {MIGRATIONS[step]} PRAGMA user_version={step + 1}; COMMIT;")
        # NORMAL is durable against a killed process in WAL mode; only a power cut can lose the last commit.
        db.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB of page cache: a million-ticket upsert otherwise re-reads B-tree pages from the OS.
        db.execute("PRAGMA cache_size=-65536")
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def watermark(self, source: str, kind: RecordKind) -> str | None:
        """Where the next sync of `source` for `kind` resumes; None before the first commit."""
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM watermarks WHERE source = ? AND kind = ?", (source, kind)
            ).fetchone()
        return None if row is None else str(row[0])

    def commit_batch(self, source: str, batch: Batch) -> None:
        """Upsert the batch's records and move its watermark, all or nothing."""
        records: tuple[Ticket | SurveyResponse, ...] = (*batch.tickets, *batch.surveys)
        for record in records:
            if record.source != source:
                raise ValueError(f"record {record.id} of source {record.source!r} committed under {source!r}")
        try:
            with self._lock, self._transaction():
                self._upsert_tickets(batch.tickets)
                self._upsert_surveys(batch.surveys)
                if batch.watermark is not None:
                    self._db.execute(
                        "INSERT INTO watermarks (source, kind, value) VALUES (?, ?, ?) "
                        "ON CONFLICT (source, kind) DO UPDATE SET value = excluded.value",
                        (source, batch.kind, batch.watermark),
                    )
        except (sqlite3.Error, OverflowError, UnicodeEncodeError) as error:
            # Overflow and encoding errors come from values SQLite cannot hold (the parsers should have
            # refused them): the batch is rolled back like any other failed commit.
            raise StoreError(f"store {self.path}: could not commit a batch of {source}: {error}") from error

    def _upsert_tickets(self, tickets: Iterable[Ticket]) -> None:
        columns = ", ".join(_TICKET_SQL_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _TICKET_SQL_COLUMNS[2:])
        self._db.executemany(
            f"INSERT INTO tickets ({columns}) VALUES ({', '.join('?' * len(_TICKET_SQL_COLUMNS))}) "
            f"ON CONFLICT (source, id) DO UPDATE SET {updates}",
            (_ticket_row(t) for t in tickets),
        )

    def _upsert_surveys(self, surveys: Sequence[SurveyResponse]) -> None:
        if not surveys:
            return
        self._db.executemany(
            "INSERT INTO surveys (source, id, ticket_source, ticket_id, ticket_key, submitted_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO UPDATE SET "
            "ticket_source = excluded.ticket_source, ticket_id = excluded.ticket_id, "
            "ticket_key = excluded.ticket_key, submitted_at = excluded.submitted_at",
            (
                (s.source, s.id, s.ticket_source or s.source, s.ticket_id, s.ticket_key, _micros(s.submitted_at))
                for s in surveys
            ),
        )
        # A re-read survey replaces its answers: an edited response must not keep a removed answer.
        self._db.executemany(
            "DELETE FROM answers WHERE source = ? AND survey_id = ?", ((s.source, s.id) for s in surveys)
        )
        self._db.executemany(
            "INSERT INTO answers (source, survey_id, question, value, scale_min, scale_max) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, survey_id, question) DO UPDATE SET "
            "value = excluded.value, scale_min = excluded.scale_min, scale_max = excluded.scale_max",
            ((s.source, s.id, a.question, a.value, a.scale_min, a.scale_max) for s in surveys for a in s.answers),
        )

    def count(self, source: str, kind: RecordKind) -> int:
        """Stored records of one source and kind."""
        table = "tickets" if kind == "ticket" else "surveys"
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM {table} WHERE source = ?", (source,)).fetchone()[0])

    def tickets(self, source: str) -> list[Ticket]:
        """Every stored ticket of `source` as canonical records, sorted by id."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_TICKET_SQL_COLUMNS)} FROM tickets WHERE source = ? ORDER BY id", (source,)
            ).fetchall()
        return [_ticket(row) for row in rows]

    def surveys(self, source: str) -> list[SurveyResponse]:
        """Every stored survey response of `source` with its answers (sorted by question), sorted by id."""
        with self._lock:
            surveys = self._db.execute(
                "SELECT source, id, ticket_source, ticket_id, ticket_key, submitted_at FROM surveys "
                "WHERE source = ? ORDER BY id",
                (source,),
            ).fetchall()
            answers = self._db.execute(
                "SELECT survey_id, question, value, scale_min, scale_max FROM answers WHERE source = ? "
                "ORDER BY survey_id, question",
                (source,),
            ).fetchall()
        by_survey: dict[str, list[Answer]] = {}
        for survey_id, question, value, scale_min, scale_max in answers:
            by_survey.setdefault(survey_id, []).append(Answer(question, value, scale_min, scale_max))
        return [
            SurveyResponse(
                source=src,
                id=survey_id,
                submitted_at=_moment(submitted) or _EPOCH,
                answers=tuple(by_survey.get(survey_id, ())),
                ticket_id=ticket_id,
                ticket_key=ticket_key,
                ticket_source=None if ticket_source == src else ticket_source,
            )
            for src, survey_id, ticket_source, ticket_id, ticket_key, submitted in surveys
        ]

    def load_frames(self, sources: Sequence[str] | None = None, since: datetime | None = None) -> Frames:
        """The collectors' frames for `sources` (all when None).

        With `since`, only what a computation at a later `as_of` over windows starting after `since`
        can see: tickets with an event after it, the open backlog, tickets that a recent survey is
        about, and surveys submitted after it. This keeps memory bounded by the window, not history.
        """
        # `+source`: scan the table in storage order; through the key index each row would be a random seek.
        where_source, params = _source_clause(sources, "+source")
        cutoff = _micros(since)
        ticket_sql = f"SELECT {', '.join(_TICKET_SQL_COLUMNS)} FROM tickets WHERE {where_source}"
        survey_sql = f"SELECT {', '.join(SURVEY_COLUMNS)} FROM surveys WHERE {where_source}"
        answer_sql = f"SELECT a.{', a.'.join(ANSWER_COLUMNS)} FROM answers a"
        ticket_params: list[object] = list(params)
        survey_params: list[object] = list(params)
        answer_params: list[object] = []
        if cutoff is not None:
            terminal = ", ".join(f"'{s}'" for s in _TERMINAL_STATES)
            # Uncorrelated IN subqueries: SQLite builds each set once instead of scanning surveys per ticket.
            ticket_sql += (
                f" AND (updated_at > ? OR state NOT IN ({terminal})"
                " OR (source, id) IN (SELECT ticket_source, ticket_id FROM surveys WHERE submitted_at > ?)"
                " OR (source, key) IN (SELECT ticket_source, ticket_key FROM surveys WHERE submitted_at > ?))"
            )
            ticket_params += [cutoff, cutoff, cutoff]
            survey_sql += " AND submitted_at > ?"
            survey_params.append(cutoff)
            answer_sql += " JOIN surveys s ON s.source = a.source AND s.id = a.survey_id WHERE s.submitted_at > ?"
            answer_params.append(cutoff)
            if sources is not None:
                answer_sql += f" AND {_source_clause(sources, 'a.source')[0]}"
                answer_params += params
        elif sources is not None:
            answer_sql += f" WHERE {_source_clause(sources, 'a.source')[0]}"
            answer_params += params
        canonical: dict[str, str] = {}
        with self._lock:
            tickets = _read_columns(
                self._db.execute(ticket_sql, ticket_params), TICKET_COLUMNS, TICKET_DTYPES, canonical, _LABELS
            )
            surveys = _read_columns(
                self._db.execute(survey_sql, survey_params), SURVEY_COLUMNS, SURVEY_DTYPES, canonical, _SURVEY_IDS
            )
            answers = _read_columns(
                self._db.execute(answer_sql, answer_params), ANSWER_COLUMNS, ANSWER_DTYPES, canonical, _ANSWER_IDS
            )
        return Frames(tickets=tickets, surveys=surveys, answers=answers)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _source_clause(sources: Sequence[str] | None, column: str = "source") -> tuple[str, list[object]]:
    if sources is None:
        return "1 = 1", []
    if not sources:
        return "0 = 1", []
    return f"{column} IN ({', '.join('?' * len(sources))})", list(sources)


_LOAD_CHUNK: Final = 65536
_LABELS: Final = frozenset(
    {"source", "state", "group", "service", "priority", "channel", "sla_response", "sla_resolution"}
    | {"ticket_source", "question"}
)
"""Columns with few distinct values: loaded as references to one string object per value."""
_SURVEY_IDS: Final = _LABELS | {"id"}
_ANSWER_IDS: Final = _LABELS | {"survey_id"}
"""A survey's id is repeated on each of its answers: loaded once, referenced by all (1.3 million answers
of 200,000 surveys would otherwise hold 1.1 million extra copies, about 65 MB)."""


def _read_columns(
    cursor: sqlite3.Cursor,
    columns: Sequence[str],
    dtypes: dict[str, str],
    canonical: dict[str, str],
    shared_columns: frozenset[str],
) -> pd.DataFrame:
    """A frame from a query, built column-wise in chunks.

    sqlite3 makes a new str object for every cell; for a million tickets that is millions of copies
    of "resolved" or "Service Desk". Chunks keep the row tuples small, and the `shared_columns` are
    rebuilt from one object per distinct value (kept in `canonical` across the frames of one load),
    so memory follows the data, not the cell count.
    """
    parts: dict[str, list[np.ndarray]] = {column: [] for column in columns}
    while rows := cursor.fetchmany(_LOAD_CHUNK):
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            shared = column in shared_columns
            parts[column].append(_column_array(column, values, dtypes[column], canonical if shared else None))
    data = {
        column: np.concatenate(chunks) if chunks else np.array([], dtype=dtypes[column])
        for column, chunks in parts.items()
    }
    return pd.DataFrame(data, columns=list(columns)).astype(dtypes)


def _column_array(column: str, values: tuple[object, ...], dtype: str, canonical: dict[str, str] | None) -> np.ndarray:
    if column in TICKET_TIME_COLUMNS or column == "submitted_at":
        return np.array(values, dtype=np.float64) / 1e6  # integer microseconds, None -> NaN
    if dtype != "object":
        return np.array(values, dtype=dtype)
    array = np.array(values, dtype=object)
    if canonical is None:
        return array
    codes, uniques = pd.factorize(array)
    shared = np.array([*(canonical.setdefault(value, value) for value in uniques), None], dtype=object)
    return shared[codes]  # code -1 (None) takes the trailing None


def _ticket_row(ticket: Ticket) -> tuple[object, ...]:
    """The row of `ticket` in TICKET_COLUMNS order (spelled out: this runs once per synced ticket)."""
    t = ticket
    return (
        t.source, t.id, t.key,
        _micros(t.opened_at), _micros(t.first_response_at), _micros(t.resolved_at), _micros(t.closed_at),
        _micros(t.updated_at),
        t.state, t.group, t.service, t.priority, t.channel,
        t.reassignments, t.reopens, t.sla_response, t.sla_resolution, int(t.complaint),
    )  # fmt: skip


def _ticket(row: tuple[object, ...]) -> Ticket:
    values = dict(zip(TICKET_COLUMNS, row, strict=True))
    for column in TICKET_TIME_COLUMNS:
        values[column] = _moment(values[column])  # type: ignore[arg-type]
    values["complaint"] = bool(values["complaint"])
    return Ticket(**values)  # type: ignore[arg-type]
