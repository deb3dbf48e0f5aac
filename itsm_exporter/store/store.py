"""The Store: tickets, survey responses and typed sync state in one SQLite file (WAL).

A sync commits a batch of records and its sync state in one transaction, so a crash or a kill at
any point resumes from the last committed state with nothing lost and nothing counted twice.
Times are stored as integer microseconds since the epoch (UTC): exact to round-trip, cheap to load.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from itsm_exporter.frames import Frames, frame_dtypes
from itsm_exporter.records import Batch, PhaseState, QuestionUse, SurveyResponse, Ticket
from itsm_exporter.store.migrations import MIGRATIONS
from itsm_exporter.store.schema import (
    APPLICATION_ID,
    SCHEMA,
    SCHEMA_VERSION,
    Schema,
    decode,
    delete_sql,
    micros,
    row_builder,
    sql_columns,
    upsert_sql,
)
from itsm_exporter.tables import Table

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

    Commits are serialized on the writer's lock. Reads (`load_frames`, `sync_state`, `reading`) run on
    their own connection in one read transaction each: in WAL mode a reader never blocks the writer,
    so a long snapshot load never delays another source's commit. `schema` is the tables' declarations
    (tests pass a future one to prove migrations, or one with a child table of their own).
    """

    def __init__(self, path: str | Path, *, schema: Schema = SCHEMA, version: int = SCHEMA_VERSION) -> None:
        self.path = Path(path)
        self.schema = schema
        self._version = version
        self._writes = {table.name: _Write.of(table) for table in schema.tables}
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
                f"BEGIN; {self.schema.ddl()} PRAGMA application_id={APPLICATION_ID}; "
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
        table = self.schema.table("sync_state")
        names = [name for name in table.names if name not in table.scope]
        with self.reading() as db:
            rows = db.execute(
                f"SELECT {', '.join(sql_columns(table, names))} FROM {table.name} WHERE source = ?", (source,)
            ).fetchall()
        states = [PhaseState(**decode(table, names, row)) for row in rows]  # type: ignore[arg-type]
        return {(state.plan, state.phase): state for state in states}

    def commit_batch(self, source: str, batch: Batch) -> int:
        """Upsert the batch's records, remove its deleted tickets and write its sync state, all or nothing.

        Returns how many of the batch's deleted tickets were stored (and are now removed)."""
        records: tuple[Ticket | SurveyResponse, ...] = (*batch.tickets, *batch.surveys)
        for record in records:
            if record.source != source:
                raise ValueError(f"record {record.id} of source {record.source!r} committed under {source!r}")
        try:
            with self._lock, self._transaction():
                self._upsert("tickets", batch.tickets)
                deleted = self._delete("tickets", source, batch.deleted_ticket_ids)
                self._upsert("surveys", batch.surveys)
                if batch.state is not None:
                    state = self._writes["sync_state"]
                    self._db.execute(state.upsert, state.rows(batch.state, self._labels, source))
            return deleted
        except (sqlite3.Error, OverflowError, UnicodeEncodeError) as error:
            # Overflow and encoding errors come from values SQLite cannot hold (the parsers should have
            # refused them): the batch is rolled back like any other failed commit.
            raise StoreError(f"store {self.path}: could not commit a batch of {source}: {error}") from error

    def _upsert(self, name: str, records: Sequence[Ticket] | Sequence[SurveyResponse]) -> None:
        """Upsert records of table `name`, and their child rows: an owned child's rows are replaced
        whole (an edited response must not keep a removed answer), the others upserted by key."""
        if not records:
            return
        labels, write = self._labels, self._writes[name]
        self._db.executemany(write.upsert, (write.rows(r, labels) for r in records))
        for child in self.schema.children(name):
            write = self._writes[child.name]
            rows = (row for r in records for row in write.rows(r, labels))
            if write.parent_key is not None:
                self._db.executemany(write.delete, map(write.parent_key, records))
                self._db.executemany(write.upsert, rows)
            else:
                # A record names a catalogue entry once per item: write each key once, with its last row.
                key = itemgetter(*(child.names.index(k) for k in child.key))
                self._db.executemany(write.upsert, {key(row): row for row in rows}.values())

    def _delete(self, name: str, source: str, ids: Sequence[str]) -> int:
        """Remove records of `name` deleted upstream with their owned child rows; returns how many were stored."""
        if not ids:
            return 0
        table = self.schema.table(name)
        code = self._labels.get(source) if "source" in table.coded else source
        if code is None:
            return 0
        before = self._db.total_changes
        self._db.executemany(delete_sql(table, table.key), ((code, record_id) for record_id in ids))
        removed = self._db.total_changes - before
        for child in self.schema.children(name):
            if child.parent is not None and child.parent.owned:
                self._db.executemany(self._writes[child.name].delete, ((source, record_id) for record_id in ids))
        return removed

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The reader connection in one read transaction: every query inside sees the same committed state.

        Without it each query is its own snapshot, and a batch committed by another connection between
        reading the label codes and reading the tickets would bring codes the load cannot name, or
        surveys without the answers committed with them.
        """
        with self._read_lock:
            self._reader.execute("BEGIN")
            try:
                yield self._reader
            finally:
                self._reader.execute("COMMIT")  # a read transaction has nothing to write: this only ends it

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
        with self.reading() as db:
            rows = db.execute(f"SELECT id FROM tickets WHERE {' AND '.join(where)} ORDER BY id", params)
            return [str(row[0]) for row in rows.fetchall()]

    def unstored_survey_tickets(self, source: str, *, submitted_since: datetime) -> list[str]:
        """Ids of tickets of `source` that responses submitted since then are about but that are not stored:
        what a bounded first sync fetches by id (its ticket was last updated before the horizon)."""
        with self.reading() as db:
            rows = db.execute(
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
        with self.reading() as db:
            answered = dict(
                db.execute(
                    "SELECT a.question_id, count(*) FROM surveys s JOIN answers a "
                    "ON a.source = s.source AND a.survey_id = s.id "
                    "WHERE s.source = ? AND s.submitted_at >= ? GROUP BY a.question_id",
                    (source, micros(submitted_since)),
                ).fetchall()
            )
            rows = db.execute(
                "SELECT question_id, name, text FROM questions WHERE source = ? ORDER BY question_id", (source,)
            ).fetchall()
        return [QuestionUse(str(q), name, text, int(answered.get(q, 0))) for q, name, text in rows]

    def load_frames(self, sources: Sequence[str] | None = None, since: datetime | None = None) -> Frames:
        """The collectors' frames for `sources` (all when None): one per framed table of the schema.

        With `since`, only what a computation at a later `as_of` over windows starting after `since`
        can see: tickets with an event after it, the open backlog, tickets that a recent survey is
        about, surveys submitted after it, and the child rows of those (or every row of a child table
        declared to load whole). This keeps memory bounded by the window, not history.
        """
        cutoff = micros(since)
        framed = [table for table in self.schema.tables if table.framed]
        canonical: dict[str, str] = {}
        frames: dict[str, pd.DataFrame] = {}
        rowids: dict[str, IntArray] = {}
        with self.reading() as db:
            # An empty child table is read plainly (nothing): its parent then needs no rowids, and the window's
            # parents are not walked a second time for no rows (a store without segments loads as before them).
            empty = frozenset(
                table.name
                for table in framed
                if table.parent is not None and db.execute(f"SELECT 1 FROM {table.name} LIMIT 1").fetchone() is None
            )
            queries = [(table, *_load_query(table, framed, sources, cutoff, empty)) for table in framed]
            codes = db.execute("SELECT code, text FROM labels").fetchall()
            texts = np.full(max((code for code, _ in codes), default=0) + 1, None, dtype=object)
            for code, text in codes:
                texts[code] = canonical.setdefault(text, text)
            # Parents before their children: a child's shared parent ids reference the parent's strings.
            parent_rows: dict[str, IntArray] = {}
            for table, sql, params, mode in queries:
                read = table.names if mode != "child" or table.parent is None else _own_columns(table)
                frame, rowid = _read_columns(db.execute(sql, params), table, canonical, texts, read, mode != "plain")
                if rowid is not None:
                    rowids[table.name] = rowid
                if mode == "child" and table.parent is not None and rowid is not None:
                    # Read from each parent of the window, in its order: the parent's key columns are its own.
                    owner = table.parent.table
                    rows = _positions(rowids[owner.name], rowid)
                    dtypes = frame_dtypes(table)
                    for column, owner_column in zip(table.parent.key, owner.key, strict=False):
                        values = frames[owner.name][owner_column].to_numpy()[rows]
                        frame[column] = pd.Series(values, index=frame.index, dtype=dtypes[column])
                    frame = frame[list(table.names)]
                    parent_rows[table.name] = rows
                frames[table.name] = frame
        return Frames(parent_rows, **frames)

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()  # the same connection again for ":memory:": closing twice is harmless


@dataclass(frozen=True)
class _Write:
    """How the store writes one table: its rows of a record, its upsert, and (an owned child) how a
    parent's rows are deleted."""

    rows: Callable[..., Any]
    upsert: str
    delete: str = ""
    parent_key: Callable[[Any], tuple[object, ...]] | None = None

    @classmethod
    def of(cls, table: Table) -> _Write:
        parent = table.parent
        if parent is None or not parent.owned:
            return cls(row_builder(table), upsert_sql(table))
        # An owned child's key starts with its parent's whole key (Parent checks it): a tuple getter.
        getter = attrgetter(*parent.table.key)
        return cls(row_builder(table), upsert_sql(table), delete_sql(table, parent.key), getter)


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


