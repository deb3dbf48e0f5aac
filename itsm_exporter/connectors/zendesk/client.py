"""A Zendesk Support account through the one HTTP layer: credentials, the export's pace, and Zendesk's error words.

Every request is a GET on our own session (http.build_session), run inside http.with_retries and
classified by http.Classifier with `ZendeskWords`; there is no other retry loop, status table or
network-error wording here. What Zendesk adds:

- credentials: an API token as Basic `{email}/token:{token}`, or an OAuth access token as Bearer,
  kept in an auth object off the session's headers so nothing prints them;
- the incremental export endpoints allow 10 requests a minute (docs/api-notes.md): the client paces
  itself on them (a sliding minute, waits injected), and a 429 still waits out its Retry-After;
- next pages are asked for by their cursor on our own URL, never by the absolute `after_url` or
  `links.next` Zendesk returns: those name the account's public host, which would bypass a proxy or
  a host the configuration maps the account to.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import requests

from itsm_exporter.connectors.base import AuthError, RequestObserver, SchemaError, SleepFn, ignore_request
from itsm_exporter.connectors.http import Backoff, Classifier, build_session, with_retries
from itsm_exporter.connectors.zendesk.config import ZendeskSource
from itsm_exporter.source_config import read_secret

EXPORT_PREFIX: Final = "/api/v2/incremental/"
"""Paths under the incremental export's own rate limit."""
PACE_WINDOW_SECONDS: Final = 60.0


class ZendeskWords:
    """Zendesk's hook into the classifier: `{"error": ..., "description": ...}` or `{"error": {"title", "message"}}`."""

    def detail(self, response: requests.Response) -> str:
        return error_detail(response)

    def advice(self, status: int) -> str:
        if status == 404:
            return "Is url the account's address (https://SUBDOMAIN.zendesk.com)?"
        return ""


def error_detail(response: requests.Response) -> str:
    """Zendesk's own error text from a failed response's body; "" when it sent none (never the body itself)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    error, description = body.get("error"), body.get("description")
    parts: list[str] = []
    if isinstance(error, dict):
        parts += [str(error[k]) for k in ("title", "message") if isinstance(error.get(k), str) and error[k]]
    elif isinstance(error, str) and error:
        parts.append(error)
    if isinstance(description, str) and description:
        parts.append(description)
    return ": ".join(parts)


class _Bearer(requests.auth.AuthBase):
    """An OAuth access token; kept off the session's headers so nothing prints it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


class ExportPace:
    """At most `per_minute` requests in any minute on the export endpoints: waits before a request, never after.

    Zendesk counts the account's export requests over a minute and answers 429 beyond its limit; pacing
    below it keeps a first sync of many pages free of 429s (another client of the same account can still
    cause one: its Retry-After is honoured by the retry loop).
    """

    def __init__(self, per_minute: int, sleep: SleepFn, clock: Callable[[], float]) -> None:
        self._per_minute = per_minute
        self._sleep = sleep
        self._clock = clock
        self._sent: deque[float] = deque()

    def wait(self) -> None:
        now = self._clock()
        while self._sent and now - self._sent[0] >= PACE_WINDOW_SECONDS:
            self._sent.popleft()
        if len(self._sent) >= self._per_minute:
            self._sleep(PACE_WINDOW_SECONDS - (now - self._sent[0]))
            now = self._clock()
            self._sent.popleft()
        self._sent.append(now)


class ZendeskClient:
    """One Zendesk source's connection: GETs of JSON objects with typed errors, retries and the export's pace."""

    def __init__(
        self,
        source: ZendeskSource,
        observe: RequestObserver = ignore_request,
        *,
        sleep: SleepFn = time.sleep,
        jitter: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = source.name
        self.url = source.url.rstrip("/")
        self._backoff = Backoff(max_retries=source.max_retries, sleep=sleep, jitter=jitter)
        who = f"the API token of {source.email}" if source.email else "the OAuth token"
        self._errors = Classifier(self.name, self.url, who, ZendeskWords(), now)
        self._pace = ExportPace(source.export_requests_per_minute, sleep, clock)
        token = read_secret(source.token, source.token_file)
        oauth = read_secret(source.oauth_token, source.oauth_token_file)
        if token is None and oauth is None:
            raise AuthError(f"source {self.name}: no token or oauth_token configured")
        self._session = build_session(source, observe)
        self._session.headers["Accept"] = "application/json"
        self._session.auth = (f"{source.email}/token", token) if token is not None else _Bearer(oauth or "")

    def close(self) -> None:
        self._session.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, what: str) -> dict[str, Any]:
        """The JSON object at `path` (under the account's URL); every failure typed, retried where that can help."""
        url = f"{self.url}{path}"
        errors = self._errors
        paced = path.startswith(EXPORT_PREFIX)

        def attempt(retries: int) -> dict[str, Any]:
            if paced:
                self._pace.wait()
            try:
                response = self._session.get(url, params=params)
            except requests.RequestException as error:
                raise errors.network(error, what, retries) from error
            if response.status_code >= 300:
                raise errors.response(response, what, retries)
            try:
                body = response.json()
            except ValueError as error:
                raise errors.not_json(response.headers.get("Content-Type", ""), what, retries) from error
            if not isinstance(body, dict):
                raise SchemaError(f"{errors.where(what)}: the answer is not a JSON object")
            return body

        return with_retries(attempt, self._backoff)

    def where(self, what: str) -> str:
        """`source NAME: WHAT at URL`, the start of every message about this account."""
        return self._errors.where(what)
