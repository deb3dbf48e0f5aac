"""kill -9 in the middle of a backfill, then a restart: it resumes at the committed watermark, ends equal to upstream.

A real `python -m itsm_exporter once` process syncs through a FaultProxy that holds one chosen page
request; once that request has arrived (an Event, not a sleep) the process is SIGKILLed. The store is
then opened after the kill (WAL recovery) and must hold exactly the pages committed so far with their
watermark; a rerun must start from that watermark and finish with the store equal to the upstream.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from itsm_exporter.config import parse_config
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.jira.connector import JiraConnector
from itsm_exporter.store import Store
from tests.fakes.faults import FaultProxy, slow
from tests.fakes.jira import FakeIssue, FakeJira, RecordedRequest, SlaCycle
from tests.fakes.servicenow import FakeServiceNow, LoggedRequest, source_settings
from tests.plans import stored_glide, stored_iso, synced
from tests.storeread import stored_count, stored_surveys, stored_tickets
from tests.test_servicenow_sync import expected_tickets

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 60.0
"""Upper bound on waiting for the held request or a process: reached only when something hangs."""

SN_INCIDENTS = 3000
SN_PAGE = 100
SN_ROWS_PER_SECOND = 7
"""Rows sharing one sys_updated_on second; 7 does not divide the page size, so pages end mid-second."""
SN_SECONDS_APART = 10
"""Between two such seconds: the 3000 rows span 71 minutes, much more than the 5-minute overlap."""
SN_OVERLAP = timedelta(minutes=5)
"""The ServiceNow source's default `overlap`, re-read behind the watermark."""
SN_HELD_PAGE = 13
"""The incident page request that is held: 12 pages (1200 rows) are committed when the kill comes."""
SN_BASE = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

JIRA_ISSUES = 600
JIRA_PAGE = 40
JIRA_PER_MINUTE = 3
"""Issues updated in the same minute: the JQL bound has minute resolution."""
JIRA_HELD_PAGE = 6
"""The search request that is held; the first five answered pages are committed when the kill comes."""
JIRA_BASE = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
JIRA_ZONE = "Asia/Kolkata"


@dataclass
class Run:
    """One `python -m itsm_exporter once` process; output in files so a full pipe never blocks it."""

    process: subprocess.Popen[bytes]
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")


def start_once(config: Path, tmp_path: Path, name: str, extra: Sequence[str] = ()) -> Run:
    stderr = tmp_path / f"{name}.stderr"
    with (tmp_path / f"{name}.stdout").open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "itsm_exporter", "once", "--config", str(config), "--log.level", "debug", *extra],
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )
    return Run(process, stderr)


def kill_when_held(run: Run, proxy: FaultProxy) -> None:
    """SIGKILL the process as soon as its held request has reached the proxy."""
    try:
        held = proxy.stalled.wait(WAIT_SECONDS)
        assert held, f"the held request never arrived; exit code {run.process.poll()}\n{run.log()}"
        assert run.process.poll() is None, run.log()
    finally:
        run.process.kill()
        run.process.wait(WAIT_SECONDS)
    assert run.process.returncode == -9
    assert proxy.released.wait(WAIT_SECONDS), "the killed client's connection was not closed"


