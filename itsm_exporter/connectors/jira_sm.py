"""Jira Service Management (Cloud and Data Center): issues become tickets, CSAT ratings surveys.

Search goes through the `jira` library: Cloud's enhanced search (`/rest/api/3/search/jql`, paged
by `nextPageToken`), Data Center's `/rest/api/2/search` (paged by `startAt`); both page positions,
so each page starts a new search from the minute of the last issue read (see `_scan`). The library runs on
our own session, so timeouts, TLS, proxy and the request observer apply to every request; its own
retries are off (`max_retries=0`). Every request is a GET (the library's search too: we never ask it
for `use_post`), so 429, 5xx, connection failures and timeouts are retried here, with an injectable wait.
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
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError
from jira.resilientsession import raise_on_error

from itsm_exporter.config import JiraSource, read_secret
from itsm_exporter.connectors.base import (
    AuthError,
    BadRequest,
    ConnectorError,
    RateLimited,
    RequestObserver,
    ScanPage,
    SchemaError,
    SleepFn,
    UpstreamUnavailable,
    ignore_request,
)
from itsm_exporter.connectors.http import (
    RETRY_AFTER_STATUSES,
    TRANSIENT_ERRORS,
    Backoff,
    ObservedSession,
    Retry,
    build_session,
    parse_retry_after,
    status_class,
    with_retries,
)
from itsm_exporter.connectors.jira_mapping import (
    FieldCatalog,
    IssueMapper,
    MappingError,
    StatusCatalog,
    embedded_histories,
    parse_jira_time,
    skipped,
)
from itsm_exporter.records import RecordKind, SkippedRecord, SurveyResponse, Ticket

T = TypeVar("T")

log = logging.getLogger(__name__)

UNKNOWN_ZONE_MARGIN: Final = timedelta(hours=14)
"""Without the API user's zone, a UTC literal minus the largest UTC offset is never too late."""
FULL_SCAN_SINCE: Final = "1970-01-01 00:00"
"""Lower bound of the first sync: Cloud rejects unbounded JQL, and every query keeps one shape."""
CHANGELOG_PAGE: Final = 100
ID_CHUNK: Final = 100
"""Issue ids per `id in (...)` lookup: a JQL of ~800 characters, well under URL limits."""
REREAD_ROUNDS: Final = 3
"""Re-reads of minutes whose offset pages an update may have shifted, before giving up with a warning."""
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


class _SessionJira(JIRA):
    """jira.JIRA on a session we built: jira 3.10 creates its own session and takes none."""

    def __init__(self, session: ObservedSession, **kwargs: Any) -> None:
        self._given_session = session
        super().__init__(**kwargs)

    def _add_client_cert_to_session(self) -> None:
        # The constructor's first hook after it creates its session, before any request: use ours.
        self._session = self._given_session  # type: ignore[assignment]


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


def _error_detail(error: JIRAError) -> str:
    """Jira's errorMessages and errors after ": ", or what a non-JSON body is: never the page itself, for logs."""
    response = error.response
    if response is None:
        return f": {error.text}" if error.text else ""
    try:
        body = response.json()
    except ValueError:
        if not response.content:
            return " (empty body)"
        return f" (non-JSON body, {_media_type(response.headers.get('Content-Type')) or 'no Content-Type'})"
    if not isinstance(body, dict):
        return ""
    parts = [str(m) for m in body.get("errorMessages") or []]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    for key in ("message", "errorMessage"):
        if isinstance(body.get(key), str):
            parts.append(body[key])
    return f": {'; '.join(parts)}" if parts else ""


