"""One ServiceNow Table API page at a time through pysnow: auth, retries and error mapping.

pysnow sends one request per `get()`, raises a bare HTTPError before reading the error body and
knows nothing of 429, so this layer drives it: it reads ServiceNow's error envelope from the
HTTPError's response, waits out 429/5xx/network failures, and refreshes OAuth tokens.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import pysnow
import pysnow.exceptions
import requests

from itsm_exporter.config import ServiceNowSource, read_secret, redacted_url
from itsm_exporter.connectors.base import (
    AccessDenied,
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
from itsm_exporter.connectors.http import (
    TRANSIENT_ERRORS,
    USER_AGENT,
    Backoff,
    Retry,
    build_session,
    honoured_retry_after,
    status_class,
    with_retries,
)
from itsm_exporter.connectors.servicenow_wire import error_message

log = logging.getLogger(__name__)

T = TypeVar("T")
TOKEN_PATH: Final = "/oauth_token.do"
TOKEN_MARGIN_SECONDS: Final = 60.0
"""Renew an OAuth access token this long before it expires, so no request races its expiry."""


@dataclass(frozen=True)
class Page:
    """The records of one Table API response and its X-Total-Count (None when not counted)."""

    records: list[dict[str, Any]]
    total: int | None


class _TokenRejected(Exception):
    """A 401 while an OAuth token is in use: `_call` renews the token once, else raises `failure`."""

    def __init__(self, failure: ConnectorError | Retry) -> None:
        super().__init__(str(failure))
        self.failure = failure


@dataclass
class _Token:
    access: str
    refresh: str | None
    expires_at: float


class TableClient:
    """Reads Table API pages with sysparm_display_value=all and exclude_reference_link, buffered."""

    def __init__(
        self,
        source: ServiceNowSource,
        observe: RequestObserver = ignore_request,
        *,
        sleep: SleepFn = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = source.name
        self._url = source.url.rstrip("/")
        self._user = source.username or ""
        self._password = read_secret(source.password, source.password_file) or ""
        self._client_id = source.client_id
        self._client_secret = read_secret(source.client_secret, source.client_secret_file)
        self._timeout = (source.connect_timeout.seconds, source.timeout.seconds)
        self._backoff = Backoff(max_retries=source.max_retries, sleep=sleep, jitter=jitter)
        self._clock = clock
        self._token: _Token | None = None
        self._session = build_session(source, observe)
        parts = urlsplit(self._url)
        self._client = pysnow.Client(
            host=parts.netloc + parts.path, session=self._session, use_ssl=parts.scheme == "https"
        )
        # pysnow stamps its own User-Agent on the session it is given.
        self._session.headers["User-Agent"] = USER_AGENT
        if self._client_id is None:
            self._session.auth = (self._user, self._password)

    def get(self, table: str, query: str, fields: Sequence[str], limit: int, *, count: bool = True) -> Page:
        """One page of `table`; 408, 429, 5xx, network failures and cut-short pages are retried (http.with_retries)."""
        what = f"table {table}"

        def send(retries: int) -> Page:
            resource = self._client.resource(api_path=f"/table/{table}", timeout=self._timeout)
            if not count:
                resource.parameters.add_custom({"sysparm_no_count": "true"})
            reply: Any = None
            try:
                reply = resource.get(
                    query=query, fields=list(fields), limit=limit, display_value="all", exclude_reference_link=True
                )
                records = reply.all()
            except requests.HTTPError as error:
                response = error.response
                if response is None:
                    raise UpstreamUnavailable(f"source {self._name}: {self._url}: {error}") from error
                raise self._rejected(response, retries, what) from error
            except requests.JSONDecodeError as error:
                raise self._not_json(reply.headers if reply is not None else {}, table, retries) from error
            except requests.RequestException as error:
                raise self._network_failure(retries, what, error) from error
            except pysnow.exceptions.MissingResult as error:
                raise SchemaError(
                    f"source {self._name}: {self._url} answered table {table} without a `result` key"
                ) from error
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise SchemaError(f"source {self._name}: {self._url}: table {table}: `result` is not a list")
            return Page(records, _total(reply.headers))

        return self._call(send)

    def stats(self, table: str, query: str, group_by: str | None = None) -> list[tuple[str, str, int]]:
        """Record counts of `table` matching `query` from the Aggregate API, one request whatever the table's size.

        With `group_by`: (value, display value, count) per distinct value; without: one ("", "", count).
        Used by `discover` only; the sync reads the Table API.
        """
        what = f"stats of table {table}"
        params = {"sysparm_query": query, "sysparm_count": "true", "sysparm_display_value": "all"}
        if group_by:
            params["sysparm_group_by"] = group_by

        def send(retries: int) -> list[tuple[str, str, int]]:
            try:
                response = self._session.get(
                    f"{self._url}/api/now/stats/{table}",
                    params=params,
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                )
            except requests.RequestException as error:
                raise self._network_failure(retries, what, error) from error
            if response.status_code >= 300:
                raise self._rejected(response, retries, what)
            try:
                body = response.json()
            except ValueError as error:
                raise self._not_json(response.headers, table, retries) from error
            return _aggregate_counts(body, group_by, f"source {self._name}: {self._url}: {what}")

        return self._call(send)

    def _call(self, send: Callable[[int], T]) -> T:
        """`send` through the one retry loop, authorized, renewing the OAuth token once on a 401 (revoked or
        expired early; the refresh grant first): the same for every API this client calls."""
        renewed = False

        def attempt(retries: int) -> T:
            nonlocal renewed
            while True:
                self._authorize()
                try:
                    return send(retries)
                except _TokenRejected as rejected:
                    if self._token is None or renewed:
                        raise rejected.failure from None
                    self._token.expires_at, renewed = float("-inf"), True

        return with_retries(attempt, self._backoff)

    def _rejected(self, response: requests.Response, retries: int, what: str) -> Exception:
        """The error of a failed response; a 401 under OAuth first offers `_call` the chance to renew."""
        failure = self._failure(response, retries, what)
        if response.status_code == 401 and self._token is not None:
            return _TokenRejected(failure)
        return failure

    def close(self) -> None:
        self._session.close()

    def _failure(self, response: requests.Response, retries: int, what: str) -> ConnectorError | Retry:
        """The typed error of a failed response, or Retry when the status table says it is worth another try."""
        status = response.status_code
        message = _envelope(response) or response.reason or ""
        where = f"source {self._name}: {redacted_url(self._url)}"
        outcome = status_class(status)
        if outcome == "auth":
            if status == 403:
                return AccessDenied(f"{where} denies read access to user {self._user} (HTTP 403 on {what}: {message})")
            return AuthError(
                f"{where} refused the credentials of user {self._user} (HTTP {status} on {what}: {message})"
            )
        if outcome == "bad_request":
            return BadRequest(f"{where} rejected the query on {what} (HTTP {status}): {message}")
        retry_after = honoured_retry_after(status, response.headers)
        if status == 429:
            error: ConnectorError = RateLimited(
                f"{where} kept rate-limiting {what} (HTTP 429) after {retries} retries", retry_after
            )
        else:
            error = UpstreamUnavailable(
                f"{where} failed {what} with HTTP {status} {message} after {retries} retries".rstrip()
            )
        return Retry(error, retry_after)

    def _network_failure(self, retries: int, what: str, error: requests.RequestException) -> ConnectorError | Retry:
        failure = UpstreamUnavailable(
            f"source {self._name}: {self._url} unreachable for {what} after {retries} retries: {type(error).__name__}"
        )
        if isinstance(error, TRANSIENT_ERRORS):
            return Retry(failure)
        return UpstreamUnavailable(f"source {self._name}: {self._url} unreachable for {what}: {type(error).__name__}")

    def _not_json(self, headers: Any, table: str, retries: int) -> ConnectorError | Retry:
        content_type = str(headers.get("Content-Type", ""))
        if "html" in content_type.lower():
            # A hibernation or maintenance page lasts longer than a sync's retries: not retried.
            return UpstreamUnavailable(
                f"source {self._name}: {self._url} returned an HTML page (hibernating instance?) for table {table}"
            )
        # A JSON page cut short (a connection dropped mid-body) is a network failure: tried again.
        return Retry(
            SchemaError(
                f"source {self._name}: {self._url} returned a page of table {table} that is not valid JSON "
                f"after {retries} retries"
            )
        )

    def _authorize(self) -> None:
        """Get or renew the OAuth access token (password grant, then refresh grant) when one is due."""
        if self._client_id is None:
            return
        if self._token is None or self._clock() >= self._token.expires_at - TOKEN_MARGIN_SECONDS:
            refresh = self._token.refresh if self._token is not None else None
            token = self._grant({"grant_type": "refresh_token", "refresh_token": refresh}) if refresh else None
            self._token = token or self._grant(
                {"grant_type": "password", "username": self._user, "password": self._password}
            )
            if self._token is None:
                raise AuthError(f"source {self._name}: {self._url} issued no OAuth token to user {self._user}")
        self._session.headers["Authorization"] = f"Bearer {self._token.access}"

    def _grant(self, form: dict[str, str | None]) -> _Token | None:
        """POST /oauth_token.do form-encoded (JSON is refused); None when a refresh token is rejected."""
        self._session.headers.pop("Authorization", None)
        data = {"client_id": self._client_id, "client_secret": self._client_secret, **form}
        # pysnow set `content-type: application/json` on the session: override it for this request.
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}

        def attempt(retries: int) -> tuple[requests.Response, Any]:
            """The response and, on success, its body."""
            try:
                response = self._session.post(self._url + TOKEN_PATH, data=data, headers=headers)
            except requests.RequestException as error:
                raise self._network_failure(retries, "the OAuth token", error) from error
            if response.status_code in (400, 401):
                return response, None
            if response.status_code >= 300:
                raise self._failure(response, retries, "the OAuth token")
            try:
                return response, response.json()
            except ValueError as error:
                no_token = f"source {self._name}: {self._url}{TOKEN_PATH} answered without an access token"
                if "html" in response.headers.get("Content-Type", "").lower():
                    raise SchemaError(no_token) from error  # a hibernation or login page: not retried
                # A JSON body cut short, as on a table page: tried again.
                raise Retry(SchemaError(f"{no_token}: not valid JSON after {retries} retries")) from error

        response, body = with_retries(attempt, self._backoff)
        if response.status_code in (400, 401) and form["grant_type"] == "refresh_token":
            log.info("oauth refresh token rejected", extra={"source": self._name, "status": response.status_code})
            return None
        if response.status_code in (400, 401):
            raise AuthError(
                f"source {self._name}: {self._url} refused the OAuth password grant for user {self._user} "
                f"and client {self._client_id} (HTTP {response.status_code} {_oauth_error(response)})".rstrip()
            )
        try:
            return _Token(
                access=str(body["access_token"]),
                refresh=str(body["refresh_token"]) if body.get("refresh_token") else None,
                expires_at=self._clock() + float(body.get("expires_in") or 1800),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise SchemaError(
                f"source {self._name}: {self._url}{TOKEN_PATH} answered without an access token"
            ) from error


def _aggregate_counts(body: Any, group_by: str | None, where: str) -> list[tuple[str, str, int]]:
    """The Aggregate API's `result`: an object without group-by, a list of groups with it; counts are strings."""
    result = body.get("result") if isinstance(body, dict) else None
    groups = result if isinstance(result, list) else [result] if isinstance(result, dict) else None
    if groups is None:
        raise SchemaError(f"{where}: the answer has no `result`")
    counts = []
    for group in groups:
        try:
            count = int(group["stats"]["count"])
        except (KeyError, TypeError, ValueError) as error:
            raise SchemaError(f"{where}: a group without a numeric stats.count") from error
        fields = group.get("groupby_fields") or [{}]
        if group_by and not isinstance(fields, list):
            raise SchemaError(f"{where}: groupby_fields is not a list")
        first = fields[0] if isinstance(fields[0], dict) else {}
        raw = str(first.get("value") or "")
        counts.append((raw, str(first.get("display_value") or raw), count))
    return counts


def _total(headers: Any) -> int | None:
    text = headers.get("X-Total-Count")
    return int(text) if text is not None and str(text).isdigit() else None


def _envelope(response: requests.Response) -> str:
    try:
        return error_message(response.json())
    except ValueError:
        return ""


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    return str(body.get("error_description") or body.get("error") or error_message(body))
