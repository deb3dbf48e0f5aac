"""Zendesk Support: tickets through the cursor-based incremental export, CSAT ratings through their list.

Tickets come from `/api/v2/incremental/tickets/cursor` with the `metric_sets`, `slas`, `groups` and
`brands` sideloads (and `organizations` for a segment that reads them): a first read from
`start_time`, then `cursor` until `end_of_stream`. Each page's `after_cursor` is its token, so the
next sync (or a restart after a crash) goes on from the stored cursor, and its position is the newest
`generated_timestamp` read (the export compares `start_time` with it, not with `updated_at`). Deleted
tickets come in the export as status `deleted`: their ids leave the store with the page
(ScanPage.deleted_ids). Ratings are one more phase. A bounded first sync reads the open backlog
through the search export and tickets by id through show_many.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from itsm_exporter.connectors.base import BadRequest, RequestObserver, ScanPage, SchemaError, SleepFn, ignore_request
from itsm_exporter.connectors.zendesk.client import ZendeskClient
from itsm_exporter.connectors.zendesk.config import ZendeskSource
from itsm_exporter.connectors.zendesk.mapping import (
    MappingError,
    TicketMapper,
    epoch,
    is_deleted,
    parse_time,
    skipped,
    survey,
    ticket_id,
)
from itsm_exporter.records import RecordKind, SkippedRecord, SurveyResponse, Ticket

log = logging.getLogger(__name__)

EXPORT_PATH: Final = "/api/v2/incremental/tickets/cursor"
SHOW_MANY_PATH: Final = "/api/v2/tickets/show_many"
SEARCH_EXPORT_PATH: Final = "/api/v2/search/export"
RATINGS_PATH: Final = "/api/v2/satisfaction_ratings"
SHOW_MANY_IDS: Final = 100
"""Ids per show_many request: Zendesk's maximum."""
RATINGS_PAGE: Final = 100
"""Ratings per page: the maximum of cursor pagination."""
SEARCH_PAGE: Final = 1000
"""Open tickets per search export page: its maximum."""
HOLD_BACK: Final = timedelta(minutes=1)
"""The export holds back the last minute and refuses a start_time within it."""
OPEN_STATUSES: Final = "status<solved"
"""The open backlog in Zendesk's search syntax: new, open, pending and hold."""


def sideloads(source: ZendeskSource) -> str:
    """The sideloads every ticket read asks for: metrics, SLA states, and the names of groups (and of brands and
    organizations, where the service label or a segment reads them): segments come in the tickets' own request."""
    fields = set(source.segments.values())
    brands = source.service_field == "brand" or "brand" in fields
    return ",".join(
        ["metric_sets", "slas", "groups", *(["brands"] if brands else []),
         *(["organizations"] if "organization" in fields else [])]
    )  # fmt: skip


