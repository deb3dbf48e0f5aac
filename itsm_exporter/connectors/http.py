"""The one HTTP layer of the ServiceNow and Jira connectors: sessions, the status-to-error table, the retry loop."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import requests

from itsm_exporter import __version__
from itsm_exporter.connectors.base import ConnectorError, RequestObserver, SleepFn, ignore_request
from itsm_exporter.source_config import TlsMixin

USER_AGENT = f"itsm-exporter/{__version__}"
MAX_RETRY_AFTER_SECONDS = 300.0
"""A Retry-After longer than this is capped: a sync must not hang for hours on one header."""


class ObservedSession(requests.Session):
    """A session that always applies a timeout and reports every request's status to an observer.

    pysnow and jira call `Session.request` without a timeout; a hung upstream would otherwise
    block a sync (and the daemon's shutdown) forever.
    """

    def __init__(self, timeout: tuple[float, float], observe: RequestObserver = ignore_request) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.observe = observe

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        if kwargs.get("verify") is None:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace a session's verify unless the
            # request names it: the source's verify_tls: false or ca_bundle must win over the environment.
            kwargs["verify"] = self.verify
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException:
            self.observe("error")
            raise
        self.observe(str(response.status_code))
        return response


def build_session(source: TlsMixin, observe: RequestObserver = ignore_request) -> ObservedSession:
    """A session configured from a source's TLS, proxy and timeout settings."""
    session = ObservedSession((source.connect_timeout.seconds, source.timeout.seconds), observe)
    session.headers["User-Agent"] = USER_AGENT
    if not source.verify_tls:
        session.verify = False
    elif source.ca_bundle is not None:
        session.verify = str(source.ca_bundle)
    if source.proxy is not None:
        # An explicit proxy wins over HTTP(S)_PROXY; without one, requests honours the environment.
        session.proxies = {"http": source.proxy, "https": source.proxy}
        session.trust_env = False
    return session


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - now()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


@dataclass
class Backoff:
    """Capped exponential back-off with jitter, honouring Retry-After; the wait is injectable for tests."""

    max_retries: int
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    sleep: SleepFn = time.sleep
    jitter: Callable[[], float] = field(default=random.random)
    """Returns a number in [0, 1); the delay is scaled by 0.7 + 0.6 x it (Atlassian's suggested spread)."""

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return retry_after
        raw = min(self.cap_seconds, self.base_seconds * (2**attempt))
        return raw * (0.7 + 0.6 * self.jitter())

    def wait(self, attempt: int, retry_after: float | None = None) -> None:
        self.sleep(self.delay(attempt, retry_after))


RETRY_AFTER_STATUSES: Final = (429, 503)
"""Statuses whose Retry-After is honoured (RFC 6585, RFC 9110); other retried statuses back off by schedule."""
TRANSIENT_ERRORS: Final = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
"""Network failures worth retrying; other request errors (a bad URL, too many redirects) would fail again."""

StatusClass = Literal["auth", "retry", "bad_request"]


def status_class(status: int) -> StatusClass:
    """The one status-to-error table of every upstream.

    401 and 403: the credentials or a permission are refused (AuthError), retrying cannot help.
    408, 429 and 5xx: the upstream is busy or briefly failing: retried, then RateLimited (429) or
    UpstreamUnavailable. Every other status is a request the upstream will keep rejecting (BadRequest).
    """
    if status in (401, 403):
        return "auth"
    if status in (408, 429) or status >= 500:
        return "retry"
    return "bad_request"


def honoured_retry_after(status: int, headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """The wait a failed response asks for: its Retry-After on 429 and 503, else None (back off by schedule)."""
    if status not in RETRY_AFTER_STATUSES:
        return None
    return parse_retry_after(headers.get("Retry-After"), now)


class Retry(Exception):
    """Raised by an attempt that may be tried again; `error` is what the caller gets once the retries run out."""

    def __init__(self, error: ConnectorError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


T = TypeVar("T")


def with_retries(attempt: Callable[[int], T], backoff: Backoff) -> T:
    """The one retry loop of every upstream request.

    `attempt(retries)` (the number of retries so far, for its messages) returns a result, raises a
    ConnectorError (final), or raises Retry: then the loop waits (Retry-After when the upstream gave
    one, else capped exponential back-off with jitter) and tries again, up to `backoff.max_retries`
    times, after which Retry's error is raised, chained to the last failure.
    """
    retries = 0
    while True:
        try:
            return attempt(retries)
        except Retry as retry:
            if retries >= backoff.max_retries:
                raise retry.error from retry.__cause__
            backoff.wait(retries, retry.retry_after)
            retries += 1
