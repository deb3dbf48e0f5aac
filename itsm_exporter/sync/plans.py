"""Sync plans: what a sync of one source reads from its upstream, in which order, from where.

A plan turns a connector's primitives (connectors/base.py: `scan`, and `get`/`ids` of a
RecordLookup) into batches; the store commits each batch's records with the plan's PhaseState in
one transaction, so a crash at any point resumes from the last committed page.

- BackfillPlan: a first sync bounded by `history` (and a widening when `history` grows): records
  updated since the horizon, the open backlog whatever its age, the tickets of the horizon's surveys
  by id; then it hands the incremental plan each phase's watermark.
- IncrementalPlan: every phase from its watermark less the source's overlap (a first sync of a
  source without a bounded backfill reads everything: the connector's own lower bound).
- ReconcilePlan: after the incremental plan, when the last reconciliation is older than the
  source's reconcile interval: the tickets deleted upstream leave the store (Batch.deleted_ticket_ids).
- SegmentPlan: first, when the source's `segments` gained a field since its tickets were stored: the
  tickets of the look-back (the windows and their earlier periods) are read again once, so the new
  segment has values there, not only for the tickets that change from now on (the history is not re-read).

Which plans a source gets, and their overlap and intervals, come from its kind's capabilities
(kinds.py): this module never names a kind.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Protocol

from itsm_exporter.config import Config
from itsm_exporter.connectors.base import (
    AuthError,
    Connector,
    DeletionLog,
    OpenBacklog,
    RecordLookup,
    ScanPage,
    TotalEstimates,
)
from itsm_exporter.kinds import capabilities
from itsm_exporter.records import Batch, PhaseState, RecordKind
from itsm_exporter.source_config import SourceBase
from itsm_exporter.sync.state import States, advanced, completed, starting

log = logging.getLogger(__name__)

INCREMENTAL: Final = "incremental"
SEGMENTS: Final = "segments"
RECONCILE: Final = "reconcile"
BACKFILL: Final = "backfill"
HORIZON: Final = "horizon"
"""The backfill phase whose watermark is the instant the store holds a source's records from."""
TARGET: Final = "target"
"""The horizon a backfill in progress is filling down to: persisted, so a restart does not let it slide."""
LOOKUP_CHUNK: Final = 500
"""Candidate ids confirmed per `get`: each is one or a few upstream requests of ID_CHUNK ids."""


class StoredTickets(Protocol):
    """What a plan may ask the store (Store implements it)."""

    def ticket_ids(
        self, source: str, *, updated_since: datetime | None = None, open_updated_before: datetime | None = None
    ) -> list[str]: ...

    def unstored_survey_tickets(self, source: str, *, submitted_since: datetime) -> list[str]: ...


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
            if state.completed_at == now:
                continue  # read to its end by an earlier plan of this sync (a first, bounded backfill)
            since = None if state.watermark is None else state.watermark - self.overlap
            for page in connector.scan(phase, since, state.token):
                state = advanced(state, page)
                yield page_batch(phase, page, state)
            yield Batch(kind=phase, state=completed(state, now))


