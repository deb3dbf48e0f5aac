"""The Store: tickets, survey responses and typed sync state in one SQLite file (WAL).

A sync commits a batch of records and its sync state in one transaction, so a crash or a kill at
any point resumes from the last committed state with nothing lost and nothing counted twice.
Times are stored as integer microseconds since the epoch (UTC): exact to round-trip, cheap to load.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from itsm_exporter.frames import (
    ANSWER_DTYPES,
    QUESTION_DTYPES,
    SLA_CLOCK_DTYPES,
    SURVEY_DTYPES,
    TICKET_DTYPES,
    Frames,
)
from itsm_exporter.records import (
    ANSWER_COLUMNS,
    QUESTION_COLUMNS,
    SLA_CLOCK_COLUMNS,
    SLA_NAMES,
    SURVEY_COLUMNS,
    Answer,
    Batch,
    PhaseState,
    QuestionUse,
    RecordKind,
    SlaClock,
    SurveyResponse,
    Ticket,
)
from itsm_exporter.store.migrations import MIGRATIONS
from itsm_exporter.store.schema import (
    APPLICATION_ID,
    CHILD_TABLES,
    SCHEMA_VERSION,
    TICKETS,
    TicketSchema,
    micros,
    moment,
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TERMINAL_STATES: Final = ("resolved", "closed", "canceled")

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


class Store:
    """One SQLite file: a writer connection shared by the sync threads, a reader for snapshots.

    Commits are serialized on the writer's lock. Reads (`load_frames`, `tickets`, `surveys`,
    `sync_state`) run on their own connection in one read transaction each: in WAL mode a reader
    never blocks the writer, so a long snapshot load never delays another source's commit.
    `schema` is the tickets table's definition (tests pass a future one to prove migrations).
    """

    def __init__(self, path: str | Path, *, schema: TicketSchema = TICKETS, version: int = SCHEMA_VERSION) -> None:
        self.path = Path(path)
        self._schema = schema
        self._version = version
        self._ticket_row = schema.row_builder()
        self._upsert_ticket_sql = schema.upsert_sql
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"store {self.path}: cannot open: {error}") from error
        try:
            self._prepare()
            if str(path) == ":memory:":
                # A second connection to ":memory:" would open another, empty database: share the one.
                self._reader, self._read_lock = self._db, self._lock
            else:
                self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
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
                f"BEGIN; {self._schema.ddl()} PRAGMA application_id={APPLICATION_ID}; "
                f"PRAGMA user_version={self._version}; COMMIT;"
            )
        elif application_id != APPLICATION_ID:
            raise StoreError(f"store {self.path}: a SQLite file of another application; refusing to touch it")
        elif version > self._version:
            raise StoreError(
                f"store {self.path}: schema version {version} is newer than this release understands "
                f"({self._version}); upgrade itsm-exporter or point store.path elsewhere"
            )
        else:
            db.execute("PRAGMA journal_mode=WAL")
            for step in range(version, self._version):
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

    def sync_state(self, source: str) -> dict[tuple[str, str], PhaseState]:
        """Every committed phase of `source`, by (plan, phase); empty before the first commit."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT plan, phase, watermark, token, done, total, completed_at FROM sync_state WHERE source = ?",
                (source,),
            ).fetchall()
        return {
            (plan, phase): PhaseState(
                plan=plan,
                phase=phase,
                watermark=moment(watermark),
                token=token,
                done=done,
                total=total,
                completed_at=moment(completed_at),
            )
            for plan, phase, watermark, token, done, total, completed_at in rows
        }

    def commit_batch(self, source: str, batch: Batch) -> int:
        """Upsert the batch's records, remove its deleted tickets and write its sync state, all or nothing.

        Returns how many of the batch's deleted tickets were stored (and are now removed)."""
        records: tuple[Ticket | SurveyResponse, ...] = (*batch.tickets, *batch.surveys)
        for record in records:
            if record.source != source:
                raise ValueError(f"record {record.id} of source {record.source!r} committed under {source!r}")
        try:
            with self._lock, self._transaction():
                self._upsert_tickets(batch.tickets)
                deleted = self._delete_tickets(source, batch.deleted_ticket_ids)
                self._upsert_surveys(batch.surveys)
                if batch.state is not None:
                    self._write_state(source, batch.state)
            return deleted
        except (sqlite3.Error, OverflowError, UnicodeEncodeError) as error:
            # Overflow and encoding errors come from values SQLite cannot hold (the parsers should have
            # refused them): the batch is rolled back like any other failed commit.
            raise StoreError(f"store {self.path}: could not commit a batch of {source}: {error}") from error

    def delete_tickets(self, source: str, ids: Sequence[str]) -> int:
        """Remove tickets of `source` deleted upstream, with their child rows; returns how many were stored."""
        try:
            with self._lock, self._transaction():
                return self._delete_tickets(source, ids)
        except sqlite3.Error as error:
            raise StoreError(f"store {self.path}: could not delete tickets of {source}: {error}") from error

    def _delete_tickets(self, source: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        code = self._labels.get(source)
        if code is None:
            return 0
        pairs = [(code, ticket_id) for ticket_id in ids]
        before = self._db.total_changes
        self._db.executemany("DELETE FROM tickets WHERE source = ? AND id = ?", pairs)
        removed = self._db.total_changes - before
        for child in CHILD_TABLES:
            if child.parent == "tickets":
                self._db.executemany(child.delete_sql, ((source, ticket_id) for ticket_id in ids))
        return removed

    def _write_state(self, source: str, state: PhaseState) -> None:
        self._db.execute(
            "INSERT INTO sync_state (source, plan, phase, watermark, token, done, total, completed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, plan, phase) DO UPDATE SET "
            "watermark = excluded.watermark, token = excluded.token, done = excluded.done, "
            "total = excluded.total, completed_at = excluded.completed_at",
            (
                source, state.plan, state.phase, micros(state.watermark), state.token, state.done, state.total,
                micros(state.completed_at),
            ),
        )  # fmt: skip

    def _upsert_tickets(self, tickets: Sequence[Ticket]) -> None:
        labels, row = self._labels, self._ticket_row
        self._db.executemany(self._upsert_ticket_sql, (row(t, labels) for t in tickets))
        self._replace_children("tickets", tickets)

    def _upsert_surveys(self, surveys: Sequence[SurveyResponse]) -> None:
        if not surveys:
            return
        self._db.executemany(
            "INSERT INTO surveys (source, id, ticket_source, ticket_id, ticket_key, submitted_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO UPDATE SET "
            "ticket_source = excluded.ticket_source, ticket_id = excluded.ticket_id, "
            "ticket_key = excluded.ticket_key, submitted_at = excluded.submitted_at",
            (
                (s.source, s.id, s.ticket_source or s.source, s.ticket_id, s.ticket_key, micros(s.submitted_at))
                for s in surveys
            ),
        )
        questions = {(s.source, a.question_id): (a.name, a.text) for s in surveys for a in s.answers}
        self._db.executemany(
            "INSERT INTO questions (source, question_id, name, text) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (source, question_id) DO UPDATE SET name = excluded.name, text = excluded.text",
            ((source, question_id, name, text) for (source, question_id), (name, text) in questions.items()),
        )
        self._replace_children("surveys", surveys)

    def _replace_children(self, parent: str, records: Sequence[Ticket] | Sequence[SurveyResponse]) -> None:
        """A re-read parent replaces its child rows: an edited response must not keep a removed answer."""
        for child in CHILD_TABLES:
            if child.parent != parent or not records:
                continue
            self._db.executemany(child.delete_sql, ((r.source, r.id) for r in records))
            self._db.executemany(child.insert_sql, (row for r in records for row in child.rows(r)))

    def ticket_ids(
        self, source: str, *, updated_since: datetime | None = None, open_updated_before: datetime | None = None
    ) -> list[str]:
        """Ids of stored tickets of `source`: updated at or after `updated_since`, or (with
        `open_updated_before`) still open and last updated before it. What a reconciliation checks."""
        where = ["source = (SELECT code FROM labels WHERE text = ?)"]
        params: list[object] = [source]
        if updated_since is not None:
            where.append("updated_at >= ?")
            params.append(micros(updated_since))
        if open_updated_before is not None:
            terminal = ", ".join(f"'{s}'" for s in _TERMINAL_STATES)
            where.append(f"updated_at < ? AND state NOT IN (SELECT code FROM labels WHERE text IN ({terminal}))")
            params.append(micros(open_updated_before))
        with self._read_lock:
            rows = self._reader.execute(f"SELECT id FROM tickets WHERE {' AND '.join(where)} ORDER BY id", params)
            return [str(row[0]) for row in rows.fetchall()]

    def unstored_survey_tickets(self, source: str, *, submitted_since: datetime) -> list[str]:
        """Ids of tickets of `source` that responses submitted since then are about but that are not stored:
        what a bounded first sync fetches by id (its ticket was last updated before the horizon)."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT DISTINCT s.ticket_id FROM surveys s WHERE s.ticket_source = ? AND s.submitted_at >= ? "
                "AND s.ticket_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tickets t "
                "WHERE t.source = (SELECT code FROM labels WHERE text = ?) AND t.id = s.ticket_id) "
                "ORDER BY s.ticket_id",
                (source, micros(submitted_since), source),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def question_use(self, source: str, *, submitted_since: datetime) -> list[QuestionUse]:
        """Every survey question stored for `source`, with its answers in responses submitted since then.

        Read from the window's responses outwards (surveys_submitted, then the answers' key), so a
        check after each sync costs what the window holds, not the whole survey history.
        """
        with self._read_lock:
            answered = dict(
                self._reader.execute(
                    "SELECT a.question_id, count(*) FROM surveys s JOIN answers a "
                    "ON a.source = s.source AND a.survey_id = s.id "
                    "WHERE s.source = ? AND s.submitted_at >= ? GROUP BY a.question_id",
                    (source, micros(submitted_since)),
                ).fetchall()
            )
            rows = self._reader.execute(
                "SELECT question_id, name, text FROM questions WHERE source = ? ORDER BY question_id", (source,)
            ).fetchall()
        return [QuestionUse(str(q), name, text, int(answered.get(q, 0))) for q, name, text in rows]

    def count(self, source: str, kind: RecordKind) -> int:
        """Stored records of one source and kind."""
        where = "source = (SELECT code FROM labels WHERE text = ?)" if kind == "ticket" else "source = ?"
        table = "tickets" if kind == "ticket" else "surveys"
        with self._read_lock:
            return int(self._reader.execute(f"SELECT count(*) FROM {table} WHERE {where}", (source,)).fetchone()[0])

    def tickets(self, source: str) -> list[Ticket]:
        """Every stored ticket of `source` as canonical records, sorted by id."""
        db = self._reader
        with self._read_lock, self._read_snapshot():
            texts = dict(db.execute("SELECT code, text FROM labels").fetchall())
            rows = db.execute(
                f"SELECT {', '.join(self._schema.sql_columns)} FROM tickets "
                "WHERE source = (SELECT code FROM labels WHERE text = ?) ORDER BY id",
                (source,),
            ).fetchall()
            clock_rows = db.execute(
                "SELECT ticket_id, sla, breach_at, paused, goal_seconds, breached FROM sla_clocks "
                "WHERE source = ? ORDER BY ticket_id, sla",
                (source,),
            ).fetchall()
        clocks: dict[str, list[SlaClock]] = {}
        for ticket_id, sla, breach_at, paused, goal, breached in clock_rows:
            clock = SlaClock(sla, moment(breach_at), bool(paused), goal, bool(breached))
            clocks.setdefault(ticket_id, []).append(clock)
        for listed in clocks.values():
            listed.sort(key=lambda clock: SLA_NAMES.index(clock.sla))
        return [self._ticket(row, texts, clocks) for row in rows]

    def _ticket(
        self, row: tuple[object, ...], texts: Mapping[object, str], clocks: Mapping[str, list[SlaClock]]
    ) -> Ticket:
        values: dict[str, object] = dict(zip(self._schema.names, row, strict=True))
        values["sla_clocks"] = tuple(clocks.get(str(values["id"]), ()))
        for field in self._schema.fields:
            if field.kind == "time":
                values[field.name] = moment(values[field.name])  # type: ignore[arg-type]
            elif field.kind == "label":
                values[field.name] = texts.get(values[field.name])
            elif field.kind == "flag":
                values[field.name] = bool(values[field.name])
        return Ticket(**values)  # type: ignore[arg-type]

    def surveys(self, source: str) -> list[SurveyResponse]:
        """Every stored survey response of `source` with its answers (sorted by question id), sorted by id."""
        db = self._reader
        with self._read_lock, self._read_snapshot():
            surveys = db.execute(
                "SELECT source, id, ticket_source, ticket_id, ticket_key, submitted_at FROM surveys "
                "WHERE source = ? ORDER BY id",
                (source,),
            ).fetchall()
            answers = db.execute(
                "SELECT a.survey_id, a.question_id, a.value, a.scale_min, a.scale_max, q.name, q.text "
                "FROM answers a LEFT JOIN questions q ON q.source = a.source AND q.question_id = a.question_id "
                "WHERE a.source = ? ORDER BY a.survey_id, a.question_id",
                (source,),
            ).fetchall()
        by_survey: dict[str, list[Answer]] = {}
        for survey_id, question_id, value, scale_min, scale_max, name, text in answers:
            by_survey.setdefault(survey_id, []).append(Answer(question_id, value, scale_min, scale_max, name, text))
        return [
            SurveyResponse(
                source=src,
                id=survey_id,
                submitted_at=moment(submitted) or _EPOCH,
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
        cutoff = micros(since)
        schema = self._schema
        # Unset coded labels read as code 0, which no label has: the column stays an integer column.
        columns = zip(schema.sql_columns, schema.names, strict=True)
        ticket_columns = (f"ifnull({c}, 0)" if name in schema.coded else c for c, name in columns)
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
        question_sql = f"SELECT {', '.join(QUESTION_COLUMNS)} FROM questions WHERE {where_source}"
        # Every stored clock: only running clocks are stored, so there are a few per open ticket.
        clock_sql = f"SELECT {', '.join(SLA_CLOCK_COLUMNS)} FROM sla_clocks WHERE {where_source}"
        canonical: dict[str, str] = {}
        db = self._reader
        with self._read_lock, self._read_snapshot():
            codes = db.execute("SELECT code, text FROM labels").fetchall()
            texts = np.full(max((code for code, _ in codes), default=0) + 1, None, dtype=object)
            for code, text in codes:
                texts[code] = canonical.setdefault(text, text)
            tickets = _read_columns(
                db.execute(ticket_sql, ticket_params), schema.names, TICKET_DTYPES, canonical, _LABELS, texts, schema
            )
            surveys = _read_columns(
                db.execute(survey_sql, survey_params), SURVEY_COLUMNS, SURVEY_DTYPES, canonical, _SURVEY_IDS
            )
            answers = _read_columns(
                db.execute(answer_sql, answer_params), ANSWER_COLUMNS, ANSWER_DTYPES, canonical, _ANSWER_IDS
            )
            questions = _read_columns(
                db.execute(question_sql, list(params)), QUESTION_COLUMNS, QUESTION_DTYPES, canonical, _LABELS
            )
            clocks = _read_columns(
                db.execute(clock_sql, list(params)), SLA_CLOCK_COLUMNS, SLA_CLOCK_DTYPES, canonical, _LABELS
            )
        return Frames(tickets=tickets, surveys=surveys, answers=answers, questions=questions, sla_clocks=clocks)

    @contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same committed state.

        Without it each query is its own snapshot, and a batch committed by another connection between
        reading the label codes and reading the tickets would bring codes the load cannot name, or
        surveys without the answers committed with them.
        """
        self._reader.execute("BEGIN")
        try:
            yield
        finally:
            self._reader.execute("COMMIT")  # a read transaction has nothing to write: this only ends it

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()  # the same connection again for ":memory:": closing twice is harmless


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
_TIMES: Final = TICKETS.times | {"submitted_at", "breach_at"}
_LABELS: Final = TICKETS.coded | {"ticket_source", "question_id", "name", "text", "sla"}
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
    schema: TicketSchema | None = None,
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
            if label_texts is not None and schema is not None and column in schema.coded:
                parts[column].append(label_texts[np.array(values, dtype=np.intp)])
                continue
            shared = column in shared_columns
            parts[column].append(_column_array(values, dtypes[column], canonical if shared else None, column in _TIMES))
    data = {
        column: np.concatenate(chunks) if chunks else np.array([], dtype=dtypes[column])
        for column, chunks in parts.items()
    }
    return pd.DataFrame(data, columns=list(columns)).astype(dtypes)


def _column_array(
    values: tuple[object, ...], dtype: str, canonical: dict[str, str] | None, is_time: bool
) -> np.ndarray:
    if is_time:
        return np.array(values, dtype=np.float64) / 1e6  # integer microseconds, None -> NaN
    if dtype != "object":
        return np.array(values, dtype=dtype)
    array = np.array(values, dtype=object)
    if canonical is None:
        return array
    codes, uniques = pd.factorize(array)
    shared = np.array([*(canonical.setdefault(value, value) for value in uniques), None], dtype=object)
    return shared[codes]  # code -1 (None) takes the trailing None
