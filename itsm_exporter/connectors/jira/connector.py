"""Jira Service Management (Cloud and Data Center): issues become tickets, CSAT ratings surveys.

Search goes through client.JiraClient (the `jira` library on our own session, retries and typed
errors): Cloud's enhanced search (`/rest/api/3/search/jql`, paged by `nextPageToken`), Data Center's
`/rest/api/2/search` (paged by `startAt`); both page positions, so each page starts a new search from
the minute of the last issue read (see `_scan`).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final
from zoneinfo import ZoneInfo

from jira import JIRAError

from itsm_exporter.connectors.base import (
    BadRequest,
    RequestObserver,
    ScanPage,
    SchemaError,
    SleepFn,
    ignore_request,
)
from itsm_exporter.connectors.jira.client import JiraClient
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.jira.mapping import (
    FieldCatalog,
    IssueMapper,
    MappingError,
    StatusCatalog,
    embedded_histories,
    embedded_length,
    has_comment,
    parse_jira_time,
    skipped,
)
from itsm_exporter.records import RecordKind, SkippedRecord, SurveyResponse, Ticket

log = logging.getLogger(__name__)

UNKNOWN_ZONE_MARGIN: Final = timedelta(hours=14)
"""Without the API user's zone, a UTC literal minus the largest UTC offset is never too late."""
FULL_SCAN_SINCE: Final = "1970-01-01 00:00"
"""Lower bound of the first sync: Cloud rejects unbounded JQL, and every query keeps one shape."""
OPEN_CLAUSE: Final = "statusCategory != Done"
"""The open backlog in JQL: every status outside the done category, whatever the workflow calls it."""
CHANGELOG_PAGE: Final = 100
ID_CHUNK: Final = 100
"""Issue ids per `id in (...)` lookup: a JQL of ~800 characters, well under URL limits."""
REREAD_ROUNDS: Final = 3
"""Re-reads of minutes whose offset pages an update may have shifted, before giving up with a warning."""
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


def _readings(wall: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants a wall-clock minute may mean: two when clocks go back, and Jira may take either."""
    first, second = (wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    return min(first, second), max(first, second)


def jql_since(since: datetime, zone: ZoneInfo | None) -> str:
    """The JQL minute literal for `updated >= ...`, read by Jira in the API user's zone, not after `since`."""
    if zone is None:
        return (since.astimezone(UTC) - UNKNOWN_ZONE_MARGIN).strftime("%Y-%m-%d %H:%M")
    local = since.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
    while _readings(local, zone)[1] > since:
        local -= timedelta(hours=1)
    return local.strftime("%Y-%m-%d %H:%M")


def jql_until(until: datetime, zone: ZoneInfo | None) -> str:
    """The JQL minute literal for `updated < ...`, read by Jira in the API user's zone, after `until`."""
    if zone is None:
        later = until.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1) + UNKNOWN_ZONE_MARGIN
        return later.strftime("%Y-%m-%d %H:%M")
    local = until.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
    while _readings(local, zone)[0] <= until:
        local += timedelta(hours=1)
    return local.strftime("%Y-%m-%d %H:%M")


def search_jql(base: str, since_literal: str, until_literal: str | None = None) -> str:
    """The incremental query: the configured filter, updated bounds, a total order for paging."""
    bound = f'updated >= "{since_literal}"'
    if until_literal is not None:
        bound += f' AND updated < "{until_literal}"'
    where = f"({base}) AND {bound}" if base.strip() else bound
    return f"{where} ORDER BY updated ASC, key ASC"


@dataclass(frozen=True)
class _Span:
    """What one scan searches, as JQL minute literals: `updated >= since`, and `< until` for a re-read."""

    since: str
    until: str | None = None


@dataclass(frozen=True)
class _Page:
    """One search answer, with the first and last `updated` on it that could be read."""

    issues: list[dict[str, Any]]
    total: int | None
    last: bool
    token: str | None
    oldest: datetime | None
    newest: datetime | None


