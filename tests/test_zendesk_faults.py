"""The Zendesk connector through the fault proxy (tests/fakes/faults.py) in front of the fake account:
every failure is retried or typed as the one classifier says, and a sync that fails resumes from its cursor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from itsm_exporter.connectors.base import SchemaError, UpstreamUnavailable
from itsm_exporter.connectors.zendesk.config import ZendeskSource
from itsm_exporter.connectors.zendesk.connector import ZendeskConnector
from itsm_exporter.store import Store
from tests.fakes.faults import Fault, FaultProxy, hibernating, html_status, reset, status, truncated
from tests.fakes.zendesk import EMAIL, TOKEN, FakeTicket, at, error, fake_zendesk
from tests.plans import resume_state, synced
from tests.storeread import stored_surveys, stored_tickets
from tests.test_zendesk import Clock, expected_surveys, expected_tickets

pytestmark = pytest.mark.integration

EXPORT = "/api/v2/incremental/tickets/cursor"


def connector(url: str, clock: Clock, **extra: Any) -> ZendeskConnector:
    source = ZendeskSource.model_validate(
        {
            "name": "zd", "kind": "zendesk", "url": url, "email": EMAIL, "token": TOKEN, "page_size": 3,
            "max_retries": 2, "complaints": {"tags": ["complaint"], "360077": ["formal_complaint"]},
        } | extra
    )  # fmt: skip
    return ZendeskConnector(source, sleep=clock.sleep, jitter=lambda: 0.5, now=clock, clock=clock)


def sync(url: str, clock: Clock, store: Store) -> None:
    conn = connector(url, clock)
    try:
        synced(conn, store)
    finally:
        conn.close()


TRANSIENT = {
    "gateway 502": html_status(502, path=EXPORT, nth=2),
    "503 with Retry-After": status(503, error("ServiceUnavailable"), retry_after="3", path=EXPORT, nth=2),
    "429 with Retry-After": status(429, error("APIRateLimitExceeded"), retry_after="7", path=EXPORT, nth=2),
    "connection reset": reset(path=EXPORT, nth=2),
    "body cut short": truncated(path=EXPORT, nth=2),
    "ratings 500": status(500, error("InternalError"), path="/api/v2/satisfaction_ratings"),
}
WAITS = {
    "gateway 502": [1.0],
    "503 with Retry-After": [3.0],
    "429 with Retry-After": [7.0],
    "connection reset": [1.0],
    "body cut short": [1.0],
    "ratings 500": [1.0],
}


@pytest.mark.parametrize("case", sorted(TRANSIENT))
def test_a_transient_fault_is_retried_and_the_store_equals_the_account(case: str, tmp_path: Path) -> None:
    clock = Clock(at(8))
    store = Store(tmp_path / "store.db")
    with fake_zendesk(now=clock) as fake, FaultProxy(fake.url) as proxy:
        proxy.plan(TRANSIENT[case])
        sync(proxy.url, clock, store)
        assert proxy.unfired() == []
    assert stored_tickets(store, "zd") == expected_tickets()
    assert stored_surveys(store, "zd") == expected_surveys()
    assert clock.waits == WAITS[case]


PERSISTENT: dict[str, tuple[Fault, type[Exception], str]] = {
    "500": (
        status(500, error("InternalError", "Something went wrong"), path=EXPORT, times=3),
        UpstreamUnavailable,
        "HTTP 500 Internal Server Error after 2 retries: InternalError: Something went wrong",
    ),
    "html page": (
        hibernating(path=EXPORT),
        UpstreamUnavailable,
        "answered with an HTML page, not JSON (hibernating, in maintenance, or a login page?)",
    ),
    "cut short": (truncated(path=EXPORT, times=3), SchemaError, "the answer is not valid JSON after 2 retries"),
}


@pytest.mark.parametrize("case", sorted(PERSISTENT))
def test_a_persistent_fault_is_a_typed_error_naming_the_source(case: str) -> None:
    fault, kind, said = PERSISTENT[case]
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake, FaultProxy(fake.url) as proxy:
        proxy.plan(fault)
        with pytest.raises(kind) as caught:
            list(connector(proxy.url, clock).scan("ticket", None, None))
    assert str(caught.value) == f"source zd: the incremental ticket export at {proxy.url}: {said}"


def test_a_sync_that_fails_mid_export_resumes_from_the_committed_cursor(tmp_path: Path) -> None:
    clock = Clock(at(8))
    store = Store(tmp_path / "store.db")
    with fake_zendesk(now=clock) as fake, FaultProxy(fake.url) as proxy:
        proxy.plan(status(500, error("InternalError"), path=EXPORT, nth=3, times=3))
        with pytest.raises(UpstreamUnavailable):
            sync(proxy.url, clock, store)
        state = resume_state(store, "zd", "ticket")
        assert state is not None and state.token is not None
        assert sorted(t.id for t in stored_tickets(store, "zd")) == [
            "1",
            "2",
            "3",
            "6",
            "8",
            "9",
        ]  # two pages committed
        proxy.plan()
        before = len(fake.exports())
        sync(proxy.url, clock, store)
        rerun = fake.exports()[before:]
    assert rerun[0].param("cursor") == state.token and rerun[0].param("start_time") is None
    assert len(rerun) == 1  # the third page only: nothing committed is read again
    assert stored_tickets(store, "zd") == expected_tickets()


def test_an_export_that_never_advances_is_a_schema_error_not_a_loop() -> None:
    clock = Clock(at(8))
    with fake_zendesk(now=clock) as fake:
        fake.add(*(FakeTicket(100 + n, at(1), at(1)) for n in range(3)))
        stuck = {"tickets": [], "after_cursor": "same", "end_of_stream": False}
        fake.fail(200, "/cursor", body=stuck, times=5)
        with pytest.raises(SchemaError) as caught:
            list(connector(fake.url, clock).scan("ticket", None, "same"))
    assert "end_of_stream is false but the cursor did not advance" in str(caught.value)