@dataclass(frozen=True)
class BackfillPlan:
    """A first sync bounded by `history`, or a one-off backfill when `history` (or a window) grew.

    A first sync reads, each part resumable from its own committed state:
    - every record updated since `now - history` (`scan` of each phase from there);
    - every ticket still open whatever its age (OpenBacklog.open_tickets);
    - the tickets that surveys in the horizon are about but that neither read brought, by id
      (RecordLookup.get), ID batches at a time;
    then it records the horizon and hands the incremental plan each phase's watermark. Each part's
    state is keyed by the horizon it fills (`ticket@<horizon>`), so a later widening starts afresh. Later, a
    horizon earlier than the recorded one (a wider `history`) reads only the missing span, up to
    the recorded horizon plus the overlap. A store that was filled by full first syncs (an
    incremental state and no horizon) holds everything: nothing to do.
    """

    history: timedelta
    overlap: timedelta
    name: str = BACKFILL

    def batches(
        self, connector: Connector, states: States, now: datetime, stored: StoredTickets | None = None
    ) -> Iterator[Batch]:
        horizon = states.get((self.name, HORIZON))
        first = horizon is None
        if first and any(plan == INCREMENTAL for plan, _phase in states):
            return  # filled by a full first sync before bounded ones existed: complete from the start
        wanted = now - self.history
        if horizon is not None and (horizon.watermark is None or horizon.watermark <= wanted):
            return  # already complete down to the wanted horizon
        target_state = states.get((self.name, TARGET))
        in_progress = (
            target_state is not None
            and target_state.watermark is not None
            and (horizon is None or horizon.watermark is None or target_state.watermark < horizon.watermark)
        )
        # A backfill in progress keeps the horizon it started with: a restart later must not let it slide.
        target = target_state.watermark if in_progress and target_state and target_state.watermark else wanted
        if target_state is None or target_state.watermark != target:
            target_state = PhaseState(self.name, TARGET, watermark=target)
            yield Batch(kind="ticket", state=target_state)
        until = None if horizon is None else horizon.watermark
        if isinstance(connector, TotalEstimates):
            connector.estimate_totals()  # one count request per scan buys the progress log an ETA
        reached: dict[RecordKind, PhaseState] = {}
        for phase in connector.phases:
            reached[phase] = yield from self._recent(connector, states, phase, target, until, now)
        if first and isinstance(connector, OpenBacklog):
            yield from self._open(connector, states, target, now)
        if stored is not None and isinstance(connector, RecordLookup):
            yield from self._surveyed(connector, stored, target)
        if first:
            for phase in connector.phases:
                # The incremental plan goes on from where this read ended (from the horizon if nothing came),
                # at its position when the upstream gave one (an export's cursor).
                handed = PhaseState(
                    INCREMENTAL, phase, watermark=reached[phase].watermark or target, token=reached[phase].token
                )
                yield Batch(kind=phase, state=completed(handed, now))
        yield Batch(kind="ticket", state=completed(PhaseState(self.name, HORIZON, watermark=target), now))

    def _recent(
        self,
        connector: Connector,
        states: States,
        phase: RecordKind,
        target: datetime,
        until: datetime | None,
        now: datetime,
    ) -> Generator[Batch, None, PhaseState]:
        """Records of `phase` updated since `target` (up to `until` plus the overlap when widening); the state
        the read ended in."""
        state = starting(states, self.name, f"{phase}@{target.isoformat()}")
        if state.completed_at is not None:
            return state
        since = target if state.watermark is None else max(target, state.watermark - self.overlap)
        for page in connector.scan(phase, since, state.token):
            state = advanced(state, page)
            yield page_batch(phase, page, state)
            if until is not None and page.position is not None and page.position >= until + self.overlap:
                break  # a widening reads the missing span only: the rest is stored
        yield Batch(kind=phase, state=completed(state, now))
        return state

    def _open(self, connector: OpenBacklog, states: States, target: datetime, now: datetime) -> Iterator[Batch]:
        state = starting(states, self.name, f"open@{target.isoformat()}")
        if state.completed_at is not None:
            return
        for page in connector.open_tickets(target, state.watermark):
            state = advanced(state, page)
            yield page_batch("ticket", page, state)
        yield Batch(kind="ticket", state=completed(state, now))

    def _surveyed(self, connector: RecordLookup, stored: StoredTickets, target: datetime) -> Iterator[Batch]:
        """Tickets of the horizon's surveys that are not stored, by id; recomputed from the store on a restart."""
        missing = stored.unstored_survey_tickets(connector.name, submitted_since=target)
        for offset in range(0, len(missing), LOOKUP_CHUNK):
            page = connector.get("ticket", missing[offset : offset + LOOKUP_CHUNK])
            yield Batch(
                kind="ticket",
                tickets=page.tickets,
                skipped=page.skipped,
                fetched_so_far=offset + len(page.tickets),
                total_expected=len(missing),
            )


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
        backfill = states.get((BACKFILL, HORIZON))
        if backfill is not None and backfill.completed_at == now:
            return False  # a first sync (bounded) in this very sync: everything stored was just read
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


