"""HTTP plumbing shared by the ServiceNow and Jira connectors: sessions with timeouts, retry waits."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from itsm_exporter import __version__
from itsm_exporter.config import TlsMixin
from itsm_exporter.connectors.base import RequestObserver, SleepFn, ignore_request

log = logging.getLogger(__name__)

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
