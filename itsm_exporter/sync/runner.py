"""One sync of one source, and the runner that keeps its health: shared by `once` and the daemon."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Protocol

from itsm_exporter.config import Config
from itsm_exporter.connectors.base import Connector, ConnectorError, RequestObserver
from itsm_exporter.health import SourceHealth
from itsm_exporter.records import Batch
from itsm_exporter.source_config import SourceBase
from itsm_exporter.store import Store
from itsm_exporter.sync.plans import RECONCILE, Plan, plans_for

log = logging.getLogger(__name__)

LOGGED_VALUE_LIMIT: Final = 200
"""Characters of an upstream value quoted in a log line: a 100k-character field must not become a 100k line."""


def clip(text: str) -> str:
    return text if len(text) <= LOGGED_VALUE_LIMIT else f"{text[:LOGGED_VALUE_LIMIT]}... ({len(text)} characters)"


ProgressFn = Callable[[str, Batch, float], None]
"""Called after each committed batch with the source name, the batch and seconds since start."""


@dataclass
class SyncResult:
    """What one sync stored: records by kind and skipped records by (kind, reason)."""

    source: str
    records: Counter[str] = field(default_factory=Counter)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    """Stored records removed because they were deleted upstream, by kind."""
    reconciled_at: datetime | None = None
    """When this sync's reconciliation ended; None when none ran."""
    batches: int = 0
    duration_seconds: float = 0.0