@dataclass(frozen=True)
class SegmentPlan:
    """Reads the look-back's tickets again once when the source's segments gained a field: a bounded re-read.

    Its state (plan `segments`, phase `ticket`) holds in `token` the segment fields the stored tickets were read
    with. A first sync only records them (everything was just read with them); so does a change that adds no
    field (a segment removed: its stored values are no longer grouped by). Otherwise the stored tickets updated
    within `span` (what a computation looks back over, Config.lookback, plus the overlap: the windows and the
    earlier periods they are compared with) and the stored open ones are read again by id
    (RecordLookup.get), LOOKUP_CHUNK at a time, resuming after the last id committed (phase `ticket@<fields>`,
    `token` = that id); an upstream without lookups by id is scanned from the span's start instead. Then the
    new fields are recorded.
    """

    fields: tuple[tuple[str, str], ...]
    """The configured segments as (label, upstream field), sorted."""
    span: timedelta
    name: str = SEGMENTS

    @property
    def token(self) -> str:
        return ";".join(f"{label}={field}" for label, field in self.fields)

    def batches(
        self, connector: Connector, states: States, now: datetime, stored: StoredTickets | None = None
    ) -> Iterator[Batch]:
        if "ticket" not in connector.phases:
            return  # survey responses carry their own segments, read whole each time (a CSV export)
        before = states.get((self.name, "ticket"))
        done = completed(PhaseState(self.name, "ticket", token=self.token), now)
        read_with = set() if before is None or not before.token else set(before.token.split(";"))
        if before is not None and before.token == self.token:
            return
        first = states.get((INCREMENTAL, "ticket")) is None
        if first or not self.fields or set(self.token.split(";")) <= read_with:
            yield Batch(kind="ticket", state=done)
            return
        progress = starting(states, self.name, f"ticket@{self.token}")
        if isinstance(connector, RecordLookup) and stored is not None:
            start = now - self.span
            ids = sorted(
                {*stored.ticket_ids(connector.name, updated_since=start),
                 *stored.ticket_ids(connector.name, open_updated_before=start)}
            )  # fmt: skip
            ids = [i for i in ids if progress.token is None or i > progress.token]
            for offset in range(0, len(ids), LOOKUP_CHUNK):
                chunk = ids[offset : offset + LOOKUP_CHUNK]
                page = connector.get("ticket", chunk)
                progress = replace(progress, token=chunk[-1], done=progress.done + len(page.tickets))
                yield Batch(
                    kind="ticket", tickets=page.tickets, skipped=page.skipped, state=progress,
                    fetched_so_far=offset + len(chunk), total_expected=len(ids),
                )  # fmt: skip
        else:
            for page in connector.scan("ticket", now - self.span, None):
                yield page_batch("ticket", page, advanced(progress, page))
        yield Batch(kind="ticket", state=done)


def page_batch(kind: RecordKind, page: ScanPage, state: PhaseState) -> Batch:
    """The batch of one scanned page: its records, the tickets it saw deleted, skips and progress, committed
    with the state it moves to."""
    return Batch(
        kind=kind,
        tickets=page.tickets,
        surveys=page.surveys,
        deleted_ticket_ids=page.deleted_ids,
        skipped=page.skipped,
        state=state,
        fetched_so_far=page.fetched_so_far,
        total_expected=page.total_expected,
    )


_AUDIT_OVERLAP: Final = timedelta(minutes=5)
"""Re-read behind the deletion log's watermark: a row committed late is not missed (a repeat is harmless)."""


def plans_for(source: SourceBase, config: Config | None = None) -> list[Plan]:
    """The plans a sync of `source` runs, in order, from its kind's capabilities.

    With `config`, the bounded backfill (history) and the reconciliation (its span follows the longest
    window); without, only the incremental plan.
    """
    able = capabilities(source)
    plans: list[Plan] = [IncrementalPlan(overlap=able.overlap)]
    if config is None:
        return plans
    span = config.longest_window.delta + able.overlap
    if able.bounded_backfill:
        plans.insert(0, BackfillPlan(history=config.history_for(source), overlap=able.overlap))
    if able.reconcile_interval is not None:
        plans.append(ReconcilePlan(interval=able.reconcile_interval, span=span))
    # First, on the states as the last sync left them: a first sync only records the segments it reads with. It
    # re-reads what a computation looks back over (the earlier periods of `trends` too), not only the window.
    looked_back = config.lookback + able.overlap
    plans.insert(0, SegmentPlan(fields=tuple(sorted(source.segments.items())), span=looked_back))
    return plans