def _tickets_in_window(alias: str, cutoff: int) -> tuple[str, list[object]]:
    """Tickets with an event after the cutoff, the open backlog, and the tickets a later survey is about."""
    terminal = ", ".join(f"'{s}'" for s in _TERMINAL_STATES)
    # Uncorrelated IN subqueries: SQLite builds each set once instead of scanning surveys per ticket.
    surveyed = "FROM surveys s JOIN labels l ON l.text = s.ticket_source WHERE s.submitted_at > ?"
    return (
        f"{alias}updated_at > ? OR {alias}state NOT IN (SELECT code FROM labels WHERE text IN ({terminal}))"
        f" OR ({alias}source, {alias}id) IN (SELECT l.code, s.ticket_id {surveyed})"
        f" OR ({alias}source, {alias}key) IN (SELECT l.code, s.ticket_key {surveyed})",
        [cutoff, cutoff, cutoff],
    )


def _surveys_in_window(alias: str, cutoff: int) -> tuple[str, list[object]]:
    return f"{alias}submitted_at > ?", [cutoff]


_WINDOWS: Final[dict[str, Callable[[str, int], tuple[str, list[object]]]]] = {
    "tickets": _tickets_in_window,
    "surveys": _surveys_in_window,
}
"""What a window load keeps of a table of records (with its SQL alias prefix); other tables load whole."""


