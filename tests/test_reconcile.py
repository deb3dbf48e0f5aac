"""Reconciliation: tickets deleted upstream leave the store, cheaply, and only when they are really gone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from itsm_exporter.config import Config, ConfigError, parse_config
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.jira.connector import JiraConnector
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector
from itsm_exporter.store import Store
from itsm_exporter.sync import SyncResult, plans_for, sync_source
from tests.fakes.faults import FaultProxy, slow
from tests.fakes.jira import fake_jira
from tests.fakes.servicenow import FakeServiceNow, add_incident, source_settings
from tests.storeread import stored_surveys, stored_tickets
from tests.test_jira import source_settings as jira_settings
from tests.test_restart import WAIT_SECONDS, Run, kill_when_held, start_once

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def sn_config(fake: FakeServiceNow, **settings: Any) -> tuple[Config, ServiceNowSource]:
    config = parse_config(
        # A ten-year history: every incident is stored, old closed ones too (the reconciliation's cases).
        {
            "windows": ["7d", "30d"],
            "history": "3650d",
            "sources": [source_settings(fake, surveys_enabled=False, **settings)],
        },
        check_files=False,
    )
    source = config.sources[0]
    assert isinstance(source, ServiceNowSource)
    return config, source


def sn_sync(fake: FakeServiceNow, store: Store, now: datetime, **settings: Any) -> SyncResult:
    config, source = sn_config(fake, **settings)
    connector = ServiceNowConnector(source, sleep=lambda _s: None)
    try:
        return sync_source(connector, store, plans_for(source, config), now=lambda: now)
    finally:
        connector.close()


def incident(fake: FakeServiceNow, n: int, updated: str, state: str = "2") -> str:
    return add_incident(fake, f"INC{n:07d}", updated, state=state, opened_at="2025-11-01 08:00:00")


def stored_ids(store: Store, source: str = "sn") -> set[str]:
    return {t.id for t in stored_tickets(store, source)}


def test_servicenow_reads_the_deletion_audit_from_its_own_watermark_every_interval(
    fake: FakeServiceNow, tmp_path: Path
) -> None:
    ids = [incident(fake, n, f"2026-03-01 09:00:{n:02d}") for n in range(7)]
    store = Store(tmp_path / "store.db")
    first = sn_sync(fake, store, T0)
    assert (first.deleted, len(stored_ids(store))) == ({}, 7)  # a first sync does not reconcile
    assert not fake.table_requests("sys_audit_delete")

    fake.delete("incident", ids[1], at="2026-03-02 00:30:00")
    fake.delete("incident", ids[4], at="2026-03-02 00:40:00")
    # Deleted, then restored from the audit with its sys_id: its audit row stays, the incident is back.
    fake.delete("incident", ids[6], at="2026-03-02 00:35:00")
    fake.add("incident", sys_id=ids[6], number="INC0000006", state="2", opened_at="2025-11-01 08:00:00",
             sys_updated_on="2026-03-01 09:00:06")  # fmt: skip
    second = sn_sync(fake, store, T0 + timedelta(hours=1))
    assert second.deleted["ticket"] == 2
    assert stored_ids(store) == {ids[n] for n in (0, 2, 3, 5, 6)}
    (audit,) = fake.table_requests("sys_audit_delete")
    assert audit.params["sysparm_query"] == "tablename=incident^ORDERBYsys_created_on^ORDERBYsys_id"
    assert audit.params["sysparm_fields"] == "sys_id,documentkey,sys_created_on"
    state = store.sync_state("sn")
    assert state[("reconcile", "ticket")].completed_at == T0 + timedelta(hours=1)
    assert state[("reconcile", "audit")].watermark == datetime(2026, 3, 2, 0, 40, tzinfo=UTC)
    # The audit answered: no incident was swept; its three ids were looked up, and the restored one was found.
    incident_requests = fake.table_requests("incident")
    assert all(r.params["sysparm_fields"] != "sys_id,sys_updated_on" for r in incident_requests)
    (lookup,) = [r for r in incident_requests if "sys_idIN" in r.params["sysparm_query"]]
    assert sorted(lookup.params["sysparm_query"].split("^")[0].removeprefix("sys_idIN").split(",")) == sorted(
        [ids[1], ids[4], ids[6]]
    )

    fake.delete("incident", ids[0], at="2026-03-02 02:00:00")
    assert sn_sync(fake, store, T0 + timedelta(hours=5)).deleted == {}  # within the 24 h interval: not due
    assert len(fake.table_requests("sys_audit_delete")) == 1
    assert sn_sync(fake, store, T0 + timedelta(hours=25)).deleted["ticket"] == 1
    later = fake.table_requests("sys_audit_delete")[-1].params["sysparm_query"]
    assert later == "tablename=incident^sys_created_on>=2026-03-02 00:35:00^ORDERBYsys_created_on^ORDERBYsys_id"
    assert stored_ids(store) == {ids[n] for n in (2, 3, 5, 6)}
    store.close()


def test_an_acl_denied_audit_falls_back_to_an_id_sweep_confirmed_by_lookups(
    fake: FakeServiceNow, tmp_path: Path
) -> None:
    fake.denied.add("sys_audit_delete")
    recent = [incident(fake, n, f"2026-03-01 09:00:{n:02d}") for n in range(6)]
    old_open = [incident(fake, 10 + n, "2025-11-02 08:00:00") for n in range(2)]
    old_closed = incident(fake, 20, "2025-11-02 08:00:00", state="7")
    store = Store(tmp_path / "store.db")
    sn_sync(fake, store, T0)
    assert len(stored_ids(store)) == 9

    for sys_id in (recent[2], old_open[0], old_closed):
        fake.delete("incident", sys_id, at="2026-03-02 00:30:00")
    fake.requests.clear()
    result = sn_sync(fake, store, T0 + timedelta(hours=1), page_size=4)
    # Recent and open tickets deleted upstream leave; a closed ticket older than the windows and the
    # overlap no metric can see any more: it is not looked for, and stays (docs/guarantees.md).
    assert result.deleted["ticket"] == 2
    assert stored_ids(store) == {*recent[:2], *recent[3:], old_open[1], old_closed}
    sweep = [r for r in fake.table_requests("incident") if r.params["sysparm_fields"] == "sys_id,sys_updated_on"]
    assert [r.params["sysparm_query"] for r in sweep][:1] == [
        "sys_updated_on>=2026-01-31 00:55:00^ORDERBYsys_updated_on^ORDERBYsys_id"  # 30 d and the 5 min overlap back
    ]
    assert len(sweep) == 2  # 5 recent ids in pages of 4
    (lookup,) = [r for r in fake.table_requests("incident") if "sys_idIN" in r.params["sysparm_query"]]
    assert sorted(lookup.params["sysparm_query"].split("^")[0].removeprefix("sys_idIN").split(",")) == sorted(
        [recent[2], *old_open]
    )
    # Cheap: two sweep pages of ids and one lookup, against a full re-read of every incident with all fields.
    assert len(fake.table_requests("sys_audit_delete")) == 1


def test_reconcile_interval_zero_turns_it_off_and_a_bad_one_names_the_key(fake: FakeServiceNow, tmp_path: Path) -> None:
    ids = [incident(fake, n, f"2026-03-01 09:00:{n:02d}") for n in range(3)]
    store = Store(tmp_path / "store.db")
    sn_sync(fake, store, T0, reconcile_interval=0)
    fake.delete("incident", ids[0], at="2026-03-02 00:30:00")
    assert sn_sync(fake, store, T0 + timedelta(days=3), reconcile_interval="0").deleted == {}
    assert len(stored_ids(store)) == 3
    with pytest.raises(ConfigError) as error:
        sn_config(fake, reconcile_interval="daily")
    assert error.value.problems == ["sources[0].reconcile_interval: not a duration such as 30s, 5m, 1h or 7d"]


def test_jsm_sweeps_the_jql_scope_and_keeps_the_ratings_of_deleted_requests(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    now = datetime(2025, 3, 9, tzinfo=UTC)
    with fake_jira("cloud") as fake:
        config = parse_config({"windows": ["30d"], "sources": [jira_settings(fake.url, "cloud")]}, check_files=False)
        source = config.sources[0]
        assert isinstance(source, JiraSource)

        def sync() -> SyncResult:
            connector = JiraConnector(source, sleep=lambda _s: None)
            try:
                return sync_source(connector, store, plans_for(source, config), now=lambda: now)
            finally:
                connector.close()

        sync()
        before = stored_ids(store, "jsm")
        surveys_before = {s.id for s in stored_surveys(store, "jsm")}
        del fake.issues["10001"], fake.issues["10004"]  # deleted by an agent (spam, duplicates)
        fake.requests.clear()
        now += timedelta(hours=1)
        assert sync().deleted["ticket"] == 2
        sweeps = [r for r in fake.searches() if r.query.get("fields") == ["updated"]]
        lookups = [r for r in fake.searches() if r.query["jql"][0].startswith("id in (")]
    assert stored_ids(store, "jsm") == before - {"10001", "10004"}
    assert {s.id for s in stored_surveys(store, "jsm")} == surveys_before  # counted under `unknown`, as before
    assert sweeps and len(lookups) == 1
    assert lookups[0].query["jql"][0] == "id in (10001, 10004) ORDER BY key ASC"


def test_kill_9_during_reconciliation_loses_nothing_and_the_rerun_removes_the_deleted(tmp_path: Path) -> None:
    with FakeServiceNow() as fake, FaultProxy(fake.url) as proxy:
        fake.denied.add("sys_audit_delete")
        ids = [incident(fake, n, f"2026-03-01 09:{n // 60:02d}:{n % 60:02d}") for n in range(50)]
        settings = source_settings(fake, url=proxy.url, surveys_enabled=False, max_retries=0)
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump({"store": {"path": str(tmp_path / "store.db")}, "history": "3650d", "sources": [settings]})
        )
        first = start_once_at(config, tmp_path, "first", T0)
        assert first.process.wait(WAIT_SECONDS) == 0, first.log()
        for sys_id in ids[:3]:
            fake.delete("incident", sys_id, at="2026-03-02 00:30:00")

        # The second run's first incident request is its incremental read; the second is the sweep: held, then killed.
        proxy.plan(slow(path="/api/now/table/incident", nth=2))
        kill_when_held(start_once_at(config, tmp_path, "killed", T0 + timedelta(hours=1)), proxy)
        store = Store(tmp_path / "store.db")
        try:
            assert len(stored_ids(store)) == 50  # nothing was deleted, nothing lost
            assert ("reconcile", "ticket") not in store.sync_state("sn")
        finally:
            store.close()

        proxy.plan()
        rerun = start_once_at(config, tmp_path, "rerun", T0 + timedelta(hours=2))
        assert rerun.process.wait(WAIT_SECONDS) == 0, rerun.log()
        store = Store(tmp_path / "store.db")
        try:
            assert stored_ids(store) == set(ids[3:])
            assert store.sync_state("sn")[("reconcile", "ticket")].completed_at == T0 + timedelta(hours=2)
        finally:
            store.close()
        exposition = (tmp_path / "rerun.stdout").read_text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }
    assert samples[("itsm_source_records_deleted_total", (("kind", "ticket"), ("source", "sn")))] == 3.0
    assert ("itsm_source_last_reconcile_timestamp_seconds", (("source", "sn"),)) in samples


def start_once_at(config: Path, tmp_path: Path, name: str, as_of: datetime) -> Run:
    return start_once(config, tmp_path, name, extra=["--as-of", as_of.isoformat()])
