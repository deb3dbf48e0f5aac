"""One ServiceNow Table API page at a time through pysnow: auth, and pysnow's failures handed to the one classifier.

pysnow sends one request per `get()`, raises a bare HTTPError before reading the error body and
knows nothing of 429, so this layer drives it through the HTTP layer's retry loop and Classifier
(connectors/http.py). What stays here are ServiceNow's hooks: its error envelope (`ServiceNowWords`)
and OAuth (the password and refresh grants, and renewing a token a 401 refused).
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

from itsm_exporter.connectors.base import (
    AuthError,
    RequestObserver,
    SchemaError,
    SleepFn,
    ignore_request,
)
from itsm_exporter.connectors.http import (
    USER_AGENT,
    Backoff,
    Classifier,
    build_session,
    with_retries,
)
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.wire import error_message
from itsm_exporter.source_config import read_secret

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


class ServiceNowWords:
    """ServiceNow's hook into the classifier: the message of its error envelope."""

    def detail(self, response: requests.Response) -> str:
        return _envelope(response)

    def advice(self, status: int) -> str:
        return ""


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
        self._errors = Classifier(self._name, self._url, f"user {self._user}", ServiceNowWords())
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
                if error.response is None:
                    raise self._errors.network(error, what, retries) from error
                raise self._errors.response(error.response, what, retries) from error
            except requests.JSONDecodeError as error:
                content_type = str(reply.headers.get("Content-Type", "")) if reply is not None else ""
                raise self._errors.not_json(content_type, what, retries) from error
            except requests.RequestException as error:
                raise self._errors.network(error, what, retries) from error
            except pysnow.exceptions.MissingResult as error:
                raise SchemaError(f"{self._errors.where(what)}: the answer has no `result` key") from error
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise SchemaError(f"{self._errors.where(what)}: `result` is not a list")
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
                raise self._errors.network(error, what, retries) from error
            if response.status_code >= 300:
                raise self._errors.response(response, what, retries)
            try:
                body = response.json()
            except ValueError as error:
                raise self._errors.not_json(response.headers.get("Content-Type", ""), what, retries) from error
            return _aggregate_counts(body, group_by, self._errors.where(what))

        return self._call(send)

    def _call(self, send: Callable[[int], T]) -> T:
        """`send` through the one retry loop, authorized; a 401 under OAuth renews the token once (revoked or
        expired early; the refresh grant first): the same for every API this client calls."""

        def attempt(retries: int) -> T:
            self._authorize()
            return send(retries)

        return with_retries(attempt, self._backoff, renew=self._renew_token)

    def _renew_token(self) -> bool:
        """Make the next `_authorize` get a new token; False when no OAuth token is in use (nothing to renew)."""
        if self._token is None:
            return False
        self._token.expires_at = float("-inf")
        return True

    def close(self) -> None:
        self._session.close()

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
                raise AuthError(f"{self._errors.where('the OAuth token')}: no token was issued to user {self._user}")
        self._session.headers["Authorization"] = f"Bearer {self._token.access}"

    def _grant(self, form: dict[str, str | None]) -> _Token | None:
        """POST /oauth_token.do form-encoded (JSON is refused); None when a refresh token is rejected."""
        self._session.headers.pop("Authorization", None)
        data = {"client_id": self._client_id, "client_secret": self._client_secret, **form}
        # pysnow set `content-type: application/json` on the session: override it for this request.
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}

        what = "the OAuth token"

        def attempt(retries: int) -> tuple[requests.Response, Any]:
            """The response and, on success, its body."""
            try:
                response = self._session.post(self._url + TOKEN_PATH, data=data, headers=headers)
            except requests.RequestException as error:
                raise self._errors.network(error, what, retries) from error
            if response.status_code in (400, 401):
                return response, None  # the grant was refused: OAuth's answer, read below
            if response.status_code >= 300:
                raise self._errors.response(response, what, retries)
            try:
                return response, response.json()
            except ValueError as error:
                raise self._errors.not_json(response.headers.get("Content-Type", ""), what, retries) from error

        response, body = with_retries(attempt, self._backoff)
        if response.status_code in (400, 401) and form["grant_type"] == "refresh_token":
            log.info("oauth refresh token rejected", extra={"source": self._name, "status": response.status_code})
            return None
        if response.status_code in (400, 401):
            raise AuthError(
                f"{self._errors.where(what)}: HTTP {response.status_code}, the OAuth password grant for user "
                f"{self._user} and client {self._client_id} was refused{_said(_oauth_error(response))}"
            )
        try:
            return _Token(
                access=str(body["access_token"]),
                refresh=str(body["refresh_token"]) if body.get("refresh_token") else None,
                expires_at=self._clock() + float(body.get("expires_in") or 1800),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise SchemaError(f"{self._errors.where(what)}: the answer holds no access token") from error


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


def _said(detail: str) -> str:
    return f": {detail}" if detail else ""


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    return str(body.get("error_description") or body.get("error") or error_message(body))
