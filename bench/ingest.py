"""Ingestion: a full ServiceNow sync against a bare loop that only GETs and decodes the same pages.

    python -m bench.ingest                  # 200,000 incidents in pages of 1000
    python -m bench.ingest --smoke          # tiny sizes, what CI runs

The server is a fast stand-in for tests/fakes/servicenow.py: records are rendered once, in the
real wire format (display_value=all, by the test fake's own renderer), and pages are answered by
bisecting the (sys_updated_on, sys_id) order for exactly the keyset queries the connector sends.
So the server costs both sides the same, and the ratio measures the exporter's own overhead:
pysnow, normalizing records, and committing them with their sync state to the store.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import numpy as np
import requests

from itsm_exporter.config import parse_config
from itsm_exporter.connectors.servicenow.connector import TICKET_FIELDS, ServiceNowConnector
from itsm_exporter.records import Batch
from itsm_exporter.store import Store
from itsm_exporter.sync import IncrementalPlan, plans_for, sync_source
from tests.fakes.loopback import LoopbackServer, json_get_handler
from tests.fakes.servicenow import FakeServiceNow
from tests.storeread import stored_count

T = TypeVar("T")

_CURSOR = re.compile(
    r"^(?:sys_updated_on>=(?P<since>[^^]+)\^)?"
    r"(?:sys_updated_on>(?P<after>[^^]+)\^NQsys_updated_on=(?P=after)\^sys_id>(?P<id>[0-9a-f]+)\^)?"
    r"ORDERBYsys_updated_on\^ORDERBYsys_id$"
)


class FastServiceNow:
    """Pre-rendered incidents behind a keep-alive HTTP server; other tables are empty."""

    def __init__(self, incidents: int, seed: int = 11) -> None:
        renderer = FakeServiceNow()
        groups = [renderer.add("sys_user_group", name=f"Group {g:02d}") for g in range(50)]
        rng = np.random.default_rng(seed)
        start = datetime(2026, 8, 1, tzinfo=UTC)
        updated = sorted(start + timedelta(seconds=int(s)) for s in rng.integers(0, 90 * 86400, incidents))
        self.keys: list[tuple[str, str]] = []
        self.fragments: list[bytes] = []
        for i, moment in enumerate(updated):
            stamp = moment.strftime("%Y-%m-%d %H:%M:%S")
            opened = (moment - timedelta(hours=int(rng.integers(1, 200)))).strftime("%Y-%m-%d %H:%M:%S")
            record = {
                "sys_id": f"{rng.integers(0, 2**63):016x}{i:016x}",
                "number": f"INC{i:07d}",
                "state": "6",
                "incident_state": "6",
                "opened_at": opened,
                "resolved_at": stamp,
                "closed_at": "",
                "sys_updated_on": stamp,
                "priority": str(rng.integers(1, 6)),
                "assignment_group": groups[int(rng.integers(0, len(groups)))],
                "business_service": "",
                "contact_type": "email",
                "reassignment_count": str(rng.integers(0, 3)),
                "reopen_count": "",
                "made_sla": "true" if rng.random() < 0.9 else "false",
            }
            rendered = renderer.render("incident", record, TICKET_FIELDS, "all", links=False)
            self.keys.append((stamp, record["sys_id"]))
            self.fragments.append(json.dumps(rendered, separators=(",", ":")).encode())
        order = sorted(range(incidents), key=lambda k: self.keys[k])
        self.keys = [self.keys[k] for k in order]
        self.fragments = [self.fragments[k] for k in order]
        self.requests: Counter[str] = Counter()
        self.urls: list[str] = []
        self._server: LoopbackServer | None = None
        self.url = ""

    def page(self, table: str, params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        limit = int(params.get("sysparm_limit", "10000"))
        if table != "incident":
            return b'{"result":[]}', {}
        match = _CURSOR.match(params.get("sysparm_query", ""))
        if match is None:
            raise ValueError(f"unexpected query {params.get('sysparm_query')!r}")
        if match["after"]:
            start = bisect.bisect_right(self.keys, (match["after"], match["id"]))
        elif match["since"]:
            start = bisect.bisect_left(self.keys, (match["since"], ""))
        else:
            start = 0
        body = b'{"result":[' + b",".join(self.fragments[start : start + limit]) + b"]}"
        headers = {} if params.get("sysparm_no_count") == "true" else {"X-Total-Count": str(len(self.keys) - start)}
        return body, headers

    def answer(self, table: str, params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        self.requests[table] += 1
        self.urls.append(f"/api/now/table/{table}?{urlencode(params)}")  # replayed by _bare_loop
        return self.page(table, params)

    def __enter__(self) -> FastServiceNow:
        self._server = LoopbackServer(json_get_handler(self.answer))
        self.url = self._server.url()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.stop()


def _timed(work: Callable[..., T], *args: Any) -> tuple[float, T]:
    """Seconds `work(*args)` took, started from a collected heap (the previous step's garbage is not its cost)."""
    gc.collect()
    started = time.perf_counter()
    outcome = work(*args)
    return time.perf_counter() - started, outcome


def _bare_loop(session: requests.Session, base: str, urls: list[str]) -> int:
    """GET and decode each page, nothing more: the unavoidable part of a sync. Records decoded."""
    return sum(len(session.get(base + url, timeout=60).json()["result"]) for url in urls)


def _normalize_only(connector: ServiceNowConnector) -> int:
    """A full read through pysnow and the normalizer, storing nothing. Tickets normalized."""
    return sum(len(batch.tickets) for batch in _first_sync(connector))


def _first_sync(connector: ServiceNowConnector) -> Iterator[Batch]:
    """The batches of a first sync (nothing stored yet), as the incremental plan makes them."""
    return IncrementalPlan(overlap=timedelta(0)).batches(connector, {}, datetime.now(UTC))


def _commit_all(store: Store, source: str, batches: list[Batch]) -> None:
    for batch in batches:
        store.commit_batch(source, batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="full syncs and bare loops, alternated; best of each")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.incidents, args.page_size, args.rounds = 2_500, 500, 2
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    started = time.perf_counter()
    with FastServiceNow(args.incidents) as fake, tempfile.TemporaryDirectory() as tmp:
        print(f"{args.incidents} incidents rendered in {time.perf_counter() - started:.1f} s")
        # The rendered pages are the fake server's, which a real exporter process never holds: keep the
        # garbage collector from walking them on both sides' time (it slowed both, each by a different amount).
        gc.collect()
        gc.freeze()
        config = parse_config(
            {
                "sources": [
                    {
                        "name": "sn",
                        "kind": "servicenow",
                        "url": fake.url,
                        "username": "bench",
                        "password": "bench",
                        "page_size": args.page_size,
                    }
                ],
            }
        )
        source = config.sources[0]
        session = requests.Session()
        session.auth = ("bench", "bench")
        syncs: list[float] = []
        bares: list[float] = []
        for round_ in range(args.rounds):
            # Rounds alternate the two sides, each from a collected heap: the best of each is compared.
            store = Store(Path(tmp) / f"round{round_}.db")
            fake.urls.clear()
            seconds, result = _timed(sync_source, ServiceNowConnector(source), store, plans_for(source))  # type: ignore[arg-type]
            syncs.append(seconds)
            stored = stored_count(store, "sn", "ticket")
            full_sync_urls = [url for url in fake.urls if "/incident" in url]
            seconds, decoded = _timed(_bare_loop, session, fake.url, full_sync_urls)
            bares.append(seconds)

        fake.requests.clear()
        incremental = sync_source(ServiceNowConnector(source), store, plans_for(source))  # type: ignore[arg-type]
        per_table = dict(fake.requests)

        # Where the time goes: the same full read without the store, then the store alone committing
        # the same batches (collected by an untimed read) into a new file.
        fetch_only, normalized = _timed(_normalize_only, ServiceNowConnector(source))  # type: ignore[arg-type]
        batches = list(_first_sync(ServiceNowConnector(source)))  # type: ignore[arg-type]
        alone = Store(Path(tmp) / "alone.db")
        store_only, _ = _timed(_commit_all, alone, source.name, batches)
        stored_alone = stored_count(alone, "sn", "ticket")  # while the file exists: the directory goes with the block

    exporter, bare = min(syncs), min(bares)
    print(
        f"full sync: {stored} incidents stored in {exporter:.2f} s = {stored / exporter:,.0f} records/s "
        f"({len(full_sync_urls)} incident pages; best of {args.rounds})"
    )
    print(f"bare GET + json decode of the same pages: {bare:.2f} s = {decoded / bare:,.0f} records/s (best)")
    rounds = ", ".join(f"{b / e:.2f}" for b, e in zip(bares, syncs, strict=True))
    print(f"exporter throughput / bare throughput = {bare / exporter:.2f} (target >= 0.5); by round {rounds}")
    per_record = 1e6 / args.incidents
    print(f"where the time goes, microseconds per incident (full sync {exporter * per_record:.1f}):")
    print(f"  GET + json decode, the bare loop        {bare * per_record:5.1f}")
    print(f"  + pysnow and normalizing (no store)     {(fetch_only - bare) * per_record:5.1f}")
    print(f"  + store commits (alone, same batches)   {store_only * per_record:5.1f}")
    print(
        f"  the parts add up to                     {(fetch_only + store_only) * per_record:5.1f}; "
        f"a ratio of 0.5 allows {2 * bare * per_record:.1f}"
    )
    print(
        f"incremental sync with no change: requests per table {per_table}; "
        f"{incremental.records['ticket']} boundary-second records re-read"
    )
    ok = stored == args.incidents == decoded and result.records["ticket"] == args.incidents
    ok = ok and normalized == args.incidents == stored_alone
    ok = ok and all(count == 1 for count in per_table.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
