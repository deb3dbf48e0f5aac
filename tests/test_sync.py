"""The sync engine: skipped records counted and logged once, values clipped; deletions a scan lists committed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from itsm_exporter.connectors.base import ScanPage
from itsm_exporter.records import RecordKind, SkippedRecord, Ticket
from itsm_exporter.store import Store
from itsm_exporter.sync import LOGGED_VALUE_LIMIT, IncrementalPlan, sync_source
from tests.storeread import stored_tickets
from tests.test_store import token


class OneBadRecord:
    """A connector whose only page holds one unparseable record with a huge id and detail."""

    name = "sn"

    def __init__(self, record_id: str, detail: str) -> None:
        self.skip = SkippedRecord("ticket", record_id, "bad_time", detail)

    phases: tuple[RecordKind, ...] = ("ticket",)

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None) -> Iterator[ScanPage]:
        yield ScanPage(token="w", skipped=(self.skip,))

    def close(self) -> None:
        pass


def test_a_skipped_record_is_counted_and_logged_once_with_clipped_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "store.db")
    short_id, long_detail = "abc123", "x" * 100_000
    with caplog.at_level(logging.WARNING, logger="itsm_exporter.sync"):
        result = sync_source(OneBadRecord(short_id, long_detail), store, [IncrementalPlan(timedelta(0))])
        sync_source(OneBadRecord("y" * 5_000, "short"), store, [IncrementalPlan(timedelta(0))])
    assert result.skipped == {("ticket", "bad_time"): 1}
    lines = [(r.getMessage(), r.__dict__) for r in caplog.records]
    assert [message for message, _ in lines] == ["skipped record", "skipped record"]
    fields = [{key: extra[key] for key in ("source", "kind", "id", "reason", "detail")} for _, extra in lines]
    assert fields == [
        {
            "source": "sn", "kind": "ticket", "id": short_id, "reason": "bad_time",
            "detail": f"{'x' * LOGGED_VALUE_LIMIT}... (100000 characters)",
        },
        {
            "source": "sn", "kind": "ticket", "id": f"{'y' * LOGGED_VALUE_LIMIT}... (5000 characters)",
            "reason": "bad_time", "detail": "short",
        },
    ]  # fmt: skip
    assert token(store, "sn", "ticket") == "w"
    store.close()


class ExportWithDeletions:
    """A connector whose scan lists deleted tickets among the changes, as an incremental export does."""

    name = "zd"
    phases: tuple[RecordKind, ...] = ("ticket",)

    def __init__(self, pages: list[ScanPage]) -> None:
        self.pages = pages

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None) -> Iterator[ScanPage]:
        yield from self.pages

    def close(self) -> None:
        pass


def ticket(ticket_id: str, updated: datetime) -> Ticket:
    return Ticket(source="zd", id=ticket_id, key=ticket_id, opened_at=updated, state="open", updated_at=updated)


def test_tickets_a_scan_saw_deleted_leave_the_store_with_their_page(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    at = datetime(2026, 3, 1, tzinfo=UTC)
    plans = [IncrementalPlan(timedelta(0))]
    sync_source(ExportWithDeletions([ScanPage(tickets=(ticket("1", at), ticket("2", at)), position=at)]), store, plans)
    later = at + timedelta(hours=1)
    deleted = ScanPage(tickets=(ticket("3", later),), deleted_ids=("1", "unknown"), position=later)
    result = sync_source(ExportWithDeletions([deleted]), store, plans)
    assert sorted(t.id for t in stored_tickets(store, "zd")) == ["2", "3"]
    assert result.deleted == {"ticket": 1}  # only stored tickets count as removed
    store.close()
