"""The tables of the current schema version: DDL, upserts, selects and row builders, derived from the
table declarations of records.py (records.TABLES).

Adding a ticket column: add a Column to records.TICKETS (and the Ticket attribute) and a migration in
migrations.py that adds the column to stores of the previous version. Adding a per-ticket or
per-survey list: declare its table with a `Parent` in records.py, add it to records.TABLES, and add
its migration; the store replaces its rows per parent, deletes them with the parent and loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from itsm_exporter.records import TABLES
from itsm_exporter.tables import Column, Table, compile_rows

APPLICATION_ID: Final = 0x49544D58
"""'ITMX' in SQLite's header: tells our store apart from any other SQLite file."""
SCHEMA_VERSION: Final = 6
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


LABELS_TABLE: Final = "CREATE TABLE labels (code INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);\n"
"""One row per distinct label text ever stored; a code is never reused or changed once committed.

A window load reads half a million tickets; sqlite3 makes a new str object for every text cell, and
the label columns were most of them. Small integers cost nothing to make, and each code is turned
back into one shared string per value: bench/store.py loaded the 30-day window (550k of 1M tickets)
in 3.3-3.6 s with text labels and in 2.35 s with codes (BENCHMARKS.md, Store). It stays a literal:
it is the coding of the other tables, not a table of records.
"""

_SQL_TYPES: Final = {"time": "INTEGER", "text": "TEXT", "count": "INTEGER", "flag": "INTEGER", "real": "REAL"}


def sql_type(table: Table, column: Column) -> str:
    if column.kind == "label":
        return "INTEGER" if table.coded_labels else "TEXT"
    return _SQL_TYPES[column.kind]


def sql_columns(table: Table, names: Iterable[str] | None = None) -> tuple[str, ...]:
    """The SQL names of `names` (every column when None), in that order."""
    by_name = {c.name: c for c in table.columns}
    return tuple(by_name[name].sql_name for name in (table.names if names is None else names))


def create_sql(table: Table) -> str:
    """CREATE TABLE and CREATE INDEX statements of `table`."""
    columns = [
        f"{c.sql_name} {sql_type(table, c)}{'' if c.nullable else ' NOT NULL'}"
        f"{'' if c.default is None else f' DEFAULT {c.default}'}"
        for c in table.columns
    ]
    key = ", ".join(sql_columns(table, table.key))
    if table.rowid:
        statements = [f"CREATE TABLE {table.name} ({', '.join(columns)})"]
        statements.append(f"CREATE UNIQUE INDEX {table.name}_key ON {table.name} ({key})")
    else:
        statements = [f"CREATE TABLE {table.name} ({', '.join(columns)}, PRIMARY KEY ({key})) WITHOUT ROWID"]
    for index in table.indexes:
        statements.append(f"CREATE INDEX {index.name} ON {table.name} ({', '.join(sql_columns(table, index.columns))})")
    return "".join(f"{statement};\n" for statement in statements)


def upsert_sql(table: Table) -> str:
    """INSERT of one row: an owned child row replaces its key's (its parent's rows were just deleted,
    and a record listing an item twice keeps the last); any other row updates the one of its key."""
    columns = sql_columns(table)
    insert = f"INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    if table.parent is not None and table.parent.owned:
        return f"INSERT OR REPLACE {insert}"
    key = sql_columns(table, table.key)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"INSERT {insert} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


def delete_sql(table: Table, by: tuple[str, ...]) -> str:
    return f"DELETE FROM {table.name} WHERE {' AND '.join(f'{c} = ?' for c in sql_columns(table, by))}"


def row_builder(table: Table) -> Callable[..., Any]:
    """The stored rows of one record (compile_rows): times in microseconds, flags as integers, and
    labels as codes in a table that codes them."""
    convert = {"time": "micros({})", "flag": "int({})"}
    if table.coded_labels:
        convert["label"] = "code[{}]"
    return compile_rows(table, convert, {"micros": micros})


def decode(
    table: Table, names: Sequence[str], row: Sequence[object], texts: Mapping[object, str | None] | None = None
) -> dict[str, object]:
    """A stored row (of columns `names`) as record attributes: times, flags and label codes (`texts`:
    code -> text, for a table that codes its labels) turned back, and a fallback's value back to unset."""
    by_name = {c.name: c for c in table.columns}
    values: dict[str, object] = {}
    for name, value in zip(names, row, strict=True):
        kind = by_name[name].kind
        if kind == "time":
            values[name] = moment(value)  # type: ignore[arg-type]  # an INTEGER column: int or None
        elif kind == "flag":
            values[name] = bool(value)
        elif name in table.coded and texts is not None:
            values[name] = texts.get(value)
        else:
            values[name] = value
    for name in names:
        fallback = by_name[name].fallback
        if fallback and values[name] == values.get(fallback):
            values[name] = None
    return values


@dataclass(frozen=True)
class Schema:
    """The tables of a store, in creation order (parents before their children)."""

    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        return {t.name: t for t in self.tables}[name]

    def children(self, parent: str) -> tuple[Table, ...]:
        """The tables whose rows hang off records of `parent`."""
        return tuple(t for t in self.tables if t.parent is not None and t.parent.table.name == parent)

    def with_table(self, table: Table) -> Schema:
        """This schema with `table` in place of its namesake, or added (tests: a future column or child table)."""
        if any(t.name == table.name for t in self.tables):
            return replace(self, tables=tuple(table if t.name == table.name else t for t in self.tables))
        return replace(self, tables=(*self.tables, table))

    def ddl(self) -> str:
        """The whole schema of a new store."""
        return LABELS_TABLE + "".join(create_sql(table) for table in self.tables)


SCHEMA: Final = Schema(TABLES)
