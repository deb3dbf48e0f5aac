"""The store: exact round-trips, upserts, atomic sync state, deletions, and clear errors for unusable files."""

from __future__ import annotations

import pickle
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from itsm_exporter.frames import Frames
from itsm_exporter.records import Answer, Batch, PhaseState, Segment, SlaClock, SurveyResponse, Ticket
from itsm_exporter.store import APPLICATION_ID, SCHEMA_VERSION, Store, StoreError
from tests.storeread import delete_tickets, stored_count, stored_surveys, stored_tickets
from tests.test_migrations import V1 as SCHEMA_V1

T0 = datetime(2026, 11, 1, 9, 30, 15, 123457, tzinfo=UTC)


def ticket(id: str, **changes: object) -> Ticket:
    fields: dict[str, object] = {
        "source": "sn",
        "id": id,
        "key": f"INC{id}",
        "opened_at": T0,
        "updated_at": T0 + timedelta(hours=2),
        "state": "resolved",
        "first_response_at": T0 + timedelta(minutes=7),
        "resolved_at": T0 + timedelta(hours=2),
        "priority": "p2",
        "group": "Service Desk",
        "channel": "email",
        "reassignments": 1,
        "reopens": 0,
        "sla_response": "met",
        "sla_resolution": "breached",
        "complaint": True,
    }
    fields.update(changes)
    return Ticket(**fields)  # type: ignore[arg-type]


def survey(id: str, ticket_id: str, rating: float, **changes: object) -> SurveyResponse:
    fields: dict[str, object] = {
        "source": "sn",
        "id": id,
        "submitted_at": T0 + timedelta(days=1),
        "answers": (Answer("Overall", rating), Answer("Speed", 3.0, 0.0, 10.0)),
        "ticket_id": ticket_id,
    }
    fields.update(changes)
    return SurveyResponse(**fields)  # type: ignore[arg-type]


def mark(kind: str, value: str) -> PhaseState:
    """A sync state whose position is the token `value` (what a CSV export's digest is)."""
    return PhaseState(plan="incremental", phase=kind, token=value)


def token(store: Store, source: str, kind: str) -> str | None:
    state = store.sync_state(source).get(("incremental", kind))
    return None if state is None else state.token


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.db")


def test_records_round_trip_exactly_including_microseconds_and_none(store: Store) -> None:
    sparse = ticket("2", state="open", first_response_at=None, resolved_at=None, priority=None, group=None)
    store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("1"), sparse), state=mark("ticket", "w1")))
    store.commit_batch("sn", Batch(kind="survey", surveys=(survey("s1", "1", 4.0),), state=mark("survey", "s1")))
    assert stored_tickets(store, "sn") == [ticket("1"), sparse]
    assert stored_surveys(store, "sn") == [survey("s1", "1", 4.0)]
    assert (token(store, "sn", "ticket"), token(store, "sn", "survey")) == ("w1", "s1")
    assert token(store, "other", "ticket") is None


def test_upsert_replaces_by_source_and_id_and_answers_of_a_reread_survey(store: Store) -> None:
    store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("1"), ticket("2")), state=mark("ticket", "a")))
    store.commit_batch("jsm", Batch(kind="ticket", tickets=(ticket("1", source="jsm"),), state=mark("ticket", "x")))
    store.commit_batch(
        "sn", Batch(kind="ticket", tickets=(ticket("1", state="closed", reopens=2),), state=mark("ticket", "b"))
    )
    edited = survey("s1", "1", 2.0, answers=(Answer("Overall", 2.0),))
    store.commit_batch("sn", Batch(kind="survey", surveys=(survey("s1", "1", 5.0),)))
    store.commit_batch("sn", Batch(kind="survey", surveys=(edited,)))
    assert stored_tickets(store, "sn") == [ticket("1", state="closed", reopens=2), ticket("2")]
    assert stored_count(store, "sn", "ticket") == 2
    assert stored_count(store, "jsm", "ticket") == 1
    assert stored_surveys(store, "sn") == [edited]
    assert token(store, "sn", "ticket") == "b"
    assert token(store, "sn", "survey") is None  # batches without a watermark leave it alone


