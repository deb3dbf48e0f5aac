"""The local store: tickets, survey responses and sync watermarks in one SQLite file (WAL).

A sync commits a batch of records and its watermark in one transaction, so a crash or a kill at
any point resumes from the last committed watermark with nothing lost and nothing counted twice.
Times are stored as integer microseconds since the epoch (UTC): exact to round-trip, cheap to load.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
SCHEMA_VERSION: Final = 3
"""Bumped with a migration in MIGRATIONS whenever the tables change."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TERMINAL_STATES: Final = ("resolved", "closed", "canceled")

# `group` is an SQL keyword: the column is named `grp` and renamed at the boundary.
_TICKET_SQL_COLUMNS: Final = tuple("grp" if c == "group" else c for c in TICKET_COLUMNS)
_TICKET_LABEL_COLUMNS: Final = frozenset(
    {"source", "state", "group", "service", "priority", "channel", "sla_response", "sla_resolution"}
)
"""Ticket columns stored as a code of the `labels` table (schema 3).

A window load reads half a million tickets; sqlite3 makes a new str object for every text cell, and
these eight columns were most of them. Small integers cost nothing to make, and each code is turned
back into one shared string per value: bench/store.py loaded the 30-day window (550k of 1M tickets)
in 3.3-3.6 s with text labels and in 2.35 s with codes (BENCHMARKS.md, Store).
"""

_TICKETS_TABLE: Final = """
CREATE TABLE tickets (
    source INTEGER NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL,
    opened_at INTEGER NOT NULL, first_response_at INTEGER, resolved_at INTEGER, closed_at INTEGER,
    updated_at INTEGER NOT NULL,
    state INTEGER NOT NULL, grp INTEGER, service INTEGER, priority INTEGER, channel INTEGER,
    reassignments INTEGER NOT NULL, reopens INTEGER NOT NULL,
    sla_response INTEGER NOT NULL, sla_resolution INTEGER NOT NULL, complaint INTEGER NOT NULL
);
CREATE UNIQUE INDEX tickets_key ON tickets (source, id);
"""
_LABELS_TABLE: Final = """
CREATE TABLE labels (code INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
"""
"""One row per distinct label text ever stored; a code is never reused or changed once committed."""

# Version 2 of the tickets table, frozen: migration 1 -> 2 creates it and migration 2 -> 3 reads it.
_TICKETS_TABLE_V2: Final = """
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
_CODED_SQL_COLUMNS: Final = tuple(
    c for c, name in zip(_TICKET_SQL_COLUMNS, TICKET_COLUMNS, strict=True) if name in _TICKET_LABEL_COLUMNS
)
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
{_LABELS_TABLE}
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
{_TICKETS_TABLE_V2}
{_SURVEYS_TABLE}
INSERT INTO tickets SELECT * FROM tickets_v1;
INSERT INTO surveys SELECT * FROM surveys_v1;
DROP TABLE tickets_v1;
DROP TABLE surveys_v1;
""",
    # 2 -> 3: ticket label columns become codes of the new labels table.
    2: f"""
{_LABELS_TABLE}
INSERT INTO labels (text) {
        " UNION ".join(f"SELECT {c} FROM tickets WHERE {c} IS NOT NULL" for c in _CODED_SQL_COLUMNS)
    };
DROP INDEX tickets_key;
ALTER TABLE tickets RENAME TO tickets_v2;
{_TICKETS_TABLE}
INSERT INTO tickets SELECT {
        ", ".join(
            f"(SELECT code FROM labels WHERE text = t.{c})" if c in _CODED_SQL_COLUMNS else f"t.{c}"
            for c in _TICKET_SQL_COLUMNS
        )
    } FROM tickets_v2 t ORDER BY t.rowid;
DROP TABLE tickets_v2;
""",
}
"""SQL that upgrades a store from version N to N + 1, run in one transaction per step."""

WAL_AUTOCHECKPOINT_PAGES: Final = 32768
"""Checkpoint when the WAL reaches 128 MiB instead of SQLite's 4 MiB.

Each checkpoint copies the WAL into the database and fsyncs it; with random keys a batch of 1000
records dirties about 1000 pages, so the default checkpointed after nearly every batch. A longer
WAL also holds more rewrites of the same key-index page, each copied back once per checkpoint.
Upserting 1M prebuilt rows in batches of 1000: 59,000 rows/s at 64 MiB, 71,000 at 128 MiB, no
better beyond (and worse with no checkpoint at all: the WAL index itself slows down).
"""
WAL_SIZE_LIMIT_BYTES: Final = 64 * 1024 * 1024
"""After a checkpoint the WAL file is cut back to this size: a backfill's WAL does not stay on disk."""