def _media_type(content_type: str | None) -> str:
    """`text/html` of `text/html;charset=UTF-8`."""
    return (content_type or "").split(";")[0].strip().lower()


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
        self._source = source
        self.source = source
        """The config the sync plans read their policy from (sync/plans.py `plans_for`)."""
        self._url = source.url.rstrip("/")
        self._observe = observe_request
        self._backoff = Backoff(
            max_retries=source.max_retries, base_seconds=5.0, cap_seconds=30.0, sleep=sleep, jitter=jitter
        )
        self._now = now
        self._client: JIRA | None = None
        self._session: ObservedSession | None = None
        self._cloud = False
        self._zone: ZoneInfo | None = None
        self._mapper: IssueMapper | None = None
        self._content_type = ""
        """Content-Type of the last response: the library's JSON errors do not carry the response."""

    @property
    def _user(self) -> str:
        return self._source.username or "(personal access token)"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._session is not None:
            self._session.close()
        self._client = self._session = self._mapper = None

    # -- requests and errors ---------------------------------------------------------------------

    def _call(self, what: str, request: Callable[[], T]) -> T:
        """Run one GET through the one retry loop (http.with_retries) and map failures to typed errors."""
        where = f"source {self.name}: {what} at {self._url}"

        def attempt(retries: int) -> T:
            self._content_type = ""
            try:
                return request()
            except JIRAError as error:
                raise self._failure(where, error, retries) from error
            except KeyError as error:
                raise SchemaError(f"{where} did not answer in Jira's shape: missing {error}") from error
            except ValueError as error:  # before RequestException: requests' JSONDecodeError is both
                raise self._not_json(where, error) from error
            except TRANSIENT_ERRORS as error:
                raise Retry(
                    UpstreamUnavailable(f"{where} failed after {retries} retries: {type(error).__name__}")
                ) from error
            except requests.RequestException as error:
                raise UpstreamUnavailable(f"{where} failed: {type(error).__name__}") from error

        return with_retries(attempt, self._backoff)

    def _failure(self, where: str, error: JIRAError, retries: int) -> ConnectorError | Retry:
        """The typed error of a failed response, or Retry when the status table says it is worth another try."""
        status = error.status_code
        if status is not None and status_class(status) != "retry":
            return self._mapped(where, error, retries)
        retry_after = self._retry_after(error) if status in RETRY_AFTER_STATUSES else None
        return Retry(self._mapped(where, error, retries), retry_after)

    def _not_json(self, where: str, error: Exception) -> ConnectorError | Retry:
        # A maintenance, hibernation or SSO login page lasts longer than a sync's retries: not retried.
        if "html" in _media_type(self._content_type):
            return UpstreamUnavailable(
                f"{where} answered with an HTML page, not Jira's JSON (maintenance, hibernation or a login page?)"
            )
        # A JSON body cut short (a connection dropped mid-body) is a network failure: tried again.
        return Retry(SchemaError(f"{where} did not answer with Jira's JSON: {error}"))

    def _remember_content_type(self, response: requests.Response, **_: Any) -> None:
        self._content_type = response.headers.get("Content-Type", "")

    def _retry_after(self, error: JIRAError) -> float | None:
        headers = error.response.headers if error.response is not None else {}
        return parse_retry_after(headers.get("Retry-After"), self._now)

    def _mapped(self, where: str, error: JIRAError, retries: int) -> ConnectorError:
        status = error.status_code
        detail = _error_detail(error)
        if status in (401, 403):
            return AuthError(f"{where}: HTTP {status} for user {self._user}{detail or ': credentials refused'}")
        if status == 410:
            return BadRequest(
                f"{where}: HTTP 410, the API was removed{detail}. On Jira Cloud set deployment: cloud (or auto) "
                "so that the connector uses the enhanced search /rest/api/3/search/jql"
            )
        if status == 400:
            return BadRequest(f"{where}: Jira rejected the request (HTTP 400){detail}")
        if status == 429:
            return RateLimited(
                f"{where}: still rate-limited (HTTP 429) after {retries} retries", self._retry_after(error)
            )
        if status is None:
            return UpstreamUnavailable(f"{where}: no response{detail}")
        if status >= 500 or status == 408:
            return UpstreamUnavailable(f"{where} failed after {retries} retries: HTTP {status}{detail}")
        return BadRequest(f"{where}: HTTP {status}{detail}")

    def _get(self, path: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """A GET the jira library has no method for (changelog pages, JSM feedback), on the same session."""
        assert self._session is not None
        response = self._session.get(f"{self._url}{path}", params=params, headers=headers)
        raise_on_error(response)
        return response.json()

    # -- connection ------------------------------------------------------------------------------

    def _new_client(self, api_version: str) -> JIRA:
        secret = read_secret(self._source.token, self._source.token_file) or read_secret(
            self._source.password, self._source.password_file
        )
        if secret is None:
            raise AuthError(f"source {self.name}: no token or password configured")
        auth: dict[str, Any] = (
            {"basic_auth": (self._source.username, secret)} if self._source.username else {"token_auth": secret}
        )
        session = build_session(self._source, self._observe)
        session.hooks["response"].append(self._remember_content_type)
        try:
            client = _SessionJira(
                session,
                server=self._url,
                options={
                    "verify": session.verify,
                    "rest_api_version": api_version,
                    "headers": {"Accept": "application/json,*/*;q=0.9"},
                },
                get_server_info=True,
                max_retries=0,
                logging=False,
                **auth,
            )
        except BaseException:
            session.close()
            raise
        self._session = session
        return client

    def _connect(self) -> tuple[JIRA, IssueMapper]:
        """Detect the deployment, then read the site's fields, statuses and the API user's zone."""
        if self._client is not None and self._mapper is not None:
            return self._client, self._mapper
        deployment = self._source.deployment
        client = self._call("serverInfo", lambda: self._new_client("3" if deployment == "cloud" else "2"))
        if deployment == "auto":
            self._cloud = client.deploymentType == "Cloud"
            if self._cloud:
                # Detection needs /rest/api/2/serverInfo (both deployments); Cloud search is on v3.
                client.close()
                client = self._call("serverInfo", lambda: self._new_client("3"))
        else:
            self._cloud = deployment == "cloud"
            client.deploymentType = "Cloud" if self._cloud else "Server"
        self._client = client
        fields = self._call("field", client.fields)
        statuses = self._call("status", lambda: [s.raw for s in client.statuses()])
        myself = self._call("myself", client.myself)
        if not isinstance(fields, list) or not isinstance(myself, dict):
            raise SchemaError(f"source {self.name}: field or myself at {self._url} is not in Jira's shape")
        try:
            self._zone = ZoneInfo(str(myself.get("timeZone")))
        except (ZoneInfoNotFoundError, ValueError):
            self._zone = None
        self._mapper = IssueMapper(
            self._source,
            FieldCatalog.from_fields(fields, self._source.sla_fields),
            StatusCatalog.from_statuses(statuses),
        )
        return client, self._mapper

    # -- search ----------------------------------------------------------------------------------

    def _search(
        self, client: JIRA, jql: str, fields: Sequence[str], start: int, token: str | None, expand: str = "changelog"
    ) -> _Page:
        """One search page: Cloud's enhanced search by token, Data Center's search by startAt."""
        search: Callable[[], Any] = (
            partial(
                client.enhanced_search_issues, jql, nextPageToken=token, maxResults=self._source.page_size,
                fields=list(fields), expand=expand, json_result=True,
            )
            if self._cloud
            else partial(
                client.search_issues, jql, startAt=start, maxResults=self._source.page_size, fields=list(fields),
                expand=expand, json_result=True,
            )
        )  # fmt: skip
        page = self._call("search", search)
        if not isinstance(page, dict) or not isinstance(page.get("issues"), list):
            raise SchemaError(f"source {self.name}: search at {self._url} answered without an issues list")
        issues: list[dict[str, Any]] = page["issues"]
        times = _updated_times(issues)
        oldest, newest = (min(times), max(times)) if times else (None, None)
        if self._cloud:
            token = page.get("nextPageToken")
            last = page.get("isLast") is True or not token or not issues
            return _Page(issues, None, last, token, oldest, newest)
        total = page.get("total") if isinstance(page.get("total"), int) else None
        last = not issues or (total is not None and start + len(issues) >= total)
        return _Page(issues, total, last, None, oldest, newest)

    def _scan(
        self, client: JIRA, span: _Span, fields: Sequence[str], reads: _Reads, expand: str = "changelog"
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
            page = self._search(client, search_jql(self._source.jql, since, span.until), fields, start, token, expand)
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
        self, client: JIRA, since: str, fields: Sequence[str]
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
        """The whole changelog: the embedded one when complete, else paged from the issue."""
        embedded = embedded_histories(issue)
        if embedded is not None:
            return embedded
        key = str(issue.get("key") or issue.get("id"))
        if not self._cloud:
            expand = {"expand": "changelog", "fields": "status"}
            body = self._call("changelog", partial(self._get, f"/rest/api/2/issue/{key}", expand))
            changelog = body.get("changelog") if isinstance(body, dict) else None
            if not isinstance(changelog, dict) or not isinstance(changelog.get("histories"), list):
                raise SchemaError(f"source {self.name}: issue {key} at {self._url} came without its changelog")
            return list(changelog["histories"])
        histories: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"startAt": len(histories), "maxResults": CHANGELOG_PAGE}
            body = self._call("changelog", partial(self._get, f"/rest/api/3/issue/{key}/changelog", params))
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
                return self._get(
                    f"/rest/servicedeskapi/request/{key}/feedback", headers={"X-ExperimentalApi": "opt-in"}
                )
            except JIRAError as error:
                if error.status_code == 404:  # not rated, or not a service request
                    return None
                raise

        body = self._call("feedback", request)
        if not isinstance(body, dict) or body.get("rating") is None:
            return None
        issue_fields = issue.get("fields") or {}
        return mapper.survey(issue, body["rating"], issue_fields.get("resolutiondate") or issue_fields.get("updated"))

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
        for issues, total in self._pages(client, literal, mapper.requested_fields()):
            page = self._page(mapper, issues)
            if page.position is not None:
                newest = page.position if newest is None else max(newest, page.position)
            fetched += len(issues)
            yield ScanPage(
                tickets=page.tickets, surveys=page.surveys, skipped=page.skipped, position=newest,
                fetched_so_far=fetched, total_expected=total,
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
            scope = f"({self._source.jql}) AND {clause}" if self._source.jql.strip() else clause
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
        if _ORDER_BY.search(self._source.jql):
            raise BadRequest(f"source {self.name}: jql must not contain ORDER BY: the connector orders for paging")

    def _search_all(self, client: JIRA, jql: str, fields: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
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
                if survey is None and self._source.csat_feedback_endpoint and mapper.fields.satisfaction is None:
                    survey = self._feedback_survey(mapper, issue, ticket)
            except MappingError as error:
                skips.append(skipped("survey", issue, error))
                continue
            if survey is not None:
                surveys.append(survey)
        return ScanPage(tickets=tuple(tickets), surveys=tuple(surveys), skipped=tuple(skips), position=newest)