def test_a_failing_batch_stores_neither_its_records_nor_its_watermark(store: Store, tmp_path: Path) -> None:
    store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("1"),), state=mark("ticket", "before")))
    saboteur = sqlite3.connect(tmp_path / "store.db")
    saboteur.execute("CREATE TRIGGER fail BEFORE INSERT ON surveys BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    saboteur.commit()
    saboteur.close()
    batch = Batch(
        kind="ticket", tickets=(ticket("2"),), surveys=(survey("s1", "2", 5.0),), state=mark("ticket", "after")
    )
    with pytest.raises(StoreError, match="could not commit a batch of sn: disk on fire"):
        store.commit_batch("sn", batch)
    assert stored_tickets(store, "sn") == [ticket("1")]
    assert token(store, "sn", "ticket") == "before"


def test_a_record_of_another_source_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="committed under 'jsm'"):
        store.commit_batch("jsm", Batch(kind="ticket", tickets=(ticket("1"),)))
    assert stored_count(store, "jsm", "ticket") == 0


def test_load_frames_equals_frames_built_from_the_same_records(store: Store) -> None:
    clocks = (SlaClock("response", T0 + timedelta(hours=1), goal_seconds=3600.0), SlaClock("resolution", None, True))
    tickets = [
        ticket("1"),
        ticket("2", state="open", resolved_at=None, group=None, sla_clocks=clocks),
        ticket("3", source="jsm", state="open", sla_clocks=(SlaClock("resolution", T0, breached=True),)),
    ]
    surveys = [survey("s1", "1", 4.0), survey("s2", "9", 1.0, ticket_source="sn", source="csv", ticket_key="INC9")]
    for source in ("sn", "jsm", "csv"):
        store.commit_batch(
            source,
            Batch(
                kind="ticket",
                tickets=tuple(t for t in tickets if t.source == source),
                surveys=tuple(s for s in surveys if s.source == source),
            ),
        )
    expected = Frames.from_records(tickets, surveys)
    loaded = store.load_frames()
    for name in ("tickets", "surveys", "answers", "sla_clocks"):
        got = getattr(loaded, name).sort_values(list(getattr(loaded, name).columns[:3])).reset_index(drop=True)
        want = getattr(expected, name).sort_values(list(getattr(expected, name).columns[:3]))
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_exact=False, rtol=0, atol=1e-6)
    only_sn = store.load_frames(["sn"])
    assert sorted(only_sn.tickets["id"]) == ["1", "2"]
    assert list(only_sn.answers["survey_id"]) == ["s1", "s1"]
    assert store.load_frames([]).tickets.empty


def test_loaded_frames_pickle_with_every_table(store: Store) -> None:
    """bench/collectors.py saves frames with pickle and loads them into another process."""
    clocks = (SlaClock("response", T0),)
    store.commit_batch(
        "sn", Batch(kind="ticket", tickets=(ticket("1", sla_clocks=clocks),), surveys=(survey("s", "1", 4.0),))
    )
    frames = store.load_frames()
    again = pickle.loads(pickle.dumps(frames, protocol=pickle.HIGHEST_PROTOCOL))
    assert list(again.tables) == list(frames.tables) == [
        "tickets", "surveys", "answers", "sla_clocks", "ticket_segments", "survey_segments", "questions",
    ]  # fmt: skip
    for name, frame in frames.tables.items():
        pd.testing.assert_frame_equal(again.tables[name], frame)


def test_load_frames_holds_one_string_per_label_value_and_per_survey_id(store: Store) -> None:
    """sqlite3 returns a new str per cell; the frames must reference one object per distinct value instead."""
    tickets = tuple(ticket(str(n), group="Service Desk") for n in range(3))
    surveys = tuple(survey(f"s{n}", str(n), 4.0) for n in range(3))
    store.commit_batch("sn", Batch(kind="ticket", tickets=tickets, surveys=surveys))
    frames = store.load_frames()
    groups = frames.tickets["group"].to_numpy(dtype=object)
    assert len({id(value) for value in groups}) == 1
    survey_ids = {value: id(value) for value in frames.surveys["id"].to_numpy(dtype=object)}
    answer_ids = frames.answers["survey_id"].to_numpy(dtype=object)
    assert len(answer_ids) == 2 * len(survey_ids)  # two answers per survey
    assert all(id(value) == survey_ids[value] for value in answer_ids)