def write_config(tmp_path: Path, source: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    # The fakes' records are dated 2025-2026 and the child runs at the real time: a ten-year `history`
    # makes its first sync read them all (the bounded first sync has tests of its own, tests/test_backfill.py).
    config = {"store": {"path": str(tmp_path / "store.db")}, "history": "3650d", "sources": [source]}
    path.write_text(yaml.safe_dump(config))
    return path


# -- ServiceNow -------------------------------------------------------------------------------------


def seed_incidents(fake: FakeServiceNow) -> None:
    groups = [fake.add("sys_user_group", name=n) for n in ("Service Desk", "Network Operations", "Apps")]
    service = fake.add("cmn_service", name="Email")
    for n in range(SN_INCIDENTS):
        opened = SN_BASE + timedelta(minutes=n)
        resolved = n % 3 != 0
        fake.add(
            "incident",
            number=f"INC{n:07d}",
            state="6" if resolved else ("2", "3")[n % 2],
            opened_at=f"{opened:%Y-%m-%d %H:%M:%S}",
            resolved_at=f"{opened + timedelta(hours=1 + n % 9):%Y-%m-%d %H:%M:%S}" if resolved else "",
            sys_updated_on=f"{updated_at(n):%Y-%m-%d %H:%M:%S}",
            priority=str(1 + n % 5),
            assignment_group=groups[n % 3],
            business_service=service if n % 4 else "",
            contact_type=("email", "phone", "self-service")[n % 3],
            category="complaint" if n % 50 == 0 else "software",
            reassignment_count=str(n % 3) if n % 2 else "",
            reopen_count="1" if n % 97 == 0 else "",
            made_sla="false" if n % 11 == 0 else "true",
        )


def updated_at(n: int) -> datetime:
    return SN_BASE + timedelta(days=10, seconds=n // SN_ROWS_PER_SECOND * SN_SECONDS_APART)


def served_rows(fake: FakeServiceNow, request: LoggedRequest) -> int:
    """How many incident rows the fake answered `request` with (the data does not change during the test)."""
    limit = int(request.params["sysparm_limit"])
    offset = int(request.params.get("sysparm_offset") or 0)
    return len(fake.query("incident", request.params.get("sysparm_query", ""))[offset : offset + limit])


@pytest.fixture
def servicenow() -> Iterator[tuple[FakeServiceNow, FaultProxy]]:
    with FakeServiceNow() as fake:
        seed_incidents(fake)
        with FaultProxy(fake.url) as proxy:
            yield fake, proxy


def test_servicenow_backfill_killed_mid_page_resumes_from_its_watermark(
    servicenow: tuple[FakeServiceNow, FaultProxy], tmp_path: Path
) -> None:
    fake, proxy = servicenow
    config = write_config(
        tmp_path,
        source_settings(fake, url=proxy.url, page_size=SN_PAGE, max_retries=0, complaints={"category": ["Complaint"]}),
    )
    in_order = fake.query("incident", "ORDERBYsys_updated_on^ORDERBYsys_id")
    committed = in_order[: (SN_HELD_PAGE - 1) * SN_PAGE]
    watermark = committed[-1]["sys_updated_on"]

    proxy.plan(slow(path="/api/now/table/incident", nth=SN_HELD_PAGE))
    kill_when_held(start_once(config, tmp_path, "killed"), proxy)

    first_run = fake.table_requests("incident")
    assert len(first_run) == SN_HELD_PAGE - 1  # the held request never reached the instance
    store = Store(tmp_path / "store.db")
    try:
        assert [t.id for t in stored_tickets(store, "sn")] == sorted(r["sys_id"] for r in committed)
        assert stored_glide(store, "sn", "ticket") == watermark
        assert stored_glide(store, "sn", "survey") is None
        # No gap below the watermark: every row updated before it is stored.
        assert {r["sys_id"] for r in in_order if r["sys_updated_on"] < watermark} <= {
            t.id for t in stored_tickets(store, "sn")
        }
    finally:
        store.close()

    proxy.plan()
    rerun = start_once(config, tmp_path, "rerun")
    assert rerun.process.wait(WAIT_SECONDS) == 0, rerun.log()

    second_run = fake.table_requests("incident")[len(first_run) :]
    rewound = f"{datetime.fromisoformat(watermark) - SN_OVERLAP:%Y-%m-%d %H:%M:%S}"
    assert second_run[0].params["sysparm_query"] == f"sys_updated_on>={rewound}^ORDERBYsys_updated_on^ORDERBYsys_id"
    assert sum(served_rows(fake, r) for r in first_run) == len(committed)
    # The rerun reads what was not committed plus the overlap behind the watermark again, nothing more:
    # 30 seconds of 7 rows, plus the 3 rows of the watermark's own second that the killed run committed.
    again = sum(r["sys_updated_on"] >= rewound for r in committed)
    assert again == 30 * SN_ROWS_PER_SECOND + ((SN_HELD_PAGE - 1) * SN_PAGE) % SN_ROWS_PER_SECOND
    assert sum(served_rows(fake, r) for r in second_run) == SN_INCIDENTS - len(committed) + again

    store = Store(tmp_path / "store.db")
    try:
        assert stored_count(store, "sn", "ticket") == SN_INCIDENTS
        assert stored_tickets(store, "sn") == expected_tickets(fake)
        assert stored_glide(store, "sn", "ticket") == in_order[-1]["sys_updated_on"]
    finally:
        store.close()


# -- Jira Cloud ---------------------------------------------------------------------------------------


def jira_issues() -> list[FakeIssue]:
    issues = []
    for n in range(JIRA_ISSUES):
        created = JIRA_BASE + timedelta(hours=n % 48)
        updated = JIRA_BASE + timedelta(days=3, minutes=n // JIRA_PER_MINUTE, seconds=n % JIRA_PER_MINUTE)
        done = n % 4 != 0
        issues.append(
            FakeIssue(
                str(20000 + n),
                f"HELP-{n + 1}",
                created,
                updated,
                status="5" if done else "3",
                resolution="Done" if done else None,
                resolved=created + timedelta(hours=2 + n % 7) if done else None,
                priority=("Highest", "High", "Medium", "Low")[n % 4],
                components=[("Email", "VPN", "Laptops")[n % 3]],
                team=("Network", "Apps")[n % 2],
                sla_resolution=[SlaCycle(created, 480, stop=created + timedelta(hours=2 + n % 7), breached=n % 9 == 0)]
                if done
                else None,
                rating=1 + n % 5 if done and n % 3 == 0 else None,
                rated_at=updated if done and n % 3 == 0 else None,
            )
        )
    return issues


class CountingJira(FakeJira):
    """The fake Jira Cloud, remembering the ids each search answered with: what a run read, not just asked for."""

    def __init__(self) -> None:
        super().__init__("cloud", time_zone=JIRA_ZONE, username="bot@acme.com", token="api-token-123")
        self.served: list[list[str]] = []

    def _enhanced_search(self, request: RecordedRequest) -> tuple[int, Any]:
        status, body = super()._enhanced_search(request)
        if status == 200:
            self.served.append([str(issue["id"]) for issue in body["issues"]])
        return status, body


def search_jql(request: RecordedRequest) -> str:
    if request.method == "POST":
        return str(json.loads(request.body)["jql"])
    return request.query["jql"][0]


def reference_store(fake: FakeJira, source: JiraSource, path: Path) -> Store:
    """The upstream as an uninterrupted sync stores it: the oracle for ticket and survey content."""
    store = Store(path)
    connector = JiraConnector(source, sleep=lambda _s: None, jitter=lambda: 0.5)
    try:
        synced(connector, store)
    finally:
        connector.close()
    return store


def source_of(settings: dict[str, Any], url: str) -> JiraSource:
    source = parse_config({"sources": [settings | {"url": url}]}, check_files=False).sources[0]
    assert isinstance(source, JiraSource)
    return source


def test_jira_cloud_backfill_killed_mid_search_resumes_from_its_watermark(tmp_path: Path) -> None:
    issues = jira_issues()
    by_id = {issue.id: issue for issue in issues}
    fake = CountingJira()
    fake.add(*issues)
    with fake, FaultProxy(fake.url) as proxy:
        settings: dict[str, Any] = {
            "name": "jsm",
            "kind": "jira",
            "url": proxy.url,
            "username": "bot@acme.com",
            "token": "api-token-123",
            "deployment": "cloud",
            "page_size": JIRA_PAGE,
            "max_retries": 0,
            # The rerun is a second sync, when a reconciliation would also search: this test counts the backfill's.
            "reconcile_interval": 0,
        }
        config = write_config(tmp_path, settings)
        with closing(reference_store(fake, source_of(settings, fake.url), tmp_path / "reference.db")) as reference:
            assert sorted(t.id for t in stored_tickets(reference, "jsm")) == sorted(by_id)
            fake.served.clear()

            proxy.plan(slow(path="/search/jql", nth=JIRA_HELD_PAGE))
            kill_when_held(start_once(config, tmp_path, "killed"), proxy)

            first_run = list(fake.served)
            assert len(first_run) == JIRA_HELD_PAGE - 1  # the held search never reached the site
            read = {issue_id for page in first_run for issue_id in page}
            store = Store(tmp_path / "store.db")
            try:
                stored = [t.id for t in stored_tickets(store, "jsm")]
                watermark = max(by_id[i].updated for i in stored)
                # Exactly what the answered pages held, and no gap: every issue updated up to the watermark.
                assert set(stored) == read == {i.id for i in issues if i.updated <= watermark}
                assert 0 < len(stored) < JIRA_ISSUES
                # One phase: each issue's rating is committed with the issue, under the ticket phase's state.
                assert stored_iso(store, "jsm", "ticket") == watermark.isoformat()
                surveys = [s for s in stored_surveys(reference, "jsm") if s.ticket_id in read]
                assert 0 < len(surveys) < len(stored_surveys(reference, "jsm"))
                assert stored_surveys(store, "jsm") == surveys
            finally:
                store.close()

            proxy.plan()
            searches_before = len(fake.searches())
            rerun = start_once(config, tmp_path, "rerun")
            assert rerun.process.wait(WAIT_SECONDS) == 0, rerun.log()

            # The rerun starts 5 minutes behind the watermark, in the API user's zone, to the minute ...
            zone = ZoneInfo(JIRA_ZONE)
            since = (watermark - timedelta(minutes=5)).astimezone(zone).replace(second=0, microsecond=0)
            first_search = search_jql(fake.searches()[searches_before])
            assert first_search.startswith(f'updated >= "{since:%Y-%m-%d %H:%M}"'), first_search
            # ... and reads nothing older than that: not a full re-read.
            reread = [by_id[i] for page in fake.served[len(first_run) :] for i in page]
            assert min(issue.updated for issue in reread) == min(i.updated for i in issues if i.updated >= since)
            assert {i.id for i in reread} == {i.id for i in issues if i.updated >= since}
            assert len(read) + len({i.id for i in reread}) < JIRA_ISSUES + 2 * JIRA_PAGE

            store = Store(tmp_path / "store.db")
            try:
                assert sorted(t.id for t in stored_tickets(store, "jsm")) == sorted(by_id)
                assert stored_tickets(store, "jsm") == stored_tickets(reference, "jsm")
                assert stored_surveys(store, "jsm") == stored_surveys(reference, "jsm")
                assert stored_iso(store, "jsm", "ticket") == max(i.updated for i in issues).isoformat()
            finally:
                store.close()
