"""A segment added to a source whose tickets are stored: the window's tickets are read again once, not the history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from itsm_exporter.config import parse_config
from itsm_exporter.connectors.demo.connector import DemoConnector
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector
from itsm_exporter.records import Segment
from itsm_exporter.store import Store
from itsm_exporter.sync import SyncResult, plans_for, sync_source
from itsm_exporter.sync.plans import SEGMENTS
from tests.fakes.servicenow import FakeServiceNow, add_incident, source_settings
from tests.storeread import stored_tickets

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
DEPARTMENT = {"department": "caller_id.department.name"}


def sn_sync(fake: FakeServiceNow, store: Store, now: datetime = NOW, **settings: Any) -> SyncResult:
    config = parse_config(
        {"windows": ["7d"], "history": "3650d", "sources": [source_settings(fake, surveys_enabled=False, **settings)]},
        check_files=False,
    )
    source = config.sources[0]
    assert isinstance(source, ServiceNowSource)
    connector = ServiceNowConnector(source, sleep=lambda _s: None)
    try:
        return sync_source(connector, store, plans_for(source, config), now=lambda: now)
    finally:
        connector.close()


def seed(fake: FakeServiceNow) -> None:
    """Three incidents of a Warehouse caller: one in the window, one open since long, one closed long ago."""
    user = fake.add("sys_user", name="Bob", department=fake.add("cmn_department", name="Warehouse"))
    add_incident(fake, "INC1", "2026-03-08 10:00:00", caller_id=user)
    add_incident(fake, "INC2", "2025-06-01 10:00:00", caller_id=user)
    add_incident(fake, "INC3", "2025-06-01 11:00:00", state="7", caller_id=user)


def departments(store: Store) -> dict[str, tuple[Segment, ...]]:
    return {t.key: t.segments for t in stored_tickets(store, "sn")}


def test_a_new_segment_reads_the_windows_tickets_again_once_by_id(fake: FakeServiceNow, tmp_path: Path) -> None:
    seed(fake)
    store = Store(tmp_path / "store.db")
    sn_sync(fake, store)
    assert departments(store) == {"INC1": (), "INC2": (), "INC3": ()}
    fake.requests.clear()
    sn_sync(fake, store, segments=DEPARTMENT)
    warehouse = (Segment("department", "Warehouse"),)
    # The window's ticket and the open one get the segment; the history (closed long ago) is not read again.
    assert departments(store) == {"INC1": warehouse, "INC2": warehouse, "INC3": ()}
    lookups = [
        r.params["sysparm_query"] for r in fake.table_requests("incident") if "sys_idIN" in r.params["sysparm_query"]
    ]
    assert len(lookups) == 1
    assert store.sync_state("sn")[(SEGMENTS, "ticket")].token == "department=caller_id.department.name"
    # Done once: the next sync reads only what changed.
    fake.requests.clear()
    sn_sync(fake, store, segments=DEPARTMENT)
    assert not [r for r in fake.table_requests("incident") if "sys_idIN" in r.params["sysparm_query"]]
    # Removing the segment reads nothing again.
    sn_sync(fake, store)
    assert not [r for r in fake.table_requests("incident") if "sys_idIN" in r.params["sysparm_query"]]


def test_a_first_sync_with_segments_reads_nothing_twice(fake: FakeServiceNow, tmp_path: Path) -> None:
    seed(fake)
    store = Store(tmp_path / "store.db")
    sn_sync(fake, store, segments=DEPARTMENT)
    assert not [r for r in fake.table_requests("incident") if "sys_idIN" in r.params["sysparm_query"]]
    assert departments(store)["INC3"] == (Segment("department", "Warehouse"),)


def test_an_upstream_without_lookups_is_scanned_from_the_windows_start(tmp_path: Path) -> None:
    raw = {"name": "demo", "kind": "demo", "days": 30, "tickets_per_day": 5}
    store = Store(tmp_path / "store.db")
    for segments in ({}, {"department": "caller_id.department.name"}):
        config = parse_config({"windows": ["7d"], "sources": [raw | {"segments": segments}]}, check_files=False)
        source = config.sources[0]
        connector = DemoConnector(source, now=lambda: NOW)  # type: ignore[arg-type]
        sync_source(connector, store, plans_for(source, config), now=lambda: NOW)
    tickets = stored_tickets(store, "demo")
    recent = [t for t in tickets if t.updated_at.timestamp() > NOW.timestamp() - 7 * 86400 and t.segments]
    assert recent and all(t.segments[0].name == "department" for t in recent)