def test_load_frames_since_keeps_recent_events_backlog_and_tickets_of_recent_surveys(store: Store) -> None:
    old = T0 - timedelta(days=200)
    old_done = ticket("old", opened_at=old, updated_at=old, resolved_at=old, first_response_at=old)
    old_open = ticket("backlog", opened_at=old, updated_at=old, state="on_hold", resolved_at=None)
    old_surveyed = ticket("surveyed", opened_at=old, updated_at=old, resolved_at=old, first_response_at=old)
    store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("new"), old_done, old_open, old_surveyed)))
    store.commit_batch(
        "sn",
        Batch(
            kind="survey",
            surveys=(survey("recent", "surveyed", 5.0), survey("ancient", "old", 1.0, submitted_at=old)),
        ),
    )
    frames = store.load_frames(["sn"], since=T0 - timedelta(days=30))
    assert sorted(frames.tickets["id"]) == ["backlog", "new", "surveyed"]
    assert list(frames.surveys["id"]) == ["recent"]
    assert sorted(set(frames.answers["survey_id"])) == ["recent"]


def test_reopening_keeps_data_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = Store(path)
    first.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("1"),), state=mark("ticket", "w")))
    first.close()
    again = Store(path)
    assert stored_tickets(again, "sn") == [ticket("1")]
    assert token(again, "sn", "ticket") == "w"
    again.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_sqlite_gives_a_clear_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StoreError, match=r"notes\.db: not a usable itsm-exporter store: file is not a database"):
        Store(path)
    assert path.read_bytes() == b"these are my notes, not a database" * 100


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "grafana.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE dashboard (id INTEGER)")
    other.commit()
    other.close()
    with pytest.raises(StoreError, match="a SQLite file of another application; refusing to touch it"):
        Store(path)


def test_a_store_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer than this release"):
        Store(path)


def test_an_unreachable_path_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"missing/dir/store\.db: cannot open"):
        Store(tmp_path / "missing" / "dir" / "store.db")


# The schema of version 1 exactly as release files held it: tests/test_migrations.py keeps every past version.


def test_a_version_1_store_is_migrated_with_every_record_kept(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.executescript(f"BEGIN; {SCHEMA_V1} PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version=1; COMMIT;")
    micros = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
    raw.execute(
        "INSERT INTO tickets VALUES ('sn', 'a1', 'INC1', ?, NULL, NULL, NULL, ?, 'open', 'Desk', NULL, 'p3', "
        "'phone', 2, 1, 'met', 'unknown', 0)",
        (micros, micros + 5),
    )
    raw.execute("INSERT INTO surveys VALUES ('sn', 's1', 'sn', 'a1', 'INC1', ?)", (micros + 7,))
    raw.execute("INSERT INTO answers VALUES ('sn', 's1', 'overall', 4, 1, 5)")
    raw.execute("INSERT INTO watermarks VALUES ('sn', 'ticket', 'w1')")
    raw.close()

    store = Store(path)
    expected_ticket = Ticket(
        source="sn", id="a1", key="INC1", opened_at=T0, updated_at=T0 + timedelta(microseconds=5), state="open",
        group="Desk", priority="p3", channel="phone", reassignments=2, reopens=1, sla_response="met",
    )  # fmt: skip
    assert stored_tickets(store, "sn") == [expected_ticket]
    assert stored_surveys(store, "sn") == [
        SurveyResponse(
            source="sn", id="s1", submitted_at=T0 + timedelta(microseconds=7),
            answers=(Answer("overall", 4.0, 1.0, 5.0, text="overall"),), ticket_id="a1", ticket_key="INC1",
        )
    ]  # fmt: skip
    assert token(store, "sn", "ticket") == "w1"
    # The upsert needs the new unique key: an update replaces, a new id adds.
    store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("a1"), ticket("b2")), state=mark("ticket", "w2")))
    assert [t.id for t in stored_tickets(store, "sn")] == ["a1", "b2"]
    assert stored_tickets(store, "sn")[0] == ticket("a1")
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    assert raw.execute("SELECT name FROM sqlite_master WHERE name LIKE '%_v_'").fetchall() == []
    indexes = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"tickets_key", "surveys_key", "surveys_submitted"} <= indexes
    # Schema 3 stores the ticket labels as codes of the labels table.
    texts = dict(raw.execute("SELECT code, text FROM labels").fetchall())
    row = raw.execute("SELECT source, state, grp, service, priority, channel FROM tickets WHERE id = 'a1'").fetchone()
    assert all(isinstance(code, int) or code is None for code in row)
    expected = ticket("a1")
    assert [texts.get(code) for code in row] == [
        expected.source,
        expected.state,
        expected.group,
        expected.service,
        expected.priority,
        expected.channel,
    ]


