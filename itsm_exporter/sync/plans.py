"""Sync plans: what a sync of one source reads from its upstream, in which order, from where.

A plan turns a connector's primitives (connectors/base.py: `scan`, and `get`/`ids` of a
RecordLookup) into batches; the store commits each batch's records with the plan's PhaseState in
one transaction, so a crash at any point resumes from the last committed page.

Built: IncrementalPlan, every phase from its watermark less the source's overlap (a first sync
reads everything: the connector's own lower bound). Plans still to come plug in at `plans_for`:
- a bounded first backfill (issue 17): before the incremental plan while its own phases are not
  completed; it scans from `now - history`, reads the open backlog, then `get`s the tickets that
  surveys in the horizon point to, and hands the incremental plan its watermark;
- a reconciliation of deletions (issue 18): after the incremental plan when its `completed_at` is
  older than `reconcile_interval`; it sweeps `ids` and commits Batch.deleted_ticket_ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from itsm_exporter.config import CsvSource, DemoSource, JiraSource, ServiceNowSource
from itsm_exporter.connectors.base import Connector
from itsm_exporter.records import Batch
from itsm_exporter.sync.state import States, advanced, completed, starting

SourceConfig = DemoSource | CsvSource | ServiceNowSource | JiraSource

INCREMENTAL: Final = "incremental"


class Plan(Protocol):
    """One way of reading a source; `batches` yields what to commit, each with the plan's state."""

    @property
    def name(self) -> str: ...

    def batches(self, connector: Connector, states: States, now: datetime) -> Iterator[Batch]: ...


@dataclass(frozen=True)
class IncrementalPlan:
    """Each of the connector's phases from its watermark less `overlap`; everything on a first sync.

    The overlap re-reads the boundary: rows committed late, stamped by a lagging node, or not yet in
    a search index carry an update time a little before rows already read (the store upserts them).
    When a phase is read to its end, a last batch marks it completed at `now`.
    """

    overlap: timedelta
    name: str = INCREMENTAL

    def batches(self, connector: Connector, states: States, now: datetime) -> Iterator[Batch]:
        for phase in connector.phases:
            state = starting(states, self.name, phase)
            since = None if state.watermark is None else state.watermark - self.overlap
            for page in connector.scan(phase, since, state.token):
                state = advanced(state, page)
                yield Batch(
                    kind=phase,
                    tickets=page.tickets,
                    surveys=page.surveys,
                    skipped=page.skipped,
                    state=state,
                    fetched_so_far=page.fetched_so_far,
                    total_expected=page.total_expected,
                )
            yield Batch(kind=phase, state=completed(state, now))


def plans_for(source: SourceConfig) -> list[Plan]:
    """The plans a sync of `source` runs, in order (see the module docstring for those to come)."""
    overlap = timedelta(seconds=source.overlap.seconds) if isinstance(source, ServiceNowSource | JiraSource) else None
    return [IncrementalPlan(overlap=overlap or timedelta(0))]
