"""One sync of one source: fetch batches from its connector and commit each with its watermark."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from itsm_exporter.connectors.base import Connector
from itsm_exporter.records import RECORD_KINDS, Batch, RecordKind
from itsm_exporter.store import Store

log = logging.getLogger(__name__)


LOGGED_VALUE_LIMIT: Final = 200
"""Characters of an upstream value quoted in a log line: a 100k-character field must not become a 100k line."""


def _clip(text: str) -> str:
    return text if len(text) <= LOGGED_VALUE_LIMIT else f"{text[:LOGGED_VALUE_LIMIT]}... ({len(text)} characters)"


ProgressFn = Callable[[str, Batch, float], None]
"""Called after each committed batch with the source name, the batch and seconds since start."""


@dataclass
class SyncResult:
    """What one sync stored: records by kind and skipped records by (kind, reason)."""

    source: str
    records: Counter[str] = field(default_factory=Counter)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    batches: int = 0
    duration_seconds: float = 0.0


def sync_source(
    connector: Connector,
    store: Store,
    *,
    on_batch: ProgressFn | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    monotonic: Callable[[], float] = time.monotonic,
) -> SyncResult:
    """Fetch everything newer than the stored watermarks; each batch commits atomically.

    A connector error propagates after the batches before it were committed: their watermark is
    valid, so the next sync resumes there instead of starting over.
    """
    started = monotonic()
    result = SyncResult(source=connector.name)
    watermarks: dict[RecordKind, str | None] = {kind: store.watermark(connector.name, kind) for kind in RECORD_KINDS}
    for batch in connector.fetch(watermarks):
        if should_stop():
            log.info("sync interrupted source=%s batches_committed=%d", connector.name, result.batches)
            break
        store.commit_batch(connector.name, batch)
        result.batches += 1
        result.records[batch.kind] += len(batch.tickets) + len(batch.surveys)
        for skipped in batch.skipped:
            result.skipped[(skipped.kind, skipped.reason)] += 1
            log.warning(
                "skipped record source=%s kind=%s id=%s reason=%s detail=%s",
                connector.name, skipped.kind, _clip(skipped.record_id), skipped.reason, _clip(skipped.detail),
            )  # fmt: skip
        if on_batch is not None:
            on_batch(connector.name, batch, monotonic() - started)
    result.duration_seconds = monotonic() - started
    return result
