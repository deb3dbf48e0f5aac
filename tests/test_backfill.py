"""The bounded first sync (issue 17): what the windows, the backlog and the surveys need, read against the
fakes in their wire format; widening `history`; a restart mid-backfill; metrics equal to a full read."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from itsm_exporter.cli import main
from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import Config, ConfigError, parse_config
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector
from itsm_exporter.store import Store
from itsm_exporter.sync import SyncResult, plans_for, sync_source
from itsm_exporter.sync.plans import BACKFILL, HORIZON, INCREMENTAL
from tests.fakes.jira import at as jira_at
from tests.fakes.jira import fake_jira
from tests.fakes.servicenow import FakeServiceNow, add_incident, source_settings, status
from tests.storeread import stored_tickets
from tests.test_jira import connector as jira_connector
from tests.test_jira import source_settings as jira_settings

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
"""The 30-day window (and the default history, 30 d + 5 min) starts 2026-02-08 11:55."""


def incident(fake: FakeServiceNow, number: str, updated: str, state: str = "6", **fields: str) -> str:
    return add_incident(fake, number, updated, state=state, **fields)


@pytest.fixture
def fake() -> Iterator[FakeServiceNow]:
    """Recent incidents, an old open one, an old closed one, and a recent survey about another old closed one."""
    with FakeServiceNow() as instance:
        desk = instance.add("sys_user_group", name="Service Desk")
        for n in range(5):
            incident(instance, f"RECENT{n}", f"2026-03-0{n + 1} 10:00:00", assignment_group=desk)
        incident(instance, "OLDOPEN", "2025-06-01 10:00:00", state="2", assignment_group=desk)
        incident(instance, "OLDCLOSED", "2025-06-01 10:00:00", assignment_group=desk)
        surveyed = incident(instance, "SURVEYED", "2026-01-20 10:00:00", assignment_group=desk)
        overall = instance.add("asmt_metric", name="overall", question="Overall", datatype="scale", min="1", max="5")
        survey = instance.add(
            "asmt_assessment_instance", state="complete", taken_on="2026-03-05 09:00:00", trigger_table="incident",
            trigger_id=surveyed,
        )  # fmt: skip
        instance.add("asmt_metric_result", instance=survey, metric=overall, actual_value="5")
        yield instance


WINDOWS_ONLY = {"previous_period": False}
"""Trends off: the horizon is what the windows alone need (30d + 5m), which these fixtures are built around."""


def config_of(fake: FakeServiceNow, page_size: int = 1000, **top: Any) -> Config:
    settings = source_settings(fake, max_retries=0, page_size=page_size)
    return parse_config({"windows": ["7d", "30d"], "trends": WINDOWS_ONLY, **top, "sources": [settings]})


def sync(fake: FakeServiceNow, store: Store, config: Config, now: datetime = NOW) -> SyncResult:
    source = config.sources[0]
    assert isinstance(source, ServiceNowSource)
    connector = ServiceNowConnector(source, sleep=lambda _s: None)
    try:
        return sync_source(connector, store, plans_for(source, config), now=lambda: now)
    finally:
        connector.close()


def numbers(store: Store) -> set[str]:
    return {t.key for t in stored_tickets(store, "sn")}


def test_a_first_sync_reads_the_horizon_the_open_backlog_and_the_surveyed_tickets(
    fake: FakeServiceNow, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store.db")
    sync(fake, store, config_of(fake))
    # The closed incident last updated before the horizon is the only one not read.
    assert numbers(store) == {*(f"RECENT{n}" for n in range(5)), "OLDOPEN", "SURVEYED"}
    queries = [r.params["sysparm_query"] for r in fake.table_requests("incident")]
    assert queries[0] == "sys_updated_on>=2026-02-08 11:55:00^ORDERBYsys_updated_on^ORDERBYsys_id"
    assert "active=true^sys_updated_on<2026-02-08 11:55:00^ORDERBYsys_updated_on^ORDERBYsys_id" in queries
    assert sum("sys_idIN" in q for q in queries) == 1  # the surveyed incident, by id
    states = store.sync_state("sn")
    assert states[(BACKFILL, HORIZON)].watermark == datetime(2026, 2, 8, 11, 55, tzinfo=UTC)
    assert states[(INCREMENTAL, "ticket")].watermark == datetime(2026, 3, 5, 10, tzinfo=UTC)
    # The next sync is incremental, from the watermark less the overlap: nothing old is read again.
    fake.requests.clear()
    sync(fake, store, config_of(fake), NOW + timedelta(minutes=5))
    assert [r.params["sysparm_query"] for r in fake.table_requests("incident")] == [
        "sys_updated_on>=2026-03-05 09:55:00^ORDERBYsys_updated_on^ORDERBYsys_id"
    ]
    store.close()


def test_metrics_equal_those_of_a_full_read_at_the_sync_time(fake: FakeServiceNow, tmp_path: Path) -> None:
    bounded, full = Store(tmp_path / "bounded.db"), Store(tmp_path / "full.db")
    sync(fake, bounded, config_of(fake))
    sync(fake, full, config_of(fake, history="3650d"))
    assert len(stored_tickets(full, "sn")) == len(stored_tickets(bounded, "sn")) + 1
    config = config_of(fake)
    assert compute_metrics(bounded.load_frames(), NOW, config) == compute_metrics(full.load_frames(), NOW, config)
    bounded.close()
    full.close()


def test_widening_history_backfills_only_the_missing_span(fake: FakeServiceNow, tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    sync(fake, store, config_of(fake))
    incremental = store.sync_state("sn")[(INCREMENTAL, "ticket")]
    fake.requests.clear()
    sync(fake, store, config_of(fake, page_size=2, history="400d"), NOW + timedelta(minutes=5))
    assert "OLDCLOSED" in numbers(store)
    queries = [r.params["sysparm_query"] for r in fake.table_requests("incident")]
    # Pages of 2: the old pair, then SURVEYED and RECENT0, already past the old horizon: the widening stops.
    assert sum(q.startswith("sys_updated_on>=2025-02-03") or "sys_updated_on>2025" in q for q in queries) == 2
    # From the new horizon; the open backlog is not read again; then the incremental read as usual.
    assert queries[0] == "sys_updated_on>=2025-02-03 12:05:00^ORDERBYsys_updated_on^ORDERBYsys_id"
    assert not [q for q in queries if "active=true" in q]
    states = store.sync_state("sn")
    assert states[(BACKFILL, HORIZON)].watermark == datetime(2025, 2, 3, 12, 5, tzinfo=UTC)
    assert states[(INCREMENTAL, "ticket")].watermark == incremental.watermark
    store.close()


@pytest.mark.parametrize("part", ["recent", "open", "surveyed"])
def test_a_backfill_that_fails_in_each_part_resumes_there(fake: FakeServiceNow, tmp_path: Path, part: str) -> None:
    def fail_in_part(request: Any) -> None:
        query = request.params.get("sysparm_query", "")
        hit = {
            "recent": request.table == "asmt_assessment_instance",  # after the incidents of the horizon
            "open": "active=true" in query,
            "surveyed": "sys_idIN" in query,
        }[part]
        if hit and not failed:
            failed.append(query)
            fake.faults.setdefault(request.table, deque()).append(status(500))

    failed: list[str] = []
    fake.on_request = fail_in_part
    store = Store(tmp_path / "store.db")
    with pytest.raises(Exception, match="HTTP 500"):
        sync(fake, store, config_of(fake))
    assert failed and (BACKFILL, HORIZON) not in store.sync_state("sn")
    before = len(fake.table_requests("incident"))
    fake.on_request = None
    sync(fake, store, config_of(fake), NOW + timedelta(minutes=1))
    assert numbers(store) == {*(f"RECENT{n}" for n in range(5)), "OLDOPEN", "SURVEYED"}
    again = [r.params["sysparm_query"] for r in fake.table_requests("incident")[before:]]
    # The horizon stays the first run's; a part read to its end is not read again.
    assert store.sync_state("sn")[(BACKFILL, HORIZON)].watermark == datetime(2026, 2, 8, 11, 55, tzinfo=UTC)
    if part != "recent":
        assert not [q for q in again if q.startswith("sys_updated_on>=2026-02-08 11:55:00")]
    store.close()


def test_once_before_the_stored_horizon_exits_1_when_the_backfill_cannot_run(
    fake: FakeServiceNow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    settings = source_settings(fake, max_retries=0)
    document = {"store": {"path": str(tmp_path / "store.db")}, "trends": WINDOWS_ONLY, "sources": [settings]}
    path.write_text(yaml.safe_dump(document))
    assert main(["once", "--config", str(path), "--as-of", "2026-03-10T12:00:00Z"]) == 0
    capsys.readouterr()
    fake.fail("incident", *[status(503)] * 3)  # the source is down for the widening run
    assert main(["once", "--config", str(path), "--as-of", "2026-01-15T12:00:00Z"]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no numbers rather than wrong ones
    assert "source sn: the store holds its records from 2026-02-08T11:55:00+00:00 on" in err
    assert "this --as-of needs them from 2025-12-16T12:00:00+00:00: raise `history`" in err


@pytest.mark.parametrize("mode", ["cloud", "datacenter"])
def test_jsm_first_sync_reads_the_horizon_and_the_open_backlog(mode: str, tmp_path: Path) -> None:
    """At 9 Mar 12:00 with a 2-day window the horizon is 7 Mar 11:55: only HELP-3 (7 Mar 18:00) was updated
    since; HELP-2, HELP-4, HELP-7 and HELP-6 (skipped: unreadable `created`) are open and older."""
    store = Store(tmp_path / "store.db")
    with fake_jira(mode) as fake:
        config = parse_config(
            {"windows": ["2d"], "trends": WINDOWS_ONLY, "sources": [jira_settings(fake.url, mode)]}, check_files=False
        )
        source = config.sources[0]
        conn = jira_connector(fake, mode)
        totals: list[int | None] = []
        try:
            sync_source(
                conn,
                store,
                plans_for(source, config),  # type: ignore[arg-type]
                now=lambda: jira_at(9, 12),
                on_batch=lambda _name, batch, _elapsed: totals.append(batch.total_expected),
            )
        finally:
            conn.close()
        jql = [r for r in fake.searches() if "statusCategory != Done" in str(r.query) + r.body.decode()]
        counts = [r for r in fake.requests if r.path.endswith("/search/approximate-count")]
    # Progress knows what remains: Data Center's search total, Cloud's approximate count (one per scan).
    assert 4 in totals  # the four open issues older than the horizon
    assert len(counts) == (2 if mode == "cloud" else 0)
    keys = {t.key for t in stored_tickets(store, "jsm")}
    assert keys == {"HELP-2", "HELP-3", "HELP-4", "HELP-7"}
    assert jql  # the open backlog was read with the done category left out
    store.close()


def test_a_history_shorter_than_the_longest_window_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"windows": ["7d", "30d"], "history": "20d", "sources": [{"name": "d", "kind": "demo"}]})
    assert raised.value.problems == ["(top level): history: 20d is shorter than the longest window (30d)"]


def test_trends_read_twice_the_longest_window_by_default(fake: FakeServiceNow, tmp_path: Path) -> None:
    """The previous period (on by default) needs 60d + the overlap: SURVEYED (20 Jan) now comes with the horizon."""
    store = Store(tmp_path / "store.db")
    config = config_of(fake, trends={})
    assert config.lookback == timedelta(days=60)
    sync(fake, store, config)
    queries = [r.params["sysparm_query"] for r in fake.table_requests("incident")]
    assert queries[0] == "sys_updated_on>=2026-01-09 11:55:00^ORDERBYsys_updated_on^ORDERBYsys_id"
    assert not [q for q in queries if "sys_idIN" in q]
    assert numbers(store) == {*(f"RECENT{n}" for n in range(5)), "OLDOPEN", "SURVEYED"}
    assert store.sync_state("sn")[(BACKFILL, HORIZON)].watermark == datetime(2026, 1, 9, 11, 55, tzinfo=UTC)
    store.close()


@pytest.mark.parametrize(
    ("trends", "horizon"),
    [
        ({}, datetime(2026, 1, 9, 12, 0, tzinfo=UTC)),
        ({"year_over_year": True}, datetime(2025, 2, 8, 12, 0, tzinfo=UTC)),
    ],
)
def test_turning_trends_on_reads_the_extra_span_once(
    fake: FakeServiceNow, tmp_path: Path, trends: dict[str, bool], horizon: datetime
) -> None:
    """A store filled for the windows alone (30d + 5m) widens once to what the trends compare with: from the new
    horizon up to the old one plus the overlap, never the open backlog again; the next sync is incremental only."""
    store = Store(tmp_path / "store.db")
    sync(fake, store, config_of(fake))
    incremental = store.sync_state("sn")[(INCREMENTAL, "ticket")]
    fake.requests.clear()
    later = NOW + timedelta(minutes=5)
    sync(fake, store, config_of(fake, page_size=2, trends=trends), later)
    queries = [r.params["sysparm_query"] for r in fake.table_requests("incident")]
    since = horizon.strftime("%Y-%m-%d %H:%M:%S")
    assert queries[0] == f"sys_updated_on>={since}^ORDERBYsys_updated_on^ORDERBYsys_id"
    widening = [q for q in queries if q.startswith(f"sys_updated_on>={since}") or f"sys_updated_on>{since[:4]}" in q]
    # Pages of 2 (a year back, the old pair first); then SURVEYED and RECENT0, past the old horizon plus the
    # overlap (8 Feb 12:00): the widening stops there.
    assert len(widening) == (1 if not trends else 2)
    assert not [q for q in queries if "active=true" in q]
    states = store.sync_state("sn")
    assert states[(BACKFILL, HORIZON)].watermark == horizon
    assert states[(INCREMENTAL, "ticket")].watermark == incremental.watermark
    assert ("OLDCLOSED" in numbers(store)) == ("year_over_year" in trends)  # updated 1 Jun 2025
    fake.requests.clear()
    sync(fake, store, config_of(fake, trends=trends), later + timedelta(minutes=5))
    assert [r.params["sysparm_query"] for r in fake.table_requests("incident")] == [
        "sys_updated_on>=2026-03-05 09:55:00^ORDERBYsys_updated_on^ORDERBYsys_id"
    ]
    store.close()


@pytest.mark.parametrize(
    ("trends", "history", "message"),
    [
        (
            {},
            "45d",
            "history: 45d is shorter than twice the longest window (60d), which trends.previous_period compares "
            "with: raise it, or turn trends.previous_period off",
        ),
        (
            {"year_over_year": True},
            "60d",
            "history: 60d is shorter than a year plus the longest window (395d), which trends.year_over_year "
            "compares with: raise it, or turn trends.year_over_year off",
        ),
    ],
)
def test_a_history_shorter_than_the_trends_need_is_refused(trends: dict[str, bool], history: str, message: str) -> None:
    document = {
        "windows": ["7d", "30d"],
        "trends": trends,
        "history": history,
        "sources": [{"name": "d", "kind": "demo"}],
    }
    with pytest.raises(ConfigError) as raised:
        parse_config(document)
    assert raised.value.problems == [f"(top level): {message}"]
    enough = {**document, "history": "395d" if trends else "60d"}
    assert parse_config(enough).history_for(parse_config(enough).sources[0]) == timedelta(days=395 if trends else 60)
