"""kill -9 in the middle of a Zendesk export, then a restart: it goes on from the committed cursor.

A real `python -m itsm_exporter once` process exports through a FaultProxy that holds one chosen export
page; once that request has arrived the process is SIGKILLed. The store then holds exactly the pages
answered before, with the cursor of the last one; the rerun asks for the page after that cursor, reads
nothing twice, and ends with the store equal to the account.
"""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from itsm_exporter.config import parse_config
from itsm_exporter.connectors.zendesk.config import ZendeskSource
from itsm_exporter.connectors.zendesk.connector import ZendeskConnector
from itsm_exporter.store import Store
from tests.fakes.faults import FaultProxy, slow
from tests.fakes.zendesk import EMAIL, TOKEN, FakeRating, FakeTicket, FakeZendesk, at, encode_cursor
from tests.plans import resume_state, synced
from tests.storeread import stored_surveys, stored_tickets
from tests.test_restart import WAIT_SECONDS, kill_when_held, start_once, write_config

pytestmark = pytest.mark.integration

TICKETS = 60
PAGE = 5
HELD_PAGE = 6
"""The export request that is held: five pages (25 tickets) are committed when the kill comes."""
EXPORT = "/api/v2/incremental/tickets/cursor"


def account(fake: FakeZendesk) -> FakeZendesk:
    fake.groups[1] = "Support"
    for n in range(1, TICKETS + 1):
        opened = at(1) + timedelta(hours=n)
        solved = n % 3 != 0
        fake.add(
            FakeTicket(
                n, opened, opened + timedelta(minutes=30 + n), status="solved" if solved else "open",
                priority=("urgent", "high", "normal", "low")[n % 4], group_id=1, reply_seconds=60 * n,
                solved_at=opened + timedelta(minutes=30 + n) if solved else None,
                tags=["complaint"] if n % 10 == 0 else [],
            )
        )  # fmt: skip
    fake.rate(*(FakeRating(900 + n, n, "good" if n % 2 else "bad", at(5), at(5, n)) for n in range(1, 5)))
    return fake


def settings(url: str) -> dict[str, Any]:
    # The fake's own limit is raised and the connector told so: this test is about the cursor, not the pace.
    return {
        "name": "zd", "kind": "zendesk", "url": url, "email": EMAIL, "token": TOKEN, "page_size": PAGE,
        "export_requests_per_minute": 100, "max_retries": 0,
    }  # fmt: skip


def reference(fake: FakeZendesk, path: Path) -> Store:
    source = parse_config({"sources": [settings(fake.url)], "history": "3650d"}, check_files=False).sources[0]
    assert isinstance(source, ZendeskSource)
    store = Store(path)
    connector = ZendeskConnector(source)
    try:
        synced(connector, store)
    finally:
        connector.close()
    return store


def test_an_export_killed_mid_stream_resumes_from_its_cursor(tmp_path: Path) -> None:
    with FakeZendesk(export_limit=100) as fake, FaultProxy(fake.url) as proxy:
        account(fake)
        config = write_config(tmp_path, settings(proxy.url))
        with closing(reference(fake, tmp_path / "reference.db")) as expected:
            assert len(stored_tickets(expected, "zd")) == TICKETS
            fake.requests.clear()

            proxy.plan(slow(path=EXPORT, nth=HELD_PAGE))
            kill_when_held(start_once(config, tmp_path, "killed"), proxy)

            answered = len(fake.exports())
            assert answered == HELD_PAGE - 1  # the held request never reached the account
            order = sorted(fake.tickets.values(), key=lambda t: (t.generated_ts, t.id))
            committed = order[: answered * PAGE]
            store = Store(tmp_path / "store.db")
            try:
                assert sorted(int(t.id) for t in stored_tickets(store, "zd")) == sorted(t.id for t in committed)
                state = resume_state(store, "zd", "ticket")
                assert state is not None
                last = committed[-1]
                assert state.token == encode_cursor(last.generated_ts, last.id)
                assert state.watermark is not None and int(state.watermark.timestamp()) == last.generated_ts
            finally:
                store.close()

            proxy.plan()
            before = len(fake.exports())
            rerun = start_once(config, tmp_path, "rerun")
            assert rerun.process.wait(WAIT_SECONDS) == 0, rerun.log()
            again = fake.exports()[before:]
            # The rerun asks for the page after the committed cursor, and reads the rest once.
            assert again[0].param("cursor") == state.token and again[0].param("start_time") is None
            assert len(again) == (TICKETS - len(committed) + PAGE - 1) // PAGE

            store = Store(tmp_path / "store.db")
            try:
                assert stored_tickets(store, "zd") == stored_tickets(expected, "zd")
                assert stored_surveys(store, "zd") == stored_surveys(expected, "zd")
            finally:
                store.close()