def _updated_times(issues: Sequence[Mapping[str, Any]]) -> list[datetime]:
    """The readable `updated` of the issues; an unreadable one is skipped later, when it is mapped."""
    times: list[datetime] = []
    for issue in issues:
        try:
            times.append(parse_jira_time((issue.get("fields") or {}).get("updated")))
        except MappingError:
            continue
    return times


class _Reads:
    """What one sync has read: each issue version once, and which spans offset paging may have shifted."""

    def __init__(self) -> None:
        self.versions: dict[str, object] = {}
        self.guarded: dict[str, _Span] = {}
        """Issues that came before an offset page of their search: if one moved, that page skipped one."""
        self.shifted: dict[_Span, None] = {}
        """Spans to read again, in the order found (a dict as an ordered set)."""
        self.newest: datetime | None = None

    def guard(self, issue_ids: Sequence[str], span: _Span) -> None:
        for issue_id in issue_ids:
            self.guarded[issue_id] = span

    def fresh(self, page: _Page) -> list[dict[str, Any]]:
        """The issue versions of the page not read before; a guarded issue seen again newer marks its span shifted."""
        if page.newest is not None and (self.newest is None or page.newest > self.newest):
            self.newest = page.newest
        fresh: list[dict[str, Any]] = []
        for issue in page.issues:
            issue_id = str(issue.get("id"))
            # The raw `updated` names the version: unreadable ones are then also skipped only once.
            version = (issue.get("fields") or {}).get("updated")
            if issue_id in self.versions:
                if self.versions[issue_id] == version:
                    continue
                span = self.guarded.pop(issue_id, None)
                if span is not None:
                    self.shifted[span] = None
            self.versions[issue_id] = version
            fresh.append(issue)
        return fresh