def _load_query(
    table: Table,
    framed: Sequence[Table],
    sources: Sequence[str] | None,
    cutoff: int | None,
    empty: frozenset[str] = frozenset(),
) -> tuple[str, list[object], str]:
    """The SELECT of a table's frame: its rows of `sources`, and with a cutoff, the rows a window can see.

    The third value says what the rows hold: `plain`, its columns; `rowid`, its columns and last its rowid (a
    parent of windowed children, read in rowid order); `child`, a windowed child's own columns and last its
    parent's rowid (load_frames gives it the parent's key columns and row). A windowed child is read from each
    parent of the window in turn, one search of its key per parent: a search per child row by the parent's key
    cost twice as much (5 segments of a million tickets), and its rows come grouped by parent.
    """
    parent = table.parent
    coded_source = "source" in table.coded
    if (
        parent is not None
        and parent.window == "parent"
        and cutoff is not None
        and parent.table.name in _WINDOWS
        and table.name not in empty
    ):
        owner = parent.table
        window, params = _WINDOWS[owner.name]("p.", cutoff)
        joins, conditions = [], []
        key = owner.key[: len(parent.key)]
        for n, (name, p, c) in enumerate(
            zip(key, sql_columns(owner, key), sql_columns(table, parent.key), strict=True)
        ):
            if name in owner.coded:  # the parent holds the label's code, the child its text
                joins.append(f"labels l{n}")
                conditions += [f"l{n}.code = p.{p}", f"c.{c} = l{n}.text"]
            else:
                conditions.append(f"c.{c} = p.{p}")
        own = _select_list(table, "c.", _own_columns(table))
        tables = " CROSS JOIN ".join([f"{owner.name} p", *joins, f"{table.name} c"])  # CROSS JOIN: in this order
        sql = f"SELECT {own}, p.rowid FROM {tables} ON {' AND '.join(conditions)} WHERE ({window})"
        if sources is not None:
            clause, source_params = _source_clause(sources, "+p.source", coded="source" in owner.coded)
            sql += f" AND {clause}"
            params += source_params
        return sql, params, "child"
    # `+source`: scan the tickets in storage order; through the key index each row would be a random seek.
    clause, params = _source_clause(sources, "+source" if coded_source else "source", coded=coded_source)
    parent_of_windowed = any(
        t.parent is not None
        and t.parent.table.name == table.name
        and t.parent.window == "parent"
        and t.name not in empty
        for t in framed
    )
    with_rowid = parent is None and cutoff is not None and table.name in _WINDOWS and parent_of_windowed
    sql = f"SELECT {_select_list(table)}{', rowid' if with_rowid else ''} FROM {table.name} WHERE {clause}"
    if parent is None and cutoff is not None and table.name in _WINDOWS:
        window, window_params = _WINDOWS[table.name]("", cutoff)
        sql += f" AND ({window})"
        params += window_params
    if with_rowid:
        sql += " ORDER BY rowid"  # the scan's own order: no sort, and the rowids ascend for _positions
    return sql, params, "rowid" if with_rowid else "plain"


