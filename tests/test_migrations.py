"""Frozen migrations: a store of every past version upgrades to exactly the tables of a new store, data kept.

The DDL of each past version below is what its release created, copied as it was: a migration
built from today's definitions would pass on today's schema and break on the next new column,
which the last test simulates.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from itsm_exporter.records import TICKETS, Answer, PhaseState
from itsm_exporter.store import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, Store
from itsm_exporter.store.schema import SCHEMA
from itsm_exporter.tables import Column
from tests.storeread import stored_surveys, stored_tickets

_ANSWERS_AND_WATERMARKS = """
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

V1 = (
    """
CREATE TABLE tickets (
    source TEXT NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL,
    opened_at INTEGER NOT NULL, first_response_at INTEGER, resolved_at INTEGER, closed_at INTEGER,
    updated_at INTEGER NOT NULL,
    state TEXT NOT NULL, grp TEXT, service TEXT, priority TEXT, channel TEXT,
    reassignments INTEGER NOT NULL, reopens INTEGER NOT NULL,
    sla_response TEXT NOT NULL, sla_resolution TEXT NOT NULL, complaint INTEGER NOT NULL,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE TABLE surveys (
    source TEXT NOT NULL, id TEXT NOT NULL, ticket_source TEXT NOT NULL,
    ticket_id TEXT, ticket_key TEXT, submitted_at INTEGER NOT NULL,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX surveys_submitted ON surveys (submitted_at);
"""
    + _ANSWERS_AND_WATERMARKS
)
_SURVEYS_V2 = """
CREATE TABLE surveys (
    source TEXT NOT NULL, id TEXT NOT NULL, ticket_source TEXT NOT NULL,
    ticket_id TEXT, ticket_key TEXT, submitted_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX surveys_key ON surveys (source, id);
CREATE INDEX surveys_submitted ON surveys (submitted_at);
"""
V2 = (
    """
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
    + _SURVEYS_V2
    + _ANSWERS_AND_WATERMARKS
)
V3 = (
    """
CREATE TABLE labels (code INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
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
    + _SURVEYS_V2
    + _ANSWERS_AND_WATERMARKS
)
V4 = (
    V3.split("CREATE TABLE surveys")[0]
    + _SURVEYS_V2
    + """
CREATE TABLE answers (
    source TEXT NOT NULL, survey_id TEXT NOT NULL, question_id TEXT NOT NULL,
    value REAL NOT NULL, scale_min REAL NOT NULL, scale_max REAL NOT NULL,
    PRIMARY KEY (source, survey_id, question_id)
) WITHOUT ROWID;
CREATE TABLE questions (
    source TEXT NOT NULL, question_id TEXT NOT NULL, name TEXT, text TEXT,
    PRIMARY KEY (source, question_id)
) WITHOUT ROWID;
CREATE TABLE sync_state (
    source TEXT NOT NULL, plan TEXT NOT NULL, phase TEXT NOT NULL,
    watermark INTEGER, token TEXT, done INTEGER NOT NULL DEFAULT 0, total INTEGER, completed_at INTEGER,
    PRIMARY KEY (source, plan, phase)
) WITHOUT ROWID;
"""
)
V5 = (
    V4
    + """
CREATE TABLE sla_clocks (
    source TEXT NOT NULL, ticket_id TEXT NOT NULL, sla TEXT NOT NULL,
    breach_at INTEGER, paused INTEGER NOT NULL, goal_seconds REAL, breached INTEGER NOT NULL,
    PRIMARY KEY (source, ticket_id, sla)
) WITHOUT ROWID;
"""
)
PAST_VERSIONS = {1: V1, 2: V2, 3: V3, 4: V4, 5: V5}

OPENED = 1_762_000_000_000_000
"""2025-11-01 12:26:40 UTC in microseconds."""


def make_store(path: Path, version: int) -> None:
    """A store as release `version` left it: one ticket, one survey with two answers, three watermarks."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.executescript(
        f"BEGIN; {PAST_VERSIONS[version]} PRAGMA application_id={APPLICATION_ID}; "
        f"PRAGMA user_version={version}; COMMIT;"
    )
    if version < 3:
        raw.execute(
            "INSERT INTO tickets VALUES ('sn', 'a1', 'INC1', ?, NULL, NULL, NULL, ?, 'open', 'Desk', NULL, 'p3', "
            "'phone', 2, 1, 'met', 'unknown', 0)",
            (OPENED, OPENED + 5),
        )
    else:
        for text in ("sn", "open", "Desk", "p3", "phone", "met", "unknown"):
            raw.execute("INSERT INTO labels (text) VALUES (?)", (text,))
        code = dict(raw.execute("SELECT text, code FROM labels").fetchall())
        raw.execute(
            "INSERT INTO tickets VALUES (?, 'a1', 'INC1', ?, NULL, NULL, NULL, ?, ?, ?, NULL, ?, ?, 2, 1, ?, ?, 0)",
            (code["sn"], OPENED, OPENED + 5, code["open"], code["Desk"], code["p3"], code["phone"], code["met"],
             code["unknown"]),
        )  # fmt: skip
    raw.execute("INSERT INTO surveys VALUES ('sn', 's1', 'sn', 'a1', 'INC1', ?)", (OPENED + 7,))
    if version >= 5:
        raw.execute("INSERT INTO sla_clocks VALUES ('sn', 'a1', 'resolution', ?, 0, 28800.0, 0)", (OPENED + 3600,))
    raw.execute("INSERT INTO answers VALUES ('sn', 's1', 'Overall satisfaction', 4, 1, 5)")
    raw.execute("INSERT INTO answers VALUES ('sn', 's1', 'Speed', 7, 0, 10)")
    if version >= 4:
        # What version 3's data became in version 4 (the 3 -> 4 step): the same records, typed state.
        for question in ("Overall satisfaction", "Speed"):
            raw.execute("INSERT INTO questions VALUES ('sn', ?, NULL, ?)", (question, question))
        raw.execute(
            "INSERT INTO sync_state (source, plan, phase, watermark) VALUES ('sn', 'incremental', 'ticket', ?)",
            (1_772_796_660_000_000,),
        )  # 2026-03-06 11:31:00 UTC
        raw.execute(
            "INSERT INTO sync_state (source, plan, phase, watermark) VALUES ('jsm', 'incremental', 'ticket', ?)",
            (1_741_370_400_250_000,),
        )  # 2025-03-07 18:00:00.25 UTC
        raw.execute(
            "INSERT INTO sync_state (source, plan, phase, token) VALUES ('csv', 'incremental', 'survey', ?)",
            ("9f2c0e7ab41d",),
        )
        raw.close()
        return
    raw.execute("INSERT INTO watermarks VALUES ('sn', 'ticket', '2026-03-06 11:31:00')")  # ServiceNow: UTC Glide
    raw.execute("INSERT INTO watermarks VALUES ('jsm', 'ticket', '2025-03-07T18:00:00.250000+00:00')")  # Jira: ISO
    raw.execute("INSERT INTO watermarks VALUES ('csv', 'survey', '9f2c0e7ab41d')")  # CSV: content digest
    raw.close()


def shape(path: Path) -> dict[str, object]:
    """Every table's columns (name, type, not null, key) and every index's columns: what the code relies on."""
    raw = sqlite3.connect(path)
    tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    result: dict[str, object] = {}
    for table in tables:
        result[table] = [(*row[1:4], row[5]) for row in raw.execute(f"PRAGMA table_info({table})")]
        without_rowid = (
            "WITHOUT ROWID"
            in raw.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0].upper()
        )
        result[f"{table} without rowid"] = without_rowid
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"):
        result[f"index {name}"] = [row[2] for row in raw.execute(f"PRAGMA index_info({name})")]
    raw.close()
    return result


@pytest.mark.parametrize("version", sorted(PAST_VERSIONS))
def test_every_past_version_upgrades_to_the_tables_of_a_new_store_with_its_data(tmp_path: Path, version: int) -> None:
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    make_store(old, version)
    upgraded = Store(old)
    Store(new).close()
    assert shape(old) == shape(new)
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS) + 1

    [ticket] = stored_tickets(upgraded, "sn")
    assert (ticket.id, ticket.key, ticket.group, ticket.priority, ticket.channel, ticket.reopens) == (
        "a1", "INC1", "Desk", "p3", "phone", 1,
    )  # fmt: skip
    # Segments (version 6) come with each ticket's next read: none yet, and the clocks a version 5 store held stay.
    assert ticket.segments == ()
    assert [clock.sla for clock in ticket.sla_clocks] == (["resolution"] if version >= 5 else [])
    [survey] = stored_surveys(upgraded, "sn")
    assert (survey.commented, survey.segments) == (False, ())
    # Before version 4 an answer's question was its display text: it becomes the id and the text.
    assert survey.answers == (
        Answer("Overall satisfaction", 4.0, 1.0, 5.0, text="Overall satisfaction"),
        Answer("Speed", 7.0, 0.0, 10.0, text="Speed"),
    )
    assert upgraded.sync_state("sn") == {
        ("incremental", "ticket"): PhaseState(
            "incremental", "ticket", watermark=datetime(2026, 3, 6, 11, 31, tzinfo=UTC)
        )
    }
    # An ISO watermark keeps its milliseconds; a digest, which is no time, becomes the token.
    assert upgraded.sync_state("jsm")[("incremental", "ticket")].watermark == datetime(
        2025, 3, 7, 18, 0, 0, 250000, tzinfo=UTC
    )
    assert upgraded.sync_state("csv") == {
        ("incremental", "survey"): PhaseState("incremental", "survey", token="9f2c0e7ab41d")
    }
    upgraded.close()


def test_a_new_ticket_column_upgrades_every_past_version_without_touching_the_old_steps(tmp_path: Path) -> None:
    # Release N + 1 adds a ticket column: one Column and one migration; the steps before stay as frozen.
    future = SCHEMA.with_table(replace(TICKETS, columns=(*TICKETS.columns, Column("escalations", "count"))))
    frozen_before = dict(MIGRATIONS)
    MIGRATIONS[SCHEMA_VERSION] = "ALTER TABLE tickets ADD COLUMN escalations INTEGER NOT NULL DEFAULT 0;"
    try:
        Store(tmp_path / "new.db", schema=future, version=SCHEMA_VERSION + 1).close()
        for version in sorted(PAST_VERSIONS):
            path = tmp_path / f"v{version}.db"
            make_store(path, version)
            Store(path, schema=future, version=SCHEMA_VERSION + 1).close()
            # (ALTER TABLE ADD COLUMN needs a default that a new store's column does not: shape() ignores defaults.)
            assert shape(path) == shape(tmp_path / "new.db"), version
            assert "escalations" in [column[0] for column in shape(path)["tickets"]]  # type: ignore[union-attr]
    finally:
        MIGRATIONS.clear()
        MIGRATIONS.update(frozen_before)
    assert frozen_before == MIGRATIONS