class JiraConnector:
    """JSM issues of the configured JQL with their CSAT ratings: scans by `updated`, lookups by id, id sweeps."""

    def __init__(
        self,
        source: JiraSource,
        observe_request: RequestObserver = ignore_request,
        *,
        sleep: SleepFn = time.sleep,
        jitter: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.name = source.name
        self.source = source
        """The configuration this connector reads (the sync plans get theirs from its kind's capabilities)."""
        self._url = source.url.rstrip("/")
        self._jira = JiraClient(source, observe_request, sleep=sleep, jitter=jitter, now=now)
        self._estimate_totals = False
        self._zone: ZoneInfo | None = None
        self._mapper: IssueMapper | None = None
        self._changelog_cap = 0
        """The longest embedded changelog the site has shown in this sync: a shorter one is not cut."""

    def close(self) -> None:
        self._jira.close()
        self._mapper = None

    # -- connection ------------------------------------------------------------------------------

    def _connect(self) -> tuple[JiraClient, IssueMapper]:
        """Detect the deployment, then read the site's fields, statuses and the API user's zone."""
        if self._mapper is not None:
            return self._jira, self._mapper
        site = self._jira.site()
        self._zone = site.zone
        self._mapper = IssueMapper(
            self.source,
            FieldCatalog.from_fields(site.fields, self.source.sla_fields),
            StatusCatalog.from_statuses(site.statuses),
        )
        return self._jira, self._mapper

    # -- search ----------------------------------------------------------------------------------

    def _search(
        self,
        client: JiraClient,
        jql: str,
        fields: Sequence[str],
        start: int,
        token: str | None,
        expand: str = "changelog",
    ) -> _Page:
        """One search page: Cloud's enhanced search by token, Data Center's search by startAt."""
        page = client.search(jql, fields, start=start, token=token, expand=expand, limit=self.source.page_size)
        issues: list[dict[str, Any]] = page["issues"]
        times = _updated_times(issues)
        oldest, newest = (min(times), max(times)) if times else (None, None)
        if self._jira.cloud:
            token = page.get("nextPageToken")
            last = page.get("isLast") is True or not token or not issues
            return _Page(issues, None, last, token, oldest, newest)
        total = page.get("total") if isinstance(page.get("total"), int) else None
        last = not issues or (total is not None and start + len(issues) >= total)
        return _Page(issues, total, last, None, oldest, newest)

    def _scan(
        self,
        client: JiraClient,
        span: _Span,
        fields: Sequence[str],
        reads: _Reads,
        expand: str = "changelog",
        base: str | None = None,
    ) -> Iterator[_Page]:
        """The pages of one span, each page from a new search at the last issue's minute: a keyset, not a position."""
        # startAt and Cloud's page tokens are positions: an issue read on one page and updated (or deleted)
        # before the next leaves its place, every later issue moves one place up, and the next page skips
        # one, whose `updated` is then below the watermark for good. A search from the minute of the last
        # issue read starts after whatever moved; that minute's issues come again and are dropped as read.
        # Only when a whole page lies in the search's first minute (more than a page of issues updated in
        # one minute, or no known zone, whose literals carry a 14 h margin) does paging go on by position;
        # the issues before such a page are guarded: if one comes back newer, it moved, and the span from
        # that minute up to the page's first issue is read again at the end.
        since, start, token = span.since, 0, None
        before: list[str] = []
        while True:
            scope = self.source.jql if base is None else base
            page = self._search(client, search_jql(scope, since, span.until), fields, start, token, expand)
            if before:
                # A skipped issue lies between the pages: up to this page's first issue (unbounded without one).
                until = jql_until(page.oldest, self._zone) if page.oldest else span.until
                reads.guard(before, _Span(since, until))
            yield page
            if page.last:
                return
            after = jql_since(page.newest, self._zone) if self._zone and page.newest else None
            if after is not None and after > since:  # literals are "YYYY-MM-DD HH:MM": string order is time order
                since, start, token, before = after, 0, None, []
            else:
                before += [str(issue.get("id")) for issue in page.issues]
                start, token = start + len(page.issues), page.token

    def _pages(
        self, client: JiraClient, since: str, fields: Sequence[str]
    ) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        """Issue versions not read before in this sync, page by page, with the first search's total (Data Center)."""
        reads = _Reads()
        total: int | None = None
        for number, page in enumerate(self._scan(client, _Span(since), fields, reads)):
            if number == 0:
                total = page.total  # progress counts fresh versions against everything the sync matched at first
            yield reads.fresh(page), total
        for _ in range(REREAD_ROUNDS):
            if not reads.shifted or reads.newest is None:
                return
            spans, tail = list(reads.shifted), _Span(jql_since(reads.newest, self._zone))
            reads.shifted.clear()
            reads.guarded.clear()
            for span in spans:
                for page in self._scan(client, span, fields, reads):
                    yield reads.fresh(page), total
            if reads.guarded:
                # The re-reads paged by position too: an issue of theirs updated meanwhile shows at the newest end.
                for page in self._scan(client, tail, fields, reads):
                    yield reads.fresh(page), total
        if reads.shifted:
            log.warning(
                "jira paging gave up: issues updated during the sync kept shifting the pages of these minutes; "
                "an issue of them may be missing until it next changes",
                extra={
                    "source": self.name,
                    "minutes": ",".join(dict.fromkeys(span.since for span in reads.shifted)),
                    "rereads": REREAD_ROUNDS,
                },
            )

    def _histories(self, issue: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The whole changelog: the embedded one when surely complete, else paged from the issue."""
        embedded = embedded_histories(issue, self._changelog_cap)
        self._changelog_cap = max(self._changelog_cap, embedded_length(issue))
        if embedded is not None:
            return embedded
        key = str(issue.get("key") or issue.get("id"))
        if not self._jira.cloud:
            expand = {"expand": "changelog", "fields": "status"}
            body = self._jira.call("changelog", partial(self._jira.get, f"/rest/api/2/issue/{key}", expand))
            changelog = body.get("changelog") if isinstance(body, dict) else None
            if not isinstance(changelog, dict) or not isinstance(changelog.get("histories"), list):
                raise SchemaError(f"source {self.name}: issue {key} at {self._url} came without its changelog")
            return list(changelog["histories"])
        histories: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"startAt": len(histories), "maxResults": CHANGELOG_PAGE}
            body = self._jira.call("changelog", partial(self._jira.get, f"/rest/api/3/issue/{key}/changelog", params))
            values = body.get("values") if isinstance(body, dict) else None
            if not isinstance(values, list):
                raise SchemaError(f"source {self.name}: changelog of {key} at {self._url} has no values list")
            histories += values
            if body.get("isLast", True) or not values:
                return histories

    def _feedback_survey(self, mapper: IssueMapper, issue: Mapping[str, Any], ticket: Ticket) -> SurveyResponse | None:
        """CSAT from the JSM feedback endpoint, for sites where the Satisfaction field is not visible."""
        if ticket.state not in ("resolved", "closed"):
            return None
        key = str(issue.get("key") or issue.get("id"))

        def request() -> Any:
            try:
                return self._jira.get(
                    f"/rest/servicedeskapi/request/{key}/feedback", headers={"X-ExperimentalApi": "opt-in"}
                )
            except JIRAError as error:
                if error.status_code == 404:  # not rated, or not a service request
                    return None
                raise

        body = self._jira.call("feedback", request)
        if not isinstance(body, dict) or body.get("rating") is None:
            return None
        issue_fields = issue.get("fields") or {}
        when = issue_fields.get("resolutiondate") or issue_fields.get("updated")
        return mapper.survey(issue, body["rating"], when, commented=has_comment(body))

    phases: tuple[RecordKind, ...] = ("ticket",)
    """One phase: each issue's CSAT rating comes with the issue, so a ticket scan reads the surveys too."""

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None = None) -> Iterator[ScanPage]:
        """Issues updated at or after `since` (everything from 1970 when None), each page's tickets and ratings."""
        if phase != "ticket":
            raise ValueError(f"source {self.name}: JSM ratings come with their issues; there is no {phase} scan")
        self._check_jql()
        client, mapper = self._connect()
        literal = FULL_SCAN_SINCE if since is None else jql_since(since, self._zone)
        newest: datetime | None = None
        fetched = 0
        estimate = self._estimate(client, self.source.jql, literal)
        for issues, total in self._pages(client, literal, mapper.requested_fields()):
            total = total if total is not None else estimate
            page = self._page(mapper, issues)
            if page.position is not None:
                newest = page.position if newest is None else max(newest, page.position)
            fetched += len(issues)
            yield ScanPage(
                tickets=page.tickets, surveys=page.surveys, skipped=page.skipped, position=newest,
                fetched_so_far=fetched, total_expected=total,
            )  # fmt: skip

    def estimate_totals(self) -> None:
        """From now on, ask Jira Cloud for an approximate count at the start of each scan (a long backfill)."""
        self._estimate_totals = True

    def _estimate(
        self, client: JiraClient, base: str, since_literal: str, until_literal: str | None = None
    ) -> int | None:
        """Cloud's search has no total: during a backfill (estimate_totals), one `approximate-count` request per
        scan gives the progress log its `remaining` and ETA. Data Center reports `total` itself."""
        if not self._estimate_totals or not client.cloud:
            return None
        return client.approximate_count(search_jql(base, since_literal, until_literal))

    def open_tickets(self, updated_before: datetime, since: datetime | None) -> Iterator[ScanPage]:
        """Issues of the scope not in a done status category and last updated before `updated_before`."""
        self._check_jql()
        client, mapper = self._connect()
        scope = f"({self.source.jql}) AND {OPEN_CLAUSE}" if self.source.jql.strip() else OPEN_CLAUSE
        span = _Span(
            FULL_SCAN_SINCE if since is None else jql_since(since, self._zone), jql_until(updated_before, self._zone)
        )
        reads = _Reads()
        newest: datetime | None = None
        fetched = 0
        estimate = self._estimate(client, scope, span.since, span.until)
        for page in self._scan(client, span, mapper.requested_fields(), reads, base=scope):
            scanned = self._page(mapper, reads.fresh(page))
            if scanned.position is not None:
                newest = scanned.position if newest is None else max(newest, scanned.position)
            fetched += len(page.issues)
            yield ScanPage(
                tickets=scanned.tickets, surveys=scanned.surveys, skipped=scanned.skipped, position=newest,
                fetched_so_far=fetched, total_expected=page.total if page.total is not None else estimate,
            )  # fmt: skip

    def get(self, kind: RecordKind, ids: Sequence[str]) -> ScanPage:
        """Issues of the configured scope by issue id (`id in (...)`, ID_CHUNK at a time), with their ratings."""
        if kind != "ticket":
            raise ValueError(f"source {self.name}: get() reads issues, not {kind}")
        self._check_jql()
        client, mapper = self._connect()
        wanted = [i for i in dict.fromkeys(ids) if i.isdigit()]  # Jira issue ids are numbers: nothing else is quoted
        pages: list[ScanPage] = []
        for start in range(0, len(wanted), ID_CHUNK):
            clause = f"id in ({', '.join(wanted[start : start + ID_CHUNK])})"
            scope = f"({self.source.jql}) AND {clause}" if self.source.jql.strip() else clause
            for issues in self._search_all(client, f"{scope} ORDER BY key ASC", mapper.requested_fields()):
                pages.append(self._page(mapper, issues))
        return ScanPage(
            tickets=tuple(t for p in pages for t in p.tickets),
            surveys=tuple(s for p in pages for s in p.surveys),
            skipped=tuple(k for p in pages for k in p.skipped),
            fetched_so_far=sum(len(p.tickets) + sum(k.kind == "ticket" for k in p.skipped) for p in pages),
        )

    def ids(self, kind: RecordKind, since: datetime | None) -> Iterator[list[str]]:
        """Ids of the issues of the scope updated at or after `since`, a search page at a time, no other field."""
        if kind != "ticket":
            raise ValueError(f"source {self.name}: JSM ratings have no ids of their own")
        self._check_jql()
        client, _ = self._connect()
        literal = FULL_SCAN_SINCE if since is None else jql_since(since, self._zone)
        reads = _Reads()
        for page in self._scan(client, _Span(literal), ("updated",), reads, expand=""):
            yield [str(issue.get("id")) for issue in reads.fresh(page)]

    def _check_jql(self) -> None:
        if _ORDER_BY.search(self.source.jql):
            raise BadRequest(f"source {self.name}: jql must not contain ORDER BY: the connector orders for paging")

    def _search_all(self, client: JiraClient, jql: str, fields: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
        """Every page of one search, by position (a lookup by id: nothing moves that matters)."""
        start, token = 0, None
        while True:
            page = self._search(client, jql, fields, start, token)
            yield page.issues
            if page.last:
                return
            start, token = start + len(page.issues), page.token

    def _page(self, mapper: IssueMapper, issues: Sequence[Mapping[str, Any]]) -> ScanPage:
        """Tickets and CSAT ratings of a page of issues; `position` is the newest readable `updated` on it."""
        tickets: list[Ticket] = []
        surveys: list[SurveyResponse] = []
        skips: list[SkippedRecord] = []
        newest: datetime | None = None
        for issue in issues:
            try:
                updated = parse_jira_time((issue.get("fields") or {}).get("updated"))
                newest = updated if newest is None else max(newest, updated)
                ticket = mapper.ticket(issue, self._histories(issue))
            except MappingError as error:
                skips.append(skipped("ticket", issue, error))
                continue
            tickets.append(ticket)
            try:
                survey = mapper.survey_from_field(issue)
                if survey is None and self.source.csat_feedback_endpoint and mapper.fields.satisfaction is None:
                    survey = self._feedback_survey(mapper, issue, ticket)
            except MappingError as error:
                skips.append(skipped("survey", issue, error))
                continue
            if survey is not None:
                surveys.append(survey)
        return ScanPage(tickets=tuple(tickets), surveys=tuple(surveys), skipped=tuple(skips), position=newest)
