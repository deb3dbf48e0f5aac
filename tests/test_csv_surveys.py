"""The CSV survey import: mapping by config, time zones, delimiters, and bad rows by line number."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from itsm_exporter.config import parse_config
from itsm_exporter.connectors.base import SchemaError, UpstreamUnavailable
from itsm_exporter.connectors.csv.config import CsvSource
from itsm_exporter.connectors.csv.connector import CsvSurveyConnector
from itsm_exporter.records import Answer, Batch, Segment, SkippedRecord, SurveyResponse
from itsm_exporter.store import Store
from tests.plans import run_plan, synced, token
from tests.storeread import stored_surveys

MAPPING = {"overall": ["Overall"], "dimensions": {"empathy": ["Cared"]}, "expectations": {"empathy": ["Expect care"]}}


def source(path: Path, **settings: object) -> CsvSource:
    config = parse_config(
        {
            "sources": [
                {"name": "sn", "kind": "demo"},
                {"name": "servqual", "kind": "csv", "path": str(path), "ticket_source": "sn", "surveys": MAPPING}
                | settings,
            ]
        }
    )
    csv_source = config.sources[1]
    assert isinstance(csv_source, CsvSource)
    return csv_source


def fetch(csv_source: CsvSource, digest: str | None = None) -> list[Batch]:
    return run_plan(CsvSurveyConnector(csv_source), {"survey": digest})


def test_rows_become_responses_with_mapped_questions_only(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "\ufeffticket,submitted_at,Overall,Cared,Expect care,Comment\n"
        "INC001,2026-11-02 10:00:00,5,4,5,great service\n"
        "INC002,2026-11-02T09:30:00+01:00,2,,4,\n",
        encoding="utf-8",
    )
    (batch,) = fetch(source(path, timezone="Europe/Paris"))
    assert batch.surveys == (
        SurveyResponse(
            source="servqual",
            id="INC001@2026-11-02T10:00:00+01:00",
            submitted_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
            answers=(Answer("Overall", 5.0), Answer("Cared", 4.0), Answer("Expect care", 5.0)),
            ticket_key="INC001",
            ticket_source="sn",
        ),
        SurveyResponse(
            source="servqual",
            id="INC002@2026-11-02T09:30:00+01:00",
            submitted_at=datetime(2026, 11, 2, 8, 30, tzinfo=UTC),
            answers=(Answer("Overall", 2.0), Answer("Expect care", 4.0)),
            ticket_key="INC002",
            ticket_source="sn",
        ),
    )
    assert batch.skipped == ()
    assert token(batch) is not None and len(token(batch) or "") == 64


def test_bad_rows_are_skipped_with_their_line_number_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "id;ticket;submitted_at;Overall;Cared;Expect care\n"
        "r1;INC001;2026-11-02 10:00;4;4;4\n"
        "r2;;2026-11-02 10:00;4;4;4\n"
        "r3;INC003;yesterday;4;4;4\n"
        "r4;INC004;2026-11-02 10:00;nine;4;4\n"
        "r5;INC005;2026-11-02 10:00;7;4;4\n"
        "r6;INC006;2026-11-02 10:00;;;\n"
        "r1;INC001;2026-11-03 10:00;1;1;1\n"
        "r8;INC008;2026-11-02 10:00;4\n"
        "r9;INC009;2026-11-02 10:00;4,5;3;3\n",
        encoding="utf-8",
    )
    (batch,) = fetch(source(path, id_column="id"))
    assert [s.id for s in batch.surveys] == ["r1", "r9"]
    assert batch.surveys[1].answers[0] == Answer("Overall", 4.5)
    assert batch.skipped == (
        SkippedRecord("survey", "r2", "no_ticket", "line 3: column 'ticket' is empty"),
        SkippedRecord(
            "survey",
            "r3",
            "bad_time",
            "line 4: 'yesterday' is not an ISO 8601 time such as 2026-11-24 14:05 or 2026-11-24T14:05:00+01:00",
        ),
        SkippedRecord("survey", "r4", "bad_value", "line 5: column 'Overall': 'nine' is not a number"),
        SkippedRecord("survey", "r5", "bad_value", "line 6: column 'Overall': 7 is outside the scale 1..5"),
        SkippedRecord("survey", "r6", "no_answers", "line 7: no mapped question is answered"),
        SkippedRecord("survey", "r1", "duplicate_id", "line 8: r1 appeared before"),
        SkippedRecord(
            "survey", "r8", "column_count", "line 9: the row has a different number of columns than the header"
        ),
    )


def test_a_missing_mapped_column_names_it(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("ticket,submitted_at,Overall\nINC1,2026-11-02 10:00,4\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"has no column 'Cared', 'Expect care' \(its columns: ticket, submitted_at"):
        fetch(source(path))


def test_an_unchanged_file_yields_nothing_and_a_vanished_file_is_an_upstream_error(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("ticket,submitted_at,Overall,Cared,Expect care\nINC1,2026-11-02 10:00,4,4,4\n", encoding="utf-8")
    csv_source = source(path)
    (first,) = fetch(csv_source)
    assert fetch(csv_source, token(first)) == []
    path.unlink()
    with pytest.raises(UpstreamUnavailable, match=r"cannot read .*export\.csv: No such file or directory"):
        fetch(csv_source, token(first))


def test_sync_into_the_store_replaces_a_reexported_response(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("id,ticket,submitted_at,Overall,Cared,Expect care\nr1,INC1,2026-11-02 10:00,4,4,4\n")
    csv_source = source(path, id_column="id")
    store = Store(tmp_path / "store.db")
    assert synced(CsvSurveyConnector(csv_source), store).records["survey"] == 1
    path.write_text("id,ticket,submitted_at,Overall,Cared,Expect care\nr1,INC1,2026-11-02 10:00,2,4,4\n")
    assert synced(CsvSurveyConnector(csv_source), store).records["survey"] == 1
    assert synced(CsvSurveyConnector(csv_source), store).records["survey"] == 0
    (stored,) = stored_surveys(store, "servqual")
    assert {a.question_id: a.value for a in stored.answers} == {"Overall": 2.0, "Cared": 4.0, "Expect care": 4.0}
    assert stored.ticket_source == "sn"


def test_segment_columns_and_a_comment_column_are_read_and_the_comment_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "ticket,submitted_at,Overall,Cared,Expect care,Department,Comment\n"
        "INC001,2026-11-02 10:00:00,1,1,5,Warehouse,Nobody called back\n"
        "INC002,2026-11-02 11:00:00,5,5,5,, \n",
        encoding="utf-8",
    )
    (batch,) = fetch(source(path, segments={"department": "Department"}, comment_column="Comment"))
    assert [(s.ticket_key, s.segments, s.commented) for s in batch.surveys] == [
        ("INC001", (Segment("department", "Warehouse"),), True),
        ("INC002", (), False),
    ]
    assert "Nobody" not in repr(batch.surveys)


def test_a_missing_segment_or_comment_column_fails_the_sync_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "ticket,submitted_at,Overall,Cared,Expect care\nINC001,2026-11-02 10:00:00,1,1,5\n", encoding="utf-8"
    )
    with pytest.raises(SchemaError, match="has no column 'Department', 'Comment'"):
        fetch(source(path, segments={"department": "Department"}, comment_column="Comment"))
