"""Jira Service Management (Cloud and Data Center): issues become tickets, CSAT ratings surveys.

Search goes through the `jira` library: Cloud's enhanced search (`/rest/api/3/search/jql`, paged
by `nextPageToken`), Data Center's `/rest/api/2/search` (paged by `startAt`). The library runs on
our own session, so timeouts, TLS, proxy and the request observer apply to every request; its own
retries are off (`max_retries=0`) and 429/503 are retried here with an injectable wait.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    SchemaError,
    SleepFn,
    UpstreamUnavailable,
    ignore_request,
)
from itsm_exporter.connectors.http import Backoff, ObservedSession, build_session, parse_retry_after
from itsm_exporter.connectors.jira_mapping import (
    FieldCatalog,
    IssueMapper,
    MappingError,
    StatusCatalog,
    embedded_histories,
    parse_jira_time,
    skipped,
)
from itsm_exporter.records import Batch, RecordKind, SkippedRecord, SurveyResponse, Ticket

T = TypeVar("T")

OVERLAP: Final = timedelta(minutes=5)
"""Re-read window behind the watermark: Cloud search is eventually consistent (index lag)."""
UNKNOWN_ZONE_MARGIN: Final = timedelta(hours=14)
"""Without the API user's zone, a UTC literal minus the largest UTC offset is never too late."""
FULL_SCAN_SINCE: Final = "1970-01-01 00:00"
"""Lower bound of the first sync: Cloud rejects unbounded JQL, and every query keeps one shape."""
CHANGELOG_PAGE: Final = 100
RETRIED_STATUSES: Final = (429, 503)
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


class _SessionJira(JIRA):
    """jira.JIRA on a session we built: jira 3.10 creates its own session and takes none."""

    def __init__(self, session: ObservedSession, **kwargs: Any) -> None:
        self._given_session = session
        super().__init__(**kwargs)

    def _add_client_cert_to_session(self) -> None:
        # The constructor's first hook after it creates its session, before any request: use ours.
        self._session = self._given_session  # type: ignore[assignment]


def jql_since(since: datetime, zone: ZoneInfo | None) -> str:
    """The JQL minute literal for `updated >= ...`, read by Jira in the API user's zone, not after `since`."""
    if zone is None:
        return (since.astimezone(UTC) - UNKNOWN_ZONE_MARGIN).strftime("%Y-%m-%d %H:%M")
    local = since.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)

    def latest_reading(wall: datetime) -> datetime:
        # A wall time repeated when clocks go back has two readings; Jira may take either.
        return max(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))

    while latest_reading(local) > since:
        local -= timedelta(hours=1)
    return local.strftime("%Y-%m-%d %H:%M")


def _watermark(value: str | None) -> datetime | None:
    """A stored watermark; one that is not ours (unreadable or without zone) means a full sync."""
    try:
        moment = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def search_jql(base: str, since_literal: str) -> str:
    """The incremental query: the configured filter, an updated bound, a total order for paging."""
    bound = f'updated >= "{since_literal}"'
    where = f"({base}) AND {bound}" if base.strip() else bound
    return f"{where} ORDER BY updated ASC, key ASC"


def _error_text(error: JIRAError) -> str:
    """Jira's errorMessages and errors joined, or the start of a non-JSON body."""
    response = error.response
    if response is None:
        return str(error.text or "")
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200]
    if not isinstance(body, dict):
        return ""
    parts = [str(m) for m in body.get("errorMessages") or []]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    for key in ("message", "errorMessage"):
        if isinstance(body.get(key), str):
            parts.append(body[key])
    return "; ".join(parts)


