"""Run the incremental sync plan over a connector the way a sync does, from given stored positions.

Tests of a connector's reads used to call its `fetch`; the plan (itsm_exporter/sync/plans.py) now
owns where each phase starts, so these helpers build the stored PhaseStates from the texts the
tests write (a Glide or ISO time is a watermark, anything else a token) and return the batches a
sync would commit, without the final "phase completed" batch of each phase.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from itsm_exporter.connectors.base import Connector
from itsm_exporter.connectors.servicenow.wire import format_time
from itsm_exporter.records import Batch, PhaseState
from itsm_exporter.source_config import SourceBase
from itsm_exporter.store import Store
from itsm_exporter.sync import SyncResult, plans_for, sync_source
from itsm_exporter.sync.plans import INCREMENTAL, IncrementalPlan

NOW = datetime(2030, 1, 1, tzinfo=UTC)
"""When the plans think they run: only the completion batches carry it, and they are dropped."""


class Configured(Connector, Protocol):
    """A connector whose configuration is public: every real one (`source`)."""

    source: SourceBase


def synced(connector: Configured, store: Store, **options: Any) -> SyncResult:
    """One sync as a source gets it without a config: its kind's incremental plan (overlap included)."""
    return sync_source(connector, store, plans_for(connector.source), **options)


def stored(marks: Mapping[str, str | None]) -> dict[tuple[str, str], PhaseState]:
    """PhaseStates of the incremental plan from texts: a time (Glide times are UTC) or a token."""
    states = {}
    for phase, text in marks.items():
        if text is None:
            continue
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            states[(INCREMENTAL, phase)] = PhaseState(INCREMENTAL, phase, token=text)
            continue
        watermark = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        states[(INCREMENTAL, phase)] = PhaseState(INCREMENTAL, phase, watermark=watermark)
    return states


def run_plan(
    connector: Connector, marks: Mapping[str, str | None] | None = None, *, overlap: timedelta = timedelta(0)
) -> list[Batch]:
    """The batches an incremental sync of `connector` commits, from `marks`, without completion batches."""
    return list(iter_plan(connector, marks, overlap=overlap))


def iter_plan(
    connector: Connector, marks: Mapping[str, str | None] | None = None, *, overlap: timedelta = timedelta(0)
) -> Iterator[Batch]:
    """run_plan, one batch at a time: what was read before a failure is seen before the failure."""
    for batch in IncrementalPlan(overlap=overlap).batches(connector, stored(marks or {}), NOW):
        if not (batch.state is not None and batch.state.completed_at == NOW):
            yield batch


def glide(batch: Batch) -> str | None:
    """The batch's watermark as ServiceNow writes times (what the tests' fakes hold)."""
    mark = batch.state.watermark if batch.state is not None else None
    return None if mark is None else format_time(mark)


def iso(batch: Batch) -> str | None:
    """The batch's watermark as an ISO UTC time."""
    mark = batch.state.watermark if batch.state is not None else None
    return None if mark is None else mark.isoformat()


def token(batch: Batch) -> str | None:
    return batch.state.token if batch.state is not None else None


def resume_state(store: Store, source: str, phase: str) -> PhaseState | None:
    """The state a sync of `phase` resumes from: the incremental one, or during a first (bounded) sync the
    backfill's read of `phase` (its key names the horizon it reads down to)."""
    states = store.sync_state(source)
    if (INCREMENTAL, phase) in states:
        return states[(INCREMENTAL, phase)]
    backfill = [state for (plan, key), state in states.items() if plan == "backfill" and key.startswith(f"{phase}@")]
    return backfill[0] if backfill else None


def stored_glide(store: Store, source: str, phase: str) -> str | None:
    """The committed watermark of `phase` (resume_state), as ServiceNow writes times."""
    state = resume_state(store, source, phase)
    return None if state is None or state.watermark is None else format_time(state.watermark)


def stored_iso(store: Store, source: str, phase: str) -> str | None:
    """The committed watermark of `phase` (resume_state), as an ISO UTC time."""
    state = resume_state(store, source, phase)
    return None if state is None or state.watermark is None else state.watermark.isoformat()
