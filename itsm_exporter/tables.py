"""Table declarations, in the spirit of SQLAlchemy Core's `Table`: one per stored table (records.py).

A declaration names a table's columns (kind, nullability), key, indexes and storage, and, for rows
that hang off another record, their parent. Everything else derives from it: the DDL, upserts,
selects and loaders (store/schema.py, store/store.py), the frames' columns and dtypes and the rows
built from records (frames.py), the column tuples (records.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

# Kinds: `time` (UTC datetime; integer microseconds in the store, float epoch seconds in frames, NaN
# when unset), `label` (few distinct values: codes of the `labels` table in a table that codes its
# labels, text otherwise; one shared string object per value in frames), `text`, `count` (int >= 0),
# `flag` (bool), `real` (float).
ColumnKind = Literal["time", "label", "text", "count", "flag", "real"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name, kind, and whether it may be unset."""

    name: str
    kind: ColumnKind
    nullable: bool = False
    sql: str = ""
    """The column's name in SQL when its own is a keyword (`group` is stored as `grp`)."""
    default: int | None = None
    """An SQL default, for a column that a past version added to existing rows."""
    shared: bool = False
    """Load as one string object per distinct value, as labels are: an id that child rows repeat."""
    fallback: str = ""
    """Stored as this other column's value when unset, and read back as unset when the two are equal."""
    categorical: bool = False
    """A label framed as a pandas Categorical (sorted categories): the collectors read its codes instead of
    factorizing millions of strings (a segment's name and value: five per ticket)."""

    @property
    def sql_name(self) -> str:
        return self.sql or self.name


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Parent:
    """Where the rows of a table that hangs off another record come from, and how they live with it.

    The rows of one parent record are its `items` (an attribute of the record), one row per item. The
    table's first columns, `key`, hold the parent's key (or its leading columns); the others are
    attributes of the item.
    """

    table: Table
    items: str
    key: tuple[str, ...]
    owned: bool = True
    """Owned rows are replaced whole whenever their parent is stored (an upstream edit that removes an
    item must not leave the old row behind) and deleted with it. Rows that are not owned (the questions
    catalogue) are upserted by their own key and stay."""
    window: Literal["parent", "all"] = "parent"
    """What a windowed load reads: the rows of the parents it loads, or every stored row."""
    order: str = ""
    """How the parent's record lists its items, as SQL ORDER BY, when not in key order."""

    def __post_init__(self) -> None:
        if self.owned and len(self.key) != len(self.table.key):
            raise ValueError(f"rows owned by {self.table.name} must hold its whole key {self.table.key}")


@dataclass(frozen=True)
class Table:
    """One stored table, declared once.

    `rowid`: a rowid table with a unique index `<name>_key` on `key` instead of a WITHOUT ROWID table
    whose primary key is `key` (records.TICKETS says why). `coded_labels`: label columns hold
    codes of the `labels` table. `record`: the record type of a row (of an item, for a child table).
    `scope`: leading key columns that the record does not carry, given by whoever writes it (the
    source of a sync state). `framed`: loaded into a frame for the collectors.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    record: type
    rowid: bool = False
    indexes: tuple[Index, ...] = ()
    coded_labels: bool = False
    parent: Parent | None = None
    scope: tuple[str, ...] = ()
    framed: bool = True

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def kind_names(self, kind: ColumnKind) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind == kind)

    @cached_property
    def coded(self) -> frozenset[str]:
        """Columns stored as label codes."""
        return frozenset(self.kind_names("label") if self.coded_labels else ())

    @cached_property
    def shared(self) -> frozenset[str]:
        """Text columns loaded as one string object per distinct value."""
        return frozenset(c.name for c in self.columns if (c.kind == "label" or c.shared) and c.name not in self.coded)


def compile_rows(table: Table, convert: Mapping[str, str], functions: Mapping[str, object]) -> Callable[..., Any]:
    """The rows of one record of `table`, compiled from its declaration as straight-line code.

    A loop over the columns cost ~2x per ticket in bench/ingest.py; straight-line code is what
    dataclasses does for __init__. `convert` maps a kind to a template of its stored form
    (`micros({})`); `functions` are the names those templates call. A top-level table gives
    `row(record, code, *scope) -> tuple`; a table with a parent gives `rows(parent, code) -> list`
    (`code`: label text -> code, for a table that codes its labels).
    """
    parent = table.parent
    cells = []
    for column in table.columns:
        if parent is not None and column.name in parent.key:
            value = f"p.{parent.table.key[parent.key.index(column.name)]}"
        elif column.name in table.scope:
            value = column.name
        else:
            owner = "r" if parent is None else "i"
            value = f"{owner}.{column.name}"
            if column.fallback:
                value = f"({value} or {owner}.{column.fallback})"
        cells.append(convert.get(column.kind, "{}").format(value))
    row = f"({', '.join(cells)},)"
    if parent is None:
        source = f"def rows(r, code{''.join(f', {name}' for name in table.scope)}):\n    return {row}\n"
    else:
        source = f"def rows(p, code):\n    return [{row} for i in p.{parent.items}]\n"
    namespace: dict[str, Any] = dict(functions)
    exec(source, namespace)
    built: Callable[..., Any] = namespace["rows"]
    return built
