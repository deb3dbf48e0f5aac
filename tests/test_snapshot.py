"""The served snapshot: rendered once per swap, never stale after one."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from itsm_exporter.snapshot import SnapshotCollector


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
