"""Bursts of concurrent scrapes against the demo exporter: latency p50/p99 and the kernel's listen-queue counters.

    python -m bench.burst            # backlog 5 (socketserver's default) and 128 (the exporter's), side by side
    python -m bench.burst --smoke    # a few requests, for the test suite

The demo exporter runs in a child process on 127.0.0.1, once with each listen backlog. For 1, 16
and 64 concurrent clients, each round opens that many new TCP connections at the same instant (a
barrier), sends GET /metrics and reads the whole answer, as many Prometheus replicas, probes and
dashboards do when their intervals line up. Every request is timed from connect to last byte.
Around each burst size, TcpExt ListenOverflows / ListenDrops / TCPSynRetrans are read from
/proc/net/netstat (machine-wide counters: run it on an otherwise quiet machine). Bounded: `rounds`
bursts per size, every request with a 10 s timeout; loopback only.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final

CONCURRENCY: Final = (1, 16, 64)
COUNTERS: Final = ("ListenOverflows", "ListenDrops", "TCPSynRetrans")
TIMEOUT_SECONDS: Final = 10.0


def serve(store: Path, backlog: int, pipe: Connection) -> None:
    """The demo daemon (synced once) behind an ExporterServer with the given listen backlog."""
    from itsm_exporter.config import demo_config
    from itsm_exporter.daemon import Daemon
    from itsm_exporter.web import ExporterServer

    class Server(ExporterServer):
        request_queue_size = backlog

    daemon = Daemon(demo_config(store))
    daemon.sync_all()
    daemon.wait_for_syncs(600)
    server = Server(("127.0.0.1", 0), daemon)
    pipe.send(server.server_port)
    server.serve_forever()


def kernel_counters() -> dict[str, int]:
    """TcpExt counters from /proc/net/netstat (header line, then values line, per protocol)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        if header.startswith("TcpExt:"):
            table = dict(zip(header.split()[1:], (int(v) for v in values.split()[1:]), strict=True))
            return {name: table.get(name, 0) for name in COUNTERS}
    return dict.fromkeys(COUNTERS, 0)


def scrape_once(port: int) -> float:
    """Connect, GET /metrics, read to the end; seconds from connect to the last byte."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        while conn.recv(65536):
            pass
    return time.perf_counter() - started


def burst(port: int, clients: int) -> list[float]:
    """`clients` scrapes released at the same instant, each on its own new connection.

    A scrape that fails or times out counts as TIMEOUT_SECONDS (what a scraper would have waited):
    with a small backlog, a connection the kernel could not queue may hang until its retries give up.
    """
    barrier = threading.Barrier(clients)
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        barrier.wait()
        try:
            seconds = scrape_once(port)
        except OSError:
            seconds = TIMEOUT_SECONDS
        with lock:
            latencies.append(seconds)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_SECONDS * 2)
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(backlog: int, rounds: int, store: Path) -> list[str]:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("spawn").Process(target=serve, args=(store, backlog, sender), daemon=True)
    child.start()
    try:
        port = int(receiver.recv())
        scrape_once(port)  # warm: the first answer renders nothing new, but loads the modules
        lines = []
        for clients in CONCURRENCY:
            before = kernel_counters()
            latencies = [seconds for _ in range(rounds) for seconds in burst(port, clients)]
            after = kernel_counters()
            deltas = " ".join(f"{name} +{after[name] - before[name]}" for name in COUNTERS)
            failed = sum(seconds >= TIMEOUT_SECONDS for seconds in latencies)
            lines.append(
                f"backlog {backlog:3d}, {clients:2d} concurrent x {rounds} bursts: "
                f"p50 {percentile(latencies, 0.5) * 1000:7.1f} ms, p99 {percentile(latencies, 0.99) * 1000:7.1f} ms; "
                f"{failed} timed out; {deltas}"
            )
        return lines
    finally:
        child.terminate()
        child.join(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="bursts per concurrency")
    parser.add_argument("--backlogs", type=int, nargs="+", default=[5, 128])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.backlogs = 1, [128]
    with tempfile.TemporaryDirectory() as tmp:
        for backlog in args.backlogs:
            for line in measure(backlog, args.rounds, Path(tmp) / f"demo-{backlog}.db"):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
