"""A Jira site (Cloud or Data Center) through the `jira` library, on our own session, with typed errors.

What every command that talks to a Jira source needs, apart from any sync logic: the session
(timeouts, TLS, proxy, the request observer), the credentials (Cloud `email` + API token as Basic,
a Data Center personal access token as Bearer), deployment detection, the site's fields, statuses
and the API user's zone, one search page, and every request run through the one retry loop of
http.py with Jira's errors mapped to the connector errors. The library's retrying session is never
used (see `library_on_session`), and every request is a GET (we never ask the library for
`use_post`), so 408, 429, 5xx, network failures and pages cut short are retried here and nowhere
else, with an injectable wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError
from jira.resilientsession import raise_on_error

from itsm_exporter.connectors.base import (
    AuthError,
    RequestObserver,
    SchemaError,
    SleepFn,
    UpstreamUnavailable,
    ignore_request,
)
from itsm_exporter.connectors.http import (
    Backoff,
    Classifier,
    ObservedSession,
    build_session,
    media_type,
    with_retries,
)
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.source_config import read_secret

T = TypeVar("T")

HEADERS: Final = {
    "Accept": "application/json,*/*;q=0.9",
    "Cache-Control": "no-cache",
    "Content-Type": "application/json",
    "X-Atlassian-Token": "no-check",
}
"""What the library's own session sends on every request: JSON first, so errors come as Jira's envelope."""


class JiraWords:
    """Jira's hook into the classifier: its errorMessages and errors, and what to do about a 410."""

    def detail(self, response: requests.Response) -> str:
        return error_detail(response)

    def advice(self, status: int) -> str:
        if status == 410:
            return (
                "The API was removed: on Jira Cloud set deployment: cloud (or auto) so that the connector uses "
                "the enhanced search /rest/api/3/search/jql"
            )
        return ""


class _Bearer(requests.auth.AuthBase):
    """A Data Center personal access token; kept off the session's headers so nothing prints it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


def library_on_session(session: ObservedSession, url: str, api_version: str) -> JIRA:
    """A jira.JIRA whose every request goes through `session`; it sends nothing while it is built.

    The seam: jira 3.10 always builds its own ResilientSession in its constructor and takes no
    session (nor adapter, hook or observer), and every one of its methods reads `self._session` when
    it runs. So the client is built without credentials and without the server-info request, and
    its session is replaced once, here and nowhere else, before its first request. The earlier seam,
    overriding the constructor's private `_add_client_cert_to_session` hook in a subclass, relied on
    a second private name and on the constructor's order of calls. tests/test_jira_client.py fails
    if the library stops sending through `_session` or starts taking a session of its own.
    """
    library = JIRA(
        server=url,
        options={"rest_api_version": api_version},
        get_server_info=False,
        max_retries=0,
        logging=False,
    )
    own = library._session
    library._session = session  # type: ignore[assignment]  # see the docstring: the library takes no session
    own.close()
    return library


@dataclass(frozen=True)
class Site:
    """What a site says about itself: its fields, its statuses (raw), and the API user's zone (None: unknown)."""

    fields: list[dict[str, Any]]
    statuses: list[dict[str, Any]]
    zone: ZoneInfo | None