def test_label_codes_of_a_rolled_back_batch_are_forgotten(tmp_path: Path) -> None:
    # A rolled-back batch had coded a new group; another connection then commits that code for
    # another text. Reusing the stale code would show the other group's name.
    path = tmp_path / "store.db"
    first, second = Store(path), Store(path)
    with pytest.raises(StoreError):
        first.commit_batch(
            "sn", Batch(kind="ticket", tickets=(ticket("1", group="Rolled back"), ticket("2", reassignments=2**70)))
        )
    second.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("3", group="Network"),)))
    first.commit_batch(
        "sn", Batch(kind="ticket", tickets=(ticket("1", group="Rolled back"), ticket("4", group="Network")))
    )
    groups = {t.id: t.group for t in stored_tickets(first, "sn")}
    assert groups == {"1": "Rolled back", "3": "Network", "4": "Network"}
    frames = second.load_frames(["sn"])
    assert dict(zip(frames.tickets["id"], frames.tickets["group"], strict=True)) == groups
    first.close()
    second.close()


def test_a_load_reads_one_snapshot_while_another_connection_commits(tmp_path: Path) -> None:
    # Another connection commits a ticket with a new group just as the load starts reading tickets,
    # after it read the label codes (injected through the statement trace, which fires before each
    # statement runs). Read as separate snapshots, that ticket's group code could not be named.
    path = tmp_path / "store.db"
    reader, writer = Store(path), Store(path)
    reader.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("1", group="Network"),)))
    interleaved: list[str] = []

    def commit_as_tickets_are_read(statement: str) -> None:
        if statement.startswith("SELECT") and "FROM tickets" in statement and not interleaved:
            interleaved.append(statement)
            writer.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("2", group="Brand new group"),)))

    reader._reader.set_trace_callback(commit_as_tickets_are_read)
    frames = reader.load_frames(["sn"])
    reader._reader.set_trace_callback(None)
    assert interleaved, "the other connection's commit was not interleaved with the load"
    assert list(frames.tickets["id"]) == ["1"]  # the load's snapshot began before that commit
    later = reader.load_frames(["sn"])
    groups = dict(zip(later.tickets["id"], later.tickets["group"], strict=True))
    assert groups == {"1": "Network", "2": "Brand new group"}
    reader.close()
    writer.close()


def test_a_value_sqlite_cannot_hold_fails_the_whole_batch_and_keeps_the_watermark(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("1"),), state=mark("ticket", "w1")))
    huge = ticket("2", reassignments=2**70)
    surrogate = ticket("3", group="Desk \ud83d")
    for bad in (huge, surrogate):
        with pytest.raises(StoreError, match="could not commit a batch of sn"):
            store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("4"), bad), state=mark("ticket", "w2")))
    assert [t.id for t in stored_tickets(store, "sn")] == ["1"]
    assert token(store, "sn", "ticket") == "w1"
    store.close()


def test_deleted_tickets_leave_with_the_batch_and_their_surveys_stay(store: Store) -> None:
    store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("1"), ticket("2"), ticket("3"))))
    store.commit_batch("jsm", Batch(kind="ticket", tickets=(ticket("1", source="jsm"),)))
    store.commit_batch("sn", Batch(kind="survey", surveys=(survey("s1", "2", 4.0),)))
    store.commit_batch("sn", Batch(kind="ticket", deleted_ticket_ids=("2", "missing"), state=mark("ticket", "d")))
    assert [t.id for t in stored_tickets(store, "sn")] == ["1", "3"]
    assert [t.id for t in stored_tickets(store, "jsm")] == ["1"]  # the same id of another source stays
    # A response about a deleted ticket stays: it counts under `unknown`, as one whose ticket was never read.
    assert [s.id for s in stored_surveys(store, "sn")] == ["s1"]
    assert token(store, "sn", "ticket") == "d"
    assert delete_tickets(store, "sn", ["1", "1", "nope"]) == 1
    assert delete_tickets(store, "unknown-source", ["3"]) == 0
    assert [t.id for t in stored_tickets(store, "sn")] == ["3"]


