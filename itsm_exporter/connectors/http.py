"""The one HTTP layer of every upstream: sessions, the error classifier, the retry loop.

A client sends its requests through an ObservedSession and one retry loop (`with_retries`); every
failure (a status, a network error, a body that is not the JSON asked for) is turned into a typed
error, or a Retry, by one `Classifier`. The clients keep only their hooks: how their upstream words
an error (`ErrorWords`: the error text in its body, advice for a status) and, for OAuth, how to renew
a refused token (the `renew` of `with_retries`).
"""

from __future__ import annotations

import email.utils
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import requests

from itsm_exporter import __version__
from itsm_exporter.connectors.base import (
    AccessDenied,
    BadRequest,
    ConnectorError,
    CredentialsRefused,
    RateLimited,
    RequestObserver,
    SchemaError,
    SleepFn,
    UpstreamUnavailable,
    ignore_request,
)
from itsm_exporter.source_config import TlsMixin, redacted_url

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
"""Network failures worth retrying; other request errors (a bad URL, too many redirects) would fail again.
A TLS verification failure is a ConnectionError to requests, but retrying it cannot help: it is not retried."""

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


def after(retries: int) -> str:
    """` after 2 retries`, ` after 1 retry` (nothing when none was made): how often a failure was tried again."""
    if retries == 0:
        return ""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}"


class ErrorWords(Protocol):
    """One upstream's hook into the classifier: how it words an error."""

    def detail(self, response: requests.Response) -> str:
        """The upstream's own error text from a failed response's body (its error envelope); "" when none."""
        ...

    def advice(self, status: int) -> str:
        """What to do about `status` on this upstream (Jira's 410: the search API moved); "" when nothing."""
        ...


class PlainWords:
    """An upstream whose errors carry no envelope worth quoting and need no advice."""

    def detail(self, response: requests.Response) -> str:
        return ""

    def advice(self, status: int) -> str:
        return ""


@dataclass(frozen=True)
class Classifier:
    """Turns every failure of one source's requests into a typed error, or a Retry that the loop waits out.

    | failure | error | retried |
    | 401 | CredentialsRefused (an AuthError; `with_retries` renews an OAuth token once) | no |
    | 403 | AccessDenied (an AuthError: the login works, this read is not allowed) | no |
    | 400, 404, 410 and other 4xx | BadRequest | no |
    | 408, 429, 5xx | RateLimited (429) or UpstreamUnavailable once the retries run out | yes |
    | connection refused or reset, DNS, timeouts, a body cut off | UpstreamUnavailable | yes |
    | a TLS verification failure, other request errors (redirect loop, bad encoding) | UpstreamUnavailable | no |
    | a JSON body cut short | SchemaError once the retries run out | yes |
    | an HTML page where JSON was expected (maintenance, hibernation, a login page) | UpstreamUnavailable | no |

    Messages start with `source NAME: WHAT at URL` (the URL with any password hidden: config refuses one, this
    is defence in depth) and never quote a response body beyond the upstream's own error text.
    """

    source: str
    url: str
    user: str
    """Who the credentials are, as a message names them: `user itsm-exporter`, `the personal access token`."""
    words: ErrorWords = field(default_factory=PlainWords)
    now: Callable[[], float] = time.time

    def where(self, what: str) -> str:
        return f"source {self.source}: {what} at {redacted_url(self.url)}"

    def response(self, response: requests.Response, what: str, retries: int) -> ConnectorError | Retry:
        """The error of a response whose status is not a success."""
        status = response.status_code
        detail = self.words.detail(response)
        said = f": {detail}" if detail else ""
        where = self.where(what)
        outcome = status_class(status)
        if status == 401:
            return CredentialsRefused(f"{where}: HTTP 401, {self.user} was refused{said}")
        if outcome == "auth":
            return AccessDenied(f"{where}: HTTP {status}, {self.user} may not read it{said}")
        if outcome == "bad_request":
            advice = self.words.advice(status)
            return BadRequest(
                f"{where}: HTTP {status}, the request was rejected{said}{f'. {advice}' if advice else ''}"
            )
        retry_after = honoured_retry_after(status, response.headers, self.now)
        if status == 429:
            return Retry(
                RateLimited(f"{where}: HTTP 429, still rate-limited{after(retries)}", retry_after), retry_after
            )
        reason = f" {response.reason}" if response.reason else ""
        return Retry(UpstreamUnavailable(f"{where}: HTTP {status}{reason}{after(retries)}{said}"), retry_after)

    def network(self, error: requests.RequestException, what: str, retries: int) -> ConnectorError | Retry:
        """The error of a request that got no (whole) response: refused, unknown host, timed out, cut off."""
        where = self.where(what)
        host = _host_of(error, self.url)
        if isinstance(error, requests.exceptions.SSLError):
            return UpstreamUnavailable(
                f"{where}: the TLS handshake with {host} failed ({_root_cause(error)}): set ca_bundle to the CA "
                "that signed its certificate (verify_tls: false only for a lab instance)"
            )
        if not isinstance(error, TRANSIENT_ERRORS):
            return UpstreamUnavailable(f"{where}: {type(error).__name__}")
        cause, retried = _root_cause(error), after(retries)
        if isinstance(cause, ConnectionRefusedError):
            said = (
                f"connection refused by {host}{retried}: check the source's url (host and port), and that the "
                "instance is up and reachable from here"
            )
        elif isinstance(cause, ConnectionResetError):
            said = f"connection reset by {host}{retried}"
        elif isinstance(cause, socket.gaierror):
            said = f"host {host} not found (DNS){retried}: check the source's url"
        elif isinstance(error, requests.exceptions.ConnectTimeout):
            said = f"no connection to {host} within connect_timeout{retried}: a firewall, a proxy, or the host down?"
        elif isinstance(error, requests.exceptions.ReadTimeout):
            said = f"no answer within timeout{retried}"
        else:
            said = f"{type(error).__name__}{retried}"
        return Retry(UpstreamUnavailable(f"{where}: {said}"))

    def not_json(self, content_type: str, what: str, retries: int) -> ConnectorError | Retry:
        """The error of a success whose body is not the JSON asked for."""
        where = self.where(what)
        if "html" in media_type(content_type):
            # A maintenance, hibernation or SSO login page lasts longer than a sync's retries: not retried.
            return UpstreamUnavailable(
                f"{where}: answered with an HTML page, not JSON (hibernating, in maintenance, or a login page?)"
            )
        # A JSON body cut short (a connection dropped mid-body) is a network failure: tried again.
        return Retry(SchemaError(f"{where}: the answer is not valid JSON{after(retries)}"))


