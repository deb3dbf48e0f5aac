"""The served snapshot: rendered once per swap, never stale after one."""

from __future__ import annotations

import gzip
import zlib

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import CollectorRegistry

from itsm_exporter.snapshot import FrozenCollector, SnapshotCollector


def gauge(value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily("itsm_backlog_tickets", "Backlog.", value=value)


def test_exposition_is_rendered_once_per_snapshot_and_follows_swaps() -> None:
    collector = SnapshotCollector([gauge(1)])
    renders: list[int] = []

    def render(registry: CollectorRegistry) -> bytes:
        renders.append(1)
        return generate_latest(registry)

    first = collector.exposition("text", render)
    assert collector.exposition("text", render) is first
    assert len(renders) == 1
    assert b"itsm_backlog_tickets 1.0" in first
    collector.swap([gauge(2)])
    second = collector.exposition("text", render)
    assert b"itsm_backlog_tickets 2.0" in second
    assert len(renders) == 2
    assert collector.exposition("gzip", render) == second  # another variant renders its own copy
    assert len(renders) == 3


class Ticking:
    """A live collector (as the process collector is): another value on every collect."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> list[CounterMetricFamily]:
        self.calls += 1
        return [CounterMetricFamily("process_cpu_seconds", "CPU.", value=float(self.calls))]


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
@pytest.mark.parametrize("zipped", [False, True], ids=["identity", "gzip"])
def test_live_collectors_are_read_on_every_scrape_after_the_cached_snapshot(openmetrics: bool, zipped: bool) -> None:
    live = Ticking()
    collector = SnapshotCollector([gauge(1)], live=[live])
    renders: list[int] = []
    encode = openmetrics_latest if openmetrics else generate_latest

    def render(registry: CollectorRegistry) -> bytes:
        renders.append(1)
        body = encode(registry)
        return gzip.compress(body) if zipped else body

    def expected(tick: float) -> bytes:
        registry = CollectorRegistry()
        registry.register(FrozenCollector([gauge(1), CounterMetricFamily("process_cpu_seconds", "CPU.", value=tick)]))
        return encode(registry)

    for tick in (1.0, 2.0, 3.0):
        body = collector.exposition("variant", render)
        assert (gzip.decompress(body) if zipped else body) == expected(tick)
    assert len(renders) == 1 + 3  # the snapshot once, the live part per scrape
    if zipped:
        assert zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(body) == expected(3.0)  # one gzip member
