"""Scrape latency: /metrics of a daemon holding ~20,000 series, with 1,000 and with 1,000,000 stored tickets.

    python -m bench.scrape                 # stores of 1,000 and 1,000,000 tickets
    python -m bench.scrape --smoke         # tiny sizes, what CI runs

Each daemon runs in a child process (its own GIL, as in production) on a pre-filled store; its
only source yields nothing new, so every scrape reads the same snapshot. Both daemons run at once
and the parent scrapes them in turn over loopback (measured one after the other, the second was
slower whatever its size), in gzip as Prometheus asks and in identity, and reports p50/p99.
Scrapes should cost the same with a thousand or a million tickets, because they read the snapshot
and never the data.

A scrape's cost follows the size of the exposition, so both stores must expose the same series: the
small store packs its tickets into the last 3 days with complaints on most of them, so that nearly
every (group, channel, window) has each kind of event, as the million tickets spread over 60 days
do. The series counts are printed side by side; they differ by about 2 %.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import requests

from bench.datagen import SOURCE, ticket_records
from itsm_exporter.config import Config, parse_config
from itsm_exporter.connectors.base import ScanPage
from itsm_exporter.records import Batch, RecordKind
from itsm_exporter.store import Store


class NothingNew:
    """A connector whose upstream has no change: the daemon serves what the store already holds."""

    name = SOURCE

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    phases: tuple[RecordKind, ...] = ("ticket",)

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None) -> Iterator[ScanPage]:
        yield ScanPage()

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


ENCODINGS: Final = ("gzip", "identity")
"""Prometheus asks for gzip; identity shows the server's cost without the compressed size's variation."""


@dataclass
class Measured:
    series: int
    by_encoding: dict[str, tuple[int, list[float]]]
    """Encoding -> (bytes on the wire, latencies in seconds)."""


DENSE_HISTORY_DAYS: Final = 3.0
DENSE_COMPLAINT_SHARE: Final = 0.8
"""Shape of the small store: few tickets, yet every label set with every kind of event (see above)."""


def fill_store(path: Path, tickets: int, groups: int, dense: bool) -> None:
    records = (
        ticket_records(
            tickets, groups, chunk=10_000, history_days=DENSE_HISTORY_DAYS, complaint_share=DENSE_COMPLAINT_SHARE
        )
        if dense
        else ticket_records(tickets, groups, chunk=10_000)
    )
    store = Store(path)
    for chunk in records:
        store.commit_batch(SOURCE, Batch(kind="ticket", tickets=tuple(chunk)))
    store.close()


def measure(sizes: tuple[int, int], groups: int, scrapes: int, as_of: datetime) -> dict[int, Measured]:
    """Both daemons run at once and are scraped in turn, so drift and noise fall on both alike."""
    small = min(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        processes, urls, measured = [], {}, {}
        try:
            for tickets in sizes:
                store_path = Path(tmp) / f"store-{tickets}.db"
                fill_store(store_path, tickets, groups, dense=tickets == small)
                parent, child = multiprocessing.Pipe()
                process = multiprocessing.get_context("fork").Process(
                    target=serve_in_child, args=(store_path, groups, as_of.timestamp(), child), daemon=True
                )
                process.start()
                processes.append(process)
                if not parent.poll(600):
                    raise RuntimeError("the daemon did not start")
                urls[tickets] = f"http://127.0.0.1:{parent.recv()}/metrics"
            sessions = {tickets: requests.Session() for tickets in sizes}
            for tickets in sizes:
                body = sessions[tickets].get(urls[tickets], timeout=60).text
                series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
                measured[tickets] = Measured(series, {encoding: (0, []) for encoding in ENCODINGS})
            for number in range(20 + scrapes):  # 20 warm-up rounds, then the measured ones
                for tickets in sizes:
                    for encoding in ENCODINGS:
                        wire, elapsed = scrape(sessions[tickets], urls[tickets], encoding)
                        if number >= 20:
                            latencies = measured[tickets].by_encoding[encoding][1]
                            latencies.append(elapsed)
                            measured[tickets].by_encoding[encoding] = (wire, latencies)
            return measured
        finally:
            for process in processes:
                process.terminate()
                process.join(10)


def scrape(session: requests.Session, url: str, encoding: str) -> tuple[int, float]:
    """Bytes on the wire and seconds until the whole body arrived."""
    started = time.perf_counter()
    response = session.get(url, headers={"Accept-Encoding": encoding}, timeout=60, stream=True)
    # The body as sent, not decompressed: client-side gunzip is Prometheus's cost, not ours.
    wire = len(response.raw.read(decode_content=False))
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"scrape answered {response.status_code}")
    return wire, elapsed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    from bench.datagen import AS_OF

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=42, help="x 3 channels: about 20,000 series")
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.small, args.large, args.groups, args.scrapes = 200, 3_000, 5, 20

    results = measure((args.small, args.large), args.groups, args.scrapes, AS_OF)
    for tickets, measured in results.items():
        for encoding, (wire, latencies) in measured.by_encoding.items():
            print(
                f"{tickets:>9} tickets, {measured.series} series, {encoding:>8} {wire / 1024:6.0f} KiB: "
                f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms "
                f"over {len(latencies)} scrapes"
            )
    small, large = results[args.small], results[args.large]
    print(f"series large/small: {large.series / small.series:.2f}")
    for encoding in ENCODINGS:
        (small_wire, small_latencies), (large_wire, large_latencies) = (
            small.by_encoding[encoding],
            large.by_encoding[encoding],
        )
        p50, p99 = (percentile(large_latencies, q) / percentile(small_latencies, q) for q in (0.5, 0.99))
        print(
            f"{encoding}: large/small latency p50 {p50:.2f}, p99 {p99:.2f} (target <= 1.20); "
            f"bytes on the wire {large_wire / small_wire:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
