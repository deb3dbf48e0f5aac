"""Sync plans: what a sync of one source reads from its upstream, in which order, from where.

A plan turns a connector's primitives (connectors/base.py: `scan`, and `get`/`ids` of a
RecordLookup) into batches; the store commits each batch's records with the plan's PhaseState in
one transaction, so a crash at any point resumes from the last committed page.

Built:
- IncrementalPlan: every phase from its watermark less the source's overlap (a first sync reads
  everything: the connector's own lower bound).
- ReconcilePlan: after the incremental plan, when the last reconciliation is older than the
  source's `reconcile_interval`: the tickets deleted upstream leave the store (Batch.deleted_ticket_ids).
Still to come, plugged in at `plans_for`: a bounded first backfill (issue 17), before the
incremental plan while its own phases are not completed; it scans from `now - history`, reads the
open backlog, `get`s the tickets that surveys in the horizon point to, and hands the incremental
plan its watermark.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from itsm_exporter.config import Config, CsvSource, DemoSource, JiraSource, ServiceNowSource
from itsm_exporter.connectors.base import AuthError, Connector, DeletionLog, RecordLookup
from itsm_exporter.records import Batch, PhaseState
from itsm_exporter.sync.state import States, advanced, completed, starting

log = logging.getLogger(__name__)

SourceConfig = DemoSource | CsvSource | ServiceNowSource | JiraSource

INCREMENTAL: Final = "incremental"
RECONCILE: Final = "reconcile"
LOOKUP_CHUNK: Final = 500
"""Candidate ids confirmed per `get`: each is one or a few upstream requests of ID_CHUNK ids."""


class StoredTickets(Protocol):
    """What a plan may ask the store (Store implements it)."""

    def ticket_ids(
        self, source: str, *, updated_since: datetime | None = None, open_updated_before: datetime | None = None
    ) -> list[str]: ...


class Plan(Protocol):
    """One way of reading a source; `batches` yields what to commit, each with the plan's state."""

    @property
    def name(self) -> str: ...

    def batches(
        self, connector: Connector, states: States, now: datetime, stored: StoredTickets | None = None
    ) -> Iterator[Batch]: ...


@dataclass(frozen=True)
class IncrementalPlan:
    """Each of the connector's phases from its watermark less `overlap`; everything on a first sync.

    The overlap re-reads the boundary: rows committed late, stamped by a lagging node, or not yet in
    a search index carry an update time a little before rows already read (the store upserts them).
    When a phase is read to its end, a last batch marks it completed at `now`.
    """

    overlap: timedelta
    name: str = INCREMENTAL

    def batches(
        self, connector: Connector, states: States, now: datetime, stored: StoredTickets | None = None
    ) -> Iterator[Batch]:
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


@dataclass(frozen=True)
class ReconcilePlan:
    """Removes from the store the tickets deleted upstream, every `interval`, in one batch.

    With a readable deletion log (ServiceNow sys_audit_delete) the candidates are the ids the log
    lists since its own watermark. Otherwise they are the stored tickets updated within `span` (the
    longest window plus the overlap) that an id-only sweep of the same span does not return, and the
    stored open tickets older than the span (the backlog, whatever its age). Candidates are
    confirmed by a lookup by id before they are removed: a sweep that skipped an id (a page shifted
    by an update) or a record restored after its deletion must never delete a ticket that exists.
    Nothing is committed before the end, so a reconciliation that fails or is killed leaves the
    store as it was and runs again at the next sync. It does not run on a first sync: everything
    stored was just read.
    """

    # A connector with no RecordLookup (CSV, demo) has no deletions to find: the plan yields nothing.

    interval: timedelta
    span: timedelta
    name: str = RECONCILE

    def due(self, states: States, now: datetime) -> bool:
        if states.get((INCREMENTAL, "ticket")) is None:
            return False  # a first sync: everything stored was just read
        last = states.get((RECONCILE, "ticket"))
        return last is None or last.completed_at is None or now - last.completed_at >= self.interval

    def batches(
        self, connector: Connector, states: States, now: datetime, stored: StoredTickets | None = None
    ) -> Iterator[Batch]:
        if stored is None or not isinstance(connector, RecordLookup) or not self.due(states, now):
            return
        gone: list[str] = []
        audit = states.get((RECONCILE, "audit"))
        audit_state: PhaseState | None = None
        if isinstance(connector, DeletionLog):
            try:
                audit_state = audit or PhaseState(self.name, "audit")
                since = None if audit_state.watermark is None else audit_state.watermark - _AUDIT_OVERLAP
                for page in connector.deletions("ticket", since):
                    audit_state = advanced(audit_state, page)
                    gone.extend(page.deleted_ids)
            except AuthError as error:
                log.info(
                    "deletion log not readable; sweeping ids instead",
                    extra={"source": connector.name, "error": str(error)},
                )
                audit_state, gone = None, []
        candidates = gone if audit_state is not None else self._candidates(connector, connector.name, stored, now)
        gone = self._missing(connector, list(dict.fromkeys(candidates)))
        yield Batch(
            kind="ticket",
            deleted_ticket_ids=tuple(gone),
            state=completed(PhaseState(self.name, "ticket", done=len(gone)), now),
        )
        if audit_state is not None:
            yield Batch(kind="ticket", state=completed(audit_state, now))

    def _candidates(self, connector: RecordLookup, name: str, stored: StoredTickets, now: datetime) -> list[str]:
        """Stored tickets an id-only sweep of the span does not return, and the stored open ones before it."""
        start = now - self.span
        upstream = {i for page in connector.ids("ticket", start) for i in page}
        candidates = [i for i in stored.ticket_ids(name, updated_since=start) if i not in upstream]
        return candidates + stored.ticket_ids(name, open_updated_before=start)

    @staticmethod
    def _missing(connector: RecordLookup, candidates: list[str]) -> list[str]:
        """The candidates a lookup by id does not find upstream."""
        gone: list[str] = []
        for offset in range(0, len(candidates), LOOKUP_CHUNK):
            chunk = candidates[offset : offset + LOOKUP_CHUNK]
            found = {t.id for t in connector.get("ticket", chunk).tickets}
            gone.extend(i for i in chunk if i not in found)
        return gone


_AUDIT_OVERLAP: Final = timedelta(minutes=5)
"""Re-read behind the deletion log's watermark: a row committed late is not missed (a repeat is harmless)."""


def plans_for(source: SourceConfig, config: Config | None = None) -> list[Plan]:
    """The plans a sync of `source` runs, in order (see the module docstring for the one to come).

    With `config`, the reconciliation's span follows its longest window; without, only the incremental plan.
    """
    overlap = timedelta(seconds=source.overlap.seconds) if isinstance(source, ServiceNowSource | JiraSource) else None
    plans: list[Plan] = [IncrementalPlan(overlap=overlap or timedelta(0))]
    if config is not None and isinstance(source, ServiceNowSource | JiraSource) and source.reconcile_interval:
        longest = max(window.seconds for window in config.windows)
        span = timedelta(seconds=longest) + (overlap or timedelta(0))
        plans.append(ReconcilePlan(interval=timedelta(seconds=source.reconcile_interval.seconds), span=span))
    return plans