def media_type(content_type: str | None) -> str:
    """`text/html` of `text/html;charset=UTF-8`."""
    return (content_type or "").split(";")[0].strip().lower()


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain (urllib3 wraps the socket's error a few times)."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = error.__cause__ or error.__context__ or _first_arg_error(error)
        if inner is None:
            return error
        error = inner
    return error


def _first_arg_error(error: BaseException) -> BaseException | None:
    """urllib3 and requests pass the error they wrap as an argument rather than a cause."""
    for arg in error.args:
        if isinstance(arg, BaseException):
            return arg
        reason = getattr(arg, "reason", None)
        if isinstance(reason, BaseException):
            return reason
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, BaseException) else None


def _host_of(error: requests.RequestException, fallback_url: str) -> str:
    """`host:port` of the request that failed (the configured URL when the error has none)."""
    url = error.request.url if error.request is not None and error.request.url else fallback_url
    parts = urlsplit(str(url))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


T = TypeVar("T")


def with_retries(attempt: Callable[[int], T], backoff: Backoff, *, renew: Callable[[], bool] | None = None) -> T:
    """The one retry loop of every upstream request.

    `attempt(retries)` (the number of retries so far, for its messages) returns a result, raises a
    ConnectorError (final), or raises Retry: then the loop waits (Retry-After when the upstream gave
    one, else capped exponential back-off with jitter) and tries again, up to `backoff.max_retries`
    times, after which Retry's error is raised, chained to the last failure. A CredentialsRefused (401)
    is tried once more at once when `renew()` says it renewed a token (an OAuth token revoked or expired
    early); a second one is final.
    """
    retries = 0
    renewed = False
    while True:
        try:
            return attempt(retries)
        except CredentialsRefused:
            if renew is None or renewed or not renew():
                raise
            renewed = True
        except Retry as retry:
            if retries >= backoff.max_retries:
                raise retry.error from retry.__cause__
            backoff.wait(retries, retry.retry_after)
            retries += 1