def sync_source(
    connector: Connector,
    store: Store,
    plans: Sequence[Plan],
    *,
    on_batch: ProgressFn | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    monotonic: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SyncResult:
    """Run `plans` (sync/plans.py `plans_for`) against `connector`; each batch commits atomically.

    A connector error propagates after the batches before it were committed: their state is valid,
    so the next sync resumes there instead of starting over.
    """
    started = monotonic()
    result = SyncResult(source=connector.name)
    states = store.sync_state(connector.name)
    # One instant for every plan of the sync: a phase completed at it was read to its end by an earlier plan
    # of this sync (the backfill hands the incremental plan its state), which need not read it again.
    at = now()
    for number, plan in enumerate(plans):
        if number:
            states = store.sync_state(connector.name)
        for batch in plan.batches(connector, states, at, store):
            if should_stop():
                log.info("sync interrupted", extra={"source": connector.name, "batches_committed": result.batches})
                result.duration_seconds = monotonic() - started
                return result
            result.deleted["ticket"] += store.commit_batch(connector.name, batch)
            result.batches += 1
            if batch.state is not None and batch.state.plan == RECONCILE and batch.state.completed_at is not None:
                result.reconciled_at = batch.state.completed_at
            result.records["ticket"] += len(batch.tickets)
            result.records["survey"] += len(batch.surveys)
            for skipped in batch.skipped:
                result.skipped[(skipped.kind, skipped.reason)] += 1
                log.warning(
                    "skipped record",
                    extra={
                        "source": connector.name,
                        "kind": skipped.kind,
                        "id": clip(skipped.record_id),
                        "reason": skipped.reason,
                        "detail": clip(skipped.detail),
                    },
                )
            if on_batch is not None:
                on_batch(connector.name, batch, monotonic() - started)
    result.records = +result.records  # kinds with no record stay out, as before
    result.deleted = +result.deleted
    result.duration_seconds = monotonic() - started
    return result


class ConnectorFactory(Protocol):
    """How a runner gets a connector for one sync: `build_connector`, or a fake in tests."""

    def __call__(
        self,
        source: SourceBase,
        *,
        observe_request: RequestObserver,
        now: Callable[[], datetime] | None,
    ) -> Connector: ...


class Progress:
    """Counts the records of one sync and logs progress at most every `interval` seconds."""

    def __init__(self, source: str, monotonic: Callable[[], float], interval: float) -> None:
        self._source = source
        self._monotonic = monotonic
        self._interval = interval
        self._last_report = monotonic()
        self.records = 0

    def add(self, batch: Batch, elapsed: float) -> bool:
        """Count a committed batch; True when a progress line was logged."""
        self.records += len(batch.tickets) + len(batch.surveys)
        now = self._monotonic()
        if now - self._last_report < self._interval:
            return False
        self._last_report = now
        context: dict[str, object] = {
            "source": self._source,
            "kind": batch.kind,
            "records": self.records,
            "rate_per_second": round(self.records / elapsed, 1) if elapsed > 0 else 0.0,
        }
        if batch.total_expected is not None:
            remaining = max(0, batch.total_expected - batch.fetched_so_far)
            context["remaining"] = remaining
            if elapsed > 0 and self.records:
                context["eta_seconds"] = round(remaining / (self.records / elapsed))
        log.info("sync in progress", extra=context)
        return True


class SourceRunner:
    """Runs the syncs of one source and keeps its SourceHealth: up/down, last success, counters, transitions.

    `lock` guards `health` (the daemon shares its own, so scrapes read a consistent copy). Time is
    injected: `clock` (wall time of the last success), `monotonic` (durations, progress), `now`
    (the instant the connector and the plans see).
    """

    def __init__(
        self,
        name: str,
        store: Store,
        health: SourceHealth,
        *,
        connector_factory: ConnectorFactory,
        lock: threading.RLock | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        progress_interval: float = 30.0,
        on_progress: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.health = health
        self._store = store
        self._factory = connector_factory
        self._lock = lock or threading.RLock()
        self._clock = clock
        self._monotonic = monotonic
        self._now = now
        self._progress_interval = progress_interval
        self._on_progress = on_progress

    def run(self, source: SourceBase, config: Config, *, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """One sync; True when it succeeded. Failures are recorded in the health, never raised."""
        started = self._monotonic()
        state = self.health
        progress = Progress(self.name, self._monotonic, self._progress_interval)

        def observe(code: str) -> None:
            with self._lock:
                state.api_requests[code] += 1

        def on_batch(_source: str, batch: Batch, elapsed: float) -> None:
            with self._lock:
                if batch.tickets:
                    state.records_synced["ticket"] += len(batch.tickets)
                if batch.surveys:
                    state.records_synced["survey"] += len(batch.surveys)
                state.records_skipped.update((s.kind, s.reason) for s in batch.skipped)
            if progress.add(batch, elapsed):
                self._on_progress()

        now = self._now or (lambda: datetime.fromtimestamp(self._clock(), UTC))
        try:
            connector = self._factory(source, observe_request=observe, now=self._now)
            try:
                result = sync_source(
                    connector,
                    self._store,
                    plans_for(source, config),
                    on_batch=on_batch,
                    should_stop=should_stop,
                    monotonic=self._monotonic,
                    now=now,
                )
            finally:
                connector.close()
        except Exception as error:  # the boundary of one source's sync: whatever failed, the others go on
            self._failed(error, self._monotonic() - started)
            return False
        if should_stop():
            return False  # an interrupted sync is no success
        self._succeeded(result, self._monotonic() - started)
        return True

    def _failed(self, error: Exception, duration: float) -> None:
        message = str(error) or type(error).__name__
        state = self.health
        with self._lock:
            transition = state.up or (state.last_success_timestamp is None and state.last_error is None)
            state.up = False
            state.last_sync_duration_seconds = duration
            state.last_error = message
        context = {"source": self.name, "error": message}
        if not transition:
            log.debug("source still down", extra=context)
        elif isinstance(error, ConnectorError):
            log.warning("source down", extra=context)
        else:
            log.warning("source down: unexpected error", extra=context, exc_info=error)

    def _succeeded(self, result: SyncResult, duration: float) -> None:
        state = self.health
        with self._lock:
            recovered = not state.up and state.last_error is not None
            first = state.last_success_timestamp is None
            state.up = True
            state.last_success_timestamp = self._clock()
            state.last_sync_duration_seconds = duration
            state.last_error = None
            state.records_deleted.update(result.deleted)
            if result.reconciled_at is not None:
                state.last_reconcile_timestamp = self._clock()
        context = {"source": self.name, "records": sum(result.records.values()), "duration_seconds": round(duration, 3)}
        if result.reconciled_at is not None:
            log.info(
                "reconciled with upstream deletions", extra={"source": self.name, "deleted": result.deleted["ticket"]}
            )
        if recovered:
            log.info("source up again", extra=context)
        elif first:
            log.info("first sync complete", extra=context)
        else:
            log.debug("source synced", extra=context)