class ZendeskConnector:
    """Tickets of one Zendesk account with their SLA states and, optionally, its CSAT ratings."""

    def __init__(
        self,
        source: ZendeskSource,
        observe_request: RequestObserver = ignore_request,
        *,
        sleep: SleepFn = time.sleep,
        jitter: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = source.name
        self.source = source
        """The configuration this connector reads (the sync plans get theirs from its kind's capabilities)."""
        self._now = now
        self._client = ZendeskClient(source, observe_request, sleep=sleep, jitter=jitter, now=now, clock=clock)
        self._groups: dict[str, str] = {}
        self._brands: dict[str, str] = {}
        self._organizations: dict[str, str] = {}
        self._mapper = TicketMapper(source, self._groups, self._brands, self._organizations)

    @property
    def phases(self) -> tuple[RecordKind, ...]:
        return ("ticket", "survey") if self.source.satisfaction else ("ticket",)

    def close(self) -> None:
        self._client.close()

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None = None) -> Iterator[ScanPage]:
        if phase == "ticket":
            return self._export(since, token)
        return self._ratings(since)

    # -- tickets ---------------------------------------------------------------------------------

    def _export(self, since: datetime | None, token: str | None) -> Iterator[ScanPage]:
        """The export from the stored cursor, or from `since` without one (or when Zendesk refuses it)."""
        fetched = 0
        newest: datetime | None = None
        for body in self._export_bodies(since, token):
            page = self._page(body)
            fetched += len(page.tickets) + len(page.deleted_ids) + len(page.skipped)
            if page.position is not None and (newest is None or page.position > newest):
                newest = page.position
            yield ScanPage(
                tickets=page.tickets,
                skipped=page.skipped,
                deleted_ids=page.deleted_ids,
                position=newest,
                token=_cursor(body),
                fetched_so_far=fetched,
            )

    def _export_bodies(self, since: datetime | None, token: str | None) -> Iterator[dict[str, Any]]:
        cursor = token
        if cursor is not None:
            try:
                body = self._export_page({"cursor": cursor})
            except BadRequest as error:
                # A cursor is the position of one account's export: one it refuses (another account at
                # this url, a cursor format retired) must not stop every sync; the watermark resumes it.
                log.warning(
                    "zendesk refused the stored export cursor; reading from the watermark instead",
                    extra={"source": self.name, "error": str(error)},
                )
                cursor = None
            else:
                yield body
                cursor = self._next(body, cursor)
                if cursor is None:
                    return
        if cursor is None:
            body = self._export_page({"start_time": self._start_time(since)})
            yield body
            cursor = self._next(body, None)
        while cursor is not None:
            body = self._export_page({"cursor": cursor})
            yield body
            cursor = self._next(body, cursor)

    def _start_time(self, since: datetime | None) -> int:
        """`start_time` for `since` (0: everything): never within the last minute, which the export refuses."""
        if since is None:
            return 0
        latest = int(self._now() - HOLD_BACK.total_seconds()) - 1
        return max(0, min(int(since.timestamp()), latest))

    def _export_page(self, params: Mapping[str, Any]) -> dict[str, Any]:
        query = {**params, "per_page": self.source.page_size, "include": sideloads(self.source)}
        body = self._client.get(EXPORT_PATH, query, what="the incremental ticket export")
        if not isinstance(body.get("tickets"), list) or not isinstance(body.get("end_of_stream"), bool):
            raise SchemaError(f"{self._client.where('the incremental ticket export')}: no tickets or end_of_stream")
        return body

    def _next(self, body: Mapping[str, Any], cursor: str | None) -> str | None:
        """The cursor of the next page; None at the end of the stream."""
        if body["end_of_stream"]:
            return None
        after = _cursor(body)
        if after is None or after == cursor:
            raise SchemaError(
                f"{self._client.where('the incremental ticket export')}: end_of_stream is false but the cursor "
                "did not advance"
            )
        return after

    def _page(self, body: Mapping[str, Any]) -> ScanPage:
        """Tickets of one answer (export or show_many), deleted ones as ids; position: newest generated_timestamp."""
        self._learn_names(body)
        metric_sets = _by_ticket(body.get("metric_sets"))
        tickets: list[Ticket] = []
        deleted: list[str] = []
        skips: list[SkippedRecord] = []
        newest: datetime | None = None
        for raw in body.get("tickets") or []:
            if not isinstance(raw, dict):
                continue
            generated = epoch(raw.get("generated_timestamp"))
            if generated is not None and (newest is None or generated > newest):
                newest = generated
            try:
                if is_deleted(raw):
                    deleted.append(ticket_id(raw))
                    continue
                embedded = raw.get("metric_set")
                metrics = embedded if isinstance(embedded, dict) else metric_sets.get(str(raw.get("id")))
                tickets.append(self._mapper.ticket(raw, metrics))
            except MappingError as error:
                skips.append(skipped("ticket", raw, error))
        return ScanPage(tickets=tuple(tickets), skipped=tuple(skips), deleted_ids=tuple(deleted), position=newest)

    def _learn_names(self, body: Mapping[str, Any]) -> None:
        """Group, brand and organization names from the sideloads: the ticket carries only their ids."""
        for key, names in (("groups", self._groups), ("brands", self._brands), ("organizations", self._organizations)):
            for entry in body.get(key) or []:
                if isinstance(entry, dict) and entry.get("id") is not None and isinstance(entry.get("name"), str):
                    names[str(entry["id"])] = entry["name"]

    # -- lookups of a bounded first sync ----------------------------------------------------------

    def get(self, kind: RecordKind, ids: Sequence[str]) -> ScanPage:
        """Tickets by id through show_many (100 a request); a deleted or archived ticket is not returned."""
        if kind != "ticket":
            raise ValueError(f"source {self.name}: get() reads tickets, not {kind}")
        wanted = [i for i in dict.fromkeys(ids) if i.isdigit()]  # Zendesk ticket ids are numbers
        pages: list[ScanPage] = []
        for start in range(0, len(wanted), SHOW_MANY_IDS):
            chunk = wanted[start : start + SHOW_MANY_IDS]
            params = {"ids": ",".join(chunk), "include": sideloads(self.source)}
            body = self._client.get(SHOW_MANY_PATH, params, what="tickets by id (show_many)")
            pages.append(self._page(body))
        return ScanPage(
            tickets=tuple(t for p in pages for t in p.tickets),
            skipped=tuple(s for p in pages for s in p.skipped),
            fetched_so_far=sum(len(p.tickets) + len(p.skipped) for p in pages),
        )

    def ids(self, kind: RecordKind, since: datetime | None) -> Iterator[list[str]]:
        """Ids of the tickets changed at or after `since` that still exist, an export page at a time."""
        if kind != "ticket":
            raise ValueError(f"source {self.name}: ratings are not swept by id")
        for page in self._export(since, None):
            yield [t.id for t in page.tickets]

    def open_tickets(self, updated_before: datetime, since: datetime | None) -> Iterator[ScanPage]:
        """Tickets not solved or closed and last updated before `updated_before`, whatever their age.

        The search export names them (`status<solved`, day-bounded: the day of `updated_before` included);
        show_many reads them with their sideloads. Its pages are in no time order, so they carry no
        position: a restart reads the backlog again (it is the open backlog, not the history).
        """
        day = (updated_before.astimezone(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
        params: dict[str, Any] = {
            "query": f"{OPEN_STATUSES} updated<{day}",
            "filter[type]": "ticket",
            "page[size]": SEARCH_PAGE,
        }
        fetched = 0
        while True:
            body = self._client.get(SEARCH_EXPORT_PATH, params, what="the search export of open tickets")
            results, meta = body.get("results"), body.get("meta")
            if not isinstance(results, list) or not isinstance(meta, dict):
                raise SchemaError(f"{self._client.where('the search export of open tickets')}: no results or meta")
            ids = [str(r["id"]) for r in results if isinstance(r, dict) and r.get("id") is not None]
            page = self.get("ticket", ids)
            fetched += page.fetched_so_far
            yield ScanPage(tickets=page.tickets, skipped=page.skipped, fetched_so_far=fetched)
            after = meta.get("after_cursor")
            if meta.get("has_more") is not True or not isinstance(after, str) or not after:
                return
            params = {**params, "page[after]": after}

    # -- ratings ---------------------------------------------------------------------------------

    def _ratings(self, since: datetime | None) -> Iterator[ScanPage]:
        """Received CSAT ratings changed at or after `since`, in pages of 100; the position comes with the last.

        The list is in id order, not in update order: only once it is read to its end is every rating
        updated before the newest `updated_at` read known to be stored.
        """
        params: dict[str, Any] = {"score": "received", "page[size]": RATINGS_PAGE}
        if since is not None:
            params["start_time"] = int(since.timestamp())
        fetched = 0
        newest: datetime | None = None
        while True:
            body = self._client.get(RATINGS_PATH, params, what="the satisfaction ratings")
            ratings, meta = body.get("satisfaction_ratings"), body.get("meta")
            if not isinstance(ratings, list) or not isinstance(meta, dict):
                raise SchemaError(f"{self._client.where('the satisfaction ratings')}: no satisfaction_ratings or meta")
            surveys: list[SurveyResponse] = []
            skips: list[SkippedRecord] = []
            for rating in ratings:
                if not isinstance(rating, dict):
                    continue
                try:
                    response = survey(self.name, rating)
                    changed = parse_time(rating.get("updated_at") or rating.get("created_at"))
                except MappingError as error:
                    skips.append(skipped("survey", rating, error))
                    continue
                newest = changed if newest is None or changed > newest else newest
                if response is not None:
                    surveys.append(response)
            fetched += len(ratings)
            after = meta.get("after_cursor")
            last = meta.get("has_more") is not True or not isinstance(after, str) or not after
            yield ScanPage(
                surveys=tuple(surveys), skipped=tuple(skips), position=newest if last else None, fetched_so_far=fetched
            )
            if last:
                return
            params = {**params, "page[after]": after}


def _cursor(body: Mapping[str, Any]) -> str | None:
    after = body.get("after_cursor")
    return after if isinstance(after, str) and after else None


def _by_ticket(entries: object) -> dict[str, dict[str, Any]]:
    """Sideloaded records keyed by the ticket they belong to."""
    found: dict[str, dict[str, Any]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("ticket_id") is not None:
            found[str(entry["ticket_id"])] = entry
    return found
