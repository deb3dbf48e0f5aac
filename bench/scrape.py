"""Scrape latency: /metrics of a daemon holding ~20,000 series, with 1,000 and with 1,000,000 stored tickets.

    python -m bench.scrape                 # stores of 1,000 and 1,000,000 tickets
    python -m bench.scrape --smoke         # tiny sizes, what CI runs

The daemon runs in a child process (its own GIL, as in production) on a pre-filled store; its
only source yields nothing new, so every scrape reads the same snapshot. The parent scrapes it
sequentially over loopback and reports p50/p99. Scrapes should cost the same with a thousand or
a million tickets, because they read the snapshot and never the data.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import requests

from bench.datagen import SOURCE, ticket_records
from itsm_exporter.config import Config, parse_config
from itsm_exporter.records import Batch, RecordKind
from itsm_exporter.store import Store


class NothingNew:
    """A connector whose upstream has no change: the daemon serves what the store already holds."""

    name = SOURCE

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def fetch(self, watermarks: Mapping[RecordKind, str | None]) -> Iterator[Batch]:
        yield Batch(kind="ticket")

    def close(self) -> None:
        pass


def config_for(store: Path, groups: int) -> Config:
    return parse_config(
        {
            "store": {"path": str(store)},
            "windows": ["7d", "30d"],
            "group_by": ["group", "channel"],
            "max_label_values": groups,
            "refresh_interval": "1h",
            "sources": [{"name": SOURCE, "kind": "demo"}],
        }
    )


def serve_in_child(store: Path, groups: int, as_of: float, pipe: Connection) -> None:
    from itsm_exporter.daemon import Daemon
    from itsm_exporter.web import ExporterServer

    daemon = Daemon(config_for(store, groups), connector_factory=NothingNew, clock=lambda: as_of)
    daemon.sync_all()
    daemon.wait_for_syncs(600)
    server = ExporterServer(("127.0.0.1", 0), daemon)
    pipe.send(server.server_port)
    server.serve_forever()


def measure(tickets: int, groups: int, scrapes: int, as_of: datetime) -> tuple[int, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "store.db"
        store = Store(store_path)
        for chunk in ticket_records(tickets, groups=groups, chunk=10_000):
            store.commit_batch(SOURCE, Batch(kind="ticket", tickets=tuple(chunk)))
        store.close()
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.get_context("fork").Process(
            target=serve_in_child, args=(store_path, groups, as_of.timestamp(), child), daemon=True
        )
        process.start()
        try:
            if not parent.poll(600):
                raise RuntimeError("the daemon did not start")
            url = f"http://127.0.0.1:{parent.recv()}/metrics"
            session = requests.Session()
            body = session.get(url, timeout=60).text
            series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
            for _ in range(20):  # warm-up
                session.get(url, timeout=60)
            latencies = []
            for _ in range(scrapes):
                started = time.perf_counter()
                response = session.get(url, timeout=60)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"scrape answered {response.status_code}")
            return series, latencies
        finally:
            process.terminate()
            process.join(10)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    from bench.datagen import AS_OF

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=35, help="x 3 channels: about 20,000 series")
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.small, args.large, args.groups, args.scrapes = 200, 3_000, 5, 20

    results: dict[int, tuple[int, list[float]]] = {}
    for tickets in (args.small, args.large):
        results[tickets] = measure(tickets, args.groups, args.scrapes, AS_OF)
        series, latencies = results[tickets]
        print(
            f"{tickets:>9} tickets, {series} series: p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms over {len(latencies)} scrapes"
        )
    small, large = (percentile(results[n][1], 0.5) for n in (args.small, args.large))
    print(f"p50 latency ratio large/small store: {large / small:.2f} (target <= 1.20)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
