"""Frozen SQL that upgrades a store from schema version N to N + 1.

Each step is literal SQL as it was released, never built from today's table definitions: a new
column in schema.py must not change how a store of an older version is upgraded. A new schema
version adds one entry here and bumps schema.SCHEMA_VERSION; tests/test_migrations.py checks that
a store of every past version, upgraded, has exactly the tables of a new store.
"""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[dict[int, str]] = {
    # 1 -> 2: tickets and surveys from WITHOUT ROWID tables to rowid tables with a unique key index.
    1: """
ALTER TABLE tickets RENAME TO tickets_v1;
DROP INDEX surveys_submitted;
ALTER TABLE surveys RENAME TO surveys_v1;
CREATE TABLE tickets (
    source TEXT NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL,
    opened_at INTEGER NOT NULL, first_response_at INTEGER, resolved_at INTEGER, closed_at INTEGER,
    updated_at INTEGER NOT NULL,
    state TEXT NOT NULL, grp TEXT, service TEXT, priority TEXT, channel TEXT,
    reassignments INTEGER NOT NULL, reopens INTEGER NOT NULL,
    sla_response TEXT NOT NULL, sla_resolution TEXT NOT NULL, complaint INTEGER NOT NULL
);
CREATE UNIQUE INDEX tickets_key ON tickets (source, id);
CREATE TABLE surveys (
    source TEXT NOT NULL, id TEXT NOT NULL, ticket_source TEXT NOT NULL,
    ticket_id TEXT, ticket_key TEXT, submitted_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX surveys_key ON surveys (source, id);
CREATE INDEX surveys_submitted ON surveys (submitted_at);
INSERT INTO tickets SELECT * FROM tickets_v1;
INSERT INTO surveys SELECT * FROM surveys_v1;
DROP TABLE tickets_v1;
DROP TABLE surveys_v1;
""",
    # 2 -> 3: ticket label columns become codes of the new labels table.
    2: """
CREATE TABLE labels (code INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
INSERT INTO labels (text)
    SELECT source FROM tickets WHERE source IS NOT NULL
    UNION SELECT state FROM tickets WHERE state IS NOT NULL
    UNION SELECT grp FROM tickets WHERE grp IS NOT NULL
    UNION SELECT service FROM tickets WHERE service IS NOT NULL
    UNION SELECT priority FROM tickets WHERE priority IS NOT NULL
    UNION SELECT channel FROM tickets WHERE channel IS NOT NULL
    UNION SELECT sla_response FROM tickets WHERE sla_response IS NOT NULL
    UNION SELECT sla_resolution FROM tickets WHERE sla_resolution IS NOT NULL;
DROP INDEX tickets_key;
ALTER TABLE tickets RENAME TO tickets_v2;
CREATE TABLE tickets (
    source INTEGER NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL,
    opened_at INTEGER NOT NULL, first_response_at INTEGER, resolved_at INTEGER, closed_at INTEGER,
    updated_at INTEGER NOT NULL,
    state INTEGER NOT NULL, grp INTEGER, service INTEGER, priority INTEGER, channel INTEGER,
    reassignments INTEGER NOT NULL, reopens INTEGER NOT NULL,
    sla_response INTEGER NOT NULL, sla_resolution INTEGER NOT NULL, complaint INTEGER NOT NULL
);
CREATE UNIQUE INDEX tickets_key ON tickets (source, id);
INSERT INTO tickets SELECT
    (SELECT code FROM labels WHERE text = t.source), t.id, t.key,
    t.opened_at, t.first_response_at, t.resolved_at, t.closed_at, t.updated_at,
    (SELECT code FROM labels WHERE text = t.state), (SELECT code FROM labels WHERE text = t.grp),
    (SELECT code FROM labels WHERE text = t.service), (SELECT code FROM labels WHERE text = t.priority),
    (SELECT code FROM labels WHERE text = t.channel),
    t.reassignments, t.reopens,
    (SELECT code FROM labels WHERE text = t.sla_response), (SELECT code FROM labels WHERE text = t.sla_resolution),
    t.complaint
FROM tickets_v2 t ORDER BY t.rowid;
DROP TABLE tickets_v2;
""",
    # 3 -> 4: typed sync state per plan and phase instead of one watermark string per kind; survey
    # answers keyed by the question's upstream identity, with a questions table. Before version 4
    # the answer's `question` was its display text, so it becomes both the id and the text. A stored
    # watermark SQLite reads as a time (ServiceNow's UTC Glide time, Jira's and the demo's ISO time)
    # becomes microseconds (to the millisecond: each plan re-reads an overlap behind it anyway);
    # anything else (a CSV export's content digest) becomes the token.
    3: """
CREATE TABLE sync_state (
    source TEXT NOT NULL, plan TEXT NOT NULL, phase TEXT NOT NULL,
    watermark INTEGER, token TEXT, done INTEGER NOT NULL DEFAULT 0, total INTEGER, completed_at INTEGER,
    PRIMARY KEY (source, plan, phase)
) WITHOUT ROWID;
INSERT INTO sync_state (source, plan, phase, watermark, token)
    SELECT source, 'incremental', kind,
        CASE WHEN strftime('%s', value) IS NOT NULL
            THEN CAST(strftime('%s', value) AS INTEGER) * 1000000
                + CAST(substr(strftime('%f', value), 4) AS INTEGER) * 1000
        END,
        CASE WHEN strftime('%s', value) IS NULL THEN value END
    FROM watermarks;
DROP TABLE watermarks;
CREATE TABLE questions (
    source TEXT NOT NULL, question_id TEXT NOT NULL, name TEXT, text TEXT,
    PRIMARY KEY (source, question_id)
) WITHOUT ROWID;
INSERT INTO questions (source, question_id, name, text) SELECT DISTINCT source, question, NULL, question FROM answers;
ALTER TABLE answers RENAME COLUMN question TO question_id;
""",
    # 4 -> 5: running SLA clocks, a child table of tickets. Stored tickets have none until re-read:
    # an open ticket gets its clocks at its next upstream update (docs/operations.md, "Upgrading").
    4: """
CREATE TABLE sla_clocks (
    source TEXT NOT NULL, ticket_id TEXT NOT NULL, sla TEXT NOT NULL,
    breach_at INTEGER, paused INTEGER NOT NULL, goal_seconds REAL, breached INTEGER NOT NULL,
    PRIMARY KEY (source, ticket_id, sla)
) WITHOUT ROWID;
""",
    # 5 -> 6: customer-side segments of tickets and of survey responses (child tables), and whether a response
    # carries a comment. Stored records have none until re-read (the segment plan re-reads a window's tickets).
    5: """
CREATE TABLE ticket_segments (
    source TEXT NOT NULL, ticket_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (source, ticket_id, name)
) WITHOUT ROWID;
CREATE TABLE survey_segments (
    source TEXT NOT NULL, survey_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (source, survey_id, name)
) WITHOUT ROWID;
ALTER TABLE surveys ADD COLUMN commented INTEGER NOT NULL DEFAULT 0;
""",
}
