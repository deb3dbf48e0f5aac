"""Both clients through the one HTTP layer, over loopback: one status table and one retry policy for every upstream.

The same answer on a ServiceNow table page and on a Jira search page gives the same error type and
the same number of tries, each client waiting on its own schedule (ServiceNow 1 s doubling, Jira
5 s doubling, both x (0.7 + 0.6 x 0.5) here) unless Retry-After says otherwise on 429 and 503.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from itsm_exporter.connectors.base import (
    AccessDenied,
    BadRequest,
    Connector,
    ConnectorError,
    CredentialsRefused,
    RateLimited,
    UpstreamUnavailable,
)
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.jira.connector import JiraConnector
from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector
from tests.fakes.faults import Fault, FaultProxy, Waits, jira_envelope, servicenow_envelope, status
from tests.fakes.jira import fake_jira
from tests.fakes.servicenow import FakeServiceNow
from tests.plans import run_plan
from tests.test_faults_servicenow import seed, sn_source
from tests.test_jira import source_settings

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

Kind = Literal["servicenow", "jira"]
KINDS: list[Kind] = ["servicenow", "jira"]
MAX_RETRIES = 2


@dataclass(frozen=True)
class Upstream:
    """A fake upstream behind the fault proxy, its paged read, and how its client backs off."""

    kind: Kind
    proxy: FaultProxy
    path: str
    """The whole path of the paged read (a table page, a search page)."""
    backoff: list[float]
    """The waits of MAX_RETRIES retries without Retry-After."""
    servicenow: FakeServiceNow | None = None
    waits: Waits = field(default_factory=Waits)
    codes: list[str] = field(default_factory=list)

    def envelope(self, message: str) -> dict[str, Any]:
        return servicenow_envelope(message) if self.kind == "servicenow" else jira_envelope(message)

    def read(self) -> None:
        """One incremental sync of the source through the proxy."""
        connector: Connector
        if self.servicenow is not None:
            source = sn_source(self.servicenow, self.proxy, surveys_enabled=False, max_retries=MAX_RETRIES)
            connector = ServiceNowConnector(source, self.codes.append, sleep=self.waits, jitter=lambda: 0.5)
        else:
            settings = source_settings(self.proxy.url, "cloud", max_retries=MAX_RETRIES, timeout="300ms")
            jira = JiraSource.model_validate(settings)
            connector = JiraConnector(jira, self.codes.append, sleep=self.waits, jitter=lambda: 0.5)
        try:
            run_plan(connector)
        finally:
            connector.close()


@contextmanager
def upstream(kind: Kind) -> Iterator[Upstream]:
    if kind == "servicenow":
        with FakeServiceNow() as fake, FaultProxy(fake.url) as proxy:
            seed(fake)
            yield Upstream(kind, proxy, "/api/now/table/incident", [1.0, 2.0], fake)
    else:
        with fake_jira("cloud") as jira, FaultProxy(jira.url) as proxy:
            yield Upstream(kind, proxy, "/rest/api/3/search/jql", [5.0, 10.0])


TABLE: list[tuple[int, type[ConnectorError], bool]] = [
    (400, BadRequest, False),
    (401, CredentialsRefused, False),
    (403, AccessDenied, False),  # an AuthError: the sync treats both alike, discover reports a denied table
    (404, BadRequest, False),
    (405, BadRequest, False),
    (408, UpstreamUnavailable, True),
    (409, BadRequest, False),
    (410, BadRequest, False),
    (422, BadRequest, False),
    (429, RateLimited, True),
    (500, UpstreamUnavailable, True),
    (501, UpstreamUnavailable, True),
    (502, UpstreamUnavailable, True),
    (503, UpstreamUnavailable, True),
    (504, UpstreamUnavailable, True),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("code", "error", "retried"), TABLE, ids=[str(code) for code, _, _ in TABLE])
def test_a_status_is_the_same_error_with_the_same_retries_on_both_clients(
    kind: Kind, code: int, error: type[ConnectorError], retried: bool
) -> None:
    with upstream(kind) as site:
        site.proxy.plan(status(code, site.envelope("refused"), path=site.path, times=1 + MAX_RETRIES))
        with pytest.raises(ConnectorError) as raised:
            site.read()
        tries = site.proxy.actions(site.path)
    assert type(raised.value) is error
    assert tries == ["status"] * (1 + MAX_RETRIES if retried else 1)
    assert site.waits.seconds == (site.backoff if retried else [])
    assert site.codes.count(str(code)) == len(tries)


RETRY_AFTER: list[tuple[int, str, bool]] = [
    (429, "4", True),
    (503, "4", True),
    (503, "Thu, 01 Jan 1970 00:00:00 GMT", True),  # a date in the past: retry at once
    (500, "4", False),  # Retry-After means something on 429 and 503 only
    (502, "4", False),
    (408, "4", False),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("code", "retry_after", "honoured"), RETRY_AFTER, ids=["429", "503", "503-date", "500", "502", "408"]
)
def test_retry_after_is_honoured_on_429_and_503_only(kind: Kind, code: int, retry_after: str, honoured: bool) -> None:
    with upstream(kind) as site:
        site.proxy.plan(status(code, site.envelope("busy"), retry_after=retry_after, path=site.path))
        site.read()
        assert site.proxy.unfired() == []
    expected = (0.0 if retry_after.startswith("Thu") else float(retry_after)) if honoured else site.backoff[0]
    assert site.waits.seconds == [expected]


def redirect_loop(path: str) -> Fault:
    """302 back to the same path, more often than requests follows redirects (30)."""
    return Fault("status", path, 1, 40, 302, b"", (("Location", path),))


def gzip_lie(path: str) -> Fault:
    """A 200 that says gzip and is not: requests raises ContentDecodingError reading it."""
    return Fault("status", path, 1, 1, 200, b'{"result": []}', (("Content-Encoding", "gzip"),))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("fault", "name"),
    [(redirect_loop, "TooManyRedirects"), (gzip_lie, "ContentDecodingError")],
    ids=["redirect-loop", "bad-encoding"],
)
def test_a_request_error_that_is_not_a_network_failure_is_not_retried(
    kind: Kind, fault: Callable[[str], Fault], name: str
) -> None:
    with upstream(kind) as site:
        site.proxy.plan(fault(site.path))
        with pytest.raises(UpstreamUnavailable) as raised:
            site.read()
    assert str(raised.value).endswith(f": {name}")
    assert "retries" not in str(raised.value)
    assert site.waits.seconds == []
    assert site.codes.count("error") == 1