class StoreError(Exception):
    """The store file cannot be used; the message names the file and what is wrong with it."""


_MICROSECOND: Final = timedelta(microseconds=1)


def _micros(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return (moment - _EPOCH) // _MICROSECOND  # a constant divisor: building the timedelta per call was 2/3 of it


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
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        self._labels = _LabelCodes(db)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._labels)

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
        labels = self._labels
        self._db.executemany(_UPSERT_TICKET, (_ticket_row(t, labels) for t in tickets))

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
        where = "source = (SELECT code FROM labels WHERE text = ?)" if kind == "ticket" else "source = ?"
        table = "tickets" if kind == "ticket" else "surveys"
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM {table} WHERE {where}", (source,)).fetchone()[0])

    def tickets(self, source: str) -> list[Ticket]:
        """Every stored ticket of `source` as canonical records, sorted by id."""
        with self._lock, self._read_snapshot():
            texts = dict(self._db.execute("SELECT code, text FROM labels").fetchall())
            rows = self._db.execute(
                f"SELECT {', '.join(_TICKET_SQL_COLUMNS)} FROM tickets "
                "WHERE source = (SELECT code FROM labels WHERE text = ?) ORDER BY id",
                (source,),
            ).fetchall()
        return [_ticket(row, texts) for row in rows]

    def surveys(self, source: str) -> list[SurveyResponse]:
        """Every stored survey response of `source` with its answers (sorted by question), sorted by id."""
        with self._lock, self._read_snapshot():
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
        where_source, params = _source_clause(sources)
        # `+source`: scan the table in storage order; through the key index each row would be a random seek.
        where_ticket_source = _source_clause(sources, "+source", coded=True)[0]
        cutoff = _micros(since)
        # Unset coded labels read as code 0, which no label has: the column stays an integer column.
        ticket_columns = (f"ifnull({c}, 0)" if c in _CODED_SQL_COLUMNS else c for c in _TICKET_SQL_COLUMNS)
        ticket_sql = f"SELECT {', '.join(ticket_columns)} FROM tickets WHERE {where_ticket_source}"
        survey_sql = f"SELECT {', '.join(SURVEY_COLUMNS)} FROM surveys WHERE {where_source}"
        answer_sql = f"SELECT a.{', a.'.join(ANSWER_COLUMNS)} FROM answers a"
        ticket_params: list[object] = list(params)
        survey_params: list[object] = list(params)
        answer_params: list[object] = []
        if cutoff is not None:
            terminal = ", ".join(f"'{s}'" for s in _TERMINAL_STATES)
            # Uncorrelated IN subqueries: SQLite builds each set once instead of scanning surveys per ticket.
            surveyed = "FROM surveys s JOIN labels l ON l.text = s.ticket_source WHERE s.submitted_at > ?"
            ticket_sql += (
                f" AND (updated_at > ? OR state NOT IN (SELECT code FROM labels WHERE text IN ({terminal}))"
                f" OR (source, id) IN (SELECT l.code, s.ticket_id {surveyed})"
                f" OR (source, key) IN (SELECT l.code, s.ticket_key {surveyed}))"
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
        with self._lock, self._read_snapshot():
            codes = self._db.execute("SELECT code, text FROM labels").fetchall()
            texts = np.full(max((code for code, _ in codes), default=0) + 1, None, dtype=object)
            for code, text in codes:
                texts[code] = canonical.setdefault(text, text)
            tickets = _read_columns(
                self._db.execute(ticket_sql, ticket_params), TICKET_COLUMNS, TICKET_DTYPES, canonical, _LABELS, texts
            )
            surveys = _read_columns(
                self._db.execute(survey_sql, survey_params), SURVEY_COLUMNS, SURVEY_DTYPES, canonical, _SURVEY_IDS
            )
            answers = _read_columns(
                self._db.execute(answer_sql, answer_params), ANSWER_COLUMNS, ANSWER_DTYPES, canonical, _ANSWER_IDS
            )
        return Frames(tickets=tickets, surveys=surveys, answers=answers)

    @contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same committed state.

        Without it each query is its own snapshot, and a batch committed by another connection between
        reading the label codes and reading the tickets would bring codes the load cannot name, or
        surveys without the answers committed with them.
        """
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")  # a read transaction has nothing to write: this only ends it

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _LabelCodes(dict[str | None, int | None]):
    """Label text -> code, read from the `labels` table and extended as new texts are stored.

    Looking a text up inside a write transaction adds it to the table when it is new. Codes of a
    transaction that rolls back are forgotten: another connection may commit the same code for
    another text. None maps to None (an unset label stays NULL).
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        super().__init__(db.execute("SELECT text, code FROM labels").fetchall())
        self[None] = None
        self._db = db
        self._uncommitted: list[str] = []

    def __missing__(self, text: str | None) -> int | None:
        # Another connection may have added it since this one read the table.
        row = self._db.execute(
            "INSERT INTO labels (text) VALUES (?) ON CONFLICT (text) DO UPDATE SET text = text RETURNING code",
            (text,),
        ).fetchone()
        code = int(row[0])
        self[text] = code
        self._uncommitted.append(str(text))
        return code

    def committed(self) -> None:
        self._uncommitted.clear()

    def rolled_back(self) -> None:
        for text in self._uncommitted:
            self.pop(text, None)
        self._uncommitted.clear()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection, labels: _LabelCodes) -> None:
        self._db = db
        self._labels = labels

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
            self._labels.committed()
        else:
            self._labels.rolled_back()
            self._db.execute("ROLLBACK")