class JiraClient:
    """One Jira source's connection: deployment detection, typed errors, retries; the sync logic lives elsewhere."""

    def __init__(
        self,
        source: JiraSource,
        observe: RequestObserver = ignore_request,
        *,
        sleep: SleepFn = time.sleep,
        jitter: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.name = source.name
        self.url = source.url.rstrip("/")
        self._source = source
        self._observe = observe
        self._backoff = Backoff(
            max_retries=source.max_retries, base_seconds=5.0, cap_seconds=30.0, sleep=sleep, jitter=jitter
        )
        who = f"user {source.username}" if source.username else "the personal access token"
        self._errors = Classifier(self.name, self.url, who, JiraWords(), now)
        self._library: JIRA | None = None
        self._session: ObservedSession | None = None
        self.cloud = False
        """Known once `library()` has run: Cloud (enhanced search, paged changelogs) or Data Center."""
        self._content_type = ""
        """Content-Type of the last response: the library's JSON errors do not carry the response."""

    def close(self) -> None:
        if self._library is not None:
            self._library.close()
        if self._session is not None:
            self._session.close()
        self._library = self._session = None

    # -- connection ------------------------------------------------------------------------------

    def library(self) -> JIRA:
        """The jira library's client, built and its deployment detected on first use."""
        if self._library is not None:
            return self._library
        deployment = self._source.deployment
        library = self._open("3" if deployment == "cloud" else "2")
        if deployment == "auto":
            self.cloud = library.deploymentType == "Cloud"
            if self.cloud:
                # Detection needs /rest/api/2/serverInfo (both deployments); Cloud search is on v3.
                library.close()
                library = self._open("3")
        else:
            self.cloud = deployment == "cloud"
            library.deploymentType = "Cloud" if self.cloud else "Server"
        self._library = library
        return library

    def _open(self, api_version: str) -> JIRA:
        """A library client on a new session with the source's credentials, after its serverInfo answered."""
        secret = read_secret(self._source.token, self._source.token_file) or read_secret(
            self._source.password, self._source.password_file
        )
        if secret is None:
            raise AuthError(f"source {self.name}: no token or password configured")
        session = build_session(self._source, self._observe)
        session.headers.update(HEADERS)
        session.auth = (self._source.username, secret) if self._source.username else _Bearer(secret)
        session.hooks["response"].append(self._remember_content_type)
        library = library_on_session(session, self.url, api_version)
        try:
            library.deploymentType = self.call("serverInfo", lambda: _deployment(library.server_info()))
        except BaseException:
            library.close()
            raise
        if self._session is not None:
            self._session.close()
        self._session = session
        return library

    def site(self) -> Site:
        """The site's fields and statuses and the API user's zone (Jira writes times in that zone)."""
        library = self.library()
        fields = self.call("field", library.fields)
        statuses = self.call("status", lambda: [s.raw for s in library.statuses()])
        myself = self.call("myself", library.myself)
        if not isinstance(fields, list) or not isinstance(myself, dict):
            raise SchemaError(f"source {self.name}: field or myself at {self.url} is not in Jira's shape")
        try:
            zone: ZoneInfo | None = ZoneInfo(str(myself.get("timeZone")))
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        return Site(fields, statuses, zone)

    # -- requests --------------------------------------------------------------------------------

    def search(
        self, jql: str, fields: Sequence[str], *, start: int, token: str | None, expand: str, limit: int
    ) -> dict[str, Any]:
        """One search page as Jira sends it: Cloud's enhanced search by token, Data Center's by startAt."""
        library = self.library()
        if self.cloud:
            page = self.call(
                "search",
                lambda: library.enhanced_search_issues(
                    jql, nextPageToken=token, maxResults=limit, fields=list(fields), expand=expand, json_result=True
                ),
            )
        else:
            page = self.call(
                "search",
                lambda: library.search_issues(
                    jql, startAt=start, maxResults=limit, fields=list(fields), expand=expand, json_result=True
                ),
            )
        if not isinstance(page, dict) or not isinstance(page.get("issues"), list):
            raise SchemaError(f"source {self.name}: search at {self.url} answered without an issues list")
        return page

    def get(self, path: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """A GET the jira library has no method for (changelog pages, JSM feedback), on the same session.

        Raises JIRAError on a failed status, as the library does: run it inside `call`.
        """
        self.library()
        assert self._session is not None
        response = self._session.get(f"{self.url}{path}", params=params, headers=headers)
        raise_on_error(response)
        return response.json()

    def approximate_count(self, jql: str) -> int | None:
        """Jira Cloud's estimate of the issues a JQL matches (its enhanced search reports no total); an
        ORDER BY is dropped. None when the answer carries no count."""
        query = {"jql": jql.split(" ORDER BY ")[0]}
        body = self.call("approximate count", lambda: self.post("/rest/api/3/search/approximate-count", query))
        count = body.get("count") if isinstance(body, dict) else None
        return count if isinstance(count, int) and not isinstance(count, bool) else None

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """A read-only POST the library has no method for (Cloud's approximate count), as `get`."""
        self.library()
        assert self._session is not None
        response = self._session.post(f"{self.url}{path}", json=dict(body))
        raise_on_error(response)
        return response.json()

    def call(self, what: str, request: Callable[[], T]) -> T:
        """Run one request through the one retry loop (http.with_retries); failures go to the classifier."""
        errors = self._errors

        def attempt(retries: int) -> T:
            self._content_type = ""
            try:
                return request()
            except JIRAError as error:
                if error.response is None:
                    raise UpstreamUnavailable(f"{errors.where(what)}: {error.text or 'no response'}") from error
                raise errors.response(error.response, what, retries) from error
            except KeyError as error:
                raise SchemaError(f"{errors.where(what)} did not answer in Jira's shape: missing {error}") from error
            except ValueError as error:  # before RequestException: requests' JSONDecodeError is both
                raise errors.not_json(self._content_type, what, retries) from error
            except requests.RequestException as error:
                raise errors.network(error, what, retries) from error

        return with_retries(attempt, self._backoff)

    def _remember_content_type(self, response: requests.Response, **_: Any) -> None:
        self._content_type = response.headers.get("Content-Type", "")


def _deployment(info: Any) -> str | None:
    """serverInfo's deploymentType; KeyError without versionNumbers, as the library's own server-info read raises."""
    if not isinstance(info, dict) or "versionNumbers" not in info:
        raise KeyError("versionNumbers")
    deployment = info.get("deploymentType")
    return None if deployment is None else str(deployment)


def error_detail(response: requests.Response) -> str:
    """Jira's errorMessages and errors, or what a non-JSON body is: never the page itself, for logs."""
    try:
        body = response.json()
    except ValueError:
        if not response.content:
            return "empty body"
        return f"non-JSON body ({media_type(response.headers.get('Content-Type')) or 'no Content-Type'})"
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