def test_a_deletion_rolls_back_with_its_batch(store: Store) -> None:
    store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("1"), ticket("2"))))
    with pytest.raises(StoreError):
        store.commit_batch(
            "sn", Batch(kind="ticket", tickets=(ticket("3", reassignments=2**70),), deleted_ticket_ids=("1",))
        )
    assert [t.id for t in stored_tickets(store, "sn")] == ["1", "2"]


def test_a_snapshot_read_in_progress_does_not_block_a_commit(tmp_path: Path) -> None:
    # The read runs on the store's own reader connection: a sync thread's commit goes through while
    # the snapshot's read transaction is open, and the snapshot still sees one consistent state.
    store = Store(tmp_path / "store.db")
    store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("1"),)))
    committed: list[str] = []

    def commit_during_the_read(statement: str) -> None:
        if statement.startswith("SELECT") and "FROM tickets" in statement and not committed:
            committed.append(statement)
            store.commit_batch("sn", Batch(kind="ticket", tickets=(ticket("2"),)))  # the writer's lock is free

    store._reader.set_trace_callback(commit_during_the_read)
    frames = store.load_frames(["sn"])
    store._reader.set_trace_callback(None)
    assert committed
    assert list(frames.tickets["id"]) == ["1"]  # the read's snapshot began before the commit
    assert sorted(store.load_frames(["sn"]).tickets["id"]) == ["1", "2"]
    store.close()


def test_sla_clocks_round_trip_and_leave_with_a_reread_ticket(store: Store) -> None:
    running = ticket(
        "1",
        state="open",
        resolved_at=None,
        sla_clocks=(
            SlaClock("response", T0 + timedelta(minutes=30), paused=False, goal_seconds=1800.0),
            SlaClock("resolution", None, paused=True, goal_seconds=None, breached=True),
        ),
    )
    store.commit_batch("sn", Batch(kind="ticket", tickets=(running,)))
    assert stored_tickets(store, "sn") == [running]
    # Re-read once resolved: its clocks completed upstream, so none is running any more.
    done = ticket("1")
    store.commit_batch("sn", Batch(kind="ticket", tickets=(done,)))
    assert stored_tickets(store, "sn") == [done]
    assert store.load_frames().sla_clocks.empty


# Customer segments (issue 28): child tables declared in records.TABLES and nothing else; the ticket and the
# survey response list theirs.


def segmented(id: str, *segments: tuple[str, str], **changes: object) -> Ticket:
    return ticket(id, segments=tuple(Segment(*s) for s in segments), **changes)


def segment_rows(path: Path) -> list[tuple[str, str, str, str]]:
    raw = sqlite3.connect(path)
    rows = raw.execute("SELECT * FROM ticket_segments ORDER BY source, ticket_id, name").fetchall()
    raw.close()
    return rows


def test_a_declared_child_table_is_stored_replaced_per_parent_and_deleted_with_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    one = segmented("1", ("customer", "Acme"), ("tier", "gold"))
    two = segmented("2", ("tier", "silver"))
    store.commit_batch("sn", Batch(kind="ticket", tickets=(one, two)))
    store.commit_batch("jsm", Batch(kind="ticket", tickets=(segmented("1", ("tier", "gold"), source="jsm"),)))
    assert stored_tickets(store, "sn") == [one, two]
    # Re-read without its customer: the ticket's old rows go, the other ticket's stay.
    edited = segmented("1", ("tier", "platinum"))
    store.commit_batch("sn", Batch(kind="ticket", tickets=(edited,)))
    assert stored_tickets(store, "sn") == [edited, two]
    # Deleted upstream: its rows leave with it, the same id of another source keeps its own.
    store.commit_batch("sn", Batch(kind="ticket", deleted_ticket_ids=("1",)))
    assert segment_rows(tmp_path / "store.db") == [("jsm", "1", "tier", "gold"), ("sn", "2", "tier", "silver")]
    store.close()