def _own_columns(table: Table) -> tuple[str, ...]:
    """A child table's columns that are not its parent's key."""
    parent_key = table.parent.key if table.parent is not None else ()
    return tuple(name for name in table.names if name not in parent_key)


def _positions(parent_rowids: IntArray, child_rowids: IntArray) -> IntArray:
    """The row of each child's parent among the parent's rows (ascending rowids), -1 where not loaded. A parent's
    children are adjacent (the child table's key starts with the parent's): one search per run of them."""
    if not len(child_rowids):
        return np.empty(0, dtype=np.int64)
    starts = np.ones(len(child_rowids), dtype=bool)
    starts[1:] = child_rowids[1:] != child_rowids[:-1]
    heads = np.flatnonzero(starts)
    wanted = child_rowids[heads]
    found = np.minimum(np.searchsorted(parent_rowids, wanted), max(len(parent_rowids) - 1, 0))
    known = parent_rowids[found] == wanted if len(parent_rowids) else np.zeros(len(heads), dtype=bool)
    rows = np.where(known, found, -1).astype(np.int64)
    return np.repeat(rows, np.diff(np.append(heads, len(child_rowids))))


def _select_list(table: Table, alias: str = "", names: Sequence[str] | None = None) -> str:
    # Unset coded labels read as code 0, which no label has: the column stays an integer column.
    names = table.names if names is None else tuple(names)
    return ", ".join(
        f"ifnull({alias}{column}, 0)" if name in table.coded else f"{alias}{column}"
        for name, column in zip(names, sql_columns(table, names), strict=True)
    )