def _source_clause(
    sources: Sequence[str] | None, column: str = "source", *, coded: bool = False
) -> tuple[str, list[object]]:
    if sources is None:
        return "1 = 1", []
    if not sources:
        return "0 = 1", []
    placeholders = ", ".join("?" * len(sources))
    if coded:
        return f"{column} IN (SELECT code FROM labels WHERE text IN ({placeholders}))", list(sources)
    return f"{column} IN ({placeholders})", list(sources)


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
    label_texts: np.ndarray | None = None,
) -> pd.DataFrame:
    """A frame from a query, built column-wise in chunks.

    sqlite3 makes a new str object for every cell; for a million tickets that is millions of copies
    of "resolved" or "Service Desk". Chunks keep the row tuples small, and the `shared_columns` are
    rebuilt from one object per distinct value (kept in `canonical` across the frames of one load),
    so memory follows the data, not the cell count. With `label_texts`, the ticket label columns
    arrive as codes and are looked up in it (code 0 is None).
    """
    parts: dict[str, list[np.ndarray]] = {column: [] for column in columns}
    while rows := cursor.fetchmany(_LOAD_CHUNK):
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            if label_texts is not None and column in _TICKET_LABEL_COLUMNS:
                parts[column].append(label_texts[np.array(values, dtype=np.intp)])
                continue
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


_UPSERT_TICKET: Final = (
    f"INSERT INTO tickets ({', '.join(_TICKET_SQL_COLUMNS)}) VALUES ({', '.join('?' * len(_TICKET_SQL_COLUMNS))}) "
    f"ON CONFLICT (source, id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _TICKET_SQL_COLUMNS[2:])}"
)


def _ticket_row(ticket: Ticket, code: Mapping[str | None, int | None]) -> tuple[object, ...]:
    """The row of `ticket` in TICKET_COLUMNS order, labels as `code`s (spelled out: this runs per synced ticket)."""
    t = ticket
    return (
        code[t.source], t.id, t.key,
        _micros(t.opened_at), _micros(t.first_response_at), _micros(t.resolved_at), _micros(t.closed_at),
        _micros(t.updated_at),
        code[t.state], code[t.group], code[t.service], code[t.priority], code[t.channel],
        t.reassignments, t.reopens, code[t.sla_response], code[t.sla_resolution], int(t.complaint),
    )  # fmt: skip


def _ticket(row: tuple[object, ...], texts: Mapping[object, str]) -> Ticket:
    values = dict(zip(TICKET_COLUMNS, row, strict=True))
    for column in TICKET_TIME_COLUMNS:
        values[column] = _moment(values[column])  # type: ignore[arg-type]
    for column in _TICKET_LABEL_COLUMNS:
        values[column] = texts.get(values[column])
    values["complaint"] = bool(values["complaint"])
    return Ticket(**values)  # type: ignore[arg-type]
