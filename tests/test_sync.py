"""The sync engine: skipped records are counted and logged once, with upstream values clipped."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from itsm_exporter.records import Batch, RecordKind, SkippedRecord
from itsm_exporter.store import Store
from itsm_exporter.sync import LOGGED_VALUE_LIMIT, sync_source


class OneBadRecord:
    """A connector whose only page holds one unparseable record with a huge id and detail."""

    name = "sn"

    def __init__(self, record_id: str, detail: str) -> None:
        self.skip = SkippedRecord("ticket", record_id, "bad_time", detail)

    def fetch(self, watermarks: Mapping[RecordKind, str | None]) -> Iterator[Batch]:
        yield Batch(kind="ticket", watermark="w", skipped=(self.skip,))

    def close(self) -> None:
        pass


def test_a_skipped_record_is_counted_and_logged_once_with_clipped_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "store.db")
    short_id, long_detail = "abc123", "x" * 100_000
    with caplog.at_level(logging.WARNING, logger="itsm_exporter.sync"):
        result = sync_source(OneBadRecord(short_id, long_detail), store)
        sync_source(OneBadRecord("y" * 5_000, "short"), store)
    assert result.skipped == {("ticket", "bad_time"): 1}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0] == (
        f"skipped record source=sn kind=ticket id={short_id} reason=bad_time "
        f"detail={'x' * LOGGED_VALUE_LIMIT}... (100000 characters)"
    )
    assert lines[1] == (
        f"skipped record source=sn kind=ticket id={'y' * LOGGED_VALUE_LIMIT}... (5000 characters) "
        "reason=bad_time detail=short"
    )
    assert store.watermark("sn", "ticket") == "w"
    store.close()
