"""First sync: bounded by `history` (issue 17) against unbounded, on a ten-year, 1M-incident history.

    python -m bench.backfill                    # 1,000,000 incidents over ten years
    python -m bench.backfill --smoke            # tiny sizes, what CI runs

The upstream is simulated in process with a latency model instead of an HTTP fake: serving a million
records through a Python HTTP server would measure the fake, not the exporter. Each page costs
`--page-ms` plus `--record-ms` per record of virtual time (no sleeping); the exporter's own work (the
plans, building records, committing them to a real SQLite store) is measured on the wall clock. Time to
ready = the upstream's virtual time + the exporter's measured time. The default 2 ms per record is the
middle of the 1 to 3 ms per record the ServiceNow and Jira APIs serve (issue 17); 200 ms per page is an
assumption for a request's round trip and query (BENCHMARKS.md says how the result moves with both).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from itsm_exporter.connectors.base import ScanPage
from itsm_exporter.records import RecordKind, Ticket
from itsm_exporter.store import Store
from itsm_exporter.sync import sync_source
from itsm_exporter.sync.plans import BackfillPlan, IncrementalPlan, Plan
from tests.storeread import stored_count

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
YEAR = 365.25 * 86400.0


@dataclass
class Latency:
    page: float
    record: float
    spent: float = 0.0
    records: int = 0
    pages: int = 0

    def serve(self, count: int) -> None:
        self.spent += self.page + self.record * count
        self.records += count
        self.pages += 1


class SimulatedUpstream:
    """Incidents opened over `years`: scans in update order, the open backlog, lookups by id."""

    phases: tuple[RecordKind, ...] = ("ticket",)

    def __init__(self, incidents: int, years: float, latency: Latency, page_size: int = 1000, seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        now = NOW.timestamp()
        self.name = "sim"
        self.opened = np.sort(now - rng.uniform(0, years * YEAR, incidents))
        resolution = rng.lognormal(11.0, 1.3, incidents)
        self.resolved = self.opened + resolution
        # 1 % never closed (forgotten tickets): the old open backlog a bounded sync must still read.
        stuck = rng.random(incidents) < 0.01
        self.open = (self.resolved > now) | stuck
        self.updated = np.where(self.open, np.minimum(self.opened + 3600, now), np.minimum(self.resolved, now))
        self.order = np.argsort(self.updated, kind="stable")
        self.latency = latency
        self.page_size = page_size

    def _ticket(self, i: int) -> Ticket:
        opened = datetime.fromtimestamp(float(self.opened[i]), UTC)
        updated = datetime.fromtimestamp(float(self.updated[i]), UTC)
        if self.open[i]:
            return Ticket("sim", f"i{i:08d}", f"INC{i:08d}", opened, "open", updated)
        return Ticket("sim", f"i{i:08d}", f"INC{i:08d}", opened, "closed", updated, resolved_at=updated)

    def _pages(self, rows: np.ndarray) -> Iterator[ScanPage]:
        total = len(rows)
        for start in range(0, total, self.page_size):
            chunk = rows[start : start + self.page_size]
            self.latency.serve(len(chunk))
            tickets = tuple(self._ticket(int(i)) for i in chunk)
            yield ScanPage(
                tickets=tickets,
                position=max(t.updated_at for t in tickets),
                fetched_so_far=start + len(chunk),
                total_expected=total,
            )

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None = None) -> Iterator[ScanPage]:
        rows = self.order if since is None else self.order[self.updated[self.order] >= since.timestamp()]
        return self._pages(rows)

    def open_tickets(self, updated_before: datetime, since: datetime | None) -> Iterator[ScanPage]:
        rows = self.order[self.open[self.order] & (self.updated[self.order] < updated_before.timestamp())]
        if since is not None:
            rows = rows[self.updated[rows] >= since.timestamp()]
        return self._pages(rows)

    def get(self, kind: RecordKind, ids: Sequence[str]) -> ScanPage:
        rows = np.array([int(i[1:]) for i in ids], dtype=np.int64)
        self.latency.serve(len(rows))
        return ScanPage(tickets=tuple(self._ticket(int(i)) for i in rows))

    def ids(self, kind: RecordKind, since: datetime | None) -> Iterator[list[str]]:
        raise NotImplementedError("not used by a first sync")

    def close(self) -> None:
        """Nothing to release."""


def first_sync(incidents: int, years: float, plans: list[Plan], page_ms: float, record_ms: float) -> dict[str, float]:
    latency = Latency(page_ms / 1000, record_ms / 1000)
    upstream = SimulatedUpstream(incidents, years, latency)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "store.db")
        started = time.perf_counter()
        sync_source(upstream, store, plans, now=lambda: NOW)
        measured = time.perf_counter() - started
        stored = stored_count(store, "sim", "ticket")
        store.close()
    return {
        "records": latency.records,
        "pages": latency.pages,
        "stored": stored,
        "upstream_s": latency.spent,
        "exporter_s": measured,
        "ready_s": latency.spent + measured,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--page-ms", type=float, default=200.0)
    parser.add_argument("--record-ms", type=float, default=2.0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.incidents = 3_000
    history = timedelta(days=30, minutes=5)  # the default: the longest window (30d) plus the overlap
    overlap = timedelta(minutes=5)
    bounded = first_sync(
        args.incidents,
        args.years,
        [BackfillPlan(history=history, overlap=overlap), IncrementalPlan(overlap=overlap)],
        args.page_ms,
        args.record_ms,
    )
    unbounded = first_sync(args.incidents, args.years, [IncrementalPlan(overlap=overlap)], args.page_ms, args.record_ms)
    cost = f"{args.page_ms:g} ms a page, {args.record_ms:g} ms a record"
    print(f"{args.incidents} incidents over {args.years:g} years; {cost}")
    for name, r in (("bounded", bounded), ("unbounded", unbounded)):
        print(
            f"{name:>9}: {r['records']:,.0f} records read in {r['pages']:,.0f} pages, {r['stored']:,.0f} stored; "
            f"upstream {r['upstream_s']:,.1f} s + exporter {r['exporter_s']:,.1f} s = ready in {r['ready_s']:,.1f} s"
        )
    print(
        f"bounded / unbounded: records read {bounded['records'] / unbounded['records']:.3f}, "
        f"time to ready {bounded['ready_s'] / unbounded['ready_s']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