IntArray = npt.NDArray[np.int64]
_LOAD_CHUNK: Final = 65536
_ROWID: Final = "rowid"
"""The extra last column of a query that reads rowids (_load_query): not a column of any table."""


def _read_columns(
    cursor: sqlite3.Cursor,
    table: Table,
    canonical: dict[str, str],
    label_texts: np.ndarray,
    columns: Sequence[str] | None = None,
    with_rowid: bool = False,
) -> tuple[pd.DataFrame, IntArray | None]:
    """A table's frame from its query, built column-wise in chunks.

    sqlite3 makes a new str object for every cell; for a million tickets that is millions of copies
    of "resolved" or "Service Desk". Chunks keep the row tuples small, and the table's shared columns
    (labels, and ids that child rows repeat) are rebuilt from one object per distinct value (kept in
    `canonical` across the frames of one load), so memory follows the data, not the cell count. Coded
    label columns arrive as codes and are looked up in `label_texts` (code 0 is None).
    """
    columns = table.names if columns is None else tuple(columns)
    dtypes = {name: dtype for name, dtype in frame_dtypes(table).items() if name in columns}
    coded, shared, times = table.coded, table.shared, frozenset(table.kind_names("time"))
    categorical = {c.name: _Categories() for c in table.columns if c.categorical and c.name in columns}
    parts: dict[str, list[np.ndarray]] = {column: [] for column in columns}
    rowid_parts: list[IntArray] = []
    read = (*columns, _ROWID) if with_rowid else columns
    while rows := cursor.fetchmany(_LOAD_CHUNK):
        for column, values in zip(read, zip(*rows, strict=True), strict=True):
            if column == _ROWID:
                rowid_parts.append(np.array(values, dtype=np.int64))
                continue
            if column in coded:
                parts[column].append(label_texts[np.array(values, dtype=np.intp)])
                continue
            if column in categorical:
                parts[column].append(categorical[column].codes(values, canonical))
                continue
            parts[column].append(
                _column_array(values, dtypes[column], canonical if column in shared else None, column in times)
            )
    data = {
        column: np.concatenate(chunks) if chunks else np.array([], dtype=dtypes[column])
        for column, chunks in parts.items()
        if column not in categorical
    }
    for column, categories in categorical.items():
        data[column] = categories.categorical(parts[column])
    rowids = (np.concatenate(rowid_parts) if rowid_parts else np.empty(0, dtype=np.int64)) if with_rowid else None
    return pd.DataFrame(data, columns=list(columns)).astype(dtypes), rowids


class _Categories:
    """A categorical column read chunk by chunk: its distinct texts numbered as they come, sorted at the end."""

    def __init__(self) -> None:
        self.code_of: dict[str, int] = {}

    def codes(self, values: tuple[object, ...], canonical: dict[str, str]) -> IntArray:
        chunk_codes, uniques = pd.factorize(np.array(values, dtype=object))
        known = [self.code_of.setdefault(canonical.setdefault(text, text), len(self.code_of)) for text in uniques]
        to_code = np.array([*known, -1], dtype=np.int64)  # the extra last slot answers -1 (NULL)
        codes: IntArray = to_code[chunk_codes]
        return codes

    def categorical(self, chunks: list[IntArray]) -> pd.Categorical:
        """The column with sorted categories, as `astype("category")` gives them (Frames.from_records)."""
        names = sorted(self.code_of)
        to_sorted = np.full(len(names) + 1, -1, dtype=np.int64)  # the last slot keeps -1 (NULL) as it is
        to_sorted[[self.code_of[name] for name in names]] = np.arange(len(names))
        codes = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)
        return pd.Categorical.from_codes(to_sorted[codes], categories=pd.Index(names))


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