class JiraConnector:
    """Fetches JSM issues updated since the watermark; each search page is a ticket and a survey batch."""

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
        """Run one request, retrying 429/503 (Retry-After honoured), and map failures to typed errors."""
        attempt = 0
        while True:
            try:
                return request()
            except JIRAError as error:
                status = error.status_code
                if status in RETRIED_STATUSES and attempt < self._source.max_retries:
                    self._backoff.wait(attempt, self._retry_after(error))
                    attempt += 1
                    continue
                raise self._mapped(what, error, attempt) from error
            except (ValueError, KeyError) as error:  # requests' JSONDecodeError is a ValueError too
                raise SchemaError(
                    f"source {self.name}: {what} at {self._url} did not answer with Jira's JSON: {error}"
                ) from error
            except requests.Timeout as error:
                raise UpstreamUnavailable(f"source {self.name}: {what} at {self._url} timed out") from error
            except requests.RequestException as error:
                raise UpstreamUnavailable(
                    f"source {self.name}: {what} at {self._url} failed: {type(error).__name__}"
                ) from error

    def _retry_after(self, error: JIRAError) -> float | None:
        headers = error.response.headers if error.response is not None else {}
        return parse_retry_after(headers.get("Retry-After"), self._now)

    def _mapped(self, what: str, error: JIRAError, retries: int) -> ConnectorError:
        status = error.status_code
        text = _error_text(error)
        where = f"source {self.name}: {what} at {self._url}"
        if status in (401, 403):
            return AuthError(f"{where}: HTTP {status} for user {self._user}: {text or 'credentials refused'}")
        if status == 410:
            return BadRequest(
                f"{where}: HTTP 410, the API was removed: {text}. On Jira Cloud set deployment: cloud (or auto) "
                "so that the connector uses the enhanced search /rest/api/3/search/jql"
            )
        if status == 400:
            return BadRequest(f"{where}: Jira rejected the request (HTTP 400): {text}")
        if status == 429:
            return RateLimited(
                f"{where}: still rate-limited (HTTP 429) after {retries} retries", self._retry_after(error)
            )
        if status is None or status >= 500:
            return UpstreamUnavailable(f"{where}: HTTP {status or 'error'}: {text}")
        return BadRequest(f"{where}: HTTP {status}: {text}")

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

    def _pages(
        self, client: JIRA, jql: str, fields: Sequence[str]
    ) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        """Search pages as (issues, total); total is known on Data Center only."""
        size = self._source.page_size
        token: str | None = None
        start = 0
        while True:
            search: Callable[[], Any] = (
                partial(
                    client.enhanced_search_issues, jql, nextPageToken=token, maxResults=size, fields=list(fields),
                    expand="changelog", json_result=True,
                )
                if self._cloud
                else partial(
                    client.search_issues, jql, startAt=start, maxResults=size, fields=list(fields), expand="changelog",
                    json_result=True,
                )
            )  # fmt: skip
            page = self._call("search", search)
            if not isinstance(page, dict) or not isinstance(page.get("issues"), list):
                raise SchemaError(f"source {self.name}: search at {self._url} answered without an issues list")
            issues: list[dict[str, Any]] = page["issues"]
            total = page.get("total") if isinstance(page.get("total"), int) else None
            yield issues, None if self._cloud else total
            if self._cloud:
                token = page.get("nextPageToken")
                if page.get("isLast") is True or not token or not issues:
                    return
            else:
                start += len(issues)
                if not issues or (total is not None and start >= total):
                    return

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

    def fetch(self, watermarks: Mapping[RecordKind, str | None]) -> Iterator[Batch]:
        if _ORDER_BY.search(self._source.jql):
            raise BadRequest(f"source {self.name}: jql must not contain ORDER BY: the connector orders for paging")
        marks = [_watermark(watermarks.get("ticket")), _watermark(watermarks.get("survey"))]
        since = None if None in marks else min(m for m in marks if m is not None)
        client, mapper = self._connect()
        literal = FULL_SCAN_SINCE if since is None else jql_since(since - OVERLAP, self._zone)
        jql = search_jql(self._source.jql, literal)
        fields = mapper.requested_fields()
        seen: dict[str, datetime] = {}
        newest = since
        fetched = surveyed = 0
        for issues, total in self._pages(client, jql, fields):
            tickets: list[Ticket] = []
            surveys: list[SurveyResponse] = []
            skips: dict[RecordKind, list[SkippedRecord]] = {"ticket": [], "survey": []}
            for issue in issues:
                issue_id = str(issue.get("id"))
                try:
                    updated = parse_jira_time((issue.get("fields") or {}).get("updated"))
                    # Read once per version: the overlap repeats issues, an update mid-sync brings a newer one.
                    if seen.get(issue_id) == updated:
                        continue
                    seen[issue_id] = updated
                    newest = updated if newest is None else max(newest, updated)
                    ticket = mapper.ticket(issue, self._histories(issue))
                except MappingError as error:
                    skips["ticket"].append(skipped("ticket", issue, error))
                    continue
                tickets.append(ticket)
                try:
                    survey = mapper.survey_from_field(issue)
                    if survey is None and self._source.csat_feedback_endpoint and mapper.fields.satisfaction is None:
                        survey = self._feedback_survey(mapper, issue, ticket)
                except MappingError as error:
                    skips["survey"].append(skipped("survey", issue, error))
                    continue
                if survey is not None:
                    surveys.append(survey)
            fetched += len(issues)
            surveyed += len(surveys)
            watermark = newest.astimezone(UTC).isoformat() if newest is not None else None
            yield Batch(
                kind="ticket", tickets=tuple(tickets), watermark=watermark, skipped=tuple(skips["ticket"]),
                fetched_so_far=fetched, total_expected=total,
            )  # fmt: skip
            yield Batch(
                kind="survey", surveys=tuple(surveys), watermark=watermark, skipped=tuple(skips["survey"]),
                fetched_so_far=surveyed,
            )  # fmt: skip