def test_a_declared_child_table_is_loaded_with_the_tickets_of_the_window(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    old = T0 - timedelta(days=200)
    recent = segmented("new", ("tier", "gold"), ("customer", "Acme"))
    backlog = segmented("backlog", ("tier", "silver"), opened_at=old, updated_at=old, state="open", resolved_at=None)
    done = segmented("old", ("tier", "bronze"), opened_at=old, updated_at=old, resolved_at=old, first_response_at=old)
    store.commit_batch("sn", Batch(kind="ticket", tickets=(recent, backlog, done)))
    store.commit_batch("jsm", Batch(kind="ticket", tickets=(segmented("j", ("tier", "gold"), source="jsm"),)))
    frames = store.load_frames()
    expected = Frames.from_records(
        [recent, backlog, done, segmented("j", ("tier", "gold"), source="jsm")],
    )
    key = ["source", "ticket_id", "name"]
    pd.testing.assert_frame_equal(
        frames.tables["ticket_segments"].sort_values(key, ignore_index=True),
        expected.tables["ticket_segments"].sort_values(key, ignore_index=True),
    )
    assert list(expected.tables["ticket_segments"].columns) == ["source", "ticket_id", "name", "value"]
    window = store.load_frames(["sn"], since=T0 - timedelta(days=30)).tables["ticket_segments"]
    assert sorted(zip(window["ticket_id"], window["name"], strict=True)) == [
        ("backlog", "tier"),
        ("new", "customer"),
        ("new", "tier"),
    ]
    assert sorted(store.load_frames(["jsm"]).tables["ticket_segments"]["ticket_id"]) == ["j"]
    store.close()


def test_a_window_load_gives_each_child_row_its_parent_row(tmp_path: Path) -> None:
    """The rowids the window's join reads anyway name each segment row's (and answer's) parent row: the collectors
    need no join by key. Tickets stored out of key order, one edited later, one without segments."""
    store = Store(tmp_path / "store.db")
    tickets = [segmented(name, ("tier", f"t-{name}"), ("customer", "Acme")) for name in ("c", "a", "b")]
    store.commit_batch("sn", Batch(kind="ticket", tickets=(*tickets, segmented("plain"))))
    store.commit_batch("sn", Batch(kind="ticket", tickets=(replace(tickets[1], segments=(Segment("tier", "x"),)),)))
    store.commit_batch("sn", Batch(kind="survey", surveys=(survey("s1", "a", 4.0), survey("s2", "c", 2.0))))
    frames = store.load_frames(["sn"], since=T0 - timedelta(days=30))
    for child, parent, key in (("ticket_segments", "tickets", "ticket_id"), ("answers", "surveys", "survey_id")):
        rows = frames.parent_rows[child]
        assert len(rows) == len(frames.tables[child]) > 0
        assert list(frames.tables[parent]["id"].iloc[rows]) == list(frames.tables[child][key])
    # A load without a window joins nothing: the collectors join by key.
    assert store.load_frames(["sn"]).parent_rows == {}
    store.close()


def test_a_response_keeps_whether_it_was_commented_and_its_own_segments(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    written = replace(survey("s1", "1", 1.0), commented=True, segments=(Segment("department", "Finance"),))
    silent = survey("s2", "2", 5.0)
    store.commit_batch("sn", Batch(kind="survey", surveys=(written, silent)))
    assert stored_surveys(store, "sn") == [written, silent]
    frames = store.load_frames()
    assert list(frames.surveys["commented"]) == [True, False]
    assert frames.tables["survey_segments"].values.tolist() == [["sn", "s1", "department", "Finance"]]
    pd.testing.assert_frame_equal(
        frames.tables["survey_segments"], Frames.from_records([], [written, silent]).tables["survey_segments"]
    )
    # Re-read without its segment: the old row goes with the edit.
    store.commit_batch("sn", Batch(kind="survey", surveys=(replace(written, segments=()),)))
    assert store.load_frames().tables["survey_segments"].empty
    store.close()


def test_segments_are_listed_by_name_and_one_name_is_one_value() -> None:
    listed = segmented("1", ("tier", "gold"), ("customer", "Acme"))
    assert [s.name for s in listed.segments] == ["customer", "tier"]
    with pytest.raises(ValueError, match="a segment is given twice"):
        segmented("1", ("tier", "gold"), ("tier", "silver"))
    with pytest.raises(ValueError, match="needs a name and a value"):
        Segment("tier", "")
